//! Text for `bosun image ls`: a table like `crictl images`. Pure formatting.

use super::reference::Reference;
use super::store::ImageSummary;

/// `size` in decimal units with three significant digits, as docker and crictl
/// print it: `812B`, `4.27MB`, `12.3kB`.
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = size as f64;
    let mut unit = 0;
    while v >= 999.5 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    let text = if unit == 0 || v >= 99.95 {
        format!("{v:.0}")
    } else if v >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

/// The table of `bosun image ls`: IMAGE, TAG, IMAGE ID (12 hex), SIZE; one row
/// per reference, sorted.
pub fn image_table(images: &[ImageSummary]) -> String {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "SIZE".into(),
    ]];
    let mut body = Vec::new();
    for img in images {
        let id: String = img
            .id
            .strip_prefix("sha256:")
            .unwrap_or(&img.id)
            .chars()
            .take(12)
            .collect();
        for r in &img.references {
            let (name, tag) = match Reference::parse(r) {
                Ok(p) => (p.name(), p.tag.unwrap_or_else(|| "<none>".into())),
                Err(_) => (r.clone(), "<none>".into()),
            };
            body.push([name, tag, id.clone(), human_size(img.size)]);
        }
    }
    body.sort();
    rows.extend(body);
    let mut widths = [0usize; 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line = format!(
            "{:<w0$}   {:<w1$}   {:<w2$}   {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_crictl() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(812), "812B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(12_345), "12.3kB");
        assert_eq!(human_size(4_270_000), "4.27MB");
        assert_eq!(human_size(999_999), "1MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }

    #[test]
    fn table_has_one_row_per_reference_with_short_ids() {
        let id = format!("sha256:{}", "ab".repeat(32));
        let t = image_table(&[ImageSummary {
            references: vec![
                "docker.io/library/busybox:latest".into(),
                "localhost:5000/bb:1".into(),
            ],
            id,
            size: 1_240_000,
            created: None,
        }]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("IMAGE"));
        assert!(lines[0].contains("IMAGE ID"));
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "docker.io/library/busybox",
                "latest",
                "abababababab",
                "1.24MB"
            ]
        );
        let cols: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(cols, ["localhost:5000/bb", "1", "abababababab", "1.24MB"]);
        // Columns line up.
        assert_eq!(lines[0].find("TAG"), lines[1].find("latest"));
    }
}
