//! Any datagram, in either flavour: decoding must not panic (`babel_wire::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| babel_wire::fuzzing::decode_check(data));
