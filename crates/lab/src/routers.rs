//! Real BGP routers on lab hosts: BIRD 2, FRR 8 (zebra + bgpd + bfdd) and GoBGP 3, each
//! started with its own files under a directory the caller gives, so several run side
//! by side. They are the peers ferrolb's BGP speaker is tested against.
//!
//! Each router imports what its neighbours announce and installs it in its host's kernel
//! table (BIRD and FRR; GoBGP keeps routes in its RIB only), with ECMP across neighbours.
//! A neighbour in the router's own AS is internal (iBGP). Tests read a route's paths from
//! the router's RIB ([`Router::rib`]: next hop, AS path, LOCAL_PREF, communities), ask for
//! a route refresh ([`Router::refresh_in`]) and restart the daemons ([`Router::restart`]).
//! Pitfalls handled (see shared/reference/lab-notes.md): BIRD's slow default retry
//! timers, eBGP filters and `merge paths`; FRR's per-daemon paths and
//! `no bgp ebgp-requires-policy`; ICMP redirects off on the router.

use crate::{Lab, LabError};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// One neighbour of a router.
#[derive(Clone, Debug)]
pub struct Neighbor {
    /// Its address.
    pub address: IpAddr,
    /// Its AS number.
    pub asn: u32,
    /// TCP-MD5 password.
    pub password: Option<String>,
    /// BFD with this receive/transmit interval (ms) and multiplier.
    pub bfd: Option<(u32, u32)>,
    /// eBGP more than one hop away.
    pub multihop: bool,
}

impl Neighbor {
    /// A plain neighbour.
    pub fn new(address: IpAddr, asn: u32) -> Neighbor {
        Neighbor {
            address,
            asn,
            password: None,
            bfd: None,
            multihop: false,
        }
    }
}

/// A router's settings.
#[derive(Clone, Debug)]
pub struct RouterSpec {
    /// Its AS number.
    pub asn: u32,
    /// Its BGP identifier.
    pub router_id: Ipv4Addr,
    /// Its neighbours.
    pub neighbors: Vec<Neighbor>,
    /// Hold time it offers, in seconds.
    pub hold_time: u16,
    /// Prefixes it originates (for tests of the harness itself).
    pub originate: Vec<String>,
}

/// Which implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterKind {
    /// BIRD 2.
    Bird,
    /// FRR 8.
    Frr,
    /// GoBGP 3.
    Gobgp,
}

/// A running router.
#[derive(Debug)]
pub struct Router {
    /// The implementation.
    pub kind: RouterKind,
    /// The lab host it runs on.
    pub host: String,
    dir: PathBuf,
    /// The daemons' process IDs (the lab kills them when dropped).
    pub pids: Vec<u32>,
    spec: RouterSpec,
}

/// One path of a route in a router's BGP table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RibPath {
    /// Its next hop.
    pub next_hop: Option<IpAddr>,
    /// The AS numbers of its AS_PATH, in order (empty for a route from an internal peer
    /// that originated it).
    pub as_path: Vec<u32>,
    /// LOCAL_PREF, when the router shows one (internal routes).
    pub local_pref: Option<u32>,
    /// Standard communities as `asn:value`.
    pub communities: Vec<String>,
    /// Large communities as `global:local1:local2`.
    pub large_communities: Vec<String>,
}

impl Router {
    /// Starts `kind` on `host` with `spec`, its files in `dir` (created).
    pub fn start(
        lab: &mut Lab,
        kind: RouterKind,
        host: &str,
        spec: &RouterSpec,
        dir: &Path,
    ) -> Result<Router, LabError> {
        std::fs::create_dir_all(dir).map_err(|source| LabError::Spawn {
            command: format!("mkdir {}", dir.display()),
            source,
        })?;
        // A router on the clients' segment must not redirect them around itself.
        for key in [
            "net.ipv4.conf.all.send_redirects=0",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ] {
            lab.exec_ok(host, &["sysctl", "-qw", key])?;
        }
        let mut r = Router {
            kind,
            host: host.into(),
            dir: dir.into(),
            pids: Vec::new(),
            spec: spec.clone(),
        };
        r.launch(lab)?;
        Ok(r)
    }

    fn launch(&mut self, lab: &mut Lab) -> Result<(), LabError> {
        let spec = self.spec.clone();
        match self.kind {
            RouterKind::Bird => self.start_bird(lab, &spec),
            RouterKind::Frr => self.start_frr(lab, &spec),
            RouterKind::Gobgp => self.start_gobgp(lab, &spec),
        }
    }

    /// Kills the router's daemons (SIGKILL: the kernel closes their TCP sessions, so peers
    /// see the connections drop) and starts them again with the same settings. The
    /// router's BGP table starts empty.
    pub fn restart(&mut self, lab: &mut Lab) -> Result<(), LabError> {
        for pid in std::mem::take(&mut self.pids) {
            lab.kill(pid);
        }
        // Control sockets and pid files of the killed daemons.
        for name in ["bird.ctl", "bird.pid", "zserv.api", "bfdd.sock"] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        if let Ok(entries) = std::fs::read_dir(self.dir.join("vty")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        self.launch(lab)
    }

    /// Asks the router to re-import what `neighbor` announced: BIRD `reload in`, FRR
    /// `clear bgp ... soft in`, GoBGP `softresetin`. A router without a copy of what it
    /// received sends the neighbour a ROUTE-REFRESH (RFC 2918).
    pub fn refresh_in(&self, lab: &Lab, neighbor: IpAddr) -> Result<(), LabError> {
        match self.kind {
            RouterKind::Bird => {
                let i = self
                    .spec
                    .neighbors
                    .iter()
                    .position(|n| n.address == neighbor)
                    .ok_or_else(|| LabError::Invalid(format!("no neighbour {neighbor}")))?;
                lab.exec_ok(
                    &self.host,
                    &[
                        "birdc",
                        "-s",
                        &self.file("bird.ctl"),
                        "reload",
                        "in",
                        &format!("peer{i}"),
                    ],
                )?;
            }
            RouterKind::Frr => {
                let family = if neighbor.is_ipv4() { "ipv4" } else { "ipv6" };
                self.vtysh(
                    lab,
                    &format!("clear bgp {family} unicast {neighbor} soft in"),
                )?;
            }
            RouterKind::Gobgp => {
                lab.exec_ok(
                    &self.host,
                    &["gobgp", "neighbor", &neighbor.to_string(), "softresetin"],
                )?;
            }
        }
        Ok(())
    }

    fn vtysh(&self, lab: &Lab, command: &str) -> Result<String, LabError> {
        let out = lab.exec_ok(
            &self.host,
            &["vtysh", "--vty_socket", &self.file("vty"), "-c", command],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The router's own view of `prefix` (for failure messages): BIRD `show route ...
    /// all`, FRR `show bgp ... json`, GoBGP `global rib ... -j`.
    pub fn rib_text(&self, lab: &Lab, prefix: &str) -> String {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let out = match self.kind {
            RouterKind::Bird => lab.exec(
                &self.host,
                &[
                    "birdc",
                    "-s",
                    &self.file("bird.ctl"),
                    "show",
                    "route",
                    prefix,
                    "all",
                ],
            ),
            RouterKind::Frr => lab.exec(
                &self.host,
                &[
                    "vtysh",
                    "--vty_socket",
                    &self.file("vty"),
                    "-c",
                    &format!("show bgp {family} unicast {prefix} json"),
                ],
            ),
            RouterKind::Gobgp => lab.exec(
                &self.host,
                &["gobgp", "global", "rib", "-a", family, prefix, "-j"],
            ),
        };
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The paths to `prefix` (exactly) in the router's BGP table: one per neighbour that
    /// announced it; empty when it has none.
    pub fn rib(&self, lab: &Lab, prefix: &str) -> Vec<RibPath> {
        let text = self.rib_text(lab, prefix);
        let mut paths = match self.kind {
            RouterKind::Bird => parse_bird_routes(&text),
            RouterKind::Frr => parse_frr_json(&text),
            RouterKind::Gobgp => parse_gobgp_json(&text, prefix),
        };
        paths.sort_by_key(|p| p.next_hop);
        paths
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) -> Result<(), LabError> {
        std::fs::write(self.dir.join(name), text).map_err(|source| LabError::Spawn {
            command: format!("write {name}"),
            source,
        })
    }

    fn start_bird(&mut self, lab: &mut Lab, spec: &RouterSpec) -> Result<(), LabError> {
        let mut c = String::new();
        let _ = writeln!(c, "router id {};", spec.router_id);
        c += "protocol device { scan time 1; }\n";
        c += "protocol direct { ipv4; ipv6; interface \"eth0\"; }\n";
        for family in ["ipv4", "ipv6"] {
            let _ = writeln!(
                c,
                "protocol kernel {{ {family} {{ export where source = RTS_BGP; }}; merge paths on; learn; }}"
            );
        }
        if !spec.originate.is_empty() {
            c += "protocol static {\n  ipv4;\n";
            for p in spec.originate.iter().filter(|p| !p.contains(':')) {
                let _ = writeln!(c, "  route {p} blackhole;");
            }
            c += "}\n";
        }
        if spec.neighbors.iter().any(|n| n.bfd.is_some()) {
            let (rx, tx) = spec
                .neighbors
                .iter()
                .find_map(|n| n.bfd)
                .unwrap_or((300, 300));
            let _ = writeln!(
                c,
                "protocol bfd {{ interface \"*\" {{ min rx interval {rx} ms; min tx interval {tx} ms; multiplier 3; }}; }}"
            );
        }
        for (i, n) in spec.neighbors.iter().enumerate() {
            let _ = writeln!(c, "protocol bgp peer{i} {{");
            let _ = writeln!(
                c,
                "  local as {};\n  neighbor {} as {};",
                spec.asn, n.address, n.asn
            );
            let _ = writeln!(
                c,
                "  hold time {};\n  connect retry time 1;\n  error wait time 1, 2;",
                spec.hold_time
            );
            // BIRD keeps a dead peer's routes for two minutes with graceful restart on.
            c += "  graceful restart off;\n";
            if let Some(pw) = &n.password {
                let _ = writeln!(c, "  password \"{pw}\";");
            }
            if n.bfd.is_some() {
                c += "  bfd on;\n";
            }
            if n.multihop {
                c += "  multihop;\n";
            }
            let export = if spec.originate.is_empty() {
                "none"
            } else {
                "where source = RTS_STATIC"
            };
            let family = if n.address.is_ipv4() { "ipv4" } else { "ipv6" };
            let _ = writeln!(c, "  {family} {{ import all; export {export}; }};");
            c += "}\n";
        }
        self.write("bird.conf", &c)?;
        let argv = [
            "bird",
            "-f",
            "-c",
            &self.file("bird.conf"),
            "-s",
            &self.file("bird.ctl"),
            "-P",
            &self.file("bird.pid"),
        ];
        let pid = lab.spawn(&self.host, &argv, Some(&self.dir.join("bird.log")))?;
        self.pids.push(pid);
        Ok(())
    }

    fn start_frr(&mut self, lab: &mut Lab, spec: &RouterSpec) -> Result<(), LabError> {
        let mut c = String::new();
        c += "frr defaults traditional\nhostname lab\nlog stdout\n";
        let _ = writeln!(
            c,
            "router bgp {}\n bgp router-id {}\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax",
            spec.asn, spec.router_id
        );
        let _ = writeln!(
            c,
            " timers bgp {} {}",
            (spec.hold_time / 3).max(1),
            spec.hold_time
        );
        for n in &spec.neighbors {
            let _ = writeln!(
                c,
                " neighbor {} remote-as {}\n neighbor {} timers connect 1",
                n.address, n.asn, n.address
            );
            if let Some(pw) = &n.password {
                let _ = writeln!(c, " neighbor {} password {pw}", n.address);
            }
            if n.bfd.is_some() {
                let _ = writeln!(c, " neighbor {} bfd profile lab", n.address);
            }
            if n.multihop {
                let _ = writeln!(c, " neighbor {} ebgp-multihop 2", n.address);
            }
        }
        for family in ["ipv4", "ipv6"] {
            let _ = writeln!(
                c,
                " address-family {family} unicast\n  maximum-paths 16\n  maximum-paths ibgp 16"
            );
            for n in spec
                .neighbors
                .iter()
                .filter(|n| n.address.is_ipv4() == (family == "ipv4"))
            {
                let _ = writeln!(c, "  neighbor {} activate", n.address);
            }
            for p in spec
                .originate
                .iter()
                .filter(|p| p.contains(':') == (family == "ipv6"))
            {
                let _ = writeln!(c, "  network {p}");
            }
            c += " exit-address-family\n";
        }
        if let Some((rx, tx)) = spec.neighbors.iter().find_map(|n| n.bfd) {
            let _ = writeln!(
                c,
                "bfd\n profile lab\n  receive-interval {rx}\n  transmit-interval {tx}\n  detect-multiplier 3\n exit\nexit"
            );
        }
        for p in spec.originate.iter().filter(|p| !p.contains(':')) {
            let _ = writeln!(c, "ip route {p} blackhole");
        }
        self.write("frr.conf", &c)?;
        let vty = self.dir.join("vty");
        std::fs::create_dir_all(&vty).map_err(|source| LabError::Spawn {
            command: "mkdir vty".into(),
            source,
        })?;
        // The daemons drop to user frr: their files must be theirs.
        let dir_s = self.dir.display().to_string();
        crate::run("chown", ["-R", "frr:frr", &dir_s])?;
        let zsock = self.file("zserv.api");
        let vty_s = vty.display().to_string();
        let conf = self.file("frr.conf");
        for daemon in ["zebra", "bfdd", "bgpd"] {
            let bin = format!("/usr/lib/frr/{daemon}");
            let pidfile = self.file(&format!("{daemon}.pid"));
            let mut argv = vec![
                bin,
                "-f".into(),
                conf.clone(),
                "-i".into(),
                pidfile,
                "-z".into(),
                zsock.clone(),
            ];
            argv.extend([
                "--vty_socket".into(),
                vty_s.clone(),
                "-P".into(),
                "0".into(),
            ]);
            if daemon == "bfdd" {
                argv.extend(["--bfdctl".into(), self.file("bfdd.sock")]);
            }
            let pid = lab.spawn(
                &self.host,
                &argv,
                Some(&self.dir.join(format!("{daemon}.log"))),
            )?;
            self.pids.push(pid);
            // zebra must be listening before the others connect to it.
            std::thread::sleep(std::time::Duration::from_millis(if daemon == "zebra" {
                500
            } else {
                100
            }));
        }
        Ok(())
    }

    fn start_gobgp(&mut self, lab: &mut Lab, spec: &RouterSpec) -> Result<(), LabError> {
        let mut c = String::new();
        let _ = writeln!(
            c,
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = 179",
            spec.asn, spec.router_id
        );
        c += "[global.use-multiple-paths.config]\n  enabled = true\n";
        for n in &spec.neighbors {
            let _ = writeln!(
                c,
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
                n.address, n.asn
            );
            if let Some(pw) = &n.password {
                let _ = writeln!(c, "    auth-password = \"{pw}\"");
            }
            let _ = writeln!(
                c,
                "  [neighbors.timers.config]\n    hold-time = {}\n    keepalive-interval = {}\n    connect-retry = 1",
                spec.hold_time,
                (spec.hold_time / 3).max(1)
            );
            if n.multihop {
                c += "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = 2\n";
            }
            let family = if n.address.is_ipv4() {
                "ipv4-unicast"
            } else {
                "ipv6-unicast"
            };
            let _ = writeln!(
                c,
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\""
            );
        }
        self.write("gobgpd.toml", &c)?;
        let argv = [
            "gobgpd",
            "-f",
            &self.file("gobgpd.toml"),
            "-t",
            "toml",
            "--api-hosts",
            &format!("127.0.0.1:{}", 50051),
            "--pprof-disable",
        ];
        let pid = lab.spawn(&self.host, &argv, Some(&self.dir.join("gobgpd.log")))?;
        self.pids.push(pid);
        if !spec.originate.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(500));
            for p in &spec.originate {
                let family = if p.contains(':') {
                    "-a ipv6"
                } else {
                    "-a ipv4"
                };
                let mut argv = vec!["gobgp", "global", "rib"];
                argv.extend(family.split(' '));
                argv.extend(["add", p.as_str()]);
                lab.exec_ok(&self.host, &argv)?;
            }
        }
        Ok(())
    }

    /// Whether the session with `neighbor` is established, as the router reports it.
    pub fn established(&self, lab: &Lab, neighbor: IpAddr) -> bool {
        let out = match self.kind {
            RouterKind::Bird => lab.exec(
                &self.host,
                &[
                    "birdc",
                    "-s",
                    &self.file("bird.ctl"),
                    "show",
                    "protocols",
                    "all",
                ],
            ),
            RouterKind::Frr => lab.exec(
                &self.host,
                &[
                    "vtysh",
                    "--vty_socket",
                    &self.file("vty"),
                    "-c",
                    &format!("show bgp neighbors {neighbor}"),
                ],
            ),
            RouterKind::Gobgp => {
                lab.exec(&self.host, &["gobgp", "neighbor", &neighbor.to_string()])
            }
        };
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        match self.kind {
            RouterKind::Bird => text.split("\n\n").any(|block| {
                block.contains(&format!("Neighbor address: {neighbor}"))
                    && block.contains("Established")
            }),
            RouterKind::Frr => text.contains("BGP state = Established"),
            // `BGP state = ESTABLISHED, up for ...` (the case differs between versions).
            RouterKind::Gobgp => text
                .lines()
                .any(|l| l.contains("BGP state") && l.to_lowercase().contains("established")),
        }
    }

    /// The next hops the router's kernel uses for `prefix` (empty when it has no route).
    /// For GoBGP, which installs nothing, the next hops in its RIB.
    pub fn next_hops(&self, lab: &Lab, prefix: &str) -> Vec<IpAddr> {
        let text = match self.kind {
            RouterKind::Gobgp => {
                let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
                lab.exec(
                    &self.host,
                    &["gobgp", "global", "rib", "-a", family, prefix],
                )
            }
            _ => {
                let family = if prefix.contains(':') { "-6" } else { "-4" };
                lab.exec(
                    &self.host,
                    &["ip", family, "route", "show", "exact", prefix],
                )
            }
        };
        let text = text
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut hops: Vec<IpAddr> = match self.kind {
            RouterKind::Gobgp => text
                .lines()
                .filter(|l| l.contains(prefix.split('/').next().unwrap_or(prefix)))
                .filter_map(|l| l.split_whitespace().find_map(|w| w.parse().ok()))
                .collect(),
            _ => words
                .windows(2)
                .filter(|w| w[0] == "via")
                .filter_map(|w| w[1].parse().ok())
                .collect(),
        };
        hops.sort();
        hops.dedup();
        hops
    }
}

/// Paths in `birdc show route <prefix> all`: each starts at a line with `unicast [`
/// (the first also names the prefix), followed by tab-indented `via` and attribute lines.
fn parse_bird_routes(text: &str) -> Vec<RibPath> {
    let mut paths: Vec<RibPath> = Vec::new();
    for line in text.lines() {
        if line.contains("unicast [") {
            paths.push(RibPath::default());
            continue;
        }
        let Some(path) = paths.last_mut() else {
            continue;
        };
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("via ") {
            path.next_hop = rest.split_whitespace().next().and_then(|w| w.parse().ok());
        } else if let Some(rest) = line.strip_prefix("BGP.as_path:") {
            path.as_path = rest
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
        } else if let Some(rest) = line.strip_prefix("BGP.local_pref:") {
            path.local_pref = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("BGP.community:") {
            path.communities = bird_tuples(rest);
        } else if let Some(rest) = line.strip_prefix("BGP.large_community:") {
            path.large_communities = bird_tuples(rest);
        }
    }
    paths
}

/// `(64512,7) (65535,1)` → `["64512:7", "65535:1"]`; `(1, 2, 3)` → `["1:2:3"]`.
fn bird_tuples(text: &str) -> Vec<String> {
    text.split(')')
        .filter_map(|t| t.split_once('(').map(|(_, inner)| inner))
        .map(|inner| {
            inner
                .split(',')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect()
}

fn json_strings(v: &json::Json) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Paths in FRR's `show bgp <afi> unicast <prefix> json`.
fn parse_frr_json(text: &str) -> Vec<RibPath> {
    let Ok(v) = json::parse(text) else {
        return Vec::new();
    };
    let Some(paths) = v["paths"].as_array() else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|p| RibPath {
            next_hop: p["nexthops"][0]["ip"].as_str().and_then(|s| s.parse().ok()),
            as_path: p["aspath"]["string"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect(),
            local_pref: p["locPrf"].as_u64().and_then(|n| u32::try_from(n).ok()),
            communities: json_strings(&p["community"]["list"]),
            large_communities: json_strings(&p["largeCommunity"]["list"]),
        })
        .collect()
}

/// Paths in GoBGP's `gobgp global rib -a <afi> <prefix> -j` (attributes by type code).
fn parse_gobgp_json(text: &str, prefix: &str) -> Vec<RibPath> {
    let Ok(v) = json::parse(text) else {
        return Vec::new();
    };
    let Some(paths) = v[prefix].as_array() else {
        return Vec::new();
    };
    let num = |v: &json::Json| v.as_u64().and_then(|n| u32::try_from(n).ok());
    paths
        .iter()
        .map(|p| {
            let mut path = RibPath::default();
            for a in p["attrs"].as_array().into_iter().flatten() {
                match a["type"].as_u64() {
                    Some(2) => {
                        path.as_path = a["as_paths"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .flat_map(|seg| seg["asns"].as_array().cloned().unwrap_or_default())
                            .filter_map(|n| num(&n))
                            .collect();
                    }
                    Some(3 | 14) => {
                        path.next_hop = a["nexthop"].as_str().and_then(|s| s.parse().ok());
                    }
                    Some(5) => path.local_pref = num(&a["value"]),
                    Some(8) => {
                        path.communities = a["communities"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(num)
                            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                            .collect();
                    }
                    Some(32) => {
                        path.large_communities = a["value"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|l| {
                                format!(
                                    "{}:{}:{}",
                                    num(&l["ASN"]).unwrap_or_default(),
                                    num(&l["LocalData1"]).unwrap_or_default(),
                                    num(&l["LocalData2"]).unwrap_or_default()
                                )
                            })
                            .collect();
                    }
                    _ => {}
                }
            }
            path
        })
        .collect()
}

/// A small JSON reader for the routers' `json` outputs (the lab needs no more).
mod json {
    use std::collections::BTreeMap;

    /// A JSON value; indexing a missing key or position gives `Null`.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Json {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(BTreeMap<String, Json>),
    }

    static NULL: Json = Json::Null;

    impl Json {
        pub fn as_array(&self) -> Option<&Vec<Json>> {
            match self {
                Json::Arr(a) => Some(a),
                _ => None,
            }
        }
        pub fn as_str(&self) -> Option<&str> {
            match self {
                Json::Str(s) => Some(s),
                _ => None,
            }
        }
        pub fn as_u64(&self) -> Option<u64> {
            match self {
                // Integral, in range: the cast is exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Json::Num(n) if n.fract() == 0.0 && *n >= 0.0 && *n < 1.8e19 => Some(*n as u64),
                _ => None,
            }
        }
    }

    impl std::ops::Index<&str> for Json {
        type Output = Json;
        fn index(&self, key: &str) -> &Json {
            match self {
                Json::Obj(m) => m.get(key).unwrap_or(&NULL),
                _ => &NULL,
            }
        }
    }

    impl std::ops::Index<usize> for Json {
        type Output = Json;
        fn index(&self, i: usize) -> &Json {
            match self {
                Json::Arr(a) => a.get(i).unwrap_or(&NULL),
                _ => &NULL,
            }
        }
    }

    /// Parses a whole document; `Err` on anything malformed.
    pub fn parse(text: &str) -> Result<Json, ()> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.i == p.s.len() { Ok(v) } else { Err(()) }
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: u8) -> bool {
            self.ws();
            if self.s.get(self.i) == Some(&c) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn word(&mut self, w: &str, v: Json) -> Result<Json, ()> {
            if self.s[self.i..].starts_with(w.as_bytes()) {
                self.i += w.len();
                Ok(v)
            } else {
                Err(())
            }
        }
        fn value(&mut self, depth: usize) -> Result<Json, ()> {
            if depth > 64 {
                return Err(());
            }
            self.ws();
            match self.s.get(self.i).ok_or(())? {
                b'{' => {
                    self.i += 1;
                    let mut m = BTreeMap::new();
                    if self.eat(b'}') {
                        return Ok(Json::Obj(m));
                    }
                    loop {
                        self.ws();
                        let k = self.string()?;
                        if !self.eat(b':') {
                            return Err(());
                        }
                        m.insert(k, self.value(depth + 1)?);
                        if self.eat(b'}') {
                            return Ok(Json::Obj(m));
                        }
                        if !self.eat(b',') {
                            return Err(());
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    let mut a = Vec::new();
                    if self.eat(b']') {
                        return Ok(Json::Arr(a));
                    }
                    loop {
                        a.push(self.value(depth + 1)?);
                        if self.eat(b']') {
                            return Ok(Json::Arr(a));
                        }
                        if !self.eat(b',') {
                            return Err(());
                        }
                    }
                }
                b'"' => self.string().map(Json::Str),
                b't' => self.word("true", Json::Bool(true)),
                b'f' => self.word("false", Json::Bool(false)),
                b'n' => self.word("null", Json::Null),
                _ => {
                    let start = self.i;
                    while self
                        .s
                        .get(self.i)
                        .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                    {
                        self.i += 1;
                    }
                    std::str::from_utf8(&self.s[start..self.i])
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .map(Json::Num)
                        .ok_or(())
                }
            }
        }
        fn string(&mut self) -> Result<String, ()> {
            if self.s.get(self.i) != Some(&b'"') {
                return Err(());
            }
            self.i += 1;
            let mut out = Vec::new();
            loop {
                let c = *self.s.get(self.i).ok_or(())?;
                self.i += 1;
                match c {
                    b'"' => return String::from_utf8(out).map_err(|_| ()),
                    b'\\' => {
                        let e = *self.s.get(self.i).ok_or(())?;
                        self.i += 1;
                        let ch = match e {
                            b'n' => '\n',
                            b't' => '\t',
                            b'r' => '\r',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'u' => {
                                let hex = self.s.get(self.i..self.i + 4).ok_or(())?;
                                self.i += 4;
                                let code = std::str::from_utf8(hex)
                                    .ok()
                                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                                    .ok_or(())?;
                                char::from_u32(code).unwrap_or('\u{fffd}')
                            }
                            other => char::from(other),
                        };
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => out.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_route_with_two_paths() {
        let text = "BIRD 2.0.12 ready.\nTable master4:\n\
203.0.113.1/32       unicast [peer0 08:10:13.226] * (100) [i]\n\
\tvia 198.51.100.10 on eth0\n\tType: BGP univ\n\tBGP.origin: IGP\n\tBGP.as_path: \n\
\tBGP.next_hop: 198.51.100.10\n\tBGP.local_pref: 250\n\
\tBGP.community: (64512,7) (65535,1)\n\tBGP.large_community: (64512, 1, 2)\n\
                     unicast [peer1 08:10:14.000] (100) [AS64512i]\n\
\tvia 198.51.100.11 on eth0\n\tBGP.as_path: 64512\n";
        let paths = parse_bird_routes(text);
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[0].next_hop, Some("198.51.100.10".parse().unwrap()));
        assert!(paths[0].as_path.is_empty());
        assert_eq!(paths[0].local_pref, Some(250));
        assert_eq!(paths[0].communities, ["64512:7", "65535:1"]);
        assert_eq!(paths[0].large_communities, ["64512:1:2"]);
        assert_eq!(paths[1].as_path, [64512]);
        assert_eq!(paths[1].next_hop, Some("198.51.100.11".parse().unwrap()));
    }

    #[test]
    fn frr_and_gobgp_json() {
        let frr = r#"{"prefix":"203.0.113.1/32","paths":[{"aspath":{"string":"Local","segments":[],"length":0},
            "locPrf":250,"community":{"string":"64512:7","list":["64512:7"]},
            "largeCommunity":{"string":"64512:1:2","list":["64512:1:2"]},
            "nexthops":[{"ip":"198.51.100.10","afi":"ipv4"}]},
            {"aspath":{"string":"64512"},"nexthops":[{"ip":"198.51.100.11"}]}]}"#;
        let p = parse_frr_json(frr);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].local_pref, Some(250));
        assert!(p[0].as_path.is_empty());
        assert_eq!(p[0].communities, ["64512:7"]);
        assert_eq!(p[0].large_communities, ["64512:1:2"]);
        assert_eq!(p[1].as_path, [64512]);
        let gobgp = r#"{"203.0.113.1/32":[{"attrs":[{"type":1,"value":0},{"type":2,"as_paths":[]},
            {"type":3,"nexthop":"198.51.100.10"},{"type":5,"value":250},
            {"type":8,"communities":[4227858439]},
            {"type":32,"value":[{"ASN":64512,"LocalData1":1,"LocalData2":2}]}]}]}"#;
        let p = parse_gobgp_json(gobgp, "203.0.113.1/32");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].next_hop, Some("198.51.100.10".parse().unwrap()));
        assert_eq!(p[0].local_pref, Some(250));
        assert_eq!(p[0].communities, ["64512:7"]);
        assert_eq!(p[0].large_communities, ["64512:1:2"]);
        assert!(parse_gobgp_json("{}", "203.0.113.1/32").is_empty());
        assert!(parse_frr_json("% Network not in table").is_empty());
    }
}

#[cfg(test)]
mod json_tests {
    use super::json::{Json, parse};

    #[test]
    fn reads_what_the_routers_print() {
        let v =
            parse(r#" {"a": [1, 2.5, -3e2, true, false, null], "s": "x\"\\\u00e9\n", "o": {}} "#)
                .unwrap();
        assert_eq!(v["a"][0].as_u64(), Some(1));
        assert_eq!(v["a"][1], Json::Num(2.5));
        assert_eq!(v["a"][2], Json::Num(-300.0));
        assert_eq!(v["a"][3], Json::Bool(true));
        assert_eq!(v["a"][5], Json::Null);
        assert_eq!(v["s"].as_str(), Some("x\"\\\u{e9}\n"));
        assert_eq!(v["o"]["missing"][3], Json::Null);
        assert_eq!(v["a"][1].as_u64(), None);
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "\"open", "tru", "[1] 2"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).is_err());
    }
}
