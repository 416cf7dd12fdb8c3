//! Record and replay on a real mesh: babeld-rs runs with `--record` between two Debian babelds
//! through convergence and a link cut, then its recording is replayed on a fresh engine, which
//! must make the same route changes in the same order (and the same packets and events:
//! `babelctl replay --check` compares every output).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use babel_core::RouteOp;
use babel_core::record::{Output, Recording, Step, replay};
use common::{
    FILTERS, babel_routes, can_use_netns, have, node, route_dev, start_router, start_with_args,
    tmp, veth, wait_for,
};

/// Runs `babelctl args...`: (success, stdout, stderr).
fn babelctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(test_support::babelctl())
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// A triangle: a (babeld-rs, recorded) linked to b and c (Debian's babeld), b linked to c.
/// a reaches c directly; c's end of a - c is cut and a reroutes through b. Then a stops (SIGTERM) and its recording is replayed.
#[test]
fn a_recorded_daemon_replays_to_the_same_route_changes() {
    let t = "a_recorded_daemon_replays_to_the_same_route_changes";
    if !can_use_netns(t) || !have("babeld", t) {
        return;
    }
    let (a, b, c) = (node("rra", 1), node("rrb", 2), node("rrc", 3));
    veth(&a, "rrab", &b, "rrba");
    veth(&a, "rrac", &c, "rrca");
    veth(&b, "rrbc", &c, "rrcb");
    let rec = tmp("rra.record");
    // An `in` filter: the replay must rebuild it from the recording's header.
    let conf = format!("{FILTERS}in ip fd77::2/128 metric 50\n");
    let mut da = start_with_args(
        &a,
        "rra",
        common::daemon_bin(),
        &conf,
        &["--record", rec.to_str().unwrap()],
        &["rrab", "rrac"],
    );
    let _db = start_router(&b, "rrb", "babeld", "", &["rrba", "rrbc"]);
    let _dc = start_router(&c, "rrc", "babeld", "", &["rrca", "rrcb"]);
    let log = da.log.clone();
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    for dst in ["fd77::2", "10.77.0.2", "fd77::3", "10.77.0.3"] {
        assert!(
            wait_for(90, || route_dev(&a, dst).is_some()),
            "a never got {dst}: {:?}\n{}",
            babel_routes(&a),
            logs()
        );
    }
    assert!(
        wait_for(60, || route_dev(&a, "fd77::3").as_deref() == Some("rrac")),
        "{:?}",
        babel_routes(&a)
    );
    // Cut the link at c's end: a's interface stays up, c stops hearing and speaking on it.
    c.ip(&["link", "set", "rrca", "down"]);
    for dst in ["fd77::3", "10.77.0.3"] {
        assert!(
            wait_for(90, || route_dev(&a, dst).as_deref() == Some("rrab")),
            "a did not reroute {dst}: {:?}\n{}",
            babel_routes(&a),
            logs()
        );
    }
    assert!(da.terminate().is_some_and(|s| s.success()), "{}", logs());

    let text = std::fs::read_to_string(&rec).unwrap();
    let recording = Recording::parse(&text).unwrap();
    let recorded: Vec<_> = recording
        .steps
        .iter()
        .filter_map(|(_, s)| match s {
            Step::Outputs(o) => Some(o),
            Step::Input(_) => None,
        })
        .flatten()
        .filter_map(|o| match o {
            Output::Route(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    // The recording saw convergence, the reroute and the shutdown.
    let to_c: Vec<(RouteOp, u32)> = recorded
        .iter()
        .filter(|c| c.prefix.to_string() == "fd77::3/128")
        .map(|c| (c.op, c.ifindex))
        .collect();
    let (ab, ac) = (a.ifindex("rrab"), a.ifindex("rrac"));
    // a may hear c through b before it hears c directly, so the first route can be either; a
    // route through a - c comes before the cut, one through b after it.
    let installs =
        |c: &(RouteOp, u32), dev: u32| matches!(c.0, RouteOp::Add | RouteOp::Replace) && c.1 == dev;
    let direct = to_c.iter().position(|c| installs(c, ac));
    let rerouted = direct.and_then(|i| to_c.iter().skip(i + 1).position(|c| installs(c, ab)));
    assert!(rerouted.is_some(), "{to_c:?}");
    assert_eq!(to_c.last().map(|c| c.0), Some(RouteOp::Delete), "{to_c:?}");

    // Replayed on a fresh engine: the same route changes in the same order, every drain equal.
    let filter = daemon::record::route_filter(&recording.header).unwrap();
    let r = replay(&recording, filter, |_, _| {}).unwrap();
    assert_eq!(r.routes, recorded);
    assert_eq!(r.divergence, None);
    assert!(r.inputs > 30, "{} inputs", r.inputs);
    let to_b = recorded
        .iter()
        .find(|c| c.prefix.to_string() == "fd77::2/128");
    assert!(to_b.is_some_and(|c| c.metric.0 >= 96 + 50), "{to_b:?}");
    // Without the filter the same inputs give other metrics.
    let unfiltered = replay(&recording, None, |_, _| {}).unwrap();
    assert!(unfiltered.divergence.is_some());

    // And through the operator's tool.
    let rec_path = rec.to_str().unwrap();
    let (ok, stdout, stderr) = babelctl(&["replay", "--check", "--routes", rec_path]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), recorded.len());

    // A recording with a changed header: `edit` gets the header line as JSON.
    let edited = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut h: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        edit(&mut h["header"]);
        lines[0] = h.to_string();
        let path = tmp(name);
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    };

    // The recording as a conformance case, the same inputs in one step; a case has no filters,
    // so only once they are taken out of the header.
    let case = tmp("rra-case");
    let (ok, _, stderr) = babelctl(&["replay", "--case", case.to_str().unwrap(), rec_path]);
    assert!(!ok && stderr.contains("filters"), "{stderr}");
    let no_filters = edited("rra.no-filters", &|h| {
        h["driver"]["filters"] = serde_json::json!([])
    });
    let args = [
        "replay",
        "--case",
        case.to_str().unwrap(),
        no_filters.to_str().unwrap(),
    ];
    let (ok, _, stderr) = babelctl(&args);
    assert!(ok, "{stderr}");
    let inputs = std::fs::read_to_string(case.join("01-input.jsonl")).unwrap();
    assert_eq!(inputs.lines().count(), r.inputs);
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    assert_eq!(
        serde_json::from_value::<babel_core::EngineConfig>(c["config"].clone()).unwrap(),
        recording.header.config
    );

    // A recording whose seed was changed no longer replays: the check can fail.
    let tampered = edited("rra.tampered", &|h| {
        let seed = h["config"]["seed"].as_u64().unwrap();
        h["config"]["seed"] = serde_json::json!(seed.wrapping_add(1));
    });
    let (ok, _, stderr) = babelctl(&["replay", "--check", tampered.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("differs"), "{stderr}");
}
