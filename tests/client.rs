//! `api::client` against a real master: every verb, the Kubernetes `Status` of an
//! error, and a watch that sees the writes made through the same client.

mod common;
use common::*;

use api::client::{Client, ClientError, Method, MERGE_PATCH};
use serde_json::{json, Value};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn api_error(e: ClientError) -> api::client::ApiError {
    match e {
        ClientError::Api(e) => e,
        other => panic!("expected an answer from the server, got {other:?}"),
    }
}

#[test]
fn client_verbs_errors_and_watch() {
    let m = Master::start();
    runtime().block_on(async {
        let c = Client::from_kubeconfig(&m.kubeconfig()).unwrap();
        assert_eq!(c.server(), m.url());

        let (status, body) = c.request(Method::GET, "/version", None).await.unwrap();
        assert_eq!(status, 200);
        let version: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            version["gitVersion"].as_str().unwrap().starts_with('v'),
            "{version}"
        );

        let err = api_error(c.get(&format!("{CMS}/nope")).await.unwrap_err());
        assert_eq!(err.code, 404);
        assert_eq!(err.reason(), Some("NotFound"));
        assert_eq!(err.message(), "configmaps \"nope\" not found");

        let mut watch = c.watch(CMS).await.unwrap();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "one"}, "data": {"k": "a"}});
        let created = c.create(CMS, &cm).await.unwrap();
        assert_eq!(created["data"]["k"], "a");
        let err = api_error(c.create(CMS, &cm).await.unwrap_err());
        assert_eq!((err.code, err.reason()), (409, Some("AlreadyExists")));

        let mut changed = created.clone();
        changed["data"]["k"] = json!("b");
        let updated = c.update(&format!("{CMS}/one"), &changed).await.unwrap();
        assert_eq!(updated["data"]["k"], "b");
        // The old resourceVersion is now stale: 409 Conflict.
        let err = api_error(c.update(&format!("{CMS}/one"), &changed).await.unwrap_err());
        assert_eq!((err.code, err.reason()), (409, Some("Conflict")));

        let patched = c
            .patch(
                &format!("{CMS}/one"),
                MERGE_PATCH,
                &json!({"data": {"k": "c"}}),
            )
            .await
            .unwrap();
        assert_eq!(patched["data"]["k"], "c");

        let list = c.list(CMS).await.unwrap();
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["one"]);

        c.delete(&format!("{CMS}/one")).await.unwrap();
        let err = api_error(c.get(&format!("{CMS}/one")).await.unwrap_err());
        assert_eq!(err.code, 404);

        let mut seen = Vec::new();
        while seen.len() < 4 {
            let e = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
                .await
                .expect("watch event within 10s")
                .expect("watch still open")
                .unwrap();
            seen.push((
                e.type_,
                e.object["data"]["k"].as_str().unwrap_or("").to_string(),
            ));
        }
        let want = [
            ("ADDED", "a"),
            ("MODIFIED", "b"),
            ("MODIFIED", "c"),
            ("DELETED", "c"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(t, k)| (t.to_string(), k.to_string()))
            .collect();
        assert_eq!(seen, want);
    });
}
