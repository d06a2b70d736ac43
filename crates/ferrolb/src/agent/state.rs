//! What the agent knows, shared with its HTTP endpoints: metrics and status.

use crate::agent::bgp::PeerReport;
use crate::metrics::{Exposition, Kind};
use ferrolb_allocator::{PoolUsage, ServiceResult};
use ferrolb_election::{Interfaces, L2Plan, NodeBgpPlan};
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
    pub allocations: Arc<Vec<ServiceResult>>,
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
    /// What this node announces over BGP.
    pub bgp_plan: NodeBgpPlan,
    /// The BGP sessions.
    pub bgp: Vec<PeerReport>,
    /// Peers that cannot be served, and why.
    pub bgp_problems: Vec<String>,
}

/// One Service in `/status`.
#[derive(Serialize)]
struct ServiceStatus {
    service: String,
    ips: Vec<String>,
    pool: Option<String>,
    error: Option<String>,
    /// Owner of each address in layer 2 mode, with the interfaces it answers on (empty:
    /// every eligible one).
    announced_by: Vec<(String, String, Vec<String>)>,
    /// The BGP peers this node announces the Service to.
    bgp_peers: Vec<String>,
}

/// One BGP session in `/status`.
#[derive(Serialize)]
struct SessionStatus<'a> {
    name: &'a str,
    peer: &'a str,
    state: String,
    up: bool,
    announced_prefixes: usize,
    pending_prefixes: usize,
    bfd: Option<&'static str>,
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
    bgp_sessions: Vec<SessionStatus<'a>>,
    bgp_problems: &'a [String],
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
        let bgp_by_service = self.bgp_plan.peers_of_services();
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
                        self.plan.ips.get(ip).map(|p| {
                            let interfaces = match &p.interfaces {
                                Interfaces::All => Vec::new(),
                                Interfaces::Named(names) => names.iter().cloned().collect(),
                            };
                            (ip.to_string(), p.owner().to_string(), interfaces)
                        })
                    })
                    .collect(),
                bgp_peers: bgp_by_service
                    .get(r.service.to_string().as_str())
                    .map(|peers| peers.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
            })
            .collect();
        let bgp_sessions = self
            .bgp
            .iter()
            .map(|p| SessionStatus {
                name: &p.name,
                peer: &p.peer,
                state: format!("{:?}", p.status.state),
                up: p.status.up,
                announced_prefixes: p.status.announced,
                pending_prefixes: p.status.pending,
                bfd: p.bfd_up.map(|up| if up { "up" } else { "down" }),
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
            bgp_sessions,
            bgp_problems: &self.bgp_problems,
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
        for svc in self.bgp_plan.peers_of_services().into_keys() {
            for ip in self
                .allocations
                .iter()
                .filter(|r| r.service.to_string() == svc)
                .flat_map(|r| &r.ips)
            {
                let ip = ip.to_string();
                e.sample(
                    "metallb_speaker_announced",
                    &[
                        ("ip", &ip),
                        ("node", &self.node),
                        ("protocol", "bgp"),
                        ("service", svc),
                    ],
                    1.0,
                );
            }
        }
        write_pools(&mut e, &self.usage);
        write_bgp(&mut e, &self.bgp);
        write_l2(&mut e, &self.l2_stats);
        if let Some(m) = &self.membership {
            write_membership(&mut e, m);
        }
        e.finish()
    }
}

/// MetalLB's BGP and BFD metrics, per peer (`address:port` for BGP, as MetalLB's
/// native mode; the address for BFD, as its FRR mode).
fn write_bgp(e: &mut Exposition, peers: &[PeerReport]) {
    type Get = fn(&PeerReport) -> f64;
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    let families: [(&str, &str, Kind, Get); 12] = [
        (
            "metallb_bgp_session_up",
            "BGP session state (1 is up, 0 is down)",
            Kind::Gauge,
            |p| {
                if p.status.up { 1.0 } else { 0.0 }
            },
        ),
        (
            "metallb_bgp_updates_total",
            "Number of BGP UPDATE messages sent",
            Kind::Counter,
            |p| p.status.stats.updates_sent as f64,
        ),
        (
            "metallb_bgp_updates_total_received",
            "Number of BGP UPDATE messages received",
            Kind::Counter,
            |p| p.status.stats.updates_received as f64,
        ),
        (
            "metallb_bgp_announced_prefixes_total",
            "Number of prefixes currently being advertised on the BGP session",
            Kind::Gauge,
            |p| p.status.announced as f64,
        ),
        (
            "metallb_bgp_pending_prefixes_total",
            "Number of prefixes that should be advertised on the BGP session",
            Kind::Gauge,
            |p| p.status.pending as f64,
        ),
        (
            "metallb_bgp_opens_sent",
            "Number of BGP open messages sent",
            Kind::Counter,
            |p| p.status.stats.opens_sent as f64,
        ),
        (
            "metallb_bgp_opens_received",
            "Number of BGP open messages received",
            Kind::Counter,
            |p| p.status.stats.opens_received as f64,
        ),
        (
            "metallb_bgp_notifications_sent",
            "Number of BGP notification messages sent",
            Kind::Counter,
            |p| p.status.stats.notifications_sent as f64,
        ),
        (
            "metallb_bgp_keepalives_sent",
            "Number of BGP keepalive messages sent",
            Kind::Counter,
            |p| p.status.stats.keepalives_sent as f64,
        ),
        (
            "metallb_bgp_keepalives_received",
            "Number of BGP keepalive messages received",
            Kind::Counter,
            |p| p.status.stats.keepalives_received as f64,
        ),
        (
            "metallb_bgp_route_refresh_received",
            "Number of BGP route refresh messages received",
            Kind::Counter,
            |p| p.status.stats.route_refreshes_received as f64,
        ),
        (
            "metallb_bgp_total_sent",
            "Number of BGP messages sent",
            Kind::Counter,
            |p| {
                let s = &p.status.stats;
                (s.opens_sent + s.updates_sent + s.keepalives_sent + s.notifications_sent) as f64
            },
        ),
    ];
    for (name, help, kind, get) in families {
        e.family(name, help, kind);
        for p in peers {
            e.sample(name, &[("peer", &p.peer)], get(p));
        }
    }
    type GetBfd = fn(&ferrolb_bfd::SessionStats) -> u64;
    let bfd: [(&str, &str, GetBfd); 4] = [
        (
            "metallb_bfd_control_packet_input",
            "Number of received BFD control packets",
            |s| s.control_packets_in,
        ),
        (
            "metallb_bfd_control_packet_output",
            "Number of sent BFD control packets",
            |s| s.control_packets_out,
        ),
        (
            "metallb_bfd_session_up_events",
            "Number of BFD session up events",
            |s| s.up_events,
        ),
        (
            "metallb_bfd_session_down_events",
            "Number of BFD session down events",
            |s| s.down_events,
        ),
    ];
    e.family(
        "metallb_bfd_session_up",
        "BFD session state (1 is up, 0 is down)",
        Kind::Gauge,
    );
    for p in peers {
        if let Some(up) = p.bfd_up {
            e.sample(
                "metallb_bfd_session_up",
                &[("peer", peer_ip(&p.peer))],
                b(up),
            );
        }
    }
    for (name, help, get) in bfd {
        e.family(name, help, Kind::Counter);
        for p in peers {
            if let Some(s) = &p.bfd_stats {
                e.sample(name, &[("peer", peer_ip(&p.peer))], get(s) as f64);
            }
        }
    }
}

/// The address part of `address:port` (`[v6]:port` too).
fn peer_ip(peer: &str) -> &str {
    peer.rsplit_once(':').map_or(peer, |(ip, _)| {
        ip.trim_start_matches('[').trim_end_matches(']')
    })
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
