//! Text for `bosun image ls` (a table like `crictl images`) and the progress
//! of `bosun image pull`. Pure formatting.

use super::pull::PullEvent;
use super::reference::Reference;
use super::store::ImageSummary;

/// What a pull has done so far, fed with its events; renders the progress line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullProgress {
    pub layers: usize,
    pub reused: usize,
    pub done: usize,
    pub to_fetch: usize,
    pub bytes: u64,
    pub total_bytes: u64,
}

impl PullProgress {
    /// Takes one event; returns a line worth printing on its own (plain output).
    pub fn update(&mut self, e: &PullEvent) -> Option<String> {
        match e {
            PullEvent::Resolved {
                digest,
                layers,
                to_fetch,
                bytes,
            } => {
                self.layers = *layers;
                self.to_fetch = *to_fetch;
                self.total_bytes = *bytes;
                Some(format!(
                    "manifest {digest}: {layers} layers, {to_fetch} to fetch ({})",
                    human_size(*bytes)
                ))
            }
            PullEvent::LayerReused { digest, .. } => {
                self.reused += 1;
                Some(format!("layer {} already present", short(digest)))
            }
            PullEvent::Bytes { n, .. } => {
                self.bytes += n;
                None
            }
            PullEvent::LayerDone { digest, .. } => {
                self.done += 1;
                Some(format!(
                    "layer {} done ({}/{} fetched)",
                    short(digest),
                    self.done,
                    self.to_fetch
                ))
            }
        }
    }

    /// `layers 2/5 (1 present)  41.9MB/104MB  38.2MB/s` after `secs` seconds.
    pub fn line(&self, secs: f64) -> String {
        let rate = if secs > 0.0 {
            (self.bytes as f64 / secs) as u64
        } else {
            0
        };
        format!(
            "layers {}/{} ({} present)  {}/{}  {}/s",
            self.done + self.reused,
            self.layers,
            self.reused,
            human_size(self.bytes),
            human_size(self.total_bytes),
            human_size(rate)
        )
    }
}

/// `sha256:` and 12 hex characters.
fn short(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

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
    fn pull_progress_counts_layers_and_bytes() {
        let mut p = PullProgress::default();
        let d = format!("sha256:{}", "a".repeat(64));
        let line = p.update(&PullEvent::Resolved {
            digest: d.clone(),
            layers: 3,
            to_fetch: 2,
            bytes: 2_000_000,
        });
        assert!(line.unwrap().contains("3 layers, 2 to fetch (2MB)"));
        assert!(p
            .update(&PullEvent::LayerReused {
                index: 0,
                digest: d.clone()
            })
            .is_some());
        assert_eq!(
            p.update(&PullEvent::Bytes {
                index: 1,
                n: 1_000_000
            }),
            None
        );
        assert_eq!(
            p.update(&PullEvent::LayerDone {
                index: 1,
                digest: d.clone()
            }),
            Some("layer sha256:aaaaaaaaaaaa done (1/2 fetched)".to_string())
        );
        assert_eq!(p.line(2.0), "layers 2/3 (1 present)  1MB/2MB  500kB/s");
        assert!(p.line(0.0).ends_with(" 0B/s"));
    }

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
