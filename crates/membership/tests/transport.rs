//! The transport on loopback (no root needed): encryption, key rotation and plaintext
//! nodes, over real UDP sockets.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ferrolb_membership::{Config, Membership};

fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// Starts one node per (name, secrets), every node seeded with every address.
fn start(nodes: &[(&str, &[&[u8]])]) -> Vec<Membership> {
    let sockets: Vec<UdpSocket> = nodes.iter().map(|_| bind()).collect();
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    nodes
        .iter()
        .zip(sockets)
        .map(|((name, secrets), socket)| {
            let mut c = Config::new(*name, socket.local_addr().unwrap());
            c.seeds = addrs.clone();
            c.secrets = secrets.iter().map(|s| s.to_vec()).collect();
            Membership::start_with_socket(c, socket).unwrap()
        })
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn wait_view(m: &Membership, want: &[&str], limit: Duration) -> bool {
    let want = set(want);
    let mut rx = m.members();
    tokio::time::timeout(limit, rx.wait_for(|v| *v == want))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_keeps_the_cluster_together() {
    let (k1, k2): (&[u8], &[u8]) = (b"old secret", b"new secret");
    // Mid-rollout: a has switched to the new key, b still sends with the old one, c has
    // only the old key (not yet updated: it cannot read a).
    let nodes = start(&[("a", &[k2, k1]), ("b", &[k1, k2]), ("c", &[k1])]);
    assert!(wait_view(&nodes[0], &["a", "b", "c"], Duration::from_secs(3)).await);
    assert!(wait_view(&nodes[1], &["a", "b", "c"], Duration::from_secs(3)).await);
    // c hears a only through b's gossip; a's own packets to c fail authentication.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(nodes[2].stats().dropped_unauthenticated > 0);
    assert_eq!(nodes[1].stats().dropped(), 0, "b reads both keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_and_plaintext_nodes_are_kept_out() {
    let key: &[u8] = b"cluster secret";
    let nodes = start(&[
        ("a", &[key]),
        ("b", &[key]),
        ("wrong", &[b"other secret" as &[u8]]),
        ("plain", &[]),
    ]);
    assert!(wait_view(&nodes[0], &["a", "b"], Duration::from_secs(3)).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(*nodes[0].members().borrow(), set(&["a", "b"]));
    assert_eq!(*nodes[2].members().borrow(), set(&["wrong"]));
    assert_eq!(*nodes[3].members().borrow(), set(&["plain"]));
    let a = nodes[0].stats();
    assert!(a.dropped_unauthenticated > 0, "{a:?}");
    assert!(a.dropped_plaintext > 0, "{a:?}");
    assert!(nodes[3].stats().dropped_no_key > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_and_events() {
    let nodes = start(&[("a", &[]), ("b", &[]), ("c", &[])]);
    for m in &nodes {
        assert!(wait_view(m, &["a", "b", "c"], Duration::from_secs(3)).await);
    }
    let mut events = nodes[0].events();
    let mut nodes = nodes;
    let c = nodes.pop().unwrap();
    let start = Instant::now();
    c.leave().await;
    assert!(wait_view(&nodes[0], &["a", "b"], Duration::from_millis(100)).await);
    assert!(wait_view(&nodes[1], &["a", "b"], Duration::from_millis(100)).await);
    eprintln!("loopback: leave seen in {:?}", start.elapsed());
    let e = tokio::time::timeout(Duration::from_secs(1), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        e,
        ferrolb_membership::Event::Down {
            name: "c".into(),
            reason: ferrolb_membership::DownReason::Left
        }
    );
    let s = nodes[0].stats();
    assert_eq!((s.members_alive, s.members_left), (2, 1), "{s:?}");
}
