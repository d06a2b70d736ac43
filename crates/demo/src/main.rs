//! `ferrolb-demo`: ferrolb working end to end on one machine, in a few minutes.
//!
//! It builds a small network in Linux network namespaces (the lab of `crates/lab`): a
//! BIRD router, a client and three nodes on one segment. Each node runs `ferrolb run` on
//! the manifests of `examples/` and a tiny HTTP responder that says which node answered.
//! Then it shows, step by step: the allocation, who announces what, requests from the
//! client reaching the addresses (layer 2: one node; BGP: spread over the nodes by the
//! router's ECMP), a node's link cut and the measured takeover, the link restored. The lab
//! is removed at the end, also on failure or Ctrl-C (the namespaces are named
//! `fldemo-*`; a new run removes what an interrupted one left).
//!
//! Run it as root with `sudo ./scripts/demo`, which installs the Debian packages it needs
//! and builds ferrolb first.

use clap::{Parser, Subcommand};
use ferrolb_lab::routers::{Neighbor, Router, RouterKind, RouterSpec};
use ferrolb_lab::{Lab, in_netns};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "ferrolb's demo: a cluster, a BGP router and a client in network namespaces")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The ferrolb binary.
    #[arg(long, default_value = "target/release/ferrolb")]
    ferrolb: PathBuf,
    /// The manifests the nodes run.
    #[arg(long, default_value = "examples")]
    manifests: PathBuf,
    /// Keep the nodes' and the router's logs (their folder is printed).
    #[arg(long)]
    keep_logs: bool,
}

#[derive(Subcommand)]
enum Command {
    /// The HTTP responder each node runs: answers every request with the node's name.
    Respond {
        /// The name to answer with.
        #[arg(long)]
        node: String,
        /// The TCP port (IPv4 and IPv6).
        #[arg(long, default_value_t = 80)]
        port: u16,
    },
}

/// The nodes: name and last octet of their addresses (as in examples/cluster.yaml).
const NODES: [(&str, u8); 3] = [("node-a", 11), ("node-b", 12), ("node-c", 13)];
const ROUTER_AS: u32 = 64501;
const NODE_AS: u32 = 64500;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Respond { node, port }) => respond(&node, port),
        None => Demo::run(&cli.ferrolb, &cli.manifests, cli.keep_logs),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nferrolb-demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves `node\n` to every HTTP request on `port`.
fn respond(node: &str, port: u16) -> Result<(), String> {
    let listener = TcpListener::bind(("::", port))
        .or_else(|_| TcpListener::bind(("0.0.0.0", port)))
        .map_err(|e| format!("listening on port {port}: {e}"))?;
    let body = format!("{node}\n");
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let body = body.clone();
        std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        });
    }
    Ok(())
}

/// One GET from the calling thread's namespace: the node that answered.
fn get(ip: IpAddr, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(ip, 80), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some(body.trim().to_string())
}

/// Requests sent every 10 ms, and who answered each (None: no answer within 100 ms).
type Probe = Vec<(Duration, Option<String>)>;

fn probe(netns: String, ip: IpAddr, duration: Duration) -> std::thread::JoinHandle<Probe> {
    std::thread::spawn(move || {
        in_netns(&netns, move || {
            let start = Instant::now();
            let mut out = Vec::new();
            let mut next = Duration::ZERO;
            while start.elapsed() < duration {
                let at = start.elapsed();
                out.push((at, get(ip, Duration::from_millis(100))));
                next += Duration::from_millis(10);
                if let Some(wait) = next.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                } else {
                    next = start.elapsed();
                }
            }
            out
        })
        .unwrap_or_default()
    })
}

struct Demo {
    lab: Lab,
    router: Router,
    ferrolb: PathBuf,
    dir: PathBuf,
    keep_logs: bool,
    started: Instant,
}

fn step(n: u32, text: &str) {
    println!("\n[{n}/7] {text}");
}

fn say(text: &str) {
    println!("      {text}");
}

/// Waits until `done` holds, printing the seconds elapsed; Err after `timeout`.
fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    let mut shown = None;
    loop {
        if done() {
            println!(
                "\r      {what}: done in {:.1} s          ",
                start.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if start.elapsed() > timeout {
            println!();
            return Err(format!("{what}: still not done after {timeout:?}"));
        }
        let secs = start.elapsed().as_secs();
        if shown != Some(secs) {
            print!("\r      {what} ... {secs} s ");
            let _ = std::io::stdout().flush();
            shown = Some(secs);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn lab_err(e: ferrolb_lab::LabError) -> String {
    e.to_string()
}

impl Demo {
    fn run(ferrolb: &Path, manifests: &Path, keep_logs: bool) -> Result<(), String> {
        if !ferrolb_lab::available() {
            return Err("run it as root (`sudo ./scripts/demo`)".into());
        }
        if !ferrolb_lab::require("bird", "bird2") {
            return Err("BIRD is missing: `./scripts/demo` installs it".into());
        }
        let ferrolb = std::fs::canonicalize(ferrolb).map_err(|e| {
            format!(
                "{}: {e}: build it with `cargo build --release`",
                ferrolb.display()
            )
        })?;
        let manifests = std::fs::canonicalize(manifests)
            .map_err(|e| format!("{}: {e}", manifests.display()))?;
        println!("ferrolb demo: three nodes, a BGP router and a client, in network namespaces");
        println!("on this machine (named fldemo-*, removed at the end). Addresses are from");
        println!(
            "documentation ranges only. The manifests are {}.",
            manifests.display()
        );

        step(1, "Building the lab");
        let mut demo = Demo::build(ferrolb, keep_logs)?;
        demo.show_network();

        step(2, "Checking the manifests (`ferrolb check`)");
        let check = demo.ferrolb_on("client", &["check", manifests.to_str().unwrap_or(".")])?;
        for line in check.lines() {
            say(line);
        }

        step(
            3,
            "Starting `ferrolb run` and an HTTP responder on every node",
        );
        demo.start_nodes(&manifests)?;

        step(
            4,
            "What ferrolb decided (`ferrolb status`, asked from node-a)",
        );
        let table = demo.ferrolb_on("client", &["status", "--agent", "198.51.100.11:9120"])?;
        for line in table.lines() {
            say(line);
        }
        let status: Value = serde_json::from_str(&demo.ferrolb_on(
            "client",
            &["status", "--agent", "198.51.100.11:9120", "-o", "json"],
        )?)
        .map_err(|e| format!("reading the status: {e}"))?;
        let (l2, bgp) = targets(&status);

        step(5, "Requests from the client");
        for t in l2.iter().chain(&bgp) {
            let counts = demo.requests(t.ip, 30);
            say(&format!(
                "{:<18} {:<22} {:<8} 30 requests answered by {}",
                t.ip.to_string(),
                t.service,
                t.mode,
                describe(&counts)
            ));
        }
        say("layer 2: the owner alone answers; BGP: the router spreads connections over the nodes");

        let Some(l2_target) = l2.first() else {
            return Err("no layer 2 address was announced".into());
        };
        let victim = l2_target.owner.clone().unwrap_or_default();
        step(
            6,
            &format!(
                "Failover: cutting {victim}'s link (it owns {})",
                l2_target.ip
            ),
        );
        let report = demo.failover(&victim, l2_target, bgp.first())?;
        for line in &report {
            say(line);
        }

        step(7, &format!("Restoring {victim}'s link"));
        demo.lab.restore_link(&victim).map_err(lab_err)?;
        let hops = bgp.first().map(|t| prefix(t.ip));
        wait_for(
            "all three nodes back in the router's routes",
            Duration::from_secs(30),
            || {
                hops.as_ref()
                    .is_none_or(|p| demo.router.next_hops(&demo.lab, p).len() == NODES.len())
            },
        )?;
        for t in l2.iter().take(1).chain(bgp.iter().take(1)) {
            let counts = demo.requests(t.ip, 30);
            say(&format!(
                "{:<18} {:<8} answered by {}",
                t.ip.to_string(),
                t.mode,
                describe(&counts)
            ));
        }

        println!("\nSummary");
        for line in &report {
            say(line);
        }
        say(&format!(
            "the whole demo took {:.0} s; removing the lab",
            demo.started.elapsed().as_secs_f64()
        ));
        drop(demo);
        println!("      done: no namespace or process is left behind.");
        Ok(())
    }

    fn build(ferrolb: PathBuf, keep_logs: bool) -> Result<Demo, String> {
        let started = Instant::now();
        let mut lab = Lab::new("demo").map_err(lab_err)?;
        lab.add_host("router", 1).map_err(lab_err)?;
        lab.add_host("client", 10).map_err(lab_err)?;
        for (n, o) in NODES {
            lab.add_host(n, o).map_err(lab_err)?;
        }
        // The client reaches the layer 2 pools on its segment, and the BGP pool through
        // the router.
        for route in [
            vec!["ip", "route", "add", "203.0.113.0/24", "dev", "eth0"],
            vec![
                "ip",
                "route",
                "add",
                "203.0.113.64/29",
                "via",
                "198.51.100.1",
            ],
            vec![
                "ip",
                "-6",
                "route",
                "add",
                "2001:db8:100::/64",
                "dev",
                "eth0",
            ],
            vec![
                "ip",
                "-6",
                "route",
                "add",
                "2001:db8:200::/64",
                "via",
                "2001:db8::1",
            ],
        ] {
            lab.exec_ok("client", &route).map_err(lab_err)?;
        }
        // Spread connections over the ECMP next hops by ports too, not only addresses.
        for key in [
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv6.fib_multipath_hash_policy=1",
        ] {
            lab.exec_ok("router", &["sysctl", "-qw", key])
                .map_err(lab_err)?;
        }
        let dir = std::env::temp_dir().join(format!("ferrolb-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut neighbors = Vec::new();
        for (_, o) in NODES {
            for addr in [format!("198.51.100.{o}"), format!("2001:db8::{o:x}")] {
                let mut n = Neighbor::new(addr.parse().map_err(|_| "address")?, NODE_AS);
                n.bfd = Some((100, 100));
                neighbors.push(n);
            }
        }
        let spec = RouterSpec {
            asn: ROUTER_AS,
            router_id: "198.51.100.1".parse().map_err(|_| "address")?,
            neighbors,
            hold_time: 9,
            originate: vec![],
        };
        let router = Router::start(
            &mut lab,
            RouterKind::Bird,
            "router",
            &spec,
            &dir.join("bird"),
        )
        .map_err(lab_err)?;
        Ok(Demo {
            lab,
            router,
            ferrolb,
            dir,
            keep_logs,
            started,
        })
    }

    fn show_network(&self) {
        say("router  198.51.100.1   2001:db8::1    BIRD 2, AS 64501, BFD 100 ms x 3, ECMP");
        say("client  198.51.100.10  2001:db8::10   sends the requests");
        for (n, o) in NODES {
            say(&format!(
                "{n}  198.51.100.{o}  2001:db8::{o:x}    ferrolb run + HTTP responder, AS 64500"
            ));
        }
    }

    /// Runs the ferrolb binary on a lab host; its output.
    fn ferrolb_on(&self, host: &str, args: &[&str]) -> Result<String, String> {
        let mut argv = vec![self.ferrolb.to_str().unwrap_or("ferrolb")];
        argv.extend_from_slice(args);
        let out = self.lab.exec(host, &argv).map_err(lab_err)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() && text.trim().is_empty() {
            return Err(format!(
                "ferrolb {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(text)
    }

    fn start_nodes(&mut self, manifests: &Path) -> Result<(), String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        for (n, o) in NODES {
            let log = self.dir.join(format!("{n}.log"));
            self.lab
                .spawn(
                    n,
                    &[
                        "env",
                        "RUST_LOG=info",
                        self.ferrolb.to_str().unwrap_or("ferrolb"),
                        "run",
                        "--manifests",
                        manifests.to_str().unwrap_or("."),
                        "--node",
                        n,
                        "--metrics-addr",
                        &format!("198.51.100.{o}:9120"),
                    ],
                    Some(&log),
                )
                .map_err(lab_err)?;
            self.lab
                .spawn(
                    n,
                    &[
                        me.to_str().unwrap_or("ferrolb-demo"),
                        "respond",
                        "--node",
                        n,
                    ],
                    None,
                )
                .map_err(lab_err)?;
        }
        say(&format!("logs in {}", self.dir.display()));
        let nodes: Vec<IpAddr> = NODES
            .iter()
            .map(|(_, o)| IpAddr::from([198, 51, 100, *o]))
            .collect();
        wait_for(
            "BGP sessions from the three nodes established at the router",
            Duration::from_secs(60),
            || nodes.iter().all(|n| self.router.established(&self.lab, *n)),
        )?;
        // The agents settle (they announce once they have heard from each other).
        std::thread::sleep(Duration::from_secs(3));
        Ok(())
    }

    /// `count` requests to `ip` from the client: answers per node.
    fn requests(&self, ip: IpAddr, count: usize) -> BTreeMap<String, usize> {
        let netns = self.lab.host("client").netns.clone();
        in_netns(&netns, move || {
            let mut counts = BTreeMap::new();
            for _ in 0..count {
                let who = get(ip, Duration::from_millis(500)).unwrap_or_else(|| "no answer".into());
                *counts.entry(who).or_insert(0) += 1;
            }
            counts
        })
        .unwrap_or_default()
    }

    /// Cuts `victim`'s link while the client probes a layer 2 and a BGP address.
    fn failover(
        &mut self,
        victim: &str,
        l2: &Target,
        bgp: Option<&Target>,
    ) -> Result<Vec<String>, String> {
        let netns = self.lab.host("client").netns.clone();
        let run = Duration::from_secs(4);
        let cut_at = Duration::from_millis(500);
        say("the client sends a request every 10 ms to each address; the link is cut at 0.5 s");
        let l2_probe = probe(netns.clone(), l2.ip, run);
        let bgp_probe = bgp.map(|t| probe(netns.clone(), t.ip, run));
        let t0 = Instant::now();
        std::thread::sleep(cut_at);
        let cut = t0.elapsed();
        self.lab.cut_link(victim).map_err(lab_err)?;
        let l2_log = l2_probe.join().map_err(|_| "probe thread")?;
        let mut report = Vec::new();
        match outage(&l2_log, cut) {
            Some((gap, who)) => report.push(format!(
                "layer 2 {}: answered again by {who} {} after the cut (keepalived with 1 s adverts: ~3 s)",
                l2.ip,
                ms(gap)
            )),
            None => report.push(format!("layer 2 {}: no answer after the cut", l2.ip)),
        }
        if let (Some(t), Some(p)) = (bgp, bgp_probe) {
            let log = p.join().map_err(|_| "probe thread")?;
            let after: Vec<&(Duration, Option<String>)> =
                log.iter().filter(|(at, _)| *at >= cut).collect();
            let failed = after.iter().filter(|(_, r)| r.is_none()).count();
            let last_fail = after
                .iter()
                .filter(|(_, r)| r.is_none())
                .map(|(at, _)| *at - cut)
                .max();
            let survivors: BTreeMap<String, usize> = after
                .iter()
                .filter_map(|(_, r)| r.clone())
                .fold(BTreeMap::new(), |mut m, who| {
                    *m.entry(who).or_insert(0) += 1;
                    m
                });
            report.push(match last_fail {
                Some(last) => format!(
                    "BGP {}: {failed} of {} requests failed (those hashed to {victim}), the last {} after the cut, when BFD had withdrawn its route; the others were answered by {}",
                    t.ip,
                    after.len(),
                    ms(last),
                    describe(&survivors)
                ),
                None => format!(
                    "BGP {}: no request failed; answered by {}",
                    t.ip,
                    describe(&survivors)
                ),
            });
        }
        Ok(report)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // The lab's own Drop stops the processes and removes the namespaces.
        if !self.keep_logs {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// An address to send requests to.
struct Target {
    ip: IpAddr,
    service: String,
    mode: &'static str,
    owner: Option<String>,
}

/// The announced addresses of the status: layer 2 ones (with their owner) and BGP ones.
fn targets(status: &Value) -> (Vec<Target>, Vec<Target>) {
    let mut l2 = Vec::new();
    let mut bgp = Vec::new();
    for svc in status["services"].as_array().into_iter().flatten() {
        let name = svc["service"].as_str().unwrap_or("").to_string();
        for pair in svc["announced_by"].as_array().into_iter().flatten() {
            if let (Some(ip), Some(owner)) = (pair[0].as_str(), pair[1].as_str())
                && let Ok(ip) = ip.parse()
            {
                l2.push(Target {
                    ip,
                    service: name.clone(),
                    mode: "layer 2",
                    owner: Some(owner.to_string()),
                });
            }
        }
        if svc["bgp_peers"].as_array().is_some_and(|p| !p.is_empty()) {
            for ip in svc["ips"].as_array().into_iter().flatten() {
                if let Some(Ok(ip)) = ip.as_str().map(str::parse) {
                    bgp.push(Target {
                        ip,
                        service: name.clone(),
                        mode: "BGP",
                        owner: None,
                    });
                }
            }
        }
    }
    // Only port 80 answers: prefer the Services that listen there, IPv4 first.
    let rank = |t: &Target| (!t.service.ends_with("/web"), t.ip.is_ipv6());
    l2.sort_by_key(rank);
    bgp.sort_by_key(rank);
    (l2, bgp)
}

/// The host route of `ip`, as the router's table shows it.
fn prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

fn describe(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "nobody".into();
    }
    counts
        .iter()
        .map(|(who, n)| format!("{who} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// After a cut at `cut`: how long until requests were answered again, and by whom
/// (None when nothing answered after it).
fn outage(log: &[(Duration, Option<String>)], cut: Duration) -> Option<(Duration, String)> {
    let after: Vec<&(Duration, Option<String>)> = log.iter().filter(|(at, _)| *at >= cut).collect();
    let last_fail = after.iter().rposition(|(_, r)| r.is_none());
    let next = match last_fail {
        None => after.first()?,
        Some(i) => after.get(i + 1)?,
    };
    let who = next.1.clone()?;
    Some((next.0.saturating_sub(cut).max(Duration::ZERO), who))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn outage_is_measured_from_the_cut_to_the_first_answer_after_the_last_failure() {
        let log: Probe = vec![
            (at(0), Some("node-b".into())),
            (at(500), Some("node-b".into())),
            (at(510), None),
            (at(600), None),
            (at(840), Some("node-a".into())),
            (at(850), Some("node-a".into())),
        ];
        assert_eq!(outage(&log, at(505)), Some((at(335), "node-a".into())));
        // Never failed: the first answer after the cut.
        assert_eq!(outage(&log[..2], at(100)), Some((at(400), "node-b".into())));
        // Never answered again.
        assert_eq!(outage(&log[..4], at(505)), None);
    }

    #[test]
    fn targets_sort_web_first_and_split_modes() {
        let status: Value = serde_json::from_str(
            r#"{"services":[
            {"service":"default/dual","ips":["2001:db8:100::","203.0.113.2"],"announced_by":[["2001:db8:100::","node-a"],["203.0.113.2","node-c"]]},
            {"service":"default/web","ips":["203.0.113.0"],"announced_by":[["203.0.113.0","node-b"]]},
            {"service":"default/from-reserved","ips":["203.0.113.64","2001:db8:200::"],"announced_by":[],"bgp_peers":["tor"]}]}"#,
        )
        .unwrap();
        let (l2, bgp) = targets(&status);
        assert_eq!(l2[0].ip.to_string(), "203.0.113.0");
        assert_eq!(l2[0].owner.as_deref(), Some("node-b"));
        assert_eq!(l2.len(), 3);
        assert_eq!(bgp.len(), 2);
        assert_eq!(bgp[0].ip.to_string(), "203.0.113.64");
        assert_eq!(bgp[0].mode, "BGP");
    }
}
