//! Property tests: every policy is a strict total order, deterministic, and never prefers an
//! unfeasible or infinite-metric route (RFC 8966 §3.6).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::cmp::Ordering;

use price_metric::{Candidate, INFINITY, Policy};
use proptest::prelude::*;

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Babeld),
        (0u32..5000).prop_map(|metric_factor| Policy::Althea { metric_factor }),
        (0u32..5000).prop_map(|n_milli| Policy::Paper { n_milli }),
    ]
}

fn candidate(tie: u64) -> impl Strategy<Value = Candidate> {
    (
        prop_oneof![0u16..2000, Just(INFINITY), any::<u16>()],
        any::<u16>(),
        prop_oneof![0u32..1000, any::<u32>()],
        any::<bool>(),
    )
        .prop_map(
            move |(metric, smoothed_metric, price, feasible)| Candidate {
                metric,
                smoothed_metric,
                price,
                feasible,
                tie_break: tie,
            },
        )
}

fn three() -> impl Strategy<Value = [Candidate; 3]> {
    (candidate(1), candidate(2), candidate(3)).prop_map(|(a, b, c)| [a, b, c])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn strict_total_order(p in policy(), cs in three()) {
        let [a, b, c] = cs;
        // Irreflexive, antisymmetric, total.
        prop_assert_eq!(p.cmp(&a, &a), Ordering::Equal);
        prop_assert_eq!(p.cmp(&a, &b), p.cmp(&b, &a).reverse());
        prop_assert_ne!(p.cmp(&a, &b), Ordering::Equal);
        // Transitive.
        if p.cmp(&a, &b) == Ordering::Less && p.cmp(&b, &c) == Ordering::Less {
            prop_assert_eq!(p.cmp(&a, &c), Ordering::Less);
        }
    }

    #[test]
    fn deterministic_and_order_independent(p in policy(), cs in three()) {
        let fwd = p.best(cs.iter()).copied();
        let rev: Vec<Candidate> = cs.iter().rev().copied().collect();
        prop_assert_eq!(fwd, p.best(rev.iter()).copied());
        prop_assert_eq!(fwd, p.best(cs.iter()).copied());
    }

    #[test]
    fn never_prefers_unselectable(p in policy(), cs in three()) {
        match p.best(cs.iter()) {
            Some(best) => {
                prop_assert!(best.feasible && best.metric < INFINITY);
                for c in &cs {
                    if c.selectable() {
                        prop_assert_ne!(p.cmp(c, best), Ordering::Less);
                    }
                }
            }
            None => prop_assert!(cs.iter().all(|c| !c.selectable())),
        }
        for c in &cs {
            for d in &cs {
                if !d.selectable() {
                    prop_assert!(!p.should_switch(c, d));
                }
            }
        }
    }

    #[test]
    fn switch_never_to_worse_score(p in policy(), cs in three()) {
        let [a, b, _] = cs;
        if a.selectable() && p.should_switch(&a, &b) {
            prop_assert!(p.score(&b, true) < p.score(&a, true));
        }
    }
}

#[test]
fn diamond_each_policy_follows_its_formula() {
    // Path A: good metric, expensive. Path B: poor metric, cheap.
    let a = Candidate::new(200, 1000, 1);
    let b = Candidate::new(800, 100, 2);
    assert_eq!(Policy::Babeld.best([a, b].iter()), Some(&a));
    // Althea, factor 1900: log2(1000)+1.9*log2(200) = 9.97+14.52 = 24.49
    //                      log2(100)+1.9*log2(800)   = 6.64+18.32 = 24.97 -> A.
    assert_eq!(
        Policy::Althea {
            metric_factor: 1900
        }
        .best([a, b].iter()),
        Some(&a)
    );
    // Factor 1000: 9.97+7.64=17.61 vs 6.64+9.64=16.29 -> B.
    assert_eq!(
        Policy::Althea {
            metric_factor: 1000
        }
        .best([a, b].iter()),
        Some(&b)
    );
    // Paper: n=0.5 -> 200+500=700 vs 800+50=850 -> A; n=1 -> 1200 vs 900 -> B.
    assert_eq!(Policy::Paper { n_milli: 500 }.best([a, b].iter()), Some(&a));
    assert_eq!(
        Policy::Paper { n_milli: 1000 }.best([a, b].iter()),
        Some(&b)
    );
}

#[test]
fn price_zero_and_metric_zero_are_defined() {
    let p = Policy::Althea {
        metric_factor: 1900,
    };
    // Price 0 scores like price 1: metric decides between them.
    let free = Candidate::new(500, 0, 1);
    let one = Candidate::new(400, 1, 2);
    assert_eq!(p.best([free, one].iter()), Some(&one));
    assert_eq!(price_metric::althea_score(0, 0, 1900), 0);
}
