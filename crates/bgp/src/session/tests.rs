use super::*;
use crate::message::{decode, decode_one};
use std::collections::BTreeSet;

const FOUR: Codec = Codec {
    four_octet_as: true,
};

fn id(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Drain a session's actions: the messages it sent (decoded with `codec`), whether it
/// asked to connect and whether it closed.
#[derive(Debug, Default)]
struct Out {
    bytes: Vec<Vec<u8>>,
    connect: bool,
    close: bool,
}

impl Out {
    fn messages(&self, codec: Codec) -> Vec<Message> {
        let mut all = Vec::new();
        for b in &self.bytes {
            let mut at = 0;
            while at < b.len() {
                let (m, n) = decode(&b[at..], codec).unwrap().unwrap();
                all.push(m);
                at += n;
            }
        }
        all
    }
    fn updates(&self, codec: Codec) -> Vec<Update> {
        self.messages(codec)
            .into_iter()
            .filter_map(|m| match m {
                Message::Update(u) => Some(u),
                _ => None,
            })
            .collect()
    }
    fn notification(&self) -> Option<Notification> {
        self.messages(FOUR).into_iter().find_map(|m| match m {
            Message::Notification(n) => Some(n),
            _ => None,
        })
    }
}

fn drain(s: &mut Session) -> Out {
    let mut out = Out::default();
    while let Some(a) = s.poll_action() {
        match a {
            Action::Connect => out.connect = true,
            Action::Send(b) => out.bytes.push(b),
            Action::Close => out.close = true,
        }
    }
    out
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn peer_open(asn: u32, hold: u16, bgp_id: Ipv4Addr, caps: Vec<Capability>) -> Open {
    Open {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
        hold_time: hold,
        bgp_id,
        capabilities: caps,
    }
}

fn full_caps(asn: u32) -> Vec<Capability> {
    vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::Multiprotocol(Family::IPV6_UNICAST),
        Capability::RouteRefresh,
        Capability::FourOctetAs(asn),
    ]
}

fn enc(m: Message) -> Vec<u8> {
    m.encode(FOUR).unwrap()
}

/// A session brought to Established against a scripted peer; returns the time.
fn establish(s: &mut Session, local: &str, open: Open) -> Instant {
    let t0 = Instant::now();
    s.start(t0);
    assert!(drain(s).connect);
    s.connected(t0, sock(local), sock("192.0.2.254:179"));
    assert_eq!(s.state(), State::OpenSent);
    s.handle_bytes(t0, &enc(Message::Open(open)));
    assert_eq!(s.state(), State::OpenConfirm);
    s.handle_bytes(t0, &enc(Message::Keepalive));
    assert_eq!(s.state(), State::Established, "{:?}", events(s));
    t0
}

fn ebgp() -> SessionConfig {
    let mut c = SessionConfig::new(64512, PeerAs::Fixed(64513), id(1));
    c.jitter_seed = None;
    c
}

fn ebgp_session() -> (Session, Instant) {
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = establish(
        &mut s,
        "192.0.2.1:40000",
        peer_open(64513, 90, id(2), full_caps(64513)),
    );
    drain(&mut s);
    events(&mut s);
    (s, t0)
}

fn attrs(communities: &[u32]) -> RouteAttributes {
    RouteAttributes {
        communities: communities.to_vec(),
        ..RouteAttributes::default()
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn announced(updates: &[Update]) -> BTreeSet<IpNet> {
    let mut out = BTreeSet::new();
    for u in updates {
        out.extend(u.nlri.iter().map(|p| IpNet::V4(*p)));
        for a in &u.attributes {
            if let PathAttribute::MpReach(m) = a {
                out.extend(m.nlri.iter().copied());
            }
        }
    }
    out
}

fn withdrawn(updates: &[Update]) -> BTreeSet<IpNet> {
    let mut out = BTreeSet::new();
    for u in updates {
        out.extend(u.withdrawn.iter().map(|p| IpNet::V4(*p)));
        for a in &u.attributes {
            if let PathAttribute::MpUnreach(m) = a {
                out.extend(m.withdrawn.iter().copied());
            }
        }
    }
    out
}

// --- FSM ---------------------------------------------------------------------------------

/// Pass bytes between two sessions until neither has anything to say.
fn pump(a: &mut Session, b: &mut Session, now: Instant) {
    loop {
        let oa = drain(a);
        let ob = drain(b);
        if oa.bytes.is_empty() && ob.bytes.is_empty() {
            break;
        }
        for bytes in oa.bytes {
            b.handle_bytes(now, &bytes);
        }
        for bytes in ob.bytes {
            a.handle_bytes(now, &bytes);
        }
    }
}

#[test]
fn two_sessions_back_to_back_reach_established() {
    for (a_as, b_as, peer_of_a, peer_of_b) in [
        (64512, 64513, PeerAs::Fixed(64513), PeerAs::Fixed(64512)),
        (64512, 64512, PeerAs::Internal, PeerAs::Internal),
        (
            4_200_000_000,
            65001,
            PeerAs::External,
            PeerAs::Fixed(4_200_000_000),
        ),
    ] {
        let mut ca = SessionConfig::new(a_as, peer_of_a, id(1));
        ca.hold_time = 30;
        ca.jitter_seed = Some(1);
        let mut cb = SessionConfig::new(b_as, peer_of_b, id(2));
        cb.jitter_seed = Some(2);
        let mut a = Session::new(ca).unwrap();
        let mut b = Session::new(cb).unwrap();
        let now = Instant::now();
        a.start(now);
        b.start(now);
        assert!(drain(&mut a).connect && drain(&mut b).connect);
        a.connected(now, sock("192.0.2.1:40000"), sock("192.0.2.2:179"));
        b.connected(now, sock("192.0.2.2:179"), sock("192.0.2.1:40000"));
        pump(&mut a, &mut b, now);
        assert_eq!(a.state(), State::Established);
        assert_eq!(b.state(), State::Established);
        let na = a.negotiated().unwrap();
        assert_eq!(na.peer_as, b_as);
        assert_eq!(na.hold_time, 30);
        assert_eq!(na.keepalive, 10);
        assert!(na.four_octet_as);
        assert_eq!(na.internal, a_as == b_as);
        assert_eq!(b.negotiated().unwrap().peer_as, a_as);
        let ev = events(&mut a);
        assert!(ev.iter().any(|e| matches!(e, Event::Established(_))));
        let states: Vec<State> = ev
            .iter()
            .filter_map(|e| match e {
                Event::StateChanged { to, .. } => Some(*to),
                _ => None,
            })
            .collect();
        assert_eq!(
            states,
            vec![
                State::Connect,
                State::OpenSent,
                State::OpenConfirm,
                State::Established
            ]
        );

        // Routes from a reach b as decodable UPDATEs (b drops them).
        a.set_routes(now, [(net("203.0.113.7/32"), attrs(&[]))]);
        pump(&mut a, &mut b, now);
        assert_eq!(b.stats().updates_received, 1);
        assert_eq!(b.state(), State::Established);

        // An hour of (jittered) keepalives keeps both up.
        let mut t = now;
        while t <= now + Duration::from_secs(3600) {
            t = a.poll_timeout().unwrap().min(b.poll_timeout().unwrap());
            a.handle_timeout(t);
            b.handle_timeout(t);
            pump(&mut a, &mut b, t);
        }
        assert_eq!(a.state(), State::Established);
        assert_eq!(b.state(), State::Established);

        // Admin stop: Cease 6/2 reaches b, which closes and will retry.
        a.stop(t);
        let out = drain(&mut a);
        assert!(out.close);
        let n = out.notification().unwrap();
        assert_eq!((n.code, n.subcode), (6, 2));
        for bytes in &out.bytes {
            b.handle_bytes(t, bytes);
        }
        assert_eq!(a.state(), State::Idle);
        assert_eq!(a.poll_timeout(), None);
        assert_eq!(b.state(), State::Active);
        assert!(drain(&mut b).close);
        assert!(events(&mut b).contains(&Event::Closed(CloseReason::Received(n))));
    }
}

#[test]
fn our_open() {
    for (local_as, gr, my_as) in [
        (64512, None, 64512u16),
        (4_200_000_000, Some(120), AS_TRANS),
    ] {
        let mut c = SessionConfig::new(local_as, PeerAs::External, id(1));
        c.graceful_restart = gr.map(|restart_time| GracefulRestartConfig {
            restart_time,
            forwarding_preserved: true,
        });
        let mut s = Session::new(c).unwrap();
        let t0 = Instant::now();
        s.start(t0);
        s.connected(t0, sock("192.0.2.1:1"), sock("192.0.2.2:179"));
        let msgs = drain(&mut s).messages(Codec::default());
        let [Message::Open(open)] = msgs.as_slice() else {
            panic!("{msgs:?}")
        };
        assert_eq!(open.version, 4);
        assert_eq!(open.my_as, my_as);
        assert_eq!(open.asn(), local_as);
        assert_eq!(open.hold_time, 90);
        assert_eq!(open.bgp_id, id(1));
        assert!(open.route_refresh());
        assert_eq!(
            open.families().collect::<Vec<_>>(),
            vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
        );
        assert_eq!(
            open.graceful_restart().map(|g| g.restart_time),
            gr,
            "graceful restart only when asked"
        );
    }
}

#[test]
fn open_negotiation_table() {
    let base = SessionConfig::new(64512, PeerAs::Fixed(64513), id(1));
    let with = |f: &dyn Fn(&mut SessionConfig)| {
        let mut c = base.clone();
        f(&mut c);
        c
    };
    type Check = fn(&Result<Negotiated, MessageError>);
    let cases: Vec<(&str, SessionConfig, Open, Check)> = vec![
        (
            "hold: min of ours and theirs",
            base.clone(),
            peer_open(64513, 30, id(2), full_caps(64513)),
            |r| {
                let n = r.as_ref().unwrap();
                assert_eq!((n.hold_time, n.keepalive), (30, 10));
            },
        ),
        (
            "hold: ours smaller",
            with(&|c| c.hold_time = 9),
            peer_open(64513, 180, id(2), full_caps(64513)),
            |r| assert_eq!(r.as_ref().unwrap().hold_time, 9),
        ),
        (
            "hold: theirs 0 → no keepalives",
            base.clone(),
            peer_open(64513, 0, id(2), full_caps(64513)),
            |r| {
                let n = r.as_ref().unwrap();
                assert_eq!((n.hold_time, n.keepalive), (0, 0));
            },
        ),
        (
            "hold: ours 0",
            with(&|c| c.hold_time = 0),
            peer_open(64513, 90, id(2), full_caps(64513)),
            |r| assert_eq!(r.as_ref().unwrap().keepalive, 0),
        ),
        (
            "hold: 3 s gives 1 s keepalives",
            base.clone(),
            peer_open(64513, 3, id(2), full_caps(64513)),
            |r| assert_eq!(r.as_ref().unwrap().keepalive, 1),
        ),
        (
            "hold: 1 s refused",
            base.clone(),
            peer_open(64513, 1, id(2), full_caps(64513)),
            |r| assert_eq!(r, &Err(MessageError::UnacceptableHoldTime(1))),
        ),
        (
            "hold: 2 s refused",
            base.clone(),
            peer_open(64513, 2, id(2), full_caps(64513)),
            |r| assert_eq!(r, &Err(MessageError::UnacceptableHoldTime(2))),
        ),
        (
            "keepalive configured",
            with(&|c| c.keepalive = Some(5)),
            peer_open(64513, 90, id(2), full_caps(64513)),
            |r| assert_eq!(r.as_ref().unwrap().keepalive, 5),
        ),
        (
            "keepalive capped at a third of hold",
            with(&|c| c.keepalive = Some(60)),
            peer_open(64513, 90, id(2), full_caps(64513)),
            |r| assert_eq!(r.as_ref().unwrap().keepalive, 30),
        ),
        (
            "peer AS mismatch",
            base.clone(),
            peer_open(64514, 90, id(2), full_caps(64514)),
            |r| assert_eq!(r, &Err(MessageError::BadPeerAs(64514))),
        ),
        (
            "4-octet AS via capability with AS_TRANS",
            with(&|c| c.peer_as = PeerAs::Fixed(4_200_000_000)),
            peer_open(4_200_000_000, 90, id(2), full_caps(4_200_000_000)),
            |r| {
                let n = r.as_ref().unwrap();
                assert_eq!(n.peer_as, 4_200_000_000);
                assert!(n.four_octet_as);
            },
        ),
        (
            "AS_TRANS without the capability",
            with(&|c| c.peer_as = PeerAs::External),
            peer_open(u32::from(AS_TRANS), 90, id(2), vec![]),
            |r| assert_eq!(r, &Err(MessageError::BadPeerAs(23456))),
        ),
        (
            "2-octet peer: no 4-octet AS, IPv4 implied",
            base.clone(),
            peer_open(64513, 90, id(2), vec![]),
            |r| {
                let n = r.as_ref().unwrap();
                assert!(!n.four_octet_as);
                assert!(!n.route_refresh);
                assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
            },
        ),
        (
            "IPv6 only peer",
            base.clone(),
            peer_open(
                64513,
                90,
                id(2),
                vec![Capability::Multiprotocol(Family::IPV6_UNICAST)],
            ),
            |r| assert_eq!(r.as_ref().unwrap().families, vec![Family::IPV6_UNICAST]),
        ),
        (
            "dynamic internal",
            with(&|c| c.peer_as = PeerAs::Internal),
            peer_open(64512, 90, id(2), full_caps(64512)),
            |r| assert!(r.as_ref().unwrap().internal),
        ),
        (
            "dynamic internal, external peer",
            with(&|c| c.peer_as = PeerAs::Internal),
            peer_open(64513, 90, id(2), full_caps(64513)),
            |r| assert_eq!(r, &Err(MessageError::BadPeerAs(64513))),
        ),
        (
            "dynamic external",
            with(&|c| c.peer_as = PeerAs::External),
            peer_open(65000, 90, id(2), full_caps(65000)),
            |r| assert!(!r.as_ref().unwrap().internal),
        ),
        (
            "dynamic external, internal peer",
            with(&|c| c.peer_as = PeerAs::External),
            peer_open(64512, 90, id(2), full_caps(64512)),
            |r| assert_eq!(r, &Err(MessageError::BadPeerAs(64512))),
        ),
        (
            "iBGP with our router ID",
            with(&|c| c.peer_as = PeerAs::Internal),
            peer_open(64512, 90, id(1), full_caps(64512)),
            |r| assert_eq!(r, &Err(MessageError::BadBgpId(id(1)))),
        ),
        (
            "eBGP may share the router ID",
            base.clone(),
            peer_open(64513, 90, id(1), full_caps(64513)),
            |r| assert!(r.is_ok()),
        ),
        (
            "graceful restart needs both",
            with(&|c| {
                c.graceful_restart = Some(GracefulRestartConfig {
                    restart_time: 120,
                    forwarding_preserved: true,
                })
            }),
            peer_open(64513, 90, id(2), {
                let mut caps = full_caps(64513);
                caps.push(Capability::GracefulRestart(GracefulRestart {
                    restarted: false,
                    restart_time: 90,
                    families: vec![],
                }));
                caps
            }),
            |r| assert!(r.as_ref().unwrap().graceful_restart),
        ),
        (
            "graceful restart only from the peer",
            base.clone(),
            peer_open(64513, 90, id(2), {
                let mut caps = full_caps(64513);
                caps.push(Capability::GracefulRestart(GracefulRestart {
                    restarted: false,
                    restart_time: 90,
                    families: vec![],
                }));
                caps
            }),
            |r| assert!(!r.as_ref().unwrap().graceful_restart),
        ),
    ];
    for (name, config, open, check) in cases {
        let r = Session::negotiate(&config, &open);
        eprintln!("{name}: {r:?}");
        check(&r);
    }
}

#[test]
fn bad_open_sends_notification_and_backs_off() {
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = Instant::now();
    s.start(t0);
    s.connected(t0, sock("192.0.2.1:1"), sock("192.0.2.2:179"));
    drain(&mut s);
    s.handle_bytes(
        t0,
        &enc(Message::Open(peer_open(64999, 90, id(2), full_caps(64999)))),
    );
    let out = drain(&mut s);
    let n = out.notification().unwrap();
    assert_eq!((n.code, n.subcode), (2, 2));
    assert!(out.close);
    assert_eq!(s.state(), State::Active);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(1)));
}

#[test]
fn config_validation() {
    let bad = |f: &dyn Fn(&mut SessionConfig)| {
        let mut c = ebgp();
        f(&mut c);
        Session::new(c).unwrap_err()
    };
    assert_eq!(bad(&|c| c.hold_time = 2), ConfigError::HoldTime(2));
    assert_eq!(bad(&|c| c.local_as = 23456), ConfigError::Asn(23456));
    assert_eq!(bad(&|c| c.peer_as = PeerAs::Fixed(0)), ConfigError::Asn(0));
    assert_eq!(
        bad(&|c| c.router_id = Ipv4Addr::UNSPECIFIED),
        ConfigError::RouterId
    );
    assert_eq!(bad(&|c| c.keepalive = Some(0)), ConfigError::Keepalive);
    assert_eq!(
        bad(&|c| c.retry_min = Duration::from_secs(500)),
        ConfigError::Timers
    );
}

#[test]
fn connect_retries_with_backoff_and_connect_time() {
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = Instant::now();
    s.start(t0);
    assert!(drain(&mut s).connect);
    assert_eq!(s.state(), State::Connect);
    // The attempt hangs: abandoned after connect_time (10 s), retried 1 s later.
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    let mut now = t0 + Duration::from_secs(10);
    s.handle_timeout(now);
    assert!(drain(&mut s).close);
    assert_eq!(s.state(), State::Active);
    let mut waits = Vec::new();
    for _ in 0..10 {
        let at = s.poll_timeout().unwrap();
        waits.push((at - now).as_secs());
        now = at;
        s.handle_timeout(now);
        assert!(drain(&mut s).connect);
        assert_eq!(s.state(), State::Connect);
        s.connection_failed(now);
        assert_eq!(s.state(), State::Active);
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 64, 120, 120, 120]);
    // A late "connected" for an abandoned attempt is closed.
    s.connected(now, sock("192.0.2.1:1"), sock("192.0.2.2:179"));
    assert!(drain(&mut s).close);
    assert_eq!(s.state(), State::Active);
    // Once Established, the backoff starts over.
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at);
    s.connected(at, sock("192.0.2.1:1"), sock("192.0.2.2:179"));
    s.handle_bytes(
        at,
        &enc(Message::Open(peer_open(64513, 90, id(2), full_caps(64513)))),
    );
    s.handle_bytes(at, &enc(Message::Keepalive));
    assert_eq!(s.state(), State::Established);
    s.connection_closed(at);
    assert_eq!(s.state(), State::Active);
    assert_eq!(s.poll_timeout(), Some(at + Duration::from_secs(1)));
    assert!(events(&mut s).contains(&Event::Closed(CloseReason::ConnectionLost)));
}

#[test]
fn hold_timer_expiry_sends_notification_4_0() {
    let (mut s, t0) = ebgp_session();
    let hold = Duration::from_secs(90);
    // Keepalives from the peer at 60 s keep it alive until 150 s.
    s.handle_timeout(t0 + Duration::from_secs(30));
    s.handle_timeout(t0 + Duration::from_secs(60));
    s.handle_bytes(t0 + Duration::from_secs(60), &enc(Message::Keepalive));
    s.handle_timeout(t0 + hold);
    assert_eq!(s.state(), State::Established);
    drain(&mut s);
    let mut now = t0 + hold;
    while s.state() == State::Established {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
    }
    assert_eq!(now, t0 + Duration::from_secs(150));
    let out = drain(&mut s);
    assert_eq!(out.notification(), Some(Notification::new(4, 0)));
    assert!(out.close);
    assert_eq!(s.state(), State::Active);
    assert!(events(&mut s).contains(&Event::Closed(CloseReason::Sent(Notification::new(4, 0)))));
}

#[test]
fn hold_timer_in_open_sent_is_four_minutes() {
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = Instant::now();
    s.start(t0);
    s.connected(t0, sock("192.0.2.1:1"), sock("192.0.2.2:179"));
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(240)));
    s.handle_timeout(t0 + Duration::from_secs(240));
    assert_eq!(drain(&mut s).notification(), Some(Notification::new(4, 0)));
}

#[test]
fn keepalive_cadence() {
    // Hold 90: a keepalive every 30 s; an UPDATE sent restarts the interval.
    let (mut s, t0) = ebgp_session();
    let mut sent_at = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(200) {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
        // The peer keeps us up.
        s.handle_bytes(now, &enc(Message::Keepalive));
        let msgs = drain(&mut s).messages(FOUR);
        if msgs.contains(&Message::Keepalive) {
            sent_at.push((now - t0).as_secs());
        }
        if now == t0 + Duration::from_secs(120) {
            s.set_routes(now, [(net("203.0.113.1/32"), attrs(&[]))]);
            assert_eq!(drain(&mut s).updates(FOUR).len(), 1);
        }
    }
    assert_eq!(sent_at, vec![30, 60, 90, 120, 150, 180, 210]);

    // Configured 10 s.
    let mut c = ebgp();
    c.keepalive = Some(10);
    let mut s = Session::new(c).unwrap();
    let t0 = establish(
        &mut s,
        "192.0.2.1:1",
        peer_open(64513, 90, id(2), full_caps(64513)),
    );
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));

    // Hold 0: no timers at all once Established.
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = establish(
        &mut s,
        "192.0.2.1:1",
        peer_open(64513, 0, id(2), full_caps(64513)),
    );
    drain(&mut s);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t0 + Duration::from_secs(100_000));
    assert!(drain(&mut s).bytes.is_empty());
    assert_eq!(s.state(), State::Established);
}

// --- routes ------------------------------------------------------------------------------

#[test]
fn ten_thousand_host_routes_are_packed() {
    let (mut s, t0) = ebgp_session();
    let comm = [(64512 << 16) | 100];
    let routes: Vec<(IpNet, RouteAttributes)> = (0..10_000u32)
        .map(|i| {
            let a = Ipv4Addr::from(0x0a00_0000 + i);
            (IpNet::V4(ipnet::Ipv4Net::new(a, 32).unwrap()), attrs(&comm))
        })
        .collect();
    let want: BTreeSet<IpNet> = routes.iter().map(|(p, _)| *p).collect();
    s.set_routes(t0, routes);
    let out = drain(&mut s);
    assert!(out.bytes.iter().all(|b| b.len() <= MAX_MESSAGE_LEN));
    let updates = out.updates(FOUR);
    // 5 bytes a /32, about 4050 bytes of NLRI per UPDATE.
    assert!(updates.len() <= 13, "{} UPDATEs", updates.len());
    assert_eq!(updates.len(), out.bytes.len());
    assert_eq!(announced(&updates), want);
    assert_eq!(
        updates.iter().map(|u| u.nlri.len()).sum::<usize>(),
        10_000,
        "each prefix once"
    );
    for u in &updates {
        assert_eq!(
            u.attributes,
            vec![
                PathAttribute::Origin(Origin::Igp),
                PathAttribute::AsPath(vec![AsSegment {
                    kind: SegmentType::Sequence,
                    asns: vec![64512]
                }]),
                PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
                PathAttribute::Communities(comm.to_vec()),
            ]
        );
    }
    assert_eq!(s.advertised().len(), 10_000);
    assert_eq!(s.stats().updates_sent, updates.len() as u64);

    // Withdrawing them all is batched too.
    s.set_routes(t0, Vec::<(IpNet, RouteAttributes)>::new());
    let out = drain(&mut s);
    assert!(out.bytes.iter().all(|b| b.len() <= MAX_MESSAGE_LEN));
    let updates = out.updates(FOUR);
    assert!(updates.len() <= 13);
    assert_eq!(withdrawn(&updates), want);
    assert!(s.advertised().is_empty());
}

#[test]
fn ipv6_routes_go_in_mp_reach_with_the_ipv6_next_hop() {
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = establish(
        &mut s,
        "[2001:db8::1]:40000",
        peer_open(64513, 90, id(2), full_caps(64513)),
    );
    drain(&mut s);
    let v6: Vec<IpNet> = (0..1000u128)
        .map(|i| {
            IpNet::V6(
                ipnet::Ipv6Net::new(Ipv6Addr::from((0x2001_0db8_0001u128 << 80) | i), 128).unwrap(),
            )
        })
        .collect();
    let mut routes: Vec<(IpNet, RouteAttributes)> = v6.iter().map(|p| (*p, attrs(&[]))).collect();
    // No IPv4 next hop on an IPv6 session: not announced.
    routes.push((net("203.0.113.1/32"), attrs(&[])));
    s.set_routes(t0, routes);
    let out = drain(&mut s);
    assert!(out.bytes.iter().all(|b| b.len() <= MAX_MESSAGE_LEN));
    let updates = out.updates(FOUR);
    assert!(updates.len() <= 5, "{}", updates.len());
    assert_eq!(announced(&updates), v6.iter().copied().collect());
    for u in &updates {
        assert!(u.nlri.is_empty() && u.withdrawn.is_empty());
        let PathAttribute::MpReach(m) = &u.attributes[0] else {
            panic!("MP_REACH_NLRI first: {:?}", u.attributes)
        };
        assert_eq!(m.family, Family::IPV6_UNICAST);
        assert_eq!(
            m.next_hops,
            vec![IpAddr::V6("2001:db8::1".parse().unwrap())]
        );
        assert!(
            !u.attributes
                .iter()
                .any(|a| matches!(a, PathAttribute::NextHop(_)))
        );
    }
    assert_eq!(s.advertised().len(), 1000);

    // Withdrawal in MP_UNREACH_NLRI.
    s.set_routes(t0, v6[1..].iter().map(|p| (*p, attrs(&[]))));
    let updates = drain(&mut s).updates(FOUR);
    assert_eq!(updates.len(), 1);
    assert_eq!(
        updates[0].attributes,
        vec![PathAttribute::MpUnreach(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![v6[0]],
        })]
    );
}

#[test]
fn dual_stack_next_hops_from_config() {
    let mut c = ebgp();
    c.ipv6_next_hop = Some("2001:db8::99".parse().unwrap());
    let mut s = Session::new(c).unwrap();
    let t0 = establish(
        &mut s,
        "[::ffff:192.0.2.1]:40000",
        peer_open(64513, 90, id(2), full_caps(64513)),
    );
    drain(&mut s);
    s.set_routes(
        t0,
        [
            (net("203.0.113.1/32"), attrs(&[])),
            (net("2001:db8:1::/64"), attrs(&[])),
        ],
    );
    let updates = drain(&mut s).updates(FOUR);
    assert_eq!(updates.len(), 2);
    assert!(
        updates[0]
            .attributes
            .contains(&PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1))),
        "IPv4-mapped local address used as an IPv4 next hop"
    );
    let PathAttribute::MpReach(m) = &updates[1].attributes[0] else {
        panic!()
    };
    assert_eq!(
        m.next_hops,
        vec![IpAddr::V6("2001:db8::99".parse().unwrap())]
    );
}

#[test]
fn withdraw_diff() {
    let (mut s, t0) = ebgp_session();
    s.set_routes(
        t0,
        [
            (net("203.0.113.1/32"), attrs(&[])),
            (net("203.0.113.2/32"), attrs(&[])),
            (net("203.0.113.3/32"), attrs(&[])),
        ],
    );
    assert_eq!(drain(&mut s).updates(FOUR).len(), 1);
    s.set_routes(
        t0,
        [
            (net("203.0.113.2/32"), attrs(&[])),
            (net("203.0.113.3/32"), attrs(&[1, 2])),
            (net("203.0.113.4/32"), attrs(&[])),
            // Host bits are cleared.
            (net("198.51.100.7/24"), attrs(&[])),
        ],
    );
    let updates = drain(&mut s).updates(FOUR);
    assert_eq!(withdrawn(&updates), BTreeSet::from([net("203.0.113.1/32")]));
    assert_eq!(
        announced(&updates),
        BTreeSet::from([
            net("203.0.113.3/32"),
            net("203.0.113.4/32"),
            net("198.51.100.0/24")
        ])
    );
    // Withdrawals come first, in their own UPDATE; then one UPDATE per attribute set.
    assert_eq!(updates.len(), 3);
    assert!(updates[0].attributes.is_empty() && updates[0].nlri.is_empty());
    // The same set again: nothing to send.
    s.set_routes(
        t0,
        [
            (net("203.0.113.2/32"), attrs(&[])),
            (net("203.0.113.3/32"), attrs(&[2, 1, 2])),
            (net("203.0.113.4/32"), attrs(&[])),
            (net("198.51.100.0/24"), attrs(&[])),
        ],
    );
    assert!(drain(&mut s).bytes.is_empty());
}

#[test]
fn routes_set_before_established_are_sent_on_establishment() {
    let mut s = Session::new(ebgp()).unwrap();
    s.set_routes(Instant::now(), [(net("203.0.113.1/32"), attrs(&[]))]);
    let t0 = Instant::now();
    s.start(t0);
    s.connected(t0, sock("192.0.2.1:1"), sock("192.0.2.2:179"));
    s.handle_bytes(
        t0,
        &enc(Message::Open(peer_open(64513, 90, id(2), full_caps(64513)))),
    );
    s.handle_bytes(t0, &enc(Message::Keepalive));
    let updates = drain(&mut s).updates(FOUR);
    assert_eq!(announced(&updates), BTreeSet::from([net("203.0.113.1/32")]));
    // After the session drops, it all goes again on the next establishment.
    s.connection_closed(t0);
    assert!(s.advertised().is_empty());
}

#[test]
fn route_refresh_resends_the_family() {
    let (mut s, t0) = ebgp_session();
    s.set_routes(
        t0,
        [
            (net("203.0.113.1/32"), attrs(&[])),
            (net("203.0.113.2/32"), attrs(&[7])),
            (net("2001:db8::/64"), attrs(&[])),
        ],
    );
    // No IPv6 next hop on this IPv4 session: only the IPv4 routes are out.
    assert_eq!(drain(&mut s).updates(FOUR).len(), 2);
    s.handle_bytes(t0, &enc(Message::RouteRefresh(Family::IPV4_UNICAST)));
    let updates = drain(&mut s).updates(FOUR);
    assert_eq!(
        announced(&updates),
        BTreeSet::from([net("203.0.113.1/32"), net("203.0.113.2/32")])
    );
    assert!(withdrawn(&updates).is_empty());
    assert_eq!(s.stats().route_refreshes_received, 1);
    // An unknown family: nothing, and the session stays up.
    s.handle_bytes(
        t0,
        &enc(Message::RouteRefresh(Family { afi: 25, safi: 65 })),
    );
    assert!(drain(&mut s).bytes.is_empty());
    assert_eq!(s.state(), State::Established);
}

#[test]
fn ibgp_has_local_pref_and_empty_as_path() {
    let mut s = Session::new(SessionConfig::new(64512, PeerAs::Internal, id(1))).unwrap();
    let t0 = establish(
        &mut s,
        "192.0.2.1:1",
        peer_open(64512, 90, id(2), full_caps(64512)),
    );
    drain(&mut s);
    let big = LargeCommunity {
        global: 64512,
        local1: 1,
        local2: 2,
    };
    s.set_routes(
        t0,
        [
            (net("203.0.113.1/32"), RouteAttributes::default()),
            (
                net("203.0.113.2/32"),
                RouteAttributes {
                    communities: vec![5],
                    large_communities: vec![big],
                    local_pref: Some(250),
                },
            ),
        ],
    );
    let updates = drain(&mut s).updates(FOUR);
    assert_eq!(updates.len(), 2);
    assert_eq!(
        updates[0].attributes,
        vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(vec![]),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            PathAttribute::LocalPref(100),
        ]
    );
    assert_eq!(
        updates[1].attributes,
        vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(vec![]),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            PathAttribute::LocalPref(250),
            PathAttribute::Communities(vec![5]),
            PathAttribute::LargeCommunities(vec![big]),
        ]
    );
}

#[test]
fn four_octet_as_towards_a_two_octet_peer() {
    let mut s = Session::new(SessionConfig::new(
        4_200_000_001,
        PeerAs::Fixed(65001),
        id(1),
    ))
    .unwrap();
    let t0 = establish(&mut s, "192.0.2.1:1", peer_open(65001, 90, id(2), vec![]));
    drain(&mut s);
    s.set_routes(t0, [(net("203.0.113.1/32"), attrs(&[]))]);
    let out = drain(&mut s);
    // Decoded as the peer sees it: 2-octet AS_PATH.
    let updates = out.updates(Codec::default());
    let a = &updates[0].attributes;
    assert!(a.contains(&PathAttribute::AsPath(vec![AsSegment {
        kind: SegmentType::Sequence,
        asns: vec![u32::from(AS_TRANS)]
    }])));
    assert!(a.contains(&PathAttribute::As4Path(vec![AsSegment {
        kind: SegmentType::Sequence,
        asns: vec![4_200_000_001]
    }])));
}

#[test]
fn graceful_shutdown_then_withdraw_then_cease() {
    let mut c = ebgp();
    c.graceful_shutdown = Some(Duration::from_secs(30));
    let mut s = Session::new(c).unwrap();
    let t0 = establish(
        &mut s,
        "192.0.2.1:1",
        peer_open(64513, 90, id(2), full_caps(64513)),
    );
    drain(&mut s);
    s.set_routes(
        t0,
        [
            (net("203.0.113.1/32"), attrs(&[7])),
            (net("203.0.113.2/32"), attrs(&[])),
        ],
    );
    drain(&mut s);
    s.shutdown(t0);
    let updates = drain(&mut s).updates(FOUR);
    assert_eq!(
        announced(&updates),
        BTreeSet::from([net("203.0.113.1/32"), net("203.0.113.2/32")])
    );
    for u in &updates {
        let comms = u
            .attributes
            .iter()
            .find_map(|a| match a {
                PathAttribute::Communities(c) => Some(c.clone()),
                _ => None,
            })
            .unwrap();
        assert!(comms.contains(&GRACEFUL_SHUTDOWN), "{comms:?}");
    }
    assert_eq!(s.state(), State::Established);
    // Route changes meanwhile keep the community.
    s.set_routes(t0, [(net("203.0.113.1/32"), attrs(&[7]))]);
    assert_eq!(
        withdrawn(&drain(&mut s).updates(FOUR)),
        BTreeSet::from([net("203.0.113.2/32")])
    );
    // Keepalive at 30 s and the end of the drain at 30 s.
    s.handle_bytes(t0 + Duration::from_secs(29), &enc(Message::Keepalive));
    s.handle_timeout(t0 + Duration::from_secs(30));
    let out = drain(&mut s);
    let msgs = out.messages(FOUR);
    let updates = out.updates(FOUR);
    assert_eq!(withdrawn(&updates), BTreeSet::from([net("203.0.113.1/32")]));
    assert_eq!(
        msgs.last(),
        Some(&Message::Notification(Notification::new(6, 2)))
    );
    assert!(out.close);
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.poll_timeout(), None);

    // Without graceful_shutdown: withdraw and Cease at once.
    let (mut s, t0) = ebgp_session();
    s.set_routes(t0, [(net("203.0.113.1/32"), attrs(&[]))]);
    drain(&mut s);
    s.shutdown(t0);
    let out = drain(&mut s);
    let msgs = out.messages(FOUR);
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        withdrawn(&out.updates(FOUR)),
        BTreeSet::from([net("203.0.113.1/32")])
    );
    assert_eq!(msgs[1], Message::Notification(Notification::new(6, 2)));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn end_of_rib_when_graceful_restart_is_negotiated() {
    let mut c = ebgp();
    c.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 120,
        forwarding_preserved: true,
    });
    c.ipv6_next_hop = Some("2001:db8::1".parse().unwrap());
    let mut s = Session::new(c).unwrap();
    let mut caps = full_caps(64513);
    caps.push(Capability::GracefulRestart(GracefulRestart {
        restarted: false,
        restart_time: 120,
        families: vec![(Family::IPV4_UNICAST, false)],
    }));
    s.set_routes(Instant::now(), [(net("203.0.113.1/32"), attrs(&[]))]);
    establish(&mut s, "192.0.2.1:1", peer_open(64513, 90, id(2), caps));
    let updates = drain(&mut s).updates(FOUR);
    let eors: Vec<Family> = updates.iter().filter_map(Update::end_of_rib).collect();
    assert_eq!(eors, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert_eq!(updates[0].end_of_rib(), None, "routes first");
}

#[test]
fn malformed_input_from_the_peer_tears_the_session_down() {
    let mut bad_marker = enc(Message::Keepalive);
    bad_marker[0] = 0;
    let cases: Vec<(Vec<u8>, (u8, u8))> = vec![
        (bad_marker, (1, 1)),
        (
            {
                let mut m = enc(Message::Keepalive);
                m[18] = 42;
                m
            },
            (1, 3),
        ),
        // UPDATE with ORIGIN 5.
        (
            {
                let mut m = vec![0xff; 16];
                m.extend_from_slice(&[0, 27, 2, 0, 0, 0, 4, 0x40, 1, 1, 5]);
                m
            },
            (3, 6),
        ),
        // An OPEN in Established.
        (
            enc(Message::Open(peer_open(64513, 90, id(2), vec![]))),
            (5, 3),
        ),
    ];
    for (bytes, (c, sub)) in cases {
        let (mut s, t0) = ebgp_session();
        // Delivered in two pieces to exercise reassembly.
        let (x, y) = bytes.split_at(bytes.len() / 2);
        s.handle_bytes(t0, x);
        assert_eq!(s.state(), State::Established);
        s.handle_bytes(t0, y);
        let out = drain(&mut s);
        let n = out.notification().unwrap();
        assert_eq!((n.code, n.subcode), (c, sub));
        assert!(out.close);
        assert_eq!(s.state(), State::Active);
        assert!(s.advertised().is_empty());
    }
}

#[test]
fn unexpected_messages_are_fsm_errors() {
    // An UPDATE while OpenSent: 5/1; a ROUTE-REFRESH while OpenConfirm: 5/2.
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = Instant::now();
    s.start(t0);
    s.connected(t0, sock("192.0.2.1:1"), sock("192.0.2.2:179"));
    drain(&mut s);
    s.handle_bytes(t0, &enc(Message::Update(Update::default())));
    assert_eq!(drain(&mut s).notification(), Some(Notification::new(5, 1)));

    let mut s = Session::new(ebgp()).unwrap();
    s.start(t0);
    s.connected(t0, sock("192.0.2.1:1"), sock("192.0.2.2:179"));
    s.handle_bytes(
        t0,
        &enc(Message::Open(peer_open(64513, 90, id(2), full_caps(64513)))),
    );
    drain(&mut s);
    s.handle_bytes(t0, &enc(Message::RouteRefresh(Family::IPV4_UNICAST)));
    assert_eq!(drain(&mut s).notification(), Some(Notification::new(5, 2)));
}

#[test]
fn received_updates_are_validated_and_dropped() {
    let (mut s, t0) = ebgp_session();
    let update = Message::Update(Update {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(vec![AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![64513],
            }]),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 2)),
        ],
        nlri: vec!["10.0.0.0/8".parse().unwrap()],
    });
    s.handle_bytes(t0, &enc(update));
    assert!(drain(&mut s).bytes.is_empty());
    assert_eq!(s.stats().updates_received, 1);
    assert_eq!(s.state(), State::Established);
    assert!(s.advertised().is_empty());
    // decode_one is what a test peer would use: it also works on our own output.
    assert!(decode_one(&enc(Message::Keepalive), FOUR).is_ok());
}

#[test]
fn routes_with_too_many_communities_are_not_announced() {
    let mut c = ebgp();
    c.graceful_shutdown = Some(Duration::from_secs(1));
    c.ipv6_next_hop = Some("2001:db8::1".parse().unwrap());
    let mut s = Session::new(c).unwrap();
    let t0 = establish(
        &mut s,
        "192.0.2.1:1",
        peer_open(64513, 90, id(2), full_caps(64513)),
    );
    drain(&mut s);
    let many: Vec<u32> = (0..974).collect();
    let too_many: Vec<u32> = (0..975).collect();
    s.set_routes(
        t0,
        [
            (net("203.0.113.1/32"), attrs(&many)),
            (
                net("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128"),
                attrs(&many),
            ),
            (net("203.0.113.2/32"), attrs(&too_many)),
        ],
    );
    let out = drain(&mut s);
    assert!(out.bytes.iter().all(|b| b.len() <= MAX_MESSAGE_LEN));
    assert_eq!(
        announced(&out.updates(FOUR)),
        BTreeSet::from([
            net("203.0.113.1/32"),
            net("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128")
        ])
    );
    // With GRACEFUL_SHUTDOWN added they still fit.
    s.shutdown(t0);
    let out = drain(&mut s);
    assert!(out.bytes.iter().all(|b| b.len() <= MAX_MESSAGE_LEN));
    assert_eq!(out.updates(FOUR).len(), 2);
}

#[test]
fn connection_lost_while_draining_ends_the_shutdown() {
    let mut c = ebgp();
    c.graceful_shutdown = Some(Duration::from_secs(30));
    let mut s = Session::new(c).unwrap();
    let t0 = establish(
        &mut s,
        "192.0.2.1:1",
        peer_open(64513, 90, id(2), full_caps(64513)),
    );
    s.shutdown(t0);
    s.connection_closed(t0 + Duration::from_secs(5));
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.poll_timeout(), None);
    // A new start is a fresh session without the community.
    s.start(t0 + Duration::from_secs(6));
    assert_eq!(s.state(), State::Connect);
}

#[test]
fn a_second_connected_is_ignored_and_stop_in_connect_aborts() {
    let (mut s, t0) = ebgp_session();
    s.connected(t0, sock("192.0.2.1:2"), sock("192.0.2.2:179"));
    let out = drain(&mut s);
    assert!(!out.close && out.bytes.is_empty());
    assert_eq!(s.state(), State::Established);

    let mut s = Session::new(ebgp()).unwrap();
    s.start(t0);
    drain(&mut s);
    s.stop(t0);
    let out = drain(&mut s);
    assert!(
        out.close && out.bytes.is_empty(),
        "no NOTIFICATION before OPEN"
    );
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn peer_lost_drops_the_connection_at_once_without_notification() {
    let (mut s, t0) = ebgp_session();
    s.set_routes(t0, [(net("203.0.113.1/32"), attrs(&[]))]);
    drain(&mut s);
    events(&mut s);
    let now = t0 + Duration::from_secs(5);
    s.peer_lost(now);
    let out = drain(&mut s);
    assert!(out.close, "the connection is closed");
    assert!(out.bytes.is_empty(), "nothing is sent: {out:?}");
    assert_eq!(s.state(), State::Active);
    assert!(events(&mut s).contains(&Event::Closed(CloseReason::PeerLost)));
    // The retry wait, not the hold timer.
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(1)));
    assert!(s.advertised().is_empty());
    let st = s.status();
    assert!(!st.up);
    assert_eq!(st.last_close, Some(CloseReason::PeerLost));
    assert_eq!((st.announced, st.pending), (0, 1));
    // Once the retry timer fires, it dials again.
    s.handle_timeout(now + Duration::from_secs(1));
    assert!(drain(&mut s).connect);
    assert_eq!(s.state(), State::Connect);
    // Lost while connecting: the attempt is abandoned, a retry is scheduled.
    s.peer_lost(now + Duration::from_secs(1));
    assert!(drain(&mut s).close);
    assert_eq!(s.state(), State::Active);
    // Idle and Active: nothing to do.
    s.peer_lost(now + Duration::from_secs(2));
    assert!(drain(&mut s).bytes.is_empty());
    assert_eq!(s.state(), State::Active);
    s.stop(now);
    s.peer_lost(now);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn status_counts_announced_and_pending_prefixes() {
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = Instant::now();
    // Two IPv4 routes and one IPv6 route; the session is IPv4 only (no IPv6 next hop).
    s.set_routes(
        t0,
        [
            (net("203.0.113.1/32"), attrs(&[])),
            (net("203.0.113.2/32"), attrs(&[])),
            (net("2001:db8:100::1/128"), attrs(&[])),
        ],
    );
    let st = s.status();
    assert_eq!(
        (st.up, st.state, st.announced, st.pending),
        (false, State::Idle, 0, 3)
    );
    establish(
        &mut s,
        "192.0.2.1:40000",
        peer_open(64513, 90, id(2), full_caps(64513)),
    );
    let st = s.status();
    assert!(st.up);
    assert_eq!(st.state, State::Established);
    assert_eq!((st.announced, st.pending), (2, 1));
    assert_eq!(st.stats.opens_sent, 1);
    assert_eq!(st.stats.opens_received, 1);
    assert_eq!(st.stats.established_transitions, 1);
    assert!(st.stats.updates_sent >= 1);
    assert_eq!(st.negotiated.map(|n| n.peer_as), Some(64513));
    assert_eq!(st.last_close, None);
}

#[test]
fn jitter_scales_retry_waits_and_keepalives_by_0_75_to_1() {
    let run = |seed: u64| {
        let mut c = ebgp();
        c.jitter_seed = Some(seed);
        c.retry_max = Duration::from_secs(8);
        let mut s = Session::new(c).unwrap();
        let mut now = Instant::now();
        s.start(now);
        let mut waits = Vec::new();
        // Failed attempts: waits of 1, 2, 4, 8, 8, ... s nominal, each jittered.
        for i in 0..40u32 {
            s.connection_failed(now);
            let at = s.poll_timeout().unwrap();
            let nominal = Duration::from_secs(1 << i.min(3));
            let wait = at - now;
            assert!(
                wait <= nominal && wait >= nominal.mul_f64(0.75),
                "wait {wait:?} for {nominal:?}"
            );
            waits.push(wait);
            now = at;
            s.handle_timeout(now);
            assert!(drain(&mut s).connect);
        }
        // Keepalives: hold 90 s, nominal interval 30 s.
        s.connected(now, sock("192.0.2.1:1"), sock("192.0.2.2:179"));
        s.handle_bytes(
            now,
            &enc(Message::Open(peer_open(64513, 90, id(2), full_caps(64513)))),
        );
        s.handle_bytes(now, &enc(Message::Keepalive));
        assert_eq!(s.state(), State::Established);
        for _ in 0..20 {
            // Keep the hold timer from expiring: the peer sends its keepalives.
            s.handle_bytes(now, &enc(Message::Keepalive));
            let at = s.poll_timeout().unwrap();
            let gap = at - now;
            assert!(
                gap <= Duration::from_secs(30) && gap >= Duration::from_millis(22_500),
                "keepalive after {gap:?}"
            );
            waits.push(gap);
            now = at;
            s.handle_timeout(now);
            assert_eq!(s.state(), State::Established);
        }
        waits
    };
    let a = run(7);
    assert_eq!(a, run(7), "same seed, same timers");
    assert_ne!(a, run(8), "another seed, other timers");
    // Not the nominal values: jitter is applied.
    let distinct: BTreeSet<Duration> = a.iter().copied().collect();
    assert!(distinct.len() > 30, "{distinct:?}");
}

/// An inbound session (peer 10.0.0.2, AS 64513) driven to OpenConfirm, or to Established
/// when `keepalive`.
fn inbound_ready(main: &Session, now: Instant, keepalive: bool) -> Session {
    let mut inb = main.inbound(now, sock("192.0.2.1:179"), sock("192.0.2.2:40001"));
    let out = drain(&mut inb);
    assert!(matches!(out.messages(FOUR)[..], [Message::Open(_)]));
    inb.handle_bytes(
        now,
        &enc(Message::Open(peer_open(64513, 90, id(2), full_caps(64513)))),
    );
    if keepalive {
        inb.handle_bytes(now, &enc(Message::Keepalive));
    }
    drain(&mut inb);
    inb
}

fn refused_with(outcome: Inbound) -> Notification {
    let Inbound::Refused(mut s) = outcome else {
        panic!("adopted")
    };
    let out = drain(&mut s);
    assert!(out.close);
    out.notification().unwrap()
}

#[test]
fn inbound_connection_is_adopted_when_we_have_none() {
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = Instant::now();
    s.set_routes(t0, [(net("203.0.113.1/32"), attrs(&[]))]);
    s.start(t0);
    s.connection_failed(t0);
    assert_eq!(s.state(), State::Active);
    drain(&mut s);
    let inb = inbound_ready(&s, t0, false);
    let Inbound::Adopted { old_close } = s.offer_inbound(t0, inb) else {
        panic!("refused")
    };
    assert!(old_close.is_none());
    assert_eq!(s.state(), State::OpenConfirm);
    // The retry timer is gone: the next deadline is the hold or keepalive timer.
    assert!(s.poll_timeout().unwrap() > t0 + Duration::from_secs(20));
    s.handle_bytes(t0, &enc(Message::Keepalive));
    assert_eq!(s.state(), State::Established);
    let out = drain(&mut s);
    assert_eq!(
        announced(&out.updates(FOUR)),
        [net("203.0.113.1/32")].into()
    );
    assert_eq!(s.stats().opens_sent, 1, "the inbound OPEN, counted once");
    assert_eq!(s.stats().established_transitions, 1);
}

#[test]
fn inbound_already_established_is_adopted_while_connecting() {
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = Instant::now();
    s.set_routes(t0, [(net("203.0.113.1/32"), attrs(&[]))]);
    s.start(t0);
    assert_eq!(s.state(), State::Connect);
    drain(&mut s);
    events(&mut s);
    let inb = inbound_ready(&s, t0, true);
    assert_eq!(inb.state(), State::Established);
    assert!(matches!(
        s.offer_inbound(t0, inb),
        Inbound::Adopted { old_close: None }
    ));
    assert_eq!(s.state(), State::Established);
    assert!(
        events(&mut s)
            .iter()
            .any(|e| matches!(e, Event::Established(_)))
    );
    let out = drain(&mut s);
    assert!(!out.close, "the adopted connection stays open");
    assert_eq!(
        announced(&out.updates(FOUR)),
        [net("203.0.113.1/32")].into()
    );
}

#[test]
fn collision_keeps_the_connection_of_the_higher_bgp_identifier() {
    // Ours is 10.0.0.1, the peer's 10.0.0.2: the peer's (inbound) connection wins.
    let mut s = Session::new(ebgp()).unwrap();
    let t0 = Instant::now();
    s.start(t0);
    s.connected(t0, sock("192.0.2.1:40000"), sock("192.0.2.2:179"));
    assert_eq!(s.state(), State::OpenSent);
    drain(&mut s);
    events(&mut s);
    let inb = inbound_ready(&s, t0, false);
    let Inbound::Adopted {
        old_close: Some(bytes),
    } = s.offer_inbound(t0, inb)
    else {
        panic!("the inbound connection must win")
    };
    let (m, _) = decode(&bytes, Codec::default()).unwrap().unwrap();
    assert_eq!(m, Message::Notification(Notification::new(6, 7)));
    assert_eq!(s.state(), State::OpenConfirm);
    assert!(events(&mut s).contains(&Event::Closed(CloseReason::Sent(Notification::new(6, 7)))));

    // Ours is 10.0.0.9 > 10.0.0.2: our connection (OpenConfirm) wins.
    let mut c = ebgp();
    c.router_id = id(9);
    let mut s = Session::new(c).unwrap();
    establish_to_open_confirm(&mut s, t0);
    let inb = inbound_ready(&s, t0, false);
    assert_eq!(
        refused_with(s.offer_inbound(t0, inb)),
        Notification::new(6, 7)
    );
    assert_eq!(s.state(), State::OpenConfirm);
    assert!(drain(&mut s).bytes.is_empty(), "ours is untouched");
}

fn establish_to_open_confirm(s: &mut Session, t0: Instant) {
    s.start(t0);
    s.connected(t0, sock("192.0.2.1:40000"), sock("192.0.2.2:179"));
    s.handle_bytes(
        t0,
        &enc(Message::Open(peer_open(64513, 90, id(2), full_caps(64513)))),
    );
    assert_eq!(s.state(), State::OpenConfirm);
    drain(s);
}

#[test]
fn inbound_is_refused_when_established_stopped_or_not_ready() {
    let (mut s, t0) = ebgp_session();
    let inb = inbound_ready(&s, t0, false);
    assert_eq!(
        refused_with(s.offer_inbound(t0, inb)),
        Notification::new(6, 7)
    );
    assert_eq!(s.state(), State::Established);

    let mut s = Session::new(ebgp()).unwrap();
    let inb = inbound_ready(&s, t0, false);
    assert_eq!(
        refused_with(s.offer_inbound(t0, inb)),
        Notification::new(6, 5)
    );
    assert_eq!(s.state(), State::Idle);

    s.start(t0);
    let not_ready = s.inbound(t0, sock("192.0.2.1:179"), sock("192.0.2.2:40001"));
    assert_eq!(not_ready.state(), State::OpenSent);
    assert_eq!(
        refused_with(s.offer_inbound(t0, not_ready)),
        Notification::new(6, 5)
    );
    assert_eq!(s.state(), State::Connect);
}
