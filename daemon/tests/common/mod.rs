//! Network namespaces for tests: created with a unique name, removed on drop (also when a test
//! fails), and entered per thread so sockets opened there live in the namespace.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// True when the test can create namespaces; otherwise prints why the caller skips.
pub fn can_use_netns(test: &str) -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        println!("SKIP {test}: needs root for network namespaces");
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        println!("SKIP {test}: iproute2 (ip) is not installed");
        return false;
    }
    true
}

/// Runs a command, panicking with its output if it fails.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace that exists as long as this value.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("brs-{tag}-{}-{n}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ]);
        ns
    }

    /// `ip -n NAME args...`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["ip", "-n", self.name.as_str()];
        a.extend_from_slice(args);
        run(&a)
    }

    /// `ip netns exec NAME args...`.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut a = vec!["ip", "netns", "exec", self.name.as_str()];
        a.extend_from_slice(args);
        run(&a)
    }

    /// The interface index of `dev` in this namespace.
    pub fn ifindex(&self, dev: &str) -> u32 {
        let out = self.ip(&["-o", "link", "show", "dev", dev]);
        out.split(':').next().unwrap().trim().parse().unwrap()
    }

    /// The link-local address of `dev`, waiting until the kernel has assigned it.
    pub fn link_local(&self, dev: &str) -> std::net::Ipv6Addr {
        for _ in 0..200 {
            let out = self.ip(&["-6", "-o", "addr", "show", "dev", dev, "scope", "link"]);
            if let Some(a) = out.split_whitespace().skip_while(|w| *w != "inet6").nth(1) {
                if !out.contains("tentative") {
                    return a.split('/').next().unwrap().parse().unwrap();
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("no link-local address on {dev} in {}", self.name);
    }

    /// Runs `f` on a new thread whose network namespace is this one.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Joins `a:dev_a` and `b:dev_b` with a veth pair, both up.
pub fn veth(a: &Netns, dev_a: &str, b: &Netns, dev_b: &str) {
    run(&[
        "ip", "link", "add", dev_a, "netns", &a.name, "type", "veth", "peer", "name", dev_b,
        "netns", &b.name,
    ]);
    a.ip(&["link", "set", dev_a, "up"]);
    b.ip(&["link", "set", dev_b, "up"]);
}
