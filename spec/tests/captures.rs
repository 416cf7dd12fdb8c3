//! Packets captured from Debian's babeld 1.12.1 in network namespaces
//! (`spec/captures/capture-babeld.sh`): a three-node line announcing IPv4 and IPv6 /32, /128,
//! /24 and /48 prefixes, once plain (links with IPv4 addresses: AE 1 and IPv4 next hops) and once
//! with `enable-timestamps` (links without IPv4: AE 4, RFC 9229).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;

use babel_wire::{DecodeOptions, Flavour, Message, decode, encode_packet};
use babelctl::capture::{CapturedDatagram, read_capture};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures")
}

fn datagrams(name: &str) -> Vec<CapturedDatagram> {
    let f = std::fs::File::open(dir().join(name)).unwrap();
    let d = read_capture(f, babel_wire::PORT).unwrap();
    assert!(d.len() > 20, "{name}: only {} datagrams", d.len());
    d
}

fn messages(name: &str) -> Vec<Message> {
    datagrams(name)
        .iter()
        .flat_map(|d| {
            decode(&d.payload, &DecodeOptions::default())
                .unwrap()
                .packet
                .messages
        })
        .collect()
}

/// Every babeld datagram decodes with no TLV ignored, and our encoder, given the decoded
/// messages, produces exactly babeld's bytes (same compression, Router-Id and Next Hop choices).
#[test]
fn babeld_packets_decode_cleanly_and_reencode_byte_for_byte() {
    for name in ["babeld-1.12-plain.pcap", "babeld-1.12-timestamps.pcap"] {
        for d in datagrams(name) {
            let p = decode(&d.payload, &DecodeOptions::default()).unwrap();
            assert!(
                p.errors.is_empty(),
                "{name} frame {}: {:?}",
                d.frame,
                p.errors
            );
            assert_eq!(p.body_end, d.payload.len());
            let ours = encode_packet(&p.packet, Flavour::Standard).unwrap();
            assert_eq!(
                hex::encode(&ours),
                hex::encode(&d.payload),
                "{name} frame {} re-encodes differently",
                d.frame
            );
        }
    }
}

#[test]
fn plain_capture_has_ipv4_with_ipv4_next_hops_and_compressed_ipv6() {
    let m = messages("babeld-1.12-plain.pcap");
    let v4 = m.iter().any(|m| {
        matches!(m, Message::Update(u) if !u.v4_via_v6
            && u.prefix.is_some_and(|p| p.is_ipv4() && p.len() == 24)
            && u.next_hop.is_some_and(|n| n.is_ipv4()))
    });
    assert!(v4, "no AE 1 update with an IPv4 next hop");
    let v6_48 = m.iter().any(|m| {
        matches!(m, Message::Update(u) if u.prefix.is_some_and(|p| !p.is_ipv4() && p.len() == 48))
    });
    assert!(v6_48);
    let wildcard = m
        .iter()
        .any(|m| matches!(m, Message::Update(u) if u.prefix.is_none() && u.is_retraction()));
    assert!(wildcard, "no wildcard retraction at shutdown");
    assert!(
        m.iter()
            .any(|m| matches!(m, Message::RouteRequest(r) if r.prefix.is_none()))
    );
    assert!(
        m.iter()
            .any(|m| matches!(m, Message::RouteRequest(r) if r.prefix.is_some()))
    );
    assert!(
        m.iter()
            .any(|m| matches!(m, Message::Ihu(i) if i.rxcost == 96))
    );
    // Compression did happen on the wire: some IPv6 Update TLV omitted octets.
    let compressed = datagrams("babeld-1.12-plain.pcap").iter().any(|d| {
        raw_tlvs(&d.payload)
            .iter()
            .any(|(ty, body)| *ty == 8 && body[0] == 2 && body[3] > 0)
    });
    assert!(compressed);
}

/// The (type, body) of each TLV of a packet body, by plain framing.
fn raw_tlvs(p: &[u8]) -> Vec<(u8, &[u8])> {
    let end = 4 + usize::from(u16::from_be_bytes([p[2], p[3]]));
    let mut out = Vec::new();
    let mut i = 4;
    while i < end {
        if p[i] == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(p[i + 1]);
        out.push((p[i], &p[i + 2..i + 2 + len]));
        i += 2 + len;
    }
    out
}

#[test]
fn timestamps_capture_has_rfc9616_and_rfc9229() {
    let m = messages("babeld-1.12-timestamps.pcap");
    assert!(
        m.iter()
            .any(|m| matches!(m, Message::Hello(h) if h.timestamp.is_some()))
    );
    assert!(
        m.iter()
            .any(|m| matches!(m, Message::Ihu(i) if i.timestamp.is_some()))
    );
    let ae4 = m.iter().any(|m| {
        matches!(m, Message::Update(u) if u.v4_via_v6 && u.next_hop.is_none() && !u.is_retraction())
    });
    assert!(ae4, "no AE 4 update");
}

/// The full decoded content is pinned in `captures/*.jsonl` (`babelctl decode --json`); set
/// `UPDATE_GOLDEN=1` to regenerate after an intended change, and review the diff.
#[test]
fn decoded_captures_match_golden_json() {
    for name in ["babeld-1.12-plain", "babeld-1.12-timestamps"] {
        let args = babelctl::decode::DecodeArgs {
            input: dir()
                .join(format!("{name}.pcap"))
                .to_string_lossy()
                .into_owned(),
            json: true,
            althea: false,
            port: babel_wire::PORT,
        };
        let mut out = Vec::new();
        babelctl::decode::run(&args, &mut out).unwrap();
        let golden = dir().join(format!("{name}.jsonl"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &out).unwrap();
        }
        let expected =
            std::fs::read_to_string(&golden).expect("golden file; run with UPDATE_GOLDEN=1");
        assert_eq!(String::from_utf8(out).unwrap(), expected, "{name}");
    }
}
