//! A network lab in Linux network namespaces, for end-to-end tests and benchmarks.
//!
//! Every host (router, client, nodes) is a namespace with one interface, `eth0`, whose
//! veth peer sits on a bridge in a separate hub namespace. The root namespace is never
//! touched. Only documentation ranges are used: 198.51.100.0/24 and 2001:db8::/64 for the
//! hosts; tests put Service addresses in 203.0.113.0/24 and 2001:db8:100::/64.
//!
//! The lab records every process it starts and stops exactly those. Dropping the [`Lab`]
//! (also when a test panics) kills them and deletes the namespaces; a new lab with the
//! same tag first removes what a crashed run left behind.

#![warn(missing_docs)]

pub mod probe;
pub mod routers;
pub mod speakers;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, Output, Stdio};
use thiserror::Error;
use tracing::{debug, warn};

/// What went wrong building or driving the lab.
#[derive(Debug, Error)]
pub enum LabError {
    /// A command could not be started.
    #[error("running {command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Bad arguments to the lab itself.
    #[error("{0}")]
    Invalid(String),
}

/// Whether this process can build a lab (root, with `ip` from iproute2). When it cannot,
/// prints why, so a skipping test says so.
pub fn available() -> bool {
    if effective_uid() != Some(0) {
        eprintln!("skipping: the network lab needs root");
        return false;
    }
    if !has_command("ip") {
        eprintln!("skipping: the network lab needs `ip` (Debian package iproute2)");
        return false;
    }
    true
}

/// The effective user ID, from /proc/self/status (the second number of `Uid:`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether a program is on the PATH; prints a skip reason naming `package` when not.
pub fn require(program: &str, package: &str) -> bool {
    if has_command(program) {
        true
    } else {
        eprintln!("skipping: needs `{program}` (Debian package {package})");
        false
    }
}

fn has_command(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// One host of the lab.
#[derive(Clone, Debug)]
pub struct Host {
    /// Short name (`router`, `client`, `node-a`, ...).
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Its IPv4 address on the lab segment (/24).
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address on the lab segment (/64).
    pub ipv6: Ipv6Addr,
    /// The MAC address of its `eth0`.
    pub mac: [u8; 6],
    /// The bridge-side end of its link, in the hub namespace.
    port: String,
}

impl Host {
    /// The MAC as `aa:bb:cc:dd:ee:ff`.
    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A process the lab started.
#[derive(Debug)]
pub struct Process {
    /// The host it runs on.
    pub host: String,
    /// What was run, for messages.
    pub command: String,
    child: Child,
}

impl Process {
    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A lab: a hub namespace with a bridge, and host namespaces linked to it.
pub struct Lab {
    tag: String,
    hub: String,
    hosts: BTreeMap<String, Host>,
    processes: BTreeMap<u32, Process>,
}

/// The bridge's name in the hub namespace.
const BRIDGE: &str = "br0";

impl Lab {
    /// Builds an empty lab whose namespaces are named `fl<tag>-...`. `tag` (1-6
    /// alphanumerics) must be unique among labs running at the same time; leftovers of an
    /// earlier lab with the same tag are removed first.
    pub fn new(tag: &str) -> Result<Lab, LabError> {
        if tag.is_empty() || tag.len() > 6 || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(LabError::Invalid(format!(
                "lab tag {tag:?}: 1-6 alphanumerics"
            )));
        }
        remove_stale(tag);
        let hub = format!("fl{tag}-hub");
        let lab = Lab {
            tag: tag.into(),
            hub: hub.clone(),
            hosts: BTreeMap::new(),
            processes: BTreeMap::new(),
        };
        run("ip", ["netns", "add", &hub])?;
        lab.hub_exec(&["ip", "link", "set", "lo", "up"])?;
        lab.hub_exec(&[
            "ip",
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        lab.hub_exec(&["ip", "link", "set", BRIDGE, "up"])?;
        Ok(lab)
    }

    /// Adds a host with addresses `198.51.100.<octet>/24` and `2001:db8::<octet>/64`.
    pub fn add_host(&mut self, name: &str, octet: u8) -> Result<Host, LabError> {
        if self.hosts.contains_key(name) || name.len() > 8 || name.is_empty() {
            return Err(LabError::Invalid(format!(
                "host name {name:?}: unique, 1-8 characters"
            )));
        }
        let netns = format!("fl{}-{name}", self.tag);
        // Interface names are limited to 15 characters.
        let port = format!("{}{}", self.tag, name.replace('-', ""));
        let port: String = port.chars().take(15).collect();
        let mac = [0x02, 0x42, 0xc6, 0x33, 0x64, octet];
        let ipv4 = Ipv4Addr::new(198, 51, 100, octet);
        let ipv6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(octet));
        run("ip", ["netns", "add", &netns])?;
        let host = Host {
            name: name.into(),
            netns: netns.clone(),
            ipv4,
            ipv6,
            mac,
            port: port.clone(),
        };
        self.hosts.insert(name.into(), host.clone());
        let tmp = format!("{port}x");
        self.hub_exec(&[
            "ip", "link", "add", &port, "type", "veth", "peer", "name", &tmp,
        ])?;
        self.hub_exec(&["ip", "link", "set", &tmp, "netns", &netns])?;
        self.hub_exec(&["ip", "link", "set", &port, "master", BRIDGE])?;
        self.hub_exec(&["ip", "link", "set", &port, "up"])?;
        let mac_s = format_mac(&mac);
        let v4 = format!("{ipv4}/24");
        let v6 = format!("{ipv6}/64");
        for cmd in [
            vec!["ip", "link", "set", "lo", "up"],
            vec!["ip", "link", "set", &tmp, "name", "eth0"],
            vec!["ip", "link", "set", "eth0", "address", &mac_s],
            vec!["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"],
            vec!["ip", "addr", "add", &v4, "dev", "eth0"],
            vec!["ip", "addr", "add", &v6, "dev", "eth0", "nodad"],
            vec!["ip", "link", "set", "eth0", "up"],
        ] {
            self.exec_ok(name, &cmd)?;
        }
        Ok(host)
    }

    /// A host by name.
    pub fn host(&self, name: &str) -> &Host {
        &self.hosts[name]
    }

    /// All hosts, by name.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    /// Runs a command on a host and waits for it.
    pub fn exec<S: AsRef<OsStr>>(&self, host: &str, argv: &[S]) -> Result<Output, LabError> {
        let netns = &self
            .hosts
            .get(host)
            .ok_or_else(|| LabError::Invalid(format!("no host {host}")))?
            .netns;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns]).args(argv);
        let line = describe(&cmd);
        debug!(%line, "lab exec");
        cmd.output().map_err(|source| LabError::Spawn {
            command: line,
            source,
        })
    }

    /// Runs a command on a host; an error unless it exits 0.
    pub fn exec_ok<S: AsRef<OsStr>>(&self, host: &str, argv: &[S]) -> Result<Output, LabError> {
        let out = self.exec(host, argv)?;
        check(&format!("[{host}] {}", join(argv)), out)
    }

    /// Starts a long-running process on a host; the lab records it and kills it when
    /// dropped. Its output goes to `log` (a file path) when given, else is discarded.
    pub fn spawn<S: AsRef<OsStr>>(
        &mut self,
        host: &str,
        argv: &[S],
        log: Option<&std::path::Path>,
    ) -> Result<u32, LabError> {
        let netns = self
            .hosts
            .get(host)
            .ok_or_else(|| LabError::Invalid(format!("no host {host}")))?
            .netns
            .clone();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &netns])
            .args(argv)
            .stdin(Stdio::null());
        match log {
            Some(path) => {
                let f = std::fs::File::create(path).map_err(|source| LabError::Spawn {
                    command: path.display().to_string(),
                    source,
                })?;
                let f2 = f.try_clone().map_err(|source| LabError::Spawn {
                    command: path.display().to_string(),
                    source,
                })?;
                cmd.stdout(f).stderr(f2);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let line = describe(&cmd);
        // `ip netns exec` execs the program itself, so the child's PID is the program's.
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            command: line.clone(),
            source,
        })?;
        let pid = child.id();
        debug!(pid, %line, "lab spawn");
        self.processes.insert(
            pid,
            Process {
                host: host.into(),
                command: line,
                child,
            },
        );
        Ok(pid)
    }

    /// Sends a signal to a process the lab started (and only to such a process).
    pub fn signal(&mut self, pid: u32, signal: &str) -> Result<(), LabError> {
        if !self.processes.contains_key(&pid) {
            return Err(LabError::Invalid(format!(
                "pid {pid} was not started by this lab"
            )));
        }
        run("kill", [format!("-{signal}"), pid.to_string()])?;
        Ok(())
    }

    /// Waits for a process the lab started to exit, for at most `timeout`. Returns its
    /// exit code (None if killed by a signal), or an error on time-out.
    pub fn wait(
        &mut self,
        pid: u32,
        timeout: std::time::Duration,
    ) -> Result<Option<i32>, LabError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let p = self.processes.get_mut(&pid).ok_or_else(|| {
                LabError::Invalid(format!("pid {pid} was not started by this lab"))
            })?;
            if let Ok(Some(status)) = p.child.try_wait() {
                self.processes.remove(&pid);
                return Ok(status.code());
            }
            if std::time::Instant::now() >= deadline {
                return Err(LabError::Invalid(format!(
                    "pid {pid} still running after {timeout:?}"
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Kills a process the lab started and reaps it.
    pub fn kill(&mut self, pid: u32) {
        if let Some(mut p) = self.processes.remove(&pid) {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// Takes a host's link down at the bridge: the host sees its carrier drop, as when a
    /// cable is pulled or a node dies, and its processes keep running.
    pub fn cut_link(&self, host: &str) -> Result<(), LabError> {
        let port = self.hosts[host].port.clone();
        self.hub_exec(&["ip", "link", "set", &port, "down"])
    }

    /// Brings a cut link back.
    pub fn restore_link(&self, host: &str) -> Result<(), LabError> {
        let port = self.hosts[host].port.clone();
        self.hub_exec(&["ip", "link", "set", &port, "up"])
    }

    /// Blocks traffic between two groups of hosts at the bridge (a partition), in both
    /// directions, while both keep their links. Undo with [`Lab::heal`].
    pub fn partition(&self, a: &[&str], b: &[&str]) -> Result<(), LabError> {
        for x in a {
            for y in b {
                let (px, py) = (&self.hosts[*x].port, &self.hosts[*y].port);
                self.hub_nft(&format!(
                    "add rule bridge fl filter iifname {px} oifname {py} drop"
                ))?;
                self.hub_nft(&format!(
                    "add rule bridge fl filter iifname {py} oifname {px} drop"
                ))?;
            }
        }
        Ok(())
    }

    /// Drops `percent` % of the frames leaving `host` (toward the bridge), at random. This
    /// kernel has no `netem` qdisc, so the loss is made by an nftables rule on the bridge.
    /// [`Lab::heal`] removes it.
    pub fn loss(&self, host: &str, percent: u8) -> Result<(), LabError> {
        let port = &self.hosts[host].port;
        match percent {
            0 => Ok(()),
            // `numgen random mod 100` yields 0-99: "< 100" is out of nft's range.
            100.. => self.hub_nft(&format!("add rule bridge fl filter iifname {port} drop")),
            p => self.hub_nft(&format!(
                "add rule bridge fl filter iifname {port} numgen random mod 100 < {p} drop"
            )),
        }
    }

    /// Removes every partition and loss rule.
    pub fn heal(&self) -> Result<(), LabError> {
        self.hub_exec(&["nft", "flush", "table", "bridge", "fl"])
    }

    fn hub_nft(&self, rule: &str) -> Result<(), LabError> {
        // The table and chain are made on first use; `nft` joins its arguments.
        self.hub_exec(&["nft", "add", "table", "bridge", "fl"])?;
        self.hub_exec(&[
            "nft",
            "add chain bridge fl filter { type filter hook forward priority 0 ; }",
        ])?;
        let mut argv = vec!["nft"];
        argv.extend(rule.split(' '));
        self.hub_exec(&argv)
    }

    fn hub_exec(&self, argv: &[&str]) -> Result<(), LabError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hub]).args(argv);
        let line = describe(&cmd);
        let out = cmd.output().map_err(|source| LabError::Spawn {
            command: line.clone(),
            source,
        })?;
        check(&line, out).map(|_| ())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let pids: Vec<u32> = self.processes.keys().copied().collect();
        for pid in pids {
            self.kill(pid);
        }
        for host in self.hosts.values() {
            if let Err(e) = run("ip", ["netns", "del", &host.netns]) {
                warn!("lab cleanup: {e}");
            }
        }
        if let Err(e) = run("ip", ["netns", "del", &self.hub]) {
            warn!("lab cleanup: {e}");
        }
    }
}

/// Deletes the namespaces a crashed lab with this tag left behind. Processes still
/// running in them are not touched (they were not started by this process); they lose
/// their network when the namespace goes.
fn remove_stale(tag: &str) {
    let prefix = format!("fl{tag}-");
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            debug!(%name, "removing a stale lab namespace");
            let _ = run("ip", ["netns", "del", &name]);
        }
    }
}

pub(crate) fn run<I, S>(program: &str, args: I) -> Result<Output, LabError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    let line = describe(&cmd);
    let out = cmd.output().map_err(|source| LabError::Spawn {
        command: line.clone(),
        source,
    })?;
    check(&line, out)
}

fn check(line: &str, out: Output) -> Result<Output, LabError> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Failed {
            command: line.into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn join<S: AsRef<OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `f` on a new thread that has entered the network namespace `netns` (a name under
/// /run/netns), and returns its result. Sockets `f` opens live in that namespace, so a
/// test can drive in-process code as if it ran on a lab host.
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LabError> {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{netns}");
    let file = std::fs::File::open(&path).map_err(|source| LabError::Spawn {
        command: format!("open {path}"),
        source,
    })?;
    let handle = std::thread::spawn(move || {
        // SAFETY: setns on a valid, open namespace file descriptor affects only this
        // thread; the descriptor outlives the call.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(f())
    });
    match handle.join() {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(LabError::Spawn {
            command: format!("setns {path}"),
            source,
        }),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
