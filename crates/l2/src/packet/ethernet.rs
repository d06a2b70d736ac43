//! Ethernet II framing (destination, source, EtherType, payload).

use super::{MacAddr, PacketError, Reader};
use std::fmt;

/// Bytes in an Ethernet II header.
pub const HEADER_LEN: usize = 14;

/// The shortest Ethernet frame without its frame check sequence (64 bytes on the wire,
/// IEEE 802.3 clause 4.4.2). Built frames are padded to it, as hardware would.
pub const MIN_FRAME_LEN: usize = 60;

/// An EtherType (the protocol of an Ethernet II payload).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4, 0x0800.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP, 0x0806 (RFC 826).
    pub const ARP: EtherType = EtherType(0x0806);
    /// IPv6, 0x86DD (RFC 2464 section 3).
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// An IEEE 802.1Q VLAN tag, 0x8100.
    pub const VLAN: EtherType = EtherType(0x8100);
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EtherType({:#06x})", self.0)
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

/// A parsed Ethernet II frame, borrowing its payload. The payload may carry padding up to
/// the minimum frame size: inner parsers ignore trailing bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetFrame<'a> {
    /// Destination address.
    pub dst: MacAddr,
    /// Source address.
    pub src: MacAddr,
    /// Protocol of the payload.
    pub ethertype: EtherType,
    /// Everything after the header.
    pub payload: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    /// Parses the header of a frame as an `AF_PACKET` `SOCK_RAW` socket delivers it
    /// (no preamble, no frame check sequence).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PacketError> {
        let mut r = Reader::new(bytes, "Ethernet header");
        let dst = r.mac()?;
        let src = r.mac()?;
        let ethertype = EtherType(r.u16()?);
        Ok(EthernetFrame {
            dst,
            src,
            ethertype,
            payload: r.rest(),
        })
    }
}

/// Builds a frame: header, `payload`, then zero padding up to [`MIN_FRAME_LEN`].
pub fn build(dst: MacAddr, src: MacAddr, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity((HEADER_LEN + payload.len()).max(MIN_FRAME_LEN));
    frame.extend_from_slice(&dst.0);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&ethertype.0.to_be_bytes());
    frame.extend_from_slice(payload);
    if frame.len() < MIN_FRAME_LEN {
        frame.resize(MIN_FRAME_LEN, 0);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_header() {
        let mut bytes = vec![0xff; 6];
        bytes.extend_from_slice(&[2, 0x42, 0xc6, 0x33, 0x64, 0x10]);
        bytes.extend_from_slice(&[0x08, 0x06, 0xaa]);
        let f = EthernetFrame::parse(&bytes).unwrap();
        assert_eq!(f.dst, MacAddr::BROADCAST);
        assert_eq!(f.src, MacAddr([2, 0x42, 0xc6, 0x33, 0x64, 0x10]));
        assert_eq!(f.ethertype, EtherType::ARP);
        assert_eq!(f.payload, &[0xaa]);
    }

    #[test]
    fn short_header_is_an_error() {
        for n in 0..HEADER_LEN {
            let bytes = vec![0u8; n];
            assert!(matches!(
                EthernetFrame::parse(&bytes),
                Err(PacketError::Truncated { .. })
            ));
        }
        assert!(EthernetFrame::parse(&[0u8; HEADER_LEN]).is_ok());
    }

    #[test]
    fn build_pads_and_round_trips() {
        let f = build(
            MacAddr::BROADCAST,
            MacAddr([2; 6]),
            EtherType::ARP,
            &[1, 2, 3],
        );
        assert_eq!(f.len(), MIN_FRAME_LEN);
        let p = EthernetFrame::parse(&f).unwrap();
        assert_eq!(p.ethertype, EtherType::ARP);
        assert_eq!(p.payload.get(..3), Some(&[1u8, 2, 3][..]));
        assert!(p.payload.get(3..).unwrap().iter().all(|&b| b == 0));
        let long = build(
            MacAddr::BROADCAST,
            MacAddr([2; 6]),
            EtherType::IPV6,
            &[7; 100],
        );
        assert_eq!(long.len(), HEADER_LEN + 100);
    }
}
