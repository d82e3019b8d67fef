//! Streaming one container attempt's log: start at the right place (`tailLines`),
//! read [`CHUNK`]-byte pieces, format them, hand each piece to the caller's
//! channel, and with `follow` keep reading as the file grows, switch to the new
//! file when the runtime rotates it, and stop when the attempt is over (a newer
//! attempt's file exists, or `still_running` says no) or the receiver is dropped.

use std::collections::VecDeque;
use std::io::{Read, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::cri::ends_logical_line;
use super::{Formatter, LogError, LogFile, LogOptions, CHUNK};

/// How often a followed file is checked for growth.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often `still_running` is asked while following an idle file.
const RUNNING_CHECK: Duration = Duration::from_secs(1);
/// A raw line longer than this (CRI writers split at 16 KiB) is processed as is.
const MAX_LINE: usize = 64 * 1024;

/// The byte offset where the last `n` logical lines of `reader` start (partial
/// lines count with the line they end in). Reads it all once, in chunks, keeping
/// at most `n` offsets.
pub fn tail_start<R: Read>(mut reader: R, n: u64) -> std::io::Result<u64> {
    let keep = usize::try_from(n).unwrap_or(usize::MAX);
    let mut starts: VecDeque<u64> = VecDeque::new();
    let mut buf = vec![0u8; CHUNK];
    let mut line: Vec<u8> = Vec::new(); // the current raw line, up to MAX_LINE bytes
    let mut offset = 0u64; // of buf[0]
    let mut logical_start = 0u64; // where the current logical line starts
    loop {
        let read = reader.read(&mut buf)?;
        if read == 0 {
            break;
        }
        let mut from = 0;
        for (i, b) in buf[..read].iter().enumerate() {
            if *b != b'\n' {
                continue;
            }
            if line.len() < MAX_LINE {
                let take = (i - from).min(MAX_LINE - line.len());
                line.extend_from_slice(&buf[from..from + take]);
            }
            let end = offset + i as u64 + 1;
            if ends_logical_line(&line) {
                if keep > 0 {
                    if starts.len() == keep {
                        starts.pop_front();
                    }
                    starts.push_back(logical_start);
                }
                logical_start = end;
            }
            line.clear();
            from = i + 1;
        }
        if line.len() < MAX_LINE {
            let take = (read - from).min(MAX_LINE - line.len());
            line.extend_from_slice(&buf[from..from + take]);
        }
        offset += read as u64;
    }
    if keep == 0 {
        return Ok(offset);
    }
    Ok(starts.front().copied().unwrap_or(logical_start.min(offset)))
}

/// Streams `file` as `opts` say into `tx`, one message per chunk read. Returns
/// when done, when `limitBytes` is reached, or when `tx`'s receiver is gone.
/// `still_running` is asked, while following, whether the container attempt is
/// still running (the kubelet's view); once it says no the rest is read and the
/// stream ends.
pub async fn stream(
    file: LogFile,
    opts: &LogOptions,
    tx: mpsc::Sender<Bytes>,
    still_running: impl Fn() -> bool + Send,
) -> Result<(), LogError> {
    let path = file.path();
    let io = |source| LogError::Io {
        path: path.clone(),
        source,
    };
    let mut f = tokio::fs::File::open(&path).await.map_err(io)?;
    let mut inode = f.metadata().await.map_err(io)?.ino();
    if let Some(n) = opts.tail_lines {
        let std_file = f.try_clone().await.map_err(io)?.into_std().await;
        let start = tokio::task::spawn_blocking(move || tail_start(std_file, n))
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)?;
        f.seek(SeekFrom::Start(start)).await.map_err(io)?;
    }

    let mut fmt = Formatter::new(opts);
    let mut buf = vec![0u8; CHUNK];
    let mut line: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    // After EOF: read once more, then stop (attempt over) or reopen (rotated).
    let mut finishing = false;
    let mut reopen = false;
    let mut last_check: Option<Instant> = None;
    loop {
        let read = f.read(&mut buf).await.map_err(io)?;
        if read > 0 {
            split_lines(&buf[..read], &mut line, |raw| fmt.push(raw, &mut out));
            if !out.is_empty()
                && tx
                    .send(Bytes::from(std::mem::take(&mut out)))
                    .await
                    .is_err()
            {
                return Ok(());
            }
            if fmt.exhausted() {
                return Ok(());
            }
            continue;
        }
        // End of file.
        if !opts.follow || finishing {
            break;
        }
        if reopen {
            match tokio::fs::File::open(&path).await {
                Ok(new) => {
                    inode = new.metadata().await.map_err(io)?.ino();
                    f = new;
                    line.clear();
                    reopen = false;
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        } else if file.superseded() {
            finishing = true;
            continue;
        } else if rotated(&path, inode).await {
            reopen = true;
            continue;
        } else if last_check.is_none_or(|t| t.elapsed() >= RUNNING_CHECK) {
            last_check = Some(Instant::now());
            if !still_running() {
                finishing = true;
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tx.closed() => return Ok(()),
        }
    }
    // A last line without its newline (the writer died mid-line) is still shown.
    if !line.is_empty() {
        fmt.push(&line, &mut out);
    }
    if !out.is_empty() {
        let _ = tx.send(Bytes::from(out)).await;
    }
    Ok(())
}

/// Whether `path` no longer names the file with `inode` (renamed away or gone).
async fn rotated(path: &Path, inode: u64) -> bool {
    match tokio::fs::metadata(path).await {
        Ok(m) => m.ino() != inode,
        Err(_) => true,
    }
}

/// Calls `each` for every complete raw line in `chunk`, carrying an unfinished
/// line over in `line` (cut off at `MAX_LINE`).
fn split_lines(chunk: &[u8], line: &mut Vec<u8>, mut each: impl FnMut(&[u8])) {
    let mut rest = chunk;
    while let Some(i) = rest.iter().position(|b| *b == b'\n') {
        if line.is_empty() {
            each(&rest[..i]);
        } else {
            line.extend_from_slice(&rest[..i]);
            each(line);
            line.clear();
        }
        rest = &rest[i + 1..];
    }
    line.extend_from_slice(rest);
    if line.len() > MAX_LINE {
        each(line);
        line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::locate;
    use std::io::Write;

    fn cri(text: &str) -> String {
        format!("2024-05-01T10:00:00.5Z stdout F {text}\n")
    }

    async fn collect(file: LogFile, opts: LogOptions) -> String {
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(async move { stream(file, &opts, tx, || false).await });
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        task.await.unwrap().unwrap();
        String::from_utf8(out).unwrap()
    }

    fn write_file(dir: &Path, name: &str, body: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), body).unwrap();
    }

    #[test]
    fn tail_start_counts_logical_lines() {
        let body = format!(
            "{}{}2024-05-01T10:00:00Z stdout P par\n{}{}",
            cri("a"),
            cri("b"),
            cri("tial"),
            cri("c")
        );
        let at = |n| tail_start(std::io::Cursor::new(body.as_bytes()), n).unwrap() as usize;
        assert_eq!(&body[at(1)..], cri("c"));
        assert!(body[at(2)..].starts_with("2024-05-01T10:00:00Z stdout P par"));
        assert_eq!(at(3), cri("a").len());
        assert_eq!(at(100), 0);
        assert_eq!(at(0), body.len());
        assert_eq!(tail_start(std::io::Cursor::new(b""), 5).unwrap(), 0);
    }

    #[test]
    fn tail_start_handles_lines_across_chunks() {
        let long = "x".repeat(CHUNK + 100);
        let body = format!("{}{}{}", cri(&long), cri("b"), cri(&long));
        let at = tail_start(std::io::Cursor::new(body.as_bytes()), 2).unwrap() as usize;
        assert_eq!(at, cri(&long).len());
    }

    #[tokio::test]
    async fn reads_tail_with_timestamps_and_limit() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("app");
        let lines: String = (0..1000).map(|i| cri(&format!("line {i}"))).collect();
        write_file(&dir, "0.log", &lines);
        let file = locate(&dir, "p", "app", false).unwrap();
        let all = collect(file.clone(), LogOptions::default()).await;
        assert_eq!(all.lines().count(), 1000);
        assert_eq!(all.lines().nth(999), Some("line 999"));
        let tail = collect(
            file.clone(),
            LogOptions {
                tail_lines: Some(2),
                timestamps: true,
                ..LogOptions::default()
            },
        )
        .await;
        assert_eq!(
            tail,
            "2024-05-01T10:00:00.5Z line 998\n2024-05-01T10:00:00.5Z line 999\n"
        );
        let limited = collect(
            file,
            LogOptions {
                limit_bytes: Some(10),
                ..LogOptions::default()
            },
        )
        .await;
        assert_eq!(limited, "line 0\nlin");
    }

    #[tokio::test]
    async fn reads_previous_attempt() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("app");
        write_file(&dir, "0.log", &cri("first run"));
        write_file(&dir, "1.log", &cri("second run"));
        let prev = locate(&dir, "p", "app", true).unwrap();
        assert_eq!(collect(prev, LogOptions::default()).await, "first run\n");
        let cur = locate(&dir, "p", "app", false).unwrap();
        assert_eq!(collect(cur, LogOptions::default()).await, "second run\n");
    }

    #[tokio::test]
    async fn joins_partial_lines_split_across_writes() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("app");
        let body = "2024-05-01T10:00:00Z stdout P abc\n2024-05-01T10:00:00Z stdout F def\n";
        write_file(&dir, "0.log", body);
        let file = locate(&dir, "p", "app", false).unwrap();
        assert_eq!(collect(file, LogOptions::default()).await, "abcdef\n");
    }

    /// Receives until `want` has been seen in the output, or panics after 10 s.
    async fn recv_until(rx: &mut mpsc::Receiver<Bytes>, seen: &mut String, want: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !seen.contains(want) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(b)) => seen.push_str(std::str::from_utf8(&b).unwrap()),
                Ok(None) => panic!("stream ended before {want:?}; got {seen:?}"),
                Err(_) => panic!("timed out waiting for {want:?}; got {seen:?}"),
            }
        }
    }

    #[tokio::test]
    async fn follow_sees_appends_rotation_and_ends_with_the_attempt() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("app");
        write_file(&dir, "0.log", &cri("one"));
        let file = locate(&dir, "p", "app", false).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let opts = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let task = tokio::spawn(async move { stream(file, &opts, tx, || true).await });
        let mut seen = String::new();
        recv_until(&mut rx, &mut seen, "one\n").await;

        let append = |name: &str, text: &str| {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(dir.join(name))
                .unwrap();
            f.write_all(cri(text).as_bytes()).unwrap();
        };
        append("0.log", "two");
        recv_until(&mut rx, &mut seen, "two\n").await;
        // Rotation: the runtime renames the file and starts a new one.
        append("0.log", "before rotation");
        std::fs::rename(dir.join("0.log"), dir.join("0.log.1714557600000000000")).unwrap();
        append("0.log", "after rotation");
        recv_until(&mut rx, &mut seen, "after rotation\n").await;
        assert_eq!(seen, "one\ntwo\nbefore rotation\nafter rotation\n");
        // A new attempt ends the stream of the old one.
        append("0.log", "last words");
        append("1.log", "next attempt");
        recv_until(&mut rx, &mut seen, "last words\n").await;
        let end = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert!(matches!(end, Ok(None)), "stream did not end: {end:?}");
        task.await.unwrap().unwrap();
        assert!(!seen.contains("next attempt"));
    }

    #[tokio::test]
    async fn follow_stops_when_the_receiver_goes_or_the_container_stops() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("app");
        write_file(&dir, "0.log", &cri("one"));
        let file = locate(&dir, "p", "app", false).unwrap();
        let opts = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let (tx, mut rx) = mpsc::channel(4);
        let o = opts.clone();
        let f = file.clone();
        let task = tokio::spawn(async move { stream(f, &o, tx, || true).await });
        let mut seen = String::new();
        recv_until(&mut rx, &mut seen, "one\n").await;
        drop(rx);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stream ended after the receiver went")
            .unwrap()
            .unwrap();
        // Not running: read to the end and stop.
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(async move { stream(file, &opts, tx, || false).await });
        let mut seen = String::new();
        recv_until(&mut rx, &mut seen, "one\n").await;
        let end = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert!(matches!(end, Ok(None)));
        task.await.unwrap().unwrap();
    }
}

#[cfg(test)]
mod memory {
    use super::*;
    use crate::logs::locate;
    use std::io::Write;

    fn status_kb(key: &str) -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    /// Streams a 64 MiB log and prints the process's peak RSS growth; run alone:
    /// `cargo test -p bosun-agent --lib logs::stream::memory -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measurement: run alone, it reads the process-wide peak RSS"]
    async fn streaming_a_large_log_keeps_memory_flat() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("app");
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("0.log")).unwrap());
        let line = format!("2024-05-01T10:00:00.5Z stdout F {}\n", "x".repeat(200));
        let mut written = 0;
        while written < 64 << 20 {
            f.write_all(line.as_bytes()).unwrap();
            written += line.len();
        }
        drop(f);
        let before = status_kb("VmHWM:");
        for opts in [
            LogOptions::default(),
            LogOptions {
                tail_lines: Some(100_000),
                timestamps: true,
                ..LogOptions::default()
            },
        ] {
            let file = locate(&dir, "p", "app", false).unwrap();
            let (tx, mut rx) = mpsc::channel(4);
            let task = tokio::spawn(async move { stream(file, &opts, tx, || false).await });
            let mut total = 0usize;
            while let Some(b) = rx.recv().await {
                total += b.len();
            }
            task.await.unwrap().unwrap();
            assert!(total > 0);
        }
        let after = status_kb("VmHWM:");
        println!("peak RSS before {before} kB, after streaming 64 MiB twice {after} kB");
        assert!(
            after - before < 8 * 1024,
            "peak RSS grew by {} kB",
            after - before
        );
    }
}
