//! Issue 11 point 6: spoofed one-Hello neighbours must not lock real ones out. An interface's
//! table full of unproven neighbours makes room for a newcomer by evicting the oldest unproven
//! one; a neighbour that has proved itself (an IHU came back) is never evicted; unproven
//! neighbours age out after three Hello intervals of silence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use babel_core::{InterfaceKind, Limits};
use common::*;

fn spoofed(i: u16) -> IpAddr {
    format!("fe80::5:{i:x}").parse().unwrap()
}

fn has(h: &H, a: IpAddr) -> bool {
    h.e.neighbours(h.now).iter().any(|n| n.address == a)
}

#[test]
fn spoofed_hellos_do_not_lock_out_real_neighbours() {
    let mut cfg = config();
    cfg.limits = Limits {
        max_neighbours_per_interface: 1024,
        ..Limits::default()
    };
    let mut h = H::with(cfg, InterfaceKind::Wired);
    // A real neighbour that has proved itself before the flood.
    let old = nb(1);
    h.establish(old);
    // 1,024 spoofed neighbours, one Hello each, within a second: the table is full.
    for i in 0..1024 {
        let m = h.hello(spoofed(i));
        h.recv(spoofed(i), &[m]);
    }
    assert_eq!(h.e.neighbours(h.now).len(), 1024);
    assert!(has(&h, old), "a proven neighbour was evicted");
    // A real new neighbour is accepted at once, in place of the oldest spoofed one.
    let new = nb(2);
    h.establish(new);
    assert!(has(&h, new), "the real neighbour was refused");
    assert!(!has(&h, spoofed(0)));
    assert_eq!(h.e.neighbours(h.now).len(), 1024);
    // Another flood does not push it out: it has proved itself.
    for i in 1024..3072 {
        let m = h.hello(spoofed(i));
        h.recv(spoofed(i), &[m]);
    }
    assert!(has(&h, new) && has(&h, old));
    // The spoofed entries age out once they missed three Hellos (4 s apart), while the
    // real neighbours keep talking.
    for _ in 0..20 {
        h.advance(Duration::from_secs(1));
        for a in [old, new] {
            let m = h.hello(a);
            h.recv(a, &[m, ihu(96)]);
        }
    }
    let left: Vec<IpAddr> = h.e.neighbours(h.now).iter().map(|n| n.address).collect();
    assert_eq!(left.len(), 2, "{} neighbours left", left.len());
    assert!(has(&h, old) && has(&h, new));
}
