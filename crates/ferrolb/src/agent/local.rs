//! Accepting traffic for the addresses this node announces.
//!
//! The owner of an address gets a `local` route for it in the kernel's local table
//! (`ip route replace local ADDR dev lo table local proto 251`), so a process listening
//! on the wildcard address, or on the address itself, receives its traffic. Nodes that
//! do not own the address have no such route, so their kernels neither accept its
//! traffic nor answer ARP for it. The routes carry our own protocol number (251), so
//! those a crashed agent left behind are found and flushed at start.
//!
//! With such a route the kernel would also answer ARP for the address on every interface
//! (its default `arp_ignore=0`), defeating the L2Advertisement's interface selection and
//! doubling the answers. So the agent sets `net.ipv4.conf.all.arp_ignore=1` (answer only
//! for addresses configured on the receiving interface: the node's own) and
//! `arp_announce=2` (never use a service address as the source of the kernel's own ARP
//! requests), as kube-proxy's strictARP and LVS direct routing do. ferrolb's responder,
//! not the kernel, then answers for service addresses. IPv6 needs nothing: the kernel
//! answers neighbour solicitations only for addresses on the receiving interface.
//!
//! On Kubernetes, kube-proxy accepts the traffic instead and this is turned off.

use std::collections::BTreeSet;
use std::net::IpAddr;
use tokio::process::Command;
use tracing::{info, warn};

/// The route protocol number that marks ferrolb's routes (unassigned by IANA for routing
/// daemons in iproute2's rt_protos; 251 is in the range left for local use).
pub const ROUTE_PROTO: &str = "251";

/// The local routes this node holds.
#[derive(Debug, Default)]
pub struct LocalAddresses {
    current: BTreeSet<IpAddr>,
}

impl LocalAddresses {
    /// Makes the kernel leave ARP for service addresses to ferrolb (see the module docs).
    pub fn strict_arp() {
        for (key, value) in [("arp_ignore", "1"), ("arp_announce", "2")] {
            let path = format!("/proc/sys/net/ipv4/conf/all/{key}");
            match std::fs::write(&path, value) {
                Ok(()) => info!("set net.ipv4.conf.all.{key}={value}"),
                Err(e) => warn!(
                    "setting net.ipv4.conf.all.{key}={value}: {e}: the kernel may answer ARP for service addresses too"
                ),
            }
        }
    }

    /// Removes every route a previous run left behind.
    pub async fn flush_stale() {
        for family in ["-4", "-6"] {
            let _ = ip(&[
                family,
                "route",
                "flush",
                "table",
                "local",
                "proto",
                ROUTE_PROTO,
            ])
            .await;
        }
    }

    /// Makes the set of local routes equal `want`: adds the new, removes the gone.
    pub async fn sync(&mut self, want: &BTreeSet<IpAddr>) {
        let gone: Vec<IpAddr> = self.current.difference(want).copied().collect();
        let new: Vec<IpAddr> = want.difference(&self.current).copied().collect();
        // Many changes (thousands of addresses at start): one `ip -batch` rather than a
        // process per route. Should it fail, the routes are done one by one below, which
        // says which one failed.
        if gone.len() + new.len() > BATCH_FROM {
            let lines: Vec<String> = gone
                .iter()
                .map(|a| route_line("del", *a))
                .chain(new.iter().map(|a| route_line("replace", *a)))
                .collect();
            match batch(&lines).await {
                Ok(()) => {
                    for a in &gone {
                        self.current.remove(a);
                    }
                    self.current.extend(new.iter().copied());
                    info!(
                        added = new.len(),
                        removed = gone.len(),
                        "accepting traffic for {} addresses",
                        self.current.len()
                    );
                    return;
                }
                Err(e) => warn!("{e}: changing the routes one by one"),
            }
        }
        for addr in gone {
            match route("del", addr).await {
                Ok(()) => info!(%addr, "stopped accepting traffic"),
                Err(e) => warn!(%addr, "removing local route: {e}"),
            }
            self.current.remove(&addr);
        }
        for addr in new {
            match route("replace", addr).await {
                Ok(()) => {
                    info!(%addr, "accepting traffic");
                    self.current.insert(addr);
                }
                Err(e) => warn!(%addr, "adding local route: {e}"),
            }
        }
    }
}
/// From this many route changes on, they are made with one `ip -batch`.
const BATCH_FROM: usize = 8;

/// One route change as a line of `ip -batch` (the family follows from the address).
fn route_line(verb: &str, addr: IpAddr) -> String {
    let len = if addr.is_ipv4() { 32 } else { 128 };
    format!("route {verb} local {addr}/{len} dev lo table local proto {ROUTE_PROTO}")
}

/// Runs the lines with `ip -force -batch -` (every line is tried).
async fn batch(lines: &[String]) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running ip -batch: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let text = lines.join("\n") + "\n";
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| format!("writing to ip -batch: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("running ip -batch: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip -batch: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

async fn route(verb: &str, addr: IpAddr) -> Result<(), String> {
    let (family, prefix) = match addr {
        IpAddr::V4(_) => ("-4", format!("{addr}/32")),
        IpAddr::V6(_) => ("-6", format!("{addr}/128")),
    };
    ip(&[
        family,
        "route",
        verb,
        "local",
        &prefix,
        "dev",
        "lo",
        "table",
        "local",
        "proto",
        ROUTE_PROTO,
    ])
    .await
}

async fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
