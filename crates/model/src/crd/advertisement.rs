//! `L2Advertisement` and `BGPAdvertisement`: how a pool's addresses are announced.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of an L2Advertisement.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    plural = "l2advertisements",
    namespaced,
    derive = "PartialEq",
    doc = "Announces the addresses of the selected pools in layer 2 mode (ARP and NDP).",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces")
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Pools announced by this advertisement, by name. With neither this nor
    /// `ipAddressPoolSelectors`, every pool is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools announced by this advertisement, by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that may announce; empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to answer ARP/NDP on; empty means every eligible interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Services announced by this advertisement; empty means every Service of the pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
    /// Nodes preferred as announcers, by weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_node_selectors: Vec<PreferredNodeSelector>,
}

/// A weighted preference for the nodes a selector matches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct PreferredNodeSelector {
    /// Weight added to a matching node's score, 1-100.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// The nodes this preference applies to.
    pub preference: LabelSelector,
}

/// Desired state of a BGPAdvertisement.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    namespaced,
    derive = "PartialEq",
    doc = "Announces the addresses of the selected pools to BGP peers, with the given attributes.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers")
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Prefix length IPv4 addresses are rolled up to; defaults to 32 (no aggregation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub aggregation_length: Option<i32>,
    /// Prefix length IPv6 addresses are rolled up to; defaults to 128 (no aggregation).
    #[serde(
        default,
        rename = "aggregationLengthV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub aggregation_length_v6: Option<i32>,
    /// LOCAL_PREF sent to iBGP peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// Communities: `65000:100`, `large:65000:1:2`, or the name of a Community alias.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Pools announced by this advertisement, by name. With neither this nor
    /// `ipAddressPoolSelectors`, every pool is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools announced by this advertisement, by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that announce (are next hops); empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// BGPPeer names to announce to; empty means every peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Services announced by this advertisement; only with the default aggregation lengths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

impl BGPAdvertisementSpec {
    /// The IPv4 aggregation length in force (32 unless set).
    pub fn effective_aggregation_length(&self) -> i32 {
        self.aggregation_length.unwrap_or(32)
    }
    /// The IPv6 aggregation length in force (128 unless set).
    pub fn effective_aggregation_length_v6(&self) -> i32 {
        self.aggregation_length_v6.unwrap_or(128)
    }
}
