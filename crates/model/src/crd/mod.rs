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
pub use status::{
    ConfigurationState, ConfigurationStateSpec, ConfigurationStateStatus, InterfaceInfo,
    MetalLBServiceBGPStatus, MetalLBServiceL2Status, ServiceBGPStatus, ServiceBGPStatusSpec,
    ServiceL2Status, ServiceL2StatusSpec,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every resource here.
pub const GROUP: &str = "metallb.io";

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
