//! The gossip wire format: a compact binary encoding of one message plus piggybacked
//! membership updates, inside one UDP datagram (see [`crate::crypto`] for the outer,
//! sealed layer).
//!
//! ```text
//! packet  = version:u8 (1) kind:u8 from:name body updates
//! name    = len:u8 (1-253) utf-8 bytes (no control characters)
//! addr    = family:u8 (4 | 6) ip:4|16 bytes port:u16
//! body    = Ping    seq:u32 target:name
//!         | Ack     seq:u32
//!         | Nack    seq:u32
//!         | PingReq seq:u32 target:name addr
//!         | Join    reply:u8 (0 | 1)
//!         | Gossip  (empty)
//! updates = count:u16 update*
//! update  = name addr incarnation:u64 status:u8 [accuser:name if status has bit 7]
//! status  = 0 alive | 1 suspect | 2 dead | 3 left, bit 7 set when an accuser follows
//! ```
//!
//! All integers are big-endian. The decoder checks every length against the bytes left,
//! rejects trailing bytes and unknown values, and returns an error rather than panicking
//! on any input (fuzzed by `fuzz/fuzz_targets/gossip.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use thiserror::Error;

/// The version byte that starts every decoded packet.
pub const PROTOCOL_VERSION: u8 = 1;

/// The longest node name (a Kubernetes node name is a DNS subdomain: at most 253 bytes).
pub const MAX_NAME_LEN: usize = 253;

/// The smallest possible encoded update (1-byte name, IPv4 address, no accuser).
const MIN_UPDATE_LEN: usize = 2 + 7 + 8 + 1;

/// Why a packet could not be decoded.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The packet ended in the middle of a field.
    #[error("truncated packet")]
    Truncated,
    /// A version this node does not speak.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// An unknown message kind.
    #[error("unknown message kind {0}")]
    Kind(u8),
    /// A name that is empty, too long, not UTF-8 or has control characters.
    #[error("invalid node name")]
    Name,
    /// An address family other than 4 or 6.
    #[error("unknown address family {0}")]
    Family(u8),
    /// A status byte that is not one of the four states.
    #[error("unknown member status {0:#04x}")]
    Status(u8),
    /// A flag byte other than 0 or 1.
    #[error("invalid flag {0}")]
    Flag(u8),
    /// Bytes after the last update.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// A member's state, as gossiped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Answering probes.
    Alive,
    /// Failed a probe; declared dead unless it refutes in time.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left the cluster on purpose (graceful shutdown).
    Left,
}

impl Status {
    fn to_byte(self) -> u8 {
        match self {
            Status::Alive => 0,
            Status::Suspect => 1,
            Status::Dead => 2,
            Status::Left => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Status> {
        Some(match b {
            0 => Status::Alive,
            1 => Status::Suspect,
            2 => Status::Dead,
            3 => Status::Left,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Alive => "alive",
            Status::Suspect => "suspect",
            Status::Dead => "dead",
            Status::Left => "left",
        })
    }
}

/// One piece of membership news: "node `name` at `addr` is `status` at `incarnation`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The node's name.
    pub name: String,
    /// Its gossip address.
    pub addr: SocketAddr,
    /// Its incarnation: only the node itself raises it (to refute a suspicion or on
    /// restart); higher wins.
    pub incarnation: u64,
    /// What the sender believes.
    pub status: Status,
    /// For a suspicion, the node whose probe failed (Lifeguard counts independent
    /// accusers to shorten the suspicion timeout).
    pub accuser: Option<String>,
}

impl Update {
    /// Bytes this update takes on the wire.
    pub fn encoded_len(&self) -> usize {
        name_len(&self.name)
            + addr_len(&self.addr)
            + 8
            + 1
            + self.accuser.as_deref().map(name_len).unwrap_or(0)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_name(out, &self.name);
        put_addr(out, &self.addr);
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        let flag = if self.accuser.is_some() { 0x80 } else { 0 };
        out.push(self.status.to_byte() | flag);
        if let Some(a) = &self.accuser {
            put_name(out, a);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Update, WireError> {
        let name = r.name()?;
        let addr = r.addr()?;
        let incarnation = r.u64()?;
        let byte = r.u8()?;
        let status = Status::from_byte(byte & 0x7f).ok_or(WireError::Status(byte))?;
        let accuser = if byte & 0x80 != 0 {
            Some(r.name()?)
        } else {
            None
        };
        Ok(Update {
            name,
            addr,
            incarnation,
            status,
            accuser,
        })
    }
}

/// The message a packet carries, besides its piggybacked updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// "Are you alive?" to `target` (named, so a different node now at that address
    /// does not answer for it).
    Ping {
        /// Echoed in the [`Message::Ack`].
        seq: u32,
        /// The node meant to answer.
        target: String,
    },
    /// The answer to a ping (directly, or relayed by the helper of an indirect probe).
    Ack {
        /// The ping's sequence number.
        seq: u32,
    },
    /// From the helper of an indirect probe: the target did not answer it in time
    /// (Lifeguard: a missing nack hints that the prober itself is the slow one).
    Nack {
        /// The ping-req's sequence number.
        seq: u32,
    },
    /// "Please ping `target` for me and relay its ack" (SWIM indirect probe).
    PingReq {
        /// Echoed in the relayed [`Message::Ack`] or in a [`Message::Nack`].
        seq: u32,
        /// The node to probe.
        target: String,
        /// Its address.
        addr: SocketAddr,
    },
    /// Full state exchange: the updates are the sender's view. With `reply` set, the
    /// receiver answers with its own view (join and anti-entropy).
    Join {
        /// Whether the receiver should answer with its view.
        reply: bool,
    },
    /// Updates only.
    Gossip,
}

impl Message {
    fn kind(&self) -> u8 {
        match self {
            Message::Ping { .. } => 1,
            Message::Ack { .. } => 2,
            Message::Nack { .. } => 3,
            Message::PingReq { .. } => 4,
            Message::Join { .. } => 5,
            Message::Gossip => 6,
        }
    }
}

/// One datagram's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The sender's node name.
    pub from: String,
    /// What it says.
    pub message: Message,
    /// Membership news it piggybacks.
    pub updates: Vec<Update>,
}

impl Packet {
    /// Bytes of everything but the updates (header, message and update count).
    pub fn header_len(from: &str, message: &Message) -> usize {
        let body = match message {
            Message::Ping { target, .. } => 4 + name_len(target),
            Message::Ack { .. } | Message::Nack { .. } => 4,
            Message::PingReq { target, addr, .. } => 4 + name_len(target) + addr_len(addr),
            Message::Join { .. } => 1,
            Message::Gossip => 0,
        };
        2 + name_len(from) + body + 2
    }

    /// Bytes of the whole encoded packet.
    pub fn encoded_len(&self) -> usize {
        Packet::header_len(&self.from, &self.message)
            + self.updates.iter().map(Update::encoded_len).sum::<usize>()
    }

    /// Encodes the packet. Names longer than [`MAX_NAME_LEN`] are the caller's bug: they
    /// are truncated on a character boundary rather than producing an invalid packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(PROTOCOL_VERSION);
        out.push(self.message.kind());
        put_name(&mut out, &self.from);
        match &self.message {
            Message::Ping { seq, target } => {
                out.extend_from_slice(&seq.to_be_bytes());
                put_name(&mut out, target);
            }
            Message::Ack { seq } | Message::Nack { seq } => {
                out.extend_from_slice(&seq.to_be_bytes())
            }
            Message::PingReq { seq, target, addr } => {
                out.extend_from_slice(&seq.to_be_bytes());
                put_name(&mut out, target);
                put_addr(&mut out, addr);
            }
            Message::Join { reply } => out.push(u8::from(*reply)),
            Message::Gossip => {}
        }
        let count = u16::try_from(self.updates.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for u in self.updates.iter().take(usize::from(count)) {
            u.encode(&mut out);
        }
        out
    }

    /// Decodes a packet; any malformed input is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Packet, WireError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != PROTOCOL_VERSION {
            return Err(WireError::Version(version));
        }
        let kind = r.u8()?;
        if !(1..=6).contains(&kind) {
            return Err(WireError::Kind(kind));
        }
        let from = r.name()?;
        let message = match kind {
            1 => Message::Ping {
                seq: r.u32()?,
                target: r.name()?,
            },
            2 => Message::Ack { seq: r.u32()? },
            3 => Message::Nack { seq: r.u32()? },
            4 => Message::PingReq {
                seq: r.u32()?,
                target: r.name()?,
                addr: r.addr()?,
            },
            5 => Message::Join {
                reply: match r.u8()? {
                    0 => false,
                    1 => true,
                    f => return Err(WireError::Flag(f)),
                },
            },
            _ => Message::Gossip,
        };
        let count = usize::from(r.u16()?);
        // Never trust a count for an allocation: bound it by the bytes left.
        let mut updates = Vec::with_capacity(count.min(r.remaining() / MIN_UPDATE_LEN));
        for _ in 0..count {
            updates.push(Update::decode(&mut r)?);
        }
        if r.remaining() != 0 {
            return Err(WireError::Trailing(r.remaining()));
        }
        Ok(Packet {
            from,
            message,
            updates,
        })
    }
}

/// Whether `name` can be a member name on the wire.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

fn name_len(name: &str) -> usize {
    1 + name.len().min(MAX_NAME_LEN)
}

fn addr_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 1 + 4 + 2,
        SocketAddr::V6(_) => 1 + 16 + 2,
    }
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    let mut end = name.len().min(MAX_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    // `end` is at most 253, so it fits a byte.
    out.push(end as u8);
    out.extend_from_slice(&name.as_bytes()[..end]);
}

fn put_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// A bounds-checked cursor.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.bytes.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn name(&mut self) -> Result<String, WireError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        let s = std::str::from_utf8(bytes).map_err(|_| WireError::Name)?;
        if !valid_name(s) {
            return Err(WireError::Name);
        }
        Ok(s.to_owned())
    }

    fn addr(&mut self) -> Result<SocketAddr, WireError> {
        let ip = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)),
            f => return Err(WireError::Family(f)),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(name: &str, status: Status, accuser: Option<&str>) -> Update {
        Update {
            name: name.into(),
            addr: "198.51.100.1:7946".parse().unwrap(),
            incarnation: 42,
            status,
            accuser: accuser.map(Into::into),
        }
    }

    #[test]
    fn every_message_round_trips() {
        let v6: SocketAddr = "[2001:db8::7]:7946".parse().unwrap();
        let messages = [
            Message::Ping {
                seq: 7,
                target: "node-b".into(),
            },
            Message::Ack { seq: u32::MAX },
            Message::Nack { seq: 0 },
            Message::PingReq {
                seq: 9,
                target: "node-c".into(),
                addr: v6,
            },
            Message::Join { reply: true },
            Message::Join { reply: false },
            Message::Gossip,
        ];
        for message in messages {
            let p = Packet {
                from: "node-a".into(),
                message,
                updates: vec![
                    update("x", Status::Alive, None),
                    update("y", Status::Suspect, Some("node-a")),
                    Update {
                        addr: v6,
                        ..update("z", Status::Left, None)
                    },
                    update("w", Status::Dead, None),
                ],
            };
            let bytes = p.encode();
            assert_eq!(bytes.len(), p.encoded_len(), "{p:?}");
            assert_eq!(Packet::decode(&bytes).unwrap(), p);
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        let p = Packet {
            from: "a".into(),
            message: Message::Ping {
                seq: 1,
                target: "b".into(),
            },
            updates: vec![update("c", Status::Suspect, Some("a"))],
        };
        let bytes = p.encode();
        for cut in 0..bytes.len() {
            assert!(Packet::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Packet::decode(&longer), Err(WireError::Trailing(1)));
        let mut v = bytes.clone();
        v[0] = 2;
        assert_eq!(Packet::decode(&v), Err(WireError::Version(2)));
        let mut k = bytes.clone();
        k[1] = 9;
        assert_eq!(Packet::decode(&k), Err(WireError::Kind(9)));
        // An empty name, a control character, invalid UTF-8.
        assert_eq!(
            Packet::decode(&[1, 6, 0, 0, 0]),
            Err(WireError::Name),
            "empty name"
        );
        assert_eq!(
            Packet::decode(&[1, 6, 1, b'\n', 0, 0]),
            Err(WireError::Name)
        );
        assert_eq!(Packet::decode(&[1, 6, 1, 0xff, 0, 0]), Err(WireError::Name));
        // A huge update count with nothing behind it.
        assert_eq!(
            Packet::decode(&[1, 6, 1, b'a', 0xff, 0xff]),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let long = "é".repeat(200);
        let p = Packet {
            from: long.clone(),
            message: Message::Gossip,
            updates: vec![],
        };
        let back = Packet::decode(&p.encode()).unwrap();
        assert!(back.from.len() <= MAX_NAME_LEN);
        assert!(long.starts_with(&back.from));
    }
}
