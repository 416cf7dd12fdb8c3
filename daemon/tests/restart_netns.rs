//! Issue 11 points 3 and 4: what a `kill -9` costs. The seqno never goes back or repeats across
//! crashes (RFC 8966 §3.5.1), and a router killed and restarted in the middle of a path keeps
//! forwarding: its kernel routes stay while the table is relearned and are replaced in place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::{Ipv6Addr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use babel_wire::{DecodeOptions, Message, RouterId, decode};
use common::{
    DaemonProcess, Netns, babel_routes, can_use_netns, has_route, node, ping_count, start_router,
    veth, wait_for,
};

fn kill9(d: &mut DaemonProcess) {
    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    d.child.wait().unwrap();
}

/// RFC 8966 §3.2.1: `a` is after `b` modulo 2^16.
fn seqno_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// A socket in `ns` on the Babel port, in the multicast group on `dev`.
fn listener(ns: &Netns, dev: &str) -> UdpSocket {
    let ix = ns.ifindex(dev);
    ns.spawn(move || {
        let s = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 6696)).unwrap();
        s.join_multicast_v6(&babel_wire::MULTICAST_V6, ix).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s
    })
    .join()
    .unwrap()
}

/// The seqno of the first Update from `id` heard on `s`, within 30 s.
fn first_seqno(s: &UdpSocket, id: RouterId) -> Option<u16> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let Ok(n) = s.recv(&mut buf) else { continue };
        let Ok(p) = decode(&buf[..n], &DecodeOptions::default()) else {
            continue;
        };
        for m in &p.packet.messages {
            if let Message::Update(u) = m
                && u.router_id == Some(id)
                && u.metric != u16::MAX
            {
                return Some(u.seqno);
            }
        }
    }
    None
}

/// Killed with SIGKILL the moment its first Update is on the wire, eight times over, a router
/// comes back each time with a seqno above every one it sent before.
#[test]
fn seqno_never_goes_back_across_kill9() {
    if !can_use_netns("seqno_never_goes_back_across_kill9") {
        return;
    }
    let (a, b) = (node("sqa", 1), node("sqb", 2));
    veth(&a, "sqab", &b, "sqba");
    a.link_local("sqab");
    b.link_local("sqba");
    let sock = listener(&b, "sqba");
    let id = RouterId([0x02, 0, 0, 0, 0, 0, 0, 0x11]);
    let extra = format!("router-id {id}\n");
    let mut seen: Vec<u16> = Vec::new();
    for round in 0..8 {
        // Drain what an earlier run left in the socket.
        let mut buf = [0u8; 2048];
        while sock.recv(&mut buf).is_ok() {}
        let mut d = start_router(&a, "sqa", common::daemon_bin(), &extra, &["sqab"]);
        let s = first_seqno(&sock, id)
            .unwrap_or_else(|| panic!("round {round}: no Update\n{}", d.log_text()));
        kill9(&mut d);
        if let Some(&last) = seen.last() {
            assert!(
                seqno_after(s, last),
                "round {round}: seqno {s} after {last} (all: {seen:?})"
            );
        }
        seen.push(s);
    }
    println!("seqnos across 8 kill -9: {seen:?}");
}

/// True once B's engine has selected and installed a route to `prefix` (relearned it).
fn relearned(ns: &Netns, prefix: &str) -> bool {
    common::try_control(ns, "dump\nquit\n").lines().any(|l| {
        l.starts_with("add route")
            && l.contains(&format!("prefix {prefix} "))
            && l.contains("installed yes")
    })
}

/// A helper process, killed when the test ends, also when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kill -9 and restart cycles per topology.
const ROUNDS: usize = 3;

/// A — B — C, pings from A to C every 50 ms while B (babeld-rs) is killed with SIGKILL and
/// started again, [`ROUNDS`] times. B's kernel routes stay and are replaced in place as it
/// relearns them (B's own `ip monitor` shows no deletion); routes B does not relearn are removed
/// after the grace period. The neighbours keep routing through B: it continues its Hello seqnos
/// and sends no wildcard retraction (see `docs/reliability.md`). Returns the pings lost in each
/// round, for `outer` (the program of A and C).
fn restart_in_the_middle(tag: &str, outer: &str) -> Vec<u32> {
    let (a, b, c) = (
        node(&format!("{tag}a"), 1),
        node(&format!("{tag}b"), 2),
        node(&format!("{tag}c"), 3),
    );
    let (ab, ba, bc, cb) = (
        format!("{tag}ab"),
        format!("{tag}ba"),
        format!("{tag}bc"),
        format!("{tag}cb"),
    );
    veth(&a, &ab, &b, &ba);
    veth(&b, &bc, &c, &cb);
    let _da = start_router(&a, &format!("{tag}a"), outer, "", &[&ab]);
    let mut db = start_router(
        &b,
        &format!("{tag}b"),
        common::daemon_bin(),
        "",
        &[&ba, &bc],
    );
    let _dc = start_router(&c, &format!("{tag}c"), outer, "", &[&cb]);
    for (ns, dst) in [
        (&a, "10.77.0.3"),
        (&c, "10.77.0.1"),
        (&b, "10.77.0.1"),
        (&b, "10.77.0.3"),
    ] {
        assert!(
            wait_for(60, || has_route(ns, dst)),
            "{} lacks {dst}",
            ns.name
        );
    }
    // A route B will not relearn: as if C had announced it before the crash.
    b.ip(&[
        "route",
        "add",
        "10.77.9.0/24",
        "via",
        "10.77.0.3",
        "dev",
        &bc,
        "onlink",
        "proto",
        "42",
    ]);
    let before = babel_routes(&b);
    let mon_file = common::tmp(&format!("{tag}b.mon"));
    let mon = KillOnDrop(
        Command::new("ip")
            .args(["-n", &b.name, "monitor", "route"])
            .stdout(std::fs::File::create(&mon_file).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut losses = Vec::new();
    for round in 0..ROUNDS {
        let (sent, received) = std::thread::scope(|s| {
            let pings = s.spawn(|| {
                ping_count(&a, "10.77.0.3", &["-i", "0.05", "-W", "1", "-c", "300"])
                    .expect("ping's summary")
            });
            // Let the pings flow for a second, then crash B and start it again at once.
            std::thread::sleep(Duration::from_millis(1000));
            kill9(&mut db);
            db = start_router(
                &b,
                &format!("{tag}b"),
                common::daemon_bin(),
                "",
                &[&ba, &bc],
            );
            pings.join().unwrap()
        });
        losses.push(sent - received);
        assert!(
            db.log_text().contains("resuming Hello seqnos"),
            "round {round}: B did not resume\n{}",
            db.log_text()
        );
        assert!(
            wait_for(60, || relearned(&b, "10.77.0.1/32")
                && relearned(&b, "10.77.0.3/32")),
            "round {round}: B did not relearn its routes"
        );
    }
    drop(mon);
    println!(
        "kill -9 and restart of the middle router between two {}, {ROUNDS} times: {losses:?} of 300 pings lost (50 ms apart)",
        if outer == common::daemon_bin() {
            "babeld-rs"
        } else {
            outer
        }
    );
    // Relearned routes were replaced in place, never deleted and added again.
    let events = std::fs::read_to_string(&mon_file).unwrap();
    assert!(
        !events
            .lines()
            .any(|l| l.starts_with("Deleted") && !l.contains("10.77.9.0")),
        "B deleted routes it relearned:\n{events}"
    );
    for r in &before {
        let dst = r.split_whitespace().next().unwrap();
        if dst != "10.77.9.0/24" {
            assert!(has_route(&b, dst), "{dst} gone after restart");
        }
    }
    // The stale route nobody relearned goes after the grace period (30 s).
    assert!(
        wait_for(60, || !has_route(&b, "10.77.9.0/24")),
        "stale route never removed"
    );
    losses
}

/// Between two Debian babeld neighbours: they keep routing through B across each crash.
#[test]
fn kill9_restart_between_babeld_neighbours() {
    if !can_use_netns("kill9_restart_between_babeld_neighbours")
        || !common::have("babeld", "kill9_restart_between_babeld_neighbours")
    {
        return;
    }
    let lost = restart_in_the_middle("grx", "babeld");
    // Before the graceful restart: 37-72 pings (babeld drops the routes through a neighbour
    // that sends a wildcard retraction, and resets its history when its Hello seqno jumps).
    assert!(lost.iter().all(|l| *l == 0), "pings lost: {lost:?}");
}

/// Between two babeld-rs neighbours: the same.
#[test]
fn kill9_restart_between_babeld_rs_neighbours() {
    if !can_use_netns("kill9_restart_between_babeld_rs_neighbours") {
        return;
    }
    let lost = restart_in_the_middle("gry", common::daemon_bin());
    // Before: 7-77 pings (the same, and a loop through C: B had lost its feasibility distances
    // and took C's route to A, which goes through B, before A's own).
    assert!(lost.iter().all(|l| *l == 0), "pings lost: {lost:?}");
}
