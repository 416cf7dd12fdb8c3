//! Virtual time: the engine never reads a clock; every input carries `now`.

use std::ops::Add;
use std::time::Duration;

/// A point in time, in microseconds since an epoch chosen by the caller (for example the
/// daemon's start). Monotonic by contract: the caller never passes a smaller `now` than before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Instant(u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);

    /// From microseconds since the epoch.
    pub const fn from_micros(us: u64) -> Instant {
        Instant(us)
    }

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms.saturating_mul(1000))
    }

    /// From seconds since the epoch.
    pub const fn from_secs(s: u64) -> Instant {
        Instant(s.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(us))
    }
}

/// A duration as Babel's 16-bit centisecond interval field, saturating.
pub fn to_centis(d: Duration) -> u16 {
    u16::try_from(d.as_millis() / 10).unwrap_or(u16::MAX)
}

/// A 16-bit centisecond interval as a duration.
pub fn from_centis(cs: u16) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}
