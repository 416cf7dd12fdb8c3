//! The replay rule for registration requests, with bounded state (`spec/exits.md`, "Replay").
//!
//! A request carries the user's clock (`timestamp_ms`) and is accepted only if
//! 1. it is within `window` of the exit's clock (either way),
//! 2. it is later than the **floor**, and
//! 3. it is later than the last request accepted from the same key.
//!
//! The floor starts at the exit's clock when the guard is created (so after a restart nothing
//! signed before it is accepted, although the per-key memory is gone) and rises whenever the
//! guard forgets a key to stay within `capacity`: it forgets the key with the oldest accepted
//! timestamp and raises the floor to that timestamp. A replayed request therefore always fails
//! one of the three tests; the cost of the bound is that a user whose clock lags the exit's by
//! more than the age of the floor must retry with a later timestamp.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// Why a request's timestamp is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ExitReplayError {
    /// Outside the window around the exit's clock.
    #[error("timestamp {timestamp_ms} ms is more than the window away from {now_ms} ms")]
    Window {
        /// The request's timestamp.
        timestamp_ms: u64,
        /// The exit's clock.
        now_ms: u64,
    },
    /// Not later than what was already accepted (from this key, or before the floor).
    #[error("replayed or out-of-order request")]
    Replay,
}

/// Bounded replay state.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    floor_ms: u64,
    last: HashMap<[u8; 32], u64>,
    by_time: BTreeSet<(u64, [u8; 32])>,
}

impl ReplayGuard {
    /// A guard accepting timestamps within `window` of the clock, remembering at most
    /// `capacity` keys (at least 1), started at `now_ms`.
    pub fn new(window: Duration, capacity: usize, now_ms: u64) -> ReplayGuard {
        ReplayGuard {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            capacity: capacity.max(1),
            floor_ms: now_ms,
            last: HashMap::new(),
            by_time: BTreeSet::new(),
        }
    }

    /// Whether a request from `key` at `timestamp_ms` would be accepted now (no state change).
    pub fn check(
        &self,
        key: &[u8; 32],
        timestamp_ms: u64,
        now_ms: u64,
    ) -> Result<(), ExitReplayError> {
        if timestamp_ms.abs_diff(now_ms) > self.window_ms {
            return Err(ExitReplayError::Window {
                timestamp_ms,
                now_ms,
            });
        }
        if timestamp_ms <= self.floor_ms || self.last.get(key).is_some_and(|&t| timestamp_ms <= t) {
            return Err(ExitReplayError::Replay);
        }
        Ok(())
    }

    /// Records an accepted request (after [`ReplayGuard::check`] passed).
    pub fn accept(&mut self, key: &[u8; 32], timestamp_ms: u64, now_ms: u64) {
        if let Some(old) = self.last.insert(*key, timestamp_ms) {
            self.by_time.remove(&(old, *key));
        }
        self.by_time.insert((timestamp_ms, *key));
        // Keys whose last request has left the window are protected by the window alone.
        let horizon = now_ms.saturating_sub(self.window_ms);
        while let Some(&(t, k)) = self.by_time.first() {
            if t >= horizon && self.last.len() <= self.capacity {
                break;
            }
            self.by_time.remove(&(t, k));
            self.last.remove(&k);
            // Raising the floor also for keys that left the window keeps the rule sound if the
            // clock steps back.
            self.floor_ms = self.floor_ms.max(t);
        }
    }

    /// Keys remembered now (at most the capacity).
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// The floor: no timestamp at or below it is accepted.
    pub fn floor_ms(&self) -> u64 {
        self.floor_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);

    #[test]
    fn same_timestamp_twice_is_a_replay_and_later_passes() {
        let mut g = ReplayGuard::new(W, 8, 1_000_000);
        let k = [1; 32];
        assert_eq!(g.check(&k, 1_000_001, 1_000_010), Ok(()));
        g.accept(&k, 1_000_001, 1_000_010);
        assert_eq!(
            g.check(&k, 1_000_001, 1_000_020),
            Err(ExitReplayError::Replay)
        );
        assert_eq!(
            g.check(&k, 1_000_000, 1_000_020),
            Err(ExitReplayError::Replay)
        );
        assert_eq!(g.check(&k, 1_000_002, 1_000_020), Ok(()));
        // Another key is independent.
        assert_eq!(g.check(&[2; 32], 1_000_001, 1_000_020), Ok(()));
    }

    #[test]
    fn outside_the_window_fails_either_way() {
        let g = ReplayGuard::new(W, 8, 0);
        let now = 10_000_000;
        assert!(matches!(
            g.check(&[1; 32], now - 60_001, now),
            Err(ExitReplayError::Window { .. })
        ));
        assert!(matches!(
            g.check(&[1; 32], now + 60_001, now),
            Err(ExitReplayError::Window { .. })
        ));
        assert_eq!(g.check(&[1; 32], now + 60_000, now), Ok(()));
    }

    #[test]
    fn a_restarted_guard_refuses_what_was_signed_before_it_started() {
        let g = ReplayGuard::new(W, 8, 5_000_000);
        assert_eq!(
            g.check(&[1; 32], 4_999_999, 5_000_001),
            Err(ExitReplayError::Replay)
        );
        assert_eq!(g.check(&[1; 32], 5_000_001, 5_000_001), Ok(()));
    }

    #[test]
    fn bounded_state_never_accepts_a_replay() {
        let cap = 4;
        let mut g = ReplayGuard::new(W, cap, 0);
        let now = 30_000;
        let mut accepted = Vec::new();
        for i in 0..50u8 {
            let k = [i; 32];
            let t = 1 + u64::from(i) * 10;
            assert_eq!(g.check(&k, t, now), Ok(()), "fresh request {i}");
            g.accept(&k, t, now);
            accepted.push((k, t));
            assert!(g.len() <= cap);
        }
        for (k, t) in accepted {
            assert_eq!(g.check(&k, t, now), Err(ExitReplayError::Replay));
        }
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the order, clock and capacity, a (key, timestamp) pair is accepted at most
        /// once, and memory never exceeds the capacity.
        #[test]
        fn no_pair_is_ever_accepted_twice(
            capacity in 1usize..8,
            requests in proptest::collection::vec((0u8..6, 0u64..200, 0u64..300), 1..300),
        ) {
            let mut g = ReplayGuard::new(Duration::from_millis(100), capacity, 0);
            let mut accepted = std::collections::HashSet::new();
            for (k, ts, now) in requests {
                let key = [k; 32];
                if g.check(&key, ts, now).is_ok() {
                    prop_assert!(accepted.insert((k, ts)), "({k}, {ts}) accepted twice");
                    g.accept(&key, ts, now);
                }
                prop_assert!(g.len() <= capacity);
            }
        }
    }
}
