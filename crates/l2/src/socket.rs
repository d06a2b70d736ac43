//! `AF_PACKET` raw sockets, one per interface and protocol.
//!
//! A socket is created with protocol 0, which receives nothing, gets its BPF filter, and
//! only then is bound to its interface and protocol: no unfiltered frame is ever queued.
//! The filters keep the traffic that reaches user space small: ARP requests, and IPv6
//! ICMPv6 Neighbor Solicitations (not all the node's IPv6 traffic). Frames the host sends
//! itself (`PACKET_OUTGOING`) are dropped by `PACKET_IGNORE_OUTGOING` and, on kernels
//! older than 4.20 that lack it, by the receive path.

use crate::packet::MacAddr;
use socket2::{Domain, SockFilter, Socket, Type};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// What a socket carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PacketKind {
    /// ARP requests (EtherType 0x0806, opcode 1).
    ArpRequests,
    /// ICMPv6 Neighbor Solicitations (EtherType 0x86DD, next header 58, type 135).
    NeighborSolicitations,
    /// ICMPv6 Neighbor Advertisements (type 136): not used by the announcer; for tests
    /// and for watching other hosts claim an address.
    NeighborAdvertisements,
}

impl PacketKind {
    fn ethertype(self) -> u16 {
        match self {
            PacketKind::ArpRequests => 0x0806,
            PacketKind::NeighborSolicitations | PacketKind::NeighborAdvertisements => 0x86dd,
        }
    }

    /// The classic BPF program as (code, jt, jf, k), offsets from the start of the
    /// Ethernet header.
    fn program(self) -> Vec<(u16, u8, u8, u32)> {
        // BPF_LD|BPF_H|BPF_ABS, BPF_LD|BPF_B|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K.
        const LDH: u16 = 0x28;
        const LDB: u16 = 0x30;
        const JEQ: u16 = 0x15;
        const RET: u16 = 0x06;
        // Accept the whole frame.
        const ACCEPT: u32 = 0x0004_0000;
        match self {
            PacketKind::ArpRequests => vec![
                (LDH, 0, 0, 12), // EtherType
                (JEQ, 0, 3, 0x0806),
                (LDH, 0, 0, 20), // ARP opcode
                (JEQ, 0, 1, 1),
                (RET, 0, 0, ACCEPT),
                (RET, 0, 0, 0),
            ],
            PacketKind::NeighborSolicitations | PacketKind::NeighborAdvertisements => vec![
                (LDH, 0, 0, 12), // EtherType
                (JEQ, 0, 5, 0x86dd),
                (LDB, 0, 0, 20), // IPv6 next header
                (JEQ, 0, 3, 58),
                (LDB, 0, 0, 54), // ICMPv6 type
                (JEQ, 0, 1, u32::from(self.icmpv6_type())),
                (RET, 0, 0, ACCEPT),
                (RET, 0, 0, 0),
            ],
        }
    }

    fn icmpv6_type(self) -> u8 {
        match self {
            PacketKind::NeighborAdvertisements => 136,
            _ => 135,
        }
    }

    fn filter(self) -> Vec<SockFilter> {
        self.program()
            .into_iter()
            .map(|(code, jt, jf, k)| SockFilter::new(code, jt, jf, k))
            .collect()
    }
}

/// A non-blocking `AF_PACKET` `SOCK_RAW` socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    socket: Socket,
    ifindex: u32,
    kind: PacketKind,
}

fn cvt(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn sockaddr_ll(ifindex: u32, protocol: u16) -> io::Result<libc::sockaddr_ll> {
    Ok(libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: protocol.to_be(),
        sll_ifindex: libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    })
}

impl PacketSocket {
    /// Opens a socket for `kind` on interface `ifindex` (needs `CAP_NET_RAW`).
    pub fn open(ifindex: u32, kind: PacketKind) -> io::Result<Self> {
        // Protocol 0: nothing is received until bind() names one.
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(0.into()))?;
        socket.set_nonblocking(true)?;
        socket.attach_filter(&kind.filter())?;
        let this = PacketSocket {
            socket,
            ifindex,
            kind,
        };
        match this.set_int(libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1) {
            // Linux before 4.20: the receive path filters instead.
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {}
            other => other?,
        }
        let sll = sockaddr_ll(ifindex, kind.ethertype())?;
        // SAFETY: `sll` is a valid, initialised sockaddr_ll and the length passed is its
        // size; the descriptor is owned by `this.socket` and open.
        cvt(unsafe {
            libc::bind(
                this.socket.as_raw_fd(),
                (&raw const sll).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(this)
    }

    /// The interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// What the socket carries.
    pub fn kind(&self) -> PacketKind {
        self.kind
    }

    fn set_int(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: the option value points to a live c_int and the length is its size.
        cvt(unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                level,
                name,
                (&raw const value).cast::<libc::c_void>(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
    }

    fn membership(&self, mac: MacAddr, option: libc::c_int) -> io::Result<()> {
        let sll = sockaddr_ll(self.ifindex, 0)?;
        let [a, b, c, d, e, f] = mac.0;
        let mreq = libc::packet_mreq {
            mr_ifindex: sll.sll_ifindex,
            mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
            mr_alen: 6,
            mr_address: [a, b, c, d, e, f, 0, 0],
        };
        // SAFETY: the option value points to a live packet_mreq and the length is its
        // size; the descriptor is open.
        cvt(unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                option,
                (&raw const mreq).cast::<libc::c_void>(),
                size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })
    }

    /// Makes the interface receive frames sent to the multicast `mac` (for NDP: the
    /// solicited-node group of each owned address). Memberships are counted per socket
    /// by the kernel and dropped when the socket closes.
    pub fn join_multicast(&self, mac: MacAddr) -> io::Result<()> {
        self.membership(mac, libc::PACKET_ADD_MEMBERSHIP)
    }

    /// Undoes one [`PacketSocket::join_multicast`].
    pub fn leave_multicast(&self, mac: MacAddr) -> io::Result<()> {
        self.membership(mac, libc::PACKET_DROP_MEMBERSHIP)
    }

    /// Receives one frame into `buf`. `Ok(None)`: a frame skipped because this host sent
    /// it or because it arrived on another interface (a VLAN device on top of this one).
    /// A frame longer than `buf` is cut to its length. `WouldBlock` when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut from = sockaddr_ll(0, 0)?;
        let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `from` is valid for
        // `from_len` bytes and the kernel writes at most that much; the descriptor is open.
        let n = unsafe {
            libc::recvfrom(
                self.socket.as_raw_fd(),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
                0,
                (&raw mut from).cast::<libc::sockaddr>(),
                &mut from_len,
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(None);
        }
        // A socket bound to `eth0` is also handed frames that arrived on a VLAN device on
        // top of it (`eth0.100`, after untagging: the kernel delivers to the original
        // device's handlers too), reported with the VLAN device's index. Answering those
        // here would reply untagged, on the wrong network.
        if u32::try_from(from.sll_ifindex).ok() != Some(self.ifindex) {
            return Ok(None);
        }
        Ok(Some(n.min(buf.len())))
    }

    /// Sends a whole Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let n = self.socket.send(frame)?;
        if n != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {n} of {} bytes", frame.len()),
            ));
        }
        Ok(())
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_jump_inside_the_program_and_end_in_return() {
        for kind in [
            PacketKind::ArpRequests,
            PacketKind::NeighborSolicitations,
            PacketKind::NeighborAdvertisements,
        ] {
            let prog = kind.program();
            for (i, &(code, jt, jf, _)) in prog.iter().enumerate() {
                if code == 0x15 {
                    assert!(i + 1 + usize::from(jt) < prog.len());
                    assert!(i + 1 + usize::from(jf) < prog.len());
                }
            }
            assert_eq!(prog.last(), Some(&(0x06, 0, 0, 0)));
            assert_eq!(prog.get(1).map(|i| i.3), Some(u32::from(kind.ethertype())));
        }
    }
}
