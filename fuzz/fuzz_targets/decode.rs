//! Any datagram, in either flavour: decoding must not panic, and whatever it yields must fit
//! in the bytes it came from.
#![no_main]

use babel_wire::{DecodeOptions, Flavour, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for flavour in [Flavour::Standard, Flavour::Althea] {
        if let Ok(d) = decode(data, &DecodeOptions { flavour }) {
            assert!(d.body_end <= data.len());
            // Every message or error accounts for at least one octet of the body or trailer.
            assert!(d.packet.messages.len() + d.errors.len() <= data.len());
        }
    }
});
