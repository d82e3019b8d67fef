//! The CRI log line format, `<RFC3339Nano> stdout|stderr F|P <text>`, and the
//! formatter that turns a sequence of lines into what `kubectl logs` prints:
//! partial (`P`) pieces joined up to their `F` line, an optional timestamp prefix
//! per output line, `since` filtering and a byte limit. Pure: no I/O.

use jiff::Timestamp;

use super::{LogError, LogOptions};

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One parsed CRI log line (without its trailing newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// The timestamp as written in the file (RFC3339Nano).
    pub time_text: &'a str,
    pub time: Timestamp,
    pub stream: LogStream,
    /// `P`: the text continues in the next line.
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses one CRI line; a trailing `\n` (and `\r`) is ignored.
pub fn parse_line(line: &[u8]) -> Result<CriLine<'_>, LogError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (time_bytes, rest) = split_space(line).ok_or(LogError::BadLine {
        reason: "no timestamp",
    })?;
    let time_text = std::str::from_utf8(time_bytes).map_err(|_| LogError::BadLine {
        reason: "timestamp is not UTF-8",
    })?;
    let time: Timestamp = time_text.parse().map_err(|_| LogError::BadLine {
        reason: "timestamp is not RFC 3339",
    })?;
    let (stream, rest) = split_space(rest).ok_or(LogError::BadLine {
        reason: "no stream",
    })?;
    let stream = match stream {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => {
            return Err(LogError::BadLine {
                reason: "stream is neither stdout nor stderr",
            })
        }
    };
    // The tag may be followed by the text or end the line (an empty F line).
    let (tag, text) = split_space(rest).unwrap_or((rest, &[][..]));
    // CRI tags may carry more fields after ':'; the first says full or partial.
    let partial = match tag.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(LogError::BadLine { reason: "bad tag" }),
    };
    Ok(CriLine {
        time_text,
        time,
        stream,
        partial,
        text,
    })
}

fn split_space(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|b| *b == b' ')?;
    Some((&s[..i], &s[i + 1..]))
}

/// Turns CRI lines into output bytes as the kubelet does.
#[derive(Debug, Clone)]
pub struct Formatter {
    timestamps: bool,
    since: Option<Timestamp>,
    remaining: Option<u64>,
    at_line_start: bool,
}

impl Formatter {
    pub fn new(opts: &LogOptions) -> Formatter {
        Formatter {
            timestamps: opts.timestamps,
            since: opts.since,
            remaining: opts.limit_bytes,
            at_line_start: true,
        }
    }

    /// Whether `limitBytes` has been reached: nothing more will be written.
    pub fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Appends the output for one raw file line to `out`. Lines that do not
    /// parse are skipped (as the kubelet does).
    pub fn push(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        let Ok(line) = parse_line(raw) else {
            return;
        };
        if self.since.is_some_and(|since| line.time < since) {
            return;
        }
        if self.timestamps && self.at_line_start {
            self.write(line.time_text.as_bytes(), out);
            self.write(b" ", out);
        }
        self.write(line.text, out);
        if !line.partial {
            self.write(b"\n", out);
        }
        self.at_line_start = !line.partial;
    }

    fn write(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let n = match self.remaining {
            None => bytes.len(),
            Some(left) => {
                let n = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                self.remaining = Some(left - n as u64);
                n
            }
        };
        out.extend_from_slice(&bytes[..n]);
    }
}

/// Whether a raw line ends a logical line (an `F` line, or one that does not parse).
pub(crate) fn ends_logical_line(raw: &[u8]) -> bool {
    parse_line(raw).map_or(true, |l| !l.partial)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(opts: &LogOptions, lines: &[&str]) -> String {
        let mut f = Formatter::new(opts);
        let mut out = Vec::new();
        for l in lines {
            f.push(l.as_bytes(), &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn parses_full_partial_and_empty_lines() {
        let l = parse_line(b"2024-05-01T10:00:00.123456789Z stdout F hello world\n").unwrap();
        assert_eq!(l.time_text, "2024-05-01T10:00:00.123456789Z");
        assert_eq!(l.stream, LogStream::Stdout);
        assert!(!l.partial);
        assert_eq!(l.text, b"hello world");
        let l = parse_line(b"2024-05-01T10:00:00Z stderr P  two spaces").unwrap();
        assert_eq!(l.stream, LogStream::Stderr);
        assert!(l.partial);
        assert_eq!(l.text, b" two spaces");
        let l = parse_line(b"2024-05-01T10:00:00Z stdout F").unwrap();
        assert_eq!(l.text, b"");
        assert!(parse_line(b"garbage").is_err());
        assert!(parse_line(b"2024-05-01T10:00:00Z stdin F x").is_err());
        assert!(parse_line(b"2024-05-01T10:00:00Z stdout X x").is_err());
        assert!(parse_line(b"yesterday stdout F x").is_err());
    }

    #[test]
    fn joins_partial_lines_and_prefixes_timestamps_once() {
        let lines = [
            "2024-05-01T10:00:00.1Z stdout P hel",
            "2024-05-01T10:00:00.2Z stdout P lo ",
            "2024-05-01T10:00:00.3Z stdout F world",
            "2024-05-01T10:00:01Z stderr F second",
        ];
        assert_eq!(
            format(&LogOptions::default(), &lines),
            "hello world\nsecond\n"
        );
        let opts = LogOptions {
            timestamps: true,
            ..LogOptions::default()
        };
        assert_eq!(
            format(&opts, &lines),
            "2024-05-01T10:00:00.1Z hello world\n2024-05-01T10:00:01Z second\n"
        );
    }

    #[test]
    fn filters_by_time_and_limits_bytes() {
        let lines = [
            "2024-05-01T10:00:00Z stdout F old",
            "2024-05-01T10:00:05Z stdout F new",
            "2024-05-01T10:00:06Z stdout F newer",
        ];
        let opts = LogOptions {
            since: Some("2024-05-01T10:00:05Z".parse().unwrap()),
            ..LogOptions::default()
        };
        assert_eq!(format(&opts, &lines), "new\nnewer\n");
        let opts = LogOptions {
            limit_bytes: Some(6),
            ..LogOptions::default()
        };
        let mut f = Formatter::new(&opts);
        let mut out = Vec::new();
        for l in lines {
            f.push(l.as_bytes(), &mut out);
        }
        assert_eq!(out, b"old\nne");
        assert!(f.exhausted());
    }

    #[test]
    fn skips_garbage_lines() {
        let lines = ["nonsense", "2024-05-01T10:00:00Z stdout F ok"];
        assert_eq!(format(&LogOptions::default(), &lines), "ok\n");
        assert!(ends_logical_line(b"nonsense"));
        assert!(!ends_logical_line(b"2024-05-01T10:00:00Z stdout P x"));
    }
}
