//! Gratuitous announcements after taking over an address, sans-IO: time is an input.
//!
//! When a node starts announcing an address, clients still hold the previous node's MAC
//! in their neighbour caches. A burst of gratuitous frames, repeated a few times over
//! about two seconds in case some are lost, makes them switch at once:
//! - IPv4: a gratuitous ARP request and a gratuitous ARP reply, both broadcast, sender
//!   and target IP the address (RFC 5227 section 3, RFC 2002 section 4.6). Linux
//!   updates an existing entry from either (`arp_accept` is only needed to create one).
//! - IPv6: an unsolicited Neighbor Advertisement to all-nodes with O=1 and S=0 and the
//!   Target Link-Layer Address option (RFC 4861 section 7.2.6); O=1 makes receivers
//!   replace the cached MAC (7.2.5).
//!
//! RFC 4861 7.2.6 allows up to MAX_NEIGHBOR_ADVERTISEMENT (3) unsolicited advertisements;
//! the default schedule sends 5, as MetalLB (about 5 bursts) and keepalived do, because
//! a failover is exactly when frames get lost.

use crate::packet::{MacAddr, arp, ndp};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// When the bursts go out, relative to taking over: +0, +0.2, +0.5, +1 and +2 s.
pub const DEFAULT_SCHEDULE: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// A frame to send now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The interface to send it on.
    pub ifindex: u32,
    /// The address announced.
    pub ip: IpAddr,
    /// The Ethernet frame.
    pub frame: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Pending {
    mac: MacAddr,
    start: Instant,
    /// Index into the schedule of the next burst.
    step: usize,
}

/// Schedules the gratuitous bursts of every (interface, address) taken over recently.
#[derive(Clone, Debug)]
pub struct GratuitousScheduler {
    schedule: Vec<Duration>,
    pending: BTreeMap<(u32, IpAddr), Pending>,
    sent: BTreeMap<IpAddr, u64>,
}

impl Default for GratuitousScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl GratuitousScheduler {
    /// A scheduler with [`DEFAULT_SCHEDULE`].
    pub fn new() -> Self {
        Self::with_schedule(DEFAULT_SCHEDULE.to_vec())
    }

    /// A scheduler that sends a burst at each offset of `schedule` (sorted and
    /// deduplicated here; empty means never announce).
    pub fn with_schedule(mut schedule: Vec<Duration>) -> Self {
        schedule.sort();
        schedule.dedup();
        GratuitousScheduler {
            schedule,
            pending: BTreeMap::new(),
            sent: BTreeMap::new(),
        }
    }

    /// The burst offsets in use.
    pub fn schedule(&self) -> &[Duration] {
        &self.schedule
    }

    /// Starts (or restarts) the bursts for `ip` on interface `ifindex` whose MAC is
    /// `mac`; the first is due at `now`.
    pub fn announce(&mut self, ifindex: u32, mac: MacAddr, ip: IpAddr, now: Instant) {
        if self.schedule.is_empty() {
            return;
        }
        self.pending.insert(
            (ifindex, ip),
            Pending {
                mac,
                start: now,
                step: 0,
            },
        );
    }

    /// Stops the bursts for `ip` on `ifindex` (the address was released there).
    pub fn cancel(&mut self, ifindex: u32, ip: IpAddr) {
        self.pending.remove(&(ifindex, ip));
    }

    /// Stops every burst on `ifindex`.
    pub fn cancel_interface(&mut self, ifindex: u32) {
        self.pending.retain(|(i, _), _| *i != ifindex);
    }

    /// Stops every burst.
    pub fn cancel_all(&mut self) {
        self.pending.clear();
    }

    /// Whether bursts are still to come for `ip` on `ifindex`.
    pub fn is_pending(&self, ifindex: u32, ip: IpAddr) -> bool {
        self.pending.contains_key(&(ifindex, ip))
    }

    /// When [`GratuitousScheduler::poll`] next has something to send.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().filter_map(|p| self.due(p)).min()
    }

    fn due(&self, p: &Pending) -> Option<Instant> {
        self.schedule.get(p.step).map(|offset| p.start + *offset)
    }

    /// The frames due at `now`. A burst that is late is sent once, and bursts whose time
    /// has also passed meanwhile are skipped rather than sent back to back.
    pub fn poll(&mut self, now: Instant) -> Vec<Announcement> {
        let mut out = Vec::new();
        let schedule = &self.schedule;
        let sent = &mut self.sent;
        self.pending.retain(|&(ifindex, ip), p| {
            let due = schedule.get(p.step).map(|offset| p.start + *offset);
            if due.is_some_and(|t| t <= now) {
                let frames: Vec<Vec<u8>> = match ip {
                    IpAddr::V4(v4) => arp::gratuitous_frames(p.mac, v4).into(),
                    IpAddr::V6(v6) => vec![ndp::unsolicited_advertisement(p.mac, v6)],
                };
                *sent.entry(ip).or_default() += frames.len() as u64;
                out.extend(
                    frames
                        .into_iter()
                        .map(|frame| Announcement { ifindex, ip, frame }),
                );
                while schedule
                    .get(p.step)
                    .is_some_and(|offset| p.start + *offset <= now)
                {
                    p.step += 1;
                }
            }
            p.step < schedule.len()
        });
        out
    }

    /// Gratuitous frames built for `ip` so far (each ARP request, ARP reply and
    /// unsolicited advertisement counts one).
    pub fn gratuitous_sent(&self, ip: IpAddr) -> u64 {
        self.sent.get(&ip).copied().unwrap_or(0)
    }

    /// Gratuitous frames built, per address.
    pub fn counters(&self) -> &BTreeMap<IpAddr, u64> {
        &self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{
        ArpOperation, ArpPacket, EthernetFrame, Ipv6Packet, NdpMessage, NdpPacket,
    };

    const MAC: MacAddr = MacAddr([2, 0x42, 0xc6, 0x33, 0x64, 0x0b]);

    fn v4() -> IpAddr {
        "198.51.100.200".parse().unwrap()
    }
    fn v6() -> IpAddr {
        "2001:db8::200".parse().unwrap()
    }
    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn five_bursts_over_two_seconds() {
        let t0 = Instant::now();
        let mut s = GratuitousScheduler::new();
        s.announce(2, MAC, v4(), t0);
        assert_eq!(s.next_deadline(), Some(t0));
        let mut times = Vec::new();
        let mut now = t0;
        while let Some(next) = s.next_deadline() {
            now = now.max(next);
            let sent = s.poll(now);
            assert_eq!(sent.len(), 2, "request and reply");
            times.push(now - t0);
        }
        assert_eq!(times, DEFAULT_SCHEDULE.to_vec());
        assert_eq!(s.gratuitous_sent(v4()), 10);
        assert!(!s.is_pending(2, v4()));
        assert!(s.poll(t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn nothing_before_its_time() {
        let t0 = Instant::now();
        let mut s = GratuitousScheduler::new();
        s.announce(2, MAC, v6(), t0);
        assert_eq!(s.poll(t0).len(), 1);
        assert!(s.poll(t0 + ms(199)).is_empty());
        assert_eq!(s.next_deadline(), Some(t0 + ms(200)));
        assert_eq!(s.poll(t0 + ms(200)).len(), 1);
    }

    #[test]
    fn late_poll_sends_once_and_skips_missed_bursts() {
        let t0 = Instant::now();
        let mut s = GratuitousScheduler::new();
        s.announce(2, MAC, v6(), t0);
        assert_eq!(s.poll(t0 + ms(1100)).len(), 1);
        assert_eq!(s.next_deadline(), Some(t0 + ms(2000)));
        assert_eq!(s.poll(t0 + ms(5000)).len(), 1);
        assert_eq!(s.next_deadline(), None);
        assert_eq!(s.gratuitous_sent(v6()), 2);
    }

    #[test]
    fn cancel_on_release() {
        let t0 = Instant::now();
        let mut s = GratuitousScheduler::new();
        s.announce(2, MAC, v4(), t0);
        s.announce(3, MAC, v4(), t0);
        s.announce(2, MAC, v6(), t0);
        s.poll(t0);
        s.cancel(2, v4());
        let next = s.poll(t0 + ms(200));
        let keys: Vec<_> = next.iter().map(|a| (a.ifindex, a.ip)).collect();
        assert_eq!(keys, vec![(2, v6()), (3, v4()), (3, v4())]);
        s.cancel_interface(3);
        assert!(s.is_pending(2, v6()));
        s.cancel_all();
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn restart_on_reannounce() {
        let t0 = Instant::now();
        let mut s = GratuitousScheduler::with_schedule(vec![ms(100), Duration::ZERO]);
        assert_eq!(s.schedule(), &[Duration::ZERO, ms(100)]);
        s.announce(2, MAC, v4(), t0);
        s.poll(t0);
        s.announce(2, MAC, v4(), t0 + ms(50));
        assert_eq!(s.next_deadline(), Some(t0 + ms(50)));
        let none = GratuitousScheduler::with_schedule(Vec::new());
        let mut none2 = none.clone();
        none2.announce(2, MAC, v4(), t0);
        assert_eq!(none2.next_deadline(), None);
    }

    #[test]
    fn frames_are_gratuitous_arp_and_unsolicited_na() {
        let t0 = Instant::now();
        let mut s = GratuitousScheduler::new();
        s.announce(2, MAC, v4(), t0);
        s.announce(2, MAC, v6(), t0);
        let sent = s.poll(t0);
        assert_eq!(sent.len(), 3);
        let mut ops = Vec::new();
        for a in &sent {
            let eth = EthernetFrame::parse(&a.frame).unwrap();
            assert_eq!(eth.src, MAC);
            match a.ip {
                IpAddr::V4(ip) => {
                    assert_eq!(eth.dst, MacAddr::BROADCAST);
                    let p = ArpPacket::parse(eth.payload).unwrap();
                    assert_eq!((p.sender_ip, p.target_ip, p.sender_mac), (ip, ip, MAC));
                    ops.push(p.operation);
                }
                IpAddr::V6(ip) => {
                    assert_eq!(eth.dst, MacAddr::ALL_NODES);
                    let p = NdpPacket::parse(&Ipv6Packet::parse(eth.payload).unwrap())
                        .unwrap()
                        .unwrap();
                    let NdpMessage::Advertisement(na) = p.message else {
                        panic!("not an NA")
                    };
                    assert!(na.override_flag && !na.solicited && !na.router);
                    assert_eq!((na.target, na.target_link_addr), (ip, Some(MAC)));
                }
            }
        }
        assert_eq!(ops, vec![ArpOperation::Request, ArpOperation::Reply]);
    }
}
