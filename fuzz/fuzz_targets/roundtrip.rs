//! Decode-encode-decode equivalence (`babel_wire::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| babel_wire::fuzzing::roundtrip_check(data));
