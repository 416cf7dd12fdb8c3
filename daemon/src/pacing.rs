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
