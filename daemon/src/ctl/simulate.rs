//! `babelctl simulate`: runs a deterministic mesh simulation of babel-core engines and prints a
//! summary (JSON with `--json`). The same arguments give the same output, byte for byte.
//!
//! ```text
//! babelctl simulate --topology grid:10x10 --seed 7 --json
//! babelctl simulate --topology ring:8 --event 120:link-down:0-1 --event 300:restart-fresh:4
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
    /// With --adversary: worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

fn run_adversary(args: &SimulateArgs) -> anyhow::Result<()> {
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
    let (report, _) =
        babel_sim::adversary::sweep(args.seed, args.seeds, min, max, kind, args.threads, &|c| {
            c.roles = roles.clone()
        });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
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
