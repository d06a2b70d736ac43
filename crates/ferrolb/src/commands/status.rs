//! `ferrolb status`: what ferrolb is doing. Against a standalone agent it reads the
//! agent's `/status`; against a cluster (kubeconfig, or in a pod) it gathers the same
//! document from the API server ([`ferrolb_k8s::status`]).

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// Output format.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// Tables for people.
    Table,
    /// The agent's JSON document.
    Json,
    /// The same as YAML.
    Yaml,
}

/// Arguments of `ferrolb status`.
#[derive(clap::Args)]
pub struct Args {
    /// A standalone agent's `--metrics-addr` (the default without a cluster:
    /// 127.0.0.1:9120).
    #[arg(long, conflicts_with = "kube")]
    agent: Option<String>,
    /// Read the cluster of the current kubeconfig context (the default when a kubeconfig
    /// or an in-cluster service account is found).
    #[arg(long)]
    kube: bool,
    /// ferrolb's namespace in the cluster.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    namespace: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Format,
}

/// Prints the agent's status; exit 1 when it cannot be reached.
pub fn run(args: &Args, out: &mut impl Write) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let cluster = args.kube || (args.agent.is_none() && kubeconfig_present());
    let body = if cluster {
        match super::block_on(cluster_document(args.namespace.clone())) {
            Ok(doc) => doc,
            Err(e) => {
                eprintln!("ferrolb status: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    } else {
        let agent = args.agent.as_deref().unwrap_or("127.0.0.1:9120");
        match fetch(agent, "/status") {
            Ok(b) => b,
            Err(e) if args.agent.is_none() => {
                eprintln!(
                    "ferrolb status: no kubeconfig found (KUBECONFIG, ~/.kube/config), and {e}"
                );
                return Ok(ExitCode::from(1));
            }
            Err(e) => {
                eprintln!("ferrolb status: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    };
    let status: Value =
        serde_json::from_str(&body).map_err(|e| format!("a bad status document: {e}"))?;
    match args.output {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?,
        Format::Yaml => out.write_all(serde_saphyr::to_string(&status)?.as_bytes())?,
        Format::Table => out.write_all(render(&status, &pool_rows(&body)).as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Gathers the cluster's document.
async fn cluster_document(namespace: String) -> Result<String, Box<dyn std::error::Error>> {
    let client = ferrolb_k8s::connect().await.map_err(|e| {
        format!("no Kubernetes cluster reachable: {e} (check KUBECONFIG, or use --agent ADDR:PORT for a standalone agent)")
    })?;
    let doc = ferrolb_k8s::status::cluster_status(
        &client,
        &namespace,
        &ferrolb_k8s::status::SpeakerPods::default(),
    )
    .await?;
    Ok(doc.to_string())
}

/// Whether a kubeconfig (or an in-cluster service account) is there to use.
fn kubeconfig_present() -> bool {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return true;
    }
    if let Some(paths) = std::env::var_os("KUBECONFIG") {
        return std::env::split_paths(&paths).any(|p| p.exists());
    }
    std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .is_some_and(|h| h.join(".kube/config").exists())
}

/// GET `path` over HTTP/1.0 and return the body; errors say what to do.
fn fetch(agent: &str, path: &str) -> Result<String, String> {
    let addr: SocketAddr = agent
        .to_socket_addrs()
        .map_err(|e| format!("bad agent address {agent:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("bad agent address {agent:?}"))?;
    let hint = format!("is `ferrolb run --metrics-addr {agent}` running there?");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("no agent at {agent}: {e} ({hint})"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {agent}\r\n\r\n")
        .map_err(|e| format!("{agent}: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("{agent}: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{agent}: not an HTTP answer ({hint})"))?;
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1).is_none_or(|c| c != "200") {
        let line = head.lines().next().unwrap_or("");
        return Err(format!("{agent}{path}: {line} ({hint})"));
    }
    Ok(body.to_string())
}

/// One pool's counts, read at full width (a /64 holds more than 2^64 addresses, which
/// a JSON `Value` would round to a float).
#[derive(serde::Deserialize)]
struct PoolRow {
    pool: String,
    assigned_ipv4: u128,
    available_ipv4: u128,
    assigned_ipv6: u128,
    available_ipv6: u128,
}

#[derive(serde::Deserialize)]
struct Pools {
    #[serde(default)]
    pools: Vec<PoolRow>,
}

/// The pool table's rows, from the raw `/status` body.
fn pool_rows(body: &str) -> Vec<Vec<String>> {
    let pools = serde_json::from_str::<Pools>(body)
        .map(|p| p.pools)
        .unwrap_or_default();
    pools
        .into_iter()
        .map(|p| {
            let n = [
                p.assigned_ipv4,
                p.available_ipv4,
                p.assigned_ipv6,
                p.available_ipv6,
            ];
            std::iter::once(p.pool)
                .chain(n.iter().map(u128::to_string))
                .collect()
        })
        .collect()
}

/// The status as tables.
fn render(s: &Value, pools: &[Vec<String>]) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut out = String::new();
    let config = match (s["config_loaded"].as_bool(), s["config_stale"].as_bool()) {
        (Some(true), Some(false)) => "valid".to_string(),
        (Some(true), Some(true)) => {
            "STALE: the last change is invalid, the previous one is in force".to_string()
        }
        _ => "NOT LOADED: no valid configuration yet".to_string(),
    };
    out += &format!(
        "node:          {}\nconfiguration: {config}\n",
        text(&s["node"])
    );
    for p in s["problems"].as_array().into_iter().flatten() {
        out += &format!("  problem: {}\n", text(p));
    }
    let members: Vec<String> = s["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    out += &format!(
        "members:       {}\n\n",
        if s["members"].is_null() {
            "(no membership)".to_string()
        } else {
            members.join(", ")
        }
    );
    out += &table(
        &["POOL", "IPV4 USED", "IPV4 FREE", "IPV6 USED", "IPV6 FREE"],
        pools,
    );
    out += "\n";
    let services: Vec<Vec<String>> = s["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|svc| {
            let ips: Vec<String> = svc["ips"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let by: Vec<String> = svc["announced_by"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|entry| {
                    // [address, node] or [address, node, [interfaces]] (none: every
                    // eligible interface).
                    let interfaces: Vec<String> = entry[2]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect();
                    let via = if interfaces.is_empty() {
                        String::new()
                    } else {
                        format!(" via {}", interfaces.join(","))
                    };
                    format!("{} on {}{via}", text(&entry[0]), text(&entry[1]))
                })
                .collect();
            let mut by: Vec<String> = by.into_iter().map(|b| format!("L2 {b}")).collect();
            let peers: Vec<String> = svc["bgp_peers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let nodes: Vec<String> = svc["bgp_nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            match (peers.is_empty(), nodes.is_empty()) {
                (false, true) => by.push(format!("BGP to {}", peers.join(", "))),
                (_, false) => by.push(format!(
                    "BGP from {} to {}",
                    nodes.join(", "),
                    if peers.is_empty() {
                        "-".into()
                    } else {
                        peers.join(", ")
                    }
                )),
                (true, true) => {}
            }
            let state = match svc["error"].as_str() {
                Some(e) => format!("AllocationFailed: {e}"),
                None if by.is_empty() => "not announced".to_string(),
                None => by.join("; "),
            };
            let dash = |v: String| if v.is_empty() { "-".to_string() } else { v };
            vec![
                text(&svc["service"]),
                dash(ips.join(",")),
                dash(text(&svc["pool"])),
                state,
            ]
        })
        .collect();
    out += &table(&["SERVICE", "IPS", "POOL", "ANNOUNCED"], &services);
    let sessions: Vec<Vec<String>> = s["bgp_sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let n = |v: &Value| v.as_u64().unwrap_or(0);
            vec![
                p["node"].as_str().unwrap_or("-").to_string(),
                text(&p["name"]),
                text(&p["peer"]),
                text(&p["state"]),
                format!(
                    "{} ({} pending)",
                    n(&p["announced_prefixes"]),
                    n(&p["pending_prefixes"])
                ),
                p["bfd"].as_str().unwrap_or("-").to_string(),
            ]
        })
        .collect();
    if !sessions.is_empty() {
        out += "\n";
        let cluster = s["source"] == "cluster";
        let header = ["NODE", "BGP PEER", "ADDRESS", "STATE", "PREFIXES", "BFD"];
        let rows: Vec<Vec<String>> = if cluster {
            sessions
        } else {
            sessions.into_iter().map(|r| r[1..].to_vec()).collect()
        };
        out += &table(if cluster { &header } else { &header[1..] }, &rows);
    }
    for sp in s["speakers"].as_array().into_iter().flatten() {
        if let Some(e) = sp["error"].as_str() {
            out += &format!("  speaker {}: {e}\n", text(&sp["pod"]));
        }
    }
    for p in s["bgp_problems"].as_array().into_iter().flatten() {
        out += &format!("  no session: {}\n", text(p));
    }
    out
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        out += cells.join("  ").trim_end();
        out += "\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_pools_services_and_state() {
        let body = r#"{"node":"node-a","config_loaded":true,"config_stale":true,
                "problems":["IPAddressPool/x: spec.addresses[0]: bad"],
                "members":["node-a","node-b"],
                "pools":[{"pool":"lab","assigned_ipv4":1,"available_ipv4":9,"assigned_ipv6":0,"available_ipv6":18446744073709551616}],
                "services":[
                  {"service":"default/web","ips":["198.51.100.200"],"pool":"lab","error":null,"announced_by":[["198.51.100.200","node-b"]]},
                  {"service":"default/typo","ips":[],"pool":null,"error":"pool \"x\" does not exist","announced_by":[]},
                  {"service":"default/eth","ips":["198.51.100.201"],"pool":"lab","error":null,"announced_by":[["198.51.100.201","node-a",["eth0","eth1"]]]},
                  {"service":"default/bgp","ips":["203.0.113.5"],"pool":"lab","error":null,"announced_by":[],"bgp_peers":["tor"]}],
                "bgp_sessions":[{"name":"tor","peer":"198.51.100.1:179","state":"Established","up":true,"announced_prefixes":1,"pending_prefixes":0,"bfd":"up"}],
                "bgp_problems":["BGPPeer/x: spec.vrf: not supported"]}"#;
        let s: Value = serde_json::from_str(body).unwrap();
        let text = render(&s, &pool_rows(body));
        assert!(text.contains("configuration: STALE"), "{text}");
        assert!(
            text.contains("problem: IPAddressPool/x: spec.addresses[0]: bad"),
            "{text}"
        );
        assert!(text.contains("members:       node-a, node-b"), "{text}");
        assert!(
            text.contains("lab   1          9          0          18446744073709551616"),
            "{text}"
        );
        assert!(
            text.contains("default/web   198.51.100.200  lab   L2 198.51.100.200 on node-b"),
            "{text}"
        );
        assert!(
            text.contains(
                "default/eth   198.51.100.201  lab   L2 198.51.100.201 on node-a via eth0,eth1"
            ),
            "{text}"
        );
        assert!(
            text.contains("default/bgp   203.0.113.5     lab   BGP to tor"),
            "{text}"
        );
        assert!(
            text.contains("tor       198.51.100.1:179  Established  1 (0 pending)  up"),
            "{text}"
        );
        assert!(
            text.contains("no session: BGPPeer/x: spec.vrf: not supported"),
            "{text}"
        );
        assert!(
            text.contains(
                "default/typo  -               -     AllocationFailed: pool \"x\" does not exist"
            ),
            "{text}"
        );
    }

    #[test]
    fn renders_a_cluster_document() {
        let body = r#"{"source":"cluster","node":"cluster (namespace metallb-system)",
                "config_loaded":true,"config_stale":false,"problems":[],"members":["node-a"],
                "pools":[],
                "services":[{"service":"shop/api","ips":["192.0.2.2"],"pool":"main","error":null,
                  "announced_by":[],"bgp_peers":["tor"],"bgp_nodes":["node-a","node-c"]}],
                "bgp_sessions":[{"node":"node-a","name":"tor","peer":"198.51.100.1:179","state":"Established",
                  "up":true,"announced_prefixes":1,"pending_prefixes":0,"bfd":"up"}],
                "speakers":[{"pod":"speaker-b","node":"node-b","error":"permission denied reading pods/proxy"}]}"#;
        let s: Value = serde_json::from_str(body).unwrap();
        let text = render(&s, &pool_rows(body));
        assert!(
            text.contains("shop/api  192.0.2.2  main  BGP from node-a, node-c to tor"),
            "{text}"
        );
        assert!(
            text.contains("node-a  tor       198.51.100.1:179  Established  1 (0 pending)  up"),
            "{text}"
        );
        assert!(
            text.contains("speaker speaker-b: permission denied reading pods/proxy"),
            "{text}"
        );
    }

    #[test]
    fn unreachable_agent_says_what_to_do() {
        // A port on loopback nobody listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = fetch(&addr, "/status").unwrap_err();
        assert!(
            err.contains("no agent at") && err.contains("ferrolb run --metrics-addr"),
            "{err}"
        );
        assert!(
            fetch("not an address", "/status")
                .unwrap_err()
                .contains("bad agent address")
        );
    }
}
