//! Bench: time and memory for one engine to absorb a full dump of N routes (default 100,000)
//! from one neighbour, as real encoded packets.
//!
//! `cargo bench -p babel-core --bench absorb [-- ROUTES]`
//!
//! With `ABSORB_KEEP=1` the engine is not freed at the end, so that a heap profiler's "leaked"
//! figures are the engine's tables after re-advertising, by allocation site:
//! `ABSORB_KEEP=1 heaptrack target/release/deps/absorb-* 100000`, then
//! `heaptrack_print --print-leaks 1 --print-peaks 0 --print-allocators 0 --print-temporary 0`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
// The counting global allocator below is the one `unsafe` here: `GlobalAlloc` is an unsafe trait.
#![allow(unsafe_code)]

use std::net::IpAddr;
use std::time::Duration;

use babel_core::{Destination, Engine, EngineConfig, Instant, InterfaceConfig, InterfaceKind};
use babel_wire::{EncodeOptions, Hello, Ihu, Message, RouterId, encode};

mod common;
use common::{Counting, live};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let us: IpAddr = "fe80::1".parse().unwrap();
    let nb: IpAddr = "fe80::2".parse().unwrap();
    let mut now = Instant::from_secs(1);
    let mut cfg = EngineConfig::new(RouterId([2, 0, 0, 0, 0, 0, 0, 1]));
    cfg.events = false;
    cfg.seqno = Some(1);
    let mut e = Engine::new(cfg, now).unwrap();
    e.interface_up(
        now,
        1,
        InterfaceConfig::new("eth0", InterfaceKind::Wired, us),
    );
    // A second interface, so learned routes are re-advertised somewhere (split horizon).
    e.interface_up(
        now,
        2,
        InterfaceConfig::new("eth1", InterfaceKind::Wired, "fe80::3".parse().unwrap()),
    );
    let opts = EncodeOptions::default();
    for seq in 1..=2u16 {
        let mut msgs = vec![Message::Hello(Hello {
            unicast: false,
            seqno: seq,
            interval: 400,
            timestamp: None,
        })];
        msgs.push(Message::Ihu(Ihu {
            address: Some(us),
            rxcost: 96,
            interval: 1200,
            timestamp: None,
        }));
        for p in encode(&msgs, &opts).unwrap() {
            e.handle_packet(now, 1, nb, Destination::Multicast, &p);
        }
    }
    // The dump: n /64s from 64 routers.
    let updates: Vec<Message> = common::full_table(n);
    let packets = encode(&updates, &opts).unwrap();
    let wire_bytes: usize = packets.iter().map(|p| p.len()).sum();
    drop(updates);
    while e.poll_transmit().is_some() {}
    let rss0 = rss_kib();
    let heap0 = live();
    let t0 = std::time::Instant::now();
    for p in &packets {
        e.handle_packet(now, 1, nb, Destination::Multicast, p);
    }
    let absorb = t0.elapsed();
    let rss_absorbed = rss_kib();
    let heap_absorbed = live();
    let mut installs = 0;
    while e.poll_route().is_some() {
        installs += 1;
    }
    // Send the triggered updates the dump caused (re-advertisement on eth1).
    let t1 = std::time::Instant::now();
    now = now + Duration::from_secs(3);
    e.handle_timeout(now);
    let mut out_packets = 0;
    let mut out_bytes = 0;
    while let Some(t) = e.poll_transmit() {
        out_packets += 1;
        out_bytes += t.bytes.len();
    }
    let flush = t1.elapsed();
    let rss1 = rss_kib();
    let heap1 = live();
    drop(packets);
    let per_route = (rss1.saturating_sub(rss0) * 1024) as f64 / f64::from(n);
    println!("routes                     {n}");
    println!(
        "dump on the wire           {wire_bytes} bytes ({:.1} B/route)",
        wire_bytes as f64 / f64::from(n)
    );
    println!(
        "absorb (decode+select)     {absorb:?} ({:.2} µs/route)",
        absorb.as_secs_f64() * 1e6 / f64::from(n)
    );
    println!("kernel installs            {installs}");
    println!("re-advertise (1 iface)     {flush:?}: {out_packets} packets, {out_bytes} bytes");
    println!("route entries              {}", e.route_count());
    let per_route_absorbed = (rss_absorbed.saturating_sub(rss0) * 1024) as f64 / f64::from(n);
    println!(
        "RSS growth after absorb    {} KiB ({per_route_absorbed:.0} bytes/route)",
        rss_absorbed.saturating_sub(rss0)
    );
    let per = |h: usize| h.saturating_sub(heap0) as f64 / f64::from(n);
    println!(
        "engine heap after absorb   {} KiB ({:.0} bytes/route, pending updates included)",
        heap_absorbed.saturating_sub(heap0) / 1024,
        per(heap_absorbed)
    );
    println!(
        "engine heap after re-advert {} KiB ({:.0} bytes/route: route table + source table)",
        heap1.saturating_sub(heap0) / 1024,
        per(heap1)
    );
    println!(
        "RSS growth after re-advert {} KiB ({per_route:.0} bytes/route, incl. source table)",
        rss1.saturating_sub(rss0)
    );
    if std::env::var_os("ABSORB_KEEP").is_some() {
        std::mem::forget(e);
    }
}
