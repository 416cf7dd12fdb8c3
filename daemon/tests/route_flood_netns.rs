//! Issue 11 point 7: a neighbour floods 100,000 routes at a babeld-rs configured with the caps
//! its defaults give a 128 MiB router (`daemon::memcaps`: 32,768 routes, 8,192 per neighbour).
//! The caps hold, the daemon keeps routing, and its memory stays far below 128 MiB.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::Duration;

use babel_wire::{EncodeOptions, Hello, Ihu, Message, Prefix, RouterId, Update, encode};
use common::{can_use_netns, node, start_router, try_control, veth, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_babeld-rs");
const FLOOD: u32 = 100_000;

fn routes(ns: &common::Netns) -> usize {
    common::dump_count(ns, "add route")
}

#[test]
fn a_route_flood_stops_at_the_small_router_caps() {
    if !can_use_netns("a_route_flood_stops_at_the_small_router_caps") {
        return;
    }
    let (a, b) = (node("rfa", 1), node("rfb", 2));
    veth(&a, "rfab", &b, "rfba");
    let caps = daemon::memcaps::limits(Some(128 << 20), None, None);
    let mut d = start_router(
        &a,
        "rfa",
        BIN,
        &format!(
            "max-routes {}\nmax-routes-per-neighbour {}\n",
            caps.max_routes, caps.max_routes_per_neighbour
        ),
        &["rfab"],
    );
    let a_ll = a.link_local("rfab");
    // The flooder speaks from an address of its own (binding the kernel's link-local address
    // and sending fails with EINVAL here).
    let b_ll: Ipv6Addr = "fe80::b0:1".parse().unwrap();
    b.ip(&["addr", "add", "fe80::b0:1/64", "dev", "rfba", "nodad"]);
    assert!(wait_for(30, || try_control(&a, "dump\nquit\n").ends_with("ok\n")));
    let ix = b.ifindex("rfba");
    // The flooder: Hellos and an IHU make it a neighbour, then 100,000 /64s from 64 routers.
    let flood = b.spawn(move || {
        let s = UdpSocket::bind(SocketAddrV6::new(b_ll, 6696, 0, ix)).unwrap();
        let to = SocketAddrV6::new(babel_wire::MULTICAST_V6, 6696, 0, ix);
        let opts = EncodeOptions::default();
        let hello = |seqno: u16| {
            vec![
                Message::Hello(Hello {
                    unicast: false,
                    seqno,
                    interval: 100,
                    timestamp: None,
                }),
                Message::Ihu(Ihu {
                    address: Some(IpAddr::V6(a_ll)),
                    rxcost: 96,
                    interval: 300,
                    timestamp: None,
                }),
            ]
        };
        // The first sends on a fresh link may fail (EINVAL) for a moment: wait until one passes.
        let first = encode(&hello(1), &opts).unwrap();
        assert!(
            wait_for(10, || s.send_to(&first[0], to).is_ok()),
            "cannot send on the link"
        );
        for seq in 2..=4u16 {
            for p in encode(&hello(seq), &opts).unwrap() {
                s.send_to(&p, to).unwrap();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let updates: Vec<Message> = (0..FLOOD)
            .map(|i| {
                let addr = Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 0);
                Message::Update(Update {
                    prefix: Some(Prefix::new(IpAddr::V6(addr), 64).unwrap()),
                    v4_via_v6: false,
                    src_prefix: None,
                    interval: 6000,
                    seqno: 7,
                    metric: 96,
                    router_id: Some(RouterId([2, 0, 0, 0, 0, 0, 1, (i % 64) as u8])),
                    next_hop: None,
                    price: None,
                    path_rtt: None,
                    diversity: None,
                })
            })
            .collect();
        let packets = encode(&updates, &opts).unwrap();
        let n = packets.len();
        for (k, p) in packets.iter().enumerate() {
            s.send_to(p, to).unwrap();
            if k % 20 == 0 {
                // Keep the neighbour alive, and let the daemon's socket drain.
                for h in encode(&hello(5 + (k / 20) as u16), &opts).unwrap() {
                    s.send_to(&h, to).unwrap();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        n
    });
    let packets = flood.join().unwrap();
    let pid = d.child.id();
    assert!(
        wait_for(60, || routes(&a) >= caps.max_routes_per_neighbour),
        "the flood did not reach the cap: {} routes\n{}",
        routes(&a),
        d.log_text()
    );
    let stored = routes(&a);
    let (rss, peak) = common::memory(pid);
    println!(
        "{FLOOD} routes flooded in {packets} packets; caps {} / {} per neighbour: {stored} stored, RSS {rss} kB, peak {peak} kB",
        caps.max_routes, caps.max_routes_per_neighbour
    );
    assert_eq!(stored, caps.max_routes_per_neighbour);
    assert!(d.alive());
    // Far below the 128 MiB such a router has; the caps assume a quarter of it for routes.
    assert!(peak < 96 * 1024, "peak RSS {peak} kB");
    assert!(
        try_control(&a, "dump counters\nquit\n").contains("routes_over_limit"),
        "no over-limit counter"
    );
}
