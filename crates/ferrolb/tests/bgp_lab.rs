//! End-to-end BGP tests: `ferrolb run` on two lab nodes peering with a real BIRD (or
//! FRR) router: IPv4 sessions with TCP-MD5 and BFD 100 ms x 3, IPv6 sessions. The
//! router's kernel table is the judge: one ECMP route with a next hop per node, withdrawn
//! when a Service goes, when a node's link is cut (BFD) or when a node stops. They need root and bird2 (installed by
//! scripts/test) and skip, saying why, without them.

use ferrolb_lab::routers::{Neighbor, Router, RouterKind, RouterSpec};
mod common;

use ferrolb_lab::{Lab, available, require};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const NODES: [(&str, u8); 2] = [("node-a", 11), ("node-b", 12)];
const VIP4: &str = "203.0.113.5";
const VIP6: &str = "2001:db8:100::5";
const ROUTER_AS: u32 = 64513;
const NODE_AS: u32 = 64512;
/// TCP-MD5 on the IPv4 sessions (the IPv6 ones go without).
const PASSWORD: &str = "lab-md5-secret";

fn nodes_yaml() -> String {
    NODES
        .iter()
        .map(|(n, o)| {
            format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {n}, labels: {{kubernetes.io/hostname: {n}}}}}\nstatus: {{addresses: [{{type: InternalIP, address: 198.51.100.{o}}}, {{type: InternalIP, address: '2001:db8::{o:x}'}}]}}\n---\n"
            )
        })
        .collect()
}

fn config_yaml() -> String {
    format!(
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgp}}
spec: {{addresses: [203.0.113.0/28, '2001:db8:100::/124']}}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {{name: fast}}
spec: {{receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router-v4}}
spec: {{myASN: {NODE_AS}, peerASN: {ROUTER_AS}, peerAddress: 198.51.100.1, holdTime: 9s, bfdProfile: fast, password: {PASSWORD}}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router-v6}}
spec: {{myASN: {NODE_AS}, peerASN: {ROUTER_AS}, peerAddress: '2001:db8::1', holdTime: 9s}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp}}
spec: {{ipAddressPools: [bgp], communities: ['64512:100']}}
"
    )
}

fn service(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{metallb.io/loadBalancerIPs: '{VIP4},{VIP6}'}}\nspec:\n  type: LoadBalancer\n  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n  ports: [{{port: 80}}]\n{extra_spec}"
    )
}

struct Cluster {
    lab: Lab,
    router: Router,
    dir: tempfile::TempDir,
    pids: BTreeMap<&'static str, u32>,
}

impl Cluster {
    /// A lab with a BIRD router and two nodes, and a manifest directory holding the
    /// nodes, the BGP configuration and `files`. None (with a printed reason) when the
    /// lab cannot run here.
    fn new(tag: &str, files: &[(&str, String)]) -> Option<Cluster> {
        Cluster::with_router(tag, RouterKind::Bird, files)
    }

    fn with_router(tag: &str, kind: RouterKind, files: &[(&str, String)]) -> Option<Cluster> {
        let (program, package) = match kind {
            RouterKind::Bird => ("bird", "bird2"),
            RouterKind::Frr => ("vtysh", "frr"),
            RouterKind::Gobgp => ("gobgpd", "gobgpd"),
        };
        if !available() || !require(program, package) {
            return None;
        }
        let mut lab = Lab::new(tag).expect("lab");
        lab.add_host("router", 1).expect("router");
        for (n, o) in NODES {
            lab.add_host(n, o).expect("node");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut neighbors = Vec::new();
        for (_, o) in NODES {
            let mut v4 = Neighbor::new(format!("198.51.100.{o}").parse().unwrap(), NODE_AS);
            v4.bfd = Some((100, 100));
            v4.password = Some(PASSWORD.into());
            neighbors.push(v4);
            neighbors.push(Neighbor::new(
                format!("2001:db8::{o:x}").parse().unwrap(),
                NODE_AS,
            ));
        }
        let spec = RouterSpec {
            asn: ROUTER_AS,
            router_id: "198.51.100.1".parse().unwrap(),
            neighbors,
            hold_time: 9,
            originate: vec![],
        };
        let router = Router::start(&mut lab, kind, "router", &spec, &dir.path().join(".router"))
            .expect("start BIRD");
        let c = Cluster {
            lab,
            router,
            dir,
            pids: BTreeMap::new(),
        };
        c.write("nodes.yaml", &nodes_yaml());
        c.write("bgp.yaml", &config_yaml());
        for (f, text) in files {
            c.write(f, text);
        }
        Some(c)
    }

    fn write(&self, file: &str, text: &str) {
        common::write_manifest(self.dir.path(), file, text);
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.dir.path().join(file)).unwrap();
    }

    fn start_all(&mut self) {
        for (n, o) in NODES {
            let pid = common::start_agent(&mut self.lab, n, o, self.dir.path());
            self.pids.insert(n, pid);
        }
    }

    fn logs(&self) -> String {
        let mut out: String = NODES
            .iter()
            .map(|(n, _)| common::agent_log(self.dir.path(), n))
            .collect();
        for log in ["bird.log", "bgpd.log", "bfdd.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(".router").join(log)) {
                out += &format!("--- {log}\n{text}");
            }
        }
        out
    }

    fn hops(&self, prefix: &str) -> Vec<IpAddr> {
        self.router.next_hops(&self.lab, prefix)
    }

    /// Polls the router until the next hops of `prefix` are `want`; how long it took.
    fn wait_hops(&self, prefix: &str, want: &[&str], timeout: Duration) -> Option<Duration> {
        let want: Vec<IpAddr> = want.iter().map(|a| a.parse().unwrap()).collect();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.hops(prefix) == want {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn birdc(&self, args: &[&str]) -> String {
        let ctl = self.dir.path().join(".router/bird.ctl");
        let mut argv = vec!["birdc", "-s", ctl.to_str().unwrap()];
        argv.extend_from_slice(args);
        let out = self.lab.exec("router", &argv).expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts both nodes and waits until the router has the IPv4 route of the Service
    /// through both; the prefix.
    fn start_and_wait_for_both(&mut self) -> String {
        self.start_all();
        let v4 = format!("{VIP4}/32");
        assert!(
            self.wait_hops(&v4, &BOTH4, LONG).is_some(),
            "{:?}\n{}",
            self.hops(&v4),
            self.logs()
        );
        v4
    }

    fn vtysh(&self, command: &str) -> String {
        let vty = self.dir.path().join(".router/vty");
        let out = self
            .lab
            .exec(
                "router",
                &[
                    "vtysh",
                    "--vty_socket",
                    vty.to_str().unwrap(),
                    "-c",
                    command,
                ],
            )
            .expect("vtysh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// GET a path from a node's HTTP endpoint, from the router.
    fn http(&self, node: &str, path: &str) -> String {
        common::http_get(&self.lab, "router", self.lab.host(node).ipv4, path)
    }
}

const BOTH4: [&str; 2] = ["198.51.100.11", "198.51.100.12"];
// The lab numbers IPv6 hosts in hex: host .11 is 2001:db8::b.
const BOTH6: [&str; 2] = ["2001:db8::b", "2001:db8::c"];
const LONG: Duration = Duration::from_secs(30);

#[test]
fn ecmp_routes_for_both_families_and_withdraw_when_the_service_goes() {
    let Some(mut c) = Cluster::new("bgpe", &[("svc.yaml", service("web", ""))]) else {
        return;
    };
    c.start_all();
    let v4 = format!("{VIP4}/32");
    let v6 = format!("{VIP6}/128");
    assert!(
        c.wait_hops(&v4, &BOTH4, LONG).is_some(),
        "IPv4 ECMP route: {:?}\n{}",
        c.hops(&v4),
        c.logs()
    );
    assert!(
        c.wait_hops(&v6, &BOTH6, LONG).is_some(),
        "IPv6 ECMP route: {:?}\n{}\n{}",
        c.hops(&v6),
        c.birdc(&["show", "protocols", "all"]),
        c.logs()
    );
    // The community of the BGPAdvertisement is on the route in BIRD's table.
    let route = c.birdc(&["show", "route", "all", &v4]);
    assert!(route.contains("(64512,100)"), "{route}");

    // Metrics and status say the sessions are up and what is announced (BFD comes up
    // within a few seconds: it starts slow, at one packet per second).
    for line in [
        "metallb_bgp_session_up{peer=\"198.51.100.1:179\"} 1".to_string(),
        "metallb_bgp_session_up{peer=\"[2001:db8::1]:179\"} 1".to_string(),
        "metallb_bgp_announced_prefixes_total{peer=\"198.51.100.1:179\"} 1".to_string(),
        "metallb_bgp_pending_prefixes_total{peer=\"198.51.100.1:179\"} 0".to_string(),
        "metallb_bfd_session_up{peer=\"198.51.100.1\"} 1".to_string(),
        format!(
            "metallb_speaker_announced{{ip=\"{VIP4}\",node=\"node-a\",protocol=\"bgp\",service=\"default/web\"}} 1"
        ),
    ] {
        let start = Instant::now();
        let mut metrics = c.http("node-a", "/metrics");
        while !metrics.contains(&line) && start.elapsed() < LONG {
            std::thread::sleep(Duration::from_millis(200));
            metrics = c.http("node-a", "/metrics");
        }
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
    let status = c.http("node-b", "/status");
    assert!(
        status.contains("\"bgp_peers\": [\n        \"router-v4\",\n        \"router-v6\"\n      ]"),
        "{status}"
    );

    // The Service goes: both nodes withdraw both routes.
    c.remove("svc.yaml");
    assert!(
        c.wait_hops(&v4, &[], LONG).is_some(),
        "withdrawn: {:?}\n{}",
        c.hops(&v4),
        c.logs()
    );
    assert!(c.wait_hops(&v6, &[], LONG).is_some(), "{:?}", c.hops(&v6));
}

#[test]
fn bfd_takes_a_cut_node_out_and_it_comes_back() {
    let Some(mut c) = Cluster::new("bgpf", &[("svc.yaml", service("web", ""))]) else {
        return;
    };
    let v4 = c.start_and_wait_for_both();
    // Let BFD come up on both sessions before cutting.
    let start = Instant::now();
    while start.elapsed() < LONG
        && c.birdc(&["show", "bfd", "sessions"])
            .matches(" Up ")
            .count()
            < 2
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    c.lab.cut_link("node-a").unwrap();
    let took = c.wait_hops(&v4, &["198.51.100.12"], LONG);
    assert!(took.is_some(), "{:?}\n{}", c.hops(&v4), c.logs());
    eprintln!("link cut: node-a's route withdrawn after {took:?}");
    // BFD, not the 9 s hold timer, took the session down.
    let protocols = c.birdc(&["show", "protocols", "all"]);
    assert!(protocols.contains("BFD session down"), "{protocols}");
    // On the cut-off node too, BFD takes its BGP session down at once (not after the
    // hold time): the session reports the peer lost.
    let start = Instant::now();
    let log = || common::agent_log(c.dir.path(), "node-a");
    while !log().contains("BFD down: taking the BGP session down") && start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = log();
    assert!(
        text.contains("BFD down: taking the BGP session down"),
        "{text}"
    );
    assert!(text.contains("PeerLost"), "{text}");

    c.lab.restore_link("node-a").unwrap();
    assert!(
        c.wait_hops(&v4, &BOTH4, LONG).is_some(),
        "back after the heal: {:?}\n{}",
        c.hops(&v4),
        c.logs()
    );
}

#[test]
fn bfd_with_frr_bfdd_takes_a_cut_node_out() {
    let Some(mut c) =
        Cluster::with_router("bgpr", RouterKind::Frr, &[("svc.yaml", service("web", ""))])
    else {
        return;
    };
    let v4 = c.start_and_wait_for_both();
    let start = Instant::now();
    while start.elapsed() < LONG && c.vtysh("show bfd peers brief").matches(" up ").count() < 2 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let peers = c.vtysh("show bfd peers brief");
    assert_eq!(peers.matches(" up ").count(), 2, "{peers}");
    c.lab.cut_link("node-a").unwrap();
    let took = c.wait_hops(&v4, &["198.51.100.12"], LONG);
    assert!(took.is_some(), "{:?}\n{}", c.hops(&v4), c.logs());
    eprintln!("link cut: FRR withdrew node-a's route after {took:?}");
    let neighbor = c.vtysh("show bgp neighbors 198.51.100.11");
    // BFD, not the 9 s hold timer, took the session down.
    assert!(neighbor.contains("Cease/BFD Down"), "{neighbor}");
    c.lab.restore_link("node-a").unwrap();
    assert!(
        c.wait_hops(&v4, &BOTH4, LONG).is_some(),
        "{:?}\n{}",
        c.hops(&v4),
        c.logs()
    );
}

#[test]
fn with_bgp_listen_the_router_can_open_the_session() {
    let Some(mut c) = Cluster::new("bgpn", &[("svc.yaml", service("web", ""))]) else {
        return;
    };
    // The agents cannot reach the router's port (nothing listens on 1790): only the
    // connections the router opens to them, on port 179, can make the IPv4 sessions
    // (TCP-MD5 keyed on the listening socket).
    c.write(
        "bgp.yaml",
        &config_yaml().replace("password: ", "peerPort: 1790, password: "),
    );
    for (n, o) in NODES {
        let pid = common::start_agent_with(
            &mut c.lab,
            n,
            o,
            c.dir.path(),
            &["--bgp-listen", "[::]:179"],
        );
        c.pids.insert(n, pid);
    }
    let v4 = format!("{VIP4}/32");
    assert!(
        c.wait_hops(&v4, &BOTH4, LONG).is_some(),
        "{:?}\n{}",
        c.hops(&v4),
        c.logs()
    );
}

#[test]
fn sigterm_withdraws_and_closes() {
    let Some(mut c) = Cluster::new("bgps", &[("svc.yaml", service("web", ""))]) else {
        return;
    };
    let v4 = c.start_and_wait_for_both();
    let pid = c.pids["node-b"];
    c.lab.signal(pid, "TERM").unwrap();
    let code = c
        .lab
        .wait(pid, Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert_eq!(code, Some(0), "clean exit\n{}", c.logs());
    assert!(
        c.wait_hops(&v4, &["198.51.100.11"], LONG).is_some(),
        "{:?}",
        c.hops(&v4)
    );
    // The session ended with a Cease (administrative shutdown), not a lost connection.
    let protocols = c.birdc(&["show", "protocols", "all"]);
    assert!(protocols.contains("Administrative shutdown"), "{protocols}");
}

#[test]
fn traffic_policy_local_announces_from_serving_nodes_only() {
    let slice = "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [198.51.100.50]
  nodeName: node-b
  conditions: {ready: true, serving: true}
";
    let Some(mut c) = Cluster::new(
        "bgpl",
        &[
            (
                "svc.yaml",
                service("web", "  externalTrafficPolicy: Local\n"),
            ),
            ("slice.yaml", slice.into()),
        ],
    ) else {
        return;
    };
    c.start_all();
    let v4 = format!("{VIP4}/32");
    assert!(
        c.wait_hops(&v4, &["198.51.100.12"], LONG).is_some(),
        "{:?}\n{}",
        c.hops(&v4),
        c.logs()
    );
    // The endpoint moves to node-a: the route follows.
    c.write("slice.yaml", &slice.replace("node-b", "node-a"));
    assert!(
        c.wait_hops(&v4, &["198.51.100.11"], LONG).is_some(),
        "{:?}\n{}",
        c.hops(&v4),
        c.logs()
    );
}
