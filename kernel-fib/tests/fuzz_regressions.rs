//! Replays every input the `netlink` fuzz target once crashed on (`fuzz/regressions/netlink/`).

use std::path::Path;

#[test]
fn netlink_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/netlink");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if let Ok(data) = std::fs::read(entry.path()) {
            kernel_fib::fuzzing::decode_check(&data);
            n += 1;
        }
    }
    println!("{n} netlink regression inputs replayed");
}
