//! What one node announces, by Service: the input of the status sinks (Kubernetes'
//! ServiceL2Status and ServiceBGPStatus).

use std::collections::{BTreeMap, BTreeSet};

/// What a node announces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announced {
    /// Services (`namespace/name`) announced in layer 2 mode, with the interfaces
    /// (empty: every eligible one).
    pub l2: BTreeMap<String, BTreeSet<String>>,
    /// Services (`namespace/name`) announced over BGP, with the BGPPeers' names.
    pub bgp: BTreeMap<String, BTreeSet<String>>,
}
