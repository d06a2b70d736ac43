//! The lab itself: hosts reach each other, link cuts and partitions separate them, and
//! nothing is left behind.

use ferrolb_lab::{Lab, available, require};

fn ping(lab: &Lab, from: &str, to: &str) -> bool {
    lab.exec(from, &["ping", "-c", "1", "-W", "1", to])
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn hosts_links_partitions_and_cleanup() {
    if !available() || !require("ping", "iputils-ping") || !require("nft", "nftables") {
        return;
    }
    let namespaces = || -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    {
        let mut lab = Lab::new("labt").unwrap();
        let a = lab.add_host("a", 11).unwrap();
        let b = lab.add_host("b", 12).unwrap();
        lab.add_host("c", 13).unwrap();
        assert!(ping(&lab, "a", &b.ipv4.to_string()));
        assert!(ping(&lab, "a", &b.ipv6.to_string()));
        assert!(namespaces().iter().any(|n| n == "fllabt-a"));

        lab.cut_link("b").unwrap();
        assert!(
            !ping(&lab, "a", &b.ipv4.to_string()),
            "a cut link separates b"
        );
        lab.restore_link("b").unwrap();
        assert!(
            ping(&lab, "a", &b.ipv4.to_string()),
            "and restoring it reconnects"
        );

        lab.partition(&["a"], &["b"]).unwrap();
        assert!(!ping(&lab, "b", &a.ipv4.to_string()), "partitioned");
        assert!(ping(&lab, "c", &a.ipv4.to_string()), "c is on both sides");
        lab.heal().unwrap();
        assert!(ping(&lab, "b", &a.ipv4.to_string()), "healed");

        lab.loss("a", 100).unwrap();
        assert!(!ping(&lab, "a", &b.ipv4.to_string()), "100 % loss");
        lab.heal().unwrap();
        assert!(ping(&lab, "a", &b.ipv4.to_string()), "loss removed");

        let pid = lab.spawn("a", &["sleep", "30"], None).unwrap();
        assert!(lab.signal(pid, "TERM").is_ok());
        assert!(lab.wait(pid, std::time::Duration::from_secs(5)).is_ok());
        assert!(
            lab.signal(1, "TERM").is_err(),
            "the lab signals only its own processes"
        );
    }
    assert!(
        !namespaces().iter().any(|n| n.starts_with("fllabt-")),
        "dropped lab leaves nothing"
    );
}

#[test]
fn code_runs_inside_a_namespace() {
    if !available() {
        return;
    }
    let mut lab = Lab::new("labn").unwrap();
    let h = lab.add_host("h", 21).unwrap();
    // Binding the host's own address only works inside its namespace.
    let addr = std::net::SocketAddr::from((h.ipv4, 0));
    let bound =
        ferrolb_lab::in_netns(&h.netns, move || std::net::UdpSocket::bind(addr).is_ok()).unwrap();
    assert!(bound, "bind inside the namespace");
    assert!(
        std::net::UdpSocket::bind(addr).is_err(),
        "the test's own namespace lacks the address"
    );
    drop(lab);
}

/// The router harness itself: BIRD, FRR and GoBGP peer with each other in the lab, and
/// a route one originates reaches the others (in the kernel table for BIRD and FRR).
#[test]
fn bird_frr_and_gobgp_peer_and_exchange_a_route() {
    use ferrolb_lab::routers::{Neighbor, Router, RouterKind, RouterSpec};
    use std::time::{Duration, Instant};
    if !available()
        || !require("bird", "bird2")
        || !require("gobgpd", "gobgpd")
        || !require("/usr/lib/frr/bgpd", "frr")
    {
        return;
    }
    let mut lab = Lab::new("labr").unwrap();
    let hosts = [
        ("bird", 1u8, 64501u32),
        ("frr", 2, 64502),
        ("gobgp", 3, 64503),
    ];
    for (h, o, _) in hosts {
        lab.add_host(h, o).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut routers = Vec::new();
    for (i, (h, o, asn)) in hosts.iter().enumerate() {
        let neighbors = hosts
            .iter()
            .filter(|(other, _, _)| other != h)
            .map(|(_, oo, oasn)| Neighbor::new(format!("198.51.100.{oo}").parse().unwrap(), *oasn))
            .collect();
        let spec = RouterSpec {
            asn: *asn,
            router_id: format!("198.51.100.{o}").parse().unwrap(),
            neighbors,
            hold_time: 9,
            // GoBGP announces one prefix: the others must learn it.
            originate: if *h == "gobgp" {
                vec!["203.0.113.128/25".into()]
            } else {
                vec![]
            },
        };
        let kind = [RouterKind::Bird, RouterKind::Frr, RouterKind::Gobgp][i];
        routers.push(Router::start(&mut lab, kind, h, &spec, &dir.path().join(h)).unwrap());
    }
    let gobgp_addr = "198.51.100.3".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut learned = (vec![], vec![]);
    while Instant::now() < deadline {
        learned = (
            routers[0].next_hops(&lab, "203.0.113.128/25"),
            routers[1].next_hops(&lab, "203.0.113.128/25"),
        );
        let direct =
            routers[0].established(&lab, gobgp_addr) && routers[1].established(&lab, gobgp_addr);
        if direct && learned.0 == [gobgp_addr] && learned.1 == [gobgp_addr] {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let logs: String = ["bird/bird.log", "frr/bgpd.log", "gobgp/gobgpd.log"]
        .iter()
        .map(|f| {
            format!(
                "--- {f}\n{}\n",
                std::fs::read_to_string(dir.path().join(f)).unwrap_or_default()
            )
        })
        .collect();
    assert!(
        routers[0].established(&lab, gobgp_addr),
        "BIRD peers with GoBGP\n{logs}"
    );
    assert!(
        routers[1].established(&lab, gobgp_addr),
        "FRR peers with GoBGP\n{logs}"
    );
    assert_eq!(
        learned.0,
        [gobgp_addr],
        "BIRD installed GoBGP's route\n{logs}"
    );
    assert_eq!(
        learned.1,
        [gobgp_addr],
        "FRR installed GoBGP's route\n{logs}"
    );
    assert_eq!(
        routers[2].next_hops(&lab, "203.0.113.128/25").len(),
        1,
        "in GoBGP's own RIB"
    );
}
