//! Each test's scratch files (daemon configurations, logs, state, captures) in a directory of
//! its own, removed when the test passes and kept, with its path printed, when it fails.
//!
//! The directory is `$TMPDIR/babeld-rs-tests-PID/TEST`, where `TEST` is the name of the thread
//! that asked (libtest runs each test in a thread named after it, and joins it before the
//! process exits). It is removed when that thread exits, unless the test failed while it held a
//! namespace or a daemon ([`keep_if_panicking`]): then it stays and its path is printed. The
//! process's directory goes with its last test's. Before this, every test process left its
//! directory behind (a day of CI runs on one machine: 230 directories, 889 MB in `/tmp`).
//!
//! A thread a test starts has no name of its own; one that makes scratch files calls [`share`]
//! with the test's directory first, so its files go there and go with the test's. (A thread's
//! own directory is removed as the thread exits, which a scoped thread's join does not wait
//! for: the process could end first.)

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Longest test name kept in the path: a Unix socket's path (a control socket, BIRD's) must
/// stay under 108 bytes.
const MAX_NAME: usize = 40;

/// Directories a failing test keeps ([`keep_if_panicking`]), from any of its threads.
static KEPT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// The calling thread's scratch directory: made on first use, or the test's ([`share`]).
struct Scratch {
    dir: RefCell<Option<PathBuf>>,
    /// False for a directory [`share`]d with this thread: its test's thread removes it.
    owner: Cell<bool>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(dir) = self.dir.get_mut().take() else {
            return;
        };
        if !self.owner.get() || KEPT.lock().map_or(true, |k| k.contains(&dir)) {
            return;
        }
        let _ = std::fs::remove_dir_all(&dir);
        // The process's directory, once no other test has files there (fails otherwise).
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

thread_local! {
    static SCRATCH: Scratch = const {
        Scratch {
            dir: RefCell::new(None),
            owner: Cell::new(true),
        }
    };
}

/// The directory of this process's scratch directories.
fn process_dir() -> PathBuf {
    std::env::temp_dir().join(format!("babeld-rs-tests-{}", std::process::id()))
}

/// A thread name as a directory name: `module::test` becomes `module-test`, cut to
/// [`MAX_NAME`] bytes.
fn dir_name(thread: Option<&str>) -> String {
    let name: String = match thread {
        Some(n) => n
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect(),
        None => {
            let id = format!("{:?}", std::thread::current().id());
            format!(
                "thread-{}",
                id.chars().filter(char::is_ascii_digit).collect::<String>()
            )
        }
    };
    let name = name.replace("--", "-");
    name.chars().take(MAX_NAME).collect()
}

/// Keeps the calling thread's scratch directory if the thread is unwinding from a panic (a
/// failing test), and says where it is, once. [`crate::Netns`] and [`crate::DaemonProcess`]
/// call it when they are dropped, so a test that fails while it holds either keeps its files.
/// A panic a test catches itself (polling with `catch_unwind`) keeps nothing.
pub fn keep_if_panicking() {
    if !std::thread::panicking() {
        return;
    }
    let Ok(Some(dir)) = SCRATCH.try_with(|s| s.dir.try_borrow().ok().and_then(|d| d.clone()))
    else {
        return;
    };
    if KEPT.lock().is_ok_and(|mut k| k.insert(dir.clone())) {
        eprintln!("scratch files kept in {}", dir.display());
    }
}

/// Makes `dir` (a test's [`dir`]) the calling thread's scratch directory: for a thread the
/// test starts, whose files then go with the test's.
pub fn share(dir: &Path) {
    SCRATCH.with(|s| {
        *s.dir.borrow_mut() = Some(dir.to_path_buf());
        s.owner.set(false);
    });
}

/// The calling test's scratch directory (see the module's documentation), created if needed.
pub fn dir() -> PathBuf {
    SCRATCH.with(|s| {
        let mut d = s.dir.borrow_mut();
        let dir = d
            .get_or_insert_with(|| process_dir().join(dir_name(std::thread::current().name())))
            .clone();
        // Another test's thread may remove the (then empty) process directory between our
        // creating it and our own directory in it: try again.
        for _ in 0..10 {
            if std::fs::create_dir_all(&dir).is_ok() {
                break;
            }
        }
        dir
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_become_short_directory_names() {
        assert_eq!(dir_name(Some("ring::converges")), "ring-converges");
        assert_eq!(dir_name(Some("a b/c")), "a-b-c");
        let long = "x".repeat(100);
        assert_eq!(dir_name(Some(&long)).len(), MAX_NAME);
        assert!(!dir_name(None).is_empty());
    }

    /// What a test holds while it runs ([`crate::Netns`], [`crate::DaemonProcess`]).
    struct Held;

    impl Drop for Held {
        fn drop(&mut self) {
            keep_if_panicking();
        }
    }

    /// Runs `body` in a thread named `name` that writes a scratch file and holds [`Held`];
    /// returns the directory and whether the thread panicked.
    fn run(name: &str, body: fn()) -> (PathBuf, bool) {
        let (tx, rx) = std::sync::mpsc::channel();
        let joined = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _held = Held;
                let d = dir();
                std::fs::write(d.join("a.log"), "x").unwrap();
                tx.send(d).unwrap();
                body();
            })
            .unwrap()
            .join();
        (rx.recv().unwrap(), joined.is_err())
    }

    /// A passing test's directory goes when its thread ends, also after a panic it caught
    /// itself; a failing one's stays.
    #[test]
    fn removed_when_the_test_passes_kept_when_it_fails() {
        let (passed, failed) = run("scratch_passes", || {});
        assert!(!failed);
        assert!(!passed.exists(), "{} left behind", passed.display());

        let (polled, failed) = run("scratch_catches", || {
            assert!(std::panic::catch_unwind(|| panic!("not listening yet")).is_err());
        });
        assert!(!failed);
        assert!(!polled.exists(), "{} left behind", polled.display());

        // A thread the test starts writes into the test's directory, which stays until the
        // test's thread ends, and is kept when the started thread fails.
        let (shared, failed) = run("scratch_shares", || {
            let d = dir();
            std::thread::scope(|s| {
                s.spawn(|| {
                    share(&d);
                    let _held = Held;
                    std::fs::write(dir().join("b.log"), "x").unwrap();
                });
            });
            assert!(d.join("b.log").exists());
        });
        assert!(!failed);
        assert!(!shared.exists(), "{} left behind", shared.display());
        let (shared, failed) = run("scratch_shares_fails", || {
            let d = dir();
            std::thread::scope(|s| {
                s.spawn(|| {
                    share(&d);
                    let _held = Held;
                    panic!("the started thread fails on purpose");
                });
            });
        });
        assert!(failed);
        assert!(
            shared.join("a.log").exists(),
            "{} removed",
            shared.display()
        );
        std::fs::remove_dir_all(&shared).unwrap();

        let (kept, failed) = run("scratch_fails", || {
            panic!("this test thread fails on purpose")
        });
        assert!(failed);
        assert!(kept.join("a.log").exists(), "{} removed", kept.display());
        std::fs::remove_dir_all(&kept).unwrap();
        if let Some(parent) = kept.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
