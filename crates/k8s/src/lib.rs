//! ferrolb on Kubernetes: the thin kube-rs layer around the pure cores.
//!
//! - [`core`]: the controller core (sans-IO): the shared allocator and when a Service
//!   keeps, claims, gets or loses addresses.
//! - [`decision`]: what to write for a Service given the core's outcome (pure).
//! - [`lease`]: leader election with a Lease (sans-IO core plus a small task).

#![warn(missing_docs)]

pub mod controller;
pub mod core;
pub mod decision;
pub mod lease;
pub mod metrics;
pub mod sink;
pub mod source;
