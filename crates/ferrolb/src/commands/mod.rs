//! The subcommands.

pub mod allocate;
pub mod check;
pub mod controller;
pub mod crds;
pub mod speaker;
pub mod status;

use crate::embedded::EXAMPLES;
use ferrolb_model::{Config, Problem, Snapshot};
use ferrolb_source::{Loaded, SourceError, load_dir, load_documents};
use std::path::Path;

/// Loads a manifest directory, or the embedded examples when none is given.
pub fn load(dir: Option<&Path>) -> Result<Loaded, SourceError> {
    match dir {
        Some(d) => load_dir(d),
        None => Ok(load_documents(
            EXAMPLES.iter().map(|(n, t)| (*n, t.as_bytes())),
        )),
    }
}

/// A valid input: the objects read, their configuration, and what the source counted.
pub type Valid = (Snapshot, Config, Loaded);

/// Loads and validates: the snapshot and its configuration, or every problem found in
/// reading and in validating.
pub fn load_valid(dir: Option<&Path>) -> Result<Result<Valid, Vec<Problem>>, SourceError> {
    let mut loaded = load(dir)?;
    let snapshot = std::mem::take(&mut loaded.snapshot);
    let mut problems = std::mem::take(&mut loaded.problems);
    match ferrolb_model::validate(&snapshot) {
        Ok(config) if problems.is_empty() => Ok(Ok((snapshot, config, loaded))),
        Ok(_) => Ok(Err(problems)),
        Err(more) => {
            problems.extend(more);
            Ok(Err(problems))
        }
    }
}

/// Runs a long-lived command on a single-threaded tokio runtime (the agent, the
/// controller and the speaker are I/O-bound; one thread keeps them small).
pub fn block_on<T, F>(future: F) -> Result<T, Box<dyn std::error::Error>>
where
    F: Future<Output = Result<T, Box<dyn std::error::Error>>>,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// Writes one line per problem.
pub fn write_problems(out: &mut impl std::io::Write, problems: &[Problem]) -> std::io::Result<()> {
    for p in problems {
        writeln!(out, "{p}")?;
    }
    Ok(())
}
