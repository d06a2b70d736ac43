//! The standalone node agent (`ferrolb run`): everything one node needs, without
//! Kubernetes. It reads the manifest directory, allocates with the shared allocator (every
//! node reaches the same answer), takes part in membership, elects per address with the
//! shared election, and announces what this node wins.

pub mod local;
mod net;
mod state;

use crate::agent::local::LocalAddresses;
use crate::agent::state::{AgentState, Shared};
use ferrolb_allocator::{Options, ServiceKey, allocate};
use ferrolb_election::{Assigned, Interfaces, elect_l2};
use ferrolb_model::{Config, Snapshot};
use ferrolb_source::{DirWatch, load_dir};
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
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        if dirty && let Some(f) = &in_force {
            let mut owned = recompute(&args, f, &mut previous, &members.live(), &shared);
            if !members.may_announce() {
                owned.clear();
            }
            l2.set_owned(owned.clone()).await;
            if !args.no_local_routes {
                local.sync(&owned.keys().copied().collect()).await;
            }
        }
        {
            let mut st = shared.lock().expect("state lock");
            st.l2_stats = l2.stats();
            st.membership = members.stats();
        }
    }

    // Hand over: tell the others we leave, so the successors take over at once, keep
    // answering a moment while they announce, then stop.
    info!("shutting down: handing over");
    members.leave().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    l2.set_owned(BTreeMap::new()).await;
    l2.shutdown().await;
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

/// Allocates and elects; returns the addresses this node owns, with their interfaces.
fn recompute(
    args: &Args,
    f: &InForce,
    previous: &mut BTreeMap<ServiceKey, Vec<IpAddr>>,
    live: &Option<BTreeSet<String>>,
    shared: &Shared,
) -> BTreeMap<IpAddr, Interfaces> {
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
    let mut st = shared.lock().expect("state lock");
    st.allocations = outcome.results;
    st.usage = outcome.usage;
    st.plan = plan;
    st.members = live.clone();
    owned
}
