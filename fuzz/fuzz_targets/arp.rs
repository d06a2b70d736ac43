//! Any bytes as an Ethernet frame: the ARP parser and the responder never panic, and a
//! parsed ARP packet rebuilds to the bytes it came from.
//! Run: `cargo +nightly fuzz run arp -- -max_total_time=300` from the repository root.

#![no_main]

use ferrolb_l2::packet::{ArpPacket, EthernetFrame, MacAddr};
use ferrolb_l2::{InterfaceInfo, Responder};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    if let Ok(eth) = EthernetFrame::parse(data) {
        if let Ok(arp) = ArpPacket::parse(eth.payload) {
            // Round trip: the 28 bytes parsed are the 28 bytes built.
            assert_eq!(Some(&arp.to_bytes()[..]), eth.payload.get(..28));
        }
    }
    let _ = ArpPacket::parse(data);
    let mut responder = Responder::new();
    responder.set_interface(
        InterfaceInfo {
            ifindex: 2,
            name: "eth0".into(),
            mac: MacAddr([0x02, 0x42, 0xc6, 0x33, 0x64, 0x0b]),
        },
        [
            IpAddr::from([198, 51, 100, 200]),
            IpAddr::from([0u8; 4]),
            IpAddr::from([0xffu8; 4]),
        ]
        .into(),
    );
    let _ = responder.handle(2, data);
});
