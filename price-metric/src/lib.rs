//! # price-metric
//!
//! Pure, allocation-free route selection policies over a small [`Candidate`] type, and the price
//! accumulation rule of Althea's babeld fork. `spec/price.md` explains how price is accumulated,
//! advertised, selected and shown.
//!
//! Three policies ([`Policy`]):
//!
//! * [`Policy::Babeld`]: plain babeld 1.12, price ignored. Best route = lowest metric; an
//!   installed route is replaced only if the new one has a metric no larger *and* a strictly
//!   smaller smoothed metric (RFC 8966 Appendix A.3, babeld's hysteresis).
//! * [`Policy::Althea`]: Althea's fork, `score = log2(price) + log2(metric) * metric_factor / 1000`,
//!   computed in fixed point ([`althea_score`]). `log2` is evaluated on `max(x, 1)`, so price 0
//!   scores like price 1 and metric 0 like metric 1 (Althea's float code gives minus infinity
//!   there; see `spec/price.md` for why we do not). Replacement is strict: new score < installed
//!   score, both on smoothed metrics.
//! * [`Policy::Paper`]: the network paper's extended metric `m' = metric + price * n`, with `n`
//!   given in thousandths (`n_milli`) and saturating `u64` arithmetic ([`paper_score`]).
//!   Replacement uses babeld's hysteresis on `m'`.
//!
//! Every policy's [`Policy::cmp`] is a strict total order once [`Candidate::tie_break`] values are
//! distinct: selectable routes (feasible, finite metric) first, then by the policy's score, then
//! metric, price and finally `tie_break`. [`Policy::best`] never returns an unselectable route.

#![forbid(unsafe_code)]

use std::cmp::Ordering;

/// Metric value meaning "unreachable" (RFC 8966 §2.1); the workspace's one definition.
pub use babel_wire::INFINITY;

/// Default Althea metric factor (Althea's `-q`, `metric-factor`: 1900 = 1.9).
pub const DEFAULT_METRIC_FACTOR: u32 = 1900;

/// One candidate route for a destination, as seen by a selection policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// The route's metric (refmetric + link cost, or a verified override), [`INFINITY`] when
    /// unreachable.
    pub metric: u16,
    /// babeld's smoothed metric (RFC 8966 Appendix A.3); equal to `metric` without smoothing.
    pub smoothed_metric: u16,
    /// Total price at this router: received price plus our fee ([`accumulate`]).
    pub price: u32,
    /// Whether the route satisfies the feasibility condition (RFC 8966 §3.5.1) and may be used.
    pub feasible: bool,
    /// A value unique per candidate of a destination (e.g. the neighbour's id), used only to
    /// break exact ties so that the order is total and deterministic.
    pub tie_break: u64,
}

impl Candidate {
    /// A feasible candidate whose smoothed metric equals its metric.
    pub fn new(metric: u16, price: u32, tie_break: u64) -> Candidate {
        Candidate {
            metric,
            smoothed_metric: metric,
            price,
            feasible: true,
            tie_break,
        }
    }

    /// RFC 8966 §3.6: only feasible routes with a finite metric may be selected.
    pub fn selectable(&self) -> bool {
        self.feasible && self.metric < INFINITY
    }
}

/// A route selection policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "kebab-case"))]
pub enum Policy {
    /// babeld 1.12: price ignored.
    #[default]
    Babeld,
    /// Althea's fork: `log2(price) + log2(metric) * metric_factor / 1000`.
    Althea {
        /// Weight of quality against price, in thousandths (default 1900).
        metric_factor: u32,
    },
    /// The network paper: `metric + price * n_milli / 1000`.
    Paper {
        /// Weight of price, in thousandths of a metric unit per price unit.
        n_milli: u32,
    },
}

/// `log2(max(x, 1))` in Q16 fixed point (16 fraction bits), exact to within 1 unit in the last
/// place; monotone non-decreasing in `x`.
pub fn log2_q16(x: u32) -> u64 {
    let x = x.max(1);
    let int = 31 - x.leading_zeros();
    // Normalise the mantissa to [1, 2) in Q31, then extract fraction bits by squaring.
    let mut m: u64 = (u64::from(x) << 31) >> int;
    let mut frac: u64 = 0;
    for bit in (0..16).rev() {
        m = (m * m) >> 31;
        if m >= 1 << 32 {
            m >>= 1;
            frac |= 1 << bit;
        }
    }
    (u64::from(int) << 16) | frac
}

/// Althea's score in fixed point: `1000 * log2(max(price,1)) + metric_factor * log2(max(metric,1))`,
/// both logs in Q16. It equals Althea's float score × 1000 × 65536 up to rounding. Never
/// overflows: at most `1000 * 32 * 2^16 + (2^32 - 1) * 16 * 2^16 < 2^53`.
pub fn althea_score(price: u32, metric: u16, metric_factor: u32) -> u64 {
    1000 * log2_q16(price) + u64::from(metric_factor) * log2_q16(u32::from(metric))
}

/// The paper's extended metric, scaled by 1000: `metric * 1000 + price * n_milli`, saturating.
pub fn paper_score(price: u32, metric: u16, n_milli: u32) -> u64 {
    (u64::from(metric) * 1000).saturating_add(u64::from(price).saturating_mul(u64::from(n_milli)))
}

impl Policy {
    /// The policy's score of a candidate on its metric (`smoothed = false`) or smoothed metric;
    /// lower is better.
    pub fn score(&self, c: &Candidate, smoothed: bool) -> u64 {
        let m = if smoothed {
            c.smoothed_metric
        } else {
            c.metric
        };
        match *self {
            Policy::Babeld => u64::from(m),
            Policy::Althea { metric_factor } => althea_score(c.price, m, metric_factor),
            Policy::Paper { n_milli } => paper_score(c.price, m, n_milli),
        }
    }

    /// A strict total order on candidates (less = better), RFC 8966 §3.6: selectable before
    /// unselectable, then score, metric, price, and `tie_break`.
    pub fn cmp(&self, a: &Candidate, b: &Candidate) -> Ordering {
        b.selectable()
            .cmp(&a.selectable())
            .then_with(|| self.score(a, false).cmp(&self.score(b, false)))
            .then_with(|| a.metric.cmp(&b.metric))
            .then_with(|| a.price.cmp(&b.price))
            .then_with(|| a.tie_break.cmp(&b.tie_break))
    }

    /// The best selectable candidate, if any (RFC 8966 §3.6).
    pub fn best<'a, I>(&self, candidates: I) -> Option<&'a Candidate>
    where
        I: IntoIterator<Item = &'a Candidate>,
    {
        candidates
            .into_iter()
            .filter(|c| c.selectable())
            .min_by(|a, b| self.cmp(a, b))
    }

    /// Hysteresis (RFC 8966 Appendix A.3): whether `new` should replace the `installed` route
    /// while `installed` is still selectable.
    ///
    /// * Babeld / Paper: `score(new) <= score(installed)` and smoothed `score(new) < score(installed)`.
    /// * Althea: smoothed `score(new) < score(installed)` (Althea's `consider_route`).
    pub fn should_switch(&self, installed: &Candidate, new: &Candidate) -> bool {
        if !new.selectable() {
            return false;
        }
        if !installed.selectable() {
            return true;
        }
        match self {
            Policy::Althea { .. } => self.score(new, true) < self.score(installed, true),
            Policy::Babeld | Policy::Paper { .. } => {
                self.score(new, false) <= self.score(installed, false)
                    && self.score(new, true) < self.score(installed, true)
            }
        }
    }
}

/// What to do when a price overflows `u32`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Accumulation {
    /// Stop at `u32::MAX` ("unaffordable"). Our default.
    #[default]
    Saturating,
    /// Wrap modulo 2^32, as Althea's C code does (a very expensive path can look cheap).
    Wrapping,
}

/// Althea's price accumulation (`route->price = received_price + fee`, applied on receipt).
pub fn accumulate(received: u32, fee: u32, mode: Accumulation) -> u32 {
    match mode {
        Accumulation::Saturating => received.saturating_add(fee),
        Accumulation::Wrapping => received.wrapping_add(fee),
    }
}

/// The price a dump shows as `price` (what the next hop advertised): total minus our fee, the way
/// Althea's local interface prints it.
pub fn shown_price(total: u32, fee: u32, mode: Accumulation) -> u32 {
    match mode {
        Accumulation::Saturating => total.saturating_sub(fee),
        Accumulation::Wrapping => total.wrapping_sub(fee),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn log2_exact_powers() {
        for k in 0u32..32 {
            assert_eq!(log2_q16(1u32 << k), u64::from(k) << 16);
        }
        assert_eq!(log2_q16(0), 0);
    }

    #[test]
    fn log2_close_to_float() {
        for x in [3u32, 5, 96, 100, 1000, 12345, 65535, 4_000_000_000] {
            let want = (f64::from(x)).log2() * 65536.0;
            let got = log2_q16(x) as f64;
            assert!((want - got).abs() <= 2.0, "{x}: {want} vs {got}");
        }
    }

    #[test]
    fn althea_matches_float_formula() {
        let s = |p: u32, m: u16, f: u32| {
            f64::from(p).log2() + f64::from(m).log2() * f64::from(f) / 1000.0
        };
        let a = (100u32, 500u16);
        let b = (300u32, 200u16);
        let fx = althea_score(a.0, a.1, 1900).cmp(&althea_score(b.0, b.1, 1900));
        let fl = s(a.0, a.1, 1900).partial_cmp(&s(b.0, b.1, 1900)).unwrap();
        assert_eq!(fx, fl);
    }

    #[test]
    fn accumulate_modes() {
        assert_eq!(
            accumulate(u32::MAX - 1, 5, Accumulation::Saturating),
            u32::MAX
        );
        assert_eq!(accumulate(u32::MAX - 1, 5, Accumulation::Wrapping), 3);
        assert_eq!(shown_price(107, 100, Accumulation::Saturating), 7);
    }
}
