//! Interop: our speaker (in a lab host's namespace) peers with BIRD, FRR and GoBGP over
//! IPv4 and IPv6 and announces host routes; the routers install them with our address as
//! the next hop. Further tests: iBGP with TCP-MD5, communities, large communities and
//! LOCAL_PREF as the routers see them; ECMP from two speakers and withdrawal; route
//! refresh and router restarts; a link cut with a 3 s hold time; a listener taking the
//! routers' own connections. Skipped (passes) without root or without the routers
//! installed. Timings are never asserted: every check polls with a generous deadline.

use ferrolb_bgp::io::{ConnectionOptions, Listener, PeerHandle, spawn, spawn_with};
use ferrolb_bgp::{
    Event, LargeCommunity, PeerAs, PeerStatus, RouteAttributes, Session, SessionConfig,
};
use ferrolb_lab::routers::{Neighbor, RibPath, Router, RouterKind, RouterSpec};
use ferrolb_lab::{Host, Lab, available, in_netns, require};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const OUR_AS: u32 = 64512;

#[test]
fn bird_frr_and_gobgp_learn_our_routes() {
    if !available()
        || !require("bird", "bird2")
        || !require("gobgpd", "gobgpd")
        || !require("/usr/lib/frr/bgpd", "frr")
    {
        return;
    }
    let mut lab = Lab::new("bgpio").unwrap();
    let node = lab.add_host("node", 10).unwrap();
    let routers_spec = [
        ("bird", 1u8, 64501u32, RouterKind::Bird),
        ("frr", 2, 64502, RouterKind::Frr),
        ("gobgp", 3, 64503, RouterKind::Gobgp),
    ];
    for (h, o, _, _) in routers_spec {
        lab.add_host(h, o).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut routers = Vec::new();
    for (h, o, asn, kind) in routers_spec {
        let spec = RouterSpec {
            asn,
            router_id: format!("198.51.100.{o}").parse().unwrap(),
            neighbors: vec![
                Neighbor::new(IpAddr::V4(node.ipv4), OUR_AS),
                Neighbor::new(IpAddr::V6(node.ipv6), OUR_AS),
            ],
            hold_time: 9,
            originate: vec![],
        };
        routers.push(Router::start(&mut lab, kind, h, &spec, &dir.path().join(h)).unwrap());
    }

    // Our speaker: six sessions from the node's namespace, on its own thread.
    let v4: Vec<String> = (1..=50).map(|i| format!("203.0.113.{i}/32")).collect();
    let v6: Vec<String> = (1..=20)
        .map(|i| format!("2001:db8:100::{i:x}/128"))
        .collect();
    let routes: Vec<(ipnet::IpNet, RouteAttributes)> = v4
        .iter()
        .chain(&v6)
        .map(|p| {
            (
                p.parse().unwrap(),
                RouteAttributes {
                    communities: vec![(OUR_AS << 16) | 7],
                    ..RouteAttributes::default()
                },
            )
        })
        .collect();
    // Commands to the speaker thread: a new route set, or `None` to shut down.
    let (stop_tx, stop_rx) = mpsc::channel::<Option<Vec<(ipnet::IpNet, RouteAttributes)>>>();
    let fewer: Vec<(ipnet::IpNet, RouteAttributes)> = routes
        .iter()
        .filter(|(p, _)| {
            *p != "203.0.113.50/32".parse::<ipnet::IpNet>().unwrap()
                && *p != "2001:db8:100::14/128".parse::<ipnet::IpNet>().unwrap()
        })
        .cloned()
        .collect();
    let (up_tx, up_rx) = mpsc::channel::<String>();
    let netns = node.netns.clone();
    let router_id = node.ipv4;
    let speaker = std::thread::spawn(move || {
        in_netns(&netns, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut handles: Vec<(String, PeerHandle)> = Vec::new();
                for (_, o, asn, _) in routers_spec {
                    for peer in [format!("198.51.100.{o}"), format!("2001:db8::{o:x}")] {
                        let ip: IpAddr = peer.parse().unwrap();
                        let mut c = SessionConfig::new(OUR_AS, PeerAs::Fixed(asn), router_id);
                        c.hold_time = 9;
                        c.retry_max = Duration::from_secs(2);
                        let h = spawn(Session::new(c).unwrap(), SocketAddr::new(ip, 179));
                        h.set_routes(routes.clone());
                        handles.push((peer, h));
                    }
                }
                loop {
                    for (peer, h) in &mut handles {
                        while let Ok(Some(e)) =
                            tokio::time::timeout(Duration::from_millis(1), h.next_event()).await
                        {
                            if matches!(e, Event::Established(_)) {
                                let _ = up_tx.send(peer.clone());
                            }
                        }
                    }
                    match stop_rx.try_recv() {
                        Ok(Some(routes)) => {
                            for (_, h) in &handles {
                                h.set_routes(routes.clone());
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                for (_, h) in &handles {
                    h.shutdown();
                }
                for (_, h) in handles {
                    let _ = tokio::time::timeout(Duration::from_secs(5), h.join()).await;
                }
            });
        })
        .unwrap();
    });

    let want_v4 = IpAddr::V4(node.ipv4);
    let want_v6 = IpAddr::V6(node.ipv6);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut up = Vec::new();
    let check = |r: &Router| {
        let a = r.next_hops(&lab, "203.0.113.1/32") == [want_v4]
            && r.next_hops(&lab, "203.0.113.50/32") == [want_v4];
        let b = r.next_hops(&lab, "2001:db8:100::1/128") == [want_v6]
            && r.next_hops(&lab, "2001:db8:100::14/128") == [want_v6];
        (a, b)
    };
    let mut results = Vec::new();
    while Instant::now() < deadline {
        up.extend(up_rx.try_iter());
        results = routers.iter().map(check).collect();
        if results.iter().all(|&(a, b)| a && b) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    up.extend(up_rx.try_iter());
    let logs: String = ["bird/bird.log", "frr/bgpd.log", "gobgp/gobgpd.log"]
        .iter()
        .map(|f| {
            format!(
                "--- {f}\n{}\n",
                std::fs::read_to_string(dir.path().join(f)).unwrap_or_default()
            )
        })
        .collect();
    up.sort();
    assert_eq!(up.len(), 6, "sessions up: {up:?}\n{logs}");
    for ((name, ..), (v4ok, v6ok)) in routers_spec.iter().zip(&results) {
        assert!(v4ok, "{name} installed our IPv4 routes\n{logs}");
        assert!(v6ok, "{name} installed our IPv6 routes\n{logs}");
    }

    // Withdraw one route of each family while the sessions stay up.
    let _ = stop_tx.send(Some(fewer));
    let gone = |r: &Router| {
        r.next_hops(&lab, "203.0.113.50/32").is_empty()
            && r.next_hops(&lab, "2001:db8:100::14/128").is_empty()
            && r.next_hops(&lab, "203.0.113.1/32") == [want_v4]
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !routers.iter().all(gone) {
        std::thread::sleep(Duration::from_millis(250));
    }
    for r in &routers {
        assert!(gone(r), "{:?} removed the withdrawn routes only", r.kind);
    }
    let _ = stop_tx.send(None);
    speaker.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// A speaker on a lab host, driven from the test thread.

enum Cmd {
    Listen(SocketAddr, mpsc::Sender<Result<(), String>>),
    Add {
        name: String,
        config: Box<SessionConfig>,
        peer: SocketAddr,
        options: ConnectionOptions,
        reply: mpsc::Sender<Result<(), String>>,
    },
    Routes(Vec<(ipnet::IpNet, RouteAttributes)>),
    PeerLost(String),
    Status(mpsc::Sender<BTreeMap<String, PeerStatus>>),
    Stop,
}

/// Our speaker in a host's namespace: sessions by name, one desired route set for all.
struct Speaker {
    tx: tokio::sync::mpsc::UnboundedSender<Cmd>,
    thread: Option<std::thread::JoinHandle<()>>,
    router_id: std::net::Ipv4Addr,
}

impl Speaker {
    fn start(host: &Host) -> Speaker {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Cmd>();
        let netns = host.netns.clone();
        let thread = std::thread::spawn(move || {
            in_netns(&netns, move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut listener: Option<Listener> = None;
                    let mut peers: BTreeMap<String, PeerHandle> = BTreeMap::new();
                    let mut routes = Vec::new();
                    while let Some(cmd) = rx.recv().await {
                        match cmd {
                            Cmd::Listen(addr, reply) => {
                                let r = Listener::bind(addr).map_err(|e| e.to_string());
                                let _ = reply.send(r.map(|l| listener = Some(l)));
                            }
                            Cmd::Add {
                                name,
                                config,
                                peer,
                                options,
                                reply,
                            } => {
                                let session = Session::new(*config).unwrap();
                                let h = match &listener {
                                    Some(l) => l.spawn(session, peer, options),
                                    None => spawn_with(session, peer, options),
                                };
                                let _ = reply.send(match h {
                                    Ok(h) => {
                                        h.set_routes(routes.clone());
                                        peers.insert(name, h);
                                        Ok(())
                                    }
                                    Err(e) => Err(e.to_string()),
                                });
                            }
                            Cmd::Routes(r) => {
                                routes = r;
                                for h in peers.values() {
                                    h.set_routes(routes.clone());
                                }
                            }
                            Cmd::PeerLost(name) => {
                                if let Some(h) = peers.get(&name) {
                                    h.peer_lost();
                                }
                            }
                            Cmd::Status(reply) => {
                                let _ = reply.send(
                                    peers.iter().map(|(n, h)| (n.clone(), h.status())).collect(),
                                );
                            }
                            Cmd::Stop => break,
                        }
                    }
                    for h in peers.values() {
                        h.shutdown();
                    }
                    for h in peers.into_values() {
                        let _ = tokio::time::timeout(Duration::from_secs(5), h.join()).await;
                    }
                });
            })
            .unwrap();
        });
        Speaker {
            tx,
            thread: Some(thread),
            router_id: host.ipv4,
        }
    }

    /// Accept the routers' connections too, on port 179 of every address.
    fn listen(&self) {
        let (reply, rx) = mpsc::channel();
        let _ = self
            .tx
            .send(Cmd::Listen("[::]:179".parse().unwrap(), reply));
        rx.recv().unwrap().expect("listening on port 179");
    }

    /// A session called `name` with `peer` (port 179).
    fn add(&self, name: &str, config: SessionConfig, peer: IpAddr, options: ConnectionOptions) {
        let (reply, rx) = mpsc::channel();
        let _ = self.tx.send(Cmd::Add {
            name: name.into(),
            config: Box::new(config),
            peer: SocketAddr::new(peer, 179),
            options,
            reply,
        });
        rx.recv().unwrap().expect("session task started");
    }

    fn config(&self, peer_as: PeerAs, hold: u16) -> SessionConfig {
        let mut c = SessionConfig::new(OUR_AS, peer_as, self.router_id);
        c.hold_time = hold;
        c.retry_max = Duration::from_secs(2);
        c
    }

    fn set_routes(&self, routes: Vec<(ipnet::IpNet, RouteAttributes)>) {
        let _ = self.tx.send(Cmd::Routes(routes));
    }

    /// As BFD does when the peer goes down.
    fn peer_lost(&self, name: &str) {
        let _ = self.tx.send(Cmd::PeerLost(name.into()));
    }

    fn status(&self) -> BTreeMap<String, PeerStatus> {
        let (reply, rx) = mpsc::channel();
        let _ = self.tx.send(Cmd::Status(reply));
        rx.recv().unwrap_or_default()
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `f` every 250 ms until it holds or `timeout` passes; whether it held.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn routers_available() -> bool {
    available()
        && require("bird", "bird2")
        && require("gobgpd", "gobgpd")
        && require("/usr/lib/frr/bgpd", "frr")
}

const KINDS: [(&str, u8, RouterKind); 3] = [
    ("bird", 1, RouterKind::Bird),
    ("frr", 2, RouterKind::Frr),
    ("gobgp", 3, RouterKind::Gobgp),
];

/// Starts BIRD, FRR and GoBGP on hosts `bird` (.1), `frr` (.2) and `gobgp` (.3), each
/// with `neighbors`; the router AS is `asn(octet)`.
fn start_routers(
    lab: &mut Lab,
    dir: &std::path::Path,
    asn: impl Fn(u8) -> u32,
    hold_time: u16,
    neighbors: &[Neighbor],
) -> Vec<Router> {
    KINDS
        .iter()
        .map(|&(h, o, kind)| {
            lab.add_host(h, o).unwrap();
            let spec = RouterSpec {
                asn: asn(o),
                router_id: format!("198.51.100.{o}").parse().unwrap(),
                neighbors: neighbors.to_vec(),
                hold_time,
                originate: vec![],
            };
            Router::start(lab, kind, h, &spec, &dir.join(h)).unwrap()
        })
        .collect()
}

fn router_ip(o: u8) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, o))
}

fn logs(dir: &std::path::Path) -> String {
    ["bird/bird.log", "frr/bgpd.log", "gobgp/gobgpd.log"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("--- {f}\n{}\n", tail.join("\n"))
        })
        .collect()
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

#[test]
fn ibgp_with_md5_shows_communities_and_local_pref() {
    if !routers_available() {
        return;
    }
    let mut lab = Lab::new("bgpib").unwrap();
    let node = lab.add_host("node", 10).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // iBGP (the routers are in our AS). IPv4 with the right password; IPv6 with a
    // password we do not use.
    let mut v4 = Neighbor::new(IpAddr::V4(node.ipv4), OUR_AS);
    v4.password = Some("lab-secret".into());
    let mut v6 = Neighbor::new(IpAddr::V6(node.ipv6), OUR_AS);
    v6.password = Some("other-secret".into());
    let routers = start_routers(&mut lab, dir.path(), |_| OUR_AS, 9, &[v4, v6]);

    let speaker = Speaker::start(&node);
    speaker.set_routes(vec![(
        net("203.0.113.1/32"),
        RouteAttributes {
            communities: vec![(OUR_AS << 16) | 7, (OUR_AS << 16) | 300],
            large_communities: vec![LargeCommunity {
                global: OUR_AS,
                local1: 1,
                local2: 2,
            }],
            local_pref: Some(250),
        },
    )]);
    let md5 = |key: &str| ConnectionOptions {
        md5_key: Some(key.as_bytes().to_vec()),
        ttl: Some(255),
        ..ConnectionOptions::default()
    };
    for (name, o, _) in KINDS {
        speaker.add(
            &format!("{name}4"),
            speaker.config(PeerAs::Internal, 9),
            router_ip(o),
            md5("lab-secret"),
        );
        speaker.add(
            &format!("{name}6"),
            speaker.config(PeerAs::Internal, 9),
            format!("2001:db8::{o}").parse().unwrap(),
            md5("lab-secret"),
        );
    }
    let want = |p: &RibPath| {
        p.next_hop == Some(IpAddr::V4(node.ipv4))
            && p.as_path.is_empty()
            && p.local_pref == Some(250)
            && p.communities.contains(&"64512:7".to_string())
            && p.communities.contains(&"64512:300".to_string())
            && p.large_communities == ["64512:1:2"]
    };
    let ok = eventually(Duration::from_secs(40), || {
        routers
            .iter()
            .all(|r| r.rib(&lab, "203.0.113.1/32").iter().any(want))
    });
    let ribs: Vec<String> = routers
        .iter()
        .map(|r| format!("{:?}: {:?}", r.kind, r.rib(&lab, "203.0.113.1/32")))
        .collect();
    assert!(
        ok,
        "iBGP route with attributes in every RIB: {ribs:#?}\n{}",
        logs(dir.path())
    );
    // The sessions with the wrong password never came up, on either side.
    let status = speaker.status();
    for (name, _, _) in KINDS {
        let r = routers.iter().find(|r| r.host == name).unwrap();
        assert!(r.established(&lab, IpAddr::V4(node.ipv4)), "{name} v4 up");
        assert!(status[&format!("{name}4")].up, "{name}4 up: {status:?}");
        assert!(
            !r.established(&lab, IpAddr::V6(node.ipv6)),
            "{name}: no session with a wrong MD5 password"
        );
        let s6 = &status[&format!("{name}6")];
        assert!(
            !s6.up && s6.stats.established_transitions == 0,
            "{name}6 never up with a wrong MD5 password: {s6:?}"
        );
    }
}

#[test]
fn ecmp_from_two_speakers_then_withdraw() {
    if !routers_available() {
        return;
    }
    let mut lab = Lab::new("bgpec").unwrap();
    let a = lab.add_host("node-a", 10).unwrap();
    let b = lab.add_host("node-b", 11).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let neighbors = [
        Neighbor::new(IpAddr::V4(a.ipv4), OUR_AS),
        Neighbor::new(IpAddr::V4(b.ipv4), OUR_AS),
    ];
    let routers = start_routers(
        &mut lab,
        dir.path(),
        |o| 64500 + u32::from(o),
        9,
        &neighbors,
    );
    let prefix = "203.0.113.5/32";
    let speakers: Vec<Speaker> = [&a, &b].iter().map(|h| Speaker::start(h)).collect();
    for s in &speakers {
        s.set_routes(vec![(net(prefix), RouteAttributes::default())]);
        for (name, o, _) in KINDS {
            s.add(
                name,
                s.config(PeerAs::Fixed(64500 + u32::from(o)), 9),
                router_ip(o),
                ConnectionOptions {
                    ttl: Some(1),
                    ..ConnectionOptions::default()
                },
            );
        }
    }
    let (ha, hb) = (IpAddr::V4(a.ipv4), IpAddr::V4(b.ipv4));
    // BIRD and FRR: one kernel route with both next hops; GoBGP: two paths in its RIB.
    let hops = |r: &Router| -> Vec<IpAddr> {
        match r.kind {
            RouterKind::Gobgp => {
                let mut h: Vec<IpAddr> = r
                    .rib(&lab, prefix)
                    .iter()
                    .filter_map(|p| p.next_hop)
                    .collect();
                h.sort();
                h
            }
            _ => r.next_hops(&lab, prefix),
        }
    };
    let ok = eventually(Duration::from_secs(40), || {
        routers.iter().all(|r| hops(r) == [ha, hb])
    });
    let seen: Vec<String> = routers
        .iter()
        .map(|r| format!("{:?}: {:?}", r.kind, hops(r)))
        .collect();
    assert!(
        ok,
        "ECMP over both speakers: {seen:?}\n{}",
        logs(dir.path())
    );

    // Speaker A withdraws: only B is left.
    speakers[0].set_routes(Vec::<(ipnet::IpNet, RouteAttributes)>::new());
    let ok = eventually(Duration::from_secs(30), || {
        routers.iter().all(|r| hops(r) == [hb])
    });
    let seen: Vec<String> = routers
        .iter()
        .map(|r| format!("{:?}: {:?}", r.kind, hops(r)))
        .collect();
    assert!(ok, "A's path withdrawn: {seen:?}");
    assert!(
        speakers[0]
            .status()
            .values()
            .all(|s| s.up && s.announced == 0)
    );

    // B too: the route is gone.
    speakers[1].set_routes(Vec::<(ipnet::IpNet, RouteAttributes)>::new());
    let ok = eventually(Duration::from_secs(30), || {
        routers.iter().all(|r| hops(r).is_empty())
    });
    assert!(ok, "route withdrawn everywhere");
}

#[test]
fn route_refresh_peer_lost_and_router_restarts() {
    if !routers_available() {
        return;
    }
    let mut lab = Lab::new("bgprr").unwrap();
    let node = lab.add_host("node", 10).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let neighbors = [Neighbor::new(IpAddr::V4(node.ipv4), OUR_AS)];
    let mut routers = start_routers(
        &mut lab,
        dir.path(),
        |o| 64500 + u32::from(o),
        9,
        &neighbors,
    );
    let speaker = Speaker::start(&node);
    let prefix = "203.0.113.7/32";
    speaker.set_routes(vec![(net(prefix), RouteAttributes::default())]);
    for (name, o, _) in KINDS {
        speaker.add(
            name,
            speaker.config(PeerAs::Fixed(64500 + u32::from(o)), 90),
            router_ip(o),
            ConnectionOptions::default(),
        );
    }
    let me = IpAddr::V4(node.ipv4);
    let has_route = |lab: &Lab, r: &Router| {
        r.rib(lab, prefix)
            .iter()
            .any(|p| p.next_hop == Some(me) && p.as_path == [OUR_AS])
    };
    assert!(
        eventually(Duration::from_secs(40), || routers
            .iter()
            .all(|r| has_route(&lab, r))),
        "routes learnt\n{}",
        logs(dir.path())
    );

    // Route refresh: BIRD and FRR keep no copy of what they received, so they ask us with
    // a ROUTE-REFRESH and we send the routes again.
    for r in routers.iter().filter(|r| r.kind != RouterKind::Gobgp) {
        let before = speaker.status()[&r.host].stats;
        r.refresh_in(&lab, me).unwrap();
        let answered = eventually(Duration::from_secs(20), || {
            let s = speaker.status()[&r.host].stats;
            s.route_refreshes_received > before.route_refreshes_received
                && s.updates_sent > before.updates_sent
        });
        assert!(
            answered,
            "{:?}: ROUTE-REFRESH received and answered",
            r.kind
        );
        assert!(has_route(&lab, r), "{:?}: the route stays", r.kind);
    }
    // GoBGP keeps an Adj-RIB-In: its soft reset may be answered from it; the route stays.
    let gobgp = routers
        .iter()
        .find(|r| r.kind == RouterKind::Gobgp)
        .unwrap();
    gobgp.refresh_in(&lab, me).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        eventually(Duration::from_secs(10), || has_route(&lab, gobgp)),
        "GoBGP keeps the route after a soft reset"
    );

    // The peer declared lost (BFD down): the session is dropped at once, without waiting
    // for the hold timer (90 s here), and comes back by itself with the route.
    for r in &routers {
        let before = speaker.status()[&r.host].stats.established_transitions;
        speaker.peer_lost(&r.host);
        // The retry wait (at least 0.75 s) leaves time to see the PeerLost close; later
        // attempts may close for other reasons before one succeeds.
        let mut seen_lost = false;
        let back = eventually(Duration::from_secs(30), || {
            let s = &speaker.status()[&r.host];
            seen_lost |= s.last_close == Some(ferrolb_bgp::CloseReason::PeerLost);
            seen_lost && s.stats.established_transitions > before && s.up
        });
        assert!(
            back,
            "{:?}: dropped and re-established: {:?}",
            r.kind,
            speaker.status()[&r.host]
        );
        assert!(
            eventually(Duration::from_secs(20), || has_route(&lab, r)),
            "{:?}: the route is back",
            r.kind
        );
    }

    // Kill and restart each router: we reconnect and the route comes back.
    for r in &mut routers {
        let before = speaker.status()[&r.host].stats.established_transitions;
        r.restart(&mut lab).unwrap();
        let r = &*r;
        let back = eventually(Duration::from_secs(60), || {
            speaker.status()[&r.host].stats.established_transitions > before && has_route(&lab, r)
        });
        assert!(
            back,
            "{:?}: session re-established and route back after a restart: {:?}\n{}",
            r.kind,
            speaker.status()[&r.host],
            logs(dir.path())
        );
    }
}

#[test]
fn link_cut_withdraws_after_the_hold_time_and_recovers() {
    if !routers_available() {
        return;
    }
    let mut lab = Lab::new("bgplc").unwrap();
    let node = lab.add_host("node", 10).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let neighbors = [Neighbor::new(IpAddr::V4(node.ipv4), OUR_AS)];
    let routers = start_routers(
        &mut lab,
        dir.path(),
        |o| 64500 + u32::from(o),
        3,
        &neighbors,
    );
    let speaker = Speaker::start(&node);
    let prefix = "203.0.113.9/32";
    speaker.set_routes(vec![(net(prefix), RouteAttributes::default())]);
    for (name, o, _) in KINDS {
        speaker.add(
            name,
            speaker.config(PeerAs::Fixed(64500 + u32::from(o)), 3),
            router_ip(o),
            ConnectionOptions::default(),
        );
    }
    let me = IpAddr::V4(node.ipv4);
    let has_route = |r: &Router| r.rib(&lab, prefix).iter().any(|p| p.next_hop == Some(me));
    assert!(
        eventually(Duration::from_secs(40), || routers.iter().all(has_route)),
        "routes learnt\n{}",
        logs(dir.path())
    );
    let before: BTreeMap<String, u64> = speaker
        .status()
        .into_iter()
        .map(|(n, s)| (n, s.stats.established_transitions))
        .collect();
    // The node's cable is pulled: no NOTIFICATION, no FIN; only hold timers notice.
    lab.cut_link("node").unwrap();
    let withdrawn = eventually(Duration::from_secs(30), || {
        routers
            .iter()
            .all(|r| !has_route(r) && r.next_hops(&lab, prefix).is_empty())
    });
    assert!(
        withdrawn,
        "routers withdrew after the hold time\n{}",
        logs(dir.path())
    );
    assert!(
        eventually(Duration::from_secs(30), || speaker
            .status()
            .values()
            .all(|s| !s.up)),
        "our hold timers expired too: {:?}",
        speaker.status()
    );
    lab.restore_link("node").unwrap();
    let back = eventually(Duration::from_secs(60), || {
        routers.iter().all(has_route)
            && speaker
                .status()
                .iter()
                .all(|(n, s)| s.stats.established_transitions > before[n])
    });
    assert!(
        back,
        "sessions and routes back: {:?}\n{}",
        speaker.status(),
        logs(dir.path())
    );
}

#[test]
fn listener_takes_the_routers_connections() {
    if !routers_available() {
        return;
    }
    let mut lab = Lab::new("bgpls").unwrap();
    let node = lab.add_host("node", 10).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut v4 = Neighbor::new(IpAddr::V4(node.ipv4), OUR_AS);
    v4.password = Some("listen-secret".into());
    let routers = start_routers(&mut lab, dir.path(), |o| 64500 + u32::from(o), 9, &[v4]);
    let speaker = Speaker::start(&node);
    speaker.listen();
    let prefix = "203.0.113.11/32";
    speaker.set_routes(vec![(net(prefix), RouteAttributes::default())]);
    for (name, o, _) in KINDS {
        speaker.add(
            name,
            speaker.config(PeerAs::Fixed(64500 + u32::from(o)), 9),
            router_ip(o),
            ConnectionOptions {
                md5_key: Some(b"listen-secret".to_vec()),
                ..ConnectionOptions::default()
            },
        );
    }
    let me = IpAddr::V4(node.ipv4);
    let has_route = |r: &Router| r.rib(&lab, prefix).iter().any(|p| p.next_hop == Some(me));
    assert!(
        eventually(Duration::from_secs(40), || routers.iter().all(has_route)),
        "routes learnt with both sides dialing: {:?}\n{}",
        speaker.status(),
        logs(dir.path())
    );
    // Whichever connection won, exactly one session per router stays up.
    std::thread::sleep(Duration::from_secs(3));
    for (name, _, _) in KINDS {
        let r = routers.iter().find(|r| r.host == name).unwrap();
        assert!(r.established(&lab, me), "{name} established");
        assert!(has_route(r), "{name} keeps the route");
        let s = &speaker.status()[name];
        assert!(s.up, "{name}: {s:?}");
    }
}

#[test]
fn dual_stack_listener_keys_ipv4_and_ipv6_peers() {
    if !available() {
        return;
    }
    let mut lab = Lab::new("bgpds").unwrap();
    let a = lab.add_host("node-a", 10).unwrap();
    let b = lab.add_host("node-b", 11).unwrap();
    // A listens on [::]:179 (IPv4 peers arrive IPv4-mapped; their MD5 key is filed as an
    // IPv4 key) and dials too; B only dials, so A adopts B's connections.
    let sa = Speaker::start(&a);
    sa.listen();
    sa.set_routes(vec![(net("203.0.113.20/32"), RouteAttributes::default())]);
    let sb = Speaker::start(&b);
    let key = |k: &str| ConnectionOptions {
        md5_key: Some(k.as_bytes().to_vec()),
        ttl: Some(255),
        ..ConnectionOptions::default()
    };
    sa.add(
        "b4",
        sa.config(PeerAs::Internal, 9),
        IpAddr::V4(b.ipv4),
        key("key-four"),
    );
    sa.add(
        "b6",
        sa.config(PeerAs::Internal, 9),
        IpAddr::V6(b.ipv6),
        key("key-six"),
    );
    sb.add(
        "a4",
        sb.config(PeerAs::Internal, 9),
        IpAddr::V4(a.ipv4),
        key("key-four"),
    );
    sb.add(
        "a6",
        sb.config(PeerAs::Internal, 9),
        IpAddr::V6(a.ipv6),
        key("key-six"),
    );
    let ok = eventually(Duration::from_secs(30), || {
        let (x, y) = (sa.status(), sb.status());
        // The IPv4 route goes over the IPv4 session only (no IPv4 next hop on the other).
        x.len() == 2
            && x.values().all(|s| s.up)
            && y.len() == 2
            && y.values().all(|s| s.up)
            && y.get("a4").is_some_and(|s| s.stats.updates_received >= 1)
    });
    assert!(
        ok,
        "both families up with MD5 through the listener: {:?}\n{:?}",
        sa.status(),
        sb.status()
    );
}
