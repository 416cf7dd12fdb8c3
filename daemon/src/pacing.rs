//! Pacing what we send on a link (issue 11 point 5).
//!
//! A full table sent at once (after a restart, or to a new neighbour) is hundreds of packets in a
//! few milliseconds; a babeld neighbour with the kernel's default receive buffer (about 200 KiB,
//! some 90 packets) drops most of them and needs minutes of periodic updates to fill the gaps.
//! [`Pacer`] is a token bucket per interface: a burst of [`BURST`] packets, then [`RATE`] packets
//! per second. Small packets (Hellos, IHUs, acknowledgements: under [`SMALL`] bytes) never wait
//! behind a table, so neighbours do not time out while it drains. The queue per interface is
//! bounded ([`MAX_QUEUED`] packets); beyond it the oldest Updates are dropped and counted, and
//! the protocol's periodic updates repair the loss. Sans-IO: the daemon passes the time.
//!
//! A periodic dump is not queued whole: the engine makes it a part at a time
//! ([`babel_core::Engine::continue_dump`]) as the queue of its interface drains
//! ([`send_dumps`]), so at most [`DUMP_AHEAD`] packets and one part's wait (issue 18: a dump of
//! 100,000 routes held 1-3 MB of packets here).

use babel_core::Transmit;
use babel_core::record::{Outputs, RecordingDriver};
use clock::Instant;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Packets sent back to back on an interface.
pub const BURST: f64 = 32.0;
/// Packets per second on an interface once the burst is spent (about 580 KB/s of full
/// packets).
pub const RATE: f64 = 400.0;
/// Packets shorter than this are sent at once.
pub const SMALL: usize = 256;
/// Packets waiting per interface (about 48 MB of full packets: a 1,000,000-route table).
pub const MAX_QUEUED: usize = 32_768;
/// The next part of a periodic dump is made once fewer packets than this wait on its
/// interface (one burst: the queue never runs dry while the pacer sends).
pub const DUMP_AHEAD: usize = BURST as usize;
/// A queue that drains keeps at most this many slots of what a burst made it grow to.
const QUEUE_KEEP: usize = 64;

#[derive(Debug)]
struct Bucket<T> {
    tokens: f64,
    at: Instant,
    queue: VecDeque<T>,
}

/// Per-interface token buckets and queues of packets `T`.
#[derive(Debug, Default)]
pub struct Pacer<T> {
    buckets: HashMap<u32, Bucket<T>>,
    /// Packets dropped because a queue was full.
    pub dropped: u64,
}

impl<T> Pacer<T> {
    /// An empty pacer.
    pub fn new() -> Self {
        Pacer {
            buckets: HashMap::new(),
            dropped: 0,
        }
    }

    fn bucket(&mut self, ifindex: u32, now: Instant) -> &mut Bucket<T> {
        let b = self.buckets.entry(ifindex).or_insert_with(|| Bucket {
            tokens: BURST,
            at: now,
            queue: VecDeque::new(),
        });
        let dt = now.saturating_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + dt * RATE).min(BURST);
        b.at = now;
        b
    }

    /// Offers a packet of `len` bytes for `ifindex`: `Some(p)` to send now, `None` if queued.
    pub fn offer(&mut self, ifindex: u32, len: usize, p: T, now: Instant) -> Option<T> {
        let b = self.bucket(ifindex, now);
        if len < SMALL {
            return Some(p);
        }
        if b.queue.is_empty() && b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Some(p);
        }
        b.queue.push_back(p);
        if b.queue.len() > MAX_QUEUED {
            b.queue.pop_front();
            self.dropped += 1;
        }
        None
    }

    /// The queued packets that may be sent now, in order.
    pub fn due(&mut self, now: Instant) -> Vec<(u32, T)> {
        let ifs: Vec<u32> = self.buckets.keys().copied().collect();
        let mut out = Vec::new();
        for ix in ifs {
            let b = self.bucket(ix, now);
            while b.tokens >= 1.0 {
                let Some(p) = b.queue.pop_front() else {
                    break;
                };
                b.tokens -= 1.0;
                out.push((ix, p));
            }
            // A burst (a full table to a new neighbour) grows the queue to thousands of
            // slots; they are not kept once it has drained.
            if b.queue.is_empty() && b.queue.capacity() > QUEUE_KEEP {
                b.queue.shrink_to(QUEUE_KEEP);
            }
        }
        out
    }

    /// When the next queued packet may go, if any is queued.
    pub fn next_due(&self) -> Option<Instant> {
        self.buckets
            .values()
            .filter(|b| !b.queue.is_empty())
            .map(|b| {
                let missing = (1.0 - b.tokens).max(0.0);
                b.at + Duration::from_secs_f64(missing / RATE)
            })
            .min()
    }

    /// Forgets an interface's queue (it went down).
    pub fn forget(&mut self, ifindex: u32) {
        self.buckets.remove(&ifindex);
    }

    /// Packets waiting on all interfaces.
    pub fn queued(&self) -> usize {
        self.buckets.values().map(|b| b.queue.len()).sum()
    }

    /// Packets waiting on `ifindex`.
    pub fn queued_on(&self, ifindex: u32) -> usize {
        self.buckets.get(&ifindex).map_or(0, |b| b.queue.len())
    }

    /// Slots the queues hold (for tests: a drained queue gives back what a burst took).
    pub fn capacity(&self) -> usize {
        self.buckets.values().map(|b| b.queue.capacity()).sum()
    }
}

/// Offers packets to the pacer: those that may go now are added to `ready`, in order.
/// Packets of an interface for which `unpaced` is true (signed packets keep their order: the
/// receiver refuses a packet counter that goes back) go at once.
pub fn offer_transmits(
    pacer: &mut Pacer<Transmit>,
    transmits: Vec<Transmit>,
    wall: Instant,
    unpaced: impl Fn(u32) -> bool,
    ready: &mut Vec<Transmit>,
) {
    for t in transmits {
        let (ix, len) = (t.ifindex, t.bytes.len());
        if unpaced(ix) {
            ready.push(t);
        } else if let Some(t) = pacer.offer(ix, len, t, wall) {
            ready.push(t);
        }
    }
}

/// Makes the periodic dumps under way a part at a time while their interface has fewer than
/// [`DUMP_AHEAD`] packets waiting, and offers the packets ([`offer_transmits`]; a dump whose
/// packets go at once is made whole). Only packets come out of a part: the routes and events
/// of the engine's outputs are left for the caller's next drain.
pub fn send_dumps(
    engine: &mut RecordingDriver,
    pacer: &mut Pacer<Transmit>,
    now: babel_core::Instant,
    wall: Instant,
    unpaced: impl Fn(u32) -> bool,
    ready: &mut Vec<Transmit>,
) -> Outputs {
    let mut rest = Outputs::default();
    let dumping: Vec<u32> = engine.dumps_under_way().collect();
    for ix in dumping {
        while pacer.queued_on(ix) < DUMP_AHEAD {
            let more = engine.continue_dump(now, ix);
            let mut out = engine.drain();
            offer_transmits(
                pacer,
                std::mem::take(&mut out.transmits),
                wall,
                &unpaced,
                ready,
            );
            rest.routes.append(&mut out.routes);
            rest.events.append(&mut out.events);
            if !more {
                break;
            }
        }
    }
    rest
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_and_small_packets_never_wait() {
        let t0 = clock::now();
        let mut p = Pacer::new();
        let sent_now = (0..100u32).filter_map(|i| p.offer(1, 1400, i, t0)).count();
        assert_eq!(sent_now, BURST as usize);
        assert_eq!(p.queued(), 100 - BURST as usize);
        // A Hello goes at once, the table waits.
        assert_eq!(p.offer(1, 40, 999, t0), Some(999));
        // Another interface has its own bucket.
        assert_eq!(p.offer(2, 1400, 7, t0), Some(7));
        let next = p.next_due().unwrap();
        assert!(next > t0 && next <= t0 + Duration::from_millis(3));
        // After 50 ms, 20 more packets, in order.
        let due = p.due(t0 + Duration::from_millis(50));
        assert_eq!(due.len(), 20);
        assert_eq!(due.first(), Some(&(1, BURST as u32)));
        // A long pause refills the bucket to one burst, no more.
        let due = p.due(t0 + Duration::from_secs(10));
        assert_eq!(due.len(), BURST as usize);
        let due = p.due(t0 + Duration::from_secs(20));
        assert_eq!(due.len(), 100 - 2 * BURST as usize - 20);
        assert!(p.next_due().is_none());
    }

    /// A periodic dump of 100,000 routes goes out a part at a time: its interface's queue
    /// never holds more than [`DUMP_AHEAD`] packets and a part's, the pacer's rate is kept,
    /// and every route is sent.
    #[test]
    fn a_dump_of_100000_routes_waits_a_part_at_a_time() {
        use babel_core::{Engine, EngineConfig, Input, InterfaceConfig, InterfaceKind};
        use babel_wire::{DecodeOptions, Message, Prefix, RouterId};
        use std::collections::HashSet;
        use std::net::{IpAddr, Ipv6Addr};

        let n = 100_000u32;
        let t0 = clock::now();
        let e = Engine::new(EngineConfig::new(RouterId([0, 0, 0, 0, 0, 0, 0, 1])), t0).unwrap();
        let mut d = RecordingDriver::new(e);
        d.set_paced_dumps(true);
        for i in 0..n {
            let a = Ipv6Addr::from((0xfd55_u128 << 112) | u128::from(i));
            let prefix = Prefix::new(IpAddr::V6(a), 128).unwrap();
            d.input(
                t0,
                Input::Announce {
                    prefix,
                    src_prefix: None,
                    metric: 0,
                },
            )
            .unwrap();
        }
        let cfg = InterfaceConfig::new("eth0", InterfaceKind::Wired, "fe80::1".parse().unwrap());
        d.input(
            t0,
            Input::InterfaceUp {
                ifindex: 1,
                config: cfg,
            },
        )
        .unwrap();
        let mut p = Pacer::new();
        let mut seen = HashSet::new();
        let (mut most, mut packets) = (0, 0usize);
        let mut t = t0;
        while seen.len() < n as usize && t < t0 + Duration::from_secs(60) {
            if d.poll_timeout().is_some_and(|w| w <= t) {
                d.input(t, Input::Timeout).unwrap();
            }
            let mut ready: Vec<Transmit> = p.due(t).into_iter().map(|(_, t)| t).collect();
            let out = d.drain();
            offer_transmits(&mut p, out.transmits, t, |_| false, &mut ready);
            send_dumps(&mut d, &mut p, t, t, |_| false, &mut ready);
            most = most.max(p.queued_on(1));
            for tx in ready {
                packets += usize::from(tx.bytes.len() >= SMALL);
                let dec = babel_wire::decode(&tx.bytes, &DecodeOptions::default()).unwrap();
                for m in dec.packet.messages {
                    if let Message::Update(u) = m {
                        seen.extend(u.prefix);
                    }
                }
            }
            t = t + Duration::from_micros(2500);
        }
        assert_eq!(seen.len(), n as usize);
        assert!(most <= DUMP_AHEAD + 40, "{most} packets queued");
        // The rate: a burst, then RATE packets a second.
        let took = t.saturating_since(t0).as_secs_f64();
        assert!(
            packets as f64 <= BURST + RATE * took + 1.0,
            "{packets} in {took} s"
        );
        assert!(packets > 1000, "{packets} packets");
        // What the burst of the dump took in the queue is given back.
        while d.dumps_under_way().next().is_some() || p.queued() > 0 {
            t = t + Duration::from_millis(50);
            send_dumps(&mut d, &mut p, t, t, |_| false, &mut Vec::new());
            p.due(t);
        }
        assert!(p.capacity() <= QUEUE_KEEP, "{} slots kept", p.capacity());
    }

    /// A queue that grew in a burst gives its slots back once drained.
    #[test]
    fn a_drained_queue_keeps_no_burst_capacity() {
        let t0 = clock::now();
        let mut p = Pacer::new();
        for i in 0..5000u32 {
            p.offer(1, 1400, i, t0);
        }
        assert!(p.capacity() >= 5000 - BURST as usize);
        let mut t = t0;
        while p.queued() > 0 {
            t = t + Duration::from_millis(100);
            p.due(t);
        }
        assert!(p.capacity() <= QUEUE_KEEP, "{} slots kept", p.capacity());
    }

    #[test]
    fn queues_are_bounded() {
        let t0 = clock::now();
        let mut p = Pacer::new();
        for i in 0..(MAX_QUEUED + 100) {
            p.offer(1, 1400, i, t0);
        }
        assert_eq!(p.queued(), MAX_QUEUED);
        // The first BURST went at once; the queue kept the newest MAX_QUEUED of the rest.
        assert_eq!(p.dropped, 100 - BURST as u64);
    }
}
