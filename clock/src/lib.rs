//! One clock for the workspace.
//!
//! Every sans-IO crate (the Babel engine, verification, payments, exits, the tunnel's core)
//! takes the current time as a parameter of type [`Instant`] and never reads a clock. Only
//! drivers (the daemon, the tunnel's driver, the binaries) read the operating system's
//! monotonic clock, through [`now`], and turn an [`Instant`] back into a deadline for their
//! runtime with [`to_std`].
//!
//! This is its own crate, below everything else, because `payments` (and `exit` and
//! `settlement` above it) share nothing else with the Babel crates: a time value is the only
//! vocabulary they have in common, and it should not pull a codec or an engine along.

use std::ops::Add;
use std::sync::OnceLock;
use std::time::Duration;

/// A point in time, in microseconds since an epoch chosen by the caller (the process's first
/// reading of [`now`] for drivers; zero or any fixed value for tests and simulations).
/// Monotonic by contract: a caller never passes a smaller `now` than before.
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

    /// `self - d`, or `None` before the epoch.
    pub fn checked_sub(self, d: Duration) -> Option<Instant> {
        let us = u64::try_from(d.as_micros()).ok()?;
        self.0.checked_sub(us).map(Instant)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating: an instant past the end of time stays there.
    fn add(self, d: Duration) -> Instant {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(us))
    }
}

/// The process's epoch: the first reading of the operating system's clock.
fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// The operating system's monotonic clock as an [`Instant`] (drivers only). Every driver of
/// one process shares the epoch, so instants read by different threads compare.
pub fn now() -> Instant {
    from_std(std::time::Instant::now())
}

/// An operating-system instant as an [`Instant`] of this process (zero before the epoch).
pub fn from_std(t: std::time::Instant) -> Instant {
    let d = t.saturating_duration_since(epoch());
    Instant(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// An [`Instant`] of this process as an operating-system instant, for a runtime's timer.
pub fn to_std(at: Instant) -> std::time::Instant {
    let e = epoch();
    e.checked_add(Duration::from_micros(at.0))
        .unwrap_or(e + Duration::from_secs(86_400 * 365 * 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_secs(2);
        assert_eq!(
            t + Duration::from_millis(1500),
            Instant::from_micros(3_500_000)
        );
        assert_eq!(Instant::from_secs(1).saturating_since(t), Duration::ZERO);
        assert_eq!(
            t.saturating_since(Instant::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            Instant::from_micros(u64::MAX - 1) + Duration::MAX,
            Instant::from_micros(u64::MAX)
        );
        assert_eq!(t.checked_sub(Duration::from_secs(3)), None);
        assert_eq!(t.checked_sub(Duration::from_secs(2)), Some(Instant::ZERO));
    }

    #[test]
    fn os_clock_round_trips_and_is_monotonic() {
        let a = now();
        let b = now();
        assert!(b >= a);
        let std_b = to_std(b);
        assert_eq!(from_std(std_b), b);
    }
}
