//! Leader election on a coordination.k8s.io Lease, as kube-controller-manager
//! does: the holder renews `renewTime` every `RENEW`; another candidate takes the
//! lease only once it has not been renewed for `leaseDurationSeconds`. Writes use
//! optimistic concurrency, so two candidates never both win.

use crate::apiserver::{crud_resource, Kube};
use jiff::Timestamp;
use serde_json::{json, Value};
use std::time::Duration;

pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW: Duration = Duration::from_secs(2);

/// A MicroTime as the Lease API writes it.
fn micro_now() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn expired(lease: &Value, now: Timestamp) -> bool {
    let renew = lease
        .pointer("/spec/renewTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok());
    let duration = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(LEASE_DURATION.as_secs() as i64);
    match renew {
        Some(t) => t
            .checked_add(jiff::SignedDuration::from_secs(duration))
            .map_or(true, |until| until < now),
        None => true,
    }
}

/// Tries once to hold `kube-system/<name>` for `identity`. True when held.
pub async fn try_acquire(kube: &Kube, name: &str, identity: &str) -> bool {
    let leases = crud_resource("coordination.k8s.io", "leases");
    let now = micro_now();
    match kube.get(leases, Some("kube-system"), name).await {
        Ok(None) => {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-system"},
                "spec": {
                    "holderIdentity": identity,
                    "leaseDurationSeconds": LEASE_DURATION.as_secs(),
                    "acquireTime": now, "renewTime": now, "leaseTransitions": 0,
                },
            });
            kube.create(leases, Some("kube-system"), lease)
                .await
                .is_ok()
        }
        Ok(Some(mut lease)) => {
            let holder = lease
                .pointer("/spec/holderIdentity")
                .and_then(Value::as_str);
            let mine = holder == Some(identity);
            if !mine && !expired(&lease, Timestamp::now()) {
                return false;
            }
            if !mine {
                let transitions = lease
                    .pointer("/spec/leaseTransitions")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                lease["spec"]["holderIdentity"] = json!(identity);
                lease["spec"]["acquireTime"] = json!(now);
                lease["spec"]["leaseTransitions"] = json!(transitions + 1);
            }
            lease["spec"]["renewTime"] = json!(now);
            lease["spec"]["leaseDurationSeconds"] = json!(LEASE_DURATION.as_secs());
            kube.update(leases, lease).await.is_ok()
        }
        Err(_) => false,
    }
}

/// Waits until `identity` holds the lease, then keeps renewing it in the
/// background. The returned receiver turns false if leadership is lost.
pub async fn acquire(
    kube: Kube,
    name: &'static str,
    identity: String,
) -> tokio::sync::watch::Receiver<bool> {
    while !try_acquire(&kube, name, &identity).await {
        tokio::time::sleep(RENEW).await;
    }
    tracing::info!(lease = name, %identity, "became leader");
    let (tx, rx) = tokio::sync::watch::channel(true);
    tokio::spawn(async move {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW).await;
            if try_acquire(&kube, name, &identity).await {
                last_ok = tokio::time::Instant::now();
            } else if last_ok.elapsed() > LEASE_DURATION {
                tracing::error!(lease = name, "lost leadership");
                let _ = tx.send(false);
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_its_duration() {
        let now: Timestamp = "2026-11-26T16:00:20Z".parse().unwrap();
        let fresh = json!({"spec": {"renewTime": "2026-11-26T16:00:10.000000Z", "leaseDurationSeconds": 15}});
        let stale = json!({"spec": {"renewTime": "2026-11-26T16:00:01.000000Z", "leaseDurationSeconds": 15}});
        assert!(!expired(&fresh, now));
        assert!(expired(&stale, now));
        assert!(expired(&json!({"spec": {}}), now));
    }
}
