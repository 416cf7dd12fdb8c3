//! RFC 8967 packets captured from Debian's babeld 1.12.1 with a key configured
//! (`spec/captures/capture-babeld-auth.sh`): two babeld on one link, from start-up (challenges)
//! to shutdown. Every MAC is recomputed by `babel_wire::mac` from the datagram's addresses and
//! must equal babeld's byte for byte; the PC, Index and nonce rules of `spec/auth.md` are checked
//! on babeld's own traffic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use babel_wire::mac::{MacAlgorithm, MacCheck, MacKey, PseudoHeader, verify};
use babel_wire::{DecodeOptions, Message, decode};
use babelctl::capture::read_capture;

fn captures() -> [(&'static str, MacKey); 2] {
    [
        (
            "babeld-1.12-auth-hmac-sha256.pcap",
            MacKey::new(
                MacAlgorithm::HmacSha256,
                &hex::decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
                    .unwrap(),
            )
            .unwrap(),
        ),
        (
            "babeld-1.12-auth-blake2s128.pcap",
            MacKey::new(
                MacAlgorithm::Blake2s128,
                &hex::decode("f0e1d2c3b4a5968778695a4b3c2d1e0f").unwrap(),
            )
            .unwrap(),
        ),
    ]
}

#[test]
fn babeld_macs_recomputed_byte_for_byte() {
    for (name, key) in captures() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("captures")
            .join(name);
        let datagrams = read_capture(std::fs::File::open(&path).unwrap(), 6696).unwrap();
        assert!(
            datagrams.len() > 10,
            "{name}: {} datagrams",
            datagrams.len()
        );
        let mut last_pc: BTreeMap<IpAddr, (u32, Vec<u8>)> = BTreeMap::new();
        let mut requested: Vec<(IpAddr, Vec<u8>)> = Vec::new();
        let (mut unicast, mut replies) = (0, 0);
        for d in &datagrams {
            let p = decode(&d.payload, &DecodeOptions::default()).unwrap();
            assert!(p.errors.is_empty(), "{name} #{}: {:?}", d.frame, p.errors);
            // One MAC TLV in the trailer, of the algorithm's length.
            assert_eq!(p.packet.macs.len(), 1, "{name} #{}", d.frame);
            let theirs = &p.packet.macs[0];
            assert_eq!(theirs.len(), key.algorithm().mac_len());
            // babeld's pseudo-header: the datagram's addresses, the protocol port twice.
            assert_eq!((d.src.1, d.dst.1), (6696, 6696));
            let ph = PseudoHeader::babeld(d.src.0, d.dst.0, 6696);
            let covered = &d.payload[..p.body_end];
            let (ours, len) = key.compute(&ph, covered);
            assert_eq!(
                hex::encode(&ours[..len]),
                hex::encode(theirs),
                "{name} #{}",
                d.frame
            );
            assert_eq!(
                verify(covered, &p.packet.macs, std::slice::from_ref(&key), &ph),
                MacCheck::Valid
            );
            // The PC TLV is the last TLV of the body; one PC per sender for all destinations,
            // increasing by one per packet; an 8-octet Index that does not change.
            let Some(Message::Pc { pc, index }) = p.packet.messages.last() else {
                panic!("{name} #{}: no PC at the end", d.frame);
            };
            assert_eq!(index.len(), 8);
            if let Some((prev, prev_index)) = last_pc.get(&d.src.0) {
                assert_eq!(*pc, prev + 1, "{name} #{}", d.frame);
                assert_eq!(index, prev_index);
            } else {
                assert_eq!(*pc, 0, "babeld starts its PC at 0");
            }
            last_pc.insert(d.src.0, (*pc, index.clone()));
            if !d.dst.0.is_multicast() {
                unicast += 1;
            }
            for m in &p.packet.messages {
                match m {
                    Message::ChallengeRequest { nonce } => {
                        assert_eq!(nonce.len(), 8);
                        assert!(!d.dst.0.is_multicast(), "challenges are unicast");
                        requested.push((d.src.0, nonce.clone()));
                    }
                    Message::ChallengeReply { nonce } => {
                        // It echoes a nonce the other side sent.
                        assert!(
                            requested
                                .iter()
                                .any(|(from, n)| *from == d.dst.0 && n == nonce),
                            "{name} #{}: reply to an unknown nonce",
                            d.frame
                        );
                        replies += 1;
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(last_pc.len(), 2, "{name}: both routers sent");
        assert!(
            unicast > 0 && replies >= 2,
            "{name}: both challenged each other"
        );
    }
}

/// Any changed byte of the covered part, or another destination in the pseudo-header, makes
/// babeld's MAC invalid for us.
#[test]
fn altered_babeld_packets_do_not_verify() {
    let (name, key) = captures().into_iter().next().unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name);
    let d = &read_capture(std::fs::File::open(&path).unwrap(), 6696).unwrap()[2];
    let p = decode(&d.payload, &DecodeOptions::default()).unwrap();
    let keys = [key];
    for i in 0..p.body_end {
        let mut bad = d.payload.clone();
        bad[i] ^= 0x80;
        let ph = PseudoHeader::babeld(d.src.0, d.dst.0, 6696);
        assert_eq!(
            verify(&bad[..p.body_end], &p.packet.macs, &keys, &ph),
            MacCheck::Invalid
        );
    }
    let other = PseudoHeader::babeld(d.src.0, "fe80::99".parse().unwrap(), 6696);
    assert_eq!(
        verify(&d.payload[..p.body_end], &p.packet.macs, &keys, &other),
        MacCheck::Invalid
    );
    let port = PseudoHeader::babeld(d.src.0, d.dst.0, 6697);
    assert_eq!(
        verify(&d.payload[..p.body_end], &p.packet.macs, &keys, &port),
        MacCheck::Invalid
    );
}
