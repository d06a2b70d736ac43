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
