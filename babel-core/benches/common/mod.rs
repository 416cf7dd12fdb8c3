//! What the engine's memory benches share: a counting allocator and the full table a
//! neighbour announces.
// Each bench uses a part of this module.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use babel_wire::{Message, Prefix, RouterId, Update};

/// The system allocator, counting the bytes live on the heap and their peak: the engine's own
/// bytes, without the allocator's slack and page rounding that RSS figures include. A bench
/// makes it its global allocator.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Bytes live on the heap now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts a new peak from the bytes live now.
pub fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

/// The most bytes live since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// The full table of the memory benches: `n` /64s from 64 routers, metrics spread over 500
/// values.
pub fn full_table(n: u32) -> Vec<Message> {
    (0..n)
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
        .collect()
}
