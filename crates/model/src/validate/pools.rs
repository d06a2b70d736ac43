//! `IPAddressPool` rules: addresses that parse, overlap nothing and hold no node's
//! address, and a sound `serviceAllocation`.

use super::address::{bounds, parse_pool_address};
use super::selectors::check_selectors;
use super::{Ctx, Obj, check_duplicate_strings, name_objects};
use crate::config::{Pool, PoolAllocation};
use crate::crd::IPAddressPool;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A pool as checked, with what the advertisement rules need.
pub(crate) struct PoolInfo {
    pub obj: Obj,
    /// The first pool of this name (only those are in the configuration).
    pub first: bool,
    /// The entries of `spec.addresses` that parsed.
    pub entries: Vec<Entry>,
    /// The pool, made of the entries that parsed.
    pub pool: Pool,
}

/// One valid entry of `spec.addresses`.
pub(crate) struct Entry {
    /// Its index in `spec.addresses`.
    pub index: usize,
    /// The entry as written.
    pub text: String,
    /// Its CIDRs.
    pub nets: Vec<IpNet>,
    /// Whether it is IPv4.
    pub v4: bool,
    /// First address, as a number.
    pub start: u128,
    /// Last address, as a number.
    pub end: u128,
}

pub(crate) fn check(ctx: &mut Ctx, pools: &[IPAddressPool], nodes: &[Node]) -> Vec<PoolInfo> {
    let named = name_objects(
        ctx,
        "IPAddressPool",
        pools.iter().map(|p| p.metadata.name.as_deref()),
    );
    let node_ips = node_addresses(nodes);
    let mut out: Vec<PoolInfo> = Vec::new();
    for (n, p) in named.into_iter().zip(pools) {
        let obj = n.obj;
        if p.spec.addresses.is_empty() {
            ctx.push(obj.problem(
                "spec.addresses",
                "the pool has no addresses: list at least one CIDR (192.0.2.0/24) or range (192.0.2.10-192.0.2.20)",
            ));
        }
        let mut entries: Vec<Entry> = Vec::new();
        for (index, text) in p.spec.addresses.iter().enumerate() {
            let field = format!("spec.addresses[{index}]");
            let nets = match parse_pool_address(text) {
                Ok(nets) => nets,
                Err(e) => {
                    ctx.push(obj.problem(field, e));
                    continue;
                }
            };
            let (Some(first), Some(last)) = (nets.first(), nets.last()) else {
                continue;
            };
            let (v4, start, _) = bounds(first);
            let (_, _, end) = bounds(last);
            let entry = Entry {
                index,
                text: text.clone(),
                nets,
                v4,
                start,
                end,
            };
            let overlaps = |e: &Entry| e.v4 == v4 && e.start <= end && start <= e.end;
            // The first earlier entry it overlaps: of an earlier pool, or of this one.
            let earlier = out
                .iter()
                .flat_map(|pi| pi.entries.iter().map(move |e| (Some(&pi.obj), e)))
                .chain(entries.iter().map(|e| (None, e)))
                .find(|(_, e)| overlaps(e));
            if let Some((other, e)) = earlier {
                let whose = match other {
                    Some(o) => format!("{} spec.addresses[{}]", o.id(), e.index),
                    None => format!("spec.addresses[{}] of the same pool", e.index),
                };
                ctx.push(obj.problem(
                    &field,
                    format!(
                        "{text:?} overlaps {:?} ({whose}): an address can be in only one entry of one pool",
                        e.text
                    ),
                ));
            }
            for (node, kind, ip) in &node_ips {
                let (ip_v4, ip_n) = ip_number(*ip);
                if ip_v4 == v4 && start <= ip_n && ip_n <= end {
                    ctx.push(obj.problem(
                        &field,
                        format!(
                            "{text:?} contains {ip}, the {kind} of Node/{node}: a pool must not hand out a node's own address"
                        ),
                    ));
                }
            }
            entries.push(entry);
        }
        let allocation = p.spec.service_allocation.as_ref().map(|sa| {
            let at = "spec.serviceAllocation";
            check_duplicate_strings(
                ctx,
                &obj,
                &format!("{at}.namespaces"),
                &sa.namespaces,
                "namespace",
            );
            PoolAllocation {
                priority: sa.priority,
                namespaces: sa.namespaces.iter().cloned().collect::<BTreeSet<_>>(),
                namespace_selectors: check_selectors(
                    ctx,
                    &obj,
                    &format!("{at}.namespaceSelectors"),
                    &sa.namespace_selectors,
                ),
                service_selectors: check_selectors(
                    ctx,
                    &obj,
                    &format!("{at}.serviceSelectors"),
                    &sa.service_selectors,
                ),
            }
        });
        let pool = Pool {
            name: obj.name.clone(),
            labels: p.metadata.labels.clone().unwrap_or_default(),
            cidrs: entries
                .iter()
                .flat_map(|e| e.nets.iter().copied())
                .collect(),
            auto_assign: p.spec.auto_assign,
            avoid_buggy_ips: p.spec.avoid_buggy_ips,
            allocation,
        };
        out.push(PoolInfo {
            obj,
            first: n.first,
            entries,
            pool,
        });
    }
    out
}

/// (node name, address type, address) of every node's InternalIP and ExternalIP.
fn node_addresses(nodes: &[Node]) -> Vec<(String, String, IpAddr)> {
    let mut out = Vec::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
        for a in addresses.into_iter().flatten() {
            if a.type_ != "InternalIP" && a.type_ != "ExternalIP" {
                continue;
            }
            if let Ok(ip) = a.address.trim().parse::<IpAddr>() {
                out.push((name.clone(), a.type_.clone(), ip));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn ip_number(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (true, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (true, u128::from(u32::from(v4))),
            None => (false, u128::from(v6)),
        },
    }
}

/// Pools by name (the first of each name), for the advertisements' references.
pub(crate) fn by_name(pools: &[PoolInfo]) -> BTreeMap<&str, &PoolInfo> {
    pools
        .iter()
        .filter(|p| p.first)
        .map(|p| (p.obj.name.as_str(), p))
        .collect()
}
