//! One Deployment sync, as upstream's `syncDeployment`: claim ReplicaSets, then
//! scale (paused or a scaling event), or roll out (RollingUpdate or Recreate),
//! clean up old revisions and write the status. The numbers come from the pure
//! modules beside this one; this file only reads the caches and writes.

use super::revision::{
    by_creation, equal_ignore_hash, find_new, history_to_delete, int_annotation, max_revision,
    set_new_rs_annotations, set_replicas_annotations, template_hash, DESIRED_REPLICAS, HASH_LABEL,
    REVISION,
};
use super::rollout::{
    max_surge, max_unavailable, new_rs_new_replicas, proportional_sizes, replicas, rs_available,
    rs_replicas, rs_status_replicas, scale_down_old, strategy, Counts, Sized, RECREATE,
    ROLLING_UPDATE,
};
use super::status::{self as dstatus, get_condition, set_deployment_condition, PROGRESSING};
use super::Controller;
use crate::apiserver::{crud_resource, ApiError, Deletion};
use crate::controllers::replicaset::pods::{controller_of, controller_ref, labels};
use crate::controllers::replicaset::status::now_seconds;
use crate::controllers::replicaset::{involved, selector_of};
use api::resources::Resource;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use serde_json::Value;
use std::collections::HashSet;

/// Why a Deployment sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("{action} for deployment {key}: {error}")]
    Api {
        key: String,
        action: &'static str,
        error: ApiError,
    },
    #[error("deployment {key}: {message}")]
    Decode { key: String, message: String },
}

fn rs_res() -> &'static Resource {
    crud_resource("apps", "replicasets")
}

fn d_res() -> &'static Resource {
    crud_resource("apps", "deployments")
}

fn api_err(key: &str, action: &'static str) -> impl FnOnce(ApiError) -> DeploymentError {
    let key = key.to_string();
    move |error| DeploymentError::Api { key, action, error }
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, v: Value) -> Result<T, DeploymentError> {
    serde_json::from_value(v).map_err(|e| DeploymentError::Decode {
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .progress_deadline_seconds
        .is_some_and(|s| s != i32::MAX)
}

/// Sets the Deployment's revision annotation; true when it changed.
fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let a = d.metadata.annotations.get_or_insert_with(Default::default);
    if a.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    a.insert(REVISION.into(), revision.into());
    true
}

impl Controller {
    #[tracing::instrument(level = "debug", name = "sync_deployment", skip_all, fields(deployment = %key))]
    pub(super) async fn sync(&self, key: &str) -> Result<(), DeploymentError> {
        let Some(d) = self.informers.deployments.get(key) else {
            return Ok(());
        };
        let mut d = (*d).clone();
        let sel = &d.spec.selector;
        let selects_all = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
        if selects_all {
            let me = involved("apps/v1", "Deployment", &d.metadata);
            let msg = "This deployment is selecting all pods. A non-empty selector is required.";
            self.kube.event(&me, "Warning", "SelectingAll", msg).await;
            let mut status = d.status.clone().unwrap_or_default();
            if status.observed_generation < d.metadata.generation {
                status.observed_generation = d.metadata.generation;
                self.write_status(key, &mut d, status).await?;
            }
            return Ok(());
        }
        let mut rss = self.claim_replica_sets(key, &d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let (new, old) = self.get_all(key, &mut d, &mut rss, false).await?;
            return self.sync_status(key, &mut d, new.as_ref(), &old).await;
        }
        if let Some(status) = dstatus::paused_conditions(&d, now_seconds()) {
            self.write_status(key, &mut d, status).await?;
        }
        if d.spec.paused.unwrap_or(false) {
            return self.scale_only(key, &mut d, &mut rss).await;
        }
        let (new, old) = self.get_all(key, &mut d, &mut rss, false).await?;
        let want = replicas(&d);
        let scaling = new
            .iter()
            .chain(old.iter())
            .filter(|rs| rs_replicas(rs) > 0)
            .any(|rs| int_annotation(rs, DESIRED_REPLICAS).is_some_and(|n| n != want));
        if scaling {
            return self.scale_only(key, &mut d, &mut rss).await;
        }
        if strategy(&d) == RECREATE {
            self.rollout_recreate(key, &mut d, &mut rss).await
        } else {
            self.rollout_rolling(key, &mut d, &mut rss).await
        }
    }

    /// The ReplicaSets this Deployment controls after adopting matching orphans
    /// and releasing owned ones that stopped matching.
    async fn claim_replica_sets(
        &self,
        key: &str,
        d: &Deployment,
    ) -> Result<Vec<ReplicaSet>, DeploymentError> {
        let selector = selector_of(&d.spec.selector);
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let deleting = d.metadata.deletion_timestamp.is_some();
        let mut owned = Vec::new();
        let mut fresh_checked = None;
        for rs in self.informers.replicasets.list() {
            if rs.metadata.namespace != d.metadata.namespace {
                continue;
            }
            let matches = selector.matches(&labels(&rs.metadata));
            match controller_of(&rs.metadata) {
                Some(r) if r.uid == uid => {
                    if matches || deleting {
                        owned.push((*rs).clone());
                        continue;
                    }
                    let mut released = (*rs).clone();
                    if let Some(refs) = released.metadata.owner_references.as_mut() {
                        refs.retain(|r| r.uid != uid);
                    }
                    let body = serde_json::to_value(&released).unwrap_or_default();
                    match self.kube.update(rs_res(), body).await {
                        Ok(_) => {}
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(api_err(key, "releasing a replica set")(e)),
                    }
                }
                Some(_) => {}
                None => {
                    if !matches || deleting || rs.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    if fresh_checked.is_none() {
                        let fresh = self
                            .kube
                            .get(
                                d_res(),
                                d.metadata.namespace.as_deref(),
                                d.metadata.name.as_deref().unwrap_or(""),
                            )
                            .await
                            .map_err(api_err(key, "reading"))?;
                        fresh_checked = Some(fresh.is_some_and(|f| {
                            f.pointer("/metadata/uid").and_then(Value::as_str) == Some(&uid)
                                && f.pointer("/metadata/deletionTimestamp").is_none()
                        }));
                    }
                    if fresh_checked != Some(true) {
                        continue;
                    }
                    let mut adopted = (*rs).clone();
                    adopted
                        .metadata
                        .owner_references
                        .get_or_insert_with(Vec::new)
                        .push(controller_ref("apps/v1", "Deployment", &d.metadata));
                    let body = serde_json::to_value(&adopted).unwrap_or_default();
                    match self.kube.update(rs_res(), body).await {
                        Ok(v) => owned.push(decode(key, v)?),
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(api_err(key, "adopting a replica set")(e)),
                    }
                }
            }
        }
        Ok(owned)
    }

    /// Writes the Deployment's annotations (when `meta_changed`) and status,
    /// keeping `d` the stored object.
    async fn save(
        &self,
        key: &str,
        d: &mut Deployment,
        meta_changed: bool,
    ) -> Result<(), DeploymentError> {
        let pending = d.status.clone();
        if meta_changed {
            let body = serde_json::to_value(&*d).unwrap_or_default();
            let v = self
                .kube
                .update(d_res(), body)
                .await
                .map_err(api_err(key, "updating"))?;
            *d = decode(key, v)?;
            d.status = pending;
        }
        let body = serde_json::to_value(&*d).unwrap_or_default();
        let v = self
            .kube
            .update_status(d_res(), body)
            .await
            .map_err(api_err(key, "updating status"))?;
        *d = decode(key, v)?;
        Ok(())
    }

    async fn write_status(
        &self,
        key: &str,
        d: &mut Deployment,
        status: DeploymentStatus,
    ) -> Result<(), DeploymentError> {
        if d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        d.status = Some(status);
        self.save(key, d, false).await
    }

    /// Resizes `rs` (and refreshes its replica annotations); an event on the
    /// Deployment says so. Returns whether the size changed and the stored RS.
    /// Writes `rs` and returns what the API server stored.
    async fn update_rs(
        &self,
        key: &str,
        rs: &ReplicaSet,
        action: &'static str,
    ) -> Result<ReplicaSet, DeploymentError> {
        let body = serde_json::to_value(rs).unwrap_or_default();
        let v = self
            .kube
            .update(rs_res(), body)
            .await
            .map_err(api_err(key, action))?;
        decode(key, v)
    }

    async fn scale_rs(
        &self,
        key: &str,
        d: &Deployment,
        rs: &ReplicaSet,
        size: i32,
        operation: Option<&str>,
    ) -> Result<(bool, ReplicaSet), DeploymentError> {
        let old = rs_replicas(rs);
        let resize = old != size;
        let mut copy = rs.clone();
        let annotate = set_replicas_annotations(&mut copy, replicas(d), replicas(d) + max_surge(d));
        if !resize && !annotate {
            return Ok((false, copy));
        }
        copy.spec.replicas = Some(size);
        let updated = self.update_rs(key, &copy, "scaling a replica set").await?;
        if resize {
            let op = operation.unwrap_or(if old < size { "up" } else { "down" });
            let msg = format!(
                "Scaled {op} replica set {} to {size} from {old}",
                updated.metadata.name.as_deref().unwrap_or("")
            );
            let me = involved("apps/v1", "Deployment", &d.metadata);
            self.kube
                .event(&me, "Normal", "ScalingReplicaSet", &msg)
                .await;
        }
        Ok((resize, updated))
    }

    /// The new ReplicaSet (created when `create` and missing) and the old ones,
    /// with revisions brought up to date (upstream's
    /// `getAllReplicaSetsAndSyncRevision`). `rss` keeps the written versions, so
    /// a second call in the same sync does not write again.
    async fn get_all(
        &self,
        key: &str,
        d: &mut Deployment,
        rss: &mut [ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), DeploymentError> {
        let new_idx = find_new(d, rss);
        let old: Vec<ReplicaSet> = rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_idx)
            .map(|(_, rs)| rs.clone())
            .collect();
        let new_revision = max_revision(&old) + 1;
        if let Some(i) = new_idx {
            let mut copy = rss[i].clone();
            let annotated = set_new_rs_annotations(d, &mut copy, new_revision, true, 0, 0);
            if annotated || copy.spec.min_ready_seconds != d.spec.min_ready_seconds {
                copy.spec.min_ready_seconds = d.spec.min_ready_seconds;
                let updated = self
                    .update_rs(key, &copy, "updating the new replica set")
                    .await?;
                rss[i] = updated.clone();
                return Ok((Some(updated), old));
            }
            let revision = copy
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned()
                .unwrap_or_default();
            let meta_changed = set_deployment_revision(d, &revision);
            let mut status_changed = false;
            let has_progressing = d
                .status
                .as_ref()
                .is_some_and(|s| get_condition(s, PROGRESSING).is_some());
            if has_progress_deadline(d) && !has_progressing {
                let msg = format!(
                    "Found new replica set \"{}\"",
                    copy.metadata.name.as_deref().unwrap_or("")
                );
                set_deployment_condition(
                    d,
                    PROGRESSING,
                    "True",
                    dstatus::FOUND_NEW_RS_REASON,
                    &msg,
                    now_seconds(),
                );
                status_changed = true;
            }
            if meta_changed || status_changed {
                self.save(key, d, meta_changed).await?;
            }
            return Ok((Some(copy), old));
        }
        if !create {
            return Ok((None, old));
        }
        let created = self.create_new_rs(key, d, &old, new_revision).await?;
        Ok((Some(created), old))
    }

    async fn create_new_rs(
        &self,
        key: &str,
        d: &mut Deployment,
        old: &[ReplicaSet],
        new_revision: i64,
    ) -> Result<ReplicaSet, DeploymentError> {
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&d.spec.template, collisions);
        let mut template = d.spec.template.clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let template_labels = meta.labels.clone();
        let mut selector = d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or(""));
        let mut new_rs = ReplicaSet {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
                labels: template_labels,
                ..Default::default()
            },
            spec: k8s_openapi::api::apps::v1::ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let all: Vec<&ReplicaSet> = old.iter().chain([&new_rs]).collect();
        let count = new_rs_new_replicas(d, &all, &new_rs);
        new_rs.spec.replicas = Some(count);
        set_new_rs_annotations(
            d,
            &mut new_rs,
            new_revision,
            false,
            replicas(d),
            replicas(d) + max_surge(d),
        );
        let me = involved("apps/v1", "Deployment", &d.metadata);
        let body = serde_json::to_value(&new_rs).unwrap_or_default();
        let (created, existed) = match self
            .kube
            .create(rs_res(), d.metadata.namespace.as_deref(), body)
            .await
        {
            Ok(v) => (decode::<ReplicaSet>(key, v)?, false),
            Err(e) if e.reason == "AlreadyExists" => {
                let existing = self
                    .kube
                    .get(rs_res(), d.metadata.namespace.as_deref(), &name)
                    .await
                    .map_err(api_err(key, "reading the new replica set"))?;
                let existing: Option<ReplicaSet> = existing.map(|v| decode(key, v)).transpose()?;
                let ours = existing.filter(|rs| {
                    controller_of(&rs.metadata)
                        .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref())
                        && rs
                            .spec
                            .template
                            .as_ref()
                            .is_some_and(|t| equal_ignore_hash(t, &d.spec.template))
                });
                match ours {
                    Some(rs) => (rs, true),
                    None => {
                        // A different ReplicaSet has this name: hash again with
                        // one more collision.
                        let mut status = d.status.clone().unwrap_or_default();
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                        d.status = Some(status);
                        self.save(key, d, false).await?;
                        return Err(api_err(key, "creating the new replica set")(e));
                    }
                }
            }
            Err(e) if e.message.contains("because it is being terminated") => {
                return Err(api_err(key, "creating the new replica set")(e));
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set \"{name}\": {}", e.message);
                if has_progress_deadline(d) {
                    let reason = dstatus::FAILED_RS_CREATE_REASON;
                    set_deployment_condition(d, PROGRESSING, "False", reason, &msg, now_seconds());
                    self.save(key, d, false).await?;
                }
                self.kube.event(&me, "Warning", "FailedCreate", &msg).await;
                return Err(api_err(key, "creating the new replica set")(e));
            }
        };
        if !existed && count > 0 {
            let msg = format!("Scaled up replica set {name} to {count} from 0");
            self.kube
                .event(&me, "Normal", "ScalingReplicaSet", &msg)
                .await;
        }
        let meta_changed = set_deployment_revision(d, &new_revision.to_string());
        let mut status_changed = false;
        if !existed && has_progress_deadline(d) {
            let msg = format!("Created new replica set \"{name}\"");
            let reason = dstatus::NEW_RS_REASON;
            set_deployment_condition(d, PROGRESSING, "True", reason, &msg, now_seconds());
            status_changed = true;
        }
        if meta_changed || status_changed {
            self.save(key, d, meta_changed).await?;
        }
        Ok(created)
    }

    /// Scaling only (paused, or `spec.replicas` changed): upstream's `sync`.
    async fn scale_only(
        &self,
        key: &str,
        d: &mut Deployment,
        rss: &mut [ReplicaSet],
    ) -> Result<(), DeploymentError> {
        let (mut new, mut old) = self.get_all(key, d, rss, false).await?;
        self.scale(key, d, &mut new, &mut old).await?;
        if d.spec.paused.unwrap_or(false) {
            self.cleanup(key, d, &old).await?;
        }
        self.sync_status(key, d, new.as_ref(), &old).await
    }

    async fn sync_status(
        &self,
        key: &str,
        d: &mut Deployment,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), DeploymentError> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new).collect();
        let status = dstatus::calculate(&all, new, d, now_seconds());
        self.write_status(key, d, status).await
    }

    async fn scale(
        &self,
        key: &str,
        d: &Deployment,
        new: &mut Option<ReplicaSet>,
        old: &mut [ReplicaSet],
    ) -> Result<(), DeploymentError> {
        let want = replicas(d);
        // One active ReplicaSet (or none: the newest) takes the whole size.
        old.sort_by(|a, b| by_creation(b, a));
        let active_count = old
            .iter()
            .chain(new.iter())
            .filter(|rs| rs_replicas(rs) > 0)
            .count();
        let target = match active_count {
            0 if new.is_some() => new.as_mut(),
            0 => old.first_mut(),
            1 => new
                .as_mut()
                .filter(|rs| rs_replicas(rs) > 0)
                .or_else(|| old.iter_mut().find(|rs| rs_replicas(rs) > 0)),
            _ => None,
        };
        if let Some(rs) = target {
            if rs_replicas(rs) != want {
                *rs = self.scale_rs(key, d, rs, want, None).await?.1;
            }
            return Ok(());
        }
        let saturated = new.as_ref().is_some_and(|rs| {
            int_annotation(rs, DESIRED_REPLICAS) == Some(want)
                && rs_available(rs) == want
                && rs_replicas(rs) == want
        });
        if saturated {
            for rs in old.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
                *rs = self.scale_rs(key, d, rs, 0, None).await?.1;
            }
            return Ok(());
        }
        if strategy(d) != ROLLING_UPDATE {
            return Ok(());
        }
        let mut targets: Vec<&mut ReplicaSet> = old
            .iter_mut()
            .chain(new.iter_mut())
            .filter(|rs| rs_replicas(rs) > 0)
            .collect();
        let sized: Vec<Sized> = targets
            .iter()
            .map(|rs| Sized {
                name: rs.metadata.name.clone().unwrap_or_default(),
                spec: rs_replicas(rs),
                created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
                max_replicas: int_annotation(rs, super::revision::MAX_REPLICAS),
            })
            .collect();
        let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let sizes = proportional_sizes(want, max_surge(d), status_replicas, &sized);
        let total: i32 = sized.iter().map(|s| s.spec).sum();
        let allowed = if want > 0 { want + max_surge(d) } else { 0 };
        let op = if allowed > total { "up" } else { "down" };
        for (rs, size) in targets.iter_mut().zip(sizes) {
            **rs = self.scale_rs(key, d, rs, size, Some(op)).await?.1;
        }
        Ok(())
    }

    /// Deletes old ReplicaSets beyond the revision history limit.
    async fn cleanup(
        &self,
        key: &str,
        d: &Deployment,
        old: &[ReplicaSet],
    ) -> Result<(), DeploymentError> {
        for name in history_to_delete(d, old) {
            match self
                .kube
                .delete(
                    rs_res(),
                    d.metadata.namespace.as_deref(),
                    &name,
                    Deletion::default(),
                )
                .await
            {
                Ok(()) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(api_err(key, "deleting an old replica set")(e)),
            }
        }
        Ok(())
    }

    /// Writes the rollout's status, or schedules a look at the progress deadline.
    async fn sync_rollout_status(
        &self,
        key: &str,
        d: &mut Deployment,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), DeploymentError> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new).collect();
        let now = now_seconds();
        let status = dstatus::rollout(&all, new, d, now);
        if d.status.as_ref() == Some(&status) {
            if let Some(after) = dstatus::recheck_after(d, &status, now) {
                self.queue.add_after(key.to_string(), after);
            }
            return Ok(());
        }
        self.write_status(key, d, status).await
    }

    async fn rollout_rolling(
        &self,
        key: &str,
        d: &mut Deployment,
        rss: &mut [ReplicaSet],
    ) -> Result<(), DeploymentError> {
        let (new, mut old) = self.get_all(key, d, rss, true).await?;
        let Some(mut new) = new else { return Ok(()) };
        // Scale up, if we can.
        let want = replicas(d);
        if rs_replicas(&new) != want {
            let size = if rs_replicas(&new) > want {
                want
            } else {
                let all: Vec<&ReplicaSet> = old.iter().chain([&new]).collect();
                new_rs_new_replicas(d, &all, &new)
            };
            let (scaled, updated) = self.scale_rs(key, d, &new, size, None).await?;
            new = updated;
            if scaled {
                return self.sync_rollout_status(key, d, Some(&new), &old).await;
            }
        }
        // Scale down, if we can.
        let mut idx: Vec<usize> = (0..old.len())
            .filter(|&i| rs_replicas(&old[i]) > 0)
            .collect();
        idx.sort_by(|&i, &j| by_creation(&old[i], &old[j]));
        let counts: Vec<Counts> = idx.iter().map(|&i| Counts::of(&old[i])).collect();
        let targets = scale_down_old(want, max_unavailable(d), &counts, Counts::of(&new));
        let mut scaled_down = false;
        for (&i, size) in idx.iter().zip(targets) {
            if size != rs_replicas(&old[i]) {
                let (scaled, updated) = self.scale_rs(key, d, &old[i], size, None).await?;
                old[i] = updated;
                scaled_down |= scaled;
            }
        }
        if scaled_down {
            return self.sync_rollout_status(key, d, Some(&new), &old).await;
        }
        if d.status.as_ref().is_some_and(|s| dstatus::complete(d, s)) {
            self.cleanup(key, d, &old).await?;
        }
        self.sync_rollout_status(key, d, Some(&new), &old).await
    }

    async fn rollout_recreate(
        &self,
        key: &str,
        d: &mut Deployment,
        rss: &mut [ReplicaSet],
    ) -> Result<(), DeploymentError> {
        let (mut new, mut old) = self.get_all(key, d, rss, false).await?;
        let mut scaled_down = false;
        for rs in old.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
            let (scaled, updated) = self.scale_rs(key, d, rs, 0, None).await?;
            *rs = updated;
            scaled_down |= scaled;
        }
        if scaled_down || self.old_pods_running(new.as_ref(), &old) {
            return self.sync_rollout_status(key, d, new.as_ref(), &old).await;
        }
        if new.is_none() {
            (new, old) = self.get_all(key, d, rss, true).await?;
        }
        if let Some(rs) = new.as_mut() {
            *rs = self.scale_rs(key, d, rs, replicas(d), None).await?.1;
        }
        if d.status.as_ref().is_some_and(|s| dstatus::complete(d, s)) {
            self.cleanup(key, d, &old).await?;
        }
        self.sync_rollout_status(key, d, new.as_ref(), &old).await
    }

    /// Old ReplicaSets still report pods, or the cache still has pods of theirs
    /// that have not finished (terminating ones included).
    fn old_pods_running(&self, new: Option<&ReplicaSet>, old: &[ReplicaSet]) -> bool {
        if old.iter().map(rs_status_replicas).sum::<i32>() > 0 {
            return true;
        }
        let new_uid = new.and_then(|rs| rs.metadata.uid.as_deref());
        let old_uids: HashSet<&str> = old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .filter(|u| Some(*u) != new_uid)
            .collect();
        if old_uids.is_empty() {
            return false;
        }
        let ns = old.first().and_then(|rs| rs.metadata.namespace.clone());
        self.informers.pods.list().iter().any(|p| {
            p.metadata.namespace.as_deref() == ns.as_deref()
                && controller_of(&p.metadata).is_some_and(|r| old_uids.contains(r.uid.as_str()))
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Failed") | Some("Succeeded")
                )
        })
    }
}
