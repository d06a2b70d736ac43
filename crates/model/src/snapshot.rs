//! The Snapshot: everything ferrolb knows about the world at one moment, as typed objects.
//! Both sources (the Kubernetes API and a manifest directory) produce it.

use crate::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The objects of one moment, in the order the source delivered them.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `IPAddressPool` resources.
    pub pools: Vec<IPAddressPool>,
    /// `L2Advertisement` resources.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// `BGPAdvertisement` resources.
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    /// `BGPPeer` resources, converted to v1beta2.
    pub bgp_peers: Vec<BGPPeer>,
    /// `Community` resources.
    pub communities: Vec<Community>,
    /// `BFDProfile` resources.
    pub bfd_profiles: Vec<BFDProfile>,
    /// Services of every type (only LoadBalancer ones of our class get addresses).
    pub services: Vec<Service>,
    /// Namespaces, for pools' namespace selectors.
    pub namespaces: Vec<Namespace>,
    /// Nodes: the cluster's members, their labels and addresses.
    pub nodes: Vec<Node>,
    /// Secrets (BGP passwords, the membership key).
    pub secrets: Vec<Secret>,
    /// EndpointSlices, to know where a Service is served.
    pub endpoint_slices: Vec<EndpointSlice>,
}

impl Snapshot {
    /// Number of objects of every kind together.
    pub fn len(&self) -> usize {
        self.pools.len()
            + self.l2_advertisements.len()
            + self.bgp_advertisements.len()
            + self.bgp_peers.len()
            + self.communities.len()
            + self.bfd_profiles.len()
            + self.services.len()
            + self.namespaces.len()
            + self.nodes.len()
            + self.secrets.len()
            + self.endpoint_slices.len()
    }

    /// Whether the snapshot holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
