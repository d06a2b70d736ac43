//! ferrolb's BGP speaker: announces LoadBalancer addresses to routers. It only announces:
//! routes received from peers are validated and dropped, never stored.
//!
//! - [`message`]: the BGP-4 codec (OPEN with capabilities, UPDATE, KEEPALIVE,
//!   NOTIFICATION, ROUTE-REFRESH). Decoding never panics, and every malformation maps to
//!   the NOTIFICATION RFC 4271 §6 prescribes.
//! - [`session`]: one peer's finite state machine, sans-IO like the membership core
//!   (inputs: bytes, connection outcomes and timer ticks with an [`std::time::Instant`];
//!   outputs: actions for the I/O layer, the next deadline, events). It negotiates the
//!   session, keeps the hold and keepalive timers, and turns the desired set of routes into
//!   UPDATEs, many prefixes per message.
//! - [`io`] (feature `io`, default): a tokio task running a session over TCP (TCP-MD5,
//!   source address, TTL and GTSM; a status snapshot for metrics), and a listener for
//!   connections peers open, with connection collision detection.
//!
//! `tests/interop.rs` runs the speaker in a lab namespace against BIRD 2, FRR 8 and GoBGP 3
//! (IPv4 and IPv6 sessions): they install our routes with our address as next hop and
//! remove withdrawn ones; iBGP with TCP-MD5 (a wrong password never comes up) shows an
//! empty AS_PATH, our LOCAL_PREF, communities and large communities in their RIBs; two
//! speakers give one ECMP route with two next hops, and withdrawing narrows it; BIRD's and
//! FRR's route refresh is answered; [`io::PeerHandle::peer_lost`] drops a session at once
//! and it comes back; restarted routers get the routes again; a link cut with a 3 s hold
//! time withdraws and recovers; a listener takes the routers' own connections
//! (collisions resolved). Run them as root with `cargo nextest run -p ferrolb-bgp`.
//!
//! Beyond MetalLB's native speaker (see `shared/reference/metallb-behaviour.md`): IPv6
//! unicast in MP_REACH_NLRI/MP_UNREACH_NLRI, large communities, the graceful restart
//! capability with End-of-RIB, route refresh, graceful shutdown (RFC 8326), many prefixes
//! per UPDATE, and the hold timer enforced on receive.
//!
//! # Why our own codec rather than netgauze-bgp-pkt
//!
//! netgauze-bgp-pkt 0.13 is a complete, interop-tested codec, and a good candidate for a
//! test peer. The speaker itself needs a small, fixed subset: the five message types, nine
//! path attributes (others are kept as opaque bytes) and four capabilities. Owning that
//! subset (about 1,100 lines with its docs, tests apart) gives:
//!
//! - exact NOTIFICATION mapping: each [`message::MessageError`] carries the code, subcode
//!   and data of RFC 4271 §6 (attribute flags vs length vs optional-attribute errors, the
//!   offending attribute as data), which a general-purpose codec's error type would have to
//!   be translated into, case by case;
//! - exact size accounting for packing UPDATEs ([`message::update_base_len`] plus
//!   [`message::prefix_len`] per prefix, MP attributes always with an extended length), so
//!   each UPDATE is filled up to 4096 bytes without trial encoding;
//! - a decoder small enough to fuzz and property-test to exhaustion (encode → decode is
//!   the identity; arbitrary bytes never panic), with two dependencies (thiserror, ipnet)
//!   instead of netgauze's tree (nom, serde, strum, …).
//!
//! Malformed UPDATEs reset the session as RFC 4271 says; RFC 7606's "treat as withdraw"
//! would be a refinement (we keep nothing, so it amounts to ignoring the UPDATE).
#![warn(missing_docs)]

#[cfg(feature = "io")]
pub mod io;
pub mod message;
pub mod session;

pub use message::{Codec, Family, LargeCommunity, Message, MessageError, Notification};
pub use session::{
    Action, CloseReason, ConfigError, Event, GracefulRestartConfig, Inbound, Negotiated, PeerAs,
    PeerStatus, RouteAttributes, Session, SessionConfig, State, Stats,
};
