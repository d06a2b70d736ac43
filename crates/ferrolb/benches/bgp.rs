//! BGP: ferrolb's agent against FRR and GoBGP as speakers, in the same lab and run.
//!
//! `cargo bench -p ferrolb --bench bgp` (root; Debian packages iproute2, bird2, frr,
//! gobgpd). Writes the tables into docs/benchmarks.md between the `bgp` markers and the
//! raw numbers to docs/data/bgp.json (charted by scripts/plots). `FERROLB_BENCH_RUNS`
//! (default 10) sets the runs of the link-cut scenario, `FERROLB_BENCH_BULK_RUNS`
//! (default 5) those of the 10,000-prefix scenarios. For profiling, `FERROLB_BENCH_WRAP`
//! prefixes the agent's command line (e.g. `valgrind --tool=massif`, `env RUST_LOG=debug`)
//! and `FERROLB_BENCH_PAUSE_S` keeps the memory run's agent alive that many seconds after
//! its memory is read (its pid is printed), to look at it.
//!
//! Lab: one speaker host (`node-a`, 198.51.100.11 / 2001:db8::11, AS 64512) and two BIRD 2
//! routers (`rtr1`, `rtr2`, AS 64501 and 64502) on one bridge. The speaker is ferrolb's
//! real agent (`ferrolb run --manifests DIR --node node-a`, MetalLB manifests), FRR 8
//! (zebra + bgpd, + bfdd with BFD) or gobgpd 3 (`ferrolb_lab::speakers`).
//!
//! - Link cut: BFD 100 ms x 3 on both ends, one IPv4 /32 (203.0.113.10). The speaker's
//!   link is cut at the bridge; measured from the speaker seeing its carrier drop (`ip
//!   monitor link` on the speaker host) to the route's deletion from rtr1's kernel table
//!   (`ip monitor route` on rtr1), both kernel-event timestamps of one clock.
//! - 10,000 IPv6 /128s (2001:db8:100::1 - 2001:db8:100::2710: IPv4 documentation space
//!   holds only 768 addresses) to rtr1: from the session's Established, as BIRD records it
//!   (the protocol's "since" time, ms), and from the speaker's start, until BIRD's table
//!   holds all 10,000 routes of the session (polled every 5 ms over BIRD's control
//!   socket). Then SIGTERM to the speaker until BIRD holds none of them.
//! - Memory: the same 10,000 prefixes announced to rtr1 and rtr2; once both hold all of
//!   them, VmRSS and VmHWM of every process of the speaker, summed.

#[path = "bgp/birdctl.rs"]
mod birdctl;

use birdctl::Birdc;
use ferrolb_lab::routers::{Neighbor, Router, RouterKind, RouterSpec};
use ferrolb_lab::speakers::{Speaker, SpeakerKind, SpeakerSpec};
use ferrolb_lab::{Lab, available, require};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

const NODE: &str = "node-a";
const NODE_OCTET: u8 = 11;
const OUR_AS: u32 = 64512;
/// Router hosts: name, octet, AS.
const ROUTERS: [(&str, u8, u32); 2] = [("rtr1", 1, 64501), ("rtr2", 2, 64502)];
const PREFIXES: usize = 10_000;
const BFD_PREFIX: &str = "203.0.113.10/32";
const HOLD: u16 = 9;
/// How long the ferrolb agent (or any speaker) may take to establish its first session.
const SESSION_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The agent with its default flags: it also adds a local route per address it
    /// announces, so that the host accepts the traffic.
    Ferrolb,
    /// The agent with `--no-local-routes`: BGP alone, as FRR and GoBGP do it here.
    FerrolbNoLocal,
    Frr,
    Gobgp,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Ferrolb => "ferrolb",
            Kind::FerrolbNoLocal => "ferrolb --no-local-routes",
            Kind::Frr => "FRR 8.4 (bgpd)",
            Kind::Gobgp => "gobgpd 3.10",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Kind::Ferrolb => "fl",
            Kind::FerrolbNoLocal => "fn",
            Kind::Frr => "fr",
            Kind::Gobgp => "go",
        }
    }
}

/// What a speaker announces, and to whom.
struct Setup {
    peers: Vec<(IpAddr, u32)>,
    bfd: bool,
    prefixes: Vec<String>,
}

impl Setup {
    fn bfd() -> Setup {
        let (_, o, asn) = ROUTERS[0];
        Setup {
            peers: vec![(IpAddr::V4(Ipv4Addr::new(198, 51, 100, o)), asn)],
            bfd: true,
            prefixes: vec![BFD_PREFIX.into()],
        }
    }

    fn bulk(routers: usize) -> Setup {
        Setup {
            peers: ROUTERS[..routers]
                .iter()
                .map(|(_, o, asn)| (IpAddr::V6(v6(u16::from(*o))), *asn))
                .collect(),
            bfd: false,
            prefixes: bulk_prefixes(),
        }
    }
}

fn v6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)
}

/// 2001:db8:100::1 to 2001:db8:100::2710: what the pool range hands out, lowest first.
fn bulk_prefixes() -> Vec<String> {
    (1..=PREFIXES)
        .map(|i| format!("2001:db8:100::{i:x}/128"))
        .collect()
}

/// A started speaker.
struct Running {
    pids: Vec<u32>,
    /// The process that gets SIGTERM.
    bgp_pid: u32,
    started: SystemTime,
    /// Where its logs are, for messages.
    logs: Vec<PathBuf>,
}

fn main() {
    if !available()
        || !require("bird", "bird2")
        || !require("gobgpd", "gobgpd")
        || !require("/usr/lib/frr/bgpd", "frr")
    {
        return;
    }
    let runs = env_usize("FERROLB_BENCH_RUNS", 10);
    let bulk_runs = env_usize("FERROLB_BENCH_BULK_RUNS", 5);
    let load_before = loadavg();
    // For trying things out: `FERROLB_BENCH_SPEAKERS=frr,gobgp` runs only those (the
    // document is then not written).
    let only = std::env::var("FERROLB_BENCH_SPEAKERS").ok();
    let wanted = |k: Kind| {
        only.as_deref().is_none_or(|o| {
            o.split(',')
                .any(|w| w == k.tag() || k.label().to_lowercase().starts_with(w))
        })
    };
    let mut report = Report::default();
    for kind in [Kind::Ferrolb, Kind::Frr]
        .into_iter()
        .filter(|k| wanted(*k))
    {
        settle();
        report
            .starts
            .push((format!("{} link cut", kind.label()), load1()));
        let r = bfd_link_cut(kind, runs);
        report.cut.push((kind, r));
    }
    // The agent with its default flags runs last: its 10,000 `ip` commands load the
    // machine for a while.
    for kind in [Kind::FerrolbNoLocal, Kind::Frr, Kind::Gobgp, Kind::Ferrolb]
        .into_iter()
        .filter(|k| wanted(*k))
    {
        settle();
        report
            .starts
            .push((format!("{} 10,000 prefixes", kind.label()), load1()));
        let r = bulk(kind, bulk_runs);
        report.bulk.push((kind, r));
    }
    report.bulk.sort_by_key(|(k, _)| *k as u8);
    report.load = (load_before, loadavg());
    report.write(runs, bulk_runs, only.is_none());
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrolb-bench-bgp-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

/// A lab with the speaker host and `routers` BIRD routers, each with one neighbour: the
/// speaker, on IPv4 with BFD (link cut) or on IPv6 without.
fn build_lab(
    tag: &str,
    dir: &Path,
    routers: usize,
    bfd: bool,
) -> Result<(Lab, Vec<Router>), String> {
    let mut lab = Lab::new(tag).map_err(|e| e.to_string())?;
    lab.add_host(NODE, NODE_OCTET).map_err(|e| e.to_string())?;
    let mut started = Vec::new();
    for (name, octet, asn) in &ROUTERS[..routers] {
        lab.add_host(name, *octet).map_err(|e| e.to_string())?;
        let neighbor = if bfd {
            Neighbor {
                bfd: Some((100, 100)),
                ..Neighbor::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, NODE_OCTET)), OUR_AS)
            }
        } else {
            Neighbor::new(IpAddr::V6(v6(u16::from(NODE_OCTET))), OUR_AS)
        };
        let spec = RouterSpec {
            asn: *asn,
            router_id: Ipv4Addr::new(198, 51, 100, *octet),
            neighbors: vec![neighbor],
            hold_time: HOLD,
            originate: vec![],
        };
        let r = Router::start(&mut lab, RouterKind::Bird, name, &spec, &dir.join(name))
            .map_err(|e| e.to_string())?;
        started.push(r);
    }
    Ok((lab, started))
}

fn birdc(dir: &Path, router: &str) -> Result<Birdc, String> {
    Birdc::connect_retry(&dir.join(router).join("bird.ctl"), 10)
}

fn start_speaker(lab: &mut Lab, kind: Kind, setup: &Setup, dir: &Path) -> Result<Running, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    match kind {
        Kind::Ferrolb | Kind::FerrolbNoLocal => {
            let manifests = dir.join("manifests");
            std::fs::create_dir_all(&manifests).map_err(|e| e.to_string())?;
            write_manifests(&manifests, setup)?;
            let log = dir.join("ferrolb.log");
            let mut argv: Vec<String> = std::env::var("FERROLB_BENCH_WRAP")
                .map(|w| w.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            argv.extend([
                env!("CARGO_BIN_EXE_ferrolb").to_string(),
                "run".into(),
                "--manifests".into(),
                manifests.display().to_string(),
                "--node".into(),
                NODE.into(),
            ]);
            if kind == Kind::FerrolbNoLocal {
                argv.push("--no-local-routes".into());
            }
            let started = SystemTime::now();
            let pid = lab
                .spawn(NODE, &argv, Some(&log))
                .map_err(|e| e.to_string())?;
            Ok(Running {
                pids: vec![pid],
                bgp_pid: pid,
                started,
                logs: vec![log],
            })
        }
        Kind::Frr | Kind::Gobgp => {
            let spec = SpeakerSpec {
                asn: OUR_AS,
                router_id: Ipv4Addr::new(198, 51, 100, NODE_OCTET),
                neighbors: setup
                    .peers
                    .iter()
                    .map(|(a, asn)| Neighbor {
                        bfd: setup.bfd.then_some((100, 100)),
                        ..Neighbor::new(*a, *asn)
                    })
                    .collect(),
                hold_time: HOLD,
                prefixes: setup.prefixes.clone(),
                next_hop_v4: Ipv4Addr::new(198, 51, 100, NODE_OCTET),
                next_hop_v6: v6(u16::from(NODE_OCTET)),
            };
            let sk = if kind == Kind::Frr {
                SpeakerKind::Frr
            } else {
                SpeakerKind::Gobgp
            };
            let s = Speaker::start(lab, sk, NODE, &spec, dir).map_err(|e| e.to_string())?;
            let logs = ["bgpd.log", "bfdd.log", "zebra.log", "gobgpd.log"]
                .iter()
                .map(|f| s.dir().join(f))
                .filter(|p| p.exists())
                .collect();
            Ok(Running {
                pids: s.pids.clone(),
                bgp_pid: s.bgp_pid,
                started: s.started,
                logs,
            })
        }
    }
}

/// Stops every process of a speaker: SIGTERM to the BGP daemon first (unless done), then
/// the others; SIGKILL to what is still running after 10 s.
fn stop_speaker(lab: &mut Lab, r: &Running, termed: bool) {
    let order: Vec<u32> = std::iter::once(r.bgp_pid)
        .chain(r.pids.iter().copied().filter(|p| *p != r.bgp_pid))
        .collect();
    for (i, pid) in order.into_iter().enumerate() {
        if i > 0 || !termed {
            let _ = lab.signal(pid, "TERM");
        }
        if lab.wait(pid, Duration::from_secs(10)).is_err() {
            lab.kill(pid);
        }
    }
}

fn log_tail(r: &Running) -> String {
    let mut s = String::new();
    for log in &r.logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(15);
        let _ = writeln!(s, "--- {}", log.display());
        for l in &lines[from..] {
            let _ = writeln!(s, "{l}");
        }
    }
    s
}

/// The MetalLB manifests for ferrolb's agent: the node, a pool of exactly the announced
/// addresses, the peers (with a BFD profile), one advertisement, one Service per address.
fn write_manifests(dir: &Path, setup: &Setup) -> Result<(), String> {
    let mut y = String::new();
    let _ = write!(
        y,
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {NODE}}}\nstatus: {{addresses: [{{type: InternalIP, address: 198.51.100.{NODE_OCTET}}}, {{type: InternalIP, address: \"2001:db8::{NODE_OCTET}\"}}]}}\n---\n"
    );
    let (pool, family, services) = if setup.bfd {
        (BFD_PREFIX.to_string(), "IPv4", 1)
    } else {
        (
            format!("2001:db8:100::1-2001:db8:100::{PREFIXES:x}"),
            "IPv6",
            PREFIXES,
        )
    };
    let _ = write!(
        y,
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: bench, namespace: metallb-system}}\nspec: {{addresses: [\"{pool}\"]}}\n---\n"
    );
    if setup.bfd {
        y += "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: fast, namespace: metallb-system}\nspec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}\n---\n";
    }
    for (i, (addr, asn)) in setup.peers.iter().enumerate() {
        let bfd = if setup.bfd { ", bfdProfile: fast" } else { "" };
        let _ = write!(
            y,
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: peer{i}, namespace: metallb-system}}\nspec: {{myASN: {OUR_AS}, peerASN: {asn}, peerAddress: \"{addr}\", holdTime: {HOLD}s{bfd}}}\n---\n"
        );
    }
    y += "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: bench, namespace: metallb-system}\nspec: {ipAddressPools: [bench]}\n";
    std::fs::write(dir.join("metallb.yaml"), y).map_err(|e| e.to_string())?;
    let mut s = String::with_capacity(services * 200);
    for i in 0..services {
        let _ = write!(
            s,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i:05}, namespace: default}}\nspec: {{type: LoadBalancer, ipFamilyPolicy: SingleStack, ipFamilies: [{family}], ports: [{{port: 80}}]}}\n"
        );
    }
    std::fs::write(dir.join("services.yaml"), s).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------
// (a) link cut with BFD

/// Link cut to withdrawal, one value per successful run; an error if the speaker never
/// gets its route and BFD session up.
fn bfd_link_cut(kind: Kind, runs: usize) -> Result<Vec<Duration>, String> {
    let dir = bench_dir(&format!("cut-{}", kind.tag()));
    let (mut lab, routers) = build_lab(&format!("bc{}", kind.tag()), &dir, 1, true)?;
    let mut bird = birdc(&dir, "rtr1")?;
    let setup = Setup::bfd();
    let speaker = start_speaker(&mut lab, kind, &setup, &dir.join("speaker"))?;
    let node_v4 = IpAddr::V4(Ipv4Addr::new(198, 51, 100, NODE_OCTET));
    let ready = |lab: &Lab, bird: &mut Birdc, timeout: Duration| -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let route = routers[0].next_hops(lab, BFD_PREFIX) == [node_v4];
            let bfd = bird.bfd_up("198.51.100.11")?;
            if route && bfd {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let session = bird.established("peer0")?.is_some();
                return Err(if session {
                    format!(
                        "after {}s: BGP session up, route in rtr1's kernel table: {route}, BFD session up: {bfd}",
                        timeout.as_secs()
                    )
                } else {
                    format!("no BGP session with rtr1 within {} s", timeout.as_secs())
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    if let Err(e) = ready(&lab, &mut bird, SESSION_TIMEOUT) {
        let msg = format!("{}: {e}", kind.label());
        eprintln!("{msg}\n{}", log_tail(&speaker));
        return Err(e);
    }
    let mut out = Vec::new();
    for run in 1..=runs {
        // A speaker may back off for a while before it redials after the link comes back.
        if let Err(e) = ready(&lab, &mut bird, Duration::from_secs(150)) {
            eprintln!("{} link cut, run {run}: not ready: {e}", kind.label());
            break;
        }
        // Let BFD settle at its fast rate after a session came (back) up.
        std::thread::sleep(Duration::from_secs(2));
        match cut_once(&mut lab, &dir, run) {
            Ok(d) => {
                eprintln!("{} link cut, run {run}: {:.0} ms", kind.label(), ms(d));
                out.push(d);
            }
            Err(e) => eprintln!("{} link cut, run {run}: {e}", kind.label()),
        }
        lab.restore_link(NODE).map_err(|e| e.to_string())?;
    }
    stop_speaker(&mut lab, &speaker, false);
    Ok(out)
}

fn cut_once(lab: &mut Lab, dir: &Path, run: usize) -> Result<Duration, String> {
    let link_log = dir.join(format!("link-{run}.log"));
    let route_log = dir.join(format!("route-{run}.log"));
    let mon = |lab: &mut Lab, host: &str, what: &str, log: &Path| {
        lab.spawn(
            host,
            &["env", "TZ=UTC", "ip", "-ts", "monitor", what],
            Some(log),
        )
        .map_err(|e| e.to_string())
    };
    let m1 = mon(lab, NODE, "link", &link_log)?;
    let m2 = mon(lab, "rtr1", "route", &route_log)?;
    std::thread::sleep(Duration::from_millis(300));
    let called = wall();
    lab.cut_link(NODE).map_err(|e| e.to_string())?;
    let needle = format!("Deleted {}", BFD_PREFIX.trim_end_matches("/32"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut deleted = None;
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&route_log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains(&needle)) {
            deleted = stamp(l);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    lab.kill(m1);
    lab.kill(m2);
    let deleted = deleted.ok_or("the route was not withdrawn within 15 s")?;
    let links = std::fs::read_to_string(&link_log).unwrap_or_default();
    let cut = links
        .lines()
        .filter(|l| l.contains("eth0") && l.contains("NO-CARRIER"))
        .filter_map(stamp)
        .find(|t| *t >= called - 0.001)
        .unwrap_or_else(|| {
            eprintln!("no carrier loss seen on {NODE}: timing from the cut command instead");
            called
        });
    Ok(Duration::from_secs_f64((deleted - cut).max(0.0)))
}

/// The time of an `ip -ts monitor` line, `[2026-11-22T07:46:10.828150] ...`, in UTC.
fn stamp(line: &str) -> Option<f64> {
    let inner = line.strip_prefix('[')?.split(']').next()?;
    let (date, time) = inner.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, mi) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let s: f64 = t.next()?.parse().ok()?;
    let days = days_from_civil(y, m, dd);
    Some((days * 86400 + h * 3600 + mi * 60) as f64 + s)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------------------------------
// (b), (c), (d): 10,000 prefixes

#[derive(Default)]
struct Bulk {
    /// Established (BIRD's record) to all 10,000 in BIRD's table.
    from_established: Vec<Duration>,
    /// Speaker start (for GoBGP: the reload that adds the neighbour) to all 10,000.
    from_start: Vec<Duration>,
    /// Established to the first prefix in BIRD's table.
    first: Vec<Duration>,
    /// SIGTERM to none left.
    withdraw: Vec<Duration>,
    /// VmRSS and VmHWM summed over the speaker's processes, kB, and their names.
    memory: Option<(u64, u64, String)>,
    errors: Vec<String>,
}

fn bulk(kind: Kind, runs: usize) -> Result<Bulk, String> {
    let dir = bench_dir(&format!("bulk-{}", kind.tag()));
    let (mut lab, _routers) = build_lab(&format!("bb{}", kind.tag()), &dir, 2, false)?;
    let mut birds = [birdc(&dir, "rtr1")?, birdc(&dir, "rtr2")?];
    let mut b = Bulk::default();
    let one = Setup::bulk(1);
    for run in 1..=runs {
        let r = start_speaker(&mut lab, kind, &one, &dir.join(format!("speaker-{run}")))?;
        match converge(&mut birds[0], &r) {
            Ok((est, all, first)) => {
                eprintln!(
                    "{}, 10,000 prefixes, run {run}: Established -> all {:.0} ms, start -> all {:.0} ms",
                    kind.label(),
                    ms(est),
                    ms(all)
                );
                b.from_established.push(est);
                b.from_start.push(all);
                b.first.push(first);
            }
            Err(e) => {
                eprintln!("{}, run {run}: {e}\n{}", kind.label(), log_tail(&r));
                stop_speaker(&mut lab, &r, false);
                if b.from_established.is_empty() {
                    return Err(e);
                }
                b.errors.push(e);
                continue;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        let t = Instant::now();
        lab.signal(r.bgp_pid, "TERM").map_err(|e| e.to_string())?;
        let gone = wait_routes(&mut birds[0], |n| n == 0, Duration::from_secs(30));
        match gone {
            Ok(()) => {
                let d = t.elapsed();
                eprintln!("{}, SIGTERM, run {run}: {:.0} ms", kind.label(), ms(d));
                b.withdraw.push(d);
            }
            Err(e) => b.errors.push(format!("SIGTERM: {e}")),
        }
        stop_speaker(&mut lab, &r, true);
        // BIRD retries the session every second or two; let it settle.
        std::thread::sleep(Duration::from_secs(2));
    }
    // Memory: the same prefixes to both routers.
    let two = Setup::bulk(2);
    let r = start_speaker(&mut lab, kind, &two, &dir.join("speaker-memory"))?;
    let mut ok = true;
    for (bird, name) in birds.iter_mut().zip(["rtr1", "rtr2"]) {
        if let Err(e) = wait_routes(bird, |n| n == PREFIXES, Duration::from_secs(120)) {
            b.errors.push(format!("memory run: {name}: {e}"));
            ok = false;
        }
    }
    if ok {
        std::thread::sleep(Duration::from_secs(2));
        b.memory = Some(memory(&r.pids));
        if let Ok(s) = std::env::var("FERROLB_BENCH_PAUSE_S") {
            eprintln!("memory run: pid {} paused for {s} s", r.bgp_pid);
            std::thread::sleep(Duration::from_secs(s.parse().unwrap_or(0)));
        }
    }
    stop_speaker(&mut lab, &r, false);
    Ok(b)
}

/// Waits for the session and all prefixes at BIRD; returns (Established to all, start to
/// all, Established to the first prefix).
fn converge(bird: &mut Birdc, r: &Running) -> Result<(Duration, Duration, Duration), String> {
    let deadline = Instant::now() + SESSION_TIMEOUT;
    let est_line = loop {
        if let Some(line) = bird.established("peer0")? {
            break line;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no BGP session with rtr1 within {} s of the start",
                SESSION_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(POLL);
    };
    let polled_est = wall();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut first = None;
    let all = loop {
        let n = bird.routes("peer0")?;
        if n > 0 && first.is_none() {
            first = Some(wall());
        }
        if n >= PREFIXES {
            break wall();
        }
        if Instant::now() >= deadline {
            return Err(format!("rtr1 holds {n} of {PREFIXES} prefixes after 120 s"));
        }
        std::thread::sleep(POLL);
    };
    // BIRD's own record of the state change, in ms, when it is plausible; else the poll.
    let est = since(&est_line)
        .filter(|t| (polled_est - t).abs() < 2.0)
        .unwrap_or(polled_est);
    let start = secs(r.started);
    eprintln!(
        "  start +{:.0} ms: Established (BIRD's record; polled +{:.0} ms), first prefix +{:.0} ms, all +{:.0} ms",
        (est - start) * 1000.0,
        (polled_est - start) * 1000.0,
        (first.unwrap_or(all) - start) * 1000.0,
        (all - start) * 1000.0
    );
    Ok((
        Duration::from_secs_f64((all - est).max(0.0)),
        Duration::from_secs_f64((all - start).max(0.0)),
        Duration::from_secs_f64((first.unwrap_or(all) - est).max(0.0)),
    ))
}

fn wait_routes(
    bird: &mut Birdc,
    done: impl Fn(usize) -> bool,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let n = bird.routes("peer0")?;
        if done(n) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{n} routes after {timeout:?}"));
        }
        std::thread::sleep(POLL);
    }
}

/// The "Since" column of a `show protocols` line (`HH:MM:SS.mmm`, local time = UTC here),
/// as seconds since the epoch, taking today's date.
fn since(line: &str) -> Option<f64> {
    let word = line
        .split_whitespace()
        .find(|w| w.len() == 12 && w.as_bytes()[2] == b':' && w.as_bytes()[8] == b'.')?;
    let mut t = word.split(':');
    let h: f64 = t.next()?.parse().ok()?;
    let m: f64 = t.next()?.parse().ok()?;
    let s: f64 = t.next()?.parse().ok()?;
    let now = wall();
    let midnight = (now / 86400.0).floor() * 86400.0;
    let mut at = midnight + h * 3600.0 + m * 60.0 + s;
    if at > now + 3600.0 {
        at -= 86400.0;
    }
    Some(at)
}

/// VmRSS and VmHWM (kB) summed over `pids`, and the processes' names.
fn memory(pids: &[u32]) -> (u64, u64, String) {
    let (mut rss, mut hwm, mut names) = (0, 0, Vec::new());
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |k: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        rss += field("VmRSS:");
        hwm += field("VmHWM:");
        if let Some(n) = status.lines().find_map(|l| l.strip_prefix("Name:")) {
            names.push(n.trim().to_string());
        }
    }
    (rss, hwm, names.join(" + "))
}

// ---------------------------------------------------------------------------------------
// Report

#[derive(Default)]
struct Report {
    cut: Vec<(Kind, Result<Vec<Duration>, String>)>,
    bulk: Vec<(Kind, Result<Bulk, String>)>,
    load: (String, String),
    /// The 1-minute load average as each speaker's scenario began.
    starts: Vec<(String, f64)>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn wall() -> f64 {
    secs(SystemTime::now())
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Waits (up to three minutes) for the 1-minute load average to fall below 1, so that a
/// scenario does not start in the wake of the previous one or of someone's build.
fn settle() {
    let deadline = Instant::now() + Duration::from_secs(180);
    while load1() >= 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(5));
    }
}

fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
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
    format!("{median:.0} / {:.0} ({n})", s[n - 1])
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

fn unavailable(kind: Kind, e: &str) -> String {
    if matches!(kind, Kind::Ferrolb | Kind::FerrolbNoLocal) {
        format!("not available: {e} (agent at commit {})", commit())
    } else {
        format!("failed: {e}")
    }
}

fn loading(kind: Kind) -> &'static str {
    match kind {
        Kind::Ferrolb | Kind::FerrolbNoLocal => {
            "10,000 LoadBalancer Services + a 10,000-address pool in the manifest directory"
        }
        Kind::Frr => "10,000 `network` statements in frr.conf",
        Kind::Gobgp => {
            "injected from an MRT file into the global RIB, then the neighbour added (SIGHUP reload)"
        }
    }
}

impl Report {
    fn write(&self, runs: usize, bulk_runs: usize, to_doc: bool) {
        let mut t = format!(
            "Measured on {} (UTC) on this machine kind (2 cores); load average (1, 5, 15 min) {} before \
             and {} after the run. Median / max in ms, successful runs in parentheses.\n\n",
            date(),
            self.load.0,
            self.load.1
        );
        // The load after a scenario includes the bench's own processes (BIRD, FRR, the
        // agent's `ip` commands): what tells whether others were busy is the load as each
        // scenario began.
        let starts: Vec<String> = self
            .starts
            .iter()
            .map(|(what, l)| format!("{what} {l:.2}"))
            .collect();
        t += &format!(
            "1-minute load average as each scenario began (the bench's own processes raise it as it runs): {}.\n\n",
            starts.join(", ")
        );
        if self.starts.iter().any(|(_, l)| *l > 1.5) {
            t += "**Taken on a busy machine (1-minute load above 1.5 as a scenario began): not final numbers.**\n\n";
        }
        t += &format!(
            "**Link cut, BFD 100 ms x 3** ({runs} runs): speaker's carrier lost → route deleted from the router's kernel table.\n\n"
        );
        t += "| speaker | router | link cut → route withdrawn |\n|---|---|---|\n";
        for (kind, r) in &self.cut {
            let cell = match r {
                Ok(v) if !v.is_empty() => stats(v),
                Ok(_) => unavailable(*kind, "no run succeeded"),
                Err(e) => unavailable(*kind, e),
            };
            t += &format!("| {} | BIRD 2.0.12 | {cell} |\n", kind.label());
        }
        t += &format!(
            "\n**10,000 IPv6 /128 prefixes** ({bulk_runs} runs, one peer: BIRD 2.0.12), then SIGTERM; memory with the same prefixes sent to two BIRD peers.\n\n"
        );
        t += "| speaker | prefixes loaded as | Established → 10,000 at BIRD | (of which Established → first prefix) | start → 10,000 at BIRD | SIGTERM → 0 at BIRD | VmRSS / VmHWM, 2 peers (processes) |\n|---|---|---|---|---|---|---|\n";
        for (kind, r) in &self.bulk {
            match r {
                Ok(b) => {
                    let mem = b
                        .memory
                        .as_ref()
                        .map(|(rss, hwm, names)| format!("{} / {} ({names})", mib(*rss), mib(*hwm)))
                        .unwrap_or_else(|| "-".into());
                    let start = if *kind == Kind::Gobgp {
                        format!("{} (from the reload)", stats(&b.from_start))
                    } else {
                        stats(&b.from_start)
                    };
                    t += &format!(
                        "| {} | {} | {} | {} | {start} | {} | {mem} |\n",
                        kind.label(),
                        loading(*kind),
                        stats(&b.from_established),
                        stats(&b.first),
                        stats(&b.withdraw)
                    );
                }
                Err(e) => {
                    let cell = unavailable(*kind, e);
                    t += &format!(
                        "| {} | {} | {cell} | - | - | - | - |\n",
                        kind.label(),
                        loading(*kind)
                    );
                }
            }
        }
        let errors: Vec<String> = self
            .bulk
            .iter()
            .filter_map(|(k, r)| Some((k, r.as_ref().ok()?)))
            .flat_map(|(k, b)| b.errors.iter().map(move |e| format!("{}: {e}", k.label())))
            .collect();
        if !errors.is_empty() {
            t += "\nFailed runs (left out above):\n\n";
            for e in errors {
                t += &format!("- {e}\n");
            }
        }
        println!("{t}");
        if !to_doc {
            return;
        }
        self.write_json();
        let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
        let (begin, end) = ("<!-- bgp:begin -->", "<!-- bgp:end -->");
        let current = std::fs::read_to_string(&doc).unwrap_or_else(|_| "# Benchmarks\n".into());
        let section = format!("{begin}\n{t}{end}");
        let updated = match (current.find(begin), current.find(end)) {
            (Some(b), Some(e)) if e > b => {
                format!("{}{section}{}", &current[..b], &current[e + end.len()..])
            }
            _ => format!(
                "{}\n\n## BGP\n\nReproduce: `cargo bench -p ferrolb --bench bgp` (as root).\n\n{section}\n",
                current.trim_end()
            ),
        };
        std::fs::write(&doc, updated).expect("write docs/benchmarks.md");
    }

    /// docs/data/bgp.json, read by scripts/plots: one row per scenario and speaker with
    /// every run in `ms` (memory rows carry `mb`, failed ones `error`).
    fn write_json(&self) {
        let list = |v: &[Duration]| {
            v.iter()
                .map(|d| format!("{:.1}", ms(*d)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let row = |scenario: &str, kind: Kind, body: String| {
            format!(
                "{{\"scenario\":{},\"speaker\":{},{body}}}",
                quote(scenario),
                quote(kind.label())
            )
        };
        let mut rows = Vec::new();
        for (kind, r) in &self.cut {
            let scenario = "link cut → route withdrawn (BFD 100 ms x 3)";
            rows.push(match r {
                Ok(v) => row(scenario, *kind, format!("\"ms\":[{}]", list(v))),
                Err(e) => row(scenario, *kind, format!("\"error\":{}", quote(e))),
            });
        }
        for (kind, r) in &self.bulk {
            let timed = [
                "Established → 10,000 prefixes at BIRD",
                "SIGTERM → 10,000 withdrawn at BIRD",
            ];
            match r {
                Ok(b) => {
                    rows.push(row(
                        timed[0],
                        *kind,
                        format!("\"ms\":[{}]", list(&b.from_established)),
                    ));
                    rows.push(row(
                        timed[1],
                        *kind,
                        format!("\"ms\":[{}]", list(&b.withdraw)),
                    ));
                    rows.push(row(
                        "speaker start → 10,000 prefixes at BIRD",
                        *kind,
                        format!("\"start_ms\":[{}]", list(&b.from_start)),
                    ));
                    if let Some((rss, hwm, names)) = &b.memory {
                        rows.push(row(
                            "memory, 10,000 prefixes to two peers",
                            *kind,
                            format!(
                                "\"mb\":{:.1},\"hwm_mb\":{:.1},\"processes\":{}",
                                *rss as f64 / 1024.0,
                                *hwm as f64 / 1024.0,
                                quote(names)
                            ),
                        ));
                    }
                }
                Err(e) => {
                    for scenario in timed {
                        rows.push(row(scenario, *kind, format!("\"error\":{}", quote(e))));
                    }
                }
            }
        }
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/data");
        let _ = std::fs::create_dir_all(&out);
        let _ = std::fs::write(
            out.join("bgp.json"),
            format!("[\n{}\n]\n", rows.join(",\n")),
        );
    }
}

fn commit() -> String {
    std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
