//! `babelctl simulate --adversary --kept DIR`: the report of a store of kept runs, read back
//! without running a seed. Checked against a closed store in the repository, whose figures
//! `docs/verify.md` quotes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
use common::babelctl;

fn store(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/verify-runs")
        .join(name)
}

#[test]
fn a_closed_store_reports_the_figures_the_docs_quote() {
    let dir = store("2903f21-last-resort");
    let (ok, out, err) = babelctl(&[
        "simulate",
        "--adversary",
        "--kept",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{err}");
    assert!(err.is_empty(), "nothing left out: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["seeds"], "1-116, 501-569");
    assert_eq!(v["plan"]["knobs"], serde_json::json!({}));
    let r = &v["report"];
    assert_eq!(r["runs"], 185);
    // docs/verify.md, "Against the goal": no honest eviction, the paper's rule 7,595.
    assert_eq!(r["honest_evicted"], serde_json::json!([0, 7595]));
    let within5 = |h: &serde_json::Value| -> u64 {
        h["counts"]
            .as_array()
            .unwrap()
            .iter()
            .take(6)
            .map(|c| c.as_u64().unwrap())
            .sum()
    };
    let total = |h: &serde_json::Value| -> u64 {
        h["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum::<u64>()
            + h["undetected"].as_u64().unwrap()
    };
    // 767 / 796 full-liar pairs and 661 / 745 partial-liar pairs within 5 cycles.
    assert_eq!(
        (within5(&r["liar_cycles"]), total(&r["liar_cycles"])),
        (767, 796)
    );
    assert_eq!(
        (within5(&r["partial_cycles"]), total(&r["partial_cycles"])),
        (661, 745)
    );
}

#[test]
fn the_text_report_names_the_plan_and_the_seeds() {
    let dir = store("2903f21-last-resort");
    let (ok, out, err) = babelctl(&["simulate", "--adversary", "--kept", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("seeds                    1-116, 501-569"),
        "{out}"
    );
    assert!(out.contains("runs                     185 "), "{out}");
    assert!(
        out.contains("honest neighbours evicted ours 0 / paper's rule on the same checks 7595"),
        "{out}"
    );
}

#[test]
fn kept_is_an_option_of_the_adversarial_sweep_only() {
    let dir = store("2903f21-last-resort");
    let (ok, out, err) = babelctl(&["simulate", "--kept", dir.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(err.contains("--adversary"), "{err}");
}

#[test]
fn a_missing_store_is_an_error() {
    let (ok, _, err) = babelctl(&[
        "simulate",
        "--adversary",
        "--kept",
        "/nonexistent/verify-runs",
    ]);
    assert!(!ok);
    assert!(err.contains("--kept /nonexistent/verify-runs"), "{err}");
}
