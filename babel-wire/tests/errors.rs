//! Truncated, oversized, wrong-length, wrong-AE and garbage inputs give typed errors that say
//! where (offset, TLV type) and what; nothing panics; the rest of the packet survives.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use babel_wire::*;
use common::packet;

/// The (offset, type, kind) of every ignored TLV, and how many messages survived.
fn ignored(flavour: Flavour, body: &str, trailer: &str) -> (Vec<(usize, u8, TlvErrorKind)>, usize) {
    let d = decode(&packet(body, trailer), &DecodeOptions { flavour }).unwrap();
    (
        d.errors
            .iter()
            .map(|e| (e.offset, e.tlv_type, e.kind.clone()))
            .collect(),
        d.packet.messages.len(),
    )
}

fn one(body: &str) -> TlvErrorKind {
    let (e, _) = ignored(Flavour::Standard, body, "");
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].2.clone()
}

#[test]
fn s4_2_packet_level_errors() {
    assert_eq!(
        decode(&[], &DecodeOptions::default()),
        Err(PacketError::TooShort(0))
    );
    assert_eq!(
        decode(&[42, 2, 0], &DecodeOptions::default()),
        Err(PacketError::TooShort(3))
    );
    assert_eq!(
        decode(&[43, 2, 0, 0], &DecodeOptions::default()),
        Err(PacketError::BadMagic(43))
    );
    assert_eq!(
        decode(&[42, 1, 0, 0], &DecodeOptions::default()),
        Err(PacketError::BadVersion(1))
    );
    assert_eq!(
        decode(&[42, 2, 0, 9, 0, 0], &DecodeOptions::default()),
        Err(PacketError::BodyTooLong {
            declared: 9,
            available: 2
        })
    );
    let d = decode(&[42, 2, 0, 0], &DecodeOptions::default()).unwrap();
    assert!(d.packet.messages.is_empty() && d.errors.is_empty());
}

#[test]
fn truncated_tlv_stops_framing_and_says_where() {
    let (e, n) = ignored(Flavour::Standard, "03 02 beef 04 09 0000", "");
    assert_eq!(n, 1);
    assert_eq!(
        e,
        vec![(
            8,
            4,
            TlvErrorKind::Truncated {
                len: 9,
                available: 2
            }
        )]
    );
    // A lone type octet at the end.
    let (e, _) = ignored(Flavour::Standard, "03 02 beef 04", "");
    assert_eq!(
        e,
        vec![(
            8,
            4,
            TlvErrorKind::Truncated {
                len: 0,
                available: 0
            }
        )]
    );
}

#[test]
fn fixed_part_too_short() {
    assert_eq!(
        one("04 04 0000 0001"),
        TlvErrorKind::TooShort { len: 4, min: 6 }
    );
    assert_eq!(
        one("0a 04 02 00 0000"),
        TlvErrorKind::TooShort { len: 4, min: 14 }
    );
    assert_eq!(
        one("06 06 0000 01020304"),
        TlvErrorKind::TooShort { len: 6, min: 10 }
    );
    assert_eq!(one("02 02 0000"), TlvErrorKind::TooShort { len: 2, min: 6 });
    // Althea's Update needs 14 octets unless it is a wildcard.
    let (e, _) = ignored(Flavour::Althea, "08 0c 02 00 00 00 0190 0001 ffff 0000", "");
    assert_eq!(e[0].2, TlvErrorKind::TooShort { len: 12, min: 14 });
}

#[test]
fn wrong_or_unknown_address_encodings() {
    assert_eq!(
        one("05 0a 04 00 0060 04b0 0a000001"),
        TlvErrorKind::BadAe(4)
    );
    assert_eq!(one("05 06 09 00 0060 04b0"), TlvErrorKind::UnknownAe(9));
    assert_eq!(one("07 02 00 00"), TlvErrorKind::BadAe(0));
    assert_eq!(one("07 06 04 00 0a000001"), TlvErrorKind::BadAe(4));
    assert_eq!(
        one("0a 0e 00 00 0001 7f 00 0102030405060708"),
        TlvErrorKind::BadAe(0)
    );
    assert_eq!(
        one("08 0a 05 00 00 00 0190 0001 ffff"),
        TlvErrorKind::UnknownAe(5)
    );
    assert_eq!(
        one("e0 16 03 00 0001 0064 0101010101010101 0202020202020202"),
        TlvErrorKind::BadAe(3)
    );
}

#[test]
fn wrong_prefix_lengths_and_omitted_octets() {
    assert_eq!(
        one("08 0f 01 00 21 00 0190 0001 ffff 0a000001 00"),
        TlvErrorKind::BadPlen { ae: 1, plen: 33 }
    );
    assert_eq!(
        one("09 04 02 81 0000"),
        TlvErrorKind::BadPlen { ae: 2, plen: 129 }
    );
    assert_eq!(
        one("08 0a 00 00 08 00 ffff 0001 ffff"),
        TlvErrorKind::BadPlen { ae: 0, plen: 8 }
    );
    assert_eq!(one("09 02 00 08"), TlvErrorKind::BadPlen { ae: 0, plen: 8 });
    // Omitted octets with no default prefix in this packet.
    assert_eq!(
        one("08 0b 02 00 80 0f 0190 0001 ffff 01"),
        TlvErrorKind::BadOmitted { ae: 2, omitted: 15 }
    );
    // More omitted octets than an IPv4 address has.
    assert_eq!(
        one("08 0e 01 80 20 00 0190 0001 ffff 0a000001 08 0a 01 00 20 05 0190 0001 ffff"),
        TlvErrorKind::BadOmitted { ae: 1, omitted: 5 }
    );
    assert_eq!(
        one("08 0c 02 00 80 00 0190 0001 ffff fd00"),
        TlvErrorKind::AddressTruncated {
            needed: 16,
            available: 2
        }
    );
}

#[test]
fn bad_sub_tlvs() {
    assert_eq!(
        one("04 0a 0000 0001 0190 03 02 0000"),
        TlvErrorKind::BadSubTlv { subtype: 3, len: 2 }
    );
    assert_eq!(
        one("04 09 0000 0001 0190 03 04 00"),
        TlvErrorKind::SubTlvTruncated { subtype: 3 }
    );
    // Source plen 0 is the ordinary route and must not be sent.
    assert_eq!(
        one("09 05 02 00 80 01 00"),
        TlvErrorKind::BadSubTlv {
            subtype: 128,
            len: 1
        }
    );
    assert_eq!(
        one("09 0a 02 00 80 02 08 20 80 02 08 30"),
        TlvErrorKind::BadSourcePrefix
    );
    assert_eq!(
        one("09 07 00 00 80 03 10 2001"),
        TlvErrorKind::BadSubTlv {
            subtype: 128,
            len: 3
        }
    );
    // At most 32 channels of diversity.
    let many = format!(
        "06 0a 0000 0102030405060708 08 2d 02 80 00 00 0190 0001 0060 02 21 {}",
        "01".repeat(33)
    );
    assert_eq!(
        one(&many),
        TlvErrorKind::BadSubTlv {
            subtype: 2,
            len: 33
        }
    );
    // The price sub-TLV is four octets.
    assert_eq!(
        one("06 0a 0000 0102030405060708 08 0f 02 80 00 00 0190 0001 0060 70 03 000001"),
        TlvErrorKind::BadSubTlv {
            subtype: 112,
            len: 3
        }
    );
}

#[test]
fn rfc8967_lengths_and_placement() {
    let long_index = format!("11 25 00000001 {}", "00".repeat(33));
    assert_eq!(one(&long_index), TlvErrorKind::TooLong { len: 37, max: 36 });
    let long_nonce = format!("12 c1 {}", "00".repeat(193));
    assert_eq!(
        one(&long_nonce),
        TlvErrorKind::TooLong { len: 193, max: 192 }
    );
    assert_eq!(one("10 04 00000000"), TlvErrorKind::Misplaced);
    let (e, _) = ignored(Flavour::Standard, "03 02 beef", "04 06 0000 0001 0190");
    assert_eq!(e, vec![(8, 4, TlvErrorKind::Misplaced)]);
    let (e, _) = ignored(Flavour::Standard, "", "10 05 0000");
    assert_eq!(
        e,
        vec![(
            4,
            16,
            TlvErrorKind::Truncated {
                len: 5,
                available: 2
            }
        )]
    );
}

#[test]
fn largest_datagram_is_fine() {
    // A full 64 KiB body of PadN TLVs and a long trailer.
    let mut body = String::new();
    for _ in 0..257 {
        body.push_str(&format!("01 fd {}", "00".repeat(253)));
    }
    let bytes = packet(&body, &"00".repeat(1000));
    assert!(bytes.len() > 65_000);
    let d = decode(&bytes, &DecodeOptions::default()).unwrap();
    assert_eq!(d.packet.messages.len(), 257);
    assert!(d.errors.is_empty());
}

#[test]
fn encode_errors() {
    let big = Update {
        prefix: Some("fd00::/64".parse().unwrap()),
        v4_via_v6: false,
        src_prefix: None,
        interval: 400,
        seqno: 1,
        metric: 96,
        router_id: Some(RouterId([1; 8])),
        next_hop: None,
        price: None,
        path_rtt: None,
        diversity: Some(vec![1; 250]),
    };
    assert_eq!(
        encode(&[Message::Update(big.clone())], &EncodeOptions::default()),
        Err(EncodeError::TlvTooLong(270))
    );
    let mut small = big.clone();
    small.diversity = Some(vec![1; 100]);
    let opts = EncodeOptions {
        max_packet_len: 64,
        ..EncodeOptions::default()
    };
    assert!(matches!(
        encode(&[Message::Update(small)], &opts),
        Err(EncodeError::TooLarge { limit: 64, .. })
    ));
    let mut via = big.clone();
    via.diversity = None;
    via.v4_via_v6 = true;
    assert!(matches!(
        encode(&[Message::Update(via)], &EncodeOptions::default()),
        Err(EncodeError::Invalid(_))
    ));
    let mut no_id = big.clone();
    no_id.diversity = None;
    no_id.router_id = None;
    assert!(matches!(
        encode(&[Message::Update(no_id)], &EncodeOptions::default()),
        Err(EncodeError::Invalid(_))
    ));
    let mut src = big;
    src.diversity = None;
    src.src_prefix = Some("10.0.0.0/8".parse().unwrap());
    assert!(matches!(
        encode(&[Message::Update(src)], &EncodeOptions::default()),
        Err(EncodeError::Invalid(_))
    ));
    let seq = SeqnoRequest {
        prefix: "fd00::/64".parse().unwrap(),
        v4_via_v6: false,
        src_prefix: None,
        seqno: 1,
        hop_count: 0,
        router_id: RouterId([1; 8]),
    };
    assert!(matches!(
        encode(&[Message::SeqnoRequest(seq)], &EncodeOptions::default()),
        Err(EncodeError::Invalid(_))
    ));
    let pc = Message::Pc {
        pc: 1,
        index: vec![0; 33],
    };
    assert!(matches!(
        encode(&[pc], &EncodeOptions::default()),
        Err(EncodeError::Invalid(_))
    ));
}
