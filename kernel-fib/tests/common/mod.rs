//! A network namespace per test, removed on drop (also when the test fails).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    dead_code
)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kernel_fib::{NetEvent, NetlinkFib, Watcher, netns};
use serde_json::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A namespace with a veth pair `va` (10.0.0.1/24, 2001:db8::1/64) and `vb` (10.0.0.2/24,
/// 2001:db8::2/64), both ends up inside it.
pub struct Ns {
    pub name: String,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

impl Ns {
    /// `None` (with the reason printed) when the test cannot run here.
    pub fn new(test: &str) -> Option<Ns> {
        if !is_root() {
            println!("SKIPPED {test}: needs root (CAP_NET_ADMIN and ip netns)");
            return None;
        }
        let name = format!(
            "kfib-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            println!("SKIPPED {test}: `ip netns add` failed");
            return None;
        }
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
        ns.ip(&["addr", "add", "10.0.0.1/24", "dev", "va"]);
        ns.ip(&["addr", "add", "10.0.0.2/24", "dev", "vb"]);
        ns.ip(&["addr", "add", "2001:db8::1/64", "dev", "va", "nodad"]);
        ns.ip(&["addr", "add", "2001:db8::2/64", "dev", "vb", "nodad"]);
        ns.ip(&["link", "set", "va", "up"]);
        ns.ip(&["link", "set", "vb", "up"]);
        Some(ns)
    }

    /// Runs `ip -n NS args`, panicking on failure; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip -n {} {:?}: {}",
            self.name,
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -j -n NS args` as a list of JSON objects.
    pub fn ip_json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        let out = self.ip(&all);
        if out.trim().is_empty() {
            return Vec::new();
        }
        match serde_json::from_str(&out).expect("ip -j output") {
            Value::Array(v) => v,
            other => panic!("unexpected ip -j output {other}"),
        }
    }

    /// Routes of protocol 42 of one family, as `ip` shows them.
    pub fn routes42(&self, v6: bool) -> Vec<Value> {
        let fam = if v6 { "-6" } else { "-4" };
        self.ip_json(&[fam, "route", "show", "table", "all", "proto", "42"])
    }

    /// Interface index of `dev` in the namespace.
    pub fn ifindex(&self, dev: &str) -> u32 {
        let links = self.ip_json(&["link", "show", "dev", dev]);
        links[0]["ifindex"].as_u64().unwrap() as u32
    }

    /// A NetlinkFib whose socket lives in this namespace.
    pub fn fib(&self) -> NetlinkFib {
        netns::in_named_netns(&self.name, NetlinkFib::new)
            .expect("enter netns")
            .expect("open netlink")
    }

    /// A watcher of every group, in this namespace, with a short receive timeout.
    pub fn watcher(&self) -> Watcher {
        let mut w = netns::in_named_netns(&self.name, || Watcher::new(kernel_fib::Groups::all()))
            .expect("enter netns")
            .expect("open watcher");
        w.set_timeout(Some(Duration::from_millis(200))).unwrap();
        w
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Reads events until one satisfies `pred` or `limit` passes; returns every event read.
pub fn wait_for(
    w: &mut Watcher,
    limit: Duration,
    mut pred: impl FnMut(&NetEvent) -> bool,
) -> (bool, Vec<NetEvent>) {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < limit {
        for ev in w.recv().unwrap() {
            let hit = pred(&ev);
            seen.push(ev);
            if hit {
                return (true, seen);
            }
        }
    }
    (false, seen)
}
