//! IPv6 (RFC 8200) and the two Neighbor Discovery messages an announcer handles: Neighbor
//! Solicitation and Neighbor Advertisement (RFC 4861 sections 4.3 and 4.4), with the
//! ICMPv6 checksum (RFC 4443 section 2.3) and the link-layer address options (4.6.1).

use super::ethernet::{self, EtherType};
use super::{MacAddr, PacketError, Reader};
use std::net::Ipv6Addr;

/// Bytes in the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// IPv6 next header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// The only hop limit a Neighbor Discovery message may carry (RFC 4861 7.1.1, 7.1.2).
pub const NDP_HOP_LIMIT: u8 = 255;
/// `ff02::1`, the all-nodes link-local multicast group.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Bytes of an NS or NA before its options: type, code, checksum, 4 bytes of flags or
/// reserved, and the 16-byte target (RFC 4861 sections 4.3 and 4.4).
const NDP_FIXED_LEN: usize = 24;
/// Option type: Source Link-Layer Address (RFC 4861 4.6.1).
const OPT_SOURCE_LL: u8 = 1;
/// Option type: Target Link-Layer Address (RFC 4861 4.6.1).
const OPT_TARGET_LL: u8 = 2;
/// Bytes of a link-layer address option for a 6-byte Ethernet address (RFC 2464 8).
const LL_OPTION_LEN: usize = 8;

/// The ICMPv6 message types handled here (RFC 4861 section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Icmpv6Type {
    /// 135, Neighbor Solicitation.
    NeighborSolicitation,
    /// 136, Neighbor Advertisement.
    NeighborAdvertisement,
}

impl Icmpv6Type {
    /// The type on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Icmpv6Type::NeighborSolicitation => 135,
            Icmpv6Type::NeighborAdvertisement => 136,
        }
    }
}

/// A parsed IPv6 packet: the fixed header and the payload it declares (padding after it
/// is dropped). Extension headers are not walked: Neighbor Discovery messages directly
/// follow the fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<'a> {
    /// Next header (protocol of the payload).
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The payload, exactly `payload length` bytes.
    pub payload: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    /// Parses an IPv6 packet (an Ethernet payload with EtherType 0x86DD).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PacketError> {
        let mut r = Reader::new(bytes, "IPv6 header");
        let first = r.array::<4>()?;
        let [vtc, ..] = first;
        let version = vtc >> 4;
        if version != 6 {
            return Err(PacketError::Ipv6Version(version));
        }
        let payload_len = usize::from(r.u16()?);
        let next_header = r.u8()?;
        let hop_limit = r.u8()?;
        let src = Ipv6Addr::from(r.array::<16>()?);
        let dst = Ipv6Addr::from(r.array::<16>()?);
        let available = r.remaining();
        let payload = r
            .take(payload_len)
            .map_err(|_| PacketError::Ipv6PayloadLength {
                declared: payload_len,
                available,
            })?;
        Ok(Ipv6Packet {
            next_header,
            hop_limit,
            src,
            dst,
            payload,
        })
    }
}

/// The ICMPv6 checksum of `message` between `src` and `dst` (RFC 4443 section 2.3, over
/// the pseudo-header of RFC 8200 section 8.1), with the checksum field (bytes 2-3)
/// taken as zero: the value to write into that field.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    !fold(pseudo_header_sum(src, dst, message.len()) + ones_sum(message, true))
}

/// Whether `message` (checksum field included) has a correct ICMPv6 checksum.
pub fn icmpv6_checksum_ok(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> bool {
    fold(pseudo_header_sum(src, dst, message.len()) + ones_sum(message, false)) == 0xffff
}

fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> u64 {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let mut pseudo = [0u8; 40];
    for (slot, byte) in pseudo.iter_mut().zip(
        src.octets()
            .into_iter()
            .chain(dst.octets())
            .chain(len.to_be_bytes())
            .chain([0, 0, 0, NEXT_HEADER_ICMPV6]),
    ) {
        *slot = byte;
    }
    ones_sum(&pseudo, false)
}

/// Sum of big-endian 16-bit words (an odd last byte padded with zero), optionally
/// leaving out the word at bytes 2-3 (the ICMPv6 checksum field).
fn ones_sum(data: &[u8], skip_checksum: bool) -> u64 {
    let mut chunks = data.chunks_exact(2);
    let mut sum: u64 = 0;
    for (i, w) in chunks.by_ref().enumerate() {
        if skip_checksum && i == 1 {
            continue;
        }
        if let [hi, lo] = w {
            sum += u64::from(u16::from_be_bytes([*hi, *lo]));
        }
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 0xffff.
    u16::try_from(sum).unwrap_or(0xffff)
}

/// The solicited-node multicast group of `addr`: `ff02::1:ff00:0/104` with the low 24
/// bits of `addr` (RFC 4291 section 2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// Whether `addr` is in `ff02::1:ff00:0/104`.
pub fn is_solicited_node(addr: Ipv6Addr) -> bool {
    addr.octets().get(..13) == solicited_node(Ipv6Addr::UNSPECIFIED).octets().get(..13)
}

/// A Neighbor Solicitation (RFC 4861 section 4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NeighborSolicitation {
    /// The address being resolved or checked.
    pub target: Ipv6Addr,
    /// The Source Link-Layer Address option, if present (absent in DAD probes and often
    /// in unicast reachability probes).
    pub source_link_addr: Option<MacAddr>,
}

/// A Neighbor Advertisement (RFC 4861 section 4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NeighborAdvertisement {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a solicitation.
    pub solicited: bool,
    /// O: the advertisement should override an existing cache entry.
    pub override_flag: bool,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The Target Link-Layer Address option, if present.
    pub target_link_addr: Option<MacAddr>,
}

/// A Neighbor Discovery message handled here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NdpMessage {
    /// Neighbor Solicitation.
    Solicitation(NeighborSolicitation),
    /// Neighbor Advertisement.
    Advertisement(NeighborAdvertisement),
}

/// A validated Neighbor Discovery message with its IPv6 addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NdpPacket {
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// The message.
    pub message: NdpMessage,
}

impl NdpPacket {
    /// Parses and validates a Neighbor Solicitation or Advertisement from an IPv6 packet.
    ///
    /// `Ok(None)`: well-formed for all this parser knows, but not NS or NA (another next
    /// header or ICMPv6 type). `Err`: an NS or NA that fails the validity checks of
    /// RFC 4861 section 7.1.1 (solicitations) or 7.1.2 (advertisements): hop limit 255,
    /// correct checksum, code 0, at least 24 bytes, target not multicast, no option of
    /// length 0, and for solicitations from `::` a solicited-node destination and no
    /// source link-layer option; for advertisements to multicast, S clear.
    pub fn parse(ip: &Ipv6Packet<'_>) -> Result<Option<Self>, PacketError> {
        if ip.next_header != NEXT_HEADER_ICMPV6 {
            return Ok(None);
        }
        let mut r = Reader::new(ip.payload, "ICMPv6 message");
        let kind = match r.u8()? {
            135 => Icmpv6Type::NeighborSolicitation,
            136 => Icmpv6Type::NeighborAdvertisement,
            _ => return Ok(None),
        };
        // RFC 4861 7.1.1 / 7.1.2: "The IP Hop Limit field has a value of 255".
        if ip.hop_limit != NDP_HOP_LIMIT {
            return Err(PacketError::HopLimit(ip.hop_limit));
        }
        // "ICMP length (derived from the IP length) is 24 or more octets".
        if ip.payload.len() < NDP_FIXED_LEN {
            return Err(PacketError::Truncated {
                what: "neighbor discovery message",
                need: NDP_FIXED_LEN,
                have: ip.payload.len(),
            });
        }
        // "The ICMP Checksum is valid".
        if !icmpv6_checksum_ok(ip.src, ip.dst, ip.payload) {
            let mut cr = Reader::new(ip.payload, "ICMPv6 header");
            cr.take(2)?;
            return Err(PacketError::Icmpv6Checksum {
                found: cr.u16()?,
                expected: icmpv6_checksum(ip.src, ip.dst, ip.payload),
            });
        }
        // "ICMP Code is 0".
        let code = r.u8()?;
        if code != 0 {
            return Err(PacketError::Icmpv6Code(code));
        }
        let _checksum = r.u16()?;
        let [flags, ..] = r.array::<4>()?;
        let target = Ipv6Addr::from(r.array::<16>()?);
        // "Target Address is not a multicast address".
        if target.is_multicast() {
            return Err(PacketError::MulticastTarget(target));
        }
        let wanted = match kind {
            Icmpv6Type::NeighborSolicitation => OPT_SOURCE_LL,
            Icmpv6Type::NeighborAdvertisement => OPT_TARGET_LL,
        };
        let link_addr = link_layer_option(r.rest(), wanted)?;
        let message = match kind {
            Icmpv6Type::NeighborSolicitation => {
                if ip.src.is_unspecified() {
                    // "If the IP source address is the unspecified address, the IP
                    // destination address is a solicited-node multicast address" and
                    // "there is no source link-layer address option".
                    if !is_solicited_node(ip.dst) {
                        return Err(PacketError::DadDestination(ip.dst));
                    }
                    if link_addr.is_some() {
                        return Err(PacketError::DadWithSourceLinkLayer);
                    }
                }
                NdpMessage::Solicitation(NeighborSolicitation {
                    target,
                    source_link_addr: link_addr,
                })
            }
            Icmpv6Type::NeighborAdvertisement => {
                let solicited = flags & 0x40 != 0;
                // "If the IP Destination Address is a multicast address the Solicited
                // flag is zero".
                if ip.dst.is_multicast() && solicited {
                    return Err(PacketError::SolicitedToMulticast(ip.dst));
                }
                NdpMessage::Advertisement(NeighborAdvertisement {
                    router: flags & 0x80 != 0,
                    solicited,
                    override_flag: flags & 0x20 != 0,
                    target,
                    target_link_addr: link_addr,
                })
            }
        };
        Ok(Some(NdpPacket {
            src: ip.src,
            dst: ip.dst,
            message,
        }))
    }

    /// The ICMPv6 message (header, body, link-layer option) with its checksum.
    pub fn icmpv6_bytes(&self) -> Vec<u8> {
        let (kind, flags, target, option) = match self.message {
            NdpMessage::Solicitation(ns) => (
                Icmpv6Type::NeighborSolicitation,
                0u8,
                ns.target,
                ns.source_link_addr.map(|m| (OPT_SOURCE_LL, m)),
            ),
            NdpMessage::Advertisement(na) => (
                Icmpv6Type::NeighborAdvertisement,
                (u8::from(na.router) << 7)
                    | (u8::from(na.solicited) << 6)
                    | (u8::from(na.override_flag) << 5),
                na.target,
                na.target_link_addr.map(|m| (OPT_TARGET_LL, m)),
            ),
        };
        let mut msg = Vec::with_capacity(NDP_FIXED_LEN + LL_OPTION_LEN);
        msg.extend_from_slice(&[kind.code(), 0, 0, 0, flags, 0, 0, 0]);
        msg.extend_from_slice(&target.octets());
        if let Some((opt, mac)) = option {
            // Length in units of 8 octets (RFC 4861 4.6): one unit for Ethernet.
            msg.extend_from_slice(&[opt, 1]);
            msg.extend_from_slice(&mac.0);
        }
        let sum = icmpv6_checksum(self.src, self.dst, &msg).to_be_bytes();
        for (slot, b) in msg.iter_mut().skip(2).zip(sum) {
            *slot = b;
        }
        msg
    }

    /// The IPv6 packet: fixed header (hop limit 255, next header ICMPv6, traffic class
    /// and flow label 0) and the ICMPv6 message.
    pub fn ipv6_bytes(&self) -> Vec<u8> {
        let icmp = self.icmpv6_bytes();
        let len = u16::try_from(icmp.len()).unwrap_or(u16::MAX).to_be_bytes();
        let mut out = Vec::with_capacity(IPV6_HEADER_LEN + icmp.len());
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&len);
        out.extend_from_slice(&[NEXT_HEADER_ICMPV6, NDP_HOP_LIMIT]);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
        out.extend_from_slice(&icmp);
        out
    }

    /// An Ethernet frame carrying this message.
    pub fn to_frame(&self, eth_dst: MacAddr, eth_src: MacAddr) -> Vec<u8> {
        ethernet::build(eth_dst, eth_src, EtherType::IPV6, &self.ipv6_bytes())
    }
}

/// Walks the options after the fixed part and returns the first link-layer address
/// option of type `wanted`. Unknown options are skipped (RFC 4861 4.6: "Receivers MUST
/// silently ignore any options they do not recognize"); an option of length 0 makes the
/// whole message invalid ("Nodes MUST silently discard an ND packet that contains an
/// option with length zero"); a later duplicate is ignored, as Linux does.
fn link_layer_option(mut options: &[u8], wanted: u8) -> Result<Option<MacAddr>, PacketError> {
    let mut found = None;
    while !options.is_empty() {
        let mut r = Reader::new(options, "neighbor discovery option");
        let kind = r.u8().map_err(|_| PacketError::OptionTruncated {
            kind: 0,
            need: 2,
            have: options.len(),
        })?;
        let units = r.u8().map_err(|_| PacketError::OptionTruncated {
            kind,
            need: 2,
            have: options.len(),
        })?;
        if units == 0 {
            return Err(PacketError::OptionLengthZero(kind));
        }
        let size = usize::from(units) * 8;
        let (option, rest) =
            options
                .split_at_checked(size)
                .ok_or(PacketError::OptionTruncated {
                    kind,
                    need: size,
                    have: options.len(),
                })?;
        if kind == wanted && found.is_none() {
            if size != LL_OPTION_LEN {
                return Err(PacketError::LinkLayerOptionLength(size));
            }
            let mut o = Reader::new(option, "link-layer address option");
            o.take(2)?;
            found = Some(o.mac()?);
        }
        options = rest;
    }
    Ok(found)
}

/// An unsolicited Neighbor Advertisement announcing that `mac` now holds `ip`: to the
/// all-nodes group (Ethernet `33:33:00:00:00:01`), S=0, O=1, with the Target Link-Layer
/// Address option (RFC 4861 section 7.2.6). The Override flag makes receivers replace a
/// cached address of any state (7.2.5).
pub fn unsolicited_advertisement(mac: MacAddr, ip: Ipv6Addr) -> Vec<u8> {
    NdpPacket {
        src: ip,
        dst: ALL_NODES,
        message: NdpMessage::Advertisement(NeighborAdvertisement {
            router: false,
            solicited: false,
            override_flag: true,
            target: ip,
            target_link_addr: Some(mac),
        }),
    }
    .to_frame(MacAddr::ALL_NODES, mac)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::packet::EthernetFrame;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .map(|c| match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => c - b'A' + 10,
            })
            .collect();
        digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
    }

    /// `ndisc6 2001:db8::11 eth0` from 02:42:c6:33:64:10 (fe80::42:c6ff:fe33:6410),
    /// captured with `tcpdump -xx` on Linux 6.18: multicast NS with SLLA, checksum 0xf736.
    pub(crate) const CAPTURED_NS: &str = "3333 ff00 0011 0242 c633 6410 86dd 6002
        0ab2 0020 3aff fe80 0000 0000 0000 0042 c6ff fe33 6410 ff02 0000 0000 0000 0000
        0001 ff00 0011 8700 f736 0000 0000 2001 0db8 0000 0000 0000 0000 0000 0011 0101
        0242 c633 6410";
    /// The Linux kernel's answer from 02:42:c6:33:64:11: NA with S=1 O=1, TLLA,
    /// checksum 0x6581.
    pub(crate) const CAPTURED_NA: &str = "0242 c633 6410 0242 c633 6411 86dd 6000
        0000 0020 3aff 2001 0db8 0000 0000 0000 0000 0000 0011 fe80 0000 0000 0000 0042
        c6ff fe33 6410 8800 6581 6000 0000 2001 0db8 0000 0000 0000 0000 0000 0011 0201
        0242 c633 6411";

    fn parse_frame(bytes: &[u8]) -> Result<Option<NdpPacket>, PacketError> {
        let eth = EthernetFrame::parse(bytes).unwrap();
        assert_eq!(eth.ethertype, EtherType::IPV6);
        NdpPacket::parse(&Ipv6Packet::parse(eth.payload)?)
    }

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_captured_solicitation() {
        let p = parse_frame(&hex(CAPTURED_NS)).unwrap().unwrap();
        assert_eq!(p.src, ip("fe80::42:c6ff:fe33:6410"));
        assert_eq!(p.dst, ip("ff02::1:ff00:11"));
        assert_eq!(
            p.message,
            NdpMessage::Solicitation(NeighborSolicitation {
                target: ip("2001:db8::11"),
                source_link_addr: Some(MacAddr([2, 0x42, 0xc6, 0x33, 0x64, 0x10])),
            })
        );
    }

    #[test]
    fn checksums_match_the_captures() {
        for (frame, sum) in [(CAPTURED_NS, 0xf736), (CAPTURED_NA, 0x6581)] {
            let bytes = hex(frame);
            let ipv6 = Ipv6Packet::parse(bytes.get(14..).unwrap()).unwrap();
            assert!(icmpv6_checksum_ok(ipv6.src, ipv6.dst, ipv6.payload));
            assert_eq!(icmpv6_checksum(ipv6.src, ipv6.dst, ipv6.payload), sum);
        }
    }

    #[test]
    fn builds_the_kernels_advertisement_byte_for_byte() {
        let na = NdpPacket {
            src: ip("2001:db8::11"),
            dst: ip("fe80::42:c6ff:fe33:6410"),
            message: NdpMessage::Advertisement(NeighborAdvertisement {
                router: false,
                solicited: true,
                override_flag: true,
                target: ip("2001:db8::11"),
                target_link_addr: Some(MacAddr([2, 0x42, 0xc6, 0x33, 0x64, 0x11])),
            }),
        };
        let frame = na.to_frame(
            MacAddr([2, 0x42, 0xc6, 0x33, 0x64, 0x10]),
            MacAddr([2, 0x42, 0xc6, 0x33, 0x64, 0x11]),
        );
        assert_eq!(frame, hex(CAPTURED_NA));
        assert_eq!(parse_frame(&frame).unwrap(), Some(na));
    }

    #[test]
    fn bad_checksum_is_rejected() {
        let mut bytes = hex(CAPTURED_NS);
        // Flip a bit of the target.
        *bytes.get_mut(14 + 40 + 23).unwrap() ^= 1;
        assert_eq!(
            parse_frame(&bytes),
            Err(PacketError::Icmpv6Checksum {
                found: 0xf736,
                expected: 0xf737
            })
        );
    }

    #[test]
    fn hop_limit_must_be_255() {
        let mut bytes = hex(CAPTURED_NS);
        *bytes.get_mut(14 + 7).unwrap() = 254;
        assert_eq!(parse_frame(&bytes), Err(PacketError::HopLimit(254)));
    }

    /// Re-signs a frame after editing its ICMPv6 part.
    fn resign(bytes: &mut [u8]) {
        let (head, icmp) = bytes.split_at_mut(14 + 40);
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&head[22..38]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&head[38..54]).unwrap());
        let sum = icmpv6_checksum(src, dst, icmp).to_be_bytes();
        icmp[2..4].copy_from_slice(&sum);
    }

    #[test]
    fn code_must_be_0() {
        let mut bytes = hex(CAPTURED_NS);
        bytes[14 + 40 + 1] = 1;
        resign(&mut bytes);
        assert_eq!(parse_frame(&bytes), Err(PacketError::Icmpv6Code(1)));
    }

    #[test]
    fn option_length_zero_is_rejected() {
        let mut bytes = hex(CAPTURED_NS);
        bytes[14 + 40 + 25] = 0;
        resign(&mut bytes);
        assert_eq!(parse_frame(&bytes), Err(PacketError::OptionLengthZero(1)));
    }

    #[test]
    fn option_running_past_the_end_is_rejected() {
        let mut bytes = hex(CAPTURED_NS);
        bytes[14 + 40 + 25] = 2;
        resign(&mut bytes);
        assert_eq!(
            parse_frame(&bytes),
            Err(PacketError::OptionTruncated {
                kind: 1,
                need: 16,
                have: 8
            })
        );
    }

    #[test]
    fn unknown_options_are_skipped_and_first_lladdr_wins() {
        let ns = NdpPacket {
            src: ip("2001:db8::10"),
            dst: ip("ff02::1:ff00:200"),
            message: NdpMessage::Solicitation(NeighborSolicitation {
                target: ip("2001:db8::200"),
                source_link_addr: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            }),
        };
        let mut icmp = ns.icmpv6_bytes();
        // A nonce option (type 14, RFC 3971 5.3.2) of 8 bytes and a second SLLA.
        icmp.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        icmp.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 2]);
        icmp[2] = 0;
        icmp[3] = 0;
        let sum = icmpv6_checksum(ns.src, ns.dst, &icmp).to_be_bytes();
        icmp[2..4].copy_from_slice(&sum);
        let ipv6 = Ipv6Packet {
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: 255,
            src: ns.src,
            dst: ns.dst,
            payload: &icmp,
        };
        assert_eq!(NdpPacket::parse(&ipv6).unwrap(), Some(ns));
    }

    #[test]
    fn wrong_lladdr_option_size_is_rejected() {
        let ns = NdpPacket {
            src: ip("2001:db8::10"),
            dst: ip("ff02::1:ff00:200"),
            message: NdpMessage::Solicitation(NeighborSolicitation {
                target: ip("2001:db8::200"),
                source_link_addr: None,
            }),
        };
        let mut icmp = ns.icmpv6_bytes();
        icmp.extend_from_slice(&[1, 2, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        icmp[2] = 0;
        icmp[3] = 0;
        let sum = icmpv6_checksum(ns.src, ns.dst, &icmp).to_be_bytes();
        icmp[2..4].copy_from_slice(&sum);
        let ipv6 = Ipv6Packet {
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: 255,
            src: ns.src,
            dst: ns.dst,
            payload: &icmp,
        };
        assert_eq!(
            NdpPacket::parse(&ipv6),
            Err(PacketError::LinkLayerOptionLength(16))
        );
    }

    fn check(p: NdpPacket) -> Result<Option<NdpPacket>, PacketError> {
        let bytes = p.ipv6_bytes();
        NdpPacket::parse(&Ipv6Packet::parse(&bytes).unwrap())
    }

    #[test]
    fn rfc4861_7_1_rules() {
        let ns = |src: &str, dst: &str, target: &str, sll: Option<MacAddr>| NdpPacket {
            src: ip(src),
            dst: ip(dst),
            message: NdpMessage::Solicitation(NeighborSolicitation {
                target: ip(target),
                source_link_addr: sll,
            }),
        };
        let mac = Some(MacAddr([2, 0, 0, 0, 0, 1]));
        // DAD probe: from ::, to the solicited-node group, no SLLA.
        let dad = ns("::", "ff02::1:ff00:200", "2001:db8::200", None);
        assert_eq!(check(dad), Ok(Some(dad)));
        assert_eq!(
            check(ns("::", "ff02::1:ff00:200", "2001:db8::200", mac)),
            Err(PacketError::DadWithSourceLinkLayer)
        );
        assert_eq!(
            check(ns("::", "2001:db8::200", "2001:db8::200", None)),
            Err(PacketError::DadDestination(ip("2001:db8::200")))
        );
        assert_eq!(
            check(ns("2001:db8::1", "ff02::1", "ff02::2", mac)),
            Err(PacketError::MulticastTarget(ip("ff02::2")))
        );
        let na = |dst: &str, solicited: bool| NdpPacket {
            src: ip("2001:db8::200"),
            dst: ip(dst),
            message: NdpMessage::Advertisement(NeighborAdvertisement {
                router: false,
                solicited,
                override_flag: true,
                target: ip("2001:db8::200"),
                target_link_addr: mac,
            }),
        };
        assert_eq!(check(na("ff02::1", false)), Ok(Some(na("ff02::1", false))));
        assert_eq!(
            check(na("ff02::1", true)),
            Err(PacketError::SolicitedToMulticast(ALL_NODES))
        );
        assert_eq!(
            check(na("2001:db8::1", true)),
            Ok(Some(na("2001:db8::1", true)))
        );
    }

    #[test]
    fn other_traffic_is_not_ndp() {
        // ICMPv6 echo request (type 128): well-formed, not ours; checksum not even looked at.
        let echo = Ipv6Packet {
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: 64,
            src: ip("2001:db8::1"),
            dst: ip("2001:db8::2"),
            payload: &[128, 0, 0, 0, 0, 1, 0, 1],
        };
        assert_eq!(NdpPacket::parse(&echo), Ok(None));
        let tcp = Ipv6Packet {
            next_header: 6,
            ..echo
        };
        assert_eq!(NdpPacket::parse(&tcp), Ok(None));
        let empty = Ipv6Packet {
            payload: &[],
            ..echo
        };
        assert!(matches!(
            NdpPacket::parse(&empty),
            Err(PacketError::Truncated { .. })
        ));
    }

    #[test]
    fn ipv6_header_errors() {
        let bytes = hex(CAPTURED_NS);
        let ipv6 = bytes.get(14..).unwrap();
        let mut v4 = ipv6.to_vec();
        v4[0] = 0x45;
        assert_eq!(Ipv6Packet::parse(&v4), Err(PacketError::Ipv6Version(4)));
        assert_eq!(
            Ipv6Packet::parse(&ipv6[..60]),
            Err(PacketError::Ipv6PayloadLength {
                declared: 32,
                available: 20
            })
        );
        // Trailing padding is dropped.
        let mut padded = ipv6.to_vec();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(Ipv6Packet::parse(&padded).unwrap().payload.len(), 32);
        for n in 0..IPV6_HEADER_LEN {
            assert!(matches!(
                Ipv6Packet::parse(&ipv6[..n]),
                Err(PacketError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn unsolicited_advertisement_frame() {
        let mac = MacAddr([2, 0x42, 0xc6, 0x33, 0x64, 0x0b]);
        let frame = unsolicited_advertisement(mac, ip("2001:db8::200"));
        let eth = EthernetFrame::parse(&frame).unwrap();
        assert_eq!(eth.dst, MacAddr::ALL_NODES);
        assert_eq!(eth.src, mac);
        let p = parse_frame(&frame).unwrap().unwrap();
        assert_eq!((p.src, p.dst), (ip("2001:db8::200"), ALL_NODES));
        assert_eq!(
            p.message,
            NdpMessage::Advertisement(NeighborAdvertisement {
                router: false,
                solicited: false,
                override_flag: true,
                target: ip("2001:db8::200"),
                target_link_addr: Some(mac),
            })
        );
    }

    #[test]
    fn solicited_node_groups() {
        assert_eq!(solicited_node(ip("2001:db8::200")), ip("ff02::1:ff00:200"));
        assert!(is_solicited_node(ip("ff02::1:ffab:cdef")));
        assert!(!is_solicited_node(ip("ff02::1")));
        assert!(!is_solicited_node(ip("ff02::2:ff00:1")));
    }
}
