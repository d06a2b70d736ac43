//! Layer 2 failover, as a client sees it, against keepalived in the same lab and run.
//!
//! `cargo bench -p ferrolb --bench failover` (root; Debian packages iproute2,
//! iputils-ping, nftables, keepalived). Runs `FERROLB_BENCH_RUNS` (default 10) of each
//! scenario and writes the table into docs/benchmarks.md between the
//! `l2-failover` markers, and the raw numbers to docs/data/l2-failover.json (which
//! scripts/plots turns into charts).
//!
//! Lab: a client and three nodes on one bridge. The client pings the service's IPv4 and
//! IPv6 addresses every 10 ms (two `ping -D` processes). The outage of a run is the
//! longest time without an answer around the event; for a link cut, the owner's link is
//! taken down at the bridge; for SIGTERM, the owner's daemon is told to stop. After a
//! cut the link comes back, and an ARP prober (a request every 5 ms) records until when
//! two nodes answered at once.

use ferrolb_lab::probe::{ProbeLog, arp_probe};
use ferrolb_lab::{Lab, available, require};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NODES: [(&str, u8); 3] = [("node-a", 11), ("node-b", 12), ("node-c", 13)];
const VIP4: &str = "198.51.100.200";
const VIP6: &str = "2001:db8::200";

#[derive(Clone, Copy, PartialEq)]
enum Daemon {
    Ferrolb,
    /// keepalived VRRPv3 with this advert interval, in seconds.
    Keepalived(&'static str),
}

impl Daemon {
    fn label(self) -> String {
        match self {
            Daemon::Ferrolb => "ferrolb (default settings)".into(),
            Daemon::Keepalived(a) => format!("keepalived VRRPv3, advert {a} s"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Event {
    LinkCut,
    Sigterm,
}

fn event_name(e: Event) -> &'static str {
    match e {
        Event::LinkCut => "link cut",
        Event::Sigterm => "SIGTERM",
    }
}

struct Row {
    daemon: Daemon,
    event: Event,
    v4: Vec<Duration>,
    v6: Vec<Duration>,
    doubles: Vec<Duration>,
}

fn main() {
    if !available()
        || !require("ping", "iputils-ping")
        || !require("nft", "nftables")
        || !require("ndisc6", "ndisc6")
    {
        return;
    }
    let have_keepalived = require("keepalived", "keepalived");
    let runs: usize = std::env::var("FERROLB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut daemons = vec![Daemon::Ferrolb];
    if have_keepalived {
        daemons.extend([Daemon::Keepalived("1"), Daemon::Keepalived("0.1")]);
    }
    let mut rows = Vec::new();
    for daemon in daemons {
        for event in [Event::LinkCut, Event::Sigterm] {
            let mut b = Bench::new(daemon);
            let mut row = Row {
                daemon,
                event,
                v4: vec![],
                v6: vec![],
                doubles: vec![],
            };
            for run in 1..=runs {
                match b.run(event) {
                    Ok((o4, o6, double)) => {
                        eprintln!(
                            "{}, {}, run {run}: outage v4 {:.0} ms, v6 {:.0} ms, double answers until {:?} ms",
                            daemon.label(),
                            event_name(event),
                            ms(o4),
                            ms(o6),
                            double.map(ms)
                        );
                        row.v4.push(o4);
                        row.v6.push(o6);
                        row.doubles.extend(double);
                    }
                    Err(e) => {
                        eprintln!("{}, {}, run {run}: {e}", daemon.label(), event_name(event))
                    }
                }
            }
            rows.push(row);
        }
    }
    write_results(&rows, runs);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Bench {
    lab: Lab,
    dir: PathBuf,
    daemon: Daemon,
    pids: BTreeMap<&'static str, u32>,
}

impl Bench {
    fn new(daemon: Daemon) -> Bench {
        let tag = match daemon {
            Daemon::Ferrolb => "bfl",
            Daemon::Keepalived("1") => "bka1",
            Daemon::Keepalived(_) => "bka01",
        };
        let mut lab = Lab::new(tag).expect("lab");
        lab.add_host("client", 10).expect("client");
        for (n, o) in NODES {
            lab.add_host(n, o).expect("node");
        }
        let dir = std::env::temp_dir().join(format!("ferrolb-bench-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("manifests")).expect("bench dir");
        let mut b = Bench {
            lab,
            dir,
            daemon,
            pids: BTreeMap::new(),
        };
        match daemon {
            Daemon::Ferrolb => b.write_manifests(),
            Daemon::Keepalived(advert) => b.write_keepalived(advert),
        }
        for (n, _) in NODES {
            b.start(n);
        }
        b
    }

    fn write_manifests(&self) {
        let mut yaml = String::new();
        for (n, o) in NODES {
            yaml += &format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {n}}}\nstatus: {{addresses: [{{type: InternalIP, address: 198.51.100.{o}}}]}}\n---\n"
            );
        }
        yaml += "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bench}\nspec: {addresses: [198.51.100.200/32, 2001:db8::200/128]}\n---\n";
        yaml +=
            "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: bench}\n---\n";
        yaml += "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4, IPv6], ports: [{port: 80}]}\n";
        std::fs::write(self.dir.join("manifests/all.yaml"), yaml).expect("manifests");
    }

    fn write_keepalived(&self, advert: &str) {
        for (i, (n, _)) in NODES.iter().enumerate() {
            let priority = 100 - 10 * i;
            let instance = |name: &str, id: u8, vip: &str| {
                format!(
                    "vrrp_instance {name} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {id}\n  priority {priority}\n  advert_int {advert}\n  virtual_ipaddress {{\n    {vip}\n  }}\n}}\n"
                )
            };
            let conf = format!(
                "global_defs {{\n  vrrp_version 3\n  router_id {n}\n}}\n{}{}",
                instance("v4", 51, &format!("{VIP4}/24")),
                instance("v6", 52, &format!("{VIP6}/64"))
            );
            std::fs::write(self.dir.join(format!("{n}.conf")), conf).expect("keepalived.conf");
        }
    }

    fn start(&mut self, node: &'static str) {
        let log = self.dir.join(format!("{node}.log"));
        let file = |s: &str| self.dir.join(format!("{node}.{s}")).display().to_string();
        let argv: Vec<String> = match self.daemon {
            Daemon::Ferrolb => vec![
                env!("CARGO_BIN_EXE_ferrolb").into(),
                "run".into(),
                "--manifests".into(),
                self.dir.join("manifests").display().to_string(),
                "--node".into(),
                node.into(),
            ],
            Daemon::Keepalived(_) => vec![
                "keepalived".into(),
                "--dont-fork".into(),
                "--log-console".into(),
                "--vrrp".into(),
                "-f".into(),
                file("conf"),
                "-p".into(),
                file("pid"),
                "-r".into(),
                file("vrrp.pid"),
                "-c".into(),
                file("checkers.pid"),
            ],
        };
        let pid = self
            .lab
            .spawn(node, &argv, Some(&log))
            .expect("start daemon");
        self.pids.insert(node, pid);
    }

    fn probe(&self, interval: Duration, duration: Duration) -> Result<ProbeLog, String> {
        let client = self.lab.host("client").clone();
        let target = VIP4.parse().expect("VIP4");
        ferrolb_lab::in_netns(&client.netns, move || {
            arp_probe("eth0", client.ipv4, client.mac, target, interval, duration)
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }

    /// The node whose MAC alone answers ARP for the IPv4 address, waiting up to 15 s.
    fn owner(&self) -> Result<&'static str, String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            let log = self.probe(Duration::from_millis(20), Duration::from_millis(300))?;
            let macs = log.macs_in(Duration::ZERO, Duration::from_secs(1));
            if macs.len() == 1 {
                let mac = macs.into_iter().next().expect("one MAC");
                // The IPv6 address must be on the same node, or its column means nothing.
                let v6 = self.lab.exec(
                    "client",
                    &["ndisc6", "-q", "-r", "1", "-w", "300", VIP6, "eth0"],
                );
                let v6_mac = v6
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_lowercase())
                    .unwrap_or_default();
                if let Some((n, _)) = NODES.iter().find(|(n, _)| self.lab.host(n).mac == mac)
                    && v6_mac == self.lab.host(n).mac_string()
                {
                    return Ok(n);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("no single owner within 15 s".into())
    }

    /// One run: the outage seen on IPv4 and IPv6, and, after a link cut, until when two
    /// nodes answered at once once the link was back.
    fn run(&mut self, event: Event) -> Result<(Duration, Duration, Option<Duration>), String> {
        let owner = self.owner()?;
        let logs = [self.dir.join("ping4.log"), self.dir.join("ping6.log")];
        let mut pings = Vec::new();
        for (log, (flag, vip)) in logs.iter().zip([("-4", VIP4), ("-6", VIP6)]) {
            let argv = [
                "ping", flag, "-D", "-n", "-i", "0.01", "-c", "400", "-W", "1", vip,
            ];
            pings.push(
                self.lab
                    .spawn("client", &argv, Some(log))
                    .map_err(|e| e.to_string())?,
            );
        }
        std::thread::sleep(Duration::from_millis(700));
        let at = wall();
        match event {
            Event::LinkCut => self.lab.cut_link(owner).map_err(|e| e.to_string())?,
            Event::Sigterm => self
                .lab
                .signal(self.pids[owner], "TERM")
                .map_err(|e| e.to_string())?,
        }
        for pid in pings {
            let _ = self.lab.wait(pid, Duration::from_secs(10));
        }
        let outages = (outage(&logs[0], at)?, outage(&logs[1], at)?);
        let mut double = None;
        match event {
            Event::LinkCut => {
                self.lab.restore_link(owner).map_err(|e| e.to_string())?;
                let log = self.probe(Duration::from_millis(5), Duration::from_secs(3))?;
                double = Some(log.last_double().unwrap_or(Duration::ZERO));
            }
            Event::Sigterm => {
                let _ = self.lab.wait(self.pids[owner], Duration::from_secs(5));
                self.start(owner);
            }
        }
        // Let the cluster settle: the preferred node takes its address back.
        std::thread::sleep(Duration::from_secs(3));
        Ok((outages.0, outages.1, double))
    }
}

fn wall() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The longest stretch without an answer, from 50 ms before the event to the end.
fn outage(log: &Path, event: f64) -> Result<Duration, String> {
    let text = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
    let times: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .filter(|t| *t >= event - 0.05)
        .collect();
    if times.len() < 2 {
        return Err(format!("{}: no answers around the event", log.display()));
    }
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    Ok(Duration::from_secs_f64(gap))
}

fn stats(v: &[Duration]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut s: Vec<f64> = v.iter().map(|d| ms(*d)).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    format!("{median:.0} / {:.0}", s[n - 1])
}

fn write_results(rows: &[Row], runs: usize) {
    let mut table = format!(
        "Measured on {} on this machine kind (2 cores), {runs} runs per row, the client pinging\n\
         each address every 10 ms. Outage: the longest stretch without an answer around the event.\n\
         Double answers: after a cut link comes back, until when two nodes answered ARP at once\n\
         (probe every 5 ms). Median / max, in ms.\n\n",
        date()
    );
    table += "| daemon | event | IPv4 outage | IPv6 outage | double answers after the heal |\n|---|---|---|---|---|\n";
    for r in rows {
        let doubles = if r.event == Event::LinkCut {
            stats(&r.doubles)
        } else {
            "-".into()
        };
        table += &format!(
            "| {} | {} | {} | {} | {doubles} |\n",
            r.daemon.label(),
            event_name(r.event),
            stats(&r.v4),
            stats(&r.v6)
        );
    }
    println!("{table}");
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
    let (begin, end) = ("<!-- l2-failover:begin -->", "<!-- l2-failover:end -->");
    let current = std::fs::read_to_string(&doc).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{begin}\n{table}{end}");
    let updated = match (current.find(begin), current.find(end)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{section}{}", &current[..b], &current[e + end.len()..])
        }
        _ => format!(
            "{}\n## Layer 2 failover\n\nReproduce: `cargo bench -p ferrolb --bench failover` (as root).\n\n{section}\n",
            current.trim_end()
        ),
    };
    std::fs::write(&doc, updated).expect("write docs/benchmarks.md");
    let list = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.1}", ms(*d)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let raw: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"daemon\":\"{}\",\"event\":\"{}\",\"v4_ms\":[{}],\"v6_ms\":[{}],\"double_ms\":[{}]}}",
                r.daemon.label(),
                event_name(r.event),
                list(&r.v4),
                list(&r.v6),
                list(&r.doubles)
            )
        })
        .collect();
    // Kept with the docs: scripts/plots draws the charts of docs/benchmarks.md from it.
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/data");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(
        out.join("l2-failover.json"),
        format!("[{}]\n", raw.join(",\n")),
    );
}

fn date() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
