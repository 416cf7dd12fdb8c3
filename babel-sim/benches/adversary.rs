//! Bench: the adversarial verification sweep (`spec/verify.md` §8).
//!
//! `cargo bench -p babel-sim --bench adversary -- SEEDS [MIN_NODES MAX_NODES [wired|wireless [THREADS]]]`
//!
//! `ADV_RUNS=DIR` keeps each seed's run in `DIR/seed-N.json` as soon as it ends, and takes the
//! runs already there instead of running their seeds again: a sweep that was stopped resumes
//! where it was with the same command. `DIR/plan.json` holds the mesh sizes, the link kind and
//! every `ADV_*` knob of the runs; a command with other ones is refused. A change of the code
//! is not detected: start a new directory after one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::Path;

use babel_sim::{
    InterfaceKind, RunStore, SweepProgress,
    adversary::{SweepPlan, sweep_with},
};

// The same allocator as the mesh bench: the sweep's time is the engines' (`docs/benchmarks.md`,
// "Twelfth pass"); the runs are the same with either allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The knobs that decide a run's result (not `ADV_FIRST`, `ADV_RUNS`, `ADV_JSON`, `ADV_DUMP`).
fn knobs() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("ADV_")
                && !matches!(
                    k.as_str(),
                    "ADV_FIRST" | "ADV_RUNS" | "ADV_JSON" | "ADV_DUMP"
                )
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let seeds = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let min = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let max = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let kind = match args.get(3).map(String::as_str) {
        Some("wireless") => InterfaceKind::Wireless,
        _ => InterfaceKind::Wired,
    };
    let threads = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(2);
    let t0 = std::time::Instant::now();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let window = env("ADV_WINDOW");
    let recheck = env("ADV_RECHECK");
    let bhw = env("ADV_BLACK_HOLE_WINDOW");
    let within = env("ADV_CONFIRM_WITHIN");
    let per_neighbour = env("ADV_PER_NEIGHBOUR");
    let black_holes_evict = env("ADV_BLACK_HOLES_EVICT");
    let attribution = env("ADV_ATTRIBUTION");
    let returned = env("ADV_RETURNED");
    let both_ends = env("ADV_BOTH_ENDS");
    let trace_depth = env("ADV_TRACE_DEPTH");
    let hop_bound = env("ADV_HOP_BOUND");
    let fallen_claim = std::env::var("ADV_FALLEN_CLAIM").ok();
    let passing_origin = env("ADV_PASSING_ORIGIN");
    let through_us = env("ADV_THROUGH_US");
    let progress = env("ADV_PROGRESS");
    let unknown_breadth = env("ADV_UNKNOWN_BREADTH");
    let progress_on_accuracy = env("ADV_PROGRESS_ACCURACY");
    let scale_advertised = env("ADV_SCALE_ADVERTISED");
    let follow_claims = env("ADV_CORRECTION_FOLLOW");
    let relayed_used = env("ADV_RELAYED_USED");
    let check_requests = env("ADV_CHECK_REQUESTS");
    let unanswered_rechecks = env("ADV_UNANSWERED_RECHECKS");
    let verified_next_hop = env("ADV_VERIFIED_NEXT_HOP");
    let justification = env("ADV_JUSTIFY");
    let unjustified_origin = env("ADV_UNJUSTIFIED_ORIGIN");
    let unjustified_unknown = env("ADV_UNJUSTIFIED_UNKNOWN");
    let unjustified_through_us = env("ADV_UNJUSTIFIED_THROUGH_US");
    let loop_through_us = env("ADV_LOOP_THROUGH_US");
    let justify_on_rise = env("ADV_JUSTIFY_ON_RISE");
    let reask_moved_claim = env("ADV_REASK_MOVED_CLAIM");
    let awaits_justification = env("ADV_AWAITS_JUSTIFICATION");
    let reask_infinite_claim = env("ADV_REASK_INFINITE_CLAIM");
    let reask_refused_claim = env("ADV_REASK_REFUSED_CLAIM");
    let correction_meets_next_hop = env("ADV_CORRECTION_MEETS_NEXT_HOP");
    let correction_near_measured = env("ADV_CORRECTION_NEAR_MEASURED");
    let withdrawn_origin_evicts = env("ADV_WITHDRAWN_ORIGIN_EVICTS");
    let audit_claims = env("ADV_AUDIT_CLAIMS");
    let audit_signers_only = env("ADV_AUDIT_SIGNERS_ONLY");
    let asked_rises = env("ADV_ASKED_RISES");
    let fall_back = env("ADV_FALL_BACK");
    let asked_rises_apart = env("ADV_ASKED_RISES_APART");
    let asked_rise_window = env("ADV_ASKED_RISE_WINDOW");
    let lowest_floor = env("ADV_ASKED_RISE_LOWEST_FLOOR");
    let suspicious = env("ADV_SUSPICIOUS");
    let late_start = env("ADV_LATE_START");
    let sessions = env("ADV_SESSIONS");
    let readvertise = env("ADV_READVERTISE");
    let last_resort = env("ADV_LAST_RESORT");
    let last_resort_penalty = env("ADV_LAST_RESORT_PENALTY");
    // Seconds an evasive liar stays honest about a destination it was asked to justify.
    let evasive_hold = env("ADV_EVASIVE_HOLD");
    let evasive_withdraws = env("ADV_EVASIVE_WITHDRAWS");
    let split_horizon = env("ADV_SPLIT_HORIZON");
    // 0/off, 1/both, settled, forgive, forgive-current, forgive-retraction (§4.2.2).
    let stable: Option<verify::StableEvidence> =
        std::env::var("ADV_STABLE").ok().map(|v| match v.as_str() {
            "0" => verify::StableEvidence::Off,
            "1" => verify::StableEvidence::Both,
            x => x.parse().unwrap(),
        });
    let roles: Option<Vec<babel_sim::Role>> = std::env::var("ADV_ROLES").ok().map(|r| {
        r.split(',')
            .filter_map(|x| serde_json::from_value(serde_json::Value::String(x.to_owned())).ok())
            .collect()
    });
    let first = env("ADV_FIRST").unwrap_or(1);
    let plan = SweepPlan {
        first_seed: first,
        seeds,
        min_nodes: min,
        max_nodes: max,
        kind,
        threads,
    };
    let store = std::env::var_os("ADV_RUNS").map(|d| {
        RunStore::open(Path::new(&d), &plan, knobs()).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        })
    });
    let tweak = |c: &mut babel_sim::AdversaryConfig| {
        if let Some(w) = window {
            c.verify.score.window = std::time::Duration::from_secs(w);
        }
        if let Some(r) = &roles {
            c.roles = r.clone();
        }
        if let Some(w) = bhw {
            c.verify.score.black_hole_window = std::time::Duration::from_secs(w);
        }
        if let Some(w) = within {
            c.verify.score.confirm_within = std::time::Duration::from_secs(w);
        }
        if let Some(x) = black_holes_evict {
            c.verify.score.black_holes_evict = x != 0;
        }
        if let Some(x) = attribution {
            c.verify.score.attribution = x != 0;
        }
        if let Some(x) = returned {
            c.verify.score.returned_blame = x != 0;
        }
        if let Some(x) = both_ends {
            c.verify.score.origin_at_both_ends = x != 0;
        }
        if let Some(x) = trace_depth {
            c.verify.score.trace_depth = u8::try_from(x).unwrap();
        }
        if let Some(x) = hop_bound {
            c.verify.score.hop_bound = x != 0;
        }
        if let Some(x) = &fallen_claim {
            c.verify.score.fallen_claim = x.parse().unwrap();
        }
        if let Some(x) = passing_origin {
            c.verify.score.passing_origin = x != 0;
        }
        if let Some(x) = through_us {
            c.verify.score.through_us = x != 0;
        }
        if let Some(x) = progress {
            c.verify.score.progress = x != 0;
        }
        if let Some(x) = progress_on_accuracy {
            c.verify.score.progress_on_accuracy = x != 0;
        }
        if let Some(x) = unknown_breadth {
            c.verify.score.unknown_breadth = x != 0;
        }
        if let Some(x) = scale_advertised {
            c.verify.correction.scale_advertised = x != 0;
        }
        if let Some(x) = follow_claims {
            c.verify.correction.follow_claims = x != 0;
        }
        if let Some(x) = stable {
            c.verify.score.stable_evidence = x;
        }
        if let Some(x) = relayed_used {
            c.verify.schedule.relayed_probes_used = x != 0;
        }
        if let Some(x) = justification {
            c.verify.score.justification = x != 0;
        }
        if let Some(x) = suspicious {
            c.verify.schedule.prefer_suspicious = x != 0;
        }
        if let Some(x) = late_start {
            c.verify.schedule.late_start = x != 0;
        }
        if let Some(x) = unjustified_unknown {
            c.verify.score.unjustified_unknown_evicts = x != 0;
        }
        if let Some(x) = unjustified_through_us {
            c.verify.score.unjustified_through_us_evicts = x != 0;
        }
        if let Some(x) = justify_on_rise {
            c.verify.score.justify_on_rise = x != 0;
        }
        if let Some(x) = reask_moved_claim {
            c.verify.score.reask_moved_claim = x != 0;
        }
        if let Some(x) = awaits_justification {
            c.verify.score.confirmed_awaits_justification = x != 0;
        }
        if let Some(x) = reask_infinite_claim {
            c.verify.score.reask_infinite_claim = x != 0;
        }
        if let Some(x) = reask_refused_claim {
            c.verify.score.reask_refused_claim = x != 0;
        }
        if let Some(x) = correction_meets_next_hop {
            c.verify.score.correction_meets_next_hop = x != 0;
        }
        if let Some(x) = correction_near_measured {
            c.verify.score.correction_near_measured = x != 0;
        }
        if let Some(x) = withdrawn_origin_evicts {
            c.verify.score.withdrawn_origin_evicts = x != 0;
        }
        if let Some(x) = audit_claims {
            c.verify.score.audit_claims = x != 0;
        }
        if let Some(x) = audit_signers_only {
            c.verify.score.audit_signers_only = x != 0;
        }
        if let Some(x) = asked_rises {
            c.verify.score.asked_rises_evict = x != 0;
        }
        if let Some(x) = fall_back {
            c.verify.score.fall_back_evicts = x != 0;
        }
        if let Some(x) = asked_rises_apart {
            c.verify.score.asked_rises_apart = x != 0;
        }
        if let Some(x) = asked_rise_window {
            c.verify.score.asked_rise_window = std::time::Duration::from_secs(x);
        }
        if let Some(x) = lowest_floor {
            c.verify.score.asked_rise_lowest_floor = x != 0;
        }
        if let Some(x) = loop_through_us {
            c.verify.score.loop_through_us = x != 0;
        }
        if let Some(x) = unjustified_origin {
            c.verify.score.unjustified_origin_evicts = x != 0;
        }
        if let Some(x) = verified_next_hop {
            c.verify.score.verified_next_hop = x != 0;
        }
        if let Some(x) = unanswered_rechecks {
            c.verify.schedule.unanswered_rechecks = u8::try_from(x).unwrap_or(u8::MAX);
        }
        if let Some(x) = check_requests {
            c.verify.schedule.check_requests = x != 0;
        }
        if let Some(x) = readvertise {
            c.readvertise = x != 0;
        }
        if let Some(x) = last_resort {
            c.last_resort = Some(x != 0);
        }
        if let Some(x) = last_resort_penalty {
            c.last_resort_penalty = Some(u16::try_from(x).unwrap_or(u16::MAX));
        }
        if let Some(x) = evasive_hold {
            c.evasive_hold = Some(std::time::Duration::from_secs(x));
        }
        if let Some(x) = evasive_withdraws {
            c.evasive_withdraws = x != 0;
        }
        if let Some(x) = split_horizon {
            c.split_horizon = Some(x != 0);
        }
        if let Some(x) = sessions {
            c.verify.schedule.sessions_per_neighbour = u8::try_from(x).unwrap_or(u8::MAX);
        }
        if let Some(x) = per_neighbour {
            c.verify.schedule.per_neighbour = x != 0;
        }
        if let Some(r) = recheck {
            c.verify.schedule.recheck_after = std::time::Duration::from_secs(r);
        }
    };
    let (rep, _runs) = match &store {
        None => sweep_with(&plan, &tweak, &|_| None, &|_| {}),
        Some(store) => store
            .sweep(&plan, &tweak, &|p| match p {
                SweepProgress::Kept(r) => eprintln!(
                    "seed {}: {} nodes, honest evicted {}, kept at {:.0?}",
                    r.seed,
                    r.nodes,
                    r.honest_evicted,
                    t0.elapsed()
                ),
                SweepProgress::Unreadable(e) => eprintln!("{e}; running it again"),
            })
            .unwrap(),
    };
    if std::env::var_os("ADV_JSON").is_some() {
        println!("{}", serde_json::to_string_pretty(&rep).unwrap());
    } else {
        print!("{}", rep.render());
    }
    if let Ok(path) = std::env::var("ADV_DUMP") {
        std::fs::write(path, serde_json::to_string_pretty(&_runs).unwrap()).unwrap();
    }
    eprintln!("wall time {:?}", t0.elapsed());
}
