//! What the agent knows, shared with its HTTP endpoints: metrics and status.

use crate::metrics::{Exposition, Kind};
use ferrolb_allocator::{PoolUsage, ServiceResult};
use ferrolb_election::L2Plan;
use ferrolb_l2::L2Stats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The agent's state, behind a lock.
pub type Shared = Arc<Mutex<AgentState>>;

/// The agent's view of the world, as last computed.
#[derive(Debug, Default)]
pub struct AgentState {
    /// This node.
    pub node: String,
    /// A valid configuration has been loaded.
    pub config_loaded: bool,
    /// The last read of the directory was invalid (the last good configuration stays).
    pub config_stale: bool,
    /// The problems of the last invalid read.
    pub problems: Vec<String>,
    /// Allocation of every Service that is ours.
    pub allocations: Vec<ServiceResult>,
    /// Addresses assigned and free, per pool.
    pub usage: BTreeMap<String, PoolUsage>,
    /// The layer 2 election.
    pub plan: L2Plan,
    /// Live members, when membership runs.
    pub members: Option<BTreeSet<String>>,
    /// Counters of the layer 2 announcer.
    pub l2_stats: L2Stats,
    /// Counters of membership, when it runs.
    pub membership: Option<ferrolb_membership::Stats>,
}

/// One Service in `/status`.
#[derive(Serialize)]
struct ServiceStatus {
    service: String,
    ips: Vec<String>,
    pool: Option<String>,
    error: Option<String>,
    /// Owner of each address in layer 2 mode.
    announced_by: Vec<(String, String)>,
}

/// One pool in `/status`.
#[derive(Serialize)]
struct PoolStatus<'a> {
    pool: &'a str,
    assigned_ipv4: u128,
    available_ipv4: u128,
    assigned_ipv6: u128,
    available_ipv6: u128,
}

/// The body of `/status`.
#[derive(Serialize)]
struct Status<'a> {
    node: &'a str,
    config_loaded: bool,
    config_stale: bool,
    problems: &'a [String],
    members: Option<&'a BTreeSet<String>>,
    pools: Vec<PoolStatus<'a>>,
    services: Vec<ServiceStatus>,
}

impl AgentState {
    /// A new state for `node`.
    pub fn new(node: &str) -> Self {
        AgentState {
            node: node.to_string(),
            ..Default::default()
        }
    }

    /// Ready once a configuration is in force.
    pub fn ready(&self) -> bool {
        self.config_loaded
    }

    /// The `/status` document.
    pub fn status_json(&self) -> String {
        let services = self
            .allocations
            .iter()
            .map(|r| ServiceStatus {
                service: r.service.to_string(),
                ips: r.ips.iter().map(ToString::to_string).collect(),
                pool: r.pool.clone(),
                error: r.error.as_ref().map(ToString::to_string),
                announced_by: r
                    .ips
                    .iter()
                    .filter_map(|ip| {
                        self.plan
                            .ips
                            .get(ip)
                            .map(|p| (ip.to_string(), p.owner().to_string()))
                    })
                    .collect(),
            })
            .collect();
        let status = Status {
            node: &self.node,
            config_loaded: self.config_loaded,
            config_stale: self.config_stale,
            problems: &self.problems,
            members: self.members.as_ref(),
            pools: self
                .usage
                .iter()
                .map(|(pool, u)| PoolStatus {
                    pool,
                    assigned_ipv4: u.assigned_ipv4,
                    available_ipv4: u.available_ipv4,
                    assigned_ipv6: u.assigned_ipv6,
                    available_ipv6: u.available_ipv6,
                })
                .collect(),
            services,
        };
        serde_json::to_string_pretty(&status).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The `/metrics` text, with MetalLB's metric names where MetalLB has one.
    pub fn metrics(&self) -> String {
        let mut e = Exposition::default();
        let b = |v: bool| if v { 1.0 } else { 0.0 };
        e.family(
            "metallb_k8s_client_config_loaded_bool",
            "1 if the configuration was ever loaded",
            Kind::Gauge,
        )
        .sample(
            "metallb_k8s_client_config_loaded_bool",
            &[],
            b(self.config_loaded),
        );
        e.family(
            "metallb_k8s_client_config_stale_bool",
            "1 if running on a stale configuration, because the last read was invalid",
            Kind::Gauge,
        )
        .sample(
            "metallb_k8s_client_config_stale_bool",
            &[],
            b(self.config_stale),
        );
        e.family(
            "metallb_speaker_announced",
            "Services being announced from this node",
            Kind::Gauge,
        );
        for (ip, p) in self.plan.owned_by(&self.node) {
            for svc in &p.services {
                let ip = ip.to_string();
                e.sample(
                    "metallb_speaker_announced",
                    &[
                        ("ip", &ip),
                        ("node", &self.node),
                        ("protocol", "layer2"),
                        ("service", svc),
                    ],
                    1.0,
                );
            }
        }
        write_pools(&mut e, &self.usage);
        write_l2(&mut e, &self.l2_stats);
        if let Some(m) = &self.membership {
            write_membership(&mut e, m);
        }
        e.finish()
    }
}

/// MetalLB's layer 2 counters, per address.
fn write_l2(e: &mut Exposition, stats: &L2Stats) {
    type Get = fn(&ferrolb_l2::IpStats) -> u64;
    let families: [(&str, &str, Get); 3] = [
        (
            "metallb_layer2_requests_received",
            "Number of layer 2 requests received for owned IPs",
            |s| s.requests_received,
        ),
        (
            "metallb_layer2_responses_sent",
            "Number of layer 2 responses sent for owned IPs",
            |s| s.responses_sent,
        ),
        (
            "metallb_layer2_gratuitous_sent",
            "Number of gratuitous layer 2 packets sent for owned IPs",
            |s| s.gratuitous_sent,
        ),
    ];
    for (name, help, get) in families {
        e.family(name, help, Kind::Counter);
        for (ip, s) in &stats.ips {
            e.sample(name, &[("ip", &ip.to_string())], get(s) as f64);
        }
    }
    e.family(
        "ferrolb_layer2_malformed_packets_total",
        "Received frames that failed to parse or validate",
        Kind::Counter,
    )
    .sample(
        "ferrolb_layer2_malformed_packets_total",
        &[],
        stats.malformed as f64,
    );
}

/// Membership state and packet counters.
fn write_membership(e: &mut Exposition, m: &ferrolb_membership::Stats) {
    e.family(
        "ferrolb_membership_members",
        "Members by state, as this node sees them",
        Kind::Gauge,
    );
    for (state, n) in [
        ("alive", m.members_alive),
        ("suspect", m.members_suspect),
        ("dead", m.members_dead),
        ("left", m.members_left),
    ] {
        e.sample("ferrolb_membership_members", &[("state", state)], n as f64);
    }
    e.family(
        "ferrolb_membership_packets_received_total",
        "Gossip datagrams received",
        Kind::Counter,
    )
    .sample(
        "ferrolb_membership_packets_received_total",
        &[],
        m.packets_received as f64,
    );
    e.family(
        "ferrolb_membership_packets_sent_total",
        "Gossip datagrams sent",
        Kind::Counter,
    )
    .sample(
        "ferrolb_membership_packets_sent_total",
        &[],
        m.packets_sent as f64,
    );
    e.family(
        "ferrolb_membership_packets_dropped_total",
        "Gossip datagrams dropped, by reason",
        Kind::Counter,
    );
    for (reason, n) in [
        ("unauthenticated", m.dropped_unauthenticated),
        ("plaintext", m.dropped_plaintext),
        ("no_key", m.dropped_no_key),
        ("unknown_format", m.dropped_unknown_format),
        ("malformed", m.dropped_malformed),
    ] {
        e.sample(
            "ferrolb_membership_packets_dropped_total",
            &[("reason", reason)],
            n as f64,
        );
    }
}

/// MetalLB's allocator gauges, per pool.
fn write_pools(e: &mut Exposition, usage: &BTreeMap<String, PoolUsage>) {
    type Get = fn(&PoolUsage) -> u128;
    let families: [(&str, &str, Get); 6] = [
        (
            "metallb_allocator_addresses_total",
            "Number of usable IP addresses, per pool",
            |u| {
                u.assigned_ipv4
                    .saturating_add(u.available_ipv4)
                    .saturating_add(u.assigned_ipv6)
                    .saturating_add(u.available_ipv6)
            },
        ),
        (
            "metallb_allocator_ipv4_addresses_total",
            "Number of usable IPv4 addresses, per pool",
            |u| u.assigned_ipv4.saturating_add(u.available_ipv4),
        ),
        (
            "metallb_allocator_ipv6_addresses_total",
            "Number of usable IPv6 addresses, per pool",
            |u| u.assigned_ipv6.saturating_add(u.available_ipv6),
        ),
        (
            "metallb_allocator_addresses_in_use_total",
            "Number of IP addresses in use, per pool",
            |u| u.assigned_ipv4.saturating_add(u.assigned_ipv6),
        ),
        (
            "metallb_allocator_ipv4_addresses_in_use_total",
            "Number of IPv4 addresses in use, per pool",
            |u| u.assigned_ipv4,
        ),
        (
            "metallb_allocator_ipv6_addresses_in_use_total",
            "Number of IPv6 addresses in use, per pool",
            |u| u.assigned_ipv6,
        ),
    ];
    for (name, help, get) in families {
        e.family(name, help, Kind::Gauge);
        for (pool, u) in usage {
            e.sample(name, &[("pool", pool)], get(u) as f64);
        }
    }
}
