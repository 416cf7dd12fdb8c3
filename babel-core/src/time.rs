//! Virtual time: the engine never reads a clock; every input carries `now`.

use std::time::Duration;

pub use clock::Instant;

/// A duration as Babel's 16-bit centisecond interval field, saturating.
pub fn to_centis(d: Duration) -> u16 {
    u16::try_from(d.as_millis() / 10).unwrap_or(u16::MAX)
}

/// A 16-bit centisecond interval as a duration.
pub fn from_centis(cs: u16) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}
