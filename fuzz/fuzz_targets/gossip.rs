//! Any bytes as a gossip datagram: unwrap (plaintext and sealed), decode, and feed to a
//! core, without panicking; whatever decodes re-encodes to the same packet.
//! Run: `cargo +nightly fuzz run gossip -- -max_total_time=300` from the repository root.

#![no_main]

use ferrolb_membership::wire::Packet;
use ferrolb_membership::{Core, CoreConfig, Keyring, crypto};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let keyring = Keyring::from_secrets(&[b"fuzz"]).ok().flatten();
    let _ = crypto::unwrap(keyring.as_ref(), data);
    let _ = crypto::unwrap(None, data);

    if let Ok(packet) = Packet::decode(data) {
        let again = Packet::decode(&packet.encode()).expect("re-encoded packet decodes");
        assert_eq!(again, packet);
    }

    let t0 = Instant::now();
    let me: SocketAddr = ([198, 51, 100, 1], 7946).into();
    let from: SocketAddr = ([198, 51, 100, 2], 7946).into();
    let mut core = Core::new(CoreConfig::new("fuzz-node", me), t0).expect("core");
    core.set_seeds(&[from], t0);
    // The same bytes twice (a replay) and then time passing.
    for step in 0..2u32 {
        let now = t0 + Duration::from_millis(u64::from(step) * 30);
        let _ = core.handle_packet(now, from, data);
        while core.poll_transmit().is_some() {}
    }
    let mut now = t0;
    for _ in 0..50 {
        match core.poll_timeout() {
            Some(t) if t < t0 + Duration::from_secs(5) => {
                now = now.max(t);
                core.handle_timeout(now);
            }
            _ => break,
        }
        while core.poll_transmit().is_some() {}
        while core.poll_event().is_some() {}
    }
});
