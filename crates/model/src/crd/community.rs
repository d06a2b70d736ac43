//! `Community`: named aliases for BGP community values.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Community.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "Community",
    plural = "communities",
    namespaced,
    derive = "PartialEq",
    doc = "Names for BGP community values, usable in BGPAdvertisement communities."
)]
pub struct CommunitySpec {
    /// The aliases defined by this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<CommunityAlias>,
}

/// One community alias.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct CommunityAlias {
    /// The alias, used in place of the value.
    #[serde(default)]
    pub name: String,
    /// The value: `a:b` (16-bit halves) or `large:a:b:c` (32-bit parts).
    #[serde(default)]
    pub value: String,
}
