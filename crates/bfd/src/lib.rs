//! Bidirectional Forwarding Detection for ferrolb.
//!
//! RFC 5880 asynchronous mode, with the encapsulation rules of RFC 5881 (single hop,
//! IPv4/IPv6, TTL/hop limit 255) and RFC 5883 (multihop, minimum TTL), written as a
//! sans-IO state machine: time is an input ([`std::time::Instant`]), packets come in as
//! bytes, and the caller polls for packets to send, the next deadline and events.
//!
//! - [`packet`]: the control packet wire format (parse with every RFC 5880 §6.8.6
//!   check, build).
//! - [`session`]: one session's state machine.
//! - [`config`]: MetalLB `BFDProfile`-like settings, defaults and ranges.
//! - [`rng`]: the small seeded generator used for transmit jitter.
//! - `io` (feature `io`, default): the tokio UDP task for single-hop sessions.
//!
//! Not supported (yet): authentication (packets with the A bit are rejected), Demand
//! mode on our side, the Echo function.
#![warn(missing_docs)]

pub mod config;
#[cfg(feature = "io")]
pub mod io;
pub mod packet;
pub mod rng;
pub mod session;

pub use config::{BfdProfile, ProfileError, SessionConfig, TtlCheck};
pub use packet::{ControlPacket, Diag, ParseError, State};
pub use rng::{JitterRng, SplitMix64};
pub use session::{Event, RxError, Session, SessionStats};

/// UDP destination port of single-hop control packets (RFC 5881 §4).
pub const SINGLE_HOP_PORT: u16 = 3784;
/// UDP destination port of multihop control packets (RFC 5883 §5).
pub const MULTIHOP_PORT: u16 = 4784;
/// Lowest UDP source port a session may use (RFC 5881 §4).
pub const SOURCE_PORT_MIN: u16 = 49152;
/// Highest UDP source port a session may use (RFC 5881 §4).
pub const SOURCE_PORT_MAX: u16 = 65535;
