//! The checks the fuzz targets run (`fuzz/`), shared with the regression test that replays
//! saved crash inputs (`babel-wire/tests/fuzz_regressions.rs`). Panics mean a bug.
#![allow(clippy::expect_used, clippy::panic)]

use crate::{DecodeOptions, EncodeOptions, Flavour, decode, encode};

/// Any datagram, in either flavour: decoding must not panic, and what it yields must be
/// accounted for by the bytes it came from.
pub fn decode_check(data: &[u8]) {
    for flavour in [Flavour::Standard, Flavour::Althea] {
        if let Ok(d) = decode(data, &DecodeOptions { flavour }) {
            assert!(d.body_end <= data.len());
            assert!(d.packet.messages.len() + d.errors.len() <= data.len());
        }
    }
}

/// Decode-encode-decode equivalence: whatever we accept we can send again, within the size
/// limit, and the receiver reads exactly the same messages. The first octet picks the flavour
/// (low bit) and the packet size.
pub fn roundtrip_check(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let flavour = if first & 1 == 0 {
        Flavour::Standard
    } else {
        Flavour::Althea
    };
    let dopts = DecodeOptions { flavour };
    let Ok(d) = decode(rest, &dopts) else { return };
    let opts = EncodeOptions {
        flavour,
        max_packet_len: 300 + usize::from(*first) * 4,
        ..EncodeOptions::default()
    };
    let packets = encode(&d.packet.messages, &opts).expect("a decoded message must encode");
    let mut again = Vec::new();
    for p in &packets {
        assert!(p.len() <= opts.max_packet_len);
        let e = decode(p, &dopts).expect("our packet must decode");
        assert!(
            e.errors.is_empty(),
            "our packet has ignored TLVs: {:?}",
            e.errors
        );
        again.extend(e.packet.messages);
    }
    assert_eq!(again, d.packet.messages);
}
