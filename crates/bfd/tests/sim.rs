//! Two sessions wired back to back through an in-memory link, in simulated time.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use ferrolb_bfd::{
    ControlPacket, Diag, Event, JitterRng, RxError, Session, SessionConfig, SplitMix64, State,
    TtlCheck,
};

const DELAY: Duration = Duration::from_millis(1);

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn cfg(tx: u64, rx: u64, mult: u8) -> SessionConfig {
    SessionConfig {
        desired_min_tx: ms(tx),
        required_min_rx: ms(rx),
        detect_mult: mult,
        passive: false,
        ttl_check: TtlCheck::SingleHop,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

struct Sim {
    start: Instant,
    now: Instant,
    a: Session,
    b: Session,
    /// (delivery time, destination, bytes)
    inflight: VecDeque<(Instant, Side, [u8; 24])>,
    link_up: bool,
    /// Percentage of packets lost, drawn from `loss_rng`.
    loss: u64,
    loss_rng: SplitMix64,
    /// (send time, sender, packet)
    sent: Vec<(Instant, Side, ControlPacket)>,
    /// (delivery time, receiver, packet)
    delivered: Vec<(Instant, Side, ControlPacket)>,
    events: Vec<(Instant, Side, Event)>,
}

impl Sim {
    fn new(ca: SessionConfig, cb: SessionConfig) -> Sim {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            a: Session::new(
                ca,
                NonZeroU32::new(0x1111).unwrap(),
                SplitMix64::new(1),
                start,
            ),
            b: Session::new(
                cb,
                NonZeroU32::new(0x2222).unwrap(),
                SplitMix64::new(2),
                start,
            ),
            inflight: VecDeque::new(),
            link_up: true,
            loss: 0,
            loss_rng: SplitMix64::new(42),
            sent: Vec::new(),
            delivered: Vec::new(),
            events: Vec::new(),
        }
    }

    fn at(&self, d: Duration) -> Instant {
        self.start + d
    }

    fn pump(&mut self) {
        for side in [Side::A, Side::B] {
            let now = self.now;
            let s = match side {
                Side::A => &mut self.a,
                Side::B => &mut self.b,
            };
            while let Some(bytes) = s.poll_transmit(now) {
                let pkt = ControlPacket::parse(&bytes).expect("we build valid packets");
                self.sent.push((now, side, pkt));
                if self.link_up && self.loss_rng.next_u64() % 100 >= self.loss {
                    let to = if side == Side::A { Side::B } else { Side::A };
                    self.inflight.push_back((now + DELAY, to, bytes));
                }
            }
            while let Some(ev) = s.poll_event() {
                self.events.push((now, side, ev));
            }
        }
    }

    fn run_until(&mut self, end: Instant) {
        for _ in 0..1_000_000 {
            self.pump();
            let next = [
                self.a.poll_timeout(),
                self.b.poll_timeout(),
                self.inflight.front().map(|x| x.0),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => {
                    self.now = end;
                    return;
                }
            }
            while self.inflight.front().is_some_and(|x| x.0 <= self.now) {
                let (_, to, bytes) = self.inflight.pop_front().unwrap();
                let now = self.now;
                let s = match to {
                    Side::A => &mut self.a,
                    Side::B => &mut self.b,
                };
                s.handle_datagram(now, &bytes, 255).expect("valid packet");
                self.delivered
                    .push((now, to, ControlPacket::parse(&bytes).unwrap()));
                self.pump();
            }
            let now = self.now;
            self.a.handle_timeout(now);
            self.b.handle_timeout(now);
        }
        panic!("simulation did not converge");
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    fn events_of(&self, side: Side) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.1 == side)
            .map(|e| e.2)
            .collect()
    }

    fn sent_by(&self, side: Side) -> Vec<(Instant, ControlPacket)> {
        self.sent
            .iter()
            .filter(|e| e.1 == side)
            .map(|e| (e.0, e.2))
            .collect()
    }
}

#[test]
fn sessions_come_up_and_settle_on_configured_timers() {
    let mut sim = Sim::new(SessionConfig::default(), SessionConfig::default());
    sim.run_for(ms(100));
    // Three-way handshake: Down -> Init -> Up within a few packet delays.
    assert_eq!(sim.a.state(), State::Up);
    assert_eq!(sim.b.state(), State::Up);
    assert_eq!(sim.events_of(Side::A), vec![Event::Up]);
    assert_eq!(sim.events_of(Side::B), vec![Event::Up]);
    // Before Up every packet advertised the slow-start 1 s.
    let first = sim.sent_by(Side::A)[0].1;
    assert_eq!(first.state, State::Down);
    assert_eq!(first.desired_min_tx_us, 1_000_000);
    assert_eq!(first.your_discriminator, 0);
    sim.run_for(ms(2000));
    // Slow start ended with a Poll sequence; both run at 300 ms x 3 now.
    for s in [&sim.a, &sim.b] {
        assert!(!s.poll_in_progress());
        assert_eq!(s.advertised_desired_min_tx(), ms(300));
        assert_eq!(s.tx_interval(), Some(ms(300)));
        assert_eq!(s.detection_time(), Some(ms(900)));
    }
    assert_eq!(sim.a.remote_discriminator(), 0x2222);
    assert_eq!(sim.b.remote_discriminator(), 0x1111);
    // Up packets carry both discriminators.
    let last = sim.sent_by(Side::A).last().unwrap().1;
    assert_eq!(last.state, State::Up);
    assert_eq!(last.my_discriminator, 0x1111);
    assert_eq!(last.your_discriminator, 0x2222);
    assert_eq!(last.required_min_echo_rx_us, 0);
    assert!(sim.sent_by(Side::A).iter().any(|p| p.1.poll));
    assert!(sim.sent_by(Side::B).iter().any(|p| p.1.final_));
}

#[test]
fn negotiated_intervals_follow_rfc5880_6_8_3_and_6_8_4() {
    let mut sim = Sim::new(cfg(100, 500, 3), cfg(200, 50, 5));
    sim.run_for(ms(5000));
    assert_eq!(sim.a.state(), State::Up);
    assert_eq!(sim.b.state(), State::Up);
    // TX interval = max(our desired TX, their required RX).
    assert_eq!(sim.a.tx_interval(), Some(ms(100)));
    assert_eq!(sim.b.tx_interval(), Some(ms(500)));
    // Detection time = remote mult x max(our required RX, remote desired TX).
    assert_eq!(sim.a.detection_time(), Some(ms(5 * 500)));
    assert_eq!(sim.b.detection_time(), Some(ms(3 * 100)));
    // Jitter: consecutive periodic packets are 75-100 % of the interval apart.
    let check_gaps = |side: Side, interval: Duration| {
        let pkts: Vec<_> = sim
            .sent_by(side)
            .into_iter()
            .filter(|(t, p)| *t > sim.at(ms(3000)) && !p.poll && !p.final_)
            .collect();
        assert!(pkts.len() > 3);
        for w in pkts.windows(2) {
            let gap = w[1].0 - w[0].0;
            assert!(gap >= interval * 3 / 4 && gap <= interval, "gap {gap:?}");
        }
    };
    check_gaps(Side::A, ms(100));
    check_gaps(Side::B, ms(500));
}

#[test]
fn lost_peer_is_declared_down_within_detection_time() {
    let mut sim = Sim::new(cfg(100, 100, 3), cfg(100, 100, 3));
    sim.run_for(ms(3000));
    assert_eq!(sim.b.state(), State::Up);
    assert_eq!(sim.b.detection_time(), Some(ms(300)));
    let cut = sim.now;
    sim.link_up = false;
    sim.inflight.clear();
    sim.run_for(ms(1000));
    let (down_at, _, ev) = *sim
        .events
        .iter()
        .find(|e| e.1 == Side::B && e.0 > cut)
        .expect("B saw A go down");
    assert_eq!(
        ev,
        Event::Down {
            diag: Diag::ControlDetectionTimeExpired
        }
    );
    let last_rx = sim
        .delivered
        .iter()
        .filter(|d| d.1 == Side::B && d.0 <= cut)
        .map(|d| d.0)
        .max()
        .unwrap();
    // Exactly detect mult x interval after the last packet heard...
    assert_eq!(down_at - last_rx, ms(300));
    // ... and so between 300 ms and 300 ms + one interval after A's last transmission
    // before the cut, and at most 300 ms after the cut itself.
    assert!(down_at - cut <= ms(300));
    assert!(down_at - cut >= ms(300) - ms(100));
    assert_eq!(sim.b.state(), State::Down);
    assert_eq!(sim.b.local_diag(), Diag::ControlDetectionTimeExpired);
    assert_eq!(sim.b.remote_discriminator(), 0);
    assert_eq!(sim.a.state(), State::Down);
    // Down again: back to the 1 s slow-start rate.
    let after: Vec<_> = sim
        .sent_by(Side::B)
        .into_iter()
        .filter(|(t, _)| *t > down_at)
        .collect();
    assert!(after.iter().all(|(_, p)| p.desired_min_tx_us == 1_000_000));
    for w in after.windows(2) {
        assert!(w[1].0 - w[0].0 >= ms(750));
    }
    // The link comes back: Up again.
    sim.link_up = true;
    sim.run_for(ms(3000));
    assert_eq!(sim.a.state(), State::Up);
    assert_eq!(sim.b.state(), State::Up);
}

#[test]
fn passive_side_waits_for_the_peer() {
    let mut passive = cfg(300, 300, 3);
    passive.passive = true;
    // Both passive: nobody ever speaks.
    let mut sim = Sim::new(passive.clone(), passive.clone());
    sim.run_for(ms(5000));
    assert!(sim.sent.is_empty());
    assert_eq!(sim.a.poll_timeout(), None);
    assert_eq!(sim.a.state(), State::Down);

    // A active, B passive: B's first packet follows A's first packet's arrival.
    let mut sim = Sim::new(cfg(300, 300, 3), passive);
    sim.run_for(ms(3000));
    let first_b = sim.sent_by(Side::B)[0];
    let first_a = sim.sent_by(Side::A)[0];
    assert!(first_b.0 >= first_a.0 + DELAY);
    assert_eq!(first_b.1.state, State::Init);
    assert_eq!(first_b.1.your_discriminator, 0x1111);
    assert_eq!(sim.a.state(), State::Up);
    assert_eq!(sim.b.state(), State::Up);
}

#[test]
fn passive_side_goes_quiet_after_losing_the_peer() {
    let mut passive = cfg(100, 100, 3);
    passive.passive = true;
    let mut sim = Sim::new(cfg(100, 100, 3), passive);
    sim.run_for(ms(3000));
    assert_eq!(sim.b.state(), State::Up);
    sim.link_up = false;
    sim.inflight.clear();
    sim.run_for(ms(1000));
    let n = sim.sent_by(Side::B).len();
    sim.run_for(ms(5000));
    assert_eq!(sim.sent_by(Side::B).len(), n, "passive B stays silent");
}

#[test]
fn poll_final_on_parameter_change() {
    let mut sim = Sim::new(cfg(100, 300, 3), cfg(100, 300, 3));
    sim.run_for(ms(3000));
    assert!(!sim.a.poll_in_progress());
    assert_eq!(sim.a.tx_interval(), Some(ms(300)));
    assert_eq!(sim.a.detection_time(), Some(ms(900)));
    let n = sim.sent.len();
    // Slower TX (increase) and shorter detection (RX decrease): both wait for the Final.
    let now = sim.now;
    sim.a.reconfigure(now, cfg(1000, 100, 3));
    assert!(sim.a.poll_in_progress());
    assert_eq!(sim.a.tx_interval(), Some(ms(300)));
    assert_eq!(sim.a.detection_time(), Some(ms(900)));
    // The Poll goes out at once with the new values.
    sim.pump();
    let poll = sim.sent[n].2;
    assert_eq!(sim.sent[n].1, Side::A);
    assert!(poll.poll && !poll.final_);
    assert_eq!(poll.desired_min_tx_us, 1_000_000);
    assert_eq!(poll.required_min_rx_us, 100_000);
    // Deliver it: B answers at once with a Final.
    sim.run_for(DELAY);
    let fin = sim.sent[n + 1];
    assert_eq!(fin.1, Side::B);
    assert!(fin.2.final_ && !fin.2.poll);
    assert_eq!(fin.0, sim.sent[n].0 + DELAY);
    // B uses A's new values at once.
    assert_eq!(sim.b.detection_time(), Some(ms(3000)));
    assert_eq!(sim.b.tx_interval(), Some(ms(100)));
    sim.run_for(DELAY);
    assert!(!sim.a.poll_in_progress());
    assert_eq!(sim.a.tx_interval(), Some(ms(1000)));
    assert_eq!(sim.a.detection_time(), Some(ms(300)));
    sim.run_for(ms(3000));
    assert_eq!(sim.a.state(), State::Up);
    assert_eq!(sim.b.state(), State::Up);
    assert_eq!(sim.events_of(Side::A), vec![Event::Up]);
    assert_eq!(sim.events_of(Side::B), vec![Event::Up]);

    // A faster TX and a longer detection time apply at once, still with a Poll.
    let now = sim.now;
    sim.a.reconfigure(now, cfg(100, 300, 3));
    assert!(sim.a.poll_in_progress());
    assert_eq!(sim.a.tx_interval(), Some(ms(300)));
    assert_eq!(sim.a.detection_time(), Some(ms(900)));
    sim.run_for(ms(100));
    assert!(!sim.a.poll_in_progress());
}

#[test]
fn poll_keeps_going_until_answered() {
    let mut sim = Sim::new(cfg(300, 300, 3), cfg(300, 300, 3));
    sim.run_for(ms(3000));
    sim.link_up = false;
    let n = sim.sent.len();
    let now = sim.now;
    sim.a.reconfigure(now, cfg(500, 300, 3));
    sim.run_for(ms(700));
    let polls = sim.sent[n..]
        .iter()
        .filter(|s| s.1 == Side::A)
        .collect::<Vec<_>>();
    assert!(polls.len() >= 2);
    assert!(polls.iter().all(|p| p.2.poll));
    assert!(sim.a.poll_in_progress());
    sim.link_up = true;
    sim.run_for(ms(700));
    assert!(!sim.a.poll_in_progress());
    assert_eq!(sim.a.state(), State::Up);
}

#[test]
fn admin_down_and_back() {
    let mut sim = Sim::new(SessionConfig::default(), SessionConfig::default());
    sim.run_for(ms(2000));
    let now = sim.now;
    sim.a.set_admin_down(now);
    sim.run_for(ms(100));
    assert_eq!(sim.a.state(), State::AdminDown);
    assert_eq!(sim.b.state(), State::Down);
    assert_eq!(sim.b.local_diag(), Diag::NeighborSignaledDown);
    assert_eq!(
        sim.events_of(Side::A),
        vec![
            Event::Up,
            Event::Down {
                diag: Diag::AdministrativelyDown
            }
        ]
    );
    assert_eq!(
        sim.events_of(Side::B),
        vec![
            Event::Up,
            Event::Down {
                diag: Diag::NeighborSignaledDown
            }
        ]
    );
    sim.run_for(ms(5000));
    assert_eq!(sim.a.state(), State::AdminDown);
    assert_eq!(sim.b.state(), State::Down);
    let stats = sim.b.stats();
    assert_eq!(
        (stats.up_events, stats.down_events, stats.discarded),
        (1, 1, 0)
    );
    assert_eq!(
        stats.control_packets_in as usize,
        sim.delivered.iter().filter(|d| d.1 == Side::B).count()
    );
    assert_eq!(
        sim.a.stats().control_packets_out as usize,
        sim.sent_by(Side::A).len()
    );
    let now = sim.now;
    sim.a.set_admin_up(now);
    sim.run_for(ms(3000));
    assert_eq!(sim.a.state(), State::Up);
    assert_eq!(sim.b.state(), State::Up);
}

#[test]
fn peer_restart_is_seen_as_neighbor_down() {
    let mut sim = Sim::new(SessionConfig::default(), SessionConfig::default());
    sim.run_for(ms(2000));
    // A restarts: a fresh session with a new discriminator that says Down.
    let now = sim.now;
    sim.a = Session::new(
        SessionConfig::default(),
        NonZeroU32::new(0x3333).unwrap(),
        SplitMix64::new(9),
        now,
    );
    sim.run_for(ms(3000));
    assert_eq!(
        sim.events_of(Side::B),
        vec![
            Event::Up,
            Event::Down {
                diag: Diag::NeighborSignaledDown
            },
            Event::Up
        ]
    );
    assert_eq!(sim.b.remote_discriminator(), 0x3333);
}

#[test]
fn receiving_a_poll_sends_a_final_immediately() {
    let t0 = Instant::now();
    let mut s = Session::new(
        cfg(300, 300, 3),
        NonZeroU32::new(7).unwrap(),
        SplitMix64::new(3),
        t0,
    );
    assert!(s.poll_transmit(t0).is_some());
    assert!(s.poll_transmit(t0).is_none());
    let t1 = t0 + ms(10);
    let pkt = ControlPacket {
        diag: Diag::None,
        state: State::Down,
        poll: true,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 99,
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    };
    s.handle_packet(t1, &pkt).unwrap();
    assert_eq!(s.state(), State::Init);
    assert_eq!(s.poll_timeout(), Some(t1));
    let out = ControlPacket::parse(&s.poll_transmit(t1).unwrap()).unwrap();
    assert!(out.final_ && !out.poll);
    assert_eq!(out.state, State::Init);
    assert_eq!(out.your_discriminator, 99);
}

#[test]
fn init_times_out_back_to_down() {
    let t0 = Instant::now();
    let mut s = Session::new(
        cfg(300, 300, 3),
        NonZeroU32::new(7).unwrap(),
        SplitMix64::new(3),
        t0,
    );
    let pkt = ControlPacket {
        diag: Diag::None,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 99,
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    };
    s.handle_packet(t0, &pkt).unwrap();
    assert_eq!(s.state(), State::Init);
    // Peer advertises 1 s (slow start) x 3.
    assert_eq!(s.detection_time(), Some(ms(3000)));
    s.handle_timeout(t0 + ms(2999));
    assert_eq!(s.state(), State::Init);
    s.handle_timeout(t0 + ms(3000));
    assert_eq!(s.state(), State::Down);
    assert_eq!(s.local_diag(), Diag::ControlDetectionTimeExpired);
    assert_eq!(s.remote_discriminator(), 0);
    // Never Up, so no Down event.
    assert_eq!(s.poll_event(), None);
}

#[test]
fn detect_mult_one_jitter_is_75_to_90_percent() {
    let t0 = Instant::now();
    let mut s = Session::new(
        cfg(2000, 300, 1),
        NonZeroU32::new(7).unwrap(),
        SplitMix64::new(5),
        t0,
    );
    let mut now = t0;
    let mut times = Vec::new();
    for _ in 0..200 {
        if s.poll_transmit(now).is_some() {
            times.push(now);
        }
        now = s.poll_timeout().unwrap();
    }
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() > 100);
    assert!(gaps.iter().all(|g| *g >= ms(1500) && *g <= ms(1800)));
    assert!(gaps.iter().any(|g| *g < ms(1550)) && gaps.iter().any(|g| *g > ms(1750)));
}

#[test]
fn ttl_and_discriminator_checks() {
    let t0 = Instant::now();
    let mut s = Session::new(
        cfg(300, 300, 3),
        NonZeroU32::new(7).unwrap(),
        SplitMix64::new(3),
        t0,
    );
    let pkt = ControlPacket {
        diag: Diag::None,
        state: State::Up,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 99,
        your_discriminator: 8,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    };
    let bytes = pkt.build();
    assert_eq!(
        s.handle_datagram(t0, &bytes, 254),
        Err(RxError::Ttl {
            ttl: 254,
            check: TtlCheck::SingleHop
        })
    );
    assert_eq!(
        s.handle_datagram(t0, &bytes, 255),
        Err(RxError::DiscriminatorMismatch {
            expected: 7,
            got: 8
        })
    );
    assert_eq!(s.remote_discriminator(), 0);
    let mut multihop = cfg(300, 300, 3);
    multihop.ttl_check = TtlCheck::Minimum(254);
    let mut m = Session::new(
        multihop,
        NonZeroU32::new(8).unwrap(),
        SplitMix64::new(3),
        t0,
    );
    assert!(matches!(
        m.handle_datagram(t0, &bytes, 253),
        Err(RxError::Ttl { ttl: 253, .. })
    ));
    assert_eq!(m.handle_datagram(t0, &bytes, 254), Ok(()));
    assert_eq!(m.remote_discriminator(), 99);
    assert!(matches!(
        m.handle_datagram(t0, &[0u8; 3], 255),
        Err(RxError::Parse(_))
    ));
}

#[test]
fn peer_requiring_no_packets_silences_us() {
    let t0 = Instant::now();
    let mut s = Session::new(
        cfg(300, 300, 3),
        NonZeroU32::new(7).unwrap(),
        SplitMix64::new(3),
        t0,
    );
    let mut pkt = ControlPacket {
        diag: Diag::None,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 99,
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 0,
        required_min_echo_rx_us: 0,
    };
    s.handle_packet(t0, &pkt).unwrap();
    assert_eq!(s.tx_interval(), None);
    assert_eq!(s.poll_transmit(t0), None);
    assert_eq!(s.poll_transmit(t0 + ms(5000)), None);
    // Only the detection timer is armed.
    assert_eq!(s.poll_timeout(), Some(t0 + ms(3000)));
    pkt.required_min_rx_us = 300_000;
    pkt.state = State::Init;
    pkt.your_discriminator = 7;
    let t1 = t0 + ms(100);
    s.handle_packet(t1, &pkt).unwrap();
    assert_eq!(s.state(), State::Up);
    assert!(s.poll_transmit(t1).is_some());
}

#[test]
fn peer_in_demand_mode_stops_our_periodic_packets_but_gets_finals() {
    let t0 = Instant::now();
    let mut s = Session::new(
        cfg(300, 300, 3),
        NonZeroU32::new(7).unwrap(),
        SplitMix64::new(3),
        t0,
    );
    let mut pkt = ControlPacket {
        diag: Diag::None,
        state: State::Init,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 99,
        your_discriminator: 7,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    };
    s.handle_packet(t0, &pkt).unwrap();
    assert_eq!(s.state(), State::Up);
    assert!(s.poll_transmit(t0).is_some());
    // Peer Up and in Demand mode: we go quiet.
    pkt.state = State::Up;
    pkt.demand = true;
    s.handle_packet(t0 + ms(10), &pkt).unwrap();
    let mut sent = 0;
    let mut now = t0 + ms(10);
    while now < t0 + ms(3000) {
        if s.poll_transmit(now).is_some() {
            sent += 1;
        }
        now += ms(10);
    }
    // At most the slow-start Poll, which stays until answered.
    assert!(s.poll_in_progress());
    let polls = sent;
    assert!(polls > 0);
    // The peer polls: we answer with a Final; it also answers our Poll.
    pkt.poll = true;
    pkt.final_ = false;
    s.handle_packet(now, &pkt).unwrap();
    let out = ControlPacket::parse(&s.poll_transmit(now).unwrap()).unwrap();
    assert!(out.final_);
    pkt.poll = false;
    pkt.final_ = true;
    s.handle_packet(now, &pkt).unwrap();
    assert!(!s.poll_in_progress());
    let mut later = 0;
    for i in 1..300 {
        if s.poll_transmit(now + ms(10 * i)).is_some() {
            later += 1;
        }
    }
    assert_eq!(
        later, 0,
        "no periodic packets while the peer is in Demand mode"
    );
    // Peer leaves Demand mode: we resume at once.
    pkt.demand = false;
    pkt.final_ = false;
    let t = now + ms(3000);
    s.handle_packet(t, &pkt).unwrap();
    assert!(s.poll_transmit(t).is_some());
}

#[test]
fn lossy_link_with_parameter_churn_converges() {
    let mut sim = Sim::new(cfg(100, 100, 3), cfg(100, 100, 3));
    sim.loss = 30;
    for i in 0..30u64 {
        let now = sim.now;
        let tx = if i % 2 == 0 { 200 } else { 100 };
        sim.a.reconfigure(now, cfg(tx, 100 + 10 * (i % 3), 3));
        // Sometimes change again in the middle of the Poll.
        if i % 5 == 0 {
            sim.a.reconfigure(now + ms(1), cfg(tx + 50, 100, 3));
        }
        sim.run_for(ms(2000));
    }
    for (_, _, ev) in &sim.events {
        if let Event::Down { diag } = ev {
            assert!(matches!(
                diag,
                Diag::ControlDetectionTimeExpired | Diag::NeighborSignaledDown
            ));
        }
    }
    // The loss did make the sessions flap (deterministic: seeded jitter and loss).
    let flaps = sim.a.stats().down_events + sim.b.stats().down_events;
    assert!(flaps > 0);
    sim.loss = 0;
    let now = sim.now;
    sim.a.reconfigure(now, cfg(150, 120, 3));
    sim.run_for(ms(5000));
    assert_eq!(sim.a.state(), State::Up);
    assert_eq!(sim.b.state(), State::Up);
    assert!(!sim.a.poll_in_progress() && !sim.b.poll_in_progress());
    assert_eq!(sim.a.tx_interval(), Some(ms(150)));
    assert_eq!(sim.b.tx_interval(), Some(ms(120)));
    assert_eq!(sim.a.detection_time(), Some(ms(3 * 120)));
    assert_eq!(sim.b.detection_time(), Some(ms(3 * 150)));
    // Events alternate Up / Down on each side.
    for side in [Side::A, Side::B] {
        let evs = sim.events_of(side);
        for (i, ev) in evs.iter().enumerate() {
            assert_eq!(matches!(ev, Event::Up), i % 2 == 0, "{side:?}: {evs:?}");
        }
    }
}
