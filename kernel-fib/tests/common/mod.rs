//! A network namespace per test (the shared `test-support` harness) with a veth pair inside,
//! and kernel-fib's own sockets opened in it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    dead_code
)]

use std::ops::Deref;
use std::time::{Duration, Instant};

use kernel_fib::{NetEvent, NetlinkFib, Watcher, netns};
use serde_json::Value;
use test_support::{Netns, can_use_netns};

/// A namespace with a veth pair `va` (10.0.0.1/24, 2001:db8::1/64) and `vb` (10.0.0.2/24,
/// 2001:db8::2/64), both ends up inside it. Dereferences to the [`Netns`] (`ip`, `ip_json`,
/// `ifindex`, `name`).
pub struct Ns {
    netns: Netns,
}

impl Deref for Ns {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.netns
    }
}

impl Ns {
    /// `None` (with the reason printed) when the test cannot run here.
    pub fn new(test: &str) -> Option<Ns> {
        if !can_use_netns(test) {
            return None;
        }
        let ns = Ns {
            netns: Netns::new("kfib"),
        };
        ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
        ns.ip(&["addr", "add", "10.0.0.1/24", "dev", "va"]);
        ns.ip(&["addr", "add", "10.0.0.2/24", "dev", "vb"]);
        ns.ip(&["addr", "add", "2001:db8::1/64", "dev", "va", "nodad"]);
        ns.ip(&["addr", "add", "2001:db8::2/64", "dev", "vb", "nodad"]);
        ns.ip(&["link", "set", "va", "up"]);
        ns.ip(&["link", "set", "vb", "up"]);
        Some(ns)
    }

    /// Routes of protocol 42 of one family, as `ip` shows them.
    pub fn routes42(&self, v6: bool) -> Vec<Value> {
        let fam = if v6 { "-6" } else { "-4" };
        self.ip_json(&[fam, "route", "show", "table", "all", "proto", "42"])
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

/// Reads events until one satisfies `pred` or `limit` passes; returns every event read.
pub fn wait_for_event(
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
