//! Interop: our speaker (in a lab host's namespace) peers with BIRD, FRR and GoBGP over
//! IPv4 and IPv6 and announces host routes; the routers install them with our address as
//! the next hop. Skipped (passes) without root or without the routers installed.

use ferrolb_bgp::io::{PeerHandle, spawn};
use ferrolb_bgp::{Event, PeerAs, RouteAttributes, Session, SessionConfig};
use ferrolb_lab::routers::{Neighbor, Router, RouterKind, RouterSpec};
use ferrolb_lab::{Lab, available, in_netns, require};
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
