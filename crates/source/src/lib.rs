//! ferrolb's sources: where the [`Snapshot`] comes from.
//!
//! This crate reads a directory of Kubernetes manifests (the standalone mode, the lab,
//! tests and the demo). The Kubernetes API source produces the same [`Snapshot`] type.

#![warn(missing_docs)]

mod decode;
mod dir;
mod documents;

pub use decode::{Decoded, decode_object};
pub use dir::{Loaded, SourceError, load_dir, load_documents};
pub use documents::split_documents;

#[doc(no_inline)]
pub use ferrolb_model::Snapshot;
