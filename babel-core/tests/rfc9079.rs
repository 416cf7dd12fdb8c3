//! Unit tests per RFC 9079 (source-specific routing) section, driven through the public API
//! with real encoded packets. Each test name starts with the section it checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use babel_core::{EngineError, RouteKey, RouteOp};
use babel_wire::{
    DecodeOptions, EncodeOptions, INFINITY, Message, RouteRequest, SeqnoRequest, Update, decode,
    encode,
};
use common::*;

fn sskey(dst: &str, src: &str) -> RouteKey {
    RouteKey {
        prefix: pfx(dst),
        src_prefix: Some(pfx(src)),
    }
}

fn ss_update(dst: &str, src: &str, router: u8, seqno: u16, metric: u16) -> Message {
    match update(dst, router, seqno, metric) {
        Message::Update(mut u) => {
            u.src_prefix = Some(pfx(src));
            Message::Update(u)
        }
        m => m,
    }
}

fn round_trip(m: &Message) -> (Vec<u8>, Vec<Message>) {
    let bytes = encode(std::slice::from_ref(m), &EncodeOptions::default()).unwrap();
    let d = decode(&bytes[0], &DecodeOptions::default()).unwrap();
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    (bytes[0].to_vec(), d.packet.messages)
}

/// The Source Prefix sub-TLV: type 128 (mandatory bit set), then the source prefix length and
/// the prefix's significant octets.
fn has_source_prefix_sub_tlv(bytes: &[u8], plen: u8, octets: &[u8]) -> bool {
    let mut pat = vec![128u8, u8::try_from(1 + octets.len()).unwrap(), plen];
    pat.extend_from_slice(octets);
    bytes.windows(pat.len()).any(|w| w == pat.as_slice())
}

#[test]
fn s7_1_source_prefix_sub_tlv_round_trips_in_update_and_requests() {
    let octets = [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01];
    let u = ss_update("::/0", "2001:db8:1::/48", 9, 3, 100);
    let (bytes, back) = round_trip(&u);
    assert!(has_source_prefix_sub_tlv(&bytes, 48, &octets), "{bytes:x?}");
    let Message::Update(b) = back
        .into_iter()
        .find(|m| matches!(m, Message::Update(_)))
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(b.src_prefix, Some(pfx("2001:db8:1::/48")));
    assert_eq!(b.prefix, Some(pfx("::/0")));

    let rr = Message::RouteRequest(RouteRequest {
        prefix: Some(pfx("::/0")),
        v4_via_v6: false,
        src_prefix: Some(pfx("2001:db8:1::/48")),
    });
    let (bytes, back) = round_trip(&rr);
    assert!(has_source_prefix_sub_tlv(&bytes, 48, &octets));
    assert_eq!(back, vec![rr]);

    let sr = Message::SeqnoRequest(SeqnoRequest {
        prefix: pfx("::/0"),
        v4_via_v6: false,
        src_prefix: Some(pfx("2001:db8:1::/48")),
        seqno: 7,
        hop_count: 64,
        router_id: rid(9),
    });
    let (bytes, back) = round_trip(&sr);
    assert!(has_source_prefix_sub_tlv(&bytes, 48, &octets));
    assert_eq!(back, vec![sr]);
}

#[test]
fn s7_1_the_source_prefix_is_mandatory_so_a_router_cannot_mistake_it_for_the_plain_route() {
    // Type 128 has the mandatory bit: a TLV with an unknown mandatory sub-TLV is dropped whole
    // (RFC 8966 §4.4). Rewrite the sub-TLV type to 129 (unknown, mandatory) and check that the
    // Update is not read as a non-specific ::/0.
    let u = ss_update("::/0", "2001:db8:1::/48", 9, 3, 100);
    let mut bytes = encode(&[u], &EncodeOptions::default()).unwrap()[0].to_vec();
    let at = bytes
        .windows(3)
        .position(|w| w == [128, 7, 48])
        .expect("sub-TLV 128");
    bytes[at] = 129;
    let d = decode(&bytes, &DecodeOptions::default()).unwrap();
    assert!(
        !d.packet
            .messages
            .iter()
            .any(|m| matches!(m, Message::Update(_))),
        "{:?}",
        d.packet.messages
    );
    let mut h = H::new();
    h.establish(nb(1));
    h.e.handle_packet(h.now, IF, nb(1), babel_core::Destination::Multicast, &bytes);
    assert!(h.e.installed(&key("::/0")).is_none());
}

#[test]
fn s4_the_route_table_is_keyed_by_destination_and_source() {
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    h.establish(nb(3));
    h.recv(nb(1), &[ss_update("::/0", "2001:db8:1::/48", 11, 1, 100)]);
    h.recv(nb(2), &[ss_update("::/0", "2001:db8:2::/48", 12, 1, 100)]);
    h.recv(nb(3), &[update("::/0", 13, 1, 100)]);
    let a = h.e.installed(&sskey("::/0", "2001:db8:1::/48")).unwrap();
    let b = h.e.installed(&sskey("::/0", "2001:db8:2::/48")).unwrap();
    let c = h.e.installed(&key("::/0")).unwrap();
    assert_eq!((a.via, b.via, c.via), (nb(1), nb(2), nb(3)));
    let k = h.kernel();
    let srcs: Vec<Option<String>> = k
        .iter()
        .filter(|c| c.op == RouteOp::Add)
        .map(|c| c.src_prefix.map(|p| p.to_string()))
        .collect();
    assert_eq!(srcs.len(), 3, "{k:?}");
    assert!(srcs.contains(&Some("2001:db8:1::/48".into())));
    assert!(srcs.contains(&Some("2001:db8:2::/48".into())));
    assert!(srcs.contains(&None));
}

#[test]
fn s5_selection_is_independent_per_source() {
    // Wireless: no split horizon, so both routes are re-announced on the one interface.
    let mut h = H::with(config(), babel_core::InterfaceKind::Wireless);
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(nb(1), &[ss_update("::/0", "2001:db8:1::/48", 11, 1, 100)]);
    h.recv(nb(2), &[ss_update("::/0", "2001:db8:1::/48", 12, 1, 50)]);
    h.recv(nb(1), &[ss_update("::/0", "2001:db8:2::/48", 11, 1, 10)]);
    h.recv(nb(2), &[ss_update("::/0", "2001:db8:2::/48", 12, 1, 500)]);
    assert_eq!(
        h.e.installed(&sskey("::/0", "2001:db8:1::/48"))
            .unwrap()
            .via,
        nb(2)
    );
    assert_eq!(
        h.e.installed(&sskey("::/0", "2001:db8:2::/48"))
            .unwrap()
            .via,
        nb(1)
    );
    let cost = |h: &H, n| {
        h.e.neighbours(h.now)
            .iter()
            .find(|x| x.address == n)
            .map(|x| x.cost.0)
            .unwrap()
    };
    let i1 = h.e.installed(&sskey("::/0", "2001:db8:1::/48")).unwrap();
    let i2 = h.e.installed(&sskey("::/0", "2001:db8:2::/48")).unwrap();
    assert_eq!(i1.metric.0, 50 + cost(&h, nb(2)));
    assert_eq!(i2.metric.0, 10 + cost(&h, nb(1)));
    // Each is announced with its own source prefix and metric (a full dump on request).
    h.sent();
    h.recv(nb(1), &[route_request(None)]);
    h.advance(std::time::Duration::from_millis(300));
    let ups: Vec<Update> = updates_in(&h.sent_messages());
    let m = |src: &str| {
        ups.iter()
            .filter(|u| u.src_prefix == Some(pfx(src)) && u.prefix == Some(pfx("::/0")))
            .map(|u| u.metric)
            .next_back()
            .unwrap()
    };
    assert_eq!(m("2001:db8:1::/48"), i1.metric.0, "{ups:?}");
    assert_eq!(m("2001:db8:2::/48"), i2.metric.0, "{ups:?}");
}

#[test]
fn s4_requests_and_seqno_requests_carry_the_source_prefix() {
    let mut h = H::new();
    h.establish(nb(1));
    h.e.announce(h.now, sskey("::/0", "2001:db8:9::/48"), 0)
        .unwrap();
    h.advance(std::time::Duration::from_secs(1));
    h.sent();
    // A route request for (::/0 from S) is answered for that source, not for ::/0.
    h.recv(
        nb(1),
        &[Message::RouteRequest(RouteRequest {
            prefix: Some(pfx("::/0")),
            v4_via_v6: false,
            src_prefix: Some(pfx("2001:db8:9::/48")),
        })],
    );
    h.advance(std::time::Duration::from_secs(1));
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.src_prefix == Some(pfx("2001:db8:9::/48")) && u.metric == 0),
        "{ups:?}"
    );
    // A seqno request for our source-specific xroute bumps our seqno.
    let before = h.e.seqno();
    h.recv(
        nb(1),
        &[Message::SeqnoRequest(SeqnoRequest {
            prefix: pfx("::/0"),
            v4_via_v6: false,
            src_prefix: Some(pfx("2001:db8:9::/48")),
            seqno: before.wrapping_add(1),
            hop_count: 5,
            router_id: rid(1),
        })],
    );
    assert_ne!(h.e.seqno(), before);
    // An unfeasible source-specific update makes us ask for a new seqno for that source.
    h.establish(nb(2));
    h.recv(nb(1), &[ss_update("::/0", "2001:db8:1::/48", 11, 5, 100)]);
    h.recv(nb(1), &[ss_update("::/0", "2001:db8:1::/48", 11, 5, 900)]);
    h.sent();
    h.recv(nb(2), &[ss_update("::/0", "2001:db8:1::/48", 11, 5, 1000)]);
    h.advance(std::time::Duration::from_millis(500));
    let reqs: Vec<SeqnoRequest> = h
        .sent_messages()
        .into_iter()
        .filter_map(|m| match m {
            Message::SeqnoRequest(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(
        reqs.iter()
            .all(|s| s.src_prefix == Some(pfx("2001:db8:1::/48"))),
        "{reqs:?}"
    );
}

#[test]
fn s7_1_a_zero_length_source_prefix_is_not_a_source_specific_route() {
    // Our encoder refuses to build one; babeld rejects it on receipt ("source prefix cannot
    // be default"). Patch the length octet of a real sub-TLV to 0 and feed it in.
    assert!(
        encode(
            &[ss_update("2001:db8:5::/48", "::/0", 11, 1, 100)],
            &EncodeOptions::default()
        )
        .is_err()
    );
    let mut bytes = encode(
        &[ss_update("2001:db8:5::/48", "2001:db8:1::/48", 11, 1, 100)],
        &EncodeOptions::default(),
    )
    .unwrap()[0]
        .to_vec();
    let at = bytes.windows(3).position(|w| w == [128, 7, 48]).unwrap();
    bytes[at + 2] = 0;
    let mut h = H::new();
    h.establish(nb(1));
    h.e.handle_packet(h.now, IF, nb(1), babel_core::Destination::Multicast, &bytes);
    assert!(h.e.installed(&key("2001:db8:5::/48")).is_none());
    assert!(h.e.installed_count() == 0);
    // Locally, a zero-length source is the caller's mistake.
    assert!(matches!(
        h.e.announce(h.now, sskey("2001:db8:5::/48", "::/0"), 0),
        Err(EngineError::ZeroSourcePrefix)
    ));
}

#[test]
fn s4_a_retraction_with_a_source_retracts_only_that_route() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[ss_update("::/0", "2001:db8:1::/48", 11, 1, 100)]);
    h.recv(nb(1), &[update("::/0", 11, 1, 100)]);
    h.kernel();
    h.recv(
        nb(1),
        &[ss_update("::/0", "2001:db8:1::/48", 11, 1, INFINITY)],
    );
    assert!(h.e.installed(&sskey("::/0", "2001:db8:1::/48")).is_none());
    assert!(h.e.installed(&key("::/0")).is_some());
    let k = h.kernel();
    assert!(
        k.iter()
            .any(|c| c.op == RouteOp::Unreachable && c.src_prefix == Some(pfx("2001:db8:1::/48"))),
        "held as babeld holds it: {k:?}"
    );
    assert!(!k.iter().any(|c| c.src_prefix.is_none()), "{k:?}");
    // The retraction is propagated with its source prefix.
    h.advance(std::time::Duration::from_secs(1));
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.metric == INFINITY && u.src_prefix == Some(pfx("2001:db8:1::/48"))),
        "{ups:?}"
    );
}

/// Appends `sub` to the first TLV of type `ty` in a packet, fixing the TLV and body lengths.
fn append_sub_tlv(bytes: &mut Vec<u8>, ty: u8, sub: &[u8]) {
    let mut i = 4;
    while i + 1 < bytes.len() {
        let (t, len) = (bytes[i], usize::from(bytes[i + 1]));
        if t == ty {
            let end = i + 2 + len;
            bytes.splice(end..end, sub.iter().copied());
            bytes[i + 1] = u8::try_from(len + sub.len()).unwrap();
            let body = u16::from_be_bytes([bytes[2], bytes[3]]) + u16::try_from(sub.len()).unwrap();
            bytes[2..4].copy_from_slice(&body.to_be_bytes());
            return;
        }
        i += if t == 0 { 1 } else { 2 + len };
    }
    panic!("no TLV {ty}");
}

#[test]
fn s7_1_a_wildcard_update_with_a_source_prefix_retracts_nothing() {
    // babeld: "Received wildcard update with source prefix." and ignores it.
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[update("::/0", 11, 1, 100)]);
    h.recv(nb(1), &[ss_update("::/0", "2001:db8:1::/48", 11, 1, 100)]);
    let wildcard = Message::Update(Update {
        prefix: None,
        src_prefix: None,
        metric: INFINITY,
        router_id: None,
        ..match update("::/0", 11, 1, 100) {
            Message::Update(u) => u,
            _ => unreachable!(),
        }
    });
    let mut bytes = encode(&[wildcard], &EncodeOptions::default()).unwrap()[0].to_vec();
    append_sub_tlv(
        &mut bytes,
        8,
        &[128, 7, 48, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01],
    );
    h.e.handle_packet(h.now, IF, nb(1), babel_core::Destination::Multicast, &bytes);
    assert!(h.e.installed(&key("::/0")).is_some());
    assert!(h.e.installed(&sskey("::/0", "2001:db8:1::/48")).is_some());
}
