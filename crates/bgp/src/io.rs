//! A tokio task driving one [`Session`] over TCP (feature `io`).
//!
//! [`spawn_with`] (or [`spawn`], with default [`ConnectionOptions`]) dials the peer (port
//! 179 by default, whatever `peer` says) whenever the session asks, feeds it the bytes,
//! connection outcomes and timer ticks, writes what it sends and forwards its events.
//! [`Listener::spawn`] does the same and also takes the connections the peer opens to
//! a [`Listener`] (connection collision detection, RFC 4271 §6.8, decides which one
//! stays: [`Session::offer_inbound`]). [`spawn_accepted`] runs a session on one connection
//! accepted elsewhere (the task ends with that connection).
//!
//! Each dial uses a new socket set up by [`ConnectionOptions`]: TCP-MD5 (RFC 2385) keyed
//! by the peer's address, the source address bound before connecting, the TTL (hop
//! limit) and optionally GTSM (RFC 5082, `IP_MINTTL`). [`PeerHandle::status`] is a cheap
//! snapshot ([`PeerStatus`]) refreshed after every step of the task, for metrics;
//! [`PeerHandle::peer_lost`] tears the session down at once (BFD down).
//!
//! Writes are awaited in the task (timers and reads wait meanwhile); a write that takes
//! longer than the hold time (240 s before negotiation, or with a hold time of 0) counts
//! as a lost connection.

mod listener;
mod socket;

pub use listener::Listener;
pub use socket::{ConnectionOptions, IoError, MD5_MAX_KEY_LEN};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::session::{Action, Event, Inbound, PeerStatus, RouteAttributes, Session, State};

enum Command {
    SetRoutes(Vec<(IpNet, Arc<RouteAttributes>)>),
    PeerLost,
    Shutdown,
    Stop,
}

/// The handle of a running session task. Dropping it stops the session (Cease).
#[derive(Debug)]
pub struct PeerHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    status: watch::Receiver<PeerStatus>,
    task: JoinHandle<()>,
}

impl PeerHandle {
    /// Replace the desired set of routes (attributes given shared or not).
    pub fn set_routes<I, A>(&self, routes: I)
    where
        I: IntoIterator<Item = (IpNet, A)>,
        A: Into<Arc<RouteAttributes>>,
    {
        let routes = routes.into_iter().map(|(p, a)| (p, a.into())).collect();
        let _ = self.commands.send(Command::SetRoutes(routes));
    }

    /// The peer is unreachable (BFD says so): drop the connection now, without waiting
    /// for the hold timer, and retry later ([`Session::peer_lost`]).
    pub fn peer_lost(&self) {
        let _ = self.commands.send(Command::PeerLost);
    }

    /// Graceful shutdown ([`Session::shutdown`]); the task ends once the session is Idle.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// Stop at once ([`Session::stop`]); the task ends.
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// The session's state, counters and prefix counts as of the task's last step (cheap:
    /// a clone of the latest snapshot).
    pub fn status(&self) -> PeerStatus {
        self.status.borrow().clone()
    }

    /// A receiver of the status snapshots, to wait for changes
    /// ([`watch::Receiver::changed`]); it stays readable after the task ends.
    pub fn watch_status(&self) -> watch::Receiver<PeerStatus> {
        self.status.clone()
    }

    /// The next event; `None` once the task has ended and all events were read.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Wait for the task to end.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

enum Mode {
    Dial(SocketAddr, Arc<ConnectionOptions>),
    Accepted,
}

/// Run `session` in a task that dials `peer` with default options (must be called within
/// a tokio runtime).
pub fn spawn(session: Session, peer: SocketAddr) -> PeerHandle {
    start(
        session,
        Mode::Dial(peer, Arc::new(ConnectionOptions::default())),
        None,
        None,
    )
}

/// Run `session` in a task that dials `peer` with `options` (must be called within a
/// tokio runtime). The options are checked first ([`ConnectionOptions::validate`]): a bad
/// MD5 key, a source address that is not local or not of the peer's family is an error
/// here rather than a session that never comes up.
pub fn spawn_with(
    session: Session,
    peer: SocketAddr,
    options: ConnectionOptions,
) -> Result<PeerHandle, IoError> {
    options.validate(peer.ip())?;
    Ok(start(
        session,
        Mode::Dial(peer, Arc::new(options)),
        None,
        None,
    ))
}

/// Run `session` on an accepted connection; the task ends when the connection does.
pub fn spawn_accepted(session: Session, stream: TcpStream) -> PeerHandle {
    start(session, Mode::Accepted, Some(stream), None)
}

/// Connections a [`Listener`] accepted from the peer, and the registration to drop when
/// the task ends.
type InboundFeed = (
    mpsc::UnboundedReceiver<TcpStream>,
    listener::RegistrationGuard,
);

fn start(
    session: Session,
    mode: Mode,
    stream: Option<TcpStream>,
    inbound: Option<InboundFeed>,
) -> PeerHandle {
    let (commands, rx) = mpsc::unbounded_channel();
    let (tx, events) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(session.status());
    let task = tokio::spawn(run(session, mode, stream, inbound, rx, tx, status_tx));
    PeerHandle {
        commands,
        events,
        status,
        task,
    }
}

type Connecting = std::pin::Pin<Box<dyn Future<Output = Result<TcpStream, IoError>> + Send>>;

fn peer_label(mode: &Mode) -> String {
    match mode {
        Mode::Dial(peer, _) => peer.to_string(),
        Mode::Accepted => "accepted".into(),
    }
}

/// Write a session's pending actions to `stream`; false once it asks to close (or a write
/// fails).
async fn flush(session: &mut Session, stream: &mut TcpStream) -> bool {
    while let Some(action) = session.poll_action() {
        match action {
            Action::Send(bytes) => {
                let write = tokio::time::timeout(Duration::from_secs(10), stream.write_all(&bytes));
                if !matches!(write.await, Ok(Ok(()))) {
                    return false;
                }
            }
            Action::Close => {
                let _ = stream.shutdown().await;
                return false;
            }
            Action::Connect => {}
        }
    }
    true
}

async fn run(
    mut session: Session,
    mode: Mode,
    accepted: Option<TcpStream>,
    inbound: Option<InboundFeed>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    status: watch::Sender<PeerStatus>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut connecting: Option<Connecting> = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut ending = false;
    let mut label = peer_label(&mode);
    let (mut inbound_rx, _registration) = match inbound {
        Some((rx, guard)) => (Some(rx), Some(guard)),
        None => (None, None),
    };
    // An inbound connection exchanging OPENs before collision resolution.
    let mut pending: Option<(Session, TcpStream)> = None;
    let mut inbound_buf = vec![0u8; 4096];
    session.start(Instant::now());
    if let Some(stream) = accepted {
        // Take the place of the dial the session asks for.
        while session.poll_action().is_some() {}
        match (stream.local_addr(), stream.peer_addr()) {
            (Ok(local), Ok(remote)) => {
                let _ = stream.set_nodelay(true);
                label = remote.to_string();
                conn = Some(stream);
                session.connected(Instant::now(), local, remote);
            }
            _ => session.connection_failed(Instant::now()),
        }
    }
    loop {
        while let Some(action) = session.poll_action() {
            match action {
                Action::Connect => match &mode {
                    Mode::Dial(peer, options) => {
                        let (peer, options) = (*peer, Arc::clone(options));
                        connecting =
                            Some(Box::pin(async move { socket::dial(peer, &options).await }));
                    }
                    // The passive side cannot redial: its connection is gone.
                    Mode::Accepted => ending = true,
                },
                Action::Send(bytes) => {
                    let limit = session
                        .negotiated()
                        .map(|n| n.hold_time)
                        .filter(|&h| h > 0)
                        .map_or(Duration::from_secs(240), |h| Duration::from_secs(h.into()));
                    if let Some(stream) = conn.as_mut()
                        && !matches!(
                            tokio::time::timeout(limit, stream.write_all(&bytes)).await,
                            Ok(Ok(()))
                        )
                    {
                        debug!(peer = %label, "write failed or timed out");
                        conn = None;
                        session.connection_closed(Instant::now());
                    }
                }
                Action::Close => {
                    if let Some(mut stream) = conn.take() {
                        let _ = stream.shutdown().await;
                    }
                    connecting = None;
                }
            }
        }
        while let Some(event) = session.poll_event() {
            match &event {
                Event::Established(n) => {
                    info!(peer = %label, peer_as = n.peer_as, peer_id = %n.peer_id, "BGP session established");
                }
                Event::Closed(reason) => info!(peer = %label, ?reason, "BGP session closed"),
                Event::StateChanged { from, to } => debug!(peer = %label, ?from, ?to, "BGP state"),
            }
            let _ = events.send(event);
        }
        status.send_if_modified(|s| {
            let new = session.status();
            if *s == new {
                false
            } else {
                *s = new;
                true
            }
        });
        if (ending && session.state() == State::Idle)
            || (ending && matches!(mode, Mode::Accepted) && conn.is_none())
        {
            return;
        }
        let deadline = [
            session.poll_timeout(),
            pending.as_ref().and_then(|(s, _)| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(tokio::time::Instant::from_std);
        tokio::select! {
            stream = async { inbound_rx.as_mut().expect("checked").recv().await }, if inbound_rx.is_some() => {
                let now = Instant::now();
                let Some(mut stream) = stream else {
                    inbound_rx = None;
                    continue;
                };
                let (Ok(local), Ok(remote)) = (stream.local_addr(), stream.peer_addr()) else {
                    continue;
                };
                if ending || session.state() == State::Idle {
                    continue;
                }
                debug!(peer = %label, %remote, "inbound connection");
                let _ = stream.set_nodelay(true);
                let mut s = session.inbound(now, local, remote);
                // A newer inbound connection replaces one still opening.
                pending = flush(&mut s, &mut stream).await.then_some((s, stream));
            }
            read = async { pending.as_mut().expect("checked").1.read(&mut inbound_buf).await }, if pending.is_some() => {
                let now = Instant::now();
                let Some((mut s, mut stream)) = pending.take() else { continue };
                match read {
                    Ok(0) | Err(_) => continue,
                    Ok(n) => s.handle_bytes(now, &inbound_buf[..n]),
                }
                if !flush(&mut s, &mut stream).await {
                    continue;
                }
                if !matches!(s.state(), State::OpenConfirm | State::Established) {
                    pending = Some((s, stream));
                    continue;
                }
                match session.offer_inbound(now, s) {
                    Inbound::Adopted { old_close } => {
                        info!(peer = %label, "inbound connection adopted (collision resolution)");
                        if let Some(mut old) = conn.take() {
                            if let Some(bytes) = old_close {
                                let _ = tokio::time::timeout(Duration::from_secs(5), old.write_all(&bytes)).await;
                            }
                            let _ = old.shutdown().await;
                        }
                        connecting = None;
                        conn = Some(stream);
                    }
                    Inbound::Refused(mut s) => {
                        debug!(peer = %label, "inbound connection refused (collision resolution)");
                        flush(&mut s, &mut stream).await;
                    }
                }
            }
            result = async { connecting.as_mut().expect("checked").await }, if connecting.is_some() => {
                connecting = None;
                let now = Instant::now();
                let result = result.and_then(|s| {
                    let local = s.local_addr().map_err(|error| IoError::Socket { what: "local address".into(), error })?;
                    let remote = s.peer_addr().map_err(|error| IoError::Socket { what: "peer address".into(), error })?;
                    Ok((local, remote, s))
                });
                match result {
                    Ok((local, remote, stream)) => {
                        let _ = stream.set_nodelay(true);
                        conn = Some(stream);
                        session.connected(now, local, remote);
                    }
                    Err(e) => {
                        match e {
                            IoError::SourceNotLocal { .. } => warn!(peer = %label, "{e}"),
                            _ => debug!(peer = %label, "{e}"),
                        }
                        session.connection_failed(now);
                    }
                }
            }
            read = async { conn.as_mut().expect("checked").read(&mut buf).await }, if conn.is_some() => {
                let now = Instant::now();
                match read {
                    Ok(0) | Err(_) => {
                        conn = None;
                        session.connection_closed(now);
                        if matches!(mode, Mode::Accepted) {
                            ending = true;
                        }
                    }
                    Ok(n) => session.handle_bytes(now, &buf[..n]),
                }
            }
            () = async { tokio::time::sleep_until(deadline.expect("checked")).await }, if deadline.is_some() => {
                let now = Instant::now();
                session.handle_timeout(now);
                if let Some((mut s, mut stream)) = pending.take() {
                    s.handle_timeout(now);
                    if flush(&mut s, &mut stream).await {
                        pending = Some((s, stream));
                    }
                }
            }
            command = commands.recv(), if !ending => {
                let now = Instant::now();
                match command {
                    Some(Command::SetRoutes(routes)) => session.set_routes(now, routes),
                    Some(Command::PeerLost) => session.peer_lost(now),
                    Some(Command::Shutdown) => {
                        ending = true;
                        session.shutdown(now);
                    }
                    Some(Command::Stop) | None => {
                        ending = true;
                        session.stop(now);
                    }
                }
            }
            else => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{CloseReason, PeerAs, SessionConfig};
    use std::net::Ipv4Addr;

    async fn until_established(h: &mut PeerHandle) {
        while let Some(e) = h.next_event().await {
            if matches!(e, Event::Established(_)) {
                return;
            }
        }
        panic!("task ended before Established");
    }

    #[tokio::test]
    async fn two_tasks_over_loopback_reach_established_and_cease() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut ca = SessionConfig::new(64512, PeerAs::Fixed(64513), Ipv4Addr::new(10, 0, 0, 1));
        ca.hold_time = 3;
        let cb = SessionConfig::new(64513, PeerAs::External, Ipv4Addr::new(10, 0, 0, 2));
        let mut a = spawn(Session::new(ca).unwrap(), addr);
        let (stream, _) = listener.accept().await.unwrap();
        let mut b = spawn_accepted(Session::new(cb).unwrap(), stream);
        let both = async {
            until_established(&mut a).await;
            until_established(&mut b).await;
        };
        tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .expect("Established within 10 s");
        a.set_routes(vec![(
            "203.0.113.1/32".parse().unwrap(),
            RouteAttributes::default(),
        )]);
        // Hold time 3 s: keepalives every second keep the session up past the hold time.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        a.shutdown();
        let closed = async {
            while let Some(e) = b.next_event().await {
                if let Event::Closed(reason) = e {
                    return reason;
                }
            }
            panic!("no Closed event");
        };
        let reason = tokio::time::timeout(Duration::from_secs(10), closed)
            .await
            .expect("b sees the Cease");
        let CloseReason::Received(n) = reason else {
            panic!("{reason:?}")
        };
        assert_eq!((n.code, n.subcode), (6, 2));
        tokio::time::timeout(Duration::from_secs(5), async {
            a.join().await;
            b.join().await;
        })
        .await
        .expect("both tasks end");
    }

    /// A listener on loopback with `key` for 127.0.0.1 (MD5), or none.
    /// A listener on loopback (`ip`) with `key` for that address (MD5), or none.
    fn md5_listener(ip: std::net::IpAddr, key: Option<&[u8]>) -> tokio::net::TcpListener {
        let socket = if ip.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .unwrap();
        if let Some(key) = key {
            socket::set_md5_key(&socket, ip, key).unwrap();
        }
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
        socket.listen(8).unwrap()
    }

    fn configs() -> (SessionConfig, SessionConfig) {
        let mut ca = SessionConfig::new(64512, PeerAs::Fixed(64513), Ipv4Addr::new(10, 0, 0, 1));
        ca.retry_max = Duration::from_secs(1);
        let cb = SessionConfig::new(64513, PeerAs::External, Ipv4Addr::new(10, 0, 0, 2));
        (ca, cb)
    }

    /// Dial a listener with `dial_key`; the listener side accepts whatever arrives.
    /// Returns whether the dialer reached Established within `within`.
    async fn md5_session(
        ip: &str,
        listen_key: Option<&[u8]>,
        dial_key: Option<&[u8]>,
        within: Duration,
    ) -> bool {
        let listener = md5_listener(ip.parse().unwrap(), listen_key);
        let addr = listener.local_addr().unwrap();
        let (ca, cb) = configs();
        let options = ConnectionOptions {
            md5_key: dial_key.map(<[u8]>::to_vec),
            ttl: Some(1),
            ..ConnectionOptions::default()
        };
        let a = spawn_with(Session::new(ca).unwrap(), addr, options).unwrap();
        let accept = tokio::spawn(async move {
            let mut passive = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                passive.push(spawn_accepted(Session::new(cb.clone()).unwrap(), stream));
            }
        });
        let mut status = a.watch_status();
        let up = tokio::time::timeout(within, status.wait_for(|s| s.up))
            .await
            .is_ok();
        accept.abort();
        a.stop();
        up
    }

    #[tokio::test]
    async fn md5_session_comes_up_with_the_right_key_only() {
        for ip in ["127.0.0.1", "::1"] {
            if ip == "::1" && std::net::TcpListener::bind("[::1]:0").is_err() {
                eprintln!("skipping the IPv6 case: no ::1 here");
                continue;
            }
            assert!(
                md5_session(
                    ip,
                    Some(b"s3cret"),
                    Some(b"s3cret"),
                    Duration::from_secs(10)
                )
                .await,
                "{ip}: same key: up"
            );
            assert!(
                !md5_session(ip, Some(b"s3cret"), Some(b"wrong"), Duration::from_secs(3)).await,
                "{ip}: wrong key: not up"
            );
        }
        assert!(
            !md5_session("127.0.0.1", Some(b"s3cret"), None, Duration::from_secs(3)).await,
            "no key towards a keyed listener: not up"
        );
    }

    #[tokio::test]
    async fn bad_options_are_refused_up_front() {
        let (ca, _) = configs();
        let peer: SocketAddr = "127.0.0.1:179".parse().unwrap();
        let refuse = |options: ConnectionOptions| {
            spawn_with(Session::new(ca.clone()).unwrap(), peer, options).unwrap_err()
        };
        let e = refuse(ConnectionOptions {
            source: Some("192.0.2.77".parse().unwrap()),
            ..ConnectionOptions::default()
        });
        assert!(matches!(e, IoError::SourceNotLocal { .. }), "{e}");
        assert!(e.to_string().contains("192.0.2.77"), "{e}");
        let e = refuse(ConnectionOptions {
            source: Some("::1".parse().unwrap()),
            ..ConnectionOptions::default()
        });
        assert!(matches!(e, IoError::SourceFamily { .. }), "{e}");
        let e = refuse(ConnectionOptions {
            md5_key: Some(vec![b'k'; 81]),
            ..ConnectionOptions::default()
        });
        assert!(matches!(e, IoError::Md5KeyLength(81)), "{e}");
        let e = refuse(ConnectionOptions {
            ttl: Some(0),
            ..ConnectionOptions::default()
        });
        assert!(matches!(e, IoError::Ttl), "{e}");
        // A local source, TTL 255 and GTSM are accepted.
        let h = spawn_with(
            Session::new(ca.clone()).unwrap(),
            peer,
            ConnectionOptions {
                source: Some("127.0.0.1".parse().unwrap()),
                ttl: Some(255),
                min_ttl: Some(254),
                ..ConnectionOptions::default()
            },
        )
        .unwrap();
        h.stop();
        h.join().await;
    }

    #[tokio::test]
    async fn source_address_is_the_connections_local_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ca, _) = configs();
        // 127.0.0.2 is local too (all of 127/8 is), and differs from the default.
        let h = spawn_with(
            Session::new(ca).unwrap(),
            addr,
            ConnectionOptions {
                source: Some("127.0.0.2".parse().unwrap()),
                ttl: Some(255),
                ..ConnectionOptions::default()
            },
        )
        .unwrap();
        let (_stream, from) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from.ip(), "127.0.0.2".parse::<std::net::IpAddr>().unwrap());
        h.stop();
    }

    #[tokio::test]
    async fn peer_lost_tears_down_at_once_and_reconnects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ca, cb) = configs();
        let mut a = spawn(Session::new(ca).unwrap(), addr);
        a.set_routes(vec![(
            "203.0.113.1/32".parse().unwrap(),
            RouteAttributes::default(),
        )]);
        let accept = tokio::spawn(async move {
            let mut passive = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                passive.push(spawn_accepted(Session::new(cb.clone()).unwrap(), stream));
            }
        });
        tokio::time::timeout(Duration::from_secs(10), until_established(&mut a))
            .await
            .expect("Established");
        let mut status = a.watch_status();
        let st = status
            .wait_for(|s| s.up && s.announced == 1)
            .await
            .unwrap()
            .clone();
        assert_eq!((st.pending, st.stats.established_transitions), (0, 1));
        // Hold time 90 s: only peer_lost can close it within the deadline.
        a.peer_lost();
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(e) = a.next_event().await {
                if let Event::Closed(reason) = e {
                    return reason;
                }
            }
            panic!("no Closed event");
        })
        .await
        .expect("closed at once");
        assert_eq!(closed, CloseReason::PeerLost);
        // It comes back by itself.
        let st = tokio::time::timeout(
            Duration::from_secs(20),
            status.wait_for(|s| s.stats.established_transitions == 2 && s.announced == 1),
        )
        .await
        .expect("re-established")
        .unwrap()
        .clone();
        assert_eq!(st.last_close, Some(CloseReason::PeerLost));
        accept.abort();
        a.stop();
    }

    fn opts(source: &str, key: Option<&[u8]>) -> ConnectionOptions {
        ConnectionOptions {
            md5_key: key.map(<[u8]>::to_vec),
            source: Some(source.parse().unwrap()),
            ..ConnectionOptions::default()
        }
    }

    #[tokio::test]
    async fn listener_adopts_an_inbound_connection_when_dialing_fails() {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        // Nothing listens on the peer's address: our dials fail, the peer's arrive.
        let closed = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let dead = closed.local_addr().unwrap();
        drop(closed);
        let (ca, cb) = configs();
        let a = listener
            .spawn(
                Session::new(ca).unwrap(),
                dead,
                opts("127.0.0.1", Some(b"k1")),
            )
            .unwrap();
        a.set_routes(vec![(
            "203.0.113.9/32".parse().unwrap(),
            RouteAttributes::default(),
        )]);
        let mut cb = cb;
        cb.peer_as = PeerAs::Fixed(64512);
        let b = spawn_with(
            Session::new(cb).unwrap(),
            listener.local_addr(),
            opts("127.0.0.2", Some(b"k1")),
        )
        .unwrap();
        let mut sa = a.watch_status();
        let mut sb = b.watch_status();
        tokio::time::timeout(Duration::from_secs(20), async {
            sa.wait_for(|s| s.up && s.announced == 1).await.unwrap();
            sb.wait_for(|s| s.up && s.stats.updates_received >= 1)
                .await
                .unwrap();
        })
        .await
        .expect("both up through the listener, the route received");
        // A second registration for the same peer is refused.
        let (ca, _) = configs();
        let e = listener
            .spawn(
                Session::new(ca).unwrap(),
                dead,
                ConnectionOptions::default(),
            )
            .unwrap_err();
        assert!(matches!(e, IoError::DuplicatePeer(_)), "{e}");
        a.stop();
        b.stop();
    }

    #[tokio::test]
    async fn listener_refuses_unknown_peers_and_wrong_keys() {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (ca, cb) = configs();
        let closed = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let dead = closed.local_addr().unwrap();
        drop(closed);
        let a = listener
            .spawn(
                Session::new(ca).unwrap(),
                dead,
                opts("127.0.0.1", Some(b"good")),
            )
            .unwrap();
        // From an address that is no peer: accepted by TCP, then closed at once.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(listener.local_addr()).await.unwrap();
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("closed by the listener")
            .unwrap_or(0);
        assert_eq!(n, 0);
        // From the peer's address with the wrong key: never up.
        let mut cb = cb;
        cb.peer_as = PeerAs::Fixed(64512);
        let b = spawn_with(
            Session::new(cb).unwrap(),
            listener.local_addr(),
            opts("127.0.0.2", Some(b"bad")),
        )
        .unwrap();
        let mut sa = a.watch_status();
        let up = tokio::time::timeout(Duration::from_secs(3), sa.wait_for(|s| s.up)).await;
        assert!(up.is_err(), "a wrong key must not bring the session up");
        a.stop();
        b.stop();
    }

    #[tokio::test]
    async fn dialing_each_other_resolves_the_collision() {
        for (id_a, id_b) in [(1, 2), (2, 1)] {
            let la = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let lb = Listener::bind("127.0.0.2:0".parse().unwrap()).unwrap();
            let mut ca =
                SessionConfig::new(64512, PeerAs::Fixed(64513), Ipv4Addr::new(10, 0, 0, id_a));
            let mut cb =
                SessionConfig::new(64513, PeerAs::Fixed(64512), Ipv4Addr::new(10, 0, 0, id_b));
            for c in [&mut ca, &mut cb] {
                c.hold_time = 3;
                c.retry_min = Duration::from_millis(100);
                c.retry_max = Duration::from_millis(200);
            }
            let a = la
                .spawn(
                    Session::new(ca).unwrap(),
                    lb.local_addr(),
                    opts("127.0.0.1", Some(b"k")),
                )
                .unwrap();
            let b = lb
                .spawn(
                    Session::new(cb).unwrap(),
                    la.local_addr(),
                    opts("127.0.0.2", Some(b"k")),
                )
                .unwrap();
            a.set_routes(vec![(
                "203.0.113.1/32".parse().unwrap(),
                RouteAttributes::default(),
            )]);
            b.set_routes(vec![(
                "203.0.113.2/32".parse().unwrap(),
                RouteAttributes::default(),
            )]);
            let mut sa = a.watch_status();
            let mut sb = b.watch_status();
            tokio::time::timeout(Duration::from_secs(20), async {
                sa.wait_for(|s| s.up && s.announced == 1).await.unwrap();
                sb.wait_for(|s| s.up && s.announced == 1).await.unwrap();
            })
            .await
            .expect("one session survives the collision");
            // Past the hold time (3 s) both stay up on the one connection left.
            tokio::time::sleep(Duration::from_secs(4)).await;
            let (x, y) = (a.status(), b.status());
            assert!(x.up && y.up, "{x:?}\n{y:?}");
            assert!(y.stats.updates_received >= 1 && x.stats.updates_received >= 1);
            a.stop();
            b.stop();
            a.join().await;
            b.join().await;
        }
    }

    /// A plain loopback listener whose packets leave with `ttl`, and whether a dial with
    /// GTSM (minimum TTL 255) reaches Established through it within `within`.
    async fn gtsm_session(ttl: Option<u32>, within: Duration) -> bool {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(ttl) = ttl {
            socket2::SockRef::from(&socket).set_ttl_v4(ttl).unwrap();
        }
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(8).unwrap();
        let addr = listener.local_addr().unwrap();
        let (ca, cb) = configs();
        let a = spawn_with(
            Session::new(ca).unwrap(),
            addr,
            ConnectionOptions {
                ttl: Some(255),
                min_ttl: Some(255),
                ..ConnectionOptions::default()
            },
        )
        .unwrap();
        let accept = tokio::spawn(async move {
            let mut passive = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                passive.push(spawn_accepted(Session::new(cb.clone()).unwrap(), stream));
            }
        });
        let mut status = a.watch_status();
        let up = tokio::time::timeout(within, status.wait_for(|s| s.up))
            .await
            .is_ok();
        accept.abort();
        a.stop();
        up
    }

    #[tokio::test]
    async fn gtsm_drops_a_peer_whose_packets_arrive_with_a_lower_ttl() {
        assert!(
            gtsm_session(Some(255), Duration::from_secs(10)).await,
            "peer sending with TTL 255: up"
        );
        assert!(
            !gtsm_session(None, Duration::from_secs(3)).await,
            "peer sending with the default TTL (64): its packets are dropped"
        );
    }
}
