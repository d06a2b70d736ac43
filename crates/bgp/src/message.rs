//! The BGP-4 wire format: OPEN, UPDATE, KEEPALIVE, NOTIFICATION and ROUTE-REFRESH
//! (RFC 4271 §4, RFC 5492 capabilities, RFC 6793 4-octet AS, RFC 4760 multiprotocol
//! NLRI, RFC 2918 route refresh, RFC 1997 communities, RFC 8092 large communities,
//! RFC 4724 graceful restart capability).
//!
//! [`decode`] takes a byte stream and returns the first whole message (or `None` when more
//! bytes are needed). It never panics; a malformed message gives a [`MessageError`] whose
//! [`MessageError::notification`] is the NOTIFICATION (code, subcode, data) RFC 4271 §6
//! prescribes. [`Message::encode`] is the inverse.
//!
//! The AS_PATH and AS4_PATH encodings depend on whether both sides announced the 4-octet
//! AS capability: [`Codec`] carries that.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Length of the message header (marker, length, type).
pub const HEADER_LEN: usize = 19;
/// The largest BGP message (RFC 4271 §4.1; RFC 8654 extended messages are not supported).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The 2-octet AS number standing for a 4-octet one (RFC 6793).
pub const AS_TRANS: u16 = 23456;
/// The BGP version we speak.
pub const BGP_VERSION: u8 = 4;

/// Message type codes.
mod kind {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// Path attribute type codes.
pub mod attr {
    /// ORIGIN (RFC 4271).
    pub const ORIGIN: u8 = 1;
    /// AS_PATH (RFC 4271).
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP (RFC 4271).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC (RFC 4271).
    pub const MED: u8 = 4;
    /// LOCAL_PREF (RFC 4271).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE (RFC 4271).
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR (RFC 4271).
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITY: u8 = 32;
}

const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_PARTIAL: u8 = 0x20;
const FLAG_EXTENDED: u8 = 0x10;

/// Capability codes (RFC 5492 registry).
mod cap {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// How messages are encoded and decoded on one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Codec {
    /// Both sides announced the 4-octet AS capability: AS_PATH carries 4-octet ASNs.
    pub four_octet_as: bool,
}

/// An address family and subsequent address family (RFC 4760).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Family {
    /// Address Family Identifier (1 IPv4, 2 IPv6).
    pub afi: u16,
    /// Subsequent Address Family Identifier (1 unicast).
    pub safi: u8,
}

impl Family {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };

    /// The unicast family of a prefix.
    pub fn of(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Family::IPV4_UNICAST,
            IpNet::V6(_) => Family::IPV6_UNICAST,
        }
    }
}

/// A BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918).
    RouteRefresh(Family),
}

/// An OPEN message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// Protocol version (4).
    pub version: u8,
    /// The sender's AS, or [`AS_TRANS`] when it does not fit in 2 octets.
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP identifier (router ID), non-zero.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, from all Capabilities optional parameters, in order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The sender's AS: the 4-octet AS capability's if present, else `my_as`.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Whether the 4-octet AS capability is present.
    pub fn four_octet_as(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
    }

    /// The families announced with the multiprotocol capability.
    pub fn families(&self) -> impl Iterator<Item = Family> + '_ {
        self.capabilities.iter().filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
    }

    /// Whether the route refresh capability is present.
    pub fn route_refresh(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::RouteRefresh))
    }

    /// The graceful restart capability, if present.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }
}

/// A capability (RFC 5492).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions for one family (RFC 4760), code 1.
    Multiprotocol(Family),
    /// Route refresh (RFC 2918), code 2.
    RouteRefresh,
    /// Graceful restart (RFC 4724), code 64.
    GracefulRestart(GracefulRestart),
    /// 4-octet AS number (RFC 6793), code 65, with the sender's AS.
    FourOctetAs(u32),
    /// Any other capability, kept as is.
    Other {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// The graceful restart capability (RFC 4724 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestart {
    /// Restart State bit: the sender has restarted.
    pub restarted: bool,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Families whose routes are preserved, each with its Forwarding State bit.
    pub families: Vec<(Family, bool)>,
}

/// A NOTIFICATION message (RFC 4271 §4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data (depends on code and subcode).
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION without data.
    pub fn new(code: u8, subcode: u8) -> Notification {
        Notification {
            code,
            subcode,
            data: Vec::new(),
        }
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.code {
            1 => "Message Header Error",
            2 => "OPEN Message Error",
            3 => "UPDATE Message Error",
            4 => "Hold Timer Expired",
            5 => "Finite State Machine Error",
            6 => "Cease",
            7 => "ROUTE-REFRESH Message Error",
            _ => "unknown error",
        };
        write!(f, "{name} ({}/{})", self.code, self.subcode)
    }
}

/// NOTIFICATION error codes and subcodes (RFC 4271 §4.5, RFC 4486, RFC 7313).
pub mod code {
    /// Message Header Error.
    pub const HEADER: u8 = 1;
    /// Message Header Error: Connection Not Synchronized.
    pub const HEADER_NOT_SYNCHRONIZED: u8 = 1;
    /// Message Header Error: Bad Message Length.
    pub const HEADER_BAD_LENGTH: u8 = 2;
    /// Message Header Error: Bad Message Type.
    pub const HEADER_BAD_TYPE: u8 = 3;
    /// OPEN Message Error.
    pub const OPEN: u8 = 2;
    /// OPEN Message Error: Unspecific (malformed optional parameter).
    pub const OPEN_UNSPECIFIC: u8 = 0;
    /// OPEN Message Error: Unsupported Version Number.
    pub const OPEN_UNSUPPORTED_VERSION: u8 = 1;
    /// OPEN Message Error: Bad Peer AS.
    pub const OPEN_BAD_PEER_AS: u8 = 2;
    /// OPEN Message Error: Bad BGP Identifier.
    pub const OPEN_BAD_BGP_ID: u8 = 3;
    /// OPEN Message Error: Unsupported Optional Parameter.
    pub const OPEN_UNSUPPORTED_PARAMETER: u8 = 4;
    /// OPEN Message Error: Unacceptable Hold Time.
    pub const OPEN_UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// UPDATE Message Error.
    pub const UPDATE: u8 = 3;
    /// UPDATE Message Error: Malformed Attribute List.
    pub const UPDATE_MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// UPDATE Message Error: Unrecognized Well-known Attribute.
    pub const UPDATE_UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    /// UPDATE Message Error: Missing Well-known Attribute.
    pub const UPDATE_MISSING_WELL_KNOWN: u8 = 3;
    /// UPDATE Message Error: Attribute Flags Error.
    pub const UPDATE_ATTRIBUTE_FLAGS: u8 = 4;
    /// UPDATE Message Error: Attribute Length Error.
    pub const UPDATE_ATTRIBUTE_LENGTH: u8 = 5;
    /// UPDATE Message Error: Invalid ORIGIN Attribute.
    pub const UPDATE_INVALID_ORIGIN: u8 = 6;
    /// UPDATE Message Error: Invalid NEXT_HOP Attribute.
    pub const UPDATE_INVALID_NEXT_HOP: u8 = 8;
    /// UPDATE Message Error: Optional Attribute Error.
    pub const UPDATE_OPTIONAL_ATTRIBUTE: u8 = 9;
    /// UPDATE Message Error: Invalid Network Field.
    pub const UPDATE_INVALID_NETWORK: u8 = 10;
    /// UPDATE Message Error: Malformed AS_PATH.
    pub const UPDATE_MALFORMED_AS_PATH: u8 = 11;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// Cease: Administrative Shutdown (RFC 4486).
    pub const CEASE_ADMIN_SHUTDOWN: u8 = 2;
    /// Cease: Peer De-configured (RFC 4486).
    pub const CEASE_PEER_DECONFIGURED: u8 = 3;
    /// Cease: Connection Rejected (RFC 4486).
    pub const CEASE_CONNECTION_REJECTED: u8 = 5;
    /// Cease: Connection Collision Resolution (RFC 4486).
    pub const CEASE_COLLISION: u8 = 7;
    /// ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
    /// ROUTE-REFRESH Message Error: Invalid Message Length.
    pub const ROUTE_REFRESH_INVALID_LENGTH: u8 = 1;
}

/// An UPDATE message. IPv4 unicast routes are in `withdrawn` and `nlri`; other families in
/// the MP_REACH_NLRI / MP_UNREACH_NLRI attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 routes.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes, in order.
    pub attributes: Vec<PathAttribute>,
    /// Announced IPv4 routes.
    pub nlri: Vec<Ipv4Net>,
}

impl Update {
    /// Whether this is an End-of-RIB marker (RFC 4724 §2): an empty UPDATE for IPv4
    /// unicast, or one with only an empty MP_UNREACH_NLRI for another family.
    pub fn end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [PathAttribute::MpUnreach(u)] if u.withdrawn.is_empty() => Some(u.family),
            _ => None,
        }
    }
}

/// ORIGIN values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// Learned from an interior protocol (0).
    Igp,
    /// Learned from EGP (1).
    Egp,
    /// Otherwise (2).
    Incomplete,
}

/// AS_PATH segment types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SegmentType {
    /// AS_SET (1).
    Set,
    /// AS_SEQUENCE (2).
    Sequence,
    /// AS_CONFED_SEQUENCE (3, RFC 5065).
    ConfedSequence,
    /// AS_CONFED_SET (4, RFC 5065).
    ConfedSet,
}

impl SegmentType {
    fn code(self) -> u8 {
        match self {
            SegmentType::Set => 1,
            SegmentType::Sequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }
}

/// One AS_PATH segment (1 to 255 ASNs).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentType,
    /// The ASNs.
    pub asns: Vec<u32>,
}

/// A large community (RFC 8092): global administrator and two local data parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    /// Global administrator (an ASN).
    pub global: u32,
    /// Local data part 1.
    pub local1: u32,
    /// Local data part 2.
    pub local2: u32,
}

/// MP_REACH_NLRI (RFC 4760 §3) for IPv4 or IPv6 unicast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpReach {
    /// The family of `nlri`.
    pub family: Family,
    /// Next hops: one address (4 or 16 octets), or an IPv6 global and link-local (32).
    pub next_hops: Vec<IpAddr>,
    /// Announced routes, all of `family`.
    pub nlri: Vec<IpNet>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4) for IPv4 or IPv6 unicast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpUnreach {
    /// The family of `withdrawn`.
    pub family: Family,
    /// Withdrawn routes, all of `family`.
    pub withdrawn: Vec<IpNet>,
}

/// A path attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathAttribute {
    /// ORIGIN.
    Origin(Origin),
    /// AS_PATH (2- or 4-octet ASNs per [`Codec::four_octet_as`]).
    AsPath(Vec<AsSegment>),
    /// NEXT_HOP.
    NextHop(Ipv4Addr),
    /// MULTI_EXIT_DISC.
    Med(u32),
    /// LOCAL_PREF.
    LocalPref(u32),
    /// COMMUNITIES.
    Communities(Vec<u32>),
    /// LARGE_COMMUNITY.
    LargeCommunities(Vec<LargeCommunity>),
    /// MP_REACH_NLRI for IPv4/IPv6 unicast.
    MpReach(MpReach),
    /// MP_UNREACH_NLRI for IPv4/IPv6 unicast.
    MpUnreach(MpUnreach),
    /// AS4_PATH (always 4-octet ASNs).
    As4Path(Vec<AsSegment>),
    /// Any other attribute (also MP_REACH/MP_UNREACH of other families), kept as is.
    Other {
        /// Flags as received (the extended length bit is recomputed on encoding).
        flags: u8,
        /// Type code.
        code: u8,
        /// Value.
        value: Vec<u8>,
    },
}

impl PathAttribute {
    fn code(&self) -> u8 {
        match self {
            PathAttribute::Origin(_) => attr::ORIGIN,
            PathAttribute::AsPath(_) => attr::AS_PATH,
            PathAttribute::NextHop(_) => attr::NEXT_HOP,
            PathAttribute::Med(_) => attr::MED,
            PathAttribute::LocalPref(_) => attr::LOCAL_PREF,
            PathAttribute::Communities(_) => attr::COMMUNITIES,
            PathAttribute::LargeCommunities(_) => attr::LARGE_COMMUNITY,
            PathAttribute::MpReach(_) => attr::MP_REACH_NLRI,
            PathAttribute::MpUnreach(_) => attr::MP_UNREACH_NLRI,
            PathAttribute::As4Path(_) => attr::AS4_PATH,
            PathAttribute::Other { code, .. } => *code,
        }
    }

    /// Flags without the extended length bit.
    fn flags(&self) -> u8 {
        match self {
            PathAttribute::Origin(_)
            | PathAttribute::AsPath(_)
            | PathAttribute::NextHop(_)
            | PathAttribute::LocalPref(_) => FLAG_TRANSITIVE,
            PathAttribute::Med(_) | PathAttribute::MpReach(_) | PathAttribute::MpUnreach(_) => {
                FLAG_OPTIONAL
            }
            PathAttribute::Communities(_)
            | PathAttribute::LargeCommunities(_)
            | PathAttribute::As4Path(_) => FLAG_OPTIONAL | FLAG_TRANSITIVE,
            PathAttribute::Other { flags, .. } => flags & !FLAG_EXTENDED,
        }
    }
}

/// A malformed message: each variant maps to a NOTIFICATION ([`MessageError::notification`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The marker is not all ones (1/1).
    #[error("message header: marker is not all ones")]
    NotSynchronized,
    /// The length field is out of range or inconsistent with the type (1/2).
    #[error("message header: bad message length {0}")]
    BadLength(u16),
    /// Unknown message type (1/3).
    #[error("message header: bad message type {0}")]
    BadType(u8),
    /// OPEN with a version other than 4 (2/1).
    #[error("OPEN: unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The peer's AS is not the expected one (2/2).
    #[error("OPEN: bad peer AS {0}")]
    BadPeerAs(u32),
    /// The BGP identifier is 0 or clashes with ours (2/3).
    #[error("OPEN: bad BGP identifier {0}")]
    BadBgpId(Ipv4Addr),
    /// An optional parameter other than capabilities (2/4).
    #[error("OPEN: unsupported optional parameter {0}")]
    UnsupportedParameter(u8),
    /// Hold time 1 or 2 seconds (2/6).
    #[error("OPEN: unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// Malformed optional parameters or capability (2/0).
    #[error("OPEN: malformed optional parameters: {0}")]
    MalformedOpen(&'static str),
    /// Inconsistent lengths, duplicate attributes (3/1).
    #[error("UPDATE: malformed attribute list: {0}")]
    MalformedAttributeList(&'static str),
    /// A well-known attribute we do not know (3/2); data is the attribute.
    #[error("UPDATE: unrecognized well-known attribute {code}")]
    UnrecognizedWellKnown {
        /// Attribute type code.
        code: u8,
        /// The whole attribute (flags, type, length, value).
        data: Vec<u8>,
    },
    /// NLRI without ORIGIN, AS_PATH or NEXT_HOP (3/3); data is the type code.
    #[error("UPDATE: missing well-known attribute {0}")]
    MissingWellKnown(u8),
    /// Flags inconsistent with the attribute type (3/4).
    #[error("UPDATE: attribute flags error on attribute {code}")]
    AttributeFlags {
        /// Attribute type code.
        code: u8,
        /// The whole attribute.
        data: Vec<u8>,
    },
    /// Length inconsistent with the attribute type (3/5).
    #[error("UPDATE: attribute length error on attribute {code}")]
    AttributeLength {
        /// Attribute type code.
        code: u8,
        /// The whole attribute.
        data: Vec<u8>,
    },
    /// ORIGIN not 0, 1 or 2 (3/6).
    #[error("UPDATE: invalid ORIGIN")]
    InvalidOrigin(Vec<u8>),
    /// NEXT_HOP not a unicast address (3/8).
    #[error("UPDATE: invalid NEXT_HOP")]
    InvalidNextHop(Vec<u8>),
    /// A malformed optional attribute we know (3/9).
    #[error("UPDATE: optional attribute error on attribute {code}")]
    OptionalAttribute {
        /// Attribute type code.
        code: u8,
        /// The whole attribute.
        data: Vec<u8>,
    },
    /// A prefix with a length beyond the address size or running past the field (3/10).
    #[error("UPDATE: invalid network field")]
    InvalidNetwork,
    /// Malformed AS_PATH segments (3/11).
    #[error("UPDATE: malformed AS_PATH")]
    MalformedAsPath,
    /// ROUTE-REFRESH of the wrong length (7/1, RFC 7313); data is the message.
    #[error("ROUTE-REFRESH: invalid message length")]
    RouteRefreshLength(Vec<u8>),
}

impl MessageError {
    /// The NOTIFICATION to send in answer (RFC 4271 §6).
    pub fn notification(&self) -> Notification {
        use MessageError::*;
        let (c, s, data): (u8, u8, Vec<u8>) = match self {
            NotSynchronized => (code::HEADER, code::HEADER_NOT_SYNCHRONIZED, vec![]),
            BadLength(l) => (
                code::HEADER,
                code::HEADER_BAD_LENGTH,
                l.to_be_bytes().to_vec(),
            ),
            BadType(t) => (code::HEADER, code::HEADER_BAD_TYPE, vec![*t]),
            UnsupportedVersion(_) => (
                code::OPEN,
                code::OPEN_UNSUPPORTED_VERSION,
                u16::from(BGP_VERSION).to_be_bytes().to_vec(),
            ),
            BadPeerAs(_) => (code::OPEN, code::OPEN_BAD_PEER_AS, vec![]),
            BadBgpId(_) => (code::OPEN, code::OPEN_BAD_BGP_ID, vec![]),
            UnsupportedParameter(_) => (code::OPEN, code::OPEN_UNSUPPORTED_PARAMETER, vec![]),
            UnacceptableHoldTime(_) => (code::OPEN, code::OPEN_UNACCEPTABLE_HOLD_TIME, vec![]),
            MalformedOpen(_) => (code::OPEN, code::OPEN_UNSPECIFIC, vec![]),
            MalformedAttributeList(_) => {
                (code::UPDATE, code::UPDATE_MALFORMED_ATTRIBUTE_LIST, vec![])
            }
            UnrecognizedWellKnown { data, .. } => (
                code::UPDATE,
                code::UPDATE_UNRECOGNIZED_WELL_KNOWN,
                data.clone(),
            ),
            MissingWellKnown(t) => (code::UPDATE, code::UPDATE_MISSING_WELL_KNOWN, vec![*t]),
            AttributeFlags { data, .. } => {
                (code::UPDATE, code::UPDATE_ATTRIBUTE_FLAGS, data.clone())
            }
            AttributeLength { data, .. } => {
                (code::UPDATE, code::UPDATE_ATTRIBUTE_LENGTH, data.clone())
            }
            InvalidOrigin(data) => (code::UPDATE, code::UPDATE_INVALID_ORIGIN, data.clone()),
            InvalidNextHop(data) => (code::UPDATE, code::UPDATE_INVALID_NEXT_HOP, data.clone()),
            OptionalAttribute { data, .. } => {
                (code::UPDATE, code::UPDATE_OPTIONAL_ATTRIBUTE, data.clone())
            }
            InvalidNetwork => (code::UPDATE, code::UPDATE_INVALID_NETWORK, vec![]),
            MalformedAsPath => (code::UPDATE, code::UPDATE_MALFORMED_AS_PATH, vec![]),
            RouteRefreshLength(data) => (
                code::ROUTE_REFRESH,
                code::ROUTE_REFRESH_INVALID_LENGTH,
                data.clone(),
            ),
        };
        Notification {
            code: c,
            subcode: s,
            data,
        }
    }
}

/// A message that cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed [`MAX_MESSAGE_LEN`].
    #[error("message of {0} bytes exceeds the 4096-byte limit")]
    TooLong(usize),
    /// A field does not fit its wire encoding.
    #[error("field does not fit: {0}")]
    FieldTooLong(&'static str),
}

/// Decode the first message of `buf`: `Ok(None)` if `buf` does not hold a whole message
/// yet, else the message and the number of bytes it used.
pub fn decode(buf: &[u8], codec: Codec) -> Result<Option<(Message, usize)>, MessageError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16].iter().any(|&b| b != 0xff) {
        return Err(MessageError::NotSynchronized);
    }
    let len = u16::from_be_bytes([buf[16], buf[17]]);
    let ty = buf[18];
    let l = usize::from(len);
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&l) {
        return Err(MessageError::BadLength(len));
    }
    let ok = match ty {
        kind::OPEN => l >= 29,
        kind::UPDATE => l >= 23,
        kind::NOTIFICATION => l >= 21,
        kind::KEEPALIVE => l == HEADER_LEN,
        kind::ROUTE_REFRESH => true,
        _ => return Err(MessageError::BadType(ty)),
    };
    if !ok {
        return Err(MessageError::BadLength(len));
    }
    if buf.len() < l {
        return Ok(None);
    }
    let body = &buf[HEADER_LEN..l];
    let msg = match ty {
        kind::OPEN => Message::Open(decode_open(body)?),
        kind::UPDATE => Message::Update(decode_update(body, codec)?),
        kind::NOTIFICATION => Message::Notification(Notification {
            code: body[0],
            subcode: body[1],
            data: body[2..].to_vec(),
        }),
        kind::KEEPALIVE => Message::Keepalive,
        _ => {
            if body.len() != 4 {
                return Err(MessageError::RouteRefreshLength(buf[..l].to_vec()));
            }
            Message::RouteRefresh(Family {
                afi: u16::from_be_bytes([body[0], body[1]]),
                safi: body[3],
            })
        }
    };
    Ok(Some((msg, l)))
}

/// Decode exactly one message filling `buf`.
pub fn decode_one(buf: &[u8], codec: Codec) -> Result<Message, MessageError> {
    match decode(buf, codec)? {
        Some((m, used)) if used == buf.len() => Ok(m),
        Some(_) | None => Err(MessageError::BadLength(
            u16::try_from(buf.len()).unwrap_or(u16::MAX),
        )),
    }
}

/// A bounds-checked reader.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

fn decode_open(body: &[u8]) -> Result<Open, MessageError> {
    let mut r = Reader { buf: body };
    let bad = MessageError::MalformedOpen("truncated");
    let version = r.u8().ok_or(bad.clone())?;
    if version != BGP_VERSION {
        return Err(MessageError::UnsupportedVersion(version));
    }
    let my_as = r.u16().ok_or(bad.clone())?;
    let hold_time = r.u16().ok_or(bad.clone())?;
    if hold_time == 1 || hold_time == 2 {
        return Err(MessageError::UnacceptableHoldTime(hold_time));
    }
    let bgp_id = Ipv4Addr::from(r.u32().ok_or(bad.clone())?);
    if bgp_id.is_unspecified() {
        return Err(MessageError::BadBgpId(bgp_id));
    }
    let opt_len = usize::from(r.u8().ok_or(bad.clone())?);
    if opt_len != r.buf.len() {
        return Err(MessageError::MalformedOpen(
            "optional parameters length mismatch",
        ));
    }
    let mut capabilities = Vec::new();
    while !r.is_empty() {
        let ty = r.u8().ok_or(bad.clone())?;
        let len = usize::from(r.u8().ok_or(bad.clone())?);
        let value = r
            .take(len)
            .ok_or(MessageError::MalformedOpen("optional parameter overruns"))?;
        if ty != 2 {
            return Err(MessageError::UnsupportedParameter(ty));
        }
        let mut c = Reader { buf: value };
        while !c.is_empty() {
            let code = c.u8().ok_or(bad.clone())?;
            let len = usize::from(
                c.u8()
                    .ok_or(MessageError::MalformedOpen("truncated capability"))?,
            );
            let v = c
                .take(len)
                .ok_or(MessageError::MalformedOpen("capability overruns"))?;
            capabilities.push(decode_capability(code, v)?);
        }
    }
    Ok(Open {
        version,
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}

fn decode_capability(code: u8, v: &[u8]) -> Result<Capability, MessageError> {
    let bad = |what| Err(MessageError::MalformedOpen(what));
    Ok(match code {
        cap::MULTIPROTOCOL => {
            if v.len() != 4 {
                return bad("multiprotocol capability length");
            }
            Capability::Multiprotocol(Family {
                afi: u16::from_be_bytes([v[0], v[1]]),
                safi: v[3],
            })
        }
        cap::ROUTE_REFRESH => {
            if !v.is_empty() {
                return bad("route refresh capability length");
            }
            Capability::RouteRefresh
        }
        cap::FOUR_OCTET_AS => {
            if v.len() != 4 {
                return bad("4-octet AS capability length");
            }
            Capability::FourOctetAs(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
        }
        cap::GRACEFUL_RESTART => {
            if v.len() < 2 || !(v.len() - 2).is_multiple_of(4) {
                return bad("graceful restart capability length");
            }
            let head = u16::from_be_bytes([v[0], v[1]]);
            let families = v[2..]
                .chunks_exact(4)
                .map(|c| {
                    (
                        Family {
                            afi: u16::from_be_bytes([c[0], c[1]]),
                            safi: c[2],
                        },
                        c[3] & 0x80 != 0,
                    )
                })
                .collect();
            Capability::GracefulRestart(GracefulRestart {
                restarted: head & 0x8000 != 0,
                restart_time: head & 0x0fff,
                families,
            })
        }
        _ => Capability::Other {
            code,
            value: v.to_vec(),
        },
    })
}

/// Decode a prefix list (length octet + minimal address octets); host bits are cleared.
fn decode_prefixes(mut buf: &[u8], v6: bool) -> Result<Vec<IpNet>, MessageError> {
    let max = if v6 { 128 } else { 32 };
    let mut out = Vec::new();
    while let Some((&len, rest)) = buf.split_first() {
        if len > max {
            return Err(MessageError::InvalidNetwork);
        }
        let n = usize::from(len).div_ceil(8);
        if rest.len() < n {
            return Err(MessageError::InvalidNetwork);
        }
        let prefix = if v6 {
            let mut a = [0u8; 16];
            a[..n].copy_from_slice(&rest[..n]);
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from(a), len)
                    .map_err(|_| MessageError::InvalidNetwork)?
                    .trunc(),
            )
        } else {
            let mut a = [0u8; 4];
            a[..n].copy_from_slice(&rest[..n]);
            IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(a), len)
                    .map_err(|_| MessageError::InvalidNetwork)?
                    .trunc(),
            )
        };
        out.push(prefix);
        buf = &rest[n..];
    }
    Ok(out)
}

fn v4_only(prefixes: Vec<IpNet>) -> Vec<Ipv4Net> {
    prefixes
        .into_iter()
        .filter_map(|p| match p {
            IpNet::V4(p) => Some(p),
            IpNet::V6(_) => None,
        })
        .collect()
}

fn decode_update(body: &[u8], codec: Codec) -> Result<Update, MessageError> {
    let mut r = Reader { buf: body };
    let list = MessageError::MalformedAttributeList;
    let wlen = usize::from(r.u16().ok_or(list("truncated"))?);
    let withdrawn = r.take(wlen).ok_or(list("withdrawn routes overrun"))?;
    let alen = usize::from(r.u16().ok_or(list("truncated"))?);
    let attrs = r.take(alen).ok_or(list("path attributes overrun"))?;
    let nlri = r.buf;
    let withdrawn = v4_only(decode_prefixes(withdrawn, false)?);
    let nlri = v4_only(decode_prefixes(nlri, false)?);

    let mut attributes = Vec::new();
    let mut seen = [false; 256];
    let mut a = Reader { buf: attrs };
    while !a.is_empty() {
        let start = a.buf;
        let flags = a.u8().ok_or(list("truncated attribute"))?;
        let code = a.u8().ok_or(list("truncated attribute"))?;
        let len = if flags & FLAG_EXTENDED != 0 {
            a.u16().map(usize::from)
        } else {
            a.u8().map(usize::from)
        }
        .ok_or(list("truncated attribute"))?;
        let hdr = if flags & FLAG_EXTENDED != 0 { 4 } else { 3 };
        let value = a.take(len).ok_or(list("attribute overruns"))?;
        let whole = &start[..hdr + len];
        if std::mem::replace(&mut seen[usize::from(code)], true) {
            return Err(list("duplicate attribute"));
        }
        attributes.push(decode_attribute(flags, code, value, whole, codec)?);
    }
    let mp_reach = seen[usize::from(attr::MP_REACH_NLRI)];
    if !nlri.is_empty() || mp_reach {
        for code in [attr::ORIGIN, attr::AS_PATH] {
            if !seen[usize::from(code)] {
                return Err(MessageError::MissingWellKnown(code));
            }
        }
    }
    if !nlri.is_empty() && !seen[usize::from(attr::NEXT_HOP)] {
        return Err(MessageError::MissingWellKnown(attr::NEXT_HOP));
    }
    Ok(Update {
        withdrawn,
        attributes,
        nlri,
    })
}

fn decode_as_path(v: &[u8], four: bool) -> Result<Vec<AsSegment>, MessageError> {
    let width = if four { 4 } else { 2 };
    let mut r = Reader { buf: v };
    let mut out = Vec::new();
    while !r.is_empty() {
        let ty = r.u8().ok_or(MessageError::MalformedAsPath)?;
        let kind = match ty {
            1 => SegmentType::Set,
            2 => SegmentType::Sequence,
            3 => SegmentType::ConfedSequence,
            4 => SegmentType::ConfedSet,
            _ => return Err(MessageError::MalformedAsPath),
        };
        let n = usize::from(r.u8().ok_or(MessageError::MalformedAsPath)?);
        if n == 0 {
            return Err(MessageError::MalformedAsPath);
        }
        let raw = r.take(n * width).ok_or(MessageError::MalformedAsPath)?;
        let asns = raw
            .chunks_exact(width)
            .map(|c| {
                if four {
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                } else {
                    u32::from(u16::from_be_bytes([c[0], c[1]]))
                }
            })
            .collect();
        out.push(AsSegment { kind, asns });
    }
    Ok(out)
}

fn decode_attribute(
    flags: u8,
    code: u8,
    v: &[u8],
    whole: &[u8],
    codec: Codec,
) -> Result<PathAttribute, MessageError> {
    let data = || whole.to_vec();
    let well_known = matches!(
        code,
        attr::ORIGIN | attr::AS_PATH | attr::NEXT_HOP | attr::LOCAL_PREF | attr::ATOMIC_AGGREGATE
    );
    let known = well_known
        || matches!(
            code,
            attr::MED
                | attr::AGGREGATOR
                | attr::COMMUNITIES
                | attr::MP_REACH_NLRI
                | attr::MP_UNREACH_NLRI
                | attr::AS4_PATH
                | attr::AS4_AGGREGATOR
                | attr::LARGE_COMMUNITY
        );
    if !known {
        if flags & FLAG_OPTIONAL == 0 {
            return Err(MessageError::UnrecognizedWellKnown { code, data: data() });
        }
        return Ok(PathAttribute::Other {
            flags: flags & !FLAG_EXTENDED,
            code,
            value: v.to_vec(),
        });
    }
    // Flags check (RFC 4271 §6.3): well-known are transitive and not optional; MED and
    // MP_(UN)REACH optional non-transitive; the rest optional transitive.
    let expected = match code {
        _ if well_known => FLAG_TRANSITIVE,
        attr::MED | attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI => FLAG_OPTIONAL,
        _ => FLAG_OPTIONAL | FLAG_TRANSITIVE,
    };
    let partial_ok = expected == FLAG_OPTIONAL | FLAG_TRANSITIVE;
    let mask = FLAG_OPTIONAL | FLAG_TRANSITIVE | if partial_ok { 0 } else { FLAG_PARTIAL };
    if flags & mask != expected {
        return Err(MessageError::AttributeFlags { code, data: data() });
    }
    let len_err = || MessageError::AttributeLength { code, data: data() };
    let u32_of = |v: &[u8]| u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    Ok(match code {
        attr::ORIGIN => {
            if v.len() != 1 {
                return Err(len_err());
            }
            PathAttribute::Origin(match v[0] {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                _ => return Err(MessageError::InvalidOrigin(data())),
            })
        }
        attr::AS_PATH => PathAttribute::AsPath(decode_as_path(v, codec.four_octet_as)?),
        attr::AS4_PATH => PathAttribute::As4Path(
            decode_as_path(v, true)
                .map_err(|_| MessageError::OptionalAttribute { code, data: data() })?,
        ),
        attr::NEXT_HOP => {
            if v.len() != 4 {
                return Err(len_err());
            }
            let nh = Ipv4Addr::from(u32_of(v));
            if nh.is_unspecified() || nh.is_broadcast() || nh.is_multicast() {
                return Err(MessageError::InvalidNextHop(data()));
            }
            PathAttribute::NextHop(nh)
        }
        attr::MED | attr::LOCAL_PREF => {
            if v.len() != 4 {
                return Err(len_err());
            }
            if code == attr::MED {
                PathAttribute::Med(u32_of(v))
            } else {
                PathAttribute::LocalPref(u32_of(v))
            }
        }
        attr::COMMUNITIES => {
            if v.is_empty() || !v.len().is_multiple_of(4) {
                return Err(len_err());
            }
            PathAttribute::Communities(v.chunks_exact(4).map(u32_of).collect())
        }
        attr::LARGE_COMMUNITY => {
            if v.is_empty() || !v.len().is_multiple_of(12) {
                return Err(len_err());
            }
            PathAttribute::LargeCommunities(
                v.chunks_exact(12)
                    .map(|c| LargeCommunity {
                        global: u32_of(&c[0..4]),
                        local1: u32_of(&c[4..8]),
                        local2: u32_of(&c[8..12]),
                    })
                    .collect(),
            )
        }
        attr::ATOMIC_AGGREGATE | attr::AGGREGATOR | attr::AS4_AGGREGATOR => {
            let want = match code {
                attr::ATOMIC_AGGREGATE => 0,
                attr::AS4_AGGREGATOR => 8,
                _ if codec.four_octet_as => 8,
                _ => 6,
            };
            if v.len() != want {
                return Err(len_err());
            }
            PathAttribute::Other {
                flags: flags & !FLAG_EXTENDED,
                code,
                value: v.to_vec(),
            }
        }
        attr::MP_REACH_NLRI => {
            let mut r = Reader { buf: v };
            let (Some(afi), Some(safi), Some(nhlen)) = (r.u16(), r.u8(), r.u8()) else {
                return Err(MessageError::OptionalAttribute { code, data: data() });
            };
            let family = Family { afi, safi };
            if family != Family::IPV4_UNICAST && family != Family::IPV6_UNICAST {
                return Ok(PathAttribute::Other {
                    flags: flags & !FLAG_EXTENDED,
                    code,
                    value: v.to_vec(),
                });
            }
            let nh = r
                .take(usize::from(nhlen))
                .ok_or_else(|| MessageError::OptionalAttribute { code, data: data() })?;
            let next_hops = match nh.len() {
                4 => vec![IpAddr::V4(Ipv4Addr::from(u32_of(nh)))],
                16 | 32 => nh
                    .chunks_exact(16)
                    .map(|c| {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(c);
                        IpAddr::V6(Ipv6Addr::from(a))
                    })
                    .collect(),
                _ => return Err(MessageError::OptionalAttribute { code, data: data() }),
            };
            if r.u8().is_none() {
                return Err(MessageError::OptionalAttribute { code, data: data() });
            }
            let nlri = decode_prefixes(r.buf, family == Family::IPV6_UNICAST)?;
            PathAttribute::MpReach(MpReach {
                family,
                next_hops,
                nlri,
            })
        }
        attr::MP_UNREACH_NLRI => {
            let mut r = Reader { buf: v };
            let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
                return Err(MessageError::OptionalAttribute { code, data: data() });
            };
            let family = Family { afi, safi };
            if family != Family::IPV4_UNICAST && family != Family::IPV6_UNICAST {
                return Ok(PathAttribute::Other {
                    flags: flags & !FLAG_EXTENDED,
                    code,
                    value: v.to_vec(),
                });
            }
            let withdrawn = decode_prefixes(r.buf, family == Family::IPV6_UNICAST)?;
            PathAttribute::MpUnreach(MpUnreach { family, withdrawn })
        }
        _ => unreachable!("all known codes handled"),
    })
}

// ---------------------------------------------------------------------------------------
// Encoding.

/// Encoded size of a prefix in NLRI (length octet + address octets).
pub fn prefix_len(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}

fn put_prefix(out: &mut Vec<u8>, prefix: &IpNet) {
    let len = prefix.prefix_len();
    let n = usize::from(len).div_ceil(8);
    out.push(len);
    match prefix.trunc().addr() {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n]),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n]),
    }
}

fn put_as_path(out: &mut Vec<u8>, path: &[AsSegment], four: bool) -> Result<(), EncodeError> {
    for seg in path {
        out.push(seg.kind.code());
        out.push(
            u8::try_from(seg.asns.len())
                .map_err(|_| EncodeError::FieldTooLong("AS_PATH segment"))?,
        );
        for &asn in &seg.asns {
            if four {
                out.extend_from_slice(&asn.to_be_bytes());
            } else {
                let a = u16::try_from(asn).unwrap_or(AS_TRANS);
                out.extend_from_slice(&a.to_be_bytes());
            }
        }
    }
    Ok(())
}

/// Encoded size of a path attribute with the given value length. MP_REACH_NLRI and
/// MP_UNREACH_NLRI always use the extended length so their size grows linearly with NLRI.
fn attr_header_len(code: u8, value_len: usize) -> usize {
    if value_len > 255 || code == attr::MP_REACH_NLRI || code == attr::MP_UNREACH_NLRI {
        4
    } else {
        3
    }
}

impl PathAttribute {
    fn encode_value(&self, out: &mut Vec<u8>, codec: Codec) -> Result<(), EncodeError> {
        match self {
            PathAttribute::Origin(o) => out.push(match o {
                Origin::Igp => 0,
                Origin::Egp => 1,
                Origin::Incomplete => 2,
            }),
            PathAttribute::AsPath(p) => put_as_path(out, p, codec.four_octet_as)?,
            PathAttribute::As4Path(p) => put_as_path(out, p, true)?,
            PathAttribute::NextHop(a) => out.extend_from_slice(&a.octets()),
            PathAttribute::Med(v) | PathAttribute::LocalPref(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            PathAttribute::Communities(cs) => {
                for c in cs {
                    out.extend_from_slice(&c.to_be_bytes());
                }
            }
            PathAttribute::LargeCommunities(cs) => {
                for c in cs {
                    out.extend_from_slice(&c.global.to_be_bytes());
                    out.extend_from_slice(&c.local1.to_be_bytes());
                    out.extend_from_slice(&c.local2.to_be_bytes());
                }
            }
            PathAttribute::MpReach(m) => {
                out.extend_from_slice(&m.family.afi.to_be_bytes());
                out.push(m.family.safi);
                let at = out.len();
                out.push(0);
                for nh in &m.next_hops {
                    match nh {
                        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
                    }
                }
                out[at] = u8::try_from(out.len() - at - 1)
                    .map_err(|_| EncodeError::FieldTooLong("MP_REACH next hop"))?;
                out.push(0);
                for p in &m.nlri {
                    put_prefix(out, p);
                }
            }
            PathAttribute::MpUnreach(m) => {
                out.extend_from_slice(&m.family.afi.to_be_bytes());
                out.push(m.family.safi);
                for p in &m.withdrawn {
                    put_prefix(out, p);
                }
            }
            PathAttribute::Other { value, .. } => out.extend_from_slice(value),
        }
        Ok(())
    }

    /// Append the encoded attribute to `out`.
    pub fn encode(&self, out: &mut Vec<u8>, codec: Codec) -> Result<(), EncodeError> {
        let mut value = Vec::new();
        self.encode_value(&mut value, codec)?;
        let code = self.code();
        let len = u16::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong("attribute"))?;
        if attr_header_len(code, value.len()) == 4 {
            out.extend_from_slice(&[self.flags() | FLAG_EXTENDED, code]);
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            out.extend_from_slice(&[self.flags(), code, len as u8]);
        }
        out.extend_from_slice(&value);
        Ok(())
    }
}

fn put_capability(out: &mut Vec<u8>, c: &Capability) -> Result<(), EncodeError> {
    let (code, value) = match c {
        Capability::Multiprotocol(f) => {
            let [a, b] = f.afi.to_be_bytes();
            (cap::MULTIPROTOCOL, vec![a, b, 0, f.safi])
        }
        Capability::RouteRefresh => (cap::ROUTE_REFRESH, vec![]),
        Capability::FourOctetAs(asn) => (cap::FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
        Capability::GracefulRestart(gr) => {
            let head = (gr.restart_time & 0x0fff) | if gr.restarted { 0x8000 } else { 0 };
            let mut v = head.to_be_bytes().to_vec();
            for (f, fwd) in &gr.families {
                v.extend_from_slice(&f.afi.to_be_bytes());
                v.push(f.safi);
                v.push(if *fwd { 0x80 } else { 0 });
            }
            (cap::GRACEFUL_RESTART, v)
        }
        Capability::Other { code, value } => (*code, value.clone()),
    };
    out.push(code);
    out.push(u8::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong("capability"))?);
    out.extend_from_slice(&value);
    Ok(())
}

impl Message {
    /// Encode the message with its header.
    pub fn encode(&self, codec: Codec) -> Result<Vec<u8>, EncodeError> {
        let mut out = vec![0xff; 16];
        out.extend_from_slice(&[0, 0, 0]);
        let ty = match self {
            Message::Open(o) => {
                out.push(o.version);
                out.extend_from_slice(&o.my_as.to_be_bytes());
                out.extend_from_slice(&o.hold_time.to_be_bytes());
                out.extend_from_slice(&o.bgp_id.octets());
                let at = out.len();
                out.push(0);
                // One Capabilities parameter per capability (RFC 5492 allows either).
                for c in &o.capabilities {
                    let mut v = Vec::new();
                    put_capability(&mut v, c)?;
                    out.push(2);
                    out.push(
                        u8::try_from(v.len())
                            .map_err(|_| EncodeError::FieldTooLong("capability"))?,
                    );
                    out.extend_from_slice(&v);
                }
                out[at] = u8::try_from(out.len() - at - 1)
                    .map_err(|_| EncodeError::FieldTooLong("optional parameters"))?;
                kind::OPEN
            }
            Message::Update(u) => {
                let at = out.len();
                out.extend_from_slice(&[0, 0]);
                for p in &u.withdrawn {
                    put_prefix(&mut out, &IpNet::V4(*p));
                }
                let wlen = out.len() - at - 2;
                let wlen = u16::try_from(wlen).map_err(|_| EncodeError::TooLong(wlen))?;
                out[at..at + 2].copy_from_slice(&wlen.to_be_bytes());
                let at = out.len();
                out.extend_from_slice(&[0, 0]);
                for a in &u.attributes {
                    a.encode(&mut out, codec)?;
                }
                let alen = out.len() - at - 2;
                let alen = u16::try_from(alen).map_err(|_| EncodeError::TooLong(alen))?;
                out[at..at + 2].copy_from_slice(&alen.to_be_bytes());
                for p in &u.nlri {
                    put_prefix(&mut out, &IpNet::V4(*p));
                }
                kind::UPDATE
            }
            Message::Notification(n) => {
                out.push(n.code);
                out.push(n.subcode);
                out.extend_from_slice(&n.data);
                kind::NOTIFICATION
            }
            Message::Keepalive => kind::KEEPALIVE,
            Message::RouteRefresh(f) => {
                out.extend_from_slice(&f.afi.to_be_bytes());
                out.push(0);
                out.push(f.safi);
                kind::ROUTE_REFRESH
            }
        };
        if out.len() > MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLong(out.len()));
        }
        let len = out.len() as u16;
        out[16..18].copy_from_slice(&len.to_be_bytes());
        out[18] = ty;
        Ok(out)
    }
}

/// The size of an UPDATE carrying `attributes` and no routes; each IPv4 prefix added to
/// its NLRI or withdrawn routes, or IPv6 prefix added to its MP_REACH_NLRI or
/// MP_UNREACH_NLRI, adds exactly [`prefix_len`] bytes.
pub fn update_base_len(attributes: &[PathAttribute], codec: Codec) -> Result<usize, EncodeError> {
    let mut n = HEADER_LEN + 4;
    for a in attributes {
        let mut v = Vec::new();
        a.encode_value(&mut v, codec)?;
        n += attr_header_len(a.code(), v.len()) + v.len();
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
