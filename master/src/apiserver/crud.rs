//! The verbs on resources: get, list, create, update (PUT), patch, delete and
//! deletecollection, including the status subresource. Objects are JSON values; what
//! differs per kind (defaults, validation, status reset) is looked up by kind.

use super::http::{bytes_response, json_response, parse_object, Body};
use super::objects::{self, name_of, now_rfc3339};
use super::route::{Query, Target};
use super::status::{success_status, ApiError, FieldCause};
use super::{defaults, Server};
use crate::patch;
use crate::store::{KeyValue, Revision, StoreError};
use api::resources::{self, Resource};
use api::selector::{FieldSelector, LabelSelector};
use base64::Engine;
use bytes::Bytes;
use http::Response;
use serde_json::{json, Value};

/// How many times a PATCH or unconditional PUT retries after losing a race.
const MAX_RETRIES: usize = 8;

/// The kinds of patch a client can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply { force: bool },
}

/// A 409 from losing a race with another writer (not a failed precondition).
pub(super) fn is_lost_race(e: &ApiError) -> bool {
    e.reason == "Conflict" && e.message.contains("the object has been modified")
}

/// Maps a store error on `name` of `res` to the API error a client expects.
pub fn store_error(res: &Resource, name: &str, err: StoreError) -> ApiError {
    match err {
        StoreError::AlreadyExists { .. } => ApiError::already_exists(res, name),
        StoreError::NotFound { .. } => ApiError::not_found(res, name),
        StoreError::Conflict { .. } => ApiError::conflict(res, name),
        StoreError::Expired { requested, oldest } => ApiError::gone(requested, oldest),
        StoreError::Closed => ApiError::unavailable("the store is shutting down"),
        other => {
            tracing::error!(error = %other, "store failure");
            ApiError::internal(format!("storage error: {other}"))
        }
    }
}

pub fn parse_value(kv: &KeyValue) -> Result<Value, ApiError> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))
}

/// The validation causes of `obj` (and of the change from `old`), as Status causes.
fn validate(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    // validate_update includes validate_object of the new object.
    let causes = match old {
        Some(old) => api::validation::validate_update(kind, old, obj),
        None => api::validation::validate_object(kind, obj),
    };
    causes
        .into_iter()
        .map(|c| FieldCause {
            reason: api::validation::cause_type_str(&c.reason).to_string(),
            message: c.message,
            field: c.field,
        })
        .collect()
}

/// Selectors and paging of a list or watch request.
pub struct ListOptions {
    pub labels: Option<LabelSelector>,
    pub fields: Option<FieldSelector>,
    pub limit: usize,
    pub continue_after: Option<String>,
}

impl ListOptions {
    pub fn from_query(res: &Resource, q: &Query) -> Result<Self, ApiError> {
        // The selector error already reads "unable to parse requirement: …".
        let labels = match q.non_empty("labelSelector") {
            Some(s) => {
                Some(LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?)
            }
            None => None,
        };
        let fields = match q.non_empty("fieldSelector") {
            Some(s) => {
                let f = FieldSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
                f.validate_for(res.kind)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(f)
            }
            None => None,
        };
        let limit = match q.non_empty("limit") {
            Some(l) => l
                .parse::<i64>()
                .map(|l| l.max(0) as usize)
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
            None => 0,
        };
        let continue_after = match q.non_empty("continue") {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        Ok(Self {
            labels,
            fields,
            limit,
            continue_after,
        })
    }

    pub fn filters(&self) -> bool {
        self.labels.is_some() || self.fields.is_some()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.as_ref().is_none_or(|l| l.matches_value(obj))
            && self.fields.as_ref().is_none_or(|f| f.matches(obj))
    }
}

fn encode_continue(key: &str, rev: Revision) -> String {
    let token = json!({ "v": "bosun.continue/1", "rv": rev, "start": key });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    v.get("start")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(bad)
}

/// The result of a list: raw stored objects that matched, the revision, the
/// continue token.
pub struct Listed {
    pub items: Vec<Bytes>,
    pub parsed: Option<Vec<Value>>,
    pub revision: Revision,
    pub continue_token: Option<String>,
}

impl Server {
    pub(super) fn key(&self, t: &Target, name: &str) -> String {
        t.res.key(t.namespace.as_deref(), name)
    }

    pub(super) async fn get_current(
        &self,
        res: &Resource,
        key: &str,
        name: &str,
    ) -> Result<(Value, Revision), ApiError> {
        let kv = self
            .store
            .get(key)
            .await
            .map_err(|e| store_error(res, name, e))?
            .ok_or_else(|| ApiError::not_found(res, name))?;
        Ok((parse_value(&kv)?, kv.mod_revision))
    }

    /// Lists objects of `res` in `namespace` (None: all) that match `opts`.
    pub async fn list_objects(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        opts: &ListOptions,
        want_parsed: bool,
    ) -> Result<Listed, ApiError> {
        let prefix = res.key_prefix_in(namespace);
        let mut items = Vec::new();
        let mut parsed = Vec::new();
        let mut start = opts.continue_after.clone();
        let page = if opts.limit > 0 {
            opts.limit.max(100)
        } else {
            0
        };
        let mut revision;
        let mut continue_token = None;
        loop {
            let p = self
                .store
                .list(&prefix, start.as_deref(), page)
                .await
                .map_err(|e| store_error(res, "", e))?;
            revision = p.revision;
            let mut last_key = None;
            let mut stopped_early = false;
            for kv in p.items.iter() {
                if opts.limit > 0 && items.len() >= opts.limit {
                    stopped_early = true;
                    break;
                }
                last_key = Some(kv.key.clone());
                if opts.filters() || want_parsed {
                    let v = parse_value(kv)?;
                    if !opts.matches(&v) {
                        continue;
                    }
                    if want_parsed {
                        parsed.push(v);
                    }
                }
                items.push(kv.value.clone());
            }
            let more = stopped_early || p.more;
            if opts.limit > 0 && items.len() >= opts.limit {
                if more {
                    if let Some(k) = last_key {
                        continue_token = Some(encode_continue(&k, revision));
                    }
                }
                break;
            }
            if !p.more || p.items.is_empty() {
                break;
            }
            start = p.items.last().map(|kv| kv.key.clone());
        }
        Ok(Listed {
            items,
            parsed: want_parsed.then_some(parsed),
            revision,
            continue_token,
        })
    }

    pub(super) async fn list(
        &self,
        t: &Target,
        q: &Query,
        table: Option<&'static str>,
    ) -> Result<Response<Body>, ApiError> {
        if t.res.namespaced() {
            if let Some(ns) = &t.namespace {
                self.check_namespace_exists(ns).await.ok();
            }
        }
        let opts = ListOptions::from_query(t.res, q)?;
        let listed = self
            .list_objects(t.res, t.namespace.as_deref(), &opts, table.is_some())
            .await?;
        let mut meta = json!({ "resourceVersion": listed.revision.to_string() });
        if let Some(c) = &listed.continue_token {
            meta["continue"] = json!(c);
        }
        if let (Some(api_version), Some(parsed)) = (table, &listed.parsed) {
            let include = q.non_empty("includeObject").unwrap_or("Metadata");
            let t = super::table::table(
                t.res.kind,
                api_version,
                parsed,
                meta,
                include,
                jiff::Timestamp::now(),
            );
            return Ok(json_response(200, &t));
        }
        // Concatenate the stored bytes: no parse and re-serialize per item.
        let head = json!({
            "kind": format!("{}List", t.res.kind),
            "apiVersion": t.res.api_version(),
            "metadata": meta,
        })
        .to_string();
        let total: usize = listed.items.iter().map(|b| b.len() + 1).sum();
        let mut out = Vec::with_capacity(head.len() + total + 16);
        out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        out.extend_from_slice(b",\"items\":[");
        for (i, item) in listed.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item);
        }
        out.extend_from_slice(b"]}");
        Ok(bytes_response(200, "application/json", out))
    }

    pub(super) async fn get(
        &self,
        t: &Target,
        name: &str,
        q: &Query,
        table: Option<&'static str>,
    ) -> Result<Response<Body>, ApiError> {
        let key = self.key(t, name);
        let kv = self
            .store
            .get(&key)
            .await
            .map_err(|e| store_error(t.res, name, e))?
            .ok_or_else(|| ApiError::not_found(t.res, name))?;
        if let Some(api_version) = table {
            let v = parse_value(&kv)?;
            let include = q.non_empty("includeObject").unwrap_or("Metadata");
            let meta = json!({ "resourceVersion": kv.mod_revision.to_string() });
            let t = super::table::table(
                t.res.kind,
                api_version,
                &[v],
                meta,
                include,
                jiff::Timestamp::now(),
            );
            return Ok(json_response(200, &t));
        }
        Ok(bytes_response(200, "application/json", kv.value))
    }

    /// 404 when the namespace is absent, 403 when it is terminating.
    pub(super) async fn check_namespace(&self, ns: &str) -> Result<(), ApiError> {
        let nsres = namespaces();
        match self.store.get(&nsres.key(None, ns)).await {
            Ok(Some(kv)) => {
                let v = parse_value(&kv)?;
                if v.pointer("/metadata/deletionTimestamp").is_some() {
                    return Err(ApiError::forbidden(format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    )));
                }
                Ok(())
            }
            Ok(None) => Err(ApiError::namespace_not_found(ns)),
            Err(e) => Err(store_error(nsres, ns, e)),
        }
    }

    async fn check_namespace_exists(&self, ns: &str) -> Result<(), ApiError> {
        match self.store.get(&namespaces().key(None, ns)).await {
            Ok(Some(_)) => Ok(()),
            _ => Err(ApiError::namespace_not_found(ns)),
        }
    }

    /// Validates and prepares a new object and stores it.
    pub async fn create_object(
        &self,
        res: &'static Resource,
        namespace: Option<&str>,
        mut obj: Value,
        // None: server-side apply already recorded the applier's fields.
        manager: Option<&str>,
    ) -> Result<Bytes, ApiError> {
        objects::ensure_type(res, &mut obj, res.kind).map_err(ApiError::bad_request)?;
        if res.namespaced() {
            let ns = namespace.ok_or_else(ApiError::method_not_allowed)?;
            if let Some(body_ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str) {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
        }
        let mut obj = objects::typed_roundtrip(res, obj).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                res.kind, res.version, res.kind
            ))
        })?;
        objects::prepare_create(res, &mut obj, namespace);
        defaults::apply(res.kind, &mut obj);
        // As upstream: the writer owns what it sent plus the defaults, not what
        // admission adds or the status the server sets.
        if let Some(manager) = manager {
            patch::apply::record_update(None, &mut obj, manager, &now_rfc3339());
        }
        defaults::admit(res.kind, &mut obj, self.default_toleration_seconds());
        objects::reset_status(res, &mut obj);
        let name = name_of(&obj).to_string();
        let causes = validate(res.kind, &obj, None);
        if !causes.is_empty() {
            return Err(ApiError::invalid(res, &name, causes));
        }
        if res.namespaced() {
            self.check_namespace(namespace.unwrap_or_default()).await?;
        }
        let mut claimed = Vec::new();
        if res.kind == "Service" && res.group.is_empty() {
            claimed = self.allocate_service(&mut obj).await?;
        }
        let key = res.key(namespace, &name);
        match self.store.create(&key, obj).await {
            Ok(kv) => {
                self.after_create(res, &name).await;
                Ok(kv.value)
            }
            Err(e) => {
                self.release_claims(&claimed).await;
                Err(store_error(res, &name, e))
            }
        }
    }

    pub(super) async fn create(
        &self,
        t: &Target,
        q: &Query,
        body: Bytes,
        content_type: Option<&str>,
        user_agent: &str,
    ) -> Result<Response<Body>, ApiError> {
        let obj = parse_object(&body, content_type)?;
        let manager = field_manager(q, user_agent);
        let created = self
            .create_object(t.res, t.namespace.as_deref(), obj, Some(&manager))
            .await?;
        Ok(bytes_response(201, "application/json", created))
    }

    /// Writes `new` over `old` (stored at `old_rev`), for PUT, PATCH and status
    /// writes. Returns the stored object; a write that changes nothing is skipped.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_update(
        &self,
        res: &'static Resource,
        key: &str,
        name: &str,
        mut new: Value,
        old: &Value,
        old_rev: Revision,
        subresource: Option<&str>,
        manager: &str,
        record_fields: bool,
    ) -> Result<Value, ApiError> {
        objects::ensure_type(res, &mut new, res.kind).map_err(ApiError::bad_request)?;
        if let Some(given) = new.pointer("/metadata/name").and_then(Value::as_str) {
            if given != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({given}) does not match the name on the URL ({name})"
                )));
            }
        }
        let mut new = objects::typed_roundtrip(res, new).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                res.kind, res.version, res.kind
            ))
        })?;
        let mut result = if subresource == Some("status") {
            let mut r = old.clone();
            match new.get("status") {
                Some(s) => r["status"] = s.clone(),
                None => {
                    if let Some(m) = r.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            r
        } else {
            if objects::has_status_subresource(res) {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            // Metadata a client may not change.
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "selfLink",
            ] {
                match old["metadata"].get(k) {
                    Some(v) => new["metadata"][k] = v.clone(),
                    None => {
                        if let Some(m) = new["metadata"].as_object_mut() {
                            m.remove(k);
                        }
                    }
                }
            }
            if !new["metadata"]
                .get("managedFields")
                .is_some_and(Value::is_array)
            {
                if let Some(mf) = old["metadata"].get("managedFields") {
                    new["metadata"]["managedFields"] = mf.clone();
                }
            }
            if res.kind == "Secret" {
                if let Some(m) = new.as_object_mut() {
                    objects::fold_string_data(m);
                }
            }
            new
        };
        defaults::apply(res.kind, &mut result);
        if objects::has_generation(res.kind) && result.get("spec") != old.get("spec") {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            result["metadata"]["generation"] = json!(g + 1);
        }
        let causes = validate(res.kind, &result, Some(old));
        if !causes.is_empty() {
            return Err(ApiError::invalid(res, name, causes));
        }
        if record_fields {
            patch::apply::record_update(Some(old), &mut result, manager, &now_rfc3339());
        }
        if same_object(old, &result) {
            return Ok(old.clone());
        }
        // The last finalizer removed from an object being deleted: it goes now.
        let deleting = result.pointer("/metadata/deletionTimestamp").is_some();
        let finalizers_left = result
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let ns_finalizers_left = res.kind == "Namespace"
            && result
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
        let graceful_pod = res.kind == "Pod"
            && result
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .is_some_and(|g| g > 0);
        if deleting && !finalizers_left && !ns_finalizers_left && !graceful_pod {
            let kv = self
                .store
                .delete(key, Some(old_rev))
                .await
                .map_err(|e| store_error(res, name, e))?;
            let gone = parse_value(&kv)?;
            self.after_delete(res, &gone).await;
            return Ok(gone);
        }
        let kv = self
            .store
            .update(key, result, Some(old_rev))
            .await
            .map_err(|e| store_error(res, name, e))?;
        parse_value(&kv)
    }

    pub(super) async fn update(
        &self,
        t: &Target,
        name: &str,
        q: &Query,
        body: Bytes,
        content_type: Option<&str>,
        user_agent: &str,
    ) -> Result<Response<Body>, ApiError> {
        let new = parse_object(&body, content_type)?;
        let manager = field_manager(q, user_agent);
        let key = self.key(t, name);
        let sub = t.subresource.as_deref();
        let precondition: Option<Revision> =
            match new
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(rv) => Some(rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?),
                None => None,
            };
        for _ in 0..MAX_RETRIES {
            let current = self
                .store
                .get(&key)
                .await
                .map_err(|e| store_error(t.res, name, e))?;
            let Some(kv) = current else {
                if sub.is_none() && matches!(t.res.kind, "Endpoints" | "Lease" | "Event") {
                    let created = self
                        .create_object(t.res, t.namespace.as_deref(), new, Some(&manager))
                        .await?;
                    return Ok(bytes_response(201, "application/json", created));
                }
                return Err(ApiError::not_found(t.res, name));
            };
            if let Some(p) = precondition {
                if p != kv.mod_revision {
                    return Err(ApiError::conflict(t.res, name));
                }
            }
            let old = parse_value(&kv)?;
            match self
                .write_update(
                    t.res,
                    &key,
                    name,
                    new.clone(),
                    &old,
                    kv.mod_revision,
                    sub,
                    &manager,
                    true,
                )
                .await
            {
                Err(e) if is_lost_race(&e) && precondition.is_none() => continue,
                Err(e) => return Err(e),
                Ok(stored) => return Ok(json_response(200, &stored)),
            }
        }
        Err(ApiError::conflict(t.res, name))
    }

    pub(super) async fn patch(
        &self,
        t: &Target,
        name: &str,
        q: &Query,
        body: Bytes,
        content_type: Option<&str>,
        user_agent: &str,
    ) -> Result<Response<Body>, ApiError> {
        let media = super::http::media_type(content_type);
        let ptype = match media.as_str() {
            "application/merge-patch+json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/json-patch+json" => PatchType::Json,
            "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply {
                force: q.flag("force"),
            },
            _ => {
                return Err(ApiError::unsupported_media(
                    &media,
                    &[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                        "application/strategic-merge-patch+json",
                    ],
                ))
            }
        };
        let patch_doc = match ptype {
            PatchType::Apply { .. } => parse_object(&body, Some("application/apply-patch+yaml"))?,
            _ => parse_object(&body, Some("application/json"))?,
        };
        let manager = match (&ptype, q.non_empty("fieldManager")) {
            (_, Some(m)) => m.to_string(),
            (PatchType::Apply { .. }, None) => {
                return Err(ApiError::bad_request(
                    "PATCH, field manager: Required value: is required for apply patch",
                ))
            }
            _ => field_manager(q, user_agent),
        };
        let (code, bytes) = self
            .patch_value(
                t.res,
                t.namespace.as_deref(),
                name,
                ptype,
                &patch_doc,
                t.subresource.as_deref(),
                &manager,
            )
            .await?;
        Ok(bytes_response(code, "application/json", bytes))
    }

    /// Applies a patch document to an object (or its status) and stores the
    /// result, retrying when another writer got there first. Returns the HTTP code
    /// (201 when server-side apply created the object) and the stored object.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch_value(
        &self,
        res: &'static Resource,
        namespace: Option<&str>,
        name: &str,
        ptype: PatchType,
        patch_doc: &Value,
        sub: Option<&str>,
        manager: &str,
    ) -> Result<(u16, Bytes), ApiError> {
        let kind = res.kind;
        let key = res.key(namespace, name);
        let is_apply = matches!(ptype, PatchType::Apply { .. });
        let force = matches!(ptype, PatchType::Apply { force: true });
        let explicit = patch_doc.pointer("/metadata/resourceVersion").is_some();
        for _ in 0..MAX_RETRIES {
            let current = self
                .store
                .get(&key)
                .await
                .map_err(|e| store_error(res, name, e))?;
            let Some(kv) = current else {
                if is_apply && sub.is_none() {
                    let mut applied = patch_doc.clone();
                    objects::ensure_type(res, &mut applied, kind).map_err(ApiError::bad_request)?;
                    let mut obj =
                        patch::apply::apply(None, &applied, manager, force, &now_rfc3339())
                            .map_err(|e| patch_error(res, name, e))?;
                    if obj.pointer("/metadata/name").is_none() {
                        obj["metadata"]["name"] = json!(name);
                    }
                    let created = self.create_object(res, namespace, obj, None).await?;
                    return Ok((201, created));
                }
                return Err(ApiError::not_found(res, name));
            };
            let old = parse_value(&kv)?;
            let patched = match ptype {
                PatchType::Merge => {
                    let mut v = old.clone();
                    patch::merge::apply(&mut v, patch_doc);
                    v
                }
                PatchType::Json => {
                    patch::json::apply(&old, patch_doc).map_err(|e| patch_error(res, name, e))?
                }
                PatchType::Strategic => patch::strategic::apply(&old, patch_doc, kind)
                    .map_err(|e| patch_error(res, name, e))?,
                PatchType::Apply { .. } => {
                    let mut applied = patch_doc.clone();
                    objects::ensure_type(res, &mut applied, kind).map_err(ApiError::bad_request)?;
                    patch::apply::apply(Some(&old), &applied, manager, force, &now_rfc3339())
                        .map_err(|e| patch_error(res, name, e))?
                }
            };
            // A resourceVersion in the patch is a precondition.
            if let Some(p) = patched
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
            {
                if p != kv.mod_revision.to_string() {
                    return Err(ApiError::conflict(res, name));
                }
            }
            match self
                .write_update(
                    res,
                    &key,
                    name,
                    patched,
                    &old,
                    kv.mod_revision,
                    sub,
                    manager,
                    !is_apply,
                )
                .await
            {
                Err(e) if is_lost_race(&e) && !explicit => continue,
                Err(e) => return Err(e),
                Ok(stored) => {
                    return Ok((
                        200,
                        Bytes::from(serde_json::to_vec(&stored).unwrap_or_default()),
                    ))
                }
            }
        }
        Err(ApiError::conflict(res, name))
    }

    pub(super) async fn delete(
        &self,
        t: &Target,
        name: &str,
        q: &Query,
        body: Bytes,
    ) -> Result<Response<Body>, ApiError> {
        let opts = DeleteOptions::parse(q, &body)?;
        let key = self.key(t, name);
        for _ in 0..MAX_RETRIES {
            let (old, rev) = self.get_current(t.res, &key, name).await?;
            match self.delete_one(t.res, &key, name, old, rev, &opts).await {
                Err(e) if is_lost_race(&e) && opts.precondition_rv.is_none() => continue,
                Err(e) => return Err(e),
                Ok(resp) => return Ok(resp),
            }
        }
        Err(ApiError::conflict(t.res, name))
    }

    /// Deletes one object, gracefully where that applies. Returns the response body:
    /// the object for pods, services and namespaces, and for objects that stay
    /// (finalizers, grace), else a success Status.
    pub(super) async fn delete_one(
        &self,
        res: &'static Resource,
        key: &str,
        name: &str,
        old: Value,
        rev: Revision,
        opts: &DeleteOptions,
    ) -> Result<Response<Body>, ApiError> {
        let uid = old
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(p) = &opts.precondition_uid {
            if *p != uid {
                return Err(ApiError::conflict_msg(
                    res,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {p}, UID in object meta: {uid}"
                    ),
                ));
            }
        }
        if let Some(p) = &opts.precondition_rv {
            if *p != rev.to_string() {
                return Err(ApiError::conflict_msg(
                    res,
                    name,
                    &format!("Precondition failed: ResourceVersion in precondition: {p}, ResourceVersion in object meta: {rev}"),
                ));
            }
        }
        let returns_object = matches!(res.kind, "Pod" | "Service" | "Namespace");
        let mut updated = old.clone();
        let now = now_rfc3339();
        let already_deleting = old.pointer("/metadata/deletionTimestamp").is_some();
        // Graceful pod deletion: bound, running pods get a deadline; the agent
        // finishes the delete.
        let mut keep = false;
        if res.kind == "Namespace" {
            if !already_deleting {
                updated["metadata"]["deletionTimestamp"] = json!(now);
                updated["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                updated["status"]["phase"] = json!("Terminating");
            }
            keep = true;
        } else if res.kind == "Pod" {
            let bound = old
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            let phase = old
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("");
            let grace = opts.grace_period.unwrap_or_else(|| {
                old.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30)
            });
            let current_grace = old
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            let terminal = matches!(phase, "Succeeded" | "Failed");
            if bound && grace > 0 && !terminal && current_grace.is_none_or(|g| grace < g) {
                updated["metadata"]["deletionTimestamp"] = json!(objects::later_rfc3339(grace));
                updated["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                keep = true;
            } else if bound && grace > 0 && !terminal {
                keep = true;
            } else if let Some(m) = updated["metadata"].as_object_mut() {
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
        }
        match opts.propagation.as_deref() {
            Some("Orphan") => add_finalizer(&mut updated, "orphan"),
            Some("Foreground") => add_finalizer(&mut updated, "foregroundDeletion"),
            _ => {}
        }
        let has_finalizers = updated
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers || keep {
            if updated.pointer("/metadata/deletionTimestamp").is_none() {
                updated["metadata"]["deletionTimestamp"] = json!(now);
                updated["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
            let stored = if updated == old {
                old
            } else {
                let kv = self
                    .store
                    .update(key, updated, Some(rev))
                    .await
                    .map_err(|e| store_error(res, name, e))?;
                parse_value(&kv)?
            };
            if res.kind == "Namespace" {
                self.namespace_terminating(name);
            }
            return Ok(json_response(200, &stored));
        }
        let kv = self
            .store
            .delete(key, Some(rev))
            .await
            .map_err(|e| store_error(res, name, e))?;
        let gone = parse_value(&kv)?;
        self.after_delete(res, &gone).await;
        if returns_object {
            Ok(json_response(200, &gone))
        } else {
            Ok(json_response(200, &success_status(res, name, &uid)))
        }
    }

    pub(super) async fn delete_collection(
        &self,
        t: &Target,
        q: &Query,
        body: Bytes,
    ) -> Result<Response<Body>, ApiError> {
        let opts = DeleteOptions::parse(q, &body)?;
        let list_opts = ListOptions::from_query(t.res, q)?;
        let listed = self
            .list_objects(t.res, t.namespace.as_deref(), &list_opts, true)
            .await?;
        let mut deleted = Vec::new();
        for obj in listed.parsed.unwrap_or_default() {
            let name = name_of(&obj).to_string();
            let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
            let key = t.res.key(ns, &name);
            let rev: Revision = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            match self
                .delete_one(t.res, &key, &name, obj.clone(), rev, &opts)
                .await
            {
                Ok(_) => deleted.push(obj),
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json_response(
            200,
            &json!({
                "kind": format!("{}List", t.res.kind),
                "apiVersion": t.res.api_version(),
                "metadata": { "resourceVersion": self.store.current_revision().to_string() },
                "items": deleted,
            }),
        ))
    }

    /// Work after an object is created: a namespace gets its default service account.
    async fn after_create(&self, res: &Resource, name: &str) {
        if res.kind == "Namespace" && res.group.is_empty() {
            let ns = name.to_string();
            // Boxed: creating the account goes through create_object again.
            Box::pin(self.ensure_default_service_account(&ns)).await;
        }
    }

    /// Work after an object is gone: a service's cluster IP and node ports are freed.
    pub(super) async fn after_delete(&self, res: &Resource, obj: &Value) {
        if res.kind == "Service" && res.group.is_empty() {
            self.release_service(obj).await;
        }
    }
}

pub fn namespaces() -> &'static Resource {
    resources::find("", "v1", "namespaces").expect("namespaces are in the resource table")
}

fn add_finalizer(obj: &mut Value, f: &str) {
    let list = obj["metadata"]
        .as_object_mut()
        .map(|m| m.entry("finalizers").or_insert_with(|| json!([])));
    if let Some(Value::Array(list)) = list {
        if !list.iter().any(|v| v == f) {
            list.push(json!(f));
        }
    }
}

/// Two objects that differ only in resourceVersion and managed-field timestamps.
fn same_object(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
                for e in mf.iter_mut().filter_map(Value::as_object_mut) {
                    e.remove("time");
                }
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// `dryRun=All`: a write the client asks to simulate.
pub(super) fn dry_run(q: &Query) -> bool {
    q.all("dryRun").iter().any(|v| v == "All")
}

/// The field manager of a write: `fieldManager`, else the user agent's program name
/// (as upstream: `kubectl-client-side-apply`, `kubectl`, `OpenAPI-Generator`).
fn field_manager(q: &Query, user_agent: &str) -> String {
    if let Some(m) = q.non_empty("fieldManager") {
        return m.to_string();
    }
    let prog = user_agent.split('/').next().unwrap_or("").trim();
    if prog.is_empty() {
        "unknown".into()
    } else {
        prog.chars().take(128).collect()
    }
}

fn patch_error(res: &Resource, name: &str, e: patch::PatchError) -> ApiError {
    match e.http_status() {
        409 => ApiError {
            details: Some(json!({ "name": name, "group": res.group, "kind": res.plural })),
            ..ApiError::new(409, "Conflict", e.to_string())
        },
        400 => ApiError::bad_request(e.to_string()),
        _ => ApiError::invalid(
            res,
            name,
            vec![FieldCause {
                reason: "FieldValueInvalid".into(),
                message: e.to_string(),
                field: "patch".into(),
            }],
        ),
    }
}

/// DeleteOptions from the body (kubectl, Python) or the query.
#[derive(Clone, Debug)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteOptions {
    pub fn parse(q: &Query, body: &[u8]) -> Result<Self, ApiError> {
        let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the request body could not be decoded as DeleteOptions: {e}"
                ))
            })?
        };
        let grace_period = match b.get("gracePeriodSeconds").and_then(Value::as_i64) {
            Some(g) => Some(g),
            None => match q.non_empty("gracePeriodSeconds") {
                Some(g) => Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?),
                None => None,
            },
        };
        let mut propagation = b
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| q.non_empty("propagationPolicy").map(str::to_string));
        if propagation.is_none() && b.get("orphanDependents").and_then(Value::as_bool) == Some(true)
        {
            propagation = Some("Orphan".into());
        }
        if let Some(p) = &propagation {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        }
        let pre = b.get("preconditions");
        Ok(Self {
            grace_period: grace_period.map(|g| g.max(0)),
            propagation,
            precondition_uid: pre
                .and_then(|p| p.get("uid"))
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_rv: pre
                .and_then(|p| p.get("resourceVersion"))
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}
