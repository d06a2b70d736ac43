//! The validated configuration: what the metallb.io resources of a [`crate::Snapshot`] mean,
//! once every rule has been checked. Produced by [`crate::validate`]; consumed by the
//! allocator, the election and the announcers.

use crate::selector::Selector;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};

/// A valid configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// Address pools by name (so iteration is in name order).
    pub pools: BTreeMap<String, Pool>,
}

/// A valid address pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// The pool object's labels (for advertisements' pool selectors).
    pub labels: BTreeMap<String, String>,
    /// The pool's addresses as CIDRs, in the order the pool lists them; a range `a-b`
    /// becomes the smallest list of CIDRs covering it, in ascending order. No two
    /// CIDRs of any pools overlap.
    pub cidrs: Vec<IpNet>,
    /// Whether addresses are handed out without being asked for.
    pub auto_assign: bool,
    /// Whether IPv4 addresses ending in .0 and .255 are skipped.
    pub avoid_buggy_ips: bool,
    /// Restriction to some Services, with a priority; `None` for a pool open to all.
    pub allocation: Option<PoolAllocation>,
}

/// Which Services may use a pool, and its priority among the pools they match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolAllocation {
    /// Lower is tried first; 0 means lowest priority (tried after every positive one).
    pub priority: i32,
    /// Namespaces named in the pool.
    pub namespaces: BTreeSet<String>,
    /// Selectors of namespaces by label.
    pub namespace_selectors: Vec<Selector>,
    /// Selectors of Services by label.
    pub service_selectors: Vec<Selector>,
}
