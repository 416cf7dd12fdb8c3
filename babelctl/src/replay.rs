//! `babelctl replay`: feeds a `babeld-rs --record` file to a fresh engine and prints its
//! outputs (JSONL, as recorded), or checks them against the recording.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use babel_core::record::{Output, Recording, Step, replay};

/// Arguments of `babelctl replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// A file written by `babeld-rs --record`.
    pub file: PathBuf,
    /// Compare every drain of outputs with the recorded one; fail at the first difference.
    #[arg(long)]
    pub check: bool,
    /// Print only the kernel route changes.
    #[arg(long)]
    pub routes: bool,
    /// Instead of replaying, write the recording as a conformance case into this new directory
    /// (`case.json` and `01-input.jsonl`; the outputs come from `UPDATE_GOLDEN=1`, see
    /// `babel-core/tests/conformance.rs`). A case has no filters: refused if the recording has.
    #[arg(long, value_name = "DIR")]
    pub case: Option<PathBuf>,
}

/// Runs `babelctl replay`.
pub fn run(args: &ReplayArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let rec = Recording::parse(&text)?;
    let filter = daemon::record::route_filter(&rec.header)?;
    if let Some(dir) = &args.case {
        if filter.is_some() {
            bail!("the recording has in/out filters, which a conformance case cannot express");
        }
        return write_case(&rec, &args.file, dir);
    }
    let mut write_err = None;
    let r = replay(&rec, filter, |line, outputs| {
        for o in outputs {
            if args.routes && !matches!(o, Output::Route(_)) {
                continue;
            }
            let res = serde_json::to_string(o)
                .map_err(anyhow::Error::from)
                .and_then(|s| {
                    writeln!(out, "{{\"line\":{line},\"output\":{s}}}").map_err(Into::into)
                });
            if let Err(e) = res {
                write_err.get_or_insert(e);
            }
        }
    })?;
    if let Some(e) = write_err {
        return Err(e);
    }
    if args.check {
        if let Some(d) = &r.divergence {
            let json = |v: &[Output]| {
                v.iter()
                    .map(|o| serde_json::to_string(o).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            };
            bail!(
                "replay differs from the recording at line {} (after {} equal drains)\n expected:\n  {}\n actual:\n  {}",
                d.line,
                r.drains_equal,
                json(&d.expected),
                json(&d.actual)
            );
        }
        eprintln!(
            "babelctl: replay matches: {} inputs, {} drains, {} route changes",
            r.inputs,
            r.drains_equal,
            r.routes.len()
        );
    }
    Ok(())
}

/// Writes `rec` as a conformance case in `dir` (which must not exist).
fn write_case(
    rec: &Recording,
    from: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let case = serde_json::json!({
        "description": format!("Recorded by babeld-rs --record ({}).", from.display()),
        "start": rec.header.start,
        "config": rec.header.config,
    });
    std::fs::write(
        dir.join("case.json"),
        serde_json::to_string_pretty(&case)? + "\n",
    )?;
    let mut inputs = String::new();
    for (_, s) in &rec.steps {
        if let Step::Input(t) = s {
            inputs.push_str(&serde_json::to_string(t)?);
            inputs.push('\n');
        }
    }
    std::fs::write(dir.join("01-input.jsonl"), inputs)?;
    Ok(())
}
