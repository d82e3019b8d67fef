//! The garbage collector's view of the cluster: every object by uid, with only
//! what collection needs (resource, namespace, name, ownerReferences, deletion
//! state), and the reverse edges owner uid → dependents. Pure: updates return the
//! work they make necessary; the collector queues it.

use crate::controllers::lite::{intern, intern_str, Internable, Interner};
use api::resources::Resource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

/// The finalizer of an owner deleted with `propagationPolicy: Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an owner deleted with `propagationPolicy: Orphan`.
pub const ORPHAN: &str = "orphan";

/// One ownerReference, as much of it as collection reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRef {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub block_owner_deletion: Option<bool>,
}

impl OwnerRef {
    pub fn blocks(&self) -> bool {
        self.block_owner_deletion == Some(true)
    }
}

/// The metadata of a stored object, decoded without the rest of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub owner_references: Vec<OwnerRef>,
    #[serde(default)]
    pub finalizers: Vec<String>,
    #[serde(default)]
    pub deletion_timestamp: Option<String>,
}

/// An object's envelope, for decoding only its metadata.
#[derive(Deserialize)]
pub struct Partial {
    #[serde(default)]
    pub metadata: PartialMeta,
}

impl PartialMeta {
    /// The same fields of a typed object's metadata.
    pub fn from_meta(m: &ObjectMeta) -> Self {
        Self::new(
            m.name.as_deref(),
            m.namespace.as_deref(),
            m.uid.as_deref(),
            m.owner_references.as_deref(),
            m.finalizers.as_deref(),
            m.deletion_timestamp.is_some(),
        )
    }

    /// The fields collection reads, from any object's metadata.
    pub fn new(
        name: Option<&str>,
        namespace: Option<&str>,
        uid: Option<&str>,
        owners: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]>,
        finalizers: Option<&[String]>,
        deleting: bool,
    ) -> Self {
        Self {
            name: name.unwrap_or_default().to_string(),
            namespace: namespace.filter(|n| !n.is_empty()).map(str::to_string),
            uid: uid.unwrap_or_default().to_string(),
            owner_references: owners
                .into_iter()
                .flatten()
                .map(|r| OwnerRef {
                    api_version: r.api_version.clone(),
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                    uid: r.uid.clone(),
                    block_owner_deletion: r.block_owner_deletion,
                })
                .collect(),
            finalizers: finalizers.map(<[String]>::to_vec).unwrap_or_default(),
            deletion_timestamp: deleting.then(String::new),
        }
    }

    /// Decodes the metadata of a stored object's JSON.
    pub fn decode(raw: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice::<Partial>(raw).map(|p| p.metadata)
    }
}

/// One object in the graph. The namespace and the owner list are shared with
/// the other objects that have the same ones (the replicas of one ReplicaSet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub res: &'static Resource,
    pub namespace: Option<Arc<str>>,
    pub name: String,
    pub owners: Arc<Vec<OwnerRef>>,
    /// Has a deletionTimestamp.
    pub deleting: bool,
    /// Being deleted and holds the `foregroundDeletion` finalizer.
    pub foreground: bool,
    /// Being deleted and holds the `orphan` finalizer.
    pub orphan: bool,
}

impl Node {
    fn new(res: &'static Resource, m: PartialMeta) -> Self {
        let deleting = m.deletion_timestamp.is_some();
        let has = |f: &str| m.finalizers.iter().any(|x| x == f);
        Self {
            res,
            foreground: deleting && has(FOREGROUND),
            orphan: deleting && has(ORPHAN),
            deleting,
            namespace: m.namespace.as_deref().map(intern_str),
            name: m.name,
            owners: intern(m.owner_references),
        }
    }

    /// The reference this object holds to `owner`, if any.
    pub fn ref_to(&self, owner: &str) -> Option<&OwnerRef> {
        self.owners.iter().find(|r| r.uid == owner)
    }
}

impl Internable for Vec<OwnerRef> {
    fn interner() -> &'static Interner<Self> {
        static TABLE: LazyLock<Interner<Vec<OwnerRef>>> = LazyLock::new(Interner::new);
        &TABLE
    }
    fn fingerprint(&self) -> u64 {
        crate::controllers::lite::hash_of(self)
    }
    fn shrink(&mut self) {
        self.shrink_to_fit();
    }
}

/// What the collector has to look at after a change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// Is this object garbage (all owners gone or being deleted in foreground)?
    AttemptDelete(String),
    /// This owner is deleted in foreground: delete its dependents, then let it go.
    Foreground(String),
    /// This owner is deleted with orphaning: release its dependents, then let it go.
    Orphan(String),
}

/// Every object by uid and the dependents of every owner uid.
#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents of `owner` that are in the graph, with their uids.
    pub fn dependents(&self, owner: &str) -> Vec<(String, Node)> {
        self.dependents
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d).map(|n| (d.clone(), n.clone())))
            .collect()
    }

    pub fn has_dependents(&self, owner: &str) -> bool {
        self.dependents.get(owner).is_some_and(|d| !d.is_empty())
    }

    /// An object was added or changed.
    pub fn upsert(&mut self, res: &'static Resource, meta: PartialMeta) -> Vec<Work> {
        if meta.uid.is_empty() {
            return Vec::new();
        }
        let uid = meta.uid.clone();
        let new = Node::new(res, meta);
        let mut work = Vec::new();
        let old = self.nodes.get(&uid);
        if old.is_some_and(|o| *o == new) {
            return work;
        }
        let old_owners = old.map(|o| o.owners.clone()).unwrap_or_default();
        let was_foreground = old.is_some_and(|o| o.foreground);
        if old.is_none() || old_owners != new.owners {
            for r in old_owners.iter() {
                if !new.owners.iter().any(|n| n.uid == r.uid) {
                    self.unlink(&r.uid, &uid);
                    // A foreground owner may have been waiting for this one.
                    if self.nodes.get(&r.uid).is_some_and(|o| o.foreground) {
                        work.push(Work::Foreground(r.uid.clone()));
                    }
                }
            }
            for r in new.owners.iter() {
                self.dependents
                    .entry(r.uid.clone())
                    .or_default()
                    .insert(uid.clone());
            }
            if !new.owners.is_empty() {
                work.push(Work::AttemptDelete(uid.clone()));
            }
        }
        if new.foreground {
            work.push(Work::Foreground(uid.clone()));
            if !was_foreground {
                for d in self.dependents.get(&uid).into_iter().flatten() {
                    work.push(Work::AttemptDelete(d.clone()));
                }
            }
        }
        if new.orphan {
            work.push(Work::Orphan(uid.clone()));
        }
        if new.deleting && !new.owners.is_empty() {
            // A blocking dependent that starts to go: its foreground owner looks again.
            for r in new.owners.iter() {
                if self.nodes.get(&r.uid).is_some_and(|o| o.foreground) {
                    work.push(Work::Foreground(r.uid.clone()));
                }
            }
        }
        self.nodes.insert(uid, new);
        work
    }

    /// An object is gone.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut work = Vec::new();
        for r in node.owners.iter() {
            self.unlink(&r.uid, uid);
            if self.nodes.get(&r.uid).is_some_and(|o| o.foreground) {
                work.push(Work::Foreground(r.uid.clone()));
            }
        }
        for d in self.dependents.get(uid).into_iter().flatten() {
            work.push(Work::AttemptDelete(d.clone()));
        }
        work
    }

    /// A fresh list of every object of `res`: objects of `res` missing from it are
    /// gone, the others are upserted.
    pub fn replace(&mut self, res: &'static Resource, metas: Vec<PartialMeta>) -> Vec<Work> {
        let seen: HashSet<&str> = metas.iter().map(|m| m.uid.as_str()).collect();
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(uid, n)| std::ptr::eq(n.res, res) && !seen.contains(uid.as_str()))
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut work = Vec::new();
        for uid in gone {
            work.extend(self.remove(&uid));
        }
        for m in metas {
            work.extend(self.upsert(res, m));
        }
        work
    }

    /// Everything worth a look on a periodic resync.
    pub fn all_work(&self) -> Vec<Work> {
        let mut work = Vec::new();
        for (uid, n) in &self.nodes {
            if !n.owners.is_empty() {
                work.push(Work::AttemptDelete(uid.clone()));
            }
            if n.foreground {
                work.push(Work::Foreground(uid.clone()));
            }
            if n.orphan {
                work.push(Work::Orphan(uid.clone()));
            }
        }
        work
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::crud_resource;

    fn meta(uid: &str, owners: &[(&str, bool)]) -> PartialMeta {
        PartialMeta {
            name: format!("n-{uid}"),
            namespace: Some("default".into()),
            uid: uid.into(),
            owner_references: owners
                .iter()
                .map(|(o, block)| OwnerRef {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: format!("n-{o}"),
                    uid: (*o).into(),
                    block_owner_deletion: Some(*block),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn cm() -> &'static Resource {
        crud_resource("", "configmaps")
    }

    #[test]
    fn dependents_are_indexed_and_checked_when_their_owner_goes() {
        let mut g = Graph::default();
        assert!(g.upsert(cm(), meta("o", &[])).is_empty());
        assert_eq!(
            g.upsert(cm(), meta("d", &[("o", false)])),
            vec![Work::AttemptDelete("d".into())]
        );
        // An unchanged object makes no work.
        assert!(g.upsert(cm(), meta("d", &[("o", false)])).is_empty());
        assert_eq!(g.dependents("o").len(), 1);
        assert_eq!(g.remove("o"), vec![Work::AttemptDelete("d".into())]);
        // The edge stays until the dependent changes or goes.
        assert!(g.has_dependents("o"));
        g.remove("d");
        assert!(!g.has_dependents("o"));
        assert!(g.is_empty());
    }

    #[test]
    fn a_foreground_owner_queues_its_dependents_and_hears_when_they_go() {
        let mut g = Graph::default();
        g.upsert(cm(), meta("o", &[]));
        g.upsert(cm(), meta("d", &[("o", true)]));
        let mut deleting = meta("o", &[]);
        deleting.deletion_timestamp = Some("now".into());
        deleting.finalizers = vec![FOREGROUND.into()];
        let mut work = g.upsert(cm(), deleting);
        work.sort();
        assert_eq!(
            work,
            vec![
                Work::AttemptDelete("d".into()),
                Work::Foreground("o".into())
            ]
        );
        assert!(g.get("o").is_some_and(|n| n.foreground));
        assert_eq!(g.remove("d"), vec![Work::Foreground("o".into())]);
    }

    #[test]
    fn an_orphaning_owner_is_queued() {
        let mut g = Graph::default();
        let mut m = meta("o", &[]);
        m.deletion_timestamp = Some("now".into());
        m.finalizers = vec![ORPHAN.into()];
        assert_eq!(g.upsert(cm(), m), vec![Work::Orphan("o".into())]);
    }

    #[test]
    fn a_relist_removes_what_is_missing() {
        let mut g = Graph::default();
        g.upsert(cm(), meta("o", &[]));
        g.upsert(cm(), meta("d", &[("o", false)]));
        let work = g.replace(cm(), vec![meta("d", &[("o", false)])]);
        assert_eq!(work, vec![Work::AttemptDelete("d".into())]);
        assert!(g.get("o").is_none());
        // Another resource's objects are not touched.
        let pods = crud_resource("", "pods");
        g.upsert(pods, meta("p", &[]));
        g.replace(cm(), vec![]);
        assert!(g.get("p").is_some());
        assert!(g.get("d").is_none());
    }

    #[test]
    fn metadata_decodes_without_the_rest_of_the_object() {
        let raw = br#"{"kind":"Pod","metadata":{"name":"p","namespace":"ns","uid":"u1",
            "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"u0","controller":true,"blockOwnerDeletion":true}],
            "managedFields":[{"manager":"x"}]},"spec":{"containers":[]}}"#;
        let m = PartialMeta::decode(raw).unwrap();
        assert_eq!(m.uid, "u1");
        assert_eq!(m.namespace.as_deref(), Some("ns"));
        assert_eq!(m.owner_references[0].kind, "ReplicaSet");
        assert!(m.owner_references[0].blocks());
    }
}
