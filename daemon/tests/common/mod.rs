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
            if let Some(a) = out.split_whitespace().skip_while(|w| *w != "inet6").nth(1)
                && !out.contains("tentative")
            {
                return a.split('/').next().unwrap().parse().unwrap();
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

/// A routing daemon process in a namespace, killed on drop.
pub struct Daemon {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Daemon {
    /// Starts `program args...` inside `ns`.
    pub fn start(ns: &Netns, program: &str, args: &[&str], log: std::path::PathBuf) -> Daemon {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, program])
            .args(args)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    /// Sends SIGTERM and waits for the process to exit (bounded).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
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

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 100 ms until it holds or `secs` pass; returns whether it held. This
/// waits on an observable condition (kernel routes, a reply), never for a fixed time.
pub fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Our routes (`proto 42` / `proto babel`) in a namespace, IPv4 and IPv6, one line each,
/// without babeld's unreachable placeholders.
pub fn babel_routes(ns: &Netns) -> Vec<String> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        let o = Command::new("ip")
            .args(["-n", &ns.name, fam, "route", "show", "proto", "42"])
            .output()
            .unwrap();
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.starts_with("unreachable"))
                .map(str::to_owned),
        );
    }
    out
}

/// True if `ns` has a `proto 42` route whose destination is `dst` (e.g. `10.77.0.3` or `fd77::3`).
pub fn has_route(ns: &Netns, dst: &str) -> bool {
    babel_routes(ns)
        .iter()
        .any(|l| l.split_whitespace().next() == Some(dst))
}

/// The device of `ns`'s kernel route to `dst` (e.g. `fd77::3`), if any.
pub fn route_dev(ns: &Netns, dst: &str) -> Option<String> {
    babel_routes(ns)
        .into_iter()
        .find(|l| l.split_whitespace().next() == Some(dst))
        .and_then(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "dev")?;
            w.get(i + 1).map(|s| s.to_string())
        })
}

/// Sends control commands over TCP to `[::1]:port` inside `ns` and returns everything read until
/// the daemon closes (the commands should end with `quit`).
pub fn control(ns: &Netns, port: u16, commands: &str) -> String {
    let commands = commands.to_owned();
    ns.spawn(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("::1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(commands.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .join()
    .unwrap()
}

/// Enables forwarding in a namespace (babeld does it itself; we test routing, not that).
pub fn forwarding(ns: &Netns) {
    ns.exec(&[
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.ip_forward=1",
    ]);
}

/// A file in this test process's scratch directory.
pub fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("babeld-rs-tests-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// A router namespace announcing 10.77.0.N/32 and fd77::N/128 from its loopback.
pub fn node(tag: &str, n: u8) -> Netns {
    let ns = Netns::new(tag);
    forwarding(&ns);
    ns.ip(&["addr", "add", &format!("10.77.0.{n}/32"), "dev", "lo"]);
    ns.ip(&["addr", "add", &format!("fd77::{n}/128"), "dev", "lo"]);
    ns
}

/// Filters announcing only the test prefixes.
pub const FILTERS: &str = "redistribute local ip 10.77.0.0/16 allow\nredistribute local ip fd77::/16 allow\nredistribute local deny\n";

/// Starts `program` (babeld-rs or babeld, same flags) in `ns` with [`FILTERS`] plus `extra`,
/// Hellos every second, control port 33123, on `ifaces`.
pub fn start_router(ns: &Netns, name: &str, program: &str, extra: &str, ifaces: &[&str]) -> Daemon {
    start_with_config(ns, name, program, &format!("{FILTERS}{extra}"), ifaces)
}

/// Like [`start_router`], with `conf` as the whole configuration (no [`FILTERS`]).
pub fn start_with_config(
    ns: &Netns,
    name: &str,
    program: &str,
    conf_text: &str,
    ifaces: &[&str],
) -> Daemon {
    start_with_args(ns, name, program, conf_text, &[], ifaces)
}

/// Like [`start_with_config`], with `extra` arguments before the interfaces.
pub fn start_with_args(
    ns: &Netns,
    name: &str,
    program: &str,
    conf_text: &str,
    extra: &[&str],
    ifaces: &[&str],
) -> Daemon {
    let conf = tmp(&format!("{name}.conf"));
    std::fs::write(&conf, conf_text).unwrap();
    let log = tmp(&format!("{name}.log"));
    let state = tmp(&format!("{name}.state"));
    let mut args: Vec<&str> = vec![
        "-I",
        "",
        "-S",
        state.to_str().unwrap(),
        "-d",
        "1",
        "-L",
        log.to_str().unwrap(),
    ];
    args.extend([
        "-h",
        "1",
        "-H",
        "1",
        "-G",
        "33123",
        "-c",
        conf.to_str().unwrap(),
    ]);
    args.extend_from_slice(extra);
    args.extend_from_slice(ifaces);
    Daemon::start(ns, program, &args, log.clone())
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

/// Like [`control`] on port 33123, but a daemon not listening yet reads as an empty answer, so
/// it can be polled with [`wait_for`].
pub fn try_control(ns: &Netns, commands: &str) -> String {
    let commands = commands.to_owned();
    ns.spawn(move || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("::1", 33123)) else {
            return String::new();
        };
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(commands.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .join()
    .unwrap()
}

/// A WireGuard key pair (private, public) in base64, made by `babelctl genkey` and `pubkey`.
pub fn keypair() -> (String, String) {
    let ctl = env!("CARGO_BIN_EXE_babelctl");
    let private = Command::new(ctl).arg("genkey").output().unwrap();
    assert!(private.status.success());
    let private = String::from_utf8(private.stdout).unwrap().trim().to_owned();
    let mut child = Command::new(ctl)
        .arg("pubkey")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(private.as_bytes())
        .unwrap();
    let public = String::from_utf8(child.wait_with_output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();
    (private, public)
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

/// How many lines of a `dump` on port 33123 start with `what` (`add route`, `add neighbour`).
pub fn dump_count(ns: &Netns, what: &str) -> usize {
    try_control(ns, "dump\nquit\n")
        .lines()
        .filter(|l| l.starts_with(what))
        .count()
}

/// The daemon's `dump json` in `ns` (control port 33123), or `Null` while it does not answer.
pub fn dump_json(ns: &Netns) -> serde_json::Value {
    try_control(ns, "dump json\nquit\n")
        .lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null)
}
