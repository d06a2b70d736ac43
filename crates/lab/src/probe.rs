//! A client-side ARP prober: from inside a host's namespace, asks "who has IP?" every
//! few milliseconds for a while and records every answer with its time and MAC. This is
//! how tests and benchmarks see a takeover as a client does, and catch two nodes
//! answering at once (a single `arping` exits at the first reply and hides that).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// One answer: when it arrived (since the probe started) and who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Arrival time, from the start of the probe.
    pub at: Duration,
    /// Sequence number of the request it answers (the latest sent before it).
    pub round: u32,
    /// The answering MAC.
    pub mac: [u8; 6],
}

/// What a probe saw.
#[derive(Clone, Debug, Default)]
pub struct ProbeLog {
    /// Requests sent, with the time each went out.
    pub sent: Vec<Duration>,
    /// Every answer for the target, in order.
    pub answers: Vec<Answer>,
}

impl ProbeLog {
    /// The distinct MACs that answered in rounds `from..to`.
    pub fn macs_in(&self, from: Duration, to: Duration) -> std::collections::BTreeSet<[u8; 6]> {
        self.answers
            .iter()
            .filter(|a| a.at >= from && a.at < to)
            .map(|a| a.mac)
            .collect()
    }

    /// The first answer from `mac` at or after `from`.
    pub fn first_from(&self, mac: [u8; 6], from: Duration) -> Option<Duration> {
        self.answers
            .iter()
            .find(|a| a.mac == mac && a.at >= from)
            .map(|a| a.at)
    }

    /// The last round in which two or more MACs answered, if any, as the time of that
    /// round's request.
    pub fn last_double(&self) -> Option<Duration> {
        let mut by_round: std::collections::BTreeMap<u32, std::collections::BTreeSet<[u8; 6]>> =
            Default::default();
        for a in &self.answers {
            by_round.entry(a.round).or_default().insert(a.mac);
        }
        by_round
            .iter()
            .rev()
            .find(|(_, macs)| macs.len() > 1)
            .and_then(|(r, _)| self.sent.get(*r as usize).copied())
    }
}

/// Sends an ARP request for `target` from `source` (this host's address and MAC, on
/// interface `ifname`) every `interval` for `duration`, recording every reply. Must run
/// inside the client's namespace (see [`crate::in_netns`]); needs root.
pub fn arp_probe(
    ifname: &str,
    source: Ipv4Addr,
    source_mac: [u8; 6],
    target: Ipv4Addr,
    interval: Duration,
    duration: Duration,
) -> std::io::Result<ProbeLog> {
    let sock = RawSocket::open(ifname)?;
    let request = arp_request(source_mac, source, target);
    let mut log = ProbeLog::default();
    let start = Instant::now();
    let mut next_send = start;
    let mut buf = [0u8; 1600];
    while start.elapsed() < duration {
        let now = Instant::now();
        if now >= next_send {
            sock.send(&request)?;
            log.sent.push(now - start);
            next_send += interval;
        }
        let wait = next_send
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(100));
        if let Some(n) = sock.recv(&mut buf, wait)?
            && let Some(mac) = arp_reply_from(&buf[..n], target)
        {
            let round = log.sent.len().saturating_sub(1) as u32;
            log.answers.push(Answer {
                at: start.elapsed(),
                round,
                mac,
            });
        }
    }
    Ok(log)
}

fn arp_request(mac: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa.octets());
    f
}

/// The sender MAC of an ARP reply whose sender IP is `target`.
fn arp_reply_from(frame: &[u8], target: Ipv4Addr) -> Option<[u8; 6]> {
    let arp = frame.get(14..42)?;
    let is_reply = frame.get(12..14)? == [0x08, 0x06] && arp.get(6..8)? == [0, 2];
    let spa: [u8; 4] = arp.get(14..18)?.try_into().ok()?;
    if is_reply && Ipv4Addr::from(spa) == target {
        arp.get(8..14)?.try_into().ok()
    } else {
        None
    }
}

/// An `AF_PACKET` socket for ARP on one interface.
struct RawSocket {
    fd: std::os::fd::OwnedFd,
    ifindex: i32,
}

impl RawSocket {
    fn open(ifname: &str) -> std::io::Result<RawSocket> {
        use std::os::fd::FromRawFd;
        let name = std::ffi::CString::new(ifname)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let proto = (libc::ETH_P_ARP as u16).to_be() as i32;
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: raw is a new, valid descriptor that nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto as u16;
        addr.sll_ifindex = ifindex;
        // SAFETY: addr is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RawSocket { fd, ifindex })
    }

    fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: frame and addr are valid for the lengths passed.
        let rc = unsafe {
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Receives one frame, waiting at most `wait`; None on time-out.
    fn recv(&self, buf: &mut [u8], wait: Duration) -> std::io::Result<Option<usize>> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: pfd is one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if rc == 0 {
            return Ok(None);
        }
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(Some(n as usize))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_parsing() {
        let mac = [2, 0, 0, 0, 0, 1];
        let req = arp_request(
            mac,
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(198, 51, 100, 200),
        );
        assert_eq!(req.len(), 42);
        assert_eq!(
            arp_reply_from(&req, Ipv4Addr::new(198, 51, 100, 10)),
            None,
            "a request is not a reply"
        );
        let mut reply = req.clone();
        reply[20..22].copy_from_slice(&[0, 2]);
        reply[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        reply[28..32].copy_from_slice(&[198, 51, 100, 200]);
        assert_eq!(
            arp_reply_from(&reply, Ipv4Addr::new(198, 51, 100, 200)),
            Some([2, 0, 0, 0, 0, 9])
        );
        assert_eq!(
            arp_reply_from(&reply[..30], Ipv4Addr::new(198, 51, 100, 200)),
            None,
            "short"
        );
    }

    #[test]
    fn last_double_finds_the_last_round_with_two_macs() {
        let log = ProbeLog {
            sent: vec![
                Duration::from_millis(0),
                Duration::from_millis(5),
                Duration::from_millis(10),
            ],
            answers: vec![
                Answer {
                    at: Duration::from_millis(1),
                    round: 0,
                    mac: [1; 6],
                },
                Answer {
                    at: Duration::from_millis(2),
                    round: 0,
                    mac: [2; 6],
                },
                Answer {
                    at: Duration::from_millis(6),
                    round: 1,
                    mac: [1; 6],
                },
                Answer {
                    at: Duration::from_millis(7),
                    round: 1,
                    mac: [2; 6],
                },
                Answer {
                    at: Duration::from_millis(11),
                    round: 2,
                    mac: [1; 6],
                },
            ],
        };
        assert_eq!(log.last_double(), Some(Duration::from_millis(5)));
        assert_eq!(
            log.first_from([1; 6], Duration::from_millis(3)),
            Some(Duration::from_millis(6))
        );
    }
}
