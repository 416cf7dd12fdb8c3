//! Issue 11 point 6 on real sockets: 1,024 spoofed one-Hello neighbours from 1,024 link-local
//! addresses fill babeld-rs's neighbour table for an interface; a real Debian babeld then
//! appears on the same link and is accepted at once (its route arrives), and the spoofed
//! entries are gone within a few Hello intervals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::Instant;

use common::{can_use_netns, has_route, have, node, start_router, tmp, veth, wait_for};

const SPOOFED: u16 = 1024;

fn spoofed(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0x5, 0, i)
}

fn neighbours(ns: &common::Netns) -> usize {
    common::dump_count(ns, "add neighbour")
}

#[test]
fn spoofed_hellos_do_not_lock_out_a_real_neighbour() {
    let test = "spoofed_hellos_do_not_lock_out_a_real_neighbour";
    if !can_use_netns(test) || !have("babeld", test) {
        return;
    }
    let (a, b) = (node("spa", 1), node("spb", 2));
    veth(&a, "spab", &b, "spba");
    // Hellos every 4 s, as babeld's default on wired links.
    let _da = common::DaemonProcess::start(
        &a,
        common::daemon_bin(),
        &[
            "-I",
            "",
            "-S",
            tmp("spa.state").to_str().unwrap(),
            "-d",
            "1",
            "-L",
            tmp("spa.log").to_str().unwrap(),
            "-G",
            "33123",
            "-C",
            "redistribute local ip 10.77.0.0/16 allow",
            "-C",
            "redistribute local deny",
            "spab",
        ],
        tmp("spa.log"),
    );
    a.link_local("spab");
    // The spoofer: 1,024 link-local addresses on B's side of the link, one Hello from each.
    let batch = tmp("spb.batch");
    let lines: String = (0..SPOOFED)
        .map(|i| format!("addr add {}/64 dev spba nodad\n", spoofed(i)))
        .collect();
    std::fs::write(&batch, lines).unwrap();
    b.ip(&["-batch", batch.to_str().unwrap()]);
    let ix = b.ifindex("spba");
    // One Hello from each address, in rounds (seqno = round), until the table is full: the
    // daemon may not have joined the multicast group when the first round leaves.
    let flood = |round: u16| {
        b.spawn(move || {
            for i in 0..SPOOFED {
                let s = UdpSocket::bind(SocketAddrV6::new(spoofed(i), 6696, 0, ix)).unwrap();
                // Hello: seqno `round`, interval 400 cs.
                let [hi, lo] = round.to_be_bytes();
                let pkt = [42, 2, 0, 8, 4, 6, 0, 0, hi, lo, 1, 144];
                s.send_to(
                    &pkt,
                    SocketAddrV6::new(babel_wire::MULTICAST_V6, 6696, 0, ix),
                )
                .unwrap();
            }
        })
        .join()
        .unwrap();
    };
    let mut round = 0u16;
    assert!(
        wait_for(60, || {
            if neighbours(&a) >= 1000 {
                return true;
            }
            flood(round);
            round += 1;
            false
        }),
        "the spoofed Hellos did not fill the table after {round} rounds: {} neighbours",
        neighbours(&a)
    );
    let full = neighbours(&a);
    // A real neighbour appears on the same link.
    let t = Instant::now();
    let _db = start_router(&b, "spb", "babeld", "", &["spba"]);
    // Before the fix it was refused for about 40 s, until the spoofed entries' histories ran
    // dry.
    assert!(
        wait_for(20, || has_route(&a, "10.77.0.2")),
        "the real neighbour's route did not arrive within 20 s"
    );
    let accepted = t.elapsed();
    // Before: about 150 s.
    assert!(
        wait_for(40, || neighbours(&a) <= 2),
        "spoofed neighbours linger: {}",
        neighbours(&a)
    );
    let gone = t.elapsed();
    println!(
        "{full} spoofed neighbours: the real babeld's route installed after {:.1} s, table back to {} neighbours after {:.1} s",
        accepted.as_secs_f64(),
        neighbours(&a),
        gone.as_secs_f64()
    );
}
