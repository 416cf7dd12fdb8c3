//! The committed contract artifacts (ABI and bytecode the Rust bindings are built from) are what
//! the committed Solidity sources compile to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;

#[test]
fn committed_artifacts_equal_a_fresh_compile() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tools = settlement::anvil::tools_dir();
    let solc = tools.join("node_modules/solc");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !solc.exists() {
        assert!(
            !root,
            "solc-js is not installed under {}: run scripts/test.sh",
            tools.display()
        );
        eprintln!("skipping: solc-js not installed under {}", tools.display());
        return;
    }
    let out = std::env::temp_dir().join(format!("settlement-artifacts-{}", std::process::id()));
    let status = Command::new("node")
        .arg(crate_dir.join("contracts/compile.js"))
        .arg(&out)
        .arg(tools.join("node_modules"))
        .status()
        .expect("node runs");
    assert!(status.success(), "compile.js failed");
    for name in ["Escrow.json", "SigBench.json"] {
        let fresh = std::fs::read_to_string(out.join(name)).expect("fresh artifact");
        let committed = std::fs::read_to_string(crate_dir.join("contracts/artifacts").join(name))
            .expect("committed artifact");
        assert!(
            fresh == committed,
            "contracts/artifacts/{name} is stale: run `node settlement/contracts/compile.js settlement/contracts/artifacts`"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
