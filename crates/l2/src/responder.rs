//! The ARP and NDP responder, sans-IO: given a frame received on an interface, decide
//! whether to answer and build the answer.
//!
//! Differences from MetalLB's speaker, on purpose:
//! - Neighbor Advertisements carry O=1 (MetalLB sends O=0). With O=0 a client whose entry
//!   for the address is STALE, DELAY or PROBE (it still holds the old node's MAC after a
//!   failover) keeps the old MAC and only marks the entry STALE (RFC 4861 7.2.5), so
//!   traffic keeps going to the dead node until the entry fails.
//! - Solicitations without a Source Link-Layer Address option (unicast reachability
//!   probes, RFC 4861 7.2.2 allows omitting it) are answered to the frame's Ethernet
//!   source; MetalLB drops them (metallb#2920), so such clients lose the address.
//! - Gratuitous ARP requests from others for an owned address are not answered.

use crate::packet::arp::ArpPacket;
use crate::packet::ndp::{self, ALL_NODES};
use crate::packet::{
    ArpOperation, EtherType, EthernetFrame, Ipv6Packet, MacAddr, NdpMessage, NdpPacket,
    NeighborAdvertisement, PacketError,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// A network interface the announcer works on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterfaceInfo {
    /// Kernel interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Its MAC address: the one replies and announcements carry.
    pub mac: MacAddr,
}

/// Counters for one announced address, the `metallb_layer2_*{ip}` metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpStats {
    /// ARP requests and Neighbor Solicitations received for the address on an interface
    /// that announces it (`requests_received`).
    pub requests_received: u64,
    /// Replies and advertisements built in answer (`responses_sent`).
    pub responses_sent: u64,
    /// Gratuitous frames sent: each gratuitous ARP request, gratuitous ARP reply and
    /// unsolicited Neighbor Advertisement counts one (`gratuitous_sent`).
    pub gratuitous_sent: u64,
}

/// An answer to send back on the interface the request came in on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The owned address answered for.
    pub ip: IpAddr,
    /// The Ethernet frame to send.
    pub frame: Vec<u8>,
}

/// Why a frame gets no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// The interface is not one the responder knows.
    UnknownInterface(u32),
    /// Neither ARP nor IPv6.
    EtherType(EtherType),
    /// Sent by this interface (its MAC as Ethernet or ARP sender).
    FromSelf,
    /// An ARP packet that is not a request (RFC 826: only requests are answered).
    ArpOperation(ArpOperation),
    /// The Ethernet destination is not broadcast, not our MAC and not the multicast
    /// group of the IPv6 destination: the frame is meant for another host.
    EthernetDestination(MacAddr),
    /// An ARP request with a sender hardware address that cannot be answered to.
    SenderNotUnicast(MacAddr),
    /// A gratuitous ARP request (sender IP equal to target IP, RFC 5227 section 3)
    /// for an owned address: another host announcing it, nothing to answer.
    GratuitousArp(IpAddr),
    /// The address asked for is not owned on this interface.
    NotOwned(IpAddr),
    /// IPv6, but not a Neighbor Solicitation or Advertisement.
    NotNdp,
    /// A Neighbor Advertisement: nothing to answer.
    Advertisement,
    /// A solicitation sent neither to the target's solicited-node group nor to the
    /// target itself (RFC 4861 section 4.3, IP Destination Address).
    SolicitationDestination(Ipv6Addr),
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::UnknownInterface(i) => write!(f, "unknown interface {i}"),
            Ignored::EtherType(t) => write!(f, "EtherType {t}"),
            Ignored::FromSelf => f.write_str("sent by this interface"),
            Ignored::ArpOperation(op) => write!(f, "ARP operation {}", op.code()),
            Ignored::EthernetDestination(m) => write!(f, "Ethernet destination {m}"),
            Ignored::SenderNotUnicast(m) => write!(f, "ARP sender {m} is not unicast"),
            Ignored::GratuitousArp(ip) => write!(f, "gratuitous ARP from another host for {ip}"),
            Ignored::NotOwned(ip) => write!(f, "{ip} not owned on this interface"),
            Ignored::NotNdp => f.write_str("IPv6 but not neighbor discovery"),
            Ignored::Advertisement => f.write_str("neighbor advertisement"),
            Ignored::SolicitationDestination(d) => {
                write!(f, "solicitation to {d}, neither the target nor its group")
            }
        }
    }
}

/// What [`Responder::handle`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send this frame on the interface.
    Reply(Reply),
    /// No answer, and why.
    Ignored(Ignored),
    /// The frame is malformed or fails RFC 4861 validation; counted.
    Malformed(PacketError),
}

#[derive(Clone, Debug)]
struct Entry {
    info: InterfaceInfo,
    owned: BTreeSet<IpAddr>,
}

/// Answers ARP requests and Neighbor Solicitations for the addresses each interface
/// owns, and keeps the counters.
#[derive(Clone, Debug, Default)]
pub struct Responder {
    interfaces: BTreeMap<u32, Entry>,
    counters: BTreeMap<IpAddr, IpStats>,
    malformed: u64,
}

impl Responder {
    /// A responder that owns nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets an interface and the full set of addresses it owns (replacing what it had).
    pub fn set_interface(&mut self, info: InterfaceInfo, owned: BTreeSet<IpAddr>) {
        self.interfaces.insert(info.ifindex, Entry { info, owned });
    }

    /// Forgets an interface: nothing is answered on it any more.
    pub fn remove_interface(&mut self, ifindex: u32) {
        self.interfaces.remove(&ifindex);
    }

    /// Forgets every interface.
    pub fn clear(&mut self) {
        self.interfaces.clear();
    }

    /// An interface the responder knows.
    pub fn interface(&self, ifindex: u32) -> Option<&InterfaceInfo> {
        self.interfaces.get(&ifindex).map(|e| &e.info)
    }

    /// The addresses owned on an interface.
    pub fn owned(&self, ifindex: u32) -> Option<&BTreeSet<IpAddr>> {
        self.interfaces.get(&ifindex).map(|e| &e.owned)
    }

    /// Counters per address (every address ever answered for; released ones keep their
    /// counts, like Prometheus counters). `gratuitous_sent` is 0 here: the
    /// [`crate::GratuitousScheduler`] counts those.
    pub fn counters(&self) -> &BTreeMap<IpAddr, IpStats> {
        &self.counters
    }

    /// Counters of one address.
    pub fn stats(&self, ip: IpAddr) -> IpStats {
        self.counters.get(&ip).copied().unwrap_or_default()
    }

    /// Frames that failed to parse or validate.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Decides what to do with `frame`, received on interface `ifindex`.
    pub fn handle(&mut self, ifindex: u32, frame: &[u8]) -> Outcome {
        let Some(entry) = self.interfaces.get(&ifindex) else {
            return Outcome::Ignored(Ignored::UnknownInterface(ifindex));
        };
        let eth = match EthernetFrame::parse(frame) {
            Ok(eth) => eth,
            Err(e) => return self.count_malformed(e),
        };
        if eth.src == entry.info.mac {
            return Outcome::Ignored(Ignored::FromSelf);
        }
        let decision = match eth.ethertype {
            EtherType::ARP => arp(entry, &eth),
            EtherType::IPV6 => neighbor_solicitation(entry, &eth),
            other => Decision::Ignore(Ignored::EtherType(other)),
        };
        match decision {
            Decision::Ignore(why) => Outcome::Ignored(why),
            Decision::Malformed(e) => self.count_malformed(e),
            Decision::Answer(reply) => {
                let c = self.counters.entry(reply.ip).or_default();
                c.requests_received += 1;
                c.responses_sent += 1;
                Outcome::Reply(reply)
            }
        }
    }

    fn count_malformed(&mut self, e: PacketError) -> Outcome {
        self.malformed += 1;
        Outcome::Malformed(e)
    }
}

enum Decision {
    Answer(Reply),
    Ignore(Ignored),
    Malformed(PacketError),
}

/// RFC 826 "Packet Reception", with MetalLB's filters: only requests, only broadcast or
/// to our MAC, only for an address this interface owns.
fn arp(entry: &Entry, eth: &EthernetFrame<'_>) -> Decision {
    let mac = entry.info.mac;
    let req = match ArpPacket::parse(eth.payload) {
        Ok(p) => p,
        Err(e) => return Decision::Malformed(e),
    };
    if req.operation != ArpOperation::Request {
        return Decision::Ignore(Ignored::ArpOperation(req.operation));
    }
    if !eth.dst.is_broadcast() && eth.dst != mac {
        return Decision::Ignore(Ignored::EthernetDestination(eth.dst));
    }
    if req.sender_mac == mac {
        return Decision::Ignore(Ignored::FromSelf);
    }
    if !req.sender_mac.is_unicast() {
        return Decision::Ignore(Ignored::SenderNotUnicast(req.sender_mac));
    }
    let ip = IpAddr::V4(req.target_ip);
    if !entry.owned.contains(&ip) {
        return Decision::Ignore(Ignored::NotOwned(ip));
    }
    if req.is_gratuitous() {
        return Decision::Ignore(Ignored::GratuitousArp(ip));
    }
    // An ARP Probe (sender IP 0.0.0.0, RFC 5227 2.1.1) is answered too: that is how the
    // prober learns the address is taken.
    Decision::Answer(Reply {
        ip,
        frame: req.reply(mac).to_frame(req.sender_mac, mac),
    })
}

/// RFC 4861 section 7.2.3 (receipt of a solicitation) and 7.2.4 (sending the solicited
/// advertisement).
fn neighbor_solicitation(entry: &Entry, eth: &EthernetFrame<'_>) -> Decision {
    let mac = entry.info.mac;
    let ip = match Ipv6Packet::parse(eth.payload) {
        Ok(p) => p,
        Err(e) => return Decision::Malformed(e),
    };
    let pkt = match NdpPacket::parse(&ip) {
        Ok(Some(p)) => p,
        Ok(None) => return Decision::Ignore(Ignored::NotNdp),
        Err(e) => return Decision::Malformed(e),
    };
    let ns = match pkt.message {
        NdpMessage::Solicitation(ns) => ns,
        NdpMessage::Advertisement(_) => return Decision::Ignore(Ignored::Advertisement),
    };
    let for_us =
        eth.dst == mac || (eth.dst.is_multicast() && eth.dst == MacAddr::ipv6_multicast(pkt.dst));
    if !for_us {
        return Decision::Ignore(Ignored::EthernetDestination(eth.dst));
    }
    if pkt.dst != ndp::solicited_node(ns.target) && pkt.dst != ns.target {
        return Decision::Ignore(Ignored::SolicitationDestination(pkt.dst));
    }
    let target = IpAddr::V6(ns.target);
    if !entry.owned.contains(&target) {
        return Decision::Ignore(Ignored::NotOwned(target));
    }
    let (dst, eth_dst, solicited) = if pkt.src.is_unspecified() {
        // 7.2.4: "If the source of the solicitation is the unspecified address, the node
        // MUST set the Solicited flag to zero and multicast the advertisement to the
        // all-nodes address." This is duplicate address detection: the prober learns
        // the address is in use (RFC 4862 5.4.4).
        (ALL_NODES, MacAddr::ALL_NODES, false)
    } else {
        // 7.2.4: "Otherwise, the node MUST set the Solicited flag to one and unicast the
        // advertisement to the Source Address of the solicitation." The link-layer
        // destination is the Source Link-Layer Address option, or, when the option is
        // absent (allowed for unicast solicitations, 7.2.2), the Ethernet source of the
        // frame, which is the soliciting interface.
        let to = ns.source_link_addr.unwrap_or(eth.src);
        if !to.is_unicast() {
            return Decision::Ignore(Ignored::SenderNotUnicast(to));
        }
        (pkt.src, to, true)
    };
    let na = NdpPacket {
        src: ns.target,
        dst,
        message: NdpMessage::Advertisement(NeighborAdvertisement {
            router: false,
            solicited,
            // O=1: we are the authority for this address and want clients to replace a
            // cached MAC of another node whatever its state (7.2.5); see the module docs.
            override_flag: true,
            target: ns.target,
            // 7.2.4: the Target Link-Layer Address option is always included.
            target_link_addr: Some(mac),
        }),
    };
    Decision::Answer(Reply {
        ip: target,
        frame: na.to_frame(eth_dst, mac),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::ndp::tests::{CAPTURED_NA, CAPTURED_NS, hex};
    use crate::packet::ndp::{NEXT_HEADER_ICMPV6, icmpv6_checksum, solicited_node};
    use crate::packet::{NeighborSolicitation, ethernet};
    use std::net::Ipv4Addr;

    const NODE: MacAddr = MacAddr([0x02, 0x42, 0xc6, 0x33, 0x64, 0x0b]);
    const CLIENT: MacAddr = MacAddr([0x02, 0x42, 0xc6, 0x33, 0x64, 0x0a]);
    const OTHER: MacAddr = MacAddr([0x02, 0x42, 0xc6, 0x33, 0x64, 0x0c]);
    const VIP4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
    const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

    fn vip6() -> Ipv6Addr {
        "2001:db8::200".parse().unwrap()
    }
    fn client6() -> Ipv6Addr {
        "2001:db8::a".parse().unwrap()
    }

    fn responder() -> Responder {
        let mut r = Responder::new();
        r.set_interface(
            InterfaceInfo {
                ifindex: 2,
                name: "eth0".into(),
                mac: NODE,
            },
            [IpAddr::V4(VIP4), IpAddr::V6(vip6())].into(),
        );
        r.set_interface(
            InterfaceInfo {
                ifindex: 3,
                name: "eth1".into(),
                mac: OTHER,
            },
            BTreeSet::new(),
        );
        r
    }

    fn arp_frame(
        op: ArpOperation,
        eth_dst: MacAddr,
        sender_ip: Ipv4Addr,
        target: Ipv4Addr,
    ) -> Vec<u8> {
        ArpPacket {
            operation: op,
            sender_mac: CLIENT,
            sender_ip,
            target_mac: MacAddr::ZERO,
            target_ip: target,
        }
        .to_frame(eth_dst, CLIENT)
    }

    fn request(target: Ipv4Addr) -> Vec<u8> {
        arp_frame(ArpOperation::Request, MacAddr::BROADCAST, CLIENT4, target)
    }

    fn reply_arp(outcome: Outcome) -> (MacAddr, ArpPacket) {
        let Outcome::Reply(r) = outcome else {
            panic!("expected a reply, got {outcome:?}")
        };
        let eth = EthernetFrame::parse(&r.frame).unwrap();
        assert_eq!(eth.src, NODE);
        (eth.dst, ArpPacket::parse(eth.payload).unwrap())
    }

    #[test]
    fn arp_request_for_owned_ip_is_answered_to_the_asker() {
        let mut r = responder();
        let (dst, p) = reply_arp(r.handle(2, &request(VIP4)));
        assert_eq!(dst, CLIENT);
        assert_eq!(
            p,
            ArpPacket {
                operation: ArpOperation::Reply,
                sender_mac: NODE,
                sender_ip: VIP4,
                target_mac: CLIENT,
                target_ip: CLIENT4,
            }
        );
        let s = r.stats(IpAddr::V4(VIP4));
        assert_eq!((s.requests_received, s.responses_sent), (1, 1));
    }

    #[test]
    fn arp_decision_table() {
        let other_ip = Ipv4Addr::new(198, 51, 100, 201);
        let cases: Vec<(&str, u32, Vec<u8>, Option<Ignored>)> = vec![
            ("owned, broadcast", 2, request(VIP4), None),
            (
                "owned, unicast to us",
                2,
                arp_frame(ArpOperation::Request, NODE, CLIENT4, VIP4),
                None,
            ),
            (
                "ARP probe from 0.0.0.0 (RFC 5227)",
                2,
                arp_frame(
                    ArpOperation::Request,
                    MacAddr::BROADCAST,
                    Ipv4Addr::UNSPECIFIED,
                    VIP4,
                ),
                None,
            ),
            (
                "not owned",
                2,
                request(other_ip),
                Some(Ignored::NotOwned(IpAddr::V4(other_ip))),
            ),
            (
                "owned on another interface",
                3,
                request(VIP4),
                Some(Ignored::NotOwned(IpAddr::V4(VIP4))),
            ),
            (
                "unknown interface",
                9,
                request(VIP4),
                Some(Ignored::UnknownInterface(9)),
            ),
            (
                "a reply",
                2,
                arp_frame(ArpOperation::Reply, MacAddr::BROADCAST, CLIENT4, VIP4),
                Some(Ignored::ArpOperation(ArpOperation::Reply)),
            ),
            (
                "unicast to another host",
                2,
                arp_frame(ArpOperation::Request, OTHER, CLIENT4, VIP4),
                Some(Ignored::EthernetDestination(OTHER)),
            ),
            (
                "gratuitous from another node",
                2,
                arp_frame(ArpOperation::Request, MacAddr::BROADCAST, VIP4, VIP4),
                Some(Ignored::GratuitousArp(IpAddr::V4(VIP4))),
            ),
        ];
        for (name, ifindex, frame, want) in cases {
            let mut r = responder();
            let got = r.handle(ifindex, &frame);
            match want {
                None => {
                    let (dst, p) = reply_arp(got);
                    assert_eq!(dst, CLIENT, "{name}");
                    assert_eq!(p.sender_ip, VIP4, "{name}");
                }
                Some(why) => {
                    assert_eq!(got, Outcome::Ignored(why), "{name}");
                    assert_eq!(r.stats(IpAddr::V4(VIP4)), IpStats::default(), "{name}");
                }
            }
        }
    }

    #[test]
    fn own_frames_are_ignored() {
        let mut r = responder();
        let ours = ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: NODE,
            sender_ip: VIP4,
            target_mac: MacAddr::ZERO,
            target_ip: VIP4,
        }
        .to_frame(MacAddr::BROADCAST, NODE);
        assert_eq!(r.handle(2, &ours), Outcome::Ignored(Ignored::FromSelf));
        // ARP sender is us behind another Ethernet source (e.g. a bridge echo).
        let echoed = ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: NODE,
            sender_ip: CLIENT4,
            target_mac: MacAddr::ZERO,
            target_ip: VIP4,
        }
        .to_frame(MacAddr::BROADCAST, CLIENT);
        assert_eq!(r.handle(2, &echoed), Outcome::Ignored(Ignored::FromSelf));
    }

    #[test]
    fn malformed_and_foreign_frames() {
        let mut r = responder();
        assert!(matches!(r.handle(2, &[1, 2, 3]), Outcome::Malformed(_)));
        let mut bad = request(VIP4);
        bad[14 + 4] = 16; // hardware address length
        assert!(matches!(
            r.handle(2, &bad),
            Outcome::Malformed(PacketError::ArpAddressLength { .. })
        ));
        assert_eq!(r.malformed(), 2);
        let ipv4 = ethernet::build(MacAddr::BROADCAST, CLIENT, EtherType::IPV4, &[0x45; 20]);
        assert_eq!(
            r.handle(2, &ipv4),
            Outcome::Ignored(Ignored::EtherType(EtherType::IPV4))
        );
        assert_eq!(r.malformed(), 2);
    }

    struct Ns {
        eth_src: MacAddr,
        eth_dst: MacAddr,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        target: Ipv6Addr,
        sll: Option<MacAddr>,
    }

    impl Ns {
        fn multicast(target: Ipv6Addr) -> Ns {
            let group = solicited_node(target);
            Ns {
                eth_src: CLIENT,
                eth_dst: MacAddr::ipv6_multicast(group),
                src: client6(),
                dst: group,
                target,
                sll: Some(CLIENT),
            }
        }
        fn frame(&self) -> Vec<u8> {
            NdpPacket {
                src: self.src,
                dst: self.dst,
                message: NdpMessage::Solicitation(NeighborSolicitation {
                    target: self.target,
                    source_link_addr: self.sll,
                }),
            }
            .to_frame(self.eth_dst, self.eth_src)
        }
    }

    fn na(outcome: Outcome) -> (MacAddr, NdpPacket) {
        let Outcome::Reply(r) = outcome else {
            panic!("expected a reply, got {outcome:?}")
        };
        let eth = EthernetFrame::parse(&r.frame).unwrap();
        assert_eq!(eth.src, NODE);
        let ip = Ipv6Packet::parse(eth.payload).unwrap();
        assert_eq!(ip.hop_limit, 255);
        (eth.dst, NdpPacket::parse(&ip).unwrap().unwrap())
    }

    fn advert(solicited: bool) -> NdpMessage {
        NdpMessage::Advertisement(NeighborAdvertisement {
            router: false,
            solicited,
            override_flag: true,
            target: vip6(),
            target_link_addr: Some(NODE),
        })
    }

    #[test]
    fn multicast_solicitation_gets_solicited_override_advertisement() {
        let mut r = responder();
        let (dst, p) = na(r.handle(2, &Ns::multicast(vip6()).frame()));
        assert_eq!(dst, CLIENT);
        assert_eq!((p.src, p.dst), (vip6(), client6()));
        assert_eq!(p.message, advert(true));
        let s = r.stats(IpAddr::V6(vip6()));
        assert_eq!((s.requests_received, s.responses_sent), (1, 1));
    }

    #[test]
    fn answer_to_captured_solicitation_equals_the_kernels() {
        // The captured NS asks for 2001:db8::11; the kernel of 02:42:c6:33:64:11 answered.
        let mut r = Responder::new();
        let mac = MacAddr([0x02, 0x42, 0xc6, 0x33, 0x64, 0x11]);
        r.set_interface(
            InterfaceInfo {
                ifindex: 7,
                name: "eth0".into(),
                mac,
            },
            [IpAddr::V6("2001:db8::11".parse().unwrap())].into(),
        );
        let Outcome::Reply(reply) = r.handle(7, &hex(CAPTURED_NS)) else {
            panic!("no reply")
        };
        assert_eq!(reply.frame, hex(CAPTURED_NA));
    }

    #[test]
    fn unicast_probe_without_source_link_layer_option_is_answered() {
        // RFC 4861 7.3.3 probe: unicast to the target, to the cached MAC, no SLLA.
        let mut r = responder();
        let probe = Ns {
            eth_dst: NODE,
            dst: vip6(),
            sll: None,
            ..Ns::multicast(vip6())
        };
        let (dst, p) = na(r.handle(2, &probe.frame()));
        assert_eq!(dst, CLIENT, "to the frame's Ethernet source");
        assert_eq!((p.src, p.dst), (vip6(), client6()));
        assert_eq!(p.message, advert(true));
    }

    #[test]
    fn dad_probe_gets_all_nodes_advertisement_without_s() {
        let mut r = responder();
        let probe = Ns {
            src: Ipv6Addr::UNSPECIFIED,
            sll: None,
            ..Ns::multicast(vip6())
        };
        let (dst, p) = na(r.handle(2, &probe.frame()));
        assert_eq!(dst, MacAddr::ALL_NODES);
        assert_eq!((p.src, p.dst), (vip6(), ALL_NODES));
        assert_eq!(p.message, advert(false));
    }

    #[test]
    fn ndp_decision_table() {
        let other: Ipv6Addr = "2001:db8::201".parse().unwrap();
        let ns = Ns::multicast(vip6());
        let cases = vec![
            (
                "not owned",
                2,
                Ns::multicast(other).frame(),
                Outcome::Ignored(Ignored::NotOwned(IpAddr::V6(other))),
            ),
            (
                "owned on another interface",
                3,
                Ns::multicast(vip6()).frame(),
                Outcome::Ignored(Ignored::NotOwned(IpAddr::V6(vip6()))),
            ),
            (
                "unicast to another host's MAC",
                2,
                Ns {
                    eth_dst: OTHER,
                    dst: vip6(),
                    ..Ns::multicast(vip6())
                }
                .frame(),
                Outcome::Ignored(Ignored::EthernetDestination(OTHER)),
            ),
            (
                "Ethernet group not matching the IPv6 group",
                2,
                Ns {
                    eth_dst: MacAddr::ALL_NODES,
                    ..Ns::multicast(vip6())
                }
                .frame(),
                Outcome::Ignored(Ignored::EthernetDestination(MacAddr::ALL_NODES)),
            ),
            (
                "to all-nodes",
                2,
                Ns {
                    eth_dst: MacAddr::ALL_NODES,
                    dst: ALL_NODES,
                    ..Ns::multicast(vip6())
                }
                .frame(),
                Outcome::Ignored(Ignored::SolicitationDestination(ALL_NODES)),
            ),
            (
                "an advertisement",
                2,
                NdpPacket {
                    src: ns.src,
                    dst: ALL_NODES,
                    message: NdpMessage::Advertisement(NeighborAdvertisement {
                        router: false,
                        solicited: false,
                        override_flag: true,
                        target: vip6(),
                        target_link_addr: Some(CLIENT),
                    }),
                }
                .to_frame(MacAddr::ALL_NODES, CLIENT),
                Outcome::Ignored(Ignored::Advertisement),
            ),
        ];
        for (name, ifindex, frame, want) in cases {
            let mut r = responder();
            assert_eq!(r.handle(ifindex, &frame), want, "{name}");
            assert_eq!(r.stats(IpAddr::V6(vip6())), IpStats::default(), "{name}");
            assert_eq!(r.malformed(), 0, "{name}");
        }
    }

    #[test]
    fn invalid_solicitations_are_malformed() {
        let good = Ns::multicast(vip6()).frame();
        let mut bad_sum = good.clone();
        bad_sum[14 + 40 + 2] ^= 0xff;
        let mut hop = good.clone();
        hop[14 + 7] = 64;
        // DAD probe with an SLLA option (RFC 4861 7.1.1).
        let dad_sll = Ns {
            src: Ipv6Addr::UNSPECIFIED,
            ..Ns::multicast(vip6())
        }
        .frame();
        for (name, frame, check) in [
            (
                "bad checksum",
                bad_sum,
                (|e: &PacketError| matches!(e, PacketError::Icmpv6Checksum { .. }))
                    as fn(&PacketError) -> bool,
            ),
            ("hop limit 64", hop, |e| *e == PacketError::HopLimit(64)),
            ("DAD with SLLA", dad_sll, |e| {
                *e == PacketError::DadWithSourceLinkLayer
            }),
        ] {
            let mut r = responder();
            match r.handle(2, &frame) {
                Outcome::Malformed(e) => assert!(check(&e), "{name}: {e}"),
                other => panic!("{name}: {other:?}"),
            }
            assert_eq!(r.malformed(), 1, "{name}");
            assert_eq!(r.stats(IpAddr::V6(vip6())), IpStats::default());
        }
    }

    #[test]
    fn other_ipv6_is_not_ndp_and_not_malformed() {
        let mut r = responder();
        let mut udp = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        udp.extend_from_slice(&client6().octets());
        udp.extend_from_slice(&vip6().octets());
        udp.extend_from_slice(&[0; 8]);
        let frame = ethernet::build(NODE, CLIENT, EtherType::IPV6, &udp);
        assert_eq!(r.handle(2, &frame), Outcome::Ignored(Ignored::NotNdp));
        // ICMPv6 echo request.
        let mut echo = vec![0x60, 0, 0, 0, 0, 8, NEXT_HEADER_ICMPV6, 64];
        echo.extend_from_slice(&client6().octets());
        echo.extend_from_slice(&vip6().octets());
        let mut msg = vec![128, 0, 0, 0, 0, 1, 0, 1];
        let sum = icmpv6_checksum(client6(), vip6(), &msg).to_be_bytes();
        msg[2..4].copy_from_slice(&sum);
        echo.extend_from_slice(&msg);
        let frame = ethernet::build(NODE, CLIENT, EtherType::IPV6, &echo);
        assert_eq!(r.handle(2, &frame), Outcome::Ignored(Ignored::NotNdp));
        assert_eq!(r.malformed(), 0);
    }

    #[test]
    fn release_stops_answers_but_keeps_counters() {
        let mut r = responder();
        assert!(matches!(r.handle(2, &request(VIP4)), Outcome::Reply(_)));
        r.set_interface(
            InterfaceInfo {
                ifindex: 2,
                name: "eth0".into(),
                mac: NODE,
            },
            BTreeSet::new(),
        );
        assert_eq!(
            r.handle(2, &request(VIP4)),
            Outcome::Ignored(Ignored::NotOwned(IpAddr::V4(VIP4)))
        );
        r.remove_interface(2);
        assert_eq!(
            r.handle(2, &request(VIP4)),
            Outcome::Ignored(Ignored::UnknownInterface(2))
        );
        assert_eq!(r.stats(IpAddr::V4(VIP4)).responses_sent, 1);
    }
}
