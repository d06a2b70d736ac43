//! The standalone source: a manifest directory, polled for changes.

use crate::agent::Input;
use ferrolb_source::{DirWatch, load_dir};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::info;

/// Reads `dir` at once and again whenever it changes (checked every `poll`), sending
/// what it holds; an unreadable directory is said once, and read again when it
/// recovers. Ends when the receiver is gone.
pub async fn watch_dir(dir: PathBuf, poll: Duration, tx: mpsc::Sender<Input>) {
    let mut watch = DirWatch::new(&dir);
    let mut unreadable = false;
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let input = match watch.changed() {
            // Readable again: read even if unchanged, to clear the stale flag.
            Ok(changed) if changed || unreadable => {
                unreadable = false;
                match load_dir(&dir) {
                    Ok(loaded) => {
                        info!(files = loaded.files, "manifests read");
                        Input::Read {
                            snapshot: Box::new(loaded.snapshot),
                            problems: loaded.problems,
                        }
                    }
                    Err(e) => {
                        unreadable = true;
                        Input::Unreadable(format!("reading {}: {e}", dir.display()))
                    }
                }
            }
            Ok(_) => continue,
            // Said once, not every tick.
            Err(_) if unreadable => continue,
            Err(e) => {
                unreadable = true;
                Input::Unreadable(format!("reading {}: {e}", dir.display()))
            }
        };
        if tx.send(input).await.is_err() {
            return;
        }
    }
}
