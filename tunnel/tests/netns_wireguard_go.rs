//! Interop with Debian's `wireguard-go` across two network namespaces.
//!
//! Needs root, `/dev/net/tun`, `ip`, `ping`, `wireguard-go` and `wg`
//! (apt-get install wireguard-go wireguard-tools iproute2 iputils-ping);
//! skips with a printed reason otherwise. All traffic stays inside the two
//! namespaces the test creates; namespaces and processes are removed by a
//! Drop guard, also on failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use test_support::{DaemonProcess, Netns, can_use_netns, have, ping_with, veth, wait_for};

const TUNNELD: &str = env!("CARGO_BIN_EXE_tunneld");

fn skip_reason() -> Option<String> {
    if !can_use_netns("netns_wireguard_go") {
        return Some("needs root and ip".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun missing".into());
    }
    for tool in ["wireguard-go", "wg", "ping"] {
        if !have(tool, "netns_wireguard_go") {
            return Some(format!(
                "`{tool}` not installed (apt-get install wireguard-go wireguard-tools iproute2 iputils-ping)"
            ));
        }
    }
    None
}

struct Env {
    under_a: &'static str,
    under_b: &'static str,
    ns_a: Netns,
    ns_b: Netns,
    our_if: String,
    wg_if: String,
    dir: PathBuf,
    ours: Option<DaemonProcess>,
    /// Whether our last `tunneld` reported TCP segmentation offload.
    ours_tso: bool,
    wg: Option<DaemonProcess>,
}

/// Asks politely (lets wireguard-go remove its socket), then forces (the guard's drop).
fn stop(child: &mut Option<DaemonProcess>) {
    if let Some(mut d) = child.take() {
        d.terminate_within(Duration::from_secs(3));
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Processes first, then the namespaces (dropped with the fields).
        stop(&mut self.ours);
        stop(&mut self.wg);
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.wg_if));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ip:port` in the syntax `wg` and our JSON config accept.
fn sockaddr(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}
const TUN_A: &str = "10.237.0.1";
const TUN_B: &str = "10.237.0.2";

impl Env {
    /// `variant` keeps names unique between tests of this binary, which run
    /// in parallel; `v6` selects an IPv6 underlay.
    fn new(variant: u32, v6: bool) -> Result<Env, String> {
        // The interface names reach the root namespace's /var/run/wireguard: unique per process.
        let id = (std::process::id() % 10_000) * 10 + variant;
        let (under_a, under_b, plen) = if v6 {
            ("fd00:237::1", "fd00:237::2", 64)
        } else {
            ("192.168.237.1", "192.168.237.2", 24)
        };
        let dir = std::env::temp_dir().join(format!("tunnel-netns-{id}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let env = Env {
            under_a,
            under_b,
            ns_a: Netns::new("tnlA"),
            ns_b: Netns::new("tnlB"),
            our_if: format!("tno{id}"),
            wg_if: format!("tnw{id}"),
            dir,
            ours: None,
            ours_tso: false,
            wg: None,
        };
        veth(&env.ns_a, "tva", &env.ns_b, "tvb");
        for (ns, v, a) in [(&env.ns_a, "tva", under_a), (&env.ns_b, "tvb", under_b)] {
            ns.ip(&["addr", "add", &format!("{a}/{plen}"), "dev", v]);
        }
        let ok = wait_for(5, || {
            ping_with(&env.ns_a, under_b, &["-c", "1", "-W", "1", "-q"])
        });
        if !ok {
            return Err("underlay veth never came up".into());
        }
        Ok(env)
    }

    fn start_ours(&mut self, our_sk: &str, wg_pk: &str) -> Result<(), String> {
        self.start_ours_with(our_sk, wg_pk, &[])
    }

    fn start_ours_with(&mut self, our_sk: &str, wg_pk: &str, extra: &[&str]) -> Result<(), String> {
        let cfg = format!(
            r#"{{"private_key":"{our_sk}","listen_port":51820,"peers":[{{"public_key":"{wg_pk}","endpoint":"{}","allowed_ips":["{TUN_B}/32"]}}]}}"#,
            sockaddr(self.under_b, 51821)
        );
        let path = self.dir.join("ours.json");
        std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns_a.name, TUNNELD, "run", "--config"])
            .arg(&path)
            .args(["--iface", &self.our_if, "--address", &format!("{TUN_A}/24")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        self.ours = Some(DaemonProcess {
            child,
            log: PathBuf::new(),
        });
        // Wait (bounded) for the readiness line.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "tunneld did not become ready")?;
        if !line.starts_with("ready") {
            return Err(format!("tunneld failed to start: {line:?}"));
        }
        self.ours_tso = line.contains("tso=true");
        Ok(())
    }

    fn start_wg(&mut self, wg_sk: &str, our_pk: &str) -> Result<(), String> {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns_b.name,
                "wireguard-go",
                "-f",
                &self.wg_if,
            ])
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        self.wg = Some(DaemonProcess {
            child,
            log: PathBuf::new(),
        });
        let sock = format!("/var/run/wireguard/{}.sock", self.wg_if);
        if !wait_for(10, || Path::new(&sock).exists()) {
            return Err("wireguard-go control socket never appeared".into());
        }
        let key = self.dir.join("wg.key");
        std::fs::write(&key, wg_sk).map_err(|e| e.to_string())?;
        self.ns_b.exec(&[
            "wg",
            "set",
            &self.wg_if,
            "listen-port",
            "51821",
            "private-key",
            key.to_str().unwrap(),
            "peer",
            our_pk,
            "endpoint",
            &sockaddr(self.under_a, 51820),
            "allowed-ips",
            &format!("{TUN_A}/32"),
        ]);
        self.ns_b
            .ip(&["addr", "add", &format!("{TUN_B}/24"), "dev", &self.wg_if]);
        self.ns_b.ip(&["link", "set", &self.wg_if, "up"]);
        Ok(())
    }

    /// Polls a one-echo ping through the tunnel for up to `secs`.
    fn ping(&self, from_a: bool, secs: u64) -> bool {
        let (ns, dst) = if from_a {
            (&self.ns_a, TUN_B)
        } else {
            (&self.ns_b, TUN_A)
        };
        wait_for(secs, || ping_with(ns, dst, &["-c", "1", "-W", "1", "-q"]))
    }
}

#[test]
fn ping_both_ways_and_recover_after_restarts() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED netns_wireguard_go: {why}");
        return;
    }
    let (our_sk, our_pk) = tunnel::generate_keypair(&mut rand_core::OsRng);
    let (wg_sk, wg_pk) = tunnel::generate_keypair(&mut rand_core::OsRng);
    let (our_sk, our_pk) = (our_sk.to_base64(), our_pk.to_base64());
    let (wg_sk, wg_pk) = (wg_sk.to_base64(), wg_pk.to_base64());

    let mut env = Env::new(0, false).unwrap();
    env.start_wg(&wg_sk, &our_pk).unwrap();
    env.start_ours(&our_sk, &wg_pk).unwrap();

    assert!(env.ping(true, 10), "ours -> wireguard-go");
    assert!(env.ping(false, 10), "wireguard-go -> ours");
    let show = env
        .ns_b
        .exec(&["wg", "show", &env.wg_if, "latest-handshakes"]);
    assert!(
        !show.trim().ends_with("\t0"),
        "wireguard-go saw a handshake: {show}"
    );

    // Restart our side: our fresh instance initiates on the first packet.
    stop(&mut env.ours);
    env.start_ours(&our_sk, &wg_pk).unwrap();
    assert!(env.ping(true, 10), "after restarting ours: ours -> wg");
    assert!(env.ping(false, 10), "after restarting ours: wg -> ours");

    // Restart wireguard-go: it initiates, our side answers; then our side
    // (stale session, no reply) rekeys within KEEPALIVE + REKEY_TIMEOUT.
    stop(&mut env.wg);
    env.start_wg(&wg_sk, &our_pk).unwrap();
    assert!(env.ping(false, 10), "after restarting wg: wg -> ours");
    assert!(env.ping(true, 25), "after restarting wg: ours -> wg");
}

#[test]
fn ping_over_ipv6_underlay() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED netns_wireguard_go (ipv6): {why}");
        return;
    }
    let (our_sk, our_pk) = tunnel::generate_keypair(&mut rand_core::OsRng);
    let (wg_sk, wg_pk) = tunnel::generate_keypair(&mut rand_core::OsRng);
    let mut env = Env::new(1, true).unwrap();
    env.start_wg(&wg_sk.to_base64(), &our_pk.to_base64())
        .unwrap();
    env.start_ours(&our_sk.to_base64(), &wg_pk.to_base64())
        .unwrap();
    assert!(env.ping(false, 10), "wireguard-go -> ours over IPv6");
    assert!(env.ping(true, 10), "ours -> wireguard-go over IPv6");
}

/// The byte at `i` of the test stream (a cheap position hash, so any
/// reordering, loss or duplication in the tunnel shows).
fn stream_byte(i: u64) -> u8 {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ (i as u8)
}

/// Sends `len` stream bytes over TCP from `from` to `to_ip:port` (a
/// listener in `to`) and returns how many bytes arrived intact.
fn tcp_transfer(from: &Netns, to: &Netns, to_ip: &'static str, port: u16, len: u64) -> u64 {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = to.spawn(move || {
        let l = TcpListener::bind((to_ip, port)).unwrap();
        ready_tx.send(()).unwrap();
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut got = 0u64;
        loop {
            let n = match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for b in &buf[..n] {
                if *b != stream_byte(got) {
                    return got;
                }
                got += 1;
            }
        }
        got
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let client = from.spawn(move || {
        let mut s = TcpStream::connect_timeout(
            &format!("{to_ip}:{port}").parse().unwrap(),
            Duration::from_secs(10),
        )
        .unwrap();
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut sent = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        while sent < len {
            let n = buf.len().min((len - sent) as usize);
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = stream_byte(sent + k as u64);
            }
            s.write_all(&buf[..n]).unwrap();
            sent += n as u64;
        }
    });
    client.join().unwrap();
    server.join().unwrap()
}

/// (packets, bytes) counters of `dev` in `ns`, direction "rx" or "tx".
fn counters(ns: &Netns, dev: &str, dir: &str) -> (u64, u64) {
    let read = |what: &str| -> u64 {
        ns.exec(&[
            "cat",
            &format!("/sys/class/net/{dev}/statistics/{dir}_{what}"),
        ])
        .trim()
        .parse()
        .unwrap()
    };
    (read("packets"), read("bytes"))
}

/// Bulk TCP both ways between ours and wireguard-go: every byte arrives in
/// order, which checks the segmentation of large TUN reads (ours -> wg)
/// and the coalescing of received segments into one TUN write (wg ->
/// ours). Where the kernel gives TSO, the TUN counters show that frames
/// larger than the MTU really crossed our TUN in both directions.
#[test]
fn bulk_tcp_both_ways_with_offloads() {
    bulk_tcp_both_ways(2, true);
}

/// The same without TUN offloads: one packet per TUN read and write.
#[test]
fn bulk_tcp_both_ways_without_tun_offloads() {
    bulk_tcp_both_ways(3, false);
}

fn bulk_tcp_both_ways(variant: u32, offload: bool) {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED netns_wireguard_go (bulk): {why}");
        return;
    }
    let (our_sk, our_pk) = tunnel::generate_keypair(&mut rand_core::OsRng);
    let (wg_sk, wg_pk) = tunnel::generate_keypair(&mut rand_core::OsRng);
    let mut env = Env::new(variant, false).unwrap();
    env.start_wg(&wg_sk.to_base64(), &our_pk.to_base64())
        .unwrap();
    let extra: &[&str] = if offload { &[] } else { &["--no-offload"] };
    env.start_ours_with(&our_sk.to_base64(), &wg_pk.to_base64(), extra)
        .unwrap();
    assert!(env.ping(true, 10), "ours -> wireguard-go");

    const LEN: u64 = 32 << 20;
    let tx0 = counters(&env.ns_a, &env.our_if, "tx");
    let got = tcp_transfer(&env.ns_a, &env.ns_b, TUN_B, 5201, LEN);
    assert_eq!(got, LEN, "ours -> wireguard-go: bytes intact");
    let tx1 = counters(&env.ns_a, &env.our_if, "tx");

    let rx0 = counters(&env.ns_a, &env.our_if, "rx");
    let got = tcp_transfer(&env.ns_b, &env.ns_a, TUN_A, 5202, LEN);
    assert_eq!(got, LEN, "wireguard-go -> ours: bytes intact");
    let rx1 = counters(&env.ns_a, &env.our_if, "rx");

    // The kernel's TUN counters count frames: what it handed us to send
    // (tx) and what we wrote to it (rx).
    let avg = |a: (u64, u64), b: (u64, u64)| (b.1 - a.1) / (b.0 - a.0).max(1);
    let (read_avg, write_avg) = (avg(tx0, tx1), avg(rx0, rx1));
    eprintln!(
        "tso={} average TUN read {read_avg} B, write {write_avg} B",
        env.ours_tso
    );
    if !offload {
        assert!(!env.ours_tso);
        assert!(
            read_avg <= 1420 && write_avg <= 1420,
            "plain TUN: MTU-sized frames"
        );
    } else if env.ours_tso {
        assert!(read_avg > 1420, "TSO reads larger than the MTU: {read_avg}");
        assert!(
            write_avg > 1420,
            "coalesced writes larger than the MTU: {write_avg}"
        );
    } else {
        eprintln!("no TSO on this kernel: checked the plain path only");
    }
}
