//! Writing container output as CRI log lines
//! (`<RFC3339Nano UTC> stdout|stderr F|P <text>\n`) with size rotation: past
//! `max_size` the file is renamed `<n>.log.<unix-nanos>` and a new one started;
//! at most [`KEEP_ROTATED`] rotated files are kept. Used by the shim.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Rotated files kept per container log.
pub const KEEP_ROTATED: usize = 5;
/// A line longer than this is written in parts tagged P.
pub const MAX_LINE: usize = 16 * 1024;

/// One stream's pending bytes, cut into CRI lines.
#[derive(Default)]
pub struct Splitter {
    buf: Vec<u8>,
}

impl Splitter {
    /// Adds `data`; returns the complete lines (partial = true for a part of an
    /// over-long line), without their newline.
    pub fn push(&mut self, data: &[u8]) -> Vec<(bool, Vec<u8>)> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            match self.buf.iter().position(|b| *b == b'\n') {
                Some(i) if i <= MAX_LINE => {
                    let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                    line.pop();
                    out.push((false, line));
                }
                _ if self.buf.len() > MAX_LINE => {
                    out.push((true, self.buf.drain(..MAX_LINE).collect()));
                }
                _ => return out,
            }
        }
    }

    /// What is left at end of stream, as a full line.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }
}

/// A container's CRI log file.
pub struct CriLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
}

impl CriLog {
    pub fn open(path: &Path, max_size: u64) -> io::Result<CriLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(CriLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
        })
    }

    /// Writes one CRI line.
    pub fn write(
        &mut self,
        stream: &str,
        partial: bool,
        text: &[u8],
        now: SystemTime,
    ) -> io::Result<()> {
        let mut line = Vec::with_capacity(text.len() + 48);
        line.extend_from_slice(format_time(now).as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.as_bytes());
        line.extend_from_slice(if partial { b" P " } else { b" F " });
        line.extend_from_slice(text);
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        if self.max_size > 0 && self.size >= self.max_size {
            self.rotate(now)?;
        }
        Ok(())
    }

    fn rotate(&mut self, now: SystemTime) -> io::Result<()> {
        let nanos = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut rotated = self.path.as_os_str().to_owned();
        rotated.push(format!(".{nanos}"));
        fs::rename(&self.path, &rotated)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        prune(&self.path, KEEP_ROTATED)
    }
}

/// Keeps the newest `keep` rotated files `<name>.<nanos>` next to `path`.
fn prune(path: &Path, keep: usize) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(());
    };
    let prefix = format!("{name}.");
    let mut old: Vec<(u128, PathBuf)> = fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let ts = n.strip_prefix(&prefix)?.parse::<u128>().ok()?;
            Some((ts, e.path()))
        })
        .collect();
    old.sort();
    let extra = old.len().saturating_sub(keep);
    for (_, p) in old.into_iter().take(extra) {
        let _ = fs::remove_file(p);
    }
    Ok(())
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-11-26T18:29:04.000000001Z`.
pub fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339_nano_utc() {
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_709_251_199, 5); // 2024-02-29T23:59:59
        assert_eq!(format_time(t), "2024-02-29T23:59:59.000000005Z");
    }

    #[test]
    fn splits_lines_and_long_parts() {
        let mut s = Splitter::default();
        assert_eq!(s.push(b"a\nb"), vec![(false, b"a".to_vec())]);
        assert_eq!(s.push(b"c\n"), vec![(false, b"bc".to_vec())]);
        let long = vec![b'x'; MAX_LINE + 3];
        let out = s.push(&long);
        assert_eq!(out, vec![(true, vec![b'x'; MAX_LINE])]);
        assert_eq!(s.finish(), Some(b"xxx".to_vec()));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn writes_and_rotates() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        let mut log = CriLog::open(&p, 100).unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(1);
        log.write("stdout", false, b"hello", t).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text, "1970-01-01T00:00:01.000000000Z stdout F hello\n");
        for i in 0..20 {
            log.write(
                "stderr",
                false,
                b"0123456789012345678901234567890123456789",
                t + Duration::from_secs(i),
            )
            .unwrap();
        }
        let rotated = fs::read_dir(d.path()).unwrap().count() - 1;
        assert_eq!(rotated, KEEP_ROTATED);
        assert!(p.exists());
    }
}
