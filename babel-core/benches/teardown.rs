//! Bench: the live heap while one engine selects again the 100,000 routes (by default) it
//! learned from one neighbour, when that neighbour's txcost becomes infinite (`cost`), when it
//! retracts them all (`retract`) or when its interface goes down (`down`): in slices of
//! [`babel_core::RESELECT_SLICE`] with the outputs drained between slices, as a host drives the
//! engine, against all of them in one input (`set_reselect_slice(usize::MAX)`, the engine
//! before slices), alternately in the same run.
//!
//! `cargo bench -p babel-core --bench teardown [-- ROUTES [ROUNDS]]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
// The counting global allocator below is the one `unsafe` here: `GlobalAlloc` is an unsafe trait.
#![allow(unsafe_code)]

use std::time::Duration;

use babel_core::{Destination, Engine, EngineConfig, Instant, InterfaceConfig, InterfaceKind};
use babel_wire::{EncodeOptions, Hello, Ihu, Message, RouterId, Update, encode};

mod common;
use common::{Counting, live, peak, reset_peak};

#[global_allocator]
static GLOBAL: Counting = Counting;

const US: &str = "fe80::1";
const NB: &str = "fe80::2";

fn hello_ihu(seqno: u16, rxcost: u16) -> Vec<Message> {
    vec![
        Message::Hello(Hello {
            unicast: false,
            seqno,
            interval: 400,
            timestamp: None,
        }),
        Message::Ihu(Ihu {
            address: Some(US.parse().unwrap()),
            rxcost,
            interval: 1200,
            timestamp: None,
        }),
    ]
}

fn receive(e: &mut Engine, now: Instant, msgs: &[Message]) {
    for p in encode(msgs, &EncodeOptions::default()).unwrap() {
        e.handle_packet(now, 1, NB.parse().unwrap(), Destination::Multicast, &p);
    }
}

/// An engine that learned `n` routes from one neighbour on eth0 and re-advertised them on eth1,
/// every output drained.
fn learned(n: u32, now: Instant) -> Engine {
    let mut cfg = EngineConfig::new(RouterId([2, 0, 0, 0, 0, 0, 0, 1]));
    cfg.events = false;
    cfg.seqno = Some(1);
    let mut e = Engine::new(cfg, now).unwrap();
    e.interface_up(
        now,
        1,
        InterfaceConfig::new("eth0", InterfaceKind::Wired, US.parse().unwrap()),
    );
    e.interface_up(
        now,
        2,
        InterfaceConfig::new("eth1", InterfaceKind::Wired, "fe80::3".parse().unwrap()),
    );
    for seq in 1..=2u16 {
        receive(&mut e, now, &hello_ihu(seq, 96));
    }
    let updates: Vec<Message> = common::full_table(n);
    receive(&mut e, now, &updates);
    drop(updates);
    e.handle_timeout(now + Duration::from_secs(3));
    drop(e.take_outputs());
    e
}

/// What one run measured.
struct Run {
    /// Live heap when the change arrives (the engine's tables).
    steady: usize,
    /// Peak above it until the last slice is done and its outputs drained.
    reselection: usize,
    /// Still held above it when the last slice is done: the triggered updates and urgent
    /// repeats pending, the seqno requests outstanding.
    held: usize,
    /// Peak above it until the triggered updates are sent too.
    with_flush: usize,
    calls: usize,
    route_changes: usize,
    packets: usize,
}

/// The change, then the host's loop at the same instant: drain every output, run the timers
/// due (the next slice), until nothing is due; then the flush of the triggered updates.
fn run(n: u32, change: &str, slice: usize) -> Run {
    let mut now = Instant::from_secs(1);
    let mut e = learned(n, now);
    e.set_reselect_slice(slice);
    now = now + Duration::from_secs(4);
    let steady = live();
    reset_peak();
    match change {
        "cost" => receive(&mut e, now, &hello_ihu(3, 0xFFFF)),
        "retract" => {
            let w = Message::Update(Update {
                prefix: None,
                v4_via_v6: false,
                src_prefix: None,
                interval: 1600,
                seqno: 8,
                metric: 0xFFFF,
                router_id: None,
                next_hop: None,
                price: None,
                path_rtt: None,
                diversity: None,
            });
            receive(&mut e, now, &[w]);
        }
        "down" => e.interface_down(now, 1),
        other => panic!("unknown change {other}"),
    }
    let (mut calls, mut route_changes, mut packets) = (0, 0, 0);
    loop {
        let (t, r, ev) = e.take_outputs();
        packets += t.len();
        route_changes += r.len();
        drop((t, r, ev));
        if e.poll_timeout().is_none_or(|at| at > now) {
            break;
        }
        e.handle_timeout(now);
        calls += 1;
    }
    let reselection = peak().saturating_sub(steady);
    let held = live().saturating_sub(steady);
    e.handle_timeout(now + Duration::from_secs(3));
    let (t, r, _) = e.take_outputs();
    packets += t.len();
    route_changes += r.len();
    drop((t, r));
    let with_flush = peak().saturating_sub(steady);
    Run {
        steady,
        reselection,
        held,
        with_flush,
        calls,
        route_changes,
        packets,
    }
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().map_or(100_000, |n| *n as u32);
    let rounds = args.get(1).map_or(2, |r| *r as usize);
    println!("{n} routes from one neighbour; live heap above the steady state (MiB)");
    println!(
        "{:<8} {:<10} {:>7} {:>12} {:>6} {:>12} {:>6} {:>14} {:>8}",
        "change",
        "slices",
        "steady",
        "reselection",
        "held",
        "with flush",
        "calls",
        "route changes",
        "packets"
    );
    for round in 0..rounds {
        for change in ["cost", "retract", "down"] {
            // Alternately first, so that neither always runs on a warmer heap.
            let order = if round % 2 == 0 {
                [usize::MAX, babel_core::RESELECT_SLICE]
            } else {
                [babel_core::RESELECT_SLICE, usize::MAX]
            };
            for slice in order {
                let r = run(n, change, slice);
                let label = if slice == usize::MAX {
                    "one step".to_string()
                } else {
                    format!("{slice}")
                };
                println!(
                    "{change:<8} {label:<10} {:>7.1} {:>12.1} {:>6.1} {:>12.1} {:>6} {:>14} {:>8}",
                    mib(r.steady),
                    mib(r.reselection),
                    mib(r.held),
                    mib(r.with_flush),
                    r.calls,
                    r.route_changes,
                    r.packets
                );
            }
        }
    }
}
