//! `ferrolb allocate DIR`: which address each LoadBalancer Service gets.

use ferrolb_allocator::{Options, ServiceResult, allocate};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Output format.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// A table for people.
    Table,
    /// A JSON array for programs.
    Json,
}

/// Arguments of `ferrolb allocate`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory of manifests, read recursively (default: the built-in examples).
    dir: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Format,
    /// Handle only Services of this loadBalancerClass (default: Services without a class).
    #[arg(long = "lb-class")]
    lb_class: Option<String>,
}

/// One line of the JSON output.
#[derive(Serialize)]
struct Row {
    service: String,
    ips: Vec<String>,
    pool: Option<String>,
    error: Option<String>,
}

impl From<&ServiceResult> for Row {
    fn from(r: &ServiceResult) -> Self {
        Row {
            service: r.service.to_string(),
            ips: r.ips.iter().map(ToString::to_string).collect(),
            pool: r.pool.clone(),
            error: r.error.as_ref().map(ToString::to_string),
        }
    }
}

/// Prints the allocation of every Service that is ours. Exit 1 only when the
/// configuration is invalid (then the `check` lines).
pub fn run(args: &Args, out: &mut impl Write) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (snapshot, config, _) = match super::load_valid(args.dir.as_deref())? {
        Ok(valid) => valid,
        Err(problems) => {
            super::write_problems(out, &problems)?;
            return Ok(ExitCode::from(1));
        }
    };
    let options = Options {
        lb_class: args.lb_class.clone(),
    };
    let outcome = allocate(&config, &snapshot, &options, &BTreeMap::new());
    for r in &outcome.results {
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", r.service);
        }
    }
    let rows: Vec<Row> = outcome.results.iter().map(Row::from).collect();
    match args.output {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
        }
        Format::Table => write_table(out, &rows)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_table(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            let ips = if r.ips.is_empty() {
                "-".to_string()
            } else {
                r.ips.join(",")
            };
            let status = match &r.error {
                Some(e) => format!("AllocationFailed: {e}"),
                None => "IPAllocated".to_string(),
            };
            [
                r.service.clone(),
                r.pool.clone().unwrap_or_else(|| "-".into()),
                ips,
                status,
            ]
        })
        .collect();
    let header = ["SERVICE", "POOL", "IPS", "STATUS"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
