//! Writes to /proc/sys/net for the calling thread's network namespace (a file
//! under /proc/sys/net belongs to the namespace of the thread that opens it).

use std::path::{Path, PathBuf};

use super::NetError;

/// Where the kernel's settings live.
pub const PROC_SYS: &str = "/proc/sys";

/// Sets `key` (a dotted name such as `net.ipv4.ip_forward`) to `value` under
/// `root` (normally [`PROC_SYS`]) unless it already has that value.
pub fn set(root: &Path, key: &str, value: &str) -> Result<(), NetError> {
    let path: PathBuf = root.join(key.replace('.', "/"));
    let err = |source| NetError::Sysctl {
        key: key.to_string(),
        source,
    };
    if std::fs::read_to_string(&path).map_err(err)?.trim() == value {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_when_different() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("net/ipv4");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ip_forward"), "0\n").unwrap();
        set(root.path(), "net.ipv4.ip_forward", "1").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("ip_forward")).unwrap(),
            "1"
        );
        assert!(matches!(
            set(root.path(), "net.ipv4.nope", "1"),
            Err(NetError::Sysctl { .. })
        ));
    }
}
