use super::*;
use proptest::prelude::*;

const FOUR: Codec = Codec {
    four_octet_as: true,
};
const TWO: Codec = Codec {
    four_octet_as: false,
};

/// A message with a header around `body`, the length computed.
fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
    out.push(ty);
    out.extend_from_slice(body);
    out
}

fn open_body(version: u8, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&65001u16.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(params.len() as u8);
    b.extend_from_slice(params);
    b
}

/// An UPDATE body from withdrawn bytes, attribute bytes and NLRI bytes.
fn update_body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    b
}

const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
const AS_PATH_EMPTY: [u8; 3] = [0x40, 2, 0];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 192, 0, 2, 1];

fn attrs(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn keepalive_and_framing() {
    let k = Message::Keepalive.encode(TWO).unwrap();
    assert_eq!(k.len(), 19);
    assert_eq!(decode(&k, TWO), Ok(Some((Message::Keepalive, 19))));
    // Partial input: need more.
    assert_eq!(decode(&k[..10], TWO), Ok(None));
    assert_eq!(decode(&k[..18], TWO), Ok(None));
    // Two messages back to back: the first one is returned with its length.
    let mut two = k.clone();
    two.extend_from_slice(&k);
    assert_eq!(decode(&two, TWO), Ok(Some((Message::Keepalive, 19))));
    // A partial UPDATE whose header is complete.
    let u = frame(2, &update_body(&[], &[], &[]));
    assert_eq!(decode(&u[..20], TWO), Ok(None));
}

#[test]
fn open_round_trip_and_accessors() {
    let open = Open {
        version: 4,
        my_as: AS_TRANS,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_000),
            Capability::GracefulRestart(GracefulRestart {
                restarted: true,
                restart_time: 120,
                families: vec![(Family::IPV4_UNICAST, true), (Family::IPV6_UNICAST, false)],
            }),
            Capability::Other {
                code: 70,
                value: vec![],
            },
        ],
    };
    let bytes = Message::Open(open.clone()).encode(TWO).unwrap();
    assert_eq!(decode_one(&bytes, TWO), Ok(Message::Open(open.clone())));
    assert_eq!(open.asn(), 4_200_000_000);
    assert!(open.four_octet_as());
    assert!(open.route_refresh());
    assert_eq!(
        open.families().collect::<Vec<_>>(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert_eq!(open.graceful_restart().unwrap().restart_time, 120);

    // Several capabilities in one parameter decode the same.
    let caps = [1u8, 4, 0, 1, 0, 1, 2, 0, 65, 4, 0, 0, 0xfd, 0xe9];
    let mut params = vec![2, caps.len() as u8];
    params.extend_from_slice(&caps);
    let m = decode_one(&frame(1, &open_body(4, 90, [1, 2, 3, 4], &params)), TWO).unwrap();
    let Message::Open(o) = m else { panic!() };
    assert_eq!(
        o.capabilities,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001)
        ]
    );
}

#[test]
fn as_path_width_follows_codec() {
    let update = Update {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(vec![AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![4_200_000_001],
            }]),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
        ],
        nlri: vec!["198.51.100.0/24".parse().unwrap()],
    };
    let four = Message::Update(update.clone()).encode(FOUR).unwrap();
    let two = Message::Update(update.clone()).encode(TWO).unwrap();
    assert_eq!(four.len(), two.len() + 2);
    assert_eq!(decode_one(&four, FOUR), Ok(Message::Update(update.clone())));
    // Two octets: the ASN becomes AS_TRANS.
    let Message::Update(u) = decode_one(&two, TWO).unwrap() else {
        panic!()
    };
    assert_eq!(
        u.attributes[1],
        PathAttribute::AsPath(vec![AsSegment {
            kind: SegmentType::Sequence,
            asns: vec![u32::from(AS_TRANS)],
        }])
    );
}

#[test]
fn end_of_rib_markers() {
    assert_eq!(Update::default().end_of_rib(), Some(Family::IPV4_UNICAST));
    let v6 = Update {
        attributes: vec![PathAttribute::MpUnreach(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![],
        })],
        ..Update::default()
    };
    assert_eq!(v6.end_of_rib(), Some(Family::IPV6_UNICAST));
    let bytes = Message::Update(v6.clone()).encode(FOUR).unwrap();
    assert_eq!(decode_one(&bytes, FOUR), Ok(Message::Update(v6)));
}

#[test]
fn host_bits_are_cleared_on_decode() {
    // 10.1.2.3/16 on the wire as 16 bits 10.1 — the encoder never sends host bits and the
    // decoder ignores trailing ones: /12 with 0x0a 0x1f decodes as 10.16.0.0/12.
    let body = update_body(&[12, 10, 0x1f], &[], &[]);
    let Message::Update(u) = decode_one(&frame(2, &body), TWO).unwrap() else {
        panic!()
    };
    assert_eq!(u.withdrawn, vec!["10.16.0.0/12".parse().unwrap()]);
}

#[test]
fn malformed_messages_map_to_notifications() {
    let good_open = open_body(4, 90, [1, 2, 3, 4], &[]);
    let mut bad_marker = frame(4, &[]);
    bad_marker[3] = 0;
    let mut long = frame(4, &[]);
    long[16..18].copy_from_slice(&4097u16.to_be_bytes());
    let mut short = frame(4, &[]);
    short[16..18].copy_from_slice(&18u16.to_be_bytes());
    let mut open_mismatch = good_open.clone();
    open_mismatch[9] = 3; // claims 3 bytes of parameters, has none
    // (name, bytes, code, subcode, expected data)
    type Case = (&'static str, Vec<u8>, u8, u8, Option<Vec<u8>>);
    let cases: Vec<Case> = vec![
        ("marker", bad_marker, 1, 1, None),
        ("length > 4096", long, 1, 2, Some(vec![0x10, 0x01])),
        ("length < 19", short, 1, 2, Some(vec![0, 18])),
        (
            "keepalive with body",
            frame(4, &[0]),
            1,
            2,
            Some(vec![0, 20]),
        ),
        ("short OPEN", frame(1, &good_open[..8]), 1, 2, None),
        ("short NOTIFICATION", frame(3, &[6]), 1, 2, None),
        ("short UPDATE", frame(2, &[0, 0, 0]), 1, 2, None),
        ("type 9", frame(9, &[]), 1, 3, Some(vec![9])),
        (
            "version 3",
            frame(1, &open_body(3, 90, [1, 2, 3, 4], &[])),
            2,
            1,
            Some(vec![0, 4]),
        ),
        (
            "hold 1",
            frame(1, &open_body(4, 1, [1, 2, 3, 4], &[])),
            2,
            6,
            None,
        ),
        (
            "hold 2",
            frame(1, &open_body(4, 2, [1, 2, 3, 4], &[])),
            2,
            6,
            None,
        ),
        (
            "BGP id 0",
            frame(1, &open_body(4, 90, [0, 0, 0, 0], &[])),
            2,
            3,
            None,
        ),
        (
            "auth parameter",
            frame(1, &open_body(4, 90, [1, 2, 3, 4], &[1, 1, 0])),
            2,
            4,
            None,
        ),
        ("parameters length", frame(1, &open_mismatch), 2, 0, None),
        (
            "capability overrun",
            frame(1, &open_body(4, 90, [1, 2, 3, 4], &[2, 2, 65, 4])),
            2,
            0,
            None,
        ),
        (
            "4-octet AS capability length",
            frame(1, &open_body(4, 90, [1, 2, 3, 4], &[2, 4, 65, 2, 0, 1])),
            2,
            0,
            None,
        ),
        ("withdrawn overrun", frame(2, &[0, 10, 0, 0]), 3, 1, None),
        ("attributes overrun", frame(2, &[0, 0, 0, 10]), 3, 1, None),
        (
            "attribute header truncated",
            frame(2, &update_body(&[], &[0x40], &[])),
            3,
            1,
            None,
        ),
        (
            "duplicate ORIGIN",
            frame(
                2,
                &update_body(&[], &attrs(&[&ORIGIN_IGP, &ORIGIN_IGP]), &[]),
            ),
            3,
            1,
            None,
        ),
        (
            "unknown well-known",
            frame(2, &update_body(&[], &[0x40, 99, 1, 7], &[])),
            3,
            2,
            Some(vec![0x40, 99, 1, 7]),
        ),
        (
            "NLRI without NEXT_HOP",
            frame(
                2,
                &update_body(&[], &attrs(&[&ORIGIN_IGP, &AS_PATH_EMPTY]), &[8, 10]),
            ),
            3,
            3,
            Some(vec![3]),
        ),
        (
            "NLRI without ORIGIN",
            frame(
                2,
                &update_body(&[], &attrs(&[&AS_PATH_EMPTY, &NEXT_HOP]), &[8, 10]),
            ),
            3,
            3,
            Some(vec![1]),
        ),
        (
            "ORIGIN optional",
            frame(2, &update_body(&[], &[0xc0, 1, 1, 0], &[])),
            3,
            4,
            Some(vec![0xc0, 1, 1, 0]),
        ),
        (
            "MED transitive",
            frame(2, &update_body(&[], &[0xc0, 4, 4, 0, 0, 0, 1], &[])),
            3,
            4,
            None,
        ),
        (
            "ORIGIN length 2",
            frame(2, &update_body(&[], &[0x40, 1, 2, 0, 0], &[])),
            3,
            5,
            Some(vec![0x40, 1, 2, 0, 0]),
        ),
        (
            "COMMUNITIES length 3",
            frame(2, &update_body(&[], &[0xc0, 8, 3, 0, 0, 0], &[])),
            3,
            5,
            None,
        ),
        (
            "LOCAL_PREF length 2",
            frame(2, &update_body(&[], &[0x40, 5, 2, 0, 0], &[])),
            3,
            5,
            None,
        ),
        (
            "ORIGIN 3",
            frame(2, &update_body(&[], &[0x40, 1, 1, 3], &[])),
            3,
            6,
            Some(vec![0x40, 1, 1, 3]),
        ),
        (
            "NEXT_HOP 0.0.0.0",
            frame(2, &update_body(&[], &[0x40, 3, 4, 0, 0, 0, 0], &[])),
            3,
            8,
            None,
        ),
        (
            "NEXT_HOP multicast",
            frame(2, &update_body(&[], &[0x40, 3, 4, 224, 0, 0, 5], &[])),
            3,
            8,
            None,
        ),
        (
            "MP_REACH next hop length 5",
            frame(
                2,
                &update_body(&[], &[0x80, 14, 9, 0, 2, 1, 5, 1, 2, 3, 4, 5], &[]),
            ),
            3,
            9,
            None,
        ),
        (
            "AS4_PATH odd",
            frame(2, &update_body(&[], &[0xc0, 17, 4, 2, 1, 0, 1], &[])),
            3,
            9,
            None,
        ),
        (
            "prefix /33",
            frame(2, &update_body(&[33, 1, 2, 3, 4, 5], &[], &[])),
            3,
            10,
            None,
        ),
        (
            "prefix overruns",
            frame(2, &update_body(&[24, 10, 0], &[], &[])),
            3,
            10,
            None,
        ),
        (
            "IPv6 prefix /129",
            frame(
                2,
                &update_body(&[], &[0x80, 15, 5, 0, 2, 1, 129, 0x20], &[]),
            ),
            3,
            10,
            None,
        ),
        (
            "AS_PATH segment type 5",
            frame(2, &update_body(&[], &[0x40, 2, 4, 5, 1, 0, 1], &[])),
            3,
            11,
            None,
        ),
        (
            "AS_PATH segment overruns",
            frame(2, &update_body(&[], &[0x40, 2, 4, 2, 2, 0, 1], &[])),
            3,
            11,
            None,
        ),
        (
            "AS_PATH empty segment",
            frame(2, &update_body(&[], &[0x40, 2, 2, 2, 0], &[])),
            3,
            11,
            None,
        ),
        (
            "ROUTE-REFRESH length",
            frame(5, &[0, 1, 0, 1, 0]),
            7,
            1,
            None,
        ),
    ];
    for (name, bytes, c, s, data) in cases {
        let err = match decode(&bytes, TWO) {
            Err(e) => e,
            other => panic!("{name}: expected an error, got {other:?}"),
        };
        let n = err.notification();
        assert_eq!((n.code, n.subcode), (c, s), "{name}: {err}");
        if let Some(data) = data {
            assert_eq!(n.data, data, "{name}: data");
        }
    }
}

#[test]
fn notification_display() {
    assert_eq!(
        Notification::new(4, 0).to_string(),
        "Hold Timer Expired (4/0)"
    );
}

// --- proptest ------------------------------------------------------------------------

fn v4_prefix() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
}

fn v6_prefix() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc())
}

fn family() -> impl Strategy<Value = Family> {
    (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Family { afi, safi })
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (
            any::<bool>(),
            0u16..=4095,
            prop::collection::vec((family(), any::<bool>()), 0..4)
        )
            .prop_map(|(restarted, restart_time, families)| {
                Capability::GracefulRestart(GracefulRestart {
                    restarted,
                    restart_time,
                    families,
                })
            }),
        (
            any::<u8>().prop_filter("known", |c| ![1, 2, 64, 65].contains(c)),
            prop::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(code, value)| Capability::Other { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        prop::collection::vec(capability(), 0..8),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| Open {
            version: 4,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        })
}

fn segments(max_asn: u32) -> impl Strategy<Value = Vec<AsSegment>> {
    let kind = prop_oneof![
        Just(SegmentType::Set),
        Just(SegmentType::Sequence),
        Just(SegmentType::ConfedSequence),
        Just(SegmentType::ConfedSet),
    ];
    prop::collection::vec(
        (kind, prop::collection::vec(0..=max_asn, 1..6))
            .prop_map(|(kind, asns)| AsSegment { kind, asns }),
        0..4,
    )
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    prop_oneof![
        (any::<u32>(), prop::collection::vec(v4_prefix(), 0..20)).prop_map(|(nh, nlri)| MpReach {
            family: Family::IPV4_UNICAST,
            next_hops: vec![IpAddr::V4(Ipv4Addr::from(nh))],
            nlri: nlri.into_iter().map(IpNet::V4).collect(),
        }),
        (
            prop::collection::vec(any::<u128>(), 1..=2),
            prop::collection::vec(v6_prefix(), 0..20)
        )
            .prop_map(|(nh, nlri)| MpReach {
                family: Family::IPV6_UNICAST,
                next_hops: nh
                    .into_iter()
                    .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                    .collect(),
                nlri: nlri.into_iter().map(IpNet::V6).collect(),
            }),
    ]
}

fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    prop_oneof![
        prop::collection::vec(v4_prefix(), 0..20).prop_map(|w| MpUnreach {
            family: Family::IPV4_UNICAST,
            withdrawn: w.into_iter().map(IpNet::V4).collect(),
        }),
        prop::collection::vec(v6_prefix(), 0..20).prop_map(|w| MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: w.into_iter().map(IpNet::V6).collect(),
        }),
    ]
}

fn large() -> impl Strategy<Value = LargeCommunity> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(global, local1, local2)| LargeCommunity {
        global,
        local1,
        local2,
    })
}

fn update() -> impl Strategy<Value = Update> {
    let origin = prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ];
    (
        prop::collection::vec(v4_prefix(), 0..30),
        prop::collection::vec(v4_prefix(), 0..30),
        (
            prop::option::of(origin),
            prop::option::of(segments(0xffff)),
            prop::option::of((0x0100_0000u32..0xe000_0000).prop_map(Ipv4Addr::from)),
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
        ),
        (
            prop::option::of(prop::collection::vec(any::<u32>(), 1..10)),
            prop::option::of(prop::collection::vec(large(), 1..5)),
            prop::option::of(mp_reach()),
            prop::option::of(mp_unreach()),
            prop::option::of(segments(u32::MAX)),
            prop::option::of((
                33u8..,
                prop_oneof![Just(0x80u8), Just(0xc0), Just(0xe0)],
                prop::collection::vec(any::<u8>(), 0..300),
            )),
        ),
    )
        .prop_map(
            |(
                withdrawn,
                nlri,
                (origin, path, nh, med, lp),
                (comm, large, reach, unreach, as4, other),
            )| {
                let needs = !nlri.is_empty() || reach.is_some();
                let origin = origin.or(needs.then_some(Origin::Igp));
                let path = path.or(needs.then(Vec::new));
                let nh = nh.or((!nlri.is_empty()).then(|| Ipv4Addr::new(192, 0, 2, 1)));
                let mut a = Vec::new();
                a.extend(reach.map(PathAttribute::MpReach));
                a.extend(unreach.map(PathAttribute::MpUnreach));
                a.extend(origin.map(PathAttribute::Origin));
                a.extend(path.map(PathAttribute::AsPath));
                a.extend(nh.map(PathAttribute::NextHop));
                a.extend(med.map(PathAttribute::Med));
                a.extend(lp.map(PathAttribute::LocalPref));
                a.extend(comm.map(PathAttribute::Communities));
                a.extend(as4.map(PathAttribute::As4Path));
                a.extend(large.map(PathAttribute::LargeCommunities));
                a.extend(other.map(|(code, flags, value)| PathAttribute::Other {
                    flags,
                    code,
                    value,
                }));
                Update {
                    withdrawn,
                    attributes: a,
                    nlri,
                }
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update().prop_map(Message::Update),
        Just(Message::Keepalive),
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(code, subcode, data)| Message::Notification(Notification {
                code,
                subcode,
                data
            })),
        family().prop_map(Message::RouteRefresh),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), four in any::<bool>()) {
        let codec = Codec { four_octet_as: four };
        let _ = decode(&bytes, codec);
        // Also behind a valid header, so the body decoders are reached.
        for ty in 1..=5u8 {
            let mut framed = frame(ty, &bytes);
            let _ = decode(&framed, codec);
            framed.truncate(framed.len() / 2);
            let _ = decode(&framed, codec);
        }
    }

    #[test]
    fn encode_decode_round_trips(msg in message(), four in any::<bool>()) {
        let codec = Codec { four_octet_as: four };
        let bytes = msg.encode(codec).unwrap();
        prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
        let back = decode_one(&bytes, codec).unwrap();
        prop_assert_eq!(&back, &msg);
        // And any decoded message re-encodes to the same bytes.
        prop_assert_eq!(back.encode(codec).unwrap(), bytes);
    }

    #[test]
    fn decoded_garbage_re_encodes(body in prop::collection::vec(any::<u8>(), 0..200), ty in 1..=5u8, four in any::<bool>()) {
        let codec = Codec { four_octet_as: four };
        if let Ok(Some((msg, _))) = decode(&frame(ty, &body), codec) {
            let again = decode_one(&msg.encode(codec).unwrap(), codec).unwrap();
            prop_assert_eq!(again, msg);
        }
    }
}
