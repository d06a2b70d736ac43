//! Any bytes as an IPv6 Neighbor Discovery frame: the IPv6/NDP parsers and the responder
//! never panic, and whatever parses rebuilds to a packet that parses the same.
//! When the first byte is odd, the rest is taken as an IPv6 packet whose payload length,
//! next header, hop limit and ICMPv6 checksum are fixed up first, so the fuzzer reaches
//! the option walker and the RFC 4861 checks instead of dying on the checksum.
//! Run: `cargo +nightly fuzz run ndp -- -max_total_time=300` from the repository root.

#![no_main]

use ferrolb_l2::packet::ndp::icmpv6_checksum;
use ferrolb_l2::packet::{EtherType, EthernetFrame, Ipv6Packet, MacAddr, NdpPacket, ethernet};
use ferrolb_l2::{InterfaceInfo, Responder};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv6Addr};

const NODE: MacAddr = MacAddr([0x02, 0x42, 0xc6, 0x33, 0x64, 0x0b]);

fn check(ipv6: &[u8]) {
    let Ok(ip) = Ipv6Packet::parse(ipv6) else {
        return;
    };
    if let Ok(Some(p)) = NdpPacket::parse(&ip) {
        // Rebuilt without unknown options and padding, it still parses the same.
        let rebuilt = p.ipv6_bytes();
        let again = Ipv6Packet::parse(&rebuilt).expect("rebuilt IPv6");
        assert_eq!(NdpPacket::parse(&again), Ok(Some(p)));
    }
}

fuzz_target!(|data: &[u8]| {
    let mut responder = Responder::new();
    responder.set_interface(
        InterfaceInfo {
            ifindex: 2,
            name: "eth0".into(),
            mac: NODE,
        },
        [
            IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200)),
            IpAddr::from(Ipv6Addr::UNSPECIFIED),
        ]
        .into(),
    );
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(eth) = EthernetFrame::parse(rest) {
            check(eth.payload);
        }
        let _ = responder.handle(2, rest);
        return;
    }
    if rest.len() < 44 {
        return;
    }
    let mut ipv6 = rest.to_vec();
    let plen = u16::try_from(ipv6.len() - 40).unwrap_or(u16::MAX);
    ipv6[0] = 0x60 | (ipv6[0] & 0x0f);
    ipv6[4..6].copy_from_slice(&plen.to_be_bytes());
    ipv6[6] = 58;
    if mode & 2 == 0 {
        ipv6[7] = 255;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ipv6[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ipv6[24..40]).unwrap());
    let sum = icmpv6_checksum(src, dst, &ipv6[40..]).to_be_bytes();
    ipv6[42..44].copy_from_slice(&sum);
    check(&ipv6);
    let eth_dst = if mode & 4 == 0 {
        MacAddr::ipv6_multicast(dst)
    } else {
        NODE
    };
    let frame = ethernet::build(eth_dst, MacAddr([2, 0, 0, 0, 0, 1]), EtherType::IPV6, &ipv6);
    let _ = responder.handle(2, &frame);
});
