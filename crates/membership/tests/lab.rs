//! The transport over real UDP between network namespaces (the lab): each host's socket
//! is bound inside its namespace and driven by a task of this process. Skipped, with a
//! printed reason, when the lab is not available (not root).
//!
//! The tests run one at a time (a lock), so timings are not disturbed by each other.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrolb_lab::{Lab, available, in_netns};
use ferrolb_membership::{Config, DEFAULT_PORT, Membership};
use tokio::runtime::Runtime;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Cluster {
    // Dropped last: the lab outlives the memberships using its namespaces.
    nodes: Vec<(String, Option<Membership>)>,
    rt: Runtime,
    lab: Lab,
}

impl Cluster {
    /// Hosts `names` at 198.51.100.11, .12, ...; none started yet.
    fn new(tag: &str, names: &[&str]) -> Cluster {
        let mut lab = Lab::new(tag).unwrap();
        for (i, n) in names.iter().enumerate() {
            lab.add_host(n, 11 + i as u8).unwrap();
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Cluster {
            nodes: names.iter().map(|n| (n.to_string(), None)).collect(),
            rt,
            lab,
        }
    }

    fn addr(&self, host: &str) -> SocketAddr {
        SocketAddr::from((self.lab.host(host).ipv4, DEFAULT_PORT))
    }

    fn start(&mut self, host: &str, secrets: &[&[u8]]) {
        let addr = self.addr(host);
        let netns = self.lab.host(host).netns.clone();
        let socket = in_netns(&netns, move || std::net::UdpSocket::bind(addr))
            .unwrap()
            .unwrap();
        let mut config = Config::new(host, addr);
        config.seeds = self.nodes.iter().map(|(n, _)| self.addr(n)).collect();
        config.secrets = secrets.iter().map(|s| s.to_vec()).collect();
        let _guard = self.rt.enter();
        let m = Membership::start_with_socket(config, socket).unwrap();
        self.node_slot(host).replace(m);
    }

    fn start_all(&mut self, secrets: &[&[u8]]) {
        let names: Vec<String> = self.nodes.iter().map(|(n, _)| n.clone()).collect();
        for n in names {
            self.start(&n, secrets);
        }
    }

    fn node_slot(&mut self, host: &str) -> &mut Option<Membership> {
        &mut self.nodes.iter_mut().find(|(n, _)| n == host).unwrap().1
    }

    fn node(&self, host: &str) -> &Membership {
        self.nodes
            .iter()
            .find(|(n, _)| n == host)
            .and_then(|(_, m)| m.as_ref())
            .unwrap()
    }

    fn view(&self, host: &str) -> BTreeSet<String> {
        self.node(host).members().borrow().clone()
    }

    /// Waits until each observer sees exactly `want`; the time it took, or None.
    fn wait(&self, observers: &[&str], want: &[&str], limit: Duration) -> Option<Duration> {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let start = Instant::now();
        loop {
            if observers.iter().all(|o| self.view(o) == want) {
                return Some(start.elapsed());
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn views(&self, observers: &[&str]) -> Vec<(String, BTreeSet<String>)> {
        observers
            .iter()
            .map(|o| (o.to_string(), self.view(o)))
            .collect()
    }
}

const ABC: [&str; 3] = ["a", "b", "c"];

#[test]
fn three_hosts_see_each_other() {
    if !available() {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new("mbjoin", &ABC);
    c.start_all(&[b"lab secret"]);
    let took = c.wait(&ABC, &ABC, Duration::from_secs(3));
    assert!(took.is_some(), "views: {:?}", c.views(&ABC));
    eprintln!("lab: 3 hosts formed a cluster in {:?}", took.unwrap());
    // And stay together (no false suspicion on an idle lab).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.wait(&ABC, &ABC, Duration::ZERO).map(|_| ()), Some(()));
    let s = c.node("a").stats();
    assert!(s.packets_received > 0 && s.packets_sent > 0);
    assert_eq!(s.dropped(), 0, "{s:?}");
    assert_eq!(s.members_alive, 3);
}

#[test]
fn a_cut_link_is_detected_within_a_second_and_heals() {
    if !available() {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new("mbcut", &ABC);
    c.start_all(&[b"lab secret"]);
    assert!(c.wait(&ABC, &ABC, Duration::from_secs(3)).is_some());
    let mut times = Vec::new();
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(700 + 150 * round));
        let before = Instant::now();
        c.lab.cut_link("c").unwrap();
        let cut_cmd = before.elapsed();
        let took = c.wait(&["a", "b"], &["a", "b"], Duration::from_secs(1));
        assert!(
            took.is_some(),
            "not detected within 1 s: {:?}",
            c.views(&ABC)
        );
        let took = cut_cmd + took.unwrap();
        eprintln!("lab: cut link detected in {took:?} (of which {cut_cmd:?} running `ip link`)");
        times.push(took);
        // The cut host sees itself alone.
        assert!(c.wait(&["c"], &["c"], Duration::from_secs(1)).is_some());
        c.lab.restore_link("c").unwrap();
        let back = c.wait(&ABC, &ABC, Duration::from_secs(5));
        assert!(back.is_some(), "not healed: {:?}", c.views(&ABC));
        eprintln!("lab: restored link healed in {:?}", back.unwrap());
    }
    times.sort();
    eprintln!("lab: cut-link detection times {times:?}");
}

#[test]
fn a_leaving_host_is_gone_within_100ms() {
    if !available() {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new("mblv", &ABC);
    c.start_all(&[]);
    assert!(c.wait(&ABC, &ABC, Duration::from_secs(3)).is_some());
    std::thread::sleep(Duration::from_millis(500));
    let leaving = c.node_slot("c").take().unwrap();
    let start = Instant::now();
    c.rt.spawn(leaving.leave());
    let took = c.wait(&["a", "b"], &["a", "b"], Duration::from_millis(100));
    assert!(took.is_some(), "views: {:?}", c.views(&["a", "b"]));
    let took = start.elapsed();
    eprintln!("lab: leave seen by both peers in {took:?}");
    // It stays gone, without suspicion.
    std::thread::sleep(Duration::from_secs(1));
    assert!(c.wait(&["a", "b"], &["a", "b"], Duration::ZERO).is_some());
    // Restarted, it is accepted at once.
    c.start("c", &[]);
    let back = c.wait(&ABC, &ABC, Duration::from_secs(2));
    assert!(back.is_some(), "views: {:?}", c.views(&ABC));
    eprintln!("lab: restarted host rejoined in {:?}", back.unwrap());
}

#[test]
fn a_partition_splits_and_heals() {
    if !available() {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new("mbpart", &ABC);
    c.start_all(&[b"lab secret"]);
    assert!(c.wait(&ABC, &ABC, Duration::from_secs(3)).is_some());
    c.lab.partition(&["a"], &["b", "c"]).unwrap();
    let split_a = c.wait(&["a"], &["a"], Duration::from_secs(2));
    let split_bc = c.wait(&["b", "c"], &["b", "c"], Duration::from_secs(2));
    assert!(
        split_a.is_some() && split_bc.is_some(),
        "views: {:?}",
        c.views(&ABC)
    );
    std::thread::sleep(Duration::from_secs(2));
    c.lab.heal().unwrap();
    let healed = c.wait(&ABC, &ABC, Duration::from_secs(5));
    assert!(healed.is_some(), "views: {:?}", c.views(&ABC));
    eprintln!(
        "lab: partition seen in {:?}, healed in {:?}",
        split_a.unwrap(),
        healed.unwrap()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(c.wait(&ABC, &ABC, Duration::ZERO).is_some(), "stays healed");
}

#[test]
fn a_host_with_the_wrong_key_never_joins() {
    if !available() {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new("mbkey", &["a", "b", "c", "d"]);
    for h in ABC {
        c.start(h, &[b"the right secret"]);
    }
    c.start("d", &[b"a wrong secret"]);
    assert!(c.wait(&ABC, &ABC, Duration::from_secs(3)).is_some());
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        c.wait(&ABC, &ABC, Duration::ZERO).is_some(),
        "{:?}",
        c.views(&ABC)
    );
    assert_eq!(
        c.view("d"),
        BTreeSet::from(["d".to_string()]),
        "d joined nobody"
    );
    let a = c.node("a").stats();
    assert!(a.dropped_unauthenticated > 0, "{a:?}");
    let d = c.node("d").stats();
    assert!(d.dropped_unauthenticated > 0, "{d:?}");
    eprintln!(
        "lab: wrong key: a dropped {} datagrams from d, d dropped {}",
        a.dropped_unauthenticated, d.dropped_unauthenticated
    );
}
