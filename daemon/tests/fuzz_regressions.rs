//! Replays every input kept for the `config` fuzz target (`fuzz/regressions/config/`): what it
//! once crashed on, and real configurations and command lines.

#[test]
fn config_regressions() {
    let n = test_support::replay_fuzz_regressions("config", daemon::fuzzing::config_check);
    assert!(n >= 1);
}
