//! Wire formats, sans-IO: Ethernet II, ARP (RFC 826) and the IPv6 Neighbor Discovery
//! messages a layer 2 announcer needs (RFC 4861 Neighbor Solicitation and Advertisement).
//!
//! Parsers take untrusted bytes and return values or a [`PacketError`]; they never panic
//! and never index without a bounds check. Builders return whole Ethernet frames ready for
//! an `AF_PACKET` socket.

pub mod arp;
pub mod ethernet;
pub mod ndp;

pub use arp::{ArpOperation, ArpPacket};
pub use ethernet::{EtherType, EthernetFrame};
pub use ndp::{
    Icmpv6Type, Ipv6Packet, NdpMessage, NdpPacket, NeighborAdvertisement, NeighborSolicitation,
};

use std::fmt;
use std::net::Ipv6Addr;
use thiserror::Error;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`.
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    /// `33:33:00:00:00:01`, the Ethernet address of the IPv6 all-nodes group `ff02::1`.
    pub const ALL_NODES: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);

    /// The address as bytes.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    /// Whether the group bit (I/G, the low bit of the first octet) is set: multicast or
    /// broadcast.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// Whether this is a unicast address other than all zeroes.
    pub fn is_unicast(self) -> bool {
        !self.is_multicast() && self != Self::ZERO
    }

    /// The Ethernet address an IPv6 multicast address maps to: `33:33` followed by the low
    /// 32 bits of the group (RFC 2464 section 7).
    pub fn ipv6_multicast(group: Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// The Ethernet address of the solicited-node multicast group of `addr`
    /// (`33:33:ff` and the low 24 bits of `addr`), which a node must listen on to
    /// receive Neighbor Solicitations for it (RFC 4861 section 7.2.1).
    pub fn solicited_node(addr: Ipv6Addr) -> MacAddr {
        MacAddr::ipv6_multicast(ndp::solicited_node(addr))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

/// Why bytes are not a valid frame of the kind asked for. Invalid Neighbor Discovery
/// messages are errors too: RFC 4861 asks receivers to silently discard them, and the
/// responder counts them as malformed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Fewer bytes than the header or field needs.
    #[error("{what}: needs {need} bytes, has {have}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// ARP hardware type other than Ethernet (1).
    #[error("ARP hardware type {0} (only Ethernet, 1)")]
    ArpHardwareType(u16),
    /// ARP protocol type other than IPv4 (0x0800).
    #[error("ARP protocol type {0:#06x} (only IPv4, 0x0800)")]
    ArpProtocolType(u16),
    /// ARP address lengths other than 6 (MAC) and 4 (IPv4).
    #[error("ARP address lengths {hardware}/{protocol} (only 6/4)")]
    ArpAddressLength {
        /// Hardware address length.
        hardware: u8,
        /// Protocol address length.
        protocol: u8,
    },
    /// IP version field not 6.
    #[error("IP version {0} in an IPv6 frame")]
    Ipv6Version(u8),
    /// The IPv6 payload length claims more bytes than the frame has.
    #[error("IPv6 payload length {declared}, only {available} bytes")]
    Ipv6PayloadLength {
        /// The header's payload length.
        declared: usize,
        /// Bytes present after the header.
        available: usize,
    },
    /// Bad ICMPv6 checksum (RFC 4443 section 2.3).
    #[error("ICMPv6 checksum {found:#06x}, expected {expected:#06x}")]
    Icmpv6Checksum {
        /// The checksum in the message.
        found: u16,
        /// The checksum of the message as received.
        expected: u16,
    },
    /// Neighbor Discovery message with an IP hop limit other than 255: it may come from
    /// off-link (RFC 4861 sections 7.1.1 and 7.1.2).
    #[error("neighbor discovery with hop limit {0} (must be 255)")]
    HopLimit(u8),
    /// Neighbor Discovery message with an ICMP code other than 0 (RFC 4861 7.1.1, 7.1.2).
    #[error("neighbor discovery with ICMP code {0} (must be 0)")]
    Icmpv6Code(u8),
    /// An option whose length field is 0 (RFC 4861 section 4.6).
    #[error("neighbor discovery option of type {0} with length 0")]
    OptionLengthZero(u8),
    /// An option that runs past the end of the message.
    #[error("neighbor discovery option of type {kind}: {need} bytes, {have} left")]
    OptionTruncated {
        /// The option type.
        kind: u8,
        /// Its declared size in bytes.
        need: usize,
        /// Bytes left in the message.
        have: usize,
    },
    /// A link-layer address option whose size does not fit a 6-byte Ethernet address
    /// (RFC 4861 section 4.6.1, RFC 2464 section 8: one 8-byte unit).
    #[error("link-layer address option of {0} bytes (Ethernet needs 8)")]
    LinkLayerOptionLength(usize),
    /// A Neighbor Solicitation or Advertisement whose target is a multicast address
    /// (RFC 4861 sections 7.1.1 and 7.1.2).
    #[error("neighbor discovery target {0} is multicast")]
    MulticastTarget(Ipv6Addr),
    /// A solicitation from the unspecified address (duplicate address detection) that
    /// is not sent to the target's solicited-node group (RFC 4861 section 7.1.1).
    #[error("solicitation from :: to {0}, not a solicited-node group")]
    DadDestination(Ipv6Addr),
    /// A solicitation from the unspecified address carrying a source link-layer address
    /// option (RFC 4861 section 7.1.1).
    #[error("solicitation from :: with a source link-layer address option")]
    DadWithSourceLinkLayer,
    /// An advertisement to a multicast destination with the Solicited flag set
    /// (RFC 4861 section 7.1.2).
    #[error("solicited advertisement sent to multicast {0}")]
    SolicitedToMulticast(Ipv6Addr),
}

/// A bounds-checked cursor over untrusted bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { rest: bytes, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], PacketError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(PacketError::Truncated {
                what: self.what,
                need: n,
                have: self.rest.len(),
            })?;
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], PacketError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, PacketError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, PacketError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn mac(&mut self) -> Result<MacAddr, PacketError> {
        Ok(MacAddr(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::ALL_NODES.is_multicast());
        assert!(!MacAddr::ZERO.is_unicast());
        assert!(MacAddr([2, 0x42, 0xc6, 0x33, 0x64, 0x0b]).is_unicast());
        assert_eq!(
            MacAddr([2, 0x42, 0xc6, 0x33, 0x64, 0x0b]).to_string(),
            "02:42:c6:33:64:0b"
        );
    }

    #[test]
    fn solicited_node_mac() {
        // RFC 4291 2.7.1 and RFC 2464 7: 2001:db8::11 -> ff02::1:ff00:11 -> 33:33:ff:00:00:11.
        let ip: Ipv6Addr = "2001:db8::11".parse().unwrap();
        assert_eq!(
            MacAddr::solicited_node(ip),
            MacAddr([0x33, 0x33, 0xff, 0, 0, 0x11])
        );
        let ip: Ipv6Addr = "2001:db8::abcd:ef12:3456".parse().unwrap();
        assert_eq!(
            MacAddr::solicited_node(ip),
            MacAddr([0x33, 0x33, 0xff, 0x12, 0x34, 0x56])
        );
    }

    #[test]
    fn reader_bounds() {
        let mut r = Reader::new(&[1, 2, 3], "test");
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert_eq!(
            r.u16(),
            Err(PacketError::Truncated {
                what: "test",
                need: 2,
                have: 1
            })
        );
        assert_eq!(r.u8().unwrap(), 3);
        assert_eq!(r.remaining(), 0);
    }
}
