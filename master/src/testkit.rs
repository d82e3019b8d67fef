//! Shared by in-process tests of the master: a bootstrapped API server on a
//! SQLite store in a directory (no HTTP), and the `Kube` client on it.

use crate::apiserver::{Cidr, Config, Kube, Server};
use crate::controllers::Informers;
use crate::store::{SqliteOptions, SqliteStore, Store};
use std::path::Path;
use std::sync::Arc;

/// A bootstrapped API server on the store in `dir` (reopened by a "restart").
pub(crate) async fn server_on(dir: &Path) -> (Arc<SqliteStore>, Arc<Server>) {
    let store = SqliteStore::open(&dir.join("state.db"), SqliteOptions::default()).unwrap();
    let server = Server::new(
        store.clone() as Arc<dyn Store>,
        Config {
            advertise: "127.0.0.1:6443".into(),
            service_cidr: Cidr::parse("10.96.0.0/12").unwrap(),
            version: "v0.0.0-test".into(),
        },
        None,
    );
    server.bootstrap().await.unwrap();
    (store, server)
}

/// A bootstrapped API server on a fresh store in a temporary dir, and its client.
pub(crate) async fn test_kube() -> (Kube, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (_, server) = server_on(dir.path()).await;
    (Kube::new(server, "test"), dir)
}

/// Shared informers, synced.
pub(crate) async fn informers(kube: &Kube) -> Arc<Informers> {
    let inf = Informers::start(kube);
    inf.wait_synced().await;
    inf
}
