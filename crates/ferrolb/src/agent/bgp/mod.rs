//! The agent's BGP mode: one session per `BGPPeer` that selects this node, announcing
//! what the BGP plan ([`ferrolb_election::plan_bgp`]) gives each peer, with BFD on the
//! sessions whose peer has a `bfdProfile`.
//!
//! [`BgpSpeaker::apply`] brings the running sessions in line with the wanted ones: a new
//! peer starts a session, a removed one is shut down gracefully (routes withdrawn, then
//! Cease), a peer whose settings changed is restarted, and a peer whose routes changed
//! gets the difference only. BFD down takes the BGP session down at once (the routes
//! are gone at the router when its own BFD says so; our side reconnects and re-announces
//! once the peer is back).

pub mod settings;

use ferrolb_bfd::io::{Bfd, IoConfig, PeerEvent};
use ferrolb_bgp::io::{ConnectionOptions, IoError, Listener, PeerHandle};
use ferrolb_bgp::{Event, PeerStatus, RouteAttributes, Session};
use futures_util::future::select_all;
use ipnet::IpNet;
use settings::PeerSettings;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};

/// What the node wants for one peer: the session's settings and its routes.
#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    /// How to run the session.
    pub settings: PeerSettings,
    /// The prefixes to announce, with their attributes (routes with equal attributes
    /// share them).
    pub routes: Vec<(IpNet, Arc<RouteAttributes>)>,
}

struct Running {
    settings: PeerSettings,
    handle: PeerHandle,
    routes: Vec<(IpNet, Arc<RouteAttributes>)>,
    bfd_up: Option<bool>,
}

/// One BFD driver task (single hop, or multihop) and its events.
struct BfdDriver {
    bfd: Bfd,
    events: UnboundedReceiver<PeerEvent>,
}

/// A peer's state, for `/status` and metrics.
#[derive(Clone, Debug)]
pub struct PeerReport {
    /// The BGPPeer's name.
    pub name: String,
    /// `address:port`, MetalLB's `peer` label.
    pub peer: String,
    /// The session's state and counters.
    pub status: PeerStatus,
    /// BFD state: `None` without BFD.
    pub bfd_up: Option<bool>,
    /// BFD counters, when the session has BFD.
    pub bfd_stats: Option<ferrolb_bfd::SessionStats>,
}

/// The BGP sessions of this node.
#[derive(Default)]
pub struct BgpSpeaker {
    running: BTreeMap<String, Running>,
    single_hop: Option<BfdDriver>,
    multihop: Option<BfdDriver>,
    bfd_stats: BTreeMap<IpAddr, ferrolb_bfd::SessionStats>,
    /// Accepts the connections peers open, when asked to listen.
    listener: Option<Listener>,
}

/// The local address the kernel would use to reach `remote` (no packet is sent: a UDP
/// socket is only connected).
pub fn local_towards(remote: IpAddr) -> Option<IpAddr> {
    let bind: SocketAddr = match remote {
        IpAddr::V4(_) => "0.0.0.0:0".parse().ok()?,
        IpAddr::V6(_) => "[::]:0".parse().ok()?,
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(SocketAddr::new(remote, 179)).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

impl BgpSpeaker {
    /// No sessions yet; sessions only dial.
    pub fn new() -> Self {
        Self::default()
    }

    /// No sessions yet; connections peers open to `addr` go to their sessions too (which
    /// dial as well). Must be called within a tokio runtime.
    pub fn listening(addr: SocketAddr) -> Result<Self, IoError> {
        let listener = Listener::bind(addr)?;
        info!(listen = %listener.local_addr(), "accepting BGP connections");
        Ok(BgpSpeaker {
            listener: Some(listener),
            ..Self::default()
        })
    }

    /// Brings the sessions in line with `wanted` (by BGPPeer name).
    pub async fn apply(&mut self, mut wanted: BTreeMap<String, Wanted>) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let keep = wanted
                .get(&name)
                .is_some_and(|w| self.running[&name].settings == w.settings);
            if !keep && let Some(r) = self.running.remove(&name) {
                info!(peer = %name, "BGP session removed or changed: withdrawing and closing");
                self.stop_bfd(&r.settings);
                r.handle.shutdown();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), r.handle.join()).await;
                });
            }
        }
        for (name, w) in std::mem::take(&mut wanted) {
            if let Some(r) = self.running.get_mut(&name) {
                if r.routes != w.routes {
                    r.handle.set_routes(w.routes.clone());
                    r.routes = w.routes;
                }
                continue;
            }
            let session = match Session::new(w.settings.session.clone()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(peer = %name, "BGPPeer/{name}: {e}: no session");
                    continue;
                }
            };
            let options = ConnectionOptions {
                md5_key: w.settings.password.as_ref().map(|p| p.as_bytes().to_vec()),
                source: w.settings.source,
                ttl: Some(w.settings.ttl),
                min_ttl: None,
            };
            info!(peer = %name, remote = %w.settings.remote, "starting BGP session");
            let spawned = match &self.listener {
                Some(listener) => listener.spawn(session, w.settings.remote, options),
                None => ferrolb_bgp::io::spawn_with(session, w.settings.remote, options),
            };
            let handle = match spawned {
                Ok(h) => h,
                Err(e) => {
                    warn!(peer = %name, "BGPPeer/{name}: {e}: no session");
                    continue;
                }
            };
            handle.set_routes(w.routes.clone());
            let bfd_up = if w.settings.bfd.is_some() {
                self.start_bfd(&name, &w.settings).await;
                Some(false)
            } else {
                None
            };
            self.running.insert(
                name,
                Running {
                    settings: w.settings,
                    handle,
                    routes: w.routes,
                    bfd_up,
                },
            );
        }
    }

    async fn start_bfd(&mut self, name: &str, settings: &PeerSettings) {
        let Some(bfd) = &settings.bfd else { return };
        if bfd.echo_requested {
            warn!(peer = %name, "BFDProfile/{}: echoMode is not implemented: asynchronous mode only", bfd.profile);
        }
        let slot = if bfd.multihop {
            &mut self.multihop
        } else {
            &mut self.single_hop
        };
        if slot.is_none() {
            let port = if bfd.multihop {
                ferrolb_bfd::MULTIHOP_PORT
            } else {
                ferrolb_bfd::SINGLE_HOP_PORT
            };
            let io = IoConfig {
                listen_v4: Some(SocketAddr::from(([0, 0, 0, 0], port))),
                listen_v6: Some(SocketAddr::from(([0u16; 8], port))),
                peer_port: port,
            };
            match Bfd::start(io).await {
                Ok((bfd, events)) => *slot = Some(BfdDriver { bfd, events }),
                Err(e) => {
                    warn!(peer = %name, "starting BFD on port {port}: {e}: the session runs without BFD");
                    return;
                }
            }
        }
        if let Some(driver) = slot
            && let Err(e) = driver
                .bfd
                .add_session(settings.remote.ip(), bfd.config.clone())
                .await
        {
            warn!(peer = %name, "BFD session with {}: {e}", settings.remote.ip());
        }
    }

    fn stop_bfd(&mut self, settings: &PeerSettings) {
        let Some(bfd) = &settings.bfd else { return };
        let slot = if bfd.multihop {
            &self.multihop
        } else {
            &self.single_hop
        };
        if let Some(driver) = slot {
            driver.bfd.remove_session(settings.remote.ip());
        }
        self.bfd_stats.remove(&settings.remote.ip());
    }

    /// Waits for the next session or BFD event and handles it (logs; BFD down takes the
    /// BGP session down). Never completes while there is nothing to wait for.
    pub async fn next_event(&mut self) {
        let BgpSpeaker {
            running,
            single_hop,
            multihop,
            ..
        } = self;
        let mut futures: Vec<std::pin::Pin<Box<dyn Future<Output = Happened> + Send + '_>>> =
            Vec::new();
        for (name, r) in running.iter_mut() {
            futures.push(Box::pin(async move {
                match r.handle.next_event().await {
                    Some(e) => Happened::Bgp(name.clone(), e),
                    None => Happened::Ended(name.clone()),
                }
            }));
        }
        for driver in [single_hop.as_mut(), multihop.as_mut()]
            .into_iter()
            .flatten()
        {
            futures.push(Box::pin(async move {
                match driver.events.recv().await {
                    Some(e) => Happened::Bfd(e),
                    None => std::future::pending().await,
                }
            }));
        }
        if futures.is_empty() {
            return std::future::pending().await;
        }
        let (happened, _, _) = select_all(futures).await;
        self.handle(happened);
    }

    fn handle(&mut self, happened: Happened) {
        match happened {
            Happened::Bgp(name, Event::Established(n)) => info!(
                peer = %name,
                peer_as = n.peer_as,
                peer_id = %n.peer_id,
                hold_time = n.hold_time,
                "BGP session established"
            ),
            Happened::Bgp(name, Event::Closed(reason)) => {
                warn!(peer = %name, ?reason, "BGP session closed");
            }
            Happened::Bgp(_, Event::StateChanged { .. }) => {}
            Happened::Ended(name) => {
                // The task ended by itself (it only does when told to): forget it so the
                // next apply starts it again.
                self.running.remove(&name);
            }
            Happened::Bfd(PeerEvent { peer, event }) => {
                for (name, r) in &mut self.running {
                    if r.settings.remote.ip() != peer || r.settings.bfd.is_none() {
                        continue;
                    }
                    match event {
                        ferrolb_bfd::Event::Up => {
                            info!(peer = %name, "BFD up");
                            r.bfd_up = Some(true);
                        }
                        ferrolb_bfd::Event::Down { diag } => {
                            warn!(peer = %name, ?diag, "BFD down: taking the BGP session down");
                            r.bfd_up = Some(false);
                            r.handle.peer_lost();
                        }
                    }
                }
            }
        }
    }

    /// Refreshes the BFD counters (for metrics).
    pub async fn refresh_bfd_stats(&mut self) {
        for driver in [self.single_hop.as_ref(), self.multihop.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Ok(sessions) = driver.bfd.sessions().await {
                for s in sessions {
                    self.bfd_stats.insert(s.peer, s.stats);
                }
            }
        }
    }

    /// Every session's state.
    pub fn reports(&self) -> Vec<PeerReport> {
        self.running
            .iter()
            .map(|(name, r)| PeerReport {
                name: name.clone(),
                peer: r.settings.remote.to_string(),
                status: r.handle.status(),
                bfd_up: r.bfd_up,
                bfd_stats: r
                    .settings
                    .bfd
                    .as_ref()
                    .and_then(|_| self.bfd_stats.get(&r.settings.remote.ip()).copied()),
            })
            .collect()
    }

    /// Withdraws everything and closes every session (graceful shutdown, when
    /// configured, first), waiting at most `limit`.
    pub async fn shutdown(mut self, limit: Duration) {
        let running = std::mem::take(&mut self.running);
        for r in running.values() {
            r.handle.shutdown();
        }
        let all = async {
            for (_, r) in running {
                r.handle.join().await;
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            warn!("BGP sessions did not all close within {limit:?}");
        }
        for driver in [self.single_hop.take(), self.multihop.take()]
            .into_iter()
            .flatten()
        {
            driver.bfd.shutdown().await;
        }
    }
}

enum Happened {
    Bgp(String, Event),
    Ended(String),
    Bfd(PeerEvent),
}
