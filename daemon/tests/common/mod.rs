//! The daemon's test helpers: the shared harness (`test-support`: namespaces, veth/TAP/TUN,
//! `wait_for`, `ping`, the process guard, the delaying link) re-exported under the names the
//! tests have always used, plus what only Babel daemons need (control port, routes of protocol
//! 42, router namespaces, starting babeld-rs or babeld with the same flags).
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::process::Command;

pub use test_support::*;

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
pub fn start_router(
    ns: &Netns,
    name: &str,
    program: &str,
    extra: &str,
    ifaces: &[&str],
) -> DaemonProcess {
    start_with_config(ns, name, program, &format!("{FILTERS}{extra}"), ifaces)
}

/// Like [`start_router`], with `conf` as the whole configuration (no [`FILTERS`]).
pub fn start_with_config(
    ns: &Netns,
    name: &str,
    program: &str,
    conf_text: &str,
    ifaces: &[&str],
) -> DaemonProcess {
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
) -> DaemonProcess {
    let (args, log) = daemon_args(name, conf_text, extra, ifaces);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    DaemonProcess::start(ns, program, &args, log)
}

/// The arguments [`start_with_args`] gives a daemon (files in [`tmp`] named after `name`), and
/// its log file.
pub fn daemon_args(
    name: &str,
    conf_text: &str,
    extra: &[&str],
    ifaces: &[&str],
) -> (Vec<String>, std::path::PathBuf) {
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
    (args.into_iter().map(str::to_owned).collect(), log)
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
    let ctl = test_support::babelctl();
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

/// The babeld-rs binary the tests run: the one `BABELD_RS_BIN_BABELD_RS` names when set (the
/// name `test_support::workspace_bin` reads for any workspace binary; `scripts/test.sh` points it
/// at the release build it has just made from the same tree and packaged), else the binary cargo
/// built for this test.
pub fn daemon_bin() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        std::env::var("BABELD_RS_BIN_BABELD_RS")
            .ok()
            .filter(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_babeld-rs").to_owned())
    })
}

/// Serialises the tests of one test binary that each run several daemons with tunnels and wait
/// on their timers (run together on a 2-core machine they starve each other), whatever
/// `--test-threads` says.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a test of `type mesh` routers can run here: namespaces, `nft`, `/dev/net/tun` and
/// every program of `tools`. Prints why not.
pub fn can_run_mesh(test: &str, tools: &[&str]) -> bool {
    if !can_use_netns(test) || !have("nft", test) || !tools.iter().all(|t| have(t, test)) {
        return false;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        println!("SKIP {test}: no /dev/net/tun");
        return false;
    }
    true
}

/// The configuration of a `type mesh` router: [`FILTERS`], `extra`, then `interface X type
/// mesh` for each of `ifaces` (no interface on the command line, no tunnel lines).
pub fn mesh_config(extra: &str, ifaces: &[&str]) -> String {
    let mut conf = format!("{FILTERS}{extra}");
    for i in ifaces {
        conf.push_str(&format!("interface {i} type mesh\n"));
    }
    conf
}

/// Starts `program` in `ns` as a `type mesh` router on `ifaces` ([`mesh_config`]).
pub fn start_mesh_router(
    ns: &Netns,
    name: &str,
    program: &str,
    extra: &str,
    ifaces: &[&str],
) -> DaemonProcess {
    start_with_config(ns, name, program, &mesh_config(extra, ifaces), &[])
}

/// Reads `monitor` lines from the control socket (port 33123) of `ns` until `done` holds for
/// the text so far, or `secs` pass: the text it got.
pub fn monitor_until(
    ns: &Netns,
    secs: u64,
    done: impl Fn(&str) -> bool + Send + 'static,
) -> std::thread::JoinHandle<String> {
    ns.spawn(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("::1", 33123)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        s.write_all(b"monitor\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while std::time::Instant::now() < deadline && !done(&text) {
            if let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        text
    })
}

/// A steady stream of 1000-byte UDP datagrams from `ns` to `to` (about 5 Mbit/s; send errors
/// ignored while routes are gone), until the returned stream is stopped or dropped.
pub struct Stream {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stream {
    pub fn start(ns: &Netns, to: &'static str) -> Stream {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = ns.spawn(move || {
            let s = std::net::UdpSocket::bind("[::]:0").unwrap();
            let buf = [0u8; 1000];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = s.send_to(&buf, to);
                std::thread::sleep(std::time::Duration::from_micros(1500));
            }
        });
        Stream {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A reproducible random sequence (xorshift) seeded from the variable `var` if set, else from
/// the process id; the seed is printed so that a failing run can be repeated.
pub fn seeded(var: &str) -> impl FnMut() -> u64 {
    let mut seed: u64 = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()))
        .max(1);
    println!("{var}={seed}");
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// A counter of a namespace's `/proc/net/snmp` (IPv4: `proto` is the line's prefix without its
/// colon, `Ip`, `Udp`, ...) or, with `proto` `"6"`, of `/proc/net/snmp6` (`field` is the whole
/// name, `Udp6InErrors`). Panics when the kernel has no such counter: a misspelt name would
/// otherwise read as zero.
pub fn snmp(ns: &Netns, proto: &str, field: &str) -> u64 {
    if proto == "6" {
        return ns
            .exec(&["cat", "/proc/net/snmp6"])
            .lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(field)).then(|| w.next().unwrap().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no {field} in /proc/net/snmp6"));
    }
    // /proc/net/snmp: a header line of names, then a line of values, per protocol.
    let text = ns.exec(&["cat", "/proc/net/snmp"]);
    let prefix = format!("{proto}:");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let values: Vec<&str> = lines[1].split_whitespace().collect();
    let i = names
        .iter()
        .position(|n| *n == field)
        .unwrap_or_else(|| panic!("no {proto}: {field} in /proc/net/snmp"));
    values[i].parse().unwrap()
}
