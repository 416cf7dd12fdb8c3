//! Route acquisition, retraction and expiry (RFC 8966 §3.5).

use super::selection::{SelectCx, Selection, select_cx};
use super::*;

/// [`SelectCx::select`] of the destination `$dest` of `$key`, found or made by the search that
/// wrote its route ([`RouteTable::entry`]): [`Engine::reselect`] without its own search (issue
/// 18). A macro, so that it borrows only the engine's fields that selection reads beside the
/// destination; the caller ends with [`Engine::selected_here`].
macro_rules! select_here {
    ($engine:expr, $now:expr, $key:expr, $dest:expr) => {{
        let mut dest = $dest;
        let cx = select_cx!($engine, $now, $key);
        let mut contenders = std::mem::take(&mut $engine.contenders);
        let outcome = cx.select(&mut dest, &mut contenders);
        $engine.contenders = contenders;
        outcome
    }};
}

impl Engine {
    /// The interface and address of the neighbour `nid`: a route's interface and `via`
    /// ([`Route`] keeps only the neighbour's id), and an installed route's. Known while the
    /// neighbour has routes, and while the destinations of a flushed neighbour are selected
    /// again (their installed routes still name it).
    pub(super) fn route_via(&self, nid: u64) -> Option<(u32, IpAddr)> {
        super::selection::route_via_in(&self.neighbours, &self.departed, nid)
    }

    /// The route `d` has in the kernel, whole ([`Installed`] keeps it without its neighbour's
    /// interface and address).
    pub(super) fn installed_of(&self, d: &Dest) -> Option<InstalledRoute> {
        self.routes.installed_of(d, |nid| self.route_via(nid))
    }

    pub(super) fn route_metric(&self, r: &Route) -> u16 {
        route_metric_via(r, self.neighbour_cost(r.neigh()))
    }

    /// RFC 8966 §3.5.3 route acquisition (with §3.5.4 retractions, §4.6.9 wildcard retractions and
    /// §3.8.2.2 unfeasible updates), then §3.6 selection.
    pub(super) fn handle_update(
        &mut self,
        now: Instant,
        nid: u64,
        ifindex: u32,
        src: IpAddr,
        u: Update,
    ) {
        self.counters.updates_received += 1;
        if u.interval == 0 {
            self.counters.rfc_violations += 1;
            return;
        }
        let Some(prefix) = u.prefix else {
            if u.metric == INFINITY && u.src_prefix.is_none() {
                self.retract_all_from(now, nid, Some(u.interval));
            } else {
                self.counters.rfc_violations += 1;
            }
            return;
        };
        if is_martian(&prefix) || u.src_prefix.is_some_and(|s| is_martian(&s)) {
            self.counters.martians += 1;
            return;
        }
        if u.src_prefix.is_some_and(|s| s.len() == 0) {
            self.counters.rfc_violations += 1;
            return;
        }
        let key = RouteKey {
            prefix,
            src_prefix: u.src_prefix,
        };
        // A destination still waiting for its slice sees the change before this Update.
        self.settle(now, &key);
        // Nothing between a route's write and its destination's selection reads the table
        // (no route event is wanted, no departed neighbour's routes are to drop): the
        // destination is selected where the route was found or added, as `reselect` would
        // select it (issue 18: one search of the table per Update instead of two).
        let in_place = self.departed.is_empty() && !self.wants_route_events();
        #[cfg(test)]
        let in_place = in_place && !self.full_selection;
        if u.is_retraction() {
            let mut changed = false;
            if let RouteEntry::Occupied(mut o) = self.routes.entry(key, nid) {
                let r = o.route();
                changed = r.refmetric != INFINITY;
                r.refmetric = INFINITY;
                r.time = now.into();
                r.interval = u.interval;
                r.refresh_requested = false;
                if changed && in_place {
                    let outcome = select_here!(self, now, key, o.into_selecting());
                    #[cfg(test)]
                    {
                        self.in_place_selections += 1;
                    }
                    self.selected_here(now, key, outcome, u.interval);
                    return;
                }
            }
            if changed {
                self.route_event(now, ChangeKind::Change, key, nid);
                self.reselect(now, key);
            }
            self.note_route_deadline(now, u.interval);
            return;
        }
        let Some(rid) = u.router_id else {
            self.counters.rfc_violations += 1;
            return;
        };
        if !rid.is_valid() {
            self.counters.rfc_violations += 1;
            return;
        }
        if rid == self.cfg.router_id {
            // babeld ignores routes carrying our own router-id (a stale echo of our prefix).
            return;
        }
        let price = accumulate(u.price.unwrap_or(0), self.cfg.fee, self.cfg.accumulation);
        let (neigh_rtt, via, cost) = match self.neighbours.get(&nid) {
            Some(n) => (n.rtt, n.address, n.cost),
            None => return,
        };
        let add_metric = match self.input_filter(key, rid, via, ifindex) {
            FilterAnswer::AddMetric(m) => m,
            FilterAnswer::Deny => {
                self.counters.filtered_in += 1;
                return;
            }
        };
        let path_rtt = match (u.path_rtt, neigh_rtt) {
            (Some(p), Some(r)) => {
                p.saturating_add(u32::try_from(r.as_micros()).unwrap_or(u32::MAX))
            }
            _ => 0,
        };
        // Interned before the route is looked up: it may sweep the table's next hops.
        let Ok(next_hop) = self.routes.next_hop_id(u.next_hop.unwrap_or(src)) else {
            self.route_refused(ifindex, nid, via, Refused::TableFull);
            return;
        };
        let metric = Metric(u.metric)
            .saturating_add(Metric(cost))
            .saturating_add(Metric(add_metric))
            .0;
        let limits = self.cfg.limits;
        match self.routes.entry(key, nid) {
            RouteEntry::Occupied(mut o) => {
                let r = o.route();
                let changed = r.refmetric != u.metric
                    || r.seqno != u.seqno
                    || r.router_id != rid
                    || r.price != price;
                r.router_id = rid;
                r.seqno = u.seqno;
                r.refmetric = u.metric;
                r.add_metric = add_metric;
                r.interval = u.interval;
                r.received_price = u.price.unwrap_or(0);
                r.price = price;
                r.path_rtt = path_rtt;
                r.next_hop = next_hop;
                r.time = now.into();
                r.refresh_requested = false;
                if (!changed && self.departed.is_empty()) || in_place {
                    // No route event (none for an unchanged route), and nothing for
                    // `drop_departed` to remove.
                    let outcome = select_here!(self, now, key, o.into_selecting());
                    #[cfg(test)]
                    if changed {
                        self.in_place_selections += 1;
                    }
                    self.selected_here(now, key, outcome, u.interval);
                    return;
                }
                if changed {
                    self.route_event(now, ChangeKind::Change, key, nid);
                }
            }
            RouteEntry::Vacant(v) => {
                let data = RouteData {
                    next_hop,
                    router_id: rid,
                    seqno: u.seqno,
                    refmetric: u.metric,
                    add_metric,
                    interval: u.interval,
                    received_price: u.price.unwrap_or(0),
                    price,
                    path_rtt,
                    time: now.into(),
                    smoothed: metric,
                    smoothed_time: now.into(),
                    verified_metric: 0,
                    verified_until: Instant::ZERO.into(),
                    refresh_requested: false,
                };
                match v.insert(data, limits.max_routes_per_neighbour, limits.max_routes) {
                    Ok(dest) if in_place => {
                        let outcome = select_here!(self, now, key, dest);
                        #[cfg(test)]
                        {
                            self.in_place_selections += 1;
                        }
                        self.selected_here(now, key, outcome, u.interval);
                        return;
                    }
                    Ok(_) => self.route_event(now, ChangeKind::Add, key, nid),
                    Err(refused) => {
                        self.route_refused(ifindex, nid, via, refused);
                        return;
                    }
                }
            }
        }
        self.note_route_deadline(now, u.interval);
        self.reselect(now, key);
    }

    /// The end of [`Engine::handle_update`] once the destination of `key` was selected where
    /// its route was written ([`select_here`]): [`Engine::reselect`]'s consequences.
    fn selected_here(&mut self, now: Instant, key: RouteKey, outcome: Selection, interval: u16) {
        self.routes.after_selection();
        self.note_route_deadline(now, interval);
        self.apply_selection(now, key, outcome);
    }

    /// Counts a route refused for a limit and says so once per neighbour (or once for the table).
    fn route_refused(&mut self, ifindex: u32, nid: u64, via: IpAddr, refused: Refused) {
        self.counters.routes_over_limit += 1;
        let limits = self.cfg.limits;
        match refused {
            Refused::NeighbourFull => {
                if let Some(n) = self.neighbours.get_mut(&nid)
                    && !n.limit_logged
                {
                    n.limit_logged = true;
                    warn!(ifindex, neighbour = %via, limit = limits.max_routes_per_neighbour,
                        "neighbour exceeds its route limit; dropping the excess");
                }
            }
            Refused::TableFull => {
                if !self.total_limit_logged {
                    self.total_limit_logged = true;
                    warn!(
                        limit = limits.max_routes,
                        "route table full; dropping new routes"
                    );
                }
            }
        }
    }

    /// babeld's `input_filter`: what the `in` filter says of a route from `neighbour`.
    pub(super) fn input_filter(
        &self,
        key: RouteKey,
        rid: RouterId,
        neighbour: IpAddr,
        ifindex: u32,
    ) -> FilterAnswer {
        let Some(filter) = &self.filter else {
            return FilterAnswer::ALLOW;
        };
        filter.input(&FilterRoute {
            prefix: key.prefix,
            src_prefix: key.src_prefix,
            router_id: rid,
            neighbour: Some(neighbour),
            ifindex,
            ifname: self
                .interfaces
                .get(&ifindex)
                .map_or("", |i| i.cfg.name.as_str()),
        })
    }

    pub(super) fn note_route_deadline(&mut self, now: Instant, interval: u16) {
        let t = now + from_centis(interval) * 3;
        self.timers.set_earlier(Timer::RouteCheck, t);
    }

    /// Tells observers that the route to `key` from neighbour `nid` was added or changed,
    /// with the route as it is now ([`Event::Route`]).
    pub(super) fn route_event(&mut self, now: Instant, kind: ChangeKind, key: RouteKey, nid: u64) {
        if !self.wants_route_events() {
            return;
        }
        let Some(d) = self.routes.get(&key) else {
            return;
        };
        if let Some(r) = d.route(nid) {
            let route = self.route_view(now, &key, d.selected() == Some(nid), r);
            self.events.push_back(Event::Route { kind, route });
        }
    }

    /// Whether [`Engine::route_event`] queues anything.
    fn wants_route_events(&self) -> bool {
        self.cfg.events && self.route_events == RouteEvents::All
    }

    /// Tells observers that these routes left the table: each is shown with its last fields,
    /// out of the kernel (babeld uninstalls a route before it notifies its flush).
    pub(super) fn flush_events(&mut self, now: Instant, flushed: &[(RouteKey, Route)]) {
        if !self.cfg.events || self.route_events == RouteEvents::Off {
            return;
        }
        for (key, r) in flushed {
            let route = self.route_view(now, key, false, r);
            self.events.push_back(Event::Route {
                kind: ChangeKind::Flush,
                route,
            });
        }
    }

    /// RFC 8966 §4.6.9: a wildcard retraction retracts every route learned from the neighbour.
    /// Up to one slice of routes ([`RESELECT_SLICE`]), each changed route's destination is
    /// selected again at once, after its route event. More, every route is marked retracted in
    /// place (the route events of the changed ones, if any are wanted, come first), and the
    /// neighbour's destinations are selected again a slice at a time
    /// ([`Engine::reselect_via`]): the list of keys is not made unless route events are.
    pub(super) fn retract_all_from(&mut self, now: Instant, nid: u64, interval: Option<u16>) {
        let sliced = self.routes.len_via(nid) > self.reselect_slice;
        let listed = !sliced || (self.cfg.events && self.route_events == RouteEvents::All);
        let mut keys = Vec::new();
        let mut retracted = false;
        self.routes.for_each_via(nid, |k, r| {
            if r.refmetric != INFINITY {
                r.refmetric = INFINITY;
                r.time = now.into();
                r.interval = interval.unwrap_or(r.interval);
                retracted = true;
                if listed {
                    keys.push(*k);
                }
            }
        });
        for k in keys {
            self.route_event(now, ChangeKind::Change, k, nid);
            if !sliced {
                self.reselect(now, k);
            }
        }
        if sliced && retracted {
            self.reselect_via(now, nid);
        }
    }

    /// RFC 8966 §3.5.3-§3.5.4 and §3.8.2.3: a route not refreshed for 3 intervals is refreshed by a
    /// unicast route request if selected; after 3.5 intervals it is retracted (metric infinite);
    /// after babeld's hold time (max(6 × interval, 15 s)) it is removed. Also ends verified-metric
    /// overrides.
    pub(super) fn expire_routes(&mut self, now: Instant) {
        let mut next: Option<Instant> = self.end_resume(now);
        let mut refresh: Vec<(u64, RouteKey)> = Vec::new();
        let mut flushed: Vec<(RouteKey, Route)> = Vec::new();
        let mut reselect: Vec<RouteKey> = Vec::new();
        let mut changed = |k: &RouteKey| {
            if reselect.last() != Some(k) {
                reselect.push(*k);
            }
        };
        self.routes.retain(|k, installed, r| {
            let iv = from_centis(r.interval);
            let hold = r.time.get() + hold_time(r.interval);
            if now >= hold {
                changed(k);
                flushed.push((*k, r.clone()));
                return false;
            }
            next = min_opt(next, Some(hold));
            let expiry = r.time.get() + iv * 7 / 2;
            if r.refmetric < INFINITY {
                if now >= expiry {
                    r.refmetric = INFINITY;
                    changed(k);
                } else {
                    next = min_opt(next, Some(expiry));
                    let old = r.time.get() + iv * 3;
                    if installed == Some(r.neigh()) && !r.refresh_requested {
                        if now >= old {
                            r.refresh_requested = true;
                            refresh.push((r.neigh(), *k));
                        } else {
                            next = min_opt(next, Some(old));
                        }
                    }
                }
            }
            if let Some((_, until)) = r.verified() {
                if now >= until {
                    r.set_verified(None);
                    changed(k);
                } else {
                    next = min_opt(next, Some(until));
                }
            }
            true
        });
        self.flush_events(now, &flushed);
        for (nid, k) in refresh {
            // Not a neighbour flushed whose routes are still being removed.
            let Some((ifindex, via)) = self.neighbours.get(&nid).map(|n| (n.ifindex, n.address))
            else {
                continue;
            };
            let req = Message::RouteRequest(RouteRequest {
                prefix: Some(k.prefix),
                v4_via_v6: false,
                src_prefix: k.src_prefix,
            });
            self.counters.route_requests_sent += 1;
            self.queue(ifindex, Destination::Unicast(via), req);
        }
        for k in reselect {
            self.reselect(now, k);
        }
        self.timers.set_opt(
            Timer::RouteCheck,
            next.map(|t| t.max(now + Duration::from_millis(500))),
        );
    }
}

/// The metric we install and advertise for a selected route through a neighbour whose link
/// cost is `cost`: never below a verified cost in force (`spec/verify.md` §5.2), or we would
/// knowingly relay a neighbour's lie; a large rise sends a triggered update. `penalty` is added
/// to a finite metric ([`EngineConfig::last_resort_penalty`], §4.3). Neither raises it above
/// [`CORRECTION_CEILING`]: a black hole is corrected to a cost of nearly infinity, and the
/// routers behind us, who add their links, would lose a destination we still forward to.
pub(super) fn advertised_metric_via(now: Instant, r: &Route, cost: u16, penalty: u16) -> u16 {
    let m = route_metric_via(r, cost);
    if m == INFINITY {
        return m;
    }
    let verified = r.verified().filter(|(_, t)| now < *t).map_or(0, |(v, _)| v);
    m.max(verified)
        .saturating_add(penalty)
        .min(CORRECTION_CEILING.max(m))
}

/// A route's metric through a neighbour whose link costs `cost`: its refmetric, the cost and
/// what the `in` filter adds (RFC 8966 §3.5.2).
pub(super) fn route_metric_via(r: &Route, cost: u16) -> u16 {
    Metric(r.refmetric)
        .saturating_add(Metric(cost))
        .saturating_add(Metric(r.add_metric))
        .0
}

pub(super) fn hold_time(interval_cs: u16) -> Duration {
    (from_centis(interval_cs) * 6).max(MIN_HOLD)
}
