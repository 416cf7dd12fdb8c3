//! Metric correction (`spec/verify.md` §5): the paper's "Route metric adjustment".

use std::collections::BTreeMap;
use std::time::Duration;

use babel_core::Instant;

/// Correction constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CorrectionConfig {
    /// `C1` in `D = (C1/d)^C2`, seconds.
    pub c1: f64,
    /// `C2`.
    pub c2: f64,
    /// A check corrects the route when `c > m·(1 + tolerance)`.
    pub tolerance: f64,
    /// Duration of a first correction of a route (no previous `d`).
    pub first: Duration,
    /// Shortest correction.
    pub min: Duration,
    /// Longest correction.
    pub max: Duration,
    /// Routes remembered (least recently corrected forgotten first).
    pub max_routes: usize,
    /// Largest neighbour-wide correction factor (§5.2).
    pub max_factor: f64,
    /// The neighbour-wide correction scales the neighbour's advertised metric, not our link
    /// cost to it (§5.2; off by default: measured no better); off, it scales the whole metric.
    pub scale_advertised: bool,
    /// The neighbour-wide correction follows the neighbour's claims while in force (§5.2; off
    /// by default): every timer re-applies the factor to what the neighbour claims now.
    /// Off, each route is given the factor once, on the claim at the check.
    pub follow_claims: bool,
}

impl Default for CorrectionConfig {
    fn default() -> Self {
        CorrectionConfig {
            c1: 1800.0,
            c2: 1.5,
            tolerance: 0.1,
            first: Duration::from_secs(120),
            min: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            max_routes: 1024,
            max_factor: 8.0,
            scale_advertised: false,
            follow_claims: false,
        }
    }
}

impl CorrectionConfig {
    /// `D = (C1/d)^C2` clamped to `[min, max]`, `d` the time since the last correction of the
    /// route; `first` when there was none.
    pub fn duration(&self, since_last: Option<Duration>) -> Duration {
        let Some(d) = since_last else {
            return self.first.clamp(self.min, self.max);
        };
        let d = d.as_secs_f64().max(1e-3);
        let secs = (self.c1 / d).powf(self.c2);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            return self.max;
        }
        Duration::from_secs_f64(secs.max(0.0)).clamp(self.min, self.max)
    }
}

/// The neighbour-wide correction of a failing check (`spec/verify.md` §5.2): every other route
/// through the neighbour is assumed to lie as much as the route checked, until `until`.
///
/// The lie is in what the neighbour advertised: our link cost to it is ours, measured by us
/// (§1.3). So the factor scales the advertised part, `refmetric`: the route checked had
/// `m = link + advertised` and measured `c`, its advertised part should have been `c − link`,
/// and another route through the neighbour is taken at `link + advertised' · (c − link) /
/// advertised`. Scaling the whole metric by `c/m` instead (`scale_advertised` off) dilutes the
/// lie with our link: over a 96 link, a neighbour that halves a 96 (`m` = 144, `c` = 192,
/// `a` = 0.75) and a 1,000 (`m` = 596, `c` = 1,096) has the second scaled by 1.33 to 795, still
/// under 80 % of its cost, where scaling the advertised part by 2 gives 1,096.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NeighbourCorrection {
    /// Factor on the advertised metric (or on the whole metric with `scale_advertised` off),
    /// at least 1, at most `max_factor`.
    pub factor: f64,
    /// Scales the advertised metric only.
    pub advertised_only: bool,
    /// Until then.
    pub until: Instant,
}

impl NeighbourCorrection {
    /// From a failing check: the route's metric `m` (link included), its `advertised` metric,
    /// and the measured cost `c`.
    pub fn new(cfg: &CorrectionConfig, m: u16, advertised: u16, c: u16, until: Instant) -> Self {
        let max = cfg.max_factor.max(1.0);
        let factor = if cfg.scale_advertised {
            let link = m.saturating_sub(advertised);
            let want = f64::from(c.saturating_sub(link));
            if advertised == 0 {
                max
            } else {
                want / f64::from(advertised)
            }
        } else {
            f64::from(c) / f64::from(m.max(1))
        };
        NeighbourCorrection {
            factor: if factor.is_finite() {
                factor.clamp(1.0, max)
            } else {
                max
            },
            advertised_only: cfg.scale_advertised,
            until,
        }
    }

    /// The metric to use for another route through the neighbour, of metric `metric` (link
    /// included) and advertised metric `advertised`: never below `metric`, always finite.
    pub fn corrected(&self, metric: u16, advertised: u16) -> u16 {
        let top = f64::from(babel_wire::INFINITY - 1);
        let scaled = if self.advertised_only {
            let link = metric.saturating_sub(advertised);
            f64::from(link) + f64::from(advertised.min(metric)) * self.factor
        } else {
            f64::from(metric) * self.factor
        };
        (scaled.min(top) as u16).max(metric.min(babel_wire::INFINITY - 1))
    }
}

/// Last correction time per route, and until when it is in force; bounded.
#[derive(Clone, Debug)]
pub struct Corrections<K: Ord + Clone> {
    last: BTreeMap<K, (Instant, Instant)>,
}

impl<K: Ord + Clone> Default for Corrections<K> {
    fn default() -> Self {
        Corrections {
            last: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> Corrections<K> {
    /// If `c` exceeds `m` beyond the tolerance, the metric to use instead (`c`) and until when.
    pub fn correct(
        &mut self,
        now: Instant,
        cfg: &CorrectionConfig,
        route: K,
        m: u16,
        c: u16,
    ) -> Option<(u16, Instant)> {
        if f64::from(c) <= f64::from(m) * (1.0 + cfg.tolerance) {
            return None;
        }
        let since = self.last.get(&route).map(|(t, _)| now.saturating_since(*t));
        crate::bounded::make_room(&mut self.last, cfg.max_routes, &route, |(t, _)| *t);
        let until = now + cfg.duration(since);
        self.last.insert(route, (now, until));
        Some((c, until))
    }

    /// True while the last correction of `route` is in force.
    pub fn in_force(&self, now: Instant, route: &K) -> bool {
        self.last.get(route).is_some_and(|(_, until)| now < *until)
    }

    /// Routes remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// True if none.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn cfg(scale_advertised: bool) -> CorrectionConfig {
        CorrectionConfig {
            scale_advertised,
            ..CorrectionConfig::default()
        }
    }

    /// §5.2: the neighbour halves what it advertises, over our 96 link. Scaling the advertised
    /// part finds every other route's cost; scaling the whole metric leaves the longer claims
    /// under the threshold.
    #[test]
    fn neighbour_correction_scales_what_was_advertised() {
        let t = Instant::ZERO;
        // The route checked: advertised 48 (really 96), m = 144, c = 192.
        let adv = NeighbourCorrection::new(&cfg(true), 144, 48, 192, t);
        assert!((adv.factor - 2.0).abs() < 1e-9, "{adv:?}");
        // Another route: advertised 500 (really 1,000), m = 596, cost 1,096.
        assert_eq!(adv.corrected(596, 500), 1096);
        let whole = NeighbourCorrection::new(&cfg(false), 144, 48, 192, t);
        assert!((whole.factor - 192.0 / 144.0).abs() < 1e-9);
        let w = whole.corrected(596, 500);
        assert_eq!(w, 794);
        assert!(f64::from(w) / 1096.0 < 0.8, "scaled whole: {w}");
        // Our link cost is never scaled: a route through the same neighbour that it advertises
        // at 0 (the neighbour itself) keeps its metric.
        assert_eq!(adv.corrected(96, 0), 96);
        assert_eq!(whole.corrected(96, 0), 128);
    }

    /// The factor is clamped to [1, `max_factor`], an advertised 0 takes the largest, and a
    /// corrected metric is never below the metric nor infinite.
    #[test]
    fn neighbour_correction_bounds() {
        let t = Instant::ZERO;
        let c = cfg(true);
        assert_eq!(NeighbourCorrection::new(&c, 96, 0, 400, t).factor, 8.0);
        assert_eq!(NeighbourCorrection::new(&c, 100, 4, 60_000, t).factor, 8.0);
        // A cost under the metric (not a failure) never lowers a route.
        let low = NeighbourCorrection::new(&c, 500, 400, 300, t);
        assert_eq!(low.factor, 1.0);
        assert_eq!(low.corrected(700, 600), 700);
        let big = NeighbourCorrection::new(&c, 100, 4, 60_000, t);
        assert_eq!(big.corrected(30_000, 29_000), babel_wire::INFINITY - 1);
        // An advertised metric above the metric (a view out of step) is taken as the metric.
        assert_eq!(big.corrected(200, 300), 1600);
        assert_eq!(NeighbourCorrection::new(&c, 0, 0, 0, t).corrected(0, 0), 0);
    }

    /// §5: D grows as corrections come closer together; clamped both ways.
    #[test]
    fn duration_formula() {
        let cfg = CorrectionConfig::default();
        assert_eq!(cfg.duration(None), Duration::from_secs(120));
        let d60 = cfg.duration(Some(Duration::from_secs(60)));
        // (1800/60)^1.5 = 164.3 s
        assert!((d60.as_secs_f64() - 164.316).abs() < 0.01, "{d60:?}");
        let d30 = cfg.duration(Some(Duration::from_secs(30)));
        assert!(d30 > d60);
        assert_eq!(cfg.duration(Some(Duration::from_secs(1))), cfg.max);
        assert_eq!(cfg.duration(Some(Duration::from_secs(10_000))), cfg.min);
        assert_eq!(cfg.duration(Some(Duration::ZERO)), cfg.max);
    }

    /// §5: within the tolerance nothing is corrected; beyond it c replaces m.
    #[test]
    fn correct_beyond_tolerance_only() {
        let cfg = CorrectionConfig::default();
        let mut c: Corrections<u8> = Corrections::default();
        let now = Instant::from_secs(100);
        assert_eq!(c.correct(now, &cfg, 1, 100, 110), None);
        assert_eq!(
            c.correct(now, &cfg, 1, 100, 200),
            Some((200, now + Duration::from_secs(120)))
        );
        let later = now + Duration::from_secs(60);
        let (m, until) = c.correct(later, &cfg, 1, 100, 200).unwrap_or((0, later));
        assert_eq!(m, 200);
        assert!(until > later + Duration::from_secs(164));
    }

    /// §6: bounded.
    #[test]
    fn bounded_routes() {
        let cfg = CorrectionConfig {
            max_routes: 4,
            ..CorrectionConfig::default()
        };
        let mut c: Corrections<u32> = Corrections::default();
        for k in 0..50u32 {
            c.correct(Instant::from_secs(u64::from(k)), &cfg, k, 10, 100);
        }
        assert_eq!(c.len(), 4);
    }
}
