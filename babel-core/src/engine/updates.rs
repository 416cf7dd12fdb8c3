//! Update scheduling and flushing (RFC 8966 §3.7): triggered, urgent and periodic updates.

use super::*;

impl Engine {
    /// Queues an update for `key` on one interface or all; urgent ones go out within 200 ms and
    /// are repeated (RFC 8966 §3.7.2), others within half a Hello interval.
    pub(super) fn schedule_update(
        &mut self,
        now: Instant,
        ifindex: Option<u32>,
        key: RouteKey,
        urgent: bool,
    ) {
        // One interface, or each interface up in turn, found without collecting them.
        let all = ifindex.is_none();
        let mut next = ifindex.or_else(|| self.up_interface_after(None));
        while let Some(ifindex) = next {
            next = if all {
                self.up_interface_after(Some(ifindex))
            } else {
                None
            };
            let delay_max = match self.interfaces.get(&ifindex) {
                Some(i) if i.up => {
                    if urgent {
                        URGENT_TIMEOUT
                    } else {
                        i.cfg.hello_interval / 2
                    }
                }
                _ => continue,
            };
            let j = self.jitter(delay_max);
            let resend = REQUEST_TIMEOUT;
            if let Some(i) = self.interfaces.get_mut(&ifindex) {
                let e = i.pending.entry(key).or_insert(false);
                *e |= urgent;
                self.timers
                    .set_earlier(Timer::Interface(ifindex, IfTimer::Flush), now + j);
                if urgent {
                    let resend = resend.min(i.cfg.hello_interval / 2);
                    i.resends.insert(key, (URGENT_REPEATS, now + resend));
                    self.timers.set_earlier(
                        Timer::Interface(ifindex, IfTimer::UrgentResend),
                        now + resend,
                    );
                }
            }
        }
    }

    /// The first interface up after `after` (the first of all with `None`), in index order.
    fn up_interface_after(&self, after: Option<u32>) -> Option<u32> {
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        self.interfaces
            .range((from, std::ops::Bound::Unbounded))
            .find(|(_, i)| i.up)
            .map(|(k, _)| *k)
    }

    /// The Update we advertise for `key` on `ifindex` now: our xroute, our selected route (not on
    /// its own interface when split horizon applies, RFC 8966 §3.7.4), or a retraction. `full`
    /// (periodic dump) leaves out retractions and split-horizon routes. The `out` filter
    /// (babeld's `output_filter`) adds its metric or keeps the update off this interface.
    pub(super) fn update_for(
        &mut self,
        now: Instant,
        ifindex: u32,
        key: RouteKey,
        full: bool,
    ) -> Option<Message> {
        let adv = self.advertised(now, &key);
        let msg = self.unfiltered_update_from(now, ifindex, key, adv, full)?;
        self.output_filtered(ifindex, key, msg)
    }

    /// An Update for `key` as the `out` filter lets it onto `ifindex`: unchanged, with the
    /// filter's metric added, or none.
    fn output_filtered(
        &mut self,
        ifindex: u32,
        key: RouteKey,
        mut msg: Message,
    ) -> Option<Message> {
        let (Some(filter), Message::Update(u)) = (&self.filter, &mut msg) else {
            return Some(msg);
        };
        let ifname = self
            .interfaces
            .get(&ifindex)
            .map_or("", |i| i.cfg.name.as_str());
        let answer = filter.output(&FilterRoute {
            prefix: key.prefix,
            src_prefix: key.src_prefix,
            router_id: u.router_id.unwrap_or(self.cfg.router_id),
            neighbour: None,
            ifindex,
            ifname,
        });
        match answer {
            FilterAnswer::Deny => {
                self.counters.filtered_out += 1;
                None
            }
            FilterAnswer::AddMetric(add) => {
                u.metric = Metric(u.metric).saturating_add(Metric(add)).0;
                Some(msg)
            }
        }
    }

    /// What we advertise for `key`, whatever the interface: our xroute, else the selected route
    /// while it is installed.
    fn advertised(&self, now: Instant, key: &RouteKey) -> Advertised {
        if let Some(x) = self.xroutes.get(key) {
            return Advertised::Own { metric: x.metric };
        }
        self.routes
            .get(key)
            .map_or(Advertised::Nothing, |d| self.advertised_dest(now, d))
    }

    /// What we advertise for a destination of the route table that is not one of our xroutes.
    fn advertised_dest(&self, now: Instant, d: &Dest) -> Advertised {
        // What the Update needs from the selected route (not a copy of the whole route); its
        // interface and link cost are its neighbour's, found once.
        let Some(r) = d.installed_route() else {
            return Advertised::Nothing;
        };
        let Some(n) = self.neighbours.get(&r.neigh()) else {
            return Advertised::Nothing;
        };
        Advertised::Selected {
            ifindex: n.ifindex,
            router_id: r.router_id,
            seqno: r.seqno,
            price: r.price,
            path_rtt: r.path_rtt,
            metric: super::routes::advertised_metric_via(now, r, n.cost),
        }
    }

    /// [`Engine::update_for`] before the `out` filter, with what we advertise for `key`
    /// already found; the source table learns what we advertise (RFC 8966 §3.7.3).
    fn unfiltered_update_from(
        &mut self,
        now: Instant,
        ifindex: u32,
        key: RouteKey,
        adv: Advertised,
        full: bool,
    ) -> Option<Message> {
        let (msg, source) = self.update_message(ifindex, key, adv, full)?;
        if let Some((rid, seqno, metric)) = source {
            self.sources.update(now, key, rid, seqno, metric);
        }
        Some(msg)
    }

    /// The Update of [`Engine::unfiltered_update_from`], with the (originator, seqno, metric)
    /// it advertises for the source table (none for a retraction), which it leaves to the caller.
    fn update_message(
        &self,
        ifindex: u32,
        key: RouteKey,
        adv: Advertised,
        full: bool,
    ) -> Option<(Message, Option<SourceUse>)> {
        let iface = self.interfaces.get(&ifindex)?;
        let interval = to_centis(iface.cfg.update_interval);
        let split = iface.cfg.split_horizon;
        let althea = iface.cfg.flavour == babel_wire::Flavour::Althea;
        let v4 = key.prefix.is_ipv4();
        // babeld: AE 1 with our IPv4 address on links that have one, else AE 4 (RFC 9229).
        let v4_next_hop = iface.cfg.ipv4.filter(|_| v4).map(IpAddr::V4);
        if v4 && v4_next_hop.is_none() && !iface.cfg.v4_via_v6 {
            // RFC 9229 §2 leaves AE 4 optional; babeld then sends nothing for IPv4 on this link,
            // not even retractions, since no neighbour here can use an IPv4 route from us.
            return None;
        }
        let mk = |seqno: u16, metric: u16, rid: RouterId, price: Option<u32>, rtt: Option<u32>| {
            Message::Update(Update {
                prefix: Some(key.prefix),
                v4_via_v6: v4 && v4_next_hop.is_none(),
                src_prefix: key.src_prefix,
                interval,
                seqno,
                metric,
                router_id: Some(rid),
                next_hop: v4_next_hop,
                price,
                path_rtt: rtt,
                diversity: None,
            })
        };
        match adv {
            Advertised::Own { metric } => {
                let (seqno, rid) = (self.seqno, self.cfg.router_id);
                Some((
                    mk(seqno, metric, rid, Some(0), althea.then_some(0)),
                    Some((rid, Seqno(seqno), Metric(metric))),
                ))
            }
            Advertised::Selected {
                ifindex: route_ifindex,
                router_id,
                seqno,
                price,
                path_rtt,
                metric,
            } if metric < INFINITY => {
                if split && route_ifindex == ifindex {
                    // babeld: the route is simply not sent back where it came from.
                    return None;
                }
                let rtt = (path_rtt != 0).then_some(path_rtt);
                Some((
                    mk(seqno, metric, router_id, Some(price), rtt),
                    Some((router_id, Seqno(seqno), Metric(metric))),
                ))
            }
            _ if full => None,
            _ => Some((
                mk(self.seqno, INFINITY, self.cfg.router_id, None, None),
                None,
            )),
        }
    }

    /// What a periodic full dump advertises, in key order: our xroutes and every destination with
    /// an installed route, found in one walk of both tables (not one search per destination).
    fn full_dump(&self, now: Instant) -> Vec<(RouteKey, Advertised)> {
        let mut out = Vec::with_capacity(self.xroutes.len() + self.routes.installed_len());
        let mut own = self.xroutes.iter().peekable();
        for (k, d) in self.routes.iter().filter(|(_, d)| d.is_installed()) {
            while let Some((xk, x)) = own.next_if(|(xk, _)| **xk <= k) {
                out.push((*xk, Advertised::Own { metric: x.metric }));
            }
            // An xroute shadows the route table's destination of the same key.
            if out.last().is_none_or(|(last, _)| *last != k) {
                out.push((k, self.advertised_dest(now, d)));
            }
        }
        out.extend(own.map(|(k, x)| (*k, Advertised::Own { metric: x.metric })));
        out
    }

    /// Sends the buffered updates of an interface, packed (RFC 8966 §3.7, §4.5 compression by the
    /// codec).
    pub(super) fn flush_updates(&mut self, now: Instant, ifindex: u32) {
        let Some(i) = self.interfaces.get_mut(&ifindex) else {
            return;
        };
        self.timers.stop(Timer::Interface(ifindex, IfTimer::Flush));
        let full = std::mem::take(&mut i.pending_full);
        let pending = std::mem::take(&mut i.pending);
        if full {
            i.last_full = Some(now);
        }
        let dump = if full {
            self.full_dump(now)
        } else {
            Vec::new()
        };
        let mut msgs = Vec::with_capacity(dump.len() + pending.len());
        if full {
            // What the dump advertises goes into the source table in one walk of it, in key
            // order, once the dump is built (nothing in between reads the table).
            let mut advertised = Vec::with_capacity(dump.len());
            for (k, adv) in dump {
                if pending.contains_key(&k) {
                    continue;
                }
                let Some((m, source)) = self.update_message(ifindex, k, adv, true) else {
                    continue;
                };
                if let Some((rid, seqno, metric)) = source {
                    advertised.push(((k, rid), seqno, metric));
                }
                if let Some(m) = self.output_filtered(ifindex, k, m) {
                    msgs.push(m);
                }
            }
            self.sources.update_in_order(now, &advertised);
        }
        for k in pending.keys() {
            if let Some(m) = self.update_for(now, ifindex, *k, false) {
                msgs.push(m);
            }
        }
        if !msgs.is_empty() {
            self.counters.updates_sent += msgs.len() as u64;
            self.send(ifindex, Destination::Multicast, msgs);
        }
    }

    /// RFC 8966 §3.7.2: urgent updates are repeated ([`URGENT_REPEATS`] times, every
    /// [`REQUEST_TIMEOUT`] or half a Hello interval); the due ones are buffered and sent now.
    pub(super) fn repeat_urgent(&mut self, now: Instant, ifindex: u32) {
        let Some(i) = self.interfaces.get_mut(&ifindex) else {
            return;
        };
        let resend = REQUEST_TIMEOUT.min(i.cfg.hello_interval / 2);
        let mut due = Vec::new();
        let mut next = None;
        i.resends.retain(|k, (left, at)| {
            if *at <= now {
                due.push(*k);
                *left = left.saturating_sub(1);
                *at = now + resend;
            }
            if *left > 0 {
                next = min_opt(next, Some(*at));
            }
            *left > 0
        });
        for k in &due {
            i.pending.insert(*k, true);
        }
        self.timers
            .set_opt(Timer::Interface(ifindex, IfTimer::UrgentResend), next);
        if !due.is_empty() {
            self.timers
                .set(Timer::Interface(ifindex, IfTimer::Flush), now);
        }
    }
}

/// The (originator, seqno, metric) an Update advertises, which the source table learns
/// (RFC 8966 §3.7.3).
type SourceUse = (RouterId, Seqno, Metric);

/// What we advertise for one destination before an interface's rules (split horizon, IPv4 on
/// the link, the `out` filter) apply.
#[derive(Clone, Copy, Debug)]
enum Advertised {
    /// Our own prefix (an xroute) with its metric.
    Own { metric: u16 },
    /// The selected, installed route: what its Update needs.
    Selected {
        ifindex: u32,
        router_id: RouterId,
        seqno: u16,
        price: u32,
        path_rtt: u32,
        metric: u16,
    },
    /// Nothing: a retraction, or no Update in a full dump.
    Nothing,
}
