//! Any bytes as a BGP stream: the decoder never panics, whatever decodes re-encodes to a
//! message that decodes to the same, and an Established session fed the bytes (whole and
//! in two pieces) never panics and only ever sends messages that decode.
//! Run: `cargo +nightly fuzz run bgp -- -max_total_time=300` from the repository root.

#![no_main]

use ferrolb_bgp::message::{self, Capability, Codec, Family, Message, Open};
use ferrolb_bgp::{Action, PeerAs, RouteAttributes, Session, SessionConfig};
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

fn session(codec: Codec, t0: Instant) -> Session {
    let mut config = SessionConfig::new(64512, PeerAs::External, Ipv4Addr::new(10, 0, 0, 1));
    config.ipv6_next_hop = Some("2001:db8::1".parse().unwrap());
    // Fixed jitter: a crash must reproduce from its input alone.
    config.jitter_seed = Some(0);
    let mut s = Session::new(config).expect("config");
    s.set_routes(
        t0,
        [
            (
                "203.0.113.1/32".parse().unwrap(),
                RouteAttributes::default(),
            ),
            (
                "2001:db8:1::/64".parse().unwrap(),
                RouteAttributes::default(),
            ),
        ],
    );
    s.start(t0);
    let local: SocketAddr = ([192, 0, 2, 1], 40000).into();
    let remote: SocketAddr = ([192, 0, 2, 2], 179).into();
    s.connected(t0, local, remote);
    let mut caps = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::Multiprotocol(Family::IPV6_UNICAST),
        Capability::RouteRefresh,
    ];
    if codec.four_octet_as {
        caps.push(Capability::FourOctetAs(64513));
    }
    let open = Message::Open(Open {
        version: 4,
        my_as: 64513,
        hold_time: 9,
        bgp_id: Ipv4Addr::new(10, 0, 0, 2),
        capabilities: caps,
    });
    s.handle_bytes(t0, &open.encode(codec).unwrap());
    s.handle_bytes(t0, &Message::Keepalive.encode(codec).unwrap());
    s
}

fn check_actions(s: &mut Session, codec: Codec) {
    while let Some(a) = s.poll_action() {
        if let Action::Send(bytes) = a {
            let mut at = 0;
            while at < bytes.len() {
                let (_, n) = message::decode(&bytes[at..], codec)
                    .expect("our bytes decode")
                    .expect("whole messages");
                at += n;
            }
        }
    }
    while s.poll_event().is_some() {}
}

fuzz_target!(|data: &[u8]| {
    for four in [false, true] {
        let codec = Codec {
            four_octet_as: four,
        };
        if let Ok(Some((msg, _))) = message::decode(data, codec) {
            let bytes = msg.encode(codec).expect("decoded message re-encodes");
            let again = message::decode_one(&bytes, codec).expect("re-encoded message decodes");
            assert_eq!(again, msg);
        }
        if let Err(e) = message::decode(data, codec) {
            let _ = e.notification();
        }

        let t0 = Instant::now();
        let mut s = session(codec, t0);
        check_actions(&mut s, codec);
        let (a, b) = data.split_at(data.len() / 2);
        s.handle_bytes(t0, a);
        s.handle_bytes(t0 + Duration::from_millis(1), b);
        check_actions(&mut s, codec);
        // Time passes: keepalives, hold expiry, retries.
        let mut now = t0;
        for _ in 0..20 {
            match s.poll_timeout() {
                Some(t) if t < t0 + Duration::from_secs(60) => {
                    now = now.max(t);
                    s.handle_timeout(now);
                }
                _ => break,
            }
            check_actions(&mut s, codec);
        }
    }
});
