//! `babelctl simulate`: runs a deterministic mesh simulation of babel-core engines and prints a
//! summary (JSON with `--json`). The same arguments give the same output, byte for byte.
//!
//! ```text
//! babelctl simulate --topology grid:10x10 --seed 7 --json
//! babelctl simulate --topology ring:8 --event 120:link-down:0-1 --event 300:restart-fresh:4
//! babelctl simulate --topology random --sweep 50,100,200 --csv sweep.csv --svg sweep.svg
//! ```

use std::time::Duration;

use anyhow::{Context, bail};
use babel_sim::{InterfaceKind, Policy, Scenario, SimConfig, SimEvent, run_scenario};

/// Arguments of `babelctl simulate`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Topology: line:N, ring:N, grid:WxH, full:N, random:N[:RADIUS] (random geometric) or
    /// file:PATH (lines `nodes N` and `link A B [cost C] [loss P] [delay MS]`).
    #[arg(long, default_value = "grid:10x10")]
    pub topology: String,
    /// Seed of every random choice (topology, loss, delays, jitter).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Packet loss probability on every link, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// One-way link delay in milliseconds (plus up to 1 ms of jitter).
    #[arg(long, default_value_t = 1)]
    pub delay_ms: u64,
    /// Interface kind of every link: wired, wireless or tunnel.
    #[arg(long, default_value = "wired")]
    pub kind: String,
    /// Route selection: babeld, althea[:METRIC_FACTOR] or paper[:N_MILLI].
    #[arg(long, default_value = "babeld")]
    pub policy: String,
    /// Fee of every node.
    #[arg(long, default_value_t = 0)]
    pub fee: u32,
    /// Hello interval in seconds (update interval = 4 ×).
    #[arg(long, default_value_t = 4)]
    pub hello_interval: u64,
    /// An event, `SECONDS:KIND:ARGS`, e.g. `120:link-down:3-4`, `150:link-cost:1-2:500`,
    /// `200:crash:5`, `260:restart:5`, `260:restart-fresh:5`, `300:fee:2:100`,
    /// `300:metric-factor:0:1000`, `400:announce:3:2001:db8::/48`, `500:withdraw:3:2001:db8::/48`.
    /// Repeatable.
    #[arg(long = "event")]
    pub events: Vec<String>,
    /// Longest time to wait for convergence after the last event, in seconds.
    #[arg(long, default_value_t = 600)]
    pub max_time: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Route verification under attack (`spec/verify.md` §8): random meshes with a metric liar,
    /// a partial liar, a dropper, a favourer, a delayer and a forger, over `--seeds` seeds from
    /// `--seed`; prints the detection figures, ours next to the paper's rule.
    #[arg(long)]
    pub adversary: bool,
    /// With --adversary: number of seeds.
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// With --adversary: mesh sizes, MIN-MAX nodes.
    #[arg(long, default_value = "50-200")]
    pub nodes: String,
    /// With --adversary: adversaries present, comma-separated (liar, partial-liar, dropper,
    /// favourer, delayer, forger).
    #[arg(
        long,
        default_value = "liar,partial-liar,dropper,favourer,delayer,forger"
    )]
    pub roles: String,
    /// With --adversary: evasive liars, which answer a Justify Request about a lie by telling
    /// the truth about that destination for this many seconds, then lie again
    /// (`spec/verify.md` §4.2.5).
    #[arg(long, value_name = "SECONDS")]
    pub evasive: Option<u64>,
    /// With --adversary: verifiers evict a neighbour whose failing claims rise only when asked
    /// to justify them, twice within 90 s (`asked_rises_evict`, `spec/verify.md` §4.2.5).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub asked_rises: bool,
    /// With --adversary: verifiers evict a neighbour whose claim rose to its next hop's signed
    /// word when asked, fell back under it within 90 s and rose again when asked again
    /// (`fall_back_evicts`, `spec/verify.md` §4.2.5).
    #[arg(long, value_name = "BOOL", default_value_t = false, action = clap::ArgAction::Set)]
    pub fall_back: bool,
    /// With --adversary: worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// With --adversary: keep each seed's run in this directory as it ends, and take the runs
    /// already there instead of running their seeds again, so a stopped sweep resumes with the
    /// same command. Refused if the directory holds runs of other sizes or adversaries.
    #[arg(long)]
    pub runs: Option<std::path::PathBuf>,
    /// With --adversary: print the report of the runs kept in this directory (see --runs),
    /// whatever seeds and settings made them, and run nothing.
    #[arg(long, requires = "adversary", conflicts_with = "runs")]
    pub kept: Option<std::path::PathBuf>,
    /// Sizes to sweep, e.g. `50,100,200`: runs `KIND:N` for each N, KIND being `--topology`'s
    /// kind (line, ring, full, random), and prints one CSV row per size.
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<usize>,
    /// With `--sweep`: also write the CSV to this file.
    #[arg(long)]
    pub csv: Option<std::path::PathBuf>,
    /// With `--sweep`: write the convergence-time and message-count curves as an SVG plot.
    #[arg(long)]
    pub svg: Option<std::path::PathBuf>,
}

fn run_adversary(args: &SimulateArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.kept {
        return report_kept(dir, args.json);
    }
    let (min, max) = args
        .nodes
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .filter(|(a, b)| *a >= 2 && a <= b)
        .with_context(|| format!("--nodes {:?}: expected MIN-MAX", args.nodes))?;
    let roles = args
        .roles
        .split(',')
        .map(|r| {
            serde_json::from_value::<babel_sim::Role>(serde_json::Value::String(
                r.trim().to_owned(),
            ))
            .with_context(|| format!("unknown adversary {r:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let kind = parse_kind(&args.kind)?;
    let plan = babel_sim::adversary::SweepPlan {
        first_seed: args.seed,
        seeds: args.seeds,
        min_nodes: min,
        max_nodes: max,
        kind,
        threads: args.threads,
    };
    let store = match &args.runs {
        Some(dir) => {
            let mut settings: std::collections::BTreeMap<String, String> =
                [("roles".to_owned(), args.roles.clone())].into();
            if let Some(h) = args.evasive {
                settings.insert("evasive".to_owned(), h.to_string());
            }
            if !args.asked_rises {
                settings.insert("asked-rises".to_owned(), "false".to_owned());
            }
            if args.fall_back {
                settings.insert("fall-back".to_owned(), "true".to_owned());
            }
            Some(babel_sim::RunStore::open(dir, &plan, settings)?)
        }
        None => None,
    };
    let tweak = |c: &mut babel_sim::AdversaryConfig| {
        c.roles = roles.clone();
        c.evasive_hold = args.evasive.map(std::time::Duration::from_secs);
        c.verify.score.asked_rises_evict = args.asked_rises;
        c.verify.score.fall_back_evicts = args.fall_back;
    };
    let (report, _) = match &store {
        None => babel_sim::adversary::sweep_with(&plan, &tweak, &|_| None, &|_| {}),
        Some(store) => store
            .sweep(&plan, &tweak, &|p| match p {
                babel_sim::SweepProgress::Kept(r) => {
                    eprintln!("seed {}: {} nodes, kept", r.seed, r.nodes)
                }
                babel_sim::SweepProgress::Unreadable(e) => eprintln!("{e}; running it again"),
            })
            .context("keeping a run")?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// `--kept DIR`: the report of a store's runs, with the plan they were made with and the seeds.
fn report_kept(dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let kept =
        babel_sim::KeptRuns::read(dir).with_context(|| format!("--kept {}", dir.display()))?;
    for e in &kept.unreadable {
        eprintln!("left out: {e}");
    }
    let report = kept.report();
    if json {
        let out = serde_json::json!({
            "plan": kept.plan,
            "seeds": kept.seed_ranges(),
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        match &kept.plan {
            Some(p) => println!("plan                     {p}"),
            None => println!("plan                     (no plan.json)"),
        }
        println!("seeds                    {}", kept.seed_ranges());
        print!("{}", report.render());
    }
    Ok(())
}

/// One size of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    /// Nodes.
    pub nodes: usize,
    /// Links.
    pub links: usize,
    /// Convergence time (virtual), seconds; `None` if it did not converge.
    pub convergence_s: Option<f64>,
    /// Messages sent in all.
    pub messages: u64,
    /// Wall-clock seconds the simulation took.
    pub wall_s: f64,
}

/// The sweep as CSV, a header line first.
pub fn sweep_csv(rows: &[SweepRow]) -> String {
    let mut out = String::from("nodes,links,convergence_s,messages,messages_per_node,wall_s\n");
    for r in rows {
        let conv = r.convergence_s.map_or(String::new(), |c| format!("{c:.3}"));
        let per = r.messages as f64 / r.nodes.max(1) as f64;
        out.push_str(&format!(
            "{},{},{conv},{},{per:.1},{:.3}\n",
            r.nodes, r.links, r.messages, r.wall_s
        ));
    }
    out
}

/// The sweep as an SVG plot: convergence time (left axis) and messages per node (right axis)
/// against the number of nodes.
pub fn sweep_svg(rows: &[SweepRow]) -> String {
    let (w, h, m) = (640.0_f64, 400.0_f64, 60.0_f64);
    let max_n = rows.iter().map(|r| r.nodes).max().unwrap_or(1).max(1) as f64;
    let max_c = rows
        .iter()
        .filter_map(|r| r.convergence_s)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let per = |r: &SweepRow| r.messages as f64 / r.nodes.max(1) as f64;
    let max_m = rows.iter().map(per).fold(0.0_f64, f64::max).max(1e-9);
    let x = |n: usize| m + (w - 2.0 * m) * n as f64 / max_n;
    let y = |v: f64, max: f64| h - m - (h - 2.0 * m) * v / max;
    let conv: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            r.convergence_s
                .map(|c| format!("{:.1},{:.1}", x(r.nodes), y(c, max_c)))
        })
        .collect();
    let msgs: Vec<String> = rows
        .iter()
        .map(|r| format!("{:.1},{:.1}", x(r.nodes), y(per(r), max_m)))
        .collect();
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <line x1=\"{m}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <line x1=\"{r}\" y1=\"{m}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <text x=\"{cx}\" y=\"{lx}\" text-anchor=\"middle\">nodes (max {max_n})</text>\n\
         <text x=\"5\" y=\"{t}\" fill=\"steelblue\">convergence (max {max_c:.1} s)</text>\n\
         <text x=\"{rr}\" y=\"{t}\" text-anchor=\"end\" fill=\"darkorange\">messages per node (max {max_m:.0})</text>\n",
        b = h - m,
        r = w - m,
        cx = w / 2.0,
        lx = h - m / 3.0,
        t = m / 2.0,
        rr = w - 5.0,
    );
    s.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"2\" points=\"{}\"/>\n",
        conv.join(" ")
    ));
    s.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"darkorange\" stroke-width=\"2\" stroke-dasharray=\"6 3\" points=\"{}\"/>\n",
        msgs.join(" ")
    ));
    s.push_str("</svg>\n");
    s
}

/// Runs the sweep: one scenario per size, in order.
fn sweep(args: &SimulateArgs) -> anyhow::Result<()> {
    let kind = args
        .topology
        .split(':')
        .next()
        .unwrap_or("random")
        .to_string();
    let mut rows = Vec::new();
    println!("{}", sweep_csv(&[]).trim_end());
    for &n in &args.sweep {
        let mut a = args.clone();
        a.topology = format!("{kind}:{n}");
        let s = scenario(&a)?;
        let t0 = std::time::Instant::now();
        let summary = run_scenario(&s)?;
        let row = SweepRow {
            nodes: summary.nodes,
            links: summary.links,
            convergence_s: summary.convergence_time_ms.map(|ms| ms as f64 / 1000.0),
            messages: summary.messages_sent,
            wall_s: t0.elapsed().as_secs_f64(),
        };
        print!(
            "{}",
            sweep_csv(std::slice::from_ref(&row))
                .lines()
                .nth(1)
                .map_or(String::new(), |l| format!("{l}\n"))
        );
        rows.push(row);
    }
    if let Some(p) = &args.csv {
        std::fs::write(p, sweep_csv(&rows)).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &args.svg {
        std::fs::write(p, sweep_svg(&rows)).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn parse_policy(s: &str) -> anyhow::Result<Policy> {
    let (kind, arg) = match s.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (s, None),
    };
    let num = |default: u32| -> anyhow::Result<u32> {
        arg.map_or(Ok(default), |a| {
            a.parse()
                .with_context(|| format!("bad policy argument in {s:?}"))
        })
    };
    Ok(match kind {
        "babeld" => Policy::Babeld,
        "althea" => Policy::Althea {
            metric_factor: num(price_metric_default_factor())?,
        },
        "paper" => Policy::Paper {
            n_milli: num(1000)?,
        },
        _ => bail!("unknown policy {s:?}: expected babeld, althea[:FACTOR] or paper[:N_MILLI]"),
    })
}

fn price_metric_default_factor() -> u32 {
    1900
}

fn parse_kind(s: &str) -> anyhow::Result<InterfaceKind> {
    Ok(match s {
        "wired" => InterfaceKind::Wired,
        "wireless" => InterfaceKind::Wireless,
        "tunnel" => InterfaceKind::Tunnel,
        _ => bail!("unknown interface kind {s:?}: expected wired, wireless or tunnel"),
    })
}

fn parse_event(s: &str) -> anyhow::Result<(Duration, SimEvent)> {
    let (at, rest) = s
        .split_once(':')
        .with_context(|| format!("event {s:?}: expected SECONDS:KIND:ARGS"))?;
    let at: f64 = at
        .parse()
        .with_context(|| format!("event {s:?}: bad time"))?;
    if !(at.is_finite() && at >= 0.0) {
        bail!("event {s:?}: bad time");
    }
    let ev = SimEvent::parse(rest)
        .with_context(|| format!("event {s:?}: unknown kind or bad arguments"))?;
    Ok((Duration::from_secs_f64(at), ev))
}

/// Builds the scenario from the arguments.
pub fn scenario(args: &SimulateArgs) -> anyhow::Result<Scenario> {
    if !(0.0..=1.0).contains(&args.loss) {
        bail!("--loss must be between 0 and 1");
    }
    let config = SimConfig {
        seed: args.seed,
        loss_ppm: (args.loss * 1e6).round() as u32,
        delay: Duration::from_millis(args.delay_ms),
        kind: parse_kind(&args.kind)?,
        hello_interval: Duration::from_secs(args.hello_interval.max(1)),
        policy: parse_policy(&args.policy)?,
        fee: args.fee,
        ..SimConfig::default()
    };
    let events = args
        .events
        .iter()
        .map(|e| parse_event(e))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Scenario {
        topology: args.topology.clone(),
        config,
        events,
        max_time: Duration::from_secs(args.max_time),
    })
}

/// Runs `babelctl simulate`.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    if args.adversary {
        return run_adversary(args);
    }
    if !args.sweep.is_empty() {
        return sweep(args);
    }
    let s = scenario(args)?;
    let summary = run_scenario(&s)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "topology        {} ({} nodes, {} links), seed {}",
        summary.topology, summary.nodes, summary.links, summary.seed
    );
    match summary.convergence_time_ms {
        Some(ms) => println!(
            "converged       yes, {:.3} s after the last event",
            ms as f64 / 1000.0
        ),
        None => println!(
            "converged       NO ({})",
            summary.not_best.as_deref().unwrap_or("unknown")
        ),
    }
    println!("loops           {}", summary.loops);
    println!(
        "simulated time  {:.3} s",
        summary.sim_time_ms as f64 / 1000.0
    );
    println!(
        "sent            {} packets, {} messages, {} bytes ({} lost)",
        summary.packets_sent, summary.messages_sent, summary.bytes_sent, summary.packets_lost
    );
    println!("route changes   {}", summary.route_changes);
    println!(
        "routes per node min {} max {} mean {}",
        summary.routes_per_node.min, summary.routes_per_node.max, summary.routes_per_node.mean
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<SweepRow> {
        vec![
            SweepRow {
                nodes: 10,
                links: 12,
                convergence_s: Some(4.5),
                messages: 1000,
                wall_s: 0.25,
            },
            SweepRow {
                nodes: 20,
                links: 30,
                convergence_s: None,
                messages: 5000,
                wall_s: 1.5,
            },
        ]
    }

    #[test]
    fn sweep_csv_has_one_row_per_size() {
        assert_eq!(
            sweep_csv(&rows()),
            "nodes,links,convergence_s,messages,messages_per_node,wall_s\n\
             10,12,4.500,1000,100.0,0.250\n\
             20,30,,5000,250.0,1.500\n"
        );
    }

    #[test]
    fn sweep_svg_plots_both_curves() {
        let svg = sweep_svg(&rows());
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        // Convergence: only the size that converged; messages per node: both sizes, the
        // largest at the top of the plot area (y = 60).
        assert!(svg.contains("points=\"320.0,60.0\""), "{svg}");
        assert!(svg.contains("points=\"320.0,228.0 580.0,60.0\""), "{svg}");
    }
}
