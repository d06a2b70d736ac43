//! The `metallb.io` custom resources, as Rust types from which the CRDs are derived.
//!
//! Field names, defaults and versions match MetalLB's so existing manifests apply
//! unchanged.

// kube's derive takes one `printcolumn(...)` attribute per column, which clippy reads as
// repeated attributes.
#![allow(clippy::duplicated_attributes)]

mod advertisement;
mod bfd;
mod community;
pub mod peer;
mod pool;
mod reference;
mod status;

pub use advertisement::{
    BGPAdvertisement, BGPAdvertisementSpec, L2Advertisement, L2AdvertisementSpec,
    PreferredNodeSelector,
};
pub use bfd::{BFDProfile, BFDProfileSpec};
pub use community::{Community, CommunityAlias, CommunitySpec};
pub use peer::v1beta2::{BGPPeer, BGPPeerSpec};
pub use peer::{DynamicAsn, SecretReference};
pub use pool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use reference::reference_markdown;
pub use status::{
    ConfigurationState, ConfigurationStateSpec, ConfigurationStateStatus, InterfaceInfo,
    MetalLBServiceBGPStatus, MetalLBServiceL2Status, ServiceBGPStatus, ServiceBGPStatusSpec,
    ServiceL2Status, ServiceL2StatusSpec,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every resource here.
pub const GROUP: &str = "metallb.io";

/// Kinds whose `spec` may be left out (every field of it is optional), as MetalLB's CRDs
/// allow: `kind: L2Advertisement` with only a name announces every pool.
pub const SPEC_OPTIONAL: &[&str] = &[
    "BFDProfile",
    "BGPAdvertisement",
    "Community",
    "ConfigurationState",
    "L2Advertisement",
    "ServiceBGPStatus",
    "ServiceL2Status",
];

/// Gives an object of a [`SPEC_OPTIONAL`] kind an empty `spec` when it has none, so it
/// decodes (the derived types need one). Other objects are left alone.
pub fn fill_optional_spec(object: &mut serde_json::Value) {
    let kind = object.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if !SPEC_OPTIONAL.contains(&kind) {
        return;
    }
    if let Some(map) = object.as_object_mut() {
        let spec = map.entry("spec").or_insert(serde_json::Value::Null);
        if spec.is_null() {
            *spec = serde_json::Value::Object(Default::default());
        }
    }
}

/// Every CRD ferrolb reads or writes, in a stable order (by plural name). `BGPPeer` carries
/// both versions, `v1beta2` stored.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let mut peers = kube::core::crd::merge_crds(
        vec![peer::v1beta1::BGPPeer::crd(), peer::v1beta2::BGPPeer::crd()],
        "v1beta2",
    )
    .expect("both BGPPeer versions derive CRDs of one kind and group");
    peers.spec.versions.sort_by(|a, b| a.name.cmp(&b.name));
    let mut crds = vec![
        BFDProfile::crd(),
        BGPAdvertisement::crd(),
        peers,
        Community::crd(),
        ConfigurationState::crd(),
        IPAddressPool::crd(),
        L2Advertisement::crd(),
        ServiceBGPStatus::crd(),
        ServiceL2Status::crd(),
    ];
    for crd in &mut crds {
        if SPEC_OPTIONAL.contains(&crd.spec.names.kind.as_str()) {
            for version in &mut crd.spec.versions {
                let schema = version
                    .schema
                    .as_mut()
                    .and_then(|s| s.open_api_v3_schema.as_mut());
                if let Some(required) = schema.and_then(|s| s.required.as_mut()) {
                    required.retain(|r| r != "spec");
                }
            }
        }
    }
    crds.sort_by(|a, b| a.spec.names.plural.cmp(&b.spec.names.plural));
    crds
}

/// Every CRD of [`all_crds`] as one multi-document YAML stream, as checked in under
/// `deploy/crds/`.
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}
