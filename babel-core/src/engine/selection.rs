//! Route selection (RFC 8966 §3.6) and its consequences.

use super::route_table::Selecting;
use super::routes::{advertised_metric_via, route_metric_via};
use super::*;

impl Engine {
    pub(super) fn reselect_all(&mut self, now: Instant) {
        let keys: Vec<RouteKey> = self.routes.keys();
        for k in keys {
            self.reselect(now, k);
        }
    }

    /// RFC 8966 §3.6 route selection for one destination ([`select`]), with babeld's smoothing
    /// (Appendix A.3) and the verification overrides; then the consequences: kernel changes,
    /// events, triggered or urgent updates (§3.7.2), satisfied requests (§3.8.2) and starvation
    /// recovery (§3.8.2.1). A selected route that lost its metric with nothing to replace it is
    /// *held* as babeld holds it ([`Choice::held`]): still selected, out of the kernel's unicast
    /// table, with an `unreachable` kernel route ([`RouteOp::Unreachable`]) until it leaves the
    /// table.
    ///
    /// The destination is read and written in one search of the route table
    /// ([`RouteTable::select_in_place`]).
    ///
    /// **When the selection stands** (issue 18, the tenth pass): most selections follow an
    /// Update that repeats a route already held, at a destination whose choice does not move.
    /// Everything selection reads that time alone can change is still computed every time, in
    /// the contenders: the smoothed metrics over the time since the last selection, the
    /// feasibility distances (entries age out, our own dumps lower them), verified metrics
    /// that end, the neighbours' cost and accuracy, the resume window's holds. What is skipped
    /// is only what cannot differ once [`select`] keeps the current route: if it selects the
    /// neighbour whose route is installed (not held), and the installed copy is the one that
    /// route would make now (same next hop, originator, seqno, price, and the metric it would
    /// install, verified metric included), and no graceful-restart state is left
    /// (`resume` is `None`), then the full path would write the same selection and copy back,
    /// change nothing in the kernel, send no route event, and schedule an update only if a
    /// request is satisfied; so the fast path writes the smoothed metrics and their time (which
    /// must move: a later change decays over the time since this selection), answers the
    /// requests, asks for an unfeasible preferred route's seqno, and stops there. Any other case
    /// takes the full path. `fast_selection_is_the_full_selection` checks it against the full
    /// path on random inputs.
    pub(super) fn reselect(&mut self, now: Instant, key: RouteKey) {
        self.drop_departed(now, &key);
        let mut contenders = std::mem::take(&mut self.contenders);
        let cx = select_cx!(self, now, key);
        let outcome = self
            .routes
            .select_in_place(&key, |s| cx.select(s, &mut contenders));
        self.contenders = contenders;
        if let Some(o) = outcome {
            self.apply_selection(now, key, o);
        }
    }

    /// What follows [`SelectCx::select`]: the consequences (nothing but the requests it
    /// satisfies and a preferred unfeasible route's seqno request when the selection stands).
    pub(super) fn apply_selection(&mut self, now: Instant, key: RouteKey, outcome: Selection) {
        let (Selection::Stands { choice, .. } | Selection::Changed { choice, .. }) = &outcome;
        if let Some(at) = choice.switch_at {
            self.schedule_switch(key, at);
        }
        match outcome {
            Selection::Stands { choice, rid, seqno } => {
                #[cfg(test)]
                {
                    self.fast_selections += 1;
                }
                // Requests satisfied by the route (RFC 8966 §3.8.2): the full path's urgent
                // update, its only trigger when the installed copy is unchanged.
                let satisfied = self.requests.satisfy(&key, rid, seqno);
                self.ask_preferred_unfeasible(now, key, &choice);
                if satisfied {
                    self.schedule_update(now, None, key, true);
                }
            }
            Selection::Changed {
                choice,
                old_inst,
                new_inst,
                old_sel,
                new_sel,
                held_before,
                held,
                refused,
            } => {
                if refused {
                    self.counters.filtered_install += 1;
                }
                self.selection_changed(
                    now,
                    key,
                    &choice,
                    (old_inst, new_inst),
                    (old_sel, new_sel),
                    (held_before, held),
                    refused,
                );
            }
        }
    }

    /// The consequences of a selection on the full path ([`Engine::reselect`]).
    #[allow(clippy::too_many_arguments)]
    fn selection_changed(
        &mut self,
        now: Instant,
        key: RouteKey,
        choice: &Choice,
        (old_inst, new_inst): (Option<InstalledRoute>, Option<InstalledRoute>),
        (old_sel, new_sel): (Option<u64>, Option<u64>),
        (held_before, held): (bool, Option<u64>),
        refused: bool,
    ) {
        self.resume_selected(&key, new_inst.as_ref());
        // Kernel.
        match (old_inst, new_inst) {
            (None, Some(n)) => self.kernel(RouteOp::Add, key, &n),
            (Some(o), None) if held.is_some() => self.kernel(RouteOp::Unreachable, key, &o),
            (Some(o), None) => self.kernel(RouteOp::Delete, key, &o),
            (Some(o), Some(n)) if o.next_hop != n.next_hop || o.ifindex != n.ifindex => {
                self.kernel(RouteOp::Replace, key, &n)
            }
            (None, None) if held_before && held.is_none() => self.kernel_unhold(key),
            _ => {}
        }
        // The selection changed, or the selected route was held or released: what the routes
        // show (`installed`, metric) changed. (A route that left the table had its flush.)
        if old_sel != new_sel || held_before != held.is_some() {
            let present = |id: &u64| {
                self.routes
                    .get(&key)
                    .is_some_and(|d| d.route(*id).is_some())
            };
            if let Some(id) = old_sel.filter(present) {
                self.route_event(now, ChangeKind::Change, key, id);
            }
            if let Some(id) = new_sel.filter(|id| Some(*id) != old_sel) {
                self.route_event(now, ChangeKind::Change, key, id);
            }
        }
        // Requests satisfied by the new route (RFC 8966 §3.8.2).
        let satisfied = new_inst.is_some_and(|n| self.requests.satisfy(&key, n.router_id, n.seqno));
        self.ask_preferred_unfeasible(now, key, choice);
        // Triggered updates (RFC 8966 §3.7.2).
        match (old_inst, new_inst) {
            (None, Some(_)) => self.schedule_update(now, None, key, satisfied),
            (Some(o), None) => {
                self.schedule_update(now, None, key, true);
                // Starvation (RFC 8966 §3.8.2.1): ask the source for a newer seqno.
                let want = self.sources.seqno_to_request(&key, o.router_id, o.seqno);
                self.request_seqno(now, key, o.router_id, want, SEQNO_REQUEST_HOP_COUNT, None);
            }
            (Some(o), Some(n)) => {
                if o.router_id != n.router_id || satisfied {
                    self.schedule_update(now, None, key, true);
                } else if o.seqno != n.seqno
                    || o.next_hop != n.next_hop
                    || o.ifindex != n.ifindex
                    || n.metric.saturating_add(Metric(TRIGGER_IMPROVEMENT)) <= o.metric
                    || n.metric >= o.metric.saturating_add(Metric(TRIGGER_WORSENING))
                    || o.price != n.price
                {
                    self.schedule_update(now, None, key, false);
                }
                if o.ifindex != n.ifindex {
                    self.retract_on_split(key, n.ifindex);
                }
            }
            (None, None) if refused => {
                // babeld's consider_route after a failed install_route: send_update, which
                // finds nothing installed and sends a retraction.
                self.schedule_update(now, None, key, true);
            }
            (None, None) => {
                if let Some(u) = choice.starved_by {
                    let want = self
                        .sources
                        .seqno_to_request(&key, u.router_id, Seqno(u.seqno));
                    self.request_seqno(now, key, u.router_id, want, SEQNO_REQUEST_HOP_COUNT, None);
                }
            }
        }
    }

    /// An unfeasible route the policy prefers to the selected one: ask its sender for a newer
    /// seqno (RFC 8966 §3.8.2.2), so that price-aware policies can move to it too.
    fn ask_preferred_unfeasible(&mut self, now: Instant, key: RouteKey, choice: &Choice) {
        if let Some(u) = choice.preferred_unfeasible {
            let want = self
                .sources
                .seqno_to_request(&key, u.router_id, Seqno(u.seqno));
            self.request_seqno(
                now,
                key,
                u.router_id,
                want,
                SEQNO_REQUEST_HOP_COUNT,
                Some(u.neigh),
            );
        }
    }

    /// The held destination's `unreachable` kernel route goes (its route left the table): a
    /// [`RouteOp::Delete`] with no next hop, interface, originator or neighbour.
    pub(super) fn kernel_unhold(&mut self, key: RouteKey) {
        self.route_changes.push_back(RouteChange {
            op: RouteOp::Delete,
            prefix: key.prefix,
            src_prefix: key.src_prefix,
            next_hop: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            ifindex: 0,
            metric: Metric::INFINITY,
            router_id: RouterId([0; 8]),
            via: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        });
    }

    pub(super) fn kernel(&mut self, op: RouteOp, key: RouteKey, i: &InstalledRoute) {
        self.route_changes.push_back(RouteChange {
            op,
            prefix: key.prefix,
            src_prefix: key.src_prefix,
            next_hop: i.next_hop,
            ifindex: i.ifindex,
            metric: i.metric,
            router_id: i.router_id,
            via: i.via,
        });
    }
}

/// The [`SelectCx`] of `$engine` for a selection of `$key` at `$now`: a macro, not a method, so
/// that it borrows only the fields it names and the route table stays free for the selection.
/// The fast path is off in tests that ask for the full one as their reference.
macro_rules! select_cx {
    ($engine:expr, $now:expr, $key:expr) => {
        SelectCx {
            now: $now,
            key: $key,
            shadowed: $engine.xroutes.contains_key(&$key),
            cfg: &$engine.cfg,
            #[cfg(test)]
            fast: !$engine.full_selection,
            #[cfg(not(test))]
            fast: true,
            sources: &$engine.sources,
            neighbours: &$engine.neighbours,
            departed: &$engine.departed,
            resume: $engine.resume.as_ref(),
            filter: &$engine.filter,
            interfaces: &$engine.interfaces,
        }
    };
}
pub(super) use select_cx;

/// What selection reads besides the destination ([`Engine::reselect`]), borrowed from the
/// engine's other tables so that the destination can be selected in place.
pub(super) struct SelectCx<'a> {
    pub(super) now: Instant,
    pub(super) key: RouteKey,
    /// The destination is one of our xroutes.
    pub(super) shadowed: bool,
    pub(super) cfg: &'a EngineConfig,
    /// The fast path may be taken (off in tests for the reference).
    pub(super) fast: bool,
    pub(super) sources: &'a SourceTable,
    pub(super) neighbours: &'a BTreeMap<u64, Neighbour>,
    pub(super) departed: &'a BTreeMap<u64, (u32, IpAddr)>,
    pub(super) resume: Option<&'a resume::Resume>,
    pub(super) filter: &'a Option<Arc<dyn RouteFilter>>,
    pub(super) interfaces: &'a BTreeMap<u32, Interface>,
}

impl SelectCx<'_> {
    /// RFC 8966 §3.6 selection of the destination `s` ([`Engine::reselect`]): the contenders,
    /// [`select`], and the selection and smoothed metrics written; the consequences are left to
    /// [`Engine::apply_selection`].
    pub(super) fn select(
        &self,
        s: &mut Selecting<'_>,
        contenders: &mut Vec<Contender>,
    ) -> Selection {
        let (now, key, shadowed) = (self.now, self.key, self.shadowed);
        let policy = self.cfg.policy;
        let hl = self.cfg.smoothing_half_life;
        let (sources, neighbours, departed) = (self.sources, self.neighbours, self.departed);
        let (filter, interfaces) = (self.filter, self.interfaces);
        let via = |nid: u64| route_via_in(neighbours, departed, nid);
        // No graceful-restart state at all: `resume_selected` would do nothing.
        let fast = self.fast && self.resume.is_none();
        let resume = self.resume.filter(|x| now < x.until);
        let dest: &Dest = s.dest;
        // The routes of a destination mostly share one originator: its feasibility distance
        // is looked up once, not once per route.
        let mut distance: Option<(RouterId, Option<(Seqno, Metric)>)> = None;
        // Whether a route is blocked for its neighbour's accuracy alone (most selections have
        // none, and skip the last resort's pass).
        let mut any_last_resort = false;
        contenders.clear();
        contenders.extend(dest.routes().iter().map(|r| {
            let fd = match distance {
                Some((rid, fd)) if rid == r.router_id => fd,
                _ => {
                    let fd = sources.feasibility_distance(now, &key, r.router_id);
                    distance = Some((r.router_id, fd));
                    fd
                }
            };
            // One search of the neighbours for both the link cost and the accuracy.
            let neighbour = neighbours.get(&r.neigh());
            let evicted = neighbour.is_some_and(|n| self.cfg.evicts(n.accuracy));
            let held_out =
                resume.is_some_and(|x| x.blocks(&key, dest, r, |id| s.next_hop(id), via));
            any_last_resort |= evicted && !held_out;
            let metric = route_metric_via(r, neighbour.map_or(INFINITY, |n| n.cost));
            // A verified cost in force only ever makes the route worse (`spec/verify.md`
            // §5.1): a claim that rose above the cost measured at the check is taken, as the
            // advertisement takes it.
            let effective = match r.verified() {
                Some((m, until)) if now < until && metric < INFINITY => m.max(metric),
                _ => metric,
            };
            Contender {
                neigh: r.neigh(),
                router_id: r.router_id,
                seqno: r.seqno,
                metric,
                effective,
                smoothed: if learned_before_link_up(r, neighbour) {
                    effective
                } else {
                    smooth(
                        r.smoothed,
                        effective,
                        now.saturating_since(r.smoothed_time.get()),
                        hl,
                    )
                },
                price: r.price,
                feasible: is_feasible_after(fd, Seqno(r.seqno), Metric(r.refmetric)),
                blocked: neighbour.is_none() || evicted || held_out,
                last_resort: evicted && !held_out,
            }
        }));
        // Only evicted neighbours offer the destination: the best of them, as a last resort.
        if self.cfg.accuracy_last_resort
            && any_last_resort
            && !contenders
                .iter()
                .any(|c| c.feasible && !c.blocked && c.effective < INFINITY)
        {
            for c in contenders.iter_mut().filter(|c| c.last_resort) {
                c.blocked = false;
            }
        }
        let mut choice = select(policy, shadowed, dest.selected(), contenders);
        choice.switch_at =
            switch_due(policy, hl, shadowed, choice.selected, contenders).map(|d| now + d);
        // The smoothed metrics, written by either path.
        let smoothed = |s: &mut Selecting<'_>| {
            let mut smoothed = contenders.iter().map(|c| c.smoothed);
            s.each_route(|r| {
                if let Some(v) = smoothed.next() {
                    r.smoothed = v;
                    r.smoothed_time = now.into();
                }
            });
        };
        // The selection stands (see the doc comment): the route selected is the one
        // installed, and the copy installed is what it would install now.
        let stands = choice
            .selected
            .filter(|id| fast && dest.installed_neigh() == Some(*id))
            .and_then(|id| {
                let r = dest.route(id)?;
                let n = neighbours.get(&id)?;
                let penalty = self.cfg.last_resort_penalty(n.accuracy);
                let metric = Metric(advertised_metric_via(now, r, n.cost, penalty));
                s.installed_is(r, metric)
                    .then_some((r.router_id, Seqno(r.seqno)))
            });
        if let Some((rid, seqno)) = stands {
            smoothed(s);
            return Selection::Stands { choice, rid, seqno };
        }
        let mut chosen = choice.selected;
        let mut new_inst = chosen.and_then(|id| {
            let (ifindex, via) = via(id)?;
            dest.route(id).map(|r| {
                let (cost, penalty) = neighbours.get(&id).map_or((INFINITY, 0), |n| {
                    (n.cost, self.cfg.last_resort_penalty(n.accuracy))
                });
                InstalledRoute {
                    next_hop: s.next_hop(r.next_hop),
                    via,
                    ifindex,
                    metric: Metric(advertised_metric_via(now, r, cost, penalty)),
                    router_id: r.router_id,
                    seqno: Seqno(r.seqno),
                    price: r.price,
                }
            })
        });
        let old_inst = s.installed_of(via);
        let old_sel = dest.selected();
        let held_before = dest.is_held();
        // "InstalledRoute" means in the kernel: an addition the `install` filter refuses
        // leaves the destination without a route (babeld's `change_route` refuses ROUTE_ADD
        // only; a switch of next hop or a removal always goes through, and so does the
        // switch away from a held route, which babeld still has installed).
        let refused = old_inst.is_none()
            && !held_before
            && new_inst.is_some_and(|n| !install_allowed(filter, interfaces, &key, &n));
        if refused {
            chosen = None;
            new_inst = None;
        }
        let held = if new_inst.is_none() {
            choice.held
        } else {
            None
        };
        let new_sel = chosen.or(held);
        smoothed(s);
        s.set(new_sel, new_inst);
        Selection::Changed {
            choice,
            old_inst,
            new_inst,
            old_sel,
            new_sel,
            held_before,
            held,
            refused,
        }
    }
}

/// What [`Engine::reselect`] found in the table, for the consequences it applies after.
pub(super) enum Selection {
    /// The selection stands (see [`Engine::reselect`]): the installed route's originator and
    /// seqno, for the requests it satisfies.
    Stands {
        choice: Choice,
        rid: RouterId,
        seqno: Seqno,
    },
    /// The full path: what was and is now installed and selected.
    Changed {
        choice: Choice,
        old_inst: Option<InstalledRoute>,
        new_inst: Option<InstalledRoute>,
        old_sel: Option<u64>,
        new_sel: Option<u64>,
        held_before: bool,
        held: Option<u64>,
        refused: bool,
    },
}

/// [`Engine::route_via`] from the tables it reads.
pub(super) fn route_via_in(
    neighbours: &BTreeMap<u64, Neighbour>,
    departed: &BTreeMap<u64, (u32, IpAddr)>,
    nid: u64,
) -> Option<(u32, IpAddr)> {
    match neighbours.get(&nid) {
        Some(n) => Some((n.ifindex, n.address)),
        None => departed.get(&nid).copied(),
    }
}

/// babeld's `install_filter`: whether the `install` filter lets `route` into the kernel.
fn install_allowed(
    filter: &Option<Arc<dyn RouteFilter>>,
    interfaces: &BTreeMap<u32, Interface>,
    key: &RouteKey,
    route: &InstalledRoute,
) -> bool {
    let Some(filter) = filter else {
        return true;
    };
    filter.install(&FilterRoute {
        prefix: key.prefix,
        src_prefix: key.src_prefix,
        router_id: route.router_id,
        neighbour: Some(route.next_hop),
        ifindex: route.ifindex,
        ifname: interfaces
            .get(&route.ifindex)
            .map_or("", |i| i.cfg.name.as_str()),
    })
}

/// One route of a destination, as selection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Contender {
    /// The neighbour it was learned from (its identity, and the tie-break).
    pub(super) neigh: u64,
    pub(super) router_id: RouterId,
    pub(super) seqno: u16,
    /// Metric through this neighbour (refmetric + link cost + `in` filter).
    pub(super) metric: u16,
    /// The metric selection uses: `metric`, or a verified metric in force.
    pub(super) effective: u16,
    /// Smoothed `effective` metric (RFC 8966 Appendix A.3).
    pub(super) smoothed: u16,
    /// Total price.
    pub(super) price: u32,
    /// RFC 8966 §3.5.1.
    pub(super) feasible: bool,
    /// Its neighbour's accuracy is under the threshold, or the resume window holds it out.
    pub(super) blocked: bool,
    /// Blocked for its neighbour's accuracy alone: selectable when nothing else is, with
    /// [`crate::EngineConfig::accuracy_last_resort`].
    pub(super) last_resort: bool,
}

/// What [`select`] decided for one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Choice {
    /// The neighbour whose route is selected.
    pub(super) selected: Option<u64>,
    /// An unfeasible route the policy prefers to the selected one (RFC 8966 §3.8.2.2), or any
    /// unfeasible route of a neighbour in good standing while the selected one is the last
    /// resort (`spec/verify.md` §4.3): ask its neighbour for a newer seqno.
    pub(super) preferred_unfeasible: Option<Contender>,
    /// With nothing selectable, the first finite route that only feasibility keeps out
    /// (starvation, RFC 8966 §3.8.2.1): ask its originator for a newer seqno.
    pub(super) starved_by: Option<Contender>,
    /// The current route, when it lost its metric (infinite: retracted, expired, or its
    /// neighbour's link lost) and the destination is not ours: babeld keeps it selected, *held*,
    /// as long as nothing is installed instead. A route blocked for accuracy is not held.
    pub(super) held: Option<u64>,
    /// When a route that only the hysteresis keeps out becomes worth switching to, if nothing
    /// changes before ([`switch_due`]; set by [`SelectCx::select`]).
    pub(super) switch_at: Option<Instant>,
}

/// RFC 8966 §3.6: the route of one destination to use, among `routes`, under `policy`. Only
/// feasible, finite routes of neighbours not blocked can be selected, none when the destination is
/// one of our own (`shadowed`). The `current` selection is kept unless the policy says a
/// contender is worth switching to (babeld's hysteresis on smoothed metrics). Pure: the caller
/// applies the consequences.
pub(super) fn select(
    policy: Policy,
    shadowed: bool,
    current: Option<u64>,
    routes: &[Contender],
) -> Choice {
    let candidate = |c: &Contender| Candidate {
        metric: c.effective,
        smoothed_metric: c.smoothed,
        price: c.price,
        feasible: c.feasible && !c.blocked && !shadowed,
        tie_break: c.neigh,
    };
    // Candidates are made as they are needed (cheap copies), not collected: selection runs for
    // every Update received.
    let cands = || routes.iter().map(candidate);
    let find = |id: u64| cands().find(|c| c.tie_break == id);
    let cur = current.and_then(find);
    let selected = match cur {
        Some(cur) if cur.selectable() => cands()
            .filter(|c| c.tie_break != cur.tie_break && policy.should_switch(&cur, c))
            .min_by(|a, b| policy.cmp(a, b))
            .map_or(Some(cur.tie_break), |c| Some(c.tie_break)),
        // [`Policy::best`] on the candidates as they are made.
        _ => cands()
            .filter(|c| c.selectable())
            .min_by(|a, b| policy.cmp(a, b))
            .map(|c| c.tie_break),
    };
    let chosen = selected.and_then(find);
    // Selected as the last resort: every route of a neighbour in good standing is preferred,
    // whatever its metric. The evicted neighbour's lie usually set the feasibility distance,
    // so the honest routes left are unfeasible, and nothing else would ask for the seqno that
    // lets them be selected.
    let on_last_resort = selected.is_some_and(|id| {
        routes
            .iter()
            .any(|c| c.neigh == id && c.last_resort && !c.blocked)
    });
    // The best route that only feasibility keeps out, judged as if it were feasible.
    let mut best_unfeasible: Option<(Candidate, &Contender)> = None;
    for r in routes {
        if r.feasible
            || r.blocked
            || shadowed
            || r.effective == INFINITY
            || (on_last_resort && r.last_resort)
        {
            continue;
        }
        let as_feasible = Candidate {
            feasible: true,
            ..candidate(r)
        };
        if best_unfeasible.is_none_or(|(b, _)| policy.cmp(&as_feasible, &b).is_lt()) {
            best_unfeasible = Some((as_feasible, r));
        }
    }
    let preferred_unfeasible = match (best_unfeasible, chosen) {
        (Some((u, r)), Some(c)) if on_last_resort || policy.cmp(&u, &c).is_lt() => Some(*r),
        _ => None,
    };
    let starved_by = if selected.is_none() && !shadowed {
        routes
            .iter()
            .find(|r| !r.feasible && r.metric < INFINITY)
            .copied()
    } else {
        None
    };
    let held = if shadowed {
        None
    } else {
        current.filter(|id| {
            routes
                .iter()
                .any(|r| r.neigh == *id && r.effective == INFINITY)
        })
    };
    Choice {
        selected,
        preferred_unfeasible,
        starved_by,
        held,
        switch_at: None,
    }
}

/// How long until a contender that the hysteresis alone keeps out (RFC 8966 Appendix A.3: the
/// policy prefers it on its metric, but its smoothed metric has not yet passed the selected
/// route's) becomes worth switching to, if nothing changes meanwhile: the first instant, to the
/// microsecond, at which `policy.should_switch` holds with every smoothed metric decayed that
/// far ([`smooth`]), the soonest over the contenders. `None` when no contender is in that
/// state. The selection at that instant, from the smoothed metrics written now, sees exactly
/// these values and switches.
pub(super) fn switch_due(
    policy: Policy,
    half_life: Duration,
    shadowed: bool,
    selected: Option<u64>,
    routes: &[Contender],
) -> Option<Duration> {
    // Settled smoothed metrics do not move: what holds now holds later (most selections).
    if half_life.is_zero() || shadowed || routes.iter().all(|c| c.smoothed == c.effective) {
        return None;
    }
    let cur = routes.iter().find(|c| Some(c.neigh) == selected)?;
    let at = |c: &Contender, micros: u64| Candidate {
        metric: c.effective,
        smoothed_metric: smooth(
            c.smoothed,
            c.effective,
            Duration::from_micros(micros),
            half_life,
        ),
        price: c.price,
        feasible: c.feasible && !c.blocked,
        tie_break: c.neigh,
    };
    let switches =
        |c: &Contender, micros: u64| policy.should_switch(&at(cur, micros), &at(c, micros));
    // After 16 half-lives every smoothed metric is its metric (`smooth`).
    let settled = u64::try_from(half_life.saturating_mul(16).as_micros()).unwrap_or(u64::MAX);
    routes
        .iter()
        .filter(|c| c.neigh != cur.neigh && switches(c, settled) && !switches(c, 0))
        .map(|c| {
            // False at `lo`, true at `hi`: the first instant it holds.
            let (mut lo, mut hi) = (0, settled);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if switches(c, mid) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        })
        .min()
        .map(Duration::from_micros)
}

/// A route whose smoothed metric is infinite only because it was learned before its
/// neighbour's link cost was ever known (the Update came before the first IHU): it never had a
/// usable metric, so, like a new route, it takes its first finite one unsmoothed. A route that
/// had one and lost it (its link failed, or it was retracted) keeps the hysteresis of
/// [`smooth`]: its infinite smoothed metric dates from after the link came up.
fn learned_before_link_up(r: &Route, neighbour: Option<&Neighbour>) -> bool {
    r.smoothed == INFINITY
        && neighbour
            .and_then(|n| n.first_up)
            .is_some_and(|up| r.smoothed_time.get() <= up)
}

/// babeld's smoothing (RFC 8966 Appendix A.3): the smoothed metric decays exponentially toward
/// the metric with the given half-life (fixed point: whole half-lives by shifting, the fraction
/// linearly). An infinite metric is taken at once; a route coming back from infinity (its
/// neighbour's link lost and found again, or retracted and announced again) decays from
/// infinity like any other, as babeld's `route_smoothed_metric` does. That is the hysteresis
/// that keeps a route off a link that keeps failing: on a lossy wired link the 2-out-of-3 rule
/// makes the direct route infinite now and then, and a route that jumped straight back to its
/// old metric would take the traffic back at once (issue 18, the lossy ring benchmark).
pub(super) fn smooth(old: u16, target: u16, dt: Duration, half_life: Duration) -> u16 {
    // A settled metric stays (what the arithmetic below gives, without its divisions: most
    // routes are settled, and this runs for each route of a destination on every Update).
    if old == target || half_life.is_zero() || target == INFINITY {
        return target;
    }
    let hl = u64::try_from(half_life.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let dt = u64::try_from(dt.as_micros()).unwrap_or(u64::MAX);
    let halves = dt / hl;
    if halves >= 16 {
        return target;
    }
    let rem = dt % hl;
    let f = ((1u64 << 16) >> halves) * (2 * hl - rem) / (2 * hl);
    let diff = i64::from(old) - i64::from(target);
    let f = i64::try_from(f).unwrap_or(0);
    let v = i64::from(target) + diff * f / 65536;
    u16::try_from(v.clamp(0, i64::from(INFINITY) - 1)).unwrap_or(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_halves_per_half_life() {
        let hl = Duration::from_secs(4);
        assert_eq!(smooth(1000, 0, Duration::from_secs(4), hl), 500);
        assert_eq!(smooth(1000, 0, Duration::from_secs(8), hl), 250);
        assert_eq!(smooth(1000, 0, Duration::ZERO, hl), 1000);
        assert_eq!(smooth(1000, 0, Duration::from_secs(100), hl), 0);
        // Back from infinity: it starts from infinity and halves its distance to the metric
        // every half-life (babeld), so it is not trusted at once.
        assert_eq!(smooth(INFINITY, 10, Duration::ZERO, hl), INFINITY - 1);
        assert_eq!(
            smooth(INFINITY, 10, Duration::from_secs(4), hl),
            10 + (INFINITY - 10) / 2
        );
        assert_eq!(smooth(10, INFINITY, Duration::ZERO, hl), INFINITY);
        // A settled metric stays, however long since.
        for dt in [0, 1, 3_999_999, 4_000_000, 123_456_789, u64::MAX] {
            for m in [0, 1, 96, 1000, INFINITY - 1] {
                assert_eq!(smooth(m, m, Duration::from_micros(dt), hl), m);
            }
        }
    }

    fn route(neigh: u64, metric: u16) -> Contender {
        Contender {
            neigh,
            router_id: RouterId([0, 0, 0, 0, 0, 0, 0, 9]),
            seqno: 1,
            metric,
            effective: metric,
            smoothed: metric,
            price: 0,
            feasible: true,
            blocked: false,
            last_resort: false,
        }
    }

    const BABEL: Policy = Policy::Babeld;

    #[test]
    fn selects_the_best_feasible_finite_route() {
        let routes = [route(1, 300), route(2, 200), route(3, INFINITY)];
        let c = select(BABEL, false, None, &routes);
        assert_eq!(c.selected, Some(2));
        assert_eq!((c.preferred_unfeasible, c.starved_by), (None, None));
        assert_eq!(select(BABEL, false, None, &[]).selected, None);
        assert_eq!(select(BABEL, false, None, &routes[2..]).selected, None);
    }

    #[test]
    fn a_last_resort_asks_for_the_seqno_of_any_honest_unfeasible_route() {
        // The evicted neighbour's route, unblocked by the last resort's pass (`SelectCx`).
        let evicted = Contender {
            last_resort: true,
            ..route(1, 100)
        };
        let honest = Contender {
            feasible: false,
            ..route(2, 400)
        };
        let other_evicted = Contender {
            feasible: false,
            last_resort: true,
            ..route(3, 50)
        };
        let c = select(BABEL, false, None, &[evicted, honest, other_evicted]);
        assert_eq!(c.selected, Some(1));
        // Far worse on its metric, the honest route is asked for; the other evicted one is not.
        assert_eq!(c.preferred_unfeasible, Some(honest));
        assert_eq!(
            select(BABEL, false, None, &[evicted, other_evicted]).preferred_unfeasible,
            None
        );
        // Not on the last resort: the policy decides, as before.
        let plain = Contender {
            last_resort: false,
            ..evicted
        };
        assert_eq!(
            select(BABEL, false, None, &[plain, honest]).preferred_unfeasible,
            None
        );
    }

    #[test]
    fn unfeasible_and_blocked_routes_are_never_selected() {
        let better = Contender {
            feasible: false,
            ..route(2, 100)
        };
        let c = select(BABEL, false, None, &[route(1, 300), better]);
        assert_eq!(c.selected, Some(1));
        // The policy prefers it: its neighbour is asked for a newer seqno (RFC 8966 §3.8.2.2).
        assert_eq!(c.preferred_unfeasible, Some(better));
        let worse = Contender {
            feasible: false,
            ..route(2, 400)
        };
        assert_eq!(
            select(BABEL, false, None, &[route(1, 300), worse]).preferred_unfeasible,
            None
        );
        let blocked = Contender {
            blocked: true,
            ..route(2, 100)
        };
        let c = select(BABEL, false, None, &[route(1, 300), blocked]);
        assert_eq!((c.selected, c.preferred_unfeasible), (Some(1), None));
    }

    #[test]
    fn starvation_names_an_unfeasible_route() {
        let r = Contender {
            feasible: false,
            ..route(4, 100)
        };
        let c = select(BABEL, false, None, &[route(1, INFINITY), r]);
        assert_eq!((c.selected, c.starved_by), (None, Some(r)));
        // Our own destination: nothing selected and nothing to ask for.
        let c = select(BABEL, true, None, &[route(1, 100), r]);
        assert_eq!(
            (c.selected, c.starved_by, c.preferred_unfeasible),
            (None, None, None)
        );
    }

    #[test]
    fn a_switch_the_hysteresis_delays_is_due_when_the_smoothed_metrics_cross() {
        let hl = Duration::from_secs(4);
        // Better on its metric (200 against 300), its smoothed metric still 350: it falls
        // linearly within the first half-life (200 + 150 * (1 - t/8)) and passes 300 at t = 8/3 s.
        let newly_better = Contender {
            smoothed: 350,
            ..route(2, 200)
        };
        let routes = [route(1, 300), newly_better];
        let Some(due) = switch_due(BABEL, hl, false, Some(1), &routes) else {
            panic!("no deadline");
        };
        assert!(
            due > Duration::from_millis(2660) && due < Duration::from_millis(2680),
            "{due:?}"
        );
        // What selection does with the smoothed metrics written now and decayed that far: it
        // keeps the route a microsecond before and switches at the deadline.
        let at = |d: Duration| {
            routes.map(|c| Contender {
                smoothed: smooth(c.smoothed, c.effective, d, hl),
                ..c
            })
        };
        let before = at(due - Duration::from_micros(1));
        assert_eq!(select(BABEL, false, Some(1), &before).selected, Some(1));
        assert_eq!(select(BABEL, false, Some(1), &at(due)).selected, Some(2));
        // Nothing is due: without smoothing; for our own destination; when only an equal metric
        // waits (the smoothed metrics meet but never cross); when the better route is not
        // selectable; when it is already worth switching to (selection switches now).
        assert_eq!(
            switch_due(BABEL, Duration::ZERO, false, Some(1), &routes),
            None
        );
        assert_eq!(switch_due(BABEL, hl, true, Some(1), &routes), None);
        let equal = Contender {
            smoothed: 350,
            ..route(2, 300)
        };
        assert_eq!(
            switch_due(BABEL, hl, false, Some(1), &[route(1, 300), equal]),
            None
        );
        for unselectable in [
            Contender {
                feasible: false,
                ..newly_better
            },
            Contender {
                blocked: true,
                ..newly_better
            },
        ] {
            assert_eq!(
                switch_due(BABEL, hl, false, Some(1), &[route(1, 300), unselectable]),
                None
            );
        }
        assert_eq!(
            switch_due(BABEL, hl, false, Some(1), &[route(1, 300), route(2, 200)]),
            None
        );
        assert_eq!(switch_due(BABEL, hl, false, None, &routes), None);
        // The soonest of several.
        let sooner = Contender {
            smoothed: 320,
            ..route(3, 250)
        };
        let both = switch_due(
            BABEL,
            hl,
            false,
            Some(1),
            &[route(1, 300), newly_better, sooner],
        );
        let alone = switch_due(BABEL, hl, false, Some(1), &[route(1, 300), sooner]);
        assert_eq!(both, alone);
        assert!(both.is_some_and(|b| b < due));
    }

    #[test]
    fn the_current_route_is_kept_until_the_smoothed_metric_agrees() {
        // babeld's hysteresis (RFC 8966 Appendix A.3): a better route whose smoothed metric is
        // not better yet does not replace the selected one; without a selection it would win.
        let newly_better = Contender {
            smoothed: 350,
            ..route(2, 200)
        };
        let routes = [route(1, 300), newly_better];
        assert_eq!(select(BABEL, false, Some(1), &routes).selected, Some(1));
        assert_eq!(select(BABEL, false, None, &routes).selected, Some(2));
        // Once both metrics are better it does; an unselectable current one is replaced.
        let routes = [route(1, 300), route(2, 200)];
        assert_eq!(select(BABEL, false, Some(1), &routes).selected, Some(2));
        let routes = [route(1, INFINITY), route(2, 290)];
        assert_eq!(select(BABEL, false, Some(1), &routes).selected, Some(2));
    }

    #[test]
    fn a_current_route_that_lost_its_metric_is_held() {
        let lost = route(1, INFINITY);
        let c = select(BABEL, false, Some(1), &[lost]);
        assert_eq!((c.selected, c.held), (None, Some(1)));
        // Not a route that was not selected, nor one of our own destinations.
        assert_eq!(select(BABEL, false, Some(2), &[lost]).held, None);
        assert_eq!(select(BABEL, false, None, &[lost]).held, None);
        assert_eq!(select(BABEL, true, Some(1), &[lost]).held, None);
        // A finite route blocked for accuracy is not held: it leaves the kernel.
        let blocked = Contender {
            blocked: true,
            ..route(1, 100)
        };
        let c = select(BABEL, false, Some(1), &[blocked]);
        assert_eq!((c.selected, c.held), (None, None));
        // Another route replaces it; `held` then names the lost route, which the caller drops
        // because a route is installed.
        let c = select(BABEL, false, Some(1), &[lost, route(2, 300)]);
        assert_eq!((c.selected, c.held), (Some(2), Some(1)));
    }

    #[test]
    fn a_verified_metric_decides() {
        let liar = Contender {
            effective: 1000,
            smoothed: 1000,
            ..route(1, 100)
        };
        assert_eq!(
            select(BABEL, false, None, &[liar, route(2, 300)]).selected,
            Some(2)
        );
    }

    #[test]
    fn price_policies_see_prices() {
        let cheap = Contender {
            price: 10,
            ..route(1, 400)
        };
        let dear = Contender {
            price: 100_000,
            ..route(2, 300)
        };
        let routes = [cheap, dear];
        assert_eq!(select(BABEL, false, None, &routes).selected, Some(2));
        let althea = Policy::Althea {
            metric_factor: price_metric::DEFAULT_METRIC_FACTOR,
        };
        assert_eq!(select(althea, false, None, &routes).selected, Some(1));
    }
}

/// The fast path of [`Engine::reselect`] against the full one: two engines fed the same random
/// inputs, one with every selection on the full path, agree after every input.
#[cfg(test)]
mod fast_path_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::net::Ipv6Addr;

    use babel_wire::{EncodeOptions, Hello, Ihu, encode};

    use super::*;

    const US: [&str; 2] = ["fe80::1", "fe80::9"];
    /// Neighbours: (address, interface).
    const NEIGHBOURS: [(&str, u32); 3] = [("fe80::2", 1), ("fe80::3", 1), ("fe80::4", 2)];
    const DESTS: u32 = 24;

    /// One input, given to both engines.
    type Action = Box<dyn Fn(&mut Engine)>;

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn prefix(i: u32) -> Prefix {
        let a = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) << 64));
        Prefix::new(IpAddr::V6(a), 64).unwrap()
    }

    fn engine(full: bool, events: bool) -> Engine {
        let now = Instant::ZERO;
        let mut cfg = EngineConfig::new(RouterId([0, 0, 0, 0, 0, 0, 0, 1]));
        cfg.seed = 7;
        cfg.events = events;
        let mut e = Engine::new(cfg, now).unwrap();
        e.full_selection = full;
        for (i, us) in US.iter().enumerate() {
            let name = format!("eth{i}");
            let cfg = InterfaceConfig::new(&name, InterfaceKind::Wired, addr(us));
            e.interface_up(now, i as u32 + 1, cfg);
        }
        e
    }

    fn send(e: &mut Engine, now: Instant, n: usize, msgs: &[Message]) {
        let (a, ifindex) = NEIGHBOURS[n];
        for p in encode(msgs, &EncodeOptions::default()).unwrap() {
            e.handle_packet(now, ifindex, addr(a), Destination::Multicast, &p);
        }
    }

    /// Everything selection decides, and everything it sends.
    fn seen(e: &mut Engine) -> String {
        let (t, r, ev) = e.take_outputs();
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{t:?}\n{r:?}\n{ev:?}",
            e.routes.iter().collect::<Vec<_>>(),
            e.sources,
            e.requests,
            e.counters,
            e.poll_timeout(),
        )
    }

    /// Random inputs: Hellos and IHUs whose costs change, Updates that mostly repeat what the
    /// neighbour sent last (the fast path's case) and sometimes change its metric, seqno or
    /// originator or retract it, verified metrics that end, accuracy crossing the threshold,
    /// seqno requests, our own prefixes announced and withdrawn, and time passing (smoothing,
    /// expiry, the source table's distances ageing, dumps lowering them).
    #[test]
    fn fast_selection_is_the_full_selection() {
        let (fast, full) = fast_against_full(true);
        // With route events wanted, an Update's destination is found again for its selection.
        assert_eq!((fast.in_place_selections, full.in_place_selections), (0, 0));
    }

    /// Without route events (the simulator's case), a route that an Update changes, adds or
    /// retracts is selected where the Update wrote it, as [`Engine::reselect`] selects it.
    #[test]
    fn selection_in_place_is_reselect() {
        let (fast, full) = fast_against_full(false);
        assert_eq!(full.in_place_selections, 0);
        assert!(
            fast.in_place_selections > 1000,
            "{} selections in place",
            fast.in_place_selections
        );
    }

    /// Runs the random inputs through an engine on the fast paths and one on the reference
    /// paths, with or without route events, checking after each input that they agree; returns
    /// the last seed's engines.
    fn fast_against_full(events: bool) -> (Engine, Engine) {
        let mut last = None;
        for seed in 0..6u64 {
            let (mut fast, mut full) = (engine(false, events), engine(true, events));
            let mut rng = Rng::new(seed);
            // What each neighbour last sent for each destination: (metric, seqno, originator).
            let mut sent = vec![vec![None::<(u16, u16, u8)>; DESTS as usize]; NEIGHBOURS.len()];
            let mut hello = [0u16; NEIGHBOURS.len()];
            let mut now = Instant::ZERO;
            for step in 0..1500 {
                now = now + Duration::from_millis(rng.below(1500));
                let mut actions: Vec<Action> = Vec::new();
                let n = rng.below(NEIGHBOURS.len() as u64) as usize;
                match rng.below(20) {
                    0..=3 => {
                        hello[n] = hello[n].wrapping_add(1);
                        let us = US[(NEIGHBOURS[n].1 - 1) as usize];
                        let rxcost = [96, 96, 96, 160, 256, INFINITY][rng.below(6) as usize];
                        let msgs = vec![
                            Message::Hello(Hello {
                                unicast: false,
                                seqno: hello[n],
                                interval: 400,
                                timestamp: None,
                            }),
                            Message::Ihu(Ihu {
                                address: Some(addr(us)),
                                rxcost,
                                interval: 1200,
                                timestamp: None,
                            }),
                        ];
                        actions.push(Box::new(move |e| send(e, now, n, &msgs)));
                    }
                    4..=14 => {
                        let mut msgs = Vec::new();
                        for i in 0..DESTS {
                            if rng.below(3) == 0 {
                                continue;
                            }
                            let last = &mut sent[n][i as usize];
                            let (mut metric, mut seqno, mut rid) =
                                last.unwrap_or((96 + rng.below(400) as u16, 1, 1));
                            match rng.below(12) {
                                0 => metric = 96 + rng.below(600) as u16,
                                1 => seqno = seqno.wrapping_add(1),
                                2 => rid = 1 + rng.below(2) as u8,
                                3 => metric = INFINITY,
                                _ if metric == INFINITY => metric = 96 + rng.below(600) as u16,
                                _ => {}
                            }
                            *last = Some((metric, seqno, rid));
                            msgs.push(Message::Update(Update {
                                prefix: Some(prefix(i)),
                                v4_via_v6: false,
                                src_prefix: None,
                                interval: 400,
                                seqno,
                                metric,
                                router_id: Some(RouterId([2, 0, 0, 0, 0, 0, 0, rid])),
                                next_hop: None,
                                price: Some(100),
                                path_rtt: None,
                                diversity: None,
                            }));
                        }
                        actions.push(Box::new(move |e| send(e, now, n, &msgs)));
                    }
                    15 => {
                        let key = RouteKey::new(prefix(rng.below(u64::from(DESTS)) as u32));
                        let (a, ifindex) = NEIGHBOURS[n];
                        let metric = 96 + rng.below(900) as u16;
                        let until = now + Duration::from_millis(rng.below(20_000));
                        actions.push(Box::new(move |e| {
                            let _ =
                                e.set_verified_metric(now, key, ifindex, addr(a), metric, until);
                        }));
                    }
                    16 => {
                        let (a, ifindex) = NEIGHBOURS[n];
                        let accuracy = [0, 500, 1000][rng.below(3) as usize];
                        actions.push(Box::new(move |e| {
                            let _ = e.set_neighbour_accuracy(now, ifindex, addr(a), accuracy);
                        }));
                    }
                    17 => {
                        let i = rng.below(u64::from(DESTS)) as u32;
                        let seqno = sent[n][i as usize].map_or(1, |s| s.1.wrapping_add(1));
                        let msgs = vec![Message::SeqnoRequest(babel_wire::SeqnoRequest {
                            prefix: prefix(i),
                            v4_via_v6: false,
                            src_prefix: None,
                            seqno,
                            hop_count: 8,
                            router_id: RouterId([2, 0, 0, 0, 0, 0, 0, 1]),
                        })];
                        actions.push(Box::new(move |e| send(e, now, n, &msgs)));
                    }
                    _ => {
                        let key = RouteKey::new(prefix(rng.below(u64::from(DESTS)) as u32));
                        let on = rng.below(2) == 0;
                        actions.push(Box::new(move |e| {
                            if on {
                                let _ = e.announce(now, key, 0);
                            } else {
                                e.withdraw(now, key);
                            }
                        }));
                    }
                }
                for e in [&mut fast, &mut full] {
                    while e.poll_timeout().is_some_and(|t| t <= now) {
                        e.handle_timeout(now);
                    }
                    for a in &actions {
                        a(e);
                    }
                }
                let (a, b) = (seen(&mut fast), seen(&mut full));
                assert!(a == b, "seed {seed}, step {step}:\n{a}\n---\n{b}");
            }
            assert_eq!(full.fast_selections, 0);
            assert!(
                fast.fast_selections > 1000,
                "seed {seed}: {} fast selections",
                fast.fast_selections
            );
            last = Some((fast, full));
        }
        last.unwrap()
    }
}
