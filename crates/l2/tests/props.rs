//! Property tests: parsers never panic on any bytes, builders round-trip through the
//! parsers, and the responder answers every well-formed question for an owned address.

use ferrolb_l2::packet::arp::{self, ArpPacket};
use ferrolb_l2::packet::ndp::{self, solicited_node};
use ferrolb_l2::packet::{
    ArpOperation, EthernetFrame, Ipv6Packet, MacAddr, NdpMessage, NdpPacket, NeighborAdvertisement,
    NeighborSolicitation,
};
use ferrolb_l2::{InterfaceInfo, Outcome, Responder};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const NODE: MacAddr = MacAddr([0x02, 0x42, 0xc6, 0x33, 0x64, 0x0b]);

fn responder(owned: &[IpAddr]) -> Responder {
    let mut r = Responder::new();
    r.set_interface(
        InterfaceInfo {
            ifindex: 2,
            name: "eth0".into(),
            mac: NODE,
        },
        owned.iter().copied().collect::<BTreeSet<_>>(),
    );
    r
}

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn unicast_mac() -> impl Strategy<Value = MacAddr> {
    mac().prop_map(|mut m| {
        m.0[0] &= 0xfe;
        m.0[5] |= 1;
        m
    })
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn unicast_ipv6() -> impl Strategy<Value = Ipv6Addr> {
    ipv6().prop_filter("unicast, specified", |a| {
        !a.is_multicast() && !a.is_unspecified()
    })
}

fn ndp_packet() -> impl Strategy<Value = NdpPacket> {
    let ns = (
        unicast_ipv6(),
        any::<bool>(),
        unicast_ipv6(),
        proptest::option::of(mac()),
        any::<bool>(),
    )
        .prop_map(|(target, dad, src, sll, to_group)| {
            if dad {
                // RFC 4861 7.1.1: from ::, to the solicited-node group, no SLLA.
                NdpPacket {
                    src: Ipv6Addr::UNSPECIFIED,
                    dst: solicited_node(target),
                    message: NdpMessage::Solicitation(NeighborSolicitation {
                        target,
                        source_link_addr: None,
                    }),
                }
            } else {
                NdpPacket {
                    src,
                    dst: if to_group {
                        solicited_node(target)
                    } else {
                        target
                    },
                    message: NdpMessage::Solicitation(NeighborSolicitation {
                        target,
                        source_link_addr: sll,
                    }),
                }
            }
        });
    let na = (
        unicast_ipv6(),
        unicast_ipv6(),
        ipv6(),
        any::<[bool; 3]>(),
        proptest::option::of(mac()),
    )
        .prop_map(|(src, target, dst, [r, s, o], tll)| NdpPacket {
            src,
            dst,
            message: NdpMessage::Advertisement(NeighborAdvertisement {
                router: r,
                // RFC 4861 7.1.2: S must be 0 when sent to multicast.
                solicited: s && !dst.is_multicast(),
                override_flag: o,
                target,
                target_link_addr: tll,
            }),
        });
    prop_oneof![ns, na]
}

fn arp_packet() -> impl Strategy<Value = ArpPacket> {
    (
        any::<u16>(),
        mac(),
        any::<[u8; 4]>(),
        mac(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(op, sha, spa, tha, tpa)| ArpPacket {
            operation: ArpOperation::from_code(op),
            sender_mac: sha,
            sender_ip: Ipv4Addr::from(spa),
            target_mac: tha,
            target_ip: Ipv4Addr::from(tpa),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(eth) = EthernetFrame::parse(&bytes) {
            let _ = ArpPacket::parse(eth.payload);
            if let Ok(ip) = Ipv6Packet::parse(eth.payload) {
                let _ = NdpPacket::parse(&ip);
            }
        }
        let _ = ArpPacket::parse(&bytes);
        if let Ok(ip) = Ipv6Packet::parse(&bytes) {
            let _ = NdpPacket::parse(&ip);
        }
        let mut r = responder(&[
            "198.51.100.200".parse().unwrap(),
            "2001:db8::200".parse().unwrap(),
        ]);
        let _ = r.handle(2, &bytes);
    }

    /// Random bytes almost never get past the checksum: mutate valid frames instead,
    /// so the option walker and the RFC 4861 checks see hostile input too.
    #[test]
    fn mutated_ndp_frames_never_panic(
        p in ndp_packet(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        extra in proptest::collection::vec(any::<u8>(), 0..40),
        resign in any::<bool>(),
    ) {
        let mut ipv6 = p.ipv6_bytes();
        ipv6.extend_from_slice(&extra);
        let len = ipv6.len();
        for (at, b) in edits {
            if let Some(slot) = ipv6.get_mut(at % len) {
                *slot = b;
            }
        }
        if resign && ipv6.len() >= 44 {
            // Fix the payload length and checksum so the mutation reaches the options.
            let plen = (ipv6.len() - 40) as u16;
            ipv6[4..6].copy_from_slice(&plen.to_be_bytes());
            ipv6[6] = 58;
            ipv6[7] = 255;
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ipv6[8..24]).unwrap());
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ipv6[24..40]).unwrap());
            let sum = ndp::icmpv6_checksum(src, dst, &ipv6[40..]).to_be_bytes();
            ipv6[42..44].copy_from_slice(&sum);
        }
        if let Ok(ip) = Ipv6Packet::parse(&ipv6) {
            let _ = NdpPacket::parse(&ip);
        }
        let frame = ferrolb_l2::packet::ethernet::build(
            MacAddr::solicited_node(p.dst),
            MacAddr([2, 0, 0, 0, 0, 1]),
            ferrolb_l2::packet::EtherType::IPV6,
            &ipv6,
        );
        let mut r = responder(&["2001:db8::200".parse().unwrap()]);
        let _ = r.handle(2, &frame);
    }

    #[test]
    fn arp_round_trips(p in arp_packet(), dst in mac(), src in mac()) {
        let frame = p.to_frame(dst, src);
        let eth = EthernetFrame::parse(&frame).unwrap();
        prop_assert_eq!((eth.dst, eth.src), (dst, src));
        prop_assert_eq!(ArpPacket::parse(eth.payload).unwrap(), p);
    }

    #[test]
    fn ndp_round_trips(p in ndp_packet(), dst in mac(), src in mac()) {
        let frame = p.to_frame(dst, src);
        let eth = EthernetFrame::parse(&frame).unwrap();
        let ip = Ipv6Packet::parse(eth.payload).unwrap();
        prop_assert_eq!(ip.hop_limit, 255);
        prop_assert_eq!(NdpPacket::parse(&ip).unwrap(), Some(p));
    }

    #[test]
    fn every_arp_request_for_an_owned_address_is_answered(
        vip in any::<[u8; 4]>(),
        asker in unicast_mac(),
        asker_ip in any::<[u8; 4]>(),
        broadcast in any::<bool>(),
    ) {
        let vip = Ipv4Addr::from(vip);
        let asker_ip = Ipv4Addr::from(asker_ip);
        prop_assume!(asker_ip != vip && asker != NODE);
        let mut r = responder(&[IpAddr::V4(vip)]);
        let req = ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: asker,
            sender_ip: asker_ip,
            target_mac: MacAddr::ZERO,
            target_ip: vip,
        };
        let frame = req.to_frame(if broadcast { MacAddr::BROADCAST } else { NODE }, asker);
        let Outcome::Reply(reply) = r.handle(2, &frame) else {
            return Err(TestCaseError::fail("no reply"));
        };
        let eth = EthernetFrame::parse(&reply.frame).unwrap();
        prop_assert_eq!((eth.dst, eth.src), (asker, NODE));
        prop_assert_eq!(ArpPacket::parse(eth.payload).unwrap(), req.reply(NODE));
        let [g1, g2] = arp::gratuitous_frames(NODE, vip);
        // Our own gratuitous frames are never answered.
        prop_assert!(!matches!(r.handle(2, &g1), Outcome::Reply(_)));
        prop_assert!(!matches!(r.handle(2, &g2), Outcome::Reply(_)));
    }

    #[test]
    fn every_solicitation_for_an_owned_address_is_answered(
        vip in unicast_ipv6(),
        asker in unicast_mac(),
        asker_ip in unicast_ipv6(),
        sll in any::<bool>(),
        to_group in any::<bool>(),
    ) {
        prop_assume!(asker != NODE);
        let mut r = responder(&[IpAddr::V6(vip)]);
        let dst = if to_group { solicited_node(vip) } else { vip };
        let ns = NdpPacket {
            src: asker_ip,
            dst,
            message: NdpMessage::Solicitation(NeighborSolicitation {
                target: vip,
                source_link_addr: sll.then_some(asker),
            }),
        };
        let eth_dst = if to_group { MacAddr::ipv6_multicast(dst) } else { NODE };
        let Outcome::Reply(reply) = r.handle(2, &ns.to_frame(eth_dst, asker)) else {
            return Err(TestCaseError::fail("no reply"));
        };
        let eth = EthernetFrame::parse(&reply.frame).unwrap();
        prop_assert_eq!((eth.dst, eth.src), (asker, NODE));
        let na = NdpPacket::parse(&Ipv6Packet::parse(eth.payload).unwrap()).unwrap().unwrap();
        prop_assert_eq!(
            na,
            NdpPacket {
                src: vip,
                dst: asker_ip,
                message: NdpMessage::Advertisement(NeighborAdvertisement {
                    router: false,
                    solicited: true,
                    override_flag: true,
                    target: vip,
                    target_link_addr: Some(NODE),
                }),
            }
        );
        // Our own unsolicited advertisement is not answered.
        let own = ndp::unsolicited_advertisement(NODE, vip);
        prop_assert!(!matches!(r.handle(2, &own), Outcome::Reply(_)));
    }
}
