//! Where each Service is served, from its EndpointSlices.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Serving endpoints of one Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Serving {
    /// Whether any endpoint serves, wherever it runs.
    pub any: bool,
    /// Nodes that run a serving endpoint.
    pub nodes: BTreeSet<String>,
}

/// Serving endpoints of every Service that has EndpointSlices.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    by_service: BTreeMap<(String, String), Serving>,
}

impl Endpoints {
    /// Indexes EndpointSlices by the Service they belong to. An endpoint serves when its
    /// `serving` condition is true, or, without one, when `ready` is true or unset (as
    /// Kubernetes documents and MetalLB reads them).
    pub fn new(slices: &[EndpointSlice]) -> Self {
        let mut by_service: BTreeMap<(String, String), Serving> = BTreeMap::new();
        for slice in slices {
            let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            let namespace = slice
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let entry = by_service.entry((namespace, service.clone())).or_default();
            for ep in &slice.endpoints {
                let c = ep.conditions.as_ref();
                let serving = match c.and_then(|c| c.serving) {
                    Some(s) => s,
                    None => c.and_then(|c| c.ready).unwrap_or(true),
                };
                if serving {
                    entry.any = true;
                    if let Some(node) = &ep.node_name {
                        entry.nodes.insert(node.clone());
                    }
                }
            }
        }
        Endpoints { by_service }
    }

    /// The serving endpoints of a Service, or `None` when it has no EndpointSlice at all.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&Serving> {
        self.by_service
            .get(&(namespace.to_string(), name.to_string()))
    }
}
