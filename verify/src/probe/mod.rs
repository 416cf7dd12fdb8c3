//! The verifier's side of a check (`spec/verify.md` §2-§5): the [`Verifier`] sends Remote Hellos
//! through the neighbour under test and scores it from the destination's signed Remote IHU (the
//! destination's side is [`crate::Responder`]). This file holds the sessions, the cycle and the
//! conclusion of a check; `blame` whom a failing check blames (§4.2.1), `traces` the ICMPv6
//! Time Exceeded that find the neighbour's next hop and loops, and `justification` the Justify
//! Requests and the deadlines of unjustified failures (§4.2.5).

mod blame;
mod justification;
mod traces;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use babel_core::Instant;
use babel_wire::{Prefix, RemoteHello, RouterId};
use serde::{Deserialize, Serialize};

use crate::auth::{Keyring, ReportDropReason, SignedIhu, decode_signed_ihu};
use crate::correction::{CorrectionConfig, Corrections, NeighbourCorrection};
use crate::metric::{CostModel, MAX_COST, Measurement, accuracy};
use crate::schedule::{NeighbourId, Reason, ScheduleConfig, Scheduler, VerifiableRoute};
use crate::score::{
    Blame, CheckVerdict, Eviction, EvictionCause, Evidence, NeighbourScore, ScoreConfig,
};
use justification::justify_retry_at;

/// IPv6 hop limit Remote Hellos are sent with; the destination reads the hop count from what is
/// left (§1.1).
pub const HOP_LIMIT: u8 = 64;

/// IPv6 hop limit of the one Remote Hello per session that finds the neighbour's next hop on the
/// route under test (§4.2.1): it runs out at the second router, which answers with an ICMPv6
/// Time Exceeded from its own address.
pub const TRACE_HOP_LIMIT: u8 = 2;

/// The deepest trace (§4.2.1, `ScoreConfig::trace_depth`): traces go out with hop limits
/// [`TRACE_HOP_LIMIT`] to `TRACE_HOP_LIMIT + MAX_TRACE_DEPTH - 1`.
pub const MAX_TRACE_DEPTH: u8 = 8;

/// The highest hop limit a trace is sent with: a Remote Hello that reaches its destination with
/// at most this much hop limit left may be a trace, and measures nothing (§4.2.1, §9.6).
pub const MAX_TRACE_HOP_LIMIT: u8 = TRACE_HOP_LIMIT + MAX_TRACE_DEPTH - 1;

/// With `hop_bound` (§1.4): how many Remote Hellos of a session are sent again with the hop
/// limit the claim allows, spread over the session (the first, then every `probes / 2`).
pub const BOUND_PROBES: u16 = 2;

/// §1.4: the hop limit a Remote Hello must be sent with so that it reaches the destination only
/// over a path short enough to pass a check of a route claiming `metric`: the most links `k`
/// whose cost `k · hop_cost` still passes (`a ≥ threshold`). `None` when no such Remote Hello
/// is needed or can be sent: `k` is 0, at least [`HOP_LIMIT`], or one of the hop limits the
/// session's `trace_depth` traces already go out with (their Time Exceeded bound the path as
/// well).
pub fn bound_hop_limit(metric: u16, hop_cost: u16, threshold: f64, trace_depth: u8) -> Option<u8> {
    if hop_cost == 0 || threshold.is_nan() || threshold <= 0.0 {
        return None;
    }
    let passes = |k: u32| accuracy(metric, cost_of_links(k, hop_cost)) >= threshold;
    let guess = (f64::from(metric) / (threshold * f64::from(hop_cost))).floor();
    let mut k = if guess.is_finite() && guess >= 0.0 {
        (guess as u32).min(u32::from(HOP_LIMIT))
    } else {
        return None;
    };
    // The guess is off by one at most (rounding); the scoring's own test decides.
    while k < u32::from(HOP_LIMIT) && passes(k + 1) {
        k += 1;
    }
    while k > 0 && !passes(k) {
        k -= 1;
    }
    let k = u8::try_from(k).ok().filter(|k| *k >= 1 && *k < HOP_LIMIT)?;
    let traced = TRACE_HOP_LIMIT..TRACE_HOP_LIMIT.saturating_add(trace_depth);
    (!traced.contains(&k)).then_some(k)
}

/// The least an honest path of `links` links costs (§1.2): `links · hop_cost`, capped.
fn cost_of_links(links: u32, hop_cost: u16) -> u16 {
    u16::try_from(links.saturating_mul(u32::from(hop_cost)))
        .unwrap_or(MAX_COST)
        .min(MAX_COST)
}

/// With `verified_next_hop` (§4.2.1): how recently a next hop must have passed a check of ours
/// for its claims to convict another neighbour as the origin of a lie. Six cycles: a neighbour
/// is checked once a cycle (§2.2).
pub const NEXT_HOP_TRUST: Duration = Duration::from_secs(60);

/// Everything configurable about verification (defaults in `spec/verify.md` §7).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct VerifyConfig {
    /// The verifiable metric.
    pub cost: CostModel,
    /// Scheduling.
    pub schedule: ScheduleConfig,
    /// Accuracy and eviction.
    pub score: ScoreConfig,
    /// Metric correction.
    pub correction: CorrectionConfig,
}

/// Counters (`dump`, `babelctl show`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCounters {
    /// Probe sessions started.
    pub sessions: u64,
    /// Remote Hellos sent.
    pub probes_sent: u64,
    /// Remote IHUs accepted.
    pub answers: u64,
    /// Sessions that ended without an accepted Remote IHU.
    pub unanswered: u64,
    /// Unanswered sessions scored as black holes (the route loops, or the destination answered
    /// us recently).
    pub black_holes: u64,
    /// Remote Hellos that came back as ICMPv6 Time Exceeded.
    pub looped: u64,
    /// Hop-limited Remote Hellos sent to find the neighbour's next hop (§4.2.1).
    pub traces_sent: u64,
    /// Their ICMPv6 Time Exceeded that matched the session's own trace.
    pub traces_answered: u64,
    /// ICMPv6 Time Exceeded dropped: matching no trace of a session under way (forged, stale,
    /// repeated) or malformed.
    pub traces_dropped: u64,
    /// Remote Hellos sent with the hop limit the neighbour's claim allows (§1.4, `hop_bound`).
    #[serde(default)]
    pub bounds_sent: u64,
    /// Their ICMPv6 Time Exceeded: the path is longer than the claim allows.
    #[serde(default)]
    pub bounds_exceeded: u64,
    /// Unanswered sessions scored by the hop-limit bound alone (§1.4).
    #[serde(default)]
    pub bounded: u64,
    /// Remote IHUs dropped: malformed.
    pub malformed: u64,
    /// Remote IHUs dropped: signature does not verify.
    pub bad_signature: u64,
    /// Remote IHUs dropped: key not bound to the prefix.
    pub unbound_key: u64,
    /// Remote IHUs dropped: replayed counter.
    pub replayed: u64,
    /// Remote IHUs dropped: not for a session of ours.
    pub unexpected: u64,
    /// Checks scored.
    pub checks: u64,
    /// Routes whose metric was corrected.
    pub corrections: u64,
    /// Neighbours evicted.
    pub evictions: u64,
    /// Neighbours readmitted.
    pub readmissions: u64,
    /// Check Failed TLVs sent to neighbours whose route failed a check (§2.5).
    pub check_failed_sent: u64,
    /// Check Failed TLVs taken from neighbours (§2.5).
    pub check_failed_received: u64,
    /// Justify Requests sent to neighbours whose route failed a check, or whose claim a
    /// passing check audits, retries included (§4.2.5, §4.2.6).
    pub justify_requests_sent: u64,
    /// Passing checks whose claim was audited: the neighbour was asked to justify it (§4.2.6,
    /// `audit_claims`).
    #[serde(default)]
    pub audits: u64,
    /// Signed Claims that justified a neighbour's claim (§4.2.5).
    pub justified: u64,
    /// Signed Claims refused: malformed, badly signed, unbound, answering no request of ours,
    /// or covering less than the neighbour claims (§4.2.5).
    pub claims_refused: u64,
    /// Failing (or audited) claims that rose to what they should be only once the neighbour
    /// was asked to justify them (§4.2.5; they evict with `asked_rises_evict`).
    #[serde(default)]
    pub asked_rises: u64,
    /// Claims that rose to their next hop's signed word when asked, fell back under it and
    /// rose again when asked again (§4.2.5; they evict with `fall_back_evicts`).
    #[serde(default)]
    pub fell_back: u64,
}

impl ProbeCounters {
    /// Adds another set of counters (totals over several verifiers).
    pub fn add(&mut self, o: &ProbeCounters) {
        let ProbeCounters {
            sessions,
            probes_sent,
            answers,
            unanswered,
            black_holes,
            looped,
            traces_sent,
            traces_answered,
            traces_dropped,
            bounds_sent,
            bounds_exceeded,
            bounded,
            malformed,
            bad_signature,
            unbound_key,
            replayed,
            unexpected,
            checks,
            corrections,
            evictions,
            readmissions,
            check_failed_sent,
            check_failed_received,
            justify_requests_sent,
            audits,
            justified,
            claims_refused,
            asked_rises,
            fell_back,
        } = *o;
        self.sessions += sessions;
        self.probes_sent += probes_sent;
        self.answers += answers;
        self.unanswered += unanswered;
        self.black_holes += black_holes;
        self.looped += looped;
        self.traces_sent += traces_sent;
        self.traces_answered += traces_answered;
        self.traces_dropped += traces_dropped;
        self.bounds_sent += bounds_sent;
        self.bounds_exceeded += bounds_exceeded;
        self.bounded += bounded;
        self.malformed += malformed;
        self.bad_signature += bad_signature;
        self.unbound_key += unbound_key;
        self.replayed += replayed;
        self.unexpected += unexpected;
        self.checks += checks;
        self.corrections += corrections;
        self.evictions += evictions;
        self.check_failed_sent += check_failed_sent;
        self.check_failed_received += check_failed_received;
        self.justify_requests_sent += justify_requests_sent;
        self.audits += audits;
        self.justified += justified;
        self.claims_refused += claims_refused;
        self.asked_rises += asked_rises;
        self.fell_back += fell_back;
        self.readmissions += readmissions;
    }

    fn count(&mut self, r: ReportDropReason) {
        let c = match r {
            ReportDropReason::Malformed => &mut self.malformed,
            ReportDropReason::BadSignature => &mut self.bad_signature,
            ReportDropReason::Unbound => &mut self.unbound_key,
            ReportDropReason::Replayed => &mut self.replayed,
            ReportDropReason::Unexpected => &mut self.unexpected,
        };
        *c += 1;
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeAction {
    /// Send this Remote Hello (TLV 224, hop limit [`HOP_LIMIT`]; the daemon's port is in
    /// `spec/verify.md` §9) to the destination
    /// address of `hello.prefix`, forwarded through `neighbour` whatever the selected route
    /// (policy routing with a firewall mark, §2.3), or inside the tunnel to it if there is one.
    SendRemoteHello {
        /// The neighbour under test.
        neighbour: NeighbourId,
        /// The TLV.
        hello: RemoteHello,
    },
    /// Send this Remote Hello with IPv6 hop limit `hop_limit` through `neighbour` (§4.2.1), and
    /// call [`Verifier::handle_trace_answer`] with the neighbour whose address the ICMPv6 Time
    /// Exceeded comes from, if it is one of ours. Only with `ScoreConfig::attribution`; one per
    /// hop limit from [`TRACE_HOP_LIMIT`] up to `ScoreConfig::trace_depth` deep.
    SendTrace {
        /// The neighbour under test.
        neighbour: NeighbourId,
        /// The TLV (the session's first Remote Hello, its timestamp plus `hop_limit - 2`
        /// microseconds, so that each trace's Time Exceeded says which trace it answers).
        hello: RemoteHello,
        /// The IPv6 hop limit: it runs out at the router `hop_limit - 1` links past the
        /// neighbour (the neighbour's next hop for [`TRACE_HOP_LIMIT`]).
        hop_limit: u8,
    },
    /// Send this Remote Hello with IPv6 hop limit `hop_limit` through `neighbour` (§1.4, with
    /// `ScoreConfig::hop_bound`), as [`ProbeAction::SendTrace`] is sent: the most links a path
    /// may have and still pass the check of the neighbour's claim. An ICMPv6 Time Exceeded
    /// quoting it, from whichever router, goes to [`Verifier::handle_trace_answer`] (or
    /// [`Verifier::handle_trace_returned`]) as a trace's does.
    SendBound {
        /// The neighbour under test.
        neighbour: NeighbourId,
        /// The TLV (a Remote Hello of the session, its timestamp plus [`MAX_TRACE_DEPTH`] plus
        /// the bound's index, so that its Time Exceeded says which one it answers).
        hello: RemoteHello,
        /// The IPv6 hop limit ([`bound_hop_limit`]).
        hop_limit: u8,
    },
    /// A check ended.
    Checked(Check),
    /// Tell `neighbour` that its route to `prefix` failed our check (§2.5, with
    /// `ScheduleConfig::check_requests`): a Check Failed TLV (226) to its link-local address on
    /// the link, hop limit 255. An honest relay then checks its own route to `prefix` first in
    /// its next cycle and corrects its next hop's lie before we confirm ours.
    SendCheckFailed {
        /// The neighbour whose route failed.
        neighbour: NeighbourId,
        /// The destination.
        prefix: Prefix,
    },
    /// Ask `neighbour` to justify its claim for the route that failed our check (§4.2.5, with
    /// `ScoreConfig::justification`): a Justify Request TLV (227) to its link-local
    /// address on the link, hop limit 255. It answers with its next hop's Signed Claim
    /// ([`Verifier::handle_signed_claim`]).
    SendJustifyRequest {
        /// The neighbour whose route failed.
        neighbour: NeighbourId,
        /// The request (destination and nonce).
        request: crate::ClaimRequest,
    },
    /// §4.2.5: a claim rose only once we asked the neighbour to justify it (counted in
    /// `asked_rises`, with `asked_rises_evict` on or off). With the option, the second such
    /// claim of the neighbour within `asked_rise_window` evicts it: a
    /// [`ProbeAction::Standing`] follows.
    AskedRise(AskedRise),
    /// The neighbour's standing changed: give the engine its accuracy
    /// (`Engine::set_neighbour_accuracy`; [`Verifier::engine_accuracy`]).
    Standing {
        /// Neighbour.
        neighbour: NeighbourId,
        /// Evicted now, and why (its routes leave selection and the kernel); `None`:
        /// readmitted (§4.3).
        eviction: Option<Eviction>,
    },
}

/// §4.2.5, `asked_rises_evict`: a neighbour's claim for a destination, which failed our check
/// (or was audited) at `asked`, rose to `risen` only once we asked it to justify the claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AskedRise {
    /// The neighbour.
    pub neighbour: NeighbourId,
    /// The destination.
    pub prefix: Prefix,
    /// Its claim (advertised metric) when we asked.
    pub asked: u16,
    /// Its claim once risen.
    pub risen: u16,
}

/// The result of one check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Check {
    /// The route checked.
    pub route: VerifiableRoute,
    /// Why it was chosen.
    pub reason: Reason,
    /// The advertised metric `m` (plus our link cost) when the session ended.
    pub metric: u16,
    /// The measured cost `c`; `None` if unanswered (no score then).
    pub cost: Option<u16>,
    /// The accuracy `a = min(m/c, 1)`.
    pub accuracy: Option<f64>,
    /// Metric correction: use this metric for the route until then
    /// (`Engine::set_verified_metric`).
    pub correction: Option<(u16, Instant)>,
    /// Neighbour-wide correction (§5.2): a failing check corrects every other route through
    /// the neighbour as if it lied as much, until then.
    pub neighbour_correction: Option<NeighbourCorrection>,
    /// Unanswered, and scored as a black hole (§3.4).
    pub black_hole: bool,
    /// Unanswered, and scored by the hop-limit bound (§1.4): `cost` is the fewest links the
    /// path was shown to have, times `hop_cost` (a black hole is scored as one, §3.4).
    pub bounded: bool,
    /// Whom a failing check blames (§4.2.1; [`Blame::Unknown`] without attribution); on a
    /// passing check [`Blame::Origin`] when, with `passing_origin`, the neighbour claims under
    /// its next hop's claim at both ends of the session (§4.2.1, passing checks).
    pub blame: Blame,
    /// The route through the neighbour stayed as it was for the whole session: same advertised
    /// metric, our metric not risen (§4.2.2; evidence only then with
    /// `stable_evidence`).
    pub stable: bool,
    /// The first of our neighbours on the neighbour's route past it, found by the session's
    /// traces (§4.2.1; `None` without attribution): its next hop when `trace_links` is 1.
    pub next_hop: Option<NeighbourId>,
    /// How many links past the neighbour under test the router the traces found
    /// (`next_hop`, or us when `returned`) is; 0 when they found none.
    pub trace_links: u8,
    /// The neighbour's next hop on the route is us: the session's trace came back to us
    /// (§4.2.1, a loop through the verifier).
    pub returned: bool,
    /// What the check did to the neighbour.
    pub verdict: CheckVerdict,
}

#[derive(Clone, Debug)]
struct Session {
    route: VerifiableRoute,
    reason: Reason,
    via: RouterId,
    first_seqno: u16,
    started: Instant,
    sent: u16,
    next_hello: Instant,
    ends: Instant,
    answer: Option<(SignedIhu, Instant)>,
    looped: bool,
    /// The session's traces (§4.2.1), the one with hop limit [`TRACE_HOP_LIMIT`] first, then
    /// one link deeper each.
    traces: Vec<Trace>,
    /// The session's Remote Hellos sent with the hop limit the claim allows (§1.4).
    bounds: Vec<Bound>,
    /// The route stayed as it was when the session started (§4.2.2).
    stable: bool,
    /// The routes to the destination we held when the session started (§4.2.1, the origin at
    /// both ends of the session).
    at_start: Vec<VerifiableRoute>,
}

/// §4.2.2: whether `now` is the route `start` unchanged: same advertised metric, and our metric
/// (advertised plus our link) not risen. Seqnos are not compared: the source raises its seqno
/// whenever anybody asks for one, which in a mesh of verifiers is most sessions.
fn unchanged(start: &VerifiableRoute, now: &VerifiableRoute) -> bool {
    now.advertised == start.advertised && now.metric <= start.metric
}

impl Session {
    /// The route under test as it stands in `candidates` (same destination, same neighbour).
    fn route_in<'a>(&self, candidates: &'a [VerifiableRoute]) -> Option<&'a VerifiableRoute> {
        candidates
            .iter()
            .find(|c| c.prefix == self.route.prefix && c.neighbour == self.route.neighbour)
    }

    /// The first router on the neighbour's route past it that the traces found to be one of our
    /// neighbours or us, and how many links past the neighbour it is (§4.2.1). Nothing if a
    /// trace before it had conflicting answers (one was forged).
    fn found(&self) -> Option<(u8, TraceHop)> {
        for (i, t) in self.traces.iter().enumerate() {
            match t {
                Trace::Answered(_, h @ (TraceHop::Neighbour(_) | TraceHop::Us), _) => {
                    return Some((u8::try_from(i + 1).unwrap_or(u8::MAX), *h));
                }
                Trace::Conflicting(_) => return None,
                _ => {}
            }
        }
        None
    }

    /// The first of our neighbours on the route past the neighbour, if the traces found one.
    fn next_hop(&self) -> Option<NeighbourId> {
        match self.found() {
            Some((_, TraceHop::Neighbour(x))) => Some(x),
            _ => None,
        }
    }

    /// Whether the traces came back to us: the route runs from the neighbour back to us.
    fn returned(&self) -> bool {
        matches!(self.found(), Some((_, TraceHop::Us)))
    }

    /// Whether the answer that found the router arrived on the link to that neighbour (§4.2.1,
    /// a next hop through us: an answer forged by the neighbour under test arrives on its own
    /// link).
    fn found_on_its_link(&self) -> bool {
        let Some((k, _)) = self.found() else {
            return false;
        };
        matches!(
            self.traces.get(usize::from(k).saturating_sub(1)),
            Some(Trace::Answered(_, TraceHop::Neighbour(_), true))
        )
    }

    /// How many links past the neighbour the router the traces found is (0: none).
    fn trace_links(&self) -> u8 {
        self.found().map_or(0, |(k, _)| k)
    }

    /// §1.4: the fewest links the route under test was shown to have (0: nothing shown). A
    /// Remote Hello sent with hop limit `k` that came back as a Time Exceeded ran out at a
    /// router `k` links away that was not the destination: the path has at least `k + 1`.
    /// Traces count as well; one with conflicting answers does not.
    fn links_at_least(&self) -> u32 {
        let traces = self.traces.iter().zip(0u32..).filter_map(|(t, i)| match t {
            Trace::Answered(..) => Some(u32::from(TRACE_HOP_LIMIT) + i + 1),
            _ => None,
        });
        let bounds = self
            .bounds
            .iter()
            .filter(|b| b.exceeded)
            .map(|b| u32::from(b.hop_limit) + 1);
        traces.chain(bounds).max().unwrap_or(0)
    }
}

/// A Remote Hello sent with the hop limit the neighbour's claim allows (§1.4).
#[derive(Clone, Debug, PartialEq)]
struct Bound {
    /// What its Time Exceeded must quote, exactly.
    hello: RemoteHello,
    /// The hop limit it left with.
    hop_limit: u8,
    /// A Time Exceeded quoting it arrived.
    exceeded: bool,
}

/// Who answered a session's trace (§4.2.1): the neighbour's next hop on the route under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TraceHop {
    /// One of our neighbours.
    Neighbour(NeighbourId),
    /// We did: the trace came back to us, the neighbour forwards the route to us.
    Us,
    /// A router that is not our neighbour (or the neighbour under test itself).
    Other,
}

impl TraceHop {
    fn of(from: Option<NeighbourId>) -> TraceHop {
        from.map_or(TraceHop::Other, TraceHop::Neighbour)
    }
}

/// Where a session's trace stands (§4.2.1).
#[derive(Clone, Debug, PartialEq)]
enum Trace {
    /// Sent: this Remote Hello, exactly, is what its Time Exceeded must quote.
    Sent(RemoteHello),
    /// Answered, by one of our neighbours, by us, or by a router that is not our neighbour;
    /// and whether the answer arrived on the link to the neighbour it names.
    Answered(RemoteHello, TraceHop, bool),
    /// Two answers that name different routers: somebody forged one, nothing is known.
    Conflicting(RemoteHello),
}

impl Trace {
    /// The Remote Hello sent as the trace.
    fn hello(&self) -> &RemoteHello {
        match self {
            Trace::Sent(h) | Trace::Answered(h, _, _) | Trace::Conflicting(h) => h,
        }
    }
}

/// What became of an ICMPv6 Time Exceeded offered as a trace's answer
/// ([`Verifier::handle_trace_answer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceAnswer {
    /// It quotes the trace of a session under way, exactly, and is the first answer.
    Accepted,
    /// It quotes no trace of a session under way (forged, stale, or not a trace): dropped.
    Unmatched,
    /// The trace was answered already: dropped; if it names another router than the first
    /// answer, the session's next hop is forgotten (one of the two was forged).
    Repeated,
}

/// The verifier of one router (sans-IO: time and seed are parameters).
#[derive(Clone, Debug)]
pub struct Verifier {
    cfg: VerifyConfig,
    router_id: RouterId,
    scheduler: Scheduler,
    scores: BTreeMap<NeighbourId, NeighbourScore>,
    corrections: Corrections<(Prefix, NeighbourId)>,
    /// §5.2: the neighbour-wide correction in force per neighbour, and whether every route
    /// through the neighbour has been given it since it was set.
    neighbour_corrections: BTreeMap<NeighbourId, (NeighbourCorrection, bool)>,
    keyring: Keyring,
    /// Our own public key, set by [`Verifier::set_own_key`]: a Signed Claim of ours needs no
    /// binding (§4.2.5 step 3, a relay whose route runs through us asked us).
    own_key: Option<[u8; 32]>,
    seqnos: BTreeMap<(Prefix, NeighbourId), u16>,
    /// Last answered session per destination (evidence that its answers reach us).
    answered: BTreeMap<Prefix, Instant>,
    /// The end of each neighbour's last session and whether it passed (answered, a measured
    /// accuracy of at least `S`, not blamed on the origin): with `verified_next_hop`, only a
    /// neighbour whose last session passed can make another neighbour the origin of a lie
    /// (§4.2.1).
    passed: BTreeMap<NeighbourId, (Instant, bool)>,
    /// §4.2.5: per neighbour and destination, the lowest claim its latest justification
    /// covers (its next hop's signed offer plus one cheapest link) and when it arrived.
    justifications: BTreeMap<(NeighbourId, Prefix), (u16, Instant)>,
    /// §4.2.5: Justify Requests not answered yet: nonce, when first sent, and how many times.
    justify_requests: BTreeMap<(NeighbourId, Prefix), JustifyRequest>,
    /// §4.2.5, `unjustified_origin_evicts`: failures blamed on the neighbour as the origin
    /// (with `unjustified_unknown_evicts`, measured ones blamed on nobody too), awaiting its
    /// justification until their deadline; each with the metric and cost of the failure.
    origin_deadlines: BTreeMap<(NeighbourId, Prefix), Deadline>,
    /// §4.2.5: when to look at the claims again (every [`crate::RISE_POLL`]) while a refused
    /// Signed Claim waits for its claim to reach the floor (`justify_on_rise`) or a failure
    /// awaits its deadline (`reask_moved_claim`, which notes a claim withdrawn meanwhile), or
    /// a neighbour waits for a feasible route within the cycle (`late_start`).
    route_poll: Option<Instant>,
    /// §2.2, `late_start`: the neighbours that had routes to used destinations at the cycle's
    /// start but none feasible, waiting for one within the cycle (at most one entry each).
    late: Vec<NeighbourId>,
    /// §4.2.5, `asked_rises_evict`: claims that rose only once asked, when, and when they were
    /// asked about, not reported (nor with the option scored) yet (at most one per failure
    /// awaiting its deadline: bounded as those are).
    asked_rises: Vec<(AskedRise, Instant, Instant)>,
    /// §4.2.5: when the claim of the latest rise noted for each route was asked about: one
    /// ask, one rise, however many times it is seen (at its deadline, then again when a
    /// request sent again is answered). Bounded to `max_used` (the oldest asks make room).
    rises_noted: BTreeMap<(NeighbourId, Prefix), Instant>,
    /// §4.2.5, `fall_back_evicts`: claims that rose to a Signed Claim's floor when asked,
    /// watched for a fall back under it (at most `max_used`).
    rise_watches: BTreeMap<(NeighbourId, Prefix), RiseWatch>,
    /// §4.2.5, `fall_back_evicts`: claims that fell back and rose again, not scored yet (at
    /// most one per watch).
    fell_back: Vec<((NeighbourId, Prefix), Instant)>,
    /// Sessions under way, by neighbour and destination (§2.2: up to `sessions_per_neighbour`
    /// per neighbour).
    sessions: BTreeMap<(NeighbourId, Prefix), Session>,
    next_cycle: Instant,
    max_neighbours: usize,
    counters: ProbeCounters,
}

/// Routes whose next Remote Hello seqno is remembered at most (all are forgotten past it).
const MAX_SEQNO_ROUTES: usize = 4096;
/// Destinations whose last answered session is remembered at most.
const MAX_ANSWERED: usize = 1024;

/// The opaque 8-octet tag a verifier puts in the Remote Hello's Via field for a neighbour (the
/// destination only echoes it).
pub fn via_tag(n: &NeighbourId) -> RouterId {
    let mut t = [0u8; 8];
    let ip = match n.address {
        std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(a) => a.octets(),
    };
    for (i, b) in ip.iter().enumerate() {
        if let Some(s) = t.get_mut(i % 8) {
            *s ^= b.rotate_left(i as u32 / 8);
        }
    }
    for (i, b) in n.ifindex.to_be_bytes().iter().enumerate() {
        if let Some(s) = t.get_mut(i) {
            *s ^= b;
        }
    }
    RouterId(t)
}

impl Verifier {
    /// A verifier for router `router_id`; first cycle one cycle after `now`.
    pub fn new(
        cfg: VerifyConfig,
        router_id: RouterId,
        keyring: Keyring,
        seed: u64,
        now: Instant,
    ) -> Verifier {
        let mut s = Scheduler::new(seed);
        // Spread the cycles of different routers.
        let jitter = cfg.schedule.cycle.as_micros() as u64;
        let first = now + cfg.schedule.cycle + Duration::from_micros(s_rng(&mut s, jitter));
        Verifier {
            cfg,
            router_id,
            scheduler: s,
            scores: BTreeMap::new(),
            corrections: Corrections::default(),
            neighbour_corrections: BTreeMap::new(),
            keyring,
            own_key: None,
            seqnos: BTreeMap::new(),
            answered: BTreeMap::new(),
            passed: BTreeMap::new(),
            justifications: BTreeMap::new(),
            justify_requests: BTreeMap::new(),
            origin_deadlines: BTreeMap::new(),
            route_poll: None,
            late: Vec::new(),
            asked_rises: Vec::new(),
            rises_noted: BTreeMap::new(),
            rise_watches: BTreeMap::new(),
            fell_back: Vec::new(),
            sessions: BTreeMap::new(),
            next_cycle: first,
            max_neighbours: 256,
            counters: ProbeCounters::default(),
        }
    }

    /// Configuration.
    pub fn config(&self) -> &VerifyConfig {
        &self.cfg
    }

    /// Our own public key (the [`crate::Responder`]'s): a Signed Claim signed with it is ours
    /// and is taken without a binding in the keyring (§4.2.5 step 3). A neighbour whose route
    /// runs through us and that advertises it back to us asks us for the Signed Claim that
    /// justifies its claim; ours says what we offer it, so its claim is justified only if it
    /// is at least our own metric plus a link, a claim that cannot undercut our own route.
    pub fn set_own_key(&mut self, key: [u8; 32]) {
        self.own_key = Some(key);
    }

    /// Every table whose size input from the wire or the route table can drive, against its
    /// bound (`spec/verify.md` §6). The sessions under way are not among them: there are at
    /// most `sessions_per_neighbour` per neighbour scored, started only by the schedule.
    pub fn table_sizes(&self) -> Vec<crate::TableSize> {
        use crate::TableSize as T;
        let max_used = self.cfg.schedule.max_used.max(1);
        let mut out = vec![
            T {
                name: "neighbours scored",
                len: self.scores.len(),
                max: self.max_neighbours,
            },
            T {
                name: "destinations of one neighbour's score",
                len: self
                    .scores
                    .values()
                    .map(NeighbourScore::destinations)
                    .max()
                    .unwrap_or(0),
                max: self.cfg.score.max_destinations.max(1),
            },
            T {
                name: "neighbours' last sessions",
                len: self.passed.len(),
                max: self.max_neighbours,
            },
            T {
                name: "neighbour-wide corrections",
                len: self.neighbour_corrections.len(),
                max: self.max_neighbours,
            },
            T {
                name: "routes with correction history",
                len: self.corrections.len(),
                max: self.cfg.correction.max_routes.max(1),
            },
            T {
                name: "Remote Hello seqnos",
                len: self.seqnos.len(),
                max: MAX_SEQNO_ROUTES,
            },
            T {
                name: "answered destinations",
                len: self.answered.len(),
                max: MAX_ANSWERED,
            },
            T {
                name: "justifications",
                len: self.justifications.len(),
                max: max_used,
            },
            T {
                name: "Justify Requests awaiting an answer",
                len: self.justify_requests.len(),
                max: max_used,
            },
            T {
                name: "rises noted",
                len: self.rises_noted.len(),
                max: max_used,
            },
            T {
                name: "failures awaiting justification",
                len: self.origin_deadlines.len(),
                max: max_used,
            },
            T {
                name: "claims watched for a fall back",
                len: self.rise_watches.len(),
                max: max_used,
            },
            self.keyring.counters_size(),
        ];
        out.extend(self.scheduler.table_sizes(&self.cfg.schedule));
        out
    }

    /// Counters.
    pub fn counters(&self) -> ProbeCounters {
        self.counters
    }

    /// Traffic to `prefix` was seen (§2.1: "used" is measured).
    pub fn mark_used(&mut self, now: Instant, prefix: Prefix) {
        self.scheduler.mark_used(now, &self.cfg.schedule, prefix);
    }

    /// Destinations to hand routes for, sorted: those used within the window (§2.1), those a
    /// neighbour asked us to check (§2.5), and those the verifier still reads whether or not
    /// we use them now: of a session in progress (§4.2.2, its route at its end) and of a
    /// failure awaiting its deadline (§4.2.5, the claim made then). A driver may hand more
    /// (the daemon hands every route).
    pub fn used(&self, now: Instant) -> Vec<Prefix> {
        let mut v = self.scheduler.wanted(now, &self.cfg.schedule);
        v.extend(self.sessions.keys().map(|(_, p)| *p));
        v.extend(self.origin_deadlines.keys().map(|(_, p)| *p));
        v.extend(self.rise_watches.keys().map(|(_, p)| *p));
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Whether the next [`Verifier::handle_timeout`] at `now` reads `candidates` (a cycle starts
    /// or a session ends); otherwise an empty slice will do.
    pub fn wants_routes(&self, now: Instant) -> bool {
        self.next_cycle <= now
            || self
                .sessions
                .values()
                .any(|s| s.sent >= self.cfg.schedule.probes && s.ends <= now)
            || self.origin_deadlines.values().any(|d| d.at <= now)
            || (self.cfg.score.justify_on_rise && self.awaiting_rise().next().is_some())
            || self.route_poll.is_some_and(|r| r <= now)
    }

    /// A neighbour's score record.
    pub fn neighbour(&self, n: &NeighbourId) -> Option<&NeighbourScore> {
        self.scores.get(n)
    }

    /// Every scored neighbour.
    pub fn neighbours(&self) -> impl Iterator<Item = (&NeighbourId, &NeighbourScore)> + '_ {
        self.scores.iter()
    }

    /// The accuracy (per mille) to give the engine for `n`: the neighbour's score under the
    /// configured rule, kept on the side of `threshold_pm` that the verifier's decision is on
    /// (evicted strictly below, admitted at or above).
    pub fn engine_accuracy(&self, now: Instant, n: &NeighbourId, threshold_pm: u16) -> u16 {
        let Some(s) = self.scores.get(n) else {
            return 1000;
        };
        let pm = (s.score(self.cfg.score.rule) * 1000.0).round() as u16;
        if s.is_evicted(now) {
            pm.min(threshold_pm.saturating_sub(1))
        } else {
            pm.max(threshold_pm)
        }
    }

    /// When [`Verifier::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_cycle;
        for s in self.sessions.values() {
            t = t.min(if s.sent < self.cfg.schedule.probes {
                s.next_hello
            } else {
                s.ends
            });
        }
        for s in self.scores.values() {
            if let Some(u) = s.evicted_until() {
                t = t.min(u);
            }
        }
        if let Some(d) = self.origin_deadlines.values().map(|d| d.at).min() {
            t = t.min(d);
        }
        if let Some(r) = self
            .justify_requests
            .values()
            .filter_map(|r| justify_retry_at(r.at, r.sends))
            .min()
        {
            t = t.min(r);
        }
        if let Some(r) = self.route_poll {
            t = t.min(r);
        }
        if let Some(r) = self
            .asked_rises
            .iter()
            .map(|(_, at, _)| *at)
            .chain(self.fell_back.iter().map(|(_, at)| *at))
            .min()
        {
            t = t.min(r);
        }
        t
    }

    /// §5.2: the verified metrics a neighbour-wide correction gives the routes through the
    /// neighbour, for the driver to apply with `Engine::set_verified_metric` (neighbour,
    /// destination, metric, until), to call after every timer. After the failing check that
    /// set it, every route through the neighbour without a verified metric gets the factor on
    /// its claim then, once. With `follow_claims`, the correction follows the claims while in
    /// force: every route through the neighbour gets it once, then again whenever its verified
    /// metric is not what the factor gives now (a claim that moved, a route that is new): a
    /// liar's claims move as the mesh reacts to its lies, and a metric computed from a claim
    /// at the check can fall under the claim made later. Routes with a correction of their own
    /// in force (their own check measured them), with a source prefix, or unreachable are left
    /// alone either way. Corrections past their end are forgotten.
    pub fn neighbour_corrections(
        &mut self,
        now: Instant,
        routes: &[babel_core::RouteView],
    ) -> Vec<(NeighbourId, Prefix, u16, Instant)> {
        self.neighbour_corrections
            .retain(|_, (nc, _)| now < nc.until);
        let mut out = Vec::new();
        if !self.has_neighbour_corrections(now) {
            return out;
        }
        for r in routes {
            let n = NeighbourId {
                ifindex: r.ifindex,
                address: r.via,
            };
            let Some((nc, applied)) = self.neighbour_corrections.get(&n) else {
                continue;
            };
            if r.src_prefix.is_some()
                || r.metric >= babel_wire::Metric::INFINITY
                || self.corrections.in_force(now, &(r.prefix, n))
            {
                continue;
            }
            let want = nc.corrected(r.metric.0, r.refmetric.0);
            let due = if self.cfg.correction.follow_claims {
                !applied || r.verified_metric != Some(babel_wire::Metric(want))
            } else {
                // Once, on the claims at the check, to routes without a verified metric.
                !applied && r.verified_metric.is_none()
            };
            if due {
                out.push((n, r.prefix, want, nc.until));
            }
        }
        for (_, applied) in self.neighbour_corrections.values_mut() {
            *applied = true;
        }
        out
    }

    /// True when [`Verifier::neighbour_corrections`] may have work: a neighbour-wide
    /// correction in force that has not been given to the routes yet (with `follow_claims`,
    /// any in force), so that a driver builds its route view only then.
    pub fn has_neighbour_corrections(&self, now: Instant) -> bool {
        let follow = self.cfg.correction.follow_claims;
        self.neighbour_corrections
            .values()
            .any(|(nc, applied)| now < nc.until && (follow || !applied))
    }

    /// Runs the timers: readmissions, the Remote Hellos of the session, its end, the next cycle.
    /// `candidates` are the routes of the engine now.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        candidates: &[VerifiableRoute],
    ) -> Vec<ProbeAction> {
        let mut out = Vec::new();
        self.readmit(now, &mut out);
        self.retry_justify_requests(now, &mut out);
        self.justified_on_rise(now, candidates);
        self.watch_withdrawals(now, candidates);
        self.unjustified_origins(now, candidates, &mut out);
        self.asked_rises(now, &mut out);
        self.watch_fall_backs(now, candidates, &mut out);
        // Looked at the claims now (routes handed) or due: next in RISE_POLL; else as it was.
        let poll = match self.route_poll {
            Some(r) if candidates.is_empty() && r > now => r,
            _ => now + crate::RISE_POLL,
        };
        self.route_poll = (self.watching_claims() || self.late_waiting(now)).then_some(poll);
        self.start_late(now, candidates);
        let probes = self.cfg.schedule.probes;
        if !candidates.is_empty() {
            // §4.2.2: a session's route must stay as it was for the whole session (checked
            // whenever the driver hands us the routes: at least at its start and its end).
            for s in self.sessions.values_mut().filter(|s| s.stable) {
                s.stable = s
                    .route_in(candidates)
                    .is_some_and(|c| unchanged(&s.route, c));
            }
        }
        self.send_remote_hellos(now, candidates, &mut out);
        let done: Vec<(NeighbourId, Prefix)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.sent >= probes && s.ends <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in done {
            if let Some(s) = self.sessions.remove(&k) {
                self.conclude(now, s, candidates, &mut out);
            }
        }
        if self.sessions.is_empty() && self.next_cycle <= now {
            self.next_cycle = now + self.cfg.schedule.cycle;
            self.start_sessions(now, candidates);
            self.late = self.waiting_late(now, candidates);
            if self.late_waiting(now) {
                self.poll_routes_by(now + crate::RISE_POLL);
            }
            if !self.sessions.is_empty() {
                out.extend(self.handle_timeout(now, candidates));
            }
        }
        out
    }

    /// Looks at the routes again by `at` at the latest (an earlier poll stays).
    fn poll_routes_by(&mut self, at: Instant) {
        self.route_poll = Some(self.route_poll.map_or(at, |r| r.min(at)));
    }

    /// §4.3: neighbours whose eviction is over are readmitted (on probation).
    fn readmit(&mut self, now: Instant, out: &mut Vec<ProbeAction>) {
        for (n, s) in self.scores.iter_mut() {
            if s.readmit(now) {
                self.counters.readmissions += 1;
                out.push(ProbeAction::Standing {
                    neighbour: *n,
                    eviction: None,
                });
            }
        }
    }

    /// §2.3: the Remote Hellos of every session under way due by `now`, with the session's
    /// traces (§4.2.1) after its first and its hop-limit bounds (§1.4) spread over it.
    fn send_remote_hellos(
        &mut self,
        now: Instant,
        candidates: &[VerifiableRoute],
        out: &mut Vec<ProbeAction>,
    ) {
        let probes = self.cfg.schedule.probes;
        for s in self.sessions.values_mut() {
            while s.sent < probes && s.next_hello <= now {
                let hello = RemoteHello {
                    seqno: s.first_seqno.wrapping_add(s.sent),
                    interval: babel_core::to_centis(self.cfg.schedule.probe_interval).max(1),
                    origin: self.router_id,
                    via: s.via,
                    prefix: s.route.prefix,
                    timestamp: Some(now.as_micros() as u32),
                };
                s.sent += 1;
                s.next_hello = s.next_hello + self.cfg.schedule.probe_interval;
                self.counters.probes_sent += 1;
                if s.sent == 1 && self.cfg.score.attribution {
                    let depth = self.cfg.score.trace_depth.clamp(1, MAX_TRACE_DEPTH);
                    for i in 0..depth {
                        // Each trace quotes its own Remote Hello: the timestamp plus its depth.
                        let mut trace = hello.clone();
                        trace.timestamp = hello.timestamp.map(|t| t.wrapping_add(u32::from(i)));
                        self.counters.probes_sent += 1;
                        self.counters.traces_sent += 1;
                        s.traces.push(Trace::Sent(trace.clone()));
                        out.push(ProbeAction::SendTrace {
                            neighbour: s.route.neighbour,
                            hello: trace,
                            hop_limit: TRACE_HOP_LIMIT + i,
                        });
                    }
                }
                let bound_every = (probes / BOUND_PROBES).max(1);
                if self.cfg.score.hop_bound
                    && self.cfg.score.attribution
                    && (s.sent - 1) % bound_every == 0
                    && s.bounds.len() < usize::from(BOUND_PROBES)
                {
                    // §1.4: with the claim handed to us now, if routes were, else the session's.
                    let metric = s.route_in(candidates).map_or(s.route.metric, |c| c.metric);
                    let depth = self.cfg.score.trace_depth.clamp(1, MAX_TRACE_DEPTH);
                    if let Some(hop_limit) = bound_hop_limit(
                        metric,
                        self.cfg.cost.hop_cost,
                        self.cfg.score.threshold,
                        depth,
                    ) {
                        let j = u32::try_from(s.bounds.len()).unwrap_or(0);
                        let mut bound = hello.clone();
                        bound.timestamp = hello
                            .timestamp
                            .map(|t| t.wrapping_add(u32::from(MAX_TRACE_DEPTH) + j));
                        self.counters.probes_sent += 1;
                        self.counters.bounds_sent += 1;
                        s.bounds.push(Bound {
                            hello: bound.clone(),
                            hop_limit,
                            exceeded: false,
                        });
                        out.push(ProbeAction::SendBound {
                            neighbour: s.route.neighbour,
                            hello: bound,
                            hop_limit,
                        });
                    }
                }
                out.push(ProbeAction::SendRemoteHello {
                    neighbour: s.route.neighbour,
                    hello,
                });
            }
        }
    }

    /// §2.2: a cycle starts: a session for each route the scheduler picks.
    fn start_sessions(&mut self, now: Instant, candidates: &[VerifiableRoute]) {
        let picks = self.scheduler.pick_all(now, &self.cfg.schedule, candidates);
        self.open_sessions(now, picks, candidates);
    }

    /// §2.2, `late_start`: the neighbours to wait for in the cycle starting now: those with
    /// routes in `candidates` to used or requested destinations, none of them feasible (a
    /// neighbour left out by `max_sessions` is not waiting).
    fn waiting_late(&self, now: Instant, candidates: &[VerifiableRoute]) -> Vec<NeighbourId> {
        if !self.cfg.schedule.late_start || !self.cfg.schedule.per_neighbour {
            return Vec::new();
        }
        let wanted = self.scheduler.wanted(now, &self.cfg.schedule);
        let mut with_routes = BTreeSet::new();
        let mut with_feasible = BTreeSet::new();
        for c in candidates
            .iter()
            .filter(|c| wanted.binary_search(&c.prefix).is_ok())
        {
            with_routes.insert(c.neighbour);
            if c.feasible {
                with_feasible.insert(c.neighbour);
            }
        }
        with_routes.difference(&with_feasible).copied().collect()
    }

    /// §2.2, `late_start`: whether a neighbour waits for a feasible route and a session
    /// started now would still end before the next cycle.
    fn late_waiting(&self, now: Instant) -> bool {
        !self.late.is_empty() && now + self.cfg.schedule.session_length() <= self.next_cycle
    }

    /// §2.2, `late_start`: the sessions of the waiting neighbours that have a feasible route
    /// now (the routes handed), within `max_sessions`; past the time a session could end
    /// before the next cycle, the waiting ends.
    fn start_late(&mut self, now: Instant, candidates: &[VerifiableRoute]) {
        if !self.late_waiting(now) {
            self.late.clear();
            return;
        }
        if candidates.is_empty() {
            return;
        }
        let room = self
            .cfg
            .schedule
            .max_sessions
            .max(1)
            .saturating_sub(self.sessions.len());
        let picks = self
            .scheduler
            .pick_late(now, &self.cfg.schedule, candidates, &self.late, room);
        self.late
            .retain(|n| !picks.iter().any(|(r, _)| r.neighbour == *n));
        self.open_sessions(now, picks, candidates);
    }

    /// §2.2: a session for each of `picks`, from now.
    fn open_sessions(
        &mut self,
        now: Instant,
        picks: Vec<(VerifiableRoute, Reason)>,
        candidates: &[VerifiableRoute],
    ) {
        let probes = self.cfg.schedule.probes;
        for (route, reason) in picks {
            let seq = self
                .seqnos
                .entry((route.prefix, route.neighbour))
                .or_insert(0);
            let first_seqno = *seq;
            *seq = seq.wrapping_add(probes);
            if self.seqnos.len() > MAX_SEQNO_ROUTES {
                self.seqnos.clear();
            }
            let ends = now + self.cfg.schedule.session_length();
            self.counters.sessions += 1;
            self.sessions.insert(
                (route.neighbour, route.prefix),
                Session {
                    route,
                    reason,
                    via: via_tag(&route.neighbour),
                    first_seqno,
                    started: now,
                    sent: 0,
                    next_hello: now,
                    ends,
                    answer: None,
                    looped: false,
                    traces: Vec::new(),
                    bounds: Vec::new(),
                    stable: true,
                    at_start: if self.cfg.score.origin_at_both_ends || self.cfg.score.passing_origin
                    {
                        candidates
                            .iter()
                            .filter(|c| c.prefix == route.prefix)
                            .copied()
                            .collect()
                    } else {
                        Vec::new()
                    },
                },
            );
        }
    }

    /// Turns attribution off (§4.2.1): the driver cannot send or read traces (no raw ICMPv6
    /// socket). Sessions under way keep what they have.
    pub fn disable_attribution(&mut self) {
        self.cfg.score.attribution = false;
    }

    /// A Remote IHU TLV (type octet first) arrived for us. Dropped and counted unless it is
    /// well formed, signed by a key bound to the prefix, fresh, and answers the current session.
    pub fn handle_remote_ihu(&mut self, now: Instant, tlv: &[u8]) -> Result<(), ReportDropReason> {
        let r = self.accept(tlv);
        match r {
            Ok(s) => {
                self.counters.answers += 1;
                if let Some(sess) = self
                    .sessions
                    .values_mut()
                    .find(|x| x.via == s.ihu.via && x.route.prefix == s.ihu.prefix)
                {
                    sess.answer = Some((s, now));
                }
                Ok(())
            }
            Err(e) => {
                self.counters.count(e);
                Err(e)
            }
        }
    }

    fn accept(&mut self, tlv: &[u8]) -> Result<SignedIhu, ReportDropReason> {
        let s = decode_signed_ihu(tlv)?;
        let sess = self
            .sessions
            .values()
            .find(|x| x.via == s.ihu.via && x.route.prefix == s.ihu.prefix)
            .ok_or(ReportDropReason::Unexpected)?;
        let last = sess.first_seqno.wrapping_add(sess.sent.saturating_sub(1));
        let in_range = sess.sent > 0
            && s.report.highest_seqno.wrapping_sub(sess.first_seqno)
                <= last.wrapping_sub(sess.first_seqno);
        if s.ihu.origin != self.router_id
            || s.ihu.via != sess.via
            || s.ihu.prefix != sess.route.prefix
            || !in_range
        {
            return Err(ReportDropReason::Unexpected);
        }
        self.keyring.admit(&s)?;
        Ok(s)
    }

    fn conclude(
        &mut self,
        now: Instant,
        s: Session,
        candidates: &[VerifiableRoute],
        out: &mut Vec<ProbeAction>,
    ) {
        let Some(route) = s.route_in(candidates).copied() else {
            return;
        };
        // §1.3: `m` is the neighbour's claim priced with our link to it. Our link failing by
        // the session's end (our metric infinite while the neighbour still advertises the
        // route) is no claim of the neighbour's: the link of the session's start prices it.
        let link = if route.metric < babel_wire::INFINITY {
            route.link_cost()
        } else {
            s.route.link_cost()
        };
        let metric = if route.metric < babel_wire::INFINITY || link == 0 {
            route.metric
        } else {
            crate::score::claim_metric(route.advertised, link)
        };
        let (cost, black_hole_found, bounded) = match self.measured_cost(&s) {
            Some(c) => {
                crate::bounded::make_room(&mut self.answered, MAX_ANSWERED, &route.prefix, |t| *t);
                self.answered.insert(route.prefix, now);
                (Some(c), false, false)
            }
            None => self.unanswered_cost(now, &s, &route, metric),
        };
        // §1.3, a claim that fell during the session (`fallen_claim`): the probes measured the
        // path the claim at the start described (correction still follows the claim now).
        let at_start = (s.route.advertised < babel_wire::INFINITY
            && s.route.advertised > route.advertised
            && link != 0)
            .then(|| metric.max(crate::score::claim_metric(s.route.advertised, link)));
        let scored = match (self.cfg.score.fallen_claim, at_start) {
            (crate::FallenClaim::Start, Some(m)) => m,
            _ => metric,
        };
        let a = cost.map(|c| accuracy(scored, c));
        // Failing at the end's claim, passing at the start's: the fall alone fails it.
        let fall_only = self.cfg.score.fallen_claim == crate::FallenClaim::NoEvidence
            && a.is_some_and(|a| a < self.cfg.score.threshold)
            && at_start
                .zip(cost)
                .is_some_and(|(m, c)| accuracy(m, c) >= self.cfg.score.threshold);
        let stable = s.stable && unchanged(&s.route, &route);
        let mut check = Check {
            route,
            reason: s.reason,
            metric,
            cost,
            accuracy: a,
            correction: None,
            neighbour_correction: None,
            black_hole: black_hole_found,
            bounded,
            blame: Blame::Unknown,
            stable,
            next_hop: s.next_hop(),
            trace_links: s.trace_links(),
            returned: s.returned(),
            verdict: CheckVerdict::Kept,
        };
        if let (Some(c), Some(a)) = (cost, a) {
            self.counters.checks += 1;
            let failed = a < self.cfg.score.threshold;
            self.scheduler
                .checked(now, &self.cfg.schedule, &route, failed);
            check.correction = self.corrections.correct(
                now,
                &self.cfg.correction,
                (route.prefix, route.neighbour),
                metric,
                c,
            );
            if check.correction.is_some() {
                self.counters.corrections += 1;
            }
            if !failed && self.claim_under_next_hop(now, &route, &s, candidates) {
                // Passing, but under what its next hop offers it (§4.2.1, passing checks).
                check.blame = Blame::Origin;
            }
            self.session_passed(
                now,
                route.neighbour,
                !failed && check.blame != Blame::Origin,
            );
            if failed {
                check.blame = self.blame(now, &route, &s, c, candidates);
            }
            if (failed || check.blame == Blame::Origin) && self.justified(now, &route, &s) {
                check.blame = Blame::Justified;
            }
            if failed {
                check.neighbour_correction = Some(self.correct_neighbour(now, &route, metric, c));
            }
            if fall_only {
                // §1.3: failed by the fall alone, no evidence either way.
                self.notify_failure(now, &check, out);
                out.push(ProbeAction::Checked(check));
                return;
            }
            let score = score_of(&mut self.scores, self.max_neighbours, now, route.neighbour);
            // §4.2.6, `audit_signers_only`: the destination answered through a neighbour that
            // originates it (a claim of 0 at both ends of the session): the neighbour runs
            // verification, its own key bound to what it originates.
            if route.advertised == 0 && s.route.advertised == 0 {
                score.note_signed();
            }
            // §4.2.2: failures the neighbour has since corrected (its claim rose to what we
            // measured, or it retracted the route) no longer count.
            score.forgive_corrected(now, &self.cfg.score, |p| {
                candidates
                    .iter()
                    .find(|c| c.prefix == *p && c.neighbour == route.neighbour)
                    .map(|c| c.advertised)
            });
            let evidence = Evidence {
                a,
                black_hole: check.black_hole,
                blame: check.blame,
                measure: Some((scored, c, stable)),
                link,
            };
            check.verdict = score.record_evidence(now, &self.cfg.score, route.prefix, evidence);
            if failed {
                self.await_justification(now, &check, stable, c, link);
            } else {
                self.audit_claim(now, &check, &s, (c, link), out);
            }
            if let CheckVerdict::Evicted(_) = check.verdict {
                self.counters.evictions += 1;
                self.notify_failure(now, &check, out);
                out.push(ProbeAction::Checked(check));
                // The score recorded why, with the route (§4.3).
                let eviction = self
                    .scores
                    .get(&route.neighbour)
                    .and_then(NeighbourScore::last_eviction);
                out.push(ProbeAction::Standing {
                    neighbour: route.neighbour,
                    eviction,
                });
                return;
            }
        }
        self.notify_failure(now, &check, out);
        out.push(ProbeAction::Checked(check));
    }

    /// §1.2: the cost `c` the destination's answer to session `s` measured, if it answered.
    /// Remote Hellos after the highest one the report covers are not counted as lost: they may
    /// have arrived after the destination answered. Those sent more than `answer_wait` before
    /// the answer arrived count either way, so that dropping the last Remote Hellos hides at
    /// most `answer_wait` of them.
    fn measured_cost(&self, s: &Session) -> Option<u16> {
        let (a, at) = s.answer.as_ref()?;
        let by_seqno = a
            .report
            .highest_seqno
            .wrapping_sub(s.first_seqno)
            .saturating_add(1);
        let interval = self.cfg.schedule.probe_interval.as_micros().max(1);
        let settled = at
            .saturating_since(s.started)
            .saturating_sub(self.cfg.schedule.answer_wait)
            .as_micros()
            / interval;
        let by_time = u16::try_from(settled.saturating_add(1)).unwrap_or(u16::MAX);
        let covered = by_seqno.max(by_time).min(s.sent);
        let received = a.report.received_in(s.first_seqno, covered);
        let rtt = a.ihu.timestamp.map(|t| {
            Duration::from_micros(u64::from((at.as_micros() as u32).wrapping_sub(t.origin)))
        });
        self.cfg.cost.cost(&Measurement {
            hops: a.report.hops,
            sent: covered,
            received,
            rtt,
        })
    }

    /// What session `s` of `route` (claiming `metric`) shows without an answer: the cost, if
    /// any, and whether it is a black hole or a hop-limit bound.
    ///
    /// §3.4: the answers come back along the destination's route to us, whatever neighbour we
    /// probed through. If a Remote Hello came back as an ICMPv6 Time Exceeded (the route
    /// loops), or the destination answered another session recently (the return path works),
    /// the route under test lost every Remote Hello and costs infinity. Otherwise nothing is
    /// scored, and the next cycle probes the destination through another neighbour.
    fn unanswered_cost(
        &mut self,
        now: Instant,
        s: &Session,
        route: &VerifiableRoute,
        metric: u16,
    ) -> (Option<u16>, bool, bool) {
        self.counters.unanswered += 1;
        let evidence = s.looped
            || self
                .answered
                .get(&route.prefix)
                .is_some_and(|t| now.saturating_since(*t) <= self.cfg.schedule.evidence_window);
        if evidence {
            // A black hole stays one (§1.4): it confirms no eviction, as an honest relay of a
            // loop made past it fails alike.
            self.counters.black_holes += 1;
            (Some(MAX_COST), true, false)
        } else if let Some(c) = self.bound_cost(s, metric) {
            // §1.4: the path is longer than the claim allows, whatever the destination would
            // have said.
            self.counters.bounded += 1;
            (Some(c), false, true)
        } else {
            self.session_passed(now, route.neighbour, false);
            self.scheduler.control(route.prefix, route.neighbour);
            // And this route again after the control (it stays under suspicion), a bounded
            // number of times in a row.
            self.scheduler.unanswered(now, &self.cfg.schedule, route);
            (None, false, false)
        }
    }

    /// §5.2: the neighbour-wide correction a failing check of `route` (our `metric`, measured
    /// cost `c`) puts in force for the neighbour, replacing the one before.
    fn correct_neighbour(
        &mut self,
        now: Instant,
        route: &VerifiableRoute,
        metric: u16,
        c: u16,
    ) -> NeighbourCorrection {
        let nc = NeighbourCorrection::new(
            &self.cfg.correction,
            metric,
            route.advertised,
            c,
            now + self.cfg.correction.first,
        );
        crate::bounded::make_room(
            &mut self.neighbour_corrections,
            self.max_neighbours,
            &route.neighbour,
            |(nc, _)| nc.until,
        );
        self.neighbour_corrections
            .insert(route.neighbour, (nc, false));
        nc
    }

    /// §1.4: the cost an unanswered session shows by the hop limits its Remote Hellos ran out
    /// of, if that alone fails a claim of `metric` (with `hop_bound`); a bound that passes
    /// shows nothing (the path may cost more).
    fn bound_cost(&self, s: &Session, metric: u16) -> Option<u16> {
        if !self.cfg.score.hop_bound || !self.cfg.score.attribution {
            return None;
        }
        let links = s.links_at_least();
        let c = cost_of_links(links, self.cfg.cost.hop_cost);
        (links > 0 && accuracy(metric, c) < self.cfg.score.threshold).then_some(c)
    }

    /// §2.5: a check below the threshold tells the neighbour, with `check_requests` (and with
    /// `justification`, §4.2.5, which it asks to justify its claim).
    fn notify_failure(&mut self, now: Instant, check: &Check, out: &mut Vec<ProbeAction>) {
        if (self.cfg.schedule.check_requests || self.cfg.score.justification)
            && check.accuracy.is_some_and(|a| a < self.cfg.score.threshold)
        {
            if self.cfg.schedule.check_requests {
                self.counters.check_failed_sent += 1;
                out.push(ProbeAction::SendCheckFailed {
                    neighbour: check.route.neighbour,
                    prefix: check.route.prefix,
                });
            }
            if self.cfg.score.justification {
                let route = &check.route;
                let asked = AskedClaim {
                    claim: route.advertised,
                    link: check.metric.saturating_sub(route.advertised),
                    cost: check.cost.unwrap_or(MAX_COST),
                    settled: AskedClaim::settled(check),
                    at: now,
                };
                self.ask_to_justify(now, (route.neighbour, route.prefix), asked, out);
            }
        }
    }

    /// §2.5: neighbour `from` says our route to `prefix` failed its check. With
    /// `check_requests`, our next cycle checks our selected route to `prefix` first (unless it
    /// goes through `from`). Returns whether the request was taken.
    pub fn handle_check_failed(&mut self, now: Instant, from: NeighbourId, prefix: Prefix) -> bool {
        if !self.cfg.schedule.check_requests {
            return false;
        }
        self.counters.check_failed_received += 1;
        self.scheduler
            .request_check(now, &self.cfg.schedule, prefix, from);
        true
    }
}

/// §4.2.5: an unjustified failure awaiting its deadline.
/// §4.2.5: a Justify Request not answered yet.
#[derive(Clone, Copy, Debug)]
struct JustifyRequest {
    nonce: u64,
    /// When first sent.
    at: Instant,
    /// How many times sent.
    sends: u8,
    /// The claim we asked the neighbour to justify.
    asked: AskedClaim,
    /// The lowest floor of the Signed Claims that answered it so far (§4.2.5,
    /// `asked_rise_lowest_floor`).
    lowest_floor: Option<u16>,
}

/// §4.2.5: a claim a neighbour was asked to justify, as the check that asked found it.
#[derive(Clone, Copy, Debug)]
struct AskedClaim {
    /// The neighbour's claim.
    claim: u16,
    /// Our link cost to the neighbour then.
    link: u16,
    /// The cost measured ([`MAX_COST`] for a black hole or none).
    cost: u16,
    /// The claim was the neighbour's current word ([`AskedClaim::settled`]).
    settled: bool,
    /// When we asked (the check's end, or the ask without a check).
    at: Instant,
}

impl AskedClaim {
    /// §4.2.5, `asked_rises_evict`: whether the claim `check` found was the neighbour's current
    /// word, so that a rise once asked is one it would not have made unasked: the route stayed
    /// as it was for the whole session (§4.2.2), and was feasible at its end (RFC 8966
    /// §3.5.1). A route that turned infeasible carries a seqno older than the source's latest
    /// we heard by another way, which the neighbour has not passed on to us: under split
    /// horizon, because its own route now runs through us, and the claim we hold is one it no
    /// longer makes.
    fn settled(check: &Check) -> bool {
        check.stable && check.route.feasible
    }
}

/// §4.2.5, `fall_back_evicts`: a claim that rose to a Signed Claim's floor when asked.
#[derive(Clone, Copy, Debug)]
struct RiseWatch {
    /// The floor it rose to.
    floor: u16,
    /// Our link cost to the neighbour then (claims are priced with it).
    link: u16,
    /// Until when it is watched.
    until: Instant,
    /// It fell back under the floor and was asked again.
    fell: bool,
}

#[derive(Clone, Copy, Debug)]
struct Deadline {
    at: Instant,
    /// Our metric through the neighbour at the failing check.
    metric: u16,
    /// The cost measured then ([`MAX_COST`] for a black hole).
    cost: u16,
    /// Our link cost to the neighbour then (§4.2.2: its claim is judged with it).
    link: u16,
    /// The neighbour's claim that failed (with `reask_moved_claim`: a deadline that finds
    /// another asks again).
    claim: u16,
    /// Whether this is the second deadline, after asking again for a claim that moved.
    asked_again: bool,
    /// With `reask_moved_claim`: the claim was seen withdrawn or changed since the failure (or
    /// since asking again); one there at the deadline was made anew.
    moved: bool,
    /// With `reask_moved_claim`: the claim was withdrawn at the deadline, which now waits
    /// (until `at`, then the failure is corrected) for the claim to come back.
    parked: bool,
    /// With `audit_claims` (§4.2.6): the deadline of a passing check's audit, not of a failure.
    /// A claim at least what we measured corrects no audit: it passed already.
    audit: bool,
    /// The neighbour's next hop the failing session found (§4.2.1, one link past it), and
    /// whether the route came back to us: whose offer a rise is held against with
    /// `correction_meets_next_hop`.
    reference: (Option<NeighbourId>, bool),
    /// The failure was blamed on the neighbour as the origin of its lie (§4.2.1): with
    /// `withdrawn_origin_evicts`, a withdrawal does not correct it.
    origin: bool,
    /// The claim was the neighbour's current word ([`AskedClaim::settled`]).
    settled: bool,
    /// When the claim it judges was asked about.
    asked_at: Instant,
}

impl Deadline {
    /// The claim it judges, as its check found it.
    fn asked(&self) -> AskedClaim {
        AskedClaim {
            claim: self.claim,
            link: self.link,
            cost: self.cost,
            settled: self.settled,
            at: self.asked_at,
        }
    }
}

fn s_rng(s: &mut Scheduler, n: u64) -> u64 {
    s.draw(n)
}

/// The score record of `neighbour` in `scores`, made if new. Bounded to `max`: a new one
/// forgets the neighbour in good standing with the fewest records.
fn score_of(
    scores: &mut BTreeMap<NeighbourId, NeighbourScore>,
    max: usize,
    now: Instant,
    neighbour: NeighbourId,
) -> &mut NeighbourScore {
    if !scores.contains_key(&neighbour) && scores.len() >= max {
        let victim = scores
            .iter()
            .filter(|(_, v)| !v.is_evicted(now))
            .min_by_key(|(_, v)| v.destinations())
            .map(|(k, _)| *k);
        if let Some(v) = victim {
            scores.remove(&v);
        }
    }
    scores.entry(neighbour).or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §1.4: the bound's hop limit is the most links that still pass a check of the claim,
    /// decided by the scoring's own test (0.8 · 96 is not exactly 76.8 in floating point).
    #[test]
    fn bound_hop_limit_is_the_most_links_that_pass() {
        // 384 / 480 = 0.8 passes; 384 / 576 fails.
        assert_eq!(bound_hop_limit(384, 96, 0.8, 1), Some(5));
        assert_eq!(bound_hop_limit(383, 96, 0.8, 1), Some(4));
        assert_eq!(bound_hop_limit(100, 96, 0.8, 1), Some(1));
        // Two links: the trace (hop limit 2) already bounds it; with deeper traces, 3 too.
        assert_eq!(bound_hop_limit(200, 96, 0.8, 1), None);
        assert_eq!(bound_hop_limit(288, 96, 0.8, 2), None);
        assert_eq!(bound_hop_limit(288, 96, 0.8, 1), Some(3));
        // Nothing to bound: a claim under one link, or one no hop limit can run out of.
        assert_eq!(bound_hop_limit(50, 96, 0.8, 1), None);
        assert_eq!(bound_hop_limit(0, 96, 0.8, 1), None);
        assert_eq!(bound_hop_limit(64 * 96, 96, 0.8, 1), None);
        assert_eq!(bound_hop_limit(500, 0, 0.8, 1), None);
        assert_eq!(bound_hop_limit(500, 96, 0.0, 1), None);
        assert_eq!(bound_hop_limit(500, 96, f64::NAN, 1), None);
        // Wireless: 256 a link.
        assert_eq!(bound_hop_limit(1024, 256, 0.8, 1), Some(5));
    }

    /// §4.2.5, "A claim that rises only when asked": one ask is one rise. The rise of a claim
    /// asked about once is noted at its deadline and seen again when the request, sent again,
    /// is answered: counted and reported once, and one rise evicts nobody. A rise of a claim
    /// asked about again later is another.
    #[test]
    fn one_ask_is_one_rise() {
        let now = Instant::from_secs(100);
        let mut v = Verifier::new(
            VerifyConfig::default(),
            RouterId([1; 8]),
            Keyring::new(4),
            1,
            now,
        );
        let n = NeighbourId {
            ifindex: 1,
            address: std::net::IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)),
        };
        let p = Prefix::host(std::net::IpAddr::V6(std::net::Ipv6Addr::new(
            0xfd00, 0, 0, 0, 0, 0, 0, 0x80,
        )));
        score_of(&mut v.scores, v.max_neighbours, now, n);
        // Asked about 2264 (our link 96) after measuring 2976; the claim rose to 2976.
        let asked = |at| AskedClaim {
            claim: 2264,
            link: 96,
            cost: 2976,
            settled: true,
            at,
        };
        let mut out = Vec::new();
        for t in [16, 19] {
            v.note_asked_rise(Instant::from_secs(100 + t), (n, p), asked(now), 2976);
            v.asked_rises(Instant::from_secs(100 + t), &mut out);
        }
        let reported = |out: &[ProbeAction]| {
            out.iter()
                .filter(|a| matches!(a, ProbeAction::AskedRise(_)))
                .count()
        };
        let evicted = |out: &[ProbeAction]| {
            out.iter().any(|a| {
                matches!(
                    a,
                    ProbeAction::Standing {
                        eviction: Some(_),
                        ..
                    }
                )
            })
        };
        assert_eq!(v.counters.asked_rises, 1);
        assert_eq!(reported(&out), 1);
        assert!(!evicted(&out));
        // Asked again at 30 s, it rose again: the second rise within the window evicts.
        let later = Instant::from_secs(130);
        v.note_asked_rise(later, (n, p), asked(later), 2976);
        v.asked_rises(later, &mut out);
        assert_eq!(v.counters.asked_rises, 2);
        assert!(evicted(&out));
    }
}
