//! End-to-end layer 2 tests: `ferrolb run` on three lab nodes, the real Linux kernel as
//! the client (arping, ndisc6). They need root and iproute2/iputils-arping/ndisc6/nftables
//! (installed by scripts/test) and skip, saying why, without them.

use ferrolb_election::rank_nodes;
mod common;

use ferrolb_lab::{Lab, available, require};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const NODES: [(&str, u8, &str); 3] = [
    ("node-a", 11, "r1"),
    ("node-b", 12, "r1"),
    ("node-c", 13, "r2"),
];
const VIP4: &str = "198.51.100.200";
const VIP6: &str = "2001:db8::200";

fn nodes_yaml() -> String {
    NODES
        .iter()
        .map(|(n, o, rack)| {
            format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {n}, labels: {{rack: {rack}, kubernetes.io/hostname: {n}}}}}\nstatus: {{addresses: [{{type: InternalIP, address: 198.51.100.{o}}}]}}\n---\n"
            )
        })
        .collect()
}

const POOL: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lab}\nspec: {addresses: [198.51.100.200-198.51.100.209, 2001:db8::200-2001:db8::209]}\n";
const L2_ALL: &str =
    "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lab}\n";

fn service(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  type: LoadBalancer\n  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv4, IPv6]\n  ports: [{{port: 80}}]\n{extra_spec}"
    )
}

struct Cluster {
    lab: Lab,
    dir: tempfile::TempDir,
    pids: BTreeMap<&'static str, u32>,
}

impl Cluster {
    /// A lab with a client and three nodes, and a manifest directory holding the nodes, a
    /// pool and `files`. None (with a printed reason) when the lab cannot run here.
    fn new(tag: &str, files: &[(&str, String)]) -> Option<Cluster> {
        if !available()
            || !require("arping", "iputils-arping")
            || !require("ndisc6", "ndisc6")
            || !require("nft", "nftables")
        {
            return None;
        }
        let mut lab = Lab::new(tag).expect("lab");
        lab.add_host("client", 10).expect("client");
        for (n, o, _) in NODES {
            lab.add_host(n, o).expect("node");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Cluster {
            lab,
            dir,
            pids: BTreeMap::new(),
        };
        c.write("nodes.yaml", &nodes_yaml());
        c.write("pool.yaml", POOL);
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
        for (n, o, _) in NODES {
            let pid = common::start_agent(&mut self.lab, n, o, self.dir.path());
            self.pids.insert(n, pid);
        }
    }

    fn logs(&self) -> String {
        NODES
            .iter()
            .map(|(n, _, _)| common::agent_log(self.dir.path(), n))
            .collect()
    }

    /// MACs that answered `count` ARP requests for `ip` from the client.
    fn arp(&self, ip: &str, count: u32) -> BTreeSet<String> {
        let out = self
            .lab
            .exec(
                "client",
                &[
                    "arping",
                    "-c",
                    &count.to_string(),
                    "-w",
                    &(count + 1).to_string(),
                    "-I",
                    "eth0",
                    ip,
                ],
            )
            .expect("arping");
        macs(&String::from_utf8_lossy(&out.stdout))
    }

    /// MACs that answered a neighbour solicitation for `ip` from the client.
    fn ndp(&self, ip: &str) -> BTreeSet<String> {
        let out = self
            .lab
            .exec(
                "client",
                &["ndisc6", "-m", "-n", "-r", "2", "-w", "700", ip, "eth0"],
            )
            .expect("ndisc6");
        macs(&String::from_utf8_lossy(&out.stdout))
    }

    /// The MAC the client's kernel has for `ip` (its neighbour table), upper case.
    fn neighbour(&self, ip: &str) -> Option<String> {
        let out = self
            .lab
            .exec("client", &["ip", "neigh", "show", ip, "dev", "eth0"])
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == "lladdr")
            .map(|w| w[1].to_uppercase())
    }

    fn mac(&self, node: &str) -> String {
        self.lab.host(node).mac_string().to_uppercase()
    }

    /// Polls until the ARP answers for `ip` are exactly `want` for three probes in a row;
    /// returns how long it took until the first of them.
    fn wait_arp(&self, ip: &str, want: &BTreeSet<String>, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut streak: Option<Duration> = None;
        let mut hits = 0;
        while start.elapsed() < timeout {
            if &self.arp(ip, 1) == want {
                streak.get_or_insert(start.elapsed());
                hits += 1;
                if hits == 3 {
                    return streak;
                }
            } else {
                streak = None;
                hits = 0;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Probes `ip` with ARP from the client every `interval` for `duration`.
    fn arp_probe(
        &self,
        ip: &str,
        interval: Duration,
        duration: Duration,
    ) -> ferrolb_lab::probe::ProbeLog {
        let client = self.lab.host("client").clone();
        let target = ip.parse().unwrap();
        ferrolb_lab::in_netns(&client.netns, move || {
            ferrolb_lab::probe::arp_probe(
                "eth0",
                client.ipv4,
                client.mac,
                target,
                interval,
                duration,
            )
        })
        .expect("enter the client")
        .expect("probe")
    }

    /// GET a path from a node's HTTP endpoint, from the client.
    fn http(&self, node: &str, path: &str) -> String {
        common::http_get(&self.lab, "client", self.lab.host(node).ipv4, path)
    }
}

fn macs(output: &str) -> BTreeSet<String> {
    output
        .split(['[', ']', ' ', '\n'])
        .filter(|w| w.len() == 17 && w.matches(':').count() == 5)
        .map(|w| w.to_uppercase())
        .collect()
}

fn ranking(ip: &str) -> Vec<&'static str> {
    rank_nodes(ip.parse().unwrap(), NODES.iter().map(|(n, _, _)| (*n, 0)))
}

fn one(mac: String) -> BTreeSet<String> {
    BTreeSet::from([mac])
}

#[test]
fn answers_v4_and_v6_from_exactly_one_node() {
    let Some(mut c) = Cluster::new(
        "l2one",
        &[("l2.yaml", L2_ALL.into()), ("svc.yaml", service("web", ""))],
    ) else {
        return;
    };
    c.start_all();
    let owner4 = ranking(VIP4)[0];
    let owner6 = ranking(VIP6)[0];
    assert!(
        c.wait_arp(VIP4, &one(c.mac(owner4)), Duration::from_secs(10))
            .is_some(),
        "{}",
        c.logs()
    );
    assert_eq!(
        c.arp(VIP4, 3),
        one(c.mac(owner4)),
        "only the elected node answers ARP"
    );
    assert_eq!(
        c.ndp(VIP6),
        one(c.mac(owner6)),
        "only the elected node answers NDP"
    );
    assert_eq!(
        c.arp("198.51.100.209", 2),
        BTreeSet::new(),
        "an unassigned address is not answered"
    );
    let ping = c
        .lab
        .exec("client", &["ping", "-c", "1", "-W", "2", VIP4])
        .unwrap();
    assert!(
        ping.status.success(),
        "the owner accepts traffic for the address"
    );
    let ping6 = c
        .lab
        .exec("client", &["ping", "-6", "-c", "1", "-W", "2", VIP6])
        .unwrap();
    assert!(ping6.status.success(), "and for the IPv6 one");

    let metrics = c.http(owner4, "/metrics");
    assert!(metrics.contains(&format!("metallb_speaker_announced{{ip=\"{VIP4}\",node=\"{owner4}\",protocol=\"layer2\",service=\"default/web\"}} 1")), "{metrics}");
    let requests = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "metallb_layer2_requests_received{{ip=\"{VIP4}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(requests >= 3, "requests counted: {metrics}");
    assert!(
        metrics.contains("ferrolb_membership_members{state=\"alive\"} 3"),
        "{metrics}"
    );
    // One dual-stack Service from a pool of 10 + 10 addresses.
    for line in [
        "metallb_allocator_addresses_total{pool=\"lab\"} 20",
        "metallb_allocator_addresses_in_use_total{pool=\"lab\"} 2",
        "metallb_allocator_ipv6_addresses_in_use_total{pool=\"lab\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    assert!(c.http(owner4, "/readyz").contains("200 OK"));
    let agent = format!("{}:9120", c.lab.host(owner4).ipv4);
    let out = c
        .lab
        .exec(
            "client",
            &[env!("CARGO_BIN_EXE_ferrolb"), "status", "--agent", &agent],
        )
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(table.contains("configuration: valid"), "{table}");
    assert!(table.contains(&format!("{VIP4} on {owner4}")), "{table}");
    let status = c.http(owner4, "/status");
    assert!(status.contains(&format!("\"{owner4}\"")), "{status}");
}

#[test]
fn link_cut_fails_over_and_the_heal_leaves_one_owner() {
    let Some(mut c) = Cluster::new(
        "l2cut",
        &[("l2.yaml", L2_ALL.into()), ("svc.yaml", service("web", ""))],
    ) else {
        return;
    };
    c.start_all();
    let order = ranking(VIP4);
    assert!(
        c.wait_arp(VIP4, &one(c.mac(order[0])), Duration::from_secs(10))
            .is_some(),
        "{}",
        c.logs()
    );
    c.lab.cut_link(order[0]).unwrap();
    let took = c.wait_arp(VIP4, &one(c.mac(order[1])), Duration::from_secs(10));
    assert!(
        took.is_some(),
        "the successor takes over after a link cut\n{}",
        c.logs()
    );
    eprintln!("link cut: successor answered ARP after {took:?} (client polling at 50 ms)");
    assert_eq!(
        c.ndp(VIP6),
        one(c.mac(ranking(VIP6)[if ranking(VIP6)[0] == order[0] { 1 } else { 0 }]))
    );
    // The client's kernel learns the successor (it sends to the address while the
    // first node is cut off).
    c.lab
        .exec_ok("client", &["ping", "-c", "1", "-W", "1", VIP4])
        .unwrap();
    assert_eq!(c.neighbour(VIP4), Some(c.mac(order[1])));
    c.lab.restore_link(order[0]).unwrap();
    // The first node owned the address all along (it was cut off, alone): it announces it
    // again when the others come back, so the client's cache, which points at the
    // successor, follows at once, not when the entry expires. (Watched without sending
    // any ARP from the client, which would refresh the entry by itself.)
    let start = Instant::now();
    while c.neighbour(VIP4) != Some(c.mac(order[0])) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.neighbour(VIP4), Some(c.mac(order[0])), "{}", c.logs());
    eprintln!(
        "heal: the client's cache points at the owner after {:?}",
        start.elapsed()
    );
    // And only the first node answers.
    let healed = c.wait_arp(VIP4, &one(c.mac(order[0])), Duration::from_secs(10));
    assert!(
        healed.is_some(),
        "back to one owner after the heal\n{}",
        c.logs()
    );
    assert_eq!(c.arp(VIP4, 3), one(c.mac(order[0])));
}

#[test]
fn sigterm_hands_over() {
    let Some(mut c) = Cluster::new(
        "l2term",
        &[("l2.yaml", L2_ALL.into()), ("svc.yaml", service("web", ""))],
    ) else {
        return;
    };
    c.start_all();
    let order = ranking(VIP4);
    assert!(
        c.wait_arp(VIP4, &one(c.mac(order[0])), Duration::from_secs(10))
            .is_some(),
        "{}",
        c.logs()
    );
    let pid = c.pids[order[0]];
    c.lab.signal(pid, "TERM").unwrap();
    let asked = Instant::now();
    let code = c
        .lab
        .wait(pid, Duration::from_secs(5))
        .expect("exits after SIGTERM");
    eprintln!("SIGTERM: the owner exited after {:?}", asked.elapsed());
    assert_eq!(code, Some(0), "clean exit");
    assert_eq!(
        c.arp(VIP4, 2),
        one(c.mac(order[1])),
        "the successor answers at once"
    );
    // The leaving node removed its local route: it no longer accepts the address.
    let routes = c
        .lab
        .exec_ok(
            order[0],
            &["ip", "route", "show", "table", "local", "proto", "251"],
        )
        .unwrap();
    assert!(String::from_utf8_lossy(&routes.stdout).trim().is_empty());
}

#[test]
fn partition_heals_to_one_owner() {
    let Some(mut c) = Cluster::new(
        "l2part",
        &[("l2.yaml", L2_ALL.into()), ("svc.yaml", service("web", ""))],
    ) else {
        return;
    };
    c.start_all();
    let order = ranking(VIP4);
    assert!(
        c.wait_arp(VIP4, &one(c.mac(order[0])), Duration::from_secs(10))
            .is_some(),
        "{}",
        c.logs()
    );
    // The owner loses the other nodes but not the client: each side elects its own.
    c.lab.partition(&[order[0]], &[order[1], order[2]]).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let during = c.arp(VIP4, 3);
    eprintln!("answering during the partition: {during:?}");
    assert!(during.contains(&c.mac(order[0])));
    c.lab.heal().unwrap();
    // Probe as a client every 5 ms for 4 s: when did two nodes last answer together?
    let log = c.arp_probe(VIP4, Duration::from_millis(5), Duration::from_secs(4));
    let last_double = log.last_double();
    eprintln!("partition heal: two nodes answered until {last_double:?} after the heal");
    let tail = log.macs_in(Duration::from_secs(3), Duration::from_secs(4));
    let owner_mac = c.lab.host(order[0]).mac;
    assert_eq!(
        tail,
        BTreeSet::from([owner_mac]),
        "one owner, the preferred one, after the heal\n{}",
        c.logs()
    );
    assert!(
        last_double.is_none_or(|t| t < Duration::from_secs(3)),
        "converged, then stable"
    );
}

#[test]
fn interfaces_and_node_selectors_are_honoured() {
    let r2_only = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lab}\nspec:\n  nodeSelectors: [{matchLabels: {rack: r2}}]\n  interfaces: [eth0]\n";
    let Some(mut c) = Cluster::new(
        "l2sel",
        &[
            ("l2.yaml", r2_only.into()),
            ("svc.yaml", service("web", "")),
        ],
    ) else {
        return;
    };
    c.start_all();
    assert!(
        c.wait_arp(VIP4, &one(c.mac("node-c")), Duration::from_secs(10))
            .is_some(),
        "only rack r2 announces\n{}",
        c.logs()
    );
    assert_eq!(c.ndp(VIP6), one(c.mac("node-c")));
    // `/status` (what `ferrolb status` shows) names the interface.
    let status = c.http("node-a", "/status");
    let body = status.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let doc: serde_json::Value = serde_json::from_str(body).expect(&status);
    let web = doc["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["service"] == "default/web")
        .expect(&status);
    assert_eq!(
        web["announced_by"],
        serde_json::json!([[VIP4, "node-c", ["eth0"]], [VIP6, "node-c", ["eth0"]]]),
        "{status}"
    );
    // An interface the nodes do not have: nobody answers.
    let missing = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lab}\nspec:\n  interfaces: [eth9]\n";
    c.write("l2.yaml", missing);
    assert!(
        c.wait_arp(VIP4, &BTreeSet::new(), Duration::from_secs(10))
            .is_some(),
        "not announced on a missing interface"
    );
}

#[test]
fn external_traffic_policy_local_follows_the_endpoints() {
    let slice = |node: &str| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nendpoints: [{{addresses: [192.0.2.7], conditions: {{ready: true}}, nodeName: {node}}}]\n"
        )
    };
    // Pick the node the hash ranks last, so the answer cannot come from the default order.
    let last = ranking(VIP4)[2];
    let Some(mut c) = Cluster::new(
        "l2etp",
        &[
            ("l2.yaml", L2_ALL.into()),
            (
                "svc.yaml",
                service("web", "  externalTrafficPolicy: Local\n"),
            ),
            ("eps.yaml", slice(last)),
        ],
    ) else {
        return;
    };
    c.start_all();
    assert!(
        c.wait_arp(VIP4, &one(c.mac(last)), Duration::from_secs(10))
            .is_some(),
        "{}",
        c.logs()
    );
    // The endpoint moves: so does the announcement.
    let first = ranking(VIP4)[0];
    c.write("eps.yaml", &slice(first));
    assert!(
        c.wait_arp(VIP4, &one(c.mac(first)), Duration::from_secs(10))
            .is_some(),
        "{}",
        c.logs()
    );
}

#[test]
fn configuration_changes_apply_and_invalid_ones_keep_the_last_good() {
    let Some(mut c) = Cluster::new(
        "l2cfg",
        &[("l2.yaml", L2_ALL.into()), ("svc.yaml", service("web", ""))],
    ) else {
        return;
    };
    c.start_all();
    let owner = ranking(VIP4)[0];
    assert!(
        c.wait_arp(VIP4, &one(c.mac(owner)), Duration::from_secs(10))
            .is_some(),
        "{}",
        c.logs()
    );
    // A second service gets the next address, and it is answered soon after the write.
    c.write("svc2.yaml", &service("api", ""));
    let next = "198.51.100.201";
    let took = c.wait_arp(next, &one(c.mac(ranking(next)[0])), Duration::from_secs(10));
    assert!(took.is_some(), "a new service is announced\n{}", c.logs());
    eprintln!("config change: new address answered after {took:?}");
    // An invalid change: the last good configuration stays, no address moves or goes.
    c.write("pool.yaml", "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lab}\nspec: {addresses: [not-an-address]}\n");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.arp(VIP4, 2),
        one(c.mac(owner)),
        "still answered on the last good configuration"
    );
    assert_eq!(c.arp(next, 2), one(c.mac(ranking(next)[0])));
    let metrics = c.http(owner, "/metrics");
    assert!(
        metrics.contains("metallb_k8s_client_config_stale_bool 1"),
        "{metrics}"
    );
    // Removing the service releases its address.
    c.write("pool.yaml", POOL);
    c.remove("svc2.yaml");
    assert!(
        c.wait_arp(next, &BTreeSet::new(), Duration::from_secs(10))
            .is_some(),
        "released\n{}",
        c.logs()
    );
}
