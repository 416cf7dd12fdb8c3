//! The test harness every crate of the workspace shares (not published; a dev-dependency only).
//!
//! * [`Netns`]: a network namespace with a per-process unique name, removed on drop (also when a
//!   test fails), with `ip`/`exec` helpers and threads that run inside it; [`veth`] joins two.
//! * [`open_tap_in`], [`open_tun_in`]: TAP and TUN devices created inside a namespace.
//! * [`TapLink`]: two TAP devices joined by a thread that delays frames (the kernel of the CI
//!   machine has no `sch_netem`).
//! * [`wait_for`]: polls an observable condition with a bound, never a fixed sleep.
//! * [`ping`], [`ping_with`]: ICMP echo from inside a namespace.
//! * [`DaemonProcess`]: a process in a namespace, killed on drop.
//! * [`tmp`]: a file in the test's [`scratch`] directory, removed when the test passes.
//! * `engines` (feature `engine`): two `babel-core` engines on one lossless link.
//! * [`babelctl`], [`workspace_bin`]: a binary of another workspace crate, built for the test.
//!
//! Root is needed for everything but the engines; [`can_use_netns`] tells a test whether to
//! skip, with the reason printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod netns;
mod process;
pub mod scratch;
mod tap;
mod workspace_bin;

#[cfg(feature = "engine")]
pub mod engines;

pub use netns::{
    Netns, can_use_netns, forwarding, have, memory, ping, ping_count, ping_with, run, tmp, veth,
    wait_for,
};
pub use process::DaemonProcess;
pub use tap::{TapLink, open_tap_in, open_tun_in};
pub use workspace_bin::{babelctl, workspace_bin};

/// Feeds every file of `fuzz/regressions/<target>/` to `check` (the fuzz target's own check, so
/// a stable `cargo test` replays what the fuzzers once found); returns how many there were.
pub fn replay_fuzz_regressions(target: &str, check: impl Fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
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
