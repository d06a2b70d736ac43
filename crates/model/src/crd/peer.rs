//! `BGPPeer`: the routers each node peers with. `v1beta2` is the stored version;
//! `v1beta1` objects are accepted and converted with [`v1beta1::BGPPeer::into_v1beta2`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn default_port() -> u16 {
    179
}

/// How the peer's AS number is learned when `peerASN` is not given.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DynamicAsn {
    /// The peer must be in our AS (iBGP).
    Internal,
    /// The peer must be in another AS (eBGP).
    External,
}

/// A reference to a Secret by name and namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretReference {
    /// Name of the Secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace of the Secret; defaults to the peer's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The stored version of `BGPPeer`.
pub mod v1beta2 {
    use super::*;
    use kube::CustomResource;

    /// Desired state of a BGPPeer.
    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    #[kube(
        group = "metallb.io",
        version = "v1beta2",
        kind = "BGPPeer",
        plural = "bgppeers",
        namespaced,
        derive = "PartialEq",
        doc = "A BGP router that the selected nodes peer with.",
        printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
        printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
        printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
        printcolumn(
            name = "Multi Hops",
            type_ = "string",
            json_path = ".spec.ebgpMultiHop"
        )
    )]
    #[serde(rename_all = "camelCase")]
    pub struct BGPPeerSpec {
        /// Our AS number on this session.
        #[serde(rename = "myASN")]
        pub my_asn: u32,
        /// The peer's AS number; exactly one of this and `dynamicASN` is set.
        #[serde(default, rename = "peerASN", skip_serializing_if = "is_zero")]
        pub peer_asn: u32,
        /// Learn the peer's AS number from its OPEN.
        #[serde(
            default,
            rename = "dynamicASN",
            skip_serializing_if = "Option::is_none"
        )]
        pub dynamic_asn: Option<DynamicAsn>,
        /// The AS number we present instead of `myASN` (local-as).
        #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
        pub local_asn: Option<u32>,
        /// Address to connect to; exactly one of this and `interface` is set.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub peer_address: String,
        /// Interface to peer over (BGP unnumbered), instead of `peerAddress`.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub interface: String,
        /// Local address the session is made from.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub source_address: String,
        /// TCP port of the peer (179).
        #[serde(default = "default_port")]
        #[schemars(range(min = 0, max = 16384))]
        pub peer_port: u16,
        /// Hold time as a duration (`90s`): 0 or at least 3 s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hold_time: Option<String>,
        /// Keepalive interval as a duration; at most the hold time (hold time / 3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keepalive_time: Option<String>,
        /// Wait between connection attempts, 1 s to 65535 s in whole seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub connect_time: Option<String>,
        /// BGP identifier to send (an IPv4 address).
        #[serde(default, rename = "routerID", skip_serializing_if = "String::is_empty")]
        pub router_id: String,
        /// Nodes that peer with this router; empty means every node.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub node_selectors: Vec<LabelSelector>,
        /// TCP-MD5 password, in clear text.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub password: String,
        /// A `kubernetes.io/basic-auth` Secret whose `password` key holds the TCP-MD5 password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password_secret: Option<SecretReference>,
        /// Name of the BFDProfile for this session; no BFD when empty.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub bfd_profile: String,
        /// Advertise graceful restart (RFC 4724). Immutable.
        #[serde(default, skip_serializing_if = "is_false")]
        pub enable_graceful_restart: bool,
        /// The eBGP peer is more than one hop away.
        #[serde(default, skip_serializing_if = "is_false")]
        pub ebgp_multi_hop: bool,
        /// Host VRF the session is made from.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub vrf: String,
        /// Deprecated: one session per address family.
        #[serde(default, rename = "disableMP", skip_serializing_if = "is_false")]
        pub disable_mp: bool,
        /// Exchange IPv4 and IPv6 routes on one session.
        #[serde(default, skip_serializing_if = "is_false")]
        pub dual_stack_address_family: bool,
    }

    fn is_zero(v: &u32) -> bool {
        *v == 0
    }
    fn is_false(v: &bool) -> bool {
        !*v
    }
}

/// The older, deprecated version of `BGPPeer`.
pub mod v1beta1 {
    use super::*;
    use kube::CustomResource;

    /// Desired state of a v1beta1 BGPPeer.
    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    #[kube(
        group = "metallb.io",
        version = "v1beta1",
        kind = "BGPPeer",
        plural = "bgppeers",
        namespaced,
        derive = "PartialEq",
        deprecated = "metallb.io/v1beta1 BGPPeer is deprecated, use metallb.io/v1beta2",
        doc = "A BGP router that the selected nodes peer with (deprecated version).",
        printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
        printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
        printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
        printcolumn(
            name = "Multi Hops",
            type_ = "string",
            json_path = ".spec.ebgpMultiHop"
        )
    )]
    #[serde(rename_all = "camelCase")]
    pub struct BGPPeerSpec {
        /// Our AS number on this session.
        #[serde(rename = "myASN")]
        pub my_asn: u32,
        /// The peer's AS number.
        #[serde(default, rename = "peerASN")]
        pub peer_asn: u32,
        /// Address to connect to.
        #[serde(default)]
        pub peer_address: String,
        /// Local address the session is made from.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub source_address: String,
        /// TCP port of the peer (179).
        #[serde(default = "default_port")]
        #[schemars(range(min = 0, max = 16384))]
        pub peer_port: u16,
        /// Hold time as a duration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hold_time: Option<String>,
        /// Keepalive interval as a duration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keepalive_time: Option<String>,
        /// BGP identifier to send.
        #[serde(default, rename = "routerID", skip_serializing_if = "String::is_empty")]
        pub router_id: String,
        /// Nodes that peer with this router; empty means every node.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub node_selectors: Vec<NodeSelector>,
        /// TCP-MD5 password, in clear text.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub password: String,
        /// Name of the BFDProfile for this session.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub bfd_profile: String,
        /// The eBGP peer is more than one hop away.
        #[serde(default)]
        pub ebgp_multi_hop: bool,
    }

    /// The v1beta1 node selector: labels plus expressions.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct NodeSelector {
        /// Labels a node must carry.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        pub match_labels: std::collections::BTreeMap<String, String>,
        /// Expressions a node's labels must satisfy.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub match_expressions: Vec<MatchExpression>,
    }

    /// One v1beta1 selector expression.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    pub struct MatchExpression {
        /// Label key.
        pub key: String,
        /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
        pub operator: String,
        /// Values for `In` and `NotIn`.
        #[serde(default)]
        pub values: Vec<String>,
    }

    impl BGPPeer {
        /// Converts to the stored version, as MetalLB's conversion webhook does: every
        /// field keeps its meaning; selectors become standard label selectors.
        pub fn into_v1beta2(self) -> super::v1beta2::BGPPeer {
            use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
            let s = self.spec;
            let node_selectors = s
                .node_selectors
                .into_iter()
                .map(|sel| LabelSelector {
                    match_labels: (!sel.match_labels.is_empty()).then_some(sel.match_labels),
                    match_expressions: (!sel.match_expressions.is_empty()).then(|| {
                        sel.match_expressions
                            .into_iter()
                            .map(|e| LabelSelectorRequirement {
                                key: e.key,
                                operator: e.operator,
                                values: Some(e.values),
                            })
                            .collect()
                    }),
                })
                .collect();
            // A zero duration in v1beta1 means "not set".
            let nonzero = |d: Option<String>| d.filter(|v| !v.is_empty() && v != "0s" && v != "0");
            let mut metadata = self.metadata;
            metadata.managed_fields = None;
            super::v1beta2::BGPPeer {
                metadata,
                spec: super::v1beta2::BGPPeerSpec {
                    my_asn: s.my_asn,
                    peer_asn: s.peer_asn,
                    dynamic_asn: None,
                    local_asn: None,
                    peer_address: s.peer_address,
                    interface: String::new(),
                    source_address: s.source_address,
                    peer_port: s.peer_port,
                    hold_time: nonzero(s.hold_time),
                    keepalive_time: nonzero(s.keepalive_time),
                    connect_time: None,
                    router_id: s.router_id,
                    node_selectors,
                    password: s.password,
                    password_secret: None,
                    bfd_profile: s.bfd_profile,
                    enable_graceful_restart: false,
                    ebgp_multi_hop: s.ebgp_multi_hop,
                    vrf: String::new(),
                    disable_mp: false,
                    dual_stack_address_family: false,
                },
            }
        }
    }
}
