//! ferrolb's sources: where the [`Snapshot`] comes from.
//!
//! This crate reads a directory of Kubernetes manifests (the standalone mode, the lab,
//! tests and the demo). The Kubernetes API source produces the same [`Snapshot`] type.

#![warn(missing_docs)]

mod decode;
mod dir;
mod documents;
mod watch;

pub use decode::{Decoded, decode_object};
pub use dir::{Loaded, SourceError, load_dir, load_documents, manifest_files};
pub use documents::split_documents;
pub use watch::{DirWatch, fingerprint};

#[doc(no_inline)]
pub use ferrolb_model::Snapshot;
