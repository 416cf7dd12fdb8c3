//! Running code in another network namespace (tests, the simulator, tools).
//!
//! A netlink socket belongs to the namespace of the thread that opened it, for its whole life.
//! [`in_netns`] runs a closure on a fresh thread that first joins the namespace, so a
//! [`crate::NetlinkFib`] or [`crate::Watcher`] created there keeps working on that namespace
//! when handed back to any other thread. The calling thread is never moved.

use std::fs::File;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

use crate::FibError;

/// Runs `f` on a new thread inside the network namespace at `path` (for example
/// `/var/run/netns/NAME`, as made by `ip netns add NAME`) and returns its result.
pub fn in_netns<T, F>(path: &Path, f: F) -> Result<T, FibError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = File::open(path).map_err(|e| {
        FibError::Socket(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))
    })?;
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(FibError::Socket)?;
        Ok(f())
    })
    .join()
    .map_err(|_| FibError::Malformed("thread in the namespace panicked"))?
}

/// [`in_netns`] for a namespace made by `ip netns add name`.
pub fn in_named_netns<T, F>(name: &str, f: F) -> Result<T, FibError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    in_netns(&Path::new("/var/run/netns").join(name), f)
}
