//! A pod's QoS class, by the rules of Kubernetes: Guaranteed when every
//! container has cpu and memory limits equal to its requests, BestEffort when
//! no container asks for or limits anything, Burstable otherwise.

use k8s_openapi::api::core::v1::PodSpec;

use api::quantity::Quantity;

/// `Guaranteed`, `Burstable` or `BestEffort`.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        let res = c.resources.as_ref();
        let get = |limits: bool, key: &str| {
            let m = if limits {
                res.and_then(|r| r.limits.as_ref())
            } else {
                res.and_then(|r| r.requests.as_ref())
            };
            m.and_then(|m| m.get(key))
                .and_then(|q| Quantity::parse(&q.0).ok())
                .filter(|q| !q.is_zero())
        };
        for key in ["cpu", "memory"] {
            let (req, lim) = (get(false, key), get(true, key));
            any |= req.is_some() || lim.is_some();
            // A limit without a request defaults the request to the limit.
            let req = req.or(lim);
            if lim.is_none() || req.map(|q| q.nanos()) != lim.map(|q| q.nanos()) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(resources: &[serde_json::Value]) -> PodSpec {
        let containers: Vec<_> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"name": format!("c{i}"), "resources": r}))
            .collect();
        serde_json::from_value(json!({ "containers": containers })).unwrap()
    }

    #[test]
    fn classes_follow_requests_and_limits() {
        assert_eq!(qos_class(&spec(&[json!({})])), "BestEffort");
        let full = json!({"limits": {"cpu": "1", "memory": "64Mi"}});
        assert_eq!(
            qos_class(&spec(&[full.clone(), full.clone()])),
            "Guaranteed"
        );
        let same = json!({"requests": {"cpu": "1000m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}});
        assert_eq!(qos_class(&spec(&[same])), "Guaranteed");
        let mem_only = json!({"limits": {"memory": "32Mi"}});
        assert_eq!(qos_class(&spec(&[mem_only])), "Burstable");
        assert_eq!(qos_class(&spec(&[full, json!({})])), "Burstable");
    }
}
