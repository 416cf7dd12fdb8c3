//! Property tests: decode(encode(x)) == x for arbitrary message lists in both flavours; every
//! packet respects the size limit; compression never changes meaning; our own packets re-encode
//! byte for byte; no input, however mangled, makes the decoder panic.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use babel_wire::*;
use proptest::prelude::*;

fn v4_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| Prefix::new(IpAddr::V4(Ipv4Addr::from(a)), l).unwrap())
}

/// IPv6 prefixes drawn around a few bases, so that compression has something to share.
fn v6_prefix() -> impl Strategy<Value = Prefix> {
    let bases = prop_oneof![
        Just(0xfd00_u128 << 112),
        Just(0xfd77_u128 << 112),
        Just(0x2001_0db8_u128 << 96)
    ];
    (
        bases,
        any::<u64>(),
        any::<u8>(),
        prop_oneof![Just(128u8), Just(64u8), Just(48u8), 0u8..=128],
    )
        .prop_map(|(base, low, mid, len)| {
            let a = base | (u128::from(mid) << 64) | u128::from(low);
            Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), len).unwrap()
        })
}

fn any_prefix() -> impl Strategy<Value = Prefix> {
    prop_oneof![v4_prefix(), v6_prefix()]
}

fn router_id() -> impl Strategy<Value = RouterId> {
    prop_oneof![
        Just(RouterId([2, 0, 0, 0xff, 0xfe, 0, 0, 1])),
        any::<[u8; 8]>().prop_map(RouterId)
    ]
}

fn v6_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u64>().prop_map(|l| IpAddr::V6(Ipv6Addr::from((0xfe80_u128 << 112) | u128::from(l)))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn v4_addr() -> impl Strategy<Value = IpAddr> {
    any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
}

fn update(flavour: Flavour) -> impl Strategy<Value = Update> {
    let price = match flavour {
        Flavour::Standard => proptest::option::of(any::<u32>()).boxed(),
        Flavour::Althea => any::<u32>().prop_map(Some).boxed(),
    };
    let common = (
        any::<u16>(),
        any::<u16>(),
        prop_oneof![Just(INFINITY), any::<u16>()],
        price,
        proptest::option::of(any::<u32>()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        proptest::option::of(router_id()),
    );
    let dest = prop_oneof![
        1 => Just((None, false, None, None)),
        4 => (v6_prefix(), proptest::option::of(v6_addr()), proptest::option::of(v6_prefix()))
            .prop_map(|(p, nh, src)| (Some(p), false, nh, src.filter(|s| s.len() > 0))),
        2 => (v4_prefix(), proptest::option::of(v4_addr()), proptest::option::of(v4_prefix()))
            .prop_map(|(p, nh, src)| (Some(p), false, nh, src.filter(|s| s.len() > 0))),
        2 => (v4_prefix(), proptest::option::of(v6_addr()))
            .prop_map(|(p, nh)| (Some(p), true, nh, None)),
    ];
    (dest, common, router_id()).prop_map(
        |(
            (prefix, v4_via_v6, next_hop, src_prefix),
            (interval, seqno, metric, price, path_rtt, diversity, rid),
            fallback,
        )| {
            // A finite update needs a router-id.
            let router_id = if metric == INFINITY {
                rid
            } else {
                rid.or(Some(fallback))
            };
            Update {
                prefix,
                v4_via_v6,
                src_prefix,
                interval,
                seqno,
                metric,
                router_id,
                next_hop,
                price,
                path_rtt,
                diversity,
            }
        },
    )
}

fn message(flavour: Flavour) -> impl Strategy<Value = Message> {
    prop_oneof![
        1 => Just(Message::Pad1),
        1 => any::<u8>().prop_map(|len| Message::PadN { len }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(opaque, interval)| Message::AckReq { opaque, interval }),
        1 => any::<u16>().prop_map(|opaque| Message::Ack { opaque }),
        3 => (any::<bool>(), any::<u16>(), any::<u16>(), proptest::option::of(any::<u32>()))
            .prop_map(|(unicast, seqno, interval, timestamp)| Message::Hello(Hello { unicast, seqno, interval, timestamp })),
        3 => (proptest::option::of(prop_oneof![v4_addr(), v6_addr()]), any::<u16>(), any::<u16>(), proptest::option::of(any::<(u32, u32)>()))
            .prop_map(|(address, rxcost, interval, ts)| Message::Ihu(Ihu {
                address, rxcost, interval,
                timestamp: ts.map(|(origin, receive)| IhuTimestamp { origin, receive }),
            })),
        10 => update(flavour).prop_map(Message::Update),
        2 => prop_oneof![
            Just(RouteRequest { prefix: None, v4_via_v6: false, src_prefix: None }),
            (v6_prefix(), proptest::option::of(v6_prefix())).prop_map(|(p, s)| RouteRequest { prefix: Some(p), v4_via_v6: false, src_prefix: s.filter(|s| s.len() > 0) }),
            (v4_prefix(), any::<bool>()).prop_map(|(p, via)| RouteRequest { prefix: Some(p), v4_via_v6: via, src_prefix: None }),
        ].prop_map(Message::RouteRequest),
        2 => (any_prefix(), any::<u16>(), 1u8..=255, router_id(), any::<bool>()).prop_map(|(prefix, seqno, hop_count, router_id, via)| {
            Message::SeqnoRequest(SeqnoRequest { v4_via_v6: via && prefix.is_ipv4(), prefix, src_prefix: None, seqno, hop_count, router_id })
        }),
        1 => (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..=32)).prop_map(|(pc, index)| Message::Pc { pc, index }),
        1 => proptest::collection::vec(any::<u8>(), 0..=192).prop_map(|nonce| Message::ChallengeRequest { nonce }),
        1 => proptest::collection::vec(any::<u8>(), 0..=192).prop_map(|nonce| Message::ChallengeReply { nonce }),
        1 => (any::<u16>(), any::<u16>(), router_id(), router_id(), any_prefix(), proptest::option::of(any::<u32>()))
            .prop_map(|(seqno, interval, origin, via, prefix, timestamp)| Message::RemoteHello(RemoteHello { seqno, interval, origin, via, prefix, timestamp })),
        1 => (any::<u16>(), any::<u16>(), router_id(), router_id(), any_prefix(), proptest::option::of(any::<(u32, u32)>()))
            .prop_map(|(rxcost, interval, origin, via, prefix, ts)| Message::RemoteIhu(RemoteIhu {
                rxcost, interval, origin, via, prefix,
                timestamp: ts.map(|(origin, receive)| IhuTimestamp { origin, receive }),
            })),
    ]
}

fn flavour() -> impl Strategy<Value = Flavour> {
    prop_oneof![Just(Flavour::Standard), Just(Flavour::Althea)]
}

fn case() -> impl Strategy<Value = (Flavour, Vec<Message>, usize)> {
    flavour().prop_flat_map(|f| {
        (
            Just(f),
            proptest::collection::vec(message(f), 0..60),
            300usize..1500,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// decode(encode(x)) == x, within the size limit, with no TLV ignored.
    #[test]
    fn decode_encode_is_identity((f, msgs, max) in case()) {
        let opts = EncodeOptions { flavour: f, max_packet_len: max, ..EncodeOptions::default() };
        let packets = encode(&msgs, &opts).unwrap();
        let mut back = Vec::new();
        for p in &packets {
            prop_assert!(p.len() <= max, "packet of {} bytes over the limit {}", p.len(), max);
            let d = decode(p, &DecodeOptions { flavour: f }).unwrap();
            prop_assert_eq!(&d.errors, &vec![]);
            prop_assert_eq!(d.body_end, p.len());
            back.extend(d.packet.messages);
        }
        prop_assert_eq!(back, msgs);
    }

    /// Compression never changes meaning: each message decodes the same whether it was packed
    /// after others (sharing default prefix, router-id, next hop) or sent alone.
    #[test]
    fn compression_never_changes_meaning((f, msgs, max) in case()) {
        let opts = EncodeOptions { flavour: f, max_packet_len: max, ..EncodeOptions::default() };
        let dopts = DecodeOptions { flavour: f };
        let packed: Vec<Message> = encode(&msgs, &opts).unwrap().iter()
            .flat_map(|p| decode(p, &dopts).unwrap().packet.messages).collect();
        let alone: Vec<Message> = msgs.iter()
            .flat_map(|m| encode(std::slice::from_ref(m), &opts).unwrap())
            .flat_map(|p| decode(&p, &dopts).unwrap().packet.messages).collect();
        prop_assert_eq!(packed, alone);
    }

    /// Our packets are canonical: re-encoding a decoded packet gives the same bytes.
    #[test]
    fn our_packets_reencode_byte_for_byte((f, msgs, max) in case()) {
        let opts = EncodeOptions { flavour: f, max_packet_len: max, ..EncodeOptions::default() };
        for p in encode(&msgs, &opts).unwrap() {
            let d = decode(&p, &DecodeOptions { flavour: f }).unwrap();
            let again = encode_packet(&d.packet, f).unwrap();
            prop_assert_eq!(again.as_ref(), p.as_ref());
        }
    }

    /// Arbitrary bytes never panic, in either flavour.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), f in flavour()) {
        let _ = decode(&bytes, &DecodeOptions { flavour: f });
        let mut framed = vec![42u8, 2, 0, 0];
        framed[2..4].copy_from_slice(&(bytes.len() as u16).to_be_bytes());
        framed.extend_from_slice(&bytes);
        let _ = decode(&framed, &DecodeOptions { flavour: f });
    }

    /// Valid packets with bytes flipped, cut or grown never panic, and whatever still decodes
    /// re-encodes without error.
    #[test]
    fn mangled_packets_never_panic((f, msgs, _) in case(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let opts = EncodeOptions { flavour: f, ..EncodeOptions::default() };
        for p in encode(&msgs, &opts).unwrap() {
            let mut b = p.to_vec();
            for (i, x) in &flips {
                let n = b.len();
                b[i % n] ^= x;
            }
            b[0] = 42;
            b[1] = 2;
            let _ = decode(&b[..cut % (b.len() + 1)], &DecodeOptions { flavour: f });
            if let Ok(d) = decode(&b, &DecodeOptions { flavour: f }) {
                // Anything we accept we can send again.
                prop_assert!(encode(&d.packet.messages, &opts).is_ok());
            }
        }
    }
}
