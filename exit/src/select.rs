//! Choosing an exit among those configured, by Babel's view of the routes to them (network
//! paper, "Exit nodes"; `spec/exits.md`, "Selection").
//!
//! Each exit is scored with the route selection policy of the `price-metric` crate on the route
//! to the exit's mesh address: the metric (or the verified cost, when route verification has
//! measured one) and the price of using it (route price plus the exit's fee). Lower is better.
//!
//! * An exit is **reachable** when the daemon has a route to its mesh address with a finite
//!   metric. When the current exit is not (or is no longer configured), the best reachable one
//!   is taken at once: the switch takes no longer than Babel takes to retract or expire the
//!   route (route expiry, RFC 8966 §3.5.3; neighbour loss, §3.4.2) plus the daemon's reaction
//!   to the route change.
//! * Otherwise the selector switches only when some exit has scored better than the current
//!   one by more than `margin_percent` percent **continuously** for `hold`; then it takes the
//!   best one. An exit that oscillates around the current one never triggers a switch, and two
//!   switches for quality are at least `hold` apart.

use clock::Instant;
use std::net::Ipv6Addr;
use std::time::Duration;

use payments::Price;
use price_metric::{Candidate, INFINITY, Policy};

/// Babel's view of the route to one exit's mesh address, filled by the daemon from the
/// engine's installed route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitRouteView {
    /// The route's metric (RFC 8966 §3.5); [`INFINITY`] when retracted.
    pub metric: u16,
    /// The route's price, wei per byte (Althea's price, as accumulated at this router).
    pub price: Price,
    /// The verified cost of the path, in metric units, when route verification measured one;
    /// it replaces the advertised metric.
    pub verified_cost: Option<u16>,
}

/// One configured exit as the selector sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitCandidate {
    /// The exit's payment key (its identity).
    pub key: [u8; 32],
    /// The exit's mesh address.
    pub mesh_address: Ipv6Addr,
    /// The exit's fee, when known (from its answer to a registration); 0 otherwise.
    pub fee: Price,
    /// The installed route to `mesh_address`, if any.
    pub route: Option<ExitRouteView>,
}

impl ExitCandidate {
    fn reachable(&self) -> bool {
        self.route
            .is_some_and(|r| r.verified_cost.unwrap_or(r.metric) < INFINITY && r.metric < INFINITY)
    }

    fn score(&self, policy: &Policy) -> Option<u64> {
        if !self.reachable() {
            return None;
        }
        let r = self.route?;
        let c = Candidate::new(
            r.verified_cost.unwrap_or(r.metric),
            r.price.saturating_add(self.fee),
            0,
        );
        Some(policy.score(&c, false))
    }
}

/// The selection rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectionPolicy {
    /// How metric and price combine (`price-metric`).
    pub policy: Policy,
    /// A challenger must score lower than the current exit by more than this percentage.
    pub margin_percent: u8,
    /// ... continuously for this long.
    pub hold: Duration,
}

impl Default for SelectionPolicy {
    /// The paper's extended metric with price weight 1 (`n_milli` 1000), a 20 % margin and a
    /// 60 s hold.
    fn default() -> SelectionPolicy {
        SelectionPolicy {
            policy: Policy::Paper { n_milli: 1000 },
            margin_percent: 20,
            hold: Duration::from_secs(60),
        }
    }
}

/// Why the selector chose what it chose (for `show exits` and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionReason {
    /// No configured exit is reachable.
    NoneReachable,
    /// Nothing was selected before: the best reachable exit.
    First,
    /// The previous exit became unreachable (or was removed from the configuration): switched
    /// at once.
    Unreachable {
        /// The exit left.
        previous: [u8; 32],
    },
    /// Another exit was better by more than the margin for the hold time.
    Better {
        /// The exit left.
        previous: [u8; 32],
        /// The previous exit's score.
        previous_score: u64,
    },
    /// The current exit is the best, or no other is better by the margin.
    Best,
    /// Another exit is better by the margin, but not yet for the hold time.
    Holding {
        /// The best challenger now.
        challenger: [u8; 32],
        /// How long it has been better by the margin so far.
        for_: Duration,
    },
}

impl SelectionReason {
    /// Short name for `show exits`.
    pub fn name(&self) -> &'static str {
        match self {
            SelectionReason::NoneReachable => "none-reachable",
            SelectionReason::First => "first",
            SelectionReason::Unreachable { .. } => "previous-unreachable",
            SelectionReason::Better { .. } => "better",
            SelectionReason::Best => "best",
            SelectionReason::Holding { .. } => "holding",
        }
    }
}

/// A decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// The exit to use (`None`: none reachable; the daemon removes the default routes so that
    /// nothing leaks out another way).
    pub exit: Option<[u8; 32]>,
    /// Its score.
    pub score: Option<u64>,
    /// Whether this decision changed the exit.
    pub changed: bool,
    /// Why.
    pub reason: SelectionReason,
}

/// The selector's state: the current exit and since when a challenger has been better.
#[derive(Debug, Clone)]
pub struct Selector {
    cfg: SelectionPolicy,
    current: Option<[u8; 32]>,
    better_since: Option<Instant>,
    last: Option<Selection>,
}

impl Selector {
    /// A selector with nothing selected.
    pub fn new(cfg: SelectionPolicy) -> Selector {
        Selector {
            cfg,
            current: None,
            better_since: None,
            last: None,
        }
    }

    /// A candidate's score under this selector's policy (lower is better; `None`:
    /// unreachable), for `show exits`.
    pub fn score(&self, c: &ExitCandidate) -> Option<u64> {
        c.score(&self.cfg.policy)
    }

    /// The current exit.
    pub fn current(&self) -> Option<[u8; 32]> {
        self.current
    }

    /// The newest decision.
    pub fn last(&self) -> Option<&Selection> {
        self.last.as_ref()
    }

    /// Decides at `now` among `candidates` (every configured exit, with the daemon's current
    /// routes). Call it on every change of a route to an exit and periodically (so a hold can
    /// expire).
    pub fn decide(&mut self, now: Instant, candidates: &[ExitCandidate]) -> Selection {
        let s = self.decide_inner(now, candidates);
        self.current = s.exit;
        self.last = Some(s);
        s
    }

    fn decide_inner(&mut self, now: Instant, candidates: &[ExitCandidate]) -> Selection {
        let policy = &self.cfg.policy;
        let best = candidates
            .iter()
            .filter_map(|c| c.score(policy).map(|s| (s, c.key)))
            .min();
        let current = self
            .current
            .and_then(|k| candidates.iter().find(|c| c.key == k))
            .and_then(|c| c.score(policy).map(|s| (s, c.key)));
        let Some((best_score, best_key)) = best else {
            self.better_since = None;
            return Selection {
                exit: None,
                score: None,
                changed: self.current.is_some(),
                reason: SelectionReason::NoneReachable,
            };
        };
        let switch = |reason| Selection {
            exit: Some(best_key),
            score: Some(best_score),
            changed: true,
            reason,
        };
        let Some((cur_score, cur_key)) = current else {
            self.better_since = None;
            return match self.current {
                None => switch(SelectionReason::First),
                Some(previous) => switch(SelectionReason::Unreachable { previous }),
            };
        };
        let keep = |reason| Selection {
            exit: Some(cur_key),
            score: Some(cur_score),
            changed: false,
            reason,
        };
        let margin = u64::from(self.cfg.margin_percent.min(100));
        let better_by_margin = best_key != cur_key
            && u128::from(best_score) * 100 < u128::from(cur_score) * u128::from(100 - margin);
        if !better_by_margin {
            self.better_since = None;
            return keep(SelectionReason::Best);
        }
        let since = *self.better_since.get_or_insert(now);
        let held = now.saturating_since(since);
        if held >= self.cfg.hold {
            self.better_since = None;
            return switch(SelectionReason::Better {
                previous: cur_key,
                previous_score: cur_score,
            });
        }
        keep(SelectionReason::Holding {
            challenger: best_key,
            for_: held,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [0xa; 32];
    const B: [u8; 32] = [0xb; 32];

    fn cand(key: [u8; 32], metric: Option<u16>) -> ExitCandidate {
        ExitCandidate {
            key,
            mesh_address: Ipv6Addr::LOCALHOST,
            fee: 0,
            route: metric.map(|metric| ExitRouteView {
                metric,
                price: 0,
                verified_cost: None,
            }),
        }
    }

    fn policy() -> SelectionPolicy {
        SelectionPolicy {
            policy: Policy::Babeld,
            margin_percent: 20,
            hold: Duration::from_secs(30),
        }
    }

    #[test]
    fn first_choice_is_the_best_and_none_reachable_is_said() {
        let mut s = Selector::new(policy());
        let t0 = clock::now();
        let d = s.decide(t0, &[cand(A, None), cand(B, Some(INFINITY))]);
        assert_eq!(
            (d.exit, d.reason, d.changed),
            (None, SelectionReason::NoneReachable, false)
        );
        let d = s.decide(t0, &[cand(A, Some(300)), cand(B, Some(200))]);
        assert_eq!(
            (d.exit, d.reason, d.changed),
            (Some(B), SelectionReason::First, true)
        );
        assert_eq!(d.reason.name(), "first");
    }

    #[test]
    fn unreachable_current_switches_at_once() {
        let mut s = Selector::new(policy());
        let t0 = clock::now();
        s.decide(t0, &[cand(A, Some(100)), cand(B, Some(500))]);
        // A retracted (infinite metric): B immediately, although B is much worse.
        let d = s.decide(t0, &[cand(A, Some(INFINITY)), cand(B, Some(500))]);
        assert_eq!(d.exit, Some(B));
        assert_eq!(d.reason, SelectionReason::Unreachable { previous: A });
        assert!(d.changed);
        // A's route gone entirely, then A removed from the configuration: same rule.
        let mut s = Selector::new(policy());
        s.decide(t0, &[cand(A, Some(100)), cand(B, Some(500))]);
        let d = s.decide(t0, &[cand(B, Some(500))]);
        assert_eq!(
            (d.exit, d.reason),
            (Some(B), SelectionReason::Unreachable { previous: A })
        );
        // Everything gone: no exit, and that is a change.
        let d = s.decide(t0, &[cand(B, None)]);
        assert_eq!(
            (d.exit, d.changed, d.reason),
            (None, true, SelectionReason::NoneReachable)
        );
        assert_eq!(s.current(), None);
    }

    #[test]
    fn flapping_metrics_do_not_flap_the_exit() {
        let mut s = Selector::new(policy());
        let t0 = clock::now();
        s.decide(t0, &[cand(A, Some(200)), cand(B, Some(210))]);
        let mut switches = 0;
        // For 10 minutes, every 2 s, the two metrics swap around each other: A and B alternate
        // as the better by up to 40 % (beyond the margin), but never for 30 s in a row.
        for i in 1..300u64 {
            let now = t0 + Duration::from_secs(2 * i);
            let phase = (i / 5) % 2 == 0; // 10 s each way
            let (ma, mb) = if phase { (260, 150) } else { (150, 260) };
            let d = s.decide(now, &[cand(A, Some(ma)), cand(B, Some(mb))]);
            switches += u32::from(d.changed);
            assert_eq!(d.exit, Some(A));
        }
        assert_eq!(switches, 0);
        // Small differences (inside the margin) never even start the hold.
        let d = s.decide(
            t0 + Duration::from_secs(700),
            &[cand(A, Some(200)), cand(B, Some(170))],
        );
        assert_eq!(d.reason, SelectionReason::Best);
    }

    #[test]
    fn a_lasting_improvement_wins_after_the_hold_and_only_once() {
        let mut s = Selector::new(policy());
        let t0 = clock::now();
        s.decide(t0, &[cand(A, Some(300)), cand(B, Some(400))]);
        let better = [cand(A, Some(300)), cand(B, Some(200))];
        let d = s.decide(t0 + Duration::from_secs(1), &better);
        assert_eq!(
            d.reason,
            SelectionReason::Holding {
                challenger: B,
                for_: Duration::ZERO
            }
        );
        let d = s.decide(t0 + Duration::from_secs(30), &better);
        assert_eq!((d.exit, d.changed), (Some(A), false));
        let d = s.decide(t0 + Duration::from_secs(31), &better);
        assert_eq!(d.exit, Some(B));
        assert_eq!(
            d.reason,
            SelectionReason::Better {
                previous: A,
                previous_score: 300
            }
        );
        let d = s.decide(t0 + Duration::from_secs(32), &better);
        assert_eq!(
            (d.exit, d.changed, d.reason),
            (Some(B), false, SelectionReason::Best)
        );
        assert_eq!(s.last().map(|l| l.exit), Some(Some(B)));
    }

    #[test]
    fn price_fee_and_verified_cost_count() {
        let t0 = clock::now();
        let p = SelectionPolicy {
            policy: Policy::Paper { n_milli: 1000 },
            ..policy()
        };
        // Same metric; B's route is cheap but its fee is high.
        let a = ExitCandidate {
            fee: 10,
            route: Some(ExitRouteView {
                metric: 100,
                price: 50,
                verified_cost: None,
            }),
            ..cand(A, None)
        };
        let b = ExitCandidate {
            fee: 200,
            route: Some(ExitRouteView {
                metric: 100,
                price: 0,
                verified_cost: None,
            }),
            ..cand(B, None)
        };
        let mut s = Selector::new(p);
        assert_eq!(s.decide(t0, &[a, b]).exit, Some(A));
        // Verification finds A's path far worse than advertised.
        let a_verified = ExitCandidate {
            route: a.route.map(|r| ExitRouteView {
                verified_cost: Some(2000),
                ..r
            }),
            ..a
        };
        let mut s = Selector::new(p);
        assert_eq!(s.decide(t0, &[a_verified, b]).exit, Some(B));
        // A verified cost of infinity makes an exit unreachable.
        let a_dead = ExitCandidate {
            route: a.route.map(|r| ExitRouteView {
                verified_cost: Some(INFINITY),
                ..r
            }),
            ..a
        };
        assert_eq!(Selector::new(p).decide(t0, &[a_dead]).exit, None);
    }

    /// Route verification finds the current exit's path worse than advertised: the verified
    /// cost replaces its metric, and the usual margin and hold decide (no switch before the
    /// hold, one switch after it, and a verified cost within the margin changes nothing).
    #[test]
    fn a_verified_cost_worse_than_advertised_moves_the_user_after_the_hold() {
        let t0 = clock::now();
        let with_cost = |key, metric, verified_cost| ExitCandidate {
            route: Some(ExitRouteView {
                metric,
                price: 0,
                verified_cost,
            }),
            ..cand(key, None)
        };
        let mut s = Selector::new(policy());
        let d = s.decide(t0, &[with_cost(A, 100, None), with_cost(B, 150, None)]);
        assert_eq!(d.exit, Some(A));
        // Within the margin (A verified at 180 against B's 150: B better by 17 %): kept.
        let near = [with_cost(A, 100, Some(180)), with_cost(B, 150, None)];
        let d = s.decide(t0 + Duration::from_secs(1), &near);
        assert_eq!((d.exit, d.reason), (Some(A), SelectionReason::Best));
        // Verified at 400: B is better by more than the margin, held first.
        let worse = [with_cost(A, 100, Some(400)), with_cost(B, 150, None)];
        let d = s.decide(t0 + Duration::from_secs(2), &worse);
        assert_eq!(d.exit, Some(A));
        assert!(matches!(d.reason, SelectionReason::Holding { challenger, .. } if challenger == B));
        assert_eq!(s.score(&worse[0]), Some(400));
        let d = s.decide(t0 + Duration::from_secs(31), &worse);
        assert_eq!((d.exit, d.changed), (Some(A), false));
        let d = s.decide(t0 + Duration::from_secs(32), &worse);
        assert_eq!((d.exit, d.changed), (Some(B), true));
        assert_eq!(
            d.reason,
            SelectionReason::Better {
                previous: A,
                previous_score: 400
            }
        );
        // The same figures without verification never move it.
        let mut s = Selector::new(policy());
        s.decide(t0, &[with_cost(A, 100, None), with_cost(B, 150, None)]);
        for i in 1..100 {
            let d = s.decide(
                t0 + Duration::from_secs(i),
                &[with_cost(A, 100, None), with_cost(B, 150, None)],
            );
            assert_eq!((d.exit, d.reason), (Some(A), SelectionReason::Best));
        }
    }
}
