//! Reference BGP *speakers* on a lab host: FRR 8 (zebra + bgpd, and bfdd when a
//! neighbour uses BFD) and GoBGP 3, announcing a given set of prefixes to routers. They
//! are what ferrolb's speaker is benchmarked against (`crates/ferrolb/benches/bgp.rs`);
//! the routers they announce to are [`crate::routers`].
//!
//! How each gets its prefixes, so that the session, not a CLI, is what is measured:
//!
//! - FRR: one `network` statement per prefix in `frr.conf` (with
//!   `no bgp network import-check`, so no route needs to exist in zebra); bgpd reads the
//!   whole file before it opens a session.
//! - GoBGP: gobgpd starts with no neighbour; the prefixes are injected into its global RIB
//!   from an MRT TABLE_DUMP_V2 file (`gobgp mrt inject global`, one gRPC stream; the file
//!   lists every prefix twice, as the CLI drops the tail of its stream); then the
//!   configuration file gets its neighbours and gobgpd is told to reload it (SIGHUP).
//!   [`Speaker::started`] is that moment.

use crate::routers::Neighbor;
use crate::{Lab, LabError};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Which implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpeakerKind {
    /// FRR 8: zebra, bgpd and (with BFD) bfdd.
    Frr,
    /// GoBGP 3: gobgpd.
    Gobgp,
}

/// A speaker's settings.
#[derive(Clone, Debug)]
pub struct SpeakerSpec {
    /// Its AS number.
    pub asn: u32,
    /// Its BGP identifier.
    pub router_id: Ipv4Addr,
    /// The routers it peers with (BFD: receive/transmit interval in ms, multiplier 3).
    pub neighbors: Vec<Neighbor>,
    /// Hold time it offers, in seconds (keepalive: a third of it).
    pub hold_time: u16,
    /// The prefixes it announces (`203.0.113.10/32`, `2001:db8:100::1/128`, ...).
    pub prefixes: Vec<String>,
    /// Its own addresses on the lab segment, the next hop of its routes (GoBGP's injected
    /// routes need one per family).
    pub next_hop_v4: Ipv4Addr,
    /// Its IPv6 address on the lab segment.
    pub next_hop_v6: std::net::Ipv6Addr,
}

/// A running speaker.
#[derive(Debug)]
pub struct Speaker {
    /// The implementation.
    pub kind: SpeakerKind,
    /// The lab host it runs on.
    pub host: String,
    dir: PathBuf,
    /// Every daemon's process ID, in start order (the lab kills them when dropped).
    pub pids: Vec<u32>,
    /// The daemon that speaks BGP (bgpd, gobgpd): the one to stop for a shutdown.
    pub bgp_pid: u32,
    /// When the speaker began to peer with its prefixes loaded: bgpd's start for FRR, the
    /// reload that added the neighbours for GoBGP.
    pub started: SystemTime,
}

impl Speaker {
    /// Starts `kind` on `host` with `spec`, its files in `dir` (created).
    pub fn start(
        lab: &mut Lab,
        kind: SpeakerKind,
        host: &str,
        spec: &SpeakerSpec,
        dir: &Path,
    ) -> Result<Speaker, LabError> {
        std::fs::create_dir_all(dir).map_err(|source| LabError::Spawn {
            command: format!("mkdir {}", dir.display()),
            source,
        })?;
        let mut s = Speaker {
            kind,
            host: host.into(),
            dir: dir.into(),
            pids: Vec::new(),
            bgp_pid: 0,
            started: SystemTime::now(),
        };
        match kind {
            SpeakerKind::Frr => s.start_frr(lab, spec)?,
            SpeakerKind::Gobgp => s.start_gobgp(lab, spec)?,
        }
        Ok(s)
    }

    /// The directory holding its configuration and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), LabError> {
        std::fs::write(self.dir.join(name), bytes).map_err(|source| LabError::Spawn {
            command: format!("write {name}"),
            source,
        })
    }

    fn start_frr(&mut self, lab: &mut Lab, spec: &SpeakerSpec) -> Result<(), LabError> {
        self.write("frr.conf", frr_config(spec).as_bytes())?;
        let vty = self.dir.join("vty");
        std::fs::create_dir_all(&vty).map_err(|source| LabError::Spawn {
            command: "mkdir vty".into(),
            source,
        })?;
        // The daemons drop to user frr: their files must be theirs.
        crate::run("chown", ["-R", "frr:frr", &self.dir.display().to_string()])?;
        let with_bfd = spec.neighbors.iter().any(|n| n.bfd.is_some());
        let daemons: &[&str] = if with_bfd {
            &["zebra", "bfdd", "bgpd"]
        } else {
            &["zebra", "bgpd"]
        };
        for daemon in daemons {
            let mut argv = vec![
                format!("/usr/lib/frr/{daemon}"),
                "-f".into(),
                self.file("frr.conf"),
                "-i".into(),
                self.file(&format!("{daemon}.pid")),
                "-z".into(),
                self.file("zserv.api"),
                "--vty_socket".into(),
                vty.display().to_string(),
                "-P".into(),
                "0".into(),
            ];
            if *daemon == "bfdd" {
                argv.extend(["--bfdctl".into(), self.file("bfdd.sock")]);
            }
            if *daemon == "bgpd" {
                self.started = SystemTime::now();
            }
            let log = self.dir.join(format!("{daemon}.log"));
            let pid = lab.spawn(&self.host, &argv, Some(&log))?;
            self.pids.push(pid);
            if *daemon == "bgpd" {
                self.bgp_pid = pid;
            } else {
                // zebra (and bfdd) must be listening before bgpd connects to them.
                wait_for(Duration::from_secs(5), || {
                    let sock = if *daemon == "zebra" {
                        "zserv.api"
                    } else {
                        "bfdd.sock"
                    };
                    self.dir.join(sock).exists()
                });
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    fn start_gobgp(&mut self, lab: &mut Lab, spec: &SpeakerSpec) -> Result<(), LabError> {
        self.write("gobgpd.toml", gobgp_config(spec, false).as_bytes())?;
        let argv = [
            "gobgpd",
            "-f",
            &self.file("gobgpd.toml"),
            "-t",
            "toml",
            "--api-hosts",
            "127.0.0.1:50051",
            "--pprof-disable",
        ];
        let pid = lab.spawn(&self.host, &argv, Some(&self.dir.join("gobgpd.log")))?;
        self.pids.push(pid);
        self.bgp_pid = pid;
        let up = wait_for(Duration::from_secs(10), || {
            lab.exec(&self.host, &["gobgp", "global"])
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        if !up {
            return Err(LabError::Invalid(
                "gobgpd's API did not come up in 10 s".into(),
            ));
        }
        // Inject every prefix in one stream, one family at a time.
        for (v6, name) in [(false, "v4.mrt"), (true, "v6.mrt")] {
            let prefixes: Vec<&String> = spec
                .prefixes
                .iter()
                .filter(|p| p.contains(':') == v6)
                .collect();
            if prefixes.is_empty() {
                continue;
            }
            let next_hop = if v6 {
                IpAddr::V6(spec.next_hop_v6)
            } else {
                IpAddr::V4(spec.next_hop_v4)
            };
            // `gobgp mrt inject` exits before its stream is drained: the last few hundred
            // paths of a file are lost. The file lists every prefix twice, so what is lost
            // is a repeat.
            let twice: Vec<&String> = prefixes.iter().chain(&prefixes).copied().collect();
            let dump = mrt_table_dump(spec.router_id, spec.asn, next_hop, &twice)?;
            self.write(name, &dump)?;
            // Should paths still be missing, injecting again is harmless (the same paths).
            let family = if v6 { "ipv6" } else { "ipv4" };
            let want = prefixes.len();
            let mut have = None;
            for _ in 0..20 {
                lab.exec_ok(
                    &self.host,
                    &["gobgp", "mrt", "inject", "global", &self.file(name)],
                )?;
                std::thread::sleep(Duration::from_millis(300));
                have = rib_size(lab, &self.host, family);
                if have == Some(want) {
                    break;
                }
            }
            if have != Some(want) {
                return Err(LabError::Invalid(format!(
                    "gobgpd's {family} RIB holds {have:?} of {want} injected prefixes"
                )));
            }
        }
        // Now the neighbours: the sessions start with the RIB complete.
        self.write("gobgpd.toml", gobgp_config(spec, true).as_bytes())?;
        self.started = SystemTime::now();
        lab.signal(pid, "HUP")?;
        Ok(())
    }
}

/// How many destinations gobgpd's global RIB holds for `family`.
fn rib_size(lab: &Lab, host: &str, family: &str) -> Option<usize> {
    let out = lab
        .exec(host, &["gobgp", "global", "rib", "-a", family, "summary"])
        .ok()?;
    // "Table ipv6-unicast\nDestination: 10000, Path: 10000"
    let text = String::from_utf8_lossy(&out.stdout);
    let after = text.split("Destination:").nth(1)?;
    after.split(',').next()?.trim().parse().ok()
}

fn wait_for(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// FRR's configuration: `network` statements, no policy, no import check.
fn frr_config(spec: &SpeakerSpec) -> String {
    let mut c = String::new();
    c += "frr defaults traditional\nhostname speaker\nlog stdout\n";
    let _ = writeln!(
        c,
        "router bgp {}\n bgp router-id {}\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n no bgp network import-check",
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
            " neighbor {a} remote-as {}\n neighbor {a} timers connect 1",
            n.asn,
            a = n.address
        );
        if n.bfd.is_some() {
            let _ = writeln!(c, " neighbor {} bfd profile bench", n.address);
        }
    }
    for family in ["ipv4", "ipv6"] {
        let v6 = family == "ipv6";
        let neighbors: Vec<_> = spec
            .neighbors
            .iter()
            .filter(|n| n.address.is_ipv6() == v6)
            .collect();
        if neighbors.is_empty() {
            continue;
        }
        let _ = writeln!(c, " address-family {family} unicast");
        for p in spec.prefixes.iter().filter(|p| p.contains(':') == v6) {
            let _ = writeln!(c, "  network {p}");
        }
        for n in neighbors {
            let _ = writeln!(c, "  neighbor {} activate", n.address);
        }
        c += " exit-address-family\n";
    }
    if let Some((rx, tx)) = spec.neighbors.iter().find_map(|n| n.bfd) {
        let _ = writeln!(
            c,
            "bfd\n profile bench\n  receive-interval {rx}\n  transmit-interval {tx}\n  detect-multiplier 3\n exit\nexit"
        );
    }
    c
}

/// gobgpd's configuration, with or without its neighbours.
fn gobgp_config(spec: &SpeakerSpec, neighbors: bool) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = 179",
        spec.asn, spec.router_id
    );
    if !neighbors {
        return c;
    }
    for n in &spec.neighbors {
        let _ = writeln!(
            c,
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
            n.address, n.asn
        );
        let _ = writeln!(
            c,
            "  [neighbors.timers.config]\n    hold-time = {}\n    keepalive-interval = {}\n    connect-retry = 1",
            spec.hold_time,
            (spec.hold_time / 3).max(1)
        );
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
    c
}

/// An MRT TABLE_DUMP_V2 file (RFC 6396): a peer index table naming the speaker itself,
/// then one RIB entry per prefix with ORIGIN IGP, an empty AS_PATH and `next_hop`
/// (NEXT_HOP for IPv4, a complete MP_REACH_NLRI for IPv6: GoBGP reads that rather than
/// the abbreviated form of RFC 6396 §4.3.4). All prefixes must be of `next_hop`'s family.
pub fn mrt_table_dump<S: AsRef<str>>(
    router_id: Ipv4Addr,
    asn: u32,
    next_hop: IpAddr,
    prefixes: &[S],
) -> Result<Vec<u8>, LabError> {
    const TABLE_DUMP_V2: u16 = 13;
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let mut out = Vec::new();
    let mut record = |subtype: u16, body: &[u8]| {
        out.extend(timestamp.to_be_bytes());
        out.extend(TABLE_DUMP_V2.to_be_bytes());
        out.extend(subtype.to_be_bytes());
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
    };
    // PEER_INDEX_TABLE: collector ID, empty view name, one peer (AS4, its address family).
    let mut peers = Vec::new();
    peers.extend(router_id.octets());
    peers.extend(0u16.to_be_bytes());
    peers.extend(1u16.to_be_bytes());
    let nh_bytes: Vec<u8> = match next_hop {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    peers.push(if next_hop.is_ipv6() { 0x03 } else { 0x02 });
    peers.extend(router_id.octets());
    peers.extend(&nh_bytes);
    peers.extend(asn.to_be_bytes());
    record(1, &peers);

    let subtype = if next_hop.is_ipv6() { 4 } else { 2 };
    for (seq, p) in prefixes.iter().enumerate() {
        let p = p.as_ref();
        let (addr, len) = p
            .split_once('/')
            .and_then(|(a, l)| Some((a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?)))
            .ok_or_else(|| LabError::Invalid(format!("prefix {p:?}")))?;
        let bytes: Vec<u8> = match addr {
            IpAddr::V4(a) if !next_hop.is_ipv6() && len <= 32 => a.octets().to_vec(),
            IpAddr::V6(a) if next_hop.is_ipv6() && len <= 128 => a.octets().to_vec(),
            _ => {
                return Err(LabError::Invalid(format!(
                    "prefix {p:?}: not of the next hop's family"
                )));
            }
        };
        let prefix = &bytes[..usize::from(len).div_ceil(8)];
        // ORIGIN IGP, empty AS_PATH, then the next hop.
        let mut attrs = vec![0x40, 1, 1, 0, 0x40, 2, 0];
        if next_hop.is_ipv6() {
            // A complete MP_REACH_NLRI (AFI 2, SAFI 1, next hop, reserved, the prefix):
            // GoBGP's MRT reader does not take RFC 6396's abbreviated form.
            let mut mp = vec![0, 2, 1, 16];
            mp.extend(&nh_bytes);
            mp.push(0);
            mp.push(len);
            mp.extend(prefix);
            attrs.extend([0x80, 14, mp.len() as u8]);
            attrs.extend(mp);
        } else {
            attrs.extend([0x40, 3, 4]);
            attrs.extend(&nh_bytes);
        }
        let mut body = Vec::new();
        body.extend((seq as u32).to_be_bytes());
        body.push(len);
        body.extend(prefix);
        body.extend(1u16.to_be_bytes());
        body.extend(0u16.to_be_bytes());
        body.extend(timestamp.to_be_bytes());
        body.extend((attrs.len() as u16).to_be_bytes());
        body.extend(&attrs);
        record(subtype, &body);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrt_dump_layout() {
        let dump = mrt_table_dump(
            "198.51.100.11".parse().unwrap(),
            64512,
            "2001:db8::11".parse().unwrap(),
            &["2001:db8:100::1/128"],
        )
        .unwrap();
        // Peer index table: 12 header + 4 + 2 + 2 + (1 + 4 + 16 + 4) bytes.
        assert_eq!(&dump[4..8], &[0, 13, 0, 1]);
        assert_eq!(u32::from_be_bytes(dump[8..12].try_into().unwrap()), 33);
        let rib = &dump[12 + 33..];
        assert_eq!(&rib[4..8], &[0, 13, 0, 4]);
        // seq 4 + len 1 + prefix 16 + count 2 + (index 2 + time 4 + attr len 2 + attrs 7 + 3 + 38).
        assert_eq!(u32::from_be_bytes(rib[8..12].try_into().unwrap()), 79);
        assert_eq!(rib[12 + 4], 128);
        assert!(
            mrt_table_dump::<&str>(
                "198.51.100.11".parse().unwrap(),
                1,
                "198.51.100.11".parse().unwrap(),
                &["2001:db8::/64"]
            )
            .is_err()
        );
    }
}
