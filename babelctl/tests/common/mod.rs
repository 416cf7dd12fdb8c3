//! What the tests of the `babelctl` binary share.

use std::process::Command;

/// Runs `babelctl` with `args`: whether it succeeded, its stdout and its stderr.
pub fn babelctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_babelctl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
