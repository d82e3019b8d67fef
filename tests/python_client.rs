//! The official Kubernetes Python client (`pip install kubernetes`) against a real
//! bosun master: `tests/python/client_test.py` drives ConfigMaps, Pods and
//! Deployments through the typed `CoreV1Api`/`AppsV1Api` (create, list, watch,
//! patch, scale, replace, delete, and the 404/409/422 errors) and deserializes every
//! answer into the client's models, which enforce the upstream OpenAPI schema;
//! then, after a master restart, that a watch from a resourceVersion the master no
//! longer holds ends in a 410 the client raises.
//! Skips with a printed reason when the module is missing, except under CI.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the script may run before it is killed and the test fails.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(240);

/// True when `python3` can import the `kubernetes` package; skips (or fails under
/// CI) with the reason otherwise.
fn python_client_available() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import kubernetes; print(kubernetes.__version__)"])
        .output();
    let why = match probe {
        Ok(o) if o.status.success() => {
            eprintln!("python kubernetes client {}", stdout(&o).trim());
            return true;
        }
        Ok(o) => {
            let err = stderr(&o);
            let last = err.lines().last().unwrap_or("no output").trim().to_string();
            format!("`import kubernetes` failed: {last}")
        }
        Err(e) => format!("python3 does not run: {e}"),
    };
    let why = format!("{why} (install it with `pip install kubernetes`)");
    if in_ci() {
        panic!("the Python Kubernetes client is required under CI: {why}");
    }
    eprintln!("SKIP: {why}");
    false
}

#[test]
fn python_client_drives_configmaps_pods_and_deployments() {
    if !python_client_available() {
        return;
    }
    let mut m = Master::start();
    run_script(&m, &[]);
    // After a restart the master holds no events older than its restart: a watch
    // from an old resourceVersion must end in 410 Expired, which the client raises.
    m.kill();
    m.spawn();
    run_script(&m, &["--after-restart"]);
}

/// Runs `tests/python/client_test.py` against `m` (killing it after
/// `SCRIPT_DEADLINE`), prints its output and asserts it passed.
fn run_script(m: &Master, extra: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_test.py");
    let (out_path, err_path) = (m.dir.path().join("py.out"), m.dir.path().join("py.err"));
    let mut child = Command::new("python3")
        .arg("-u")
        .arg(&script)
        .arg(m.kubeconfig())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("run python3");
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python3") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let so = std::fs::read_to_string(&out_path).unwrap_or_default();
    let se = std::fs::read_to_string(&err_path).unwrap_or_default();
    print!("{so}");
    let outcome = match status {
        Some(s) => s.to_string(),
        None => format!("killed after {SCRIPT_DEADLINE:?}"),
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "{} {extra:?} failed ({outcome}):\n--- stdout\n{so}--- stderr\n{se}--- master log (tail)\n{}",
        script.display(),
        tail(&m.log_text(), 40),
    );
    assert!(so.contains("PASS all checks"), "no PASS line:\n{so}");
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
