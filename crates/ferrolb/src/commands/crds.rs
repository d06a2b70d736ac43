//! `ferrolb crds`: the CRDs as YAML.

use std::io::Write;
use std::process::ExitCode;

/// Prints every CRD, as one multi-document YAML stream.
pub fn run(out: &mut impl Write) -> Result<ExitCode, Box<dyn std::error::Error>> {
    out.write_all(ferrolb_model::crd::crds_yaml()?.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
