//! Just enough rtnetlink to list links: dump requests and a bounds-checked parser of the
//! answers (host byte order, 4-byte alignment; `linux/netlink.h`, `linux/rtnetlink.h`).

use crate::interfaces::Link;
use crate::packet::MacAddr;
use std::collections::BTreeSet;
use thiserror::Error;

/// An rtnetlink answer that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub(crate) enum NetlinkError {
    /// A message or attribute runs past the end of the buffer or is too short.
    #[error("truncated netlink message ({0})")]
    Truncated(&'static str),
    /// The kernel answered with an error (a negative errno).
    #[error("netlink error {0}")]
    Kernel(i32),
}

/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
const NLMSG_DONE: u16 = 3;
/// `RTM_NEWLINK`.
const RTM_NEWLINK: u16 = 16;
/// `RTM_GETLINK`.
const RTM_GETLINK: u16 = 18;
/// `RTM_NEWADDR`.
const RTM_NEWADDR: u16 = 20;
/// `RTM_GETADDR`.
const RTM_GETADDR: u16 = 22;
/// `IFLA_ADDRESS`.
const IFLA_ADDRESS: u16 = 1;
/// `IFLA_IFNAME`.
const IFLA_IFNAME: u16 = 3;
/// `IFLA_MASTER`.
const IFLA_MASTER: u16 = 10;
/// `AF_INET6`.
const AF_INET6: u8 = 10;
/// `NLM_F_REQUEST | NLM_F_DUMP`.
const DUMP_FLAGS: u16 = 0x1 | 0x300;

/// One message of an rtnetlink dump, as far as interface discovery cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NlMessage {
    /// `RTM_NEWLINK`.
    Link(Link),
    /// `RTM_NEWADDR`: an address of `family` on `ifindex`.
    Addr {
        /// Address family.
        family: u8,
        /// Interface index.
        ifindex: u32,
    },
    /// `NLMSG_DONE`: the dump is complete.
    Done,
    /// Anything else.
    Other,
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Parses the netlink messages in one datagram (host byte order, 4-byte alignment).
pub(crate) fn parse_netlink(buf: &[u8]) -> Result<Vec<NlMessage>, NetlinkError> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= 16 {
        let len = ne_u32(rest, 0).ok_or(NetlinkError::Truncated("header"))? as usize;
        let kind = ne_u16(rest, 4).ok_or(NetlinkError::Truncated("header"))?;
        if len < 16 {
            return Err(NetlinkError::Truncated("message length"));
        }
        let msg = rest.get(..len).ok_or(NetlinkError::Truncated("message"))?;
        let body = msg.get(16..).ok_or(NetlinkError::Truncated("message"))?;
        out.push(match kind {
            NLMSG_DONE => NlMessage::Done,
            NLMSG_ERROR => {
                let errno = ne_u32(body, 0).ok_or(NetlinkError::Truncated("error"))? as i32;
                if errno != 0 {
                    return Err(NetlinkError::Kernel(errno));
                }
                NlMessage::Other
            }
            RTM_NEWLINK => NlMessage::Link(parse_link(body)?),
            RTM_NEWADDR => NlMessage::Addr {
                family: *body.first().ok_or(NetlinkError::Truncated("ifaddrmsg"))?,
                ifindex: ne_u32(body, 4).ok_or(NetlinkError::Truncated("ifaddrmsg"))?,
            },
            _ => NlMessage::Other,
        });
        rest = rest.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(out)
}

fn parse_link(body: &[u8]) -> Result<Link, NetlinkError> {
    let t = NetlinkError::Truncated("ifinfomsg");
    let link_type = ne_u16(body, 2).ok_or(t.clone())?;
    let ifindex = ne_u32(body, 4).ok_or(t.clone())?;
    let flags = ne_u32(body, 8).ok_or(t)?;
    let mut link = Link {
        ifindex,
        name: String::new(),
        flags,
        link_type,
        mac: None,
        master: None,
        has_ipv6: false,
    };
    let mut attrs = body.get(16..).unwrap_or(&[]);
    while attrs.len() >= 4 {
        let t = NetlinkError::Truncated("attribute");
        let len = usize::from(ne_u16(attrs, 0).ok_or(t.clone())?);
        let kind = ne_u16(attrs, 2).ok_or(t.clone())? & 0x3fff;
        if len < 4 {
            return Err(t);
        }
        let data = attrs.get(4..len).ok_or(t)?;
        match kind {
            IFLA_IFNAME => {
                let name = data.split(|&b| b == 0).next().unwrap_or(&[]);
                link.name = String::from_utf8_lossy(name).into_owned();
            }
            IFLA_ADDRESS => {
                link.mac = <[u8; 6]>::try_from(data).ok().map(MacAddr);
            }
            IFLA_MASTER => {
                link.master = ne_u32(data, 0).filter(|&m| m != 0);
            }
            _ => {}
        }
        attrs = attrs.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(link)
}

/// A dump request: `RTM_GETLINK` (all families) or `RTM_GETADDR` (IPv6).
fn dump_request(kind: u16, seq: u32) -> Vec<u8> {
    let body: &[u8] = if kind == RTM_GETADDR {
        &[AF_INET6, 0, 0, 0, 0, 0, 0, 0]
    } else {
        &[0; 16]
    };
    let len = u32::try_from(16 + body.len()).unwrap_or(u32::MAX);
    let mut req = Vec::with_capacity(16 + body.len());
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&kind.to_ne_bytes());
    req.extend_from_slice(&DUMP_FLAGS.to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(body);
    req
}

/// Lists the links of the calling thread's network namespace, with whether each has an
/// IPv6 address: an `RTM_GETLINK` dump and an `RTM_GETADDR` (IPv6) dump.
pub(crate) fn dump_links() -> std::io::Result<Vec<Link>> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::io::Read;

    let socket = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::RAW,
        Some(Protocol::from(libc::NETLINK_ROUTE)),
    )?;
    socket.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut dump = |kind: u16, seq: u32| -> std::io::Result<Vec<NlMessage>> {
        socket.send(&dump_request(kind, seq))?;
        let mut all = Vec::new();
        loop {
            let n = (&socket).read(&mut buf)?;
            let msgs = parse_netlink(buf.get(..n).unwrap_or(&[]))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let done = msgs.contains(&NlMessage::Done) || n == 0;
            all.extend(msgs);
            if done {
                return Ok(all);
            }
        }
    };
    let mut links: Vec<Link> = dump(RTM_GETLINK, 1)?
        .into_iter()
        .filter_map(|m| match m {
            NlMessage::Link(l) => Some(l),
            _ => None,
        })
        .collect();
    let with_v6: BTreeSet<u32> = dump(RTM_GETADDR, 2)?
        .into_iter()
        .filter_map(|m| match m {
            NlMessage::Addr { family, ifindex } if family == AF_INET6 => Some(ifindex),
            _ => None,
        })
        .collect();
    for l in &mut links {
        l.has_ipv6 = with_v6.contains(&l.ifindex);
    }
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interfaces::{ARPHRD_ETHER, IFF_BROADCAST, IFF_UP};

    const OK: u32 = IFF_UP | IFF_BROADCAST;

    fn nlmsg(kind: u16, body: &[u8]) -> Vec<u8> {
        let len = 16 + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&1u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(align4(m.len()), 0);
        m
    }

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(align4(a.len()), 0);
        a
    }

    #[test]
    fn parses_a_link_dump() {
        let mut body = vec![0u8, 0];
        body.extend_from_slice(&ARPHRD_ETHER.to_ne_bytes());
        body.extend_from_slice(&7u32.to_ne_bytes());
        body.extend_from_slice(&(OK | 0x40).to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        body.extend(attr(IFLA_IFNAME, b"eth0\0"));
        body.extend(attr(IFLA_ADDRESS, &[2, 0x42, 0xc6, 0x33, 0x64, 0x0b]));
        body.extend(attr(IFLA_MASTER, &4u32.to_ne_bytes()));
        body.extend(attr(0x8000 | 26, &[0; 8])); // a nested attribute, skipped
        let mut buf = nlmsg(RTM_NEWLINK, &body);
        buf.extend(nlmsg(RTM_NEWADDR, &[AF_INET6, 64, 0, 0x20, 7, 0, 0, 0]));
        buf.extend(nlmsg(NLMSG_DONE, &0u32.to_ne_bytes()));
        let msgs = parse_netlink(&buf).unwrap();
        assert_eq!(
            msgs,
            vec![
                NlMessage::Link(Link {
                    ifindex: 7,
                    name: "eth0".into(),
                    flags: OK | 0x40,
                    link_type: ARPHRD_ETHER,
                    mac: Some(MacAddr([2, 0x42, 0xc6, 0x33, 0x64, 0x0b])),
                    master: Some(4),
                    has_ipv6: false,
                }),
                NlMessage::Addr {
                    family: AF_INET6,
                    ifindex: u32::from_ne_bytes([7, 0, 0, 0]),
                },
                NlMessage::Done,
            ]
        );
    }

    #[test]
    fn netlink_errors() {
        let err = nlmsg(NLMSG_ERROR, &(-1i32).to_ne_bytes());
        assert_eq!(parse_netlink(&err), Err(NetlinkError::Kernel(-1)));
        let mut short = nlmsg(RTM_NEWLINK, &[0; 16]);
        short[0] = 200;
        assert!(parse_netlink(&short).is_err());
        let mut bad_attr = nlmsg(RTM_NEWLINK, &[0; 16]);
        bad_attr.extend_from_slice(&[]);
        assert!(parse_netlink(&bad_attr).is_ok());
        let req = dump_request(RTM_GETLINK, 9);
        assert_eq!(req.len(), 32);
        assert_eq!(ne_u16(&req, 4), Some(RTM_GETLINK));
    }

    #[test]
    fn netlink_never_panics_on_garbage() {
        let mut x: u32 = 12345;
        for len in 0..300usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse_netlink(&bytes);
        }
    }
}
