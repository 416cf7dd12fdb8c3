//! Route verification in the simulator (`spec/verify.md` §5.2, §8): the engine advertises a
//! corrected route at its verified cost, and a small adversarial sweep (the big one is
//! `cargo bench -p babel-sim --bench adversary` and `babelctl simulate --adversary`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use babel_core::RouteKey;
use babel_sim::{
    AdversaryConfig, InterfaceKind, Role, RunStore, Sim, SimConfig, SweepProgress, Topology,
    adversary::{SweepPlan, sweep, sweep_with},
    node_prefix,
};

/// §5.2: node 1 corrects its route to node 2; node 0 then hears at least the verified cost.
#[test]
fn corrected_route_is_advertised_at_verified_cost() {
    let mut sim = Sim::new(
        &Topology::line(3),
        SimConfig {
            seed: 3,
            ..SimConfig::default()
        },
    );
    sim.run_for(Duration::from_secs(30));
    let p = node_prefix(2);
    let before = sim
        .engine(0)
        .unwrap()
        .installed(&RouteKey::new(p))
        .unwrap()
        .metric;
    assert_eq!(before.0, 192);
    let (ifindex, addr) = sim.neighbour_of(1, 2).unwrap();
    sim.with_engine(1, |e, now| {
        e.set_verified_metric(
            now,
            RouteKey::new(p),
            ifindex,
            addr,
            1000,
            now + Duration::from_secs(120),
        )
        .unwrap();
    })
    .unwrap();
    // A triggered update, not the periodic one (16 s).
    sim.run_for(Duration::from_secs(2));
    let after = sim
        .engine(0)
        .unwrap()
        .installed(&RouteKey::new(p))
        .unwrap()
        .metric;
    assert_eq!(after.0, 1000 + 96);
    // It ends with the correction.
    sim.run_for(Duration::from_secs(160));
    let end = sim
        .engine(0)
        .unwrap()
        .installed(&RouteKey::new(p))
        .unwrap()
        .metric;
    assert_eq!(end.0, 192);
}

/// §8 in small: liars and partial liars among honest nodes on lossy links. Traffic leaves the
/// liars, liars are evicted, our rule evicts far fewer honest neighbours than the paper's on the
/// same checks, and every forged or altered Remote IHU is dropped.
#[test]
fn adversarial_sweep_small() {
    let (rep, runs) = sweep(1, 2, 30, 36, InterfaceKind::Wired, 2, &|c| {
        c.cycles = 8;
        c.roles = vec![Role::Liar, Role::PartialLiar, Role::Forger];
    });
    println!("{}", rep.render());
    assert_eq!(runs.len(), 2);
    // Traffic moves off the liars: per-sample rate through a liar at least halves.
    let first = rep.through_liar.0 as f64
        / runs.iter().map(|r| r.traffic_first.samples).sum::<u64>() as f64;
    let last =
        rep.through_liar.1 as f64 / runs.iter().map(|r| r.traffic_last.samples).sum::<u64>() as f64;
    assert!(last * 2.0 < first, "{first} -> {last}");
    // Liars are evicted by some of their neighbours.
    assert!(rep.liar_cycles.within(8) + rep.partial_cycles.within(8) > 0);
    // Ours evicts fewer honest neighbours than the paper's rule on the same evidence.
    assert!(
        rep.honest_evicted.0 < rep.honest_evicted.1,
        "{:?}",
        rep.honest_evicted
    );
    // The forger's work is all dropped and counted.
    assert!(rep.counters.bad_signature + rep.counters.unbound_key > 0);
    assert_eq!(rep.counters.replayed + rep.counters.malformed, 0);
}

/// §4.2.5, an evasive liar: liars that answer every Justify Request about a lie by telling the
/// truth about that destination for 45 s (then lying again) are justified or corrected at every
/// deadline, so the defaults evict few of them; with `asked_rises_evict` their rises evict
/// them, and more of them are evicted. The rises are counted either way. With
/// `fall_back_evicts` too, their lying again once risen evicts them: claims fall back, no
/// more of them escape, and less data crosses them in the last cycles.
#[test]
fn evasive_liars_are_evicted_by_their_rises_with_the_option() {
    let run = |asked_rises: bool, fall_back: bool| {
        sweep(1, 1, 30, 36, InterfaceKind::Wired, 1, &|c| {
            c.cycles = 8;
            c.roles = vec![Role::Liar, Role::PartialLiar];
            // Lies far from the truth even on the short routes of a small mesh: further under
            // the floor than a relay's lag.
            c.lie_divisor = 4;
            c.evasive_hold = Some(Duration::from_secs(45));
            c.verify.score.asked_rises_evict = asked_rises;
            c.verify.score.fall_back_evicts = fall_back;
        })
        .0
    };
    let (off, on, fall_back) = (run(false, false), run(true, false), run(true, true));
    println!("{}\n{}\n{}", off.render(), on.render(), fall_back.render());
    let evicted = |r: &babel_sim::adversary::SweepReport| {
        r.liar_cycles.within(8) + r.partial_cycles.within(8)
    };
    assert!(off.counters.asked_rises > 0, "{:?}", off.counters);
    assert!(on.counters.asked_rises > 0, "{:?}", on.counters);
    assert!(
        evicted(&on) > evicted(&off),
        "{} vs {}",
        evicted(&on),
        evicted(&off)
    );
    assert_eq!(on.counters.fell_back, 0, "{:?}", on.counters);
    assert!(fall_back.counters.fell_back > 0, "{:?}", fall_back.counters);
    assert!(
        evicted(&fall_back) >= evicted(&on),
        "{} vs {}",
        evicted(&fall_back),
        evicted(&on)
    );
    // Less data crosses a liar at the end.
    assert!(
        fall_back.through_liar.1 < on.through_liar.1,
        "{:?} vs {:?}",
        fall_back.through_liar,
        on.through_liar
    );
    assert_eq!(fall_back.honest_evicted.0, 0);
}

/// A liar's exposures are to neighbours that verify: many liars on a small mesh route through
/// one another, and none of them, running no verifier, is counted as a neighbour that should
/// have evicted another. Each exposure carries its cycles and its late samples.
#[test]
fn exposures_are_to_neighbours_that_verify() {
    let (_, runs) = sweep(1, 2, 30, 36, InterfaceKind::Wired, 2, &|c| {
        c.cycles = 6;
        c.roles = vec![Role::Liar; 8];
    });
    let mut pairs = 0;
    for r in &runs {
        for l in &r.liars {
            assert_eq!(l.neighbours.len(), l.exposed);
            assert_eq!(l.cycles.len(), l.exposed);
            assert_eq!(l.late_samples.len(), l.exposed);
            for v in &l.neighbours {
                pairs += 1;
                assert!(
                    !r.adversaries.get(v).is_some_and(|role| role.lies()),
                    "seed {}: liar {} counted as exposed to liar {v}",
                    r.seed,
                    l.node
                );
            }
        }
    }
    assert!(pairs > 0);
}

/// A sweep that resumes from the runs an interrupted one kept in a [`RunStore`] runs only the
/// seeds it lacks, and reports what one uninterrupted sweep reports.
#[test]
fn a_resumed_sweep_runs_only_the_missing_seeds() {
    let plan = SweepPlan {
        first_seed: 1,
        seeds: 3,
        min_nodes: 12,
        max_nodes: 14,
        kind: InterfaceKind::Wired,
        threads: 2,
    };
    let tweak = |c: &mut AdversaryConfig| {
        c.cycles = 2;
        c.roles = vec![Role::Liar];
    };
    let (whole, runs) = sweep_with(&plan, &tweak, &|_| None, &|_| {});
    let dir = std::env::temp_dir().join(format!("resumed-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = RunStore::open(&dir, &plan, Default::default()).unwrap();
    let ran = std::sync::Mutex::new(Vec::new());
    let progress = |p: SweepProgress<'_>| {
        if let SweepProgress::Kept(r) = p {
            ran.lock().unwrap().push(r.seed);
        }
    };
    let (first, _) = store.sweep(&plan, &tweak, &progress).unwrap();
    assert_eq!(first.render(), whole.render());
    // Stopped while seed 2 ran: only seeds 1 and 3 were kept.
    std::fs::remove_file(dir.join("seed-2.json")).unwrap();
    ran.lock().unwrap().clear();
    let (resumed, again) = store.sweep(&plan, &tweak, &progress).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ran.into_inner().unwrap(), vec![2]);
    assert_eq!(
        again.iter().map(|r| r.seed).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(again.get(1), runs.get(1));
    assert_eq!(resumed.render(), whole.render());
    assert_eq!(resumed.runs, 3);
}
