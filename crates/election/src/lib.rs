//! ferrolb's election: which node announces each load-balancer address.
//!
//! Pure functions of (configuration, snapshot, assignments, live members): every node
//! computes the same answer from the same inputs, with no leader and no messages.
//!
//! The order follows MetalLB's so mixed clusters and operators' expectations agree:
//! candidates are sorted by preference weight (highest first), then by
//! `sha256(node name + "#" + address)` ascending. Unlike MetalLB, each address is
//! elected on its own (the two families of a dual-stack Service may land on different
//! nodes), and all Services sharing an address are announced by one node.

#![warn(missing_docs)]

pub mod announced;
pub mod bgp;
pub mod endpoints;
pub mod l2;
mod rank;
pub mod service;

pub use announced::Announced;
pub use bgp::{BgpSkip, NodeBgpPlan, PeerPlan, Route, plan_bgp};
pub use endpoints::Endpoints;
pub use l2::{Assigned, Interfaces, IpPlan, L2Plan, Skip, elect_l2};
pub use rank::{hash_key, rank_nodes};
pub use service::ServiceFacts;
