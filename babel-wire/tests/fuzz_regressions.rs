//! Replays every input the fuzzers once crashed on (`fuzz/regressions/<target>/`).

use test_support::replay_fuzz_regressions as replay;

#[test]
fn roundtrip_regressions() {
    assert!(replay("roundtrip", babel_wire::fuzzing::roundtrip_check) >= 1);
}

#[test]
fn decode_regressions() {
    replay("decode", babel_wire::fuzzing::decode_check);
}
