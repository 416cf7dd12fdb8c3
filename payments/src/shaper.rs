//! Service follows payment: a sans-IO per-link policer the tunnel calls for every packet with
//! `now`, in either direction (the packets pass through our process both ways).
//!
//! * A neighbour at [`ServiceLevel::FreeTier`] gets a token bucket at the free-tier rate.
//! * Neighbours at [`ServiceLevel::Full`] pass freely while the link has no configured capacity.
//!   With a capacity, each active neighbour is guaranteed `capacity * weight / sum of active
//!   weights` (its own token bucket) and may borrow what the link-wide bucket has spare, so idle
//!   capacity goes to whoever has traffic (work-conserving, like an HTB class with a ceiling)
//!   while a contended link is shared in proportion to the weights, i.e. to what each pays.

use clock::Instant;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use crate::ServiceLevel;

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShaperVerdict {
    /// Forward it.
    Pass,
    /// Drop it (over the neighbour's rate).
    Drop,
}

/// A token bucket in bytes with `now`-driven refill.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: i64,
    at: Instant,
}

impl Bucket {
    fn new(now: Instant, depth: i64) -> Bucket {
        Bucket {
            tokens: depth,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: u64, depth: i64) {
        // Past one second the bucket is full anyway: u64 arithmetic suffices.
        let dt = now.saturating_since(self.at).min(Duration::from_secs(1));
        self.at = now;
        let add = (dt.subsec_nanos() as u64 + dt.as_secs() * 1_000_000_000).saturating_mul(rate)
            / 1_000_000_000;
        self.tokens = self
            .tokens
            .saturating_add(i64::try_from(add).unwrap_or(i64::MAX))
            .min(depth);
    }
}

/// Shaper parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShaperConfig {
    /// The link's capacity in bytes per second; `None`: not contended, full service is unlimited.
    pub capacity: Option<u64>,
    /// The free tier in bytes per second (rita: 1000 kbit/s = 125 000 B/s).
    pub free_tier: u64,
    /// Bucket depth, in time at the bucket's rate.
    pub burst: Duration,
    /// A neighbour without a packet for this long no longer counts in the sharing.
    pub active_window: Duration,
}

impl Default for ShaperConfig {
    fn default() -> ShaperConfig {
        ShaperConfig {
            capacity: None,
            free_tier: 125_000,
            burst: Duration::from_millis(50),
            active_window: Duration::from_millis(200),
        }
    }
}

/// Per-neighbour counters and settings.
#[derive(Debug, Clone, Copy)]
pub struct Class {
    /// Its service level.
    pub level: ServiceLevel,
    /// Its weight (what it pays; at least 1).
    pub weight: u64,
    bucket: Bucket,
    /// Its current rate (bytes per second) and bucket depth.
    rate: u64,
    depth: i64,
    last_seen: Instant,
    /// Bytes passed.
    pub passed: u64,
    /// Bytes dropped.
    pub dropped: u64,
}

impl Class {
    fn new(now: Instant, level: ServiceLevel) -> Class {
        Class {
            level,
            weight: 1,
            bucket: Bucket::new(now, 0),
            rate: 0,
            depth: 0,
            last_seen: now,
            passed: 0,
            dropped: 0,
        }
    }
}

/// One link's shaper, keyed by neighbour.
#[derive(Debug, Clone)]
pub struct Shaper<K> {
    cfg: ShaperConfig,
    link: Bucket,
    link_depth: i64,
    classes: HashMap<K, Class>,
    active_weight: u64,
    recomputed: Option<Instant>,
}

fn depth(rate: u64, burst: Duration) -> i64 {
    let d = u128::from(rate).saturating_mul(burst.as_nanos()) / 1_000_000_000;
    // At least one full-size packet.
    d.clamp(2048, i64::MAX as u128) as i64
}

impl<K: Hash + Eq + Clone> Shaper<K> {
    /// A shaper with no neighbours.
    pub fn new(cfg: ShaperConfig, now: Instant) -> Shaper<K> {
        Shaper {
            cfg,
            link: Bucket::new(now, depth(cfg.capacity.unwrap_or(0), cfg.burst)),
            link_depth: depth(cfg.capacity.unwrap_or(0), cfg.burst),
            classes: HashMap::new(),
            active_weight: 0,
            recomputed: None,
        }
    }

    /// Sets a neighbour's service level and weight (at every metering interval).
    pub fn set(&mut self, now: Instant, key: &K, level: ServiceLevel, weight: u64) {
        let c = self
            .classes
            .entry(key.clone())
            .or_insert_with(|| Class::new(now, level));
        c.level = level;
        c.weight = weight.max(1);
        self.recomputed = None;
    }

    /// A neighbour's class.
    pub fn class(&self, key: &K) -> Option<&Class> {
        self.classes.get(key)
    }

    /// Forgets a neighbour.
    pub fn remove(&mut self, key: &K) {
        self.classes.remove(key);
        self.recomputed = None;
    }

    fn recompute(&mut self, now: Instant) {
        if self
            .recomputed
            .is_some_and(|t| now.saturating_since(t) < self.cfg.active_window / 4)
        {
            return;
        }
        let w = self.cfg.active_window;
        self.active_weight = self
            .classes
            .values()
            .filter(|c| c.level == ServiceLevel::Full)
            .filter(|c| now.saturating_since(c.last_seen) < w)
            .map(|c| c.weight)
            .fold(0u64, u64::saturating_add);
        self.recomputed = Some(now);
        self.rates();
    }

    /// Each class's rate and depth from its level, weight and the active weight.
    fn rates(&mut self) {
        let cfg = self.cfg;
        let active = self.active_weight.max(1);
        for c in self.classes.values_mut() {
            c.rate = match (c.level, cfg.capacity) {
                (ServiceLevel::FreeTier, _) => cfg.free_tier,
                (ServiceLevel::Full, None) => u64::MAX,
                (ServiceLevel::Full, Some(cap)) => {
                    u64::try_from(u128::from(cap) * u128::from(c.weight) / u128::from(active))
                        .unwrap_or(cap)
                }
            };
            c.depth = depth(c.rate, cfg.burst);
        }
    }

    /// One packet of `bytes` from or to neighbour `key` at `now`. Unknown neighbours are at
    /// full service with weight 1.
    pub fn admit(&mut self, now: Instant, key: &K, bytes: u32) -> ShaperVerdict {
        let cfg = self.cfg;
        self.recompute(now);
        let mut new = false;
        let c = self.classes.entry(key.clone()).or_insert_with(|| {
            new = true;
            Class::new(now, ServiceLevel::Full)
        });
        if (new || now.saturating_since(c.last_seen) >= cfg.active_window)
            && c.level == ServiceLevel::Full
        {
            // Newly active: count it now, not at the next recomputation.
            c.last_seen = now;
            self.active_weight = self.active_weight.saturating_add(c.weight);
            self.rates();
        }
        let Some(c) = self.classes.get_mut(key) else {
            return ShaperVerdict::Pass;
        };
        c.last_seen = now;
        let b = i64::from(bytes);
        let verdict = match (c.level, cfg.capacity) {
            (ServiceLevel::Full, None) => ShaperVerdict::Pass,
            (ServiceLevel::FreeTier, _) => {
                c.bucket.refill(now, c.rate, c.depth);
                if c.bucket.tokens >= b {
                    c.bucket.tokens -= b;
                    ShaperVerdict::Pass
                } else {
                    ShaperVerdict::Drop
                }
            }
            (ServiceLevel::Full, Some(cap)) => {
                let ld = self.link_depth;
                c.bucket.refill(now, c.rate, c.depth);
                self.link.refill(now, cap, ld);
                if c.bucket.tokens >= b {
                    // Guaranteed share; the link may go into debt, which blocks borrowing.
                    c.bucket.tokens -= b;
                    self.link.tokens = self.link.tokens.saturating_sub(b).max(-ld);
                    ShaperVerdict::Pass
                } else if self.link.tokens >= b {
                    self.link.tokens -= b;
                    ShaperVerdict::Pass
                } else {
                    ShaperVerdict::Drop
                }
            }
        };
        match verdict {
            ShaperVerdict::Pass => c.passed = c.passed.saturating_add(u64::from(bytes)),
            ShaperVerdict::Drop => c.dropped = c.dropped.saturating_add(u64::from(bytes)),
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Greedy senders offering `offered` bytes/s each in 1000-byte packets for `secs` seconds
    /// of simulated time; returns the bytes each got through.
    fn run(shaper: &mut Shaper<u8>, t0: Instant, offered: &[(u8, u64)], secs: u64) -> Vec<u64> {
        let step = Duration::from_micros(100);
        let steps = secs * 10_000;
        let mut credit = vec![0u64; offered.len()];
        let mut got = vec![0u64; offered.len()];
        for i in 0..steps {
            let now = t0 + step * u32::try_from(i).unwrap_or(u32::MAX);
            for (j, (k, rate)) in offered.iter().enumerate() {
                if let Some(c) = credit.get_mut(j) {
                    *c += rate / 10_000;
                    while *c >= 1000 {
                        *c -= 1000;
                        if shaper.admit(now, k, 1000) == ShaperVerdict::Pass {
                            if let Some(g) = got.get_mut(j) {
                                *g += 1000;
                            }
                        }
                    }
                }
            }
        }
        got
    }

    fn contended(t0: Instant, cap: u64) -> Shaper<u8> {
        Shaper::new(
            ShaperConfig {
                capacity: Some(cap),
                ..ShaperConfig::default()
            },
            t0,
        )
    }

    #[test]
    fn contended_link_is_shared_by_weight_within_fifteen_percent() {
        let (t0, cap) = (clock::now(), 10_000_000);
        let mut s = contended(t0, cap);
        s.set(t0, &1, ServiceLevel::Full, 200);
        s.set(t0, &2, ServiceLevel::Full, 100);
        let got = run(&mut s, t0, &[(1, 15_000_000), (2, 15_000_000)], 10);
        let (a, b) = (
            got.first().copied().unwrap_or(0),
            got.get(1).copied().unwrap_or(0),
        );
        let ratio = a as f64 / b as f64;
        assert!(
            (ratio - 2.0).abs() / 2.0 < 0.15,
            "ratio {ratio} ({a} vs {b})"
        );
        // The link is used, not over-used.
        let total = (a + b) as f64 / 10.0;
        assert!(
            total <= cap as f64 * 1.02 && total >= cap as f64 * 0.9,
            "{total}"
        );
    }

    #[test]
    fn a_lone_sender_gets_the_whole_link_and_free_tier_is_capped() {
        let (t0, cap) = (clock::now(), 10_000_000);
        let mut s = contended(t0, cap);
        s.set(t0, &1, ServiceLevel::Full, 1);
        s.set(t0, &2, ServiceLevel::Full, 100);
        s.set(t0, &3, ServiceLevel::FreeTier, 100);
        let got = run(&mut s, t0, &[(1, 20_000_000), (3, 5_000_000)], 5);
        let a = got.first().copied().unwrap_or(0) as f64 / 5.0;
        let f = got.get(1).copied().unwrap_or(0) as f64 / 5.0;
        // Neighbour 2 is idle, so weight 1 still gets (nearly) all of the link.
        assert!(a > cap as f64 * 0.9, "{a}");
        assert!((f - 125_000.0).abs() < 125_000.0 * 0.1, "{f}");
    }

    #[test]
    fn without_capacity_full_service_is_unlimited() {
        let t0 = clock::now();
        let mut s = Shaper::new(ShaperConfig::default(), t0);
        let got = run(&mut s, t0, &[(1, 50_000_000)], 1);
        assert_eq!(got, vec![50_000_000]);
    }
}
