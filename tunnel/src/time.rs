//! Time values passed into the sans-IO core.

use clock::Instant;
use std::time::{SystemTime, UNIX_EPOCH};

/// A TAI64N timestamp (12 bytes on the wire, big-endian), as used in the
/// handshake initiation to reject replayed initiations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tai64N {
    /// TAI64 label: 2^62 + 10 + seconds since the Unix epoch.
    pub secs: u64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

/// TAI64 label of the Unix epoch (2^62 + 10 leap seconds).
const TAI64_EPOCH: u64 = 0x4000_0000_0000_000a;

/// Nanosecond granularity the whitepaper suggests revealing at most
/// (rounded down to a power of two below 1/50 s): 2^24 ns ≈ 16.8 ms.
const NANO_MASK: u32 = !((1 << 24) - 1);

impl Tai64N {
    /// Converts a wall-clock time, rounding nanoseconds down so a precise
    /// clock is not leaked to the peer.
    pub fn from_system_time(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Tai64N {
            secs: TAI64_EPOCH.saturating_add(d.as_secs()),
            nanos: d.subsec_nanos() & NANO_MASK,
        }
    }

    /// Wire encoding.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        let (s, n) = out.split_at_mut(8);
        s.copy_from_slice(&self.secs.to_be_bytes());
        n.copy_from_slice(&self.nanos.to_be_bytes());
        out
    }

    /// Wire decoding.
    pub fn from_bytes(b: &[u8; 12]) -> Self {
        let mut s = [0u8; 8];
        let mut n = [0u8; 4];
        s.copy_from_slice(b.get(..8).unwrap_or(&[0; 8]));
        n.copy_from_slice(b.get(8..).unwrap_or(&[0; 4]));
        Tai64N {
            secs: u64::from_be_bytes(s),
            nanos: u32::from_be_bytes(n),
        }
    }
}

/// The current time as seen by the caller: monotonic time for all timers
/// and a wall-clock TAI64N value for handshake initiations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time; drives every timer, rate limiter and token bucket.
    pub instant: Instant,
    /// Wall-clock time; only placed into handshake initiations.
    pub wall: Tai64N,
}

impl Now {
    /// Builds a `Now` from clock readings taken by the caller.
    pub fn new(instant: Instant, wall: SystemTime) -> Self {
        Now {
            instant,
            wall: Tai64N::from_system_time(wall),
        }
    }

    /// Returns a copy advanced by `d` on both clocks (handy in tests and
    /// simulations).
    pub fn advance(self, d: std::time::Duration) -> Self {
        let total = u128::from(self.wall.nanos) + d.subsec_nanos() as u128;
        let carry = (total / 1_000_000_000) as u64;
        Now {
            instant: self.instant + d,
            wall: Tai64N {
                secs: self
                    .wall
                    .secs
                    .saturating_add(d.as_secs())
                    .saturating_add(carry),
                nanos: (total % 1_000_000_000) as u32,
            },
        }
    }
}
