//! Soak test of the membership under CPU load and packet loss, in the network lab.
//!
//! Runs 3-5 lab hosts, each a separate process of this program running the transport,
//! keeps both cores busy with `yes` processes started through the lab, optionally drops
//! a share of every host's packets, and counts false "down" events (no host fails, so
//! every down event is false). Needs root (the lab uses network namespaces).
//!
//! ```text
//! cargo build --release -p ferrolb-membership --example soak
//! sudo target/release/examples/soak --duration 10m                 # load only
//! sudo target/release/examples/soak --duration 10m --loss 5         # load and 5 % loss
//! sudo target/release/examples/soak --hosts 5 --profile conservative --duration 2m
//! ```
//!
//! Exit status 1 when any false down event was seen.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use ferrolb_lab::Lab;
use ferrolb_membership::{Config, DEFAULT_PORT, Event, Membership, Timing};

#[derive(Parser, Debug)]
#[command(about = "Soak the membership under CPU load and packet loss in the network lab")]
struct Args {
    /// Lab hosts (3-5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=5))]
    hosts: u8,
    /// How long to run after the cluster formed: 90s, 2m, 10m, 1h.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// Percentage of every host's outgoing packets to drop (0 = none).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    loss: u8,
    /// CPU hogs (`yes > /dev/null`) to start; default twice the number of cores.
    #[arg(long)]
    load: Option<usize>,
    /// Timing profile: default or conservative.
    #[arg(long, default_value = "default")]
    profile: String,
    /// Lab tag (namespaces are named fl<tag>-...).
    #[arg(long, default_value = "mbsoak")]
    tag: String,
    /// Internal: run one membership node (used by the soak itself).
    #[arg(long, hide = true)]
    node: Option<String>,
    /// Internal: the node's address.
    #[arg(long, hide = true)]
    addr: Option<SocketAddr>,
    /// Internal: the seeds, comma-separated.
    #[arg(long, hide = true, value_delimiter = ',')]
    seeds: Vec<SocketAddr>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("bad duration unit in {s:?} (s, m or h)")),
    };
    Ok(Duration::from_secs(secs))
}

fn wall_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn main() {
    let args = Args::parse();
    if let Some(name) = args.node.clone() {
        run_node(&name, &args);
        return;
    }
    std::process::exit(run_soak(&args));
}

/// One node: prints `EVENT <wall ms> <event>` and every 5 s `STATS <wall ms> ...`.
fn run_node(name: &str, args: &Args) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let addr = args.addr.expect("--addr");
        let mut config = Config::new(name, addr);
        config.seeds = args.seeds.clone();
        config.secrets = vec![b"soak secret".to_vec()];
        config.timing = Timing::profile(&args.profile).expect("profile");
        let m = Membership::start(config).await.expect("start");
        let mut events = m.events();
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Ok(e) => println!("EVENT {} {}", wall_ms(), describe(&e)),
                    Err(e) => println!("LAGGED {} {e}", wall_ms()),
                },
                _ = tick.tick() => {
                    let s = m.stats();
                    println!(
                        "STATS {} members={} alive={} suspect={} dead={} sent={} received={} dropped={} suspicions={} refutations={} void={} health={}",
                        wall_ms(), m.members().borrow().len(), s.members_alive, s.members_suspect,
                        s.members_dead, s.packets_sent, s.packets_received, s.dropped(),
                        s.core.suspicions, s.core.refutations, s.core.probes_void, s.core.local_health
                    );
                }
            }
        }
    });
}

fn describe(e: &Event) -> String {
    match e {
        Event::Up { name, .. } => format!("up {name}"),
        Event::Down { name, reason } => format!("down {name} {reason}"),
        Event::Suspected { name } => format!("suspected {name}"),
        Event::Refuted { name } => format!("refuted {name}"),
    }
}

#[derive(Default, Debug)]
struct Tally {
    downs: Vec<String>,
    suspected: usize,
    refuted: usize,
    last_stats: String,
}

fn tally(log: &PathBuf, since: u128) -> Tally {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut t = Tally::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let kind = parts.next().unwrap_or("");
        let when: u128 = parts.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let rest: Vec<&str> = parts.collect();
        match kind {
            "STATS" => t.last_stats = rest.join(" "),
            "EVENT" if when >= since => match rest.first().copied() {
                Some("down") => t.downs.push(rest.join(" ")),
                Some("suspected") => t.suspected += 1,
                Some("refuted") => t.refuted += 1,
                _ => {}
            },
            _ => {}
        }
    }
    t
}

fn run_soak(args: &Args) -> i32 {
    if !ferrolb_lab::available() {
        return 0;
    }
    if Timing::profile(&args.profile).is_err() {
        eprintln!("unknown profile {:?}", args.profile);
        return 2;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let load = args.load.unwrap_or(2 * cores);
    let names: Vec<String> = (1..=args.hosts).map(|i| format!("n{i}")).collect();
    let mut lab = Lab::new(&args.tag).expect("lab");
    let mut addrs = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        let h = lab.add_host(n, 21 + i as u8).expect("host");
        addrs.insert(n.clone(), SocketAddr::from((h.ipv4, DEFAULT_PORT)));
    }
    for i in 0..load {
        let host = &names[i % names.len()];
        lab.spawn(host, &["yes"], None).expect("load");
    }
    eprintln!(
        "soak: {} hosts, profile {}, {} CPU hogs on {cores} cores, {} % loss, {:?}",
        args.hosts, args.profile, load, args.loss, args.duration
    );
    let exe = std::env::current_exe().expect("own path");
    let dir = std::env::temp_dir().join(format!("ferrolb-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    let seeds = addrs
        .values()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut logs = BTreeMap::new();
    for n in &names {
        let log = dir.join(format!("{n}.log"));
        let argv = [
            exe.to_string_lossy().into_owned(),
            "--node".into(),
            n.clone(),
            "--addr".into(),
            addrs[n].to_string(),
            "--seeds".into(),
            seeds.clone(),
            "--profile".into(),
            args.profile.clone(),
        ];
        lab.spawn(n, &argv, Some(&log)).expect("node");
        logs.insert(n.clone(), log);
    }
    // Formed: every node logged an "up" for every other.
    let formed = Instant::now();
    loop {
        let all_up = logs.values().all(|log| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            text.lines().filter(|l| l.contains(" up ")).count() >= names.len() - 1
        });
        if all_up {
            break;
        }
        if formed.elapsed() > Duration::from_secs(20) {
            eprintln!("soak: the cluster did not form within 20 s; logs in {dir:?}");
            return 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("soak: cluster formed in {:?}", formed.elapsed());
    if args.loss > 0 {
        for n in &names {
            lab.loss(n, args.loss).expect("loss");
        }
    }
    let since = wall_ms();
    let start = Instant::now();
    while start.elapsed() < args.duration {
        std::thread::sleep(
            Duration::from_secs(10).min(args.duration.saturating_sub(start.elapsed())),
        );
        let downs: usize = logs.values().map(|l| tally(l, since).downs.len()).sum();
        let suspected: usize = logs.values().map(|l| tally(l, since).suspected).sum();
        eprintln!(
            "soak: {:>4}s  false downs {downs}  suspicions {suspected}",
            start.elapsed().as_secs()
        );
    }
    let elapsed = start.elapsed();
    let _ = lab.heal();
    let mut false_downs = 0;
    let mut suspected = 0;
    let mut refuted = 0;
    for (n, log) in &logs {
        let t = tally(log, since);
        false_downs += t.downs.len();
        suspected += t.suspected;
        refuted += t.refuted;
        eprintln!(
            "soak: {n}: {} false downs {:?}, {} suspicions, {} refuted; last {}",
            t.downs.len(),
            t.downs,
            t.suspected,
            t.refuted,
            t.last_stats
        );
    }
    let node_hours = elapsed.as_secs_f64() * f64::from(args.hosts) / 3600.0;
    println!(
        "RESULT hosts={} profile={} load={} loss={}% duration={}s false_downs={} suspicions={} refuted={} false_downs_per_node_hour={:.2} suspicions_per_node_hour={:.1}",
        args.hosts,
        args.profile,
        load,
        args.loss,
        elapsed.as_secs(),
        false_downs,
        suspected,
        refuted,
        false_downs as f64 / node_hours,
        suspected as f64 / node_hours
    );
    let _ = std::fs::remove_dir_all(&dir);
    i32::from(false_downs > 0)
}
