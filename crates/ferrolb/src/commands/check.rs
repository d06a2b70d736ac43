//! `ferrolb check DIR`: validate manifests.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `ferrolb check`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory of manifests, read recursively (default: the built-in examples).
    dir: Option<PathBuf>,
}

/// Exit 0 with a summary when valid; else exit 1 and one line per problem.
pub fn run(args: &Args, out: &mut impl Write) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match super::load_valid(args.dir.as_deref())? {
        Ok((snapshot, _config, loaded)) => {
            let s = &snapshot;
            let counts = [
                (s.pools.len(), "IPAddressPool"),
                (s.l2_advertisements.len(), "L2Advertisement"),
                (s.bgp_advertisements.len(), "BGPAdvertisement"),
                (s.bgp_peers.len(), "BGPPeer"),
                (s.communities.len(), "Community"),
                (s.bfd_profiles.len(), "BFDProfile"),
                (s.services.len(), "Service"),
                (s.nodes.len(), "Node"),
            ];
            let parts: Vec<String> = counts
                .iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, k)| format!("{n} {k}"))
                .collect();
            let parts = if parts.is_empty() {
                "no resources".to_string()
            } else {
                parts.join(", ")
            };
            let files = if loaded.files == 1 { "file" } else { "files" };
            writeln!(out, "valid: {parts} in {} {files}", loaded.files)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            super::write_problems(out, &problems)?;
            Ok(ExitCode::from(1))
        }
    }
}
