//! The verifier and the responder together, through the encoded TLVs (`spec/verify.md` §2-§6).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use babel_core::{Instant, RouteView};
use babel_wire::{Metric, Prefix, RouterId, Seqno};
use verify::{
    AskedRise, Blame, Check, CheckVerdict, ClaimRequest, CostModel, Eviction, EvictionCause,
    FallenClaim, HOP_LIMIT, JustifyError, Keyring, NeighbourId, ProbeAction, Reason,
    ReportDropReason, Responder, SigningKey, TRACE_HOP_LIMIT, TraceAnswer, VerifiableRoute,
    Verifier, VerifyConfig, encode_signed_claim,
};

fn dest() -> Prefix {
    Prefix::host(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9)))
}
/// A second destination, bound to the destination's key (§2.2, two sessions through one
/// neighbour).
fn other_dest() -> Prefix {
    Prefix::host(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 10)))
}
fn next_hop_owner() -> Prefix {
    Prefix::host(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5)))
}
fn nb(i: u16) -> NeighbourId {
    NeighbourId {
        ifindex: 1,
        address: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, i)),
    }
}
fn cand(n: u16, metric: u16, selected: bool) -> VerifiableRoute {
    VerifiableRoute {
        prefix: dest(),
        neighbour: nb(n),
        metric,
        advertised: metric.saturating_sub(96),
        feasible: true,
        selected,
    }
}

/// Neighbour `n`'s route to [`dest`] retracted (unreachable, so not feasible nor selected).
fn unreachable(n: u16) -> VerifiableRoute {
    VerifiableRoute {
        metric: babel_wire::INFINITY,
        advertised: babel_wire::INFINITY,
        feasible: false,
        ..cand(n, 0, false)
    }
}

struct World {
    v: Verifier,
    r: Responder,
    now: Instant,
    /// Links the path through each neighbour crosses, and its delivery ratio (every k-th lost).
    hops: u8,
    lose_every: u16,
    /// Applied to every Remote IHU on its way back.
    tamper: fn(&mut Vec<u8>),
    delivered: Vec<Vec<u8>>,
    /// The next hop each neighbour's path takes (answers the hop-limited Remote Hello, §4.2.1).
    next_hops: Vec<(NeighbourId, NeighbourId)>,
    /// Neighbours whose path comes back through us (their hop-limited Remote Hello runs out of
    /// hop limit here, §4.2.1).
    returns: Vec<NeighbourId>,
    /// The routers on each neighbour's path past it, in order (`None`: not our neighbour); the
    /// trace with hop limit `2 + i` runs out at the `i`-th (§4.2.1, the deeper trace).
    paths: Vec<(NeighbourId, Vec<Option<NeighbourId>>)>,
    /// Checks that ended together with the one returned (one session per neighbour, §2.2).
    pending: std::collections::VecDeque<Check>,
    /// The routes the engine holds from the session's eleventh Remote Hello on (a route that
    /// changes during the session, §4.2.2); `None`: unchanged.
    midway: Option<Vec<VerifiableRoute>>,
    /// The interface the next hop's Time Exceeded arrives on (`None`: the link to it).
    te_arrives_on: Option<u32>,
    /// Check Failed TLVs the verifier asked to send (§2.5).
    check_failed: Vec<(NeighbourId, Prefix)>,
    /// Justify Requests the verifier asked to send (§4.2.5).
    justify: Vec<(NeighbourId, ClaimRequest)>,
    /// Changes of standing `run_check` saw (§4.3).
    standings: Vec<(NeighbourId, Option<Eviction>)>,
    /// The hop limits of the bounds sent (§1.4).
    bounds: Vec<u8>,
    /// The route loops: every Remote Hello comes back as a Time Exceeded (§3.4).
    loops: bool,
}

const ME: RouterId = RouterId([0, 0, 0, 0, 0, 0, 0, 1]);

fn world(cfg: VerifyConfig, dest_key: &SigningKey, bound_key: [u8; 32]) -> World {
    let mut ring = Keyring::new(16);
    ring.bind(dest(), bound_key);
    ring.bind(other_dest(), bound_key);
    // A router on the way, whose Signed Claims justify a relay (§4.2.5).
    ring.bind(next_hop_owner(), *key(5).verifying_key().as_bytes());
    let now = Instant::from_secs(1000);
    let mut v = Verifier::new(cfg, ME, ring, 7, now);
    v.mark_used(now, dest());
    World {
        v,
        r: Responder::new(dest_key.clone(), 1, 64),
        now,
        hops: 3,
        lose_every: 0,
        tamper: |_| {},
        delivered: Vec::new(),
        next_hops: Vec::new(),
        returns: Vec::new(),
        paths: Vec::new(),
        pending: std::collections::VecDeque::new(),
        check_failed: Vec::new(),
        justify: Vec::new(),
        standings: Vec::new(),
        bounds: Vec::new(),
        loops: false,
        midway: None,
        te_arrives_on: None,
    }
}

impl World {
    /// Runs until the next check ends; returns it.
    fn run_check(&mut self, cands: &[VerifiableRoute]) -> Check {
        if let Some(c) = self.pending.pop_front() {
            return c;
        }
        let mut sent = 0u16;
        for _ in 0..10_000 {
            self.now = self.v.poll_timeout().max(self.now);
            self.v.mark_used(self.now, dest());
            let now_cands = match &self.midway {
                Some(m) if sent >= 10 => m.clone(),
                _ => cands.to_vec(),
            };
            for a in self.v.handle_timeout(self.now, &now_cands) {
                match a {
                    ProbeAction::SendRemoteHello { hello, .. } => {
                        sent += 1;
                        if self.loops {
                            assert!(self.v.handle_time_exceeded(self.now, &hello));
                            continue;
                        }
                        if self.lose_every != 0 && sent.is_multiple_of(self.lose_every) {
                            continue;
                        }
                        self.r.handle_remote_hello(
                            self.now,
                            &hello,
                            HOP_LIMIT + 1 - self.hops,
                            true,
                        );
                        if let Some(mut t) =
                            self.r
                                .answer(self.now, hello.origin, hello.via, hello.prefix)
                        {
                            (self.tamper)(&mut t);
                            self.delivered.push(t.clone());
                            let _ = self.v.handle_remote_ihu(self.now, &t);
                        }
                    }
                    ProbeAction::SendTrace {
                        neighbour,
                        hello,
                        hop_limit,
                    } => {
                        let depth = usize::from(hop_limit - TRACE_HOP_LIMIT);
                        if let Some((_, path)) = self.paths.iter().find(|(n, _)| *n == neighbour) {
                            if let Some(&x) = path.get(depth) {
                                let r = self.v.handle_trace_answer(self.now, &hello, x);
                                assert_eq!(r, TraceAnswer::Accepted);
                            }
                        } else if depth > 0 {
                            // Only the next hop answers in the other tests.
                        } else if let Some(&(_, x)) =
                            self.next_hops.iter().find(|(n, _)| *n == neighbour)
                        {
                            let on = self.te_arrives_on.unwrap_or(x.ifindex);
                            let r = self.v.handle_trace_answer_on(self.now, &hello, Some(x), on);
                            assert_eq!(r, TraceAnswer::Accepted);
                        } else if self.returns.contains(&neighbour) {
                            let r = self.v.handle_trace_returned(self.now, &hello);
                            assert_eq!(r, TraceAnswer::Accepted);
                        }
                    }
                    // §1.4: the path (`hops` links) is longer than the bound's hop limit: the
                    // router where it runs out answers (any router: nobody is named).
                    ProbeAction::SendBound {
                        hello, hop_limit, ..
                    } => {
                        self.bounds.push(hop_limit);
                        if self.hops > hop_limit {
                            let r = self.v.handle_trace_answer(self.now, &hello, None);
                            assert_eq!(r, TraceAnswer::Accepted);
                            // Only the first Time Exceeded of a bound counts.
                            let again = self.v.handle_trace_answer(self.now, &hello, None);
                            assert_eq!(again, TraceAnswer::Repeated);
                        }
                    }
                    ProbeAction::Checked(c) => self.pending.push_back(c),
                    ProbeAction::SendCheckFailed { neighbour, prefix } => {
                        self.check_failed.push((neighbour, prefix));
                    }
                    ProbeAction::SendJustifyRequest { neighbour, request } => {
                        self.justify.push((neighbour, request));
                    }
                    ProbeAction::Standing {
                        neighbour,
                        eviction,
                    } => self.standings.push((neighbour, eviction)),
                    // The tests that look at it take it from `handle_timeout` themselves.
                    ProbeAction::AskedRise(_) => {}
                }
            }
            if let Some(c) = self.pending.pop_front() {
                return c;
            }
        }
        panic!("no check");
    }
}

/// The clauses of a run of failures (§4.2), without §4.2.5's deadline for failures blamed on
/// nobody or on neither (the next hop through us) or §4.2.6's audits of passing checks, and with a confirming check that evicts at
/// once (not awaiting its justification): the neighbours of the tests that use it
/// never answer a Justify Request, and with `unjustified_unknown_evicts` and
/// `unjustified_through_us_evicts` (on by default) such a failure evicts at its deadline,
/// before the run the test follows (those paths:
/// `an_unjustified_failure_blamed_on_nobody_is_evicted`,
/// `an_unjustified_failure_through_us_is_evicted_with_the_option`).
fn two_failures(mut cfg: VerifyConfig) -> VerifyConfig {
    cfg.score.audit_claims = false;
    cfg.score.unjustified_unknown_evicts = false;
    cfg.score.unjustified_through_us_evicts = false;
    cfg.score.confirmed_awaits_justification = false;
    cfg
}

fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

/// §1-§2: an honest route is measured at hops × nominal cost, and scores 1.
#[test]
fn honest_route_scores_one() {
    let k = key(1);
    let mut w = world(VerifyConfig::default(), &k, *k.verifying_key().as_bytes());
    let c = w.run_check(&[cand(1, 288, true)]);
    // A route first seen is the baseline: the paper's random choice picks it.
    assert_eq!(c.reason, Reason::Random);
    assert_eq!(c.cost, Some(288));
    assert_eq!(c.accuracy, Some(1.0));
    assert_eq!(c.correction, None);
    assert_eq!(c.verdict, CheckVerdict::Kept);
    let n = w.v.counters();
    // 20 Remote Hellos and, with attribution and the hop-limit bound (on by default), one
    // trace and two bounds; the bounds (hop limit 3, what 288 allows) reach the destination.
    assert_eq!(n.probes_sent, 20 + n.traces_sent + n.bounds_sent);
    assert_eq!((n.traces_sent, n.bounds_sent, n.bounds_exceeded), (1, 2, 0));
    assert_eq!(n.answers, 20);
    assert_eq!(n.checks, 1);
}

/// §2.2, `sessions_per_neighbour`: two sessions through one neighbour in one cycle, to two
/// destinations, are answered and scored apart: the route it lies about fails, the other
/// passes.
#[test]
fn two_sessions_through_one_neighbour_are_scored_apart() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.schedule.sessions_per_neighbour = 2;
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.v.mark_used(w.now, other_dest());
    let honest = cand(1, 288, true);
    let lie = VerifiableRoute {
        prefix: other_dest(),
        metric: 144,
        advertised: 48,
        ..honest
    };
    let mut checks = [w.run_check(&[honest, lie]), w.run_check(&[honest, lie])];
    checks.sort_by_key(|c| c.route.prefix);
    let [h, l] = checks;
    assert_eq!((h.route, l.route), (honest, lie));
    assert_eq!((h.cost, l.cost), (Some(288), Some(288)));
    assert_eq!((h.accuracy, l.accuracy), (Some(1.0), Some(0.5)));
    assert_eq!(h.correction, None);
    assert!(l.correction.is_some());
    let n = w.v.counters();
    assert_eq!((n.sessions, n.checks, n.answers), (2, 2, 40));
    assert_eq!(n.probes_sent, 40 + n.traces_sent + n.bounds_sent);
}

/// §4-§5: a liar (m = c/2) is corrected at the first check and evicted at the confirming one;
/// the engine accuracy falls under the threshold; it is readmitted after the hold.
#[test]
fn liar_corrected_then_evicted_then_readmitted() {
    let k = key(1);
    let mut w = world(
        two_failures(VerifyConfig::default()),
        &k,
        *k.verifying_key().as_bytes(),
    );
    let cands = [cand(1, 144, true)];
    let c1 = w.run_check(&cands);
    assert_eq!(c1.accuracy, Some(0.5));
    let (m, until) = c1.correction.expect("corrected");
    assert_eq!(m, 288);
    assert!(until > w.now);
    // §5.2: its other routes are taken as if it lied as much: by default its whole metric
    // scaled by c/m, 288 for 144.
    let nc = c1.neighbour_correction.expect("neighbour-wide correction");
    assert_eq!(nc.factor, 2.0);
    assert_eq!(nc.corrected(296, 200), 592);
    assert_eq!(nc.until, until);
    assert_eq!(c1.verdict, CheckVerdict::Kept);
    let mut evicted = None;
    for _ in 0..6 {
        let c = w.run_check(&cands);
        if let CheckVerdict::Evicted(t) = c.verdict {
            evicted = Some(t);
            break;
        }
    }
    let until = evicted.expect("evicted");
    assert!(w.v.engine_accuracy(w.now, &nb(1), 500) < 500);
    assert_eq!(w.v.counters().evictions, 1);
    let checks = Eviction {
        prefix: cands[0].prefix,
        cause: EvictionCause::Checks,
    };
    assert_eq!(w.standings, [(nb(1), Some(checks))]);
    let standing = w.v.neighbours().find(|(n, _)| **n == nb(1));
    assert_eq!(standing.and_then(|(_, s)| s.last_eviction()), Some(checks));
    // Readmission after the hold.
    let acts = w.v.handle_timeout(until, &cands);
    assert!(acts.contains(&ProbeAction::Standing {
        neighbour: nb(1),
        eviction: None
    }));
    assert!(w.v.engine_accuracy(until, &nb(1), 500) >= 500);
}

/// §2.5: with `check_requests` a failing check tells the neighbour (one Check Failed per
/// failing check), a passing one does not; without it, nothing is sent. A Check Failed taken
/// is counted, and one is refused when the option is off.
#[test]
fn a_failing_check_tells_the_neighbour_with_check_requests() {
    let k = key(1);
    for on in [false, true] {
        let mut cfg = VerifyConfig::default();
        cfg.schedule.check_requests = on;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        let honest = w.run_check(&[cand(1, 288, true)]);
        assert_eq!(honest.accuracy, Some(1.0));
        assert!(w.check_failed.is_empty());
        let lie = w.run_check(&[cand(1, 144, true)]);
        assert_eq!(lie.accuracy, Some(0.5));
        let want = if on {
            vec![(nb(1), dest())]
        } else {
            Vec::new()
        };
        assert_eq!(w.check_failed, want);
        assert_eq!(w.v.counters().check_failed_sent, u64::from(on));
        assert_eq!(w.v.handle_check_failed(w.now, nb(2), dest()), on);
        assert_eq!(w.v.counters().check_failed_received, u64::from(on));
    }
}

fn view(prefix: Prefix, n: NeighbourId, refmetric: u16, verified: Option<u16>) -> RouteView {
    RouteView {
        prefix,
        src_prefix: None,
        installed: true,
        feasible: true,
        router_id: RouterId([1; 8]),
        metric: Metric(refmetric.saturating_add(96)),
        smoothed_metric: Metric(refmetric.saturating_add(96)),
        refmetric: Metric(refmetric),
        verified_metric: verified.map(Metric),
        price: 0,
        received_price: 0,
        fee: 0,
        seqno: Seqno(0),
        age: Duration::ZERO,
        via: n.address,
        next_hop: n.address,
        ifindex: n.ifindex,
        full_path_rtt: 0,
    }
}

fn host(i: u16) -> Prefix {
    Prefix::host(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)))
}

/// §5.2 with `follow_claims` (and `scale_advertised`): after a failing check, every other
/// route through the neighbour gets the correction, once; afterwards only a route whose claim
/// moved (or a new one) gets it again, at the factor on what the neighbour claims now. The
/// route checked keeps its own correction, other neighbours' routes are untouched, and nothing
/// is left once the correction ends.
#[test]
fn neighbour_correction_follows_the_claims() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.correction.follow_claims = true;
    cfg.correction.scale_advertised = true;
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    let c1 = w.run_check(&[cand(1, 144, true)]);
    // Advertised 48 for the 192 measured past our link: factor 4.
    let nc = c1.neighbour_correction.expect("failing check");
    assert_eq!(nc.factor, 4.0);
    let now = w.now;
    let mut routes = vec![
        view(dest(), nb(1), 48, None),
        view(host(2), nb(1), 100, None),
        view(host(3), nb(1), 200, None),
        view(host(2), nb(2), 100, None),
        view(host(5), nb(1), babel_wire::INFINITY, None),
        RouteView {
            src_prefix: Some(host(6)),
            ..view(host(6), nb(1), 100, None)
        },
    ];
    let first = w.v.neighbour_corrections(now, &routes);
    assert_eq!(
        first,
        vec![
            (nb(1), host(2), 496, nc.until),
            (nb(1), host(3), 896, nc.until),
        ]
    );
    // Applied: nothing more to do.
    routes[1] = view(host(2), nb(1), 100, Some(496));
    routes[2] = view(host(3), nb(1), 200, Some(896));
    assert!(w.v.neighbour_corrections(now, &routes).is_empty());
    // The neighbour's claim for host 3 rises (its own route changed): the frozen 896 would
    // now be under the metric; the factor follows the claim. A new route is corrected too.
    routes[2] = view(host(3), nb(1), 300, Some(896));
    routes.push(view(host(4), nb(1), 10, None));
    let later = now + Duration::from_secs(1);
    assert_eq!(
        w.v.neighbour_corrections(later, &routes),
        vec![
            (nb(1), host(3), 1296, nc.until),
            (nb(1), host(4), 136, nc.until),
        ]
    );
    assert!(w.v.has_neighbour_corrections(later));
    // Past its end: forgotten.
    assert!(w.v.neighbour_corrections(nc.until, &routes).is_empty());
    assert!(!w.v.has_neighbour_corrections(nc.until));
}

/// §5.2 by default: the routes through the neighbour without a verified metric get the factor
/// on their claims at the check, once; a claim that moves later, or a new route, does not.
#[test]
fn neighbour_correction_once_by_default() {
    let k = key(1);
    let mut w = world(VerifyConfig::default(), &k, *k.verifying_key().as_bytes());
    let c1 = w.run_check(&[cand(1, 144, true)]);
    let nc = c1.neighbour_correction.expect("failing check");
    let now = w.now;
    let mut routes = vec![
        view(dest(), nb(1), 48, None),
        view(host(2), nb(1), 100, None),
        view(host(3), nb(1), 200, Some(250)),
    ];
    // The whole metric scaled by c/m = 2: 196 becomes 392.
    assert_eq!(nc.factor, 2.0);
    assert_eq!(
        w.v.neighbour_corrections(now, &routes),
        vec![(nb(1), host(2), 392, nc.until)]
    );
    routes[1] = view(host(2), nb(1), 300, Some(392));
    routes.push(view(host(4), nb(1), 10, None));
    assert!(w.v.neighbour_corrections(now, &routes).is_empty());
    // Nothing left to do: a driver need not build its route view again.
    assert!(!w.v.has_neighbour_corrections(now));
}

/// §1.2: an honest neighbour on a lossy path (wired 2-out-of-3 costs) keeps accuracy 1.
#[test]
fn lossy_honest_path_not_penalised() {
    let k = key(1);
    let mut w = world(VerifyConfig::default(), &k, *k.verifying_key().as_bytes());
    w.lose_every = 4;
    for _ in 0..5 {
        let c = w.run_check(&[cand(1, 288, true)]);
        assert_eq!(c.accuracy, Some(1.0));
    }
    // With ETX costs, the delivery ratio raises c, but stays under the honest ETX sum.
    let cfg = VerifyConfig {
        cost: CostModel {
            hop_cost: 256,
            loss_in_metric: true,
            ..CostModel::default()
        },
        ..VerifyConfig::default()
    };
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.lose_every = 4;
    // Per link delivery 0.75^(1/3) ≈ 0.909 one way; honest ETX ≥ 3 × 256 / 0.909 = 845.
    let c = w.run_check(&[cand(1, 845, true)]);
    assert!(c.cost.unwrap() <= 845, "{:?}", c.cost);
    assert_eq!(c.accuracy, Some(1.0));
}

/// §3: altered Remote IHUs are dropped (bad signature) and the session is unanswered.
#[test]
fn altered_ihu_dropped_and_counted() {
    let k = key(1);
    let mut w = world(VerifyConfig::default(), &k, *k.verifying_key().as_bytes());
    // An on-path node lowers the hop count in the report.
    w.tamper = |t| {
        let n = t.len();
        t[n - 64 - 32 - 8 - 2 - 1] = 1;
    };
    let c = w.run_check(&[cand(1, 100, true)]);
    // No answer scores the claim; the hop-limit bound does (§1.4, on by default): a claim of 100
    // passes over one link, and the path has two.
    assert_eq!((c.cost, c.bounded), (Some(192), true), "{c:?}");
    let n = w.v.counters();
    assert_eq!(n.bad_signature, 20);
    assert_eq!(n.unanswered, 1);
    assert_eq!(n.answers, 0);
}

/// §3.2: a report signed by a key not bound to the prefix (a forger) is dropped.
#[test]
fn unbound_key_dropped() {
    let k = key(1);
    let forger = key(2);
    let mut w = world(
        VerifyConfig::default(),
        &forger,
        *k.verifying_key().as_bytes(),
    );
    let c = w.run_check(&[cand(1, 100, true)]);
    assert_eq!(
        (c.cost, c.bounded),
        (Some(192), true),
        "scored by its bound alone: {c:?}"
    );
    assert_eq!(w.v.counters().unbound_key, 20);
    assert_eq!(w.v.counters().answers, 0);
}

/// §3.3: replayed and unexpected Remote IHUs are dropped and counted; junk never panics.
#[test]
fn replayed_unexpected_and_junk_dropped() {
    let k = key(1);
    let mut w = world(VerifyConfig::default(), &k, *k.verifying_key().as_bytes());
    let cands = [cand(1, 288, true)];
    w.run_check(&cands);
    let old = w.delivered.clone();
    // Outside a session: unexpected.
    assert_eq!(
        w.v.handle_remote_ihu(w.now, &old[5]),
        Err(ReportDropReason::Unexpected)
    );
    // During the next session: the old answers are replays (or out of the seqno range).
    w.tamper = |_| {};
    let mut replays = 0;
    // The next timer that starts a session (others may come first: the audit of the passing
    // claim, §4.2.6, looks at the routes while it awaits its justification).
    'session: for _ in 0..1000 {
        w.now = w.v.poll_timeout();
        for a in w.v.handle_timeout(w.now, &cands) {
            if let ProbeAction::SendRemoteHello { .. } = a {
                for t in &old {
                    if w.v.handle_remote_ihu(w.now, t).is_err() {
                        replays += 1;
                    }
                }
                break 'session;
            }
        }
    }
    assert_eq!(replays, old.len());
    let n = w.v.counters();
    assert!(n.replayed + n.unexpected >= old.len() as u64);
    for len in 0..300usize {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
        let _ = w.v.handle_remote_ihu(w.now, &junk);
    }
    assert!(w.v.counters().malformed > 0);
}

/// §6: the responder's state is bounded.
#[test]
fn responder_bounded() {
    let mut r = Responder::new(key(3), 0, 8);
    for i in 0..100u16 {
        let h = babel_wire::RemoteHello {
            seqno: i,
            interval: 25,
            origin: RouterId([1, 0, 0, 0, 0, 0, (i >> 8) as u8, i as u8]),
            via: RouterId([2; 8]),
            prefix: dest(),
            timestamp: None,
        };
        assert!(r.handle_remote_hello(Instant::from_secs(u64::from(i)), &h, 60, true));
    }
    assert_eq!(r.sessions(), 8);
    let h = babel_wire::RemoteHello {
        seqno: 1,
        interval: 0,
        origin: RouterId([1; 8]),
        via: RouterId([2; 8]),
        prefix: dest(),
        timestamp: None,
    };
    assert!(!r.handle_remote_hello(Instant::ZERO, &h, 60, true));
    assert_eq!(r.refused, 1);
    let _ = Duration::ZERO;
}

/// §2.4: the destination answers a session at most once per Remote IHU interval, and once more
/// when the Remote Hellos stop; the last answer covers the whole session.
#[test]
fn responder_answer_pacing() {
    let mut r = Responder::new(key(3), 0, 8);
    let mut answers = Vec::new();
    let start = Instant::from_secs(10);
    for i in 0..20u16 {
        let now = start + Duration::from_millis(250 * u64::from(i));
        let h = babel_wire::RemoteHello {
            seqno: 100 + i,
            interval: 25,
            origin: ME,
            via: RouterId([2; 8]),
            prefix: dest(),
            timestamp: Some(1),
        };
        r.handle_remote_hello(now, &h, HOP_LIMIT - 2, true);
        answers.extend(r.poll_answers(now));
    }
    assert_eq!(answers.len(), 5, "one per second over 5 s");
    let t = r.poll_timeout().expect("an answer is pending");
    assert!(t <= start + Duration::from_millis(250 * 19 + 375));
    let last = r.poll_answers(t);
    assert_eq!(last.len(), 1);
    assert_eq!(r.poll_timeout(), None);
    let s = verify::decode_signed_ihu(&last[0].3).unwrap();
    assert_eq!(s.report.hops, 3);
    assert_eq!(s.report.received_in(100, 20), 20);
    assert_eq!(last[0].3.len(), 2 + 22 + 16 + 10 + 2 + verify::REPORT_LEN);
}

/// §1.1: the destination reports the fewest hops of a session (an honest route that flaps to a
/// longer detour for part of the session is measured by its short path: `c` stays a lower bound),
/// and a new session, after the Remote Hellos paused, starts afresh.
#[test]
fn responder_reports_fewest_hops_of_the_session() {
    let mut r = Responder::new(key(3), 0, 8);
    let start = Instant::from_secs(10);
    let hello = |i: u16| babel_wire::RemoteHello {
        seqno: 100 + i,
        interval: 25,
        origin: ME,
        via: RouterId([2; 8]),
        prefix: dest(),
        timestamp: None,
    };
    let hops_of = |r: &mut Responder, now| {
        let t = r.answer(now, ME, RouterId([2; 8]), dest()).unwrap();
        verify::decode_signed_ihu(&t).unwrap().report.hops
    };
    // Session 1: two hops, a detour of four for the middle Remote Hellos.
    for i in 0..20u16 {
        let now = start + Duration::from_millis(250 * u64::from(i));
        let hops = if (5..15).contains(&i) { 4 } else { 2 };
        r.handle_remote_hello(now, &hello(i), HOP_LIMIT + 1 - hops, true);
    }
    assert_eq!(hops_of(&mut r, start + Duration::from_secs(5)), 2);
    // Session 2, 10 s later: the route is now three hops long throughout.
    let start2 = start + Duration::from_secs(10);
    for i in 20..40u16 {
        let now = start2 + Duration::from_millis(250 * u64::from(i - 20));
        r.handle_remote_hello(now, &hello(i), HOP_LIMIT - 2, true);
    }
    assert_eq!(hops_of(&mut r, start2 + Duration::from_secs(5)), 3);
}

/// §4.2.1: a neighbour that repeats its next hop's lie (its metric is the next hop's plus a
/// link) is not evicted for it, while the next hop, the origin of the lie, is; without
/// attribution both are.
#[test]
fn relay_of_a_lie_is_not_evicted_with_attribution() {
    let k = key(1);
    let mut cfg = two_failures(VerifyConfig::default());
    cfg.score.attribution = true;
    // Three links, measured 288. Neighbour 2 claims 20 (m = 116); neighbour 1 routes through
    // it and claims 20 + 96 (m = 212, a = 0.74: it fails too).
    let cands = [cand(1, 212, true), cand(2, 116, false)];
    for attribution in [true, false] {
        cfg.score.attribution = attribution;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.next_hops.push((nb(1), nb(2)));
        let (mut relay_evicted, mut liar_evicted, mut relay_blamed) = (false, false, Vec::new());
        for _ in 0..16 {
            let c = w.run_check(&cands);
            let evicted = matches!(c.verdict, CheckVerdict::Evicted(_));
            if c.route.neighbour == nb(1) {
                relay_evicted |= evicted;
                relay_blamed.push(c.blame);
                // The relayed lie is still corrected.
                assert!(c.correction.is_some());
            } else {
                liar_evicted |= evicted;
            }
        }
        assert!(liar_evicted);
        assert_eq!(relay_evicted, !attribution);
        let expected = if attribution {
            Blame::Relay
        } else {
            Blame::Unknown
        };
        assert!(!relay_blamed.is_empty());
        assert!(
            relay_blamed.iter().all(|b| *b == expected),
            "{relay_blamed:?}"
        );
    }
}

/// §4.2.1: a neighbour that advertises less than its own next hop offers plus one link is the
/// origin of the lie.
#[test]
fn origin_of_a_lie_is_blamed() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.score.attribution = true;
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    // Neighbour 1 claims 48 while its next hop, neighbour 2, claims 96.
    w.next_hops.push((nb(1), nb(2)));
    let cands = [cand(1, 144, true), cand(2, 192, false)];
    let mut blamed = Vec::new();
    for _ in 0..4 {
        let c = w.run_check(&cands);
        if c.route.neighbour == nb(1) {
            blamed.push(c.blame);
        }
    }
    assert!(!blamed.is_empty());
    assert!(blamed.iter().all(|b| *b == Blame::Origin), "{blamed:?}");
    // A trace from the neighbour itself, or no trace, blames nobody in particular.
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.next_hops.push((nb(1), nb(1)));
    let c = w.run_check(&[cand(1, 144, true)]);
    assert_eq!(c.blame, Blame::Unknown);
}

/// §4.2.1 with `verified_next_hop`: the next hop's claim convicts the neighbour as the origin
/// only while the next hop's own last session passed. A next hop that fails our checks may be
/// telling us more than it tells the neighbour (framing it), and then the neighbour's failing
/// checks blame nobody; without the option they blame the origin all the same.
#[test]
fn the_origin_test_trusts_only_a_next_hop_that_passes() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.score.attribution = true;
    // Neighbour 1 claims 48, its next hop 2 claims 96: 1 claims under 2's offer plus a link.
    let cands = [cand(1, 144, true), cand(2, 192, false)];
    let blames = |cfg: VerifyConfig, hops: u8| {
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = hops;
        w.next_hops.push((nb(1), nb(2)));
        let mut out = Vec::new();
        for _ in 0..8 {
            let c = w.run_check(&cands);
            if c.route.neighbour == nb(1) {
                out.push(c.blame);
            }
        }
        assert!(out.len() >= 3, "{out:?}");
        out
    };
    cfg.score.verified_next_hop = true;
    // Two links: 2's route passes (192 against 192), and after its first session 1 is the origin.
    let b = blames(cfg, 2);
    assert!(b[1..].iter().all(|b| *b == Blame::Origin), "{b:?}");
    // Three links: 2's own route fails (192 against 288); 1 is never blamed on its word.
    let b = blames(cfg, 3);
    assert!(b.iter().all(|b| *b == Blame::Unknown), "{b:?}");
    // Without the option, 2's word is taken whatever its own checks say.
    cfg.score.verified_next_hop = false;
    let b = blames(cfg, 3);
    assert!(b.iter().all(|b| *b == Blame::Origin), "{b:?}");
}

/// §4.2.1, a loop through the verifier: a neighbour that forwards the route back to us is
/// compared with what we advertise (our selected route's metric). One that claims less than
/// that plus a link is the origin; an honest one behind us is not, and without
/// `returned_blame` nobody is blamed.
#[test]
fn a_loop_through_us_blames_the_neighbour() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.score.attribution = true;
    cfg.score.returned_blame = true;
    let blames = |cfg: VerifyConfig, hops: u8, cands: &[VerifiableRoute]| {
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = hops;
        w.returns.push(nb(1));
        let mut out = Vec::new();
        for _ in 0..6 {
            let c = w.run_check(cands);
            if c.route.neighbour == nb(1) {
                assert!(c.returned);
                assert_eq!(c.next_hop, None);
                out.push(c.blame);
            }
        }
        assert!(!out.is_empty());
        out
    };
    // We route through neighbour 2 at 240 (we advertise 240); neighbour 1 forwards to us and
    // claims 48: its own path costs at least 240 + a link.
    let liar = [cand(1, 144, false), cand(2, 240, true)];
    let b = blames(cfg, 3, &liar);
    assert!(b.iter().all(|b| *b == Blame::Origin), "{b:?}");
    // Without `returned_blame`, a trace back to us names nobody.
    let mut off = cfg;
    off.score.returned_blame = false;
    let b = blames(off, 3, &liar);
    assert!(b.iter().all(|b| *b == Blame::Unknown), "{b:?}");
    // An honest neighbour behind us claims 340 (our 240 plus a link of 100); a path of 6 hops
    // fails the check, but not at the neighbour.
    let honest = [cand(1, 436, false), cand(2, 240, true)];
    let b = blames(cfg, 6, &honest);
    assert!(b.iter().all(|b| *b != Blame::Origin), "{b:?}");
}

/// §4.2.1 with `origin_at_both_ends`: a neighbour is the origin only if its claim is under its
/// next hop's plus a link both when the session starts and when it ends; a next hop whose
/// metric rose during the session (a loop counting up) is ahead of the neighbour's update.
#[test]
fn origin_at_both_ends_of_the_session() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.score.attribution = true;
    cfg.score.origin_at_both_ends = false;
    let blames = |cfg: VerifyConfig, start: &[VerifiableRoute], end: Vec<VerifiableRoute>| {
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 4;
        w.next_hops.push((nb(1), nb(2)));
        w.midway = Some(end);
        let mut out = Vec::new();
        for _ in 0..6 {
            let c = w.run_check(start);
            if c.route.neighbour == nb(1) && c.accuracy.is_some_and(|a| a < 0.8) {
                out.push(c.blame);
            }
        }
        assert!(!out.is_empty());
        out
    };
    // Neighbour 1 claims 144 throughout; its next hop, neighbour 2, claims 48 at the start
    // (144 = 48 + a link) and 96 from the middle of the session on.
    let start = [cand(1, 240, true), cand(2, 144, false)];
    let end = vec![cand(1, 240, true), cand(2, 192, false)];
    let b = blames(cfg, &start, end.clone());
    assert!(b.iter().all(|b| *b == Blame::Origin), "{b:?}");
    let mut both = cfg;
    both.score.origin_at_both_ends = true;
    let b = blames(both, &start, end.clone());
    assert!(b.iter().all(|b| *b == Blame::Unknown), "{b:?}");
    // Under its next hop's claim plus a link at both ends: the origin.
    let b = blames(both, &end, end.clone());
    assert!(b.iter().all(|b| *b == Blame::Origin), "{b:?}");
}

/// §4.2.1: a trace's answer must quote the session's own hop-limited Remote Hello exactly,
/// while the session is under way; the first answer counts, a second one naming another
/// router makes the next hop unknown, and everything else is dropped and counted.
#[test]
fn forged_stale_and_conflicting_trace_answers_are_dropped() {
    let mut cfg = VerifyConfig::default();
    cfg.score.attribution = true;
    let run = |answers: &[(bool, Option<NeighbourId>)]| {
        let mut ring = Keyring::new(4);
        ring.bind(dest(), *key(1).verifying_key().as_bytes());
        let mut now = Instant::from_secs(1000);
        let mut v = Verifier::new(cfg, ME, ring, 7, now);
        let cands = [cand(1, 192, true)];
        let (mut trace, mut check, mut outcomes) = (None, None, Vec::new());
        for _ in 0..1000 {
            now = v.poll_timeout().max(now);
            v.mark_used(now, dest());
            for a in v.handle_timeout(now, &cands) {
                match a {
                    ProbeAction::SendTrace { hello, .. } => {
                        trace = Some(hello.clone());
                        for (forged, from) in answers {
                            let mut q = hello.clone();
                            if *forged {
                                // An off-path guess: right seqno, via and prefix, wrong time.
                                q.timestamp = q.timestamp.map(|t| t ^ 1);
                            }
                            outcomes.push(v.handle_trace_answer(now, &q, *from));
                        }
                    }
                    ProbeAction::Checked(c) => check = Some(c),
                    _ => {}
                }
            }
            if check.is_some() {
                break;
            }
        }
        // The same answer after the session: stale.
        let stale = v.handle_trace_answer(now, &trace.unwrap(), Some(nb(2)));
        assert_eq!(stale, TraceAnswer::Unmatched);
        (check.unwrap(), outcomes, v.counters())
    };
    // The real answer from neighbour 2: its next hop.
    let (c, o, n) = run(&[(false, Some(nb(2)))]);
    assert_eq!(o, [TraceAnswer::Accepted]);
    assert_eq!(c.next_hop, Some(nb(2)));
    assert_eq!(
        (n.traces_sent, n.traces_answered, n.traces_dropped),
        (1, 1, 1)
    );
    // A forged one first (wrong timestamp) is dropped; the real one still counts.
    let (c, o, n) = run(&[(true, Some(nb(3))), (false, Some(nb(2)))]);
    assert_eq!(o, [TraceAnswer::Unmatched, TraceAnswer::Accepted]);
    assert_eq!(c.next_hop, Some(nb(2)));
    assert_eq!((n.traces_answered, n.traces_dropped), (1, 2));
    // The same answer twice: the second is dropped, the next hop stays.
    let (c, o, _) = run(&[(false, Some(nb(2))), (false, Some(nb(2)))]);
    assert_eq!(o, [TraceAnswer::Accepted, TraceAnswer::Repeated]);
    assert_eq!(c.next_hop, Some(nb(2)));
    // Two answers naming different routers: one is forged, nothing is known.
    let (c, o, n) = run(&[(false, Some(nb(3))), (false, Some(nb(2)))]);
    assert_eq!(o, [TraceAnswer::Accepted, TraceAnswer::Repeated]);
    assert_eq!(c.next_hop, None);
    assert_eq!((n.traces_answered, n.traces_dropped), (1, 2));
    // The neighbour under test answering for itself, or a router that is not our neighbour,
    // names nobody.
    let (c, _, _) = run(&[(false, Some(nb(1)))]);
    assert_eq!(c.next_hop, None);
    let (c, o, _) = run(&[(false, None)]);
    assert_eq!(o, [TraceAnswer::Accepted]);
    assert_eq!(c.next_hop, None);
}

/// §4.2.2: with `stable_evidence`, a lie measured while the neighbour's route changed during the
/// session (its advertised metric moved) corrects the route but never evicts; the same lie on a
/// settled route is evicted as before.
#[test]
fn lie_measured_during_reconvergence_is_no_evidence() {
    let k = key(1);
    let mut cfg = two_failures(VerifyConfig::default());
    cfg.score.stable_evidence = verify::StableEvidence::Both;
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    let cands = [cand(1, 144, true)];
    w.midway = Some(vec![VerifiableRoute {
        advertised: 60,
        ..cand(1, 156, true)
    }]);
    for _ in 0..6 {
        let c = w.run_check(&cands);
        assert!(!c.stable);
        assert!(c.accuracy.is_some_and(|a| a < 0.8), "{c:?}");
        assert!(c.correction.is_some());
        assert_eq!(c.verdict, CheckVerdict::Kept);
    }
    assert_eq!(w.v.counters().evictions, 0);
    // Settled: the same lie is evicted.
    w.midway = None;
    let mut evicted = false;
    for _ in 0..4 {
        let c = w.run_check(&cands);
        assert!(c.stable);
        evicted |= matches!(c.verdict, CheckVerdict::Evicted(_));
    }
    assert!(evicted);
}

/// §1.3: `m` is the neighbour's claim priced with our link. Neighbour 1 claims 144 over a link
/// of 96 and four links measure 384 (a = 0.625). When our link to it fails before the session
/// ends (our metric infinite, its claim unchanged), the check is still that lie, priced with
/// the link of the session's start (m = 240), not a pass at an infinite metric: a pass would
/// end the destination's run of failures, and a neighbour can fail our link by going quiet.
/// The session is not stable (our metric rose), so it corrects but does not evict.
#[test]
fn our_link_failing_is_no_claim_of_the_neighbour() {
    let k = key(1);
    let mut w = world(
        two_failures(VerifyConfig::default()),
        &k,
        *k.verifying_key().as_bytes(),
    );
    w.hops = 4;
    let cands = [cand(1, 240, true)];
    w.midway = Some(vec![VerifiableRoute {
        metric: babel_wire::INFINITY,
        feasible: false,
        ..cand(1, 240, true)
    }]);
    let c = w.run_check(&cands);
    assert_eq!((c.metric, c.cost), (240, Some(384)), "{c:?}");
    assert_eq!(c.accuracy, Some(0.625));
    assert!(!c.stable);
    assert!(c.correction.is_some());
    assert_eq!(c.verdict, CheckVerdict::Kept);
}

/// §1.3, a claim that fell during the session (`fallen_claim`): four links, measured 384. A
/// claim that falls during the session (a lie reaching an honest relay: 288 at the start, 54 at
/// the end, m = 150) is scored at its start with `start`, the path the probes measured, and
/// passes; with `no-evidence` it is scored at the end but is no evidence (the neighbour gets no
/// record). A claim that already lied at the start (m = 200) fails either way, at the start's
/// metric with `start`; a claim that rose is scored at the end, and so is one that fell but
/// still passes at the end (m = 360: evidence in every mode). With `end` (the default) every
/// check is scored at the end. The end's claim is corrected in every mode.
#[test]
fn a_claim_that_fell_during_the_session() {
    let k = key(1);
    for mode in [
        FallenClaim::Start,
        FallenClaim::NoEvidence,
        FallenClaim::End,
    ] {
        for (start, end, at_start) in [
            (384, 150, 384),
            (200, 150, 200),
            (150, 384, 384),
            (384, 360, 384),
        ] {
            let mut cfg = VerifyConfig::default();
            cfg.score.fallen_claim = mode;
            let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
            w.hops = 4;
            w.midway = Some(vec![cand(1, end, true)]);
            let c = w.run_check(&[cand(1, start, true)]);
            let m = if mode == FallenClaim::Start {
                at_start
            } else {
                end
            };
            let case = format!("{mode}, claim {start} -> {end}: {c:?}");
            assert_eq!((c.metric, c.cost), (end, Some(384)), "{case}");
            assert_eq!(c.accuracy, Some((f64::from(m) / 384.0).min(1.0)), "{case}");
            assert_eq!(c.correction.is_some(), end < 307, "{case}");
            let fall_only = mode == FallenClaim::NoEvidence && start == 384 && end == 150;
            assert_eq!(w.v.neighbour(&nb(1)).is_none(), fall_only, "{case}");
        }
    }
}

/// §4.2.1, the deeper trace: an honest neighbour whose next hop is not our neighbour repeats a
/// lie told two links past it, by one of our neighbours. One trace (hop limit 2) names nobody,
/// and the relay is evicted with the liar; with `trace_depth` 2 the trace with hop limit 3 finds
/// the liar, the neighbour is classed as a relay and kept.
#[test]
fn a_relay_behind_a_stranger_is_found_by_a_deeper_trace() {
    let k = key(1);
    // Five links, measured 480. Neighbour 2 claims 20 (m = 116); neighbour 1 routes through a
    // router we do not hear, which routes through neighbour 2: 20 + 96 + 96 (m = 308, a = 0.64).
    let cands = [cand(1, 308, true), cand(2, 116, false)];
    for depth in [2, 1] {
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.attribution = true;
        cfg.score.trace_depth = depth;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 5;
        w.paths.push((nb(1), vec![None, Some(nb(2))]));
        let (mut relay_evicted, mut liar_evicted, mut relay_blamed) = (false, false, Vec::new());
        for _ in 0..16 {
            let c = w.run_check(&cands);
            let evicted = matches!(c.verdict, CheckVerdict::Evicted(_));
            if c.route.neighbour == nb(1) {
                relay_evicted |= evicted;
                relay_blamed.push((c.blame, c.next_hop, c.trace_links));
            } else {
                liar_evicted |= evicted;
            }
        }
        assert!(liar_evicted, "depth {depth}");
        assert_eq!(relay_evicted, depth == 1, "depth {depth}: {relay_blamed:?}");
        let expected = if depth == 2 {
            (Blame::Relay, Some(nb(2)), 2)
        } else {
            (Blame::Unknown, None, 0)
        };
        assert!(!relay_blamed.is_empty());
        assert!(
            relay_blamed.iter().all(|b| *b == expected),
            "depth {depth}: {relay_blamed:?}"
        );
    }
}

/// §4.2.1, the deeper trace: only the neighbour's own next hop can make it the origin. A claim
/// under that of a neighbour of ours two links further on plus two links may be a lie of the
/// router between them, which we cannot ask: nothing is known. The same claims with our
/// neighbour as the next hop blame the origin.
#[test]
fn only_the_next_hop_makes_the_origin() {
    let k = key(1);
    // Neighbour 1 claims 100, neighbour 2 claims 20; five links, measured 480.
    let cands = [cand(1, 196, true), cand(2, 116, false)];
    for (path, expected) in [
        (vec![None, Some(nb(2))], (Blame::Unknown, 2)),
        (vec![Some(nb(2))], (Blame::Origin, 1)),
    ] {
        let mut cfg = VerifyConfig::default();
        cfg.score.attribution = true;
        cfg.score.trace_depth = 3;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 5;
        w.paths.push((nb(1), path));
        let mut blamed = Vec::new();
        for _ in 0..4 {
            let c = w.run_check(&cands);
            if c.route.neighbour == nb(1) {
                blamed.push((c.blame, c.trace_links));
            }
        }
        assert!(!blamed.is_empty());
        assert!(blamed.iter().all(|b| *b == expected), "{blamed:?}");
    }
}

/// §4.2.1, the deeper trace: a session sends one trace per hop limit, each quoting its own
/// Remote Hello (the timestamp plus its depth in microseconds), and each Time Exceeded answers
/// the trace it quotes, once; the depth is bounded by `MAX_TRACE_DEPTH`.
#[test]
fn each_trace_answers_for_its_own_hop_limit() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.score.attribution = true;
    for (depth, sent) in [(3u8, 3usize), (200, usize::from(verify::MAX_TRACE_DEPTH))] {
        cfg.score.trace_depth = depth;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        let cands = [cand(1, 288, true)];
        let mut traces = Vec::new();
        let mut first = None;
        for _ in 0..4 {
            w.now = w.v.poll_timeout().max(w.now);
            for a in w.v.handle_timeout(w.now, &cands) {
                match a {
                    ProbeAction::SendTrace {
                        hello, hop_limit, ..
                    } => traces.push((hello, hop_limit)),
                    ProbeAction::SendRemoteHello { hello, .. } if first.is_none() => {
                        first = Some(hello);
                    }
                    _ => {}
                }
            }
            if first.is_some() {
                break;
            }
        }
        let first = first.expect("a Remote Hello");
        assert_eq!(traces.len(), sent);
        assert_eq!(w.v.counters().traces_sent, sent as u64);
        for (i, (h, l)) in traces.iter().enumerate() {
            assert_eq!(*l, TRACE_HOP_LIMIT + i as u8);
            assert_eq!(h.seqno, first.seqno);
            assert_eq!(
                h.timestamp,
                first.timestamp.map(|t| t.wrapping_add(i as u32))
            );
        }
        let (third, _) = traces[2].clone();
        assert_eq!(
            w.v.handle_trace_answer(w.now, &third, Some(nb(2))),
            TraceAnswer::Accepted
        );
        assert_eq!(
            w.v.handle_trace_answer(w.now, &third, Some(nb(2))),
            TraceAnswer::Repeated
        );
        let mut stray = third.clone();
        stray.timestamp = third.timestamp.map(|t| t.wrapping_add(100));
        assert_eq!(
            w.v.handle_trace_answer(w.now, &stray, Some(nb(2))),
            TraceAnswer::Unmatched
        );
        // Without the deeper ones answered first, the found router is three links on.
        let (second, _) = traces[1].clone();
        assert_eq!(
            w.v.handle_trace_answer(w.now, &second, None),
            TraceAnswer::Accepted
        );
        let c = w.run_check(&cands);
        assert_eq!((c.next_hop, c.trace_links), (Some(nb(2)), 3));
    }
}

/// §4.2.1, the origin test on passing checks (`passing_origin`): a neighbour whose checks
/// pass (its claim is above what we measure) but which claims under `S` times its next hop's
/// claim plus a link at both ends of the session is blamed as the origin and evicted after two
/// such checks `window` apart; one whose claim is its next hop's plus a link is not, nor is one
/// under it only at the session's end, and without the option nobody is.
#[test]
fn passing_check_under_the_next_hop_is_the_origin() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.score.passing_origin = true;
    let run = |cfg: VerifyConfig, start: &[VerifiableRoute], end: Option<Vec<VerifiableRoute>>| {
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        // Three links, measured 288.
        w.next_hops.push((nb(1), nb(2)));
        w.midway = end;
        let (mut blames, mut evicted) = (Vec::new(), false);
        for _ in 0..12 {
            let c = w.run_check(start);
            if c.route.neighbour == nb(1) {
                assert!(c.accuracy.is_some_and(|a| a >= 0.8), "{c:?}");
                blames.push(c.blame);
                evicted |= matches!(c.verdict, CheckVerdict::Evicted(_));
            }
        }
        assert!(blames.len() >= 3);
        (blames, evicted)
    };
    // Neighbour 1 claims 240 (m = 336, it passes), its next hop neighbour 2 claims 960:
    // 240 < 0.8 · (960 + 96).
    let liar = [cand(1, 336, true), cand(2, 1056, false)];
    let (b, evicted) = run(cfg, &liar, None);
    assert!(b.iter().all(|b| *b == Blame::Origin), "{b:?}");
    assert!(evicted);
    let mut off = cfg;
    off.score.passing_origin = false;
    let (b, evicted) = run(off, &liar, None);
    assert!(b.iter().all(|b| *b == Blame::Unknown), "{b:?}");
    assert!(!evicted);
    // An honest neighbour: 240 is its next hop's 144 plus a link.
    let honest = [cand(1, 336, true), cand(2, 240, false)];
    let (b, evicted) = run(cfg, &honest, None);
    assert!(b.iter().all(|b| *b == Blame::Unknown), "{b:?}");
    assert!(!evicted);
    // Under its next hop's claim at the session's end only (the next hop's metric rose during
    // the session): not at both ends, nothing is known.
    let (b, evicted) = run(cfg, &honest, Some(liar.to_vec()));
    assert!(b.iter().all(|b| *b == Blame::Unknown), "{b:?}");
    assert!(!evicted);
}

/// §4.2.1, the next hop through us (`through_us`): the neighbour's next hop, one of our
/// neighbours, forwards our probes but tells us nothing for the destination (split horizon:
/// its route runs through us). A failing neighbour that claims less than our own metric plus
/// the two links is blamed on neither (the next hop lied to it, or it lies) and not evicted;
/// one that claims at least that repeats a lie told at or past us (a relay); without the
/// option both are unknown and evicted. Only while the route through the neighbour is not our
/// selected route, and from a Time Exceeded that arrived on the next hop's own link.
#[test]
fn a_next_hop_through_us_blames_neither() {
    let k = key(1);
    let mut cfg = two_failures(VerifyConfig::default());
    cfg.score.through_us = true;
    let unreachable = unreachable(2);
    let run_on = |cfg: VerifyConfig, hops: u8, cands: &[VerifiableRoute], on: Option<u32>| {
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = hops;
        w.te_arrives_on = on;
        w.next_hops.push((nb(1), nb(2)));
        let (mut blames, mut evicted) = (Vec::new(), false);
        for _ in 0..12 {
            let c = w.run_check(cands);
            if c.route.neighbour == nb(1) {
                assert!(c.accuracy.is_some_and(|a| a < 0.8), "{c:?}");
                assert_eq!(c.next_hop, Some(nb(2)));
                blames.push(c.blame);
                evicted |= matches!(c.verdict, CheckVerdict::Evicted(_));
            }
        }
        assert!(blames.len() >= 3);
        (blames, evicted)
    };
    let run = |cfg, hops, cands: &[VerifiableRoute]| run_on(cfg, hops, cands, None);
    // We route through neighbour 3 at 240. Neighbour 1 claims 100 over six links (576):
    // under 240 + 2 · 96, whether neighbour 2's route is retracted here or gone.
    let lied_to = [cand(1, 196, false), unreachable, cand(3, 240, true)];
    let gone = [cand(1, 196, false), cand(3, 240, true)];
    for cands in [&lied_to[..], &gone[..]] {
        let (b, evicted) = run(cfg, 6, cands);
        assert!(b.iter().all(|b| *b == Blame::ThroughUs), "{b:?}");
        assert!(!evicted);
        let mut off = cfg;
        off.score.through_us = false;
        let (b, evicted) = run(off, 6, cands);
        assert!(b.iter().all(|b| *b == Blame::Unknown), "{b:?}");
        assert!(evicted);
    }
    // Neighbour 1 claims 432 = 240 + 2 · 96 over seven links (672, a = 0.79): our own route
    // plus the three links (528) fails too, so the lie is told at or past us.
    let relay = [cand(1, 528, false), unreachable, cand(3, 240, true)];
    let (b, evicted) = run(cfg, 7, &relay);
    assert!(b.iter().all(|b| *b == Blame::Relay), "{b:?}");
    assert!(!evicted);
    // Without a route of our own nothing can be said.
    let (b, evicted) = run(cfg, 6, &[cand(1, 196, false), unreachable]);
    assert!(b.iter().all(|b| *b == Blame::Unknown), "{b:?}");
    assert!(evicted);
    // Nor when the Time Exceeded naming neighbour 2 arrived on another link than neighbour
    // 2's (neighbour 1 forged it): unknown, and evicted.
    let (b, evicted) = run_on(cfg, 6, &lied_to, Some(9));
    assert!(b.iter().all(|b| *b == Blame::Unknown), "{b:?}");
    assert!(evicted);
    // Nor while we route through the neighbour: its claim wins our traffic, and a liar could
    // name such a next hop in a forged Time Exceeded.
    let (b, evicted) = run(
        cfg,
        6,
        &[cand(1, 196, true), unreachable, cand(3, 240, false)],
    );
    assert!(b.iter().all(|b| *b == Blame::Unknown), "{b:?}");
    assert!(evicted);
}

/// §4.2.3, a claim that converges (`progress`): an honest relay of a lie told by a router we
/// do not hear (no trace names anybody) claims 552 (648 with our link) against 1,248
/// measured, twice, then corrects its next hop and claims 861 (957) against 1,440, then 1,242
/// (1,338): seed 9's relay. With the rule the third check restarts the run and the relay is
/// never evicted; without it the third check confirms the first and evicts it.
#[test]
fn a_relay_whose_claim_converges_is_kept() {
    let k = key(1);
    for progress in [true, false] {
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.progress = progress;
        // A relay that does not justify its claim (§4.2.5), with the window this case was
        // traced with (15 s; the second check would confirm the first under 5 s).
        cfg.score.window = Duration::from_secs(15);
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        let mut verdicts = Vec::new();
        for (hops, metric) in [(13, 648), (13, 648), (15, 957), (15, 1338), (15, 1338)] {
            w.hops = hops;
            let c = w.run_check(&[cand(1, metric, true)]);
            assert_eq!(c.cost, Some(u16::from(hops) * 96), "{c:?}");
            assert_eq!(c.blame, Blame::Unknown);
            verdicts.push(matches!(c.verdict, CheckVerdict::Evicted(_)));
        }
        assert_eq!(
            verdicts,
            [false, false, !progress, false, false],
            "progress {progress}"
        );
    }
}

/// §4.2.5 step 3: a neighbour whose route runs through us, and that advertises it back to us
/// (no split horizon), asks us for the Signed Claim that justifies its claim. Ours is signed
/// with our own key, which our keyring binds to nothing: taken as ours once the verifier knows
/// its key (`Verifier::set_own_key`), refused as unbound otherwise; and it justifies only a
/// claim at least what we signed plus a link, not a claim withdrawn.
#[test]
fn our_own_signed_claim_justifies_a_claim_through_us() {
    let k = key(1);
    let ours = key(9);
    let me = Prefix::host(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)));
    // What we sign, and the claim we hold from the neighbour when it comes back.
    for (own, signed, held, want) in [
        (true, 96, 192, Ok(())),
        (true, 144, 192, Err(JustifyError::UnderFloor)),
        // Withdrawn (its route through us under split horizon): nothing to justify.
        (
            true,
            96,
            babel_wire::INFINITY,
            Err(JustifyError::UnderFloor),
        ),
        (false, 96, 192, Err(JustifyError::Unbound)),
    ] {
        let mut w = world(
            two_failures(VerifyConfig::default()),
            &k,
            *k.verifying_key().as_bytes(),
        );
        w.hops = 5;
        if own {
            w.v.set_own_key(*ours.verifying_key().as_bytes());
        }
        let c = w.run_check(&[cand(1, 288, true)]);
        assert_eq!(c.accuracy, Some(0.6));
        let (n, r) = *w
            .justify
            .first()
            .expect("a failure asks for a justification");
        let tlv = encode_signed_claim(&r, signed, &me, &ours);
        assert_eq!(
            w.v.handle_signed_claim(w.now, n, &tlv, Some(held)),
            want,
            "own key {own}, signed {signed}, held {held}"
        );
    }
}

/// §4.2.5: neighbour 1 relays a lie told past it: it claims 192 (its next hop offers it 96,
/// plus a link), and the path measures 480. Each failing check asks it to justify its claim;
/// the next hop's Signed Claim, relayed, justifies it: its later failures blame the next hop,
/// and it is never evicted. A claim the signed offer does not cover, a key not bound to its
/// owner prefix, a nonce not ours, or a claim without the option, justify nothing, and the
/// relay is evicted as a liar is.
#[test]
fn a_justified_relay_is_not_evicted() {
    let k = key(1);
    let cands = [cand(1, 288, true)];
    // What the next hop signs, and with which key; `None`: no answer.
    type Answer = fn(&ClaimRequest) -> Option<(Vec<u8>, Result<(), JustifyError>)>;
    // `seen`: what the relay's claim looks like to us when its Signed Claim arrives.
    let run_seen = |justification: bool, answer: Answer, seen: u16| {
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.justification = justification;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 5;
        let mut blames = Vec::new();
        let mut evicted = false;
        let mut nonces = std::collections::BTreeSet::new();
        for _ in 0..8 {
            let c = w.run_check(&cands);
            assert_eq!(c.accuracy, Some(0.6));
            blames.push(c.blame);
            if let CheckVerdict::Evicted(_) = c.verdict {
                evicted = true;
                break;
            }
            // A refused Signed Claim leaves its request to be sent again
            // (`reask_refused_claim`): its retries come with the same nonce.
            let asked: Vec<_> = w.justify.drain(..).collect();
            let new = asked.iter().filter(|(_, r)| nonces.insert(r.nonce)).count();
            assert_eq!(new, usize::from(justification), "one request per failure");
            for (n, r) in asked {
                assert_eq!((n, r.prefix), (nb(1), dest()));
                if let Some((tlv, want)) = answer(&r) {
                    let got = w.v.handle_signed_claim(w.now, n, &tlv, Some(seen));
                    if seen == 192 {
                        assert_eq!(got, want);
                    }
                }
            }
        }
        (evicted, blames, w.v.counters())
    };
    let run = |justification: bool, answer: Answer| run_seen(justification, answer, 192);
    // Justified: 96 + a link of 96 covers the claim of 192.
    let (evicted, blames, n) = run(true, |r| {
        Some((
            encode_signed_claim(r, 96, &next_hop_owner(), &key(5)),
            Ok(()),
        ))
    });
    assert!(!evicted, "{blames:?}");
    assert!(
        blames[1..].iter().all(|b| *b == Blame::Justified),
        "{blames:?}"
    );
    assert_eq!(n.justified, 8);
    assert_eq!(n.justify_requests_sent, 8);
    // The next hop offers 144: 144 + 96 is more than the claim.
    let (evicted, _, n) = run(true, |r| {
        Some((
            encode_signed_claim(r, 144, &next_hop_owner(), &key(5)),
            Err(JustifyError::UnderFloor),
        ))
    });
    assert!(evicted);
    // The one answer, refused. The refused request is sent again (`reask_refused_claim`) while
    // the second check runs, and the check that evicts asks too; none of those is answered.
    assert_eq!((n.justified, n.claims_refused), (0, 1));
    assert_eq!(n.justify_requests_sent, 4);
    // Signed by a key not bound to the owner prefix.
    let (evicted, _, _) = run(true, |r| {
        Some((
            encode_signed_claim(r, 96, &next_hop_owner(), &key(6)),
            Err(JustifyError::Unbound),
        ))
    });
    assert!(evicted);
    // Another nonce.
    let (evicted, _, _) = run(true, |r| {
        let other = ClaimRequest {
            nonce: r.nonce ^ 1,
            ..*r
        };
        Some((
            encode_signed_claim(&other, 96, &next_hop_owner(), &key(5)),
            Err(JustifyError::Unexpected),
        ))
    });
    assert!(evicted);
    // Altered on the way.
    let (evicted, _, _) = run(true, |r| {
        let mut t = encode_signed_claim(r, 96, &next_hop_owner(), &key(5));
        t[13] ^= 1;
        Some((t, Err(JustifyError::BadSignature)))
    });
    assert!(evicted);
    // Our view of the claim lags (150 when the claim arrives, under 96 + 96): refused then, but
    // the floor is kept, and the checks of the claim of 192 are justified.
    let (evicted, blames, n) = run_seen(
        true,
        |r| {
            Some((
                encode_signed_claim(r, 96, &next_hop_owner(), &key(5)),
                Ok(()),
            ))
        },
        150,
    );
    assert!(!evicted, "{blames:?}");
    assert!(
        blames[1..].iter().all(|b| *b == Blame::Justified),
        "{blames:?}"
    );
    // Every sending refused: the eight requests and their retries (`reask_refused_claim`).
    assert_eq!(n.justified, 0);
    assert_eq!(n.claims_refused, n.justify_requests_sent);
    assert!(n.claims_refused > 8, "{n:?}");
    // No answer, or the option off: judged as before.
    assert!(run(true, |_| None).0);
    assert!(run(false, |_| None).0);
}

/// The first check of neighbour `n` among the next four of `w` (panics without one).
fn first_check_of(w: &mut World, cands: &[VerifiableRoute], n: NeighbourId) -> Check {
    (0..4)
        .map(|_| w.run_check(cands))
        .find(|c| c.route.neighbour == n)
        .expect("a check of the neighbour")
}

/// The one Justify Request `w` sent neighbour 1; with `justified`, answered now with next hop
/// 2's signature that it offers 48 (neighbour 1 claims 144).
fn answer_justify_request(w: &mut World, justified: bool) -> ClaimRequest {
    let asked: Vec<_> = w.justify.drain(..).filter(|(n, _)| *n == nb(1)).collect();
    assert_eq!(asked.len(), 1);
    let request = asked[0].1;
    if justified {
        let tlv = encode_signed_claim(&request, 48, &next_hop_owner(), &key(5));
        assert_eq!(
            w.v.handle_signed_claim(w.now, nb(1), &tlv, Some(144)),
            Ok(())
        );
    }
    request
}

/// Whether `acts` evict neighbour `n`.
fn evicts(acts: &[ProbeAction], n: NeighbourId) -> bool {
    eviction_in(acts, n).is_some()
}

/// The eviction of neighbour `n` among `acts`.
fn eviction_in(acts: &[ProbeAction], n: NeighbourId) -> Option<Eviction> {
    acts.iter().find_map(|a| match a {
        ProbeAction::Standing {
            neighbour,
            eviction,
        } if *neighbour == n => *eviction,
        _ => None,
    })
}

/// §4.2.5, `unjustified_origin_evicts`: neighbour 1 claims 144 where its next hop 2 offers us
/// 192 (the origin test blames it) and four links measure 384. Its failure, unjustified,
/// evicts it when `JUSTIFY_WAIT` has passed, without a second failure; justified in time
/// (2 signs that it offers 1 only 48), it does not; nor without the option.
#[test]
fn an_unjustified_origin_is_evicted_at_its_deadline() {
    let k = key(1);
    let cands = [cand(1, 240, true), cand(2, 288, false)];
    for (option, justified) in [(true, false), (true, true), (false, false)] {
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.unjustified_origin_evicts = option;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 4;
        w.next_hops.push((nb(1), nb(2)));
        let c = first_check_of(&mut w, &cands, nb(1));
        assert_eq!(c.blame, Blame::Origin, "{c:?}");
        assert_eq!(c.accuracy, Some(0.625));
        assert_eq!(c.verdict, CheckVerdict::Kept);
        answer_justify_request(&mut w, justified);
        let deadline = w.now + verify::JUSTIFY_WAIT;
        let just_before = w.now + (verify::JUSTIFY_WAIT - Duration::from_millis(1));
        assert!(w.v.poll_timeout() <= deadline);
        let before = w.v.handle_timeout(just_before, &cands);
        assert!(!evicts(&before, nb(1)));
        let at = w.v.handle_timeout(deadline, &cands);
        let unjustified = Eviction {
            prefix: c.route.prefix,
            cause: EvictionCause::Unjustified,
        };
        assert_eq!(
            eviction_in(&at, nb(1)),
            (option && !justified).then_some(unjustified),
            "option {option} justified {justified}"
        );
        assert_eq!(w.v.counters().evictions, u64::from(option && !justified));
    }
}

/// §4.2.5, `justify_on_rise`: the failure of `an_unjustified_origin_is_evicted_at_its_deadline`
/// (neighbour 1 claims 144), its next hop signing 96: floor 192, above the claim, so the Signed
/// Claim is refused. Neighbour 1's claim rises to the floor 4 s later (it took the signed word)
/// and falls back to 144 before the deadline (its route moved). With the option the rise
/// justifies it (the verifier asks for the routes meanwhile) and the deadline evicts nothing;
/// without, the claim at the deadline is all that counts, and it is evicted; with the option,
/// a claim that never reaches the floor is evicted too.
#[test]
fn a_claim_that_reaches_its_floor_before_the_deadline_is_justified_with_the_option() {
    let k = key(1);
    let cands = [cand(1, 240, true), cand(2, 288, false)];
    let risen = [cand(1, 288, true), cand(2, 288, false)];
    let short = [cand(1, 287, true), cand(2, 288, false)];
    for (option, meanwhile, want) in [
        (true, &risen, false),
        (false, &risen, true),
        (true, &short, true),
    ] {
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.justify_on_rise = option;
        // The rule alone: with `reask_moved_claim` a claim that moved meanwhile and came back
        // is asked again at the deadline instead (its own test).
        cfg.score.reask_moved_claim = false;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 4;
        w.next_hops.push((nb(1), nb(2)));
        let c = first_check_of(&mut w, &cands, nb(1));
        assert_eq!((c.blame, c.accuracy), (Blame::Origin, Some(0.625)), "{c:?}");
        let asked: Vec<_> = w.justify.drain(..).filter(|(n, _)| *n == nb(1)).collect();
        let tlv = encode_signed_claim(&asked[0].1, 96, &next_hop_owner(), &key(5));
        assert!(
            w.v.handle_signed_claim(w.now, nb(1), &tlv, Some(144))
                .is_err()
        );
        assert_eq!(w.v.counters().claims_refused, 1);
        let later = w.now + Duration::from_secs(4);
        // With the option the verifier looks again within `RISE_POLL`, asking for the routes.
        if option {
            assert!(w.v.poll_timeout() <= w.now + verify::RISE_POLL);
            assert!(w.v.wants_routes(later));
        }
        let _ = w.v.handle_timeout(later, meanwhile);
        let at = w.v.handle_timeout(w.now + verify::JUSTIFY_WAIT, &cands);
        assert_eq!(evicts(&at, nb(1)), want, "option {option} {meanwhile:?}");
        assert_eq!(w.v.counters().justified, u64::from(!want));
    }
}

/// §4.2.5, `asked_rises_evict`: neighbour 1 claims 144 where its next hop 2 offers us 576 and
/// eight links measure 768 (a failure blamed on the origin), twice. Asked, neighbour 1 raises
/// its claim to 672, the floor its next hop signs (576 plus a link), and is justified; then it
/// lies again, and the next check fails the same way. With the option the second claim risen
/// only once asked, within `asked_rise_window` of the first, evicts it; without the option, or
/// with the second rise past the window, it is justified again and kept. Kept with the option
/// however often it is asked: a relay whose claim was at its floor already (its next hop signs
/// 48, the lie it relays), which rose for nothing; one whose claim rose past what we measured
/// (its next hop signs 1,000: floor 1,096, and 1,192 with our link over the 768 measured by
/// more than `1/S`), a path that changed; one under its floor by no more than a relay's lag
/// (its next hop signs 300: floor 396, within 256 of 144); one whose claim moved during the
/// session (from 144 to 154), a route not settled; and one whose claim, unchanged, turned
/// infeasible by the session's end (we heard the source's newer seqno through 2, which 1 has
/// not passed on: under split horizon, its route runs through us), a claim it no longer makes.
/// With `asked_rises_apart` the second rise evicts too: its claim was asked about after the
/// first had risen.
#[test]
fn a_claim_that_rises_only_when_asked_evicts_the_second_time_with_the_option() {
    let k = key(1);
    let lying = [cand(1, 240, true), cand(2, 672, false)];
    let moved = vec![cand(1, 250, true), cand(2, 672, false)];
    let stale = VerifiableRoute {
        feasible: false,
        ..cand(1, 240, false)
    };
    let infeasible = vec![stale, cand(2, 672, true)];
    for (option, gap, signed, want, rises, midway, apart) in [
        (true, 0, 576, true, 2, None, false),
        (true, 0, 576, true, 2, None, true),
        (false, 0, 576, false, 2, None, false),
        (true, 100, 576, false, 2, None, false),
        (true, 0, 48, false, 0, None, false),
        (true, 0, 1000, false, 0, None, false),
        (true, 0, 300, false, 0, None, false),
        (true, 0, 576, false, 0, Some(&moved), false),
        (true, 0, 576, false, 0, Some(&infeasible), false),
    ] {
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.asked_rises_evict = option;
        cfg.score.asked_rises_apart = apart;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 8;
        w.next_hops.push((nb(1), nb(2)));
        // The routes from the session's middle on.
        w.midway = midway.cloned();
        let mut evicted = Vec::new();
        for round in 0..2 {
            if round == 1 {
                w.now = w.now + Duration::from_secs(gap);
            }
            let c = first_check_of(&mut w, &lying, nb(1));
            let asked: Vec<_> = w.justify.drain(..).filter(|(n, _)| *n == nb(1)).collect();
            // The relay's claim is at the floor kept from the first round: its failure is its
            // next hop's (and it is asked all the same).
            let blame = if round == 1 && signed == 48 {
                Blame::Justified
            } else {
                Blame::Origin
            };
            assert_eq!(c.blame, blame, "{c:?}");
            assert_eq!(c.stable, midway != Some(&moved), "{c:?}");
            assert_eq!(c.route.feasible, midway != Some(&infeasible), "{c:?}");
            assert_eq!(asked.len(), 1, "round {round}");
            let tlv = encode_signed_claim(&asked[0].1, signed, &next_hop_owner(), &key(5));
            // The claim when the Signed Claim comes: risen to the floor (the relay's was there).
            let claim = signed.max(48) + 96;
            assert_eq!(
                w.v.handle_signed_claim(w.now, nb(1), &tlv, Some(claim)),
                Ok(()),
                "round {round}"
            );
            // A claim risen only once asked is reported (and with the option scored) at once.
            let rose = rises > 0;
            assert_eq!(w.v.poll_timeout() <= w.now, rose, "round {round}");
            let acts = w.v.handle_timeout(w.now, &lying);
            let reported: Vec<_> = acts
                .iter()
                .filter_map(|a| match a {
                    ProbeAction::AskedRise(r) => Some(*r),
                    _ => None,
                })
                .collect();
            let want_reported = if rose {
                vec![AskedRise {
                    neighbour: nb(1),
                    prefix: dest(),
                    asked: 144,
                    risen: claim,
                }]
            } else {
                Vec::new()
            };
            assert_eq!(reported, want_reported, "round {round}");
            evicted.extend(eviction_in(&acts, nb(1)));
            evicted.extend(
                w.standings
                    .drain(..)
                    .filter(|(n, _)| *n == nb(1))
                    .filter_map(|(_, e)| e),
            );
        }
        let asked_rises = Eviction {
            prefix: dest(),
            cause: EvictionCause::AskedRises,
        };
        assert_eq!(
            evicted,
            if want { vec![asked_rises] } else { Vec::new() },
            "option {option} gap {gap} signed {signed}"
        );
        assert_eq!(w.v.counters().justified, 2);
        // Counted with the option or without.
        assert_eq!(w.v.counters().asked_rises, rises);
    }
}

/// §4.2.5, `asked_rise_lowest_floor`: the failure of the test above (neighbour 1 claims 144,
/// eight links measure 768). Its next hop's word rises during the ask: the first Signed Claim
/// signs 300 (a floor of 396, within a relay's lag of 144: refused, under the floor), the
/// second 576 (a floor of 672), and the claim, risen to 672 by then, is justified. Held against
/// the latest floor only, that is a claim risen only when asked; held against the lowest floor
/// of the ask (the option) it is not: the neighbour's claim was within a lag of its next hop's
/// word when asked.
#[test]
fn a_claim_within_a_lag_of_the_asks_first_floor_is_no_asked_rise_with_the_option() {
    let k = key(1);
    let lying = [cand(1, 240, true), cand(2, 672, false)];
    for option in [false, true] {
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.asked_rise_lowest_floor = option;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 8;
        w.next_hops.push((nb(1), nb(2)));
        let c = first_check_of(&mut w, &lying, nb(1));
        assert_eq!(c.blame, Blame::Origin, "{c:?}");
        let asked: Vec<_> = w.justify.drain(..).filter(|(n, _)| *n == nb(1)).collect();
        assert_eq!(asked.len(), 1);
        let request = asked[0].1;
        let first = encode_signed_claim(&request, 300, &next_hop_owner(), &key(5));
        assert_eq!(
            w.v.handle_signed_claim(w.now, nb(1), &first, Some(144)),
            Err(JustifyError::UnderFloor)
        );
        let later = w.now + Duration::from_secs(3);
        let second = encode_signed_claim(&request, 576, &next_hop_owner(), &key(5));
        assert_eq!(
            w.v.handle_signed_claim(later, nb(1), &second, Some(672)),
            Ok(())
        );
        let acts = w.v.handle_timeout(later, &lying);
        let reported = acts
            .iter()
            .filter(|a| matches!(a, ProbeAction::AskedRise(_)))
            .count();
        assert_eq!(reported, usize::from(!option), "option {option}");
        assert_eq!(w.v.counters().asked_rises, u64::from(!option));
    }
}

/// §4.2.5, `fall_back_evicts`: the failure of the test above (neighbour 1 claims 144 where its
/// next hop 2 offers 576, eight links measure 768). Asked, neighbour 1 rises to the floor its
/// next hop signs, 672, and is justified. Some seconds later its claim falls back to 144, with
/// no check of ours in between: with the option the verifier asks it again at once, it rises
/// again to 672, and that evicts it (`fell-back`); if it stays at 144 instead (its Signed Claim
/// refused, under the floor), it is evicted unjustified at the ask's deadline. Kept: without
/// the option (not asked again); a fall that would not fail (to 600, 696 with our link against
/// the 768 of the floor); a fall past `asked_rise_window`; and an honest relay whose next hop's
/// offer fell with its claim (asked again, its next hop signs 48: justified as it is, and no
/// longer watched).
#[test]
fn a_claim_that_falls_back_after_rising_when_asked_evicts_with_the_option() {
    let lying = [cand(1, 240, true), cand(2, 672, false)];
    let risen = [cand(1, 768, false), cand(2, 672, true)];
    let (fell_back, unjustified) = (
        Some(EvictionCause::FellBack),
        Some(EvictionCause::Unjustified),
    );
    for (option, fallen, gap, signed_again, rises_again, want) in [
        (true, 144, 5, 576, true, fell_back),
        (true, 144, 5, 576, false, unjustified),
        (false, 144, 5, 576, true, None),
        (true, 600, 5, 576, true, None),
        (true, 144, 100, 576, true, None),
        (true, 144, 5, 48, true, None),
    ] {
        let row = format!(
            "option {option} fallen {fallen} gap {gap} signed {signed_again} rises {rises_again}"
        );
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.fall_back_evicts = option;
        // Only this rule: one rise only when asked would not evict, but keep the count clean.
        cfg.score.asked_rises_evict = false;
        let (mut w, _, request) = origin_failure(cfg, 8, &lying);
        let tlv = encode_signed_claim(&request, 576, &next_hop_owner(), &key(5));
        assert_eq!(
            w.v.handle_signed_claim(w.now, nb(1), &tlv, Some(672)),
            Ok(()),
            "{row}"
        );
        let acts = w.v.handle_timeout(w.now, &risen);
        assert!(!evicts(&acts, nb(1)), "{row}");
        // Watched, the claim's routes are wanted and looked at.
        assert!(w.v.used(w.now).contains(&dest()), "{row}");
        w.now = w.now + Duration::from_secs(gap);
        let fell = [cand(1, fallen + 96, true), cand(2, 672, false)];
        let acts = w.v.handle_timeout(w.now, &fell);
        let again: Vec<ClaimRequest> = acts
            .iter()
            .filter_map(|a| match a {
                ProbeAction::SendJustifyRequest { neighbour, request } if *neighbour == nb(1) => {
                    Some(*request)
                }
                _ => None,
            })
            .collect();
        let asks = option && fallen == 144 && gap < 90;
        assert_eq!(again.len(), usize::from(asks), "{row}");
        let mut evicted = eviction_in(&acts, nb(1));
        if let Some(r) = again.first() {
            let tlv = encode_signed_claim(r, signed_again, &next_hop_owner(), &key(5));
            // The liar rises again to its next hop's word, or stays; the honest relay's claim
            // is there already.
            let claim = if rises_again {
                signed_again + 96
            } else {
                fallen
            };
            let (answer, after) = if rises_again {
                (Ok(()), risen)
            } else {
                (Err(JustifyError::UnderFloor), fell)
            };
            assert_eq!(
                w.v.handle_signed_claim(w.now, nb(1), &tlv, Some(claim)),
                answer,
                "{row}"
            );
            let at_once = want == fell_back;
            assert_eq!(
                w.v.poll_timeout() <= w.now,
                at_once,
                "{row}: scored at once"
            );
            let acts = w.v.handle_timeout(w.now, &after);
            evicted = evicted.or(eviction_in(&acts, nb(1)));
            // Else at the ask's deadline.
            let acts = w.v.handle_timeout(w.now + verify::JUSTIFY_WAIT, &after);
            evicted = evicted.or(eviction_in(&acts, nb(1)));
        }
        assert_eq!(evicted.map(|e| e.cause), want, "{row}");
        assert_eq!(
            w.v.counters().fell_back,
            u64::from(want == fell_back),
            "{row}"
        );
        // Watched until the window ends, unless it fell back (evicted, or justified as it is).
        let watched =
            w.v.table_sizes()
                .iter()
                .find(|t| t.name == "claims watched for a fall back")
                .map(|t| t.len);
        let kept = option && !asks && gap < 90;
        let still_fallen = asks && !rises_again;
        assert_eq!(watched, Some(usize::from(kept || still_fallen)), "{row}");
    }
}

/// The failure of `an_unjustified_origin_is_evicted_at_its_deadline` (neighbour 1 claims 144,
/// four links measure 384, its next hop 2 is known: blamed on the origin), with
/// `reask_moved_claim` as given, and the first Justify Request, left unanswered.
fn unanswered_origin_failure(reask_moved_claim: bool) -> (World, verify::ClaimRequest) {
    let mut cfg = two_failures(VerifyConfig::default());
    cfg.score.reask_moved_claim = reask_moved_claim;
    unanswered_origin_failure_with(cfg)
}

/// The same, a withdrawal after it waited for as without `withdrawn_origin_evicts`, and
/// without `late_start` (whose wait for neighbour 1's route polls the routes too).
fn unanswered_origin_failure_parked(reask_moved_claim: bool) -> (World, verify::ClaimRequest) {
    let mut cfg = two_failures(VerifyConfig::default());
    cfg.score.reask_moved_claim = reask_moved_claim;
    cfg.score.withdrawn_origin_evicts = false;
    cfg.schedule.late_start = false;
    unanswered_origin_failure_with(cfg)
}

/// The same failure under `cfg`.
fn unanswered_origin_failure_with(cfg: VerifyConfig) -> (World, verify::ClaimRequest) {
    let (w, c, first_request) = origin_failure(cfg, 4, &[cand(1, 240, true), cand(2, 288, false)]);
    assert_eq!(c.accuracy, Some(0.625), "{c:?}");
    (w, first_request)
}

/// Neighbour 1's first check under `cfg` over `hops` links, with `cands` and neighbour 2 as
/// its next hop: a failure blamed on it as the origin, and the one Justify Request it drew,
/// unanswered.
fn origin_failure(
    cfg: VerifyConfig,
    hops: u8,
    cands: &[VerifiableRoute],
) -> (World, Check, verify::ClaimRequest) {
    let k = key(1);
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.hops = hops;
    w.next_hops.push((nb(1), nb(2)));
    let c = first_check_of(&mut w, cands, nb(1));
    assert_eq!(c.blame, Blame::Origin, "{c:?}");
    let request = answer_justify_request(&mut w, false);
    (w, c, request)
}

/// The routes once neighbour 1 has withdrawn its claim (unreachable) and we select neighbour 2.
fn withdrawn_by_1() -> [VerifiableRoute; 2] {
    [unreachable(1), cand(2, 288, true)]
}

/// The routes once the destination is no longer used: only a route to another one.
fn elsewhere() -> [VerifiableRoute; 1] {
    [VerifiableRoute {
        prefix: "fd00::77/128".parse().expect("a prefix"),
        ..cand(2, 288, true)
    }]
}

/// The Justify Requests to neighbour 1 among `actions` other than `first` (sent again with its
/// nonce as its retries fall due): those asking anew.
fn asked_anew(actions: &[ProbeAction], first: &verify::ClaimRequest) -> Vec<verify::ClaimRequest> {
    actions
        .iter()
        .filter_map(|a| match a {
            ProbeAction::SendJustifyRequest { neighbour, request }
                if *neighbour == nb(1) && request.nonce != first.nonce =>
            {
                Some(*request)
            }
            _ => None,
        })
        .collect()
}

/// §4.2.5, `reask_moved_claim`: the failure of `an_unjustified_origin_is_evicted_at_its_deadline`
/// (neighbour 1 claims 144), unanswered. At the deadline neighbour 1 claims 160 (its route
/// moved; still under what we measured). With the option the deadline evicts nothing: it asks
/// again, with a fresh nonce, and judges the claim of 160 a `JUSTIFY_WAIT` later, where a
/// Signed Claim of its next hop offering 48 (floor 144) justifies it and none evicts. A claim
/// that did not move, or the option off, is evicted at the first deadline; so is a second
/// move (asked again once only).
#[test]
fn a_claim_moved_by_its_deadline_is_asked_again_with_the_option() {
    let cands = [cand(1, 240, true), cand(2, 288, false)];
    let moved = [cand(1, 256, true), cand(2, 288, false)];
    let moved_again = [cand(1, 250, true), cand(2, 288, false)];
    // (option, claims at the first deadline, answered again, claims at the second, evicted at
    // the first deadline, evicted at the second)
    for (option, first, answered, second, want_first, want_second) in [
        (true, &moved, true, &moved, false, false),
        (true, &moved, false, &moved, false, true),
        (true, &moved, false, &moved_again, false, true),
        (true, &cands, false, &cands, true, false),
        (false, &moved, false, &moved, true, false),
    ] {
        let (mut w, first_request) = unanswered_origin_failure(option);
        let deadline = w.now + verify::JUSTIFY_WAIT;
        let at = w.v.handle_timeout(deadline, first);
        let case = format!("option {option} {first:?} answered {answered}");
        assert_eq!(evicts(&at, nb(1)), want_first, "{case}");
        let asked = asked_anew(&at, &first_request);
        if want_first || !option {
            assert_eq!(asked, vec![], "{case}");
            continue;
        }
        assert_eq!(asked.len(), 1, "{case}");
        // The first request's answer, late, no longer counts.
        let old = encode_signed_claim(&first_request, 48, &next_hop_owner(), &key(5));
        assert!(
            w.v.handle_signed_claim(deadline, nb(1), &old, Some(160))
                .is_err()
        );
        if answered {
            let tlv = encode_signed_claim(&asked[0], 48, &next_hop_owner(), &key(5));
            assert_eq!(
                w.v.handle_signed_claim(deadline, nb(1), &tlv, Some(160)),
                Ok(())
            );
        }
        let second_deadline = deadline + verify::JUSTIFY_WAIT;
        let just_before = deadline + (verify::JUSTIFY_WAIT - Duration::from_millis(1));
        assert!(w.v.poll_timeout() <= second_deadline);
        assert!(
            !evicts(&w.v.handle_timeout(just_before, second), nb(1)),
            "{case}"
        );
        let at = w.v.handle_timeout(second_deadline, second);
        assert_eq!(evicts(&at, nb(1)), want_second, "{case}");
        assert_eq!(w.v.counters().evictions, u64::from(want_second));
    }
}

/// §4.2.5, `reask_moved_claim`, a claim withdrawn meanwhile: the failure of
/// `an_unjustified_origin_is_evicted_at_its_deadline` (neighbour 1 claims 144), unanswered.
/// Before the deadline the verifier sees the claim withdrawn (unreachable, or gone while the
/// destination has other routes: the neighbour's route ran through us for a while), or the
/// destination absent altogether (no longer used: that says nothing), and at the deadline the same
/// claim of 144 is made again. With the option that is a claim made anew: the deadline asks
/// again instead of evicting, and judges it a `JUSTIFY_WAIT` later (a Signed Claim offering 48
/// justifies it; none evicts). So is a claim seen changed meanwhile (160: the neighbour's route
/// moved) and made again at 144 by the deadline. Without the option, or when the claim was
/// never withdrawn or changed, the first deadline evicts.
#[test]
fn a_claim_withdrawn_and_made_again_is_asked_again_with_the_option() {
    let cands = [cand(1, 240, true), cand(2, 288, false)];
    let unreachable = withdrawn_by_1();
    let gone = [cand(2, 288, true)];
    let moved = [cand(1, 256, true), cand(2, 288, false)];
    // (option, claims seen between failure and deadline, answered again, evicted at the
    // first deadline, evicted at the second)
    for (option, meanwhile, answered, want_first, want_second) in [
        (true, &unreachable[..], true, false, false),
        (true, &unreachable[..], false, false, true),
        (true, &gone[..], true, false, false),
        (true, &[][..], false, true, false),
        (true, &cands[..], false, true, false),
        (true, &moved[..], true, false, false),
        (true, &moved[..], false, false, true),
        (false, &unreachable[..], false, true, false),
        (false, &moved[..], false, true, false),
    ] {
        let (mut w, first_request) = unanswered_origin_failure(option);
        let case = format!("option {option} {meanwhile:?} answered {answered}");
        // With the option the verifier asks for the routes within `RISE_POLL` to watch the
        // claim (without it, not before the deadline).
        let look = w.now + verify::RISE_POLL;
        assert_eq!(w.v.wants_routes(look), option, "{case}");
        assert!(
            !evicts(&w.v.handle_timeout(look, meanwhile), nb(1)),
            "{case}"
        );
        let deadline = w.now + verify::JUSTIFY_WAIT;
        let at = w.v.handle_timeout(deadline, &cands);
        assert_eq!(evicts(&at, nb(1)), want_first, "{case}");
        let asked = asked_anew(&at, &first_request);
        if want_first {
            assert_eq!(asked, vec![], "{case}");
            continue;
        }
        assert_eq!(asked.len(), 1, "{case}");
        if answered {
            let tlv = encode_signed_claim(&asked[0], 48, &next_hop_owner(), &key(5));
            assert_eq!(
                w.v.handle_signed_claim(deadline, nb(1), &tlv, Some(144)),
                Ok(())
            );
        }
        let second_deadline = deadline + verify::JUSTIFY_WAIT;
        let at = w.v.handle_timeout(second_deadline, &cands);
        assert_eq!(evicts(&at, nb(1)), want_second, "{case}");
        assert_eq!(w.v.counters().evictions, u64::from(want_second), "{case}");
    }
}

/// §4.2.5, `reask_moved_claim`, a claim withdrawn at the deadline: the failure of
/// `an_unjustified_origin_is_evicted_at_its_deadline` (neighbour 1 claims 144), unanswered,
/// and at the deadline neighbour 1's claim is withdrawn. Without the option the withdrawal
/// corrects the failure for good. With it the failure waits for the claim to come back, up to
/// `confirm_within`: back (the same claim of 144, a lie made anew, as a liar whose lie drew
/// our traffic back through it and then its own route makes), it is asked again at once and
/// judged a `JUSTIFY_WAIT` later (a Signed Claim offering 48 justifies it, none evicts);
/// withdrawn for all of `confirm_within` (or the destination no longer used then), the
/// withdrawal held and nothing is evicted. A destination no longer used at the deadline (no
/// route to look at) waits the same way. (The failure is blamed on the origin, which
/// `withdrawn_origin_evicts`, on by default, evicts at a withdrawal: off here.)
#[test]
fn a_claim_withdrawn_at_its_deadline_waits_for_its_return_with_the_option() {
    let cands = [cand(1, 240, true), cand(2, 288, false)];
    let unreachable = withdrawn_by_1();
    let other = elsewhere();
    // (option, the destination unused at the deadline rather than the claim withdrawn, the
    // claim comes back, answered, the destination unused at the end, evicted)
    for (option, gone, back, answered, unused, want) in [
        (true, false, true, false, false, true),
        (true, false, true, true, false, false),
        (true, true, true, false, false, true),
        (true, false, false, false, false, false),
        (true, false, false, false, true, false),
        (false, false, true, false, false, false),
    ] {
        let (mut w, first_request) = unanswered_origin_failure_parked(option);
        let confirm_within = w.v.config().score.confirm_within;
        let case =
            format!("option {option} gone {gone} back {back} answered {answered} unused {unused}");
        let deadline = w.now + verify::JUSTIFY_WAIT;
        let at_deadline = if gone { &other[..] } else { &unreachable[..] };
        assert!(
            !evicts(&w.v.handle_timeout(deadline, at_deadline), nb(1)),
            "{case}"
        );
        // Waiting, the verifier looks at the claims every `RISE_POLL`.
        let look = deadline + verify::RISE_POLL;
        assert_eq!(w.v.wants_routes(look), option, "{case}");
        assert!(
            !evicts(&w.v.handle_timeout(look, &unreachable), nb(1)),
            "{case}"
        );
        let back_at = deadline + Duration::from_secs(20);
        let seen = if back { &cands } else { &unreachable };
        let at = w.v.handle_timeout(back_at, seen);
        assert!(!evicts(&at, nb(1)), "{case}");
        let asked = asked_anew(&at, &first_request);
        assert_eq!(asked.len(), usize::from(option && back), "{case}");
        if answered && let Some(request) = asked.first() {
            let tlv = encode_signed_claim(request, 48, &next_hop_owner(), &key(5));
            assert_eq!(
                w.v.handle_signed_claim(back_at, nb(1), &tlv, Some(144)),
                Ok(())
            );
        }
        let judged = back_at + verify::JUSTIFY_WAIT;
        let at = w.v.handle_timeout(judged, seen);
        assert_eq!(evicts(&at, nb(1)), want, "{case}");
        // Past `confirm_within` nothing waits any more (a destination no longer used, with no
        // route to look at, evicts nothing either).
        let end = deadline + confirm_within + verify::JUSTIFY_WAIT;
        let at_end = if unused { &other[..] } else { &seen[..] };
        assert!(!evicts(&w.v.handle_timeout(end, at_end), nb(1)), "{case}");
        assert!(!w.v.wants_routes(end + verify::RISE_POLL), "{case}");
        assert_eq!(w.v.counters().evictions, u64::from(want), "{case}");
    }
}

/// §4.2.5, `confirmed_awaits_justification`: neighbour 1 claims 144, four links measure 384,
/// and its next hop is unknown: failures blamed on nobody, which a second one `window` later
/// confirms. Without the option that check evicts it; with it, the check awaits
/// (`CheckVerdict::Awaiting`) and the deadline, `AWAIT_JUSTIFY` later, evicts it unless its
/// next hop's Signed Claim (offering 48) justifies the claim first.
#[test]
fn a_confirmation_blamed_on_nobody_awaits_justification_with_the_option() {
    let k = key(1);
    let cands = [cand(1, 240, true), cand(2, 480, false)];
    for (option, justified) in [(false, false), (true, false), (true, true)] {
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.confirmed_awaits_justification = option;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 4;
        let case = format!("option {option} justified {justified}");
        let mut verdicts = vec![];
        for _ in 0..8 {
            w.justify.clear();
            let c = first_check_of(&mut w, &cands, nb(1));
            assert_eq!((c.blame, c.cost), (Blame::Unknown, Some(384)), "{c:?}");
            verdicts.push(c.verdict);
            if c.verdict != CheckVerdict::Kept {
                break;
            }
        }
        let last = verdicts.last().copied();
        assert!(verdicts.len() >= 2, "{case}: {verdicts:?}");
        if !option {
            assert!(matches!(last, Some(CheckVerdict::Evicted(_))), "{case}");
            continue;
        }
        assert_eq!(last, Some(CheckVerdict::Awaiting), "{case}");
        assert_eq!(w.v.counters().evictions, 0);
        // The request the confirming check sent (earlier ones may be sent again meanwhile).
        let request = w
            .justify
            .iter()
            .rev()
            .find(|(n, _)| *n == nb(1))
            .map(|r| r.1);
        let request = request.expect("a Justify Request");
        if justified {
            let tlv = encode_signed_claim(&request, 48, &next_hop_owner(), &key(5));
            let r = w.v.handle_signed_claim(w.now, nb(1), &tlv, Some(144));
            assert_eq!(r, Ok(()));
        }
        let deadline = w.now + verify::AWAIT_JUSTIFY;
        let just_before = w.now + (verify::AWAIT_JUSTIFY - Duration::from_millis(1));
        assert!(w.v.poll_timeout() <= deadline);
        assert!(
            !evicts(&w.v.handle_timeout(just_before, &cands), nb(1)),
            "{case}"
        );
        let at = w.v.handle_timeout(deadline, &cands);
        assert_eq!(evicts(&at, nb(1)), !justified, "{case}");
        assert_eq!(w.v.counters().evictions, u64::from(!justified), "{case}");
    }
}

/// §4.2.5, `reask_infinite_claim` and `reask_refused_claim`: the failure of
/// `an_unjustified_origin_is_evicted_at_its_deadline` (neighbour 1 claims 144), whose Justify
/// Request its next hop answers first with a Signed Claim that justifies nothing: infinity (it
/// had no route at that instant), or 144 (a rise of its route that neighbour 1 never heard, or
/// left: 144 plus a link is more than the claim). Refused either way; with the option the
/// request is sent again with the same nonce at `JUSTIFY_RETRY`, and the next hop's answer then
/// (offering 48) justifies the claim, so the deadline evicts nothing. Without the option the
/// first answer answered the request: it is not sent again, and the deadline evicts.
#[test]
fn a_claim_signed_infinite_or_above_the_claim_is_asked_again_with_the_option() {
    let k = key(1);
    let cands = [cand(1, 240, true), cand(2, 288, false)];
    type SetOption = fn(&mut VerifyConfig, bool);
    let cases: [(u16, JustifyError, SetOption); 2] = [
        (babel_wire::INFINITY, JustifyError::Unreachable, |c, o| {
            c.score.reask_infinite_claim = o
        }),
        (144, JustifyError::UnderFloor, |c, o| {
            c.score.reask_refused_claim = o
        }),
    ];
    for (first, refused, set) in cases {
        for option in [true, false] {
            let case = format!("first signed {first}, option {option}");
            let mut cfg = two_failures(VerifyConfig::default());
            set(&mut cfg, option);
            let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
            w.hops = 4;
            w.next_hops.push((nb(1), nb(2)));
            let c = first_check_of(&mut w, &cands, nb(1));
            assert_eq!((c.blame, c.accuracy), (Blame::Origin, Some(0.625)), "{c:?}");
            let request = answer_justify_request(&mut w, false);
            let t0 = w.now;
            let tlv = encode_signed_claim(&request, first, &next_hop_owner(), &key(5));
            assert_eq!(
                w.v.handle_signed_claim(t0, nb(1), &tlv, Some(144)),
                Err(refused),
                "{case}"
            );
            let retry = t0 + verify::JUSTIFY_RETRY;
            let again: Vec<_> =
                w.v.handle_timeout(retry, &cands)
                    .into_iter()
                    .filter_map(|a| match a {
                        ProbeAction::SendJustifyRequest {
                            neighbour,
                            request: r,
                        } if neighbour == nb(1) && r.nonce == request.nonce => Some(r),
                        _ => None,
                    })
                    .collect();
            assert_eq!(again.len(), usize::from(option), "{case}");
            let tlv = encode_signed_claim(&request, 48, &next_hop_owner(), &key(5));
            let answered = w.v.handle_signed_claim(retry, nb(1), &tlv, Some(144));
            assert_eq!(answered.is_ok(), option, "{case}: {answered:?}");
            let at = w.v.handle_timeout(t0 + verify::JUSTIFY_WAIT, &cands);
            assert_eq!(evicts(&at, nb(1)), !option, "{case}");
        }
    }
}

/// §4.2.5: a Justify Request not answered is sent again with the same nonce `JUSTIFY_RETRY`
/// after each sending, `JUSTIFY_SENDS` times in all (a request or its answer lost on a lossy
/// link); one answered is not, and a late retry's answer still justifies.
#[test]
fn an_unanswered_justify_request_is_sent_again() {
    let k = key(1);
    let cands = [cand(1, 240, true), cand(2, 288, false)];
    for answer_at in [None, Some(0), Some(2)] {
        let mut w = world(VerifyConfig::default(), &k, *k.verifying_key().as_bytes());
        w.hops = 4;
        w.next_hops.push((nb(1), nb(2)));
        assert!(first_check_of(&mut w, &cands, nb(1)).accuracy < Some(0.8));
        let request = answer_justify_request(&mut w, false);
        let t0 = w.now;
        let sent0 = w.v.counters().justify_requests_sent;
        let mut sendings = vec![request];
        let answer = |w: &mut World, t| {
            let tlv = encode_signed_claim(&request, 48, &next_hop_owner(), &key(5));
            w.v.handle_signed_claim(t, nb(1), &tlv, Some(144))
        };
        if answer_at == Some(0) {
            assert_eq!(answer(&mut w, t0), Ok(()));
        }
        for i in 1..=4u32 {
            let retry = t0 + verify::JUSTIFY_RETRY * i;
            let just_before = t0 + (verify::JUSTIFY_RETRY * i - Duration::from_millis(1));
            assert!(answer_at == Some(0) || i >= 3 || w.v.poll_timeout() <= retry);
            let before = w.v.handle_timeout(just_before, &cands);
            let at = w.v.handle_timeout(retry, &cands);
            let resent = |acts: &[ProbeAction]| -> Vec<verify::ClaimRequest> {
                acts.iter()
                    .filter_map(|a| match a {
                        // (A recheck left unanswered here is a black hole: a failure of
                        // its own, with a request of its own.)
                        ProbeAction::SendJustifyRequest {
                            neighbour,
                            request: r,
                        } if *neighbour == nb(1) && r.nonce == request.nonce => Some(*r),
                        _ => None,
                    })
                    .collect()
            };
            assert_eq!(resent(&before), vec![], "retry {i} early");
            sendings.extend(resent(&at));
            if answer_at == Some(i as usize) {
                assert_eq!(answer(&mut w, retry), Ok(()));
            }
        }
        let want = match answer_at {
            Some(0) => 1,
            Some(n) => n + 1,
            None => verify::JUSTIFY_SENDS as usize,
        };
        assert_eq!(sendings.len(), want, "answered at {answer_at:?}");
        assert!(sendings.iter().all(|r| *r == request));
        assert!(w.v.counters().justify_requests_sent - sent0 >= want as u64 - 1);
        assert_eq!(w.v.counters().justified, u64::from(answer_at.is_some()));
    }
}

/// §4.2.5 with §4.2.2: the failure of `an_unjustified_origin_is_evicted_at_its_deadline`, left
/// unjustified, does not evict at the deadline if neighbour 1 has corrected it since: retracted
/// the route, or raised its claim so that our metric through it (344) is at least `S` times the
/// 384 measured. A claim that rose less (our metric 300) evicts. So does the same claim (144)
/// when only our link to neighbour 1 failed (our metric infinite) or worsened (our metric 400)
/// by then: the claim is judged priced with our link at the failure, and a link that a
/// neighbour can break by going quiet for a moment corrects nothing. (The claim that rose less
/// has moved: it is asked again, and evicts at the second deadline.) The failure is blamed on
/// the origin, so the retraction corrects it only without `withdrawn_origin_evicts` (on by
/// default): with it, the retraction evicts at the deadline.
#[test]
fn a_failure_corrected_before_its_deadline_does_not_evict() {
    let k = key(1);
    let cands = [cand(1, 240, true), cand(2, 288, false)];
    let retracted = unreachable(1);
    let link_lost = VerifiableRoute {
        metric: babel_wire::INFINITY,
        feasible: false,
        ..cand(1, 240, false)
    };
    let link_worse = VerifiableRoute {
        metric: 400,
        ..cand(1, 240, true)
    };
    // (the claim at the deadline, `withdrawn_origin_evicts`, evicted)
    for (at_deadline, withdrawn_origin_evicts, want) in [
        (cand(1, 240, true), true, true),
        (cand(1, 300, true), true, true),
        (cand(1, 344, true), true, false),
        (retracted, false, false),
        (retracted, true, true),
        (link_lost, true, true),
        (link_worse, true, true),
    ] {
        let mut cfg = VerifyConfig::default();
        cfg.score.withdrawn_origin_evicts = withdrawn_origin_evicts;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 4;
        w.next_hops.push((nb(1), nb(2)));
        let c = first_check_of(&mut w, &cands, nb(1));
        assert_eq!((c.blame, c.cost), (Blame::Origin, Some(384)), "{c:?}");
        let later = [at_deadline, cand(2, 288, false)];
        let deadline = w.now + verify::JUSTIFY_WAIT;
        let acts = w.v.handle_timeout(deadline, &later);
        // A claim that moved, still under the floor, is asked again (`reask_moved_claim`, on
        // by default) and evicts at the second deadline.
        let moved = at_deadline.advertised != 144 && at_deadline.advertised < babel_wire::INFINITY;
        assert_eq!(evicts(&acts, nb(1)), want && !moved, "{at_deadline:?}");
        let acts = w.v.handle_timeout(deadline + verify::JUSTIFY_WAIT, &later);
        assert_eq!(evicts(&acts, nb(1)), want && moved, "{at_deadline:?}");
    }
}

/// §4.2.5, `correction_meets_next_hop`: the failure of
/// `a_failure_corrected_before_its_deadline_does_not_evict` (neighbour 1 claims 144, its next
/// hop 2 offers 192, four links measure 384). By the deadline neighbour 1's claim rose to 248,
/// which corrects the failure against the cost measured (248 plus our link, 344, is at least
/// `S` times 384). With the option, a rise is a correction only if the claim is no longer
/// under `S` times what next hop 2 offers now plus a link: where 2 offers 192 still (0.8 times
/// 288 is 230) it is; where 2's offer rose to 400 with the path behind it (0.8 times 496 is
/// 397), it is a claim made anew, asked again and, unjustified, evicted at the second deadline.
/// Without the option neither is evicted; a next hop that withdrew its route leaves nothing to
/// hold the rise against. (Audits off, as in `an_unjustified_origin_is_evicted_at_its_deadline`:
/// the passing checks of the risen claim would audit it.)
#[test]
fn a_rise_still_under_the_next_hop_corrects_nothing_with_the_option() {
    let withdrawn = unreachable(2);
    for (option, next_hop_then, want) in [
        (true, cand(2, 288, false), false),
        (true, cand(2, 496, false), true),
        (true, withdrawn, false),
        (false, cand(2, 496, false), false),
    ] {
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.correction_meets_next_hop = option;
        let (mut w, first) = unanswered_origin_failure_with(cfg);
        let later = [cand(1, 344, true), next_hop_then];
        let deadline = w.now + verify::JUSTIFY_WAIT;
        let acts = w.v.handle_timeout(deadline, &later);
        assert!(!evicts(&acts, nb(1)), "{option} {next_hop_then:?}");
        let asked = asked_anew(&acts, &first).len();
        assert_eq!(asked, usize::from(want), "{option} {next_hop_then:?}");
        let acts = w.v.handle_timeout(deadline + verify::JUSTIFY_WAIT, &later);
        assert_eq!(evicts(&acts, nb(1)), want, "{option} {next_hop_then:?}");
        assert_eq!(
            w.v.counters().evictions,
            u64::from(want),
            "{option} {next_hop_then:?}"
        );
    }
}

/// §4.2.5, `correction_near_measured`: the failure of
/// `a_rise_still_under_the_next_hop_corrects_nothing_with_the_option` (neighbour 1 claims 144,
/// its next hop 2 offers 192, four links measure 384). By the deadline neighbour 1's claim rose.
/// To 248 (344 with our link, between `S` and `1/S` times 384) it corrects the failure with the
/// option or without. To 544 (640 with our link, past 384 / 0.8 = 480) the path behind it
/// changed since we measured it: with the option it is a claim made anew, asked again with a
/// fresh nonce and, unjustified, evicted at the second deadline; justified then (its next hop
/// signs an offer of 448, floor 544), it is not. Without the option it corrects the failure.
/// Next hop 2 offers 192 throughout, so `correction_meets_next_hop` (on) passes the rise.
#[test]
fn a_rise_past_the_cost_measured_corrects_nothing_with_the_option() {
    // (option, our metric through 1 at the deadline, justified when asked again, evicted)
    for (option, risen, justified, want) in [
        (true, 344, false, false),
        (true, 640, false, true),
        (true, 640, true, false),
        (false, 640, false, false),
    ] {
        let case = format!("option {option} risen {risen} justified {justified}");
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.correction_near_measured = option;
        let (mut w, first) = unanswered_origin_failure_with(cfg);
        let later = [cand(1, risen, true), cand(2, 288, false)];
        let deadline = w.now + verify::JUSTIFY_WAIT;
        let acts = w.v.handle_timeout(deadline, &later);
        assert!(!evicts(&acts, nb(1)), "{case}");
        let asked = asked_anew(&acts, &first);
        let anew = option && risen == 640;
        assert_eq!(asked.len(), usize::from(anew), "{case}");
        if let (Some(request), true) = (asked.first(), justified) {
            let tlv = encode_signed_claim(request, 448, &next_hop_owner(), &key(5));
            assert_eq!(
                w.v.handle_signed_claim(deadline, nb(1), &tlv, Some(risen - 96)),
                Ok(()),
                "{case}"
            );
        }
        let acts = w.v.handle_timeout(deadline + verify::JUSTIFY_WAIT, &later);
        assert_eq!(evicts(&acts, nb(1)), want, "{case}");
        assert_eq!(w.v.counters().evictions, u64::from(want), "{case}");
    }
}

/// §4.2.5, `withdrawn_origin_evicts`: the failure of
/// `an_unjustified_origin_is_evicted_at_its_deadline` (neighbour 1 claims 144 where its next hop
/// 2 offers 192: blamed on the origin), unanswered, and at the deadline neighbour 1's claim is
/// withdrawn. With the option the withdrawal corrects nothing and the deadline evicts, as
/// unjustified; without it the failure waits for the claim to come back (parked). Justified in
/// time, it evicts nothing; nor does a destination no longer used at the deadline (no route
/// to look at), nor the same withdrawal after a failure blamed on nobody (no next hop known).
/// Without `reask_moved_claim` (no parking) the option evicts the same, and without either the
/// withdrawal corrects the failure.
#[test]
fn a_withdrawal_after_an_origin_failure_corrects_nothing_with_the_option() {
    let unreachable = withdrawn_by_1();
    let other = elsewhere();
    // (option, `reask_moved_claim`, next hop known, justified, the destination unused at the
    // deadline, evicted)
    for (option, reask, origin, justified, gone, want) in [
        (true, true, true, false, false, true),
        (true, true, true, true, false, false),
        (true, true, true, false, true, false),
        (true, true, false, false, false, false),
        (false, true, true, false, false, false),
        (true, false, true, false, false, true),
        (false, false, true, false, false, false),
    ] {
        let case = format!(
            "option {option} reask {reask} origin {origin} justified {justified} gone {gone}"
        );
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.reask_moved_claim = reask;
        // A failure blamed on nobody has a deadline too.
        cfg.score.unjustified_unknown_evicts = true;
        cfg.score.withdrawn_origin_evicts = option;
        let k = key(1);
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 4;
        if origin {
            w.next_hops.push((nb(1), nb(2)));
        }
        let c = first_check_of(&mut w, &[cand(1, 240, true), cand(2, 288, false)], nb(1));
        let blame = if origin {
            Blame::Origin
        } else {
            Blame::Unknown
        };
        assert_eq!((c.blame, c.cost), (blame, Some(384)), "{case} {c:?}");
        answer_justify_request(&mut w, justified);
        let deadline = w.now + verify::JUSTIFY_WAIT;
        let seen = if gone { &other[..] } else { &unreachable[..] };
        let acts = w.v.handle_timeout(deadline, seen);
        let why = eviction_in(&acts, nb(1));
        assert_eq!(why.is_some(), want, "{case}");
        if let Some(e) = why {
            assert_eq!(e.cause, EvictionCause::Unjustified, "{case}");
        }
    }
}

/// §4.2.5, `withdrawn_origin_evicts`: the same failure (neighbour 1 claims 144, blamed on the
/// origin), its Justify Request answered with a Signed Claim over the claim, and the claim
/// withdrawn at the deadline. Next hop 2 signing 96 (floor 192), the claim was under its floor
/// by no more than a relay's claim lags its route (`TRIGGER_WORSENING`, 256): maybe an honest
/// relay whose route moved through us as it was asked, so the withdrawal waits as any other
/// (parked) and evicts nothing. Signing 400 (floor 496), the claim was a lie: evicted.
#[test]
fn a_withdrawal_after_an_origin_failure_within_a_relays_lag_waits() {
    for (signed, want) in [(96, false), (400, true)] {
        let mut cfg = two_failures(VerifyConfig::default());
        cfg.score.unjustified_unknown_evicts = true;
        let (mut w, request) = unanswered_origin_failure_with(cfg);
        let tlv = encode_signed_claim(&request, signed, &next_hop_owner(), &key(5));
        assert_eq!(
            w.v.handle_signed_claim(w.now, nb(1), &tlv, Some(144)),
            Err(JustifyError::UnderFloor)
        );
        let deadline = w.now + verify::JUSTIFY_WAIT;
        let acts = w.v.handle_timeout(deadline, &withdrawn_by_1());
        assert_eq!(evicts(&acts, nb(1)), want, "signed {signed}");
    }
}

/// §2.1, §4.2.2, §4.2.5: the destinations to hand routes for include those the verifier still
/// reads after we stopped using them: a session's, until it ends, and a failure's awaiting its
/// deadline, until it is judged. Used for 1 s only: a session started on it and the deadline
/// of neighbour 1's unjustified failure both outlive the use, and the claim still made at the
/// deadline (the routes handed for the destination) evicts it.
#[test]
fn a_destination_no_longer_used_is_wanted_until_judged() {
    let k = key(1);
    let mut cfg = two_failures(VerifyConfig::default());
    cfg.schedule.used_window = Duration::from_secs(1);
    let cands = [cand(1, 240, true), cand(2, 288, false)];
    // A session, started while the destination is used: it stays wanted while the session
    // runs.
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    let mut started = None;
    for _ in 0..100 {
        let t = w.v.poll_timeout().max(w.now);
        w.v.mark_used(t, dest());
        let acts = w.v.handle_timeout(t, &cands);
        if acts
            .iter()
            .any(|a| matches!(a, ProbeAction::SendRemoteHello { .. }))
        {
            started = Some(t);
            break;
        }
        w.now = t;
    }
    let started = started.expect("a session starts");
    let later = started + Duration::from_secs(3);
    assert!(w.v.poll_timeout() < later, "the session is still running");
    assert_eq!(w.v.used(later), vec![dest()]);
    // A failure awaiting its deadline: wanted until judged, then no more.
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.hops = 4;
    w.next_hops.push((nb(1), nb(2)));
    let c = first_check_of(&mut w, &cands, nb(1));
    assert_eq!(c.blame, Blame::Origin, "{c:?}");
    answer_justify_request(&mut w, false);
    let deadline = w.now + verify::JUSTIFY_WAIT;
    assert_eq!(w.v.used(deadline), vec![dest()]);
    let acts = w.v.handle_timeout(deadline, &cands);
    assert!(evicts(&acts, nb(1)));
    assert_eq!(w.v.used(deadline + Duration::from_secs(2)), Vec::new());
}

/// §2.2, `late_start`: when a cycle starts, neighbour 1's only route to the used destination
/// is retracted (no session through it); it is back, feasible, some seconds later. With the
/// option, back 2 s later, a session through neighbour 1 starts then, within the cycle, and
/// ends before the next; without the option, none until the next cycle; with it, back 6 s
/// later (a session started then would end after the next cycle's start), none either.
#[test]
fn a_neighbour_without_a_feasible_route_at_a_cycle_start_gets_a_late_session_with_the_option() {
    let retracted = [unreachable(1), cand(2, 288, true)];
    let back = [cand(1, 240, true), cand(2, 288, false)];
    let hellos_to = |acts: &[ProbeAction], n: NeighbourId| {
        acts.iter()
            .filter(
                |a| matches!(a, ProbeAction::SendRemoteHello { neighbour, .. } if *neighbour == n),
            )
            .count()
    };
    for (option, back_after, want) in [(true, 2, true), (false, 2, false), (true, 6, false)] {
        let case = format!("option {option} back after {back_after} s");
        let mut cfg = VerifyConfig::default();
        cfg.schedule.late_start = option;
        let k = key(1);
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        let start = w.v.poll_timeout().max(w.now);
        let acts = w.v.handle_timeout(start, &retracted);
        assert_eq!(hellos_to(&acts, nb(1)), 0, "{case}");
        assert!(hellos_to(&acts, nb(2)) > 0, "{case}");
        let next_cycle = start + cfg.schedule.cycle;
        let back_at = start + Duration::from_secs(back_after);
        let mut late = None;
        let mut t = start;
        for _ in 0..1000 {
            t = w.v.poll_timeout().max(t);
            if t >= next_cycle {
                break;
            }
            let cands = if t >= back_at {
                &back[..]
            } else {
                &retracted[..]
            };
            let acts = w.v.handle_timeout(t, cands);
            if late.is_none() && hellos_to(&acts, nb(1)) > 0 {
                late = Some(t);
            }
        }
        assert_eq!(late.is_some(), want, "{case}");
        if let Some(l) = late {
            // At the first timer once the route is back (every `RISE_POLL` while it waits),
            // early enough for the session to end before the next cycle.
            assert!(
                l >= back_at && l < back_at + verify::RISE_POLL,
                "{case} {l:?}"
            );
            assert!(l + cfg.schedule.session_length() <= next_cycle, "{case}");
        }
    }
}

/// §4.2.5, `unjustified_unknown_evicts` (on by default): neighbour 1 claims 144 and four links
/// measure 384; its next hop is unknown (the failure is blamed on nobody). Unjustified, the
/// failure evicts it at the deadline with the option (and not without); justified in time, it
/// does not.
#[test]
fn an_unjustified_failure_blamed_on_nobody_is_evicted() {
    let cands = [cand(1, 240, true), cand(2, 480, false)];
    unjustified_deadline(&cands, None, Blame::Unknown, |cfg, on| {
        cfg.score.unjustified_unknown_evicts = on;
    });
}

/// One failing check of neighbour 1 (four links, 384) blamed `blame`, its Justify Request
/// answered with its next hop's signature or not, then the deadline: neighbour 1 is evicted
/// only unjustified and with the option `set` turns on.
fn unjustified_deadline(
    cands: &[VerifiableRoute],
    next_hop: Option<NeighbourId>,
    blame: Blame,
    set: fn(&mut VerifyConfig, bool),
) {
    let k = key(1);
    for (option, justified, want) in [
        (true, false, true),
        (true, true, false),
        (false, false, false),
    ] {
        let mut cfg = VerifyConfig::default();
        set(&mut cfg, option);
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 4;
        if let Some(x) = next_hop {
            w.next_hops.push((nb(1), x));
        }
        let c = first_check_of(&mut w, cands, nb(1));
        assert_eq!(
            (c.blame, c.cost, c.black_hole, c.verdict),
            (blame, Some(384), false, CheckVerdict::Kept),
            "{c:?}"
        );
        answer_justify_request(&mut w, justified);
        let acts = w.v.handle_timeout(w.now + verify::JUSTIFY_WAIT, cands);
        let evicted = evicts(&acts, nb(1));
        assert_eq!(evicted, want, "option {option} justified {justified}");
    }
}

/// §4.2.5, `unjustified_through_us_evicts` (on by default): neighbour 1 claims 144 and four
/// links measure 384; its next hop 2 tells us nothing for the destination (its route runs
/// through us, whose own metric is 240), so the failure blames neither (§4.2.1). Unjustified,
/// it evicts neighbour 1 at the deadline with the option (and not without); justified in time
/// (2 signs that it offers 1 only 48: the lie is 2's), it does not.
#[test]
fn an_unjustified_failure_through_us_is_evicted_with_the_option() {
    let unreachable = unreachable(2);
    let cands = [cand(1, 240, false), unreachable, cand(3, 240, true)];
    unjustified_deadline(&cands, Some(nb(2)), Blame::ThroughUs, |cfg, on| {
        cfg.score.unjustified_through_us_evicts = on;
    });
}

/// §4.2.5, `loop_through_us` (with `unjustified_through_us_evicts`): we route through
/// neighbour 1 (claim 144), its next hop 2 tells us nothing for the destination (its route runs
/// through us), and the Remote Hellos come back as Time Exceeded: a loop through us, a black
/// hole. Among honest routers no loop forms, so it is 1's lie or 2's. Unjustified, it evicts 1
/// at the deadline with the option (and not without); justified (2 signs that it offers 1 only
/// 48: the lie is 2's), it does not; nor does the same loop of a route we do not select.
#[test]
fn a_loop_through_us_is_evicted_unless_justified() {
    let k = key(1);
    let unreachable = unreachable(2);
    for (selected, option, justified, want) in [
        (true, true, false, true),
        (true, true, true, false),
        (true, false, false, false),
        (false, true, false, false),
    ] {
        let cands = [cand(1, 240, selected), unreachable, cand(3, 480, !selected)];
        let mut cfg = VerifyConfig::default();
        cfg.score.loop_through_us = option;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 64;
        w.loops = true;
        w.next_hops.push((nb(1), nb(2)));
        let c = first_check_of(&mut w, &cands, nb(1));
        // A route we do not select is blamed so already (its claim is under our metric plus
        // the two links), and as a black hole sets no deadline.
        let blame = if selected && !option {
            Blame::Unknown
        } else {
            Blame::ThroughUs
        };
        assert_eq!(
            (c.blame, c.black_hole, c.stable, c.verdict),
            (blame, true, true, CheckVerdict::Kept),
            "{c:?}"
        );
        answer_justify_request(&mut w, justified);
        let acts = w.v.handle_timeout(w.now + verify::JUSTIFY_WAIT, &cands);
        assert_eq!(
            evicts(&acts, nb(1)),
            want,
            "selected {selected} option {option} justified {justified}"
        );
    }
}

/// §4.2.6, `audit_claims`: neighbour 1 claims 288 and four links measure 384, a passing
/// check, and its next hop is none of our neighbours (no trace answers), so no origin test can
/// judge it. With the option the check asks neighbour 1 to justify the claim all the same;
/// unanswered, or answered by a next hop that signs more than the claim leaves room for (240:
/// floor 336), it evicts neighbour 1 at the deadline; justified (its next hop signs 48), or
/// withdrawn by then, it does not. Without the option, or where the trace names the next hop
/// (the origin test's case), nothing is asked.
#[test]
fn an_audited_claim_left_unjustified_evicts_with_the_option() {
    let k = key(1);
    let cands = [cand(1, 384, true), cand(2, 480, false)];
    let withdrawn = [unreachable(1), cand(2, 480, true)];
    // (option, next hop named, signed metric, claims at the deadline, asked, evicted)
    for (option, named, signed, later, asked, want) in [
        (true, false, None, &cands, true, true),
        (true, false, Some(48), &cands, true, false),
        (true, false, Some(240), &cands, true, true),
        (true, false, None, &withdrawn, true, false),
        (false, false, None, &cands, false, false),
        (true, true, None, &cands, false, false),
    ] {
        let mut cfg = VerifyConfig::default();
        cfg.score.audit_claims = option;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 4;
        if named {
            w.next_hops.push((nb(1), nb(3)));
        }
        let c = first_check_of(&mut w, &cands, nb(1));
        assert_eq!(
            (c.accuracy, c.blame, c.stable, c.verdict),
            (Some(1.0), Blame::Unknown, true, CheckVerdict::Kept),
            "{c:?}"
        );
        let requests: Vec<_> = w.justify.drain(..).filter(|(n, _)| *n == nb(1)).collect();
        assert_eq!(
            requests.len(),
            usize::from(asked),
            "option {option} named {named}"
        );
        // Neighbour 2's passing check, whose next hop is unknown too, may be audited as well.
        assert!(w.v.counters().audits >= u64::from(asked));
        if let (Some(m), Some((_, request))) = (signed, requests.first()) {
            let tlv = encode_signed_claim(request, m, &next_hop_owner(), &key(5));
            let r = w.v.handle_signed_claim(w.now, nb(1), &tlv, Some(288));
            assert_eq!(r.is_ok(), m + 96 <= 288, "signed {m}");
        }
        let just_before = w.now + (verify::JUSTIFY_WAIT - Duration::from_millis(1));
        assert!(!evicts(&w.v.handle_timeout(just_before, later), nb(1)));
        let mut evicted = None;
        // A withdrawal is followed until `confirm_within` has passed (§4.2.5).
        let end = w.now + verify::JUSTIFY_WAIT + Duration::from_secs(60);
        while w.now < end {
            w.now =
                w.v.poll_timeout()
                    .max(w.now + Duration::from_millis(1))
                    .min(end);
            evicted = evicted.or(eviction_in(&w.v.handle_timeout(w.now, later), nb(1)));
        }
        assert_eq!(
            evicted.is_some(),
            want,
            "option {option} named {named} signed {signed:?}"
        );
        // The eviction says it was the audit of this route, and the standing keeps it.
        if let Some(e) = evicted {
            let audit = Eviction {
                prefix: c.route.prefix,
                cause: EvictionCause::Audit,
            };
            assert_eq!(e, audit);
            let kept = w.v.neighbours().find(|(n, _)| **n == nb(1));
            assert_eq!(kept.and_then(|(_, s)| s.last_eviction()), Some(audit));
        }
    }
}

/// §4.2.6, `audit_signers_only`: neighbour 1's passing claim of
/// `an_audited_claim_left_unjustified_evicts_with_the_option` is not audited while no
/// destination it originates has answered through it (a stock Babel router never shows it);
/// once one has (neighbour 1 claims 0 for the destination, one link away, and it answers), it
/// is.
#[test]
fn audits_of_signers_only_wait_for_the_neighbour_to_sign() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.score.audit_signers_only = true;
    let cands = [cand(1, 384, true), cand(2, 480, false)];
    // Never shown: neither neighbour is audited.
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.hops = 4;
    let c = first_check_of(&mut w, &cands, nb(1));
    assert_eq!((c.accuracy, c.stable), (Some(1.0), true), "{c:?}");
    assert!(w.justify.is_empty(), "{:?}", w.justify);
    assert_eq!(w.v.counters().audits, 0);
    assert!(w.v.neighbours().all(|(_, s)| !s.signed()));
    // Shown: the destination, which neighbour 1 originates, answers through it.
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.hops = 1;
    let c = first_check_of(&mut w, &[cand(1, 96, true)], nb(1));
    assert_eq!((c.route.advertised, c.accuracy), (0, Some(1.0)), "{c:?}");
    assert!(w.v.neighbours().any(|(n, s)| *n == nb(1) && s.signed()));
    // A claim of 0 is never audited.
    assert_eq!(w.v.counters().audits, 0);
    w.hops = 4;
    let c = first_check_of(&mut w, &cands, nb(1));
    assert_eq!((c.accuracy, c.stable), (Some(1.0), true), "{c:?}");
    let asked: Vec<_> = w.justify.iter().map(|(n, _)| *n).collect();
    assert_eq!(asked, [nb(1)]);
    assert_eq!(w.v.counters().audits, 1);
}

/// §1.4, the hop-limit bound: a route claiming 288 (three links at the least cost, so a path
/// of at most 3 links passes at `S` = 0.8: `bound_hop_limit` is 3) whose path is 6 links long,
/// and whose destination's answers never come back (every Remote IHU arrives badly signed, as
/// a forger on the way back makes them). Without the bound the session is unanswered and
/// scores nothing; with it, the Time Exceeded of the bound shows at least 4 links: cost 384,
/// accuracy 0.75, a failing check blamed on nobody (no trace found a next hop).
#[test]
fn a_bound_that_runs_out_fails_an_unanswered_claim() {
    let k = key(1);
    let lost = |t: &mut Vec<u8>| {
        if let Some(b) = t.last_mut() {
            *b ^= 1;
        }
    };
    let mut cfg = VerifyConfig::default();
    cfg.score.hop_bound = true;
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.hops = 6;
    w.tamper = lost;
    let c = w.run_check(&[cand(1, 288, true)]);
    assert_eq!(w.bounds, vec![3; usize::from(verify::BOUND_PROBES)]);
    assert!(c.bounded && !c.black_hole, "{c:?}");
    assert_eq!(c.cost, Some(384));
    assert_eq!(c.accuracy, Some(0.75));
    assert_eq!(c.blame, Blame::Unknown);
    let n = w.v.counters();
    assert_eq!(n.answers, 0);
    assert_eq!((n.bounds_sent, n.bounds_exceeded, n.bounded), (2, 2, 1));
    assert_eq!(n.traces_dropped, 2, "each bound's second Time Exceeded");

    // The same without the bound: nothing scored.
    cfg.score.hop_bound = false;
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.hops = 6;
    w.tamper = lost;
    let c = w.run_check(&[cand(1, 288, true)]);
    assert!(w.bounds.is_empty());
    assert_eq!((c.cost, c.bounded), (None, false));
}

/// §1.4: an honest route (3 links, claiming 288) whose answers are lost: its bound reaches the
/// destination, no Time Exceeded comes back, and nothing is scored; answered, the
/// destination's measure decides and the bound adds nothing.
#[test]
fn a_bound_that_reaches_the_destination_shows_nothing() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.score.hop_bound = true;
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.hops = 3;
    w.tamper = |t| {
        if let Some(b) = t.last_mut() {
            *b ^= 1;
        }
    };
    let c = w.run_check(&[cand(1, 288, true)]);
    assert_eq!(w.bounds.len(), usize::from(verify::BOUND_PROBES));
    assert_eq!((c.cost, c.bounded), (None, false), "{c:?}");
    assert_eq!(w.v.counters().bounds_exceeded, 0);

    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.hops = 3;
    let c = w.run_check(&[cand(1, 288, true)]);
    assert_eq!(
        (c.cost, c.accuracy, c.bounded),
        (Some(288), Some(1.0), false)
    );
}

/// §1.4: an answered session is scored by the destination's measure even when a bound's Time
/// Exceeded says more (a router on the path can send one; it can as well lower the hop limit
/// of every Remote Hello, which the destination's count already shows).
#[test]
fn an_answer_takes_precedence_over_a_bound() {
    let k = key(1);
    let mut cfg = VerifyConfig::default();
    cfg.score.hop_bound = true;
    let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
    w.hops = 6;
    let c = w.run_check(&[cand(1, 288, true)]);
    assert_eq!(w.v.counters().bounds_exceeded, 2);
    assert_eq!((c.cost, c.bounded), (Some(576), false), "{c:?}");
}

/// §1.4 and §3.4: a route that loops is a black hole (`c` infinite), which confirms no eviction
/// (an honest relay of a loop made past it fails alike). Its bound runs out in the loop too,
/// and changes nothing: a black hole stays one.
#[test]
fn a_black_hole_stays_one_with_the_bound() {
    let k = key(1);
    let cands = [cand(1, 288, true), cand(2, 480, false)];
    for bound in [false, true] {
        let mut cfg = VerifyConfig::default();
        cfg.score.hop_bound = bound;
        let mut w = world(cfg, &k, *k.verifying_key().as_bytes());
        w.hops = 64;
        w.loops = true;
        let c = first_check_of(&mut w, &cands, nb(1));
        assert!(c.black_hole && !c.bounded, "{c:?}");
        assert_eq!(
            (c.cost, c.blame),
            (Some(babel_wire::INFINITY - 1), Blame::Unknown)
        );
        let n = w.v.counters();
        assert_eq!(n.bounds_exceeded > 0, bound, "{n:?}");
        assert_eq!(n.bounded, 0);
        // Not measured: no deadline evicts it unjustified.
        let acts = w.v.handle_timeout(w.now + verify::JUSTIFY_WAIT, &cands);
        assert!(!evicts(&acts, nb(1)), "bound {bound}");
    }
}
