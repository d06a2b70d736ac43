//! Wire format: the RFC 5880 §6.8.6 checks one by one, round trips, arbitrary input.

use ferrolb_bfd::config::{BfdProfile, ProfileError};
use ferrolb_bfd::packet::PACKET_LEN;
use ferrolb_bfd::{ControlPacket, Diag, ParseError, State, TtlCheck};
use proptest::prelude::*;

/// A valid Up packet: version 1, Up, mult 3, length 24, discriminators 1 and 2,
/// 300 ms / 300 ms / 0.
fn valid() -> Vec<u8> {
    vec![
        0x20, 0xc0, 3, 24, 0, 0, 0, 1, 0, 0, 0, 2, 0, 4, 0x93, 0xe0, 0, 4, 0x93, 0xe0, 0, 0, 0, 0,
    ]
}

fn with(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = valid();
    f(&mut v);
    v
}

#[test]
fn parses_a_valid_packet() {
    let p = ControlPacket::parse(&valid()).unwrap();
    assert_eq!(
        p,
        ControlPacket {
            diag: Diag::None,
            state: State::Up,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 1,
            your_discriminator: 2,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
        }
    );
    assert_eq!(p.build().to_vec(), valid());
    // Bytes after Length are ignored.
    let mut long = valid();
    long.extend_from_slice(&[0xff; 8]);
    assert_eq!(ControlPacket::parse(&long), Ok(p));
}

#[test]
fn malformed_packets_are_rejected_with_the_right_error() {
    let cases: Vec<(&str, Vec<u8>, ParseError)> = vec![
        ("empty", vec![], ParseError::Truncated { len: 0 }),
        (
            "23 bytes",
            valid()[..23].to_vec(),
            ParseError::Truncated { len: 23 },
        ),
        (
            "version 0",
            with(|v| v[0] = 0x00),
            ParseError::BadVersion(0),
        ),
        (
            "version 2",
            with(|v| v[0] = 0x40),
            ParseError::BadVersion(2),
        ),
        (
            "length 23",
            with(|v| v[3] = 23),
            ParseError::LengthTooSmall {
                length: 23,
                min: 24,
            },
        ),
        (
            "length 0",
            with(|v| v[3] = 0),
            ParseError::LengthTooSmall { length: 0, min: 24 },
        ),
        (
            "auth with length 24",
            with(|v| v[1] |= 0x04),
            ParseError::LengthTooSmall {
                length: 24,
                min: 26,
            },
        ),
        (
            "length beyond payload",
            with(|v| v[3] = 25),
            ParseError::LengthExceedsPayload {
                length: 25,
                payload: 24,
            },
        ),
        (
            "detect mult 0",
            with(|v| v[2] = 0),
            ParseError::ZeroDetectMult,
        ),
        ("multipoint", with(|v| v[1] |= 0x01), ParseError::Multipoint),
        (
            "my discriminator 0",
            with(|v| v[7] = 0),
            ParseError::ZeroMyDiscriminator,
        ),
        (
            "your discriminator 0 in Up",
            with(|v| v[11] = 0),
            ParseError::ZeroYourDiscriminator(State::Up),
        ),
        (
            "your discriminator 0 in Init",
            with(|v| {
                v[11] = 0;
                v[1] = 0x80;
            }),
            ParseError::ZeroYourDiscriminator(State::Init),
        ),
        (
            "poll and final",
            with(|v| v[1] |= 0x30),
            ParseError::PollAndFinal,
        ),
        (
            "auth section longer than packet",
            with(|v| {
                v[1] |= 0x04;
                v[3] = 26;
                v.extend_from_slice(&[1, 5]);
            }),
            ParseError::BadAuthLength {
                auth_len: 5,
                length: 26,
            },
        ),
        (
            "auth length below its own header",
            with(|v| {
                v[1] |= 0x04;
                v[3] = 26;
                v.extend_from_slice(&[1, 1]);
            }),
            ParseError::BadAuthLength {
                auth_len: 1,
                length: 26,
            },
        ),
        (
            "simple password auth",
            with(|v| {
                v[1] |= 0x04;
                v[3] = 28;
                v.extend_from_slice(&[1, 4, 1, b'x']);
            }),
            ParseError::AuthenticationNotSupported { auth_type: 1 },
        ),
        (
            "keyed SHA1 auth",
            with(|v| {
                v[1] |= 0x04;
                v[3] = 24 + 28;
                v.push(4);
                v.push(28);
                v.extend_from_slice(&[0; 26]);
            }),
            ParseError::AuthenticationNotSupported { auth_type: 4 },
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(ControlPacket::parse(&bytes), Err(want), "{name}");
    }
}

#[test]
fn zero_your_discriminator_is_fine_in_down_and_admin_down() {
    for state_bits in [0x00u8, 0x40] {
        let b = with(|v| {
            v[11] = 0;
            v[1] = state_bits;
        });
        assert!(ControlPacket::parse(&b).is_ok());
    }
}

#[test]
fn diag_and_state_codes() {
    for bits in 0..32u8 {
        assert_eq!(Diag::from_bits(bits).to_bits(), bits);
    }
    assert_eq!(Diag::from_bits(1), Diag::ControlDetectionTimeExpired);
    assert_eq!(Diag::from_bits(3), Diag::NeighborSignaledDown);
    assert_eq!(Diag::from_bits(7), Diag::AdministrativelyDown);
    assert_eq!(Diag::from_bits(9), Diag::Reserved(9));
    for bits in 0..4u8 {
        assert_eq!(State::from_bits(bits).to_bits(), bits);
    }
}

#[test]
fn profile_defaults_and_ranges() {
    let p = BfdProfile::default();
    assert_eq!(p.receive_interval_ms, 300);
    assert_eq!(p.transmit_interval_ms, 300);
    assert_eq!(p.detect_multiplier, 3);
    assert_eq!(p.echo_interval_ms, 50);
    assert_eq!(p.minimum_ttl, 254);
    assert!(!p.echo_mode && !p.passive_mode);
    let c = p.session_config(false).unwrap();
    assert_eq!(c.desired_min_tx.as_millis(), 300);
    assert_eq!(c.required_min_rx.as_millis(), 300);
    assert_eq!(c.detect_mult, 3);
    assert_eq!(c.ttl_check, TtlCheck::SingleHop);
    assert_eq!(
        p.session_config(true).unwrap().ttl_check,
        TtlCheck::Minimum(254)
    );

    let bad = |f: fn(&mut BfdProfile)| {
        let mut p = BfdProfile::default();
        f(&mut p);
        p.validate().unwrap_err()
    };
    let range = |e: ProfileError| {
        let ProfileError::OutOfRange { field, .. } = e;
        field
    };
    assert_eq!(range(bad(|p| p.receive_interval_ms = 9)), "receiveInterval");
    assert_eq!(
        range(bad(|p| p.receive_interval_ms = 60_001)),
        "receiveInterval"
    );
    assert_eq!(
        range(bad(|p| p.transmit_interval_ms = 9)),
        "transmitInterval"
    );
    assert_eq!(range(bad(|p| p.detect_multiplier = 1)), "detectMultiplier");
    assert_eq!(
        range(bad(|p| p.detect_multiplier = 256)),
        "detectMultiplier"
    );
    assert_eq!(range(bad(|p| p.echo_interval_ms = 9)), "echoInterval");
    assert_eq!(range(bad(|p| p.minimum_ttl = 0)), "minimumTtl");
    assert_eq!(range(bad(|p| p.minimum_ttl = 255)), "minimumTtl");
    // Echo is not implemented; asking for it still gives an asynchronous session.
    let echo = BfdProfile {
        echo_mode: true,
        ..BfdProfile::default()
    };
    assert!(echo.session_config(false).is_ok());
    let edges = BfdProfile {
        receive_interval_ms: 10,
        transmit_interval_ms: 60_000,
        detect_multiplier: 255,
        echo_interval_ms: 10,
        echo_mode: false,
        passive_mode: true,
        minimum_ttl: 1,
    };
    let c = edges.session_config(true).unwrap();
    assert_eq!(c.detect_mult, 255);
    assert!(c.passive);
    assert_eq!(c.ttl_check, TtlCheck::Minimum(1));
}

fn arb_state() -> impl Strategy<Value = State> {
    (0u8..4).prop_map(State::from_bits)
}

prop_compose! {
    fn arb_valid_packet()(
        diag in 0u8..32,
        state in arb_state(),
        pf in 0u8..3,
        cpi: bool,
        demand: bool,
        detect_mult in 1u8..=255,
        my in 1u32..,
        your: u32,
        tx: u32,
        rx: u32,
        echo: u32,
    ) -> ControlPacket {
        let your = if your == 0 && matches!(state, State::Init | State::Up) { 1 } else { your };
        ControlPacket {
            diag: Diag::from_bits(diag),
            state,
            poll: pf == 1,
            final_: pf == 2,
            control_plane_independent: cpi,
            demand,
            detect_mult,
            my_discriminator: my,
            your_discriminator: your,
            desired_min_tx_us: tx,
            required_min_rx_us: rx,
            required_min_echo_rx_us: echo,
        }
    }
}

proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = ControlPacket::parse(&bytes);
    }

    #[test]
    fn parsing_mutated_valid_packets_never_panics(
        idx in 0usize..PACKET_LEN,
        byte: u8,
        extra in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut v = valid();
        v[idx] = byte;
        v.extend_from_slice(&extra);
        if let Ok(p) = ControlPacket::parse(&v) {
            // Whatever parses re-parses to itself from its canonical form.
            prop_assert_eq!(ControlPacket::parse(&p.build()), Ok(p));
        }
    }

    #[test]
    fn build_then_parse_round_trips(p in arb_valid_packet()) {
        let bytes = p.build();
        prop_assert_eq!(bytes.len(), PACKET_LEN);
        prop_assert_eq!(ControlPacket::parse(&bytes), Ok(p));
    }
}

proptest! {
    /// A session fed arbitrary datagrams and time steps never panics, and its deadline
    /// is never left in the past after `handle_timeout` + `poll_transmit`.
    #[test]
    fn session_survives_arbitrary_input(
        steps in proptest::collection::vec(
            (0u64..2000, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40), any::<bool>()),
            0..40,
        ),
        passive: bool,
        tx_us in 0u64..5_000_000,
        rx_us in 0u64..5_000_000,
        mult in 0u8..5,
    ) {
        use std::num::NonZeroU32;
        use std::time::{Duration, Instant};
        use ferrolb_bfd::{Session, SessionConfig, SplitMix64};
        let t0 = Instant::now();
        let cfg = SessionConfig {
            passive,
            desired_min_tx: Duration::from_micros(tx_us),
            required_min_rx: Duration::from_micros(rx_us),
            detect_mult: mult,
            ..SessionConfig::default()
        };
        let mut s = Session::new(cfg, NonZeroU32::new(7).unwrap(), SplitMix64::new(1), t0);
        let mut now = t0;
        for (dt, ttl, mut bytes, fix) in steps {
            now += Duration::from_millis(dt);
            if fix && bytes.len() >= 24 {
                // Steer towards valid packets so the state machine gets exercised.
                bytes[0] = 0x20 | (bytes[0] & 0x1f);
                bytes[1] &= 0xce;
                bytes[2] |= 1;
                bytes[3] = 24;
                bytes[7] |= 1;
                bytes[8..12].copy_from_slice(&7u32.to_be_bytes());
            }
            let _ = s.handle_datagram(now, &bytes, ttl | if fix { 0xff } else { 0 });
            s.handle_timeout(now);
            while s.poll_transmit(now).is_some() {}
            while s.poll_event().is_some() {}
            if let Some(t) = s.poll_timeout() {
                prop_assert!(t > now, "deadline {:?} not after now", t - t0);
            }
        }
    }
}
