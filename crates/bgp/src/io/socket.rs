//! Socket set-up: TCP-MD5 (RFC 2385), source address, TTL and GTSM (RFC 5082).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use socket2::SockRef;
use tokio::net::{TcpSocket, TcpStream};

/// The longest TCP-MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = libc::TCP_MD5SIG_MAXKEYLEN;

/// How a session's TCP connections are set up ([`super::spawn_with`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// TCP-MD5 signature key (RFC 2385; MetalLB's `password`), 1 to 80 bytes.
    pub md5_key: Option<Vec<u8>>,
    /// Bind to this address before connecting (MetalLB's `sourceAddress`). It must be an
    /// address of this host, of the peer's family.
    pub source: Option<IpAddr>,
    /// TTL (IPv4) or hop limit (IPv6) of the packets we send; `None` keeps the system's
    /// default (64). The caller uses 1 for directly connected eBGP and 255 for
    /// `ebgpMultiHop` and iBGP, like FRR.
    pub ttl: Option<u8>,
    /// GTSM (RFC 5082): the kernel drops the peer's packets whose TTL (hop limit) is below
    /// this (`IP_MINTTL`, `IPV6_MINHOPCOUNT`); 255 for a directly connected peer that sends
    /// with TTL 255. `None` (default): off.
    pub min_ttl: Option<u8>,
}

impl std::fmt::Debug for ConnectionOptions {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionOptions")
            .field("md5_key", &self.md5_key.as_ref().map(|_| "<redacted>"))
            .field("source", &self.source)
            .field("ttl", &self.ttl)
            .field("min_ttl", &self.min_ttl)
            .finish()
    }
}

/// Why a session task or listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The MD5 key is empty or longer than 80 bytes.
    #[error("TCP-MD5 key must be 1 to {MD5_MAX_KEY_LEN} bytes, not {0}")]
    Md5KeyLength(usize),
    /// The source address is not of the peer's family.
    #[error("source address {address} and peer {peer} are not of the same family")]
    SourceFamily {
        /// The source address.
        address: IpAddr,
        /// The peer.
        peer: IpAddr,
    },
    /// The source address is not an address of this host.
    #[error("source address {address} is not an address of this host: {error}")]
    SourceNotLocal {
        /// The address.
        address: IpAddr,
        /// What bind said.
        error: std::io::Error,
    },
    /// A session for this peer address is already registered on the listener.
    #[error("a session for {0} is already registered on the listener")]
    DuplicatePeer(IpAddr),
    /// TTL 0 or minimum TTL 0.
    #[error("TTL and minimum TTL must be 1 to 255")]
    Ttl,
    /// A socket operation failed.
    #[error("{what}: {error}")]
    Socket {
        /// What was being done.
        what: String,
        /// The error.
        error: std::io::Error,
    },
}

impl ConnectionOptions {
    /// Check the options for connections to `peer`, on a throw-away socket: the key's
    /// length, the TTLs, the source address (of the peer's family and local: bound with
    /// port 0), and that the kernel accepts the MD5 key.
    pub fn validate(&self, peer: IpAddr) -> Result<(), IoError> {
        if let Some(key) = &self.md5_key
            && (key.is_empty() || key.len() > MD5_MAX_KEY_LEN)
        {
            return Err(IoError::Md5KeyLength(key.len()));
        }
        if self.ttl == Some(0) || self.min_ttl == Some(0) {
            return Err(IoError::Ttl);
        }
        if let Some(source) = self.source
            && source.is_ipv4() != peer.is_ipv4()
        {
            return Err(IoError::SourceFamily {
                address: source,
                peer,
            });
        }
        let socket = new_socket(peer).map_err(|error| IoError::Socket {
            what: "creating a TCP socket".into(),
            error,
        })?;
        self.apply(&socket, peer)?;
        Ok(())
    }

    /// Set the options on a socket that will connect to `peer` (MD5, TTL, GTSM, bind).
    fn apply(&self, socket: &TcpSocket, peer: IpAddr) -> Result<(), IoError> {
        let sock = SockRef::from(socket);
        let fail = |what: &str| {
            let what = what.to_string();
            move |error| IoError::Socket { what, error }
        };
        if let Some(key) = &self.md5_key {
            set_md5_key(socket, peer, key).map_err(fail("setting the TCP-MD5 key"))?;
        }
        if let Some(ttl) = self.ttl {
            if peer.is_ipv4() {
                sock.set_ttl_v4(ttl.into())
                    .map_err(fail("setting the TTL"))?;
            } else {
                sock.set_unicast_hops_v6(ttl.into())
                    .map_err(fail("setting the hop limit"))?;
            }
        }
        if let Some(min) = self.min_ttl {
            set_min_ttl(socket, peer.is_ipv4(), min).map_err(fail("setting the minimum TTL"))?;
        }
        if let Some(source) = self.source {
            if source.is_ipv4() != peer.is_ipv4() {
                return Err(IoError::SourceFamily {
                    address: source,
                    peer,
                });
            }
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(|error| IoError::SourceNotLocal {
                    address: source,
                    error,
                })?;
        }
        Ok(())
    }
}

fn new_socket(peer: IpAddr) -> std::io::Result<TcpSocket> {
    if peer.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
}

/// Dial `peer` with `options` (each attempt on a new socket).
pub(super) async fn dial(
    peer: SocketAddr,
    options: &ConnectionOptions,
) -> Result<TcpStream, IoError> {
    let socket = new_socket(peer.ip()).map_err(|error| IoError::Socket {
        what: "creating a TCP socket".into(),
        error,
    })?;
    options.apply(&socket, peer.ip())?;
    socket.connect(peer).await.map_err(|error| IoError::Socket {
        what: format!("connecting to {peer}"),
        error,
    })
}

/// `struct tcp_md5sig` of `<linux/tcp.h>` (the libc crate does not define it).
#[repr(C)]
struct TcpMd5Sig {
    /// The peer's address (`struct __kernel_sockaddr_storage`, 128 bytes).
    addr: socket2::SockAddrStorage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

// The kernel checks the option's length against its own struct: 128 + 8 + 80 bytes.
const _: () = assert!(std::mem::size_of::<TcpMd5Sig>() == 216);

/// Set (or, with an empty key, remove) the TCP-MD5 key for segments to and from `peer`
/// on `socket`: a connecting socket, or a listening one (accepted connections inherit
/// its keys). On an IPv6 socket, an IPv4 peer is keyed by its IPv4-mapped address, which
/// the kernel files as an IPv4 key.
pub(super) fn set_md5_key(socket: &impl AsFd, peer: IpAddr, key: &[u8]) -> std::io::Result<()> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "TCP-MD5 key longer than 80 bytes",
        ));
    }
    let domain = SockRef::from(socket).domain()?;
    let addr = match (peer, domain == socket2::Domain::IPV6) {
        (IpAddr::V4(v4), true) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), 0),
        (ip, _) => SocketAddr::new(ip, 0),
    };
    let mut sig = TcpMd5Sig {
        addr: socket2::SockAddr::from(addr).as_storage(),
        flags: 0,
        prefix_len: 0,
        key_len: key.len() as u16,
        ifindex: 0,
        key: [0; MD5_MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    setsockopt(socket, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// GTSM: `IP_MINTTL` or `IPV6_MINHOPCOUNT`.
pub(super) fn set_min_ttl(socket: &impl AsFd, ipv4: bool, min: u8) -> std::io::Result<()> {
    let value = libc::c_int::from(min);
    if ipv4 {
        setsockopt(socket, libc::IPPROTO_IP, libc::IP_MINTTL, &value)
    } else {
        setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &value)
    }
}

/// `setsockopt(2)` with a value passed by reference.
fn setsockopt<T>(
    socket: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> std::io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `fd` is an open socket, borrowed (`AsFd`) for the duration of the call;
    // `value` points to `len` initialized bytes that live across the call, and the kernel
    // only reads them.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            std::ptr::from_ref(value).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ttl_and_hop_limit_are_set_on_the_socket() {
        let options = ConnectionOptions {
            ttl: Some(1),
            source: Some("127.0.0.1".parse().unwrap()),
            ..ConnectionOptions::default()
        };
        let socket = new_socket("127.0.0.1".parse().unwrap()).unwrap();
        options
            .apply(&socket, "127.0.0.1".parse().unwrap())
            .unwrap();
        assert_eq!(SockRef::from(&socket).ttl_v4().unwrap(), 1);
        assert_eq!(socket.local_addr().unwrap().ip().to_string(), "127.0.0.1");
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            let options = ConnectionOptions {
                ttl: Some(255),
                ..ConnectionOptions::default()
            };
            let socket = new_socket("::1".parse().unwrap()).unwrap();
            options.apply(&socket, "::1".parse().unwrap()).unwrap();
            assert_eq!(SockRef::from(&socket).unicast_hops_v6().unwrap(), 255);
        }
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let options = ConnectionOptions {
            md5_key: Some(b"hunter2".to_vec()),
            ..ConnectionOptions::default()
        };
        let text = format!("{options:?}");
        assert!(
            !text.contains("hunter2") && text.contains("redacted"),
            "{text}"
        );
    }
}
