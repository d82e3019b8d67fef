//! Which protobuf message each Kubernetes kind is, and for every message the
//! meaning of its field numbers: the JSON name, the type, and whether a zero value
//! is kept. This is data only; `mod.rs` walks it.
//!
//! The numbers and names are those of the `protobuf:"…"` and `json:"…"` struct tags
//! in k8s.io/api (`core/v1`, `apps/v1`, `coordination/v1`, `discovery/v1`,
//! `events/v1`, `autoscaling/v1`) and k8s.io/apimachinery (`meta/v1`), from which
//! upstream generates its `generated.proto`. Kubernetes only ever adds field
//! numbers, so one table serves every client version. Cloud volume plugins, node
//! and container statuses, ephemeral containers and managedFields are left out:
//! their fields are skipped like any unknown field.
//!
//! A message not in Go's core group is named `group.Message` (`apps.DeploymentSpec`,
//! `meta.ObjectMeta`); core messages go by their bare names.

/// What a field's value becomes in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// A string (any Go named string type too).
    Str,
    Bool,
    /// A varint read as a two's complement 32-bit integer.
    Int32,
    /// A varint read as a two's complement 64-bit integer.
    Int64,
    /// A nested message, by its name in [`MESSAGES`].
    Msg(&'static str),
    /// `intstr.IntOrString {type=1, intVal=2, strVal=3}`: a JSON number or string.
    IntOrString,
    /// `resource.Quantity {string=1}`: its string.
    Quantity,
    /// `metav1.Time {seconds=1, nanos=2}`: RFC 3339 in seconds, absent when empty.
    Time,
    /// `metav1.MicroTime`: as Time, with microseconds.
    MicroTime,
    /// `map<string, V>`, sent as repeated entry messages `{key=1, value=2}`.
    Map(MapValue),
}

/// The value type of a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapValue {
    Str,
    /// Bytes, shown as standard base64 as Go's JSON does for `[]byte`.
    Bytes,
    Quantity,
}

/// How often a field occurs, and what JSON shows when its value is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Card {
    /// Go `omitempty` on a non-pointer scalar: a zero value ("", 0, false) is left
    /// out of the JSON.
    Omit,
    /// A pointer, a struct, or a field without `omitempty`: whatever the wire
    /// carries is shown, zero included.
    Keep,
    /// Repeated (a JSON array) or a map (a JSON object).
    Rep,
    /// A Go struct embedded with `json:""`: its fields join the parent object.
    Inline,
}

/// One field of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub number: u32,
    pub name: &'static str,
    pub card: Card,
    pub ty: Ty,
}

/// A message: its fields sorted by number.
#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    /// The field with `number`, None when this table does not know it.
    pub fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields
            .binary_search_by_key(&number, |f| f.number)
            .ok()
            .map(|i| &self.fields[i])
    }
}

/// The message of `name`, None when the table lacks it.
pub fn message(name: &str) -> Option<&'static Message> {
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &MESSAGES[i])
}

/// The message a kind is sent as: by API group (`""` for core) and kind. A group
/// of `"*"` matches every group (DeleteOptions is registered in all of them).
pub const KINDS: &[(&str, &str, &str)] = &[
    ("", "Binding", "Binding"),
    ("", "ConfigMap", "ConfigMap"),
    ("", "Endpoints", "Endpoints"),
    ("", "Event", "Event"),
    ("", "Namespace", "Namespace"),
    ("", "Pod", "Pod"),
    ("", "Secret", "Secret"),
    ("", "Service", "Service"),
    ("", "ServiceAccount", "ServiceAccount"),
    ("apps", "Deployment", "apps.Deployment"),
    ("apps", "ReplicaSet", "apps.ReplicaSet"),
    ("autoscaling", "Scale", "autoscaling.Scale"),
    ("coordination.k8s.io", "Lease", "coordination.Lease"),
    (
        "discovery.k8s.io",
        "EndpointSlice",
        "discovery.EndpointSlice",
    ),
    ("events.k8s.io", "Event", "events.Event"),
    ("*", "DeleteOptions", "meta.DeleteOptions"),
];

/// The message for `kind` sent with `api_version` (`v1`, `apps/v1`, …).
pub fn kind_message(api_version: &str, kind: &str) -> Option<&'static Message> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    KINDS
        .iter()
        .find(|(g, k, _)| *k == kind && (*g == group || *g == "*"))
        .and_then(|(_, _, m)| message(m))
}

const fn f(number: u32, name: &'static str, card: Card, ty: Ty) -> Field {
    Field {
        number,
        name,
        card,
        ty,
    }
}

const fn msg(name: &'static str, fields: &'static [Field]) -> Message {
    Message { name, fields }
}

use Card::{Inline, Keep, Omit, Rep};
use MapValue::{Bytes as MapBytes, Quantity as MapQuantity, Str as MapStr};
use Ty::{Bool, Int32, Int64, IntOrString, MicroTime, Msg, Quantity, Str, Time};

/// Every message, sorted by name.
pub static MESSAGES: &[Message] = &[
    msg(
        "Affinity",
        &[
            f(1, "nodeAffinity", Keep, Msg("NodeAffinity")),
            f(2, "podAffinity", Keep, Msg("PodAffinity")),
            f(3, "podAntiAffinity", Keep, Msg("PodAntiAffinity")),
        ],
    ),
    msg(
        "AppArmorProfile",
        &[f(1, "type", Keep, Str), f(2, "localhostProfile", Keep, Str)],
    ),
    msg(
        "Binding",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "target", Keep, Msg("ObjectReference")),
        ],
    ),
    msg(
        "CSIVolumeSource",
        &[
            f(1, "driver", Keep, Str),
            f(2, "readOnly", Keep, Bool),
            f(3, "fsType", Keep, Str),
            f(4, "volumeAttributes", Rep, Ty::Map(MapStr)),
            f(5, "nodePublishSecretRef", Keep, Msg("LocalObjectReference")),
        ],
    ),
    msg(
        "Capabilities",
        &[f(1, "add", Rep, Str), f(2, "drop", Rep, Str)],
    ),
    msg("ClientIPConfig", &[f(1, "timeoutSeconds", Keep, Int32)]),
    msg(
        "ClusterTrustBundleProjection",
        &[
            f(1, "name", Keep, Str),
            f(2, "signerName", Keep, Str),
            f(3, "labelSelector", Keep, Msg("meta.LabelSelector")),
            f(4, "path", Keep, Str),
            f(5, "optional", Keep, Bool),
            f(6, "user", Keep, Int64),
        ],
    ),
    msg(
        "ConfigMap",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "data", Rep, Ty::Map(MapStr)),
            f(3, "binaryData", Rep, Ty::Map(MapBytes)),
            f(4, "immutable", Keep, Bool),
        ],
    ),
    msg(
        "ConfigMapEnvSource",
        &[
            f(1, "", Inline, Msg("LocalObjectReference")),
            f(2, "optional", Keep, Bool),
        ],
    ),
    msg(
        "ConfigMapKeySelector",
        &[
            f(1, "", Inline, Msg("LocalObjectReference")),
            f(2, "key", Keep, Str),
            f(3, "optional", Keep, Bool),
        ],
    ),
    msg(
        "ConfigMapProjection",
        &[
            f(1, "", Inline, Msg("LocalObjectReference")),
            f(2, "items", Rep, Msg("KeyToPath")),
            f(4, "optional", Keep, Bool),
        ],
    ),
    msg(
        "ConfigMapVolumeSource",
        &[
            f(1, "", Inline, Msg("LocalObjectReference")),
            f(2, "items", Rep, Msg("KeyToPath")),
            f(3, "defaultMode", Keep, Int32),
            f(4, "optional", Keep, Bool),
            f(5, "defaultUser", Keep, Int64),
        ],
    ),
    msg(
        "Container",
        &[
            f(1, "name", Keep, Str),
            f(2, "image", Omit, Str),
            f(3, "command", Rep, Str),
            f(4, "args", Rep, Str),
            f(5, "workingDir", Omit, Str),
            f(6, "ports", Rep, Msg("ContainerPort")),
            f(7, "env", Rep, Msg("EnvVar")),
            f(8, "resources", Keep, Msg("ResourceRequirements")),
            f(9, "volumeMounts", Rep, Msg("VolumeMount")),
            f(10, "livenessProbe", Keep, Msg("Probe")),
            f(11, "readinessProbe", Keep, Msg("Probe")),
            f(12, "lifecycle", Keep, Msg("Lifecycle")),
            f(13, "terminationMessagePath", Omit, Str),
            f(14, "imagePullPolicy", Omit, Str),
            f(15, "securityContext", Keep, Msg("SecurityContext")),
            f(16, "stdin", Omit, Bool),
            f(17, "stdinOnce", Omit, Bool),
            f(18, "tty", Omit, Bool),
            f(19, "envFrom", Rep, Msg("EnvFromSource")),
            f(20, "terminationMessagePolicy", Omit, Str),
            f(21, "volumeDevices", Rep, Msg("VolumeDevice")),
            f(22, "startupProbe", Keep, Msg("Probe")),
            f(23, "resizePolicy", Rep, Msg("ContainerResizePolicy")),
            f(24, "restartPolicy", Keep, Str),
            f(25, "restartPolicyRules", Rep, Msg("ContainerRestartRule")),
        ],
    ),
    msg(
        "ContainerPort",
        &[
            f(1, "name", Omit, Str),
            f(2, "hostPort", Omit, Int32),
            f(3, "containerPort", Keep, Int32),
            f(4, "protocol", Omit, Str),
            f(5, "hostIP", Omit, Str),
        ],
    ),
    msg(
        "ContainerResizePolicy",
        &[
            f(1, "resourceName", Keep, Str),
            f(2, "restartPolicy", Keep, Str),
        ],
    ),
    msg(
        "ContainerRestartRule",
        &[
            f(1, "action", Omit, Str),
            f(2, "exitCodes", Keep, Msg("ContainerRestartRuleOnExitCodes")),
        ],
    ),
    msg(
        "ContainerRestartRuleOnExitCodes",
        &[f(1, "operator", Omit, Str), f(2, "values", Rep, Int32)],
    ),
    msg(
        "DownwardAPIProjection",
        &[f(1, "items", Rep, Msg("DownwardAPIVolumeFile"))],
    ),
    msg(
        "DownwardAPIVolumeFile",
        &[
            f(1, "path", Keep, Str),
            f(2, "fieldRef", Keep, Msg("ObjectFieldSelector")),
            f(3, "resourceFieldRef", Keep, Msg("ResourceFieldSelector")),
            f(4, "mode", Keep, Int32),
            f(5, "user", Keep, Int64),
        ],
    ),
    msg(
        "DownwardAPIVolumeSource",
        &[
            f(1, "items", Rep, Msg("DownwardAPIVolumeFile")),
            f(2, "defaultMode", Keep, Int32),
            f(3, "defaultUser", Keep, Int64),
        ],
    ),
    msg(
        "EmptyDirVolumeSource",
        &[
            f(1, "medium", Omit, Str),
            f(2, "sizeLimit", Keep, Quantity),
            f(3, "mode", Keep, Int32),
        ],
    ),
    msg(
        "EndpointAddress",
        &[
            f(1, "ip", Keep, Str),
            f(2, "targetRef", Keep, Msg("ObjectReference")),
            f(3, "hostname", Omit, Str),
            f(4, "nodeName", Keep, Str),
        ],
    ),
    msg(
        "EndpointPort",
        &[
            f(1, "name", Omit, Str),
            f(2, "port", Keep, Int32),
            f(3, "protocol", Omit, Str),
            f(4, "appProtocol", Keep, Str),
        ],
    ),
    msg(
        "EndpointSubset",
        &[
            f(1, "addresses", Rep, Msg("EndpointAddress")),
            f(2, "notReadyAddresses", Rep, Msg("EndpointAddress")),
            f(3, "ports", Rep, Msg("EndpointPort")),
        ],
    ),
    msg(
        "Endpoints",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "subsets", Rep, Msg("EndpointSubset")),
        ],
    ),
    msg(
        "EnvFromSource",
        &[
            f(1, "prefix", Omit, Str),
            f(2, "configMapRef", Keep, Msg("ConfigMapEnvSource")),
            f(3, "secretRef", Keep, Msg("SecretEnvSource")),
        ],
    ),
    msg(
        "EnvVar",
        &[
            f(1, "name", Keep, Str),
            f(2, "value", Omit, Str),
            f(3, "valueFrom", Keep, Msg("EnvVarSource")),
        ],
    ),
    msg(
        "EnvVarSource",
        &[
            f(1, "fieldRef", Keep, Msg("ObjectFieldSelector")),
            f(2, "resourceFieldRef", Keep, Msg("ResourceFieldSelector")),
            f(3, "configMapKeyRef", Keep, Msg("ConfigMapKeySelector")),
            f(4, "secretKeyRef", Keep, Msg("SecretKeySelector")),
            f(5, "fileKeyRef", Keep, Msg("FileKeySelector")),
        ],
    ),
    msg(
        "EphemeralVolumeSource",
        &[f(
            1,
            "volumeClaimTemplate",
            Keep,
            Msg("PersistentVolumeClaimTemplate"),
        )],
    ),
    msg(
        "Event",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "involvedObject", Keep, Msg("ObjectReference")),
            f(3, "reason", Omit, Str),
            f(4, "message", Omit, Str),
            f(5, "source", Keep, Msg("EventSource")),
            f(6, "firstTimestamp", Keep, Time),
            f(7, "lastTimestamp", Keep, Time),
            f(8, "count", Omit, Int32),
            f(9, "type", Omit, Str),
            f(10, "eventTime", Keep, MicroTime),
            f(11, "series", Keep, Msg("EventSeries")),
            f(12, "action", Omit, Str),
            f(13, "related", Keep, Msg("ObjectReference")),
            f(14, "reportingComponent", Keep, Str),
            f(15, "reportingInstance", Keep, Str),
        ],
    ),
    msg(
        "EventSeries",
        &[
            f(1, "count", Omit, Int32),
            f(2, "lastObservedTime", Keep, MicroTime),
        ],
    ),
    msg(
        "EventSource",
        &[f(1, "component", Omit, Str), f(2, "host", Omit, Str)],
    ),
    msg("ExecAction", &[f(1, "command", Rep, Str)]),
    msg(
        "FileKeySelector",
        &[
            f(1, "volumeName", Keep, Str),
            f(2, "path", Keep, Str),
            f(3, "key", Keep, Str),
            f(4, "optional", Keep, Bool),
        ],
    ),
    msg(
        "GRPCAction",
        &[
            f(1, "port", Keep, Int32),
            f(2, "service", Keep, Str),
            f(3, "mode", Keep, Str),
        ],
    ),
    msg(
        "HTTPGetAction",
        &[
            f(1, "path", Omit, Str),
            f(2, "port", Keep, IntOrString),
            f(3, "host", Omit, Str),
            f(4, "scheme", Omit, Str),
            f(5, "httpHeaders", Rep, Msg("HTTPHeader")),
            f(6, "protocol", Keep, Str),
        ],
    ),
    msg(
        "HTTPHeader",
        &[f(1, "name", Keep, Str), f(2, "value", Keep, Str)],
    ),
    msg(
        "HostAlias",
        &[f(1, "ip", Keep, Str), f(2, "hostnames", Rep, Str)],
    ),
    msg("HostIP", &[f(1, "ip", Keep, Str)]),
    msg(
        "HostPathVolumeSource",
        &[f(1, "path", Keep, Str), f(2, "type", Keep, Str)],
    ),
    msg(
        "ImageVolumeSource",
        &[f(1, "reference", Omit, Str), f(2, "pullPolicy", Omit, Str)],
    ),
    msg(
        "KeyToPath",
        &[
            f(1, "key", Keep, Str),
            f(2, "path", Keep, Str),
            f(3, "mode", Keep, Int32),
            f(4, "user", Keep, Int64),
        ],
    ),
    msg(
        "Lifecycle",
        &[
            f(1, "postStart", Keep, Msg("LifecycleHandler")),
            f(2, "preStop", Keep, Msg("LifecycleHandler")),
            f(3, "stopSignal", Keep, Str),
        ],
    ),
    msg(
        "LifecycleHandler",
        &[
            f(1, "exec", Keep, Msg("ExecAction")),
            f(2, "httpGet", Keep, Msg("HTTPGetAction")),
            f(3, "tcpSocket", Keep, Msg("TCPSocketAction")),
            f(4, "sleep", Keep, Msg("SleepAction")),
        ],
    ),
    msg(
        "LoadBalancerIngress",
        &[
            f(1, "ip", Omit, Str),
            f(2, "hostname", Omit, Str),
            f(3, "ipMode", Keep, Str),
            f(4, "ports", Rep, Msg("PortStatus")),
        ],
    ),
    msg(
        "LoadBalancerStatus",
        &[f(1, "ingress", Rep, Msg("LoadBalancerIngress"))],
    ),
    msg("LocalObjectReference", &[f(1, "name", Omit, Str)]),
    msg(
        "Namespace",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "spec", Keep, Msg("NamespaceSpec")),
            f(3, "status", Keep, Msg("NamespaceStatus")),
        ],
    ),
    msg(
        "NamespaceCondition",
        &[
            f(1, "type", Keep, Str),
            f(2, "status", Keep, Str),
            f(4, "lastTransitionTime", Keep, Time),
            f(5, "reason", Omit, Str),
            f(6, "message", Omit, Str),
        ],
    ),
    msg("NamespaceSpec", &[f(1, "finalizers", Rep, Str)]),
    msg(
        "NamespaceStatus",
        &[
            f(1, "phase", Omit, Str),
            f(2, "conditions", Rep, Msg("NamespaceCondition")),
        ],
    ),
    msg(
        "NodeAffinity",
        &[
            f(
                1,
                "requiredDuringSchedulingIgnoredDuringExecution",
                Keep,
                Msg("NodeSelector"),
            ),
            f(
                2,
                "preferredDuringSchedulingIgnoredDuringExecution",
                Rep,
                Msg("PreferredSchedulingTerm"),
            ),
        ],
    ),
    msg(
        "NodeSelector",
        &[f(1, "nodeSelectorTerms", Rep, Msg("NodeSelectorTerm"))],
    ),
    msg(
        "NodeSelectorRequirement",
        &[
            f(1, "key", Keep, Str),
            f(2, "operator", Keep, Str),
            f(3, "values", Rep, Str),
        ],
    ),
    msg(
        "NodeSelectorTerm",
        &[
            f(1, "matchExpressions", Rep, Msg("NodeSelectorRequirement")),
            f(2, "matchFields", Rep, Msg("NodeSelectorRequirement")),
        ],
    ),
    msg(
        "ObjectFieldSelector",
        &[f(1, "apiVersion", Omit, Str), f(2, "fieldPath", Keep, Str)],
    ),
    msg(
        "ObjectReference",
        &[
            f(1, "kind", Omit, Str),
            f(2, "namespace", Omit, Str),
            f(3, "name", Omit, Str),
            f(4, "uid", Omit, Str),
            f(5, "apiVersion", Omit, Str),
            f(6, "resourceVersion", Omit, Str),
            f(7, "fieldPath", Omit, Str),
        ],
    ),
    msg(
        "PersistentVolumeClaimSpec",
        &[
            f(1, "accessModes", Rep, Str),
            f(2, "resources", Keep, Msg("VolumeResourceRequirements")),
            f(3, "volumeName", Omit, Str),
            f(4, "selector", Keep, Msg("meta.LabelSelector")),
            f(5, "storageClassName", Keep, Str),
            f(6, "volumeMode", Keep, Str),
            f(7, "dataSource", Keep, Msg("TypedLocalObjectReference")),
            f(8, "dataSourceRef", Keep, Msg("TypedObjectReference")),
            f(9, "volumeAttributesClassName", Keep, Str),
        ],
    ),
    msg(
        "PersistentVolumeClaimTemplate",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "spec", Keep, Msg("PersistentVolumeClaimSpec")),
        ],
    ),
    msg(
        "PersistentVolumeClaimVolumeSource",
        &[f(1, "claimName", Keep, Str), f(2, "readOnly", Omit, Bool)],
    ),
    msg(
        "Pod",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "spec", Keep, Msg("PodSpec")),
            f(3, "status", Keep, Msg("PodStatus")),
        ],
    ),
    msg(
        "PodAffinity",
        &[
            f(
                1,
                "requiredDuringSchedulingIgnoredDuringExecution",
                Rep,
                Msg("PodAffinityTerm"),
            ),
            f(
                2,
                "preferredDuringSchedulingIgnoredDuringExecution",
                Rep,
                Msg("WeightedPodAffinityTerm"),
            ),
        ],
    ),
    msg(
        "PodAffinityTerm",
        &[
            f(1, "labelSelector", Keep, Msg("meta.LabelSelector")),
            f(2, "namespaces", Rep, Str),
            f(3, "topologyKey", Keep, Str),
            f(4, "namespaceSelector", Keep, Msg("meta.LabelSelector")),
            f(5, "matchLabelKeys", Rep, Str),
            f(6, "mismatchLabelKeys", Rep, Str),
        ],
    ),
    msg(
        "PodAntiAffinity",
        &[
            f(
                1,
                "requiredDuringSchedulingIgnoredDuringExecution",
                Rep,
                Msg("PodAffinityTerm"),
            ),
            f(
                2,
                "preferredDuringSchedulingIgnoredDuringExecution",
                Rep,
                Msg("WeightedPodAffinityTerm"),
            ),
        ],
    ),
    msg(
        "PodCertificateProjection",
        &[
            f(1, "signerName", Omit, Str),
            f(2, "keyType", Omit, Str),
            f(3, "maxExpirationSeconds", Keep, Int32),
            f(4, "credentialBundlePath", Omit, Str),
            f(5, "keyPath", Omit, Str),
            f(6, "certificateChainPath", Omit, Str),
            f(7, "userAnnotations", Rep, Ty::Map(MapStr)),
            f(8, "user", Keep, Int64),
        ],
    ),
    msg(
        "PodCondition",
        &[
            f(1, "type", Keep, Str),
            f(2, "status", Keep, Str),
            f(3, "lastProbeTime", Keep, Time),
            f(4, "lastTransitionTime", Keep, Time),
            f(5, "reason", Omit, Str),
            f(6, "message", Omit, Str),
            f(7, "observedGeneration", Omit, Int64),
        ],
    ),
    msg(
        "PodDNSConfig",
        &[
            f(1, "nameservers", Rep, Str),
            f(2, "searches", Rep, Str),
            f(3, "options", Rep, Msg("PodDNSConfigOption")),
        ],
    ),
    msg(
        "PodDNSConfigOption",
        &[f(1, "name", Omit, Str), f(2, "value", Keep, Str)],
    ),
    msg("PodIP", &[f(1, "ip", Keep, Str)]),
    msg("PodOS", &[f(1, "name", Keep, Str)]),
    msg("PodReadinessGate", &[f(1, "conditionType", Keep, Str)]),
    msg(
        "PodResourceClaim",
        &[
            f(1, "name", Keep, Str),
            f(3, "resourceClaimName", Keep, Str),
            f(4, "resourceClaimTemplateName", Keep, Str),
        ],
    ),
    msg("PodSchedulingGate", &[f(1, "name", Keep, Str)]),
    msg(
        "PodSecurityContext",
        &[
            f(1, "seLinuxOptions", Keep, Msg("SELinuxOptions")),
            f(2, "runAsUser", Keep, Int64),
            f(3, "runAsNonRoot", Keep, Bool),
            f(4, "supplementalGroups", Rep, Int64),
            f(5, "fsGroup", Keep, Int64),
            f(6, "runAsGroup", Keep, Int64),
            f(7, "sysctls", Rep, Msg("Sysctl")),
            f(
                8,
                "windowsOptions",
                Keep,
                Msg("WindowsSecurityContextOptions"),
            ),
            f(9, "fsGroupChangePolicy", Keep, Str),
            f(10, "seccompProfile", Keep, Msg("SeccompProfile")),
            f(11, "appArmorProfile", Keep, Msg("AppArmorProfile")),
            f(12, "supplementalGroupsPolicy", Keep, Str),
            f(13, "seLinuxChangePolicy", Keep, Str),
        ],
    ),
    msg(
        "PodSpec",
        &[
            f(1, "volumes", Rep, Msg("Volume")),
            f(2, "containers", Rep, Msg("Container")),
            f(3, "restartPolicy", Omit, Str),
            f(4, "terminationGracePeriodSeconds", Keep, Int64),
            f(5, "activeDeadlineSeconds", Keep, Int64),
            f(6, "dnsPolicy", Omit, Str),
            f(7, "nodeSelector", Rep, Ty::Map(MapStr)),
            f(8, "serviceAccountName", Omit, Str),
            f(9, "serviceAccount", Omit, Str),
            f(10, "nodeName", Omit, Str),
            f(11, "hostNetwork", Omit, Bool),
            f(12, "hostPID", Omit, Bool),
            f(13, "hostIPC", Omit, Bool),
            f(14, "securityContext", Keep, Msg("PodSecurityContext")),
            f(15, "imagePullSecrets", Rep, Msg("LocalObjectReference")),
            f(16, "hostname", Omit, Str),
            f(17, "subdomain", Omit, Str),
            f(18, "affinity", Keep, Msg("Affinity")),
            f(19, "schedulerName", Omit, Str),
            f(20, "initContainers", Rep, Msg("Container")),
            f(21, "automountServiceAccountToken", Keep, Bool),
            f(22, "tolerations", Rep, Msg("Toleration")),
            f(23, "hostAliases", Rep, Msg("HostAlias")),
            f(24, "priorityClassName", Omit, Str),
            f(25, "priority", Keep, Int32),
            f(26, "dnsConfig", Keep, Msg("PodDNSConfig")),
            f(27, "shareProcessNamespace", Keep, Bool),
            f(28, "readinessGates", Rep, Msg("PodReadinessGate")),
            f(29, "runtimeClassName", Keep, Str),
            f(30, "enableServiceLinks", Keep, Bool),
            f(31, "preemptionPolicy", Keep, Str),
            f(32, "overhead", Rep, Ty::Map(MapQuantity)),
            f(
                33,
                "topologySpreadConstraints",
                Rep,
                Msg("TopologySpreadConstraint"),
            ),
            f(35, "setHostnameAsFQDN", Keep, Bool),
            f(36, "os", Keep, Msg("PodOS")),
            f(37, "hostUsers", Keep, Bool),
            f(38, "schedulingGates", Rep, Msg("PodSchedulingGate")),
            f(39, "resourceClaims", Rep, Msg("PodResourceClaim")),
            f(40, "resources", Keep, Msg("ResourceRequirements")),
            f(41, "hostnameOverride", Keep, Str),
        ],
    ),
    msg(
        "PodStatus",
        &[
            f(1, "phase", Omit, Str),
            f(2, "conditions", Rep, Msg("PodCondition")),
            f(3, "message", Omit, Str),
            f(4, "reason", Omit, Str),
            f(5, "hostIP", Omit, Str),
            f(6, "podIP", Omit, Str),
            f(7, "startTime", Keep, Time),
            f(9, "qosClass", Omit, Str),
            f(11, "nominatedNodeName", Omit, Str),
            f(12, "podIPs", Rep, Msg("PodIP")),
            f(14, "resize", Omit, Str),
            f(16, "hostIPs", Rep, Msg("HostIP")),
            f(17, "observedGeneration", Omit, Int64),
            f(19, "allocatedResources", Rep, Ty::Map(MapQuantity)),
            f(20, "resources", Keep, Msg("ResourceRequirements")),
        ],
    ),
    msg(
        "PodTemplateSpec",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "spec", Keep, Msg("PodSpec")),
        ],
    ),
    msg(
        "PortStatus",
        &[
            f(1, "port", Keep, Int32),
            f(2, "protocol", Keep, Str),
            f(3, "error", Keep, Str),
        ],
    ),
    msg(
        "PreferredSchedulingTerm",
        &[
            f(1, "weight", Keep, Int32),
            f(2, "preference", Keep, Msg("NodeSelectorTerm")),
        ],
    ),
    msg(
        "Probe",
        &[
            f(1, "", Inline, Msg("ProbeHandler")),
            f(2, "initialDelaySeconds", Omit, Int32),
            f(3, "timeoutSeconds", Omit, Int32),
            f(4, "periodSeconds", Omit, Int32),
            f(5, "successThreshold", Omit, Int32),
            f(6, "failureThreshold", Omit, Int32),
            f(7, "terminationGracePeriodSeconds", Keep, Int64),
        ],
    ),
    msg(
        "ProbeHandler",
        &[
            f(1, "exec", Keep, Msg("ExecAction")),
            f(2, "httpGet", Keep, Msg("HTTPGetAction")),
            f(3, "tcpSocket", Keep, Msg("TCPSocketAction")),
            f(4, "grpc", Keep, Msg("GRPCAction")),
        ],
    ),
    msg(
        "ProjectedVolumeSource",
        &[
            f(1, "sources", Rep, Msg("VolumeProjection")),
            f(2, "defaultMode", Keep, Int32),
            f(3, "defaultUser", Keep, Int64),
        ],
    ),
    msg(
        "ResourceClaim",
        &[f(1, "name", Keep, Str), f(2, "request", Omit, Str)],
    ),
    msg(
        "ResourceFieldSelector",
        &[
            f(1, "containerName", Omit, Str),
            f(2, "resource", Keep, Str),
            f(3, "divisor", Keep, Quantity),
        ],
    ),
    msg(
        "ResourceRequirements",
        &[
            f(1, "limits", Rep, Ty::Map(MapQuantity)),
            f(2, "requests", Rep, Ty::Map(MapQuantity)),
            f(3, "claims", Rep, Msg("ResourceClaim")),
        ],
    ),
    msg(
        "SELinuxOptions",
        &[
            f(1, "user", Omit, Str),
            f(2, "role", Omit, Str),
            f(3, "type", Omit, Str),
            f(4, "level", Omit, Str),
        ],
    ),
    msg(
        "SeccompProfile",
        &[f(1, "type", Keep, Str), f(2, "localhostProfile", Keep, Str)],
    ),
    msg(
        "Secret",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "data", Rep, Ty::Map(MapBytes)),
            f(3, "type", Omit, Str),
            f(4, "stringData", Rep, Ty::Map(MapStr)),
            f(5, "immutable", Keep, Bool),
        ],
    ),
    msg(
        "SecretEnvSource",
        &[
            f(1, "", Inline, Msg("LocalObjectReference")),
            f(2, "optional", Keep, Bool),
        ],
    ),
    msg(
        "SecretKeySelector",
        &[
            f(1, "", Inline, Msg("LocalObjectReference")),
            f(2, "key", Keep, Str),
            f(3, "optional", Keep, Bool),
        ],
    ),
    msg(
        "SecretProjection",
        &[
            f(1, "", Inline, Msg("LocalObjectReference")),
            f(2, "items", Rep, Msg("KeyToPath")),
            f(4, "optional", Keep, Bool),
        ],
    ),
    msg(
        "SecretVolumeSource",
        &[
            f(1, "secretName", Omit, Str),
            f(2, "items", Rep, Msg("KeyToPath")),
            f(3, "defaultMode", Keep, Int32),
            f(4, "optional", Keep, Bool),
            f(5, "defaultUser", Keep, Int64),
        ],
    ),
    msg(
        "SecurityContext",
        &[
            f(1, "capabilities", Keep, Msg("Capabilities")),
            f(2, "privileged", Keep, Bool),
            f(3, "seLinuxOptions", Keep, Msg("SELinuxOptions")),
            f(4, "runAsUser", Keep, Int64),
            f(5, "runAsNonRoot", Keep, Bool),
            f(6, "readOnlyRootFilesystem", Keep, Bool),
            f(7, "allowPrivilegeEscalation", Keep, Bool),
            f(8, "runAsGroup", Keep, Int64),
            f(9, "procMount", Keep, Str),
            f(
                10,
                "windowsOptions",
                Keep,
                Msg("WindowsSecurityContextOptions"),
            ),
            f(11, "seccompProfile", Keep, Msg("SeccompProfile")),
            f(12, "appArmorProfile", Keep, Msg("AppArmorProfile")),
        ],
    ),
    msg(
        "Service",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "spec", Keep, Msg("ServiceSpec")),
            f(3, "status", Keep, Msg("ServiceStatus")),
        ],
    ),
    msg(
        "ServiceAccount",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "secrets", Rep, Msg("ObjectReference")),
            f(3, "imagePullSecrets", Rep, Msg("LocalObjectReference")),
            f(4, "automountServiceAccountToken", Keep, Bool),
        ],
    ),
    msg(
        "ServiceAccountTokenProjection",
        &[
            f(1, "audience", Omit, Str),
            f(2, "expirationSeconds", Keep, Int64),
            f(3, "path", Keep, Str),
            f(4, "user", Keep, Int64),
        ],
    ),
    msg(
        "ServicePort",
        &[
            f(1, "name", Omit, Str),
            f(2, "protocol", Omit, Str),
            f(3, "port", Keep, Int32),
            f(4, "targetPort", Keep, IntOrString),
            f(5, "nodePort", Omit, Int32),
            f(6, "appProtocol", Keep, Str),
        ],
    ),
    msg(
        "ServiceSpec",
        &[
            f(1, "ports", Rep, Msg("ServicePort")),
            f(2, "selector", Rep, Ty::Map(MapStr)),
            f(3, "clusterIP", Omit, Str),
            f(4, "type", Omit, Str),
            f(5, "externalIPs", Rep, Str),
            f(7, "sessionAffinity", Omit, Str),
            f(8, "loadBalancerIP", Omit, Str),
            f(9, "loadBalancerSourceRanges", Rep, Str),
            f(10, "externalName", Omit, Str),
            f(11, "externalTrafficPolicy", Omit, Str),
            f(12, "healthCheckNodePort", Omit, Int32),
            f(13, "publishNotReadyAddresses", Omit, Bool),
            f(
                14,
                "sessionAffinityConfig",
                Keep,
                Msg("SessionAffinityConfig"),
            ),
            f(17, "ipFamilyPolicy", Keep, Str),
            f(18, "clusterIPs", Rep, Str),
            f(19, "ipFamilies", Rep, Str),
            f(20, "allocateLoadBalancerNodePorts", Keep, Bool),
            f(21, "loadBalancerClass", Keep, Str),
            f(22, "internalTrafficPolicy", Keep, Str),
            f(23, "trafficDistribution", Keep, Str),
        ],
    ),
    msg(
        "ServiceStatus",
        &[
            f(1, "loadBalancer", Keep, Msg("LoadBalancerStatus")),
            f(2, "conditions", Rep, Msg("meta.Condition")),
        ],
    ),
    msg(
        "SessionAffinityConfig",
        &[f(1, "clientIP", Keep, Msg("ClientIPConfig"))],
    ),
    msg("SleepAction", &[f(1, "seconds", Keep, Int64)]),
    msg(
        "Sysctl",
        &[f(1, "name", Keep, Str), f(2, "value", Keep, Str)],
    ),
    msg(
        "TCPSocketAction",
        &[f(1, "port", Keep, IntOrString), f(2, "host", Omit, Str)],
    ),
    msg(
        "Toleration",
        &[
            f(1, "key", Omit, Str),
            f(2, "operator", Omit, Str),
            f(3, "value", Omit, Str),
            f(4, "effect", Omit, Str),
            f(5, "tolerationSeconds", Keep, Int64),
        ],
    ),
    msg(
        "TopologySpreadConstraint",
        &[
            f(1, "maxSkew", Keep, Int32),
            f(2, "topologyKey", Keep, Str),
            f(3, "whenUnsatisfiable", Keep, Str),
            f(4, "labelSelector", Keep, Msg("meta.LabelSelector")),
            f(5, "minDomains", Keep, Int32),
            f(6, "nodeAffinityPolicy", Keep, Str),
            f(7, "nodeTaintsPolicy", Keep, Str),
            f(8, "matchLabelKeys", Rep, Str),
        ],
    ),
    msg(
        "TypedLocalObjectReference",
        &[
            f(1, "apiGroup", Keep, Str),
            f(2, "kind", Keep, Str),
            f(3, "name", Keep, Str),
        ],
    ),
    msg(
        "TypedObjectReference",
        &[
            f(1, "apiGroup", Keep, Str),
            f(2, "kind", Keep, Str),
            f(3, "name", Keep, Str),
            f(4, "namespace", Keep, Str),
        ],
    ),
    msg(
        "Volume",
        &[
            f(1, "name", Keep, Str),
            f(2, "", Inline, Msg("VolumeSource")),
        ],
    ),
    msg(
        "VolumeDevice",
        &[f(1, "name", Keep, Str), f(2, "devicePath", Keep, Str)],
    ),
    msg(
        "VolumeMount",
        &[
            f(1, "name", Keep, Str),
            f(2, "readOnly", Omit, Bool),
            f(3, "mountPath", Keep, Str),
            f(4, "subPath", Omit, Str),
            f(5, "mountPropagation", Keep, Str),
            f(6, "subPathExpr", Omit, Str),
            f(7, "recursiveReadOnly", Keep, Str),
            f(8, "bindMountOptions", Rep, Str),
        ],
    ),
    msg(
        "VolumeProjection",
        &[
            f(1, "secret", Keep, Msg("SecretProjection")),
            f(2, "downwardAPI", Keep, Msg("DownwardAPIProjection")),
            f(3, "configMap", Keep, Msg("ConfigMapProjection")),
            f(
                4,
                "serviceAccountToken",
                Keep,
                Msg("ServiceAccountTokenProjection"),
            ),
            f(
                5,
                "clusterTrustBundle",
                Keep,
                Msg("ClusterTrustBundleProjection"),
            ),
            f(6, "podCertificate", Keep, Msg("PodCertificateProjection")),
        ],
    ),
    msg(
        "VolumeResourceRequirements",
        &[
            f(1, "limits", Rep, Ty::Map(MapQuantity)),
            f(2, "requests", Rep, Ty::Map(MapQuantity)),
        ],
    ),
    msg(
        "VolumeSource",
        &[
            f(1, "hostPath", Keep, Msg("HostPathVolumeSource")),
            f(2, "emptyDir", Keep, Msg("EmptyDirVolumeSource")),
            f(6, "secret", Keep, Msg("SecretVolumeSource")),
            f(
                10,
                "persistentVolumeClaim",
                Keep,
                Msg("PersistentVolumeClaimVolumeSource"),
            ),
            f(16, "downwardAPI", Keep, Msg("DownwardAPIVolumeSource")),
            f(19, "configMap", Keep, Msg("ConfigMapVolumeSource")),
            f(26, "projected", Keep, Msg("ProjectedVolumeSource")),
            f(28, "csi", Keep, Msg("CSIVolumeSource")),
            f(29, "ephemeral", Keep, Msg("EphemeralVolumeSource")),
            f(30, "image", Keep, Msg("ImageVolumeSource")),
        ],
    ),
    msg(
        "WeightedPodAffinityTerm",
        &[
            f(1, "weight", Keep, Int32),
            f(2, "podAffinityTerm", Keep, Msg("PodAffinityTerm")),
        ],
    ),
    msg(
        "WindowsSecurityContextOptions",
        &[
            f(1, "gmsaCredentialSpecName", Keep, Str),
            f(2, "gmsaCredentialSpec", Keep, Str),
            f(3, "runAsUserName", Keep, Str),
            f(4, "hostProcess", Keep, Bool),
        ],
    ),
    msg(
        "apps.Deployment",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "spec", Keep, Msg("apps.DeploymentSpec")),
            f(3, "status", Keep, Msg("apps.DeploymentStatus")),
        ],
    ),
    msg(
        "apps.DeploymentCondition",
        &[
            f(1, "type", Keep, Str),
            f(2, "status", Keep, Str),
            f(4, "reason", Omit, Str),
            f(5, "message", Omit, Str),
            f(6, "lastUpdateTime", Keep, Time),
            f(7, "lastTransitionTime", Keep, Time),
        ],
    ),
    msg(
        "apps.DeploymentSpec",
        &[
            f(1, "replicas", Keep, Int32),
            f(2, "selector", Keep, Msg("meta.LabelSelector")),
            f(3, "template", Keep, Msg("PodTemplateSpec")),
            f(4, "strategy", Keep, Msg("apps.DeploymentStrategy")),
            f(5, "minReadySeconds", Omit, Int32),
            f(6, "revisionHistoryLimit", Keep, Int32),
            f(7, "paused", Omit, Bool),
            f(9, "progressDeadlineSeconds", Keep, Int32),
        ],
    ),
    msg(
        "apps.DeploymentStatus",
        &[
            f(1, "observedGeneration", Omit, Int64),
            f(2, "replicas", Omit, Int32),
            f(3, "updatedReplicas", Omit, Int32),
            f(4, "availableReplicas", Omit, Int32),
            f(5, "unavailableReplicas", Omit, Int32),
            f(6, "conditions", Rep, Msg("apps.DeploymentCondition")),
            f(7, "readyReplicas", Omit, Int32),
            f(8, "collisionCount", Keep, Int32),
            f(9, "terminatingReplicas", Keep, Int32),
        ],
    ),
    msg(
        "apps.DeploymentStrategy",
        &[
            f(1, "type", Omit, Str),
            f(
                2,
                "rollingUpdate",
                Keep,
                Msg("apps.RollingUpdateDeployment"),
            ),
        ],
    ),
    msg(
        "apps.ReplicaSet",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "spec", Keep, Msg("apps.ReplicaSetSpec")),
            f(3, "status", Keep, Msg("apps.ReplicaSetStatus")),
        ],
    ),
    msg(
        "apps.ReplicaSetCondition",
        &[
            f(1, "type", Keep, Str),
            f(2, "status", Keep, Str),
            f(3, "lastTransitionTime", Keep, Time),
            f(4, "reason", Omit, Str),
            f(5, "message", Omit, Str),
        ],
    ),
    msg(
        "apps.ReplicaSetSpec",
        &[
            f(1, "replicas", Keep, Int32),
            f(2, "selector", Keep, Msg("meta.LabelSelector")),
            f(3, "template", Keep, Msg("PodTemplateSpec")),
            f(4, "minReadySeconds", Omit, Int32),
        ],
    ),
    msg(
        "apps.ReplicaSetStatus",
        &[
            f(1, "replicas", Keep, Int32),
            f(2, "fullyLabeledReplicas", Omit, Int32),
            f(3, "observedGeneration", Omit, Int64),
            f(4, "readyReplicas", Omit, Int32),
            f(5, "availableReplicas", Omit, Int32),
            f(6, "conditions", Rep, Msg("apps.ReplicaSetCondition")),
            f(7, "terminatingReplicas", Keep, Int32),
        ],
    ),
    msg(
        "apps.RollingUpdateDeployment",
        &[
            f(1, "maxUnavailable", Keep, IntOrString),
            f(2, "maxSurge", Keep, IntOrString),
        ],
    ),
    msg(
        "autoscaling.Scale",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "spec", Keep, Msg("autoscaling.ScaleSpec")),
            f(3, "status", Keep, Msg("autoscaling.ScaleStatus")),
        ],
    ),
    msg("autoscaling.ScaleSpec", &[f(1, "replicas", Omit, Int32)]),
    msg(
        "autoscaling.ScaleStatus",
        &[f(1, "replicas", Keep, Int32), f(2, "selector", Omit, Str)],
    ),
    msg(
        "coordination.Lease",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "spec", Keep, Msg("coordination.LeaseSpec")),
        ],
    ),
    msg(
        "coordination.LeaseSpec",
        &[
            f(1, "holderIdentity", Keep, Str),
            f(2, "leaseDurationSeconds", Keep, Int32),
            f(3, "acquireTime", Keep, MicroTime),
            f(4, "renewTime", Keep, MicroTime),
            f(5, "leaseTransitions", Keep, Int32),
            f(6, "strategy", Keep, Str),
            f(7, "preferredHolder", Keep, Str),
        ],
    ),
    msg(
        "discovery.Endpoint",
        &[
            f(1, "addresses", Rep, Str),
            f(2, "conditions", Keep, Msg("discovery.EndpointConditions")),
            f(3, "hostname", Keep, Str),
            f(4, "targetRef", Keep, Msg("ObjectReference")),
            f(5, "deprecatedTopology", Rep, Ty::Map(MapStr)),
            f(6, "nodeName", Keep, Str),
            f(7, "zone", Keep, Str),
            f(8, "hints", Keep, Msg("discovery.EndpointHints")),
        ],
    ),
    msg(
        "discovery.EndpointConditions",
        &[
            f(1, "ready", Keep, Bool),
            f(2, "serving", Keep, Bool),
            f(3, "terminating", Keep, Bool),
        ],
    ),
    msg(
        "discovery.EndpointHints",
        &[
            f(1, "forZones", Rep, Msg("discovery.ForZone")),
            f(2, "forNodes", Rep, Msg("discovery.ForNode")),
        ],
    ),
    msg(
        "discovery.EndpointPort",
        &[
            f(1, "name", Keep, Str),
            f(2, "protocol", Keep, Str),
            f(3, "port", Keep, Int32),
            f(4, "appProtocol", Keep, Str),
        ],
    ),
    msg(
        "discovery.EndpointSlice",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "endpoints", Rep, Msg("discovery.Endpoint")),
            f(3, "ports", Rep, Msg("discovery.EndpointPort")),
            f(4, "addressType", Keep, Str),
        ],
    ),
    msg("discovery.ForNode", &[f(1, "name", Keep, Str)]),
    msg("discovery.ForZone", &[f(1, "name", Keep, Str)]),
    msg(
        "events.Event",
        &[
            f(1, "metadata", Keep, Msg("meta.ObjectMeta")),
            f(2, "eventTime", Keep, MicroTime),
            f(3, "series", Keep, Msg("events.EventSeries")),
            f(4, "reportingController", Omit, Str),
            f(5, "reportingInstance", Omit, Str),
            f(6, "action", Omit, Str),
            f(7, "reason", Omit, Str),
            f(8, "regarding", Keep, Msg("ObjectReference")),
            f(9, "related", Keep, Msg("ObjectReference")),
            f(10, "note", Omit, Str),
            f(11, "type", Omit, Str),
            f(12, "deprecatedSource", Keep, Msg("EventSource")),
            f(13, "deprecatedFirstTimestamp", Keep, Time),
            f(14, "deprecatedLastTimestamp", Keep, Time),
            f(15, "deprecatedCount", Omit, Int32),
        ],
    ),
    msg(
        "events.EventSeries",
        &[
            f(1, "count", Keep, Int32),
            f(2, "lastObservedTime", Keep, MicroTime),
        ],
    ),
    msg(
        "meta.Condition",
        &[
            f(1, "type", Keep, Str),
            f(2, "status", Keep, Str),
            f(3, "observedGeneration", Omit, Int64),
            f(4, "lastTransitionTime", Keep, Time),
            f(5, "reason", Keep, Str),
            f(6, "message", Keep, Str),
        ],
    ),
    msg(
        "meta.DeleteOptions",
        &[
            f(1, "gracePeriodSeconds", Keep, Int64),
            f(2, "preconditions", Keep, Msg("meta.Preconditions")),
            f(3, "orphanDependents", Keep, Bool),
            f(4, "propagationPolicy", Keep, Str),
            f(5, "dryRun", Rep, Str),
            f(
                6,
                "ignoreStoreReadErrorWithClusterBreakingPotential",
                Keep,
                Bool,
            ),
        ],
    ),
    msg(
        "meta.LabelSelector",
        &[
            f(1, "matchLabels", Rep, Ty::Map(MapStr)),
            f(
                2,
                "matchExpressions",
                Rep,
                Msg("meta.LabelSelectorRequirement"),
            ),
        ],
    ),
    msg(
        "meta.LabelSelectorRequirement",
        &[
            f(1, "key", Keep, Str),
            f(2, "operator", Keep, Str),
            f(3, "values", Rep, Str),
        ],
    ),
    msg(
        "meta.ObjectMeta",
        &[
            f(1, "name", Omit, Str),
            f(2, "generateName", Omit, Str),
            f(3, "namespace", Omit, Str),
            f(4, "selfLink", Omit, Str),
            f(5, "uid", Omit, Str),
            f(6, "resourceVersion", Omit, Str),
            f(7, "generation", Omit, Int64),
            f(8, "creationTimestamp", Keep, Time),
            f(9, "deletionTimestamp", Keep, Time),
            f(10, "deletionGracePeriodSeconds", Keep, Int64),
            f(11, "labels", Rep, Ty::Map(MapStr)),
            f(12, "annotations", Rep, Ty::Map(MapStr)),
            f(13, "ownerReferences", Rep, Msg("meta.OwnerReference")),
            f(14, "finalizers", Rep, Str),
        ],
    ),
    msg(
        "meta.OwnerReference",
        &[
            f(1, "kind", Keep, Str),
            f(3, "name", Keep, Str),
            f(4, "uid", Keep, Str),
            f(5, "apiVersion", Keep, Str),
            f(6, "controller", Keep, Bool),
            f(7, "blockOwnerDeletion", Keep, Bool),
        ],
    ),
    msg(
        "meta.Preconditions",
        &[f(1, "uid", Keep, Str), f(2, "resourceVersion", Keep, Str)],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_sorted_and_fields_sorted_unique() {
        for w in MESSAGES.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        for m in MESSAGES {
            for w in m.fields.windows(2) {
                assert!(w[0].number < w[1].number, "{}: field numbers", m.name);
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        for m in MESSAGES {
            for fl in m.fields {
                if let Ty::Msg(name) = fl.ty {
                    assert!(message(name).is_some(), "{}.{}: {name}", m.name, fl.name);
                }
                assert_eq!(fl.name.is_empty(), fl.card == Card::Inline, "{}", m.name);
            }
        }
        for (_, kind, m) in KINDS {
            assert!(message(m).is_some(), "{kind}: {m}");
        }
    }

    #[test]
    fn kinds_by_group() {
        assert_eq!(kind_message("v1", "Pod").unwrap().name, "Pod");
        assert_eq!(
            kind_message("apps/v1", "Deployment").unwrap().name,
            "apps.Deployment"
        );
        assert_eq!(
            kind_message("events.k8s.io/v1", "Event").unwrap().name,
            "events.Event"
        );
        assert_eq!(kind_message("v1", "Event").unwrap().name, "Event");
        assert_eq!(
            kind_message("meta.k8s.io/v1", "DeleteOptions")
                .unwrap()
                .name,
            "meta.DeleteOptions"
        );
        assert_eq!(
            kind_message("v1", "DeleteOptions").unwrap().name,
            "meta.DeleteOptions"
        );
        assert!(kind_message("apps/v1", "Pod").is_none());
        assert!(kind_message("batch/v1", "Job").is_none());
    }

    #[test]
    fn well_known_numbers() {
        let spec = message("ServiceSpec").unwrap();
        assert_eq!(spec.field(1).unwrap().name, "ports");
        assert_eq!(spec.field(3).unwrap().name, "clusterIP");
        assert_eq!(spec.field(18).unwrap().name, "clusterIPs");
        let c = message("Container").unwrap();
        assert_eq!(c.field(2).unwrap().name, "image");
        assert_eq!(c.field(8).unwrap().ty, Ty::Msg("ResourceRequirements"));
        let d = message("apps.DeploymentSpec").unwrap();
        assert_eq!(
            d.field(1).unwrap().card,
            Card::Keep,
            "replicas is a pointer"
        );
    }
}
