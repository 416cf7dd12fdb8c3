//! Bench: time and memory for one engine to absorb a full dump of N routes (default 100,000)
//! from one neighbour, as real encoded packets.
//!
//! `CARGO_TARGET_DIR=/work/target-core cargo bench -p babel-core --bench absorb [-- ROUTES]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
// The counting global allocator below is the one `unsafe` here: `GlobalAlloc` is an unsafe trait.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use babel_core::{Destination, Engine, EngineConfig, Instant, InterfaceConfig, InterfaceKind};
use babel_wire::{EncodeOptions, Hello, Ihu, Message, Prefix, RouterId, Update, encode};

/// The system allocator, counting the bytes live on the heap: the engine's own bytes per route,
/// without the allocator's slack and page rounding that the RSS figures include.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

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
    let updates: Vec<Message> = (0..n)
        .map(|i| {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 0);
            Message::Update(Update {
                prefix: Some(Prefix::new(IpAddr::V6(addr), 64).unwrap()),
                v4_via_v6: false,
                src_prefix: None,
                interval: 1600,
                seqno: 7,
                metric: 96 + (i % 500) as u16,
                router_id: Some(RouterId([2, 0, 0, 0, 0, 0, 1, (i % 64) as u8])),
                next_hop: None,
                price: Some(100),
                path_rtt: None,
                diversity: None,
            })
        })
        .collect();
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
}
