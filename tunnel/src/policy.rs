//! Per-peer forwarding policy, enforced on data packets.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What the tunnel does with data packets to/from a peer. Keepalives and
/// handshakes are never affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum ForwardingPolicy {
    /// Forward everything.
    #[default]
    Allow,
    /// Drop every data packet (counted).
    Block,
    /// Token bucket over plaintext bytes, separately per direction.
    RateLimit {
        /// Sustained rate.
        bytes_per_sec: u64,
        /// Bucket depth.
        burst: u64,
    },
}

/// A token bucket driven by the caller's clock.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub(crate) fn new() -> Self {
        TokenBucket {
            tokens: 0.0,
            last: None,
        }
    }

    /// Takes `n` tokens if available.
    pub(crate) fn take(&mut self, now: Instant, rate: u64, burst: u64, n: u64) -> bool {
        let burst = burst as f64;
        match self.last {
            None => self.tokens = burst,
            Some(last) => {
                let dt = now.saturating_duration_since(last).as_secs_f64();
                self.tokens = (self.tokens + dt * rate as f64).min(burst);
            }
        }
        self.last = Some(now);
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }
}

/// Policy state for one direction.
#[derive(Debug, Clone)]
pub(crate) struct PolicyGate {
    bucket: TokenBucket,
}

impl PolicyGate {
    pub(crate) fn new() -> Self {
        PolicyGate {
            bucket: TokenBucket::new(),
        }
    }

    pub(crate) fn admit(&mut self, policy: ForwardingPolicy, now: Instant, bytes: usize) -> bool {
        match policy {
            ForwardingPolicy::Allow => true,
            ForwardingPolicy::Block => false,
            ForwardingPolicy::RateLimit {
                bytes_per_sec,
                burst,
            } => self.bucket.take(now, bytes_per_sec, burst, bytes as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket_refills_with_time() {
        let t0 = Instant::now();
        let mut g = PolicyGate::new();
        let p = ForwardingPolicy::RateLimit {
            bytes_per_sec: 1000,
            burst: 1500,
        };
        assert!(g.admit(p, t0, 1000));
        assert!(!g.admit(p, t0, 1000));
        assert!(g.admit(p, t0 + Duration::from_millis(600), 1000));
        assert!(!g.admit(p, t0 + Duration::from_millis(600), 200));
        assert!(g.admit(p, t0 + Duration::from_secs(10), 1500));
        assert!(!g.admit(ForwardingPolicy::Block, t0, 1));
        assert!(g.admit(ForwardingPolicy::Allow, t0, 1 << 30));
    }
}
