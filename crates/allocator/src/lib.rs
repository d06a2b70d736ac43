//! ferrolb's IP allocator: which addresses each LoadBalancer Service gets, as a pure,
//! deterministic function of the configuration, the Services and the addresses they
//! already hold. It follows MetalLB's rules (controller/service.go and
//! internal/allocator), made deterministic where MetalLB depends on map order.
//!
//! Two entry points:
//! - [`allocate`]: one whole run over a [`Snapshot`](ferrolb_model::Snapshot) (the
//!   standalone runtime, `ferrolb allocate`, tests).
//! - [`Allocator`]: the incremental engine a controller keeps between events
//!   ([`Allocator::assign`], [`Allocator::release`], queries and pool usage);
//!   [`allocate`] is a thin driver over it.
//!
//! No I/O, no clock, no randomness. Memory is proportional to the addresses in use,
//! never to the size of the pools.
//!
//! # Rules
//!
//! - **Ours**: `spec.type: LoadBalancer` with `spec.loadBalancerClass` equal to
//!   [`Options::lb_class`] (`None`: only Services without a class).
//! - **Families**: the primary family is the first of `spec.ipFamilies`, else of
//!   `spec.clusterIPs`, else IPv4. SingleStack (the default) wants the primary family;
//!   RequireDualStack both, from one pool, or nothing; PreferDualStack both from one
//!   pool when one has both free, else the primary family alone, else the other one
//!   alone — and on a later run the missing family from the same pool once it has one
//!   free. Addresses come in the Service's family order; all come from one pool.
//! - **Requested addresses** (`spec.loadBalancerIP`, deprecated, or
//!   `metallb.io/loadBalancerIPs`, comma separated; not both): at most one per family,
//!   fitting the families (PreferDualStack may ask for one or two), all in one pool the
//!   Service may use (autoAssign is not needed; buggy addresses of a pool avoiding them
//!   are not usable).
//! - **Requested pool** (`metallb.io/address-pool`): only that pool (autoAssign not
//!   needed); it must exist, admit the Service and contain the requested addresses.
//! - **Otherwise** the auto-assign pools whose `serviceAllocation` admits the Service,
//!   by priority (positive numbers ascending, then 0), ties by name; if none serves
//!   it, the auto-assign pools without a `serviceAllocation`, by name. The first pool
//!   with free addresses of all the families the Service wants wins; within a pool,
//!   CIDRs in order, the lowest usable address.
//! - **Admission** by a `serviceAllocation`: the namespace is listed or its labels match
//!   a namespace selector (when the pool names namespaces at all), *and* the Service's
//!   labels match a Service selector (when it has some), as MetalLB; one without
//!   namespaces or selectors admits every Service. A pool with one is never used by
//!   Services it does not admit, even on request.
//! - **avoidBuggyIPs**: IPv4 addresses ending in .0 or .255 are never handed out.
//! - **Sharing** (`metallb.io/allow-shared-ip`): Services hold one address together only
//!   with the same non-empty key, the same backend (`externalTrafficPolicy: Cluster`,
//!   or Local with the same selector: Cluster and Local never share) and no common
//!   (protocol, port). A sharing Service takes the lowest address that is free or
//!   already shared compatibly.
//! - **Stickiness**: addresses a Service already holds (`previous`, else status) are
//!   kept while still valid (family, requested addresses and pool, admission,
//!   sharing) and placed before anything new; then new Services by creation time. So
//!   adding or removing a Service never moves another's addresses, and allocating
//!   again from an outcome reproduces it.
//!
//! Deprecated annotation keys (`metallb.universe.tf/*`) still work, with a warning.

#![warn(missing_docs)]

mod driver;
mod engine;
mod error;
mod fxhash;
mod request;
mod space;

pub use driver::allocate;
pub use engine::{Allocator, Assignment, PoolUsage};
pub use error::{AllocationError, EVENT_REASON, SharingConflict};
pub use request::{
    Backend, Family, FamilyPolicy, Port, Protocol, Request, Sharing, Warning, WarningKind, is_ours,
    status_ips,
};

use k8s_openapi::api::core::v1::Service;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Options of an allocation run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The `loadBalancerClass` handled; `None` handles only Services without a class.
    pub lb_class: Option<String>,
}

/// A Service's namespace and name. Displays as `namespace/name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ServiceKey {
    /// The key of a Service object (namespace `default` when it has none).
    pub fn of(service: &Service) -> ServiceKey {
        let meta = &service.metadata;
        ServiceKey {
            namespace: meta
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".to_string()),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The allocation of one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceResult {
    /// The Service.
    pub service: ServiceKey,
    /// Its addresses, in the Service's family order; empty on error.
    pub ips: Vec<IpAddr>,
    /// The pool they come from; `None` on error.
    pub pool: Option<String>,
    /// Why the Service has no address.
    pub error: Option<AllocationError>,
    /// Things the user should fix that did not stop the allocation (deprecated fields
    /// and annotations, ignored values, status addresses that could not be kept).
    pub warnings: Vec<String>,
}

/// The result of [`allocate`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// One result for every Service that is ours, in namespace/name order.
    pub results: Vec<ServiceResult>,
    /// Addresses assigned and still free, per pool (for `IPAddressPool` status and the
    /// `metallb_allocator_*` metrics).
    pub usage: BTreeMap<String, PoolUsage>,
}

impl Outcome {
    /// The addresses of every Service that has some: what to pass as `previous` to the
    /// next [`allocate`].
    pub fn assignments(&self) -> BTreeMap<ServiceKey, Vec<IpAddr>> {
        self.results
            .iter()
            .filter(|r| !r.ips.is_empty())
            .map(|r| (r.service.clone(), r.ips.clone()))
            .collect()
    }
}
