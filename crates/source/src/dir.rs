//! The manifest-directory source: every `*.yaml` / `*.yml` file under a directory,
//! read recursively, each possibly holding several documents.

use crate::decode::{Decoded, decode_object};
use crate::documents::split_documents;
use ferrolb_model::{Problem, Snapshot};
use serde_json::Value;
use std::path::{Path, PathBuf};
use thiserror::Error;
use tracing::debug;

/// The directory itself could not be read.
#[derive(Debug, Error)]
pub enum SourceError {
    /// Reading a directory or file failed.
    #[error("{path}: {source}")]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The path is not a directory.
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
}

/// The result of reading manifests.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The objects read.
    pub snapshot: Snapshot,
    /// Documents that are not valid YAML, or objects that do not fit their kind's schema.
    /// The objects concerned are left out of the snapshot.
    pub problems: Vec<Problem>,
    /// Number of manifest files read.
    pub files: usize,
    /// Number of objects of kinds ferrolb does not read.
    pub skipped: usize,
}

/// The manifest files under `dir`, in path order (the files [`load_dir`] reads).
pub fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let meta = std::fs::metadata(dir).map_err(|source| SourceError::Io {
        path: dir.into(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(SourceError::NotADirectory(dir.into()));
    }
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    Ok(files)
}

/// Reads every `*.yaml` and `*.yml` file under `dir`, recursively, in path order. Entries
/// whose name starts with `.` are ignored (so a mounted ConfigMap's `..data` copies are
/// not read twice). Symbolic links to files are followed; links to directories are not.
pub fn load_dir(dir: &Path) -> Result<Loaded, SourceError> {
    let files = manifest_files(dir)?;
    let mut texts = Vec::with_capacity(files.len());
    for path in files {
        let bytes = std::fs::read(&path).map_err(|source| SourceError::Io {
            path: path.clone(),
            source,
        })?;
        let shown = path
            .strip_prefix(dir)
            .map(Path::to_path_buf)
            .unwrap_or(path);
        texts.push((shown.display().to_string(), bytes));
    }
    Ok(load_documents(
        texts.iter().map(|(p, b)| (p.as_str(), b.as_slice())),
    ))
}

/// Reads manifests from in-memory files: `(name, contents)` pairs, in the order given.
/// Used by [`load_dir`] and for manifests embedded in the binary.
pub fn load_documents<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Loaded {
    let mut loaded = Loaded::default();
    for (name, bytes) in files {
        loaded.files += 1;
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                loaded
                    .problems
                    .push(file_problem(name, None, format!("not UTF-8 text: {e}")));
                continue;
            }
        };
        for doc in split_documents(text) {
            let where_ = Some((doc.index, doc.first_line));
            let value: Option<Value> = match serde_saphyr::from_str(doc.text) {
                Ok(v) => v,
                Err(e) => {
                    let msg = yaml_message(&e.to_string());
                    let msg = match e.location() {
                        Some(l) => format!(
                            "invalid YAML at line {}, column {}: {msg}",
                            (l.line() as usize)
                                .saturating_add(doc.first_line)
                                .saturating_sub(1),
                            l.column()
                        ),
                        None => format!("invalid YAML: {msg}"),
                    };
                    loaded.problems.push(file_problem(name, where_, msg));
                    continue;
                }
            };
            let Some(value) = value else { continue };
            decode_into(value, &mut loaded, name, doc.index);
        }
    }
    loaded
}

/// Decodes one manifest (and the items of a `List`) into `loaded`.
fn decode_into(value: Value, loaded: &mut Loaded, file: &str, index: usize) {
    match decode_object(value, &mut loaded.snapshot) {
        Ok(Decoded::Added) => {}
        Ok(Decoded::List(items)) => {
            for item in items {
                decode_into(item, loaded, file, index);
            }
        }
        Ok(Decoded::Skipped { api_version, kind }) => {
            debug!(file, document = index, %api_version, %kind, "skipping a kind ferrolb does not read");
            loaded.skipped += 1;
        }
        Err(mut p) => {
            p.message = format!("{} (in {file}, document {index})", p.message);
            loaded.problems.push(p);
        }
    }
}

fn file_problem(name: &str, doc: Option<(usize, usize)>, message: String) -> Problem {
    let object = match doc {
        Some((index, _)) => format!("{name}: document {index}"),
        None => name.to_string(),
    };
    Problem {
        object,
        field: String::new(),
        message,
        transient: false,
    }
}

/// The parser's message without its own `error: line L column C:` prefix (its line is
/// relative to the document; the caller reports the file's).
fn yaml_message(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error:").unwrap_or(first).trim_start();
    let without_location = first
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
        .filter(|(pos, _)| {
            pos.split(" column ")
                .all(|n| n.trim().chars().all(|c| c.is_ascii_digit()))
        })
        .map(|(_, msg)| msg);
    without_location.unwrap_or(first).to_string()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Io {
        path: dir.into(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::Io {
            path: dir.into(),
            source,
        })?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(|source| SourceError::Io {
            path: path.clone(),
            source,
        })?;
        if file_type.is_dir() {
            collect(&path, out)?;
        } else if file_type.is_file() || (file_type.is_symlink() && path.is_file()) {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "yaml" || ext == "yml" {
                out.push(path);
            }
        }
    }
    Ok(())
}
