//! The validated configuration: what the metallb.io resources of a [`crate::Snapshot`] mean,
//! once every rule has been checked. Produced by [`crate::validate()`]; consumed by the
//! allocator, the election and the announcers.

use crate::crd::DynamicAsn;
use crate::selector::Selector;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

/// A valid configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// Address pools by name (so iteration is in name order).
    pub pools: BTreeMap<String, Pool>,
    /// Layer 2 advertisements by name.
    pub l2_advertisements: BTreeMap<String, L2Advertisement>,
    /// BGP advertisements by name.
    pub bgp_advertisements: BTreeMap<String, BgpAdvertisement>,
    /// BGP peers by name.
    pub peers: BTreeMap<String, Peer>,
    /// BFD profiles by name.
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    /// Community aliases (from every `Community` resource) by alias name.
    pub communities: BTreeMap<String, BgpCommunity>,
}

/// A valid address pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// The pool object's labels (for advertisements' pool selectors).
    pub labels: BTreeMap<String, String>,
    /// The pool's addresses as CIDRs, in the order the pool lists them; a range `a-b`
    /// becomes the smallest list of CIDRs covering it, in ascending order. No two
    /// CIDRs of any pools overlap.
    pub cidrs: Vec<IpNet>,
    /// Whether addresses are handed out without being asked for.
    pub auto_assign: bool,
    /// Whether IPv4 addresses ending in .0 and .255 are skipped.
    pub avoid_buggy_ips: bool,
    /// Restriction to some Services, with a priority; `None` for a pool open to all.
    pub allocation: Option<PoolAllocation>,
}

/// Which Services may use a pool, and its priority among the pools they match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolAllocation {
    /// Lower is tried first; 0 means lowest priority (tried after every positive one).
    pub priority: i32,
    /// Namespaces named in the pool.
    pub namespaces: BTreeSet<String>,
    /// Selectors of namespaces by label.
    pub namespace_selectors: Vec<Selector>,
    /// Selectors of Services by label.
    pub service_selectors: Vec<Selector>,
}

/// A valid `L2Advertisement`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct L2Advertisement {
    /// The advertisement's name.
    pub name: String,
    /// Names of the (existing) pools it announces: those listed in `ipAddressPools` plus
    /// those matched by `ipAddressPoolSelectors`, or every pool when neither is given.
    pub pools: BTreeSet<String>,
    /// Nodes that may announce: a node matching any selector; empty means every node.
    pub node_selectors: Vec<Selector>,
    /// Interfaces to announce on; empty means every eligible interface.
    pub interfaces: Vec<String>,
    /// Services announced: those matching any selector; empty means every Service.
    pub service_selectors: Vec<Selector>,
    /// Weighted preferences among the announcing nodes.
    pub preferred_node_selectors: Vec<PreferredNodes>,
}

/// A weighted node preference of an [`L2Advertisement`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreferredNodes {
    /// Weight (1-100) added to the score of a node the selector matches.
    pub weight: u8,
    /// The preferred nodes.
    pub selector: Selector,
}

/// A valid `BGPAdvertisement`.
#[derive(Clone, Debug, PartialEq)]
pub struct BgpAdvertisement {
    /// The advertisement's name.
    pub name: String,
    /// Names of the (existing) pools it announces, resolved as for
    /// [`L2Advertisement::pools`].
    pub pools: BTreeSet<String>,
    /// Prefix length IPv4 addresses are rolled up to (1-32, default 32).
    pub aggregation_length: u8,
    /// Prefix length IPv6 addresses are rolled up to (1-128, default 128).
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF sent to iBGP peers; `None` when not set (or 0, which MetalLB treats
    /// as not set).
    pub local_pref: Option<u32>,
    /// Communities attached, aliases resolved, without repetitions.
    pub communities: BTreeSet<BgpCommunity>,
    /// Nodes that announce: a node matching any selector; empty means every node.
    pub node_selectors: Vec<Selector>,
    /// Names of the BGPPeers announced to; empty means every peer. A name no peer has
    /// selects nothing.
    pub peers: Vec<String>,
    /// Services announced: those matching any selector; empty means every Service.
    pub service_selectors: Vec<Selector>,
}

impl Default for BgpAdvertisement {
    fn default() -> Self {
        BgpAdvertisement {
            name: String::new(),
            pools: BTreeSet::new(),
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: BTreeSet::new(),
            node_selectors: Vec::new(),
            peers: Vec::new(),
            service_selectors: Vec::new(),
        }
    }
}

/// The AS number expected from a BGP peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAsn {
    /// This AS number.
    Fixed(u32),
    /// Learnt from the peer's OPEN, which must be inside (internal) or outside (external)
    /// our AS.
    Dynamic(DynamicAsn),
}

/// A TCP-MD5 password. Its `Debug` output hides the text so that logging a
/// configuration does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

/// A valid `BGPPeer`.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// The peer's name.
    pub name: String,
    /// Our AS number on the session (`myASN`).
    pub my_asn: u32,
    /// The peer's AS number, or how it is learnt.
    pub peer_asn: PeerAsn,
    /// The AS number presented instead of `my_asn` (local-as), when set.
    pub local_asn: Option<u32>,
    /// Address to connect to; `None` for BGP unnumbered over [`Peer::interface`].
    pub address: Option<IpAddr>,
    /// Interface for BGP unnumbered; `None` when [`Peer::address`] is set.
    pub interface: Option<String>,
    /// Local address to connect from.
    pub source_address: Option<IpAddr>,
    /// TCP port of the peer (1-16384, default 179).
    pub port: u16,
    /// Hold time; `None` when neither hold nor keepalive time is given (the BGP
    /// implementation's default applies). When only the keepalive time is given, three
    /// times it.
    pub hold_time: Option<Duration>,
    /// Keepalive interval; `None` when neither is given. When only the hold time is
    /// given, a third of it.
    pub keepalive_time: Option<Duration>,
    /// Wait between connection attempts (whole seconds, 1-65535), when set.
    pub connect_time: Option<Duration>,
    /// BGP identifier to send, when set.
    pub router_id: Option<Ipv4Addr>,
    /// Nodes that peer: a node matching any selector; empty means every node.
    pub node_selectors: Vec<Selector>,
    /// TCP-MD5 password, from `password` or read from `passwordSecret`.
    pub password: Option<Password>,
    /// Name of the [`BfdProfile`] of the session; `None` for no BFD.
    pub bfd_profile: Option<String>,
    /// Advertise graceful restart.
    pub graceful_restart: bool,
    /// The eBGP peer is more than one hop away.
    pub ebgp_multihop: bool,
    /// Host VRF the session is made from; `None` for the default VRF.
    pub vrf: Option<String>,
    /// Deprecated `disableMP`: one session per address family.
    pub disable_mp: bool,
    /// Exchange IPv4 and IPv6 routes on one session (`dualStackAddressFamily`).
    pub dual_stack: bool,
}

impl Peer {
    /// A peer at `address` with every optional field unset (port 179, no timers, no
    /// selectors: every node peers).
    pub fn new(name: &str, my_asn: u32, peer_asn: PeerAsn, address: IpAddr) -> Peer {
        Peer {
            name: name.into(),
            my_asn,
            peer_asn,
            local_asn: None,
            address: Some(address),
            interface: None,
            source_address: None,
            port: 179,
            hold_time: None,
            keepalive_time: None,
            connect_time: None,
            router_id: None,
            node_selectors: Vec::new(),
            password: None,
            bfd_profile: None,
            graceful_restart: false,
            ebgp_multihop: false,
            vrf: None,
            disable_mp: false,
            dual_stack: false,
        }
    }
}

/// A valid `BFDProfile`, defaults filled in. Intervals are in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct BfdProfile {
    /// The profile's name.
    pub name: String,
    /// Minimum interval between received control packets (10-60000, default 300).
    pub receive_interval: u32,
    /// Minimum interval between sent control packets (10-60000, default 300).
    pub transmit_interval: u32,
    /// Packets missed before the session is down (2-255, default 3).
    pub detect_multiplier: u32,
    /// Interval between echo packets (10-60000, default 50).
    pub echo_interval: u32,
    /// Send echo packets.
    pub echo_mode: bool,
    /// Wait for the peer to start the session.
    pub passive_mode: bool,
    /// Lowest TTL accepted on multihop sessions (1-254, default 254).
    pub minimum_ttl: u32,
}

/// A BGP community value.
///
/// Parsed from and displayed as `a:b` (standard, RFC 1997, 16-bit halves) or
/// `large:a:b:c` (large, RFC 8092, 32-bit parts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BgpCommunity {
    /// A standard community `a:b`.
    Standard(u16, u16),
    /// A large community `large:a:b:c`.
    Large(u32, u32, u32),
}

/// Why a text is not a [`BgpCommunity`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommunityParseError {
    /// The text has the shape of a community (two parts, or starting with `large:`) but
    /// a part is missing or is not a number in range; the text says which.
    InvalidValue(String),
    /// The text has neither shape (so it may be the name of an alias).
    NotACommunity,
}

impl fmt::Display for CommunityParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommunityParseError::InvalidValue(m) => f.write_str(m),
            CommunityParseError::NotACommunity => {
                f.write_str("neither a:b (standard) nor large:a:b:c (large)")
            }
        }
    }
}

impl std::error::Error for CommunityParseError {}

impl FromStr for BgpCommunity {
    type Err = CommunityParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [a, b] => {
                let half = |p: &str| {
                    parse_decimal::<u16>(p).ok_or_else(|| {
                        CommunityParseError::InvalidValue(format!(
                            "{p:?} is not a number from 0 to 65535 (each half of a standard community is 16 bits)"
                        ))
                    })
                };
                Ok(BgpCommunity::Standard(half(a)?, half(b)?))
            }
            [marker, a, b, c] => {
                if *marker != "large" {
                    return Err(CommunityParseError::InvalidValue(format!(
                        "a community of four parts must be large:a:b:c, but it starts with {marker:?}"
                    )));
                }
                let part = |p: &str| {
                    parse_decimal::<u32>(p).ok_or_else(|| {
                        CommunityParseError::InvalidValue(format!(
                            "{p:?} is not a number from 0 to 4294967295 (each part of a large community is 32 bits)"
                        ))
                    })
                };
                Ok(BgpCommunity::Large(part(a)?, part(b)?, part(c)?))
            }
            [marker, ..] if *marker == "large" => Err(CommunityParseError::InvalidValue(format!(
                "a large community has three numbers after the marker (large:a:b:c), but {s:?} has {}",
                parts.len() - 1
            ))),
            _ => Err(CommunityParseError::NotACommunity),
        }
    }
}

/// Unsigned decimal digits only (no sign, no spaces), as Go's `strconv.ParseUint`.
fn parse_decimal<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for BgpCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BgpCommunity::Standard(a, b) => write!(f, "{a}:{b}"),
            BgpCommunity::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}
