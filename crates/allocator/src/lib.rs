//! ferrolb's IP allocator (work in progress: API stub).
#![warn(missing_docs)]

use ferrolb_model::{Config, Snapshot};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Options of an allocation run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The loadBalancerClass handled; `None` handles only Services without a class.
    pub lb_class: Option<String>,
}

/// A Service's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a Service got no addresses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    /// No pool has a free address for the Service.
    #[error("no available IPs")]
    NoAvailableIps,
}

/// The allocation of one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceResult {
    /// The Service.
    pub service: ServiceKey,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
    /// The pool they come from.
    pub pool: Option<String>,
    /// Why it has none.
    pub error: Option<AllocationError>,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// The result of [`allocate`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// One result per Service that is ours.
    pub results: Vec<ServiceResult>,
}

/// Allocates addresses (stub).
pub fn allocate(
    _config: &Config,
    _snapshot: &Snapshot,
    _options: &Options,
    _previous: &BTreeMap<ServiceKey, Vec<IpAddr>>,
) -> Outcome {
    Outcome::default()
}
