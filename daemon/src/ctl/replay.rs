//! `babelctl replay`: feeds a `babeld-rs --record` file to a fresh engine and prints its
//! outputs (JSONL, as recorded), or checks them against the recording.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use babel_core::record::{Output, Recording, replay};

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
}

/// Runs `babelctl replay`.
pub fn run(args: &ReplayArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let rec = Recording::parse(&text)?;
    let filter = crate::record::route_filter(&rec.header)?;
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
