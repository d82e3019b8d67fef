//! Decoding tests: bodies captured from kubectl 1.32 (`-v=8` prints them) checked
//! against the JSON kubectl sends for the same command (`--dry-run=client -o json`),
//! and hand-encoded messages for what the generators never send.

use super::*;
use serde_json::json;

/// A body as kubectl's `-v=8` hex dump shows it.
fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.split_whitespace().collect();
    ::hex::decode(digits).unwrap()
}

// A tiny encoder, for tests only.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// A varint field.
fn vi(number: u32, v: u64) -> Vec<u8> {
    let mut out = varint(u64::from(number) << 3);
    out.extend(varint(v));
    out
}

/// A length-delimited field.
fn ld(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(number) << 3 | 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn s(number: u32, v: &str) -> Vec<u8> {
    ld(number, v.as_bytes())
}

fn entry(number: u32, k: &str, v: &[u8]) -> Vec<u8> {
    ld(number, &[ld(1, k.as_bytes()), ld(2, v)].concat())
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [s(1, api_version), s(2, kind)].concat();
    [
        b"k8s\0".to_vec(),
        ld(1, &type_meta),
        ld(2, raw),
        s(3, ""),
        s(4, ""),
    ]
    .concat()
}

#[test]
fn configmap_from_kubectl() {
    let body = hex("6b 38 73 00 0a 0f 0a 02  76 31 12 09 43 6f 6e 66
         69 67 4d 61 70 12 1b 0a  11 0a 01 78 12 00 1a 00
         22 00 2a 00 32 00 38 00  42 00 12 06 0a 01 61 12
         01 62 1a 00 22 00");
    assert_eq!(
        decode(&body).unwrap(),
        json!({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"},"data":{"a":"b"}})
    );
}

#[test]
fn namespace_and_secret_from_kubectl() {
    let ns = hex("6b 38 73 00 0a 0f 0a 02  76 31 12 09 4e 61 6d 65
         73 70 61 63 65 12 1a 0a  12 0a 02 6e 31 12 00 1a
         00 22 00 2a 00 32 00 38  00 42 00 12 00 1a 02 0a
         00 1a 00 22 00");
    assert_eq!(
        decode(&ns).unwrap(),
        json!({"kind":"Namespace","apiVersion":"v1","metadata":{"name":"n1"},"spec":{},"status":{}})
    );
    let secret = hex("6b 38 73 00 0a 0c 0a 02  76 31 12 06 53 65 63 72
         65 74 12 1d 0a 11 0a 01  73 12 00 1a 00 22 00 2a
         00 32 00 38 00 42 00 12  06 0a 01 70 12 01 71 1a
         00 1a 00 22 00");
    assert_eq!(
        decode(&secret).unwrap(),
        json!({"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"},"data":{"p":"cQ=="}})
    );
}

#[test]
fn deployment_from_kubectl() {
    let body = hex("6b 38 73 00 0a 15 0a 07  61 70 70 73 2f 76 31 12
         0a 44 65 70 6c 6f 79 6d  65 6e 74 12 ac 01 0a 1b
         0a 01 64 12 00 1a 00 22  00 2a 00 32 00 38 00 42
         00 5a 08 0a 03 61 70 70  12 01 64 12 7f 08 02 12
         0a 0a 08 0a 03 61 70 70  12 01 64 1a 67 0a 1a 0a
         00 12 00 1a 00 22 00 2a  00 32 00 38 00 42 00 5a
         08 0a 03 61 70 70 12 01  64 12 49 12 2b 0a 07 62
         75 73 79 62 6f 78 12 0c  62 75 73 79 62 6f 78 3a
         31 2e 33 36 2a 00 42 00  6a 00 72 00 80 01 00 88
         01 00 90 01 00 a2 01 00  1a 00 32 00 42 00 4a 00
         52 00 58 00 60 00 68 00  82 01 00 8a 01 00 9a 01
         00 c2 01 00 22 02 0a 00  28 00 38 00 1a 0c 08 00
         10 00 18 00 20 00 28 00  38 00 1a 00 22 00");
    assert_eq!(
        decode(&body).unwrap(),
        json!({"kind":"Deployment","apiVersion":"apps/v1",
            "metadata":{"name":"d","labels":{"app":"d"}},
            "spec":{"replicas":2,"selector":{"matchLabels":{"app":"d"}},
                "template":{"metadata":{"labels":{"app":"d"}},
                    "spec":{"containers":[{"name":"busybox","image":"busybox:1.36","resources":{}}]}},
                "strategy":{}},
            "status":{}})
    );
}

#[test]
fn service_from_kubectl() {
    let body = hex("6b 38 73 00 0a 0d 0a 02  76 31 12 07 53 65 72 76
         69 63 65 12 69 0a 1f 0a  03 73 76 63 12 00 1a 00
         22 00 2a 00 32 00 38 00  42 00 5a 0a 0a 03 61 70
         70 12 03 73 76 63 12 42  0a 1b 0a 07 38 30 2d 38
         30 38 30 12 03 54 43 50  18 50 22 07 08 00 10 90
         3f 1a 00 28 00 12 0a 0a  03 61 70 70 12 03 73 76
         63 1a 00 22 09 43 6c 75  73 74 65 72 49 50 3a 00
         42 00 52 00 5a 00 60 00  68 00 1a 02 0a 00 1a 00
         22 00");
    assert_eq!(
        decode(&body).unwrap(),
        json!({"kind":"Service","apiVersion":"v1",
            "metadata":{"name":"svc","labels":{"app":"svc"}},
            "spec":{"ports":[{"name":"80-8080","protocol":"TCP","port":80,"targetPort":8080}],
                "selector":{"app":"svc"},"type":"ClusterIP"},
            "status":{"loadBalancer":{}}})
    );
}

#[test]
fn pod_with_what_generators_never_send() {
    let time = [vi(1, 1_700_000_000), vi(2, 0)].concat();
    let meta = [
        s(1, "p"),
        s(3, "ns"),
        vi(7, 3),
        ld(8, &time),
        entry(12, "note", b""),
        // ownerReferences with a pointer bool set to false: kept.
        ld(
            13,
            &[
                s(1, "ReplicaSet"),
                s(3, "rs"),
                s(4, "u1"),
                s(5, "apps/v1"),
                vi(6, 0),
            ]
            .concat(),
        ),
        s(14, "f1"),
        s(14, "f2"),
    ]
    .concat();
    let env_from = ld(3, &ld(3, &[ld(1, &s(1, "cm")), s(2, "k")].concat()));
    let container = [
        s(1, "c"),
        s(2, "img"),
        s(3, "sh"),
        s(3, "-c"),
        // ports: containerPort (no omitempty) kept even when 0
        ld(6, &[s(1, "http"), vi(3, 0), s(4, "TCP")].concat()),
        ld(7, &[s(1, "A"), s(2, "1")].concat()),
        ld(7, &[s(1, "B"), env_from].concat()),
        ld(
            8,
            &[
                entry(1, "cpu", &s(1, "500m")),
                entry(2, "memory", &s(1, "")),
            ]
            .concat(),
        ),
        // livenessProbe: the inline ProbeHandler's httpGet with a named port
        ld(
            10,
            &[
                ld(
                    1,
                    &ld(
                        2,
                        &[s(1, "/healthz"), ld(2, &[vi(1, 1), s(3, "http")].concat())].concat(),
                    ),
                ),
                vi(4, 5),
            ]
            .concat(),
        ),
        // unknown fields of every wire type are skipped
        vi(900, 1),
        [varint(901 << 3 | 1), vec![0; 8]].concat(),
        s(902, "x"),
        [varint(903 << 3 | 5), vec![0; 4]].concat(),
    ]
    .concat();
    // volumes[].configMap: the name sits in an inline LocalObjectReference
    let volume = [
        s(1, "v"),
        ld(2, &ld(19, &[ld(1, &s(1, "cm")), vi(3, 0o644)].concat())),
    ]
    .concat();
    let spec = [
        ld(1, &volume),
        ld(2, &container),
        s(3, "Always"),
        vi(4, 30),
        // priority -5: a negative int32 is a ten-byte varint
        vi(25, (-5i64) as u64),
        // hostNetwork false (omitempty): left out
        vi(11, 0),
    ]
    .concat();
    let body = envelope("v1", "Pod", &[ld(1, &meta), ld(2, &spec)].concat());
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":"p","namespace":"ns","generation":3,
                "creationTimestamp":"2023-11-14T22:13:20Z",
                "annotations":{"note":""},
                "ownerReferences":[{"kind":"ReplicaSet","name":"rs","uid":"u1","apiVersion":"apps/v1","controller":false}],
                "finalizers":["f1","f2"]},
            "spec":{
                "volumes":[{"name":"v","configMap":{"name":"cm","defaultMode":420}}],
                "containers":[{"name":"c","image":"img","command":["sh","-c"],
                    "ports":[{"name":"http","containerPort":0,"protocol":"TCP"}],
                    "env":[{"name":"A","value":"1"},{"name":"B","valueFrom":{"configMapKeyRef":{"name":"cm","key":"k"}}}],
                    "resources":{"limits":{"cpu":"500m"},"requests":{"memory":"0"}},
                    "livenessProbe":{"httpGet":{"path":"/healthz","port":"http"},"periodSeconds":5}}],
                "restartPolicy":"Always","terminationGracePeriodSeconds":30,"priority":-5}})
    );
}

#[test]
fn lease_micro_time_and_delete_options() {
    let t = [vi(1, 1_700_000_000), vi(2, 123_456_789)].concat();
    let spec = [s(1, "me"), vi(2, 15), ld(4, &t), vi(5, 0)].concat();
    let body = envelope(
        "coordination.k8s.io/v1",
        "Lease",
        &[ld(1, &s(1, "l")), ld(2, &spec)].concat(),
    );
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l"},
            "spec":{"holderIdentity":"me","leaseDurationSeconds":15,
                "renewTime":"2023-11-14T22:13:20.123456Z","leaseTransitions":0}})
    );
    let body = envelope(
        "meta.k8s.io/v1",
        "DeleteOptions",
        &[vi(1, 0), ld(2, &s(1, "u")), s(4, "Foreground")].concat(),
    );
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion":"meta.k8s.io/v1","kind":"DeleteOptions","gracePeriodSeconds":0,
            "preconditions":{"uid":"u"},"propagationPolicy":"Foreground"})
    );
}

#[test]
fn deployment_strategy_int_or_string() {
    let ru = [
        ld(1, &[vi(1, 1), s(3, "25%")].concat()),
        ld(2, &[vi(1, 0), vi(2, 1)].concat()),
    ]
    .concat();
    let spec = [
        vi(1, 0),
        ld(4, &[s(1, "RollingUpdate"), ld(2, &ru)].concat()),
        vi(6, 3),
    ]
    .concat();
    let body = envelope("apps/v1", "Deployment", &ld(2, &spec));
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion":"apps/v1","kind":"Deployment",
            "spec":{"replicas":0,"revisionHistoryLimit":3,
                "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":1}}}})
    );
}

#[test]
fn refuses_what_it_cannot_read() {
    assert!(matches!(decode(b"{}"), Err(DecodeError::Magic)));
    let e = decode(&envelope("batch/v1", "Job", &[])).unwrap_err();
    assert!(matches!(e, DecodeError::UnknownKind { .. }));
    assert!(e.to_string().contains("Job"), "{e}");
    assert!(matches!(
        decode(&envelope("", "", &[])),
        Err(DecodeError::NoKind)
    ));
    let gz = [
        b"k8s\0".to_vec(),
        ld(1, &[s(1, "v1"), s(2, "Pod")].concat()),
        s(3, "gzip"),
    ]
    .concat();
    assert!(matches!(decode(&gz), Err(DecodeError::ContentEncoding(_))));
    // metadata.name sent as a varint
    let e = decode(&envelope("v1", "ConfigMap", &ld(1, &vi(1, 5)))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "meta.ObjectMeta.name: wire type 0 does not fit the field's type"
    );
    let e = decode(&envelope("v1", "ConfigMap", &ld(1, &ld(1, &[0xff])))).unwrap_err();
    assert!(matches!(e, DecodeError::Utf8 { .. }));
    // a body cut short
    let mut cut = envelope("v1", "ConfigMap", &ld(1, &s(1, "x")));
    cut.truncate(cut.len() - 6);
    assert!(decode(&cut).is_err());
}
