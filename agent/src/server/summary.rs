//! `/stats/summary`: the kubelet's Summary (stats/v1alpha1) built from a node
//! sample, the pods and their stats. CPU rates (`usageNanoCores`) need two
//! samples: [`Rates`] keeps the previous one per node/container.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Map, Value};

use super::host::NodeSample;
use super::{FsStats, PodRef, PodStats};

/// A stored sample is replaced once the new one is at least this much newer, so
/// that close scrapes still get a rate over a meaningful window.
const MIN_WINDOW: Duration = Duration::from_secs(1);

/// Previous CPU samples, by key (`node` or `<pod uid>/<container>`).
#[derive(Debug, Default)]
pub(crate) struct Rates {
    prev: Mutex<HashMap<String, (SystemTime, u64)>>,
}

/// CPU use in nanocores between two (time, cumulative ns) samples.
pub(crate) fn nano_cores(prev: (SystemTime, u64), cur: (SystemTime, u64)) -> Option<u64> {
    let dt = cur.0.duration_since(prev.0).ok()?.as_nanos();
    let du = u128::from(cur.1.checked_sub(prev.1)?);
    if dt == 0 {
        return None;
    }
    u64::try_from(du * 1_000_000_000 / dt).ok()
}

impl Rates {
    /// The rate against the stored sample of `key`, storing `cur` when there is
    /// none or the window is long enough.
    pub(crate) fn rate(&self, key: &str, cur: (SystemTime, u64)) -> Option<u64> {
        let mut prev = self.prev.lock().unwrap_or_else(|e| e.into_inner());
        let rate = prev.get(key).and_then(|p| nano_cores(*p, cur));
        let replace = match prev.get(key) {
            None => true,
            Some((t, u)) => cur.1 < *u || cur.0.duration_since(*t).is_ok_and(|d| d >= MIN_WINDOW),
        };
        if replace {
            prev.insert(key.to_string(), cur);
        }
        rate
    }

    /// Forgets keys not in `keep` (containers that are gone).
    pub(crate) fn retain(&self, keep: &HashSet<String>) {
        let mut prev = self.prev.lock().unwrap_or_else(|e| e.into_inner());
        prev.retain(|k, _| keep.contains(k));
    }
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t).map_or_else(|_| String::new(), |t| t.to_string())
}

fn fs_json(time: &str, fs: FsStats) -> Value {
    json!({
        "time": time,
        "availableBytes": fs.available_bytes,
        "capacityBytes": fs.capacity_bytes,
        "usedBytes": fs.used_bytes,
        "inodesFree": fs.inodes_free,
        "inodes": fs.inodes,
        "inodesUsed": fs.inodes.saturating_sub(fs.inodes_free),
    })
}

fn cpu_json(time: &str, usage_ns: u64, nano_cores: Option<u64>) -> Value {
    let mut cpu = Map::new();
    cpu.insert("time".into(), time.into());
    if let Some(n) = nano_cores {
        cpu.insert("usageNanoCores".into(), n.into());
    }
    cpu.insert("usageCoreNanoSeconds".into(), usage_ns.into());
    Value::Object(cpu)
}

/// Start times of a pod and of its running containers, from its status.
fn start_times(pod: Option<&Pod>) -> (Option<String>, HashMap<String, String>) {
    let Some(status) = pod.and_then(|p| p.status.as_ref()) else {
        return (None, HashMap::new());
    };
    let pod_start = status.start_time.as_ref().map(|t| t.0.to_string());
    let containers = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter_map(|cs| {
            let started = cs.state.as_ref()?.running.as_ref()?.started_at.as_ref()?;
            Some((cs.name.clone(), started.0.to_string()))
        })
        .collect();
    (pod_start, containers)
}

/// Inputs of a Summary.
pub(crate) struct SummaryInput<'a> {
    pub node_name: &'a str,
    pub node: &'a NodeSample,
    pub node_fs: Option<FsStats>,
    pub image_fs: Option<FsStats>,
    pub pods: &'a [Pod],
    pub stats: &'a [(PodRef, PodStats)],
}

/// Builds the Summary JSON and updates `rates`.
pub(crate) fn summary(input: &SummaryInput<'_>, rates: &Rates) -> Value {
    let node = input.node;
    let now = node.timestamp.unwrap_or_else(SystemTime::now);
    let time = rfc3339(now);
    let mut keep = HashSet::from(["node".to_string()]);
    let node_rate = rates.rate("node", (now, node.cpu_usage_ns));

    let mut node_json = json!({
        "nodeName": input.node_name,
        "startTime": node.boot_time.map(rfc3339),
        "cpu": cpu_json(&time, node.cpu_usage_ns, node_rate),
        "memory": {
            "time": time,
            "availableBytes": node.memory_available,
            "usageBytes": node.memory_usage,
            "workingSetBytes": node.memory_working_set,
            "rssBytes": node.memory_rss,
            "pageFaults": node.page_faults,
            "majorPageFaults": node.major_page_faults,
        },
        "network": {
            "time": time,
            "interfaces": node.interfaces.iter().map(|i| json!({
                "name": i.name,
                "rxBytes": i.rx_bytes,
                "rxErrors": i.rx_errors,
                "txBytes": i.tx_bytes,
                "txErrors": i.tx_errors,
            })).collect::<Vec<_>>(),
        },
    });
    if let Some(first) = node.interfaces.first() {
        let net = &mut node_json["network"];
        net["name"] = first.name.clone().into();
        net["rxBytes"] = first.rx_bytes.into();
        net["rxErrors"] = first.rx_errors.into();
        net["txBytes"] = first.tx_bytes.into();
        net["txErrors"] = first.tx_errors.into();
    }
    if let Some(fs) = input.node_fs {
        node_json["fs"] = fs_json(&time, fs);
    }
    if let Some(fs) = input.image_fs.or(input.node_fs) {
        node_json["runtime"] = json!({ "imageFs": fs_json(&time, fs) });
    }

    let by_uid: HashMap<&str, &Pod> = input
        .pods
        .iter()
        .filter_map(|p| Some((p.metadata.uid.as_deref()?, p)))
        .collect();
    let pods: Vec<Value> = input
        .stats
        .iter()
        .map(|(pod_ref, stats)| {
            let (pod_start, container_starts) =
                start_times(by_uid.get(pod_ref.uid.as_str()).copied());
            let mut pod_cpu = 0u64;
            let mut pod_rate: Option<u64> = None;
            let (mut pod_mem, mut pod_ws) = (0u64, 0u64);
            let mut latest = None::<SystemTime>;
            let containers: Vec<Value> = stats
                .containers
                .iter()
                .map(|c| {
                    let key = format!("{}/{}", pod_ref.uid, c.name);
                    let rate = rates.rate(&key, (c.timestamp, c.cpu_usage_ns));
                    keep.insert(key);
                    pod_cpu = pod_cpu.saturating_add(c.cpu_usage_ns);
                    if let Some(r) = rate {
                        pod_rate = Some(pod_rate.unwrap_or(0).saturating_add(r));
                    }
                    pod_mem = pod_mem.saturating_add(c.memory_usage_bytes);
                    pod_ws = pod_ws.saturating_add(c.memory_working_set_bytes);
                    latest = latest.max(Some(c.timestamp));
                    let t = rfc3339(c.timestamp);
                    json!({
                        "name": c.name,
                        "startTime": container_starts.get(&c.name),
                        "cpu": cpu_json(&t, c.cpu_usage_ns, rate),
                        "memory": {
                            "time": t,
                            "usageBytes": c.memory_usage_bytes,
                            "workingSetBytes": c.memory_working_set_bytes,
                        },
                    })
                })
                .collect();
            let t = rfc3339(latest.unwrap_or(now));
            json!({
                "podRef": {
                    "name": pod_ref.name,
                    "namespace": pod_ref.namespace,
                    "uid": pod_ref.uid,
                },
                "startTime": pod_start,
                "containers": containers,
                "cpu": cpu_json(&t, pod_cpu, pod_rate),
                "memory": { "time": t, "usageBytes": pod_mem, "workingSetBytes": pod_ws },
            })
        })
        .collect();
    rates.retain(&keep);
    json!({ "node": node_json, "pods": pods })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn computes_nano_cores_over_a_window() {
        assert_eq!(
            nano_cores((at(0), 0), (at(2), 1_000_000_000)),
            Some(500_000_000)
        );
        assert_eq!(nano_cores((at(2), 0), (at(2), 5)), None);
        assert_eq!(nano_cores((at(0), 10), (at(1), 5)), None); // counter went back
        let rates = Rates::default();
        assert_eq!(rates.rate("c", (at(0), 0)), None);
        // Half a second later: a rate, but the stored sample stays.
        let half = at(0) + Duration::from_millis(500);
        assert_eq!(rates.rate("c", (half, 250_000_000)), Some(500_000_000));
        assert_eq!(rates.rate("c", (at(2), 2_000_000_000)), Some(1_000_000_000));
        assert_eq!(rates.rate("c", (at(3), 2_500_000_000)), Some(500_000_000));
        rates.retain(&HashSet::new());
        assert_eq!(rates.rate("c", (at(4), 3_000_000_000)), None);
    }
}
