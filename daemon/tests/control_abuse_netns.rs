//! Issue 11 point 1 (and issue 19 point 6): the control socket under abuse, on a real daemon in
//! a network namespace. Clients that flood commands without reading, send endless lines, or hold
//! connections open must neither grow the daemon's memory without bound nor lock other clients
//! out; the Unix socket file goes away on a clean exit. Prints the memory figures of
//! `docs/reliability.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Netns, can_use_netns, node, start_router, tmp, try_control, wait_for};

/// A fresh client gets a full `dump` answered.
fn served(ns: &Netns) -> bool {
    wait_for(30, || try_control(ns, "dump\nquit\n").ends_with("ok\n"))
}

/// Connects `n` clients that each write `bytes` repeatedly (up to `total` bytes, or until the
/// daemon closes them) and never read. Returns how many were closed by the daemon.
fn flood(ns: &Netns, n: usize, bytes: &'static [u8], total: usize) -> usize {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            ns.spawn(move || {
                let mut s = std::net::TcpStream::connect(("::1", 33123)).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut sent = 0;
                while sent < total {
                    if s.write_all(bytes).is_err() {
                        return true;
                    }
                    sent += bytes.len();
                }
                false
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|c| *c)
        .count()
}

#[test]
fn control_socket_abuse_is_bounded() {
    if !can_use_netns("control_socket_abuse_is_bounded") {
        return;
    }
    let ns = node("ctl", 1);
    let sock = tmp("ctl-ro.sock");
    let _ = std::fs::remove_file(&sock);
    let mut d = start_router(
        &ns,
        "ctl",
        common::daemon_bin(),
        &format!("local-path {}\n", sock.display()),
        &["lo"],
    );
    assert!(served(&ns), "{}", d.log_text());
    let pid = d.child.id();
    let (base, _) = common::memory(pid);
    println!("baseline: RSS {base} kB");

    // 20 clients sending junk and `dump` without ever reading the replies.
    let junk: &'static [u8] = b"dump\nxyzzy plugh\ndump json\nmonitor\n";
    let closed = flood(&ns, 20, junk, 64 << 20);
    let (rss, peak) = common::memory(pid);
    println!("20 non-reading flooders: {closed}/20 dropped, RSS {rss} kB, peak {peak} kB");
    assert_eq!(closed, 20, "the slow readers were not dropped");
    assert!(served(&ns));

    // Endless lines: 4 clients, 64 MiB each, never a newline.
    let line: &'static [u8] = &[b'x'; 65536];
    let closed = flood(&ns, 4, line, 64 << 20);
    let (rss, peak) = common::memory(pid);
    println!("4 x 64 MiB without a newline: {closed}/4 dropped, RSS {rss} kB, peak {peak} kB");
    assert!(served(&ns));

    // 300 connections held open and silent: a new client still gets in, read-only or not.
    let held: Vec<std::net::TcpStream> = ns
        .spawn(|| {
            (0..300)
                .filter_map(|_| std::net::TcpStream::connect(("::1", 33123)).ok())
                .collect()
        })
        .join()
        .unwrap();
    println!("{} idle connections held", held.len());
    assert!(served(&ns), "a new client was locked out");
    let ro = sock.clone();
    let answer = ns
        .spawn(move || {
            let mut s = std::os::unix::net::UnixStream::connect(&ro).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"dump\nquit\n").unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .join()
        .unwrap();
    assert!(answer.ends_with("ok\n"), "{answer}");
    let (rss, peak) = common::memory(pid);
    println!("300 held connections: RSS {rss} kB, peak {peak} kB");
    // Everything above is a few MiB of socket buffers at most; 64 MiB means a queue grew.
    assert!(peak < 64 * 1024, "peak RSS {peak} kB");
    drop(held);

    // A clean exit removes the Unix socket file (babeld refuses to start while it exists).
    assert!(sock.exists());
    assert!(d.terminate().is_some_and(|s| s.success()));
    assert!(!sock.exists(), "control socket file left behind");
}
