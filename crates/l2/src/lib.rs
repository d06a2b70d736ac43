//! ferrolb's layer 2 announcer: answers ARP (IPv4) and NDP (IPv6) for the service
//! addresses this node owns, and announces takeovers with gratuitous frames so clients
//! switch to this node at once.
//!
//! Layers:
//! - [`packet`]: Ethernet II, ARP (RFC 826) and Neighbor Solicitation/Advertisement
//!   (RFC 4861) codecs, sans-IO, fuzzed.
//! - [`responder`]: decides, per received frame, whether to answer and builds the answer.
//! - [`gratuitous`]: when to send gratuitous ARP / unsolicited NA bursts (time is an
//!   input).
//! - [`interfaces`]: which interfaces to use (MetalLB's rules and exclude list).
//! - [`socket`] and [`task`] (feature `io`, on by default): `AF_PACKET` sockets and the
//!   tokio task behind [`L2Announcer::spawn`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferrolb_l2::L2Error> {
//! use ferrolb_l2::{AnnouncerConfig, Interfaces, L2Announcer};
//! use std::collections::BTreeMap;
//!
//! let announcer = L2Announcer::spawn(AnnouncerConfig::default());
//! let owned = BTreeMap::from([("203.0.113.10".parse().unwrap(), Interfaces::All)]);
//! let status = announcer.set_owned(owned).await?;
//! println!("announcing on {:?}", status);
//! println!("{:?}", announcer.stats());
//! announcer.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod gratuitous;
pub mod interfaces;
#[cfg(feature = "io")]
mod netlink;
pub mod packet;
pub mod responder;
#[cfg(feature = "io")]
pub mod socket;
#[cfg(feature = "io")]
pub mod task;

pub use gratuitous::GratuitousScheduler;
pub use interfaces::{Family, Interfaces, Link, Rejection};
pub use packet::{MacAddr, PacketError};
pub use responder::{Ignored, InterfaceInfo, IpStats, Outcome, Reply, Responder};
#[cfg(feature = "io")]
pub use task::{
    AnnounceStatus, AnnouncerConfig, IpStatus, L2Announcer, L2Error, L2Handle, L2Stats,
};
