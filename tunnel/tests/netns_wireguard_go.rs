//! Interop with Debian's `wireguard-go` across two network namespaces.
//!
//! Needs root, `/dev/net/tun`, `ip`, `ping`, `wireguard-go` and `wg`
//! (apt-get install wireguard-go wireguard-tools iproute2 iputils-ping);
//! skips with a printed reason otherwise. All traffic stays inside the two
//! namespaces the test creates; namespaces and processes are removed by a
//! Drop guard, also on failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use test_support::{Daemon, Netns, can_use_netns, have, ping_with, veth, wait_for};

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
    ours: Option<Daemon>,
    wg: Option<Daemon>,
}

/// Asks politely (lets wireguard-go remove its socket), then forces (the guard's drop).
fn stop(child: &mut Option<Daemon>) {
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
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        self.ours = Some(Daemon {
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
        self.wg = Some(Daemon {
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
