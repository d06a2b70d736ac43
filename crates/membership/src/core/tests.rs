//! Unit tests of single-core behaviour; multi-node behaviour is in tests/sim.rs.

use super::*;
use crate::wire::Update;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, i], 7946))
}

fn core(name: &str, i: u8, now: Instant) -> Core {
    let mut c = CoreConfig::new(name, addr(i));
    c.incarnation = 10;
    c.seed = u64::from(i);
    Core::new(c, now).unwrap()
}

fn drain(c: &mut Core) -> Vec<(SocketAddr, Packet)> {
    std::iter::from_fn(|| c.poll_transmit())
        .map(|t| (t.to, Packet::decode(&t.packet).unwrap()))
        .collect()
}

fn alive(name: &str, i: u8, inc: u64) -> Update {
    Update {
        name: name.into(),
        addr: addr(i),
        incarnation: inc,
        status: Status::Alive,
        accuser: None,
    }
}

fn gossip(from: &str, updates: Vec<Update>) -> Vec<u8> {
    Packet {
        from: from.into(),
        message: Message::Gossip,
        updates,
    }
    .encode()
}

#[test]
fn a_join_is_answered_with_the_full_view() {
    let t0 = Instant::now();
    let mut a = core("a", 1, t0);
    a.handle_packet(t0, addr(3), &gossip("c", vec![alive("c", 3, 5)]))
        .unwrap();
    drain(&mut a);
    let join = Packet {
        from: "b".into(),
        message: Message::Join { reply: true },
        updates: vec![alive("b", 2, 7)],
    };
    a.handle_packet(t0, addr(2), &join.encode()).unwrap();
    let out = drain(&mut a);
    let reply = out
        .iter()
        .find(|(to, p)| *to == addr(2) && matches!(p.message, Message::Join { reply: false }))
        .expect("a sync reply");
    let names: Vec<&str> = reply.1.updates.iter().map(|u| u.name.as_str()).collect();
    assert!(names.contains(&"a") && names.contains(&"b") && names.contains(&"c"));
    assert_eq!(
        a.live_members().into_iter().collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    let events: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert_eq!(events.len(), 2, "{events:?}");
}

#[test]
fn suspicion_of_self_is_refuted_straight_back() {
    let t0 = Instant::now();
    let mut a = core("a", 1, t0);
    let mut s = alive("a", 1, 10);
    s.status = Status::Suspect;
    s.accuser = Some("b".into());
    a.handle_packet(t0, addr(2), &gossip("b", vec![s])).unwrap();
    assert_eq!(a.incarnation(), 11);
    let out = drain(&mut a);
    assert!(out.iter().any(|(to, p)| {
        *to == addr(2)
            && p.updates
                .iter()
                .any(|u| u.name == "a" && u.incarnation == 11 && u.status == Status::Alive)
    }));
    assert_eq!(a.stats().refutations, 1);
}

#[test]
fn stale_news_does_not_override_newer() {
    let t0 = Instant::now();
    let mut a = core("a", 1, t0);
    a.handle_packet(t0, addr(2), &gossip("b", vec![alive("b", 2, 5)]))
        .unwrap();
    let mut dead = alive("b", 2, 4);
    dead.status = Status::Dead;
    a.handle_packet(t0, addr(3), &gossip("c", vec![dead]))
        .unwrap();
    assert!(a.live_members().contains("b"), "older incarnation ignored");
    let mut left = alive("b", 2, 5);
    left.status = Status::Left;
    a.handle_packet(t0, addr(2), &gossip("b", vec![left]))
        .unwrap();
    assert!(!a.live_members().contains("b"));
    a.handle_packet(t0, addr(2), &gossip("b", vec![alive("b", 2, 5)]))
        .unwrap();
    assert!(
        !a.live_members().contains("b"),
        "same incarnation: left wins"
    );
    a.handle_packet(t0, addr(2), &gossip("b", vec![alive("b", 2, 6)]))
        .unwrap();
    assert!(
        a.live_members().contains("b"),
        "a restart is accepted at once"
    );
}

#[test]
fn misdirected_pings_are_not_answered() {
    let t0 = Instant::now();
    let mut a = core("a", 1, t0);
    let ping = Packet {
        from: "b".into(),
        message: Message::Ping {
            seq: 1,
            target: "old-name".into(),
        },
        updates: vec![],
    };
    a.handle_packet(t0, addr(2), &ping.encode()).unwrap();
    assert!(drain(&mut a).is_empty());
    assert_eq!(a.stats().misdirected, 1);
}

#[test]
fn a_left_node_is_quiet() {
    let t0 = Instant::now();
    let mut a = core("a", 1, t0);
    a.handle_packet(t0, addr(2), &gossip("b", vec![alive("b", 2, 5)]))
        .unwrap();
    drain(&mut a);
    a.leave(t0);
    let out = drain(&mut a);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.updates[0].status, Status::Left);
    assert!(a.poll_timeout().is_none());
    assert!(a.live_members().is_empty());
    let ping = Packet {
        from: "b".into(),
        message: Message::Ping {
            seq: 1,
            target: "a".into(),
        },
        updates: vec![],
    };
    a.handle_packet(t0, addr(2), &ping.encode()).unwrap();
    assert!(drain(&mut a).is_empty());
}

#[test]
fn big_views_are_split_across_packets() {
    let t0 = Instant::now();
    let mut a = core("a", 1, t0);
    let many: Vec<Update> = (0..200)
        .map(|i| alive(&format!("node-with-a-long-name-{i:04}"), 2, 1))
        .collect();
    for chunk in many.chunks(20) {
        a.handle_packet(t0, addr(2), &gossip("b", chunk.to_vec()))
            .unwrap();
    }
    drain(&mut a);
    a.send_sync(addr(9), None, true);
    let out = drain(&mut a);
    assert!(out.len() > 1);
    let total: usize = out.iter().map(|(_, p)| p.updates.len()).sum();
    assert_eq!(total, 201, "every member plus this node");
    let replies = out
        .iter()
        .filter(|(_, p)| p.message == Message::Join { reply: true })
        .count();
    assert_eq!(replies, 1, "only the first asks for a reply");
    for t in out {
        assert!(t.1.encoded_len() <= DEFAULT_MAX_PACKET);
    }
}
