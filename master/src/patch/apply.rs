//! Server-side apply (`application/apply-patch+yaml`) and the field ownership that
//! goes with it: `metadata.managedFields` in the real `FieldsV1` form. `apply` merges an
//! applied configuration into the live object the way structured-merge-diff does
//! (lists by the `+listMapKey` keys of `schema`, sets by value, other lists atomic),
//! removes fields the manager stopped applying when nobody else owns them, and refuses
//! to change another manager's fields unless forced. `record_update` books the fields
//! an ordinary create/update/patch changed to that writer's `Update` entry.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::json::json_equal;
use super::schema::{self, Field, Keyed, Ty};
use super::{FieldConflict, PatchError};

/// A path in FieldsV1 form: `f:spec`, `k:{"name":"web"}`, `v:"x"`.
type Path = Vec<String>;
type FieldSet = BTreeSet<Path>;

/// Top-level paths no manager ever owns (upstream's stripped metadata).
const IGNORED: &[&[&str]] = &[
    &["f:apiVersion"],
    &["f:kind"],
    &["f:metadata", "f:name"],
    &["f:metadata", "f:namespace"],
    &["f:metadata", "f:uid"],
    &["f:metadata", "f:resourceVersion"],
    &["f:metadata", "f:generation"],
    &["f:metadata", "f:creationTimestamp"],
    &["f:metadata", "f:selfLink"],
    &["f:metadata", "f:managedFields"],
    &["f:metadata", "f:deletionTimestamp"],
    &["f:metadata", "f:deletionGracePeriodSeconds"],
];

/// Applies `applied` for `manager` to `existing` (absent when the object is being
/// created) and returns the new object with its `metadata.managedFields`.
pub fn apply(
    existing: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, PatchError> {
    let Value::Object(config) = applied else {
        return Err(PatchError::Invalid(
            "an apply configuration must be an object".into(),
        ));
    };
    if manager.is_empty() {
        return Err(PatchError::Invalid(
            "fieldManager is required for apply".into(),
        ));
    }
    if config
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|m| !m.is_null())
    {
        return Err(PatchError::Invalid(
            "metadata.managedFields must not be set in an apply configuration".into(),
        ));
    }
    let mut config = config.clone();
    config.remove("status");
    let kind = config
        .get("kind")
        .or_else(|| existing.and_then(|e| e.get("kind")))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api_version = config
        .get("apiVersion")
        .or_else(|| existing.and_then(|e| e.get("apiVersion")))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let fields = schema::root(&kind);

    let mut live = match existing {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(PatchError::Failed(
                "the live object is not an object".into(),
            ))
        }
        None => Map::new(),
    };
    let mut managers = existing.map(read_managed_fields).unwrap_or_default();
    if let Some(Value::Object(meta)) = live.get_mut("metadata") {
        meta.remove("managedFields");
    }
    let live = Value::Object(live);

    let mut merged = live.clone();
    merge_into(
        &mut merged,
        &Value::Object(config.clone()),
        Some(Ty::Struct(fields)),
    );

    let mut applied_set = FieldSet::new();
    collect_set(
        &Value::Object(config),
        Some(Ty::Struct(fields)),
        &mut Vec::new(),
        &mut applied_set,
    );
    let applied_set = without_ignored(applied_set);

    let me = find_or_add(&mut managers, manager, "Apply", &api_version);
    let last = std::mem::replace(&mut managers[me].fields, applied_set);
    managers[me].time = now.to_string();
    managers[me].api_version = api_version.clone();

    // Fields this manager applied last time but not now go, unless someone owns them.
    for path in last.iter().rev() {
        if managers[me].fields.contains(path) {
            continue;
        }
        let owned = managers
            .iter()
            .any(|m| m.fields.iter().any(|p| p.starts_with(path)));
        if !owned {
            remove_path(&mut merged, path, fields);
        }
    }

    let diff = compare(&live, &merged, fields);
    let changed: FieldSet = diff.added.union(&diff.modified).cloned().collect();
    let mut conflicts = Vec::new();
    for (i, m) in managers.iter().enumerate() {
        if i == me {
            continue;
        }
        for p in m.fields.intersection(&changed) {
            conflicts.push(FieldConflict {
                manager: m.manager.clone(),
                field: dotted(p),
            });
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(PatchError::Conflict(conflicts));
    }
    for (i, m) in managers.iter_mut().enumerate() {
        if i != me {
            m.fields.retain(|p| !changed.contains(p));
        }
        m.fields.retain(|p| !diff.removed.contains(p));
    }
    managers.retain(|m| !m.fields.is_empty());
    write_managed_fields(&mut merged, &managers);
    Ok(merged)
}

/// Records the fields an ordinary write by `manager` changed from `old` (absent on
/// create) to `new` in that manager's `Update` entry of `new`'s managedFields, taking
/// them from other managers, and drops removed fields from every manager.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
    let Value::Object(new_map) = new else {
        return;
    };
    let kind = new_map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api_version = new_map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let fields = schema::root(&kind);
    let old_managers = old.map(read_managed_fields).unwrap_or_default();
    let sent = new_map
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .cloned();
    let mut managers = match &sent {
        // The writer set managedFields itself (e.g. `[{}]` to reset them): take them.
        Some(v)
            if old
                .and_then(|o| o.get("metadata"))
                .and_then(|m| m.get("managedFields"))
                != Some(v) =>
        {
            read_managed_fields(&json!({"metadata": {"managedFields": v}}))
        }
        _ => old_managers,
    };

    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(Value::Object(meta)) = v.get_mut("metadata") {
            meta.remove("managedFields");
        }
        v
    };
    let before = match old {
        Some(o) => strip(o),
        // A fresh object of the kind has these, so they are never "added" on create.
        None => json!({"metadata": {}, "spec": {}, "status": {}}),
    };
    let after = strip(new);
    let diff = compare(&before, &after, fields);
    let added = without_ignored(diff.added);
    let modified = without_ignored(diff.modified);
    let removed = diff.removed;
    let changed: FieldSet = added.union(&modified).cloned().collect();

    if !changed.is_empty() {
        let me = find_or_add(&mut managers, manager, "Update", &api_version);
        for (i, m) in managers.iter_mut().enumerate() {
            if i != me {
                m.fields.retain(|p| !changed.contains(p));
            }
        }
        managers[me].fields.extend(changed);
        managers[me].time = now.to_string();
        managers[me].api_version = api_version;
    }
    for m in managers.iter_mut() {
        m.fields.retain(|p| !removed.contains(p));
    }
    managers.retain(|m| !m.fields.is_empty());
    write_managed_fields(new, &managers);
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

fn find_or_add(
    managers: &mut Vec<Entry>,
    manager: &str,
    operation: &str,
    api_version: &str,
) -> usize {
    if let Some(i) = managers
        .iter()
        .position(|m| m.manager == manager && m.operation == operation && m.subresource.is_none())
    {
        return i;
    }
    managers.push(Entry {
        manager: manager.to_string(),
        operation: operation.to_string(),
        api_version: api_version.to_string(),
        time: String::new(),
        subresource: None,
        fields: FieldSet::new(),
    });
    managers.len() - 1
}

fn read_managed_fields(obj: &Value) -> Vec<Entry> {
    let Some(Value::Array(list)) = obj.get("metadata").and_then(|m| m.get("managedFields")) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            let mut fields = FieldSet::new();
            if let Some(Value::Object(tree)) = e.get("fieldsV1") {
                read_tree(tree, &mut Vec::new(), &mut fields);
            }
            Some(Entry {
                manager: text("manager")?,
                operation: text("operation").unwrap_or_else(|| "Update".into()),
                api_version: text("apiVersion").unwrap_or_default(),
                time: text("time").unwrap_or_default(),
                subresource: text("subresource"),
                fields,
            })
        })
        .collect()
}

fn read_tree(tree: &Map<String, Value>, path: &mut Path, out: &mut FieldSet) {
    for (k, v) in tree {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        path.push(k.clone());
        match v {
            Value::Object(children) if !children.is_empty() => read_tree(children, path, out),
            _ => {
                out.insert(path.clone());
            }
        }
        path.pop();
    }
}

fn to_tree(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: std::collections::BTreeMap<String, Node>,
    }
    fn render(node: &Node) -> Value {
        let mut m: Map<String, Value> = node
            .children
            .iter()
            .map(|(k, child)| (k.clone(), render(child)))
            .collect();
        if node.member && !m.is_empty() {
            m.insert(".".into(), json!({}));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for tok in path {
            node = node.children.entry(tok.clone()).or_default();
        }
        node.member = true;
    }
    root.member = false;
    render(&root)
}

fn write_managed_fields(obj: &mut Value, managers: &[Entry]) {
    let entries: Vec<Value> = managers
        .iter()
        .map(|m| {
            let mut e = Map::new();
            e.insert("apiVersion".into(), json!(m.api_version));
            e.insert("fieldsType".into(), json!("FieldsV1"));
            e.insert("fieldsV1".into(), to_tree(&m.fields));
            e.insert("manager".into(), json!(m.manager));
            e.insert("operation".into(), json!(m.operation));
            if let Some(s) = &m.subresource {
                e.insert("subresource".into(), json!(s));
            }
            if !m.time.is_empty() {
                e.insert("time".into(), json!(m.time));
            }
            Value::Object(e)
        })
        .collect();
    let Value::Object(map) = obj else {
        return;
    };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

fn without_ignored(set: FieldSet) -> FieldSet {
    set.into_iter()
        .filter(|p| p.len() > 1 || p.first().is_some_and(|t| t != "f:metadata"))
        .filter(|p| {
            !IGNORED
                .iter()
                .any(|ig| p.len() >= ig.len() && p.iter().zip(ig.iter()).all(|(a, b)| a == b))
        })
        .collect()
}

fn child_ty(fields: &[Field], key: &str) -> Option<Ty> {
    schema::field(fields, key)
}

fn fields_of(ty: Option<Ty>) -> &'static [Field] {
    schema::struct_fields(ty)
}

/// The `k:{…}` path element of a keyed-list element: its key fields (defaulted as the
/// API server defaults them), sorted by name.
fn key_token(keyed: &Keyed, item: &Value) -> Option<String> {
    let mut key = Map::new();
    let keys: Vec<(&str, Option<&str>)> = if keyed.apply_keys.is_empty() {
        vec![(keyed.merge_key, None)]
    } else {
        keyed.apply_keys.to_vec()
    };
    for (name, default) in keys {
        match (item.get(name), default) {
            (Some(v), _) if !v.is_null() => {
                key.insert(name.to_string(), v.clone());
            }
            (_, Some(d)) => {
                key.insert(name.to_string(), json!(d));
            }
            _ => {}
        }
    }
    if key.is_empty() {
        return None;
    }
    Some(format!("k:{}", Value::Object(key)))
}

fn value_token(v: &Value) -> String {
    format!("v:{v}")
}

/// The set of fields a configuration sets: scalars, atomic values and list elements.
fn collect_set(v: &Value, ty: Option<Ty>, path: &mut Path, out: &mut FieldSet) {
    match (ty, v) {
        (Some(Ty::Atomic), _) => {
            out.insert(path.clone());
        }
        (_, Value::Object(m)) => {
            let fields = fields_of(ty);
            for (k, child) in m {
                path.push(format!("f:{k}"));
                collect_set(child, child_ty(fields, k), path, out);
                path.pop();
            }
        }
        (Some(Ty::Keyed(keyed)), Value::Array(items)) => {
            for item in items {
                if let Some(tok) = key_token(keyed, item) {
                    path.push(tok);
                    out.insert(path.clone());
                    collect_set(item, Some(keyed.item), path, out);
                    path.pop();
                }
            }
        }
        (Some(Ty::Set), Value::Array(items)) => {
            for item in items {
                path.push(value_token(item));
                out.insert(path.clone());
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// Merges an applied configuration into the live value (structured-merge-diff style).
fn merge_into(live: &mut Value, config: &Value, ty: Option<Ty>) {
    match (ty, &mut *live, config) {
        (Some(Ty::Atomic), _, _) => *live = config.clone(),
        (_, Value::Object(l), Value::Object(c)) => {
            let fields = fields_of(ty);
            for (k, cv) in c {
                if cv.is_null() {
                    l.remove(k);
                    continue;
                }
                match l.get_mut(k) {
                    Some(lv) => merge_into(lv, cv, child_ty(fields, k)),
                    None => {
                        l.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (Some(Ty::Keyed(keyed)), Value::Array(l), Value::Array(c)) => {
            let mut out: Vec<Value> = Vec::with_capacity(l.len() + c.len());
            let mut pending: Vec<&Value> = c.iter().collect();
            for lv in l.iter() {
                let lk = key_token(keyed, lv);
                let Some(at) = pending.iter().position(|cv| key_token(keyed, cv) == lk) else {
                    if !c.iter().any(|cv| key_token(keyed, cv) == lk) {
                        out.push(lv.clone());
                    }
                    continue;
                };
                // Config items before the shared one come first, in config order.
                for cv in pending.drain(..at) {
                    out.push(cv.clone());
                }
                let cv = pending.remove(0);
                let mut merged = lv.clone();
                merge_into(&mut merged, cv, Some(keyed.item));
                out.push(merged);
            }
            out.extend(pending.into_iter().cloned());
            *l = out;
        }
        (Some(Ty::Set), Value::Array(l), Value::Array(c)) => {
            for cv in c {
                if !l.iter().any(|lv| json_equal(lv, cv)) {
                    l.push(cv.clone());
                }
            }
        }
        _ => *live = config.clone(),
    }
}

/// Removes the value at a FieldsV1 path, and objects or lists it leaves empty below
/// the top level.
fn remove_path(obj: &mut Value, path: &[String], fields: &'static [Field]) {
    fn go(v: &mut Value, path: &[String], ty: Option<Ty>, depth: usize) {
        let Some((tok, rest)) = path.split_first() else {
            return;
        };
        let (child, child_ty): (Option<&mut Value>, Option<Ty>) = match v {
            Value::Object(m) => {
                let name = tok.strip_prefix("f:").unwrap_or(tok);
                if rest.is_empty() {
                    m.remove(name);
                    return;
                }
                (m.get_mut(name), schema::field(fields_of(ty), name))
            }
            Value::Array(items) => {
                let pos = match ty {
                    Some(Ty::Keyed(keyed)) => items
                        .iter()
                        .position(|i| key_token(keyed, i).as_deref() == Some(tok.as_str())),
                    _ => items.iter().position(|i| &value_token(i) == tok),
                };
                let Some(pos) = pos else {
                    return;
                };
                if rest.is_empty() {
                    items.remove(pos);
                    return;
                }
                let item_ty = match ty {
                    Some(Ty::Keyed(keyed)) => Some(keyed.item),
                    _ => None,
                };
                (items.get_mut(pos), item_ty)
            }
            _ => return,
        };
        let Some(child) = child else {
            return;
        };
        go(child, rest, child_ty, depth + 1);
        let empty = match child {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        if empty && depth >= 1 {
            if let Value::Object(m) = v {
                m.remove(tok.strip_prefix("f:").unwrap_or(tok));
            }
        }
    }
    go(obj, path, Some(Ty::Struct(fields)), 0);
}

struct Diff {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

/// What changed from `old` to `new`, path by path (structured-merge-diff's Compare).
fn compare(old: &Value, new: &Value, fields: &'static [Field]) -> Diff {
    let mut d = Diff {
        added: FieldSet::new(),
        modified: FieldSet::new(),
        removed: FieldSet::new(),
    };
    walk(
        Some(old),
        Some(new),
        Some(Ty::Struct(fields)),
        &mut Vec::new(),
        &mut d,
    );
    d.added.remove(&Vec::new());
    d.removed.remove(&Vec::new());
    d.modified.remove(&Vec::new());
    d
}

fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn walk(l: Option<&Value>, r: Option<&Value>, ty: Option<Ty>, path: &mut Path, d: &mut Diff) {
    let leaf = |d: &mut Diff, path: &Path| match (l, r) {
        (None, Some(_)) => {
            d.added.insert(path.clone());
        }
        (Some(_), None) => {
            d.removed.insert(path.clone());
        }
        (Some(a), Some(b)) if !json_equal(a, b) => {
            d.modified.insert(path.clone());
        }
        _ => {}
    };
    let both_empty = is_empty_container(l) && is_empty_container(r);
    let shape = |v: Option<&Value>| match v {
        Some(Value::Object(_)) => 1,
        Some(Value::Array(_)) => 2,
        Some(_) => 3,
        None => 0,
    };
    let (ls, rs) = (shape(l), shape(r));
    let kind = if ls == 0 { rs } else { ls };
    if matches!(ty, Some(Ty::Atomic)) || both_empty || (ls != 0 && rs != 0 && ls != rs) || kind == 3
    {
        leaf(d, path);
        return;
    }
    match kind {
        1 => {
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            let keys: BTreeSet<&String> = lm.into_iter().chain(rm).flat_map(|m| m.keys()).collect();
            let fields = fields_of(ty);
            for k in keys {
                path.push(format!("f:{k}"));
                walk(
                    lm.and_then(|m| m.get(k)),
                    rm.and_then(|m| m.get(k)),
                    child_ty(fields, k),
                    path,
                    d,
                );
                path.pop();
            }
        }
        _ => match ty {
            Some(Ty::Keyed(keyed)) => {
                let index = |v: Option<&Value>| -> Vec<(String, Value)> {
                    v.and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|i| key_token(keyed, i).map(|t| (t, i.clone())))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let (li, ri) = (index(l), index(r));
                let toks: BTreeSet<&String> = li.iter().chain(ri.iter()).map(|(t, _)| t).collect();
                for t in toks {
                    let lv = li.iter().find(|(k, _)| k == t).map(|(_, v)| v);
                    let rv = ri.iter().find(|(k, _)| k == t).map(|(_, v)| v);
                    path.push(t.clone());
                    walk(lv, rv, Some(keyed.item), path, d);
                    path.pop();
                }
            }
            Some(Ty::Set) => {
                let la = l.and_then(Value::as_array).cloned().unwrap_or_default();
                let ra = r.and_then(Value::as_array).cloned().unwrap_or_default();
                for v in &ra {
                    if !la.iter().any(|x| json_equal(x, v)) {
                        let mut p = path.clone();
                        p.push(value_token(v));
                        d.added.insert(p);
                    }
                }
                for v in &la {
                    if !ra.iter().any(|x| json_equal(x, v)) {
                        let mut p = path.clone();
                        p.push(value_token(v));
                        d.removed.insert(p);
                    }
                }
            }
            _ => {
                leaf(d, path);
                return;
            }
        },
    }
    match (l, r) {
        (None, Some(_)) => {
            d.added.insert(path.clone());
        }
        (Some(_), None) => {
            d.removed.insert(path.clone());
        }
        _ => {}
    }
}

/// A path as kubectl prints it in conflicts: `.spec.containers[name="web"].image`.
fn dotted(path: &Path) -> String {
    let mut out = String::new();
    for tok in path {
        if let Some(name) = tok.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = tok.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(key)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_else(|_| vec![key.to_string()]);
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = tok.strip_prefix("v:") {
            out.push_str(&format!("[{v}]"));
        } else {
            out.push_str(tok);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-01-01T00:01:00Z";

    fn deploy(labels: Value, image: &str, replicas: Option<i64>) -> Value {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]}}}
        });
        if let Some(r) = replicas {
            d["spec"]["replicas"] = json!(r);
        }
        d
    }

    fn managed<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
        obj["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager)
    }

    #[test]
    fn create_from_nothing_records_fields_v1() {
        let applied = deploy(json!({"app": "web"}), "nginx:1", None);
        let got = apply(None, &applied, "kubectl", false, T0).expect("apply");
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1"
        );
        let e = managed(&got, "kubectl").expect("entry");
        assert_eq!(e["operation"], "Apply");
        assert_eq!(e["apiVersion"], "apps/v1");
        assert_eq!(e["fieldsType"], "FieldsV1");
        assert_eq!(e["time"], T0);
        assert_eq!(
            e["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {}, "f:image": {}, "f:name": {}}}}
                    }
                }
            })
        );
    }

    #[test]
    fn reapply_without_a_label_removes_it() {
        let first = deploy(json!({"app": "web", "tier": "front"}), "nginx:1", None);
        let live = apply(None, &first, "kubectl", false, T0).expect("apply");
        let second = deploy(json!({"app": "web"}), "nginx:1", None);
        let got = apply(Some(&live), &second, "kubectl", false, T1).expect("reapply");
        assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
        let e = managed(&got, "kubectl").expect("entry");
        assert_eq!(
            e["fieldsV1"]["f:metadata"],
            json!({"f:labels": {"f:app": {}}})
        );
        assert_eq!(e["time"], T1);
    }

    #[test]
    fn a_field_another_manager_also_owns_is_kept() {
        let live = apply(
            None,
            &deploy(json!({"app": "web", "x": "1"}), "i", None),
            "a",
            false,
            T0,
        )
        .expect("a");
        let live = apply(
            Some(&live),
            &json!({"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"web","labels":{"x":"1"}}}),
            "b",
            false,
            T0,
        )
        .expect("b shares x");
        let got = apply(
            Some(&live),
            &deploy(json!({"app": "web"}), "i", None),
            "a",
            false,
            T1,
        )
        .expect("a drops x");
        assert_eq!(got["metadata"]["labels"]["x"], "1");
    }

    #[test]
    fn conflicting_managers_conflict_and_force_takes_over() {
        let live = apply(
            None,
            &deploy(json!({"app": "web"}), "nginx:1", Some(1)),
            "kubectl",
            false,
            T0,
        )
        .expect("first");
        let other = deploy(json!({"app": "web"}), "nginx:1", Some(3));
        let err = apply(Some(&live), &other, "hpa", false, T1).expect_err("conflict");
        let PatchError::Conflict(list) = &err else {
            panic!("want a conflict, got {err}");
        };
        assert_eq!(
            list,
            &vec![FieldConflict {
                manager: "kubectl".into(),
                field: ".spec.replicas".into()
            }]
        );
        assert_eq!(err.http_status(), 409);
        assert!(
            err.to_string()
                .contains("conflict with \"kubectl\": .spec.replicas"),
            "{err}"
        );

        let got = apply(Some(&live), &other, "hpa", true, T1).expect("forced");
        assert_eq!(got["spec"]["replicas"], 3);
        let kubectl = managed(&got, "kubectl").expect("kubectl keeps the rest");
        assert!(kubectl["fieldsV1"]["f:spec"].get("f:replicas").is_none());
        let hpa = managed(&got, "hpa").expect("hpa");
        assert_eq!(hpa["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
        // Same value from another manager: shared, no conflict.
        assert!(apply(Some(&got), &other, "third", false, T1).is_ok());
    }

    #[test]
    fn update_records_changes_and_takes_them_from_appliers() {
        let live = apply(
            None,
            &deploy(json!({"app": "web"}), "nginx:1", Some(1)),
            "kubectl",
            false,
            T0,
        )
        .expect("apply");
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(5);
        new["metadata"]["annotations"] = json!({"note": "x"});
        record_update(Some(&live), &mut new, "kubectl-scale", T1);
        let e = managed(&new, "kubectl-scale").expect("update entry");
        assert_eq!(e["operation"], "Update");
        assert_eq!(
            e["fieldsV1"],
            json!({"f:metadata": {"f:annotations": {".": {}, "f:note": {}}}, "f:spec": {"f:replicas": {}}})
        );
        let kubectl = managed(&new, "kubectl").expect("applier");
        assert!(kubectl["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    }

    #[test]
    fn create_by_update_looks_like_kubectl_create() {
        let mut pod = json!({"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":"p","labels":{"run":"p"}},
            "spec":{"containers":[{"name":"p","image":"busybox","ports":[{"containerPort":80}]}]}});
        record_update(None, &mut pod, "kubectl-run", T0);
        let e = managed(&pod, "kubectl-run").expect("entry");
        assert_eq!(
            e["fieldsV1"]["f:metadata"],
            json!({"f:labels": {".": {}, "f:run": {}}})
        );
        let c = &e["fieldsV1"]["f:spec"]["f:containers"]["k:{\"name\":\"p\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(
            c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["f:containerPort"],
            json!({})
        );
        // A later write that changes nothing keeps the entry as is.
        let before = pod.clone();
        record_update(Some(&before), &mut pod, "other", T1);
        assert_eq!(
            pod["metadata"]["managedFields"],
            before["metadata"]["managedFields"]
        );
    }

    #[test]
    fn apply_merges_lists_by_key_and_keeps_other_containers() {
        let mut live = deploy(json!({"app": "web"}), "nginx:1", None);
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("list")
            .push(json!({"name": "side", "image": "s"}));
        let got = apply(
            Some(&live),
            &deploy(json!({"app": "web"}), "nginx:2", None),
            "kubectl",
            false,
            T0,
        )
        .expect("apply");
        let c = &got["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            c,
            &json!([{"name":"web","image":"nginx:2"},{"name":"side","image":"s"}])
        );
        assert!(apply(None, &json!([1]), "m", false, T0).is_err());
        let bad = json!({"kind":"Pod","metadata":{"managedFields":[]}});
        assert_eq!(
            apply(None, &bad, "m", false, T0).map_err(|e| e.http_status()),
            Err(400)
        );
    }
}
