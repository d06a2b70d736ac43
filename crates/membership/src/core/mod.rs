//! The sans-IO SWIM core: no sockets, no clock, no threads. Feed it datagrams
//! ([`Core::handle_packet`]) and timer ticks ([`Core::handle_timeout`]) with the current
//! [`Instant`]; take the datagrams it wants sent ([`Core::poll_transmit`]), the time it
//! next wants to be woken ([`Core::poll_timeout`]) and what changed
//! ([`Core::poll_event`]).
//!
//! The protocol is SWIM (Das, Gupta, Motivala 2002) with the Lifeguard refinements
//! (Dadgar, Phillips, Currey 2018):
//!
//! - **Probing.** Every probe interval the node pings one member, going round a ring
//!   of the members in a random order fixed per node (so each member is probed by each
//!   node exactly once per round of n - 1 intervals; newcomers are inserted at random
//!   places). No ack within the probe timeout: it asks `k` other members to ping the
//!   target for it (ping-req) and pings it directly once more. No ack, direct or
//!   relayed, by the probe deadline: the target becomes *suspect*. The deadline may be
//!   longer than the interval (probes overlap), which is how the default profile
//!   probes often (every 50 ms) while giving each probe 100 ms.
//! - **Suspicion.** A suspect is declared *dead* when its suspicion timeout runs out,
//!   unless it refutes first by raising its incarnation. The timeout is Lifeguard's:
//!   it starts at `suspicion_timeout × max_multiplier` (scaled by log10 of the cluster
//!   size) and shrinks to `suspicion_timeout` as other members independently confirm.
//!   The suspect is told at once (the "buddy system": every packet to a member we
//!   suspect carries the suspicion) and members that hear of a suspicion probe the
//!   suspect next, so a live node refutes within a round trip and a dead one gets its
//!   confirmations quickly.
//! - **Local health.** A node that sees signs of being slow itself (acks or nacks it
//!   should have received are missing, it had to refute a suspicion, its timers run
//!   late) stretches its own probe interval and timeout, so an overloaded node does not
//!   accuse healthy ones (Lifeguard's local health multiplier). A probe whose end is
//!   handled late is void rather than a failure.
//! - **Dissemination.** News (alive, suspect, dead, left) is piggybacked on every packet
//!   and gossiped to a few random members every gossip interval, each item a bounded
//!   number of times (∝ log n).
//! - **Joining and healing.** A join is a full state exchange. Seeds (and dead members)
//!   that are not live members are sent a join every rejoin interval, so a partition
//!   heals by itself; the side that was declared dead learns it from the exchange and
//!   refutes. A random member gets a full exchange every sync interval (anti-entropy).
//! - **Leaving.** [`Core::leave`] sends "left" to every member directly: they remove the
//!   node at once, with reason `Left`, and never suspect it.
//! - **Restarts.** A node's incarnation starts at a value above any of its previous life
//!   (the transport uses the wall clock in milliseconds), so a restarted node is
//!   accepted at once; even if not, the first exchange tells it what the cluster
//!   believes and it refutes.
//!
//! Precedence of news about one member (higher incarnation wins; at equal incarnation
//! `left`/`dead` > `suspect` > `alive`) makes every node converge to the same view.

mod broadcast;
mod merge;
mod probe;
mod send;
mod suspicion;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{ConfigError, LiveSet, Timing};
use crate::rng::Rng;
use crate::wire::{Message, Packet, Status, WireError, valid_name};
use broadcast::Broadcasts;
use suspicion::Suspicion;

/// The default largest packet the core builds: fits an Ethernet MTU of 1500 with IP,
/// UDP and the sealing overhead to spare.
pub const DEFAULT_MAX_PACKET: usize = 1400;

/// Helpers' relayed probes kept at once (bounds memory under a ping-req flood).
const MAX_RELAYS: usize = 1024;

/// What the core needs to start.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This node's name (the Kubernetes node name).
    pub name: String,
    /// The address other nodes reach this node's gossip at.
    pub addr: SocketAddr,
    /// The starting incarnation: higher than any earlier life of this node, so a restart
    /// is accepted at once (the transport uses the wall clock in milliseconds).
    pub incarnation: u64,
    /// Protocol timings.
    pub timing: Timing,
    /// Which members count as live.
    pub live_set: LiveSet,
    /// The largest packet to build, in bytes (before sealing).
    pub max_packet: usize,
    /// Seed of the core's random choices.
    pub seed: u64,
}

impl CoreConfig {
    /// A configuration with the default profile, incarnation 0 and seed 0.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> CoreConfig {
        CoreConfig {
            name: name.into(),
            addr,
            incarnation: 0,
            timing: Timing::default(),
            live_set: LiveSet::default(),
            max_packet: DEFAULT_MAX_PACKET,
            seed: 0,
        }
    }
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub to: SocketAddr,
    /// The encoded packet (not yet sealed: see [`crate::crypto::wrap`]).
    pub packet: Vec<u8>,
}

/// Why a member left the live set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DownReason {
    /// It stopped answering and was declared dead.
    Failed,
    /// It left on purpose.
    Left,
    /// It is suspected (only with [`LiveSet::AliveOnly`]).
    Suspected,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DownReason::Failed => "failed",
            DownReason::Left => "left",
            DownReason::Suspected => "suspected",
        })
    }
}

/// A change in membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A member entered the live set.
    Up {
        /// Its name.
        name: String,
        /// Its gossip address.
        addr: SocketAddr,
    },
    /// A member left the live set.
    Down {
        /// Its name.
        name: String,
        /// Why.
        reason: DownReason,
    },
    /// A member became suspect (informational with [`LiveSet::AliveOrSuspect`]).
    Suspected {
        /// Its name.
        name: String,
    },
    /// A suspect member refuted the suspicion.
    Refuted {
        /// Its name.
        name: String,
    },
}

/// One member as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Its name.
    pub name: String,
    /// Its gossip address.
    pub addr: SocketAddr,
    /// Its incarnation.
    pub incarnation: u64,
    /// Its state.
    pub status: Status,
}

/// How many members are in each state (this node counts as alive until it leaves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// Alive members.
    pub alive: usize,
    /// Suspect members.
    pub suspect: usize,
    /// Dead members still remembered.
    pub dead: usize,
    /// Departed members still remembered.
    pub left: usize,
}

/// What the core did, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Probes started.
    pub probes: u64,
    /// Probes that got no ack at all.
    pub probes_failed: u64,
    /// Probes that needed indirect help.
    pub indirect_probes: u64,
    /// Probes voided because this node handled them late.
    pub probes_void: u64,
    /// Suspicions this node raised from its own probes.
    pub suspicions: u64,
    /// Suspicions of this node that it refuted.
    pub refutations: u64,
    /// Members this node declared dead itself.
    pub declared_dead: u64,
    /// Pings for another node name, and packets claiming this node's name.
    pub misdirected: u64,
    /// Lifeguard local health score now (0 = healthy).
    pub local_health: u32,
}

#[derive(Clone, Debug)]
struct Member {
    addr: SocketAddr,
    incarnation: u64,
    status: Status,
    since: Instant,
    suspicion: Option<Suspicion>,
    /// Heard of a suspicion from another node: probe it next.
    probe_soon: bool,
}

#[derive(Clone, Debug)]
struct Probe {
    seq: u32,
    target: String,
    addr: SocketAddr,
    timeout_at: Instant,
    end: Instant,
    indirect: bool,
    helpers: usize,
    nacks: usize,
}

#[derive(Clone, Debug)]
struct Relay {
    requester: SocketAddr,
    requester_name: String,
    requester_seq: u32,
    nack_at: Instant,
    nacked: bool,
    expire: Instant,
}

/// The SWIM state machine of one node. See the module documentation.
#[derive(Debug)]
pub struct Core {
    name: String,
    addr: SocketAddr,
    incarnation: u64,
    timing: Timing,
    live_set: LiveSet,
    max_packet: usize,
    rng: Rng,
    left: bool,
    members: BTreeMap<String, Member>,
    seeds: Vec<SocketAddr>,
    broadcasts: Broadcasts,
    probe_ring: Vec<String>,
    probe_pos: usize,
    probes: Vec<Probe>,
    next_probe: Instant,
    next_gossip: Instant,
    next_rejoin: Instant,
    next_sync: Instant,
    relays: BTreeMap<u32, Relay>,
    seq: u32,
    local_health: u32,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: CoreStats,
}

impl Core {
    /// A core that knows only itself; give it seeds with [`Core::set_seeds`].
    pub fn new(config: CoreConfig, now: Instant) -> Result<Core, ConfigError> {
        if !valid_name(&config.name) {
            return Err(ConfigError::Name(config.name));
        }
        config.timing.validate()?;
        let mut rng = Rng::new(config.seed);
        let first_probe = config.timing.probe_interval.mul_f64(rng.unit());
        let seq = rng.next_u64() as u32;
        Ok(Core {
            name: config.name,
            addr: config.addr,
            incarnation: config.incarnation,
            next_probe: now + first_probe,
            next_gossip: now + config.timing.gossip_interval,
            next_rejoin: now,
            next_sync: now + config.timing.sync_interval,
            timing: config.timing,
            live_set: config.live_set,
            max_packet: config.max_packet.max(crate::wire::MAX_NAME_LEN * 3),
            rng,
            left: false,
            members: BTreeMap::new(),
            seeds: Vec::new(),
            broadcasts: Broadcasts::default(),
            probe_ring: Vec::new(),
            probe_pos: 0,
            probes: Vec::new(),
            relays: BTreeMap::new(),
            seq,
            local_health: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: CoreStats::default(),
        })
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This node's gossip address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Whether [`Core::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// The timings in use.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Replaces the seeds (the other nodes' gossip addresses) and sends a join to every
    /// one that is not a live member yet.
    pub fn set_seeds(&mut self, seeds: &[SocketAddr], now: Instant) {
        let mut s: Vec<SocketAddr> = seeds.iter().copied().filter(|a| *a != self.addr).collect();
        s.sort();
        s.dedup();
        self.seeds = s;
        self.rejoin(now);
        self.next_rejoin = now + self.timing.rejoin_interval;
    }

    /// Leaves the cluster: tells every live member directly, then goes quiet (no probes,
    /// no answers). Call again to repeat the message (the transport does, against loss).
    pub fn leave(&mut self, _now: Instant) {
        if !self.left {
            info!(node = %self.name, incarnation = self.incarnation, "leaving the cluster");
            self.left = true;
            self.probes.clear();
            self.relays.clear();
            self.broadcasts = Broadcasts::default();
        }
        let me = self.self_update();
        let targets: Vec<(String, SocketAddr)> = self
            .members
            .iter()
            .filter(|(_, m)| matches!(m.status, Status::Alive | Status::Suspect))
            .map(|(n, m)| (n.clone(), m.addr))
            .collect();
        for (name, addr) in targets {
            self.send_with(addr, Some(&name), Message::Gossip, vec![me.clone()]);
        }
    }

    /// The names in the live set, this node included (empty after leaving).
    pub fn live_members(&self) -> BTreeSet<String> {
        if self.left {
            return BTreeSet::new();
        }
        std::iter::once(self.name.clone())
            .chain(
                self.members
                    .iter()
                    .filter(|(_, m)| self.is_live(m.status))
                    .map(|(n, _)| n.clone()),
            )
            .collect()
    }

    /// Every known member but this node, in name order.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.members
            .iter()
            .map(|(n, m)| MemberInfo {
                name: n.clone(),
                addr: m.addr,
                incarnation: m.incarnation,
                status: m.status,
            })
            .collect()
    }

    /// How many members are in each state.
    pub fn counts(&self) -> MemberCounts {
        let mut c = MemberCounts {
            alive: usize::from(!self.left),
            ..MemberCounts::default()
        };
        for m in self.members.values() {
            match m.status {
                Status::Alive => c.alive += 1,
                Status::Suspect => c.suspect += 1,
                Status::Dead => c.dead += 1,
                Status::Left => c.left += 1,
            }
        }
        c
    }

    /// Counters of what the core did.
    pub fn stats(&self) -> CoreStats {
        CoreStats {
            local_health: self.local_health,
            ..self.stats
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next membership change.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Core::handle_timeout`] should next be called (None: only on input).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        let mut t = self.next_probe.min(self.next_rejoin).min(self.next_sync);
        if !self.broadcasts.is_empty() {
            t = t.min(self.next_gossip);
        }
        for p in &self.probes {
            t = t.min(p.end);
            if !p.indirect {
                t = t.min(p.timeout_at);
            }
        }
        for r in self.relays.values() {
            t = t.min(r.expire);
            if !r.nacked {
                t = t.min(r.nack_at);
            }
        }
        for m in self.members.values() {
            match (&m.suspicion, m.status) {
                (Some(s), Status::Suspect) => t = t.min(s.deadline()),
                (_, Status::Dead | Status::Left) => t = t.min(m.since + self.timing.dead_retention),
                _ => {}
            }
        }
        Some(t)
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.run_relays(now);
        self.run_probes(now);
        if now >= self.next_probe {
            self.start_probe(now);
        }
        self.run_suspicions(now);
        if now >= self.next_gossip {
            self.next_gossip = now + self.timing.gossip_interval;
            self.gossip();
        }
        if now >= self.next_rejoin {
            self.next_rejoin = now + self.timing.rejoin_interval;
            self.rejoin(now);
        }
        if now >= self.next_sync {
            self.next_sync = now + self.timing.sync_interval;
            self.sync_random();
        }
        self.reap(now);
    }

    /// Handles one received (already opened) packet from `src`.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        src: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), WireError> {
        let packet = Packet::decode(bytes)?;
        if self.left {
            return Ok(());
        }
        if packet.from == self.name {
            self.stats.misdirected += 1;
            warn!(%src, name = %self.name, "a packet from another node with this node's name");
            return Ok(());
        }
        let via_sync = matches!(packet.message, Message::Join { .. });
        for u in packet.updates {
            self.apply(u, via_sync, src, &packet.from, now);
        }
        match packet.message {
            Message::Ping { seq, target } => {
                if target == self.name {
                    self.send(src, Some(&packet.from), Message::Ack { seq });
                } else {
                    self.stats.misdirected += 1;
                    debug!(%src, %target, "ping for another node");
                }
            }
            Message::Ack { seq } => self.on_ack(seq),
            Message::Nack { seq } => {
                if let Some(p) = self.probes.iter_mut().find(|p| p.seq == seq) {
                    p.nacks += 1;
                }
            }
            Message::PingReq { seq, target, addr } => {
                if self.relays.len() < MAX_RELAYS && target != self.name {
                    let own = self.next_seq();
                    self.send(
                        addr,
                        Some(&target),
                        Message::Ping {
                            seq: own,
                            target: target.clone(),
                        },
                    );
                    self.relays.insert(
                        own,
                        Relay {
                            requester: src,
                            requester_name: packet.from.clone(),
                            requester_seq: seq,
                            nack_at: now + self.timing.probe_timeout,
                            nacked: false,
                            expire: now + self.timing.probe_deadline,
                        },
                    );
                }
            }
            Message::Join { reply } => {
                if reply {
                    self.send_sync(src, Some(&packet.from), false);
                }
            }
            Message::Gossip => {}
        }
        Ok(())
    }

    fn reap(&mut self, now: Instant) {
        let retention = self.timing.dead_retention;
        let before = self.members.len();
        self.members.retain(|name, m| {
            let keep =
                !matches!(m.status, Status::Dead | Status::Left) || m.since + retention > now;
            if !keep {
                debug!(member = %name, "forgetting");
            }
            keep
        });
        if self.members.len() != before {
            let members = &self.members;
            self.probe_ring.retain(|n| members.contains_key(n));
            self.probe_pos = self.probe_pos.min(self.probe_ring.len().saturating_sub(1));
        }
    }

    fn raise_health(&mut self) {
        self.local_health = (self.local_health + 1).min(self.timing.max_local_health);
    }

    fn lower_health(&mut self) {
        self.local_health = self.local_health.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests;
