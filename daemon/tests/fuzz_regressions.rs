//! Replays every input kept for the daemon's fuzz targets (`fuzz/regressions/<target>/`): what
//! they once crashed on, and, for `config`, real configurations and command lines.

#[test]
fn config_regressions() {
    let n = test_support::replay_fuzz_regressions("config", daemon::fuzzing::config_check);
    assert!(n >= 1);
}

/// Route verification's target: its seed (`fuzz/seed.sh` writes the story of
/// `daemon::fuzzing::verification`'s tests) and whatever crash inputs are kept.
#[test]
fn verification_regressions() {
    let n = test_support::replay_fuzz_regressions(
        "verification",
        daemon::fuzzing::verification::verification_check,
    );
    assert!(n >= 1);
}
