//! ferrolb's resource model: the `metallb.io` custom resources, the [`Snapshot`] of the
//! world both sources produce, and validation into a [`Config`].
//!
//! Data flows Source → [`Snapshot`] → [`validate()`] → [`Config`] → allocation → election →
//! announcers; this crate holds the first three.

#![warn(missing_docs)]

pub mod annotations;
pub mod config;
pub mod crd;
mod problem;
pub mod selector;
mod snapshot;
pub mod validate;

pub use config::{
    BfdProfile, BgpAdvertisement, BgpCommunity, CommunityParseError, Config, L2Advertisement,
    Password, Peer, PeerAsn, Pool, PoolAllocation, PreferredNodes,
};
pub use problem::Problem;
pub use selector::Selector;
pub use snapshot::Snapshot;
pub use validate::validate;
