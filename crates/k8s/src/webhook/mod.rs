//! The validating admission webhook for the `metallb.io` kinds, and the BGPPeer
//! conversion webhook.
//!
//! - [`decide`]: the decision, pure: the configuration in force (a
//!   [`ferrolb_model::Snapshot`] from the controller's reflector stores) and one request
//!   in, a [`Verdict`] out. It rejects what `ferrolb check` rejects, with its messages;
//!   see [`decide()`] for the exact rule (only problems the request introduces count).
//! - [`review`]: AdmissionReview bodies in and out; any JSON is read without a panic.
//! - [`convert`]: BGPPeer v1beta1 ⇄ v1beta2 (ConversionReview).
//! - [`http`]: the axum routes, `/validate-metallb-io-v1beta1-<kind>` (ipaddresspool,
//!   l2advertisement, bgpadvertisement, community, bfdprofile),
//!   `/validate-metallb-io-v1beta2-bgppeer` and `/convert`.

pub mod convert;
pub mod decide;
pub mod http;
pub mod review;

pub use decide::{Kind, Operation, Request, Verdict, decide};
pub use http::{SnapshotSource, WebhookState, router};
