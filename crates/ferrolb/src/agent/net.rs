//! The agent's connections to the outside: its HTTP endpoints, membership and the layer 2
//! announcer.

use crate::agent::NodeOptions;
use crate::agent::state::Shared;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use ferrolb_election::Interfaces;
use ferrolb_l2::{AnnouncerConfig, L2Announcer, L2Handle, L2Stats};
use ferrolb_membership::{Config, Membership, Timing};
use ferrolb_model::Snapshot;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Serves `/metrics`, `/healthz`, `/readyz` and `/status` on `addr`, in the background.
pub async fn serve(addr: SocketAddr, shared: Shared) -> std::io::Result<()> {
    let metrics = {
        let s = shared.clone();
        move || async move {
            let body = s.lock().expect("state lock").metrics();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
        }
    };
    let ready = {
        let s = shared.clone();
        move || async move {
            if s.lock().expect("state lock").ready() {
                (StatusCode::OK, "ready\n")
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no valid configuration loaded yet\n",
                )
            }
        }
    };
    let status = {
        let s = shared.clone();
        move || async move {
            let body = s.lock().expect("state lock").status_json();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/status", get(status));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(%addr, "serving /metrics, /healthz, /readyz, /status");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("HTTP server: {e}");
        }
    });
    Ok(())
}

/// Membership: which nodes are alive.
pub struct Members {
    running: Option<Membership>,
    live: Option<watch::Receiver<BTreeSet<String>>>,
    seeds: Vec<SocketAddr>,
    started: Option<Instant>,
    settled: bool,
    warned: bool,
}

/// How long a starting node waits to hear from the others before it trusts a live set
/// in which it is alone (a restarted node must not grab every address for a moment).
const SETTLE: Duration = Duration::from_secs(2);

impl Members {
    /// Not started yet: it needs the Node objects for its address and the seeds.
    pub fn new() -> Self {
        Members {
            running: None,
            live: None,
            seeds: Vec::new(),
            started: None,
            settled: false,
            warned: false,
        }
    }

    /// Starts membership once this node's address is known, and keeps the seeds in step
    /// with the Node objects. Returns whether what [`Members::live`] returns changed.
    pub async fn ensure_started(&mut self, args: &NodeOptions, snapshot: &Snapshot) -> bool {
        let addresses = node_addresses(snapshot, args.gossip_port);
        let Some(own) = addresses.get(&args.node).copied() else {
            if !self.warned {
                warn!(
                    node = %args.node,
                    "this node is not among the Node objects (or has no InternalIP): no membership, so no failover; every node counts as alive"
                );
                self.warned = true;
            }
            return false;
        };
        let seeds: Vec<SocketAddr> = addresses
            .iter()
            .filter(|(n, _)| **n != args.node)
            .map(|(_, a)| *a)
            .collect();
        if let Some(m) = &self.running {
            if seeds != self.seeds {
                m.set_seeds(seeds.clone());
                self.seeds = seeds;
            }
            return self.check_settled();
        }
        let timing = match Timing::profile(&args.membership_profile) {
            Ok(t) => t,
            Err(e) => {
                error!("membership profile: {e}");
                return false;
            }
        };
        let mut config = Config::new(args.node.clone(), own);
        config.seeds = seeds.clone();
        config.timing = timing;
        config.secrets = gossip_secret(snapshot, &args.gossip_secret)
            .into_iter()
            .collect();
        match Membership::start(config).await {
            Ok(m) => {
                info!(%own, seeds = seeds.len(), "membership started");
                self.live = Some(m.members());
                self.running = Some(m);
                self.seeds = seeds;
                self.started = Some(Instant::now());
                false
            }
            Err(e) => {
                error!("membership: {e}");
                false
            }
        }
    }

    /// Whether the settling period just ended.
    fn check_settled(&mut self) -> bool {
        if self.settled {
            return false;
        }
        let others = self.live.as_ref().is_some_and(|w| w.borrow().len() > 1);
        let waited = self.started.is_some_and(|t| t.elapsed() >= SETTLE);
        self.settled = others || waited;
        self.settled
    }

    /// Resolves when the live set changes.
    pub async fn changed(&mut self) {
        match &mut self.live {
            Some(w) => {
                if w.changed().await.is_err() {
                    std::future::pending::<()>().await
                }
                self.check_settled();
            }
            None => std::future::pending::<()>().await,
        }
    }

    /// The live nodes: `None` without membership (every node counts as alive).
    pub fn live(&self) -> Option<BTreeSet<String>> {
        self.live.as_ref().map(|w| w.borrow().clone())
    }

    /// Whether this node may announce: membership settled, or not running at all.
    pub fn may_announce(&self) -> bool {
        self.running.is_none() || self.settled
    }

    /// Counters.
    pub fn stats(&self) -> Option<ferrolb_membership::Stats> {
        self.running.as_ref().map(Membership::stats)
    }

    /// Tells the others this node leaves, so they take over at once.
    pub async fn leave(&mut self) {
        if let Some(m) = self.running.take() {
            m.leave().await;
        }
    }
}

/// Each Node's gossip address: its first InternalIP (IPv4 preferred) and the port.
fn node_addresses(snapshot: &Snapshot, port: u16) -> BTreeMap<String, SocketAddr> {
    let mut out = BTreeMap::new();
    for node in &snapshot.nodes {
        let Some(name) = &node.metadata.name else {
            continue;
        };
        let ips: Vec<IpAddr> = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.parse().ok())
            .collect();
        let ip = ips.iter().find(|ip| ip.is_ipv4()).or(ips.first());
        if let Some(ip) = ip {
            out.insert(name.clone(), SocketAddr::new(*ip, port));
        }
    }
    out
}

/// The gossip secret, as MetalLB keeps it: Secret `name` (`memberlist` by default), key
/// `secretkey`.
fn gossip_secret(snapshot: &Snapshot, name: &str) -> Option<Vec<u8>> {
    snapshot
        .secrets
        .iter()
        .filter(|s| s.metadata.name.as_deref() == Some(name))
        .find_map(|s| s.data.as_ref()?.get("secretkey").map(|b| b.0.clone()))
}

/// The layer 2 announcer.
pub struct Announcer {
    handle: L2Handle,
    owned: BTreeMap<IpAddr, Interfaces>,
}

impl Announcer {
    /// Starts the announcer (on the current tokio runtime).
    pub fn new() -> Self {
        Announcer {
            handle: L2Announcer::spawn(AnnouncerConfig::default()),
            owned: BTreeMap::new(),
        }
    }

    /// Sets the addresses this node owns; a no-op when unchanged.
    pub async fn set_owned(&mut self, owned: BTreeMap<IpAddr, Interfaces>) {
        if owned == self.owned {
            return;
        }
        let l2: BTreeMap<IpAddr, ferrolb_l2::Interfaces> = owned
            .iter()
            .map(|(ip, i)| {
                let i = match i {
                    Interfaces::All => ferrolb_l2::Interfaces::All,
                    Interfaces::Named(names) => ferrolb_l2::Interfaces::Named(names.clone()),
                };
                (*ip, i)
            })
            .collect();
        match self.handle.set_owned(l2).await {
            Ok(status) => {
                for (ip, s) in status {
                    if !s.missing.is_empty() || !s.errors.is_empty() || !s.rejected.is_empty() {
                        warn!(%ip, missing = ?s.missing, rejected = ?s.rejected, errors = ?s.errors, "announceFailed on some interfaces");
                    }
                    info!(%ip, interfaces = ?s.interfaces, "announcing");
                }
            }
            Err(e) => error!("{e}"),
        }
        self.owned = owned;
    }

    /// Current counters.
    pub fn stats(&self) -> L2Stats {
        self.handle.stats()
    }

    /// Announces every owned address again (see [`L2Handle::reannounce`]).
    pub fn reannounce(&self) {
        self.handle.reannounce();
    }

    /// Stops answering and releases the sockets.
    pub async fn shutdown(&mut self) {
        self.handle.shutdown().await;
    }
}
