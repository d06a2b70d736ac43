//! What the election needs to know of a Service: its name, labels, whether it may share
//! its address and its traffic policy. A node agent keeps these for every Service it
//! announces instead of the whole object (a `Service` is about 0.8 kB before any of its
//! strings; 10,000 of them kept for re-elections were a third of the agent's memory).

use ferrolb_model::annotations::{self, ALLOW_SHARED_IP, ALLOW_SHARED_IP_LEGACY};
use k8s_openapi::api::core::v1::Service;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The parts of a Service the layer 2 election and the BGP plan read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceFacts {
    /// `namespace/name` (one allocation, shared with the plans that name the Service).
    pub key: Arc<str>,
    /// Its labels, for advertisements' `serviceSelectors`.
    pub labels: Option<BTreeMap<String, String>>,
    /// It carries a non-empty `metallb.io/allow-shared-ip` annotation.
    pub shares_ip: bool,
    /// `externalTrafficPolicy: Local`.
    pub local_traffic: bool,
}

impl ServiceFacts {
    /// Reads them off a Service (a missing namespace is `default`).
    pub fn of(svc: &Service) -> ServiceFacts {
        let namespace = svc.metadata.namespace.as_deref().unwrap_or("default");
        let name = svc.metadata.name.as_deref().unwrap_or("");
        ServiceFacts {
            key: Arc::from(format!("{namespace}/{name}")),
            labels: svc.metadata.labels.clone().filter(|l| !l.is_empty()),
            shares_ip: annotations::get(
                svc.metadata.annotations.as_ref(),
                ALLOW_SHARED_IP,
                ALLOW_SHARED_IP_LEGACY,
            )
            .is_some_and(|(v, _)| !v.is_empty()),
            local_traffic: svc
                .spec
                .as_ref()
                .and_then(|s| s.external_traffic_policy.as_deref())
                == Some("Local"),
        }
    }

    /// The Service's namespace.
    pub fn namespace(&self) -> &str {
        self.key.split_once('/').map_or("default", |(ns, _)| ns)
    }

    /// The Service's name.
    pub fn name(&self) -> &str {
        self.key.split_once('/').map_or(&*self.key, |(_, n)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn facts_of_a_service() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                annotations: Some(
                    [("metallb.io/allow-shared-ip".to_string(), "k".to_string())].into(),
                ),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                external_traffic_policy: Some("Local".into()),
                ..Default::default()
            }),
            status: None,
        };
        let f = ServiceFacts::of(&svc);
        assert_eq!((f.namespace(), f.name()), ("shop", "web"));
        assert_eq!(&*f.key, "shop/web");
        assert!(f.shares_ip && f.local_traffic);
        assert_eq!(f.labels.as_ref().map(BTreeMap::len), Some(1));

        let bare = ServiceFacts::of(&Service::default());
        assert_eq!((bare.namespace(), bare.name()), ("default", ""));
        assert!(!bare.shares_ip && !bare.local_traffic && bare.labels.is_none());
        // An empty annotation value does not share.
        let mut empty = svc.clone();
        empty.metadata.annotations =
            Some([("metallb.io/allow-shared-ip".to_string(), String::new())].into());
        assert!(!ServiceFacts::of(&empty).shares_ip);
    }
}
