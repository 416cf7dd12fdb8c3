//! Conformance cases: `tests/conformance/<case>/` holds `case.json` (what the case shows, the
//! engine's configuration and the instant it starts at) and numbered steps. Step `NN` has an
//! input file, `NN-input.jsonl`, with one engine input per line (`{"at": MICROS, "input": ...}`,
//! the JSON form of [`babel_core::Input`]) or `{"run_until": MICROS}` (every timer up to that
//! instant, each as an `Input::Timeout` at its own instant), and the expected outputs of the
//! step: `NN-output-transmits.jsonl` (packets sent, decoded), `NN-output-routes.jsonl` (kernel
//! changes), `NN-output-events.jsonl`, `NN-output-errors.jsonl` (inputs the engine refused) and `NN-output-state.json` (neighbours, routes, xroutes,
//! seqno and non-zero counters after the step). A missing output file means no such output.
//!
//! `UPDATE_GOLDEN=1 cargo test -p babel-core --test conformance` rewrites the
//! output files from what the engine does; review the diff before committing it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use babel_core::record::{Output, RecordingDriver, Timed};
use babel_core::{Engine, EngineConfig, Instant};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Case {
    #[allow(dead_code)]
    description: String,
    start: Instant,
    config: EngineConfig,
}

/// One line of an input file.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    RunUntil { run_until: Instant },
    Input(Box<Timed>),
}

#[derive(Default)]
struct StepOutputs {
    transmits: Vec<String>,
    routes: Vec<String>,
    events: Vec<String>,
    /// Inputs the engine refused: `{"line": N, "error": "..."}`.
    errors: Vec<String>,
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn drain(d: &mut RecordingDriver, out: &mut StepOutputs) {
    let o = d.drain();
    for r in d.records(&o) {
        let s = match &r {
            Output::Transmit(t) => {
                assert!(
                    t.decode_errors.is_empty(),
                    "the engine sent a bad TLV: {:?}",
                    t.decode_errors
                );
                &mut out.transmits
            }
            Output::Route(_) => &mut out.routes,
            Output::Event(_) => &mut out.events,
        };
        let v = match r {
            Output::Transmit(t) => serde_json::to_string(&t),
            Output::Route(c) => serde_json::to_string(&c),
            Output::Event(e) => serde_json::to_string(&e),
        };
        s.push(v.unwrap());
    }
}

fn state(d: &RecordingDriver, now: Instant) -> String {
    let counters: BTreeMap<&str, u64> = d
        .counters()
        .named()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    let v = json!({
        "seqno": d.seqno(),
        "neighbours": d.neighbours(now),
        "xroutes": d.xroutes(),
        "routes": d.routes(now),
        "counters": counters,
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap();
    s.push('\n');
    s
}

fn jsonl(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Compares (or, with `UPDATE_GOLDEN`, writes) one golden file; an empty `actual` means the
/// file must not exist.
fn golden(path: &Path, actual: &str, update: bool, failures: &mut String) {
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if update {
        if actual.is_empty() {
            let _ = std::fs::remove_file(path);
        } else if expected != actual {
            std::fs::write(path, actual).unwrap();
        }
        return;
    }
    if expected == actual {
        return;
    }
    let (mut e, mut a) = (expected.lines(), actual.lines());
    let mut n = 1;
    loop {
        match (e.next(), a.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            (x, y) => {
                let _ = writeln!(
                    failures,
                    "{}: line {n} differs\n  expected: {}\n  actual:   {}",
                    path.display(),
                    x.unwrap_or("<end>"),
                    y.unwrap_or("<end>")
                );
                break;
            }
        }
    }
}

/// What a case's steps produced: per step, its number, outputs and state.
struct Played {
    steps: Vec<(u32, StepOutputs, String)>,
}

/// Feeds a case's steps to a fresh engine, draining after every input.
fn play(dir: &Path) -> Played {
    let case: Case = serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap())
        .unwrap_or_else(|e| panic!("{}/case.json: {e}", dir.display()));
    let mut d = RecordingDriver::new(Engine::new(case.config, case.start).unwrap());
    let mut now = case.start;
    let mut inputs: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_owned();
            let n = name.strip_suffix("-input.jsonl")?.parse().ok()?;
            Some((n, p))
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{}: no steps", dir.display());
    let mut played = Played { steps: Vec::new() };
    for (n, input) in inputs {
        let mut out = StepOutputs::default();
        let text = std::fs::read_to_string(&input).unwrap();
        for (i, l) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let line: Line = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", input.display(), i + 1));
            match line {
                Line::RunUntil { run_until } => {
                    while let Some(t) = d.poll_timeout().filter(|t| *t <= run_until) {
                        now = now.max(t);
                        d.input(now, babel_core::Input::Timeout).unwrap();
                        drain(&mut d, &mut out);
                    }
                    now = now.max(run_until);
                }
                Line::Input(t) => {
                    assert!(t.at >= now, "{}:{}: time goes back", input.display(), i + 1);
                    now = t.at;
                    if let Err(e) = d.input(t.at, t.input.clone()) {
                        let j = json!({ "line": i + 1, "error": e.to_string() });
                        out.errors.push(j.to_string());
                    }
                    drain(&mut d, &mut out);
                }
            }
        }
        let st = state(&d, now);
        played.steps.push((n, out, st));
    }
    played
}

/// Runs one case against its goldens; returns its failures (empty if it passed).
fn run_case(dir: &Path, update: bool) -> String {
    let played = play(dir);
    let mut failures = String::new();
    for (n, out, st) in &played.steps {
        let file = |kind: &str| dir.join(format!("{n:02}-output-{kind}"));
        for (kind, lines) in [
            ("transmits", &out.transmits),
            ("routes", &out.routes),
            ("events", &out.events),
            ("errors", &out.errors),
        ] {
            let path = file(&format!("{kind}.jsonl"));
            golden(&path, &jsonl(lines), update, &mut failures);
        }
        golden(&file("state.json"), st, update, &mut failures);
    }
    // Every other file is an output of a step that no longer exists, or a typo.
    let steps: Vec<String> = played
        .steps
        .iter()
        .map(|(n, ..)| format!("{n:02}-"))
        .collect();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let known = name == "case.json"
            || steps.iter().any(|s| {
                name.strip_prefix(s.as_str()).is_some_and(|rest| {
                    rest == "input.jsonl"
                        || rest == "output-state.json"
                        || ["transmits", "routes", "events", "errors"]
                            .iter()
                            .any(|k| rest == format!("output-{k}.jsonl"))
                })
            });
        if known {
            continue;
        }
        if update && name.contains("-output-") {
            std::fs::remove_file(&p).unwrap();
        } else {
            let _ = writeln!(failures, "{}: not part of the case", p.display());
        }
    }
    failures
}

fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn conformance_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dirs = case_dirs();
    assert!(dirs.len() >= 15, "only {} cases", dirs.len());
    let mut failed = Vec::new();
    for dir in &dirs {
        let f = run_case(dir, update);
        if !f.is_empty() {
            failed.push(f);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases differ from their goldens (UPDATE_GOLDEN=1 regenerates them):\n{}",
        failed.len(),
        dirs.len(),
        failed.join("\n")
    );
}

/// The same inputs always give the same outputs: every case played twice is identical, so a
/// golden can only change when behaviour does.
#[test]
fn cases_are_deterministic() {
    for dir in case_dirs() {
        let (a, b) = (play(&dir), play(&dir));
        let flat = |p: &Played| -> Vec<String> {
            p.steps
                .iter()
                .flat_map(|(_, o, s)| {
                    o.transmits
                        .iter()
                        .chain(&o.routes)
                        .chain(&o.events)
                        .chain(&o.errors)
                        .cloned()
                        .chain([s.clone()])
                })
                .collect()
        };
        assert_eq!(flat(&a), flat(&b), "{}", dir.display());
    }
}
