//! The tokio driver: one UDP socket, one task, the [`Core`] inside.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferrolb_membership::{Config, Membership};
//! let mut config = Config::new("node-a", "198.51.100.1:7946".parse()?);
//! config.seeds = vec!["198.51.100.2:7946".parse()?, "198.51.100.3:7946".parse()?];
//! config.secrets = vec![b"bytes of the memberlist Secret".to_vec()];
//! let membership = Membership::start(config).await?;
//! let mut members = membership.members();
//! members.changed().await?;
//! println!("live: {:?}", *members.borrow());
//! membership.leave().await; // on SIGTERM: peers drop this node at once
//! # Ok(())
//! # }
//! ```
//!
//! The task reads every datagram already queued before it runs a timer, so a node that
//! was not scheduled for a while sees the acks that arrived meanwhile before it judges
//! a probe (no false suspicion from its own stall).

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{ConfigError, LiveSet, Timing};
use crate::core::{Core, CoreConfig, CoreStats, DEFAULT_MAX_PACKET, Event};
use crate::crypto::{self, Keyring, OpenError, SEAL_OVERHEAD};

/// memberlist's port, which MetalLB uses too: ferrolb can replace MetalLB's speakers
/// without firewall changes (but the two protocols do not interoperate: do not run both
/// on one node with the same port).
pub const DEFAULT_PORT: u16 = 7946;

/// How often [`Membership::leave`] repeats the leave message, and the pause between.
const LEAVE_REPEATS: u32 = 3;
const LEAVE_PAUSE: Duration = Duration::from_millis(10);

/// Everything the transport needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's name (the Kubernetes node name).
    pub name: String,
    /// Where to bind the UDP socket (default `0.0.0.0:7946`).
    pub bind: SocketAddr,
    /// The address other nodes reach this node at. Defaults to the bind address, or,
    /// when that is unspecified (`0.0.0.0`), to the local address the kernel would use
    /// toward the first seed.
    pub advertise: Option<SocketAddr>,
    /// The other nodes' gossip addresses (from the Node objects). This node's own
    /// address may be in the list; it is skipped.
    pub seeds: Vec<SocketAddr>,
    /// Shared secrets (bytes of a Kubernetes Secret); the first seals, all open. Empty:
    /// plaintext gossip, which anyone on the network can forge (see [`crate::crypto`]).
    pub secrets: Vec<Vec<u8>>,
    /// Protocol timings (a [`crate::Profile`]'s, possibly overridden).
    pub timing: Timing,
    /// Which members count as live.
    pub live_set: LiveSet,
    /// The starting incarnation; default: the wall clock in milliseconds, so a
    /// restarted node outranks its previous life and is accepted at once.
    pub incarnation: Option<u64>,
}

impl Config {
    /// A configuration with the default profile, no seeds and no secret.
    pub fn new(name: impl Into<String>, bind: SocketAddr) -> Config {
        Config {
            name: name.into(),
            bind,
            advertise: None,
            seeds: Vec::new(),
            secrets: Vec::new(),
            timing: Timing::default(),
            live_set: LiveSet::default(),
            incarnation: None,
        }
    }

    /// The default bind address, `0.0.0.0:7946`.
    pub fn default_bind() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT))
    }
}

/// Why the transport could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// A bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The socket could not be bound.
    #[error("binding the gossip socket to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The socket could not be used.
    #[error("gossip socket: {0}")]
    Socket(io::Error),
    /// Not called from inside a tokio runtime.
    #[error("the membership task needs a tokio runtime")]
    NoRuntime,
}

/// Counters for metrics, as of the task's last turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Members alive (this node included).
    pub members_alive: u64,
    /// Members suspect.
    pub members_suspect: u64,
    /// Dead members still remembered.
    pub members_dead: u64,
    /// Departed members still remembered.
    pub members_left: u64,
    /// Datagrams received.
    pub packets_received: u64,
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Dropped: sealed but no accepted key opens it (wrong key or tampered).
    pub dropped_unauthenticated: u64,
    /// Dropped: plaintext while encryption is on.
    pub dropped_plaintext: u64,
    /// Dropped: sealed while encryption is off.
    pub dropped_no_key: u64,
    /// Dropped: empty or of an unknown format.
    pub dropped_unknown_format: u64,
    /// Dropped: opened but not a valid packet.
    pub dropped_malformed: u64,
    /// Datagrams that could not be sent.
    pub send_errors: u64,
    /// What the protocol did.
    pub core: CoreStats,
}

impl Stats {
    /// Every dropped datagram, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_unauthenticated
            + self.dropped_plaintext
            + self.dropped_no_key
            + self.dropped_unknown_format
            + self.dropped_malformed
    }
}

enum Command {
    SetSeeds(Vec<SocketAddr>),
    Leave(oneshot::Sender<()>),
}

/// A running membership: the handle the agent keeps. Dropping it stops the task
/// without a leave (peers then detect the node as failed).
pub struct Membership {
    name: String,
    addr: SocketAddr,
    local: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    members: watch::Receiver<BTreeSet<String>>,
    events: broadcast::Sender<Event>,
    stats: Arc<Mutex<Stats>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Binds `config.bind` and starts the membership task.
    pub async fn start(config: Config) -> Result<Membership, StartError> {
        let socket = std::net::UdpSocket::bind(config.bind).map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
        Membership::start_with_socket(config, socket)
    }

    /// Starts the membership task on a socket bound by the caller (`config.bind` is then
    /// ignored). Useful to bind inside another network namespace. Must be called from
    /// within a tokio runtime.
    pub fn start_with_socket(
        config: Config,
        socket: std::net::UdpSocket,
    ) -> Result<Membership, StartError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let keyring = Keyring::from_secrets(&config.secrets)?;
        if keyring.is_none() {
            warn!("gossip is not encrypted: anyone on the network can forge membership");
        }
        let local = socket.local_addr().map_err(StartError::Socket)?;
        let addr = advertise_addr(&config, local)?;
        socket.set_nonblocking(true).map_err(StartError::Socket)?;
        let _guard = runtime.enter();
        let socket = UdpSocket::from_std(socket).map_err(StartError::Socket)?;
        let incarnation = config.incarnation.unwrap_or_else(wall_clock_ms);
        let mut seed = [0u8; 8];
        // A fixed seed is fine if the OS has no randomness: it only orders probes.
        let _ = getrandom::fill(&mut seed);
        let now = Instant::now();
        let mut core = Core::new(
            CoreConfig {
                name: config.name.clone(),
                addr,
                incarnation,
                timing: config.timing.clone(),
                live_set: config.live_set,
                max_packet: DEFAULT_MAX_PACKET - SEAL_OVERHEAD,
                seed: u64::from_le_bytes(seed),
            },
            now,
        )?;
        core.set_seeds(&config.seeds, now);
        info!(
            node = %config.name, %addr, %local, incarnation,
            encrypted = keyring.is_some(), "membership starting"
        );
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (members_tx, members) = watch::channel(core.live_members());
        let (events, _) = broadcast::channel(1024);
        let stats = Arc::new(Mutex::new(Stats::default()));
        let driver = Driver {
            core,
            socket,
            keyring,
            members: members_tx,
            events: events.clone(),
            stats: stats.clone(),
            counters: Stats::default(),
        };
        let task = runtime.spawn(driver.run(command_rx));
        Ok(Membership {
            name: config.name,
            addr,
            local,
            commands,
            members,
            events,
            stats,
            task,
        })
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address this node advertises.
    pub fn advertised_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The names of the live nodes, this node included; changes as members come and go.
    pub fn members(&self) -> watch::Receiver<BTreeSet<String>> {
        self.members.clone()
    }

    /// Membership events from now on (up, down with a reason, suspected, refuted).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Counters, as of the task's last turn.
    pub fn stats(&self) -> Stats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the seeds (when Node objects change); new ones are joined at once.
    pub fn set_seeds(&self, seeds: Vec<SocketAddr>) {
        let _ = self.commands.send(Command::SetSeeds(seeds));
    }

    /// Leaves the cluster: every live member is told directly (three times, 10 ms
    /// apart, against loss) and drops this node at once; then the task stops. Call it
    /// on SIGTERM for an instant handover.
    pub async fn leave(mut self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).is_ok() {
            let _ = wait.await;
        }
        let _ = (&mut self.task).await;
    }

    /// Stops the task without telling anyone (peers detect a failure).
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Driver {
    core: Core,
    socket: UdpSocket,
    keyring: Option<Keyring>,
    members: watch::Sender<BTreeSet<String>>,
    events: broadcast::Sender<Event>,
    stats: Arc<Mutex<Stats>>,
    counters: Stats,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 65_536];
        self.flush().await;
        self.publish(true);
        loop {
            let deadline = self.core.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            let mut changed = false;
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    None => break,
                    Some(Command::SetSeeds(seeds)) => self.core.set_seeds(&seeds, Instant::now()),
                    Some(Command::Leave(done)) => {
                        self.leave().await;
                        let _ = done.send(());
                        break;
                    }
                },
                received = self.socket.recv_from(&mut buf) => {
                    match received {
                        Ok((n, src)) => self.receive(&buf[..n], src),
                        Err(e) => debug!("gossip receive: {e}"),
                    }
                    self.drain(&mut buf);
                }
                () = sleep => {
                    // Read what arrived while this task was not running before judging
                    // any probe.
                    self.drain(&mut buf);
                    self.core.handle_timeout(Instant::now());
                    changed = true;
                }
            }
            self.flush().await;
            self.publish(changed);
        }
        self.publish(true);
        debug!(node = %self.core.name(), "membership task stopped");
    }

    fn receive(&mut self, datagram: &[u8], src: SocketAddr) {
        self.counters.packets_received += 1;
        self.counters.bytes_received += datagram.len() as u64;
        let packet = match crypto::unwrap(self.keyring.as_ref(), datagram) {
            Ok(p) => p,
            Err(e) => {
                match e {
                    OpenError::Unauthenticated => self.counters.dropped_unauthenticated += 1,
                    OpenError::Plaintext => self.counters.dropped_plaintext += 1,
                    OpenError::NoKey => self.counters.dropped_no_key += 1,
                    OpenError::Empty | OpenError::Format(_) => {
                        self.counters.dropped_unknown_format += 1
                    }
                }
                debug!(%src, "dropped datagram: {e}");
                return;
            }
        };
        if let Err(e) = self.core.handle_packet(Instant::now(), src, &packet) {
            self.counters.dropped_malformed += 1;
            debug!(%src, "dropped packet: {e}");
        }
    }

    /// Reads every datagram already queued, without waiting.
    fn drain(&mut self, buf: &mut [u8]) {
        for _ in 0..4096 {
            match self.socket.try_recv_from(buf) {
                Ok((n, src)) => {
                    let datagram = buf[..n].to_vec();
                    self.receive(&datagram, src);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!("gossip receive: {e}");
                    return;
                }
            }
        }
    }

    async fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            let datagram = match crypto::wrap(self.keyring.as_ref(), &t.packet) {
                Ok(d) => d,
                Err(e) => {
                    self.counters.send_errors += 1;
                    warn!("cannot seal a gossip packet: {e}");
                    continue;
                }
            };
            match self.socket.send_to(&datagram, t.to).await {
                Ok(n) => {
                    self.counters.packets_sent += 1;
                    self.counters.bytes_sent += n as u64;
                }
                Err(e) => {
                    self.counters.send_errors += 1;
                    debug!(to = %t.to, "gossip send: {e}");
                }
            }
        }
    }

    async fn leave(&mut self) {
        for i in 0..LEAVE_REPEATS {
            if i > 0 {
                tokio::time::sleep(LEAVE_PAUSE).await;
            }
            self.core.leave(Instant::now());
            self.flush().await;
        }
    }

    fn publish(&mut self, mut changed: bool) {
        while let Some(e) = self.core.poll_event() {
            changed = true;
            let _ = self.events.send(e);
        }
        if changed {
            let live = self.core.live_members();
            self.members.send_if_modified(|m| {
                if *m != live {
                    *m = live;
                    true
                } else {
                    false
                }
            });
        }
        let counts = self.core.counts();
        let mut s = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        *s = Stats {
            members_alive: counts.alive as u64,
            members_suspect: counts.suspect as u64,
            members_dead: counts.dead as u64,
            members_left: counts.left as u64,
            core: self.core.stats(),
            ..self.counters.clone()
        };
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The address to advertise: configured, else the bound one, else the local address
/// the kernel routes toward the first seed it can (no packet is sent).
fn advertise_addr(config: &Config, bound: SocketAddr) -> Result<SocketAddr, ConfigError> {
    if let Some(a) = config.advertise {
        return Ok(a);
    }
    if !bound.ip().is_unspecified() {
        return Ok(bound);
    }
    for seed in &config.seeds {
        let any: IpAddr = match seed {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let Ok(probe) = std::net::UdpSocket::bind((any, 0)) else {
            continue;
        };
        if probe.connect(seed).is_ok()
            && let Ok(local) = probe.local_addr()
            && !local.ip().is_unspecified()
        {
            return Ok(SocketAddr::new(local.ip(), bound.port()));
        }
    }
    Err(ConfigError::Advertise)
}
