//! Strategic merge patch (`application/strategic-merge-patch+json`), the patch kubectl's
//! client-side `apply`, `patch` and `set image` send. It follows upstream's
//! `apimachinery/pkg/util/strategicpatch`: objects merge recursively and `null` deletes
//! a key; lists named in `schema` merge by their key (or as a set of primitives), other
//! lists are replaced; the directives `$patch` (`replace`, `delete`, `merge`),
//! `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` are
//! honoured and never stored. Where upstream keeps a stray directive or an empty
//! object (`$patch: delete` of a present map yields `{}` there) bosun removes it.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::json::json_equal;
use super::schema::{self, Field, Keyed, Ty};
use super::PatchError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Applies `patch` to a copy of `target`, an object of `kind` (`Pod`, `Deployment`, …).
pub fn apply(target: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::Invalid(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    let original = match target {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::Failed("the target is not an object".into())),
    };
    let merged = merge_map(original, patch.clone(), schema::root(kind), "")?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

fn invalid(path: &str, why: impl std::fmt::Display) -> PatchError {
    let at = if path.is_empty() { "." } else { path };
    PatchError::Invalid(format!("at {at}: {why}"))
}

/// Merges `patch` into `original`; `None` means the map is deleted.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    fields: &'static [Field],
    path: &str,
) -> Result<Option<Map<String, Value>>, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => return Ok(Some(clean_map(patch))),
            Some("delete") => return Ok(None),
            Some("merge") => {}
            _ => return Err(invalid(path, format!("unknown $patch value {directive}"))),
        }
    }

    if let Some(retain) = patch.remove(RETAIN_KEYS) {
        let keep: Vec<&str> = retain
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect())
            .ok_or_else(|| invalid(path, "$retainKeys must be a list of strings"))?;
        if let Some(stray) = patch.iter().find(|(k, v)| {
            !v.is_null()
                && !k.starts_with(SET_ORDER)
                && !k.starts_with(DELETE_PRIMITIVE)
                && !keep.contains(&k.as_str())
        }) {
            return Err(invalid(
                path,
                format!("{:?} is in the patch but not in $retainKeys", stray.0),
            ));
        }
        original.retain(|k, _| keep.contains(&k.as_str()));
    }

    // $setElementOrder/<list> goes first, together with the list it orders.
    let orders: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER))
        .cloned()
        .collect();
    for key in orders {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let name = &key[SET_ORDER.len()..];
        let child = format!("{path}.{name}");
        let Value::Array(order) = order else {
            return Err(invalid(&child, format!("{key} must be a list")));
        };
        let ty = schema::field(fields, name);
        let live = match original.get(name) {
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(PatchError::Failed(format!("{child} is not a list"))),
            None => None,
        };
        let merged = match (live.clone(), patch.remove(name)) {
            (None, None) => continue,
            (Some(live), None) => live,
            (live, Some(Value::Array(p))) => merge_list(live.unwrap_or_default(), p, ty, &child)?,
            (_, Some(_)) => return Err(invalid(&child, "the patch value must be a list")),
        };
        let key_name = merge_key(ty);
        let (in_order, server_only): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|item| position(&order, item, key_name).is_some());
        let ordered = normalize(
            in_order,
            server_only,
            &order,
            &live.unwrap_or_default(),
            key_name,
        );
        original.insert(name.to_string(), Value::Array(ordered));
    }

    let mut deletions = Vec::new();
    for (key, value) in patch {
        if let Some(name) = key.strip_prefix(DELETE_PRIMITIVE) {
            if name.is_empty() {
                return Err(invalid(path, format!("bad directive {key:?}")));
            }
            deletions.push((name.to_string(), value));
            continue;
        }
        if key.starts_with('$') {
            return Err(invalid(path, format!("unknown directive {key:?}")));
        }
        let child = format!("{path}.{key}");
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        let ty = schema::field(fields, &key);
        let merged = match (original.remove(&key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                merge_map(o, p, schema::struct_fields(ty), &child)?.map(Value::Object)
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                Some(Value::Array(merge_list(o, p, ty, &child)?))
            }
            (_, value) => clean(value),
        };
        if let Some(v) = merged {
            original.insert(key, v);
        }
    }

    for (name, value) in deletions {
        let Value::Array(gone) = value else {
            return Err(invalid(
                path,
                format!("{DELETE_PRIMITIVE}{name} must be a list"),
            ));
        };
        if let Some(Value::Array(list)) = original.get_mut(&name) {
            list.retain(|v| !gone.iter().any(|g| json_equal(g, v)));
        }
    }
    Ok(Some(original))
}

fn merge_key(ty: Option<Ty>) -> Option<&'static str> {
    match ty {
        Some(Ty::Keyed(k)) => Some(k.merge_key),
        _ => None,
    }
}

/// Merges two lists by the field's strategy: by key, as a set, or replaced whole.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    ty: Option<Ty>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    match ty {
        Some(Ty::Keyed(keyed)) => merge_keyed(original, patch, keyed, path),
        Some(Ty::Set) => Ok(merge_set(original, patch)),
        _ => Ok(clean_list(patch)),
    }
}

/// A list of primitives with strategy merge: the union, patch values in patch order.
fn merge_set(original: Vec<Value>, patch: Vec<Value>) -> Vec<Value> {
    let mut replace = false;
    let mut values = Vec::new();
    for v in patch {
        match v.get(DIRECTIVE).and_then(Value::as_str) {
            Some("replace") => replace = true,
            Some(_) => {}
            None => values.push(v),
        }
    }
    if replace {
        return dedup(values);
    }
    let live = dedup(original);
    let mut merged = live.clone();
    for v in &values {
        if position(&merged, v, None).is_none() {
            merged.push(v.clone());
        }
    }
    let (ours, server_only) = merged
        .into_iter()
        .partition(|v| position(&values, v, None).is_some());
    normalize(ours, server_only, &values, &live, None)
}

fn dedup(values: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(values.len());
    for v in values {
        if position(&out, &v, None).is_none() {
            out.push(v);
        }
    }
    out
}

fn merge_keyed(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    keyed: &'static Keyed,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let key = keyed.merge_key;
    let item_fields = schema::struct_fields(Some(keyed.item));
    if let Some(i) = original.iter().position(|v| v.get(key).is_none()) {
        return Err(PatchError::Failed(format!(
            "{path}[{i}] has no merge key {key:?}"
        )));
    }
    let mut replace = false;
    let mut items = Vec::new();
    for (i, v) in patch.into_iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(invalid(path, format!("element {i} is not an object")));
        };
        match m.get(DIRECTIVE) {
            None => {
                let Some(k) = m.get(key) else {
                    return Err(invalid(
                        path,
                        format!("element {i} has no merge key {key:?}"),
                    ));
                };
                if k.is_null() {
                    return Err(invalid(path, format!("element {i} has a null merge key")));
                }
                items.push(m);
            }
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let Some(k) = m.get(key) else {
                        return Err(invalid(
                            path,
                            format!("element {i}: $patch delete needs the merge key {key:?}"),
                        ));
                    };
                    original.retain(|o| !o.get(key).is_some_and(|ok| json_equal(ok, k)));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    let mut m = m;
                    m.remove(DIRECTIVE);
                    if m.contains_key(key) {
                        items.push(m);
                    }
                }
                _ => return Err(invalid(path, format!("unknown $patch value {d}"))),
            },
        }
    }
    let (live, patch_items) = if replace {
        let fresh: Vec<Value> = items
            .into_iter()
            .map(|m| Value::Object(clean_map(m)))
            .collect();
        (fresh, Vec::new())
    } else {
        (original, items)
    };
    let mut merged = live.clone();
    let mut patch_order = Vec::with_capacity(patch_items.len());
    for item in patch_items {
        let k = item.get(key).cloned().unwrap_or(Value::Null);
        patch_order.push(Value::Object(Map::from_iter([(
            key.to_string(),
            k.clone(),
        )])));
        let child = format!("{path}[{key}={k}]");
        match merged
            .iter()
            .position(|o| o.get(key).is_some_and(|ok| json_equal(ok, &k)))
        {
            Some(at) => {
                let existing = match merged.remove(at) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                if let Some(m) = merge_map(existing, item, item_fields, &child)? {
                    merged.insert(at, Value::Object(m));
                }
            }
            None => {
                if let Some(v) = clean(Value::Object(item)) {
                    merged.push(v);
                }
            }
        }
    }
    let (ours, server_only) = merged
        .into_iter()
        .partition(|v| position(&patch_order, v, Some(key)).is_some());
    Ok(normalize(ours, server_only, &patch_order, &live, Some(key)))
}

/// Where `item` is in `list`: by merge key for lists of objects, by value otherwise.
fn position(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        Some(key) => {
            let k = item.get(key)?;
            list.iter()
                .position(|v| v.get(key).is_some_and(|vk| json_equal(vk, k)))
        }
        None => list.iter().position(|v| json_equal(v, item)),
    }
}

/// Upstream's order for a merged list: the patch's items in the patch's (or
/// `$setElementOrder`'s) order, the server-only items in the live order, and the two
/// interleaved so that a server-only item goes before the first patch item the live
/// list had after it.
fn normalize(
    mut ours: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    live: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let by = |order: &[Value]| {
        let order = order.to_vec();
        move |a: &Value, b: &Value| match (position(&order, a, key), position(&order, b, key)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    };
    ours.sort_by(by(patch_order));
    server_only.sort_by(by(live));
    let mut out = Vec::with_capacity(ours.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = ours.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (position(live, l, key), position(live, r, key)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// A patch value taken as is: directives and `null`s are dropped from it.
fn clean(value: Value) -> Option<Value> {
    match value {
        Value::Object(mut m) => match m.remove(DIRECTIVE).as_ref().and_then(Value::as_str) {
            Some("delete") => None,
            _ => Some(Value::Object(clean_map(m))),
        },
        Value::Array(a) => Some(Value::Array(clean_list(a))),
        Value::Null => None,
        other => Some(other),
    }
}

fn clean_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
        .collect()
}

fn clean_list(list: Vec<Value>) -> Vec<Value> {
    list.into_iter()
        .filter(|v| {
            !(v.is_object()
                && v.get(DIRECTIVE).is_some()
                && v.as_object().is_some_and(|m| m.len() == 1))
        })
        .filter_map(clean)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value, kind: &str) -> Value {
        match apply(&target, &patch, kind) {
            Ok(v) => v,
            Err(e) => panic!("{patch}: {e}"),
        }
    }

    fn no_directives(v: &Value) -> bool {
        match v {
            Value::Object(m) => m
                .iter()
                .all(|(k, v)| !k.starts_with('$') && no_directives(v)),
            Value::Array(a) => a.iter().all(no_directives),
            _ => true,
        }
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"app": "x"}, "finalizers": ["a", "b"]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "app", "image": "busybox:1", "args": ["sleep", "1"],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "side", "image": "nginx:1",
                 "ports": [{"containerPort": 80, "protocol": "TCP"}]}
            ]}}}
        })
    }

    fn containers(v: &Value) -> &Vec<Value> {
        v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers list")
    }

    #[test]
    fn set_image_changes_only_that_container() {
        let patch = json!({"spec":{"template":{"spec":{"containers":[{"image":"busybox:2","name":"app"}]}}}});
        let got = smp(deployment(), patch, "Deployment");
        let c = containers(&got);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["name"], "app");
        assert_eq!(c[0]["image"], "busybox:2");
        assert_eq!(c[0]["args"], json!(["sleep", "1"]));
        assert_eq!(c[0]["env"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            c[1],
            deployment()["spec"]["template"]["spec"]["containers"][1]
        );
        assert_eq!(got["spec"]["replicas"], 2);
    }

    #[test]
    fn env_merges_by_name_and_args_are_replaced() {
        let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"app",
            "env":[{"name":"B","value":"two"},{"name":"C","value":"3"}],
            "args":["sleep","9"]}]}}}});
        let got = smp(deployment(), patch, "Deployment");
        let app = &containers(&got)[0];
        assert_eq!(
            app["env"],
            json!([{"name":"A","value":"1"},{"name":"B","value":"two"},{"name":"C","value":"3"}])
        );
        assert_eq!(app["args"], json!(["sleep", "9"]));
        let got = smp(
            deployment(),
            json!({"spec":{"template":{"spec":{"containers":[{"name":"app","args":["x"]}]}}}}),
            "Deployment",
        );
        assert_eq!(containers(&got)[0]["args"], json!(["x"]));
    }

    #[test]
    fn patch_delete_removes_one_container_and_null_removes_a_key() {
        let patch = json!({"spec":{"replicas":null,"template":{"spec":{"containers":[{"name":"side","$patch":"delete"}]}}}});
        let got = smp(deployment(), patch, "Deployment");
        let c = containers(&got);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["name"], "app");
        assert!(got["spec"].get("replicas").is_none());
        assert!(no_directives(&got));
    }

    #[test]
    fn patch_replace_on_a_list_and_on_a_map() {
        let patch = json!({"spec":{"template":{"spec":{"containers":[
            {"$patch":"replace"},{"name":"only","image":"x"}]}}}});
        let got = smp(deployment(), patch, "Deployment");
        assert_eq!(containers(&got), &vec![json!({"name":"only","image":"x"})]);
        let got = smp(
            deployment(),
            json!({"metadata":{"labels":{"$patch":"replace","new":"1"}}}),
            "Deployment",
        );
        assert_eq!(got["metadata"]["labels"], json!({"new":"1"}));
        let got = smp(
            deployment(),
            json!({"metadata":{"labels":{"$patch":"delete"}}}),
            "Deployment",
        );
        assert!(got["metadata"].get("labels").is_none());
        assert!(no_directives(&got));
    }

    #[test]
    fn set_element_order_orders_the_merged_list() {
        // What kubectl apply sends when it changes container b of [a, b] and swaps them.
        let patch = json!({"metadata":{"annotations":{"k":"v"}},"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"side"},{"name":"app"}],
            "containers":[{"image":"nginx:2","name":"side"}]}}}});
        let got = smp(deployment(), patch, "Deployment");
        let names: Vec<&str> = containers(&got)
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["side", "app"]);
        assert_eq!(containers(&got)[0]["image"], "nginx:2");
        assert_eq!(containers(&got)[1]["image"], "busybox:1");
        assert_eq!(got["metadata"]["annotations"]["k"], "v");
        assert!(no_directives(&got));

        // A server-only element keeps its place relative to the live list.
        let live = json!({"spec":{"containers":[{"name":"a"},{"name":"srv"},{"name":"b"}]}});
        let patch = json!({"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"},{"name":"c"}],
            "containers":[{"name":"c","image":"c"}]}});
        let got = smp(live, patch, "Pod");
        let names: Vec<&str> = got["spec"]["containers"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        // Upstream places it before the first patch item that followed it live.
        assert_eq!(names, ["srv", "b", "a", "c"]);
    }

    #[test]
    fn retain_keys_clears_other_keys_then_merges() {
        let live =
            json!({"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}});
        let patch = json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}});
        let got = smp(live.clone(), patch, "Deployment");
        assert_eq!(got, json!({"spec":{"strategy":{"type":"Recreate"}}}));
        let bad = json!({"spec":{"strategy":{"$retainKeys":["type"],"other":1}}});
        assert_eq!(
            apply(&live, &bad, "Deployment").map_err(|e| e.http_status()),
            Err(400)
        );
    }

    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let got = smp(
            deployment(),
            json!({"metadata":{"finalizers":["b","c"]}}),
            "Deployment",
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let patch =
            json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["a"],"finalizers":["d"]}});
        let got = smp(deployment(), patch, "Deployment");
        // As upstream: a value the live list lacks goes before the server-only ones.
        assert_eq!(got["metadata"]["finalizers"], json!(["d", "b"]));
        assert!(no_directives(&got));
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc = json!({"spec":{"selector":{"app":"x"},"ports":[
            {"name":"http","port":80,"targetPort":8080},{"name":"https","port":443}]}});
        let got = smp(
            svc,
            json!({"spec":{"ports":[{"port":80,"targetPort":9090}]}}),
            "Service",
        );
        assert_eq!(
            got["spec"]["ports"],
            json!([{"name":"http","port":80,"targetPort":9090},{"name":"https","port":443}])
        );
    }

    #[test]
    fn owner_references_merge_by_uid_and_unknown_lists_replace() {
        let cm = json!({"metadata":{"ownerReferences":[{"uid":"1","name":"a"}]},
            "data":{"k":"v"}});
        let got = smp(
            cm,
            json!({"metadata":{"ownerReferences":[{"uid":"2","name":"b"}]},"data":{"j":"w"}}),
            "ConfigMap",
        );
        assert_eq!(
            got["metadata"]["ownerReferences"],
            json!([{"uid":"2","name":"b"},{"uid":"1","name":"a"}])
        );
        assert_eq!(got["data"], json!({"k":"v","j":"w"}));
        let pod = json!({"spec":{"tolerations":[{"key":"a"}]}});
        let got = smp(pod, json!({"spec":{"tolerations":[{"key":"b"}]}}), "Pod");
        assert_eq!(got["spec"]["tolerations"], json!([{"key":"b"}]));
    }

    #[test]
    fn node_status_merges_conditions_and_addresses_by_type() {
        let node = json!({"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"DiskPressure","status":"False"}],
            "addresses":[{"type":"InternalIP","address":"10.0.0.1"}]}});
        let patch = json!({"status":{"conditions":[{"type":"Ready","status":"True"}],
            "addresses":[{"type":"Hostname","address":"n1"}]}});
        let got = smp(node, patch, "Node");
        assert_eq!(
            got["status"]["conditions"][0],
            json!({"type":"Ready","status":"True"})
        );
        assert_eq!(
            got["status"]["conditions"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(got["status"]["addresses"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn directives_never_reach_the_result() {
        let patch = json!({"metadata":{"labels":{"$patch":"merge","x":"1"}},
            "spec":{"template":{"spec":{
                "containers":[{"name":"new","image":"i","env":[{"name":"E","$patch":"delete"}],
                    "ports":[{"$patch":"replace"}]},
                    {"name":"app","$patch":"merge","image":"busybox:3"}],
                "volumes":[{"name":"v","$retainKeys":["name","emptyDir"],"emptyDir":{}}]}}}});
        let got = smp(deployment(), patch, "Deployment");
        assert!(no_directives(&got), "{got}");
        assert_eq!(got["metadata"]["labels"], json!({"app":"x","x":"1"}));
        let names: Vec<&str> = containers(&got)
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["new", "app", "side"]);
        assert_eq!(containers(&got)[1]["image"], "busybox:3");
        assert_eq!(containers(&got)[0]["ports"], json!([]));
    }

    #[test]
    fn malformed_patches_are_invalid() {
        let d = deployment();
        for patch in [
            json!([1]),
            json!({"spec":{"$patch":"frobnicate"}}),
            json!({"spec":{"template":{"spec":{"containers":[{"image":"no-name"}]}}}}),
            json!({"spec":{"$setElementOrder/x":"notalist"}}),
            json!({"$bogus":1}),
        ] {
            let e = apply(&d, &patch, "Deployment").expect_err("must fail");
            assert_eq!(e.http_status(), 400, "{patch}: {e}");
        }
    }
}
