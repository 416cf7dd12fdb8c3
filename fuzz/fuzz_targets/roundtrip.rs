//! Decode-encode-decode equivalence: whatever we accept from the wire, we can send again, and
//! the receiver reads exactly the same messages.
#![no_main]

use babel_wire::{DecodeOptions, EncodeOptions, Flavour, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
