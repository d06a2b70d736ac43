//! Any bytes as BFD control packets: the parser never panics, a parsed packet rebuilds
//! to a packet that parses the same, and a session fed the bytes as datagrams (with time
//! advancing between them) never panics.
//! Run: `cargo +nightly fuzz run bfd -- -max_total_time=300` from the repository root.

#![no_main]

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use ferrolb_bfd::{ControlPacket, Session, SessionConfig, SplitMix64};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ControlPacket::parse(data) {
        assert_eq!(ControlPacket::parse(&p.build()), Ok(p));
    }
    let mut now = Instant::now();
    let Some(discr) = NonZeroU32::new(1) else {
        return;
    };
    let mut s = Session::new(SessionConfig::default(), discr, SplitMix64::new(0), now);
    // Each chunk: one byte of time step (ms), one byte of TTL, 24 bytes of packet.
    for chunk in data.chunks(26) {
        let (head, pkt) = chunk.split_at(chunk.len().min(2));
        now += Duration::from_millis(u64::from(head.first().copied().unwrap_or(0)) * 10);
        let ttl = head.get(1).copied().unwrap_or(255);
        let _ = s.handle_datagram(now, pkt, ttl);
        s.handle_timeout(now);
        while s.poll_transmit(now).is_some() {}
        while s.poll_event().is_some() {}
        let _ = s.poll_timeout();
    }
});
