//! Replays every input kept for the `netlink` fuzz target (`fuzz/regressions/netlink/`): what it
//! once crashed on, and real kernel dumps (routes, rules, links, addresses of both families).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

#[test]
fn netlink_regressions() {
    let n = test_support::replay_fuzz_regressions("netlink", kernel_fib::fuzzing::decode_check);
    assert!(n >= 1);
}

/// What a real kernel sends parses without error: every message of the kept dumps (routes of
/// both families with sources, tables above 255, unreachable, multipath and v4-via-v6 routes;
/// rules with and without fwmarks; links; addresses).
#[test]
fn kernel_dumps_parse() {
    use kernel_fib::codec::{decode_event, decode_rule, messages};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/netlink");
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("kernel-dump-") {
            continue;
        }
        let data = std::fs::read(entry.path()).unwrap_or_default();
        for msg in messages(&data) {
            let msg = msg.unwrap_or_else(|e| panic!("{name}: {e}"));
            if msg.ty == 32 {
                decode_rule(msg.payload).unwrap_or_else(|e| panic!("{name}: {e}"));
            } else {
                decode_event(&msg).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            parsed += 1;
        }
    }
    assert!(parsed >= 20, "{parsed} messages");
}
