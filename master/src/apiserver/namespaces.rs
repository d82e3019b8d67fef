//! Namespace life: the four namespaces every cluster starts with, a `default`
//! service account in each namespace, and termination (deleting a namespace deletes
//! everything in it, then the namespace). Also the service address allocators,
//! which claim cluster IPs and node ports with store keys so that two services never
//! get the same one, also across restarts.

use super::crud::{namespaces, parse_value, DeleteOptions};
use super::objects::name_of;
use super::route::Query;
use super::status::ApiError;
use super::Server;
use crate::store::StoreError;
use api::resources::RESOURCES;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// Namespaces a new cluster has.
pub const INITIAL: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

const CLAIM_PREFIX_IP: &str = "/bosun/claims/serviceips/";
const CLAIM_PREFIX_PORT: &str = "/bosun/claims/nodeports/";
const NODE_PORT_RANGE: (u32, u32) = (30000, 32767);

impl Server {
    /// Creates the initial namespaces (and their service accounts) when missing,
    /// and resumes the termination of namespaces that were being deleted.
    pub async fn bootstrap(self: &Arc<Self>) -> Result<(), ApiError> {
        for ns in INITIAL {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match self
                .create_object(namespaces(), None, obj, Some("bosun"))
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 409 => self.ensure_default_service_account(ns).await,
                Err(e) => return Err(e),
            }
        }
        self.ensure_kubernetes_service().await?;
        let page = self
            .store
            .list(&namespaces().key_prefix(), None, 0)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        for kv in page.items {
            let v = parse_value(&kv)?;
            if v.pointer("/metadata/deletionTimestamp").is_some() {
                self.namespace_terminating(name_of(&v));
            }
        }
        Ok(())
    }

    /// The `kubernetes` Service (the first address of the service range) and its
    /// Endpoints pointing at this master, as every cluster has in `default`.
    async fn ensure_kubernetes_service(&self) -> Result<(), ApiError> {
        let Ok(addr) = self.config.advertise.parse::<std::net::SocketAddr>() else {
            return Ok(());
        };
        let services = super::crud_resource("", "services");
        let ip = self.config.service_cidr.nth(1).to_string();
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": addr.port()}]},
        });
        match self
            .create_object(services, Some("default"), svc, Some("bosun"))
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 409 || e.code == 422 => {}
            Err(e) => return Err(e),
        }
        if addr.ip().is_unspecified() {
            return Ok(());
        }
        let endpoints = super::crud_resource("", "endpoints");
        let key = endpoints.key(Some("default"), "kubernetes");
        let subsets = json!([{
            "addresses": [{"ip": addr.ip().to_string()}],
            "ports": [{"name": "https", "port": addr.port(), "protocol": "TCP"}],
        }]);
        match self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
        {
            Some(kv) => {
                let mut ep = parse_value(&kv)?;
                if ep.get("subsets") != Some(&subsets) {
                    ep["subsets"] = subsets;
                    let _ = self.store.update(&key, ep, Some(kv.mod_revision)).await;
                }
            }
            None => {
                let ep = json!({
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                    "subsets": subsets,
                });
                match self
                    .create_object(endpoints, Some("default"), ep, Some("bosun"))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    pub(super) async fn ensure_default_service_account(&self, ns: &str) {
        let sa = super::crud_resource("", "serviceaccounts");
        let obj =
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
        match self.create_object(sa, Some(ns), obj, Some("bosun")).await {
            Ok(_) => {}
            Err(e) if e.code == 409 || e.code == 403 => {}
            Err(e) => {
                tracing::warn!(namespace = ns, error = %e, "creating the default service account")
            }
        }
    }

    /// Starts removing a terminating namespace's contents in the background.
    pub(super) fn namespace_terminating(&self, name: &str) {
        let Some(me) = self.me.upgrade() else { return };
        let name = name.to_string();
        tokio::spawn(async move {
            for attempt in 0..600u32 {
                match me.finalize_namespace(&name).await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(namespace = %name, error = %e, "namespace cleanup"),
                }
                let wait = Duration::from_millis(200 * u64::from(attempt.min(10) + 1));
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// One pass of namespace cleanup: deletes what is left inside; once empty,
    /// removes the namespace. True when the namespace is gone.
    async fn finalize_namespace(&self, name: &str) -> Result<bool, ApiError> {
        let opts = DeleteOptions::parse(&Query::default(), b"")?;
        let mut left = 0usize;
        for res in RESOURCES
            .iter()
            .filter(|r| r.namespaced() && r.plural != "bindings")
        {
            let page = self
                .store
                .list(&res.key_prefix_in(Some(name)), None, 0)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            for kv in page.items {
                left += 1;
                let obj = parse_value(&kv)?;
                // Pods on no node or with no agent to finish them go at once.
                let mut opts_now = opts.clone();
                if res.kind == "Pod" {
                    opts_now.grace_period = Some(0);
                }
                let oname = name_of(&obj).to_string();
                match self
                    .delete_one(res, &kv.key, &oname, obj, kv.mod_revision, &opts_now)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if left > 0 {
            return Ok(false);
        }
        let key = namespaces().key(None, name);
        let Some(kv) = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
        else {
            return Ok(true);
        };
        let ns = parse_value(&kv)?;
        let has_finalizers = ns
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            // Someone else's finalizer: clear ours and wait for theirs.
            if ns
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
            {
                let mut updated = ns.clone();
                updated["spec"]["finalizers"] = json!([]);
                let _ = self
                    .store
                    .update(&key, updated, Some(kv.mod_revision))
                    .await;
            }
            return Ok(false);
        }
        match self.store.delete(&key, Some(kv.mod_revision)).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }

    /// Gives a new service its cluster IP and node ports. Returns the claim keys,
    /// to release if the service is not stored after all.
    pub(super) async fn allocate_service(&self, svc: &mut Value) -> Result<Vec<String>, ApiError> {
        let services = super::crud_resource("", "services");
        let name = name_of(svc).to_string();
        let mut claims = Vec::new();
        let ty = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if ty != "ExternalName" {
            let requested = svc
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if requested != "None" {
                let ip = if requested.is_empty() {
                    self.claim_free_ip().await?
                } else {
                    let ip: Ipv4Addr = requested.parse().map_err(|_| {
                        ApiError::invalid(
                            services,
                            &name,
                            vec![super::status::FieldCause {
                                reason: "FieldValueInvalid".into(),
                                message: format!(
                                    "Invalid value: \"{requested}\": must be a valid IP address"
                                ),
                                field: "spec.clusterIP".into(),
                            }],
                        )
                    })?;
                    if !self.config.service_cidr.contains(ip) {
                        return Err(ApiError::invalid(services, &name, vec![super::status::FieldCause {
                            reason: "FieldValueInvalid".into(),
                            message: format!("Invalid value: \"{requested}\": provided IP is not in the valid range. The range of valid IPs is {}", self.config.service_cidr),
                            field: "spec.clusterIPs".into(),
                        }]));
                    }
                    if !self.claim(&format!("{CLAIM_PREFIX_IP}{ip}")).await? {
                        return Err(ApiError::invalid(services, &name, vec![super::status::FieldCause {
                            reason: "FieldValueInvalid".into(),
                            message: format!("Invalid value: []string{{\"{requested}\"}}: failed to allocate IP {requested}: provided IP is already allocated"),
                            field: "spec.clusterIPs".into(),
                        }]));
                    }
                    ip
                };
                claims.push(format!("{CLAIM_PREFIX_IP}{ip}"));
                svc["spec"]["clusterIP"] = json!(ip.to_string());
                svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
            } else {
                svc["spec"]["clusterIPs"] = json!(["None"]);
            }
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            let count = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..count {
                let given = svc["spec"]["ports"][i]
                    .get("nodePort")
                    .and_then(Value::as_u64);
                let port = match given {
                    Some(p) => {
                        let p = p as u32;
                        if !(NODE_PORT_RANGE.0..=NODE_PORT_RANGE.1).contains(&p)
                            || !self.claim(&format!("{CLAIM_PREFIX_PORT}{p}")).await?
                        {
                            self.release_claims(&claims).await;
                            return Err(ApiError::invalid(services, &name, vec![super::status::FieldCause {
                                reason: "FieldValueInvalid".into(),
                                message: format!("Invalid value: {p}: provided port is already allocated or out of the range {}-{}", NODE_PORT_RANGE.0, NODE_PORT_RANGE.1),
                                field: format!("spec.ports[{i}].nodePort"),
                            }]));
                        }
                        p
                    }
                    None => match self.claim_free_port().await {
                        Ok(p) => p,
                        Err(e) => {
                            self.release_claims(&claims).await;
                            return Err(e);
                        }
                    },
                };
                claims.push(format!("{CLAIM_PREFIX_PORT}{port}"));
                svc["spec"]["ports"][i]["nodePort"] = json!(port);
            }
        }
        Ok(claims)
    }

    async fn claim(&self, key: &str) -> Result<bool, ApiError> {
        match self.store.create(key, json!({"metadata": {}})).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }

    async fn claim_free_ip(&self) -> Result<Ipv4Addr, ApiError> {
        use rand::Rng;
        let cidr = self.config.service_cidr;
        let size = cidr.size();
        // Random probes first (as upstream), then a scan so a nearly full range works.
        for _ in 0..64 {
            let off = rand::rng().random_range(2..size.saturating_sub(1).max(3));
            let ip = cidr.nth(off);
            if self.claim(&format!("{CLAIM_PREFIX_IP}{ip}")).await? {
                return Ok(ip);
            }
        }
        for off in 2..size.saturating_sub(1) {
            let ip = cidr.nth(off);
            if self.claim(&format!("{CLAIM_PREFIX_IP}{ip}")).await? {
                return Ok(ip);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a serviceIP: range is full",
        ))
    }

    async fn claim_free_port(&self) -> Result<u32, ApiError> {
        use rand::Rng;
        for _ in 0..64 {
            let p = rand::rng().random_range(NODE_PORT_RANGE.0..=NODE_PORT_RANGE.1);
            if self.claim(&format!("{CLAIM_PREFIX_PORT}{p}")).await? {
                return Ok(p);
            }
        }
        for p in NODE_PORT_RANGE.0..=NODE_PORT_RANGE.1 {
            if self.claim(&format!("{CLAIM_PREFIX_PORT}{p}")).await? {
                return Ok(p);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a nodePort: range is full",
        ))
    }

    pub(super) async fn release_claims(&self, claims: &[String]) {
        for key in claims {
            let _ = self.store.delete(key, None).await;
        }
    }

    pub(super) async fn release_service(&self, svc: &Value) {
        let mut claims = Vec::new();
        if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str) {
            if ip != "None" && !ip.is_empty() {
                claims.push(format!("{CLAIM_PREFIX_IP}{ip}"));
            }
        }
        for p in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                claims.push(format!("{CLAIM_PREFIX_PORT}{np}"));
            }
        }
        self.release_claims(&claims).await;
    }
}
