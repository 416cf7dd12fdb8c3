//! Byte-vector tests, both ways: decoding the bytes gives the structure, and encoding the
//! structure gives the bytes. One case per TLV, sub-TLV, address encoding and flag combination.
//! Section numbers are those of RFC 8966 unless another document is named.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::IpAddr;

mod common;

use babel_wire::*;
use common::packet;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

const ID: RouterId = RouterId([0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55]);

/// Asserts decode(bytes) == messages (with no ignored TLV) and encode(messages) == bytes.
fn both_ways(flavour: Flavour, body_hex: &str, messages: Vec<Message>) {
    both_ways_with_macs(flavour, body_hex, "", messages, vec![]);
}

fn both_ways_with_macs(
    flavour: Flavour,
    body_hex: &str,
    trailer_hex: &str,
    messages: Vec<Message>,
    macs: Vec<Vec<u8>>,
) {
    let bytes = packet(body_hex, trailer_hex);
    let d = decode(&bytes, &DecodeOptions { flavour }).unwrap();
    assert_eq!(d.errors, vec![], "decoding {}", hex::encode(&bytes));
    let expected = Packet { messages, macs };
    assert_eq!(d.packet, expected, "decoding {}", hex::encode(&bytes));
    let encoded = encode_packet(&expected, flavour).unwrap();
    assert_eq!(
        hex::encode(&encoded),
        hex::encode(&bytes),
        "encoding {expected:?}"
    );
}

/// Asserts that decoding gives these messages and these ignored TLVs (type, kind).
fn decodes_to(
    flavour: Flavour,
    body_hex: &str,
    messages: Vec<Message>,
    ignored: Vec<(u8, TlvErrorKind)>,
) {
    let bytes = packet(body_hex, "");
    let d = decode(&bytes, &DecodeOptions { flavour }).unwrap();
    assert_eq!(
        d.packet.messages,
        messages,
        "decoding {}",
        hex::encode(&bytes)
    );
    let got: Vec<_> = d
        .errors
        .iter()
        .map(|e| (e.tlv_type, e.kind.clone()))
        .collect();
    assert_eq!(got, ignored, "decoding {}", hex::encode(&bytes));
}

fn update(prefix: Option<&str>, metric: u16) -> Update {
    Update {
        prefix: prefix.map(pfx),
        v4_via_v6: false,
        src_prefix: None,
        interval: 400,
        seqno: 0x1234,
        metric,
        router_id: Some(ID),
        next_hop: None,
        price: None,
        path_rtt: None,
        diversity: None,
    }
}

const S: Flavour = Flavour::Standard;
const A: Flavour = Flavour::Althea;

#[test]
fn s4_6_1_pad1_and_s4_6_2_padn() {
    both_ways(S, "00", vec![Message::Pad1]);
    both_ways(S, "01 03 000000", vec![Message::PadN { len: 3 }]);
    both_ways(S, "01 00", vec![Message::PadN { len: 0 }]);
}

#[test]
fn s4_6_3_ack_request_and_s4_6_4_ack() {
    both_ways(
        S,
        "02 06 0000 beef 0064",
        vec![Message::AckReq {
            opaque: 0xbeef,
            interval: 100,
        }],
    );
    both_ways(S, "03 02 beef", vec![Message::Ack { opaque: 0xbeef }]);
}

#[test]
fn s4_6_5_hello_multicast_unicast_unscheduled() {
    let h = |unicast, interval| {
        Message::Hello(Hello {
            unicast,
            seqno: 0x0102,
            interval,
            timestamp: None,
        })
    };
    both_ways(S, "04 06 0000 0102 0190", vec![h(false, 400)]);
    both_ways(S, "04 06 8000 0102 0190", vec![h(true, 400)]);
    both_ways(S, "04 06 8000 0102 0000", vec![h(true, 0)]);
}

#[test]
fn rfc9616_s3_timestamps_in_hello_and_ihu() {
    both_ways(
        S,
        "04 0c 0000 0102 0190 03 04 11223344
         05 18 03 00 0060 04b0 0211 22ff fe33 4455 03 08 11223344 55667788",
        vec![
            Message::Hello(Hello {
                unicast: false,
                seqno: 0x0102,
                interval: 400,
                timestamp: Some(0x1122_3344),
            }),
            Message::Ihu(Ihu {
                address: Some(ip("fe80::211:22ff:fe33:4455")),
                rxcost: 96,
                interval: 1200,
                timestamp: Some(IhuTimestamp {
                    origin: 0x1122_3344,
                    receive: 0x5566_7788,
                }),
            }),
        ],
    );
}

#[test]
fn s4_6_6_ihu_every_address_encoding() {
    let ihu = |address: Option<&str>| {
        Message::Ihu(Ihu {
            address: address.map(ip),
            rxcost: 256,
            interval: 1200,
            timestamp: None,
        })
    };
    both_ways(S, "05 06 00 00 0100 04b0", vec![ihu(None)]);
    both_ways(
        S,
        "05 0a 01 00 0100 04b0 0a000001",
        vec![ihu(Some("10.0.0.1"))],
    );
    both_ways(
        S,
        "05 16 02 00 0100 04b0 fd000000000000000000000000000001",
        vec![ihu(Some("fd00::1"))],
    );
    both_ways(
        S,
        "05 0e 03 00 0100 04b0 0000000000000001",
        vec![ihu(Some("fe80::1"))],
    );
}

#[test]
fn s4_6_7_router_id_and_s4_6_9_update_ipv6() {
    both_ways(
        S,
        "06 0a 0000 021122fffe334455
         08 1a 02 80 80 00 0190 1234 0060 fd000000000000000000000000000001",
        vec![Message::Update(update(Some("fd00::1/128"), 96))],
    );
}

#[test]
fn s4_5_prefix_compression_ipv6() {
    // The second /128 shares 15 octets with the first, which became the default prefix.
    // The /40 that follows shares one octet with the default and, shorter than /48, does not
    // become the default itself.
    both_ways(
        S,
        "06 0a 0000 021122fffe334455
         08 1a 02 80 80 00 0190 1234 0060 fd000000000000000000000000000001
         08 0b 02 80 80 0f 0190 1234 0060 02
         08 0e 02 00 28 01 0190 1234 0060 01020304",
        vec![
            Message::Update(update(Some("fd00::1/128"), 96)),
            Message::Update(update(Some("fd00::2/128"), 96)),
            Message::Update(update(Some("fd01:203:400::/40"), 96)),
        ],
    );
    // A /48 after it becomes the new default and omits the shared first octet.
    both_ways(
        S,
        "06 0a 0000 021122fffe334455
         08 1a 02 80 80 00 0190 1234 0060 fd000000000000000000000000000001
         08 0f 02 80 30 01 0190 1234 0060 7800000100
         08 0b 02 80 30 05 0190 1234 0060 02",
        vec![
            Message::Update(update(Some("fd00::1/128"), 96)),
            Message::Update(update(Some("fd78:0:100::/48"), 96)),
            Message::Update(update(Some("fd78:0:102::/48"), 96)),
        ],
    );
}

#[test]
fn s4_6_9_router_id_flag_0x40() {
    // The router-id is the low 64 bits of the /128: no Router-Id TLV is needed.
    both_ways(
        S,
        "08 1a 02 c0 80 00 0190 1234 0000 fd000000000000000211 22ff fe33 4455",
        vec![Message::Update(update(
            Some("fd00::211:22ff:fe33:4455/128"),
            0,
        ))],
    );
    // Decoding only: an IPv4 /32 with flag 0x40 gives four zero octets and the address.
    let mut u = update(Some("10.0.0.1/32"), 0);
    u.router_id = Some(RouterId([0, 0, 0, 0, 10, 0, 0, 1]));
    u.next_hop = Some(ip("10.1.1.1"));
    decodes_to(
        S,
        "07 06 01 00 0a010101 08 0e 01 40 20 00 0190 1234 0000 0a000001",
        vec![Message::Update(u)],
        vec![],
    );
}

#[test]
fn s4_6_8_next_hop_every_encoding() {
    let mut v4 = update(Some("10.1.0.0/16"), 96);
    v4.next_hop = Some(ip("192.168.1.1"));
    let mut v6 = update(Some("fd00::/64"), 96);
    v6.next_hop = Some(ip("fe80::1"));
    let mut v6g = update(Some("fd00::/64"), 96);
    v6g.next_hop = Some(ip("fd99::1"));
    both_ways(
        S,
        "07 06 01 00 c0a80101
         06 0a 0000 021122fffe334455
         08 0c 01 00 10 00 0190 1234 0060 0a01
         07 0a 03 00 0000000000000001
         08 12 02 80 40 00 0190 1234 0060 fd00000000000000
         07 12 02 00 fd990000000000000000000000000001
         08 0a 02 80 40 08 0190 1234 0060",
        vec![
            Message::Update(v4),
            Message::Update(v6),
            Message::Update(v6g),
        ],
    );
}

#[test]
fn rfc9229_ae4_ipv4_via_ipv6() {
    let mut u = update(Some("10.77.0.3/32"), 192);
    u.v4_via_v6 = true;
    u.next_hop = Some(ip("fe80::2"));
    both_ways(
        S,
        "07 0a 03 00 0000000000000002
         06 0a 0000 021122fffe334455
         08 0e 04 00 20 00 0190 1234 00c0 0a4d0003",
        vec![Message::Update(u)],
    );
}

#[test]
fn s4_6_9_wildcard_retraction() {
    let mut u = update(None, INFINITY);
    u.router_id = None;
    u.interval = 0xffff;
    both_ways(
        S,
        "08 0a 00 00 00 00 ffff 1234 ffff",
        vec![Message::Update(u)],
    );
}

#[test]
fn rfc9079_s7_source_prefix_sub_tlv() {
    let mut v6 = update(Some("::/0"), 96);
    v6.src_prefix = Some(pfx("2001:db8::/32"));
    let mut v4 = update(Some("0.0.0.0/0"), 96);
    v4.src_prefix = Some(pfx("10.5.0.0/16"));
    v4.next_hop = Some(ip("10.0.0.1"));
    both_ways(
        S,
        "06 0a 0000 021122fffe334455
         08 11 02 80 00 00 0190 1234 0060 80 05 20 20010db8
         07 06 01 00 0a000001
         08 0f 01 00 00 00 0190 1234 0060 80 03 10 0a05",
        vec![Message::Update(v6), Message::Update(v4)],
    );
}

#[test]
fn standard_flavour_price_and_path_rtt_sub_tlvs() {
    let mut u = update(Some("fd00::1/128"), 96);
    u.price = Some(1000);
    u.path_rtt = Some(22_805);
    both_ways(
        S,
        "06 0a 0000 021122fffe334455
         08 26 02 80 80 00 0190 1234 0060 fd000000000000000000000000000001
               70 04 000003e8 71 04 00005915",
        vec![Message::Update(u)],
    );
}

#[test]
fn althea_flavour_price_field_and_path_rtt_45() {
    // An Update as Althea's fork sends it (spec/wire.md, the Althea example), byte for byte.
    let mut u = update(Some("fdc5:5bcb:24ac:b35a:4b7f:146a:a2a1:bdc4/128"), 256);
    u.router_id = Some(RouterId([0x4b, 0x7f, 0x14, 0x6a, 0xa2, 0xa1, 0xbd, 0xc4]));
    u.price = Some(1000);
    u.path_rtt = Some(22_805);
    both_ways(
        A,
        "08 24 02 c0 80 00 0190 1234 0100 000003e8
               fdc55bcb24acb35a4b7f146aa2a1bdc4 2d04 00005915",
        vec![Message::Update(u)],
    );
}

#[test]
fn althea_flavour_wildcard_retraction_10_and_14_bytes() {
    let mut u = update(None, INFINITY);
    u.router_id = None;
    u.interval = 0xffff;
    u.price = Some(0);
    // We send 14 bytes with price 0: both Althea forks accept it.
    both_ways(
        A,
        "08 0e 00 00 00 00 ffff 1234 ffff 00000000",
        vec![Message::Update(u.clone())],
    );
    // Althea's fork itself sends 10 bytes without the price; we accept it, as price 0, so
    // that what we send on (14 bytes, price 0) reads the same.
    decodes_to(
        A,
        "08 0a 00 00 00 00 ffff 1234 ffff",
        vec![Message::Update(u)],
        vec![],
    );
}

#[test]
fn diversity_sub_tlv() {
    let mut u = update(Some("fd00::1/128"), 96);
    u.diversity = Some(vec![1, 6, 11]);
    both_ways(
        S,
        "06 0a 0000 021122fffe334455
         08 1f 02 80 80 00 0190 1234 0060 fd000000000000000000000000000001 02 03 01060b",
        vec![Message::Update(u)],
    );
}

#[test]
fn s4_6_10_route_request_every_encoding() {
    let rr = |prefix: Option<&str>, v4_via_v6, src: Option<&str>| {
        Message::RouteRequest(RouteRequest {
            prefix: prefix.map(pfx),
            v4_via_v6,
            src_prefix: src.map(pfx),
        })
    };
    both_ways(S, "09 02 00 00", vec![rr(None, false, None)]);
    both_ways(
        S,
        "09 06 01 20 0a4d0003",
        vec![rr(Some("10.77.0.3/32"), false, None)],
    );
    both_ways(
        S,
        "09 05 04 18 0a4e03",
        vec![rr(Some("10.78.3.0/24"), true, None)],
    );
    both_ways(
        S,
        "09 08 02 30 fd7800000003",
        vec![rr(Some("fd78:0:3::/48"), false, None)],
    );
    both_ways(
        S,
        "09 0f 02 30 fd7800000003 80 05 20 20010db8",
        vec![rr(Some("fd78:0:3::/48"), false, Some("2001:db8::/32"))],
    );
}

#[test]
fn s4_6_11_seqno_request_every_encoding() {
    let sr = |prefix: &str, v4_via_v6, src: Option<&str>| {
        Message::SeqnoRequest(SeqnoRequest {
            prefix: pfx(prefix),
            v4_via_v6,
            src_prefix: src.map(pfx),
            seqno: 0x1235,
            hop_count: 127,
            router_id: ID,
        })
    };
    both_ways(
        S,
        "0a 1e 02 80 1235 7f 00 021122fffe334455 fd000000000000000000000000000001",
        vec![sr("fd00::1/128", false, None)],
    );
    both_ways(
        S,
        "0a 11 01 18 1235 7f 00 021122fffe334455 0a0100",
        vec![sr("10.1.0.0/24", false, None)],
    );
    both_ways(
        S,
        "0a 11 04 18 1235 7f 00 021122fffe334455 0a0100",
        vec![sr("10.1.0.0/24", true, None)],
    );
    both_ways(
        S,
        "0a 13 02 00 1235 7f 00 021122fffe334455 80 03 10 2001",
        vec![sr("::/0", false, Some("2001::/16"))],
    );
}

#[test]
fn rfc8967_s4_pc_challenges_and_mac_trailer() {
    both_ways_with_macs(
        S,
        "11 0c 0000000d 0102030405060708
         12 08 a1a2a3a4a5a6a7a8
         13 08 b1b2b3b4b5b6b7b8",
        "10 10 000102030405060708090a0b0c0d0e0f",
        vec![
            Message::Pc {
                pc: 13,
                index: vec![1, 2, 3, 4, 5, 6, 7, 8],
            },
            Message::ChallengeRequest {
                nonce: vec![0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8],
            },
            Message::ChallengeReply {
                nonce: vec![0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8],
            },
        ],
        vec![(0..16).collect()],
    );
}

#[test]
fn rfc8967_babeld_hmac_test_vector_1_layout() {
    // babeld's tests/hmac_test.c vector 1: a wildcard retraction, a Hello and a PC; the MAC
    // covers exactly the header and body, which `body_end` marks.
    let bytes = packet(
        "08 0a 00 00 00 00 ffff 6983 ffff 04 06 0000 8af1 000a 11 0c 0000000d 0000000000000000",
        "10 20 0000000000000000000000000000000000000000000000000000000000000000",
    );
    let d = decode(&bytes, &DecodeOptions::default()).unwrap();
    assert_eq!(d.body_end, 4 + 0x22);
    assert_eq!(d.packet.messages.len(), 3);
    assert_eq!(d.packet.macs, vec![vec![0u8; 32]]);
}

#[test]
fn remote_hello_and_remote_ihu() {
    let origin = RouterId([1, 1, 1, 1, 1, 1, 1, 1]);
    let via = RouterId([2, 2, 2, 2, 2, 2, 2, 2]);
    both_ways(
        S,
        "e0 2c 02 80 0007 0064 0101010101010101 0202020202020202
               fd000000000000000000000000000009 03 04 00000457
         e1 24 01 20 0180 012c 0101010101010101 0202020202020202 0a000009
               03 08 00000457 000008ae",
        vec![
            Message::RemoteHello(RemoteHello {
                seqno: 7,
                interval: 100,
                origin,
                via,
                prefix: pfx("fd00::9/128"),
                timestamp: Some(1111),
            }),
            Message::RemoteIhu(RemoteIhu {
                rxcost: 384,
                interval: 300,
                origin,
                via,
                prefix: pfx("10.0.0.9/32"),
                timestamp: Some(IhuTimestamp {
                    origin: 1111,
                    receive: 2222,
                }),
            }),
        ],
    );
}

#[test]
fn s4_1_5_ae3_prefix_in_update_is_read() {
    // AE 3 carries the octets after the implied fe80::/64; never sent by us, accepted.
    decodes_to(
        S,
        "06 0a 0000 021122fffe334455 08 12 03 00 80 00 0190 1234 0060 0000000000000005",
        vec![Message::Update(update(Some("fe80::5/128"), 96))],
        vec![],
    );
}

#[test]
fn s4_3_unknown_tlv_is_skipped_and_the_rest_kept() {
    decodes_to(
        S,
        "2c 03 aabbcc 03 02 beef",
        vec![Message::Ack { opaque: 0xbeef }],
        vec![(0x2c, TlvErrorKind::UnknownType)],
    );
}

#[test]
fn s4_1_5_unknown_ae_ignores_only_that_tlv() {
    decodes_to(
        S,
        "09 04 07 10 aabb 03 02 beef",
        vec![Message::Ack { opaque: 0xbeef }],
        vec![(9, TlvErrorKind::UnknownAe(7))],
    );
}

#[test]
fn s4_4_unknown_mandatory_sub_tlv_ignores_the_tlv_but_keeps_parser_state() {
    // The first Update sets the default prefix and carries mandatory sub-TLV 200: it is
    // ignored, but the second Update still expands its omitted octets from that default.
    decodes_to(
        S,
        "06 0a 0000 021122fffe334455
         08 1c 02 80 80 00 0190 1234 0060 fd000000000000000000000000000001 c8 00
         08 0b 02 00 80 0f 0190 1234 0060 02",
        vec![Message::Update(update(Some("fd00::2/128"), 96))],
        vec![(8, TlvErrorKind::UnknownMandatorySubTlv(200))],
    );
}

#[test]
fn s4_4_unknown_optional_sub_tlvs_and_padding_are_skipped() {
    decodes_to(
        S,
        "04 14 0000 0102 0190 00 01 02 0000 05 01 ff 03 04 00000001",
        vec![Message::Hello(Hello {
            unicast: false,
            seqno: 0x0102,
            interval: 400,
            timestamp: Some(1),
        })],
        vec![],
    );
}

#[test]
fn s4_6_9_finite_update_without_router_id_is_ignored() {
    decodes_to(
        S,
        "08 1a 02 00 80 00 0190 1234 0060 fd000000000000000000000000000001",
        vec![],
        vec![(8, TlvErrorKind::MissingRouterId)],
    );
    // A retraction needs none.
    let mut u = update(Some("fd00::1/128"), INFINITY);
    u.router_id = None;
    decodes_to(
        S,
        "08 1a 02 00 80 00 0190 1234 ffff fd000000000000000000000000000001",
        vec![Message::Update(u)],
        vec![],
    );
}

#[test]
fn one_sub_tlv_option_keeps_the_mandatory_one() {
    let mut u = update(Some("::/0"), 96);
    u.src_prefix = Some(pfx("2001:db8::/32"));
    u.price = Some(5);
    let opts = EncodeOptions {
        one_sub_tlv: true,
        ..EncodeOptions::default()
    };
    let mut b = PacketBuilder::new(opts);
    b.push(&Message::Update(u.clone())).unwrap();
    assert_eq!(b.dropped_sub_tlvs(), 1);
    let bytes = b.finish();
    let d = decode(&bytes, &DecodeOptions::default()).unwrap();
    u.price = None;
    assert_eq!(d.packet.messages, vec![Message::Update(u)]);
}
