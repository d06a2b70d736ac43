//! The tokio driver over loopback: two drivers on different ports talk to each other.
#![cfg(feature = "io")]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use ferrolb_bfd::io::{Bfd, IoConfig, PeerEvent};
use ferrolb_bfd::{ControlPacket, Diag, Event, SessionConfig, State, TtlCheck};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

fn free_port(ip: IpAddr) -> Option<u16> {
    Some(
        UdpSocket::bind(SocketAddr::new(ip, 0))
            .ok()?
            .local_addr()
            .ok()?
            .port(),
    )
}

fn fast() -> SessionConfig {
    SessionConfig {
        desired_min_tx: Duration::from_millis(50),
        required_min_rx: Duration::from_millis(50),
        detect_mult: 3,
        passive: false,
        ttl_check: TtlCheck::SingleHop,
    }
}

async fn next(events: &mut UnboundedReceiver<PeerEvent>) -> PeerEvent {
    timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("event in time")
        .expect("channel open")
}

async fn pair(
    ip: IpAddr,
) -> Option<(
    Bfd,
    UnboundedReceiver<PeerEvent>,
    Bfd,
    UnboundedReceiver<PeerEvent>,
)> {
    let (pa, pb) = (free_port(ip)?, free_port(ip)?);
    let conf = |listen: u16, peer: u16| IoConfig {
        listen_v4: ip.is_ipv4().then(|| SocketAddr::new(ip, listen)),
        listen_v6: ip.is_ipv6().then(|| SocketAddr::new(ip, listen)),
        peer_port: peer,
    };
    let (a, ea) = Bfd::start(conf(pa, pb)).await.ok()?;
    let (b, eb) = Bfd::start(conf(pb, pa)).await.ok()?;
    Some((a, ea, b, eb))
}

async fn up_then_down(ip: IpAddr) {
    let Some((a, mut ea, b, mut eb)) = pair(ip).await else {
        eprintln!("skipping: cannot bind {ip}");
        return;
    };
    a.add_session(ip, fast()).await.unwrap();
    assert!(
        a.add_session(ip, fast()).await.is_err(),
        "one session per peer"
    );
    b.add_session(ip, fast()).await.unwrap();
    assert_eq!(next(&mut ea).await.event, Event::Up);
    let ev = next(&mut eb).await;
    assert_eq!((ev.peer, ev.event), (ip, Event::Up));
    let list = b.sessions().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].peer, list[0].state), (ip, State::Up));
    assert!(list[0].stats.control_packets_in >= 1 && list[0].stats.up_events == 1);

    // Admin down on A: B hears AdminDown.
    a.set_admin_down(ip, true);
    assert_eq!(
        next(&mut eb).await.event,
        Event::Down {
            diag: Diag::NeighborSignaledDown
        }
    );
    assert_eq!(
        next(&mut ea).await.event,
        Event::Down {
            diag: Diag::AdministrativelyDown
        }
    );
    a.set_admin_down(ip, false);
    assert_eq!(next(&mut ea).await.event, Event::Up);
    assert_eq!(next(&mut eb).await.event, Event::Up);

    // A vanishes without a word: B detects it (50 ms x 3 once the slow-start Poll is
    // done; allow for scheduling noise).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = tokio::time::Instant::now();
    a.shutdown().await;
    assert_eq!(
        next(&mut eb).await.event,
        Event::Down {
            diag: Diag::ControlDetectionTimeExpired
        }
    );
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    b.remove_session(ip);
    b.shutdown().await;
}

#[tokio::test]
async fn ipv4_loopback_sessions() {
    up_then_down(IpAddr::from([127, 0, 0, 1])).await;
}

#[tokio::test]
async fn ipv6_loopback_sessions() {
    up_then_down("::1".parse().unwrap()).await;
}

#[tokio::test]
async fn packets_without_ttl_255_are_ignored() {
    let ip = IpAddr::from([127, 0, 0, 1]);
    let Some(port) = free_port(ip) else { return };
    // The "peer" is a plain socket: it learns B's discriminator from B's packets.
    let peer = tokio::net::UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .unwrap();
    let (b, mut eb) = Bfd::start(IoConfig {
        listen_v4: Some(SocketAddr::new(ip, port)),
        listen_v6: None,
        peer_port: peer.local_addr().unwrap().port(),
    })
    .await
    .unwrap();
    b.add_session(ip, fast()).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = timeout(Duration::from_secs(3), peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(from.port() >= 49152, "RFC 5881 source port range");
    let first = ControlPacket::parse(&buf[..n]).unwrap();
    assert_eq!(first.state, State::Down);
    let init = ControlPacket {
        diag: Diag::None,
        state: State::Init,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 9,
        your_discriminator: first.my_discriminator,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 50_000,
        required_min_echo_rx_us: 0,
    }
    .build();
    // Sent from two hops away (TTL 64): ignored.
    peer.set_ttl(64).unwrap();
    for _ in 0..3 {
        peer.send_to(&init, (ip, port)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        timeout(Duration::from_millis(300), eb.recv())
            .await
            .is_err()
    );
    // The same from a neighbour (TTL 255): Up.
    peer.set_ttl(255).unwrap();
    peer.send_to(&init, (ip, port)).await.unwrap();
    assert_eq!(next(&mut eb).await.event, Event::Up);
    b.shutdown().await;
}
