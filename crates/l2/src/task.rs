//! The announcer task: the sans-IO [`Responder`] and [`GratuitousScheduler`] driven by
//! tokio over `AF_PACKET` sockets.
//!
//! The agent tells the task, declaratively, which addresses this node owns now
//! ([`L2Handle::set_owned`]); the task diffs that against what it announces: newly owned
//! addresses are answered at once and announced with gratuitous bursts, released ones
//! stop being answered. One socket is open per (interface, family) that has owned
//! addresses, each read by its own tokio task; nothing is open while nothing is owned.

use crate::gratuitous::GratuitousScheduler;
use crate::interfaces::{self, Family, Interfaces, Link, Rejection};
use crate::packet::MacAddr;
use crate::responder::{InterfaceInfo, IpStats, Outcome, Responder};
use crate::socket::{PacketKind, PacketSocket};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, trace, warn};

/// Largest frame read: a whole IPv6 jumbo-less packet plus Ethernet header.
const RECV_BUFFER: usize = 65_600;
/// How long a send may wait for the socket to become writable.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// Shortest interface rescan interval honoured.
const MIN_RESCAN_INTERVAL: Duration = Duration::from_millis(50);
/// Pause after a receive error, so a persistent error does not spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// How the announcer runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// How often interfaces are listed again (MetalLB: 10 s; at least 50 ms). Interfaces
    /// that appear,
    /// disappear or change MAC are picked up then, and on every
    /// [`L2Handle::set_owned`].
    pub rescan_interval: Duration,
    /// Offsets of the gratuitous bursts after taking over an address
    /// ([`crate::gratuitous::DEFAULT_SCHEDULE`]).
    pub gratuitous_schedule: Vec<Duration>,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        AnnouncerConfig {
            rescan_interval: Duration::from_secs(10),
            gratuitous_schedule: crate::gratuitous::DEFAULT_SCHEDULE.to_vec(),
        }
    }
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L2Stats {
    /// Per address: `metallb_layer2_requests_received`, `_responses_sent`,
    /// `_gratuitous_sent`. Addresses stay listed after release.
    pub ips: BTreeMap<IpAddr, IpStats>,
    /// Frames that failed to parse or validate.
    pub malformed: u64,
    /// Replies and gratuitous frames the kernel refused to send.
    pub send_errors: u64,
    /// Errors reading the sockets.
    pub receive_errors: u64,
}

/// Where one owned address is announced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpStatus {
    /// Interfaces announcing it (for `ServiceL2Status.status.interfaces`).
    pub interfaces: Vec<String>,
    /// Named interfaces that do not exist on this node (MetalLB emits `announceFailed`).
    pub missing: Vec<String>,
    /// Named interfaces that exist but cannot be used, and why.
    pub rejected: Vec<(String, Rejection)>,
    /// Interfaces where the socket could not be opened, with the error.
    pub errors: Vec<String>,
}

/// Per owned address, where it is announced.
pub type AnnounceStatus = BTreeMap<IpAddr, IpStatus>;

/// The announcer task is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum L2Error {
    /// It was shut down (or every handle was dropped).
    #[error("the layer 2 announcer has stopped")]
    Stopped,
}

#[derive(Debug)]
enum Command {
    SetOwned(
        BTreeMap<IpAddr, Interfaces>,
        oneshot::Sender<AnnounceStatus>,
    ),
    Reannounce,
    Shutdown(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Shared {
    responder: Responder,
    gratuitous: GratuitousScheduler,
    send_errors: u64,
    receive_errors: u64,
    status: AnnounceStatus,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the announcer.
pub struct L2Announcer;

impl L2Announcer {
    /// Spawns the announcer on the current tokio runtime (which needs I/O and time
    /// enabled) and returns its handle. It owns nothing until
    /// [`L2Handle::set_owned`]. Sockets are opened in the network namespace of the
    /// runtime thread that runs the task.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn(config: AnnouncerConfig) -> L2Handle {
        let shared = Arc::new(Mutex::new(Shared {
            responder: Responder::new(),
            gratuitous: GratuitousScheduler::with_schedule(config.gratuitous_schedule.clone()),
            send_errors: 0,
            receive_errors: 0,
            status: AnnounceStatus::new(),
        }));
        let (tx, rx) = mpsc::unbounded_channel();
        let runner = Runner {
            config,
            shared: shared.clone(),
            desired: BTreeMap::new(),
            links: Vec::new(),
            applied: BTreeMap::new(),
            workers: BTreeMap::new(),
        };
        tokio::spawn(runner.run(rx));
        L2Handle {
            commands: tx,
            shared,
        }
    }
}

/// A handle to a running announcer; clones control the same task. The task stops on
/// [`L2Handle::shutdown`] or when every handle is dropped.
#[derive(Clone, Debug)]
pub struct L2Handle {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Mutex<Shared>>,
}

impl L2Handle {
    /// Sets the full set of addresses this node owns now, each with the interfaces to
    /// announce it on. Addresses not in `owned` are released. Returns once the change
    /// is applied (sockets open, the first gratuitous burst sent), with where each
    /// address is announced.
    pub async fn set_owned(
        &self,
        owned: BTreeMap<IpAddr, Interfaces>,
    ) -> Result<AnnounceStatus, L2Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::SetOwned(owned, tx))
            .map_err(|_| L2Error::Stopped)?;
        rx.await.map_err(|_| L2Error::Stopped)
    }

    /// Sends a new gratuitous burst for every owned address, as on a takeover. For when
    /// another node may have announced one of them meanwhile (a partition that healed:
    /// the clients' caches may point at the other node), while this one owned it all
    /// along.
    pub fn reannounce(&self) {
        let _ = self.commands.send(Command::Reannounce);
    }

    /// Where each owned address is announced, as of the last change or rescan.
    pub fn status(&self) -> AnnounceStatus {
        lock(&self.shared).status.clone()
    }

    /// The counters.
    pub fn stats(&self) -> L2Stats {
        let s = lock(&self.shared);
        let mut ips = s.responder.counters().clone();
        for (ip, n) in s.gratuitous.counters() {
            ips.entry(*ip).or_default().gratuitous_sent = *n;
        }
        L2Stats {
            ips,
            malformed: s.responder.malformed(),
            send_errors: s.send_errors,
            receive_errors: s.receive_errors,
        }
    }

    /// Whether the task still runs.
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    /// Stops answering, closes every socket and ends the task; returns when done.
    /// Nothing is sent on the way out: the next owner announces itself.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Worker {
    socket: Arc<AsyncFd<PacketSocket>>,
    task: JoinHandle<()>,
    /// Multicast groups joined on this socket.
    joined: BTreeSet<MacAddr>,
}

struct Runner {
    config: AnnouncerConfig,
    shared: Arc<Mutex<Shared>>,
    desired: BTreeMap<IpAddr, Interfaces>,
    links: Vec<Link>,
    /// What the responder was last given: per interface, its info and owned addresses.
    applied: BTreeMap<u32, (InterfaceInfo, BTreeSet<IpAddr>)>,
    workers: BTreeMap<(u32, Family), Worker>,
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Runner {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // A zero interval would spin.
        self.config.rescan_interval = self.config.rescan_interval.max(MIN_RESCAN_INTERVAL);
        self.rescan();
        let mut rescan_at = Instant::now() + self.config.rescan_interval;
        loop {
            let gratuitous_at = lock(&self.shared).gratuitous.next_deadline();
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Command::SetOwned(owned, reply)) => {
                        self.desired = owned;
                        self.rescan();
                        self.apply();
                        self.send_gratuitous().await;
                        let _ = reply.send(lock(&self.shared).status.clone());
                    }
                    Some(Command::Reannounce) => {
                        self.reannounce();
                        self.send_gratuitous().await;
                    }
                    Some(Command::Shutdown(reply)) => {
                        // Refuse further commands before answering, so the caller sees
                        // the task as stopped once `shutdown` returns.
                        commands.close();
                        self.stop().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.stop().await;
                        return;
                    }
                },
                () = sleep_until_opt(gratuitous_at) => self.send_gratuitous().await,
                () = tokio::time::sleep_until(rescan_at.into()) => {
                    rescan_at = Instant::now() + self.config.rescan_interval;
                    // Applied even when no link changed, to retry sockets that failed.
                    self.rescan();
                    self.apply();
                    self.send_gratuitous().await;
                }
            }
        }
    }

    /// Lists the links again (keeping the previous list when that fails).
    fn rescan(&mut self) {
        match interfaces::discover() {
            Ok(links) => {
                if links != self.links {
                    debug!(count = links.len(), "interfaces changed");
                }
                self.links = links;
            }
            Err(e) => warn!(error = %e, "listing interfaces failed; keeping the previous list"),
        }
    }

    fn open_worker(&self, ifindex: u32, family: Family) -> io::Result<Worker> {
        let kind = match family {
            Family::V4 => PacketKind::ArpRequests,
            Family::V6 => PacketKind::NeighborSolicitations,
        };
        let socket = PacketSocket::open(ifindex, kind)?;
        // `AsyncFd::new`/`with_interest` are deprecated since tokio 1.54 (tokio#8587) in
        // favour of the unsafe `register_with_interest`.
        // SAFETY: `PacketSocket` owns its descriptor (a socket2 `Socket`, an `OwnedFd`),
        // returns that same descriptor from every `as_raw_fd` call and closes it only
        // when dropped, which the `AsyncFd` that owns it does last.
        let socket = unsafe {
            AsyncFd::register_with_interest(socket, Interest::READABLE | Interest::WRITABLE)
        }?;
        let socket = Arc::new(socket);
        let task = tokio::spawn(receive_loop(socket.clone(), ifindex, self.shared.clone()));
        Ok(Worker {
            socket,
            task,
            joined: BTreeSet::new(),
        })
    }

    /// Brings sockets, memberships, responder and scheduler in line with `desired`
    /// over the current links.
    fn apply(&mut self) {
        let now = Instant::now();
        let mut status = AnnounceStatus::new();
        let mut target: BTreeMap<u32, (InterfaceInfo, BTreeSet<IpAddr>)> = BTreeMap::new();
        for (ip, which) in &self.desired {
            let selection = interfaces::select(&self.links, which, Family::of(ip));
            let st = status.entry(*ip).or_default();
            st.missing = selection.missing;
            st.rejected = selection.rejected;
            for info in selection.selected {
                target
                    .entry(info.ifindex)
                    .or_insert_with(|| (info, BTreeSet::new()))
                    .1
                    .insert(*ip);
            }
        }

        // Sockets: close the unneeded, open the missing.
        let needed: BTreeSet<(u32, Family)> = target
            .iter()
            .flat_map(|(i, (_, ips))| ips.iter().map(move |ip| (*i, Family::of(ip))))
            .collect();
        let stale: Vec<(u32, Family)> = self
            .workers
            .keys()
            .filter(|k| !needed.contains(k))
            .copied()
            .collect();
        for key in stale {
            if let Some(w) = self.workers.remove(&key) {
                debug!(ifindex = key.0, family = ?key.1, "closing socket");
                w.task.abort();
            }
        }
        for &(ifindex, family) in &needed {
            if self.workers.contains_key(&(ifindex, family)) {
                continue;
            }
            match self.open_worker(ifindex, family) {
                Ok(w) => {
                    debug!(ifindex, ?family, "opened socket");
                    self.workers.insert((ifindex, family), w);
                }
                Err(e) => {
                    if let Some((info, ips)) = target.get_mut(&ifindex) {
                        warn!(interface = %info.name, ?family, error = %e, "cannot open packet socket");
                        ips.retain(|ip| {
                            let keep = Family::of(ip) != family;
                            if !keep {
                                status
                                    .entry(*ip)
                                    .or_default()
                                    .errors
                                    .push(format!("{}: {e}", info.name));
                            }
                            keep
                        });
                    }
                }
            }
        }
        target.retain(|_, (_, ips)| !ips.is_empty());

        // NDP: listen on the solicited-node group of each owned IPv6 address
        // (RFC 4861 7.2.1), leave the groups of released ones.
        for (&(ifindex, family), w) in &mut self.workers {
            if family != Family::V6 {
                continue;
            }
            let want: BTreeSet<MacAddr> = target
                .get(&ifindex)
                .map(|(_, ips)| {
                    ips.iter()
                        .filter_map(|ip| match ip {
                            IpAddr::V6(v6) => Some(MacAddr::solicited_node(*v6)),
                            IpAddr::V4(_) => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            for mac in want.difference(&w.joined.clone()) {
                match w.socket.get_ref().join_multicast(*mac) {
                    Ok(()) => {
                        w.joined.insert(*mac);
                    }
                    Err(e) => warn!(ifindex, %mac, error = %e, "joining multicast group failed"),
                }
            }
            for mac in w.joined.clone().difference(&want) {
                if let Err(e) = w.socket.get_ref().leave_multicast(*mac) {
                    debug!(ifindex, %mac, error = %e, "leaving multicast group failed");
                }
                w.joined.remove(mac);
            }
        }

        // Responder and scheduler. Released addresses first.
        let mut shared = lock(&self.shared);
        for (ifindex, (info, ips)) in &self.applied {
            let kept = target.get(ifindex).filter(|(new, _)| new.mac == info.mac);
            for ip in ips {
                if !kept.is_some_and(|(_, new_ips)| new_ips.contains(ip)) {
                    info!(%ip, interface = %info.name, "releasing");
                    shared.gratuitous.cancel(*ifindex, *ip);
                }
            }
            if !target.contains_key(ifindex) {
                shared.responder.remove_interface(*ifindex);
            }
        }
        for (ifindex, (info, ips)) in &target {
            shared.responder.set_interface(info.clone(), ips.clone());
            let before = self
                .applied
                .get(ifindex)
                .filter(|(old, _)| old.mac == info.mac);
            for ip in ips {
                status
                    .entry(*ip)
                    .or_default()
                    .interfaces
                    .push(info.name.clone());
                if !before.is_some_and(|(_, old_ips)| old_ips.contains(ip)) {
                    info!(%ip, interface = %info.name, mac = %info.mac, "taking over");
                    shared.gratuitous.announce(*ifindex, info.mac, *ip, now);
                }
            }
        }
        shared.status = status;
        drop(shared);
        self.applied = target;
    }

    /// Schedules a gratuitous burst for every address announced now.
    fn reannounce(&mut self) {
        let now = Instant::now();
        let mut shared = lock(&self.shared);
        for (ifindex, (info, ips)) in &self.applied {
            for ip in ips {
                info!(%ip, interface = %info.name, "announcing again");
                shared.gratuitous.announce(*ifindex, info.mac, *ip, now);
            }
        }
    }

    /// Sends the gratuitous frames that are due.
    async fn send_gratuitous(&mut self) {
        let due = lock(&self.shared).gratuitous.poll(Instant::now());
        for a in due {
            let Some(w) = self.workers.get(&(a.ifindex, Family::of(&a.ip))) else {
                continue;
            };
            match send_frame(&w.socket, &a.frame).await {
                Ok(()) => trace!(ip = %a.ip, ifindex = a.ifindex, "gratuitous frame sent"),
                Err(e) => {
                    debug!(ip = %a.ip, ifindex = a.ifindex, error = %e, "gratuitous send failed");
                    lock(&self.shared).send_errors += 1;
                }
            }
        }
    }

    async fn stop(&mut self) {
        for (_, w) in std::mem::take(&mut self.workers) {
            w.task.abort();
            let _ = w.task.await;
        }
        let mut shared = lock(&self.shared);
        shared.responder.clear();
        shared.gratuitous.cancel_all();
        shared.status.clear();
        self.applied.clear();
        info!("layer 2 announcer stopped");
    }
}

async fn send_frame(socket: &AsyncFd<PacketSocket>, frame: &[u8]) -> io::Result<()> {
    let attempt = async {
        loop {
            let mut guard = socket.writable().await?;
            if let Ok(result) = guard.try_io(|s| s.get_ref().send(frame)) {
                return result;
            }
        }
    };
    tokio::time::timeout(SEND_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "socket not writable",
            ))
        })
}

/// Reads one socket until aborted, answering what the responder says to answer.
async fn receive_loop(
    socket: Arc<AsyncFd<PacketSocket>>,
    ifindex: u32,
    shared: Arc<Mutex<Shared>>,
) {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let received = {
            let mut guard = match socket.readable().await {
                Ok(g) => g,
                Err(e) => {
                    warn!(ifindex, error = %e, "socket readiness failed; stopping this reader");
                    return;
                }
            };
            match guard.try_io(|s| s.get_ref().recv(&mut buf)) {
                Ok(r) => r,
                Err(_would_block) => continue,
            }
        };
        let n = match received {
            Ok(Some(n)) => n,
            Ok(None) => continue,
            Err(e) => {
                // ENETDOWN when the link goes down, for instance; the socket stays usable.
                debug!(ifindex, error = %e, "receive failed");
                lock(&shared).receive_errors += 1;
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        let outcome = lock(&shared)
            .responder
            .handle(ifindex, buf.get(..n).unwrap_or(&[]));
        match outcome {
            Outcome::Reply(reply) => match send_frame(&socket, &reply.frame).await {
                Ok(()) => debug!(ip = %reply.ip, ifindex, "answered"),
                Err(e) => {
                    debug!(ip = %reply.ip, ifindex, error = %e, "reply send failed");
                    lock(&shared).send_errors += 1;
                }
            },
            Outcome::Ignored(why) => trace!(ifindex, %why, "ignored"),
            Outcome::Malformed(e) => debug!(ifindex, error = %e, "malformed frame"),
        }
    }
}
