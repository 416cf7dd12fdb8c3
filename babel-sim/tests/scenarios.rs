//! Simulation tests: convergence on every topology, failures, restarts, starvation, prices.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use babel_core::{Instant, Policy, RouteKey};
use babel_sim::{
    LinkSpec, Scenario, Sim, SimConfig, SimEvent, Topology, node_prefix, run_scenario,
};

fn converge(spec: &str, seed: u64) -> (Sim, Duration) {
    let topo = Topology::parse(spec, seed).unwrap();
    let mut sim = Sim::new(
        &topo,
        SimConfig {
            seed,
            ..SimConfig::default()
        },
    );
    let t = sim
        .run_until_converged(Duration::from_secs(400))
        .unwrap_or_else(|| panic!("{spec} did not converge: {:?}", sim.check_best()));
    assert_eq!(sim.stats().loops, 0, "{spec}");
    (sim, t)
}

#[test]
fn every_topology_converges_to_shortest_paths() {
    for spec in ["line:6", "ring:7", "grid:4x4", "full:6", "random:25"] {
        let (sim, t) = converge(spec, 3);
        // check_best compares metrics with Dijkstra: equal costs ⇒ fewest hops.
        assert!(t < Duration::from_secs(200), "{spec}: {t:?}");
        assert!(sim.routes_per_node().min == sim.node_count() - 1, "{spec}");
    }
}

#[test]
fn topology_from_file_converges() {
    let text = "# a square with a diagonal that costs more\nnodes 4\nlink 0 1\nlink 1 2\nlink 2 3\nlink 3 0\nlink 0 2 cost 300\n";
    let topo = Topology::from_text("inline", text).unwrap();
    assert_eq!(topo.links.len(), 5);
    let mut sim = Sim::new(&topo, SimConfig::default());
    assert!(
        sim.run_until_converged(Duration::from_secs(200)).is_some(),
        "{:?}",
        sim.check_best()
    );
    // 0 → 2: two hops of 96 (192) beat the diagonal (300).
    assert_eq!(sim.installed(0, node_prefix(2)).unwrap().metric.0, 192);
    assert!(Topology::from_text("x", "link 0 1\n").is_err());
    assert!(Topology::parse("hexagon:3", 0).is_err());
}

#[test]
fn link_cut_reroutes_and_lost_prefix_is_retracted_everywhere() {
    // Ring of 6: 0's route to 1 is direct; cut 0-1, it must go the long way round.
    let (mut sim, _) = converge("ring:6", 1);
    assert_eq!(sim.next_hop_node(0, node_prefix(1)), Some(1));
    sim.apply(SimEvent::LinkDown(0, 1));
    let t = sim
        .run_until_converged(Duration::from_secs(300))
        .expect("reroute");
    assert_eq!(sim.next_hop_node(0, node_prefix(1)), Some(5));
    assert_eq!(sim.installed(0, node_prefix(1)).unwrap().metric.0, 5 * 96);
    assert!(t < Duration::from_secs(120), "{t:?}");
    // Node 3 withdraws its prefix: gone everywhere.
    sim.apply(SimEvent::Withdraw(3, node_prefix(3)));
    sim.run_for(Duration::from_secs(10));
    for n in 0..6 {
        assert!(
            sim.installed(n, node_prefix(3)).is_none(),
            "node {n} still has 3's prefix"
        );
    }
    // Node 2 crashes: its prefix disappears from every live node.
    sim.apply(SimEvent::Crash(2));
    sim.run_until_converged(Duration::from_secs(300))
        .expect("crash handled");
    for n in [0, 1, 4, 5] {
        assert!(sim.installed(n, node_prefix(2)).is_none());
    }
    assert_eq!(sim.stats().loops, 0);
}

#[test]
fn link_cost_change_moves_traffic() {
    let (mut sim, _) = converge("ring:4", 2);
    // 0 → 1 direct (96) vs 0-3-2-1 (288).
    assert_eq!(sim.next_hop_node(0, node_prefix(1)), Some(1));
    sim.apply(SimEvent::LinkCost(0, 1, 1000));
    sim.run_until_converged(Duration::from_secs(300))
        .expect("converge after cost change");
    assert_eq!(sim.next_hop_node(0, node_prefix(1)), Some(3));
    assert_eq!(sim.stats().loops, 0);
}

#[test]
fn restarted_node_with_fixed_router_id_and_lost_seqno_is_reacquired() {
    for seed in [1u64, 2, 3, 4] {
        let (mut sim, _) = converge("line:4", seed);
        // Bump node 3's seqno well away from its start, as a long-running node would.
        let before = sim.engine(3).unwrap().seqno();
        sim.apply(SimEvent::Crash(3));
        sim.run_for(Duration::from_secs(30));
        assert!(sim.installed(0, node_prefix(3)).is_none());
        sim.apply(SimEvent::Restart {
            node: 3,
            keep_seqno: false,
        });
        let after = sim.engine(3).unwrap().seqno();
        let t = sim
            .run_until_converged(Duration::from_secs(400))
            .unwrap_or_else(|| {
                panic!(
                    "seed {seed}: not re-acquired ({before} -> {after}): {:?}",
                    sim.check_best()
                )
            });
        // Worst case (random seqno behind the old one by > 100) waits for source GC (200 s).
        assert!(t <= Duration::from_secs(260), "seed {seed}: {t:?}");
        assert!(sim.installed(0, node_prefix(3)).is_some());
        assert_eq!(sim.stats().loops, 0);
    }
}

#[test]
fn restart_with_state_is_reacquired_quickly() {
    let (mut sim, _) = converge("line:4", 9);
    sim.apply(SimEvent::Crash(3));
    sim.run_for(Duration::from_secs(30));
    sim.apply(SimEvent::Restart {
        node: 3,
        keep_seqno: true,
    });
    let t = sim
        .run_until_converged(Duration::from_secs(200))
        .expect("re-acquired");
    assert!(t < Duration::from_secs(60), "{t:?}");
}

#[test]
fn starvation_is_resolved_by_seqno_requests() {
    // Diamond: 0-1 (96), 1-3 (96), 0-2 (200), 2-3 (400). 0 reaches 3 via 1 and has advertised
    // metric 192 (its feasibility distance). When 1-3 fails, the only other route is 2's, with
    // metric 400 ≥ 192 at the same seqno: unfeasible, so 0 starves until a seqno request makes
    // node 3 publish a newer seqno (RFC 8966 §3.8.2.1).
    let topo = Topology {
        name: "diamond".into(),
        nodes: 4,
        links: vec![
            LinkSpec::new(0, 1),
            LinkSpec::new(1, 3),
            LinkSpec {
                cost: 200,
                ..LinkSpec::new(0, 2)
            },
            LinkSpec {
                cost: 400,
                ..LinkSpec::new(2, 3)
            },
        ],
    };
    let mut sim = Sim::new(
        &topo,
        SimConfig {
            seed: 5,
            ..SimConfig::default()
        },
    );
    sim.run_until_converged(Duration::from_secs(200))
        .expect("initial");
    assert_eq!(sim.next_hop_node(0, node_prefix(3)), Some(1));
    let seqno_before = sim.engine(3).unwrap().seqno();
    let requests_before: u64 = (0..4)
        .map(|n| sim.engine(n).unwrap().counters().seqno_requests_sent)
        .sum();
    sim.apply(SimEvent::LinkDown(1, 3));
    let t = sim
        .run_until_converged(Duration::from_secs(200))
        .expect("starvation resolved");
    assert_eq!(sim.next_hop_node(0, node_prefix(3)), Some(2));
    let requests: u64 = (0..4)
        .map(|n| sim.engine(n).unwrap().counters().seqno_requests_sent)
        .sum();
    assert!(requests > requests_before, "seqno requests were sent");
    assert_ne!(
        sim.engine(3).unwrap().seqno(),
        seqno_before,
        "the source bumped its seqno"
    );
    // Without seqno requests the unfeasible route would wait for source GC (200 s).
    assert!(t < Duration::from_secs(60), "{t:?}");
    assert_eq!(sim.stats().loops, 0);
}

/// Diamond: 0 reaches 3 through 1 (cheap link, expensive node) or 2 (costly link, cheap node).
fn price_diamond(policy: Policy) -> Sim {
    let topo = Topology {
        name: "price-diamond".into(),
        nodes: 4,
        links: vec![
            LinkSpec::new(0, 1),
            LinkSpec::new(1, 3),
            LinkSpec {
                cost: 400,
                ..LinkSpec::new(0, 2)
            },
            LinkSpec {
                cost: 400,
                ..LinkSpec::new(2, 3)
            },
        ],
    };
    let mut sim = Sim::new(
        &topo,
        SimConfig {
            seed: 11,
            policy,
            ..SimConfig::default()
        },
    );
    sim.apply(SimEvent::Fee(1, 1000));
    sim.apply(SimEvent::Fee(2, 10));
    sim.run_for(Duration::from_secs(120));
    sim
}

#[test]
fn price_diamond_each_policy_follows_its_formula() {
    let dst = node_prefix(3);
    // Via 1: metric 192, price 1000 (+ 0's fee 0). Via 2: metric 800, price 10.
    let sim = price_diamond(Policy::Babeld);
    assert_eq!(sim.next_hop_node(0, dst), Some(1), "babeld: metric only");
    let r = sim.installed(0, dst).unwrap();
    assert_eq!((r.metric.0, r.price), (192, 1000));
    // Althea 1900: log2(1000)+1.9·log2(192) = 9.97+14.41 = 24.38;
    //              log2(10)+1.9·log2(800)   = 3.32+18.32 = 21.64 → via 2.
    let sim = price_diamond(Policy::Althea {
        metric_factor: 1900,
    });
    assert_eq!(sim.next_hop_node(0, dst), Some(2));
    // Althea 5000: 9.97+37.92 = 47.89 vs 3.32+48.22 = 51.54 → via 1.
    let sim = price_diamond(Policy::Althea {
        metric_factor: 5000,
    });
    assert_eq!(sim.next_hop_node(0, dst), Some(1));
    // Paper n = 0.5: 192 + 500 = 692 vs 800 + 5 = 805 → via 1; n = 1: 1192 vs 810 → via 2.
    let sim = price_diamond(Policy::Paper { n_milli: 500 });
    assert_eq!(sim.next_hop_node(0, dst), Some(1));
    let sim = price_diamond(Policy::Paper { n_milli: 1000 });
    assert_eq!(sim.next_hop_node(0, dst), Some(2));
}

#[test]
fn price_diamond_metric_factor_and_fee_changes_move_traffic() {
    let dst = node_prefix(3);
    let mut sim = price_diamond(Policy::Althea {
        metric_factor: 1900,
    });
    assert_eq!(sim.next_hop_node(0, dst), Some(2));
    sim.apply(SimEvent::MetricFactor(0, 5000));
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.next_hop_node(0, dst), Some(1), "quality weighs more");
    // Back: the route via 2 is now unfeasible (0 advertised metric 192), so 0 asks for a new
    // seqno (RFC 8966 §3.8.2.2) and moves once the source answers.
    sim.apply(SimEvent::MetricFactor(0, 1900));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.next_hop_node(0, dst), Some(2));
    // Node 2 raises its fee: its price reaches 0 with the next update, traffic moves to 1.
    sim.apply(SimEvent::Fee(2, 100_000));
    sim.run_for(Duration::from_secs(30));
    assert_eq!(
        sim.next_hop_node(0, dst),
        Some(1),
        "fee change moved traffic"
    );
    let r = sim.installed(0, dst).unwrap();
    assert_eq!(r.price, 1000);
    assert_eq!(sim.stats().loops, 0);
    let _ = RouteKey::new(dst);
}

#[test]
fn same_seed_same_output_byte_for_byte() {
    let mk = |seed| Scenario {
        topology: "grid:4x4".into(),
        config: SimConfig {
            seed,
            loss_ppm: 20_000,
            ..SimConfig::default()
        },
        events: vec![(Duration::from_secs(60), SimEvent::LinkDown(5, 6))],
        max_time: Duration::from_secs(300),
    };
    let a = serde_json::to_string(&run_scenario(&mk(7)).unwrap()).unwrap();
    let b = serde_json::to_string(&run_scenario(&mk(7)).unwrap()).unwrap();
    assert_eq!(a, b);
    let c = serde_json::to_string(&run_scenario(&mk(8)).unwrap()).unwrap();
    assert_ne!(a, c, "the seed matters");
    assert!(a.contains("\"loops\":0"), "{a}");
}

#[test]
fn lossy_links_still_converge_without_loops() {
    let topo = Topology::parse("grid:3x3", 0).unwrap();
    let mut sim = Sim::new(
        &topo,
        SimConfig {
            seed: 4,
            loss_ppm: 100_000,
            ..SimConfig::default()
        },
    );
    // With 10 % loss on every link the 2-out-of-3 rule makes a link infinite now and then, and
    // babeld's hysteresis (RFC 8966 A.3: a route back from an infinite metric smooths down from
    // infinity) keeps a node off that link for about 40 s afterwards, so a moment when every
    // node is on its shortest route may never come, with babeld as with us. What must hold:
    // every node comes to reach every other, and no loop ever forms.
    let mut reached = None;
    for s in 1..=400 {
        sim.run_for(Duration::from_secs(1));
        if sim.routes_per_node().min == sim.node_count() - 1 {
            reached = Some(s);
            break;
        }
    }
    assert!(
        reached.is_some(),
        "every node reaches every other under 10 % loss"
    );
    sim.run_for(Duration::from_secs(300));
    assert_eq!(sim.stats().loops, 0);
    assert!(sim.stats().packets_lost > 0);
}

#[test]
fn event_syntax() {
    assert_eq!(
        SimEvent::parse("link-down:1-2"),
        Some(SimEvent::LinkDown(1, 2))
    );
    assert_eq!(
        SimEvent::parse("link-cost:1-2:300"),
        Some(SimEvent::LinkCost(1, 2, 300))
    );
    assert_eq!(
        SimEvent::parse("restart-fresh:4"),
        Some(SimEvent::Restart {
            node: 4,
            keep_seqno: false
        })
    );
    assert_eq!(
        SimEvent::parse("announce:3:2001:db8::/48"),
        Some(SimEvent::Announce(3, "2001:db8::/48".parse().unwrap()))
    );
    assert_eq!(SimEvent::parse("bogus:1"), None);
    let _ = Instant::ZERO;
}

#[test]
fn wireless_and_tunnel_links_converge() {
    for kind in [
        babel_sim::InterfaceKind::Wireless,
        babel_sim::InterfaceKind::Tunnel,
    ] {
        let topo = Topology::parse("ring:6", 0).unwrap();
        let mut sim = Sim::new(
            &topo,
            SimConfig {
                seed: 6,
                kind,
                ..SimConfig::default()
            },
        );
        sim.run_until_converged(Duration::from_secs(300))
            .unwrap_or_else(|| panic!("{kind:?}: {:?}", sim.check_best()));
        assert_eq!(sim.stats().loops, 0);
    }
}

#[test]
fn announced_prefix_reaches_everyone_and_withdrawal_removes_it() {
    let (mut sim, _) = converge("grid:3x3", 8);
    let p: babel_wire::Prefix = "2001:db8:42::/48".parse().unwrap();
    sim.apply(SimEvent::Announce(4, p));
    sim.run_until_converged(Duration::from_secs(120))
        .expect("announced");
    for n in (0..9).filter(|n| *n != 4) {
        assert!(sim.installed(n, p).is_some(), "node {n}");
    }
    sim.apply(SimEvent::Withdraw(4, p));
    sim.run_until_converged(Duration::from_secs(120))
        .expect("withdrawn");
    for n in 0..9 {
        assert!(sim.installed(n, p).is_none(), "node {n}");
    }
}

/// The windowed, threaded mode (`threads` ≥ 2): a seed reproduces the run byte for byte, the
/// number of threads does not change it, it is the single-threaded run, and every node reaches
/// every other without loops through a link cut and lossy links (not always on its shortest
/// route at one instant: a link the loss made infinite is avoided for a while afterwards, RFC
/// 8966 A.3, as babeld does).
#[test]
fn threaded_windows_are_deterministic_and_converge() {
    let cut = |seed| {
        let l = Topology::parse("mesh:20", seed).unwrap().links[0];
        SimEvent::LinkDown(l.a, l.b)
    };
    let mk = |seed, threads| Scenario {
        topology: "mesh:20".into(),
        config: SimConfig {
            seed,
            loss_ppm: 20_000,
            threads,
            ..SimConfig::default()
        },
        events: vec![(Duration::from_secs(40), cut(seed))],
        max_time: Duration::from_secs(200),
    };
    let run =
        |seed, threads| serde_json::to_string(&run_scenario(&mk(seed, threads)).unwrap()).unwrap();
    let a = run(7, 2);
    assert_eq!(a, run(7, 2), "same seed, same run");
    assert_eq!(a, run(7, 3), "the thread count does not matter");
    // The windows send in the order single steps do: the same packets are lost and delayed.
    assert_eq!(a, run(7, 1), "threaded and single-threaded runs agree");
    assert_ne!(a, run(8, 2), "the seed matters");
    let s: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert_eq!(s["routes_per_node"]["min"], 19, "{a}");
    assert_eq!(s["loops"], 0, "{a}");
    // A larger lossless mesh on two threads reaches the same best routes as one thread.
    for threads in [1, 2] {
        let topo = Topology::parse("mesh:40", 2).unwrap();
        let mut sim = Sim::new(
            &topo,
            SimConfig {
                seed: 2,
                threads,
                ..SimConfig::default()
            },
        );
        sim.run_until_converged(Duration::from_secs(300))
            .unwrap_or_else(|| panic!("threads {threads}: {:?}", sim.check_best()));
        assert_eq!(sim.stats().loops, 0);
        assert_eq!(sim.routes_per_node().min, 39, "threads {threads}");
    }
}

/// `mesh:N[:DEGREE]`: connected, mean degree near DEGREE whatever N, same seed same graph.
#[test]
fn bounded_degree_mesh() {
    for (n, d) in [(200usize, 6.0f64), (1000, 6.0), (1000, 4.0)] {
        let t = Topology::parse(&format!("mesh:{n}:{d}"), 1).unwrap();
        assert_eq!(t, Topology::parse(&format!("mesh:{n}:{d}"), 1).unwrap());
        assert_ne!(t, Topology::parse(&format!("mesh:{n}:{d}"), 2).unwrap());
        let mean = 2.0 * t.links.len() as f64 / n as f64;
        assert!(
            mean > d * 0.8 && mean < d * 1.2,
            "{n}:{d}: mean degree {mean}"
        );
        // Connected: a search from node 0 reaches everyone.
        let mut adj = vec![Vec::new(); n];
        for l in &t.links {
            adj[l.a].push(l.b);
            adj[l.b].push(l.a);
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(x) = stack.pop() {
            for &y in &adj[x] {
                if !seen[y] {
                    seen[y] = true;
                    stack.push(y);
                }
            }
        }
        assert!(seen.iter().all(|s| *s), "{n}:{d} not connected");
    }
    // The old model stays selectable, its degree growing with ln N.
    let r = Topology::parse("random:1000", 1).unwrap();
    assert!(2.0 * r.links.len() as f64 / 1000.0 > 6.3);
}

/// Only every K-th node announces: the others still route to every announced prefix.
#[test]
fn announce_every_kth_node() {
    let topo = Topology::parse("grid:5x5", 0).unwrap();
    let mut sim = Sim::new(
        &topo,
        SimConfig {
            announce_every: 5,
            ..SimConfig::default()
        },
    );
    sim.run_until_converged(Duration::from_secs(300))
        .expect("converges");
    let r = sim.routes_per_node();
    assert_eq!(
        (r.min, r.max),
        (4, 5),
        "5 announcers: 4 routes at an announcer, 5 elsewhere"
    );
    assert!(sim.installed(1, node_prefix(5)).is_some());
    assert!(sim.installed(0, node_prefix(1)).is_none());
}
