//! Verification scheduling (`spec/verify.md` §2): the paper's random choice, with our priorities
//! in front of it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use babel_core::{Instant, Rng};
use babel_wire::Prefix;

/// Which neighbour: its interface and link-local address, as the engine tells neighbours apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighbourId {
    /// Interface.
    pub ifindex: u32,
    /// Its link-local address.
    pub address: IpAddr,
}

/// One route the verifier may test (from the engine's route view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiableRoute {
    /// Destination.
    pub prefix: Prefix,
    /// Neighbour it was learned from.
    pub neighbour: NeighbourId,
    /// Its metric as we compute it: advertised metric plus our link cost (`m` of §1.3).
    pub metric: u16,
    /// The metric the neighbour advertised (its `refmetric`, without our link cost): what the
    /// attribution of §4.2.1 compares with its next hop's.
    pub advertised: u16,
    /// Feasible (RFC 8966 §3.5.1).
    pub feasible: bool,
    /// Selected (installed).
    pub selected: bool,
}

impl VerifiableRoute {
    /// One of the engine's routes (§1.3: `m` is the engine's route metric, advertised metric
    /// plus our link cost); an unreachable route is not feasible.
    pub fn from_route(r: &babel_core::RouteView) -> VerifiableRoute {
        VerifiableRoute {
            prefix: r.prefix,
            neighbour: NeighbourId {
                ifindex: r.ifindex,
                address: r.via,
            },
            metric: r.metric.0,
            advertised: r.refmetric.0,
            feasible: r.feasible && r.metric < babel_wire::Metric::INFINITY,
            selected: r.installed,
        }
    }

    /// Our link cost to its neighbour: its metric less what the neighbour advertised (0 when
    /// either is infinite). §4.2.2 prices a later claim of the neighbour with it.
    pub fn link_cost(&self) -> u16 {
        if self.metric == babel_wire::INFINITY || self.advertised == babel_wire::INFINITY {
            0
        } else {
            self.metric.saturating_sub(self.advertised)
        }
    }
}

/// Scheduling constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleConfig {
    /// The paper's `x`: a destination is "recently used" if traffic went to it this recently.
    pub used_window: Duration,
    /// Length of a verification cycle (one route probed per cycle).
    pub cycle: Duration,
    /// Remote Hellos per probe session.
    pub probes: u16,
    /// Interval between Remote Hellos.
    pub probe_interval: Duration,
    /// How long after the last Remote Hello the verifier waits for the Remote IHU.
    pub answer_wait: Duration,
    /// A route that failed a check is checked again this long after (and before any random
    /// choice of its neighbour).
    pub recheck_after: Duration,
    /// A selected route is "verified" until its metric improves by this factor.
    pub improvement: f64,
    /// An unanswered session counts as a black hole (infinite cost) if the same destination
    /// answered one of our sessions this recently (§3.4).
    pub evidence_window: Duration,
    /// Used destinations remembered.
    pub max_used: usize,
    /// Only the paper's random choice (no priorities, one route per cycle), for comparison.
    pub paper_only: bool,
    /// Stratify by next hop (§2.2): every cycle, one route through **each** neighbour that has
    /// a feasible route to a used destination (the destination chosen at random among them,
    /// after the priorities), so that no neighbour goes unprobed for a cycle. Off: one route per
    /// cycle, as the paper.
    pub per_neighbour: bool,
    /// Most sessions in one cycle (neighbours beyond it are chosen at random).
    pub max_sessions: usize,
    /// Remote Hellos we forward for others (not inside a tunnel) make their destination used
    /// for us too (§2.1), so a relay checks the routes its neighbours are checking through it
    /// and corrects its own next hop's lie before it is blamed for relaying it (§5.2). Off:
    /// only data makes a destination used. A driver decision (it marks what is used); here so
    /// that both drivers read one setting.
    pub relayed_probes_used: bool,
    /// Check Failed (§2.5): a check below the threshold tells the neighbour, and a neighbour's
    /// Check Failed for a destination has our next cycle check our selected route to it first.
    pub check_requests: bool,
    /// Rechecks a route gets after unanswered sessions in a row that gave no evidence (§2.2,
    /// item 1): once that many rechecks of it went unanswered too, it goes back to the
    /// ordinary choice instead of taking its neighbour's session every cycle. Two: the first
    /// recheck runs beside the control probe (§3.4), whose answer may come after it is judged;
    /// the second is judged with it. `u8::MAX`: no limit (before 2026-12-02).
    pub unanswered_rechecks: u8,
    /// Draw a neighbour's route (§2.2, items 4 and 5) in proportion to how much it undercuts
    /// the other neighbours' routes to the same destination (the square of the ratio of the
    /// best other metric to its own, between 1 and 4), instead of uniformly: a lie shows as a
    /// route much cheaper than every alternative. Off: uniform, as the paper.
    pub prefer_suspicious: bool,
    /// Sessions per neighbour per cycle with [`ScheduleConfig::per_neighbour`] (§2.2), each
    /// to another destination, within [`ScheduleConfig::max_sessions`] (every neighbour's
    /// first before any neighbour's second). More finds a partial liar's lies in fewer
    /// cycles, for as many times the probe overhead. 1: one, as before.
    pub sessions_per_neighbour: u8,
    /// With [`ScheduleConfig::per_neighbour`]: a neighbour that had routes to used
    /// destinations at a cycle's start but none of them feasible (all retracted, say) gets its
    /// sessions as soon as one is feasible again within the cycle, while they can still end
    /// before the next cycle starts (§2.2), instead of none until the next cycle. A liar whose
    /// lies make loops sees its routes flap, and a cycle's start that falls in a retraction
    /// skipped it. Off: sessions start only at a cycle's start. On by default.
    pub late_start: bool,
}

impl ScheduleConfig {
    /// How long a session lasts from its first Remote Hello: `probes` of them `probe_interval`
    /// apart, then `answer_wait` for the last Remote IHU.
    pub fn session_length(&self) -> Duration {
        self.probe_interval.saturating_mul(u32::from(self.probes)) + self.answer_wait
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            used_window: Duration::from_secs(60),
            cycle: Duration::from_secs(10),
            probes: 20,
            probe_interval: Duration::from_millis(250),
            answer_wait: Duration::from_secs(1),
            recheck_after: Duration::from_secs(10),
            improvement: 0.9,
            evidence_window: Duration::from_secs(30),
            max_used: 256,
            paper_only: false,
            per_neighbour: true,
            max_sessions: 16,
            relayed_probes_used: false,
            check_requests: false,
            unanswered_rechecks: 2,
            prefer_suspicious: false,
            sessions_per_neighbour: 2,
            late_start: true,
        }
    }
}

/// How suspicious route `r` looks (§2.2, [`ScheduleConfig::prefer_suspicious`]), as a
/// weight from 16 to 256: the square of 4 times the ratio of the best metric of another
/// neighbour's route to the same destination in `candidates` to `r`'s own, the ratio held
/// between 1 and 4 (1 without another route). A route no cheaper than its alternatives
/// weighs 16; one that claims half of the best alternative, 64.
pub fn suspicion(r: &VerifiableRoute, candidates: &[VerifiableRoute]) -> u64 {
    let best_other = candidates
        .iter()
        .filter(|c| c.prefix == r.prefix && c.neighbour != r.neighbour)
        .map(|c| c.metric)
        .filter(|m| *m < babel_wire::INFINITY)
        .min();
    let ratio = match best_other {
        Some(o) if r.metric > 0 => (f64::from(o) / f64::from(r.metric)).clamp(1.0, 4.0),
        _ => 1.0,
    };
    let q = (ratio * 4.0).round() as u64;
    q * q
}

/// What [`Scheduler::pick_for`] reads besides the neighbour's routes: one cycle's choice.
#[derive(Clone, Copy)]
struct PickContext<'a> {
    now: Instant,
    cfg: &'a ScheduleConfig,
    candidates: &'a [VerifiableRoute],
    /// The used destinations, sorted.
    used: &'a [Prefix],
    requested: &'a BTreeMap<Prefix, NeighbourId>,
    requested_last: &'a [NeighbourId],
    control: Option<(Prefix, NeighbourId)>,
    /// Destinations already chosen through this neighbour this cycle.
    taken: &'a [Prefix],
}

/// Why a route was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A failed check is due again.
    Recheck,
    /// After an unanswered session: the same destination through another neighbour.
    Control,
    /// A used destination's selected route changed neighbour or improved since it was last
    /// verified.
    NewSelection,
    /// A neighbour's Check Failed asked for it (§2.5).
    Requested,
    /// The paper's random choice.
    Random,
}

/// A neighbour's Check Failed for one destination (§2.5).
#[derive(Clone, Copy, Debug)]
struct Request {
    /// When it last came.
    asked: Instant,
    /// From whom.
    by: NeighbourId,
    /// When our check it asked for ends (or ended).
    checked_until: Option<Instant>,
}

/// Usage, verification history and the random source of the scheduler (bounded).
#[derive(Clone, Debug)]
pub struct Scheduler {
    used: BTreeMap<Prefix, Instant>,
    /// Selected route last verified (or first seen) per destination: neighbour and metric.
    verified: BTreeMap<Prefix, (NeighbourId, u16)>,
    rechecks: BTreeMap<(Prefix, NeighbourId), Instant>,
    /// Unanswered sessions in a row without evidence, per route (no entry: none).
    unanswered: BTreeMap<(Prefix, NeighbourId), u8>,
    control: Option<(Prefix, NeighbourId)>,
    /// Check Failed requests by destination (§2.5), at most `max_used`.
    requests: BTreeMap<Prefix, Request>,
    /// Neighbours whose session of the last cycle a request chose: not again this cycle.
    requested_last: Vec<NeighbourId>,
    rng: Rng,
}

impl Scheduler {
    /// The destinations remembered as used and the Check Failed requests, against their bound
    /// (`cfg.max_used` each, §6).
    pub fn table_sizes(&self, cfg: &ScheduleConfig) -> [crate::TableSize; 2] {
        let max = cfg.max_used.max(1);
        [
            crate::TableSize {
                name: "used destinations",
                len: self.used.len(),
                max,
            },
            crate::TableSize {
                name: "Check Failed requests",
                len: self.requests.len(),
                max,
            },
        ]
    }

    /// A scheduler drawing from `seed`.
    pub fn new(seed: u64) -> Scheduler {
        Scheduler {
            used: BTreeMap::new(),
            verified: BTreeMap::new(),
            rechecks: BTreeMap::new(),
            unanswered: BTreeMap::new(),
            control: None,
            requests: BTreeMap::new(),
            requested_last: Vec::new(),
            rng: Rng::new(seed),
        }
    }

    /// A uniform draw below `n` from the scheduler's generator.
    pub fn draw(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.rng.below(n) }
    }

    /// Traffic to `prefix` was seen at `now` (tunnel or kernel counters, or an exit in use).
    pub fn mark_used(&mut self, now: Instant, cfg: &ScheduleConfig, prefix: Prefix) {
        if let Some(p) = crate::bounded::make_room(&mut self.used, cfg.max_used, &prefix, |t| *t) {
            self.verified.remove(&p);
        }
        self.used.insert(prefix, now);
    }

    /// Neighbour `by` asked us at `now` to check our route to `prefix` (§2.5).
    pub fn request_check(
        &mut self,
        now: Instant,
        cfg: &ScheduleConfig,
        prefix: Prefix,
        by: NeighbourId,
    ) {
        let checked_until = self.requests.get(&prefix).and_then(|r| r.checked_until);
        let _ = crate::bounded::make_room(&mut self.requests, cfg.max_used, &prefix, |r| r.asked);
        self.requests.insert(
            prefix,
            Request {
                asked: now,
                by,
                checked_until,
            },
        );
    }

    /// A request is due: asked within the window, after our last check it asked for ended.
    fn request_due(&self, now: Instant, cfg: &ScheduleConfig, p: &Prefix) -> Option<NeighbourId> {
        self.requests
            .get(p)
            .filter(|r| {
                now.saturating_since(r.asked) <= cfg.used_window
                    && r.checked_until.is_none_or(|c| r.asked > c)
            })
            .map(|r| r.by)
    }

    /// Destinations the driver should hand routes for: those used within the window, and
    /// those a due request names (§2.5).
    pub fn wanted(&self, now: Instant, cfg: &ScheduleConfig) -> Vec<Prefix> {
        let mut v = self.used(now, cfg);
        if cfg.check_requests {
            v.extend(
                self.requests
                    .keys()
                    .filter(|p| self.request_due(now, cfg, p).is_some()),
            );
            v.sort_unstable();
            v.dedup();
        }
        v
    }

    /// Destinations used within the window.
    pub fn used(&self, now: Instant, cfg: &ScheduleConfig) -> Vec<Prefix> {
        self.used
            .iter()
            .filter(|(_, t)| now.saturating_since(**t) <= cfg.used_window)
            .map(|(p, _)| *p)
            .collect()
    }

    /// A check of `c` ended; `failed` schedules a recheck.
    pub fn checked(
        &mut self,
        now: Instant,
        cfg: &ScheduleConfig,
        c: &VerifiableRoute,
        failed: bool,
    ) {
        self.settle_check(now, cfg, c, failed, 0);
    }

    /// A session of `c` ended unanswered, without evidence that the destination answers us at
    /// all (§3.4): the route stays under suspicion and is checked again, unless it was already
    /// unanswered on its last `unanswered_rechecks` rechecks (§2.2, item 1).
    pub fn unanswered(&mut self, now: Instant, cfg: &ScheduleConfig, c: &VerifiableRoute) {
        let streak = self
            .unanswered
            .get(&(c.prefix, c.neighbour))
            .copied()
            .unwrap_or(0);
        let again = streak < cfg.unanswered_rechecks;
        self.settle_check(now, cfg, c, again, streak.saturating_add(1));
    }

    /// Records a check of `c` that ended: its selected route as verified, its recheck
    /// scheduled (`again`) or cleared, and `streak` unanswered sessions in a row before the
    /// recheck (0: it was answered). Forgets rechecks of destinations neither used nor asked
    /// for, and the streaks of routes with no recheck.
    fn settle_check(
        &mut self,
        now: Instant,
        cfg: &ScheduleConfig,
        c: &VerifiableRoute,
        again: bool,
        streak: u8,
    ) {
        if c.selected {
            self.verified.insert(c.prefix, (c.neighbour, c.metric));
        }
        let key = (c.prefix, c.neighbour);
        if again {
            self.rechecks.insert(key, now + cfg.recheck_after);
        } else {
            self.rechecks.remove(&key);
        }
        // A streak lasts while its recheck is scheduled or under way: a recheck leaves
        // `rechecks` when it is picked, and other routes' sessions of the same cycle may end
        // before its own does, so the streak is not tied to `rechecks`.
        if streak == 0 || !again {
            self.unanswered.remove(&key);
        } else {
            self.unanswered.insert(key, streak);
        }
        let (used, requests) = (&self.used, &self.requests);
        self.rechecks
            .retain(|(p, _), _| used.contains_key(p) || requests.contains_key(p));
        self.unanswered
            .retain(|(p, _), _| used.contains_key(p) || requests.contains_key(p));
    }

    /// After an unanswered session without evidence that the destination answers us at all,
    /// the next cycle probes `prefix` through another neighbour (§2.2, item 2).
    pub fn control(&mut self, prefix: Prefix, not_via: NeighbourId) {
        self.control = Some((prefix, not_via));
    }

    /// Baselines: a selected route to a used destination seen for the first time is not news.
    fn baselines(&mut self, used: &[Prefix], candidates: &[VerifiableRoute]) {
        for c in candidates
            .iter()
            .filter(|c| c.selected && used.binary_search(&c.prefix).is_ok())
        {
            self.verified
                .entry(c.prefix)
                .or_insert((c.neighbour, c.metric));
        }
    }

    /// §2.2 item 3: the selected route moved to another neighbour, or improved by more than
    /// `1 - improvement`, since its destination was last verified.
    fn is_news(&self, cfg: &ScheduleConfig, c: &VerifiableRoute) -> bool {
        match self.verified.get(&c.prefix) {
            Some((n, m)) => {
                *n != c.neighbour || f64::from(c.metric) < f64::from(*m) * cfg.improvement
            }
            None => false,
        }
    }

    /// The routes to probe this cycle (§2): with [`ScheduleConfig::per_neighbour`] one per
    /// neighbour that has a feasible route to a used destination (at most
    /// [`ScheduleConfig::max_sessions`], neighbours drawn at random beyond that), otherwise the
    /// single route of [`Scheduler::pick`].
    ///
    /// For each neighbour, in order: its due recheck (the earliest), a control probe asked for
    /// through it, a used destination whose selected route moved to it or improved through it,
    /// then the paper's choice restricted to it: a used destination it has a feasible route to,
    /// at random. The neighbour cannot tell which of its routes is probed next.
    pub fn pick_all(
        &mut self,
        now: Instant,
        cfg: &ScheduleConfig,
        candidates: &[VerifiableRoute],
    ) -> Vec<(VerifiableRoute, Reason)> {
        if cfg.paper_only || !cfg.per_neighbour {
            return self.pick(now, cfg, candidates).into_iter().collect();
        }
        let used = self.used(now, cfg);
        let is_used = |p: &Prefix| used.binary_search(p).is_ok();
        self.baselines(&used, candidates);
        let requested = self.requests_due(now, cfg);
        let mut per: BTreeMap<NeighbourId, Vec<&VerifiableRoute>> = BTreeMap::new();
        for c in candidates
            .iter()
            .filter(|c| c.feasible && (is_used(&c.prefix) || requested.contains_key(&c.prefix)))
        {
            per.entry(c.neighbour).or_default().push(c);
        }
        let requested_last = std::mem::take(&mut self.requested_last);
        let mut order: Vec<NeighbourId> = per.keys().copied().collect();
        self.shuffle(&mut order);
        order.truncate(cfg.max_sessions.max(1));
        // A control probe goes through one other neighbour that has a route to the prefix.
        let control = self.control.take().and_then(|(p, not_via)| {
            order
                .iter()
                .copied()
                .find(|n| {
                    *n != not_via && per.get(n).is_some_and(|v| v.iter().any(|c| c.prefix == p))
                })
                .map(|n| (p, n))
        });
        let ctx = PickContext {
            now,
            cfg,
            candidates,
            used: &used,
            requested: &requested,
            requested_last: &requested_last,
            control,
            taken: &[],
        };
        self.pick_rounds(&ctx, &order, &per, cfg.max_sessions.max(1))
    }

    /// The routes of the neighbours of `order` (in that order) among their routes `per`,
    /// every neighbour's first before any neighbour's second, up to
    /// [`ScheduleConfig::sessions_per_neighbour`] each and `room` in all.
    fn pick_rounds(
        &mut self,
        base: &PickContext<'_>,
        order: &[NeighbourId],
        per: &BTreeMap<NeighbourId, Vec<&VerifiableRoute>>,
        room: usize,
    ) -> Vec<(VerifiableRoute, Reason)> {
        let rounds = base.cfg.sessions_per_neighbour.max(1);
        let mut out: Vec<(VerifiableRoute, Reason)> = Vec::with_capacity(order.len());
        for round in 0..usize::from(rounds) {
            for n in order {
                if out.len() >= room {
                    break;
                }
                let Some(routes) = per.get(n) else { continue };
                let taken: Vec<Prefix> = out
                    .iter()
                    .filter(|(c, _)| c.neighbour == *n)
                    .map(|(c, _)| c.prefix)
                    .collect();
                if taken.len() < round {
                    continue;
                }
                let ctx = PickContext {
                    taken: &taken,
                    ..*base
                };
                if let Some(pick) = self.pick_for(&ctx, *n, routes) {
                    out.push(pick);
                }
            }
        }
        out
    }

    /// Puts `v` in a random order (Fisher-Yates, with the scheduler's seeded generator).
    fn shuffle(&mut self, v: &mut [NeighbourId]) {
        for i in (1..v.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }

    /// §2.5: the destinations a due request names, with the neighbour that asked (none
    /// without [`ScheduleConfig::check_requests`]).
    fn requests_due(&self, now: Instant, cfg: &ScheduleConfig) -> BTreeMap<Prefix, NeighbourId> {
        if !cfg.check_requests {
            return BTreeMap::new();
        }
        self.requests
            .keys()
            .filter_map(|p| self.request_due(now, cfg, p).map(|by| (*p, by)))
            .collect()
    }

    /// §2.2, [`ScheduleConfig::late_start`]: within a cycle under way, the sessions of
    /// `waiting`, the neighbours that had no feasible route to a used or requested destination
    /// at its start: for each that has one now, up to
    /// [`ScheduleConfig::sessions_per_neighbour`] routes picked as [`Scheduler::pick_all`]
    /// picks them (without a control probe), `room` sessions at most in all, the neighbours
    /// in random order.
    pub fn pick_late(
        &mut self,
        now: Instant,
        cfg: &ScheduleConfig,
        candidates: &[VerifiableRoute],
        waiting: &[NeighbourId],
        room: usize,
    ) -> Vec<(VerifiableRoute, Reason)> {
        let used = self.used(now, cfg);
        let is_used = |p: &Prefix| used.binary_search(p).is_ok();
        let requested = self.requests_due(now, cfg);
        let mut per: BTreeMap<NeighbourId, Vec<&VerifiableRoute>> = BTreeMap::new();
        for c in candidates.iter().filter(|c| {
            c.feasible
                && waiting.contains(&c.neighbour)
                && (is_used(&c.prefix) || requested.contains_key(&c.prefix))
        }) {
            per.entry(c.neighbour).or_default().push(c);
        }
        let mut order: Vec<NeighbourId> = per.keys().copied().collect();
        self.shuffle(&mut order);
        let requested_last = self.requested_last.clone();
        let ctx = PickContext {
            now,
            cfg,
            candidates,
            used: &used,
            requested: &requested,
            requested_last: &requested_last,
            control: None,
            taken: &[],
        };
        self.pick_rounds(&ctx, &order, &per, room)
    }

    /// One route through neighbour `n` (§2.2, items 1-5 in order), among `routes` (its
    /// feasible routes to used or requested destinations) and not to a destination in
    /// `ctx.taken` (its sessions already chosen this cycle).
    fn pick_for(
        &mut self,
        ctx: &PickContext<'_>,
        n: NeighbourId,
        routes: &[&VerifiableRoute],
    ) -> Option<(VerifiableRoute, Reason)> {
        let free = |p: &Prefix| !ctx.taken.contains(p);
        let is_used = |p: &Prefix| ctx.used.binary_search(p).is_ok();
        let due = self
            .rechecks
            .iter()
            .filter(|((p, rn), t)| *rn == n && **t <= ctx.now && free(p))
            .min_by_key(|(_, t)| **t)
            .map(|(k, _)| *k);
        if let Some(k) = due
            && let Some(c) = routes.iter().find(|c| c.prefix == k.0)
        {
            self.rechecks.remove(&k);
            return Some((**c, Reason::Recheck));
        }
        if let Some((p, _)) = ctx.control.filter(|(p, cn)| *cn == n && free(p))
            && let Some(c) = routes.iter().find(|c| c.prefix == p)
        {
            return Some((**c, Reason::Control));
        }
        // §2.5: our selected route to a destination a neighbour other than `n` asked us to
        // check, unless a request chose `n`'s session last cycle.
        let asked: Vec<&&VerifiableRoute> = routes
            .iter()
            .filter(|c| {
                c.selected
                    && free(&c.prefix)
                    && ctx.requested.get(&c.prefix).is_some_and(|by| *by != n)
            })
            .collect();
        if !asked.is_empty() && !ctx.requested_last.contains(&n) {
            let i = self.rng.below(asked.len() as u64) as usize;
            if let Some(c) = asked.get(i) {
                if let Some(r) = self.requests.get_mut(&c.prefix) {
                    r.checked_until = Some(ctx.now + ctx.cfg.session_length());
                }
                self.requested_last.push(n);
                return Some((***c, Reason::Requested));
            }
        }
        let routes: Vec<&VerifiableRoute> = routes
            .iter()
            .copied()
            .filter(|c| is_used(&c.prefix) && free(&c.prefix))
            .collect();
        let fresh: Vec<&&VerifiableRoute> = routes
            .iter()
            .filter(|c| c.selected)
            .filter(|c| self.is_news(ctx.cfg, c))
            .collect();
        if !fresh.is_empty() {
            let i = self.draw_route(ctx.cfg, fresh.iter().map(|c| ***c), ctx.candidates);
            if let Some(c) = fresh.get(i) {
                return Some((***c, Reason::NewSelection));
            }
        }
        if routes.is_empty() {
            return None;
        }
        let i = self.draw_route(ctx.cfg, routes.iter().map(|c| **c), ctx.candidates);
        routes.get(i).map(|c| (**c, Reason::Random))
    }

    /// The index of one of `routes` (one neighbour's), drawn uniformly, or with
    /// [`ScheduleConfig::prefer_suspicious`] in proportion to [`suspicion`] against
    /// `candidates`.
    fn draw_route(
        &mut self,
        cfg: &ScheduleConfig,
        routes: impl Iterator<Item = VerifiableRoute> + Clone,
        candidates: &[VerifiableRoute],
    ) -> usize {
        if !cfg.prefer_suspicious {
            let n = routes.count() as u64;
            return self.rng.below(n.max(1)) as usize;
        }
        let weights: Vec<u64> = routes.map(|r| suspicion(&r, candidates)).collect();
        let total: u64 = weights.iter().sum();
        let mut x = self.rng.below(total.max(1));
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        0
    }

    /// Chooses the route to probe this cycle (§2), or none if no used destination has a
    /// feasible route.
    pub fn pick(
        &mut self,
        now: Instant,
        cfg: &ScheduleConfig,
        candidates: &[VerifiableRoute],
    ) -> Option<(VerifiableRoute, Reason)> {
        let used = self.used(now, cfg);
        let is_used = |p: &Prefix| used.binary_search(p).is_ok();
        self.baselines(&used, candidates);
        if !cfg.paper_only {
            // 1. A failed route whose recheck is due.
            let due = self
                .rechecks
                .iter()
                .filter(|(_, t)| **t <= now)
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| *k);
            if let Some((p, n)) = due {
                self.rechecks.remove(&(p, n));
                if let Some(c) = candidates
                    .iter()
                    .find(|c| c.prefix == p && c.neighbour == n && c.feasible)
                {
                    return Some((*c, Reason::Recheck));
                }
            }
            // 2. A control probe: the same destination through another neighbour.
            if let Some((p, n)) = self.control.take() {
                let others: Vec<&VerifiableRoute> = candidates
                    .iter()
                    .filter(|c| c.prefix == p && c.neighbour != n && c.feasible)
                    .collect();
                if !others.is_empty() {
                    let i = self.rng.below(others.len() as u64) as usize;
                    if let Some(c) = others.get(i) {
                        return Some((**c, Reason::Control));
                    }
                }
            }
            // 3. A used destination whose selected route changed neighbour or improved since
            //    it was last verified; among them, one through the neighbour that gained the
            //    most such routes (a liar attracts many at once).
            let fresh: Vec<&VerifiableRoute> = candidates
                .iter()
                .filter(|c| c.selected && c.feasible && is_used(&c.prefix))
                .filter(|c| self.is_news(cfg, c))
                .collect();
            let mut per: BTreeMap<NeighbourId, usize> = BTreeMap::new();
            for c in &fresh {
                *per.entry(c.neighbour).or_default() += 1;
            }
            if let Some(most) = per.values().max().copied() {
                let top: Vec<&VerifiableRoute> = fresh
                    .iter()
                    .filter(|c| per.get(&c.neighbour) == Some(&most))
                    .copied()
                    .collect();
                let i = self.rng.below(top.len() as u64) as usize;
                if let Some(c) = top.get(i) {
                    return Some((**c, Reason::NewSelection));
                }
            }
        }
        // 3. The paper: a used destination at random, then one of its feasible routes at random.
        let dests: Vec<Prefix> = used
            .iter()
            .filter(|p| candidates.iter().any(|c| c.prefix == **p && c.feasible))
            .copied()
            .collect();
        if dests.is_empty() {
            return None;
        }
        let d = *dests.get(self.rng.below(dests.len() as u64) as usize)?;
        let routes: Vec<&VerifiableRoute> = candidates
            .iter()
            .filter(|c| c.prefix == d && c.feasible)
            .collect();
        let r = routes.get(self.rng.below(routes.len() as u64) as usize)?;
        Some((**r, Reason::Random))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn p(i: u16) -> Prefix {
        Prefix::host(IpAddr::V6(std::net::Ipv6Addr::new(
            0xfd00, 0, 0, 0, 0, 0, 0, i,
        )))
    }
    fn nb(i: u16) -> NeighbourId {
        NeighbourId {
            ifindex: u32::from(i),
            address: IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, i)),
        }
    }
    fn cand(d: u16, n: u16, metric: u16, selected: bool) -> VerifiableRoute {
        VerifiableRoute {
            prefix: p(d),
            neighbour: nb(n),
            metric,
            advertised: metric.saturating_sub(96),
            feasible: true,
            selected,
        }
    }

    /// §2.1: only used destinations, only feasible routes, every feasible route (not only the
    /// selected one) is picked sometimes.
    #[test]
    fn paper_random_choice() {
        let cfg = ScheduleConfig {
            paper_only: true,
            ..ScheduleConfig::default()
        };
        let mut s = Scheduler::new(1);
        let now = Instant::from_secs(100);
        s.mark_used(now, &cfg, p(1));
        s.mark_used(Instant::from_secs(1), &cfg, p(2)); // too old
        let mut cands = vec![
            cand(1, 1, 100, true),
            cand(1, 2, 200, false),
            cand(2, 1, 100, true),
        ];
        cands.push(VerifiableRoute {
            feasible: false,
            ..cand(1, 3, 50, false)
        });
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let (c, r) = s
                .pick(now, &cfg, &cands)
                .unwrap_or((cands[2], Reason::Recheck));
            assert_eq!(r, Reason::Random);
            assert_eq!(c.prefix, p(1));
            assert!(c.feasible);
            seen.insert(c.neighbour);
        }
        assert_eq!(seen.len(), 2);
    }

    /// §2.2, `prefer_suspicious`: a route that claims a quarter of the best alternative is
    /// drawn about sixteen times as often as one no cheaper than its alternatives; off, both
    /// alike. Routes not selected, so that nothing is news (item 4) and the draw is item 5.
    #[test]
    fn suspicious_routes_are_drawn_more_often() {
        // Through neighbour 1: destination 1 at 100 (neighbour 2 offers 400), destination 2
        // at 300 (neighbour 2 offers 300).
        let cands = [
            cand(1, 1, 100, false),
            cand(1, 2, 400, false),
            cand(2, 1, 300, false),
            cand(2, 2, 300, false),
        ];
        assert_eq!(suspicion(&cands[0], &cands), 256);
        assert_eq!(suspicion(&cands[2], &cands), 16);
        assert_eq!(
            suspicion(&cands[1], &cands),
            16,
            "dearer than the other: held at 1"
        );
        let share = |prefer_suspicious: bool| {
            let cfg = ScheduleConfig {
                prefer_suspicious,
                ..ScheduleConfig::default()
            };
            let mut s = Scheduler::new(7);
            let now = Instant::from_secs(100);
            s.mark_used(now, &cfg, p(1));
            s.mark_used(now, &cfg, p(2));
            let mut first = 0;
            for _ in 0..1000 {
                let picks = s.pick_all(now, &cfg, &cands);
                let via_1 = picks.iter().find(|(c, _)| c.neighbour == nb(1));
                if via_1.is_some_and(|(c, r)| c.prefix == p(1) && *r == Reason::Random) {
                    first += 1;
                }
            }
            first
        };
        let (on, off) = (share(true), share(false));
        assert!(on > 900, "{on}");
        assert!((400..600).contains(&off), "{off}");
    }

    /// §2.2 item 1: a route left unanswered is rechecked, but after `unanswered_rechecks`
    /// unanswered rechecks in a row it goes back to the ordinary choice; an answered check
    /// starts the count again; without a limit it is rechecked every time.
    #[test]
    fn unanswered_rechecks_are_bounded() {
        let cands = [cand(1, 1, 100, true), cand(2, 1, 100, true)];
        // One cycle later (the recheck is due then): the reason of the first pick.
        let next = |s: &mut Scheduler, cfg: &ScheduleConfig, now: &mut Instant| {
            *now = *now + cfg.recheck_after;
            s.mark_used(*now, cfg, p(1));
            s.mark_used(*now, cfg, p(2));
            s.pick_all(*now, cfg, &cands).first().map(|(_, r)| *r)
        };
        let cfg = ScheduleConfig {
            unanswered_rechecks: 2,
            ..ScheduleConfig::default()
        };
        let mut s = Scheduler::new(3);
        let mut now = Instant::from_secs(100);
        s.mark_used(now, &cfg, p(1));
        // The first session and two rechecks unanswered: two rechecks, then the ordinary choice.
        let mut reasons = Vec::new();
        for _ in 0..3 {
            s.unanswered(now, &cfg, &cands[0]);
            reasons.push(next(&mut s, &cfg, &mut now));
        }
        assert_eq!(reasons[..2], [Some(Reason::Recheck); 2]);
        assert_ne!(reasons[2], Some(Reason::Recheck), "{reasons:?}");
        // The same when another route's session of the cycle ends first: the recheck left
        // `rechecks` when it was picked, and the count must not go with it.
        let mut s = Scheduler::new(3);
        s.mark_used(now, &cfg, p(1));
        s.mark_used(now, &cfg, p(2));
        s.unanswered(now, &cfg, &cands[0]);
        let mut reasons = Vec::new();
        for _ in 0..3 {
            let r = next(&mut s, &cfg, &mut now);
            s.checked(now, &cfg, &cands[1], false);
            s.unanswered(now, &cfg, &cands[0]);
            reasons.push(r);
        }
        assert_eq!(reasons[..2], [Some(Reason::Recheck); 2]);
        assert_ne!(reasons[2], Some(Reason::Recheck), "{reasons:?}");
        // An answered failing check resets the count: rechecked after it, and after an
        // unanswered session that follows.
        s.checked(now, &cfg, &cands[0], true);
        assert_eq!(next(&mut s, &cfg, &mut now), Some(Reason::Recheck));
        s.unanswered(now, &cfg, &cands[0]);
        assert_eq!(next(&mut s, &cfg, &mut now), Some(Reason::Recheck));
        // Without a limit, rechecked every time.
        let cfg = ScheduleConfig {
            unanswered_rechecks: u8::MAX,
            ..ScheduleConfig::default()
        };
        let mut s = Scheduler::new(3);
        for _ in 0..10 {
            s.mark_used(now, &cfg, p(1));
            s.unanswered(now, &cfg, &cands[0]);
            assert_eq!(next(&mut s, &cfg, &mut now), Some(Reason::Recheck));
        }
    }

    /// §2.2: a changed selected route goes first, then a due recheck goes before anything;
    /// a control request probes another neighbour.
    #[test]
    fn priorities() {
        let cfg = ScheduleConfig::default();
        let mut s = Scheduler::new(2);
        let now = Instant::from_secs(100);
        s.mark_used(now, &cfg, p(1));
        // First sight is the baseline, not news.
        let before = [cand(1, 1, 100, true), cand(1, 2, 150, false)];
        let (_, r) = s.pick(now, &cfg, &before).unwrap();
        assert_eq!(r, Reason::Random);
        // The selection moves to neighbour 2: news.
        let cands = [cand(1, 1, 100, false), cand(1, 2, 80, true)];
        let (c, r) = s.pick(now, &cfg, &cands).unwrap();
        assert_eq!((c.neighbour, r), (nb(2), Reason::NewSelection));
        s.checked(now, &cfg, &c, true);
        let (_, r) = s.pick(now, &cfg, &cands).unwrap();
        assert_eq!(r, Reason::Random);
        let later = now + cfg.recheck_after;
        s.mark_used(later, &cfg, p(1));
        let (c, r) = s.pick(later, &cfg, &cands).unwrap();
        assert_eq!((c.neighbour, r), (nb(2), Reason::Recheck));
        // A route whose metric improves a lot is news again.
        s.checked(later, &cfg, &c, false);
        let better = [cand(1, 1, 100, false), cand(1, 2, 40, true)];
        let (_, r) = s.pick(later, &cfg, &better).unwrap();
        assert_eq!(r, Reason::NewSelection);
        s.control(p(1), nb(2));
        let (c, r) = s.pick(later, &cfg, &better).unwrap();
        assert_eq!((c.neighbour, r), (nb(1), Reason::Control));
    }

    /// §2.5 with `check_requests`: a neighbour's Check Failed has the next cycle check our
    /// selected route to the destination first, once per request that comes after our check of
    /// it ended, never through the neighbour that asked, not for the same neighbour two cycles
    /// running, and the destination never joins the random choice.
    #[test]
    fn a_check_failed_request_is_checked_first() {
        // One session per neighbour: the request's is the only one.
        let cfg = ScheduleConfig {
            check_requests: true,
            sessions_per_neighbour: 1,
            ..ScheduleConfig::default()
        };
        let mut s = Scheduler::new(6);
        let now = Instant::from_secs(100);
        s.mark_used(now, &cfg, p(1));
        s.request_check(now, &cfg, p(2), nb(9));
        assert_eq!(s.used(now, &cfg), vec![p(1)]);
        assert_eq!(s.wanted(now, &cfg), vec![p(1), p(2)]);
        let cands = [
            cand(1, 1, 100, true),
            cand(2, 1, 300, true),
            cand(2, 2, 400, false),
        ];
        let picks = s.pick_all(now, &cfg, &cands);
        // Neighbour 1 carries our selected route to p(2); neighbour 2 has only an unselected
        // route to it and no used destination: no session.
        assert_eq!(picks.len(), 1, "{picks:?}");
        let (c, r) = picks[0];
        assert_eq!((c.prefix, c.neighbour, r), (p(2), nb(1), Reason::Requested));
        // A request during our check asks for nothing more.
        let during = now + Duration::from_secs(3);
        s.request_check(during, &cfg, p(2), nb(9));
        assert_eq!(s.wanted(during, &cfg), vec![p(1)]);
        for (c, r) in s.pick_all(during, &cfg, &cands) {
            assert_eq!((c.prefix, r), (p(1), Reason::Random));
        }
        // One after it ended does, but neighbour 1's last cycle went to a request: not this one.
        let after = now + Duration::from_secs(20);
        s.request_check(after, &cfg, p(2), nb(9));
        s.requested_last = vec![nb(1)];
        let picks = s.pick_all(after, &cfg, &cands);
        assert_eq!(
            picks.first().map(|(c, r)| (c.prefix, *r)),
            Some((p(1), Reason::Random))
        );
        let picks = s.pick_all(after, &cfg, &cands);
        assert_eq!(
            picks.first().map(|(c, r)| (c.prefix, *r)),
            Some((p(2), Reason::Requested))
        );
        // A request from the neighbour our route goes through is not taken.
        let later = now + Duration::from_secs(40);
        s.request_check(later, &cfg, p(2), nb(1));
        s.requested_last.clear();
        for (c, r) in s.pick_all(later, &cfg, &cands) {
            assert_eq!((c.prefix, r), (p(1), Reason::Random));
        }
        // Off: requests are neither wanted nor checked.
        let off = ScheduleConfig::default();
        let mut s = Scheduler::new(6);
        s.mark_used(now, &off, p(1));
        s.request_check(now, &off, p(2), nb(9));
        assert_eq!(s.wanted(now, &off), vec![p(1)]);
        for (c, _) in s.pick_all(now, &off, &cands) {
            assert_eq!(c.prefix, p(1));
        }
    }

    /// §2.2: among changed routes, those through the neighbour that gained the most go first.
    #[test]
    fn neighbour_gaining_most_routes_first() {
        let cfg = ScheduleConfig::default();
        let mut s = Scheduler::new(4);
        let now = Instant::from_secs(100);
        let base: Vec<VerifiableRoute> = (1..=5).map(|d| cand(d, 1, 300, true)).collect();
        for b in &base {
            s.mark_used(now, &cfg, b.prefix);
        }
        s.pick(now, &cfg, &base);
        // Neighbour 3 takes four destinations, neighbour 2 one.
        let mut after: Vec<VerifiableRoute> = (1..=4).map(|d| cand(d, 3, 100, true)).collect();
        after.push(cand(5, 2, 100, true));
        for _ in 0..20 {
            let (c, r) = s.pick(now, &cfg, &after).unwrap();
            assert_eq!((c.neighbour, r), (nb(3), Reason::NewSelection));
        }
    }

    /// §2.2: stratified by next hop, every neighbour with a feasible route to a used destination
    /// is probed every cycle, through a destination drawn at random among its routes (every one
    /// of them sometimes), and a due recheck goes first for its neighbour.
    /// §2.2, `sessions_per_neighbour`: each neighbour gets that many sessions a cycle, each
    /// to another destination, as many as it has used routes; its due recheck is still among
    /// them; and `max_sessions` caps the cycle with every neighbour's first session kept.
    #[test]
    fn sessions_per_neighbour_take_distinct_destinations() {
        let cfg = ScheduleConfig {
            sessions_per_neighbour: 2,
            ..ScheduleConfig::default()
        };
        let mut s = Scheduler::new(9);
        let now = Instant::from_secs(100);
        for d in 1..=4 {
            s.mark_used(now, &cfg, p(d));
        }
        // Neighbours 1 and 2 reach all four destinations, neighbour 3 only destination 1.
        let mut cands: Vec<VerifiableRoute> = (1..=4)
            .flat_map(|d| (1..=2).map(move |n| cand(d, n, 100 * n, n == 1)))
            .collect();
        cands.push(cand(1, 3, 400, false));
        for _ in 0..100 {
            let picks = s.pick_all(now, &cfg, &cands);
            let per = |n: u16| picks.iter().filter(|(c, _)| c.neighbour == nb(n)).count();
            assert_eq!((per(1), per(2), per(3)), (2, 2, 1), "{picks:?}");
            let distinct: std::collections::BTreeSet<(NeighbourId, Prefix)> =
                picks.iter().map(|(c, _)| (c.neighbour, c.prefix)).collect();
            assert_eq!(distinct.len(), picks.len());
        }
        s.checked(now, &cfg, &cands[0], true);
        let later = now + cfg.recheck_after;
        for d in 1..=4 {
            s.mark_used(later, &cfg, p(d));
        }
        let picks = s.pick_all(later, &cfg, &cands);
        assert!(picks.contains(&(cands[0], Reason::Recheck)), "{picks:?}");
        assert_eq!(picks.len(), 5);
        let capped = ScheduleConfig {
            max_sessions: 4,
            ..cfg
        };
        for _ in 0..100 {
            let picks = s.pick_all(later, &capped, &cands);
            let ns: std::collections::BTreeSet<NeighbourId> =
                picks.iter().map(|(c, _)| c.neighbour).collect();
            assert_eq!((picks.len(), ns.len()), (4, 3), "{picks:?}");
        }
    }

    #[test]
    fn every_neighbour_every_cycle() {
        // One session per neighbour (two: `sessions_per_neighbour_take_distinct_destinations`).
        let cfg = ScheduleConfig {
            sessions_per_neighbour: 1,
            ..ScheduleConfig::default()
        };
        let mut s = Scheduler::new(5);
        let now = Instant::from_secs(100);
        for d in 1..=4 {
            s.mark_used(now, &cfg, p(d));
        }
        let cands: Vec<VerifiableRoute> = (1..=4)
            .flat_map(|d| (1..=3).map(move |n| cand(d, n, 100 * n, n == 1)))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let picks = s.pick_all(now, &cfg, &cands);
            let ns: std::collections::BTreeSet<NeighbourId> =
                picks.iter().map(|(c, _)| c.neighbour).collect();
            assert_eq!((picks.len(), ns.len()), (3, 3));
            for (c, _) in &picks {
                seen.insert((c.prefix, c.neighbour));
            }
        }
        assert_eq!(seen.len(), 12);
        s.checked(now, &cfg, &cands[4], true);
        let later = now + cfg.recheck_after;
        for d in 1..=4 {
            s.mark_used(later, &cfg, p(d));
        }
        let picks = s.pick_all(later, &cfg, &cands);
        assert!(picks.contains(&(cands[4], Reason::Recheck)));
        assert_eq!(picks.len(), 3);
    }

    /// §6: used destinations are bounded.
    #[test]
    fn used_bounded() {
        let cfg = ScheduleConfig {
            max_used: 5,
            ..ScheduleConfig::default()
        };
        let mut s = Scheduler::new(3);
        for i in 0..100 {
            s.mark_used(Instant::from_secs(u64::from(i)), &cfg, p(i));
        }
        assert_eq!(s.used(Instant::from_secs(100), &cfg).len(), 5);
    }
}
