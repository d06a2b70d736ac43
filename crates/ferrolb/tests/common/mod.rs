//! What the end-to-end lab tests share: writing manifests as an editor does, starting
//! `ferrolb run` on a lab host, and asking its HTTP endpoint.

use ferrolb_lab::Lab;
use std::net::Ipv4Addr;
use std::path::Path;

/// Writes `text` to `dir/file` through a temporary file and a rename, as an editor or a
/// ConfigMap update does (the agent never reads half a file).
pub fn write_manifest(dir: &Path, file: &str, text: &str) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(file)).unwrap();
}

/// Starts `ferrolb run` on lab host `node` (address 198.51.100.`octet`) on the manifests
/// of `dir`, logging to `dir/.NODE.log`, serving HTTP on port 9120; its PID.
pub fn start_agent(lab: &mut Lab, node: &str, octet: u8, dir: &Path) -> u32 {
    start_agent_with(lab, node, octet, dir, &[])
}

/// [`start_agent`] with more arguments for `ferrolb run`.
pub fn start_agent_with(lab: &mut Lab, node: &str, octet: u8, dir: &Path, extra: &[&str]) -> u32 {
    let log = dir.join(format!(".{node}.log"));
    let metrics = format!("198.51.100.{octet}:9120");
    let mut argv = vec![
        "env",
        "RUST_LOG=info",
        env!("CARGO_BIN_EXE_ferrolb"),
        "run",
        "--manifests",
        dir.to_str().unwrap(),
        "--node",
        node,
        "--metrics-addr",
        &metrics,
    ];
    argv.extend_from_slice(extra);
    lab.spawn(node, &argv, Some(&log)).expect("spawn ferrolb")
}

/// The log of the agent on `node`, headed by its name.
pub fn agent_log(dir: &Path, node: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!(".{node}.log"))).unwrap_or_default();
    format!("--- {node}\n{text}")
}

/// GET `path` from the agent at `ip` (port 9120), from lab host `from`: the whole answer.
pub fn http_get(lab: &Lab, from: &str, ip: Ipv4Addr, path: &str) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/{ip}/9120 && printf 'GET {path} HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3 && cat <&3"
    );
    let out = lab.exec(from, &["bash", "-c", &script]).expect("http");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
