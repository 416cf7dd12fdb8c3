//! Adversarial simulation of route verification (`spec/verify.md` §8): real engines converge
//! with liars among them, a data plane forwards probes and data hop by hop along each node's
//! kernel next hops (per-link delay and loss), and every node runs a [`verify::Verifier`] and a
//! [`verify::Responder`].
//!
//! Adversaries (never exits, one node each per run): a metric **liar** (every route it relays
//! advertised at `1/lie_divisor` of its metric), a **partial liar** (the same on a fraction
//! `partial_fraction` of destinations), a **dropper** (drops `drop_fraction` of everything it
//! forwards), a **favourer** (drops data but forwards probes it can recognise, that is all but
//! those inside an exit tunnel), a **delayer** (delays data by `extra_delay`), and a **forger** on
//! the return path (alters Remote IHUs, or answers with its own key). A fraction of links is
//! lossy and slow (honest nodes on bad links).
//!
//! Every check is scored by our rule (which drives the engines) and, on the same checks, by the
//! paper's rule in shadow, so both are compared on the same evidence.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use babel_core::{Instant, InterfaceKind, Rng, RouteKey};
use babel_wire::Prefix;
use serde::{Deserialize, Serialize};
use verify::{
    CheckVerdict, ClaimRelay, CostModel, Keyring, NeighbourId, NeighbourScore, ProbeAction,
    Responder, Rule, ScoreConfig, SigningKey, VerifiableRoute, Verifier, VerifyConfig,
};

use crate::sim::{Lie, Sim, SimConfig, node_prefix, node_router_id};
use crate::topology::Topology;

/// What a node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Honest.
    Honest,
    /// Honest, and a destination everyone uses (probes to it travel in a tunnel).
    Exit,
    /// Lies about every route it relays.
    Liar,
    /// Lies about a fraction of the routes it relays.
    PartialLiar,
    /// Drops a fraction of everything it forwards.
    Dropper,
    /// Drops data, forwards the probes it can recognise.
    Favourer,
    /// Delays data.
    Delayer,
    /// Alters or forges the Remote IHUs it forwards.
    Forger,
}

impl Role {
    /// A liar or a partial liar: it advertises less than its routes cost.
    pub fn lies(self) -> bool {
        matches!(self, Role::Liar | Role::PartialLiar)
    }
    fn adversary(self) -> bool {
        !matches!(self, Role::Honest | Role::Exit)
    }
}

/// Parameters of one adversarial run.
#[derive(Clone, Debug)]
pub struct AdversaryConfig {
    /// Seed of everything (topology, roles, loss, engines, verifiers).
    pub seed: u64,
    /// Mesh size (random geometric).
    pub nodes: usize,
    /// Link type: wired (2-out-of-3, cost 96) or wireless (ETX, nominal 256).
    pub kind: InterfaceKind,
    /// Exits (destinations every node uses).
    pub exits: usize,
    /// Further destinations each node uses.
    pub extra_used: usize,
    /// Which adversaries are present.
    pub roles: Vec<Role>,
    /// Liars divide their metrics by this.
    pub lie_divisor: u16,
    /// Fraction of destinations the partial liar lies about.
    pub partial_fraction: f64,
    /// Fraction dropped by droppers and favourers.
    pub drop_fraction: f64,
    /// Extra delay of the delayer.
    pub extra_delay: Duration,
    /// Fraction of links that are lossy (2-10 % loss) and slow (5-40 ms).
    pub lossy_links: f64,
    /// Time for the engines to converge before verification starts.
    pub warmup: Duration,
    /// Verification cycles before the liars start lying (routes settle, baselines are taken).
    pub quiet_cycles: u32,
    /// Verification cycles to run once they lie.
    pub cycles: u32,
    /// Verification parameters (cost model adjusted to `kind` by [`AdversaryConfig::new`]).
    pub verify: VerifyConfig,
    /// A neighbour asked to justify a claim sends the verifier its current Update for the
    /// destination (`spec/verify.md` §4.2.5, step 2), as the daemon does: a retraction under
    /// split horizon where it cannot back the claim (no route, or its route runs through the
    /// verifier). Off: it stays silent (the runs before 2026-12-03's evening). Before
    /// 2026-12-06's afternoon it sent the Update only where it could not back the claim.
    pub readvertise: bool,
    /// Routers keep a route through an evicted neighbour for destinations nobody else offers
    /// ([`babel_core::EngineConfig::accuracy_last_resort`]; `None`: the engine's default).
    pub last_resort: Option<bool>,
    /// What a route on the last resort adds to the metric advertised
    /// ([`babel_core::EngineConfig::accuracy_last_resort_penalty`]; `None`: the engine's
    /// default).
    pub last_resort_penalty: Option<u16>,
    /// Evasive liars (`spec/verify.md` §4.2.5, "What an attacker can still do"): a liar asked
    /// to justify a claim it lies about stops lying about that destination for this long, to
    /// everyone, sends the verifier its Update as it is now, and relays its next hop's Signed
    /// Claim as an honest relay does; then it lies again. `None` (the default): liars never
    /// answer a Justify Request.
    pub evasive_hold: Option<Duration>,
    /// With `evasive_hold`: the evasive liar withdraws the route it was asked about for the
    /// hold (a retraction to the verifier at once, and in every Update after), and answers
    /// nothing, instead of telling the truth.
    pub evasive_withdraws: bool,
    /// Split horizon on every link (RFC 8966 §3.7.4), `None`: the link type's default (on
    /// for wired links). Off is the mesh of babeld's default, where an interface whose type is
    /// not declared advertises routes back where they came from.
    pub split_horizon: Option<bool>,
}

impl AdversaryConfig {
    /// Defaults for `nodes` nodes, seed `seed`, link type `kind`.
    pub fn new(seed: u64, nodes: usize, kind: InterfaceKind) -> AdversaryConfig {
        let mut verify = VerifyConfig::default();
        if kind == InterfaceKind::Wireless {
            verify.cost = CostModel {
                hop_cost: 256,
                loss_in_metric: true,
                ..CostModel::default()
            };
        }
        AdversaryConfig {
            seed,
            nodes,
            kind,
            exits: 3,
            extra_used: 2,
            roles: vec![
                Role::Liar,
                Role::PartialLiar,
                Role::Dropper,
                Role::Favourer,
                Role::Delayer,
                Role::Forger,
            ],
            lie_divisor: 2,
            readvertise: true,
            last_resort: None,
            last_resort_penalty: None,
            evasive_hold: None,
            evasive_withdraws: false,
            split_horizon: None,
            partial_fraction: 0.4,
            drop_fraction: 0.5,
            extra_delay: Duration::from_millis(50),
            lossy_links: 0.2,
            warmup: Duration::from_secs(40),
            quiet_cycles: 3,
            cycles: 12,
            verify,
        }
    }
}

/// How one liar fared.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LiarOutcome {
    /// The node.
    pub node: usize,
    /// Liar or partial liar.
    pub role: Role,
    /// Its neighbours that sent traffic through it for a destination it lies about (liars
    /// excepted: they run no verifier).
    pub exposed: usize,
    /// Those neighbours, in the order of `cycles`. Empty in runs stored before.
    #[serde(default)]
    pub neighbours: Vec<usize>,
    /// Verification cycles each exposed neighbour took to evict it (ours), `None` if it did not.
    pub cycles: Vec<Option<u32>>,
    /// The same for the paper's rule on the same checks.
    pub paper_cycles: Vec<Option<u32>>,
    /// For each exposed neighbour (in the order of `cycles`), the data samples it sent through
    /// the liar for a destination the liar lies about more than 5 cycles after its first
    /// exposure: the harm a liar missed within 5 cycles still did. Empty in runs stored before.
    #[serde(default)]
    pub late_samples: Vec<u64>,
    /// For each exposed neighbour (in the order of `cycles`), the whole verification cycles
    /// from its first exposure to the end of the run: a pair exposed less than
    /// [`JUDGED_AFTER`] cycles before the end and not evicted by then cannot be judged against
    /// "within 5 cycles" (the run ended first). Empty in runs stored before (every pair then
    /// counts as judged).
    #[serde(default)]
    pub observed_cycles: Vec<u32>,
}

/// Cycles from exposure within which a liar must be evicted (the goal): the cycles a
/// pair must be observed after its exposure to be judged, and after which the data it still
/// sends through the liar counts as [`LiarOutcome::late_samples`].
pub const JUDGED_AFTER: u32 = 5;

/// Data-plane figures over one window.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Traffic {
    /// Flow samples.
    pub samples: u64,
    /// Delivered.
    pub delivered: u64,
    /// Samples whose path crossed a liar for a destination it lies about, from a router that
    /// had not evicted it.
    pub through_liar: u64,
    /// Samples that crossed a liar only from routers that had evicted it: the last resort
    /// (`spec/verify.md` §4.3), where nothing else offered the destination.
    #[serde(default)]
    pub through_liar_last_resort: u64,
    /// Samples whose path crossed any adversary.
    pub through_adversary: u64,
}

/// The result of one adversarial run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdversaryRun {
    /// Seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Links.
    pub links: usize,
    /// Roles of the adversaries, by node.
    pub adversaries: BTreeMap<usize, Role>,
    /// The liars.
    pub liars: Vec<LiarOutcome>,
    /// Evictions of honest neighbours (ours; these drive the engines).
    pub honest_evicted: u32,
    /// Evictions of honest neighbours the paper's rule would have made on the same checks.
    pub paper_honest_evicted: u32,
    /// Evictions of non-lying adversaries (dropper, favourer, delayer, forger), ours.
    pub other_adversaries_evicted: u32,
    /// Data in the first verification cycle.
    pub traffic_first: Traffic,
    /// Data in the last two cycles.
    pub traffic_last: Traffic,
    /// Verifier counters summed over the nodes.
    pub counters: verify::ProbeCounters,
    /// Remote Hello and Remote IHU octets on the wire (with IPv6/UDP headers), per probed
    /// route-second.
    pub probe_bytes_per_session_second: f64,
}

struct Node {
    role: Role,
    verifier: Verifier,
    responder: Responder,
    /// §4.2.5: Justify Requests forwarded to our next hops.
    relay: ClaimRelay,
    /// The paper's rule, fed the same checks.
    shadow: BTreeMap<NeighbourId, NeighbourScore>,
    used: Vec<Prefix>,
}

/// What a packet is, as the nodes on the path see it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Probe { stealth: bool },
    Answer,
}

/// Runs one adversarial scenario.
pub fn run_adversarial(cfg: &AdversaryConfig) -> AdversaryRun {
    let mut rng = Rng::new(cfg.seed ^ 0xAD5E_25A1);
    let mut topo = Topology::random_geometric(cfg.nodes, None, cfg.seed);
    let unit = |rng: &mut Rng| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    for l in &mut topo.links {
        if unit(&mut rng) < cfg.lossy_links {
            l.loss_ppm = 20_000 + rng.below(80_000) as u32;
            l.delay_ms = Some(5 + rng.below(36));
        }
        if cfg.kind == InterfaceKind::Wireless {
            l.cost = 256;
        }
    }
    let n = topo.nodes;
    // Roles: exits first, then adversaries, on distinct random nodes.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let mut roles = vec![Role::Honest; n];
    let mut it = order.iter().copied();
    let exits: Vec<usize> = it.by_ref().take(cfg.exits.min(n)).collect();
    for &e in &exits {
        if let Some(r) = roles.get_mut(e) {
            *r = Role::Exit;
        }
    }
    let mut adversaries = BTreeMap::new();
    for &role in &cfg.roles {
        if let Some(a) = it.next() {
            if let Some(r) = roles.get_mut(a) {
                *r = role;
            }
            adversaries.insert(a, role);
        }
    }
    let mut sim = Sim::new(
        &topo,
        SimConfig {
            seed: cfg.seed,
            kind: cfg.kind,
            delay_jitter: Duration::from_millis(2),
            check_loops: false,
            accuracy_last_resort: cfg.last_resort,
            accuracy_last_resort_penalty: cfg.last_resort_penalty,
            split_horizon: cfg.split_horizon,
            ..SimConfig::default()
        },
    );
    let prefixes: Vec<Prefix> = (0..n).map(node_prefix).collect();
    let node_of: BTreeMap<Prefix, usize> =
        prefixes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let rid_of: BTreeMap<babel_wire::RouterId, usize> =
        (0..n).map(|i| (node_router_id(i), i)).collect();
    // What each liar lies about.
    let mut lie_sets: BTreeMap<usize, BTreeSet<Prefix>> = BTreeMap::new();
    for (&a, &role) in &adversaries {
        let set: BTreeSet<Prefix> = match role {
            Role::Liar => prefixes
                .iter()
                .copied()
                .filter(|p| node_of.get(p) != Some(&a))
                .collect(),
            Role::PartialLiar => prefixes
                .iter()
                .copied()
                .filter(|p| node_of.get(p) != Some(&a) && unit(&mut rng) < cfg.partial_fraction)
                .collect(),
            _ => continue,
        };
        if std::env::var_os("BABEL_SIM_TRACE").is_some() {
            let mut ds: Vec<usize> = set.iter().filter_map(|p| node_of.get(p).copied()).collect();
            ds.sort_unstable();
            eprintln!("lies {a} ({role:?}) about {ds:?}");
        }
        lie_sets.insert(a, set);
    }
    let keys: Vec<SigningKey> = (0..n)
        .map(|i| {
            let mut b = [0u8; 32];
            let mut r = Rng::new(cfg.seed ^ ((i as u64 + 1) << 32) ^ 0x5EED);
            for chunk in b.chunks_mut(8) {
                chunk.copy_from_slice(&r.next_u64().to_be_bytes());
            }
            SigningKey::from_bytes(&b)
        })
        .collect();
    let mut keyring = Keyring::new(n + 8);
    for (i, k) in keys.iter().enumerate() {
        if let Some(p) = prefixes.get(i) {
            keyring.bind(*p, *k.verifying_key().as_bytes());
        }
    }
    sim.run_until(Instant::ZERO + cfg.warmup);
    let start = sim.now();
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let mut used: Vec<Prefix> = exits
                .iter()
                .filter(|&&e| e != i)
                .filter_map(|e| prefixes.get(*e).copied())
                .collect();
            for _ in 0..cfg.extra_used {
                let d = rng.below(n as u64) as usize;
                if d != i
                    && let Some(p) = prefixes.get(d)
                {
                    used.push(*p);
                }
            }
            let responder = Responder::new(
                keys.get(i)
                    .cloned()
                    .unwrap_or_else(|| SigningKey::from_bytes(&[1; 32])),
                1,
                4096,
            );
            let mut verifier = Verifier::new(
                cfg.verify,
                node_router_id(i),
                keyring.clone(),
                cfg.seed ^ ((i as u64 + 7) << 24),
                start,
            );
            verifier.set_own_key(responder.public_key());
            Node {
                role: roles.get(i).copied().unwrap_or(Role::Honest),
                verifier,
                responder,
                relay: ClaimRelay::new(256),
                shadow: BTreeMap::new(),
                used,
            }
        })
        .collect();
    let paper_cfg = ScoreConfig {
        rule: Rule::Paper,
        ..cfg.verify.score
    };
    let cycle = cfg.verify.schedule.cycle;
    let verify_start = start;
    let start = verify_start + cycle.saturating_mul(cfg.quiet_cycles);
    let end = start + cycle.saturating_mul(cfg.cycles);
    let mut lying = false;
    let tick = cfg.verify.schedule.probe_interval;
    let mut exposed: BTreeMap<(usize, usize), Instant> = BTreeMap::new();
    let mut late: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    let mut evicted: BTreeMap<(usize, usize), Instant> = BTreeMap::new();
    let mut paper_evicted: BTreeMap<(usize, usize), Instant> = BTreeMap::new();
    let mut traffic_first = Traffic::default();
    let mut traffic_last = Traffic::default();
    let mut t = verify_start;
    let mut next_flow = verify_start;
    let trace = std::env::var_os("BABEL_SIM_TRACE").is_some();
    // `BABEL_SIM_LOSSES` (a diagnostic): why data samples of the last two cycles were not
    // delivered, printed at the end of the run.
    let mut losses: Option<BTreeMap<Loss, u64>> =
        std::env::var_os("BABEL_SIM_LOSSES").map(|_| BTreeMap::new());
    let loss_pairs = std::env::var_os("BABEL_SIM_LOSSES_PAIRS").is_some();
    // `BABEL_SIM_WATCH=v:n:d,...` (a diagnostic): every second, what `v` holds from `n` for
    // destination node `d`, and the route `n` itself selects (its next hop, what that next hop
    // claims to `n`, `n`'s own verified correction), so that an honest relay's claim can be
    // followed while it corrects its own next hop.
    let watch: Vec<(usize, usize, usize)> = std::env::var("BABEL_SIM_WATCH")
        .ok()
        .map(|s| {
            s.split(',')
                .filter_map(|w| {
                    let mut it = w.split(':').filter_map(|x| x.trim().parse::<usize>().ok());
                    Some((it.next()?, it.next()?, it.next()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let exit_set: BTreeSet<usize> = exits.iter().copied().collect();
    let engine_threshold = sim.engine(0).map_or(500, |e| e.config().accuracy_threshold);
    let mut dp = DataPlane::new(cfg, 0xDA7A, &roles);
    // Traces (§4.2.1) draw their losses from a stream of their own, so that how many traces a
    // session sends (`trace_depth`) leaves the losses of every other packet as they were.
    let mut trace_dp = DataPlane::new(cfg, 0x7ACE, &roles);
    // And the hop-limit bounds (§1.4) theirs, their Time Exceeded's way back included.
    let mut bound_dp = DataPlane::new(cfg, 0xB0DD, &roles);
    // Evasive liars (`evasive_hold`): the destinations each stopped lying about, until when.
    let mut paused: BTreeMap<(usize, Prefix), Instant> = BTreeMap::new();
    // And with `evasive_withdraws`, what each withdraws meanwhile.
    let mut withheld: BTreeMap<usize, BTreeSet<Prefix>> = BTreeMap::new();
    while t < end {
        t = t + tick;
        if !lying && t >= start {
            lying = true;
            for (&a, set) in &lie_sets {
                tell_lies(&mut sim, a, set, withheld.get(&a), cfg.lie_divisor);
            }
        }
        // Evasive liars lie again about what they were asked to justify once their hold ends.
        let resumed: Vec<(usize, Prefix)> = paused
            .iter()
            .filter(|(_, at)| **at <= t)
            .map(|(k, _)| *k)
            .collect();
        for (a, p) in resumed {
            paused.remove(&(a, p));
            if let Some(w) = withheld.get_mut(&a) {
                w.remove(&p);
            }
            if let Some(set) = lie_sets.get_mut(&a) {
                set.insert(p);
                tell_lies(&mut sim, a, set, withheld.get(&a), cfg.lie_divisor);
            }
            if trace {
                eprintln!(
                    "t={:.1} evasive {a} lies again dst {}",
                    t.saturating_since(start).as_secs_f64(),
                    node_of.get(&p).map_or(-1, |d| *d as i64)
                );
            }
        }
        sim.run_until(t);
        // Data: every node sends one packet per second to each destination it uses; every node
        // on the path sees the destination used.
        if t >= next_flow {
            next_flow = next_flow + Duration::from_secs(1);
            for &(v, nb, d) in &watch {
                watch_line(&sim, &prefixes, v, nb, d, t, start);
            }
            // The last two cycles: their traffic is reported, and their losses diagnosed.
            let last_two = t > start + cycle && t + cycle.saturating_mul(2) > end;
            let window = if t <= start {
                None
            } else if t <= start + cycle {
                Some(&mut traffic_first)
            } else if last_two {
                Some(&mut traffic_last)
            } else {
                None
            };
            let mut w = Traffic::default();
            for src in 0..n {
                let used = nodes.get(src).map(|x| x.used.clone()).unwrap_or_default();
                for p in used {
                    let Some(&dst) = node_of.get(&p) else {
                        continue;
                    };
                    let Some(first) = sim.next_hop_node(src, p) else {
                        w.samples += 1;
                        if let Some(l) = losses.as_mut()
                            && last_two
                        {
                            *l.entry(Loss::Unrouted).or_default() += 1;
                            if loss_pairs {
                                eprintln!(
                                    "t={:.1} unrouted {src} -> {dst}",
                                    t.saturating_since(start).as_secs_f64()
                                );
                            }
                        }
                        continue;
                    };
                    let r = dp.walk(&sim, src, first, dst, p, Kind::Data);
                    if let (Some(l), Some(why)) = (losses.as_mut(), r.lost)
                        && last_two
                    {
                        *l.entry(why).or_default() += 1;
                    }
                    w.samples += 1;
                    if r.delivered() {
                        w.delivered += 1;
                    }
                    let mut liar = false;
                    let mut last_resort = false;
                    let mut adv = false;
                    let mut prev = src;
                    for &hop in &r.path {
                        if let Some(x) = nodes.get_mut(prev) {
                            x.verifier.mark_used(t, p);
                        }
                        let role = roles.get(hop).copied().unwrap_or(Role::Honest);
                        if hop != dst && role.adversary() {
                            adv = true;
                        }
                        let lied = lying
                            && hop != dst
                            && role.lies()
                            && lie_sets.get(&hop).is_some_and(|s| s.contains(&p));
                        if lied && evicted.contains_key(&(prev, hop)) {
                            // Forwarded by a router that evicted the liar: its last resort
                            // (runs end before any hold does, so evicted stays evicted).
                            last_resort = true;
                        } else if lied {
                            liar = true;
                            // Liars run no verifier (above): a liar's traffic through another
                            // liar is no exposure that anyone could answer with an eviction.
                            let verifies = !roles.get(prev).is_some_and(|r| r.lies());
                            if verifies {
                                let first = *exposed.entry((prev, hop)).or_insert_with(|| {
                                    if trace {
                                        eprintln!(
                                            "t={:.1} exposed {prev}->{hop} dst {dst}",
                                            t.saturating_since(start).as_secs_f64()
                                        );
                                    }
                                    t
                                });
                                if t.saturating_since(first.max(start))
                                    > cycle.saturating_mul(JUDGED_AFTER)
                                {
                                    let n = late.entry((prev, hop)).or_default();
                                    if trace && *n == 0 {
                                        eprintln!(
                                            "t={:.1} late {prev}->{hop} dst {dst} from {src} path {:?}",
                                            t.saturating_since(start).as_secs_f64(),
                                            r.path
                                        );
                                    }
                                    *n += 1;
                                }
                            }
                        }
                        prev = hop;
                    }
                    w.through_liar += u64::from(liar);
                    w.through_liar_last_resort += u64::from(last_resort && !liar);
                    w.through_adversary += u64::from(adv);
                }
            }
            if let Some(acc) = window {
                acc.samples += w.samples;
                acc.delivered += w.delivered;
                acc.through_liar += w.through_liar;
                acc.through_liar_last_resort += w.through_liar_last_resort;
                acc.through_adversary += w.through_adversary;
            }
        }
        // Verifiers.
        for v in 0..n {
            let Some(node) = nodes.get(v) else { continue };
            // Liars do not verify (their engines would otherwise correct their own lies away).
            if node.role.lies() || node.verifier.poll_timeout() > t {
                continue;
            }
            let cands = if node.verifier.wants_routes(t) {
                candidates(&sim, v, &node.verifier.used(t), t)
            } else {
                Vec::new()
            };
            let actions = match nodes.get_mut(v) {
                Some(x) => x.verifier.handle_timeout(t, &cands),
                None => continue,
            };
            for a in actions {
                // Both kinds of Remote Hello are forwarded through the neighbour under test.
                let probe = match &a {
                    ProbeAction::SendRemoteHello { neighbour, hello } => walk_probe(
                        &sim,
                        &mut dp,
                        &node_of,
                        &exit_set,
                        v,
                        *neighbour,
                        hello.prefix,
                    ),
                    ProbeAction::SendTrace {
                        neighbour, hello, ..
                    } => walk_probe(
                        &sim,
                        &mut trace_dp,
                        &node_of,
                        &exit_set,
                        v,
                        *neighbour,
                        hello.prefix,
                    ),
                    ProbeAction::SendBound {
                        neighbour, hello, ..
                    } => walk_probe(
                        &sim,
                        &mut bound_dp,
                        &node_of,
                        &exit_set,
                        v,
                        *neighbour,
                        hello.prefix,
                    ),
                    _ => None,
                };
                match a {
                    ProbeAction::SendBound {
                        hello, hop_limit, ..
                    } => {
                        let Some((dst, r)) = probe else {
                            continue;
                        };
                        let Some(prefix_v) = prefixes.get(v).copied() else {
                            continue;
                        };
                        if let Some(answered) = bound_answer(
                            &sim,
                            &mut bound_dp,
                            &roles,
                            v,
                            prefix_v,
                            dst,
                            &r,
                            hop_limit,
                        ) && let Some(node) = nodes.get_mut(v)
                        {
                            if answered == v {
                                node.verifier.handle_trace_returned(t, &hello);
                            } else {
                                node.verifier.handle_trace_answer(t, &hello, None);
                            }
                        }
                    }
                    ProbeAction::SendRemoteHello { hello, .. } => {
                        let Some((dst, r)) = probe else {
                            continue;
                        };
                        // The relays on the path see a Remote Hello for the destination go
                        // through (outside a tunnel): with `relayed_probes_used`, it is used
                        // for them too.
                        if cfg.verify.schedule.relayed_probes_used && !exit_set.contains(&dst) {
                            for &hop in &r.path {
                                if hop != dst
                                    && hop != v
                                    && let Some(x) = nodes.get_mut(hop)
                                {
                                    x.verifier.mark_used(t, hello.prefix);
                                }
                            }
                        }
                        if r.looped()
                            && let Some(x) = nodes.get_mut(v)
                        {
                            // The router where the hop limit ran out sends ICMPv6 Time Exceeded.
                            x.verifier.handle_time_exceeded(t, &hello);
                        }
                        if r.delivered()
                            && let Some(d) = nodes.get_mut(dst)
                        {
                            let hl = verify::HOP_LIMIT
                                .saturating_sub(r.path.len() as u8)
                                .saturating_add(1);
                            d.responder.handle_remote_hello(t, &hello, hl, true);
                        }
                    }
                    ProbeAction::SendTrace {
                        hello, hop_limit, ..
                    } => {
                        // §4.2.1: the Remote Hello (walked on its own, with its own losses)
                        // runs out of hop limit at the router `hop_limit - 1` links past the
                        // neighbour, which answers with an ICMPv6 Time Exceeded from its own
                        // address; we name it if it is one of our neighbours. One that reaches
                        // the destination first, or is lost before, is not answered.
                        let Some((dst, r)) = probe else {
                            continue;
                        };
                        let hops = usize::from(hop_limit);
                        let Some(&x) = r.path.get(hops.saturating_sub(1)) else {
                            continue;
                        };
                        let Some(node) = nodes.get_mut(v) else {
                            continue;
                        };
                        if x == v {
                            // Forwarded back to us: the hop limit runs out here.
                            node.verifier.handle_trace_returned(t, &hello);
                        } else if x != dst {
                            let from = sim
                                .neighbour_of(v, x)
                                .map(|(ifindex, address)| verify::NeighbourId { ifindex, address });
                            // The Time Exceeded comes back over the link to the router that
                            // sent it (its way back is not walked).
                            match from {
                                Some(x) => node
                                    .verifier
                                    .handle_trace_answer_on(t, &hello, from, x.ifindex),
                                None => node.verifier.handle_trace_answer(t, &hello, None),
                            };
                        }
                    }
                    ProbeAction::Checked(c) => {
                        let Some(peer) =
                            sim.peer_node(v, c.route.neighbour.ifindex, c.route.neighbour.address)
                        else {
                            continue;
                        };
                        if let Some((m, until)) = c.correction {
                            let nb = c.route.neighbour;
                            sim.with_engine(v, |e, now| {
                                let _ = e.set_verified_metric(
                                    now,
                                    RouteKey::new(c.route.prefix),
                                    nb.ifindex,
                                    nb.address,
                                    m,
                                    until,
                                );
                            });
                        }
                        if let Some(a) = c.accuracy
                            && let Some(x) = nodes.get_mut(v)
                        {
                            let s = x.shadow.entry(c.route.neighbour).or_default();
                            if let CheckVerdict::Evicted(_) =
                                s.record(t, &paper_cfg, c.route.prefix, a)
                            {
                                paper_evicted.entry((v, peer)).or_insert(t);
                            }
                        }
                        if let CheckVerdict::Evicted(_) = c.verdict {
                            evicted.entry((v, peer)).or_insert(t);
                        }
                        if trace {
                            let role = roles.get(peer).copied().unwrap_or(Role::Honest);
                            let dst = node_of.get(&c.route.prefix).copied().unwrap_or(usize::MAX);
                            // What the router the traces found advertises to us now (a
                            // diagnostic: the origin test of §4.2.1 on every check, passing
                            // ones included).
                            let found_adv = c.next_hop.and_then(|x| {
                                sim.engine(v).and_then(|e| {
                                    e.routes(t)
                                        .into_iter()
                                        .find(|r| {
                                            r.prefix == c.route.prefix
                                                && r.src_prefix.is_none()
                                                && r.ifindex == x.ifindex
                                                && r.via == x.address
                                        })
                                        .map(|r| VerifiableRoute::from_route(&r).advertised)
                                })
                            });
                            eprintln!(
                                "t={:.1} {v}->{peer}({role:?}) dst {dst} {:?} sel {} m {} adv {} c {:?} a {:?} {:?} stable {} ret {} found {:?} links {} found-adv {:?} {:?}",
                                t.saturating_since(start).as_secs_f64(),
                                c.reason,
                                c.route.selected,
                                c.metric,
                                c.route.advertised,
                                c.cost,
                                c.accuracy.map(|a| (a * 100.0).round() / 100.0),
                                c.blame,
                                c.stable,
                                c.returned,
                                c.next_hop
                                    .and_then(|x| sim.peer_node(v, x.ifindex, x.address)),
                                c.trace_links,
                                found_adv,
                                c.verdict
                            );
                            if c.accuracy.is_none_or(|a| a < cfg.verify.score.threshold) {
                                let mut path = vec![v];
                                path.extend(next_hops(&sim, peer, dst, c.route.prefix));
                                let ours = prefixes.get(v).copied().unwrap_or(c.route.prefix);
                                let back = next_hops(&sim, dst, v, ours);
                                let rl: Vec<String> = path
                                    .iter()
                                    .map(|x| {
                                        format!(
                                            "{x}:{:?}",
                                            roles.get(*x).copied().unwrap_or(Role::Honest)
                                        )
                                    })
                                    .collect();
                                eprintln!("    path {rl:?} back {back:?}");
                            }
                        }
                    }
                    ProbeAction::SendCheckFailed { neighbour, prefix } => {
                        // §2.5: over the link to the neighbour, which knows us by our address
                        // on it.
                        let Some(peer) = sim.peer_node(v, neighbour.ifindex, neighbour.address)
                        else {
                            continue;
                        };
                        let from = sim
                            .neighbour_of(peer, v)
                            .map(|(ifindex, address)| verify::NeighbourId { ifindex, address });
                        if let (Some(from), Some(x)) = (from, nodes.get_mut(peer)) {
                            x.verifier.handle_check_failed(t, from, prefix);
                        }
                    }
                    ProbeAction::SendJustifyRequest { neighbour, request } => {
                        // An evasive liar asked about a lie stops telling it, for a while.
                        if let Some(hold) = cfg.evasive_hold
                            && lying
                            && let Some(peer) =
                                sim.peer_node(v, neighbour.ifindex, neighbour.address)
                            && let Some(set) = lie_sets.get_mut(&peer)
                        {
                            let p = request.prefix;
                            if let Some(at) = paused.get_mut(&(peer, p)) {
                                // Asked again while honest: honest for longer.
                                *at = (*at).max(t + hold);
                            } else if set.remove(&p) {
                                paused.insert((peer, p), t + hold);
                                if cfg.evasive_withdraws {
                                    withheld.entry(peer).or_default().insert(p);
                                }
                                tell_lies(
                                    &mut sim,
                                    peer,
                                    set,
                                    withheld.get(&peer),
                                    cfg.lie_divisor,
                                );
                                // The withdrawal reaches the verifier at once.
                                if cfg.evasive_withdraws
                                    && let Some((ifindex, _)) = sim.neighbour_of(peer, v)
                                {
                                    sim.with_engine(peer, |e, now| {
                                        e.readvertise(now, ifindex, RouteKey::new(p))
                                    });
                                }
                                if trace {
                                    eprintln!(
                                        "t={:.1} evasive {peer} asked by {v}, honest dst {} for {:?}",
                                        t.saturating_since(start).as_secs_f64(),
                                        node_of.get(&p).map_or(-1, |d| *d as i64),
                                        hold
                                    );
                                }
                            }
                        }
                        justify(
                            &mut sim,
                            &mut nodes,
                            (v, neighbour),
                            request,
                            (t, start),
                            &node_of,
                            &prefixes,
                            lying.then_some((&lie_sets, cfg.lie_divisor)),
                            cfg.verify.correction.first,
                            cfg.readvertise,
                            cfg.evasive_hold.is_some() && !cfg.evasive_withdraws,
                        );
                    }
                    ProbeAction::AskedRise(r) => {
                        if trace
                            && let Some(peer) =
                                sim.peer_node(v, r.neighbour.ifindex, r.neighbour.address)
                        {
                            let role = roles.get(peer).copied().unwrap_or(Role::Honest);
                            eprintln!(
                                "t={:.1} {v}->{peer}({role:?}) asked rise dst {}: {} -> {}",
                                t.saturating_since(start).as_secs_f64(),
                                node_of.get(&r.prefix).map_or(-1, |d| *d as i64),
                                r.asked,
                                r.risen,
                            );
                        }
                    }
                    ProbeAction::Standing {
                        neighbour,
                        eviction,
                    } => {
                        // An eviction without a check (§4.2.5, §4.2.6: a claim unjustified by
                        // its deadline); one by a check was counted with the check.
                        if let Some(why) = eviction
                            && let Some(peer) =
                                sim.peer_node(v, neighbour.ifindex, neighbour.address)
                        {
                            let first = !evicted.contains_key(&(v, peer));
                            evicted.entry((v, peer)).or_insert(t);
                            if trace && first {
                                let role = roles.get(peer).copied().unwrap_or(Role::Honest);
                                eprintln!(
                                    "t={:.1} {v}->{peer}({role:?}) evicted without a check: {} dst {}",
                                    t.saturating_since(start).as_secs_f64(),
                                    why.cause.as_str(),
                                    node_of.get(&why.prefix).map_or(-1, |d| *d as i64),
                                );
                            }
                        }
                        let acc = nodes.get(v).map_or(1000, |x| {
                            x.verifier.engine_accuracy(t, &neighbour, engine_threshold)
                        });
                        sim.with_engine(v, |e, now| {
                            let _ = e.set_neighbour_accuracy(
                                now,
                                neighbour.ifindex,
                                neighbour.address,
                                acc,
                            );
                        });
                    }
                }
            }
            // §5.2: the neighbour-wide corrections.
            if nodes
                .get(v)
                .is_some_and(|x| x.verifier.has_neighbour_corrections(t))
            {
                let routes = sim
                    .with_engine(v, |e, now| e.routes(now))
                    .unwrap_or_default();
                let set = match nodes.get_mut(v) {
                    Some(x) => x.verifier.neighbour_corrections(t, &routes),
                    None => Vec::new(),
                };
                if !set.is_empty() {
                    sim.with_engine(v, |e, now| {
                        for (nb, p, m, until) in set {
                            let _ = e.set_verified_metric(
                                now,
                                RouteKey::new(p),
                                nb.ifindex,
                                nb.address,
                                m,
                                until,
                            );
                        }
                    });
                }
            }
        }
        // Destinations answer; answers travel back along the destination's routes.
        for d in 0..n {
            let due = nodes
                .get(d)
                .and_then(|x| x.responder.poll_timeout())
                .is_some_and(|w| w <= t);
            if !due {
                continue;
            }
            let answers = match nodes.get_mut(d) {
                Some(x) => x.responder.poll_answers(t),
                None => continue,
            };
            for (origin, _via, _prefix, mut tlv) in answers {
                let Some(&o) = rid_of.get(&origin) else {
                    continue;
                };
                let Some(op) = prefixes.get(o).copied() else {
                    continue;
                };
                let Some(first) = sim.next_hop_node(d, op) else {
                    continue;
                };
                let r = dp.walk(&sim, d, first, o, op, Kind::Answer);
                if !r.delivered() {
                    continue;
                }
                if let Some(&f) = r
                    .path
                    .iter()
                    .find(|&&h| h != o && roles.get(h) == Some(&Role::Forger))
                {
                    forge(&mut tlv, &mut dp.rng, keys.get(f));
                }
                if let Some(x) = nodes.get_mut(o) {
                    let _ = x.verifier.handle_remote_ihu(t, &tlv);
                }
            }
        }
    }
    // Outcomes.
    let cycles_to = |from: Instant, to: Option<&Instant>| -> Option<u32> {
        let to = to?;
        let d = to.saturating_since(from.max(start)).as_micros();
        let c = cycle.as_micros().max(1);
        Some(u32::try_from(d.div_ceil(c)).unwrap_or(u32::MAX).max(1))
    };
    let mut liars = Vec::new();
    for (&a, &role) in adversaries.iter().filter(|(_, r)| r.lies()) {
        let mut cycles = Vec::new();
        let mut paper_cycles = Vec::new();
        let mut late_samples = Vec::new();
        let mut neighbours = Vec::new();
        let mut observed_cycles = Vec::new();
        for (&(v, l), &at) in exposed.iter().filter(|((_, l), _)| *l == a) {
            neighbours.push(v);
            let observed =
                end.saturating_since(at.max(start)).as_micros() / cycle.as_micros().max(1);
            observed_cycles.push(u32::try_from(observed).unwrap_or(u32::MAX));
            cycles.push(cycles_to(at, evicted.get(&(v, l))));
            paper_cycles.push(cycles_to(at, paper_evicted.get(&(v, l))));
            late_samples.push(late.get(&(v, l)).copied().unwrap_or(0));
        }
        liars.push(LiarOutcome {
            node: a,
            role,
            exposed: cycles.len(),
            neighbours,
            cycles,
            paper_cycles,
            late_samples,
            observed_cycles,
        });
    }
    let honest = |peer: &usize| {
        !roles
            .get(*peer)
            .copied()
            .unwrap_or(Role::Honest)
            .adversary()
    };
    if let Some(l) = &losses {
        eprintln!(
            "seed {} undelivered in the last two cycles: {l:?}",
            cfg.seed
        );
    }
    let honest_evicted = evicted.keys().filter(|(_, p)| honest(p)).count() as u32;
    let paper_honest_evicted = paper_evicted.keys().filter(|(_, p)| honest(p)).count() as u32;
    let other_adversaries_evicted = evicted
        .keys()
        .filter(|(_, p)| roles.get(*p).is_some_and(|r| r.adversary() && !r.lies()))
        .count() as u32;
    let mut counters = verify::ProbeCounters::default();
    for x in &nodes {
        counters.add(&x.verifier.counters());
    }
    let session_secs = (cfg
        .verify
        .schedule
        .probe_interval
        .saturating_mul(u32::from(cfg.verify.schedule.probes))
        + cfg.verify.schedule.answer_wait)
        .as_secs_f64();
    let bytes = counters.probes_sent as f64 * 98.0 + counters.answers as f64 * 219.0;
    AdversaryRun {
        seed: cfg.seed,
        nodes: n,
        links: topo.links.len(),
        adversaries,
        liars,
        honest_evicted,
        paper_honest_evicted,
        other_adversaries_evicted,
        traffic_first,
        traffic_last,
        counters,
        probe_bytes_per_session_second: if counters.sessions == 0 {
            0.0
        } else {
            bytes / counters.sessions as f64 / session_secs
        },
    }
}

/// §1.4: who sends verifier `v` a Time Exceeded for its bound `r` (walked with hop limit
/// `hop_limit` towards `dst`) that reaches it, if anybody does: the router where the hop limit
/// ran out (`v` itself when the route comes back through it), if it was not the destination
/// and its Time Exceeded comes back along its own routes to `v`'s prefix, with their losses.
/// A forger (which alters what it forwards) answers every bound it forwards with a forged
/// Time Exceeded, and drops every Time Exceeded it forwards back: the hop limit frames a route
/// through a forger and the forger hides the routes behind it.
#[allow(clippy::too_many_arguments)]
fn bound_answer(
    sim: &Sim,
    dp: &mut DataPlane,
    roles: &[Role],
    v: usize,
    prefix_v: Prefix,
    dst: usize,
    r: &Walk,
    hop_limit: u8,
) -> Option<usize> {
    let forger = |x: &usize| roles.get(*x) == Some(&Role::Forger);
    let ran_out = r
        .path
        .get(usize::from(hop_limit).saturating_sub(1))
        .copied();
    let within = usize::from(hop_limit).saturating_sub(1);
    // Routers before the one where it runs out (or the destination) that forward it.
    let before = r.path.get(..within.min(r.path.len())).unwrap_or_default();
    let sender = match before.iter().find(|x| **x != dst && forger(x)) {
        Some(&f) => f,
        None => ran_out.filter(|x| *x != dst)?,
    };
    if sender == v {
        return Some(v);
    }
    let first = sim.next_hop_node(sender, prefix_v)?;
    let back = dp.walk(sim, sender, first, v, prefix_v, Kind::Answer);
    let dropped = back.path.iter().any(|x| *x != v && forger(x));
    (back.delivered() && !dropped).then_some(sender)
}

/// Forwards a Remote Hello of node `v` for `prefix` through its neighbour `neighbour`: the
/// destination node and the walk, if both are known.
fn walk_probe(
    sim: &Sim,
    dp: &mut DataPlane,
    node_of: &BTreeMap<Prefix, usize>,
    exits: &BTreeSet<usize>,
    v: usize,
    neighbour: verify::NeighbourId,
    prefix: Prefix,
) -> Option<(usize, Walk)> {
    let first = sim.peer_node(v, neighbour.ifindex, neighbour.address)?;
    let dst = *node_of.get(&prefix)?;
    let stealth = exits.contains(&dst);
    Some((
        dst,
        dp.walk(sim, v, first, dst, prefix, Kind::Probe { stealth }),
    ))
}

/// A diagnostic (`BABEL_SIM_TRACE`): the nodes a packet for `prefix` visits from `from` along
/// the kernel next hops until `to`, a node without a route, or 20 nodes.
fn next_hops(sim: &Sim, from: usize, to: usize, prefix: Prefix) -> Vec<usize> {
    let mut path = vec![from];
    let mut cur = from;
    while cur != to && path.len() < 20 {
        match sim.next_hop_node(cur, prefix) {
            Some(nx) => {
                path.push(nx);
                cur = nx;
            }
            None => break,
        }
    }
    path
}

/// One line of `BABEL_SIM_WATCH` (a diagnostic, see its use).
fn watch_line(
    sim: &Sim,
    prefixes: &[Prefix],
    v: usize,
    nb: usize,
    d: usize,
    t: Instant,
    start: Instant,
) {
    let Some(&p) = prefixes.get(d) else { return };
    let held = |at: usize, from: usize| -> Option<(u16, u16, Option<u16>, bool, bool)> {
        let (ifindex, addr) = sim.neighbour_of(at, from)?;
        let e = sim.engine(at)?;
        e.routes(t)
            .into_iter()
            .find(|r| {
                r.prefix == p && r.src_prefix.is_none() && r.ifindex == ifindex && r.via == addr
            })
            .map(|r| {
                (
                    r.refmetric.0,
                    r.metric.0,
                    r.verified_metric.map(|m| m.0),
                    r.installed,
                    r.feasible,
                )
            })
    };
    let x = sim.next_hop_node(nb, p);
    eprintln!(
        "t={:.1} watch {v}<-{nb} dst {d}: {v} holds {:?}; {nb} selects via {x:?} {:?}",
        t.saturating_since(start).as_secs_f64(),
        held(v, nb),
        x.and_then(|x| held(nb, x)),
    );
}

/// Liar `a` lies about the destinations of `set` (and only those), dividing its metrics by
/// `divisor`, and retracts those of `withheld`.
fn tell_lies(
    sim: &mut Sim,
    a: usize,
    set: &BTreeSet<Prefix>,
    withheld: Option<&BTreeSet<Prefix>>,
    divisor: u16,
) {
    sim.set_lie(
        a,
        Some(Lie {
            divisor,
            prefixes: Some(set.clone()),
            withheld: withheld.cloned().unwrap_or_default(),
        }),
    );
}

/// §4.2.5 over the links, each message delivered at once: the verifier `v` asks `neighbour`
/// (Justify Request), which asks its next hop for the destination (Claim Request); the next hop
/// signs the metric it offers (a liar the metric it tells, `lies`), and the neighbour relays the
/// Signed Claim to `v`, which judges it against what the neighbour advertises to it now. With
/// `readvertise` the neighbour first sends `v` its Update for the destination as it is now (a
/// retraction if it has nobody to ask, no route, or under split horizon one through `v`). A
/// neighbour whose route runs through `v` asks `v` itself, which signs its own metric. Liars do
/// not justify their own claims, except evasive ones (`liars_justify`), which answer as an
/// honest relay.
#[allow(clippy::too_many_arguments)]
fn justify(
    sim: &mut Sim,
    nodes: &mut [Node],
    (v, neighbour): (usize, NeighbourId),
    request: verify::ClaimRequest,
    (t, start): (Instant, Instant),
    node_of: &BTreeMap<Prefix, usize>,
    prefixes: &[Prefix],
    lies: Option<(&BTreeMap<usize, BTreeSet<Prefix>>, u16)>,
    first: Duration,
    readvertise: bool,
    liars_justify: bool,
) -> Option<()> {
    let peer = sim.peer_node(v, neighbour.ifindex, neighbour.address)?;
    if nodes.get(peer)?.role.lies() && !liars_justify {
        return None;
    }
    let x = sim.next_hop_node(peer, request.prefix);
    let id = |a: usize, b: usize| {
        sim.neighbour_of(a, b)
            .map(|(ifindex, address)| NeighbourId { ifindex, address })
    };
    let next_hop = x.and_then(|x| id(peer, x));
    let from = id(peer, v)?;
    let forwarded = nodes
        .get_mut(peer)?
        .relay
        .forward(t, from, request, next_hop);
    // The neighbour sends `v` its Update as it is now, as in the daemon: a retraction where it
    // has nobody to ask (the claim `v` holds is one it no longer makes), its claim of the
    // moment otherwise (the one `v` holds may lag a small rise of its route).
    if readvertise {
        let key = RouteKey::new(request.prefix);
        sim.with_engine(peer, |e, now| e.readvertise(now, from.ifindex, key));
    }
    let (to, tlv) = forwarded?;
    let x = x?;
    let r = verify::decode_request(babel_wire::tlv::CLAIM_REQUEST, &tlv).ok()?;
    let offer = if node_of.get(&r.prefix) == Some(&x) {
        0
    } else {
        let m = sim
            .engine(x)?
            .routes(t)
            .into_iter()
            .find(|e| e.prefix == r.prefix && e.src_prefix.is_none() && e.installed)
            .map_or(babel_wire::INFINITY, |e| {
                VerifiableRoute::from_route(&e).metric
            });
        match lies {
            Some((sets, d)) if sets.get(&x).is_some_and(|s| s.contains(&r.prefix)) => {
                (m / d.max(1)).max(1)
            }
            _ => m,
        }
    };
    let claim = nodes
        .get(x)?
        .responder
        .sign_claim(&r, offer, prefixes.get(x)?);
    let back = nodes.get_mut(peer)?.relay.answer(t, to, &claim)?;
    debug_assert_eq!(back, from);
    // The relay takes its next hop's signed word where it is more than it was told, and sends
    // `v` its risen claim (the daemon's `adopt_signed_metric`).
    let key = RouteKey::new(r.prefix);
    if let Some(via_x) = sim
        .engine(peer)
        .and_then(|e| e.route(t, &key, to.ifindex, to.address))
        && offer > via_x.refmetric.0
    {
        let link = via_x.metric.0.saturating_sub(via_x.refmetric.0);
        sim.with_engine(peer, |e, now| {
            let _ = e.set_verified_metric(
                now,
                key,
                to.ifindex,
                to.address,
                offer.saturating_add(link),
                now + first,
            );
            if readvertise {
                e.readvertise(now, from.ifindex, key);
            }
        });
    }
    let now_claimed = sim
        .engine(v)?
        .route(
            t,
            &RouteKey::new(r.prefix),
            neighbour.ifindex,
            neighbour.address,
        )
        .map(|e| VerifiableRoute::from_route(&e).advertised);
    let result = nodes
        .get_mut(v)?
        .verifier
        .handle_signed_claim(t, neighbour, &claim, now_claimed);
    if std::env::var_os("BABEL_SIM_TRACE").is_some() {
        eprintln!(
            "t={:.1} justify {v}->{peer} dst {}: next hop {x} signs {offer}, claim {now_claimed:?}: {result:?}",
            t.saturating_since(start).as_secs_f64(),
            node_of.get(&r.prefix).map_or(-1, |d| *d as i64),
        );
    }
    Some(())
}

/// The routes of node `v` to the destinations it uses, as the verifier needs them.
fn candidates(sim: &Sim, v: usize, used: &[Prefix], now: Instant) -> Vec<VerifiableRoute> {
    let Some(e) = sim.engine(v) else {
        return Vec::new();
    };
    e.routes(now)
        .into_iter()
        .filter(|r| r.src_prefix.is_none() && used.binary_search(&r.prefix).is_ok())
        .map(|r| VerifiableRoute::from_route(&r))
        .collect()
}

/// A Remote IHU altered by a forger: half the time one octet of the report (the hop count), half
/// the time re-signed with the forger's own key.
fn forge(tlv: &mut Vec<u8>, rng: &mut Rng, own: Option<&SigningKey>) {
    if rng.below(2) == 0 || own.is_none() {
        let at = tlv.len().saturating_sub(64 + 32 + 8 + 2 + 1);
        if let Some(b) = tlv.get_mut(at) {
            *b = 1;
        }
        return;
    }
    if let (Ok(s), Some(k)) = (verify::decode_signed_ihu(tlv), own) {
        let mut r = s.report;
        r.hops = 1;
        if let Some(t) = verify::encode_signed_ihu(&s.ihu, &r, k) {
            *tlv = t;
        }
    }
}

struct DataPlane {
    rng: Rng,
    roles: Vec<Role>,
    drop_ppm: u64,
    extra_delay: Duration,
    jitter_us: u64,
}

struct Walk {
    /// Nodes reached after `from`, in order (the last is the destination if delivered).
    path: Vec<usize>,
    /// Why it was not delivered; `None`: it was.
    lost: Option<Loss>,
    #[allow(dead_code)]
    delay: Duration,
}

impl Walk {
    /// Reached its destination.
    fn delivered(&self) -> bool {
        self.lost.is_none()
    }

    /// The hop limit ran out (a forwarding loop).
    fn looped(&self) -> bool {
        self.lost == Some(Loss::Looped)
    }
}

/// Why a packet was not delivered (`BABEL_SIM_LOSSES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Loss {
    /// The sender has no route.
    Unrouted,
    /// A router on the way has no route.
    NoRoute,
    /// Lost on a link (down, or its loss drew it).
    Link,
    /// Dropped by a dropper or favourer.
    Dropped,
    /// The hop limit ran out.
    Looped,
}

impl DataPlane {
    /// The links of run `cfg`, with losses and jitter drawn from the stream `cfg.seed ^ stream`.
    fn new(cfg: &AdversaryConfig, stream: u64, roles: &[Role]) -> DataPlane {
        DataPlane {
            rng: Rng::new(cfg.seed ^ stream),
            roles: roles.to_vec(),
            drop_ppm: (cfg.drop_fraction * 1e6) as u64,
            extra_delay: cfg.extra_delay,
            jitter_us: 2000,
        }
    }

    /// Forwards one packet from `from` through `first`, then along next hops, to `dst`.
    fn walk(
        &mut self,
        sim: &Sim,
        from: usize,
        first: usize,
        dst: usize,
        prefix: Prefix,
        kind: Kind,
    ) -> Walk {
        let mut path = Vec::new();
        let mut delay = Duration::ZERO;
        let mut cur = from;
        let mut next = first;
        for _ in 0..verify::HOP_LIMIT {
            let Some(l) = sim.link_state(cur, next) else {
                return Walk {
                    path,
                    delay,
                    lost: Some(Loss::Link),
                };
            };
            if !l.up || (l.loss_ppm > 0 && self.rng.below(1_000_000) < u64::from(l.loss_ppm)) {
                return Walk {
                    path,
                    delay,
                    lost: Some(Loss::Link),
                };
            }
            delay += l.delay + Duration::from_micros(self.rng.below(self.jitter_us.max(1)));
            path.push(next);
            cur = next;
            if cur == dst {
                return Walk {
                    path,
                    delay,
                    lost: None,
                };
            }
            // The node forwards it, or not.
            let looks_like_data = match kind {
                Kind::Data => true,
                Kind::Probe { stealth } => stealth,
                Kind::Answer => false,
            };
            let role = self.roles.get(cur).copied().unwrap_or(Role::Honest);
            let drops = match role {
                Role::Dropper => kind != Kind::Answer,
                Role::Favourer => looks_like_data,
                _ => false,
            };
            if drops && self.rng.below(1_000_000) < self.drop_ppm {
                return Walk {
                    path,
                    delay,
                    lost: Some(Loss::Dropped),
                };
            }
            match role {
                Role::Delayer if looks_like_data => delay += self.extra_delay,
                _ => {}
            }
            let Some(n) = sim.next_hop_node(cur, prefix) else {
                return Walk {
                    path,
                    delay,
                    lost: Some(Loss::NoRoute),
                };
            };
            next = n;
        }
        Walk {
            path,
            delay,
            lost: Some(Loss::Looped),
        }
    }
}

/// Figures over many seeds (`babelctl simulate --adversary`, `cargo bench --bench adversary`).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct SweepReport {
    /// Runs.
    pub runs: u64,
    /// Nodes, fewest and most.
    pub nodes: (usize, usize),
    /// (liar, exposed neighbour) pairs, for full liars and partial liars.
    pub exposures: (u64, u64),
    /// Cycles to eviction under our rule: histogram index = cycles (1..), last bucket = more;
    /// `undetected` counts pairs never evicted. Full liars.
    pub liar_cycles: Histogram,
    /// Partial liars, our rule.
    pub partial_cycles: Histogram,
    /// Full liars, the paper's rule on the same checks.
    pub paper_liar_cycles: Histogram,
    /// Partial liars, the paper's rule on the same checks.
    pub paper_partial_cycles: Histogram,
    /// Liars one by one, not by pair: full liars, partial liars (ours).
    pub liars: (LiarTally, LiarTally),
    /// The same under the paper's rule on the same checks.
    pub paper_liars: (LiarTally, LiarTally),
    /// Runs in which some exposed neighbour had not evicted a liar within 5 cycles (ours).
    pub runs_liar_not_within_5: u64,
    /// Pairs (full liars, partial liars) whose neighbour still sent data through the liar for
    /// a destination it lies about more than 5 cycles after exposure, and those samples
    /// ([`LiarOutcome::late_samples`]).
    pub late_pairs: (u64, u64),
    /// The samples of `late_pairs`.
    pub late_samples: u64,
    /// Honest neighbours evicted, ours / the paper's rule (all runs).
    pub honest_evicted: (u64, u64),
    /// Non-lying adversaries evicted (ours).
    pub other_adversaries_evicted: u64,
    /// Data samples through a liar (for a lied-about destination) from routers that had not
    /// evicted it: first cycle, last two cycles.
    pub through_liar: (u64, u64),
    /// Data samples through liars only from routers that had evicted them, their last resort:
    /// first cycle, last two.
    pub through_liar_last_resort: (u64, u64),
    /// Data samples through any adversary: first cycle, last two.
    pub through_adversary: (u64, u64),
    /// Delivery ratio of data: first cycle, last two.
    pub delivery: (f64, f64),
    /// Summed verifier counters.
    pub counters: verify::ProbeCounters,
    /// Mean probe octets per second of probe session.
    pub probe_bytes_per_session_second: f64,
}

/// Liars taken one by one, not by (liar, neighbour) pair, under one rule: the issue's "every
/// liar detected and its routes dropped within 5 cycles" read per liar. A pair is judged as in
/// [`Histogram`] (exposed at least [`JUDGED_AFTER`] cycles before the end, or evicted).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct LiarTally {
    /// Liars with at least one judged pair.
    pub judged: u64,
    /// Of them, evicted within 5 cycles by at least one of its exposed neighbours (detected).
    pub detected: u64,
    /// Of them, evicted within 5 cycles by every exposed neighbour of a judged pair (its
    /// routes dropped everywhere they were taken).
    pub dropped_by_all: u64,
}

impl LiarTally {
    /// Adds one liar, its pairs as `(cycles to eviction, cycles observed)`.
    fn add(&mut self, pairs: impl Iterator<Item = (Option<u32>, Option<u32>)>) {
        let judged: Vec<Option<u32>> = pairs
            .filter(|(c, observed)| c.is_some() || observed.is_none_or(|o| o >= JUDGED_AFTER))
            .map(|(c, _)| c)
            .collect();
        if judged.is_empty() {
            return;
        }
        let within = |c: &Option<u32>| c.is_some_and(|c| c <= JUDGED_AFTER);
        self.judged += 1;
        self.detected += u64::from(judged.iter().any(within));
        self.dropped_by_all += u64::from(judged.iter().all(within));
    }

    fn render(&self) -> String {
        let pct = |x: u64| {
            if self.judged == 0 {
                0.0
            } else {
                100.0 * x as f64 / self.judged as f64
            }
        };
        format!(
            "{} liars; within 5 cycles evicted by one neighbour {:.1} %, by every exposed neighbour {:.1} %",
            self.judged,
            pct(self.detected),
            pct(self.dropped_by_all)
        )
    }
}

/// A histogram of verification cycles.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Histogram {
    /// `counts[c]`: pairs evicted after `c` cycles (index 0 unused).
    pub counts: Vec<u64>,
    /// Pairs never evicted in the run, observed at least [`JUDGED_AFTER`] cycles after their
    /// exposure (or of runs that do not say).
    pub undetected: u64,
    /// Pairs not evicted by the end of a run that ended less than [`JUDGED_AFTER`] cycles
    /// after their exposure: not judged (in no other count).
    pub unjudged: u64,
}

impl Histogram {
    fn add(&mut self, c: Option<u32>, observed: Option<u32>) {
        match c {
            None if observed.is_some_and(|o| o < JUDGED_AFTER) => self.unjudged += 1,
            Some(c) => {
                let i = c as usize;
                if self.counts.len() <= i {
                    self.counts.resize(i + 1, 0);
                }
                if let Some(x) = self.counts.get_mut(i) {
                    *x += 1;
                }
            }
            None => self.undetected += 1,
        }
    }
    /// Pairs counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.undetected
    }
    /// Pairs evicted within `c` cycles.
    pub fn within(&self, c: u32) -> u64 {
        self.counts.iter().take(c as usize + 1).sum()
    }
    /// The largest number of cycles seen.
    pub fn max(&self) -> Option<usize> {
        self.counts.iter().rposition(|&x| x > 0)
    }
}

impl SweepReport {
    /// Adds one run.
    pub fn add(&mut self, r: &AdversaryRun) {
        self.runs += 1;
        self.nodes = if self.runs == 1 {
            (r.nodes, r.nodes)
        } else {
            (self.nodes.0.min(r.nodes), self.nodes.1.max(r.nodes))
        };
        let mut late = false;
        for l in &r.liars {
            let partial = l.role == Role::PartialLiar;
            if partial {
                self.exposures.1 += l.exposed as u64;
            } else {
                self.exposures.0 += l.exposed as u64;
            }
            for &n in l.late_samples.iter().filter(|&&n| n > 0) {
                if partial {
                    self.late_pairs.1 += 1;
                } else {
                    self.late_pairs.0 += 1;
                }
                self.late_samples += n;
            }
            let observed = |i: usize| l.observed_cycles.get(i).copied();
            let (ours, paper) = if partial {
                (&mut self.liars.1, &mut self.paper_liars.1)
            } else {
                (&mut self.liars.0, &mut self.paper_liars.0)
            };
            ours.add(l.cycles.iter().enumerate().map(|(i, c)| (*c, observed(i))));
            paper.add(
                l.paper_cycles
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (*c, observed(i))),
            );
            for (i, (&ours, &paper)) in l.cycles.iter().zip(&l.paper_cycles).enumerate() {
                let observed = l.observed_cycles.get(i).copied();
                let judged = ours.is_some() || observed.is_none_or(|o| o >= JUDGED_AFTER);
                late |= judged && ours.is_none_or(|c| c > JUDGED_AFTER);
                if partial {
                    self.partial_cycles.add(ours, observed);
                    self.paper_partial_cycles.add(paper, observed);
                } else {
                    self.liar_cycles.add(ours, observed);
                    self.paper_liar_cycles.add(paper, observed);
                }
            }
        }
        self.runs_liar_not_within_5 += u64::from(late);
        self.honest_evicted.0 += u64::from(r.honest_evicted);
        self.honest_evicted.1 += u64::from(r.paper_honest_evicted);
        self.other_adversaries_evicted += u64::from(r.other_adversaries_evicted);
        self.through_liar.0 += r.traffic_first.through_liar;
        self.through_liar.1 += r.traffic_last.through_liar;
        self.through_liar_last_resort.0 += r.traffic_first.through_liar_last_resort;
        self.through_liar_last_resort.1 += r.traffic_last.through_liar_last_resort;
        self.through_adversary.0 += r.traffic_first.through_adversary;
        self.through_adversary.1 += r.traffic_last.through_adversary;
        // Running delivery ratios, weighted by samples.
        let prev = (self.runs - 1) as f64;
        let f = |old: f64, t: &Traffic| {
            let x = if t.samples == 0 {
                1.0
            } else {
                t.delivered as f64 / t.samples as f64
            };
            (old * prev + x) / (prev + 1.0)
        };
        self.delivery = (
            f(self.delivery.0, &r.traffic_first),
            f(self.delivery.1, &r.traffic_last),
        );
        self.counters.add(&r.counters);
        self.probe_bytes_per_session_second = (self.probe_bytes_per_session_second * prev
            + r.probe_bytes_per_session_second)
            / (prev + 1.0);
    }
}

/// Runs `seeds` seeds (`first_seed..`) with mesh sizes drawn in `min_nodes..=max_nodes`, on
/// `threads` threads; `tweak` adjusts each run's configuration.
pub fn sweep(
    first_seed: u64,
    seeds: u64,
    min_nodes: usize,
    max_nodes: usize,
    kind: InterfaceKind,
    threads: usize,
    tweak: &(dyn Fn(&mut AdversaryConfig) + Sync),
) -> (SweepReport, Vec<AdversaryRun>) {
    let plan = SweepPlan {
        first_seed,
        seeds,
        min_nodes,
        max_nodes,
        kind,
        threads,
    };
    sweep_with(&plan, tweak, &|_| None, &|_| {})
}

/// Which seeds a sweep runs, on which mesh sizes, on how many threads.
#[derive(Clone, Copy, Debug)]
pub struct SweepPlan {
    /// The first seed.
    pub first_seed: u64,
    /// How many seeds, from `first_seed` on.
    pub seeds: u64,
    /// Fewest nodes of a mesh.
    pub min_nodes: usize,
    /// Most nodes of a mesh.
    pub max_nodes: usize,
    /// Wired or wireless links.
    pub kind: InterfaceKind,
    /// Worker threads, one seed each at a time.
    pub threads: usize,
}

impl SweepPlan {
    /// The mesh size seed `seed` draws: a function of the seed alone, so a seed's run is the
    /// same whatever else the sweep runs.
    pub fn nodes(&self, seed: u64) -> usize {
        let span = self.max_nodes.saturating_sub(self.min_nodes) as u64 + 1;
        self.min_nodes + (Rng::new(seed ^ 0x512E).below(span) as usize)
    }
}

/// [`sweep`] that can resume: `known(seed)` gives a run already made (from an earlier,
/// interrupted sweep with the same plan and configuration), which is taken instead of running
/// the seed again; `finished` sees every run this call makes, as soon as it ends, so the caller
/// can keep it before the next seed starts. The report covers the known runs and the new ones
/// alike, in seed order.
pub fn sweep_with(
    plan: &SweepPlan,
    tweak: &(dyn Fn(&mut AdversaryConfig) + Sync),
    known: &(dyn Fn(u64) -> Option<AdversaryRun> + Sync),
    finished: &(dyn Fn(&AdversaryRun) + Sync),
) -> (SweepReport, Vec<AdversaryRun>) {
    let next = std::sync::atomic::AtomicU64::new(plan.first_seed);
    let last = plan.first_seed.saturating_add(plan.seeds);
    let runs = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..plan.threads.max(1) {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seed >= last {
                        break;
                    }
                    let r = match known(seed) {
                        Some(r) => r,
                        None => {
                            let mut cfg = AdversaryConfig::new(seed, plan.nodes(seed), plan.kind);
                            tweak(&mut cfg);
                            let r = run_adversarial(&cfg);
                            finished(&r);
                            r
                        }
                    };
                    if let Ok(mut v) = runs.lock() {
                        v.push(r);
                    }
                }
            });
        }
    });
    let mut runs = runs.into_inner().unwrap_or_default();
    runs.sort_by_key(|r| r.seed);
    let mut rep = SweepReport::default();
    for r in &runs {
        rep.add(r);
    }
    (rep, runs)
}

impl Histogram {
    fn render(&self) -> String {
        let total = self.total();
        let mut s = String::new();
        for (c, n) in self.counts.iter().enumerate().skip(1) {
            if *n > 0 {
                s.push_str(&format!("{c}:{n} "));
            }
        }
        let pct = |x: u64| {
            if total == 0 {
                0.0
            } else {
                100.0 * x as f64 / total as f64
            }
        };
        format!(
            "{total} pairs; within 5 cycles {:.1} %, never {:.1} %; by cycles [{}]{}",
            pct(self.within(JUDGED_AFTER)),
            pct(self.undetected),
            s.trim_end(),
            if self.unjudged > 0 {
                format!(
                    "; {} more exposed under 5 cycles before the end, not evicted by then",
                    self.unjudged
                )
            } else {
                String::new()
            }
        )
    }
}

impl SweepReport {
    /// The figures as text (`babelctl simulate --adversary`).
    pub fn render(&self) -> String {
        let c = &self.counters;
        let rate = |x: u64, n: u64| {
            if n == 0 {
                0.0
            } else {
                100.0 * x as f64 / n as f64
            }
        };
        let mut o = String::new();
        o.push_str(&format!(
            "runs                     {} (meshes of {}-{} nodes)\n",
            self.runs, self.nodes.0, self.nodes.1
        ));
        o.push_str("eviction of a liar by each neighbour whose traffic went through it (cycles from exposure):\n");
        for (label, h) in [
            ("liar, ours           ", &self.liar_cycles),
            ("liar, paper's rule   ", &self.paper_liar_cycles),
            ("partial liar, ours   ", &self.partial_cycles),
            ("partial liar, paper's", &self.paper_partial_cycles),
        ] {
            o.push_str(&format!("  {label}   {}\n", h.render()));
        }
        o.push_str(
            "liars one by one (evicted by one neighbour: detected; by every one: dropped):\n",
        );
        for (label, t) in [
            ("liar, ours           ", &self.liars.0),
            ("liar, paper's rule   ", &self.paper_liars.0),
            ("partial liar, ours   ", &self.liars.1),
            ("partial liar, paper's", &self.paper_liars.1),
        ] {
            o.push_str(&format!("  {label}   {}\n", t.render()));
        }
        o.push_str(&format!(
            "runs with a liar not evicted within 5 cycles by every exposed neighbour: {}\n",
            self.runs_liar_not_within_5
        ));
        o.push_str(&format!(
            "pairs still carrying data through the liar after 5 cycles: {} liar, {} partial liar ({} samples)\n",
            self.late_pairs.0, self.late_pairs.1, self.late_samples
        ));
        o.push_str(&format!(
            "honest neighbours evicted ours {} / paper's rule on the same checks {}\n",
            self.honest_evicted.0, self.honest_evicted.1
        ));
        o.push_str(&format!(
            "other adversaries evicted (dropper, favourer, delayer, forger) {}\n",
            self.other_adversaries_evicted
        ));
        o.push_str(&format!(
            "data through a liar      {} samples in the first cycle -> {} in the last two\n",
            self.through_liar.0, self.through_liar.1
        ));
        o.push_str(&format!(
            "data through a liar as a last resort (evicted, nothing else offered) {} -> {}\n",
            self.through_liar_last_resort.0, self.through_liar_last_resort.1
        ));
        o.push_str(&format!(
            "data through adversaries {} -> {}; delivery {:.1} % -> {:.1} %\n",
            self.through_adversary.0,
            self.through_adversary.1,
            100.0 * self.delivery.0,
            100.0 * self.delivery.1
        ));
        o.push_str(&format!(
            "sessions {} (unanswered {:.1} %, black holes {}), Remote Hellos {}, answers {}\n",
            c.sessions,
            rate(c.unanswered, c.sessions),
            c.black_holes,
            c.probes_sent,
            c.answers
        ));
        o.push_str(&format!(
            "dropped Remote IHUs: bad signature {}, unbound key {}, replayed {}, unexpected {}, malformed {}\n",
            c.bad_signature, c.unbound_key, c.replayed, c.unexpected, c.malformed
        ));
        o.push_str(&format!(
            "checks {}, corrections {}, evictions {}, readmissions {}\n",
            c.checks, c.corrections, c.evictions, c.readmissions
        ));
        o.push_str(&format!(
            "justify requests {} (audits of passing claims {}), justified {}, claims refused {}, risen only when asked {}\n",
            c.justify_requests_sent, c.audits, c.justified, c.claims_refused, c.asked_rises
        ));
        o.push_str(&format!(
            "probe overhead           {:.0} octets/s per probed route while probing\n",
            self.probe_bytes_per_session_second
        ));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(liars: Vec<LiarOutcome>) -> AdversaryRun {
        AdversaryRun {
            seed: 1,
            nodes: 50,
            links: 100,
            adversaries: BTreeMap::new(),
            liars,
            honest_evicted: 0,
            paper_honest_evicted: 0,
            other_adversaries_evicted: 0,
            traffic_first: Traffic::default(),
            traffic_last: Traffic::default(),
            counters: verify::ProbeCounters::default(),
            probe_bytes_per_session_second: 0.0,
        }
    }

    /// §8.1: a pair not evicted by the end of a run that ended under 5 cycles after its
    /// exposure is not judged; one observed 5 cycles or more, or of a run stored before the
    /// field, is never evicted; an eviction counts however soon the run ended.
    #[test]
    fn pairs_exposed_too_near_the_end_are_not_judged() {
        let liar = LiarOutcome {
            node: 3,
            role: Role::PartialLiar,
            exposed: 4,
            neighbours: vec![1, 2, 4, 5],
            cycles: vec![Some(2), None, None, Some(1)],
            paper_cycles: vec![None, None, None, None],
            late_samples: vec![0, 0, 7, 0],
            observed_cycles: vec![3, 4, 5, 0],
        };
        let mut rep = SweepReport::default();
        rep.add(&run(vec![liar.clone()]));
        let h = &rep.partial_cycles;
        assert_eq!(
            (h.within(5), h.undetected, h.unjudged, h.total()),
            (2, 1, 1, 3)
        );
        assert_eq!(rep.paper_partial_cycles.unjudged, 3);
        assert_eq!(rep.runs_liar_not_within_5, 1);
        // One by one: judged (three pairs are), detected (two evicted within 5), not dropped
        // by all (neighbour 4 never evicted it); under the paper's rule only neighbour 4's pair
        // is judged, never evicted.
        let t = rep.liars.1;
        assert_eq!((t.judged, t.detected, t.dropped_by_all), (1, 1, 0));
        let t = rep.paper_liars.1;
        assert_eq!((t.judged, t.detected, t.dropped_by_all), (1, 0, 0));
        assert_eq!(rep.liars.0, LiarTally::default());
        // A liar every judged neighbour evicted within 5 cycles, the unjudged one aside.
        let mut rep = SweepReport::default();
        rep.add(&run(vec![LiarOutcome {
            cycles: vec![Some(2), None, Some(5), Some(1)],
            ..liar.clone()
        }]));
        let t = rep.liars.1;
        assert_eq!((t.judged, t.detected, t.dropped_by_all), (1, 1, 1));
        assert!(rep.render().contains("1 liars; within 5 cycles evicted by one neighbour 100.0 %, by every exposed neighbour 100.0 %"));
        assert!(
            h.render()
                .contains("1 more exposed under 5 cycles before the end")
        );
        // Stored before the field: every pair judged, as before.
        let old = LiarOutcome {
            observed_cycles: Vec::new(),
            ..liar
        };
        let mut rep = SweepReport::default();
        rep.add(&run(vec![old]));
        let h = &rep.partial_cycles;
        assert_eq!((h.within(5), h.undetected, h.unjudged), (2, 2, 0));
        assert!(!h.render().contains("before the end"));
    }
}
