//! Replays every input kept for the `config` fuzz target (`fuzz/regressions/config/`): what it
//! once crashed on, and real configurations and command lines.

use std::path::Path;

#[test]
fn config_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if let Ok(data) = std::fs::read(entry.path()) {
            daemon::fuzzing::config_check(&data);
            n += 1;
        }
    }
    assert!(n >= 1, "no inputs in {}", dir.display());
}
