//! The standalone node agent (`ferrolb run`): everything one node needs, without
//! Kubernetes. It reads the manifest directory, allocates with the shared allocator (every
//! node reaches the same answer), takes part in membership, elects per address with the
//! shared election, and announces what this node wins.

pub mod bgp;
pub mod local;
mod net;
mod state;

use crate::agent::bgp::settings::{NodeAddresses, peer_settings, route_attributes};
use crate::agent::bgp::{BgpSpeaker, Wanted, local_towards};
use crate::agent::local::LocalAddresses;
use crate::agent::state::{AgentState, Shared};
use ferrolb_allocator::{Options, ServiceKey, allocate};
use ferrolb_bgp::Family;
use ferrolb_election::{Assigned, Interfaces, elect_l2, plan_bgp};
use ferrolb_model::{Config, Snapshot};
use ferrolb_source::{DirWatch, load_dir};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
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
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    ferrolb_model::validate::duration::parse_go_duration(s)
}

/// The configuration in force: the last valid one read.
struct InForce {
    snapshot: Snapshot,
    config: Config,
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let shared: Shared = Arc::new(std::sync::Mutex::new(AgentState::new(&args.node)));
    if let Some(addr) = args.metrics_addr {
        net::serve(addr, shared.clone()).await?;
    }
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    let mut watch = DirWatch::new(&args.manifests);
    let mut unreadable = false;
    let mut in_force: Option<InForce> = None;
    let mut previous: BTreeMap<ServiceKey, Vec<IpAddr>> = BTreeMap::new();
    let mut local = LocalAddresses::default();
    if !args.no_local_routes {
        LocalAddresses::strict_arp();
        LocalAddresses::flush_stale().await;
    }
    let mut members = net::Members::new();
    let mut l2 = net::Announcer::new();
    let mut speaker = BgpSpeaker::new();
    let mut last_live: Option<BTreeSet<String>> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(args.poll_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let mut dirty = false;
        tokio::select! {
            _ = tick.tick() => {
                match watch.changed() {
                    Ok(changed) => {
                        // Readable again: re-read even if unchanged, to clear the stale flag.
                        if changed || unreadable {
                            dirty |= reload(&args, &mut in_force, &shared);
                        }
                        unreadable = false;
                    }
                    Err(e) => {
                        // Said once, not every tick; the last good configuration stays.
                        if !unreadable {
                            warn!("reading {}: {e}: keeping the configuration in force", args.manifests.display());
                            unreadable = true;
                        }
                        shared.lock().expect("state lock").config_stale = true;
                    }
                }
                if let Some(f) = &in_force {
                    dirty |= members.ensure_started(&args, &f.snapshot).await;
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
            } = recompute(&args, f, &mut previous, &members.live(), &shared);
            if !members.may_announce() {
                owned.clear();
            }
            l2.set_owned(owned.clone()).await;
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
            if !args.no_local_routes {
                // Accept traffic for what this node announces: the layer 2 addresses it
                // owns, and the addresses it announces over BGP (routers send it their
                // share).
                let mut accept: BTreeSet<IpAddr> = owned.keys().copied().collect();
                accept.extend(bgp_addresses);
                local.sync(&accept).await;
            }
            speaker.apply(bgp).await;
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
    info!("shutting down: handing over");
    members.leave().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    l2.set_owned(BTreeMap::new()).await;
    l2.shutdown().await;
    let limit = args.bgp_graceful_shutdown.unwrap_or_default() + Duration::from_secs(2);
    speaker.shutdown(limit).await;
    if !args.no_local_routes {
        local.sync(&BTreeSet::new()).await;
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Reads the directory. A valid configuration replaces the one in force; an invalid one
/// is logged with `check`'s lines and the last good one stays. Returns whether the
/// configuration in force changed.
fn reload(args: &Args, in_force: &mut Option<InForce>, shared: &Shared) -> bool {
    let loaded = match load_dir(&args.manifests) {
        Ok(l) => l,
        Err(e) => {
            error!("reading manifests: {e}");
            shared.lock().expect("state lock").config_stale = true;
            return false;
        }
    };
    let mut problems = loaded.problems;
    let config = match ferrolb_model::validate(&loaded.snapshot) {
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
            info!(files = loaded.files, "configuration loaded");
            st.config_loaded = true;
            st.config_stale = false;
            st.problems.clear();
            *in_force = Some(InForce {
                snapshot: loaded.snapshot,
                config,
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
    /// The service addresses it announces over BGP (inside aggregated prefixes too).
    bgp_addresses: BTreeSet<IpAddr>,
}

/// Allocates and elects: what this node announces.
fn recompute(
    args: &Args,
    f: &InForce,
    previous: &mut BTreeMap<ServiceKey, Vec<IpAddr>>,
    live: &Option<BTreeSet<String>>,
    shared: &Shared,
) -> Computed {
    let options = Options {
        lb_class: args.lb_class.clone(),
    };
    let outcome = allocate(&f.config, &f.snapshot, &options, previous);
    *previous = outcome
        .results
        .iter()
        .filter(|r| !r.ips.is_empty())
        .map(|r| (r.service.clone(), r.ips.clone()))
        .collect();
    let services: BTreeMap<ServiceKey, &k8s_openapi::api::core::v1::Service> = f
        .snapshot
        .services
        .iter()
        .map(|s| (ServiceKey::of(s), s))
        .collect();
    let assigned: Vec<Assigned<'_>> = outcome
        .results
        .iter()
        .filter_map(|r| {
            let pool = r.pool.as_deref()?;
            let service = services.get(&r.service)?;
            Some(Assigned {
                service,
                ips: &r.ips,
                pool,
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
                    .map(|(prefix, r)| (*prefix, route_attributes(r)))
                    .collect();
                wanted.insert(name.clone(), Wanted { settings, routes });
            }
            Err(problem) => bgp_problems.push(problem),
        }
    }
    let bgp_services = bgp_plan.peers_of_services();
    let bgp_addresses: BTreeSet<IpAddr> = outcome
        .results
        .iter()
        .filter(|r| bgp_services.contains_key(r.service.to_string().as_str()))
        .flat_map(|r| r.ips.iter().copied())
        .collect();
    drop(bgp_services);
    let mut st = shared.lock().expect("state lock");
    if st.bgp_problems != bgp_problems {
        for p in &bgp_problems {
            warn!("{p}: no session with this peer");
        }
        st.bgp_problems = bgp_problems;
    }
    st.allocations = outcome.results;
    st.usage = outcome.usage;
    st.plan = plan;
    st.bgp_plan = bgp_plan;
    st.members = live.clone();
    Computed {
        owned,
        bgp: wanted,
        bgp_addresses,
    }
}
