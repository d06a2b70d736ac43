//! The passive side: a listening socket whose accepted connections go to the session of
//! the peer they come from.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use socket2::SockRef;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::socket::{self, ConnectionOptions, IoError};
use super::{Mode, PeerHandle};
use crate::session::Session;

/// A BGP listener (port 179, or any): accepts connections from configured peers and
/// hands each to that peer's session task, which resolves collisions with its own
/// outbound connection (RFC 4271 §6.8, see [`Session::offer_inbound`]). Connections from
/// other addresses are closed at once.
///
/// Each peer's TCP-MD5 key is set on the listening socket for that peer's address (the
/// kernel then drops unsigned or badly signed SYNs from it, and accepted connections
/// inherit the key); its TTL and GTSM settings are applied to each accepted connection.
/// A peer is registered by [`Listener::spawn`] and unregistered (key removed) when its
/// task ends.
///
/// Dropping the listener stops accepting; the listening socket closes once the last
/// session task spawned from it has ended.
///
/// Not supported: passive-only peers (every session also dials), dynamic neighbours
/// (connections from unconfigured addresses or ranges), and collision detection against
/// an outbound connection that has not reached OpenSent (a dial still under way is simply
/// abandoned for the inbound connection, which RFC 4271's Connect state allows). While an
/// inbound connection exchanges OPENs its hold timer is the 240 s OpenSent one, and a
/// newer inbound connection from the same peer replaces it.
#[derive(Debug)]
pub struct Listener {
    shared: Arc<Shared>,
    local: SocketAddr,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
pub(super) struct Shared {
    socket: TcpListener,
    peers: Mutex<HashMap<IpAddr, Registration>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Registration {
    id: u64,
    inbound: mpsc::UnboundedSender<TcpStream>,
    options: Arc<ConnectionOptions>,
}

/// Unregisters a peer when its session task ends.
#[derive(Debug)]
pub(super) struct RegistrationGuard {
    shared: Arc<Shared>,
    peer: IpAddr,
    id: u64,
}

impl Drop for RegistrationGuard {
    fn drop(&mut self) {
        let mut peers = self.shared.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.get(&self.peer).is_some_and(|r| r.id == self.id) {
            peers.remove(&self.peer);
            // An empty key deletes it.
            let _ = socket::set_md5_key(&self.shared.socket, self.peer, &[]);
        }
    }
}

impl Listener {
    /// Listen on `addr` (e.g. `[::]:179`, which also accepts IPv4 peers, or `0.0.0.0:179`)
    /// and start accepting; must be called within a tokio runtime.
    pub fn bind(addr: SocketAddr) -> Result<Listener, IoError> {
        let fail = |what: &str| {
            let what = format!("{what} {addr}");
            move |error| IoError::Socket { what, error }
        };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(fail("creating a listening socket for"))?;
        socket
            .set_reuseaddr(true)
            .map_err(fail("SO_REUSEADDR on"))?;
        if addr.is_ipv6() {
            SockRef::from(&socket)
                .set_only_v6(false)
                .map_err(fail("dual stack on"))?;
        }
        socket.bind(addr).map_err(fail("binding"))?;
        let socket = socket.listen(128).map_err(fail("listening on"))?;
        let local = socket.local_addr().map_err(fail("the address of"))?;
        let shared = Arc::new(Shared {
            socket,
            peers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(Arc::clone(&shared)));
        Ok(Listener {
            shared,
            local,
            accept,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Like [`super::spawn_with`] (the session also dials `peer`), and connections from
    /// `peer`'s address arriving on this listener go to that session. `options.md5_key`
    /// is set on the listening socket for that address; `ttl` and `min_ttl` apply to
    /// accepted connections too (`source` only to dials). One session per peer address.
    pub fn spawn(
        &self,
        session: Session,
        peer: SocketAddr,
        options: ConnectionOptions,
    ) -> Result<PeerHandle, IoError> {
        options.validate(peer.ip())?;
        let ip = peer.ip().to_canonical();
        let (tx, rx) = mpsc::unbounded_channel();
        let options = Arc::new(options);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut peers = self.shared.peers.lock().unwrap_or_else(|e| e.into_inner());
            if peers.get(&ip).is_some_and(|r| !r.inbound.is_closed()) {
                return Err(IoError::DuplicatePeer(ip));
            }
            if let Some(key) = &options.md5_key {
                socket::set_md5_key(&self.shared.socket, ip, key).map_err(|error| {
                    IoError::Socket {
                        what: format!("setting the TCP-MD5 key for {ip} on the listener"),
                        error,
                    }
                })?;
            } else if peers.contains_key(&ip) {
                // A previous registration's key must not linger.
                let _ = socket::set_md5_key(&self.shared.socket, ip, &[]);
            }
            peers.insert(
                ip,
                Registration {
                    id,
                    inbound: tx,
                    options: Arc::clone(&options),
                },
            );
        }
        let guard = RegistrationGuard {
            shared: Arc::clone(&self.shared),
            peer: ip,
            id,
        };
        Ok(super::start(
            session,
            Mode::Dial(peer, options),
            None,
            Some((rx, guard)),
        ))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(shared: Arc<Shared>) {
    loop {
        let (stream, from) = match shared.socket.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("BGP listener: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = from.ip().to_canonical();
        let target = {
            let peers = shared.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers
                .get(&ip)
                .map(|r| (r.inbound.clone(), Arc::clone(&r.options)))
        };
        let Some((inbound, options)) = target else {
            debug!(%from, "BGP listener: connection from an unknown peer closed");
            continue;
        };
        if let Err(e) = options_on_accepted(&stream, ip, &options) {
            warn!(%from, "BGP listener: {e}");
            continue;
        }
        if inbound.send(stream).is_err() {
            debug!(%from, "BGP listener: the peer's session has ended");
        }
    }
}

fn options_on_accepted(
    stream: &TcpStream,
    peer: IpAddr,
    options: &ConnectionOptions,
) -> std::io::Result<()> {
    // An IPv4 peer on a dual-stack listener takes the IPv4 options (Linux applies them
    // to IPv4-mapped connections).
    let sock = SockRef::from(stream);
    if let Some(ttl) = options.ttl {
        if peer.is_ipv4() {
            sock.set_ttl_v4(ttl.into())?;
        } else {
            sock.set_unicast_hops_v6(ttl.into())?;
        }
    }
    if let Some(min) = options.min_ttl {
        socket::set_min_ttl(stream, peer.is_ipv4(), min)?;
    }
    Ok(())
}
