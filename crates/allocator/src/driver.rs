//! The whole-snapshot run: [`allocate`], a thin driver over the [`Allocator`].

use crate::error::{self, AllocationError};
use crate::space::ServiceId;
use crate::{Allocator, Options, Outcome, Request, ServiceKey, ServiceResult, is_ours, status_ips};
use ferrolb_model::{Config, Snapshot};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// One Service of the run.
struct Entry<'a> {
    service: &'a Service,
    /// What it asks for, or its key and why it cannot be served.
    request: Result<Request, Box<(ServiceKey, AllocationError)>>,
    warnings: Vec<String>,
    status: Vec<IpAddr>,
    /// Another Service of the snapshot has the same key and comes first.
    duplicate: bool,
    kept: bool,
    /// The Service's id in the allocator, once it holds addresses.
    id: Option<ServiceId>,
    /// Why it holds none.
    error: Option<Box<AllocationError>>,
}

/// A Service's place in namespace/name order. The first 8 bytes of each part, as
/// big-endian integers, decide most comparisons without reading the strings.
struct SortKey<'a> {
    namespace_prefix: u64,
    name_prefix: u64,
    namespace: &'a str,
    name: &'a str,
    index: usize,
}

impl<'a> SortKey<'a> {
    fn new(namespace: &'a str, name: &'a str, index: usize) -> Self {
        SortKey {
            namespace_prefix: prefix(namespace),
            name_prefix: prefix(name),
            namespace,
            name,
            index,
        }
    }

    /// The order of (namespace, name) as strings: prefixes that differ order the
    /// strings as they do (a shorter string is padded with zeros, and a string ordered
    /// before its extensions); equal prefixes fall back to the strings.
    fn cmp_key(&self, other: &Self) -> Ordering {
        self.namespace_prefix
            .cmp(&other.namespace_prefix)
            .then_with(|| self.namespace.cmp(other.namespace))
            .then(self.name_prefix.cmp(&other.name_prefix))
            .then_with(|| self.name.cmp(other.name))
    }
}

fn prefix(s: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = s.len().min(8);
    bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
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

    // Our Services, read in snapshot order (reading them in any other order is slow).
    let mut entries: Vec<Entry<'_>> = Vec::with_capacity(snapshot.services.len());
    for service in snapshot.services.iter().filter(|s| is_ours(s, options)) {
        let key = ServiceKey::of(service);
        let labels = namespace_labels.get(key.namespace.as_str()).copied();
        let (request, warnings) = Request::from_service_keyed(service, key, labels);
        let mut warnings: Vec<String> = warnings.into_iter().map(String::from).collect();
        let request = request.map_err(Box::new);
        let (status, status_warnings) = status_ips(service);
        warnings.extend(status_warnings);
        entries.push(Entry {
            service,
            request,
            warnings,
            status,
            duplicate: false,
            kept: false,
            id: None,
            error: None,
        });
    }

    // Namespace/name order; of several Services with one key, the first counts.
    let mut by_key: Vec<SortKey<'_>> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            // The same as the Service's key, read from the Service itself.
            let service: &Service = e.service;
            let meta = &service.metadata;
            let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty());
            SortKey::new(
                namespace.unwrap_or("default"),
                meta.name.as_deref().unwrap_or_default(),
                i,
            )
        })
        .collect();
    by_key.sort_unstable_by(|a, b| a.cmp_key(b).then(a.index.cmp(&b.index)));
    let duplicates: Vec<usize> = by_key
        .windows(2)
        .filter(|pair| pair[0].cmp_key(&pair[1]).is_eq())
        .map(|pair| pair[1].index)
        .collect();
    let by_key: Vec<usize> = by_key.into_iter().map(|k| k.index).collect();
    for i in duplicates {
        entries[i].duplicate = true;
    }

    // The order of work: by creation time (missing last), then namespace/name (a stable
    // sort of the namespace/name order).
    let mut work: Vec<(bool, Option<&Time>, usize)> = by_key
        .iter()
        .filter(|&&i| !entries[i].duplicate)
        .map(|&i| {
            let service: &Service = entries[i].service;
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
                && let Ok(id) = allocator.keep_id(request, ips)
            {
                entry.kept = true;
                entry.id = Some(id);
            }
        }
    }

    // 2. PreferDualStack Services holding one family try to get the other.
    for &i in &order {
        if let (true, Ok(request)) = (entries[i].kept, &entries[i].request) {
            allocator.complete_dual_stack(request);
        }
    }

    // 3. Everyone else gets new addresses.
    for &i in &order {
        let entry = &mut entries[i];
        if entry.kept {
            continue;
        }
        match &entry.request {
            Ok(request) => match allocator.assign_id(request) {
                Ok(id) => entry.id = Some(id),
                Err(e) => entry.error = Some(Box::new(e)),
            },
            Err(parse_error) => entry.error = Some(Box::new(parse_error.1.clone())),
        }
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
        if entry.error.is_some()
            && let Err(e) = allocator.plan_new(request)
        {
            entry.error = Some(Box::new(e));
        }
        if entry.status.is_empty() {
            continue;
        }
        let mut now: Vec<IpAddr> = match entry.id {
            Some(id) => allocator.assignment_of(id).ips,
            None => Vec::new(),
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

    let mut results = Vec::with_capacity(order.len());
    for i in by_key {
        let Some(entry) = entries.get_mut(i).filter(|e| !e.duplicate) else {
            continue;
        };
        let request = std::mem::replace(
            &mut entry.request,
            Err(Box::new((
                ServiceKey::default(),
                AllocationError::NoAvailableIps,
            ))),
        );
        let service = match request {
            Ok(r) => r.service,
            Err(parse_error) => parse_error.0,
        };
        let (ips, pool, error) = match (entry.id, entry.error.take()) {
            (Some(id), _) => {
                let a = allocator.assignment_of(id);
                (a.ips, Some(a.pool), None)
            }
            (None, e) => (
                Vec::new(),
                None,
                Some(e.map_or(AllocationError::NoAvailableIps, |e| *e)),
            ),
        };
        results.push(ServiceResult {
            service,
            ips,
            pool,
            error,
            warnings: std::mem::take(&mut entry.warnings),
        });
    }
    let usage = allocator
        .usages()
        .into_iter()
        .map(|(name, u)| (name.to_string(), u))
        .collect();
    Outcome { results, usage }
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
