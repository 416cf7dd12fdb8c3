//! Route selection (RFC 8966 §3.6) and its consequences.

use super::*;

impl Engine {
    pub(super) fn reselect_all(&mut self, now: Instant) {
        let keys: Vec<RouteKey> = self.routes.keys();
        for k in keys {
            self.reselect(now, k);
        }
    }

    /// RFC 8966 §3.6 route selection with babeld's smoothing and hysteresis (Appendix A.3), using
    /// the configured [`Policy`]; then the consequences: kernel changes, triggered or urgent
    /// updates (§3.7.2), satisfied requests (§3.8.2) and starvation recovery (§3.8.2.1).
    pub(super) fn reselect(&mut self, now: Instant, key: RouteKey) {
        let shadowed = self.xroutes.contains_key(&key);
        let policy = self.cfg.policy;
        let hl = self.cfg.smoothing_half_life;
        let threshold = self.cfg.accuracy_threshold;
        let Some(dest) = self.routes.get(&key) else {
            return;
        };
        let mut cands: Vec<Candidate> = Vec::with_capacity(dest.routes().len());
        let mut smoothed: Vec<u16> = Vec::with_capacity(dest.routes().len());
        let mut any_unfeasible: Option<(RouterId, u16)> = None;
        // The best route that only feasibility keeps out (RFC 8966 §3.8.2.2).
        let mut best_unfeasible: Option<(Candidate, RouterId, u16)> = None;
        for r in dest.routes() {
            let metric = self.route_metric(r);
            let eff = match r.verified {
                Some((m, until)) if now < until && metric < INFINITY => m,
                _ => metric,
            };
            let s = smooth(r.smoothed, eff, now.saturating_since(r.smoothed_time), hl);
            smoothed.push(s);
            let feasible = self
                .sources
                .is_feasible(now, &key, r.router_id, r.seqno, r.refmetric);
            if !feasible && metric < INFINITY && any_unfeasible.is_none() {
                any_unfeasible = Some((r.router_id, r.seqno));
            }
            let blocked = self
                .neighbours
                .get(&r.neigh())
                .is_none_or(|n| n.accuracy < threshold);
            let c = Candidate {
                metric: eff,
                smoothed_metric: s,
                price: r.price,
                feasible: feasible && !blocked && !shadowed,
                tie_break: r.neigh(),
            };
            if !feasible && !blocked && !shadowed && eff < INFINITY {
                let as_feasible = Candidate {
                    feasible: true,
                    ..c
                };
                if best_unfeasible.is_none_or(|(b, _, _)| policy.cmp(&as_feasible, &b).is_lt()) {
                    best_unfeasible = Some((as_feasible, r.router_id, r.seqno));
                }
            }
            cands.push(c);
        }
        let current = dest
            .selected()
            .and_then(|id| cands.iter().find(|c| c.tie_break == id))
            .copied();
        let chosen = match current {
            Some(cur) if cur.selectable() => cands
                .iter()
                .filter(|c| c.tie_break != cur.tie_break && policy.should_switch(&cur, c))
                .min_by(|a, b| policy.cmp(a, b))
                .map_or(Some(cur.tie_break), |c| Some(c.tie_break)),
            _ => policy.best(cands.iter()).map(|c| c.tie_break),
        };
        let new_inst = chosen.and_then(|id| {
            dest.route(id).map(|r| Installed {
                next_hop: r.next_hop,
                via: r.via,
                ifindex: r.ifindex,
                metric: self.route_metric(r),
                router_id: r.router_id,
                seqno: r.seqno,
                price: r.price,
            })
        });
        let chosen_cand = chosen
            .and_then(|id| cands.iter().find(|c| c.tie_break == id))
            .copied();
        let old_inst = dest.installed();
        let old_sel = dest.selected();
        if let Some(dest) = self.routes.dest_mut(&key) {
            for (r, s) in dest.routes_mut().zip(smoothed) {
                r.smoothed = s;
                r.smoothed_time = now;
            }
        }
        self.routes.set_selection(&key, chosen, new_inst);
        // Kernel.
        match (old_inst, new_inst) {
            (None, Some(n)) => self.kernel(RouteOp::Add, key, &n),
            (Some(o), None) => self.kernel(RouteOp::Delete, key, &o),
            (Some(o), Some(n)) if o.next_hop != n.next_hop || o.ifindex != n.ifindex => {
                self.kernel(RouteOp::Replace, key, &n)
            }
            _ => {}
        }
        if old_sel != chosen {
            if let Some(id) = old_sel {
                self.route_event(ChangeKind::Change, key, id);
            }
            if let Some(id) = chosen {
                self.route_event(ChangeKind::Change, key, id);
            }
        }
        // Requests satisfied by the new route (RFC 8966 §3.8.2).
        let satisfied = new_inst.is_some_and(|n| self.requests.satisfy(&key, n.router_id, n.seqno));
        // An unfeasible route the policy prefers to the selected one: ask its sender for a newer
        // seqno (RFC 8966 §3.8.2.2), so that price-aware policies can move to it too.
        if let (Some((u, rid, seqno)), Some(c)) = (best_unfeasible, chosen_cand)
            && policy.cmp(&u, &c).is_lt()
        {
            let want = self.sources.seqno_to_request(&key, rid, seqno);
            self.request_seqno(
                now,
                key,
                rid,
                want,
                SEQNO_REQUEST_HOP_COUNT,
                Some(u.tie_break),
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
                    || n.metric.saturating_add(TRIGGER_IMPROVEMENT) <= o.metric
                    || n.metric >= o.metric.saturating_add(TRIGGER_WORSENING)
                    || o.price != n.price
                {
                    self.schedule_update(now, None, key, false);
                }
            }
            (None, None) => {
                if let Some((rid, seqno)) = any_unfeasible
                    && !shadowed
                {
                    let want = self.sources.seqno_to_request(&key, rid, seqno);
                    self.request_seqno(now, key, rid, want, SEQNO_REQUEST_HOP_COUNT, None);
                }
            }
        }
    }

    pub(super) fn kernel(&mut self, op: RouteOp, key: RouteKey, i: &Installed) {
        self.route_changes.push_back(RouteChange {
            op,
            prefix: key.prefix,
            src_prefix: key.src_prefix,
            next_hop: i.next_hop,
            ifindex: i.ifindex,
            metric: i.metric,
        });
    }
}

/// babeld's smoothing (RFC 8966 Appendix A.3): the smoothed metric decays exponentially toward
/// the metric with the given half-life (fixed point: whole half-lives by shifting, the fraction
/// linearly).
pub(super) fn smooth(old: u16, target: u16, dt: Duration, half_life: Duration) -> u16 {
    if half_life.is_zero() || old == INFINITY || target == INFINITY {
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
        assert_eq!(smooth(INFINITY, 10, Duration::ZERO, hl), 10);
    }
}
