//! A process under test, killed on drop.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Netns;

/// A daemon process (ours, babeld, BIRD, wireguard-go...) in a namespace, killed on drop.
pub struct DaemonProcess {
    pub child: Child,
    /// Where it logs (empty when it does not).
    pub log: std::path::PathBuf,
}

impl DaemonProcess {
    /// Starts `program args...` inside `ns`.
    pub fn start(
        ns: &Netns,
        program: &str,
        args: &[&str],
        log: std::path::PathBuf,
    ) -> DaemonProcess {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, program])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        DaemonProcess { child, log }
    }

    /// Sends SIGTERM and waits for the process to exit (bounded: 15 s).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.terminate_within(Duration::from_secs(15))
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit.
    pub fn terminate_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log file's text.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        crate::scratch::keep_if_panicking();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
