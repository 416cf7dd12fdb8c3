//! The delay-based metric of RFC 9616 ("Delay-Based Metric Extension for the Babel Routing
//! Protocol"), with babeld 1.12's arithmetic: RTT samples from Hello/IHU timestamps, their
//! moving average, and the cost they add to a link. Pure functions on microseconds; the engine
//! keeps the per-neighbour state. `spec/rtt.md` documents every rule and where babeld departs
//! from the RFC.

use std::time::Duration;

use crate::config::InterfaceConfig;

/// A waiting time above this (10 minutes, in µs) means a stale or bogus timestamp: babeld
/// discards the sample (`message.c`, "validity window of 10 minutes").
pub const MAX_WAITING_US: u32 = 600_000_000;

/// A smoothed RTT is used (for the cost, the dump and the average) only this long after its
/// last sample (babeld `valid_rtt`: 180 s).
pub const RTT_VALIDITY: Duration = Duration::from_secs(180);

/// babeld echoes a neighbour's Hello timestamp in IHUs only while it is younger than this
/// (`send_ihu`: 1,000,000 ms; the comment says "not too old").
pub const ECHO_VALIDITY: Duration = Duration::from_secs(1000);

/// The 32-bit wrapping difference `later - earlier` as babeld reads it: a signed 32-bit value.
fn waiting(later: u32, earlier: u32) -> i64 {
    i64::from(later.wrapping_sub(earlier) as i32)
}

/// RFC 9616 §2.1/§2.3 (Mills' algorithm): one RTT sample in µs from
/// - `origin` (t1): our Hello's transmit timestamp, echoed in the neighbour's IHU,
/// - `receive` (t2): the neighbour's clock when that Hello arrived, from the same IHU,
/// - `transmit` (t3): the neighbour's clock when it sent the packet, from the Hello in that
///   packet,
/// - `now` (t4): our clock when the packet arrived.
///
/// RTT = (t4 - t1) - (t3 - t2), all modulo 2^32 (timestamps wrap every 71 minutes, §2.4).
/// `None` when babeld discards the sample: the IHU's origin or receive timestamp is 0 (babeld
/// treats 0 as "none"), or either waiting time is negative or above [`MAX_WAITING_US`]. A
/// negative difference of two valid waiting times gives 0, as in babeld.
pub fn sample(origin: u32, receive: u32, transmit: u32, now: u32) -> Option<u32> {
    if origin == 0 || receive == 0 {
        return None;
    }
    let remote = waiting(transmit, receive);
    let local = waiting(now, origin);
    let max = i64::from(MAX_WAITING_US);
    if remote < 0 || local < 0 || remote > max || local > max {
        return None;
    }
    u32::try_from((local - remote).max(0)).ok()
}

/// RFC 9616 §3.1 smoothing, babeld's integer form: with a valid previous value `old` (µs),
/// `(decay × sample + (256 − decay) × old) / 256`, rounded towards the sample (down when the
/// sample is below `old`, up otherwise). Without one (first sample, or the previous one older
/// than [`RTT_VALIDITY`]) babeld starts from twice the sample, "to be conservative with new
/// neighbours". `decay` is clamped to 1-256 (babeld's `rtt-decay` range).
pub fn smooth(old: Option<u32>, sample: u32, decay: u16) -> u32 {
    let Some(old) = old else {
        return sample.saturating_mul(2);
    };
    let d = u64::from(decay.clamp(1, 256));
    let sum = d * u64::from(sample) + (256 - d) * u64::from(old);
    let v = if old >= sample {
        sum / 256
    } else {
        sum.div_ceil(256)
    };
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// RFC 9616 §3.2 cost, as babeld's `neighbour_rttcost`: 0 up to `rtt-min`, then linear up to
/// `max-rtt-penalty` at `rtt-max` (integer division, rounding down), and `max-rtt-penalty`
/// above. 0 when the penalty is 0.
pub fn cost(rtt_us: u32, ifc: &InterfaceConfig) -> u16 {
    let min = u64::try_from(ifc.rtt_min.as_micros()).unwrap_or(u64::MAX);
    let max = u64::try_from(ifc.rtt_max.as_micros()).unwrap_or(u64::MAX);
    let rtt = u64::from(rtt_us);
    let penalty = u64::from(ifc.max_rtt_penalty);
    if penalty == 0 || rtt <= min {
        0
    } else if rtt <= max && max > min {
        u16::try_from(penalty * (rtt - min) / (max - min)).unwrap_or(ifc.max_rtt_penalty)
    } else {
        ifc.max_rtt_penalty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_mills_formula_modulo_2_32() {
        // Sent at 1 000 000, held 5 ms by the neighbour, back after 55 ms: 50 ms.
        assert_eq!(sample(1_000_000, 7_000, 12_000, 1_055_000), Some(50_000));
        // Both clocks wrap between the timestamps.
        let t1 = u32::MAX - 10_000;
        let t2 = u32::MAX - 1_000;
        assert_eq!(
            sample(t1, t2, t2.wrapping_add(5_000), t1.wrapping_add(55_000)),
            Some(50_000)
        );
    }
}
