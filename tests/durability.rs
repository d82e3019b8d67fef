//! An acknowledged write survives `kill -9` of the master. 32 writers create and
//! update ConfigMaps through `api::client` while the master is SIGKILLed under
//! them; every write that got a 2xx is recorded with the resourceVersion it
//! returned. After the restart each acknowledged object must be there with at
//! least that version's content, and new writes must get resourceVersions above
//! every one handed out before the crash. Three kill cycles on one data dir.

mod common;
use common::*;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::client::{Client, ClientError};
use serde_json::{json, Value};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const WRITERS: usize = 32;
const CYCLES: usize = 3;
/// Acknowledged writes in a cycle before the kill.
const ACKS_BEFORE_KILL: usize = 150;

/// The last acknowledged write of one ConfigMap: its `data.v` and resourceVersion.
#[derive(Clone, Copy, Debug)]
struct Ack {
    v: u64,
    rv: u64,
}

type Acks = Arc<Mutex<HashMap<String, Ack>>>;

fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion in {obj}"))
}

fn v_of(obj: &Value) -> u64 {
    obj["data"]["v"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no data.v in {obj}"))
}

fn config_map(name: &str, v: u64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"test": "durability"}},
        "data": {"v": v.to_string(), "pad": "x".repeat(200)},
    })
}

/// Creates `c<cycle>-w<writer>-<i>` objects, and every third step updates the
/// previous one (compare-and-swap on its acknowledged resourceVersion), until the
/// first error. Returns that error.
async fn writer(
    client: Client,
    cycle: usize,
    w: usize,
    acks: Acks,
    started: Arc<AtomicUsize>,
    count: Arc<AtomicUsize>,
) -> ClientError {
    let mut last: Option<(String, Value)> = None;
    for i in 0.. {
        started.fetch_add(1, Ordering::SeqCst);
        let result = match last.take() {
            Some((name, mut obj)) if i % 3 == 2 => {
                let v = v_of(&obj) + 1;
                obj["data"]["v"] = json!(v.to_string());
                client
                    .update(&format!("{CMS}/{name}"), &obj)
                    .await
                    .map(|o| (name, o))
            }
            _ => {
                let name = format!("c{cycle}-w{w}-{i}");
                client
                    .create(CMS, &config_map(&name, 0))
                    .await
                    .map(|o| (name, o))
            }
        };
        match result {
            Ok((name, obj)) => {
                let ack = Ack {
                    v: v_of(&obj),
                    rv: rv_of(&obj),
                };
                acks.lock().unwrap().insert(name.clone(), ack);
                count.fetch_add(1, Ordering::SeqCst);
                last = Some((name, obj));
            }
            Err(e) => return e,
        }
    }
    unreachable!("the loop only ends by returning")
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut m = Master::start();
    let acks: Acks = Arc::default();
    // The highest resourceVersion any client has seen so far.
    let mut highest = 0;

    for cycle in 0..CYCLES {
        let started = Arc::new(AtomicUsize::new(0));
        let count = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let _rt = rt.enter();
                let client = Client::from_kubeconfig(&m.kubeconfig()).unwrap();
                let (started, count) = (Arc::clone(&started), Arc::clone(&count));
                rt.spawn(writer(client, cycle, w, Arc::clone(&acks), started, count))
            })
            .collect();
        eventually(20, "writes acknowledged before the kill", || {
            (count.load(Ordering::SeqCst) >= ACKS_BEFORE_KILL).then_some(())
        });
        let in_flight = started.load(Ordering::SeqCst) - count.load(Ordering::SeqCst);
        m.kill();
        let acked_at_kill = count.load(Ordering::SeqCst);
        assert!(
            in_flight > 0,
            "cycle {cycle}: no write was in flight at the kill"
        );
        let errors = rt.block_on(async {
            let mut errors = Vec::new();
            for h in handles {
                let e = tokio::time::timeout(Duration::from_secs(20), h)
                    .await
                    .expect("writer stops within 20s of the kill")
                    .unwrap();
                errors.push(e);
            }
            errors
        });
        // Every writer stopped because the master went away, not because it refused a write.
        for e in &errors {
            assert!(
                e.code().is_none(),
                "cycle {cycle}: the server refused a write: {e}"
            );
        }
        let acked = acks.lock().unwrap().clone();
        highest = highest.max(acked.values().map(|a| a.rv).max().unwrap_or(0));
        eprintln!(
            "cycle {cycle}: {acked_at_kill} writes acknowledged and about {in_flight} in flight at the kill, \
             {} acknowledged in all, {} objects",
            count.load(Ordering::SeqCst),
            acked.len()
        );

        m.spawn();
        rt.block_on(async {
            let client = Client::from_kubeconfig(&m.kubeconfig()).unwrap();
            let list = client
                .list(&format!("{CMS}?labelSelector=test%3Ddurability"))
                .await
                .unwrap();
            assert!(
                rv_of(&list) >= highest,
                "list resourceVersion {} < {highest}",
                rv_of(&list)
            );
            let stored: HashMap<String, Value> = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    (
                        o["metadata"]["name"].as_str().unwrap().to_string(),
                        o.clone(),
                    )
                })
                .collect();
            for (name, ack) in &acked {
                let obj = stored.get(name).unwrap_or_else(|| {
                    panic!("cycle {cycle}: acknowledged {name} ({ack:?}) is gone")
                });
                assert!(
                    rv_of(obj) >= ack.rv,
                    "cycle {cycle}: {name} went back: {obj} < {ack:?}"
                );
                assert!(
                    v_of(obj) >= ack.v,
                    "cycle {cycle}: {name} lost an update: {obj} < {ack:?}"
                );
            }
            // Writes that landed without an answer count as seen too.
            highest = stored.values().map(rv_of).fold(highest, u64::max);

            let probe = client
                .create(CMS, &config_map(&format!("probe-{cycle}"), 0))
                .await
                .unwrap();
            assert!(
                rv_of(&probe) > highest,
                "after restart {} <= {highest}",
                rv_of(&probe)
            );
            highest = rv_of(&probe);
        });
    }
}
