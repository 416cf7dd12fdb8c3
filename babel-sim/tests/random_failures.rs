//! Property test over random topologies and random failure sequences: no forwarding loop at any
//! step, ever, and convergence after the last event within a bound derived from the timers.
//!
//! ## The bound
//!
//! With Hello interval H = 4 s, update interval U = 16 s (sent every 0.75U–1.25U), smoothing
//! half-life L = 4 s and lossless links (≤ 2 ms delay), after the last event:
//!
//! 1. a dead link or node is noticed after two missed Hellos: the first counts at 1.7H after the
//!    last Hello heard, the second at 2.7H, and that last Hello was at most H earlier: ≤ 3.7H;
//! 2. a route nobody refreshes is retracted after its expiry, 3.5U after the last update;
//! 3. a better route travels at worst one periodic update per hop: ≤ 1.25U per hop, over at most
//!    D + 1 hops (D ≤ n − 1, the longest simple path);
//! 4. babeld's hysteresis switches only once the smoothed metrics have crossed: at most 16
//!    half-lives (metrics are 16-bit), then the next update: 16L (+ one hop already counted);
//! 5. starvation is resolved by seqno requests resent after 2, 4 and 8 s: ≤ 14 s;
//! 6. a node restarted *without* its seqno may be ignored until the sources' feasibility
//!    distances are garbage-collected: + 200 s + 1.25U.
//!
//! Bound = 3.7H + 3.5U + (D + 1)·1.25U + 16L + 14 s (+ 220 s after a fresh restart).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use babel_core::Instant;
use babel_sim::{LinkSpec, Sim, SimConfig, SimEvent, Topology};
use proptest::prelude::*;

const H: f64 = 4.0;
const U: f64 = 16.0;
const L: f64 = 4.0;

fn bound(nodes: usize, fresh_restart: bool) -> Duration {
    let d = (nodes - 1) as f64;
    let mut b = 3.7 * H + 3.5 * U + (d + 1.0) * 1.25 * U + 16.0 * L + 14.0;
    if fresh_restart {
        b += 200.0 + 1.25 * U;
    }
    Duration::from_secs_f64(b)
}

#[derive(Clone, Debug)]
enum Ev {
    Down(usize),
    Up(usize),
    Cost(usize, u16),
    Crash(usize),
    Restart(usize, bool),
}

fn topology() -> impl Strategy<Value = Topology> {
    (3usize..=6).prop_flat_map(|n| {
        let parents = proptest::collection::vec(any::<prop::sample::Index>(), n - 1);
        let extra = proptest::collection::vec(
            (0..n, 0..n, prop_oneof![Just(96u16), Just(200), Just(500)]),
            0..4,
        );
        (Just(n), parents, extra).prop_map(|(n, parents, extra)| {
            let mut links = Vec::new();
            for (i, p) in parents.iter().enumerate() {
                let child = i + 1;
                links.push(LinkSpec::new(p.index(child), child));
            }
            for (a, b, c) in extra {
                if a != b
                    && !links.iter().any(|l: &LinkSpec| {
                        (l.a, l.b) == (a.min(b), a.max(b)) || (l.a, l.b) == (a.max(b), a.min(b))
                    })
                {
                    links.push(LinkSpec {
                        cost: c,
                        ..LinkSpec::new(a.min(b), a.max(b))
                    });
                }
            }
            Topology {
                name: format!("prop:{n}"),
                nodes: n,
                links,
            }
        })
    })
}

fn events() -> impl Strategy<Value = Vec<(u64, Ev)>> {
    let ev = prop_oneof![
        3 => any::<prop::sample::Index>().prop_map(|i| Ev::Down(i.index(64))),
        2 => any::<prop::sample::Index>().prop_map(|i| Ev::Up(i.index(64))),
        2 => (any::<prop::sample::Index>(), prop_oneof![Just(96u16), Just(150), Just(700)]).prop_map(|(i, c)| Ev::Cost(i.index(64), c)),
        1 => any::<prop::sample::Index>().prop_map(|i| Ev::Crash(i.index(64))),
        1 => (any::<prop::sample::Index>(), any::<bool>()).prop_map(|(i, k)| Ev::Restart(i.index(64), k)),
    ];
    proptest::collection::vec((1u64..40, ev), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_loops_ever_and_bounded_convergence(topo in topology(), evs in events(), seed in any::<u64>()) {
        let mut sim = Sim::new(&topo, SimConfig { seed, ..SimConfig::default() });
        let mut t = Instant::from_secs(60);
        sim.run_until(t);
        let mut fresh = false;
        for (gap, ev) in &evs {
            let n = topo.nodes;
            let l = |i: usize| &topo.links[i % topo.links.len()];
            let ev = match ev {
                Ev::Down(i) => SimEvent::LinkDown(l(*i).a, l(*i).b),
                Ev::Up(i) => SimEvent::LinkUp(l(*i).a, l(*i).b),
                Ev::Cost(i, c) => SimEvent::LinkCost(l(*i).a, l(*i).b, *c),
                Ev::Crash(i) => SimEvent::Crash(i % n),
                Ev::Restart(i, keep) => {
                    fresh |= !keep;
                    SimEvent::Restart { node: i % n, keep_seqno: *keep }
                }
            };
            sim.apply(ev);
            prop_assert_eq!(sim.stats().loops, 0);
            t = t + Duration::from_secs(*gap);
            sim.run_until(t);
            prop_assert_eq!(sim.stats().loops, 0, "loop after {:?}", evs);
        }
        let b = bound(topo.nodes, fresh);
        let conv = sim.run_until_converged(b + Duration::from_secs(1));
        prop_assert!(conv.is_some(), "no convergence within {:?}: {:?}; topo {:?}; events {:?}", b, sim.check_best(), topo, evs);
        prop_assert!(conv.unwrap() <= b, "{:?} > {:?}", conv, b);
        prop_assert_eq!(sim.stats().loops, 0);
    }
}
