//! Server-side printing: turns stored objects into the `meta.k8s.io` `Table` that
//! kubectl asks for with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! The columns, their types, formats and priorities, and the way each cell is
//! computed follow kube-apiserver's printers (`pkg/printers/internalversion`), so
//! `kubectl get pods` prints `NAME READY STATUS RESTARTS AGE` and `-o wide` adds
//! the priority-1 columns. Like kube-apiserver, every row carries all cells (wide
//! included); kubectl hides the priority-1 ones itself.
//!
//! This module owns only the pure conversion (objects in, JSON Table out) and the
//! `Accept` negotiation for it. It does not read the store, list, or watch: the
//! request handlers call it with the objects they already have. Objects may be
//! partial; a missing field prints as its Kubernetes default or an empty cell,
//! never a panic.

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map, Value};

/// An error turning a request into a Table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    /// `includeObject` was neither `None`, `Metadata` nor `Object`.
    #[error("unrecognized includeObject value: {0:?}")]
    UnknownIncludeObject(String),
}

/// Checks the `includeObject` query parameter the way kube-apiserver does: empty,
/// `None`, `Metadata` and `Object` are accepted; anything else is a 400.
pub fn check_include_object(value: &str) -> Result<(), TableError> {
    match value {
        "" | "None" | "Metadata" | "Object" => Ok(()),
        other => Err(TableError::UnknownIncludeObject(other.to_string())),
    }
}

/// Whether the Accept header asks for a meta.k8s.io Table (v1 or v1beta1) — returns
/// the apiVersion to answer with ("meta.k8s.io/v1" or "meta.k8s.io/v1beta1"), or None.
///
/// Media ranges are taken in order of preference (`q`, then header order); the
/// first one this server can answer decides. A Table range counts only for
/// `application/json` with `g=meta.k8s.io` and `v=v1`/`v1beta1`; ranges asking for
/// another `as=` are skipped; any plain range (`application/json`, `*/*`, …)
/// means a plain answer.
pub fn wants_table(accept: &str) -> Option<&'static str> {
    struct Range<'a> {
        q: f32,
        media: String,
        as_kind: Option<&'a str>,
        group: Option<&'a str>,
        version: Option<&'a str>,
    }
    let mut ranges: Vec<Range<'_>> = Vec::new();
    for clause in accept.split(',') {
        let mut pieces = clause.split(';');
        let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let mut range = Range {
            q: 1.0,
            media,
            as_kind: None,
            group: None,
            version: None,
        };
        for param in pieces {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => range.q = value.parse().unwrap_or(0.0),
                "as" => range.as_kind = Some(value),
                "g" => range.group = Some(value),
                "v" => range.version = Some(value),
                _ => {}
            }
        }
        if range.q > 0.0 {
            ranges.push(range);
        }
    }
    // Stable: equal q keeps the client's order.
    ranges.sort_by(|a, b| b.q.total_cmp(&a.q));
    for range in ranges {
        match range.as_kind {
            Some("Table") => {
                if range.media != "application/json" || range.group != Some("meta.k8s.io") {
                    continue;
                }
                match range.version {
                    Some("v1") => return Some("meta.k8s.io/v1"),
                    Some("v1beta1") => return Some("meta.k8s.io/v1beta1"),
                    _ => continue,
                }
            }
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

/// A full Table object for these objects of `kind` (e.g. "Pod"; group-independent),
/// `api_version` from [`wants_table`], `list_metadata` copied into the Table's
/// metadata (resourceVersion, continue), `include_object`: "None" | "Metadata"
/// (default: row.object = PartialObjectMetadata) | "Object" (the full object).
///
/// As in kube-apiserver, the PartialObjectMetadata carries the Table's own
/// apiVersion, and an unknown `include_object` is treated as the default (check it
/// first with [`check_include_object`] to answer 400 instead).
pub fn table(
    kind: &str,
    api_version: &str,
    objects: &[Value],
    list_metadata: Value,
    include_object: &str,
    now: Timestamp,
) -> Value {
    let printer = Printer::for_kind(kind);
    let column_definitions: Vec<Value> = printer
        .columns()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let (cells, conditions) = printer.row(obj, now);
            let object = match include_object {
                "None" => Value::Null,
                "Object" => obj.clone(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": api_version,
                    "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            };
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            if let Some(conditions) = conditions {
                row.insert("conditions".into(), conditions);
            }
            row.insert("object".into(), object);
            Value::Object(row)
        })
        .collect();
    let metadata = match list_metadata {
        Value::Object(m) => Value::Object(m),
        _ => json!({}),
    };
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

/// Upstream's `duration.HumanDuration`: a short, 2–3 significant figure rendering
/// (`5s`, `3m20s`, `15m`, `5h30m`, `2d3h`, `400d`, `3y20d`); `<invalid>` when more
/// than a second in the future.
pub fn human_duration(d: SignedDuration) -> String {
    let nanos = d.as_nanos();
    let seconds = nanos / 1_000_000_000;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

// ---------------------------------------------------------------------------
// Columns

struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 1,
    }
}

const DESC_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const DESC_CREATED: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const DESC_CONTAINERS: &str = "Names of each container in the template.";
const DESC_IMAGES: &str = "Images referenced by each container in the template.";

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: DESC_NAME,
    priority: 0,
};
const AGE: Column = col("Age", "string", DESC_CREATED);

const POD_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide("IP", "string", "podIP address allocated to the pod."),
    wide("Node", "string", "NodeName indicates in which node this pod is scheduled."),
    wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
    wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
];

const NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide(
        "Internal-IP",
        "string",
        "List of addresses reachable to the node.",
    ),
    wide(
        "External-IP",
        "string",
        "List of addresses reachable to the node.",
    ),
    wide(
        "OS-Image",
        "string",
        "OS Image reported by the node from /etc/os-release.",
    ),
    wide(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node from 'uname -r'.",
    ),
    wide(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node through runtime remote API.",
    ),
];

const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "type determines how the Service is exposed."),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
];

const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    col(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    col(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];

const CONFIG_MAP_COLUMNS: &[Column] = &[
    NAME,
    col("Data", "string", "Data contains the configuration data."),
    AGE,
];

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "string", "Data contains the secret data."),
    AGE,
];

const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
    wide("Source", "string", "The component reporting this event."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded."),
    wide("Count", "string", "The number of times this event has occurred."),
    Column {
        name: "Name",
        kind: "string",
        format: "name",
        description: DESC_NAME,
        priority: 1,
    },
];

const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

const LEASE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", "Total number of non-terminating pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    wide("Containers", "string", DESC_CONTAINERS),
    wide("Images", "string", DESC_IMAGES),
    wide("Selector", "string", "Label selector for pods."),
];

const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Replicas is the number of desired pods.",
    ),
    col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of non-terminating pods.",
    ),
    col(
        "Ready",
        "integer",
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
    ),
    AGE,
    wide("Containers", "string", DESC_CONTAINERS),
    wide("Images", "string", DESC_IMAGES),
    wide(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the replica count.",
    ),
];

const DEFAULT_COLUMNS: &[Column] = &[NAME, col("Created At", "date", DESC_CREATED)];

// ---------------------------------------------------------------------------
// Printers

#[derive(Clone, Copy)]
enum Printer {
    Pod,
    Node,
    Namespace,
    Service,
    Endpoints,
    EndpointSlice,
    ConfigMap,
    Secret,
    Event,
    ServiceAccount,
    Lease,
    Deployment,
    ReplicaSet,
    Default,
}

impl Printer {
    fn for_kind(kind: &str) -> Printer {
        match kind {
            "Pod" => Printer::Pod,
            "Node" => Printer::Node,
            "Namespace" => Printer::Namespace,
            "Service" => Printer::Service,
            "Endpoints" => Printer::Endpoints,
            "EndpointSlice" => Printer::EndpointSlice,
            "ConfigMap" => Printer::ConfigMap,
            "Secret" => Printer::Secret,
            "Event" => Printer::Event,
            "ServiceAccount" => Printer::ServiceAccount,
            "Lease" => Printer::Lease,
            "Deployment" => Printer::Deployment,
            "ReplicaSet" => Printer::ReplicaSet,
            _ => Printer::Default,
        }
    }

    fn columns(self) -> &'static [Column] {
        match self {
            Printer::Pod => POD_COLUMNS,
            Printer::Node => NODE_COLUMNS,
            Printer::Namespace => NAMESPACE_COLUMNS,
            Printer::Service => SERVICE_COLUMNS,
            Printer::Endpoints => ENDPOINTS_COLUMNS,
            Printer::EndpointSlice => ENDPOINT_SLICE_COLUMNS,
            Printer::ConfigMap => CONFIG_MAP_COLUMNS,
            Printer::Secret => SECRET_COLUMNS,
            Printer::Event => EVENT_COLUMNS,
            Printer::ServiceAccount => SERVICE_ACCOUNT_COLUMNS,
            Printer::Lease => LEASE_COLUMNS,
            Printer::Deployment => DEPLOYMENT_COLUMNS,
            Printer::ReplicaSet => REPLICA_SET_COLUMNS,
            Printer::Default => DEFAULT_COLUMNS,
        }
    }

    /// The cells of one object's row, and the row's conditions if it has any.
    fn row(self, obj: &Value, now: Timestamp) -> (Vec<Value>, Option<Value>) {
        match self {
            Printer::Pod => pod_row(obj, now),
            Printer::Node => (node_cells(obj, now), None),
            Printer::Namespace => (namespace_cells(obj, now), None),
            Printer::Service => (service_cells(obj, now), None),
            Printer::Endpoints => (endpoints_cells(obj, now), None),
            Printer::EndpointSlice => (endpoint_slice_cells(obj, now), None),
            Printer::ConfigMap => {
                let n = map_len(obj, &["data"]) + map_len(obj, &["binaryData"]);
                (vec![name(obj), json!(n), age(obj, now)], None)
            }
            Printer::Secret => {
                let kind = non_empty_or(text(obj, &["type"]), "Opaque");
                let n = map_len(obj, &["data"]);
                (vec![name(obj), json!(kind), json!(n), age(obj, now)], None)
            }
            Printer::Event => (event_cells(obj, now), None),
            Printer::ServiceAccount => {
                let n = list(obj, &["secrets"]).len();
                (vec![name(obj), json!(n), age(obj, now)], None)
            }
            Printer::Lease => {
                let holder = text(obj, &["spec", "holderIdentity"]);
                (vec![name(obj), json!(holder), age(obj, now)], None)
            }
            Printer::Deployment => (deployment_cells(obj, now), None),
            Printer::ReplicaSet => (replica_set_cells(obj, now), None),
            Printer::Default => {
                let created = timestamp(obj, &["metadata", "creationTimestamp"])
                    .unwrap_or(GO_ZERO_TIME)
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                (vec![name(obj), json!(created)], None)
            }
        }
    }
}

fn pod_row(pod: &Value, now: Timestamp) -> (Vec<Value>, Option<Value>) {
    let phase = text(pod, &["status", "phase"]);
    let mut reason = non_empty_or(text(pod, &["status", "reason"]), phase).to_string();
    let conditions = list(pod, &["status", "conditions"]);
    for c in conditions {
        if text(c, &["type"]) == "PodScheduled" && text(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }

    let init_specs = list(pod, &["spec", "initContainers"]);
    let is_restartable_init = |container_name: &str| {
        init_specs.iter().any(|c| {
            text(c, &["name"]) == container_name && text(c, &["restartPolicy"]) == "Always"
        })
    };
    let mut total = list(pod, &["spec", "containers"]).len();
    total += init_specs
        .iter()
        .filter(|c| text(c, &["restartPolicy"]) == "Always")
        .count();

    let mut ready = 0usize;
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let mut initializing = false;
    for (i, cs) in list(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = int(cs, &["restartCount"]);
        let finished = timestamp(cs, &["lastState", "terminated", "finishedAt"]);
        restarts += count;
        last_restart = later(last_restart, finished);
        let sidecar = is_restartable_init(text(cs, &["name"]));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let terminated = field(cs, &["state", "terminated"]);
        let waiting = field(cs, &["state", "waiting"]);
        match (terminated, waiting) {
            (Some(t), _) if int(t, &["exitCode"]) == 0 => continue,
            _ if sidecar && field(cs, &["started"]).and_then(Value::as_bool) == Some(true) => {
                if flag(cs, &["ready"]) {
                    ready += 1;
                }
                continue;
            }
            (Some(t), _) => {
                let why = text(t, &["reason"]);
                reason = if !why.is_empty() {
                    format!("Init:{why}")
                } else if int(t, &["signal"]) != 0 {
                    format!("Init:Signal:{}", int(t, &["signal"]))
                } else {
                    format!("Init:ExitCode:{}", int(t, &["exitCode"]))
                };
            }
            (None, Some(w))
                if !text(w, &["reason"]).is_empty()
                    && text(w, &["reason"]) != "PodInitializing" =>
            {
                reason = format!("Init:{}", text(w, &["reason"]));
            }
            _ => reason = format!("Init:{}/{}", i, init_specs.len()),
        }
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .find(|c| text(c, &["type"]) == "Initialized")
        .is_some_and(|c| text(c, &["status"]) == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in list(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(cs, &["restartCount"]);
            last_restart = later(
                last_restart,
                timestamp(cs, &["lastState", "terminated", "finishedAt"]),
            );
            let waiting = field(cs, &["state", "waiting"]);
            let terminated = field(cs, &["state", "terminated"]);
            if let Some(w) = waiting.filter(|w| !text(w, &["reason"]).is_empty()) {
                reason = text(w, &["reason"]).to_string();
            } else if let Some(t) = terminated {
                let why = text(t, &["reason"]);
                reason = if !why.is_empty() {
                    why.to_string()
                } else if int(t, &["signal"]) != 0 {
                    format!("Signal:{}", int(t, &["signal"]))
                } else {
                    format!("ExitCode:{}", int(t, &["exitCode"]))
                };
            } else if flag(cs, &["ready"]) && field(cs, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| text(c, &["type"]) == "Ready" && text(c, &["status"]) == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    let deleting = field(pod, &["metadata", "deletionTimestamp"]).is_some();
    if deleting && text(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(at) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(at), now)),
        _ => restarts.to_string(),
    };

    let pod_ip = list(pod, &["status", "podIPs"])
        .first()
        .map(|ip| text(ip, &["ip"]))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| text(pod, &["status", "podIP"]));
    let gates = list(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_gates = gates
            .iter()
            .filter(|gate| {
                let wanted = text(gate, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| text(c, &["type"]) == wanted)
                    .is_some_and(|c| text(c, &["status"]) == "True")
            })
            .count();
        format!("{true_gates}/{}", gates.len())
    };

    let cells = vec![
        name(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(pod, now),
        json!(non_empty_or(pod_ip, "<none>")),
        json!(non_empty_or(text(pod, &["spec", "nodeName"]), "<none>")),
        json!(non_empty_or(
            text(pod, &["status", "nominatedNodeName"]),
            "<none>"
        )),
        json!(readiness_gates),
    ];
    let row_conditions = match phase {
        "Succeeded" => Some(json!([{
            "type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }])),
        "Failed" => Some(json!([{
            "type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed.",
        }])),
        _ => None,
    };
    (cells, row_conditions)
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    // Like upstream's condition map, the last Ready condition wins.
    if let Some(ready) = list(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| text(c, &["type"]) == "Ready")
    {
        status.push(if text(ready, &["status"]) == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    } else {
        status.push("Unknown");
    }
    if flag(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }

    let mut roles: Vec<&str> = Vec::new();
    if let Some(labels) = field(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role);
                }
            } else if key == "kubernetes.io/role" {
                if let Some(role) = value.as_str().filter(|r| !r.is_empty()) {
                    roles.push(role);
                }
            }
        }
    }
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };

    let address = |kind: &str| {
        list(node, &["status", "addresses"])
            .iter()
            .find(|a| text(a, &["type"]) == kind)
            .map(|a| text(a, &["address"]))
            .unwrap_or("<none>")
    };
    let info = |key: &str| non_empty_or(text(node, &["status", "nodeInfo", key]), "<unknown>");
    vec![
        name(node),
        json!(status.join(",")),
        json!(roles),
        age(node, now),
        json!(text(node, &["status", "nodeInfo", "kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn namespace_cells(ns: &Value, now: Timestamp) -> Vec<Value> {
    // The namespace registry always sets a phase; show what it would have set.
    let phase = match text(ns, &["status", "phase"]) {
        "" if field(ns, &["metadata", "deletionTimestamp"]).is_some() => "Terminating",
        "" => "Active",
        phase => phase,
    };
    vec![name(ns), json!(phase), age(ns, now)]
}

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let svc_type = non_empty_or(text(svc, &["spec", "type"]), "ClusterIP");
    let cluster_ip = list(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| non_empty_or(text(svc, &["spec", "clusterIP"]), "<none>"));
    let external_ips: Vec<&str> = list(svc, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match svc_type {
        "ClusterIP" | "NodePort" if !external_ips.is_empty() => external_ips.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            // Wide rendering (no clipping), as kube-apiserver prints for kubectl.
            let mut lb: Vec<&str> = list(svc, &["status", "loadBalancer", "ingress"])
                .iter()
                .map(|i| non_empty_or(text(i, &["ip"]), text(i, &["hostname"])))
                .filter(|s| !s.is_empty())
                .collect();
            lb.sort_unstable();
            lb.dedup();
            lb.extend(external_ips.iter().copied());
            if lb.is_empty() {
                "<pending>".to_string()
            } else {
                lb.join(",")
            }
        }
        "ExternalName" => text(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = list(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int(p, &["port"]);
            let protocol = non_empty_or(text(p, &["protocol"]), "TCP");
            match int(p, &["nodePort"]) {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        name(svc),
        json!(svc_type),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        age(svc, now),
        json!(format_labels(field(svc, &["spec", "selector"]))),
    ]
}

fn endpoints_cells(ep: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let subsets = list(ep, &["subsets"]);
    let formatted = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut shown: Vec<String> = Vec::new();
        let mut count = 0usize;
        for subset in subsets {
            let addresses = list(subset, &["addresses"]);
            let ports = list(subset, &["ports"]);
            if ports.is_empty() {
                // Headless services may have no ports.
                for a in addresses {
                    if shown.len() < MAX {
                        shown.push(text(a, &["ip"]).to_string());
                    }
                    count += 1;
                }
            } else {
                for p in ports {
                    for a in addresses {
                        if shown.len() < MAX {
                            shown.push(join_host_port(text(a, &["ip"]), int(p, &["port"])));
                        }
                        count += 1;
                    }
                }
            }
        }
        let joined = shown.join(",");
        if count > MAX {
            format!("{joined} + {} more...", count - MAX)
        } else {
            joined
        }
    };
    vec![name(ep), json!(formatted), age(ep, now)]
}

fn endpoint_slice_cells(slice: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = list(slice, &["ports"])
        .iter()
        .map(|p| match field(p, &["port"]).and_then(Value::as_i64) {
            Some(port) => port.to_string(),
            None => match field(p, &["name"]).and_then(Value::as_str) {
                Some(name) => name.to_string(),
                None => "*".to_string(),
            },
        })
        .collect();
    let addresses: Vec<String> = list(slice, &["endpoints"])
        .iter()
        .flat_map(|e| list(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or("").to_string())
        .collect();
    vec![
        name(slice),
        json!(text(slice, &["addressType"])),
        json!(list_with_more(&ports)),
        json!(list_with_more(&addresses)),
        age(slice, now),
    ]
}

/// Upstream's `listWithMoreString` for at most three items.
fn list_with_more(items: &[String]) -> String {
    const MAX: usize = 3;
    if items.len() > MAX {
        return format!("{} + {} more...", items[..MAX].join(","), items.len() - MAX);
    }
    if items.is_empty() {
        return "<unset>".to_string();
    }
    items.join(",")
}

fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    // core/v1 field names first, then the events.k8s.io/v1 ones.
    let first_of = |paths: &[&[&str]]| paths.iter().find_map(|p| timestamp(ev, p));
    let first_seen = match first_of(&[&["firstTimestamp"], &["deprecatedFirstTimestamp"]]) {
        Some(at) => since(Some(at), now),
        None => since(timestamp(ev, &["eventTime"]), now),
    };
    let mut last_seen = match first_of(&[&["lastTimestamp"], &["deprecatedLastTimestamp"]]) {
        Some(at) => since(Some(at), now),
        None => first_seen.clone(),
    };
    let mut count = match field(ev, &["count"]).or_else(|| field(ev, &["deprecatedCount"])) {
        Some(c) => c.as_i64().unwrap_or(0),
        None => 0,
    };
    if let Some(series) = field(ev, &["series"]).filter(|s| s.is_object()) {
        last_seen = since(timestamp(series, &["lastObservedTime"]), now);
        count = int(series, &["count"]);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }

    let involved = field(ev, &["involvedObject"])
        .or_else(|| field(ev, &["regarding"]))
        .unwrap_or(&Value::Null);
    let kind = text(involved, &["kind"]).to_lowercase();
    let target = match text(involved, &["name"]) {
        "" => kind,
        obj_name => format!("{kind}/{obj_name}"),
    };
    let source = field(ev, &["source"])
        .or_else(|| field(ev, &["deprecatedSource"]))
        .unwrap_or(&Value::Null);
    let component = non_empty_or(
        text(source, &["component"]),
        text(ev, &["reportingController"]),
    );
    let host = non_empty_or(text(source, &["host"]), text(ev, &["reportingInstance"]));
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    let message = non_empty_or(text(ev, &["message"]), text(ev, &["note"])).trim();

    vec![
        json!(last_seen),
        json!(text(ev, &["type"])),
        json!(text(ev, &["reason"])),
        json!(target),
        json!(text(involved, &["fieldPath"])),
        json!(source),
        json!(message),
        json!(first_seen),
        json!(count),
        name(ev),
    ]
}

fn deployment_cells(d: &Value, now: Timestamp) -> Vec<Value> {
    let desired = replicas(d);
    let ready = int(d, &["status", "readyReplicas"]);
    let (containers, images) = container_cells(d);
    let selector = match selector_string(field(d, &["spec", "selector"])) {
        Ok(s) => s,
        Err(()) => "<invalid>".to_string(),
    };
    vec![
        name(d),
        json!(format!("{ready}/{desired}")),
        json!(int(d, &["status", "updatedReplicas"])),
        json!(int(d, &["status", "availableReplicas"])),
        age(d, now),
        json!(containers),
        json!(images),
        json!(selector),
    ]
}

fn replica_set_cells(rs: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = container_cells(rs);
    // metav1.FormatLabelSelector
    let selector = match selector_string(field(rs, &["spec", "selector"])) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    };
    vec![
        name(rs),
        json!(replicas(rs)),
        json!(int(rs, &["status", "replicas"])),
        json!(int(rs, &["status", "readyReplicas"])),
        age(rs, now),
        json!(containers),
        json!(images),
        json!(selector),
    ]
}

/// `spec.replicas`, defaulted to 1 as the API does.
fn replicas(obj: &Value) -> i64 {
    field(obj, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// The template's container names and images, comma-separated.
fn container_cells(obj: &Value) -> (String, String) {
    let containers = list(obj, &["spec", "template", "spec", "containers"]);
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// `labels.FormatLabels`: `k=v` sorted by key, or `<none>`.
fn format_labels(labels: Option<&Value>) -> String {
    let Some(map) = labels.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".to_string();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// A LabelSelector as upstream's `LabelSelectorAsSelector(...).String()`: one
/// requirement per key, sorted by key; `""` for a missing or empty selector.
fn selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = field(selector, &["matchLabels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            requirements.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for expr in list(selector, &["matchExpressions"]) {
        let key = text(expr, &["key"]);
        let mut values: Vec<&str> = list(expr, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let rendered = match text(expr, &["operator"]) {
            "In" if !values.is_empty() => format!("{key} in ({})", values.join(",")),
            "NotIn" if !values.is_empty() => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return Err(()),
        };
        requirements.push((key.to_string(), rendered));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(","))
}

fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---------------------------------------------------------------------------
// Reading partial JSON without panicking

/// Go's zero `time.Time`, which upstream treats as "not set".
const GO_ZERO_TIME: Timestamp = Timestamp::constant(-62_135_596_800, 0);

fn field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    field(v, path).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, path: &[&str]) -> i64 {
    field(v, path).and_then(Value::as_i64).unwrap_or(0)
}

fn flag(v: &Value, path: &[&str]) -> bool {
    field(v, path).and_then(Value::as_bool).unwrap_or(false)
}

fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    field(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn map_len(v: &Value, path: &[&str]) -> usize {
    field(v, path)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}

fn non_empty_or<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.is_empty() {
        fallback
    } else {
        s
    }
}

/// A set, parseable, non-zero RFC 3339 timestamp.
fn timestamp(v: &Value, path: &[&str]) -> Option<Timestamp> {
    let ts: Timestamp = text(v, path).parse().ok()?;
    (ts != GO_ZERO_TIME).then_some(ts)
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Upstream's `translateTimestampSince`.
fn since(at: Option<Timestamp>, now: Timestamp) -> String {
    match at {
        Some(at) => human_duration(now.duration_since(at)),
        None => "<unknown>".to_string(),
    }
}

fn name(obj: &Value) -> Value {
    json!(text(obj, &["metadata", "name"]))
}

fn age(obj: &Value, now: Timestamp) -> Value {
    json!(since(
        timestamp(obj, &["metadata", "creationTimestamp"]),
        now
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().expect("valid timestamp")
    }

    fn cells(kind: &str, obj: Value) -> Vec<Value> {
        let t = table(kind, "meta.k8s.io/v1", &[obj], json!({}), "None", now());
        t["rows"][0]["cells"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn column_names(kind: &str) -> Vec<(String, i64)> {
        let t = table(kind, "meta.k8s.io/v1", &[], json!({}), "None", now());
        t["columnDefinitions"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or("").to_string(),
                            c["priority"].as_i64().unwrap_or(-1),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    #[test]
    fn human_duration_matches_upstream_examples() {
        assert_eq!(human_duration(secs(-5)), "<invalid>");
        assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
        assert_eq!(human_duration(secs(0)), "0s");
        assert_eq!(human_duration(secs(5)), "5s");
        assert_eq!(human_duration(secs(119)), "119s");
        assert_eq!(human_duration(secs(120)), "2m");
        assert_eq!(human_duration(secs(200)), "3m20s");
        assert_eq!(human_duration(secs(15 * 60 + 7)), "15m");
        assert_eq!(human_duration(secs(179 * 60)), "179m");
        assert_eq!(human_duration(secs(3 * 3600)), "3h");
        assert_eq!(human_duration(secs(5 * 3600 + 30 * 60)), "5h30m");
        assert_eq!(human_duration(secs(30 * 3600)), "30h");
        assert_eq!(human_duration(secs(51 * 3600)), "2d3h");
        assert_eq!(human_duration(secs(72 * 3600)), "3d");
        assert_eq!(human_duration(secs(400 * 86400)), "400d");
        assert_eq!(human_duration(secs((3 * 365 + 20) * 86400)), "3y20d");
        assert_eq!(human_duration(secs(10 * 365 * 86400)), "10y");
    }

    #[test]
    fn wants_table_on_kubectl_accept_header() {
        assert_eq!(wants_table(KUBECTL_ACCEPT), Some("meta.k8s.io/v1"));
        assert_eq!(
            wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json"),
            Some("meta.k8s.io/v1beta1")
        );
    }

    #[test]
    fn wants_table_is_none_for_plain_requests() {
        assert_eq!(wants_table("application/json"), None);
        assert_eq!(wants_table("*/*"), None);
        assert_eq!(wants_table(""), None);
        assert_eq!(
            wants_table("application/json, application/json;as=Table;v=v1;g=meta.k8s.io;q=0.5"),
            None
        );
        assert_eq!(
            wants_table("application/json;as=Table;v=v2;g=meta.k8s.io"),
            None
        );
        assert_eq!(
            wants_table("application/yaml;as=Table;v=v1;g=meta.k8s.io"),
            None
        );
        assert_eq!(
            wants_table(
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
            ),
            None
        );
    }

    #[test]
    fn include_object_is_checked() {
        assert!(check_include_object("").is_ok());
        assert!(check_include_object("Metadata").is_ok());
        assert_eq!(
            check_include_object("Everything").map_err(|e| e.to_string()),
            Err("unrecognized includeObject value: \"Everything\"".to_string())
        );
    }

    fn running_pod() -> Value {
        json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7",
                         "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "app"}, {"name": "sidecar"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2024-05-01T11:00:05Z"}}},
                    {"name": "sidecar", "ready": false, "restartCount": 3,
                     "state": {"running": {"startedAt": "2024-05-01T11:55:00Z"}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:55:00Z"}}}
                ]
            }
        })
    }

    #[test]
    fn running_pod_prints_ready_status_restarts_age_and_wide_cells() {
        assert_eq!(
            cells("Pod", running_pod()),
            vec![
                json!("web"),
                json!("1/2"),
                json!("Running"),
                json!("3 (5m ago)"),
                json!("60m"),
                json!("10.244.1.5"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn pod_columns_match_kubectl_headers() {
        let names = column_names("Pod");
        let expected = [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1),
        ];
        assert_eq!(names, expected.map(|(n, p)| (n.to_string(), p)).to_vec());
    }

    #[test]
    fn pending_pod_without_status() {
        let pod = json!({"metadata": {"name": "new"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            cells("Pod", pod),
            vec![
                json!("new"),
                json!("0/1"),
                json!(""),
                json!("0"),
                json!("<unknown>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
        let pending = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                             "status": {"phase": "Pending"}});
        assert_eq!(cells("Pod", pending)[2], json!("Pending"));
    }

    #[test]
    fn terminating_pod_shows_terminating_unless_finished() {
        let mut pod = running_pod();
        pod["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        assert_eq!(cells("Pod", pod.clone())[2], json!("Terminating"));
        pod["status"]["phase"] = json!("Succeeded");
        pod["status"]["containerStatuses"] = json!([]);
        assert_eq!(cells("Pod", pod.clone())[2], json!("Succeeded"));
        pod["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells("Pod", pod)[2], json!("Unknown"));
    }

    #[test]
    fn container_waiting_and_terminated_reasons() {
        let pod = |state: Value| {
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Pending", "containerStatuses": [{"name": "a", "restartCount": 0, "state": state}]}})
        };
        let creating = pod(json!({"waiting": {"reason": "ContainerCreating"}}));
        assert_eq!(cells("Pod", creating)[2], json!("ContainerCreating"));
        let backoff = pod(json!({"waiting": {"reason": "CrashLoopBackOff"}}));
        assert_eq!(cells("Pod", backoff)[2], json!("CrashLoopBackOff"));
        let done = pod(json!({"terminated": {"reason": "Completed", "exitCode": 0}}));
        assert_eq!(cells("Pod", done)[2], json!("Completed"));
        let killed = pod(json!({"terminated": {"signal": 9, "exitCode": 137}}));
        assert_eq!(cells("Pod", killed)[2], json!("Signal:9"));
        let exited = pod(json!({"terminated": {"exitCode": 2}}));
        assert_eq!(cells("Pod", exited)[2], json!("ExitCode:2"));
    }

    #[test]
    fn completed_container_beside_running_one_reads_running_or_not_ready() {
        let mut pod = json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
              "containerStatuses": [
                {"name": "a", "ready": false, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                {"name": "b", "ready": true, "state": {"running": {}}}]}});
        // Statuses are walked last to first, so "a" sets Completed last.
        assert_eq!(cells("Pod", pod.clone())[2], json!("Running"));
        pod["status"]["conditions"] = json!([]);
        assert_eq!(cells("Pod", pod)[2], json!("NotReady"));
    }

    #[test]
    fn init_containers_show_progress_and_failures() {
        let pod = |init_statuses: Value| {
            json!({"metadata": {"name": "p"},
                   "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
                   "status": {"phase": "Pending", "initContainerStatuses": init_statuses,
                              "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}})
        };
        let first_running = pod(json!([
            {"name": "i1", "state": {"running": {}}},
            {"name": "i2", "state": {"waiting": {"reason": "PodInitializing"}}}]));
        assert_eq!(cells("Pod", first_running)[2], json!("Init:0/2"));
        let second = pod(json!([
            {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "i2", "state": {"running": {}}}]));
        assert_eq!(cells("Pod", second)[2], json!("Init:1/2"));
        let failed = pod(json!([
            {"name": "i1", "restartCount": 2, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]));
        let failed_cells = cells("Pod", failed);
        assert_eq!(failed_cells[2], json!("Init:Error"));
        assert_eq!(failed_cells[3], json!("2"));
        let backoff =
            pod(json!([{"name": "i1", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]));
        assert_eq!(cells("Pod", backoff)[2], json!("Init:CrashLoopBackOff"));
        let exit = pod(json!([{"name": "i1", "state": {"terminated": {"exitCode": 3}}}]));
        assert_eq!(cells("Pod", exit)[2], json!("Init:ExitCode:3"));
    }

    #[test]
    fn sidecar_init_containers_count_as_containers() {
        let pod = json!({"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                     "containers": [{"name": "a"}]},
            "status": {"phase": "Running",
              "conditions": [{"type": "Initialized", "status": "True"}],
              "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                                         "state": {"running": {}}}],
              "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
        let c = cells("Pod", pod);
        assert_eq!(c[1], json!("2/2"));
        assert_eq!(c[2], json!("Running"));
        assert_eq!(c[3], json!("1"));
    }

    #[test]
    fn succeeded_pod_row_has_completed_condition() {
        let pod = json!({"metadata": {"name": "job-x"}, "status": {"phase": "Succeeded"}});
        let t = table("Pod", "meta.k8s.io/v1", &[pod], json!({}), "None", now());
        assert_eq!(t["rows"][0]["conditions"][0]["type"], json!("Completed"));
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], json!("Succeeded"));
    }

    #[test]
    fn readiness_gates_count_true_conditions() {
        let pod = json!({"metadata": {"name": "p"},
            "spec": {"readinessGates": [{"conditionType": "lb/ready"}, {"conditionType": "other"}]},
            "status": {"conditions": [{"type": "lb/ready", "status": "True"}]}});
        assert_eq!(cells("Pod", pod)[8], json!("1/2"));
    }

    #[test]
    fn deployment_ready_and_wide_cells() {
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:59:55Z"},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"app": "web"},
                                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"},
                                                          {"name": "log", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            cells("Deployment", d),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("5s"),
                json!("nginx,log"),
                json!("nginx:1.25,busybox"),
                json!("app=web,tier in (a,b)"),
            ]
        );
        let empty = cells("Deployment", json!({"metadata": {"name": "d"}}));
        assert_eq!(empty[1], json!("0/1"));
        assert_eq!(empty[7], json!(""));
    }

    #[test]
    fn replica_set_cells_are_integers() {
        let rs = json!({"metadata": {"name": "web-abc"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}}},
            "status": {"replicas": 2, "readyReplicas": 1}});
        let c = cells("ReplicaSet", rs);
        assert_eq!(&c[..4], &[json!("web-abc"), json!(2), json!(2), json!(1)]);
        assert_eq!(c[7], json!("app=web,pod-template-hash=abc"));
        assert_eq!(
            cells("ReplicaSet", json!({"metadata": {"name": "x"}}))[7],
            json!("<none>")
        );
    }

    #[test]
    fn service_ports_external_ip_and_selector() {
        let svc = json!({"metadata": {"name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443}]}});
        assert_eq!(
            cells("Service", svc),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,443/TCP"),
                json!("<unknown>"),
                json!("app=web"),
            ]
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "UDP"}]}});
        let c = cells("Service", lb);
        assert_eq!(c[3], json!("<pending>"));
        assert_eq!(c[4], json!("80/UDP"));
        assert_eq!(c[6], json!("<none>"));
        let bare = cells("Service", json!({"metadata": {"name": "bare"}}));
        assert_eq!(
            &bare[1..5],
            &[
                json!("ClusterIP"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn endpoints_are_listed_three_at_most() {
        let ep = json!({"metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
                         "ports": [{"port": 80}]}]});
        assert_eq!(
            cells("Endpoints", ep)[1],
            json!("10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...")
        );
        let two = json!({"metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}], "ports": [{"port": 80}]}]});
        assert_eq!(
            cells("Endpoints", two)[1],
            json!("10.0.0.1:80,[fd00::2]:80")
        );
        assert_eq!(
            cells("Endpoints", json!({"metadata": {"name": "e"}}))[1],
            json!("<none>")
        );
    }

    #[test]
    fn endpoint_slice_cells() {
        let slice = json!({"metadata": {"name": "web-x"}, "addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "metrics"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]});
        assert_eq!(
            &cells("EndpointSlice", slice)[..4],
            &[
                json!("web-x"),
                json!("IPv4"),
                json!("80,metrics"),
                json!("10.0.0.1,10.0.0.2")
            ]
        );
        let empty = cells("EndpointSlice", json!({"metadata": {"name": "e"}}));
        assert_eq!(&empty[2..4], &[json!("<unset>"), json!("<unset>")]);
    }

    #[test]
    fn node_status_roles_and_wide_cells() {
        let node = json!({"metadata": {"name": "n1", "labels": {
                "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "",
                "kubernetes.io/hostname": "n1"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "n1"}],
                       "nodeInfo": {"kubeletVersion": "v1.30.0-bosun", "osImage": "Debian GNU/Linux 12"}}});
        assert_eq!(
            cells("Node", node),
            vec![
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,master"),
                json!("<unknown>"),
                json!("v1.30.0-bosun"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("<unknown>"),
                json!("<unknown>"),
            ]
        );
        let bare = cells("Node", json!({"metadata": {"name": "n2"}}));
        assert_eq!(&bare[1..3], &[json!("Unknown"), json!("<none>")]);
        let not_ready = json!({"metadata": {"name": "n3"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(cells("Node", not_ready)[1], json!("NotReady"));
    }

    #[test]
    fn small_kinds() {
        let cm = json!({"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(cells("ConfigMap", cm)[1], json!(3));
        let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            &cells("Secret", secret)[1..3],
            &[json!("kubernetes.io/tls"), json!(2)]
        );
        assert_eq!(
            cells("Secret", json!({"metadata": {"name": "s"}}))[1],
            json!("Opaque")
        );
        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "tok"}]});
        assert_eq!(cells("ServiceAccount", sa)[1], json!(1));
        let lease = json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}});
        assert_eq!(cells("Lease", lease)[1], json!("n1"));
        let ns = json!({"metadata": {"name": "kube-system"}, "status": {"phase": "Active"}});
        assert_eq!(cells("Namespace", ns)[1], json!("Active"));
    }

    #[test]
    fn event_cells_in_wide_order() {
        let ev = json!({"metadata": {"name": "web.17a"}, "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "source": {"component": "kubelet", "host": "n1"},
            "message": "Back-off restarting failed container\n", "count": 4,
            "firstTimestamp": "2024-05-01T11:00:00Z", "lastTimestamp": "2024-05-01T11:59:30Z"});
        assert_eq!(
            cells("Event", ev),
            vec![
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web"),
                json!("spec.containers{app}"),
                json!("kubelet, n1"),
                json!("Back-off restarting failed container"),
                json!("60m"),
                json!(4),
                json!("web.17a"),
            ]
        );
        let new_api = json!({"metadata": {"name": "e"}, "eventTime": "2024-05-01T11:58:00.000000Z",
            "regarding": {"kind": "Node"}, "reportingController": "bosun-master", "note": "hi"});
        let c = cells("Event", new_api);
        assert_eq!(c[0], json!("2m"));
        assert_eq!(c[3], json!("node"));
        assert_eq!(c[5], json!("bosun-master"));
        assert_eq!(c[6], json!("hi"));
        assert_eq!(c[8], json!(1));
    }

    #[test]
    fn other_kinds_get_name_and_created_at() {
        let obj = json!({"metadata": {"name": "thing", "creationTimestamp": "2024-04-30T08:09:10.5+02:00"}});
        assert_eq!(
            cells("Widget", obj),
            vec![json!("thing"), json!("2024-04-30T06:09:10Z")]
        );
        assert_eq!(
            column_names("Widget"),
            vec![("Name".to_string(), 0), ("Created At".to_string(), 0)]
        );
        assert_eq!(
            cells("Widget", json!({})),
            vec![json!(""), json!("0001-01-01T00:00:00Z")]
        );
    }

    #[test]
    fn include_object_variants() {
        let pod = running_pod();
        let rows = |include: &str| {
            table(
                "Pod",
                "meta.k8s.io/v1",
                std::slice::from_ref(&pod),
                json!({}),
                include,
                now(),
            )["rows"]
                .clone()
        };
        assert_eq!(rows("None")[0]["object"], Value::Null);
        assert_eq!(rows("Object")[0]["object"], pod);
        for default in ["Metadata", ""] {
            let object = &rows(default)[0]["object"];
            assert_eq!(object["kind"], json!("PartialObjectMetadata"));
            assert_eq!(object["apiVersion"], json!("meta.k8s.io/v1"));
            assert_eq!(object["metadata"], pod["metadata"]);
            assert!(object.get("spec").is_none());
        }
    }

    #[test]
    fn empty_list_still_has_columns_and_metadata() {
        let t = table(
            "Pod",
            "meta.k8s.io/v1beta1",
            &[],
            json!({"resourceVersion": "42", "continue": "abc"}),
            "Metadata",
            now(),
        );
        assert_eq!(t["kind"], json!("Table"));
        assert_eq!(t["apiVersion"], json!("meta.k8s.io/v1beta1"));
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "abc"})
        );
        assert_eq!(t["rows"], json!([]));
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(9));
        assert_eq!(t["columnDefinitions"][0]["format"], json!("name"));
        assert_eq!(t["columnDefinitions"][3]["type"], json!("string"));
    }

    #[test]
    fn every_kind_has_as_many_cells_as_columns_even_for_garbage() {
        let kinds = [
            "Pod",
            "Node",
            "Namespace",
            "Service",
            "Endpoints",
            "EndpointSlice",
            "ConfigMap",
            "Secret",
            "Event",
            "ServiceAccount",
            "Lease",
            "Deployment",
            "ReplicaSet",
            "Widget",
        ];
        let garbage = [
            json!(null),
            json!(7),
            json!({"metadata": 3, "spec": "x", "status": [1]}),
            json!({"spec": {"containers": "no", "ports": [1, null]}, "status": {"containerStatuses": [null, 5]},
                   "subsets": [{"addresses": 1}], "endpoints": [{"addresses": [3]}], "series": 2}),
        ];
        for kind in kinds {
            let t = table(
                kind,
                "meta.k8s.io/v1",
                &garbage,
                Value::Null,
                "Object",
                now(),
            );
            let width = t["columnDefinitions"].as_array().map_or(0, Vec::len);
            let rows = t["rows"].as_array().cloned().unwrap_or_default();
            assert_eq!(rows.len(), garbage.len(), "{kind}");
            for row in rows {
                assert_eq!(row["cells"].as_array().map_or(0, Vec::len), width, "{kind}");
            }
        }
    }
}
