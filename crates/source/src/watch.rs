//! Noticing changes to a manifest directory, by polling: robust on every filesystem
//! (including a ConfigMap volume, whose files change by symlink swaps) and cheap for the
//! few files such a directory holds.

use crate::dir::{SourceError, manifest_files};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Watches a directory for changes to its manifest files.
#[derive(Debug)]
pub struct DirWatch {
    dir: PathBuf,
    last: Option<u64>,
}

impl DirWatch {
    /// Watches `dir`. The first call to [`DirWatch::changed`] reports a change.
    pub fn new(dir: &Path) -> Self {
        DirWatch {
            dir: dir.to_path_buf(),
            last: None,
        }
    }

    /// Whether the set of manifest files, or the size or modification time of any, has
    /// changed since the last call.
    pub fn changed(&mut self) -> Result<bool, SourceError> {
        let now = fingerprint(&self.dir)?;
        let changed = self.last != Some(now);
        self.last = Some(now);
        Ok(changed)
    }
}

/// A hash of the manifest files' paths, sizes and modification times.
pub fn fingerprint(dir: &Path) -> Result<u64, SourceError> {
    let mut h = DefaultHasher::new();
    for path in manifest_files(dir)? {
        let meta = std::fs::metadata(&path).map_err(|source| SourceError::Io {
            path: path.clone(),
            source,
        })?;
        path.hash(&mut h);
        meta.len().hash(&mut h);
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        mtime.map(|d| d.as_nanos()).hash(&mut h);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_new_changed_and_removed_files() {
        let d = tempfile::tempdir().unwrap();
        let mut w = DirWatch::new(d.path());
        assert!(w.changed().unwrap(), "first look is a change");
        assert!(!w.changed().unwrap());
        std::fs::write(d.path().join("a.yaml"), "a: 1\n").unwrap();
        assert!(w.changed().unwrap(), "new file");
        assert!(!w.changed().unwrap());
        std::fs::write(d.path().join("a.yaml"), "a: 22\n").unwrap();
        assert!(w.changed().unwrap(), "size changed");
        std::fs::write(d.path().join("notes.txt"), "x").unwrap();
        assert!(!w.changed().unwrap(), "other files do not count");
        std::fs::remove_file(d.path().join("a.yaml")).unwrap();
        assert!(w.changed().unwrap(), "removed");
    }
}
