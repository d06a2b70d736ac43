//! ARP for IPv4 over Ethernet (RFC 826), with the gratuitous forms of RFC 5227 and
//! RFC 2002 section 4.6.

use super::ethernet::{self, EtherType};
use super::{MacAddr, PacketError, Reader};
use std::net::Ipv4Addr;

/// Bytes in an ARP packet for IPv4 over Ethernet.
pub const LEN: usize = 28;

/// ARP hardware type for Ethernet (RFC 826 `ar$hrd`).
const HTYPE_ETHERNET: u16 = 1;
/// ARP protocol type for IPv4 (RFC 826 `ar$pro`).
const PTYPE_IPV4: u16 = 0x0800;

/// The ARP opcode (RFC 826 `ar$op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArpOperation {
    /// 1, `REQUEST`.
    Request,
    /// 2, `REPLY`.
    Reply,
    /// Any other opcode (RARP and InARP use other values); well-formed, but not ours.
    Other(u16),
}

impl ArpOperation {
    /// The opcode on the wire.
    pub fn code(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Other(c) => c,
        }
    }

    /// The operation for an opcode.
    pub fn from_code(code: u16) -> Self {
        match code {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            c => ArpOperation::Other(c),
        }
    }
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArpPacket {
    /// Request, reply or other.
    pub operation: ArpOperation,
    /// Sender hardware address (`ar$sha`).
    pub sender_mac: MacAddr,
    /// Sender protocol address (`ar$spa`); 0.0.0.0 in an ARP Probe (RFC 5227 2.1.1).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (`ar$tha`); ignored in requests.
    pub target_mac: MacAddr,
    /// Target protocol address (`ar$tpa`).
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Parses an ARP payload (after the Ethernet header). Only Ethernet/IPv4 is accepted
    /// (hardware type 1, protocol 0x0800, lengths 6 and 4); trailing bytes (Ethernet
    /// padding) are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, PacketError> {
        let mut r = Reader::new(payload, "ARP packet");
        if r.remaining() < LEN {
            return Err(PacketError::Truncated {
                what: "ARP packet",
                need: LEN,
                have: r.remaining(),
            });
        }
        let htype = r.u16()?;
        if htype != HTYPE_ETHERNET {
            return Err(PacketError::ArpHardwareType(htype));
        }
        let ptype = r.u16()?;
        if ptype != PTYPE_IPV4 {
            return Err(PacketError::ArpProtocolType(ptype));
        }
        let hardware = r.u8()?;
        let protocol = r.u8()?;
        if hardware != 6 || protocol != 4 {
            return Err(PacketError::ArpAddressLength { hardware, protocol });
        }
        let operation = ArpOperation::from_code(r.u16()?);
        let sender_mac = r.mac()?;
        let sender_ip = Ipv4Addr::from(r.array::<4>()?);
        let target_mac = r.mac()?;
        let target_ip = Ipv4Addr::from(r.array::<4>()?);
        Ok(ArpPacket {
            operation,
            sender_mac,
            sender_ip,
            target_mac,
            target_ip,
        })
    }

    /// The 28 bytes of the packet.
    pub fn to_bytes(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        let mut w = out.iter_mut();
        let fields: [&[u8]; 8] = [
            &HTYPE_ETHERNET.to_be_bytes(),
            &PTYPE_IPV4.to_be_bytes(),
            &[6, 4],
            &self.operation.code().to_be_bytes(),
            &self.sender_mac.0,
            &self.sender_ip.octets(),
            &self.target_mac.0,
            &self.target_ip.octets(),
        ];
        for byte in fields.iter().flat_map(|f| f.iter()) {
            if let Some(slot) = w.next() {
                *slot = *byte;
            }
        }
        out
    }

    /// An Ethernet frame carrying this packet, padded to the minimum frame size.
    pub fn to_frame(&self, eth_dst: MacAddr, eth_src: MacAddr) -> Vec<u8> {
        ethernet::build(eth_dst, eth_src, EtherType::ARP, &self.to_bytes())
    }

    /// Whether this is an ARP Probe: sender IP 0.0.0.0 (RFC 5227 section 2.1.1).
    pub fn is_probe(&self) -> bool {
        self.sender_ip.is_unspecified()
    }

    /// Whether this is a gratuitous announcement: sender IP equal to target IP
    /// (RFC 5227 section 3, RFC 2002 section 4.6).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip && !self.sender_ip.is_unspecified()
    }

    /// The reply to this request from `mac`, which holds `target_ip`: sent to the asker,
    /// addresses swapped (RFC 826, "Packet Reception").
    pub fn reply(&self, mac: MacAddr) -> ArpPacket {
        ArpPacket {
            operation: ArpOperation::Reply,
            sender_mac: mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }
}

/// The two broadcast frames of a gratuitous ARP burst for `ip` held by `mac`: a request
/// (RFC 5227 section 3 "ARP Announcement": sender and target IP both `ip`, target
/// hardware address zero) and a reply (RFC 2002 section 4.6: sender and target hardware
/// address both `mac`; Linux only treats a reply as gratuitous when they are equal).
pub fn gratuitous_frames(mac: MacAddr, ip: Ipv4Addr) -> [Vec<u8>; 2] {
    let request = ArpPacket {
        operation: ArpOperation::Request,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: MacAddr::ZERO,
        target_ip: ip,
    };
    let reply = ArpPacket {
        operation: ArpOperation::Reply,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: mac,
        target_ip: ip,
    };
    [
        request.to_frame(MacAddr::BROADCAST, mac),
        reply.to_frame(MacAddr::BROADCAST, mac),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::EthernetFrame;

    /// `arping -I eth0 198.51.100.11` from 02:42:c6:33:64:10 (198.51.100.10), captured
    /// with `tcpdump -xx` on Linux 6.18 (42 bytes: veth does not pad).
    pub(crate) const CAPTURED_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x10, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x10, 0xc6, 0x33,
        0x64, 0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc6, 0x33, 0x64, 0x0b,
    ];
    /// The kernel's reply to it from 02:42:c6:33:64:11.
    const CAPTURED_REPLY: [u8; 42] = [
        0x02, 0x42, 0xc6, 0x33, 0x64, 0x10, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x11, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x11, 0xc6, 0x33,
        0x64, 0x0b, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x10, 0xc6, 0x33, 0x64, 0x0a,
    ];

    const ASKER: MacAddr = MacAddr([0x02, 0x42, 0xc6, 0x33, 0x64, 0x10]);
    const OWNER: MacAddr = MacAddr([0x02, 0x42, 0xc6, 0x33, 0x64, 0x11]);

    #[test]
    fn parses_captured_request() {
        let eth = EthernetFrame::parse(&CAPTURED_REQUEST).unwrap();
        assert_eq!(eth.ethertype, EtherType::ARP);
        let p = ArpPacket::parse(eth.payload).unwrap();
        assert_eq!(p.operation, ArpOperation::Request);
        assert_eq!(p.sender_mac, ASKER);
        assert_eq!(p.sender_ip, Ipv4Addr::new(198, 51, 100, 10));
        assert_eq!(p.target_mac, MacAddr::BROADCAST);
        assert_eq!(p.target_ip, Ipv4Addr::new(198, 51, 100, 11));
        assert!(!p.is_probe());
        assert!(!p.is_gratuitous());
    }

    #[test]
    fn reply_matches_the_kernels_reply() {
        let eth = EthernetFrame::parse(&CAPTURED_REQUEST).unwrap();
        let req = ArpPacket::parse(eth.payload).unwrap();
        let frame = req.reply(OWNER).to_frame(req.sender_mac, OWNER);
        // Same bytes as the kernel's, plus padding to 60.
        assert_eq!(frame.get(..42), Some(&CAPTURED_REPLY[..]));
        assert_eq!(frame.len(), 60);
        assert!(frame.get(42..).unwrap().iter().all(|&b| b == 0));
    }

    #[test]
    fn round_trip() {
        let p = ArpPacket {
            operation: ArpOperation::Other(3),
            sender_mac: OWNER,
            sender_ip: Ipv4Addr::new(203, 0, 113, 7),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(203, 0, 113, 8),
        };
        assert_eq!(ArpPacket::parse(&p.to_bytes()).unwrap(), p);
    }

    #[test]
    fn rejects_other_types_and_lengths() {
        let good = CAPTURED_REQUEST.get(14..).unwrap().to_vec();
        let mut bad = good.clone();
        bad[1] = 6; // IEEE 802
        assert_eq!(ArpPacket::parse(&bad), Err(PacketError::ArpHardwareType(6)));
        let mut bad = good.clone();
        bad[2] = 0x86;
        bad[3] = 0xdd;
        assert_eq!(
            ArpPacket::parse(&bad),
            Err(PacketError::ArpProtocolType(0x86dd))
        );
        let mut bad = good.clone();
        bad[4] = 8;
        assert_eq!(
            ArpPacket::parse(&bad),
            Err(PacketError::ArpAddressLength {
                hardware: 8,
                protocol: 4
            })
        );
        for n in 0..LEN {
            assert!(matches!(
                ArpPacket::parse(good.get(..n).unwrap()),
                Err(PacketError::Truncated { need: LEN, .. })
            ));
        }
    }

    #[test]
    fn gratuitous_burst() {
        let ip = Ipv4Addr::new(198, 51, 100, 200);
        let [req, rep] = gratuitous_frames(OWNER, ip);
        for (frame, op, tha) in [
            (&req, ArpOperation::Request, MacAddr::ZERO),
            (&rep, ArpOperation::Reply, OWNER),
        ] {
            let eth = EthernetFrame::parse(frame).unwrap();
            assert_eq!(eth.dst, MacAddr::BROADCAST);
            assert_eq!(eth.src, OWNER);
            let p = ArpPacket::parse(eth.payload).unwrap();
            assert_eq!(p.operation, op);
            assert_eq!(p.sender_mac, OWNER);
            assert_eq!(p.target_mac, tha);
            assert_eq!((p.sender_ip, p.target_ip), (ip, ip));
            assert!(p.is_gratuitous());
        }
    }
}
