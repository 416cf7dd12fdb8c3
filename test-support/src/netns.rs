//! Network namespaces for tests: created with a unique name, removed on drop (also when a test
//! fails), and entered per thread so sockets opened there live in the namespace.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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

/// A network namespace that exists as long as this value. Its name holds the process id, so
/// tests of several processes on one machine never collide.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace `brs-TAG-PID-N` with `lo` up and duplicate address detection off.
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

    /// `ip -j -n NAME args...` as a list of JSON objects.
    pub fn ip_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        let out = self.ip(&all);
        if out.trim().is_empty() {
            return Vec::new();
        }
        match serde_json::from_str(&out).expect("ip -j output") {
            serde_json::Value::Array(v) => v,
            other => panic!("unexpected ip -j output {other}"),
        }
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
        let mut found = None;
        let ok = wait_for(5, || {
            let out = self.ip(&["-6", "-o", "addr", "show", "dev", dev, "scope", "link"]);
            found = out
                .split_whitespace()
                .skip_while(|w| *w != "inet6")
                .nth(1)
                .filter(|_| !out.contains("tentative"))
                .and_then(|a| a.split('/').next()?.parse().ok());
            found.is_some()
        });
        match found {
            Some(a) if ok => a,
            _ => panic!("no link-local address on {dev} in {}", self.name),
        }
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
        crate::scratch::keep_if_panicking();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Joins `a:dev_a` and `b:dev_b` with a veth pair, both up. The devices are created inside the
/// namespaces (never in the root namespace), so their names need not be unique per process.
pub fn veth(a: &Netns, dev_a: &str, b: &Netns, dev_b: &str) {
    run(&[
        "ip", "link", "add", dev_a, "netns", &a.name, "type", "veth", "peer", "name", dev_b,
        "netns", &b.name,
    ]);
    a.ip(&["link", "set", dev_a, "up"]);
    b.ip(&["link", "set", dev_b, "up"]);
}

/// Polls `cond` every 100 ms until it holds or `secs` pass; returns whether it held. This
/// waits on an observable condition (kernel routes, a reply), never for a fixed time.
pub fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One echo request from `ns` to `dst` (IPv4 or IPv6 by its form), waiting up to 2 s for the
/// reply: whether it came.
pub fn ping(ns: &Netns, dst: &str) -> bool {
    ping_with(ns, dst, &["-c", "1", "-W", "2"])
}

/// `ping -4|-6 ARGS... DST` from inside `ns` (the family from `dst`'s form; `args` give the
/// count, the wait, a source interface...): whether it succeeded.
pub fn ping_with(ns: &Netns, dst: &str, args: &[&str]) -> bool {
    let fam = if dst.contains(':') { "-6" } else { "-4" };
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "ping", fam])
        .args(args)
        .arg(dst)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `ping -4|-6 -n -q ARGS... DST` from inside `ns`, counting: the echo requests sent and the
/// replies received, from ping's summary line; `None` when ping did not run or printed none.
pub fn ping_count(ns: &Netns, dst: &str, args: &[&str]) -> Option<(u32, u32)> {
    let fam = if dst.contains(':') { "-6" } else { "-4" };
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "ping", fam, "-n", "-q"])
        .args(args)
        .arg(dst)
        .output()
        .ok()?;
    // "N packets transmitted, M received, ..."
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok());
    Some((nums.next()?, nums.next()?))
}

/// Enables forwarding in a namespace (routing daemons do it themselves; tests test routing).
pub fn forwarding(ns: &Netns) {
    ns.exec(&[
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.ip_forward=1",
    ]);
}

/// A file in the calling test's scratch directory, which goes when the test passes and stays
/// when it fails ([`crate::scratch`]).
pub fn tmp(name: &str) -> std::path::PathBuf {
    crate::scratch::dir().join(name)
}

/// True if `program` is on the PATH; otherwise prints why `test` skips.
pub fn have(program: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!(
            "SKIP {test}: {program} is not installed (apt-get install it, or run scripts/test.sh as root)"
        );
    }
    found
}

/// `VmRSS` and `VmHWM` (peak) of process `pid`, in kB.
pub fn memory(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}
