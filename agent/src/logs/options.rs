//! The options of a log request, parsed from a `/containerLogs` query string with
//! the kubelet's rules (`PodLogOptions`). Pure.

use jiff::{SignedDuration, Timestamp};

use super::LogError;

/// What part of a container's log to return and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming as the file grows until the container's attempt is over.
    pub follow: bool,
    /// Only the last N lines of the current file.
    pub tail_lines: Option<u64>,
    /// Prefix each line with its RFC3339Nano timestamp and a space.
    pub timestamps: bool,
    /// Only lines at or after this time (`sinceSeconds` or `sinceTime`).
    pub since: Option<Timestamp>,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
    /// The previous attempt of the container instead of the current one.
    pub previous: bool,
}

impl LogOptions {
    /// Parses a raw query string (`follow=true&tailLines=10…`); `now` resolves
    /// `sinceSeconds`. Unknown keys are ignored.
    pub fn from_query(query: Option<&str>, now: Timestamp) -> Result<LogOptions, LogError> {
        let mut opts = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "follow" => opts.follow = parse_bool("follow", &value)?,
                "timestamps" => opts.timestamps = parse_bool("timestamps", &value)?,
                "previous" => opts.previous = parse_bool("previous", &value)?,
                "tailLines" => opts.tail_lines = Some(parse_int("tailLines", &value, 0)?),
                "limitBytes" => opts.limit_bytes = Some(parse_int("limitBytes", &value, 1)?),
                "sinceSeconds" => since_seconds = Some(parse_int("sinceSeconds", &value, 1)?),
                "sinceTime" => {
                    let t: Timestamp = value.parse().map_err(|e: jiff::Error| {
                        bad("sinceTime", &value, format!("not an RFC 3339 time: {e}"))
                    })?;
                    since_time = Some(t);
                }
                _ => {}
            }
        }
        opts.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "sinceSeconds",
                    "",
                    "at most one of sinceTime or sinceSeconds may be specified".into(),
                ))
            }
            (Some(secs), None) => {
                let secs = i64::try_from(secs).unwrap_or(i64::MAX);
                Some(
                    now.checked_sub(SignedDuration::from_secs(secs))
                        .unwrap_or(Timestamp::MIN),
                )
            }
            (None, t) => t,
        };
        Ok(opts)
    }
}

fn bad(option: &'static str, value: &str, reason: String) -> LogError {
    LogError::BadOption {
        option,
        value: value.to_string(),
        reason,
    }
}

/// Go's `strconv.ParseBool`, plus an empty value (a bare `?follow`) meaning true.
fn parse_bool(option: &'static str, value: &str) -> Result<bool, LogError> {
    match value {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(bad(option, value, "not a boolean".into())),
    }
}

fn parse_int(option: &'static str, value: &str, min: u64) -> Result<u64, LogError> {
    let n: i64 = value
        .parse()
        .map_err(|_| bad(option, value, "not an integer".into()))?;
    match u64::try_from(n) {
        Ok(n) if n >= min => Ok(n),
        _ => Err(bad(option, value, format!("must be {min} or greater"))),
    }
}

/// Decodes `%XX` escapes and `+` (a space) of a query value; bad escapes stay as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn parses_every_option() {
        let q = "follow=true&tailLines=10&timestamps=1&limitBytes=100&previous=false&container=x";
        let o = LogOptions::from_query(Some(q), now()).unwrap();
        assert_eq!(
            o,
            LogOptions {
                follow: true,
                tail_lines: Some(10),
                timestamps: true,
                since: None,
                limit_bytes: Some(100),
                previous: false,
            }
        );
        let o = LogOptions::from_query(Some("sinceSeconds=60"), now()).unwrap();
        assert_eq!(o.since, Some("2024-05-01T09:59:00Z".parse().unwrap()));
        let o = LogOptions::from_query(Some("sinceTime=2024-05-01T09%3A30%3A00Z"), now()).unwrap();
        assert_eq!(o.since, Some("2024-05-01T09:30:00Z".parse().unwrap()));
        assert_eq!(
            LogOptions::from_query(None, now()).unwrap(),
            LogOptions::default()
        );
        assert!(
            LogOptions::from_query(Some("follow"), now())
                .unwrap()
                .follow
        );
    }

    #[test]
    fn rejects_bad_values() {
        for q in [
            "tailLines=-1",
            "tailLines=x",
            "limitBytes=0",
            "sinceSeconds=0",
            "follow=maybe",
            "sinceTime=yesterday",
            "sinceSeconds=5&sinceTime=2024-05-01T09:30:00Z",
        ] {
            let e = LogOptions::from_query(Some(q), now()).unwrap_err();
            assert!(e.is_bad_request(), "{q}: {e}");
        }
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%3Ab+c%2"), "a:b c%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
