//! Route selection (RFC 8966 §3.6) and its consequences.

use super::routes::route_metric_via;
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
    pub(super) fn reselect(&mut self, now: Instant, key: RouteKey) {
        self.drop_departed(now, &key);
        let shadowed = self.xroutes.contains_key(&key);
        let policy = self.cfg.policy;
        let hl = self.cfg.smoothing_half_life;
        let threshold = self.cfg.accuracy_threshold;
        let Some(dest) = self.routes.get(&key) else {
            return;
        };
        // The routes of a destination mostly share one originator: its feasibility distance is
        // looked up once, not once per route.
        let mut distance: Option<(RouterId, Option<(Seqno, Metric)>)> = None;
        let mut contenders = std::mem::take(&mut self.contenders);
        contenders.clear();
        contenders.extend(dest.routes().iter().map(|r| {
            let fd = match distance {
                Some((rid, fd)) if rid == r.router_id => fd,
                _ => {
                    let fd = self.sources.feasibility_distance(now, &key, r.router_id);
                    distance = Some((r.router_id, fd));
                    fd
                }
            };
            // One search of the neighbours for both the link cost and the accuracy.
            let neighbour = self.neighbours.get(&r.neigh());
            let metric = route_metric_via(r, neighbour.map_or(INFINITY, |n| n.cost));
            let effective = match r.verified() {
                Some((m, until)) if now < until && metric < INFINITY => m,
                _ => metric,
            };
            Contender {
                neigh: r.neigh(),
                router_id: r.router_id,
                seqno: r.seqno,
                metric,
                effective,
                smoothed: smooth(
                    r.smoothed,
                    effective,
                    now.saturating_since(r.smoothed_time.get()),
                    hl,
                ),
                price: r.price,
                feasible: is_feasible_after(fd, Seqno(r.seqno), Metric(r.refmetric)),
                blocked: neighbour.is_none_or(|n| n.accuracy < threshold)
                    || self.resume_blocks(now, &key, dest, r),
            }
        }));
        let choice = select(policy, shadowed, dest.selected(), &contenders);
        let mut chosen = choice.selected;
        let mut new_inst = chosen.and_then(|id| {
            let (ifindex, via) = self.route_via(id)?;
            dest.route(id).map(|r| InstalledRoute {
                next_hop: self.routes.next_hop(r.next_hop),
                via,
                ifindex,
                metric: Metric(self.advertised_metric(now, r)),
                router_id: r.router_id,
                seqno: Seqno(r.seqno),
                price: r.price,
            })
        });
        let old_inst = self.installed_of(dest);
        let old_sel = dest.selected();
        let held_before = dest.is_held();
        // "InstalledRoute" means in the kernel: an addition the `install` filter refuses leaves the
        // destination without a route (babeld's `change_route` refuses ROUTE_ADD only; a switch
        // of next hop or a removal always goes through, and so does the switch away from a held
        // route, which babeld still has installed).
        let refused = old_inst.is_none()
            && !held_before
            && new_inst.is_some_and(|n| !self.install_allowed(&key, &n));
        if refused {
            self.counters.filtered_install += 1;
            chosen = None;
            new_inst = None;
        }
        let held = if new_inst.is_none() {
            choice.held
        } else {
            None
        };
        let new_sel = chosen.or(held);
        // The smoothed metrics and the selection in one search of the table.
        let mut smoothed = contenders.iter().map(|c| c.smoothed);
        self.routes
            .set_selection_smoothed(&key, new_sel, new_inst, |r| {
                if let Some(s) = smoothed.next() {
                    r.smoothed = s;
                    r.smoothed_time = now.into();
                }
            });
        self.contenders = contenders;
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
        // An unfeasible route the policy prefers to the selected one: ask its sender for a newer
        // seqno (RFC 8966 §3.8.2.2), so that price-aware policies can move to it too.
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
                    || n.metric.saturating_add(Metric(TRIGGER_IMPROVEMENT)) <= o.metric
                    || n.metric >= o.metric.saturating_add(Metric(TRIGGER_WORSENING))
                    || o.price != n.price
                {
                    self.schedule_update(now, None, key, false);
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

    /// babeld's `install_filter`: whether the `install` filter lets `route` into the kernel.
    fn install_allowed(&self, key: &RouteKey, route: &InstalledRoute) -> bool {
        let Some(filter) = &self.filter else {
            return true;
        };
        filter.install(&FilterRoute {
            prefix: key.prefix,
            src_prefix: key.src_prefix,
            router_id: route.router_id,
            neighbour: Some(route.next_hop),
            ifindex: route.ifindex,
            ifname: self
                .interfaces
                .get(&route.ifindex)
                .map_or("", |i| i.cfg.name.as_str()),
        })
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
    /// Its neighbour's accuracy is under the threshold.
    pub(super) blocked: bool,
}

/// What [`select`] decided for one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Choice {
    /// The neighbour whose route is selected.
    pub(super) selected: Option<u64>,
    /// An unfeasible route the policy prefers to the selected one (RFC 8966 §3.8.2.2): ask its
    /// neighbour for a newer seqno.
    pub(super) preferred_unfeasible: Option<Contender>,
    /// With nothing selectable, the first finite route that only feasibility keeps out
    /// (starvation, RFC 8966 §3.8.2.1): ask its originator for a newer seqno.
    pub(super) starved_by: Option<Contender>,
    /// The current route, when it lost its metric (infinite: retracted, expired, or its
    /// neighbour's link lost) and the destination is not ours: babeld keeps it selected, *held*,
    /// as long as nothing is installed instead. A route blocked for accuracy is not held.
    pub(super) held: Option<u64>,
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
    // The best route that only feasibility keeps out, judged as if it were feasible.
    let mut best_unfeasible: Option<(Candidate, &Contender)> = None;
    for r in routes {
        if r.feasible || r.blocked || shadowed || r.effective == INFINITY {
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
        (Some((u, r)), Some(c)) if policy.cmp(&u, &c).is_lt() => Some(*r),
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
    }
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
