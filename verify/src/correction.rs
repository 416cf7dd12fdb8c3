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

/// Last correction time per route, bounded.
#[derive(Clone, Debug)]
pub struct Corrections<K: Ord + Clone> {
    last: BTreeMap<K, Instant>,
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
        let since = self.last.get(&route).map(|t| now.saturating_since(*t));
        crate::bounded::make_room(&mut self.last, cfg.max_routes, &route, |t| *t);
        self.last.insert(route, now);
        Some((c, now + cfg.duration(since)))
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
