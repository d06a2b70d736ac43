//! A tokio task driving one [`Session`] over TCP (feature `io`).
//!
//! [`spawn`] dials the peer (port 179 by default, whatever `peer` says) whenever the
//! session asks, feeds it the bytes, connection outcomes and timer ticks, writes what it
//! sends and forwards its events. [`spawn_accepted`] runs a session on a connection
//! accepted elsewhere (the passive side; the task ends with that connection).
//!
//! Not yet: TCP-MD5 (RFC 2385), a source address, TTL security (GTSM), a listener with
//! connection collision detection. Writes are awaited in the task (timers and reads wait
//! meanwhile); a write that takes longer than the hold time (240 s before negotiation, or
//! with a hold time of 0) counts as a lost connection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::session::{Action, Event, RouteAttributes, Session, State};

enum Command {
    SetRoutes(Vec<(IpNet, RouteAttributes)>),
    Shutdown,
    Stop,
}

/// The handle of a running session task. Dropping it stops the session (Cease).
#[derive(Debug)]
pub struct PeerHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    task: JoinHandle<()>,
}

impl PeerHandle {
    /// Replace the desired set of routes.
    pub fn set_routes(&self, routes: Vec<(IpNet, RouteAttributes)>) {
        let _ = self.commands.send(Command::SetRoutes(routes));
    }

    /// Graceful shutdown ([`Session::shutdown`]); the task ends once the session is Idle.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// Stop at once ([`Session::stop`]); the task ends.
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// The next event; `None` once the task has ended and all events were read.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Wait for the task to end.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

enum Mode {
    Dial(SocketAddr),
    Accepted,
}

/// Run `session` in a task that dials `peer` (must be called within a tokio runtime).
pub fn spawn(session: Session, peer: SocketAddr) -> PeerHandle {
    start(session, Mode::Dial(peer), None)
}

/// Run `session` on an accepted connection; the task ends when the connection does.
pub fn spawn_accepted(session: Session, stream: TcpStream) -> PeerHandle {
    start(session, Mode::Accepted, Some(stream))
}

fn start(session: Session, mode: Mode, stream: Option<TcpStream>) -> PeerHandle {
    let (commands, rx) = mpsc::unbounded_channel();
    let (tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(session, mode, stream, rx, tx));
    PeerHandle {
        commands,
        events,
        task,
    }
}

type Connecting = std::pin::Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;

async fn run(
    mut session: Session,
    mode: Mode,
    accepted: Option<TcpStream>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut connecting: Option<Connecting> = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut ending = false;
    session.start(Instant::now());
    if let Some(stream) = accepted {
        // Take the place of the dial the session asks for.
        while session.poll_action().is_some() {}
        match (stream.local_addr(), stream.peer_addr()) {
            (Ok(local), Ok(remote)) => {
                let _ = stream.set_nodelay(true);
                conn = Some(stream);
                session.connected(Instant::now(), local, remote);
            }
            _ => session.connection_failed(Instant::now()),
        }
    }
    loop {
        while let Some(action) = session.poll_action() {
            match action {
                Action::Connect => match mode {
                    Mode::Dial(peer) => connecting = Some(Box::pin(TcpStream::connect(peer))),
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
            let _ = events.send(event);
        }
        if (ending && session.state() == State::Idle)
            || (ending && matches!(mode, Mode::Accepted) && conn.is_none())
        {
            return;
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            result = async { connecting.as_mut().expect("checked").await }, if connecting.is_some() => {
                connecting = None;
                let now = Instant::now();
                match result.and_then(|s| Ok((s.local_addr()?, s.peer_addr()?, s))) {
                    Ok((local, remote, stream)) => {
                        let _ = stream.set_nodelay(true);
                        conn = Some(stream);
                        session.connected(now, local, remote);
                    }
                    Err(_) => session.connection_failed(now),
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
                session.handle_timeout(Instant::now());
            }
            command = commands.recv(), if !ending => {
                let now = Instant::now();
                match command {
                    Some(Command::SetRoutes(routes)) => session.set_routes(now, routes),
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
}
