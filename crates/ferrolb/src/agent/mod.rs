//! The node agent: everything one node needs to announce addresses. [`run_node`] is the
//! core both front doors share: it takes configuration snapshots from a source, takes
//! part in membership, elects per address with the shared election, plans BGP, and
//! announces what this node wins (layer 2 and BGP).
//!
//! - `ferrolb run` (standalone, [`run`]): the source is a manifest directory, and every
//!   node allocates with the shared allocator (reaching the same answer as the others).
//! - `ferrolb speaker` (Kubernetes): the source is the API server, and the addresses are
//!   those the controller wrote in the Services' status ([`AssignmentSource::ServiceStatus`]).

pub mod bgp;
mod heap;
pub mod local;
mod net;
mod source;
mod state;

use crate::agent::bgp::settings::{NodeAddresses, peer_settings, route_attributes};
use crate::agent::bgp::{BgpSpeaker, Wanted, local_towards};
use crate::agent::local::LocalAddresses;
use crate::agent::state::{AgentState, Shared};
use ferrolb_allocator::{
    Options, Outcome, ServiceKey, ServiceResult, allocate, is_ours, status_ips,
};
use ferrolb_bgp::{Family, RouteAttributes};
use ferrolb_election::{Announced, Assigned, Interfaces, ServiceFacts, elect_l2, plan_bgp};
use ferrolb_model::annotations::IP_ALLOCATED_FROM_POOL;
use ferrolb_model::{Config, Problem, Snapshot};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// Arguments of `ferrolb run`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Directory of manifests, read recursively and watched for changes.
    #[arg(long)]
    pub manifests: PathBuf,
    /// This node's name: one of the Node objects of the directory.
    #[arg(long)]
    pub node: String,
    /// Serve /metrics, /healthz, /readyz and /status on this address.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// UDP port of the membership protocol.
    #[arg(long, default_value_t = 7946)]
    pub gossip_port: u16,
    /// Membership timing: `default` (dead node detected in under 500 ms) or
    /// `conservative` (for lossy networks).
    #[arg(long, default_value = "default")]
    pub membership_profile: String,
    /// Do not add local routes for owned addresses (when something else accepts their
    /// traffic, as kube-proxy does).
    #[arg(long)]
    pub no_local_routes: bool,
    /// Handle only Services of this loadBalancerClass.
    #[arg(long)]
    pub lb_class: Option<String>,
    /// How often the manifest directory is checked for changes, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub poll_ms: u64,
    /// On shutdown, re-announce every BGP route with the GRACEFUL_SHUTDOWN community
    /// (RFC 8326) and wait this long (e.g. `5s`) before withdrawing, so routers move
    /// traffic away first. Default: withdraw at once.
    #[arg(long, value_parser = parse_duration)]
    pub bgp_graceful_shutdown: Option<Duration>,
    /// Also accept the BGP connections peers open, on this address (e.g. `[::]:179`,
    /// IPv4 peers included). Sessions dial all the same; a collision keeps one
    /// connection as RFC 4271 says. Default: dial only.
    #[arg(long)]
    pub bgp_listen: Option<SocketAddr>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    ferrolb_model::validate::duration::parse_go_duration(s)
}

/// What the node core needs besides its inputs.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// This node's name (a Node object of the snapshots).
    pub node: String,
    /// Serve /metrics, /healthz, /readyz and /status on this address.
    pub metrics_addr: Option<SocketAddr>,
    /// UDP port of the membership protocol.
    pub gossip_port: u16,
    /// Membership timing profile.
    pub membership_profile: String,
    /// Make the kernel accept the announced addresses with local routes (standalone).
    pub local_routes: bool,
    /// Handle only Services of this loadBalancerClass.
    pub lb_class: Option<String>,
    /// Graceful-shutdown period of BGP sessions.
    pub bgp_graceful_shutdown: Option<Duration>,
    /// Accept peers' BGP connections on this address too.
    pub bgp_listen: Option<SocketAddr>,
    /// The Secret holding the gossip key (key `secretkey`).
    pub gossip_secret: String,
    /// Where the Services' addresses come from.
    pub assignments: AssignmentSource,
}

/// Where the Services' addresses come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignmentSource {
    /// Allocate them here, with the shared allocator (standalone: every node reaches the
    /// same answer).
    Allocate,
    /// Read them from `status.loadBalancer.ingress` (Kubernetes: the controller
    /// allocates), the pool from the `metallb.io/ip-allocated-from-pool` annotation or
    /// else the pool that contains them.
    ServiceStatus,
}

/// What a source tells the node core.
#[derive(Debug)]
pub enum Input {
    /// The objects as read now, with the problems of those that could not be read.
    Read {
        /// The objects.
        snapshot: Box<Snapshot>,
        /// Objects that did not decode.
        problems: Vec<Problem>,
    },
    /// The source cannot be read (the configuration in force stays).
    Unreadable(String),
}

/// The configuration in force: the last valid one read, with its allocation.
///
/// The Services are allocated once per read; re-elections (members coming and going) use
/// the allocation and what the election needs of each Service ([`ServiceFacts`]), so the
/// Service objects themselves are not kept.
struct InForce {
    /// The objects read, without the Services.
    snapshot: Snapshot,
    config: Config,
    /// The allocation of every Service that is ours (shared with `/status`).
    allocations: Arc<Vec<ServiceResult>>,
    /// For each allocation with a pool, what the election needs of its Service.
    facts: Vec<Option<ServiceFacts>>,
}

/// Runs the standalone agent until SIGTERM or SIGINT.
pub fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::commands::block_on(async move {
        let (tx, rx) = mpsc::channel(4);
        let dir = args.manifests.clone();
        let poll = Duration::from_millis(args.poll_ms.max(10));
        tokio::spawn(source::watch_dir(dir, poll, tx));
        let options = NodeOptions {
            node: args.node,
            metrics_addr: args.metrics_addr,
            gossip_port: args.gossip_port,
            membership_profile: args.membership_profile,
            local_routes: !args.no_local_routes,
            lb_class: args.lb_class,
            bgp_graceful_shutdown: args.bgp_graceful_shutdown,
            bgp_listen: args.bgp_listen,
            gossip_secret: GOSSIP_SECRET.to_string(),
            assignments: AssignmentSource::Allocate,
        };
        run_node(options, rx, None).await
    })
}

/// The node core: runs until SIGTERM or SIGINT (or until `inputs` closes), then hands
/// over (membership leave, layer 2 release, BGP withdraw and Cease). `announced`, when
/// given, is kept up to date with what this node announces.
pub async fn run_node(
    options: NodeOptions,
    mut inputs: mpsc::Receiver<Input>,
    announced: Option<watch::Sender<Announced>>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args = &options;
    let shared: Shared = Arc::new(std::sync::Mutex::new(AgentState::new(&args.node)));
    if let Some(addr) = args.metrics_addr {
        net::serve(addr, shared.clone()).await?;
    }
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    let mut in_force: Option<InForce> = None;
    let mut local = LocalAddresses::default();
    if args.local_routes {
        LocalAddresses::strict_arp();
        LocalAddresses::flush_stale().await;
    }
    let mut members = net::Members::new();
    let mut l2 = net::Announcer::new();
    let mut speaker = match args.bgp_listen {
        Some(addr) => BgpSpeaker::listening(addr)?,
        None => BgpSpeaker::new(),
    };
    let mut last_live: Option<BTreeSet<String>> = None;
    let mut l2_owned = false;
    let mut bgp_accepting = false;
    // Membership settles with time, not only with inputs.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    // Freed memory is given back after big work: at once, and again at the next tick,
    // once the sessions have taken their new routes.
    let mut trim_next_tick = false;
    loop {
        let mut dirty = false;
        let mut trim = false;
        tokio::select! {
            input = inputs.recv() => match input {
                Some(Input::Read { snapshot, problems }) => {
                    trim = true;
                    dirty |= apply_input(args, *snapshot, problems, &mut in_force, &shared);
                    if let Some(f) = &in_force {
                        dirty |= members.ensure_started(args, &f.snapshot).await;
                    }
                }
                Some(Input::Unreadable(e)) => {
                    warn!("{e}: keeping the configuration in force");
                    shared.lock().expect("state lock").config_stale = true;
                }
                None => break,
            },
            _ = tick.tick() => {
                trim = std::mem::take(&mut trim_next_tick);
                if let Some(f) = &in_force {
                    dirty |= members.ensure_started(args, &f.snapshot).await;
                }
            }
            _ = members.changed() => dirty = true,
            () = speaker.next_event() => {}
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        if dirty && let Some(f) = &in_force {
            let Computed {
                mut owned,
                bgp,
                bgp_addresses,
                mut announcements,
            } = recompute(args, f, &members.live(), &shared, announced.is_some());
            if !members.may_announce() {
                owned.clear();
                announcements.l2.clear();
            }
            l2.set_owned(owned.clone()).await;
            l2_owned = !owned.is_empty();
            // A member (re)joined: after a partition it may have announced addresses
            // this node owned all along, and clients may still send to it. Tell them
            // again.
            let live = members.live();
            if let (Some(before), Some(now)) = (&last_live, &live)
                && now.difference(before).next().is_some()
            {
                l2.reannounce();
            }
            last_live = live;
            if args.local_routes {
                // Accept traffic for what this node announces: the layer 2 addresses it
                // owns, and the addresses it announces over BGP (routers send it their
                // share).
                let mut accept: BTreeSet<IpAddr> = owned.keys().copied().collect();
                bgp_accepting = !bgp_addresses.is_empty();
                accept.extend(bgp_addresses);
                local.sync(&accept).await;
            }
            speaker.apply(bgp).await;
            if let Some(tx) = &announced {
                tx.send_if_modified(|a| {
                    let changed = *a != announcements;
                    *a = announcements;
                    changed
                });
            }
        }
        if dirty {
            trim = true;
            trim_next_tick = true;
        }
        if trim {
            heap::release_free_memory();
        }
        speaker.refresh_bfd_stats().await;
        {
            let mut st = shared.lock().expect("state lock");
            st.l2_stats = l2.stats();
            st.membership = members.stats();
            st.bgp = speaker.reports();
        }
    }

    // Hand over: tell the others we leave, so the successors take over at once, keep
    // answering a moment while they announce, then stop.
    // BGP (withdraw, Cease) and layer 2 (leave, hand over) at once: they do not wait
    // for each other.
    info!("shutting down: handing over");
    let limit = args.bgp_graceful_shutdown.unwrap_or_default() + Duration::from_secs(2);
    let layer2 = async {
        members.leave().await;
        if l2_owned {
            // Keep answering a moment while the successors announce.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        l2.set_owned(BTreeMap::new()).await;
        l2.shutdown().await;
    };
    tokio::join!(speaker.shutdown(limit), layer2);
    if args.local_routes {
        if bgp_accepting {
            // The routers still send traffic until they have acted on the withdrawal
            // (BIRD takes about 0.1 s for 10,000 routes): keep accepting it meanwhile.
            tokio::time::sleep(BGP_DRAIN).await;
        }
        local.sync(&BTreeSet::new()).await;
    }
    if let Some(tx) = &announced {
        tx.send_replace(Announced::default());
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The Secret the gossip key is read from, as MetalLB names it (key `secretkey`).
pub const GOSSIP_SECRET: &str = "memberlist";

/// How long a stopping node keeps accepting the traffic of the addresses it withdrew
/// over BGP (with local routes), while the routers move it away.
const BGP_DRAIN: Duration = Duration::from_millis(300);

/// A new read of the source. A valid configuration replaces the one in force; an
/// invalid one is logged with `check`'s lines and the last good one stays. Returns
/// whether the configuration in force changed.
fn apply_input(
    args: &NodeOptions,
    mut snapshot: Snapshot,
    mut problems: Vec<Problem>,
    in_force: &mut Option<InForce>,
    shared: &Shared,
) -> bool {
    let config = match ferrolb_model::validate(&snapshot) {
        Ok(c) if problems.is_empty() => Some(c),
        Ok(_) => None,
        Err(more) => {
            problems.extend(more);
            None
        }
    };
    let mut st = shared.lock().expect("state lock");
    match config {
        Some(config) => {
            if in_force.as_ref().is_none_or(|f| f.config != config) || st.config_stale {
                info!("configuration loaded");
            }
            st.config_loaded = true;
            st.config_stale = false;
            st.problems.clear();
            let outcome = assign(args, &config, &snapshot, in_force.as_ref());
            let facts = service_facts(&snapshot, &outcome.results);
            // Allocated: the Services are no longer needed.
            snapshot.services = Vec::new();
            let allocations = Arc::new(outcome.results);
            st.allocations = allocations.clone();
            st.usage = outcome.usage;
            *in_force = Some(InForce {
                snapshot,
                config,
                allocations,
                facts,
            });
            true
        }
        None => {
            for p in &problems {
                error!("{p}");
            }
            warn!(
                problems = problems.len(),
                "invalid configuration: the last good one stays in force"
            );
            st.config_stale = true;
            st.problems = problems.iter().map(ToString::to_string).collect();
            false
        }
    }
}

/// What this node announces.
struct Computed {
    /// The addresses it owns in layer 2 mode, with their interfaces.
    owned: BTreeMap<IpAddr, Interfaces>,
    /// Its BGP sessions, with their routes.
    bgp: BTreeMap<String, Wanted>,
    /// The service addresses it announces over BGP (inside aggregated prefixes too);
    /// only worked out when local routes are made.
    bgp_addresses: BTreeSet<IpAddr>,
    /// The Services it announces, for status sinks; only worked out when asked for.
    announcements: Announced,
}

/// The Services' addresses under `config`: allocated here (sticking to those of the
/// configuration in force, `before`), or as the Services' status shows them.
fn assign(
    args: &NodeOptions,
    config: &Config,
    snapshot: &Snapshot,
    before: Option<&InForce>,
) -> Outcome {
    let options = Options {
        lb_class: args.lb_class.clone(),
    };
    match args.assignments {
        AssignmentSource::Allocate => {
            let previous: BTreeMap<ServiceKey, Vec<IpAddr>> = before
                .into_iter()
                .flat_map(|f| f.allocations.iter())
                .filter(|r| !r.ips.is_empty())
                .map(|r| (r.service.clone(), r.ips.clone()))
                .collect();
            allocate(config, snapshot, &options, &previous)
        }
        AssignmentSource::ServiceStatus => from_status(config, snapshot, &options),
    }
}

/// What the election needs of the Service of each result that has a pool.
fn service_facts(snapshot: &Snapshot, results: &[ServiceResult]) -> Vec<Option<ServiceFacts>> {
    let services: BTreeMap<ServiceKey, &k8s_openapi::api::core::v1::Service> = snapshot
        .services
        .iter()
        .map(|s| (ServiceKey::of(s), s))
        .collect();
    results
        .iter()
        .map(|r| {
            r.pool.as_ref()?;
            services.get(&r.service).map(|s| ServiceFacts::of(s))
        })
        .collect()
}

/// Elects and plans: what this node announces.
fn recompute(
    args: &NodeOptions,
    f: &InForce,
    live: &Option<BTreeSet<String>>,
    shared: &Shared,
    want_announcements: bool,
) -> Computed {
    let assigned: Vec<Assigned<'_>> = f
        .allocations
        .iter()
        .zip(&f.facts)
        .filter_map(|(r, facts)| {
            Some(Assigned {
                service: facts.as_ref()?,
                ips: &r.ips,
                pool: r.pool.as_deref()?,
            })
        })
        .collect();
    let plan = elect_l2(&f.config, &f.snapshot, &assigned, live.as_ref());
    let owned: BTreeMap<IpAddr, Interfaces> = plan
        .owned_by(&args.node)
        .map(|(ip, p)| (*ip, p.interfaces.clone()))
        .collect();
    let bgp_plan = plan_bgp(&f.config, &f.snapshot, &assigned, &args.node);
    let addresses = NodeAddresses::of(&f.snapshot, &args.node);
    let mut wanted = BTreeMap::new();
    let mut bgp_problems = Vec::new();
    // One allocation per distinct set of attributes, for every peer's routes.
    let mut attributes: BTreeMap<RouteAttributes, Arc<RouteAttributes>> = BTreeMap::new();
    for (name, peer_plan) in &bgp_plan.peers {
        let Some(peer) = f.config.peers.get(name) else {
            continue;
        };
        let towards = peer.address.and_then(local_towards);
        match peer_settings(
            peer,
            &f.config,
            &args.node,
            addresses,
            towards,
            args.bgp_graceful_shutdown,
        ) {
            Ok(settings) => {
                // Only the session's address families: an IPv6 prefix is no more pending
                // on an IPv4-only session than it is announced.
                let families = &settings.session.families;
                let routes = peer_plan
                    .routes
                    .iter()
                    .filter(|(prefix, _)| match prefix {
                        IpNet::V4(_) => families.contains(&Family::IPV4_UNICAST),
                        IpNet::V6(_) => families.contains(&Family::IPV6_UNICAST),
                    })
                    .map(|(prefix, r)| {
                        let a = route_attributes(r);
                        let shared = attributes
                            .entry(a)
                            .or_insert_with_key(|a| Arc::new(a.clone()));
                        (*prefix, shared.clone())
                    })
                    .collect();
                wanted.insert(name.clone(), Wanted { settings, routes });
            }
            Err(problem) => bgp_problems.push(problem),
        }
    }
    // What only some callers need is not built for the others (with 10,000 Services
    // each of these maps costs megabytes).
    let bgp_services = if args.local_routes || want_announcements {
        bgp_plan.peers_of_services()
    } else {
        BTreeMap::new()
    };
    let bgp_addresses: BTreeSet<IpAddr> = if args.local_routes {
        // The facts carry each Service's `namespace/name` already made.
        f.allocations
            .iter()
            .zip(&f.facts)
            .filter(|(_, facts)| {
                facts
                    .as_ref()
                    .is_some_and(|facts| bgp_services.contains_key(&*facts.key))
            })
            .flat_map(|(r, _)| r.ips.iter().copied())
            .collect()
    } else {
        BTreeSet::new()
    };
    let mut announcements = Announced::default();
    if want_announcements {
        announcements = announced_services(&args.node, &plan, bgp_services);
    }
    let mut st = shared.lock().expect("state lock");
    if st.bgp_problems != bgp_problems {
        for p in &bgp_problems {
            warn!("{p}: no session with this peer");
        }
        st.bgp_problems = bgp_problems;
    }
    st.plan = plan;
    st.bgp_plan = bgp_plan;
    st.members = live.clone();
    Computed {
        owned,
        bgp: wanted,
        bgp_addresses,
        announcements,
    }
}

/// The Services `node` announces, with the interfaces (layer 2) and the peers (BGP).
fn announced_services(
    node: &str,
    plan: &ferrolb_election::L2Plan,
    bgp_services: BTreeMap<&str, BTreeSet<&str>>,
) -> Announced {
    let mut announcements = Announced::default();
    for (svc, peers) in bgp_services {
        announcements.bgp.insert(
            svc.to_string(),
            peers.into_iter().map(str::to_string).collect(),
        );
    }
    for (_, p) in plan.owned_by(node) {
        let interfaces = match &p.interfaces {
            Interfaces::All => BTreeSet::new(),
            Interfaces::Named(names) => names.clone(),
        };
        for svc in &p.services {
            announcements
                .l2
                .entry(svc.clone())
                .or_default()
                .extend(interfaces.iter().cloned());
        }
    }
    announcements
}

/// The addresses the controller wrote in the Services' status (Kubernetes), as an
/// allocation outcome: the pool is the `metallb.io/ip-allocated-from-pool` annotation's,
/// else the pool containing the first address; Services whose addresses are in no pool
/// are left out (nothing to announce them with).
fn from_status(config: &Config, snapshot: &Snapshot, options: &Options) -> Outcome {
    let mut outcome = Outcome::default();
    for svc in &snapshot.services {
        if !is_ours(svc, options) {
            continue;
        }
        let (ips, warnings) = status_ips(svc);
        let Some(first) = ips.first() else { continue };
        let annotated = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IP_ALLOCATED_FROM_POOL))
            .filter(|p| config.pools.contains_key(p.as_str()))
            .cloned();
        let pool = annotated.or_else(|| {
            config
                .pools
                .values()
                .find(|p| p.cidrs.iter().any(|c| c.contains(first)))
                .map(|p| p.name.clone())
        });
        let Some(pool) = pool else { continue };
        outcome.results.push(ServiceResult {
            service: ServiceKey::of(svc),
            ips,
            pool: Some(pool),
            error: None,
            warnings,
        });
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_source::load_documents;

    const YAML: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: b}
spec: {addresses: [198.51.100.0/28]}
---
apiVersion: v1
kind: Service
metadata: {name: annotated, namespace: x, annotations: {metallb.io/ip-allocated-from-pool: b}}
spec: {type: LoadBalancer}
status: {loadBalancer: {ingress: [{ip: 198.51.100.3}]}}
---
apiVersion: v1
kind: Service
metadata: {name: contained, namespace: x}
spec: {type: LoadBalancer}
status: {loadBalancer: {ingress: [{ip: 192.0.2.4}]}}
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere, namespace: x}
spec: {type: LoadBalancer}
status: {loadBalancer: {ingress: [{ip: 203.0.113.9}]}}
---
apiVersion: v1
kind: Service
metadata: {name: pending, namespace: x}
spec: {type: LoadBalancer}
---
apiVersion: v1
kind: Service
metadata: {name: other-class, namespace: x}
spec: {type: LoadBalancer, loadBalancerClass: other}
status: {loadBalancer: {ingress: [{ip: 192.0.2.5}]}}
";

    fn options() -> NodeOptions {
        NodeOptions {
            node: "n1".into(),
            metrics_addr: None,
            gossip_port: 0,
            membership_profile: "default".into(),
            local_routes: false,
            lb_class: None,
            bgp_graceful_shutdown: None,
            bgp_listen: None,
            gossip_secret: GOSSIP_SECRET.to_string(),
            assignments: AssignmentSource::Allocate,
        }
    }

    fn read(yaml: &str) -> Snapshot {
        let loaded = load_documents([("t.yaml", yaml.as_bytes())]);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        loaded.snapshot
    }

    const POOL: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/30]}
";

    fn svc(name: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: x, labels: {{app: {name}}}}}\nspec: {{type: LoadBalancer}}\n"
        )
    }

    fn ips_of(f: &InForce) -> BTreeMap<String, Vec<IpAddr>> {
        f.allocations
            .iter()
            .map(|r| (r.service.name.clone(), r.ips.clone()))
            .collect()
    }

    #[test]
    fn a_read_is_allocated_once_and_the_services_are_not_kept() {
        let args = options();
        let shared: Shared = Arc::new(std::sync::Mutex::new(AgentState::new("n1")));
        let mut in_force = None;
        let first = format!("{POOL}{}", svc("web"));
        assert!(apply_input(
            &args,
            read(&first),
            vec![],
            &mut in_force,
            &shared
        ));
        let f = in_force.as_ref().unwrap();
        assert!(f.snapshot.services.is_empty());
        assert_eq!(f.snapshot.pools.len(), 1);
        let web = ips_of(f)["web"].clone();
        assert_eq!(web.len(), 1);
        // What the election needs of each allocated Service, in the same order.
        assert_eq!(f.facts.len(), f.allocations.len());
        let facts = f.facts[0].as_ref().unwrap();
        assert_eq!(&*facts.key, "x/web");
        assert_eq!(facts.labels.as_ref().unwrap()["app"], "web");
        assert!(Arc::ptr_eq(
            &f.allocations,
            &shared.lock().unwrap().allocations
        ));

        // New Services around it: the address in force sticks.
        let second = format!("{POOL}{}{}{}", svc("api"), svc("web"), svc("aaa"));
        assert!(apply_input(
            &args,
            read(&second),
            vec![],
            &mut in_force,
            &shared
        ));
        let got = ips_of(in_force.as_ref().unwrap());
        assert_eq!(got["web"], web);
        assert_eq!(got.len(), 3);
        let all: BTreeSet<IpAddr> = got.values().flatten().copied().collect();
        assert_eq!(all.len(), 3, "{got:?}");

        // An invalid read changes nothing in force.
        let before = in_force.as_ref().unwrap().allocations.clone();
        let bad = format!(
            "{}{}",
            POOL.replace("192.0.2.0/30", "192.0.2.0/33"),
            svc("web")
        );
        assert!(!apply_input(
            &args,
            read(&bad),
            vec![],
            &mut in_force,
            &shared
        ));
        assert!(Arc::ptr_eq(
            &before,
            &in_force.as_ref().unwrap().allocations
        ));
        assert!(shared.lock().unwrap().config_stale);
    }

    #[test]
    fn addresses_from_status_take_the_annotated_or_containing_pool() {
        let loaded = load_documents([("t.yaml", YAML.as_bytes())]);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let config = ferrolb_model::validate(&loaded.snapshot).unwrap();
        let outcome = from_status(&config, &loaded.snapshot, &Options { lb_class: None });
        let got: Vec<(String, Vec<String>, Option<String>)> = outcome
            .results
            .iter()
            .map(|r| {
                (
                    r.service.name.clone(),
                    r.ips.iter().map(ToString::to_string).collect(),
                    r.pool.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "annotated".into(),
                    vec!["198.51.100.3".into()],
                    Some("b".into())
                ),
                (
                    "contained".into(),
                    vec!["192.0.2.4".into()],
                    Some("a".into())
                ),
            ]
        );
    }
}
