//! Replays every input the fuzzers once crashed on (`fuzz/regressions/<target>/`).

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if let Ok(data) = std::fs::read(entry.path()) {
            check(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn roundtrip_regressions() {
    assert!(replay("roundtrip", babel_wire::fuzzing::roundtrip_check) >= 1);
}

#[test]
fn decode_regressions() {
    replay("decode", babel_wire::fuzzing::decode_check);
}
