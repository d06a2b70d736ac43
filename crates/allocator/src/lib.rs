//! ferrolb's IP allocator: which addresses each LoadBalancer Service gets, as a pure,
//! deterministic function of the configuration, the Services and the addresses they
//! already hold. It follows MetalLB's rules (see `docs/` and the tests), made
//! deterministic where MetalLB depends on map order.
//!
//! Two entry points:
//! - [`allocate`]: one whole run over a [`Snapshot`] (the standalone runtime, `ferrolb
//!   allocate`, tests).
//! - [`Allocator`]: the incremental engine a controller keeps between events
//!   ([`Allocator::assign`], [`Allocator::release`], queries and pool usage);
//!   [`allocate`] is a thin driver over it.
//!
//! No I/O, no clock, no randomness. Memory is proportional to the addresses in use,
//! never to the size of the pools.

#![warn(missing_docs)]

mod engine;
mod error;
mod fxhash;
mod request;
mod space;

pub use engine::{Allocator, Assignment, PoolUsage};
pub use error::{AllocationError, EVENT_REASON, SharingConflict};
pub use request::{
    Backend, Family, FamilyPolicy, Port, Protocol, Request, Sharing, is_ours, status_ips,
};

use ferrolb_model::{Config, Snapshot};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::{BTreeMap, HashMap};
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

/// One Service of the run.
struct Entry<'a> {
    service: &'a Service,
    /// What it asks for, or its key and why it cannot be served.
    request: Result<Request, (ServiceKey, AllocationError)>,
    warnings: Vec<String>,
    status: Vec<IpAddr>,
    kept: bool,
    result: Option<Result<Assignment, AllocationError>>,
}

/// Allocates addresses to every Service of the snapshot that is ours (see [`is_ours`]).
///
/// Services that already hold addresses keep them while they are still valid for the
/// Service, and are placed first: those in `previous` (what the last run gave them),
/// then those in `status.loadBalancer.ingress`. Then PreferDualStack Services holding one
/// family get the other when their pool has one free; then every other Service gets new
/// addresses. Within each step Services go by `metadata.creationTimestamp` (missing ones
/// last), then namespace and name. So adding or removing a Service never moves another
/// one's addresses, and allocating again from the result (`outcome.assignments()` as
/// `previous`) gives the same result.
pub fn allocate(
    config: &Config,
    snapshot: &Snapshot,
    options: &Options,
    previous: &BTreeMap<ServiceKey, Vec<IpAddr>>,
) -> Outcome {
    let namespace_labels: HashMap<&str, &BTreeMap<String, String>> = snapshot
        .namespaces
        .iter()
        .filter_map(|ns| {
            static EMPTY: BTreeMap<String, String> = BTreeMap::new();
            let name = ns.metadata.name.as_deref()?;
            Some((name, ns.metadata.labels.as_ref().unwrap_or(&EMPTY)))
        })
        .collect();

    // Our Services in namespace/name order (sorting a compact list); of several Services
    // with one key, the first counts.
    let mut by_key: Vec<(&str, &str, usize, &Service)> = snapshot
        .services
        .iter()
        .filter(|s| is_ours(s, options))
        .enumerate()
        .map(|(i, service)| {
            let meta = &service.metadata;
            let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty());
            (
                namespace.unwrap_or("default"),
                meta.name.as_deref().unwrap_or_default(),
                i,
                service,
            )
        })
        .collect();
    by_key.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    by_key.dedup_by(|later, first| (later.0, later.1) == (first.0, first.1));

    // What each asks for; entries are in namespace/name order.
    let mut entries: Vec<Entry<'_>> = Vec::with_capacity(by_key.len());
    for (_, _, _, service) in by_key {
        let key = ServiceKey::of(service);
        let labels = namespace_labels.get(key.namespace.as_str()).copied();
        let (request, mut warnings) = Request::from_service_keyed(service, key, labels);
        let (status, status_warnings) = status_ips(service);
        warnings.extend(status_warnings);
        entries.push(Entry {
            service,
            request,
            warnings,
            status,
            kept: false,
            result: None,
        });
    }

    // The order of work: by creation time (missing last), then namespace/name (a stable
    // sort of the namespace/name order).
    let mut work: Vec<(bool, Option<&Time>, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let service: &Service = entry.service;
            let created = service.metadata.creation_timestamp.as_ref();
            (created.is_none(), created, i)
        })
        .collect();
    work.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let order: Vec<usize> = work.into_iter().map(|(_, _, i)| i).collect();

    let mut allocator = Allocator::new(config);
    allocator.reserve(entries.len());

    // 1. Services holding addresses keep them while they are valid: first what the last
    //    run gave them, then (for the others) what their status says.
    for from_status in [false, true] {
        for &i in &order {
            let entry = &mut entries[i];
            let (false, Ok(request)) = (entry.kept, &entry.request) else {
                continue;
            };
            let held = if from_status {
                Some(&entry.status)
            } else {
                previous.get(&request.service)
            };
            if let Some(ips) = held.filter(|ips| !ips.is_empty())
                && let Ok(assignment) = allocator.keep(request, ips)
            {
                entry.kept = true;
                entry.result = Some(Ok(assignment));
            }
        }
    }

    // 2. PreferDualStack Services holding one family try to get the other.
    for &i in &order {
        let entry = &mut entries[i];
        if let (true, Ok(request)) = (entry.kept, &entry.request)
            && allocator.complete_dual_stack(request).is_some()
        {
            entry.result = allocator.assignment(&request.service).map(Ok);
        }
    }

    // 3. Everyone else gets new addresses.
    for &i in &order {
        let entry = &mut entries[i];
        if entry.kept {
            continue;
        }
        entry.result = Some(match &entry.request {
            Ok(request) => allocator.assign(request),
            Err((_, e)) => Err(e.clone()),
        });
    }

    // 4. Say why Services got nothing and why status addresses were not kept, against
    //    the final state (a Service that failed at its turn fails against it too, as
    //    addresses only get taken during a run), so that allocating again from this
    //    outcome gives the same errors and warnings.
    for &i in &order {
        let entry = &mut entries[i];
        let Ok(request) = &entry.request else {
            continue;
        };
        if let Some(Err(_)) = &entry.result
            && let Err(e) = allocator.plan_new(request)
        {
            entry.result = Some(Err(e));
        }
        if entry.status.is_empty() {
            continue;
        }
        let mut now: Vec<IpAddr> = match &entry.result {
            Some(Ok(a)) => a.ips.clone(),
            _ => Vec::new(),
        };
        let mut status = entry.status.clone();
        now.sort();
        status.sort();
        if status == now {
            continue;
        }
        if let Err(e) = allocator.check_keep(request, &entry.status) {
            entry.warnings.push(format!(
                "status IP(s) {} cannot be kept: {}",
                error::ip_list(&entry.status),
                reason_for_warning(&e)
            ));
        }
    }

    let results = entries
        .into_iter()
        .map(|entry| {
            let (service, parse_error) = match entry.request {
                Ok(r) => (r.service, None),
                Err((key, e)) => (key, Some(e)),
            };
            let (ips, pool, error) = match (entry.result, parse_error) {
                (Some(Ok(a)), _) => (a.ips, Some(a.pool), None),
                (Some(Err(e)), _) | (None, Some(e)) => (Vec::new(), None, Some(e)),
                (None, None) => (Vec::new(), None, Some(AllocationError::NoAvailableIps)),
            };
            ServiceResult {
                service,
                ips,
                pool,
                error,
                warnings: entry.warnings,
            }
        })
        .collect();
    Outcome { results }
}

/// The reason of an error, for a warning that must not depend on which other Services
/// share an address (so that allocating again gives the same warnings).
fn reason_for_warning(e: &AllocationError) -> String {
    match e {
        AllocationError::IpInUse { ip, .. } => {
            format!("IP {ip} is in use by another service and cannot be shared")
        }
        other => other.to_string(),
    }
}
