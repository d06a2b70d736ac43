//! The tokio driver for single-hop sessions (RFC 5881): one task, the [`Session`]s
//! inside.
//!
//! - Receives on UDP port 3784 (one IPv4 and one IPv6 socket) and reads each packet's
//!   TTL / hop limit (`IP_RECVTTL`, `IPV6_RECVHOPLIMIT`); a packet without one is
//!   dropped, and the session's [`TtlCheck`](crate::TtlCheck) (255 for single hop) is
//!   applied.
//! - Sends from one socket per session, bound to a random source port in 49152-65535,
//!   with TTL / hop limit 255.
//! - Packets are matched to sessions by Your Discriminator, or by source address while
//!   the peer does not know our discriminator yet; a packet whose source address is not
//!   the session's peer is dropped.
//! - Multihop (RFC 5883) works the same way with both ports set to
//!   [`MULTIHOP_PORT`](crate::MULTIHOP_PORT) and sessions whose
//!   [`TtlCheck`](crate::TtlCheck) is `Minimum(minimumTtl)`; sessions are still told apart
//!   by the peer's address only.
//! - Limitation: IPv6 link-local peers (`fe80::/10`) need a scope id, which
//!   [`Bfd::add_session`] cannot take yet.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ferrolb_bfd::io::{Bfd, IoConfig};
//! use ferrolb_bfd::BfdProfile;
//! let (bfd, mut events) = Bfd::start(IoConfig::default()).await?;
//! let config = BfdProfile::default().session_config(false).expect("valid profile");
//! bfd.add_session("192.0.2.1".parse().expect("address"), config).await?;
//! while let Some(ev) = events.recv().await {
//!     println!("{} {:?}", ev.peer, ev.event);
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::SessionConfig;
use crate::packet::{ControlPacket, Diag, State};
use crate::rng::{JitterRng, SplitMix64};
use crate::session::{Event, Session, SessionStats};
use crate::{SINGLE_HOP_PORT, SOURCE_PORT_MAX, SOURCE_PORT_MIN};

/// TTL / hop limit of every packet we send (RFC 5881 §5).
const SEND_TTL: u32 = 255;
/// Largest datagram we read; longer ones are truncated (and fail the Length check only
/// if their Length field says so).
const RECV_BUF: usize = 512;

/// Where the driver listens and sends.
#[derive(Clone, Debug)]
pub struct IoConfig {
    /// IPv4 receive address (default `0.0.0.0:3784`); `None`: no IPv4.
    pub listen_v4: Option<SocketAddr>,
    /// IPv6 receive address (default `[::]:3784`); `None`: no IPv6.
    pub listen_v6: Option<SocketAddr>,
    /// The peers' destination port (default 3784).
    pub peer_port: u16,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            listen_v4: Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, SINGLE_HOP_PORT))),
            listen_v6: Some(SocketAddr::from((Ipv6Addr::UNSPECIFIED, SINGLE_HOP_PORT))),
            peer_port: SINGLE_HOP_PORT,
        }
    }
}

/// A session event, with the peer it concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerEvent {
    /// The session's peer.
    pub peer: IpAddr,
    /// What happened.
    pub event: Event,
}

enum Command {
    Add {
        peer: IpAddr,
        config: SessionConfig,
        reply: oneshot::Sender<io::Result<()>>,
    },
    Remove {
        peer: IpAddr,
    },
    AdminDown {
        peer: IpAddr,
        down: bool,
    },
    List {
        reply: oneshot::Sender<Vec<SessionInfo>>,
    },
}

/// A snapshot of one session, from [`Bfd::sessions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The peer.
    pub peer: IpAddr,
    /// Our state.
    pub state: State,
    /// Our diagnostic.
    pub diag: Diag,
    /// Counters.
    pub stats: SessionStats,
}

/// Handle to the running driver task. Dropping it stops the task.
#[derive(Debug)]
pub struct Bfd {
    cmds: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Add { peer, .. } => write!(f, "Add({peer})"),
            Command::Remove { peer } => write!(f, "Remove({peer})"),
            Command::AdminDown { peer, down } => write!(f, "AdminDown({peer}, {down})"),
            Command::List { .. } => write!(f, "List"),
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("BFD task stopped")
}

impl Bfd {
    /// Binds the receive sockets and starts the task. Returns the handle and the
    /// channel of session events.
    pub async fn start(config: IoConfig) -> io::Result<(Bfd, mpsc::UnboundedReceiver<PeerEvent>)> {
        let v4 = config.listen_v4.map(rx_socket).transpose()?;
        let v6 = match config.listen_v6.map(rx_socket).transpose() {
            // A kernel without IPv6 (ipv6.disable=1): run IPv4 only.
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) && v4.is_some() => None,
            other => other?,
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32);
        let driver = Driver {
            v4,
            v6,
            peer_port: config.peer_port,
            sessions: HashMap::new(),
            by_peer: HashMap::new(),
            rng: SplitMix64::new(seed),
            events: ev_tx,
        };
        let task = tokio::spawn(driver.run(cmd_rx));
        Ok((Bfd { cmds: cmd_tx, task }, ev_rx))
    }

    /// Starts a session with `peer` (one per peer address). Fails if there already is
    /// one, or if no source port could be bound.
    pub async fn add_session(&self, peer: IpAddr, config: SessionConfig) -> io::Result<()> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Command::Add {
                peer,
                config,
                reply,
            })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Stops the session with `peer`, after one last AdminDown packet.
    pub fn remove_session(&self, peer: IpAddr) {
        let _ = self.cmds.send(Command::Remove { peer });
    }

    /// Takes the session with `peer` administratively down (`true`) or back (`false`).
    pub fn set_admin_down(&self, peer: IpAddr, down: bool) {
        let _ = self.cmds.send(Command::AdminDown { peer, down });
    }

    /// A snapshot of every session (for status and metrics).
    pub async fn sessions(&self) -> io::Result<Vec<SessionInfo>> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Command::List { reply })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Stops the task (sessions are dropped without notice to the peers).
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Bfd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Entry {
    peer: IpAddr,
    session: Session,
    tx: UdpSocket,
}

struct Driver {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    peer_port: u16,
    sessions: HashMap<u32, Entry>,
    by_peer: HashMap<IpAddr, u32>,
    rng: SplitMix64,
    events: mpsc::UnboundedSender<PeerEvent>,
}

impl Driver {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Command>) {
        let mut buf4 = [0u8; RECV_BUF];
        let mut buf6 = [0u8; RECV_BUF];
        loop {
            let deadline = self
                .sessions
                .values()
                .filter_map(|e| e.session.poll_timeout())
                .min();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None => return,
                    Some(cmd) => self.command(cmd),
                },
                r = recv(self.v4.as_ref(), &mut buf4) => {
                    if let Ok((n, from, ttl)) = r {
                        self.packet(buf4.get(..n).unwrap_or_default(), from, ttl);
                    }
                }
                r = recv(self.v6.as_ref(), &mut buf6) => {
                    if let Ok((n, from, ttl)) = r {
                        self.packet(buf6.get(..n).unwrap_or_default(), from, ttl);
                    }
                }
                _ = sleep_until(deadline) => {}
            }
            let now = Instant::now().into_std();
            for e in self.sessions.values_mut() {
                e.session.handle_timeout(now);
                flush(e, now, self.peer_port, &self.events);
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now().into_std();
        match cmd {
            Command::Add {
                peer,
                config,
                reply,
            } => {
                let _ = reply.send(self.add(peer, config, now));
            }
            Command::Remove { peer } => {
                if let Some(discr) = self.by_peer.remove(&peer)
                    && let Some(mut e) = self.sessions.remove(&discr)
                {
                    e.session.set_admin_down(now);
                    flush(&mut e, now, self.peer_port, &self.events);
                }
            }
            Command::List { reply } => {
                let mut list: Vec<SessionInfo> = self
                    .sessions
                    .values()
                    .map(|e| SessionInfo {
                        peer: e.peer,
                        state: e.session.state(),
                        diag: e.session.local_diag(),
                        stats: e.session.stats(),
                    })
                    .collect();
                list.sort_by_key(|i| i.peer);
                let _ = reply.send(list);
            }
            Command::AdminDown { peer, down } => {
                if let Some(e) = self
                    .by_peer
                    .get(&peer)
                    .and_then(|d| self.sessions.get_mut(d))
                {
                    if down {
                        e.session.set_admin_down(now);
                    } else {
                        e.session.set_admin_up(now);
                    }
                }
            }
        }
    }

    fn add(
        &mut self,
        peer: IpAddr,
        config: SessionConfig,
        now: std::time::Instant,
    ) -> io::Result<()> {
        if self.by_peer.contains_key(&peer) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("a BFD session with {peer} exists"),
            ));
        }
        let tx = tx_socket(peer, &mut self.rng)?;
        let discr = loop {
            let d = (self.rng.next_u64() >> 32) as u32;
            if let Some(nz) = NonZeroU32::new(d)
                && !self.sessions.contains_key(&d)
            {
                break nz;
            }
        };
        let seed = self.rng.next_u64();
        let session = Session::new(config, discr, SplitMix64::new(seed), now);
        self.by_peer.insert(peer, discr.get());
        self.sessions
            .insert(discr.get(), Entry { peer, session, tx });
        Ok(())
    }

    fn packet(&mut self, buf: &[u8], from: SocketAddr, ttl: Option<u8>) {
        // No TTL: cannot check GTSM (RFC 5881 §5), drop.
        let Some(ttl) = ttl else { return };
        let Ok(pkt) = ControlPacket::parse(buf) else {
            return;
        };
        let from_ip = canonical(from.ip());
        let discr = if pkt.your_discriminator != 0 {
            pkt.your_discriminator
        } else {
            match self.by_peer.get(&from_ip) {
                Some(d) => *d,
                None => return,
            }
        };
        let Some(e) = self.sessions.get_mut(&discr) else {
            return;
        };
        if e.peer != from_ip {
            return;
        }
        let _ = e
            .session
            .handle_datagram(Instant::now().into_std(), buf, ttl);
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn flush(
    e: &mut Entry,
    now: std::time::Instant,
    port: u16,
    events: &mpsc::UnboundedSender<PeerEvent>,
) {
    let dst = SocketAddr::new(e.peer, port);
    while let Some(bytes) = e.session.poll_transmit(now) {
        // Losing a packet to a full socket buffer is what BFD tolerates by design.
        let _ = e.tx.try_send_to(&bytes, dst);
    }
    while let Some(event) = e.session.poll_event() {
        let _ = events.send(PeerEvent {
            peer: e.peer,
            event,
        });
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

async fn recv(
    sock: Option<&UdpSocket>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    match sock {
        Some(s) => {
            s.async_io(Interest::READABLE, || recv_with_ttl(s.as_raw_fd(), buf))
                .await
        }
        None => std::future::pending().await,
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: fd is an open socket; the option value is a c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn rx_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = Domain::for_address(addr);
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        setsockopt_int(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVHOPLIMIT,
            1,
        )?;
    } else {
        setsockopt_int(s.as_raw_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

fn tx_socket(peer: IpAddr, rng: &mut SplitMix64) -> io::Result<UdpSocket> {
    let domain = if peer.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let span = u64::from(SOURCE_PORT_MAX - SOURCE_PORT_MIN) + 1;
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free BFD source port");
    for _ in 0..64 {
        let port = SOURCE_PORT_MIN + (rng.next_u64() % span) as u16;
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        let local: SocketAddr = if peer.is_ipv6() {
            s.set_unicast_hops_v6(SEND_TTL)?;
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))
        } else {
            s.set_ttl_v4(SEND_TTL)?;
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
        };
        s.set_nonblocking(true)?;
        match s.bind(&local.into()) {
            Ok(()) => return UdpSocket::from_std(s.into()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `recvmsg` with the TTL / hop limit control message.
fn recv_with_ttl(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    let mut addr = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s for cmsghdr alignment.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = addr.as_mut_ptr().cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: every pointer in msg refers to a live buffer of the stated length.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = usize::try_from(n).unwrap_or(0).min(buf.len());
    let mut ttl = None;
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* macros walk it
    // within those bounds; the data of IP_TTL / IPV6_HOPLIMIT is a c_int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let (level, ty) = ((*c).cmsg_level, (*c).cmsg_type);
            if (level == libc::IPPROTO_IP && ty == libc::IP_TTL)
                || (level == libc::IPPROTO_IPV6 && ty == libc::IPV6_HOPLIMIT)
            {
                let v: libc::c_int = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                ttl = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // SAFETY: recvmsg initialised the address (zeroed before, so any unwritten tail is 0).
    let addr = unsafe { addr.assume_init() };
    let from = match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in, which fits in the storage.
            let a: libc::sockaddr_in = unsafe {
                std::ptr::read_unaligned((&addr as *const libc::sockaddr_storage).cast())
            };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6, which fits in the storage.
            let a: libc::sockaddr_in6 = unsafe {
                std::ptr::read_unaligned((&addr as *const libc::sockaddr_storage).cast())
            };
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            ))
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected address family",
            ));
        }
    };
    Ok((n, from, ttl))
}
