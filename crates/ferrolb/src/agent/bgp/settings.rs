//! From a `BGPPeer` to the settings of its session (pure).

use ferrolb_bgp::Family;
use ferrolb_bgp::{GracefulRestartConfig, LargeCommunity, PeerAs, RouteAttributes, SessionConfig};
use ferrolb_election::Route;
use ferrolb_model::config::{BgpCommunity, Peer, PeerAsn};
use ferrolb_model::crd::DynamicAsn;
use ferrolb_model::{Config, Snapshot};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Hold time when the BGPPeer gives none (MetalLB's and RFC 4271's suggestion).
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// Restart time announced with graceful restart (FRR's default).
pub const RESTART_TIME: u16 = 120;

/// This node's own addresses, from its Node object (`InternalIP`s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeAddresses {
    /// The first IPv4 InternalIP.
    pub v4: Option<Ipv4Addr>,
    /// The first IPv6 InternalIP.
    pub v6: Option<Ipv6Addr>,
}

impl NodeAddresses {
    /// The InternalIPs of `node` in the snapshot.
    pub fn of(snapshot: &Snapshot, node: &str) -> NodeAddresses {
        let mut out = NodeAddresses::default();
        let addresses = snapshot
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(node))
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.addresses.as_ref());
        for a in addresses.into_iter().flatten() {
            if a.type_ != "InternalIP" {
                continue;
            }
            match a.address.parse::<IpAddr>() {
                Ok(IpAddr::V4(v4)) if out.v4.is_none() => out.v4 = Some(v4),
                Ok(IpAddr::V6(v6)) if out.v6.is_none() => out.v6 = Some(v6),
                _ => {}
            }
        }
        out
    }
}

/// BFD on a session.
#[derive(Clone, Debug, PartialEq)]
pub struct BfdSettings {
    /// The BFDProfile's name.
    pub profile: String,
    /// The session's timers and checks.
    pub config: ferrolb_bfd::SessionConfig,
    /// Multihop (RFC 5883, for `ebgpMultiHop` peers) rather than single hop (RFC 5881).
    pub multihop: bool,
    /// The profile asks for echo mode, which we do not implement (asynchronous mode
    /// alone detects failures, at the profile's intervals).
    pub echo_requested: bool,
}

/// Everything a session with one peer needs. Two equal settings mean the running
/// session can stay; any difference restarts it.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerSettings {
    /// Where to connect.
    pub remote: SocketAddr,
    /// The session's protocol settings.
    pub session: SessionConfig,
    /// TCP-MD5 password.
    pub password: Option<String>,
    /// Local address to connect from.
    pub source: Option<IpAddr>,
    /// TTL of our packets: 1 towards a directly connected external peer, 255 otherwise
    /// (internal, or `ebgpMultiHop`).
    pub ttl: u8,
    /// BFD, when the peer has a profile.
    pub bfd: Option<BfdSettings>,
}

/// The settings of the session with `peer` from this node.
///
/// `towards` is the local address the kernel would use to reach the peer (for the
/// router ID). Errors say why the peer cannot be served; the agent logs them and leaves
/// that peer out.
pub fn peer_settings(
    peer: &Peer,
    config: &Config,
    node: &str,
    addresses: NodeAddresses,
    towards: Option<IpAddr>,
    graceful_shutdown: Option<Duration>,
) -> Result<PeerSettings, String> {
    let Some(address) = peer.address else {
        return Err(format!(
            "BGPPeer/{}: spec.interface: BGP unnumbered is not supported yet",
            peer.name
        ));
    };
    if let Some(vrf) = &peer.vrf {
        return Err(format!(
            "BGPPeer/{}: spec.vrf: sessions from VRF {vrf:?} are not supported yet",
            peer.name
        ));
    }
    let local_as = peer.local_asn.unwrap_or(peer.my_asn);
    let peer_as = match peer.peer_asn {
        PeerAsn::Fixed(asn) => PeerAs::Fixed(asn),
        PeerAsn::Dynamic(DynamicAsn::Internal) => PeerAs::Internal,
        PeerAsn::Dynamic(DynamicAsn::External) => PeerAs::External,
    };
    let internal = match peer_as {
        PeerAs::Fixed(asn) => asn == local_as,
        PeerAs::Internal => true,
        PeerAs::External => false,
    };
    let mut session =
        SessionConfig::new(local_as, peer_as, router_id(peer, addresses, towards, node));
    session.hold_time = peer.hold_time.map_or(DEFAULT_HOLD_TIME, secs_u16);
    session.keepalive = peer.keepalive_time.map(secs_u16);
    if let Some(wait) = peer.connect_time {
        session.retry_min = wait;
        session.retry_max = wait;
    }
    session.families = match (address, peer.dual_stack) {
        (_, true) => vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        (IpAddr::V4(_), false) => vec![Family::IPV4_UNICAST],
        (IpAddr::V6(_), false) => vec![Family::IPV6_UNICAST],
    };
    session.graceful_restart = peer.graceful_restart.then_some(GracefulRestartConfig {
        restart_time: RESTART_TIME,
        forwarding_preserved: true,
    });
    session.graceful_shutdown = graceful_shutdown;
    // Jitter must differ between nodes, but not between two computations of the same
    // settings (equal settings keep the session running).
    session.jitter_seed = Some(u64::from(crc32(format!("{node}/{}", peer.name).as_bytes())) | 1);
    // The next hop of the session's own family is its local address (the source
    // address when set); the other family's, on a dual-stack session, is the node's.
    let source = peer.source_address;
    session.ipv4_next_hop = match source {
        Some(IpAddr::V4(v4)) => Some(v4),
        _ if address.is_ipv6() => addresses.v4,
        _ => None,
    };
    session.ipv6_next_hop = match source {
        Some(IpAddr::V6(v6)) => Some(v6),
        _ if address.is_ipv4() => addresses.v6,
        _ => None,
    };
    let bfd = match &peer.bfd_profile {
        None => None,
        Some(name) => {
            let Some(p) = config.bfd_profiles.get(name) else {
                return Err(format!(
                    "BGPPeer/{}: spec.bfdProfile: no BFDProfile named {name:?}",
                    peer.name
                ));
            };
            let profile = ferrolb_bfd::BfdProfile {
                receive_interval_ms: p.receive_interval,
                transmit_interval_ms: p.transmit_interval,
                detect_multiplier: p.detect_multiplier,
                echo_interval_ms: p.echo_interval,
                echo_mode: p.echo_mode,
                passive_mode: p.passive_mode,
                minimum_ttl: p.minimum_ttl,
            };
            let multihop = peer.ebgp_multihop;
            let config = profile
                .session_config(multihop)
                .map_err(|e| format!("BFDProfile/{name}: {e}"))?;
            Some(BfdSettings {
                profile: name.clone(),
                config,
                multihop,
                echo_requested: p.echo_mode,
            })
        }
    };
    Ok(PeerSettings {
        remote: SocketAddr::new(address, peer.port),
        session,
        password: peer.password.as_ref().map(|p| p.0.clone()),
        source,
        ttl: if internal || peer.ebgp_multihop {
            255
        } else {
            1
        },
        bfd,
    })
}

fn secs_u16(d: Duration) -> u16 {
    u16::try_from(d.as_secs()).unwrap_or(u16::MAX)
}

/// The BGP identifier, chosen as MetalLB does: the peer's `routerID`; else an IPv4
/// address of ours: the source address, the address we reach the peer from, the node's
/// InternalIP; else a hash (CRC-32) of the node's name.
pub fn router_id(
    peer: &Peer,
    addresses: NodeAddresses,
    towards: Option<IpAddr>,
    node: &str,
) -> Ipv4Addr {
    let v4 = |a: Option<IpAddr>| match a {
        Some(IpAddr::V4(v4)) if !v4.is_unspecified() => Some(v4),
        _ => None,
    };
    peer.router_id
        .or_else(|| v4(peer.source_address))
        .or_else(|| v4(towards))
        .or(addresses.v4)
        .unwrap_or_else(|| {
            // A BGP identifier must not be zero.
            let h = crc32(node.as_bytes());
            Ipv4Addr::from(if h == 0 { 1 } else { h })
        })
}

/// CRC-32 (IEEE 802.3, as Go's `crc32.ChecksumIEEE`).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// The path attributes of a planned route.
pub fn route_attributes(route: &Route) -> RouteAttributes {
    let mut attrs = RouteAttributes {
        local_pref: route.local_pref,
        ..Default::default()
    };
    for c in &route.communities {
        match *c {
            BgpCommunity::Standard(a, b) => {
                attrs.communities.push(u32::from(a) << 16 | u32::from(b));
            }
            BgpCommunity::Large(global, local1, local2) => {
                attrs.large_communities.push(LargeCommunity {
                    global,
                    local1,
                    local2,
                });
            }
        }
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_model::config::{BfdProfile, Password};

    fn peer() -> Peer {
        Peer::new(
            "r",
            64512,
            PeerAsn::Fixed(64513),
            "198.51.100.1".parse().unwrap(),
        )
    }

    fn settings(p: &Peer, c: &Config) -> Result<PeerSettings, String> {
        let addrs = NodeAddresses {
            v4: Some("198.51.100.11".parse().unwrap()),
            v6: Some("2001:db8::11".parse().unwrap()),
        };
        peer_settings(p, c, "node-a", addrs, None, None)
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn router_id_order() {
        let mut p = peer();
        let addrs = NodeAddresses {
            v4: Some("198.51.100.11".parse().unwrap()),
            v6: None,
        };
        let towards: Option<IpAddr> = Some("198.51.100.12".parse().unwrap());
        assert_eq!(
            router_id(&p, NodeAddresses::default(), None, "node-a"),
            Ipv4Addr::from(crc32(b"node-a"))
        );
        assert_eq!(router_id(&p, addrs, None, "n"), addrs.v4.unwrap());
        assert_eq!(
            router_id(&p, addrs, towards, "n").to_string(),
            "198.51.100.12"
        );
        p.source_address = Some("198.51.100.13".parse().unwrap());
        assert_eq!(
            router_id(&p, addrs, towards, "n").to_string(),
            "198.51.100.13"
        );
        p.router_id = Some("192.0.2.1".parse().unwrap());
        assert_eq!(router_id(&p, addrs, towards, "n").to_string(), "192.0.2.1");
    }

    #[test]
    fn external_peer_defaults() {
        let s = settings(&peer(), &Config::default()).unwrap();
        assert_eq!(s.remote.to_string(), "198.51.100.1:179");
        assert_eq!(s.session.local_as, 64512);
        assert_eq!(s.session.peer_as, PeerAs::Fixed(64513));
        assert_eq!(s.session.hold_time, 90);
        assert_eq!(s.session.keepalive, None);
        assert_eq!(s.session.families, vec![Family::IPV4_UNICAST]);
        assert_eq!(s.session.graceful_restart, None);
        // Single-stack IPv4 session: the IPv4 next hop is the local address.
        assert_eq!(s.session.ipv4_next_hop, None);
        assert_eq!(s.ttl, 1);
        assert!(s.bfd.is_none());
        // Computing the settings again gives equal settings (the session stays).
        assert_eq!(settings(&peer(), &Config::default()).unwrap(), s);
        assert!(s.password.is_none());
    }

    #[test]
    fn internal_multihop_dual_stack_and_timers() {
        let mut p = peer();
        p.peer_asn = PeerAsn::Fixed(64512);
        p.hold_time = Some(Duration::from_secs(9));
        p.keepalive_time = Some(Duration::from_secs(3));
        p.connect_time = Some(Duration::from_secs(5));
        p.dual_stack = true;
        p.graceful_restart = true;
        p.password = Some(Password("s3cret".into()));
        let s = settings(&p, &Config::default()).unwrap();
        assert_eq!(s.ttl, 255);
        assert_eq!((s.session.hold_time, s.session.keepalive), (9, Some(3)));
        assert_eq!(s.session.retry_min, Duration::from_secs(5));
        assert_eq!(s.session.retry_max, Duration::from_secs(5));
        assert_eq!(s.session.families.len(), 2);
        // IPv6 routes over an IPv4 session need the node's IPv6 address as next hop.
        assert_eq!(
            s.session.ipv6_next_hop,
            Some("2001:db8::11".parse().unwrap())
        );
        assert_eq!(s.session.graceful_restart.unwrap().restart_time, 120);
        assert_eq!(s.password.as_deref(), Some("s3cret"));

        let mut p = peer();
        p.ebgp_multihop = true;
        p.local_asn = Some(65000);
        p.peer_asn = PeerAsn::Dynamic(DynamicAsn::External);
        let s = settings(&p, &Config::default()).unwrap();
        assert_eq!(s.ttl, 255);
        assert_eq!(s.session.local_as, 65000);
        assert_eq!(s.session.peer_as, PeerAs::External);
    }

    #[test]
    fn bfd_profile_resolves_and_missing_ones_are_errors() {
        let mut p = peer();
        p.bfd_profile = Some("fast".into());
        let err = settings(&p, &Config::default()).unwrap_err();
        assert!(err.contains("BGPPeer/r: spec.bfdProfile"), "{err}");
        let mut c = Config::default();
        c.bfd_profiles.insert(
            "fast".into(),
            BfdProfile {
                name: "fast".into(),
                receive_interval: 100,
                transmit_interval: 100,
                detect_multiplier: 3,
                echo_interval: 50,
                echo_mode: true,
                passive_mode: false,
                minimum_ttl: 254,
            },
        );
        let s = settings(&p, &c).unwrap();
        let bfd = s.bfd.unwrap();
        assert_eq!(bfd.config.desired_min_tx, Duration::from_millis(100));
        assert_eq!(bfd.config.detect_mult, 3);
        assert!(!bfd.multihop);
        assert!(bfd.echo_requested);
    }

    #[test]
    fn unnumbered_and_vrf_peers_are_refused_with_the_field() {
        let mut p = peer();
        p.address = None;
        p.interface = Some("eth0".into());
        assert!(
            settings(&p, &Config::default())
                .unwrap_err()
                .contains("spec.interface")
        );
        let mut p = peer();
        p.vrf = Some("red".into());
        assert!(
            settings(&p, &Config::default())
                .unwrap_err()
                .contains("spec.vrf")
        );
    }

    #[test]
    fn communities_become_attributes() {
        let route = Route {
            communities: [
                BgpCommunity::Standard(64512, 7),
                BgpCommunity::Large(1, 2, 3),
            ]
            .into(),
            local_pref: Some(150),
            services: Default::default(),
        };
        let a = route_attributes(&route);
        assert_eq!(a.communities, vec![(64512 << 16) | 7]);
        assert_eq!(
            a.large_communities,
            vec![LargeCommunity {
                global: 1,
                local1: 2,
                local2: 3
            }]
        );
        assert_eq!(a.local_pref, Some(150));
    }
}
