//! The Node object of a real agent, from host facts: labels, capacity and
//! allocatable, addresses, nodeInfo, daemon endpoint, and the conditions
//! evaluated from the pressure signals the way the kubelet's default eviction
//! thresholds do (memory available < 100Mi, data dir free < 10%, pids in use
//! > 90% of pid_max). All pure.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::facts::{HostFacts, Usage};

/// Pods a node accepts (the kubelet's default `--max-pods`).
pub const MAX_PODS: u32 = 110;
/// Below this much available memory a node reports MemoryPressure.
pub const MEMORY_AVAILABLE_MIN: u64 = 100 * 1024 * 1024;
/// Below this percentage of free space on the data dir's filesystem a node
/// reports DiskPressure.
pub const DISK_FREE_MIN_PERCENT: u64 = 10;
/// Above this percentage of pid_max in use a node reports PIDPressure.
pub const PIDS_USED_MAX_PERCENT: u64 = 90;
/// `containerRuntimeVersion` of every bosun node.
pub const RUNTIME_VERSION: &str = concat!("bosun://", env!("CARGO_PKG_VERSION"));

/// What the agent says about itself beyond host facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    pub name: String,
    /// The InternalIP addresses (`--node-ip`, or the first IPv4 of the netns).
    pub internal_ips: Vec<IpAddr>,
    /// The :10250 port (`--port`).
    pub port: u16,
    /// `kubeletVersion` and `kubeProxyVersion`.
    pub kubelet_version: String,
}

/// Which pressures a node is under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// The pressures `usage` shows.
pub fn pressure(usage: &Usage) -> Pressure {
    Pressure {
        memory: usage.memory_available_bytes < MEMORY_AVAILABLE_MIN,
        disk: usage.disk_total_bytes > 0
            && usage.disk_free_bytes.saturating_mul(100)
                < usage.disk_total_bytes.saturating_mul(DISK_FREE_MIN_PERCENT),
        pid: usage.pid_max > 0
            && usage.pids_used.saturating_mul(100)
                > usage.pid_max.saturating_mul(PIDS_USED_MAX_PERCENT),
    }
}

/// The default labels the kubelet puts on its Node.
pub fn labels(name: &str, arch: &str) -> Value {
    json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
    })
}

/// The four conditions at `now`. `not_ready` (a reason the node cannot run
/// pods) makes Ready False. A condition keeps its `lastTransitionTime` from
/// `previous` (the Node's current conditions) when its status is unchanged.
pub fn conditions(p: Pressure, not_ready: Option<&str>, previous: &Value, now: &str) -> Value {
    let since = |type_: &str, status: &str| -> String {
        previous
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == type_ && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(now)
            .to_string()
    };
    let c = |type_: &str, on: bool, yes: (&str, &str), no: (&str, &str)| {
        let status = if on { "True" } else { "False" };
        let (reason, message) = if on { yes } else { no };
        json!({
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": since(type_, status),
        })
    };
    let ready_message = match not_ready {
        Some(why) => why.to_string(),
        None => "kubelet is posting ready status".to_string(),
    };
    json!([
        c(
            "MemoryPressure",
            p.memory,
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available"
            ),
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available"
            ),
        ),
        c(
            "DiskPressure",
            p.disk,
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ),
        c(
            "PIDPressure",
            p.pid,
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available"
            ),
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available"
            ),
        ),
        c(
            "Ready",
            not_ready.is_none(),
            ("KubeletReady", &ready_message),
            ("KubeletNotReady", &ready_message),
        ),
    ])
}

/// The Node's status: capacity (= allocatable for now), addresses, nodeInfo,
/// daemon endpoint and `conditions` (from [`conditions`]).
pub fn node_status(facts: &HostFacts, id: &NodeIdentity, conditions: Value) -> Value {
    let resources = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory_bytes / 1024),
        "pods": MAX_PODS.to_string(),
        "ephemeral-storage": format!("{}Ki", facts.ephemeral_storage_bytes / 1024),
    });
    let mut addresses: Vec<Value> = id
        .internal_ips
        .iter()
        .map(|ip| json!({"type": "InternalIP", "address": ip.to_string()}))
        .collect();
    addresses.push(json!({"type": "Hostname", "address": id.name}));
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions,
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": id.port}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.system_uuid,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version,
            "osImage": facts.os_image,
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": id.kubelet_version,
            "kubeProxyVersion": id.kubelet_version,
            "operatingSystem": "linux",
            "architecture": facts.architecture,
        },
    })
}

/// The Node the agent registers, conditions evaluated from `usage` at `now`.
pub fn node_object(facts: &HostFacts, id: &NodeIdentity, usage: &Usage, now: &str) -> Value {
    let conditions = conditions(pressure(usage), None, &Value::Null, now);
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": id.name,
            "labels": labels(&id.name, &facts.architecture),
            "annotations": {
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {},
        "status": node_status(facts, id, conditions),
    })
}

/// A status without its heartbeat times: two statuses with the same form differ
/// only in when they were sent.
pub fn without_heartbeats(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(conds) = s.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastHeartbeatTime");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_bytes: 4 * 1024 * 1024 * 1024,
            ephemeral_storage_bytes: 100 * 1024 * 1024 * 1024,
            kernel_version: "6.1.0-28-amd64".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            architecture: "amd64".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            system_uuid: String::new(),
        }
    }

    fn id() -> NodeIdentity {
        NodeIdentity {
            name: "n1".into(),
            internal_ips: vec!["10.0.0.5".parse().unwrap()],
            port: 11250,
            kubelet_version: "v1.32.0+bosun.0.1.0".into(),
        }
    }

    fn healthy() -> Usage {
        Usage {
            memory_available_bytes: 1 << 30,
            disk_free_bytes: 50,
            disk_total_bytes: 100,
            pids_used: 100,
            pid_max: 32768,
        }
    }

    fn cond<'a>(v: &'a Value, t: &str) -> &'a Value {
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()
    }

    #[test]
    fn a_node_object_from_facts() {
        let v = node_object(&facts(), &id(), &healthy(), "2026-11-26T16:00:00Z");
        assert_eq!(v["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(v["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        let s = &v["status"];
        assert_eq!(s["capacity"]["cpu"], "2");
        assert_eq!(s["capacity"]["memory"], "4194304Ki");
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(s["capacity"]["ephemeral-storage"], "104857600Ki");
        assert_eq!(s["allocatable"], s["capacity"]);
        assert_eq!(
            s["addresses"],
            json!([{"type": "InternalIP", "address": "10.0.0.5"},
                   {"type": "Hostname", "address": "n1"}])
        );
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 11250);
        assert_eq!(s["nodeInfo"]["kubeletVersion"], "v1.32.0+bosun.0.1.0");
        assert_eq!(s["nodeInfo"]["osImage"], "Debian GNU/Linux 12 (bookworm)");
        assert!(s["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("bosun://"));
        let ready = cond(&s["conditions"], "Ready");
        assert_eq!(
            (ready["status"].as_str(), ready["reason"].as_str()),
            (Some("True"), Some("KubeletReady"))
        );
        for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert_eq!(cond(&s["conditions"], t)["status"], "False", "{t}");
        }
    }

    #[test]
    fn pressure_thresholds() {
        assert_eq!(pressure(&healthy()), Pressure::default());
        let low_mem = Usage {
            memory_available_bytes: 99 * 1024 * 1024,
            ..healthy()
        };
        assert!(pressure(&low_mem).memory);
        let at_mem = Usage {
            memory_available_bytes: MEMORY_AVAILABLE_MIN,
            ..healthy()
        };
        assert!(!pressure(&at_mem).memory);
        let full = Usage {
            disk_free_bytes: 9,
            ..healthy()
        };
        assert!(pressure(&full).disk);
        assert!(
            !pressure(&Usage {
                disk_free_bytes: 10,
                ..healthy()
            })
            .disk
        );
        let pids = Usage {
            pids_used: 29_500,
            ..healthy()
        };
        assert!(pressure(&pids).pid);
        assert!(
            !pressure(&Usage::default()).disk,
            "unknown totals are no pressure"
        );
    }

    #[test]
    fn transitions_are_kept_until_the_status_changes() {
        let first = conditions(Pressure::default(), None, &Value::Null, "t1");
        let same = conditions(Pressure::default(), None, &first, "t2");
        assert_eq!(cond(&same, "Ready")["lastTransitionTime"], "t1");
        assert_eq!(cond(&same, "Ready")["lastHeartbeatTime"], "t2");
        assert_eq!(
            without_heartbeats(&json!({"conditions": first.clone()})),
            without_heartbeats(&json!({"conditions": same.clone()}))
        );
        let p = Pressure {
            disk: true,
            ..Pressure::default()
        };
        let changed = conditions(p, Some("runtime is down"), &same, "t3");
        let disk = cond(&changed, "DiskPressure");
        assert_eq!(
            (disk["status"].as_str(), disk["lastTransitionTime"].as_str()),
            (Some("True"), Some("t3"))
        );
        assert_eq!(disk["reason"], "KubeletHasDiskPressure");
        let ready = cond(&changed, "Ready");
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["message"], "runtime is down");
        assert_eq!(cond(&changed, "MemoryPressure")["lastTransitionTime"], "t1");
        assert_ne!(
            without_heartbeats(&json!({"conditions": changed})),
            without_heartbeats(&json!({"conditions": same}))
        );
    }
}
