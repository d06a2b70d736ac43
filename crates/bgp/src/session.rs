//! The sans-IO BGP session: one peer, seen from our side (RFC 4271 §8), announcing only.
//!
//! No sockets, no clock. The I/O layer:
//!
//! - calls [`Session::start`]; the session asks for a TCP connection with
//!   [`Action::Connect`] and is told the outcome with [`Session::connected`] (with the
//!   local and remote addresses) or [`Session::connection_failed`];
//! - feeds received bytes to [`Session::handle_bytes`] and the connection's end to
//!   [`Session::connection_closed`];
//! - calls [`Session::handle_timeout`] when [`Session::poll_timeout`] says;
//! - performs [`Session::poll_action`] (connect, send bytes, close the connection) and
//!   reads [`Session::poll_event`] (state changes, session up and down).
//!
//! Every input takes the current [`Instant`]; tests drive time by hand.
//!
//! # States
//!
//! We only dial (like MetalLB's native speaker); the RFC's states are used as follows.
//! **Idle**: stopped. **Connect**: a connection attempt is under way, abandoned after
//! `connect_time`. **Active**: waiting before the next attempt (the ConnectRetry timer,
//! with exponential backoff from `retry_min` to `retry_max`, reset once Established).
//! **OpenSent**: our OPEN is sent, waiting for the peer's (hold timer 240 s).
//! **OpenConfirm**: OPENs agree, our KEEPALIVE sent, waiting for the peer's.
//! **Established**: routes flow. Any error sends the matching NOTIFICATION, closes the
//! connection and goes to Active; a received NOTIFICATION or a lost connection too.
//!
//! # Timers
//!
//! The hold time is the smaller of ours and the peer's (1 and 2 s are refused, 0 means no
//! hold timer and no keepalives). Every message received restarts the hold timer; its
//! expiry sends NOTIFICATION 4/0. KEEPALIVEs are sent every `min(keepalive, hold / 3)`
//! (hold / 3 when no keepalive is configured); sending an UPDATE restarts that timer.
//! Each keepalive interval and ConnectRetry wait is multiplied by a random factor in
//! [0.75, 1.0] (RFC 4271 §10), from a seeded generator (`SessionConfig::jitter_seed`),
//! so tests stay deterministic.
//!
//! # Routes
//!
//! [`Session::set_routes`] gives the whole desired set. Once Established the session sends
//! the difference with what the peer has from us: withdrawals first (IPv4 in the withdrawn
//! routes field, IPv6 in MP_UNREACH_NLRI), then announcements grouped by attributes, as
//! many prefixes per UPDATE as fit in 4096 bytes. ORIGIN is IGP; AS_PATH is empty towards
//! an internal peer and `[our AS]` towards an external one (with AS_TRANS and AS4_PATH
//! when the peer lacks 4-octet AS support); NEXT_HOP (IPv4) or the MP_REACH_NLRI next hop
//! (IPv6) is the configured next hop of that family, else the connection's local address
//! when it is of that family; routes with no next hop of their family, or of a family not
//! negotiated, or with more communities than fit in one UPDATE, are not announced (see
//! [`Session::advertised`]). LOCAL_PREF goes to internal peers only (100 unless
//! set). A ROUTE-REFRESH re-sends every route of its family. Received UPDATEs are
//! validated by the codec and dropped.
//!
//! [`Session::shutdown`] is the graceful way out: with `graceful_shutdown` configured it
//! re-announces every route with the GRACEFUL_SHUTDOWN community (RFC 8326), waits that
//! long, then withdraws everything and sends Cease (administrative shutdown);
//! [`Session::stop`] sends the Cease at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::message::{
    self, AS_TRANS, AsSegment, BGP_VERSION, Capability, Codec, Family, GracefulRestart,
    LargeCommunity, MAX_MESSAGE_LEN, Message, MessageError, MpReach, MpUnreach, Notification, Open,
    Origin, PathAttribute, SegmentType, Update, code,
};

/// The GRACEFUL_SHUTDOWN well-known community 65535:0 (RFC 8326).
pub const GRACEFUL_SHUTDOWN: u32 = 0xffff_0000;
/// Hold time used while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 min).
const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// Which AS the peer must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAs {
    /// Exactly this AS.
    Fixed(u32),
    /// Our own AS (iBGP), MetalLB's `dynamicASN: internal`.
    Internal,
    /// Any AS but ours (eBGP), MetalLB's `dynamicASN: external`.
    External,
}

/// The graceful restart capability we announce (RFC 4724).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Restart time in seconds (at most 4095).
    pub restart_time: u16,
    /// Whether forwarding survives a restart of the speaker (the Forwarding State bit).
    pub forwarding_preserved: bool,
}

/// A session's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS.
    pub local_as: u32,
    /// The peer's AS.
    pub peer_as: PeerAs,
    /// Our BGP identifier (router ID), non-zero.
    pub router_id: Ipv4Addr,
    /// Proposed hold time in seconds: 0 or at least 3 (default 90).
    pub hold_time: u16,
    /// Keepalive interval in seconds; `None` is a third of the negotiated hold time.
    pub keepalive: Option<u16>,
    /// How long a connection attempt may take (default 10 s).
    pub connect_time: Duration,
    /// First wait before retrying after a failure (default 1 s), doubled each time...
    pub retry_min: Duration,
    /// ... up to this (default 2 min).
    pub retry_max: Duration,
    /// Families we announce the multiprotocol capability for (default IPv4 and IPv6
    /// unicast).
    pub families: Vec<Family>,
    /// Announce the graceful restart capability (and send End-of-RIB markers when the peer
    /// announces it too).
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// On [`Session::shutdown`], re-announce with GRACEFUL_SHUTDOWN and wait this long
    /// before withdrawing; `None` withdraws at once.
    pub graceful_shutdown: Option<Duration>,
    /// Next hop of IPv4 routes; default the local address if the connection is IPv4.
    pub ipv4_next_hop: Option<Ipv4Addr>,
    /// Next hop of IPv6 routes; default the local address if the connection is IPv6.
    pub ipv6_next_hop: Option<Ipv6Addr>,
    /// Seed of the timer jitter (RFC 4271 §10): each ConnectRetry wait and keepalive
    /// interval is multiplied by a random factor in [0.75, 1.0], so that many sessions
    /// started together do not stay in step. [`SessionConfig::new`] picks a random seed;
    /// `None` turns jitter off (exact timers, for tests).
    pub jitter_seed: Option<u64>,
}

impl SessionConfig {
    /// A configuration with the defaults (hold 90 s, connect time 10 s, retries 1 s to
    /// 2 min, IPv4 and IPv6 unicast, no graceful restart or shutdown).
    pub fn new(local_as: u32, peer_as: PeerAs, router_id: Ipv4Addr) -> SessionConfig {
        SessionConfig {
            local_as,
            peer_as,
            router_id,
            hold_time: 90,
            keepalive: None,
            connect_time: Duration::from_secs(10),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(120),
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            graceful_restart: None,
            graceful_shutdown: None,
            ipv4_next_hop: None,
            ipv6_next_hop: None,
            jitter_seed: Some(random_seed()),
        }
    }
}

/// A seed that differs between sessions and runs (std's per-process random hash keys
/// plus a counter); not for secrets.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// Timer jitter (RFC 4271 §10): SplitMix64, seeded.
#[derive(Clone, Debug)]
struct Jitter(Option<u64>);

impl Jitter {
    fn next_u64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `d` times a random factor in (0.75, 1.0]; `d` itself when jitter is off.
    fn apply(&mut self, d: Duration) -> Duration {
        let Some(state) = self.0.as_mut() else {
            return d;
        };
        // factor = 1 - k / 2^34 with k uniform in [0, 2^32).
        let k = u128::from(Self::next_u64(state) >> 32);
        let nanos = d.as_nanos();
        let cut = (nanos * k) >> 34;
        let out = nanos - cut;
        Duration::new(
            u64::try_from(out / 1_000_000_000).unwrap_or(u64::MAX),
            u32::try_from(out % 1_000_000_000).unwrap_or(0),
        )
    }
}

/// A configuration the session refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Hold time 1 or 2 s.
    #[error("hold time must be 0 or at least 3 s, not {0}")]
    HoldTime(u16),
    /// AS 0 or AS_TRANS.
    #[error("AS {0} cannot be used")]
    Asn(u32),
    /// Router ID 0.0.0.0.
    #[error("the router ID must not be 0.0.0.0")]
    RouterId,
    /// Keepalive 0 with a non-zero hold time.
    #[error("keepalive interval must be at least 1 s")]
    Keepalive,
    /// Graceful restart time above 4095 s.
    #[error("graceful restart time must be at most 4095 s")]
    RestartTime,
    /// Zero connect time or retry delays, or retry_min above retry_max.
    #[error("connect time and retry delays must be positive, retry_min <= retry_max")]
    Timers,
}

/// A session state (RFC 4271 §8.2.2; see the module docs for Connect and Active).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Stopped.
    Idle,
    /// Connecting.
    Connect,
    /// Waiting to retry.
    Active,
    /// OPEN sent.
    OpenSent,
    /// OPENs agree, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Up.
    Established,
}

/// Something the I/O layer must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer, then call [`Session::connected`] or
    /// [`Session::connection_failed`].
    Connect,
    /// Write these bytes (one or more whole messages) to the connection.
    Send(Vec<u8>),
    /// Close the connection (or abandon the attempt), after writing what was sent.
    Close,
}

/// What was agreed with the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS.
    pub peer_as: u32,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// Whether the peer is internal (same AS).
    pub internal: bool,
    /// Hold time in seconds (0: none).
    pub hold_time: u16,
    /// Keepalive interval in seconds (0: none).
    pub keepalive: u16,
    /// Both sides support 4-octet ASNs.
    pub four_octet_as: bool,
    /// Families both sides support.
    pub families: Vec<Family>,
    /// The peer supports route refresh.
    pub route_refresh: bool,
    /// The peer announced graceful restart (and so did we).
    pub graceful_restart: bool,
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// We sent this NOTIFICATION (error, hold timer expiry, stop, shutdown).
    Sent(Notification),
    /// The peer sent this NOTIFICATION.
    Received(Notification),
    /// The I/O layer reported the connection closed.
    ConnectionLost,
    /// The I/O layer declared the peer lost ([`Session::peer_lost`], e.g. BFD went
    /// down): the connection was dropped without a NOTIFICATION.
    PeerLost,
}

/// Something that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The state changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
    },
    /// The session is up.
    Established(Negotiated),
    /// A connection past Connect ended.
    Closed(CloseReason),
}

/// The attributes of an announced route besides those the session sets itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteAttributes {
    /// Standard communities (RFC 1997), as `asn << 16 | value`.
    pub communities: Vec<u32>,
    /// Large communities (RFC 8092).
    pub large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF for internal peers (default 100); ignored towards external peers.
    pub local_pref: Option<u32>,
}

impl RouteAttributes {
    fn normalized(mut self) -> RouteAttributes {
        self.communities.sort_unstable();
        self.communities.dedup();
        self.large_communities.sort_unstable();
        self.large_communities.dedup();
        self
    }

    fn is_normalized(&self) -> bool {
        self.communities.windows(2).all(|w| w[0] < w[1])
            && self.large_communities.windows(2).all(|w| w[0] < w[1])
    }
}

/// Message counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// OPENs sent.
    pub opens_sent: u64,
    /// OPENs received.
    pub opens_received: u64,
    /// UPDATEs sent.
    pub updates_sent: u64,
    /// UPDATEs received (validated and dropped).
    pub updates_received: u64,
    /// KEEPALIVEs sent.
    pub keepalives_sent: u64,
    /// KEEPALIVEs received.
    pub keepalives_received: u64,
    /// NOTIFICATIONs sent.
    pub notifications_sent: u64,
    /// NOTIFICATIONs received.
    pub notifications_received: u64,
    /// ROUTE-REFRESHes received.
    pub route_refreshes_received: u64,
    /// ROUTE-REFRESHes sent (always 0: we keep no received routes, so never ask).
    pub route_refreshes_sent: u64,
    /// Times the session reached Established.
    pub established_transitions: u64,
}

/// What [`Session::offer_inbound`] decided.
#[derive(Debug)]
pub enum Inbound {
    /// The session now runs on the inbound connection: its actions from now on are for
    /// that connection. If the session had a connection of its own, write `old_close` (a
    /// NOTIFICATION Cease, Connection Collision Resolution) to it, then close it; the I/O
    /// layer abandons a connection attempt under way itself.
    Adopted {
        /// Bytes for the connection being replaced, if there was one past Connect.
        old_close: Option<Vec<u8>>,
    },
    /// The inbound connection is refused: the returned session has queued a NOTIFICATION
    /// Cease (Connection Collision Resolution, or Connection Rejected when stopped) and
    /// [`Action::Close`]; perform its actions on the inbound connection.
    Refused(Box<Session>),
}

/// A snapshot of a session for metrics and status pages ([`Session::status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The state.
    pub state: State,
    /// Whether the session is Established.
    pub up: bool,
    /// Message counters (since the session was created).
    pub stats: Stats,
    /// Prefixes the peer has from us.
    pub announced: usize,
    /// Prefixes desired but not (yet) announced: all of them while the session is down,
    /// and those that cannot be sent (no next hop of their family, family not
    /// negotiated, too many communities).
    pub pending: usize,
    /// What was negotiated, while OpenConfirm or Established.
    pub negotiated: Option<Negotiated>,
    /// Why the last connection ended, if one did.
    pub last_close: Option<CloseReason>,
}

/// One BGP session (see the module docs).
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    codec: Codec,
    rx: Vec<u8>,
    local: Option<SocketAddr>,
    negotiated: Option<Negotiated>,
    retry_delay: Duration,
    connect_deadline: Option<Instant>,
    retry_at: Option<Instant>,
    hold_deadline: Option<Instant>,
    keepalive_at: Option<Instant>,
    shutdown_at: Option<Instant>,
    /// Shutting down: routes carry GRACEFUL_SHUTDOWN until `shutdown_at`.
    draining: bool,
    /// The routes wanted. Routes with equal attributes share one allocation of them (a
    /// speaker's routes mostly carry a handful of distinct sets).
    desired: BTreeMap<IpNet, Arc<RouteAttributes>>,
    /// What the peer has from us (attributes as sent, GRACEFUL_SHUTDOWN included).
    sent: BTreeMap<IpNet, Arc<RouteAttributes>>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    stats: Stats,
    last_close: Option<CloseReason>,
    jitter: Jitter,
}

impl Session {
    /// A stopped session.
    pub fn new(config: SessionConfig) -> Result<Session, ConfigError> {
        if matches!(config.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(config.hold_time));
        }
        if config.local_as == 0 || config.local_as == u32::from(AS_TRANS) {
            return Err(ConfigError::Asn(config.local_as));
        }
        if let PeerAs::Fixed(asn) = config.peer_as
            && (asn == 0 || asn == u32::from(AS_TRANS))
        {
            return Err(ConfigError::Asn(asn));
        }
        if config.router_id.is_unspecified() {
            return Err(ConfigError::RouterId);
        }
        if config.keepalive == Some(0) && config.hold_time != 0 {
            return Err(ConfigError::Keepalive);
        }
        if config
            .graceful_restart
            .is_some_and(|gr| gr.restart_time > 0x0fff)
        {
            return Err(ConfigError::RestartTime);
        }
        if config.connect_time.is_zero()
            || config.retry_min.is_zero()
            || config.retry_min > config.retry_max
        {
            return Err(ConfigError::Timers);
        }
        Ok(Session::fresh(config))
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What was negotiated, while OpenConfirm or Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The routes the peer has from us, with their attributes as sent.
    pub fn advertised(&self) -> &BTreeMap<IpNet, Arc<RouteAttributes>> {
        &self.sent
    }

    /// Message counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A snapshot for metrics: state, counters, announced and pending prefixes.
    pub fn status(&self) -> PeerStatus {
        PeerStatus {
            state: self.state,
            up: self.state == State::Established,
            stats: self.stats,
            announced: self.sent.len(),
            pending: self
                .desired
                .keys()
                .filter(|p| !self.sent.contains_key(p))
                .count(),
            negotiated: self.negotiated.clone(),
            last_close: self.last_close.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The next action for the I/O layer.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.connect_deadline,
            self.retry_at,
            self.hold_deadline,
            self.keepalive_at,
            self.shutdown_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Start (ManualStart): connect now. No effect unless Idle.
    pub fn start(&mut self, now: Instant) {
        if self.state == State::Idle {
            self.retry_delay = self.config.retry_min;
            self.draining = false;
            self.connect(now);
        }
    }

    /// Stop (ManualStop): send Cease (administrative shutdown) if connected, close and go
    /// Idle.
    pub fn stop(&mut self, now: Instant) {
        let _ = now;
        self.close(
            Some(Notification::new(code::CEASE, code::CEASE_ADMIN_SHUTDOWN)),
            State::Idle,
        );
    }

    /// Graceful shutdown: if Established and `graceful_shutdown` is configured,
    /// re-announce everything with GRACEFUL_SHUTDOWN and, after that delay, withdraw all
    /// and stop; otherwise withdraw all (if Established) and stop at once.
    pub fn shutdown(&mut self, now: Instant) {
        if self.state != State::Established {
            self.stop(now);
            return;
        }
        match self.config.graceful_shutdown {
            Some(delay) if !self.draining => {
                self.draining = true;
                self.sync(now);
                self.shutdown_at = Some(now + delay);
            }
            Some(_) => {}
            None => self.finish_shutdown(now),
        }
    }

    fn finish_shutdown(&mut self, now: Instant) {
        self.shutdown_at = None;
        let desired = std::mem::take(&mut self.desired);
        self.sync(now);
        self.desired = desired;
        self.stop(now);
    }

    /// Set the whole desired set of routes (host bits are cleared; a later entry for the
    /// same prefix wins). Sent at once when Established. The attributes may come shared
    /// (`Arc`): routes with equal attributes end up sharing one allocation either way.
    pub fn set_routes<I, A>(&mut self, now: Instant, routes: I)
    where
        I: IntoIterator<Item = (IpNet, A)>,
        A: Into<Arc<RouteAttributes>>,
    {
        let mut shared = Interner::default();
        self.desired = routes
            .into_iter()
            .map(|(p, a)| (p.trunc(), shared.get(a.into())))
            .collect();
        if self.state == State::Established {
            self.sync(now);
        }
    }

    /// The connection asked for with [`Action::Connect`] is up. If the session no longer
    /// wants it (the attempt was abandoned after `connect_time`, or the session stopped),
    /// it answers [`Action::Close`].
    pub fn connected(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        let _ = remote;
        match self.state {
            State::Connect => {}
            State::Idle | State::Active => {
                // A stale attempt (abandoned or stopped): we no longer want it.
                self.actions.push_back(Action::Close);
                return;
            }
            // Already connected: the I/O layer keeps one connection per session.
            State::OpenSent | State::OpenConfirm | State::Established => return,
        }
        self.connect_deadline = None;
        self.local = Some(SocketAddr::new(local.ip().to_canonical(), local.port()));
        self.rx.clear();
        self.codec = Codec::default();
        self.send(&Message::Open(self.our_open()));
        self.stats.opens_sent += 1;
        self.hold_deadline = Some(now + OPEN_HOLD_TIME);
        self.set_state(State::OpenSent);
    }

    /// The connection attempt failed.
    pub fn connection_failed(&mut self, now: Instant) {
        if self.state == State::Connect {
            self.connect_deadline = None;
            self.backoff(now);
        }
    }

    /// The connection closed (by the peer or the network).
    pub fn connection_closed(&mut self, now: Instant) {
        match self.state {
            State::OpenSent | State::OpenConfirm | State::Established => {
                self.closed(CloseReason::ConnectionLost);
                self.reset();
                self.backoff(now);
            }
            State::Connect => self.connection_failed(now),
            State::Idle | State::Active => {}
        }
    }

    /// The peer is known to be unreachable (BFD went down, or the interface): drop the
    /// connection at once, without waiting for the hold timer and without a NOTIFICATION
    /// (it could not arrive), emit [`Event::Closed`] with [`CloseReason::PeerLost`] and
    /// wait to retry ([`State::Active`]). An attempt under way is abandoned the same way.
    /// No effect when Idle or already waiting to retry.
    pub fn peer_lost(&mut self, now: Instant) {
        match self.state {
            State::OpenSent | State::OpenConfirm | State::Established => {
                self.closed(CloseReason::PeerLost);
                self.actions.push_back(Action::Close);
                self.reset();
                self.backoff(now);
            }
            State::Connect => {
                self.actions.push_back(Action::Close);
                self.connect_deadline = None;
                self.backoff(now);
            }
            State::Idle | State::Active => {}
        }
    }

    /// A session for a connection the peer opened (the passive side): a copy of this
    /// session's configuration, without jitter, already sending its OPEN. Drive it with
    /// the inbound connection's bytes until it is OpenConfirm (or Established), then hand
    /// it to [`Session::offer_inbound`].
    pub fn inbound(&self, now: Instant, local: SocketAddr, remote: SocketAddr) -> Session {
        let mut config = self.config.clone();
        config.jitter_seed = None;
        let mut s = Session::fresh(config);
        s.start(now);
        s.actions.clear();
        s.connected(now, local, remote);
        s.events.clear();
        s
    }

    /// A stopped session with a validated configuration.
    fn fresh(config: SessionConfig) -> Session {
        Session {
            retry_delay: config.retry_min,
            jitter: Jitter(config.jitter_seed),
            config,
            state: State::Idle,
            codec: Codec::default(),
            rx: Vec::new(),
            local: None,
            negotiated: None,
            connect_deadline: None,
            retry_at: None,
            hold_deadline: None,
            keepalive_at: None,
            shutdown_at: None,
            draining: false,
            desired: BTreeMap::new(),
            sent: BTreeMap::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            last_close: None,
        }
    }

    /// Connection collision detection (RFC 4271 §6.8) between this session and `inbound`
    /// (made by [`Session::inbound`], now OpenConfirm or Established, so the peer's BGP
    /// identifier is known):
    ///
    /// - stopped (Idle), draining, or already Established: the inbound connection is
    ///   refused (Cease, Connection Rejected when Idle, else Connection Collision
    ///   Resolution);
    /// - no connection of our own (Connect, Active): the inbound one is adopted and a
    ///   connection attempt under way is abandoned;
    /// - our connection is OpenSent or OpenConfirm: the connection opened by the side with
    ///   the higher BGP identifier (compared as unsigned integers) survives. Ours when our
    ///   identifier is higher (the inbound one is refused), else the inbound one (ours is
    ///   closed with a Cease).
    ///
    /// An `inbound` session that is not OpenConfirm or Established is refused.
    pub fn offer_inbound(&mut self, now: Instant, mut inbound: Session) -> Inbound {
        let ready = matches!(inbound.state, State::OpenConfirm | State::Established);
        let peer_id = inbound.negotiated.as_ref().map(|n| n.peer_id);
        let refuse = |mut inbound: Session, sub: u8| {
            inbound.close(Some(Notification::new(code::CEASE, sub)), State::Idle);
            inbound.events.clear();
            Inbound::Refused(Box::new(inbound))
        };
        let (true, Some(peer_id)) = (ready, peer_id) else {
            return refuse(inbound, code::CEASE_CONNECTION_REJECTED);
        };
        match self.state {
            State::Idle => return refuse(inbound, code::CEASE_CONNECTION_REJECTED),
            State::Established => return refuse(inbound, code::CEASE_COLLISION),
            _ if self.draining => return refuse(inbound, code::CEASE_COLLISION),
            State::OpenSent | State::OpenConfirm
                if u32::from(self.config.router_id) > u32::from(peer_id) =>
            {
                return refuse(inbound, code::CEASE_COLLISION);
            }
            State::Connect | State::Active | State::OpenSent | State::OpenConfirm => {}
        }
        // Adopt: close ours, if any, then take the inbound connection's state.
        let old_close = match self.state {
            State::OpenSent | State::OpenConfirm => {
                let n = Notification::new(code::CEASE, code::CEASE_COLLISION);
                self.stats.notifications_sent += 1;
                let bytes = Message::Notification(n.clone()).encode(self.codec).ok();
                self.closed(CloseReason::Sent(n));
                bytes
            }
            _ => None,
        };
        self.reset();
        let s = &inbound.stats;
        self.stats.opens_sent += s.opens_sent;
        self.stats.opens_received += s.opens_received;
        self.stats.keepalives_sent += s.keepalives_sent;
        self.stats.keepalives_received += s.keepalives_received;
        self.stats.updates_received += s.updates_received;
        self.codec = inbound.codec;
        self.rx = std::mem::take(&mut inbound.rx);
        self.local = inbound.local;
        self.negotiated = inbound.negotiated.take();
        self.hold_deadline = inbound.hold_deadline;
        self.keepalive_at = inbound.keepalive_at;
        if inbound.state == State::Established {
            self.set_state(State::OpenConfirm);
            self.establish(now);
        } else {
            self.set_state(inbound.state);
        }
        Inbound::Adopted { old_close }
    }

    fn closed(&mut self, reason: CloseReason) {
        self.last_close = Some(reason.clone());
        self.events.push_back(Event::Closed(reason));
    }

    /// Bytes received on the connection.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if !matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            return;
        }
        self.rx.extend_from_slice(bytes);
        let mut used = 0;
        loop {
            match message::decode(&self.rx[used..], self.codec) {
                Ok(Some((msg, n))) => {
                    used += n;
                    self.handle_message(now, msg);
                    if !matches!(
                        self.state,
                        State::OpenSent | State::OpenConfirm | State::Established
                    ) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.error(now, &e);
                    return;
                }
            }
        }
        self.rx.drain(..used);
    }

    /// Timers: call at (or after) [`Session::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.connect_deadline) {
            self.connect_deadline = None;
            // Abandon the attempt.
            self.actions.push_back(Action::Close);
            self.backoff(now);
        }
        if due(self.retry_at) {
            self.retry_at = None;
            self.connect(now);
        }
        if due(self.hold_deadline) {
            self.hold_deadline = None;
            self.fail(now, Notification::new(code::HOLD_TIMER_EXPIRED, 0));
        }
        if due(self.keepalive_at) {
            self.send(&Message::Keepalive);
            self.stats.keepalives_sent += 1;
            self.restart_keepalive(now);
        }
        if due(self.shutdown_at) {
            self.finish_shutdown(now);
        }
    }

    // -----------------------------------------------------------------------------------

    fn set_state(&mut self, to: State) {
        if self.state != to {
            self.events.push_back(Event::StateChanged {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }

    fn connect(&mut self, now: Instant) {
        self.actions.push_back(Action::Connect);
        self.connect_deadline = Some(now + self.config.connect_time);
        self.set_state(State::Connect);
    }

    fn backoff(&mut self, now: Instant) {
        if self.draining {
            // The connection went away during a graceful shutdown: that is the end.
            self.retry_at = None;
            self.set_state(State::Idle);
            return;
        }
        self.retry_at = Some(now + self.jitter.apply(self.retry_delay));
        self.retry_delay = (self.retry_delay * 2).min(self.config.retry_max);
        self.set_state(State::Active);
    }

    /// Forget the connection's state (timers, buffers, what the peer has).
    fn reset(&mut self) {
        self.connect_deadline = None;
        self.retry_at = None;
        self.hold_deadline = None;
        self.keepalive_at = None;
        self.shutdown_at = None;
        self.rx.clear();
        self.local = None;
        self.negotiated = None;
        self.codec = Codec::default();
        self.sent.clear();
    }

    /// Close the connection (sending `notification` if one is open) and go to `to`.
    fn close(&mut self, notification: Option<Notification>, to: State) {
        match self.state {
            State::OpenSent | State::OpenConfirm | State::Established => {
                if let Some(n) = notification {
                    self.send(&Message::Notification(n.clone()));
                    self.stats.notifications_sent += 1;
                    self.closed(CloseReason::Sent(n));
                }
                self.actions.push_back(Action::Close);
            }
            State::Connect => self.actions.push_back(Action::Close),
            State::Idle | State::Active => {}
        }
        self.reset();
        self.set_state(to);
    }

    /// Send a NOTIFICATION, close, retry later.
    fn fail(&mut self, now: Instant, n: Notification) {
        self.close(Some(n), State::Active);
        self.backoff(now);
    }

    fn error(&mut self, now: Instant, e: &MessageError) {
        self.fail(now, e.notification());
    }

    fn send(&mut self, msg: &Message) {
        match msg.encode(self.codec) {
            Ok(bytes) => self.actions.push_back(Action::Send(bytes)),
            // Our messages are built to fit; this is a bug, not a peer's fault.
            Err(e) => debug_assert!(false, "cannot encode our own message: {e}"),
        }
    }

    fn restart_keepalive(&mut self, now: Instant) {
        let keepalive = self.negotiated.as_ref().map_or(0, |n| n.keepalive);
        self.keepalive_at =
            (keepalive > 0).then(|| now + self.jitter.apply(Duration::from_secs(keepalive.into())));
    }

    fn restart_hold(&mut self, now: Instant) {
        if let (Some(n), State::OpenConfirm | State::Established) = (&self.negotiated, self.state) {
            self.hold_deadline =
                (n.hold_time > 0).then(|| now + Duration::from_secs(n.hold_time.into()));
        }
    }

    fn our_open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .config
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::FourOctetAs(self.config.local_as));
        if let Some(gr) = self.config.graceful_restart {
            capabilities.push(Capability::GracefulRestart(GracefulRestart {
                restarted: false,
                restart_time: gr.restart_time,
                families: self
                    .config
                    .families
                    .iter()
                    .map(|f| (*f, gr.forwarding_preserved))
                    .collect(),
            }));
        }
        Open {
            version: BGP_VERSION,
            my_as: u16::try_from(self.config.local_as).unwrap_or(AS_TRANS),
            hold_time: self.config.hold_time,
            bgp_id: self.config.router_id,
            capabilities,
        }
    }

    /// Check the peer's OPEN and work out what is agreed.
    pub(crate) fn negotiate(
        config: &SessionConfig,
        open: &Open,
    ) -> Result<Negotiated, MessageError> {
        if open.version != BGP_VERSION {
            return Err(MessageError::UnsupportedVersion(open.version));
        }
        if !open.four_octet_as() && open.my_as == AS_TRANS {
            return Err(MessageError::BadPeerAs(u32::from(AS_TRANS)));
        }
        let peer_as = open.asn();
        let ok = match config.peer_as {
            PeerAs::Fixed(asn) => peer_as == asn,
            PeerAs::Internal => peer_as == config.local_as,
            PeerAs::External => peer_as != config.local_as,
        };
        if !ok || peer_as == 0 {
            return Err(MessageError::BadPeerAs(peer_as));
        }
        if matches!(open.hold_time, 1 | 2) {
            return Err(MessageError::UnacceptableHoldTime(open.hold_time));
        }
        let internal = peer_as == config.local_as;
        if open.bgp_id.is_unspecified() || (internal && open.bgp_id == config.router_id) {
            return Err(MessageError::BadBgpId(open.bgp_id));
        }
        let hold_time = open.hold_time.min(config.hold_time);
        let keepalive = if hold_time == 0 {
            0
        } else {
            let third = (hold_time / 3).max(1);
            config.keepalive.map_or(third, |k| k.min(third))
        };
        let theirs: Vec<Family> = open.families().collect();
        let families = config
            .families
            .iter()
            .copied()
            .filter(|f| theirs.contains(f) || (theirs.is_empty() && *f == Family::IPV4_UNICAST))
            .collect();
        Ok(Negotiated {
            peer_as,
            peer_id: open.bgp_id,
            internal,
            hold_time,
            keepalive,
            four_octet_as: open.four_octet_as(),
            families,
            route_refresh: open.route_refresh(),
            graceful_restart: config.graceful_restart.is_some()
                && open.graceful_restart().is_some(),
        })
    }

    fn unexpected(&mut self, now: Instant) {
        // RFC 6608 subcodes: unexpected message in OpenSent (1), OpenConfirm (2),
        // Established (3).
        let sub = match self.state {
            State::OpenSent => 1,
            State::OpenConfirm => 2,
            _ => 3,
        };
        self.fail(now, Notification::new(code::FSM, sub));
    }

    fn handle_message(&mut self, now: Instant, msg: Message) {
        if let Message::Notification(n) = msg {
            self.stats.notifications_received += 1;
            self.closed(CloseReason::Received(n));
            self.close(None, State::Active);
            self.backoff(now);
            return;
        }
        self.restart_hold(now);
        match (self.state, msg) {
            (State::OpenSent, Message::Open(open)) => {
                self.stats.opens_received += 1;
                match Self::negotiate(&self.config, &open) {
                    Ok(n) => {
                        self.codec = Codec {
                            four_octet_as: n.four_octet_as,
                        };
                        self.negotiated = Some(n);
                        self.send(&Message::Keepalive);
                        self.stats.keepalives_sent += 1;
                        self.set_state(State::OpenConfirm);
                        self.restart_hold(now);
                        self.restart_keepalive(now);
                    }
                    Err(e) => self.error(now, &e),
                }
            }
            (State::OpenConfirm, Message::Keepalive) => {
                self.stats.keepalives_received += 1;
                self.establish(now);
            }
            (State::Established, Message::Keepalive) => self.stats.keepalives_received += 1,
            (State::Established, Message::Update(_)) => {
                // Validated by the codec; we do not keep received routes.
                self.stats.updates_received += 1;
            }
            (State::Established, Message::RouteRefresh(family)) => {
                self.stats.route_refreshes_received += 1;
                self.sent.retain(|p, _| Family::of(p) != family);
                self.sync(now);
            }
            _ => self.unexpected(now),
        }
    }

    /// OpenConfirm → Established: announce the routes.
    fn establish(&mut self, now: Instant) {
        self.retry_delay = self.config.retry_min;
        self.stats.established_transitions += 1;
        self.set_state(State::Established);
        if let Some(n) = self.negotiated.clone() {
            self.events.push_back(Event::Established(n));
        }
        self.sync(now);
        self.end_of_rib(now);
    }

    fn end_of_rib(&mut self, now: Instant) {
        let Some(n) = self.negotiated.clone() else {
            return;
        };
        if !n.graceful_restart {
            return;
        }
        for f in n.families {
            let update = if f == Family::IPV4_UNICAST {
                Update::default()
            } else {
                Update {
                    attributes: vec![PathAttribute::MpUnreach(MpUnreach {
                        family: f,
                        withdrawn: vec![],
                    })],
                    ..Update::default()
                }
            };
            self.send_update(now, &update);
        }
    }

    fn send_update(&mut self, now: Instant, update: &Update) {
        self.send(&Message::Update(update.clone()));
        self.stats.updates_sent += 1;
        self.restart_keepalive(now);
    }

    fn next_hop(&self, family: Family) -> Option<IpAddr> {
        let local = self.local.map(|a| a.ip());
        if family == Family::IPV4_UNICAST {
            self.config
                .ipv4_next_hop
                .map(IpAddr::V4)
                .or(local.filter(IpAddr::is_ipv4))
        } else {
            self.config
                .ipv6_next_hop
                .map(IpAddr::V6)
                .or(local.filter(IpAddr::is_ipv6))
        }
    }

    /// Send the difference between the desired routes and what the peer has.
    fn sync(&mut self, now: Instant) {
        let Some(neg) = self.negotiated.clone() else {
            return;
        };
        let usable = |f: Family| neg.families.contains(&f) && self.next_hop(f).is_some();
        let mut draining = Interner::default();
        let target: BTreeMap<IpNet, Arc<RouteAttributes>> = self
            .desired
            .iter()
            .filter(|(p, a)| usable(Family::of(p)) && fits(a))
            .map(|(p, a)| {
                if !self.draining {
                    return (*p, a.clone());
                }
                let mut a = RouteAttributes::clone(a);
                a.communities.push(GRACEFUL_SHUTDOWN);
                (*p, draining.get(Arc::new(a)))
            })
            .collect();

        let withdrawn: Vec<IpNet> = self
            .sent
            .keys()
            .filter(|p| !target.contains_key(p))
            .copied()
            .collect();
        let mut groups: BTreeMap<(Family, &RouteAttributes), Vec<IpNet>> = BTreeMap::new();
        for (p, a) in &target {
            let a: &RouteAttributes = a;
            if self.sent.get(p).map(|s| &**s) != Some(a) {
                groups.entry((Family::of(p), a)).or_default().push(*p);
            }
        }
        let mut updates = Vec::new();
        for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            let prefixes: Vec<IpNet> = withdrawn
                .iter()
                .filter(|p| Family::of(p) == family)
                .copied()
                .collect();
            updates.extend(pack_withdrawals(family, &prefixes, self.codec));
        }
        for ((family, attrs), prefixes) in &groups {
            let Some(nh) = self.next_hop(*family) else {
                continue;
            };
            let attributes = self.path_attributes(&neg, *family, nh, attrs);
            updates.extend(pack_announcements(
                *family, attributes, prefixes, self.codec,
            ));
        }
        for update in &updates {
            self.send_update(now, update);
        }
        self.sent = target;
    }

    fn path_attributes(
        &self,
        neg: &Negotiated,
        family: Family,
        next_hop: IpAddr,
        attrs: &RouteAttributes,
    ) -> Vec<PathAttribute> {
        let mut out = Vec::new();
        if family != Family::IPV4_UNICAST {
            // RFC 7606 §5.1: MP_REACH_NLRI first.
            out.push(PathAttribute::MpReach(MpReach {
                family,
                next_hops: vec![next_hop],
                nlri: vec![],
            }));
        }
        out.push(PathAttribute::Origin(Origin::Igp));
        let local_as = self.config.local_as;
        if neg.internal {
            out.push(PathAttribute::AsPath(vec![]));
        } else {
            out.push(PathAttribute::AsPath(vec![AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![local_as],
            }]));
        }
        if let (IpAddr::V4(nh), true) = (next_hop, family == Family::IPV4_UNICAST) {
            out.push(PathAttribute::NextHop(nh));
        }
        if neg.internal {
            out.push(PathAttribute::LocalPref(attrs.local_pref.unwrap_or(100)));
        }
        if !attrs.communities.is_empty() {
            out.push(PathAttribute::Communities(attrs.communities.clone()));
        }
        if !neg.internal && !neg.four_octet_as && local_as > u32::from(u16::MAX) {
            out.push(PathAttribute::As4Path(vec![AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![local_as],
            }]));
        }
        if !attrs.large_communities.is_empty() {
            out.push(PathAttribute::LargeCommunities(
                attrs.large_communities.clone(),
            ));
        }
        out
    }
}

/// One shared allocation per distinct set of attributes, normalized.
#[derive(Default)]
struct Interner(BTreeSet<Arc<RouteAttributes>>);

impl Interner {
    fn get(&mut self, attrs: Arc<RouteAttributes>) -> Arc<RouteAttributes> {
        let attrs = if attrs.is_normalized() {
            attrs
        } else {
            Arc::new(RouteAttributes::clone(&attrs).normalized())
        };
        if let Some(a) = self.0.get(&*attrs) {
            return a.clone();
        }
        self.0.insert(attrs.clone());
        attrs
    }
}

/// Whether a route with these attributes fits in an UPDATE whatever else the session adds
/// (MP_REACH_NLRI with two next hops, AS4_PATH, LOCAL_PREF, GRACEFUL_SHUTDOWN, a /128):
/// about 970 communities at most. Routes that do not fit are not announced.
fn fits(attrs: &RouteAttributes) -> bool {
    attrs.communities.len() * 4 + attrs.large_communities.len() * 12 + 200 <= MAX_MESSAGE_LEN
}

/// Split `prefixes` into chunks whose encoded NLRI fit in `budget` bytes.
fn chunks(prefixes: &[IpNet], budget: usize) -> Vec<&[IpNet]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, p) in prefixes.iter().enumerate() {
        let n = message::prefix_len(p);
        if used + n > budget && i > start {
            out.push(&prefixes[start..i]);
            start = i;
            used = 0;
        }
        used += n;
    }
    if start < prefixes.len() {
        out.push(&prefixes[start..]);
    }
    out
}

fn v4(prefixes: &[IpNet]) -> Vec<ipnet::Ipv4Net> {
    prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V4(p) => Some(*p),
            IpNet::V6(_) => None,
        })
        .collect()
}

fn pack_withdrawals(family: Family, prefixes: &[IpNet], codec: Codec) -> Vec<Update> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    let empty_mp = || {
        vec![PathAttribute::MpUnreach(MpUnreach {
            family,
            withdrawn: vec![],
        })]
    };
    let base = if family == Family::IPV4_UNICAST {
        Vec::new()
    } else {
        empty_mp()
    };
    let base_len = message::update_base_len(&base, codec).unwrap_or(MAX_MESSAGE_LEN);
    chunks(prefixes, MAX_MESSAGE_LEN.saturating_sub(base_len))
        .into_iter()
        .map(|chunk| {
            if family == Family::IPV4_UNICAST {
                Update {
                    withdrawn: v4(chunk),
                    ..Update::default()
                }
            } else {
                Update {
                    attributes: vec![PathAttribute::MpUnreach(MpUnreach {
                        family,
                        withdrawn: chunk.to_vec(),
                    })],
                    ..Update::default()
                }
            }
        })
        .collect()
}

fn pack_announcements(
    family: Family,
    attributes: Vec<PathAttribute>,
    prefixes: &[IpNet],
    codec: Codec,
) -> Vec<Update> {
    let base_len = message::update_base_len(&attributes, codec).unwrap_or(MAX_MESSAGE_LEN);
    chunks(prefixes, MAX_MESSAGE_LEN.saturating_sub(base_len))
        .into_iter()
        .map(|chunk| {
            if family == Family::IPV4_UNICAST {
                Update {
                    withdrawn: vec![],
                    attributes: attributes.clone(),
                    nlri: v4(chunk),
                }
            } else {
                let mut attributes = attributes.clone();
                for a in &mut attributes {
                    if let PathAttribute::MpReach(m) = a {
                        m.nlri = chunk.to_vec();
                    }
                }
                Update {
                    withdrawn: vec![],
                    attributes,
                    nlri: vec![],
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
