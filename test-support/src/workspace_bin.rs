//! Binaries of another crate of this workspace, for tests that run them.
//!
//! Cargo's `CARGO_BIN_EXE_<name>` exists only for the binaries of the crate under test; the
//! daemon's tests also run `babelctl`, which is a crate of its own. [`workspace_bin`] builds it
//! with the same profile and target directory as the running test (a no-op when it is up to
//! date) and returns its path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The path of binary `bin` of workspace package `package`, built on first use in this process.
///
/// `BABELD_RS_BIN_<BIN>` (upper case, `-` as `_`, for example `BABELD_RS_BIN_BABELCTL`) names
/// a prebuilt binary instead. Otherwise the test executable's own location gives the target
/// directory and profile (`target/<profile>/deps/<test>`), and `cargo build -p PACKAGE --bin BIN`
/// runs there with that profile; a failed build panics with cargo's output.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let var = format!("BABELD_RS_BIN_{}", bin.to_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    let mut built = BUILT
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(bin) {
        return p.clone();
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>: the profile directory is two levels up.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test executable inside target/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir
        .parent()
        .expect("a profile directory inside the target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(p) => p,
        None => "dev",
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            package,
            "--bin",
            bin,
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "cargo build -p {package} --bin {bin} --profile {profile}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} after building it", path.display());
    built.insert(bin.to_owned(), path.clone());
    path
}

/// The path of the operator tool `babelctl` (crate `babelctl`), see [`workspace_bin`]; a
/// `&str` so that it fits in the argument lists of `Netns::exec` and `ip netns exec`.
pub fn babelctl() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        workspace_bin("babelctl", "babelctl")
            .into_os_string()
            .into_string()
            .expect("a UTF-8 path to babelctl")
    })
}
