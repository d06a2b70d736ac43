//! One BFD session (RFC 5880 asynchronous mode) as a sans-IO state machine.
//!
//! Inputs: received datagrams ([`Session::handle_datagram`] / [`Session::handle_packet`]),
//! timer expiries ([`Session::handle_timeout`]) and commands ([`Session::set_admin_down`],
//! [`Session::set_admin_up`], [`Session::reconfigure`]), each with the current
//! [`Instant`]. Outputs: packets to send ([`Session::poll_transmit`]), the next deadline
//! ([`Session::poll_timeout`]) and [`Event`]s ([`Session::poll_event`]).
//!
//! Driver loop: after creating the session and after every `handle_*` or command call,
//! drain `poll_transmit(now)` and `poll_event()`, then sleep until `poll_timeout()` and
//! call `handle_timeout(now)`.
//!
//! Timers (RFC 5880 §6.8.2-§6.8.4, §6.8.7):
//! - transmit interval = max(our Desired Min TX, remote Required Min RX), reduced by a
//!   random 0-25 % (10-25 % when our Detect Mult is 1) per packet;
//! - detection time = remote Detect Mult × max(our Required Min RX, remote Desired Min TX);
//! - while not Up we advertise a Desired Min TX of at least 1 s (slow start);
//! - a change of our advertised intervals while Up starts a Poll sequence; an increased
//!   TX interval or a reduced RX interval only takes effect once the Final arrives.
//!
//! Not implemented: Demand mode on our side (we honour a peer's D bit by stopping
//! periodic transmission once both sides are Up), the Echo function, authentication.
//! In AdminDown the session keeps sending AdminDown packets at the slow-start rate.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::{SessionConfig, TtlCheck};
use crate::packet::{ControlPacket, Diag, PACKET_LEN, ParseError, State};
use crate::rng::{JitterRng, SplitMix64};

/// Desired Min TX advertised while the session is not Up (RFC 5880 §6.8.3).
pub const SLOW_TX_US: u32 = 1_000_000;

/// Something the session's user should know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The session reached Up.
    Up,
    /// The session left Up (to Down, or AdminDown by [`Session::set_admin_down`]).
    Down {
        /// Why: [`Diag::ControlDetectionTimeExpired`], [`Diag::NeighborSignaledDown`]
        /// or [`Diag::AdministrativelyDown`].
        diag: Diag,
    },
}

/// Counters, in the spirit of MetalLB's FRR-mode `metallb_bfd_*` metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Control packets accepted by [`Session::handle_packet`].
    pub control_packets_in: u64,
    /// Control packets returned by [`Session::poll_transmit`].
    pub control_packets_out: u64,
    /// Datagrams or packets discarded with an [`RxError`].
    pub discarded: u64,
    /// Transitions to Up.
    pub up_events: u64,
    /// Transitions out of Up.
    pub down_events: u64,
}

/// Why a received datagram was discarded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RxError {
    /// The packet failed a wire-level check.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// TTL / hop limit refused (RFC 5881 §5, RFC 5883 §5).
    #[error("TTL {ttl} refused ({check:?})")]
    Ttl {
        /// The received TTL or hop limit.
        ttl: u8,
        /// The check applied.
        check: TtlCheck,
    },
    /// Your Discriminator is nonzero and not ours (RFC 5880 §6.8.6).
    #[error("your discriminator {got} does not select this session ({expected})")]
    DiscriminatorMismatch {
        /// Our discriminator.
        expected: u32,
        /// Your Discriminator in the packet.
        got: u32,
    },
}

fn duration_us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// One BFD session.
#[derive(Debug)]
pub struct Session<R = SplitMix64> {
    cfg: SessionConfig,
    rng: R,
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diag,
    /// Desired Min TX we advertise (slow start applied), µs.
    desired_tx_us: u32,
    /// Required Min RX we advertise, µs.
    required_rx_us: u32,
    /// Desired Min TX in effect for our own transmit interval, µs.
    active_tx_us: u32,
    /// Required Min RX in effect for our detection time, µs.
    active_rx_us: u32,
    remote_min_rx_us: u32,
    remote_desired_tx_us: u32,
    remote_detect_mult: u8,
    remote_demand: bool,
    poll_active: bool,
    /// Parameters changed again during the current Poll: one more Final is needed.
    poll_dirty: bool,
    final_pending: bool,
    next_tx: Option<Instant>,
    last_rx: Option<Instant>,
    events: VecDeque<Event>,
    stats: SessionStats,
}

impl<R: JitterRng> Session<R> {
    /// A new session in state Down. `local_discriminator` must be unique among this
    /// system's sessions. An active session sends its first packet at `now`.
    pub fn new(
        config: SessionConfig,
        local_discriminator: NonZeroU32,
        rng: R,
        now: Instant,
    ) -> Session<R> {
        let required_rx_us = duration_us(config.required_min_rx);
        let desired_tx_us = duration_us(config.desired_min_tx).max(SLOW_TX_US);
        Session {
            next_tx: if config.passive { None } else { Some(now) },
            cfg: config,
            rng,
            state: State::Down,
            remote_state: State::Down,
            local_discr: local_discriminator.get(),
            remote_discr: 0,
            local_diag: Diag::None,
            desired_tx_us,
            required_rx_us,
            active_tx_us: desired_tx_us,
            active_rx_us: required_rx_us,
            remote_min_rx_us: 1,
            remote_desired_tx_us: 0,
            remote_detect_mult: 0,
            remote_demand: false,
            poll_active: false,
            poll_dirty: false,
            final_pending: false,
            last_rx: None,
            events: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// `bfd.SessionState`.
    pub fn state(&self) -> State {
        self.state
    }

    /// `bfd.RemoteSessionState`.
    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    /// `bfd.LocalDiag`.
    pub fn local_diag(&self) -> Diag {
        self.local_diag
    }

    /// `bfd.LocalDiscr`.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    /// `bfd.RemoteDiscr` (zero until the peer is heard, and after a detection timeout).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    /// The configuration in use.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Packet and event counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Whether a Poll sequence is in progress.
    pub fn poll_in_progress(&self) -> bool {
        self.poll_active
    }

    /// The Desired Min TX Interval we currently advertise.
    pub fn advertised_desired_min_tx(&self) -> Duration {
        Duration::from_micros(u64::from(self.desired_tx_us))
    }

    /// The transmit interval before jitter: max(our Desired Min TX in effect, remote
    /// Required Min RX). `None` while the peer asks for no packets (Required Min RX 0).
    pub fn tx_interval(&self) -> Option<Duration> {
        if self.remote_min_rx_us == 0 {
            return None;
        }
        let us = self.active_tx_us.max(self.remote_min_rx_us);
        Some(Duration::from_micros(u64::from(us)))
    }

    /// The detection time: remote Detect Mult × max(our Required Min RX in effect, remote
    /// Desired Min TX). `None` until a packet has been received.
    pub fn detection_time(&self) -> Option<Duration> {
        self.last_rx?;
        let per = u64::from(self.active_rx_us.max(self.remote_desired_tx_us));
        Some(Duration::from_micros(
            u64::from(self.remote_detect_mult) * per,
        ))
    }

    fn detection_deadline(&self) -> Option<Instant> {
        if self.state == State::AdminDown {
            return None;
        }
        Some(self.last_rx? + self.detection_time()?)
    }

    /// The next instant [`Session::handle_timeout`] (and [`Session::poll_transmit`])
    /// has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = if self.may_transmit() {
            self.next_tx
        } else {
            None
        };
        match (tx, self.detection_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Processes timer expiry: the detection timer (RFC 5880 §6.8.4). Transmission is
    /// driven by [`Session::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.detection_deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        if matches!(self.state, State::Init | State::Up) {
            self.local_diag = Diag::ControlDetectionTimeExpired;
            self.go_to(State::Down, now);
        }
        // §6.8.1: bfd.RemoteDiscr is reset when the detection time expires; forget the
        // rest of what the peer told us too.
        self.remote_discr = 0;
        self.remote_state = State::Down;
        self.remote_min_rx_us = 1;
        self.remote_desired_tx_us = 0;
        self.remote_detect_mult = 0;
        self.remote_demand = false;
        self.last_rx = None;
        if self.cfg.passive {
            self.next_tx = None;
        }
    }

    /// Parses and processes a received UDP payload with its TTL / hop limit.
    pub fn handle_datagram(&mut self, now: Instant, buf: &[u8], ttl: u8) -> Result<(), RxError> {
        if !self.cfg.ttl_check.accepts(ttl) {
            self.stats.discarded += 1;
            return Err(RxError::Ttl {
                ttl,
                check: self.cfg.ttl_check,
            });
        }
        match ControlPacket::parse(buf) {
            Ok(pkt) => self.handle_packet(now, &pkt),
            Err(e) => {
                self.stats.discarded += 1;
                Err(e.into())
            }
        }
    }

    /// Processes a parsed control packet (RFC 5880 §6.8.6 after the wire checks).
    pub fn handle_packet(&mut self, now: Instant, pkt: &ControlPacket) -> Result<(), RxError> {
        if pkt.your_discriminator != 0 && pkt.your_discriminator != self.local_discr {
            self.stats.discarded += 1;
            return Err(RxError::DiscriminatorMismatch {
                expected: self.local_discr,
                got: pkt.your_discriminator,
            });
        }
        self.stats.control_packets_in += 1;
        self.remote_discr = pkt.my_discriminator;
        self.remote_state = pkt.state;
        self.remote_demand = pkt.demand;
        self.remote_min_rx_us = pkt.required_min_rx_us;
        self.remote_desired_tx_us = pkt.desired_min_tx_us;
        self.remote_detect_mult = pkt.detect_mult;

        if pkt.final_ && self.poll_active {
            if self.poll_dirty {
                // The Final may answer a Poll sent before the latest change: poll again.
                self.poll_dirty = false;
            } else {
                self.poll_active = false;
                self.active_tx_us = self.desired_tx_us;
                self.active_rx_us = self.required_rx_us;
            }
        }

        if self.state == State::AdminDown {
            // §6.8.6: discarded here (no state change, no Final, no detection reset).
            self.restart_tx_if_idle(now);
            return Ok(());
        }
        self.last_rx = Some(now);

        if pkt.state == State::AdminDown {
            if self.state != State::Down {
                self.local_diag = Diag::NeighborSignaledDown;
                self.go_to(State::Down, now);
            }
        } else {
            match (self.state, pkt.state) {
                (State::Down, State::Down) => self.go_to(State::Init, now),
                (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                    self.go_to(State::Up, now)
                }
                (State::Up, State::Down) => {
                    self.local_diag = Diag::NeighborSignaledDown;
                    self.go_to(State::Down, now);
                }
                _ => {}
            }
        }

        if pkt.poll {
            self.final_pending = true;
            self.send_now(now);
        }
        self.restart_tx_if_idle(now);
        Ok(())
    }

    /// Takes the session administratively down (RFC 5880 §6.8.16).
    pub fn set_admin_down(&mut self, now: Instant) {
        if self.state != State::AdminDown {
            self.local_diag = Diag::AdministrativelyDown;
            self.go_to(State::AdminDown, now);
        }
    }

    /// Leaves AdminDown for Down; nothing happens in any other state.
    pub fn set_admin_up(&mut self, now: Instant) {
        if self.state == State::AdminDown {
            self.local_diag = Diag::None;
            self.go_to(State::Down, now);
        }
    }

    /// Changes the session's intervals, detect multiplier, passive role and TTL check.
    /// A change of the advertised intervals while Up starts a Poll sequence.
    pub fn reconfigure(&mut self, now: Instant, config: SessionConfig) {
        self.cfg = config;
        self.update_intervals(now);
        if !self.cfg.passive && self.next_tx.is_none() {
            self.send_now(now);
        }
    }

    /// The next packet to send, if one is due at `now`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<[u8; PACKET_LEN]> {
        if !self.may_transmit() {
            self.next_tx = None;
            return None;
        }
        let periodic = self.periodic_allowed();
        if self.next_tx.is_none_or(|t| now < t) {
            return None;
        }
        if !(periodic || self.final_pending || self.poll_active) {
            // Nothing to send until the peer asks for packets again.
            self.next_tx = None;
            return None;
        }
        let final_ = self.final_pending;
        self.final_pending = false;
        let pkt = ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll: self.poll_active && !final_,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.cfg.detect_mult.max(1),
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx_us: self.desired_tx_us,
            required_min_rx_us: self.required_rx_us,
            required_min_echo_rx_us: 0,
        };
        self.next_tx = Some(now + self.jittered_interval());
        self.stats.control_packets_out += 1;
        Some(pkt.build())
    }

    /// §6.8.7: a passive session sends nothing until it knows the peer's discriminator.
    fn may_transmit(&self) -> bool {
        !(self.cfg.passive && self.remote_discr == 0)
    }

    /// §6.8.7: no periodic packets while the peer's Required Min RX is zero, or while it
    /// runs Demand mode and both sides are Up.
    fn periodic_allowed(&self) -> bool {
        self.remote_min_rx_us != 0
            && !(self.remote_demand && self.state == State::Up && self.remote_state == State::Up)
    }

    /// A passive session hearing its peer, or a peer that lifted Required Min RX 0 or
    /// left Demand mode: start (again) at once.
    fn restart_tx_if_idle(&mut self, now: Instant) {
        if self.next_tx.is_none() && self.may_transmit() && self.periodic_allowed() {
            self.send_now(now);
        }
    }

    fn send_now(&mut self, now: Instant) {
        self.next_tx = Some(self.next_tx.map_or(now, |t| t.min(now)));
    }

    fn jittered_interval(&mut self) -> Duration {
        // With the peer asking for no periodic packets, the timer only paces Polls.
        let base = u64::from(self.active_tx_us.max(self.remote_min_rx_us).max(1));
        // §6.8.7: 75-100 % of the interval, 75-90 % when bfd.DetectMult is 1.
        let span: u64 = if self.cfg.detect_mult <= 1 {
            1500
        } else {
            2500
        };
        let factor = 7500 + self.rng.next_u64() % (span + 1);
        // Never zero: `poll_transmit` must not return a packet twice for one `now`.
        Duration::from_micros((base * factor / 10_000).max(1))
    }

    fn go_to(&mut self, new: State, now: Instant) {
        let old = self.state;
        if old == new {
            return;
        }
        self.state = new;
        if new == State::Up {
            self.stats.up_events += 1;
            self.events.push_back(Event::Up);
        } else if old == State::Up {
            self.stats.down_events += 1;
            self.events.push_back(Event::Down {
                diag: self.local_diag,
            });
        }
        self.update_intervals(now);
        self.send_now(now);
    }

    /// Recomputes the advertised intervals after a state or configuration change
    /// (RFC 5880 §6.8.3).
    fn update_intervals(&mut self, now: Instant) {
        let cfg_tx = duration_us(self.cfg.desired_min_tx).max(1);
        let tx = if self.state == State::Up {
            cfg_tx
        } else {
            cfg_tx.max(SLOW_TX_US)
        };
        let rx = duration_us(self.cfg.required_min_rx);
        if self.state != State::Up {
            // No Poll outside Up: apply at once.
            self.desired_tx_us = tx;
            self.required_rx_us = rx;
            self.active_tx_us = tx;
            self.active_rx_us = rx;
            self.poll_active = false;
            self.poll_dirty = false;
            return;
        }
        if tx == self.desired_tx_us && rx == self.required_rx_us {
            return;
        }
        self.desired_tx_us = tx;
        self.required_rx_us = rx;
        // A faster TX or a longer detection time is safe at once; a slower TX or a
        // shorter detection time waits for the Final.
        if tx < self.active_tx_us {
            self.active_tx_us = tx;
        }
        if rx > self.active_rx_us {
            self.active_rx_us = rx;
        }
        if self.poll_active {
            self.poll_dirty = true;
        } else {
            self.poll_active = true;
        }
        self.send_now(now);
    }
}
