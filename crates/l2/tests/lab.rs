//! The announcer against the real Linux kernel as the client, in network namespaces.
//!
//! Each test builds a lab (client at .10, node(s) at .11/.12 on 198.51.100.0/24 and
//! 2001:db8::/64) and runs the announcer inside a node's namespace on a thread with a
//! current-thread tokio runtime. Service addresses are on-link: 198.51.100.200 and
//! 2001:db8::200. Tests skip, saying why, without root or the tools.

#![cfg(feature = "io")]

use ferrolb_l2::interfaces;
use ferrolb_l2::packet::{
    EtherType, EthernetFrame, Ipv6Packet, MacAddr, NdpMessage, NdpPacket, NeighborAdvertisement,
    NeighborSolicitation, ndp,
};
use ferrolb_l2::socket::{PacketKind, PacketSocket};
use ferrolb_l2::{AnnounceStatus, AnnouncerConfig, Interfaces, L2Announcer, L2Handle};
use ferrolb_lab::{Host, Lab};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
const OTHER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 201);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x201);
/// A MAC no host has: the "previous owner" in neighbour tables.
const OLD_MAC: &str = "02:00:5e:00:53:99";

fn lab_available() -> bool {
    ferrolb_lab::available()
        && ferrolb_lab::require("arping", "iputils-arping")
        && ferrolb_lab::require("ndisc6", "ndisc6")
        && ferrolb_lab::require("ping", "iputils-ping")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// An announcer running inside a host's namespace; stopped when dropped.
struct Node {
    handle: L2Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    fn start(host: &Host) -> Node {
        Self::start_with(host, AnnouncerConfig::default())
    }

    fn start_with(host: &Host, config: AnnouncerConfig) -> Node {
        let (htx, hrx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let netns = host.netns.clone();
        let thread = std::thread::spawn(move || {
            let ran = ferrolb_lab::in_netns(&netns, move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let handle = L2Announcer::spawn(config);
                    let _ = htx.send(handle.clone());
                    let _ = stop_rx.await;
                    handle.shutdown().await;
                });
            });
            if let Err(e) = ran {
                eprintln!("announcer thread: {e}");
            }
        });
        let handle = hrx.recv().expect("announcer started");
        Node {
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn own(&self, ips: &[IpAddr]) -> AnnounceStatus {
        let owned = ips.iter().map(|ip| (*ip, Interfaces::All)).collect();
        self.set(owned)
    }

    fn set(&self, owned: BTreeMap<IpAddr, Interfaces>) -> AnnounceStatus {
        block_on(self.handle.set_owned(owned)).expect("announcer running")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `arping -c 1` from `host`'s eth0: the MACs of the replies it printed, in order.
fn arping(lab: &Lab, host: &str, ip: Ipv4Addr) -> Vec<String> {
    arping_on(lab, host, "eth0", ip)
}

fn arping_on(lab: &Lab, host: &str, dev: &str, ip: Ipv4Addr) -> Vec<String> {
    let ip = ip.to_string();
    let out = lab
        .exec(host, &["arping", "-c", "1", "-w", "1", "-I", dev, &ip])
        .expect("arping runs");
    let t = text(&out);
    t.lines()
        .filter(|l| l.contains("reply from"))
        .filter_map(|l| {
            let start = l.find('[')? + 1;
            let end = l.find(']')?;
            l.get(start..end).map(str::to_ascii_lowercase)
        })
        .collect()
}

/// `ndisc6` from `host`: the resolved MAC, if any.
fn ndisc6(lab: &Lab, host: &str, ip: Ipv6Addr) -> Option<String> {
    let out = lab
        .exec(
            host,
            &[
                "ndisc6",
                "-q",
                "-1",
                "-r",
                "2",
                "-w",
                "500",
                &ip.to_string(),
                "eth0",
            ],
        )
        .expect("ndisc6 runs");
    out.status
        .success()
        .then(|| {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|s| !s.is_empty())
}

/// The client's neighbour entry for `ip`: (MAC, state).
fn neigh(lab: &Lab, host: &str, ip: IpAddr) -> Option<(String, String)> {
    let out = lab
        .exec_ok(
            host,
            &["ip", "neigh", "show", &ip.to_string(), "dev", "eth0"],
        )
        .expect("ip neigh");
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let words: Vec<&str> = line.split_whitespace().collect();
    let mac = words
        .iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| words.get(i + 1))?;
    Some((mac.to_string(), words.last()?.to_string()))
}

fn set_neigh(lab: &Lab, host: &str, ip: IpAddr, mac: &str, state: &str) {
    lab.exec_ok(
        host,
        &[
            "ip",
            "neigh",
            "replace",
            &ip.to_string(),
            "lladdr",
            mac,
            "dev",
            "eth0",
            "nud",
            state,
        ],
    )
    .expect("ip neigh replace");
}

/// Polls `f` every 2 ms until it is true or `limit` passes; the time it took.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

#[test]
fn arp_requests_are_answered_only_for_owned_addresses() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("l2arp").unwrap();
    lab.add_host("client", 10).unwrap();
    let node_host = lab.add_host("node", 11).unwrap();
    let node_mac = node_host.mac_string();
    let node = Node::start(&node_host);

    // Nothing owned yet: no answer.
    assert!(arping(&lab, "client", VIP4).is_empty());

    let status = node.own(&[IpAddr::V4(VIP4)]);
    assert_eq!(status[&IpAddr::V4(VIP4)].interfaces, ["eth0"]);
    // One probe, exactly one reply, from the node's MAC.
    assert_eq!(arping(&lab, "client", VIP4), [node_mac.as_str()]);
    // Three probes, three replies: one per request, none duplicated.
    let out = lab
        .exec(
            "client",
            &[
                "arping",
                "-c",
                "3",
                "-i",
                "1",
                "-I",
                "eth0",
                &VIP4.to_string(),
            ],
        )
        .unwrap();
    assert!(
        text(&out).contains("Received 3 response(s)"),
        "{}",
        text(&out)
    );
    // An address it does not own.
    assert!(arping(&lab, "client", OTHER4).is_empty());
    // RFC 5227 ARP Probe (sender 0.0.0.0): answered, so arping -D reports a conflict.
    let dad = lab
        .exec(
            "client",
            &[
                "arping",
                "-D",
                "-c",
                "1",
                "-w",
                "1",
                "-I",
                "eth0",
                &VIP4.to_string(),
            ],
        )
        .unwrap();
    assert_eq!(dad.status.code(), Some(1), "{}", text(&dad));

    let stats = node.handle.stats();
    let s = stats.ips[&IpAddr::V4(VIP4)];
    assert_eq!(s.requests_received, 5, "{stats:?}");
    assert_eq!(s.responses_sent, 5, "{stats:?}");
    assert!(!stats.ips.contains_key(&IpAddr::V4(OTHER4)));

    // Released: no longer answered.
    node.own(&[]);
    assert!(arping(&lab, "client", VIP4).is_empty());
    assert_eq!(node.handle.stats().ips[&IpAddr::V4(VIP4)].responses_sent, 5);
}

/// Sends a Neighbor Solicitation from `host` and returns the advertisements it gets
/// within 1 s, with the time to the first.
fn solicit(host: &Host, ns: NdpPacket, eth_dst: MacAddr) -> (Vec<(MacAddr, NdpPacket)>, Duration) {
    let src = MacAddr(host.mac);
    ferrolb_lab::in_netns(&host.netns, move || {
        let links = interfaces::discover().expect("links");
        let eth0 = links.iter().find(|l| l.name == "eth0").expect("eth0");
        let sock =
            PacketSocket::open(eth0.ifindex, PacketKind::NeighborAdvertisements).expect("socket");
        let start = Instant::now();
        sock.send(&ns.to_frame(eth_dst, src)).expect("send");
        let mut got = Vec::new();
        let mut first = None;
        let mut buf = vec![0u8; 2048];
        while start.elapsed() < Duration::from_secs(1) {
            match sock.recv(&mut buf) {
                Ok(Some(n)) => {
                    let eth = EthernetFrame::parse(&buf[..n]).unwrap();
                    if eth.ethertype != EtherType::IPV6 {
                        continue;
                    }
                    let ip = Ipv6Packet::parse(eth.payload).unwrap();
                    // Only answers to us, not the gratuitous bursts to ff02::1.
                    if let Ok(Some(p)) = NdpPacket::parse(&ip)
                        && p.dst == ns.src
                    {
                        first.get_or_insert(start.elapsed());
                        got.push((eth.src, p));
                    }
                }
                Ok(None) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        (got, first.unwrap_or_default())
    })
    .expect("in client namespace")
}

#[test]
fn neighbor_solicitations_are_answered_with_override() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("l2ndp").unwrap();
    let client = lab.add_host("client", 10).unwrap();
    let node_host = lab.add_host("node", 11).unwrap();
    let node_mac = node_host.mac_string();
    let node = Node::start(&node_host);

    assert_eq!(ndisc6(&lab, "client", VIP6), None);
    let status = node.own(&[IpAddr::V6(VIP6)]);
    assert_eq!(status[&IpAddr::V6(VIP6)].interfaces, ["eth0"]);

    // The node listens on the VIP's solicited-node group (33:33:ff:00:02:00).
    let maddr = lab
        .exec_ok("node", &["ip", "maddr", "show", "dev", "eth0"])
        .unwrap();
    assert!(
        text(&maddr).contains("33:33:ff:00:02:00"),
        "{}",
        text(&maddr)
    );

    // Multicast NS with SLLA (ndisc6, like the kernel's address resolution).
    assert_eq!(ndisc6(&lab, "client", VIP6).as_deref(), Some(&*node_mac));
    assert_eq!(ndisc6(&lab, "client", OTHER6), None);

    // Unicast NS without the source link-layer option (RFC 4861 7.2.2 allows omitting
    // it; MetalLB drops these, metallb#2920): answered to the frame's source.
    let probe = NdpPacket {
        src: client.ipv6,
        dst: VIP6,
        message: NdpMessage::Solicitation(NeighborSolicitation {
            target: VIP6,
            source_link_addr: None,
        }),
    };
    let (nas, rtt) = solicit(&client, probe, MacAddr(node_host.mac));
    assert_eq!(nas.len(), 1, "{nas:?}");
    let (from, na) = nas[0];
    assert_eq!(from, MacAddr(node_host.mac));
    assert_eq!((na.src, na.dst), (VIP6, client.ipv6));
    let NdpMessage::Advertisement(adv) = na.message else {
        panic!("not an NA: {na:?}")
    };
    assert!(adv.solicited && adv.override_flag && !adv.router);
    assert_eq!(adv.target_link_addr, Some(MacAddr(node_host.mac)));
    eprintln!("unicast NS without SLLA answered in {rtt:?}");

    // The kernel's own unicast reachability probe: the client has a STALE entry with
    // the node's MAC; sending to it goes DELAY then PROBE (unicast NS); the solicited
    // NA makes it REACHABLE.
    lab.exec_ok(
        "client",
        &[
            "sysctl",
            "-qw",
            "net.ipv6.neigh.eth0.delay_first_probe_time=1",
        ],
    )
    .unwrap();
    set_neigh(&lab, "client", IpAddr::V6(VIP6), &node_mac, "stale");
    let _ = lab.exec(
        "client",
        &["ping", "-6", "-c", "1", "-W", "1", &VIP6.to_string()],
    );
    let reachable = wait_for(Duration::from_secs(5), || {
        neigh(&lab, "client", IpAddr::V6(VIP6)).is_some_and(|(_, s)| s == "REACHABLE")
    });
    assert!(
        reachable.is_some(),
        "{:?}",
        neigh(&lab, "client", IpAddr::V6(VIP6))
    );

    // Duplicate address detection from the client: the node's NA to ff02::1 (S=0)
    // makes the kernel mark the address dadfailed.
    lab.exec_ok(
        "client",
        &["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=1"],
    )
    .unwrap();
    lab.exec_ok(
        "client",
        &["ip", "addr", "add", &format!("{VIP6}/64"), "dev", "eth0"],
    )
    .unwrap();
    let dadfailed = wait_for(Duration::from_secs(5), || {
        let out = lab
            .exec_ok("client", &["ip", "-6", "addr", "show", "dev", "eth0"])
            .unwrap();
        text(&out).contains("dadfailed")
    });
    assert!(dadfailed.is_some(), "DAD did not fail");
    lab.exec_ok(
        "client",
        &["ip", "addr", "del", &format!("{VIP6}/64"), "dev", "eth0"],
    )
    .unwrap();

    let stats = node.handle.stats();
    let s = stats.ips[&IpAddr::V6(VIP6)];
    assert!(s.requests_received >= 4, "{stats:?}");
    assert_eq!(s.requests_received, s.responses_sent, "{stats:?}");
    assert_eq!(stats.malformed, 0);

    // Released: no answer, group left.
    node.own(&[]);
    assert_eq!(ndisc6(&lab, "client", VIP6), None);
    let maddr = lab
        .exec_ok("node", &["ip", "maddr", "show", "dev", "eth0"])
        .unwrap();
    assert!(
        !text(&maddr).contains("33:33:ff:00:02:00"),
        "{}",
        text(&maddr)
    );
}

/// Sends one frame out of `host`'s eth0.
fn send_from(host: &Host, frame: Vec<u8>) {
    ferrolb_lab::in_netns(&host.netns, move || {
        let links = interfaces::discover().expect("links");
        let eth0 = links.iter().find(|l| l.name == "eth0").expect("eth0");
        PacketSocket::open(eth0.ifindex, PacketKind::NeighborAdvertisements)
            .expect("socket")
            .send(&frame)
            .expect("send");
    })
    .expect("in namespace");
}

#[test]
fn gratuitous_announcements_update_existing_neighbour_entries() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("l2garp").unwrap();
    lab.add_host("client", 10).unwrap();
    let node_host = lab.add_host("node", 11).unwrap();
    let node_mac = node_host.mac_string();
    let node = Node::start(&node_host);

    // The client still believes the previous owner has both addresses.
    set_neigh(&lab, "client", IpAddr::V4(VIP4), OLD_MAC, "stale");
    set_neigh(&lab, "client", IpAddr::V6(VIP6), OLD_MAC, "stale");
    assert_eq!(neigh(&lab, "client", IpAddr::V4(VIP4)).unwrap().0, OLD_MAC);

    // Control: what MetalLB sends (O=0) does not move a STALE entry (RFC 4861 7.2.5:
    // without Override a different link-layer address is ignored unless the entry is
    // INCOMPLETE). Sent from the node's namespace with the node's MAC.
    let no_override = NdpPacket {
        src: VIP6,
        dst: ndp::ALL_NODES,
        message: NdpMessage::Advertisement(NeighborAdvertisement {
            router: false,
            solicited: false,
            override_flag: false,
            target: VIP6,
            target_link_addr: Some(MacAddr(node_host.mac)),
        }),
    };
    send_from(
        &node_host,
        no_override.to_frame(MacAddr::ALL_NODES, MacAddr(node_host.mac)),
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(neigh(&lab, "client", IpAddr::V6(VIP6)).unwrap().0, OLD_MAC);

    let t0 = Instant::now();
    node.own(&[IpAddr::V4(VIP4), IpAddr::V6(VIP6)]);
    let v4 = wait_for(Duration::from_secs(3), || {
        neigh(&lab, "client", IpAddr::V4(VIP4)).is_some_and(|(m, _)| m == node_mac)
    });
    let v6 = wait_for(Duration::from_secs(3), || {
        neigh(&lab, "client", IpAddr::V6(VIP6)).is_some_and(|(m, _)| m == node_mac)
    });
    eprintln!(
        "client updated: IPv4 after {v4:?}, IPv6 after {v6:?} (set_owned returned after {:?})",
        t0.elapsed()
    );
    assert!(
        v4.is_some(),
        "{:?}",
        neigh(&lab, "client", IpAddr::V4(VIP4))
    );
    assert!(
        v6.is_some(),
        "{:?}",
        neigh(&lab, "client", IpAddr::V6(VIP6))
    );

    // The first burst went out before set_owned returned; the other four within ~2 s:
    // 5 x (request + reply) for IPv4, 5 advertisements for IPv6, then nothing more.
    let sent = |ip: IpAddr| node.handle.stats().ips[&ip].gratuitous_sent;
    let all_sent = wait_for(Duration::from_secs(5), || {
        sent(IpAddr::V4(VIP4)) >= 10 && sent(IpAddr::V6(VIP6)) >= 5
    });
    eprintln!("all bursts sent after {:?}", all_sent.map(|_| t0.elapsed()));
    std::thread::sleep(Duration::from_millis(500));
    let stats = node.handle.stats();
    assert_eq!(
        stats.ips[&IpAddr::V4(VIP4)].gratuitous_sent,
        10,
        "{stats:?}"
    );
    assert_eq!(stats.ips[&IpAddr::V6(VIP6)].gratuitous_sent, 5, "{stats:?}");
    assert_eq!(stats.send_errors, 0);
}

#[test]
fn failover_moves_answers_and_neighbour_entries() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("l2fo").unwrap();
    lab.add_host("client", 10).unwrap();
    let a_host = lab.add_host("node-a", 11).unwrap();
    let b_host = lab.add_host("node-b", 12).unwrap();
    let (a_mac, b_mac) = (a_host.mac_string(), b_host.mac_string());
    let a = Node::start(&a_host);
    let b = Node::start(&b_host);
    let vips = [IpAddr::V4(VIP4), IpAddr::V6(VIP6)];

    a.own(&vips);
    b.own(&[]);
    assert_eq!(arping(&lab, "client", VIP4), [a_mac.as_str()]);
    assert_eq!(ndisc6(&lab, "client", VIP6).as_deref(), Some(&*a_mac));
    // The client talks to A: fresh, REACHABLE entries.
    set_neigh(&lab, "client", vips[0], &a_mac, "reachable");
    set_neigh(&lab, "client", vips[1], &a_mac, "reachable");

    // Failover: A releases, B takes over.
    a.own(&[]);
    let t0 = Instant::now();
    b.own(&vips);
    let v4 = wait_for(Duration::from_secs(3), || {
        neigh(&lab, "client", vips[0]).is_some_and(|(m, _)| m == b_mac)
    });
    let v6 = wait_for(Duration::from_secs(3), || {
        neigh(&lab, "client", vips[1]).is_some_and(|(m, _)| m == b_mac)
    });
    eprintln!(
        "failover: client switched IPv4 after {v4:?}, IPv6 after {v6:?} ({:?} since B's set_owned)",
        t0.elapsed()
    );
    assert!(v4.is_some(), "{:?}", neigh(&lab, "client", vips[0]));
    assert!(v6.is_some(), "{:?}", neigh(&lab, "client", vips[1]));

    // Only B answers now.
    assert_eq!(arping(&lab, "client", VIP4), [b_mac.as_str()]);
    assert_eq!(ndisc6(&lab, "client", VIP6).as_deref(), Some(&*b_mac));
    let a_stats = a.handle.stats();
    let before = a_stats.ips[&vips[0]].responses_sent;
    assert_eq!(arping(&lab, "client", VIP4), [b_mac.as_str()]);
    assert_eq!(a.handle.stats().ips[&vips[0]].responses_sent, before);
}

#[test]
fn interface_selection_and_shutdown() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("l2if").unwrap();
    lab.add_host("client", 10).unwrap();
    let node_host = lab.add_host("node", 11).unwrap();
    let node_mac = node_host.mac_string();
    // A second, default-excluded interface on the node.
    lab.exec_ok(
        "node",
        &[
            "ip", "link", "add", "veth9", "type", "veth", "peer", "name", "veth9p",
        ],
    )
    .unwrap();
    for dev in ["veth9", "veth9p"] {
        lab.exec_ok("node", &["ip", "link", "set", dev, "up"])
            .unwrap();
    }
    let node = Node::start_with(
        &node_host,
        AnnouncerConfig {
            rescan_interval: Duration::from_millis(200),
            ..AnnouncerConfig::default()
        },
    );

    let v4 = IpAddr::V4(VIP4);
    let status = node.own(&[v4]);
    assert_eq!(
        status[&v4].interfaces,
        ["eth0"],
        "veth9 is excluded by default"
    );

    let status = node.set(BTreeMap::from([(v4, Interfaces::named(["veth9", "eth7"]))]));
    assert_eq!(
        status[&v4].interfaces,
        ["veth9"],
        "named interfaces bypass the excludes"
    );
    assert_eq!(status[&v4].missing, ["eth7"]);
    assert!(
        arping(&lab, "client", VIP4).is_empty(),
        "not announced on eth0"
    );

    let status = node.set(BTreeMap::from([(v4, Interfaces::named(["eth0", "eth7"]))]));
    assert_eq!(status[&v4].interfaces, ["eth0"]);
    assert_eq!(arping(&lab, "client", VIP4), [node_mac.as_str()]);

    // eth7 appears later: picked up by the periodic rescan.
    lab.exec_ok(
        "node",
        &[
            "ip", "link", "add", "eth7", "type", "veth", "peer", "name", "peer7",
        ],
    )
    .unwrap();
    lab.exec_ok("node", &["ip", "link", "set", "eth7", "up"])
        .unwrap();
    let seen = wait_for(Duration::from_secs(3), || {
        node.handle.status()[&v4].interfaces.len() == 2
    });
    assert!(seen.is_some(), "{:?}", node.handle.status());
    assert!(node.handle.status()[&v4].missing.is_empty());

    // Down interfaces are dropped.
    lab.exec_ok("node", &["ip", "link", "set", "eth0", "down"])
        .unwrap();
    let dropped = wait_for(Duration::from_secs(3), || {
        node.handle.status()[&v4].interfaces == ["eth7"]
    });
    assert!(dropped.is_some(), "{:?}", node.handle.status());
    lab.exec_ok("node", &["ip", "link", "set", "eth0", "up"])
        .unwrap();
    let back = wait_for(Duration::from_secs(3), || {
        node.handle.status()[&v4].interfaces.len() == 2
    });
    assert!(back.is_some(), "{:?}", node.handle.status());
    assert_eq!(arping(&lab, "client", VIP4), [node_mac.as_str()]);

    // Shutdown: stops answering and the task ends.
    block_on(node.handle.shutdown());
    assert!(!node.handle.is_running());
    assert!(arping(&lab, "client", VIP4).is_empty());
    assert!(block_on(node.handle.set_owned(BTreeMap::new())).is_err());
}

#[test]
fn frames_from_a_vlan_on_top_are_not_answered_untagged() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::new("l2vlan").unwrap();
    lab.add_host("client", 10).unwrap();
    let node_host = lab.add_host("node", 11).unwrap();
    let node_mac = node_host.mac_string();
    let probe = lab
        .exec(
            "client",
            &[
                "ip", "link", "add", "link", "eth0", "name", "vtest", "type", "vlan", "id", "7",
            ],
        )
        .unwrap();
    if !probe.status.success() {
        eprintln!(
            "skipping: this kernel cannot make VLAN devices (8021q): {}",
            text(&probe).trim()
        );
        return;
    }
    lab.exec_ok("client", &["ip", "link", "del", "vtest"])
        .unwrap();
    for (host, octet) in [("client", 10), ("node", 11)] {
        let addr = format!("203.0.113.{octet}/24");
        for cmd in [
            vec![
                "ip", "link", "add", "link", "eth0", "name", "eth0.100", "type", "vlan", "id",
                "100",
            ],
            vec!["ip", "addr", "add", &addr, "dev", "eth0.100"],
            vec!["ip", "link", "set", "eth0.100", "up"],
        ] {
            lab.exec_ok(host, &cmd).unwrap();
        }
    }
    let node = Node::start(&node_host);
    let v4 = IpAddr::V4(VIP4);
    let status = node.set(BTreeMap::from([(v4, Interfaces::named(["eth0"]))]));
    assert_eq!(status[&v4].interfaces, ["eth0"]);

    assert_eq!(arping(&lab, "client", VIP4), [node_mac.as_str()]);
    // Tagged with VLAN 100, the request also reaches the socket bound to the node's
    // eth0 (the kernel hands untagged VLAN frames to the parent's handlers too); it must
    // not be taken as a request on eth0.
    assert!(arping_on(&lab, "client", "eth0.100", VIP4).is_empty());
    let s = node.handle.stats().ips[&v4];
    assert_eq!((s.requests_received, s.responses_sent), (1, 1), "{s:?}");
}
