//! `/metrics` (the agent's own: running pods and containers, process CPU, RSS and
//! start time) and `/metrics/resource` (node, pod and container CPU and memory,
//! the series metrics-server reads) in the Prometheus text format. Pure.

use std::fmt::Write;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Pod;

use super::host::{NodeSample, ProcessSample};
use super::{PodRef, PodStats};

/// The Prometheus text format content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `/metrics`: the agent's own metrics.
pub fn agent_metrics(pods: &[Pod], process: &ProcessSample) -> String {
    let running_pods = pods
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|ph| ph == "Running")
        })
        .count();
    let mut states: [(&str, usize); 4] = [
        ("created", 0),
        ("exited", 0),
        ("running", 0),
        ("unknown", 0),
    ];
    for cs in pods
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.container_statuses.iter().flatten())
    {
        let i = match cs.state.as_ref() {
            Some(s) if s.running.is_some() => 2,
            Some(s) if s.terminated.is_some() => 1,
            Some(s) if s.waiting.is_some() => 0,
            _ => 3,
        };
        states[i].1 += 1;
    }
    let mut out = String::new();
    header(
        &mut out,
        "kubelet_running_pods",
        "gauge",
        "[ALPHA] Number of pods that have a running pod sandbox",
    );
    let _ = writeln!(out, "kubelet_running_pods {running_pods}");
    header(
        &mut out,
        "kubelet_running_containers",
        "gauge",
        "[ALPHA] Number of containers currently running",
    );
    for (state, n) in states {
        let _ = writeln!(
            out,
            "kubelet_running_containers{{container_state=\"{state}\"}} {n}"
        );
    }
    header(
        &mut out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    let _ = writeln!(out, "process_cpu_seconds_total {}", process.cpu_seconds);
    header(
        &mut out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    let _ = writeln!(
        out,
        "process_resident_memory_bytes {}",
        process.resident_bytes
    );
    header(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    let _ = writeln!(
        out,
        "process_start_time_seconds {}",
        process.start_time_seconds
    );
    out
}

/// `/metrics/resource`, as the kubelet's resource metrics endpoint writes it
/// (values with millisecond timestamps).
pub fn resource_metrics(node: &NodeSample, pods: &[Pod], stats: &[(PodRef, PodStats)]) -> String {
    let mut out = String::new();
    let node_ts = node.timestamp.map(millis).unwrap_or(0);
    let labels = |r: &PodRef, container: Option<&str>| {
        let pod = format!(
            "namespace=\"{}\",pod=\"{}\"",
            escape(&r.namespace),
            escape(&r.name)
        );
        match container {
            Some(c) => format!("container=\"{}\",{pod}", escape(c)),
            None => pod,
        }
    };
    let containers = || {
        stats
            .iter()
            .flat_map(|(r, s)| s.containers.iter().map(move |c| (r, c)))
    };

    header(
        &mut out,
        "container_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    );
    for (r, c) in containers() {
        let _ = writeln!(
            out,
            "container_cpu_usage_seconds_total{{{}}} {} {}",
            labels(r, Some(&c.name)),
            seconds(c.cpu_usage_ns),
            millis(c.timestamp)
        );
    }
    header(
        &mut out,
        "container_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    );
    for (r, c) in containers() {
        let _ = writeln!(
            out,
            "container_memory_working_set_bytes{{{}}} {} {}",
            labels(r, Some(&c.name)),
            c.memory_working_set_bytes,
            millis(c.timestamp)
        );
    }
    header(
        &mut out,
        "container_start_time_seconds",
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    );
    for (r, c) in containers() {
        let started = pods
            .iter()
            .find(|p| p.metadata.uid.as_deref() == Some(r.uid.as_str()))
            .and_then(|p| p.status.as_ref())
            .and_then(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .find(|cs| cs.name == c.name)
            })
            .and_then(|cs| cs.state.as_ref()?.running.as_ref()?.started_at.as_ref())
            .map(|t| t.0.as_second());
        if let Some(started) = started {
            let _ = writeln!(
                out,
                "container_start_time_seconds{{{}}} {} {}",
                labels(r, Some(&c.name)),
                started,
                millis(c.timestamp)
            );
        }
    }
    header(
        &mut out,
        "node_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    );
    let _ = writeln!(
        out,
        "node_cpu_usage_seconds_total {} {node_ts}",
        seconds(node.cpu_usage_ns)
    );
    header(
        &mut out,
        "node_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the node in bytes",
    );
    let _ = writeln!(
        out,
        "node_memory_working_set_bytes {} {node_ts}",
        node.memory_working_set
    );
    header(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    );
    for (r, s) in stats {
        let cpu: u64 = s.containers.iter().map(|c| c.cpu_usage_ns).sum();
        let ts = s.containers.iter().map(|c| millis(c.timestamp)).max();
        let _ = writeln!(
            out,
            "pod_cpu_usage_seconds_total{{{}}} {} {}",
            labels(r, None),
            seconds(cpu),
            ts.unwrap_or(node_ts)
        );
    }
    header(
        &mut out,
        "pod_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the pod in bytes",
    );
    for (r, s) in stats {
        let ws: u64 = s
            .containers
            .iter()
            .map(|c| c.memory_working_set_bytes)
            .sum();
        let ts = s.containers.iter().map(|c| millis(c.timestamp)).max();
        let _ = writeln!(
            out,
            "pod_memory_working_set_bytes{{{}}} {} {}",
            labels(r, None),
            ws,
            ts.unwrap_or(node_ts)
        );
    }
    for name in ["resource_scrape_error", "scrape_error"] {
        header(
            &mut out,
            name,
            "gauge",
            "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        );
        let _ = writeln!(out, "{name} 0");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ContainerStats;
    use std::time::Duration;

    #[test]
    fn writes_resource_metrics_with_labels_and_timestamps() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let node = NodeSample {
            timestamp: Some(t),
            cpu_usage_ns: 1_500_000_000,
            memory_working_set: 4096,
            ..NodeSample::default()
        };
        let stats = vec![(
            PodRef {
                namespace: "ns".into(),
                name: "we\"b".into(),
                uid: "u1".into(),
            },
            PodStats {
                containers: vec![ContainerStats {
                    name: "app".into(),
                    timestamp: t,
                    cpu_usage_ns: 250_000_000,
                    memory_usage_bytes: 2000,
                    memory_working_set_bytes: 1000,
                }],
            },
        )];
        let text = resource_metrics(&node, &[], &stats);
        assert!(text.contains("# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total 1.5 1700000000000\n"), "{text}");
        assert!(text.contains(
            "container_cpu_usage_seconds_total{container=\"app\",namespace=\"ns\",pod=\"we\\\"b\"} 0.25 1700000000000\n"
        ));
        assert!(text.contains(
            "container_memory_working_set_bytes{container=\"app\",namespace=\"ns\",pod=\"we\\\"b\"} 1000 1700000000000\n"
        ));
        assert!(
            text.contains("pod_memory_working_set_bytes{namespace=\"ns\",pod=\"we\\\"b\"} 1000 ")
        );
        assert!(text.contains("\nscrape_error 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let parts: Vec<&str> = line.rsplitn(3, ' ').collect();
            assert!(parts.len() >= 2, "{line}");
        }
    }
}
