//! Each test's scratch files (daemon configurations, logs, state, captures) in a directory of
//! its own, removed when the test passes and kept, with its path printed, when it fails.
//!
//! The directory is `$TMPDIR/babeld-rs-tests-PID/TEST`, where `TEST` is the name of the thread
//! that asked (libtest runs each test in a thread named after it, and joins it before the
//! process exits). It is removed when that thread exits, unless the thread panicked: a panic
//! hook, installed with the first scratch file, marks it and prints where the files are. The
//! process's directory goes with its last test's. Before this, every test process left its
//! directory behind (a day of CI runs on one machine: 230 directories, 889 MB in `/tmp`).

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Once;

/// Longest test name kept in the path: a Unix socket's path (a control socket, BIRD's) must
/// stay under 108 bytes.
const MAX_NAME: usize = 40;

/// The calling thread's scratch directory, made on first use.
struct Scratch {
    dir: RefCell<Option<PathBuf>>,
    panicked: Cell<bool>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(dir) = self.dir.get_mut().take() else {
            return;
        };
        if self.panicked.get() {
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
            panicked: Cell::new(false),
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

/// Marks the panicking thread's scratch directory as kept and says where it is.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let _ = SCRATCH.try_with(|s| {
                s.panicked.set(true);
                if let Ok(dir) = s.dir.try_borrow()
                    && let Some(dir) = dir.as_ref()
                {
                    eprintln!("scratch files kept in {}", dir.display());
                }
            });
        }));
    });
}

/// The calling test's scratch directory (see the module's documentation), created if needed.
pub fn dir() -> PathBuf {
    install_hook();
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

    /// A passing test's directory goes when its thread ends; a failing one's stays.
    #[test]
    fn removed_when_the_test_passes_kept_when_it_fails() {
        let passed = std::thread::Builder::new()
            .name("scratch_passes".into())
            .spawn(|| {
                let d = dir();
                std::fs::write(d.join("a.log"), "x").unwrap();
                d
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(!passed.exists(), "{} left behind", passed.display());

        let (tx, rx) = std::sync::mpsc::channel();
        let failed = std::thread::Builder::new()
            .name("scratch_fails".into())
            .spawn(move || {
                let d = dir();
                std::fs::write(d.join("a.log"), "x").unwrap();
                tx.send(d).unwrap();
                panic!("this test thread fails on purpose");
            })
            .unwrap()
            .join();
        assert!(failed.is_err());
        let kept = rx.recv().unwrap();
        assert!(kept.join("a.log").exists(), "{} removed", kept.display());
        std::fs::remove_dir_all(&kept).unwrap();
        if let Some(parent) = kept.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
