//! Update scheduling and flushing (RFC 8966 §3.7): triggered, urgent and periodic updates.

use std::collections::btree_map::Entry;

use super::*;
use crate::packed::Repack;

/// An interface's updates waiting to be sent, or urgent ones waiting to be repeated, by
/// destination. One input can queue one for every destination, in key order (a neighbour that
/// goes away takes its whole table with it), which leaves std's B-tree nodes about half full;
/// this map is repacked as it grows ([`Repack`]), so 100,000 of them take about half the room.
#[derive(Clone, Debug)]
pub(super) struct KeyMap<V> {
    map: BTreeMap<RouteKey, V>,
    repack: Repack,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        KeyMap {
            map: BTreeMap::new(),
            repack: Repack::default(),
        }
    }
}

impl<V> std::ops::Deref for KeyMap<V> {
    type Target = BTreeMap<RouteKey, V>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<V: Copy> KeyMap<V> {
    /// The value for `key`, inserted as `v` if there was none.
    pub(super) fn or_insert(&mut self, key: RouteKey, v: V) -> &mut V {
        // Packed before the insertion, so that the reference returned stays valid.
        self.repack.maybe(&mut self.map);
        match self.map.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.repack.inserted();
                e.insert(v)
            }
        }
    }

    /// Sets the value for `key`.
    pub(super) fn insert(&mut self, key: RouteKey, v: V) {
        *self.or_insert(key, v) = v;
    }

    /// Keeps the entries for which `f` is true.
    pub(super) fn retain(&mut self, f: impl FnMut(&RouteKey, &mut V) -> bool) {
        self.map.retain(f);
    }

    /// Forgets every entry.
    pub(super) fn clear(&mut self) {
        *self = KeyMap::default();
    }
}

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
        // One random draw for all the interfaces: those with the same delay get the same
        // deadline, so that their buffered updates are flushed together, each as late as its
        // own delay allows ([`Engine::flush_updates`]). Each interface's delay is as random as
        // with a draw of its own; only interfaces of one node are in step, never the nodes of
        // a link (RFC 8966 §3.7.2).
        let mut draw = None;
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
            let us = u64::try_from(delay_max.as_micros()).unwrap_or(u64::MAX);
            let j = match us {
                0 => Duration::ZERO,
                _ => Duration::from_micros(*draw.get_or_insert_with(|| self.rng.next_u64()) % us),
            };
            let resend = REQUEST_TIMEOUT;
            if let Some(i) = self.interfaces.get_mut(&ifindex) {
                i.pending.or_insert(key, OnSplit::Silent);
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

    /// The selected route for `key` has moved onto `ifindex` from another interface: if split
    /// horizon applies there, the update buffered for it ([`Engine::schedule_update`], which
    /// must come first) is a retraction instead of nothing ([`OnSplit::Retract`]). Sent once,
    /// not repeated with urgent updates nor in dumps: the neighbours there need to hear it
    /// only once, like any triggered update.
    pub(super) fn retract_on_split(&mut self, key: RouteKey, ifindex: u32) {
        let Some(i) = self.interfaces.get_mut(&ifindex) else {
            return;
        };
        if i.up && i.cfg.split_horizon && i.pending.contains_key(&key) {
            i.pending.insert(key, OnSplit::Retract);
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
    /// (babeld's `output_filter`) adds its metric or keeps the update off this interface; the
    /// source table learns what we advertise (RFC 8966 §3.7.3). One destination at a time: the
    /// reference the flushes' and dumps' batches are checked against.
    #[cfg(test)]
    pub(super) fn update_for(
        &mut self,
        now: Instant,
        ifindex: u32,
        key: RouteKey,
        full: bool,
    ) -> Option<Message> {
        let adv = self.advertised(now, &key);
        let on = UpdateIface::of(self.interfaces.get(&ifindex)?);
        let (msg, source) =
            self.update_message_on(&on, ifindex, key, adv, full, OnSplit::Silent)?;
        if let Some((rid, seqno, metric)) = source {
            self.sources.update(now, key, rid, seqno, metric);
        }
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
        advertised_dest_via(now, d, |nid| {
            self.neighbours
                .get(&nid)
                .map(|n| (n.ifindex, n.cost, self.cfg.last_resort_penalty(n.accuracy)))
        })
    }

    /// The Update we advertise for `key` on an interface (as [`Engine::flush_pending`] and
    /// [`Engine::dump_part`] find it), with the (originator, seqno, metric) it advertises for the
    /// source table (none for a retraction), which it leaves to the caller. What the interface
    /// decides is found once per flush or part, not once per destination. `on_split` says what
    /// a buffered update sends where split horizon keeps the selected route off the interface.
    fn update_message_on(
        &self,
        on: &UpdateIface,
        ifindex: u32,
        key: RouteKey,
        adv: Advertised,
        full: bool,
        on_split: OnSplit,
    ) -> Option<(Message, Option<SourceUse>)> {
        let UpdateIface {
            interval,
            split,
            althea,
            ipv4,
            v4_via_v6,
        } = *on;
        let v4 = key.prefix.is_ipv4();
        // babeld: AE 1 with our IPv4 address on links that have one, else AE 4 (RFC 9229).
        let v4_next_hop = ipv4.filter(|_| v4).map(IpAddr::V4);
        if v4 && v4_next_hop.is_none() && !v4_via_v6 {
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
            } if metric < INFINITY && !(split && route_ifindex == ifindex) => {
                let rtt = (path_rtt != 0).then_some(path_rtt);
                Some((
                    mk(seqno, metric, router_id, Some(price), rtt),
                    Some((router_id, Seqno(seqno), Metric(metric))),
                ))
            }
            // babeld: the route is simply not sent back where it came from; a route that has
            // just moved here is retracted like any lost one (not in a dump).
            Advertised::Selected { metric, .. }
                if metric < INFINITY && on_split == OnSplit::Silent =>
            {
                None
            }
            _ if full => None,
            _ => Some((
                mk(self.seqno, INFINITY, self.cfg.router_id, None, None),
                None,
            )),
        }
    }

    /// What a periodic full dump advertises after `after` (from the start with `None`), in key
    /// order: our xroutes and every destination with an installed route, found in one walk of
    /// both tables (not one search per destination). The dump takes it a part at a time,
    /// resuming after the last key of the part before, so the list of the whole table is never
    /// held (6.4 MB at 100,000 routes).
    fn full_dump_after(
        &self,
        now: Instant,
        after: Option<RouteKey>,
    ) -> impl Iterator<Item = (RouteKey, Advertised)> + '_ {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut own = self
            .xroutes
            .range((after.map_or(Unbounded, Excluded), Unbounded))
            .peekable();
        let mut dests = self
            .routes
            .iter_after(after)
            .filter(|(_, d)| d.is_installed())
            .peekable();
        // Each neighbour's interface and cost, read once per part instead of searched for at
        // every destination (the neighbours do not change while the part is taken).
        let links: Vec<(u64, u32, u16, u16)> = self
            .neighbours
            .iter()
            .map(|(id, n)| {
                let penalty = self.cfg.last_resort_penalty(n.accuracy);
                (*id, n.ifindex, n.cost, penalty)
            })
            .collect();
        let link = move |nid: u64| {
            links
                .iter()
                .find(|l| l.0 == nid)
                .map(|&(_, ifindex, cost, penalty)| (ifindex, cost, penalty))
        };
        std::iter::from_fn(move || match (own.peek(), dests.peek()) {
            (Some((xk, _)), Some((k, _))) if **xk <= *k => {
                let (xk, x) = own.next()?;
                // An xroute shadows the route table's destination of the same key.
                dests.next_if(|(k, _)| k == xk);
                Some((*xk, Advertised::Own { metric: x.metric }))
            }
            (_, Some(_)) => {
                let (k, d) = dests.next()?;
                Some((k, advertised_dest_via(now, d, &link)))
            }
            (Some(_), None) => {
                let (xk, x) = own.next()?;
                Some((*xk, Advertised::Own { metric: x.metric }))
            }
            (None, None) => None,
        })
    }

    /// Sends the buffered updates of an interface, packed (RFC 8966 §3.7, §4.5 compression by the
    /// codec), after its periodic dump if one is due; and with them those of every other
    /// interface whose flush is due at the same call (they would go in this same call of
    /// [`Engine::handle_timeout`]).
    ///
    /// Interfaces whose updates were buffered together share their flush deadline
    /// ([`Engine::schedule_update`]), and interfaces with the same update interval their
    /// periodic dumps ([`Engine::periodic_update`]): they are sent in one pass, and what is
    /// advertised for a destination is worked out once for all of them instead of once for
    /// each (issue 18: a router on six links looked each destination up six times, at six
    /// instants, and walked its table six times per update interval).
    pub(super) fn flush_updates(&mut self, now: Instant, ifindex: u32) {
        let due = |k: u32| {
            self.timers
                .get(Timer::Interface(k, IfTimer::Flush))
                .is_some_and(|at| at <= now)
        };
        let members: Vec<u32> = std::iter::once(ifindex)
            .chain(
                self.interfaces
                    .iter()
                    .filter(|&(&k, i)| k != ifindex && i.up && due(k))
                    .map(|(&k, _)| k),
            )
            .collect();
        let (mut dumping, mut flushes) = (Vec::new(), Vec::new());
        for k in members {
            let Some(i) = self.interfaces.get_mut(&k) else {
                continue;
            };
            self.timers.stop(Timer::Interface(k, IfTimer::Flush));
            let full = std::mem::take(&mut i.pending_full);
            let pending = std::mem::take(&mut i.pending);
            if full {
                i.last_full = Some(now);
            }
            // The Updates go out a part at a time, packed as they come (the same packets as
            // from one vector of all of them): a periodic dump or a neighbour's whole table
            // retracted is 100,000 of them, and holding them all took 15 MB, and as much again
            // for what the source table learns from them.
            let out = self.update_out(k);
            // A dump under way on this interface (paced by the host) serves as this one.
            let full = full && !self.dumps.contains_key(&k);
            let flush = Flush {
                ifindex: k,
                out,
                pending,
            };
            if full && self.paced_dumps && flush.out.packer.is_some() {
                // The host asks for it a part at a time ([`Engine::continue_dump`]); the
                // buffered updates taken with it go after it, as they would have.
                self.dumps.insert(k, Dump { flush, after: None });
            } else if full {
                dumping.push(flush);
            } else {
                flushes.push(flush);
            }
        }
        if !dumping.is_empty() {
            let mut after = None;
            while let Some(last) = self.dump_part(now, &mut dumping, after) {
                after = Some(last);
            }
        }
        dumping.append(&mut flushes);
        self.flush_pending(now, dumping);
    }

    /// The periodic dump of `ifindex` is due (RFC 8966 §3.7.1): it and every other interface
    /// up with the same update interval whose dump is due at this call dump now, in one pass
    /// ([`Engine::flush_updates`]), and their next dumps are due together, at one random
    /// instant (3/4 to 5/4 of the interval, as babeld's). Their neighbours see an interval as
    /// random as before; only the interfaces of one node are in step, never the nodes of a
    /// link.
    pub(super) fn periodic_update(&mut self, now: Instant, ifindex: u32, interval: Duration) {
        let next = now + self.roughly(interval);
        let due: Vec<u32> = self
            .interfaces
            .iter()
            .filter(|&(&k, i)| {
                k == ifindex
                    || (i.up
                        && i.cfg.update_interval == interval
                        && self
                            .timers
                            .get(Timer::Interface(k, IfTimer::Update))
                            .is_some_and(|at| at <= now))
            })
            .map(|(&k, _)| k)
            .collect();
        for k in due {
            self.timers.set(Timer::Interface(k, IfTimer::Update), next);
            if let Some(i) = self.interfaces.get_mut(&k) {
                i.pending_full = true;
            }
            self.timers.set(Timer::Interface(k, IfTimer::Flush), now);
        }
    }

    /// When the first periodic dump of an interface coming up is due: with the dumps of an
    /// interface up with the same update interval if there is one ([`Engine::periodic_update`]),
    /// else at a random instant within 3/4 to 5/4 of the interval.
    pub(super) fn first_periodic_update(&mut self, now: Instant, interval: Duration) -> Instant {
        let shared = self
            .interfaces
            .iter()
            .filter(|(_, i)| i.up && i.cfg.update_interval == interval)
            .find_map(|(&k, _)| self.timers.get(Timer::Interface(k, IfTimer::Update)));
        match shared {
            Some(at) => at,
            None => now + self.roughly(interval),
        }
    }

    /// Puts the next part of the periodic dumps (what [`Engine::full_dump_after`] gives after
    /// `after`, at most [`UPDATE_PART`] entries) into each flush's `out`, and returns its last
    /// key; `None` once nothing is left. A destination in a flush's `pending` is left to its
    /// buffered updates.
    ///
    /// What the part advertises goes into the source table in key order before the part's
    /// messages go out (nothing in between reads the table, and nothing changes what the next
    /// part advertises), once for all the interfaces.
    fn dump_part(
        &mut self,
        now: Instant,
        flushes: &mut [Flush],
        after: Option<RouteKey>,
    ) -> Option<RouteKey> {
        let part: Vec<(RouteKey, Advertised)> =
            self.full_dump_after(now, after).take(UPDATE_PART).collect();
        let &(last, _) = part.last()?;
        let mut advertised = Vec::with_capacity(part.len());
        // Each interface, found once for the part (no Update without it).
        let mut outs: Vec<(Option<UpdateIface>, Vec<Message>)> = flushes
            .iter()
            .map(|f| {
                let on = self.interfaces.get(&f.ifindex).map(UpdateIface::of);
                (on, Vec::with_capacity(part.len()))
            })
            .collect();
        for &(k, adv) in &part {
            let mut source = None;
            for (f, (on, msgs)) in flushes.iter().zip(outs.iter_mut()) {
                if f.pending.contains_key(&k) {
                    continue;
                }
                let Some((m, used)) = on.as_ref().and_then(|on| {
                    self.update_message_on(on, f.ifindex, k, adv, true, OnSplit::Silent)
                }) else {
                    continue;
                };
                source = source.or(used);
                if let Some(m) = self.output_filtered(f.ifindex, k, m) {
                    msgs.push(m);
                }
            }
            if let Some((rid, seqno, metric)) = source {
                advertised.push(((k, rid), seqno, metric));
            }
        }
        self.sources.update_in_order(now, &advertised);
        for (f, (_, msgs)) in flushes.iter_mut().zip(outs) {
            self.put_updates(&mut f.out, msgs);
        }
        Some(last)
    }

    /// Puts each flush's buffered updates into its `out` after its dump (if any), and sends
    /// what is left. A destination buffered on several interfaces is looked up once: what it
    /// advertises does not depend on the interface (only split horizon, the link's IPv4 and the
    /// `out` filter do), and the source table learns it once (RFC 8966 §3.7.3: the same
    /// originator, seqno and metric at the same instant).
    fn flush_pending(&mut self, now: Instant, flushes: Vec<Flush>) {
        let (pendings, mut outs): (Vec<_>, Vec<_>) = flushes
            .into_iter()
            .map(|f| {
                let on = self.interfaces.get(&f.ifindex).map(UpdateIface::of);
                (f.pending, (f.ifindex, on, f.out, Vec::new()))
            })
            .unzip();
        // Every flush's keys are in key order: merged, each key is taken once.
        let mut keys: Vec<_> = pendings.iter().map(|p| p.iter().peekable()).collect();
        while let Some(key) = keys
            .iter_mut()
            .filter_map(|k| k.peek().map(|(k, _)| **k))
            .min()
        {
            let adv = self.advertised(now, &key);
            let mut source = None;
            for (k, (ifindex, on, out, msgs)) in keys.iter_mut().zip(outs.iter_mut()) {
                let Some((_, &on_split)) = k.next_if(|(k, _)| **k == key) else {
                    continue;
                };
                let Some((m, used)) = on
                    .as_ref()
                    .and_then(|on| self.update_message_on(on, *ifindex, key, adv, false, on_split))
                else {
                    continue;
                };
                source = source.or(used);
                if let Some(m) = self.output_filtered(*ifindex, key, m) {
                    msgs.push(m);
                    if msgs.len() == UPDATE_PART {
                        self.put_updates(out, std::mem::take(msgs));
                    }
                }
            }
            if let Some((rid, seqno, metric)) = source {
                self.sources.update(now, key, rid, seqno, metric);
            }
        }
        for (ifindex, _, mut out, msgs) in outs {
            self.put_updates(&mut out, msgs);
            self.finish_updates(ifindex, out);
        }
    }

    /// Sends the next part of the periodic dump under way on `ifindex` (with paced dumps,
    /// [`Engine::set_paced_dumps`]), or, once the dump is through, the buffered updates taken
    /// with it and its last packet. Returns whether more of it is left. The packets are those
    /// of the whole dump sent at once: the packet being filled is kept between parts.
    pub fn continue_dump(&mut self, now: Instant, ifindex: u32) -> bool {
        let Some(mut d) = self.dumps.remove(&ifindex) else {
            return false;
        };
        match self.dump_part(now, std::slice::from_mut(&mut d.flush), d.after) {
            Some(last) => {
                d.after = Some(last);
                self.dumps.insert(ifindex, d);
                true
            }
            None => {
                self.flush_pending(now, vec![d.flush]);
                false
            }
        }
    }

    /// The interfaces with a periodic dump under way ([`Engine::continue_dump`]).
    pub fn dumps_under_way(&self) -> impl Iterator<Item = u32> + '_ {
        self.dumps.keys().copied()
    }

    /// With `true`, a periodic dump on a multicast interface is not sent at once: the host
    /// asks for it a part at a time with [`Engine::continue_dump`], as its pacer has room
    /// for the packets (so a dump of 100,000 routes never waits whole in a send queue).
    /// Off by default (a dump is sent whole when its flush runs). Set it before interfaces
    /// come up.
    pub fn set_paced_dumps(&mut self, on: bool) {
        self.paced_dumps = on;
    }

    /// Where a flush's Updates for `ifindex` go ([`UpdateOut`]).
    fn update_out(&self, ifindex: u32) -> UpdateOut {
        let unicast = self.interfaces.get(&ifindex).is_some_and(|i| i.cfg.unicast);
        UpdateOut {
            packer: if unicast {
                None
            } else {
                self.packer(ifindex, Destination::Multicast)
            },
            collected: Vec::new(),
            sent: 0,
        }
    }

    /// Packs (or collects) a part of a flush's Updates.
    fn put_updates(&mut self, out: &mut UpdateOut, msgs: Vec<Message>) {
        out.sent += msgs.len() as u64;
        match &mut out.packer {
            Some(p) => {
                for m in &msgs {
                    self.pack(p, m);
                }
            }
            None => out.collected.extend(msgs),
        }
    }

    /// Sends what is left of a flush's Updates and counts them.
    fn finish_updates(&mut self, ifindex: u32, out: UpdateOut) {
        self.counters.updates_sent += out.sent;
        match out.packer {
            Some(p) => self.finish_packing(p),
            None if !out.collected.is_empty() => {
                self.send(ifindex, Destination::Multicast, out.collected);
            }
            None => {}
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
            i.pending.or_insert(*k, OnSplit::Silent);
        }
        self.timers
            .set_opt(Timer::Interface(ifindex, IfTimer::UrgentResend), next);
        if !due.is_empty() {
            self.timers
                .set(Timer::Interface(ifindex, IfTimer::Flush), now);
        }
    }
}

/// What we advertise for a destination of the route table that is not one of our xroutes, with
/// `link` giving the interface, link cost and last-resort penalty of a neighbour: what the
/// Update needs from the selected route (not a copy of the whole route).
fn advertised_dest_via(
    now: Instant,
    d: &Dest,
    link: impl Fn(u64) -> Option<(u32, u16, u16)>,
) -> Advertised {
    let Some(r) = d.installed_route() else {
        return Advertised::Nothing;
    };
    let Some((ifindex, cost, penalty)) = link(r.neigh()) else {
        return Advertised::Nothing;
    };
    Advertised::Selected {
        ifindex,
        router_id: r.router_id,
        seqno: r.seqno,
        price: r.price,
        path_rtt: r.path_rtt,
        metric: super::routes::advertised_metric_via(now, r, cost, penalty),
    }
}

/// What an Update needs from the interface it goes out on.
#[derive(Clone, Copy, Debug)]
struct UpdateIface {
    /// The update interval, in centiseconds.
    interval: u16,
    split: bool,
    althea: bool,
    ipv4: Option<std::net::Ipv4Addr>,
    v4_via_v6: bool,
}

impl UpdateIface {
    fn of(i: &Interface) -> UpdateIface {
        UpdateIface {
            interval: to_centis(i.cfg.update_interval),
            split: i.cfg.split_horizon,
            althea: i.cfg.flavour == babel_wire::Flavour::Althea,
            ipv4: i.cfg.ipv4,
            v4_via_v6: i.cfg.v4_via_v6,
        }
    }
}

/// Updates of a flush built, and what they advertise given to the source table, this many at a
/// time.
const UPDATE_PART: usize = 1024;

/// A periodic dump under way, paced by the host ([`Engine::continue_dump`]).
pub(super) struct Dump {
    /// Where the dump goes, and the buffered updates taken with it: left out of it, sent
    /// after it.
    flush: Flush,
    /// The last key of the last part sent (`None`: none yet).
    after: Option<RouteKey>,
}

impl std::fmt::Debug for Dump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dump")
            .field("after", &self.after)
            .field("sent", &self.flush.out.sent)
            .field("pending", &self.flush.pending.len())
            .finish()
    }
}

/// Where a flush's Updates go: packed as they come for the multicast group; on a `unicast`
/// interface (a copy for each neighbour, each neighbour's packets in a row) collected and sent
/// at the end, as [`Engine::send`] does.
struct UpdateOut {
    packer: Option<wire::Packer>,
    collected: Vec<Message>,
    /// Updates put so far.
    sent: u64,
}

/// An interface's buffered updates, taken to be sent ([`Engine::flush_pending`]).
struct Flush {
    ifindex: u32,
    out: UpdateOut,
    pending: KeyMap<OnSplit>,
}

/// What a buffered update for a destination sends on an interface where split horizon keeps
/// the selected route off it (RFC 8966 §3.7.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum OnSplit {
    /// Nothing, as babeld: the neighbours there hold nothing from us that could mislead them.
    #[default]
    Silent,
    /// A retraction: the selected route has just moved onto this interface, and the
    /// neighbours there still hold the route we advertised to them before. Without it they
    /// keep it until it expires (3.5 update intervals): a stale claim that one of them may
    /// select back through us, and that a verifier would measure against a path that now runs
    /// through itself ([`Engine::retract_on_split`]).
    Retract,
}

/// The (originator, seqno, metric) an Update advertises, which the source table learns
/// (RFC 8966 §3.7.3).
type SourceUse = (RouterId, Seqno, Metric);

/// What we advertise for one destination before an interface's rules (split horizon, IPv4 on
/// the link, the `out` filter) apply.
#[derive(Clone, Copy, Debug, PartialEq)]
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::net::Ipv6Addr;

    use super::*;

    /// An engine with one interface up and `n` prefixes of its own announced, in key order.
    fn engine(n: u32) -> (Engine, Vec<RouteKey>) {
        let now = Instant::ZERO;
        let id = RouterId([0, 0, 0, 0, 0, 0, 0, 1]);
        let mut e = Engine::new(EngineConfig::new(id), now).unwrap();
        let cfg = InterfaceConfig::new("eth0", InterfaceKind::Wired, "fe80::1".parse().unwrap());
        e.interface_up(now, 1, cfg);
        let keys: Vec<RouteKey> = (0..n)
            .map(|i| {
                let a = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) << 64));
                RouteKey::new(Prefix::new(IpAddr::V6(a), 64).unwrap())
            })
            .collect();
        for k in &keys {
            e.announce(now, *k, 0).unwrap();
        }
        (e, keys)
    }

    fn sent(e: &mut Engine) -> Vec<(Destination, bytes::Bytes)> {
        std::iter::from_fn(|| e.poll_transmit())
            .map(|t| (t.dst, t.bytes))
            .collect()
    }

    /// The reference: every Update of a flush in one vector, packed by `send`.
    fn flush_in_one(e: &mut Engine, now: Instant, keys: &[RouteKey], full: bool) {
        let i = e.interfaces.get_mut(&1).unwrap();
        i.pending = KeyMap::default();
        i.pending_full = false;
        let msgs: Vec<Message> = keys
            .iter()
            .filter_map(|k| e.update_for(now, 1, *k, full))
            .collect();
        e.counters.updates_sent += msgs.len() as u64;
        e.send(1, Destination::Multicast, msgs);
    }

    /// A flush builds and packs its Updates a part at a time; the packets are those of all the
    /// Updates packed at once (no short packet where a part ends), for triggered updates and
    /// for a periodic full dump.
    #[test]
    fn a_flush_in_parts_sends_the_packets_of_one_vector() {
        let n = 3 * UPDATE_PART as u32 + 17;
        let (mut a, keys) = engine(n);
        let (mut b, _) = engine(n);
        sent(&mut a);
        sent(&mut b);
        // Every key pending (the interface's first dump leaves them to the pending updates).
        let now = Instant::from_secs(1);
        a.flush_updates(now, 1);
        flush_in_one(&mut b, now, &keys, false);
        let (pa, pb) = (sent(&mut a), sent(&mut b));
        assert!(pa.len() > 3, "{} packets", pa.len());
        assert_eq!(pa, pb);
        // A periodic full dump, nothing pending.
        let now = Instant::from_secs(5);
        a.interfaces.get_mut(&1).unwrap().pending_full = true;
        a.flush_updates(now, 1);
        flush_in_one(&mut b, now, &keys, true);
        let (pa, pb) = (sent(&mut a), sent(&mut b));
        assert!(pa.len() > 3, "{} packets", pa.len());
        assert_eq!(pa, pb);
        assert_eq!(a.counters.updates_sent, b.counters.updates_sent);
    }

    /// An engine with a neighbour on interface 1 that gave it a route to each of `n` /64s,
    /// re-advertised on interface 2, and prefixes of its own among them: every seventh learned
    /// prefix (which shadows the learned destination) and one after each of those.
    fn engine_with_routes(n: u32) -> Engine {
        let now = Instant::ZERO;
        let us: IpAddr = "fe80::1".parse().unwrap();
        let nb: IpAddr = "fe80::2".parse().unwrap();
        let mut e =
            Engine::new(EngineConfig::new(RouterId([0, 0, 0, 0, 0, 0, 0, 1])), now).unwrap();
        e.interface_up(
            now,
            1,
            InterfaceConfig::new("eth0", InterfaceKind::Wired, us),
        );
        let eth1 = InterfaceConfig::new("eth1", InterfaceKind::Wired, "fe80::3".parse().unwrap());
        e.interface_up(now, 2, eth1);
        let prefix = |i: u32, sub: u32| {
            let a = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(2 * i + sub) << 64));
            Prefix::new(IpAddr::V6(a), 64).unwrap()
        };
        let opts = babel_wire::EncodeOptions::default();
        let mut msgs = Vec::new();
        for seqno in 1..=2 {
            msgs.push(Message::Hello(babel_wire::Hello {
                unicast: false,
                seqno,
                interval: 400,
                timestamp: None,
            }));
            msgs.push(Message::Ihu(babel_wire::Ihu {
                address: Some(us),
                rxcost: 96,
                interval: 1200,
                timestamp: None,
            }));
        }
        msgs.extend((0..n).map(|i| {
            Message::Update(Update {
                prefix: Some(prefix(i, 0)),
                v4_via_v6: false,
                src_prefix: None,
                interval: 1600,
                seqno: 7,
                metric: 96 + (i % 50) as u16,
                router_id: Some(RouterId([2, 0, 0, 0, 0, 0, 0, (i % 8) as u8])),
                next_hop: None,
                price: Some(100),
                path_rtt: None,
                diversity: None,
            })
        }));
        for p in babel_wire::encode(&msgs, &opts).unwrap() {
            e.handle_packet(now, 1, nb, Destination::Multicast, &p);
        }
        for i in (0..n).step_by(7) {
            e.announce(now, RouteKey::new(prefix(i, 1)), 0).unwrap();
        }
        while e.poll_route().is_some() {}
        // Announcing a learned prefix would uninstall the learned route; the dump still
        // shadows one that is installed, as here.
        for i in (0..n).step_by(7) {
            let k = RouteKey::new(prefix(i, 0));
            assert!(e.routes.get(&k).is_some_and(Dest::is_installed));
            e.xroutes.insert(k, Xroute { metric: 0 });
        }
        while e.poll_transmit().is_some() {}
        e
    }

    /// The periodic dump, taken a part at a time and resumed after the last key of each part,
    /// is the list of the whole table in one walk: every xroute, each learned destination not
    /// shadowed by one, in key order; its packets are those of all its Updates packed at once.
    #[test]
    fn a_dump_resumed_part_by_part_is_the_whole_list() {
        let n = 2 * UPDATE_PART as u32 + 300;
        let mut a = engine_with_routes(n);
        let now = Instant::from_secs(1);
        // The reference: both tables merged by searching each key.
        let keys = dumped_keys(&a);
        assert!(keys.len() > n as usize, "{} keys", keys.len());
        let whole: Vec<(RouteKey, Advertised)> =
            keys.iter().map(|k| (*k, a.advertised(now, k))).collect();
        assert_eq!(a.full_dump_after(now, None).collect::<Vec<_>>(), whole);
        for part in [1, 6, 7, 1000, UPDATE_PART] {
            let mut got = Vec::new();
            let mut after = None;
            loop {
                let p: Vec<_> = a.full_dump_after(now, after).take(part).collect();
                let Some(&(last, _)) = p.last() else { break };
                after = Some(last);
                got.extend(p);
            }
            assert_eq!(got, whole, "parts of {part}");
        }
        // The flush's packets (interface 1's flush, which is due and would go with it, is
        // left out).
        let mut b = engine_with_routes(n);
        a.timers.stop(Timer::Interface(1, IfTimer::Flush));
        a.interfaces.get_mut(&2).unwrap().pending_full = true;
        a.flush_updates(now, 2);
        let i = b.interfaces.get_mut(&2).unwrap();
        i.pending = KeyMap::default();
        i.pending_full = false;
        let msgs: Vec<Message> = keys
            .iter()
            .filter_map(|k| b.update_for(now, 2, *k, true))
            .collect();
        assert_eq!(msgs.len(), keys.len());
        b.counters.updates_sent += msgs.len() as u64;
        b.send(2, Destination::Multicast, msgs);
        let (pa, pb) = (sent(&mut a), sent(&mut b));
        assert!(pa.len() > 3, "{} packets", pa.len());
        assert_eq!(pa, pb);
        assert_eq!(a.counters.updates_sent, b.counters.updates_sent);
    }

    /// Interfaces 1 and 2 with nothing buffered, no dump due and no flush armed.
    fn nothing_to_flush(e: &mut Engine) {
        for i in [1, 2] {
            let iface = e.interfaces.get_mut(&i).unwrap();
            iface.pending = KeyMap::default();
            iface.pending_full = false;
            e.timers.stop(Timer::Interface(i, IfTimer::Flush));
        }
    }

    /// The keys a full dump advertises, found by searching each table: every xroute and every
    /// installed destination, in key order.
    fn dumped_keys(e: &Engine) -> Vec<RouteKey> {
        let mut keys: Vec<RouteKey> = e.xroutes.keys().copied().collect();
        keys.extend(
            e.routes
                .iter()
                .filter(|(_, d)| d.is_installed())
                .map(|(k, _)| k),
        );
        keys.sort();
        keys.dedup();
        keys
    }

    /// `a` sent on interfaces 1 and 2 the packets that `b` sends building their Updates one
    /// destination at a time (`full`: a dump), more on interface 2 than on 1 (split horizon),
    /// and both have the same source table.
    fn same_as_one_by_one(
        a: &mut Engine,
        b: &mut Engine,
        at: Instant,
        keys: &[RouteKey],
        full: bool,
    ) {
        for i in [1, 2] {
            let msgs: Vec<Message> = keys
                .iter()
                .filter_map(|k| b.update_for(at, i, *k, full))
                .collect();
            b.counters.updates_sent += msgs.len() as u64;
            b.send(i, Destination::Multicast, msgs);
        }
        let by_interface = |e: &mut Engine| {
            let mut t: Vec<(u32, bytes::Bytes)> = std::iter::from_fn(|| e.poll_transmit())
                .map(|t| (t.ifindex, t.bytes))
                .collect();
            t.sort_by_key(|(i, _)| *i);
            t
        };
        let (pa, pb) = (by_interface(a), by_interface(b));
        let count = |i: u32| pa.iter().filter(|(j, _)| *j == i).count();
        assert!(
            count(1) >= 1 && count(2) > count(1),
            "{} and {}",
            count(1),
            count(2)
        );
        assert_eq!(pa, pb);
        assert_eq!(a.counters.updates_sent, b.counters.updates_sent);
        assert_eq!(format!("{:?}", a.sources), format!("{:?}", b.sources));
    }

    /// Updates buffered on two interfaces at once share their flush deadline and go out in one
    /// pass at it: on each interface the packets that flushing it alone sends (split horizon
    /// keeps the learned routes off the interface they came from), with the source table as it
    /// would be. Interface 1's flush takes interface 2's along, and interface 2's is over.
    #[test]
    fn updates_buffered_on_several_interfaces_go_out_together() {
        let n = UPDATE_PART as u32 + 40;
        let (mut a, mut b) = (engine_with_routes(n), engine_with_routes(n));
        let mut keys: Vec<RouteKey> = a.routes.keys().into_iter().step_by(3).collect();
        keys.extend(a.xroutes.keys().step_by(2));
        keys.sort();
        keys.dedup();
        let flush = |i: u32| Timer::Interface(i, IfTimer::Flush);
        nothing_to_flush(&mut a);
        nothing_to_flush(&mut b);
        let now = Instant::from_secs(2);
        for k in &keys {
            a.schedule_update(now, None, *k, false);
        }
        let at = a.timers.get(flush(1)).unwrap();
        assert!(at > now);
        assert_eq!(a.timers.get(flush(2)), Some(at));
        a.flush_updates(at, 1);
        assert_eq!(a.timers.get(flush(2)), None);
        assert!(a.interfaces.values().all(|i| i.pending.is_empty()));
        same_as_one_by_one(&mut a, &mut b, at, &keys, false);
    }

    /// Interfaces with the same update interval dump together: one coming up takes the next
    /// dump of one already up; the periodic update of one makes the other's, due at the same
    /// call, go with it and both next ones due at one instant; and both dumps go in one walk of
    /// the table, on each interface the packets that dumping it alone sends, with the source
    /// table as it would be.
    #[test]
    fn interfaces_with_one_update_interval_dump_together() {
        let n = UPDATE_PART as u32 + 40;
        let (mut a, mut b) = (engine_with_routes(n), engine_with_routes(n));
        let (update, flush) = (
            |i: u32| Timer::Interface(i, IfTimer::Update),
            |i: u32| Timer::Interface(i, IfTimer::Flush),
        );
        let at = a.timers.get(update(1)).unwrap();
        assert_eq!(a.timers.get(update(2)), Some(at));
        nothing_to_flush(&mut a);
        nothing_to_flush(&mut b);
        let interval = a.interfaces.get(&1).unwrap().cfg.update_interval;
        a.periodic_update(at, 1, interval);
        let next = a.timers.get(update(1)).unwrap();
        assert!(next >= at + interval * 3 / 4 && next <= at + interval * 5 / 4);
        assert_eq!(a.timers.get(update(2)), Some(next));
        assert_eq!(a.timers.get(flush(2)), Some(at));
        a.flush_updates(at, 1);
        assert_eq!(a.timers.get(flush(2)), None);
        assert!(a.interfaces.values().all(|i| !i.pending_full));
        let keys = dumped_keys(&a);
        same_as_one_by_one(&mut a, &mut b, at, &keys, true);
    }

    /// A paced dump ([`Engine::set_paced_dumps`]) sends nothing when its flush runs, then a
    /// part per [`Engine::continue_dump`]: never more than a part's packets at a time, and in
    /// all the packets, source-table entries and count of the same dump sent at once, buffered
    /// updates taken with it last.
    #[test]
    fn a_paced_dump_sends_the_packets_of_the_whole_dump_a_part_at_a_time() {
        let n = 3 * UPDATE_PART as u32 + 17;
        let now = Instant::from_secs(1);
        let (mut a, mut b) = (engine_with_routes(n), engine_with_routes(n));
        sent(&mut a);
        sent(&mut b);
        a.set_paced_dumps(true);
        let pending: Vec<RouteKey> = a.xroutes.keys().step_by(7).copied().collect();
        assert!(pending.len() > 2);
        for e in [&mut a, &mut b] {
            // Only interface 2's Updates: interface 1's flush is due and would go with them.
            e.timers.stop(Timer::Interface(1, IfTimer::Flush));
            let i = e.interfaces.get_mut(&2).unwrap();
            i.pending_full = true;
            i.pending = KeyMap::default();
            for k in &pending {
                i.pending.insert(*k, OnSplit::Silent);
            }
            e.flush_updates(now, 2);
        }
        let whole = sent(&mut b);
        assert!(sent(&mut a).is_empty());
        assert_eq!(a.dumps_under_way().collect::<Vec<_>>(), vec![2]);
        let mut paced = Vec::new();
        let mut calls = 0;
        loop {
            let more = a.continue_dump(now, 2);
            calls += 1;
            let part: Vec<Transmit> = std::iter::from_fn(|| a.poll_transmit()).collect();
            // A part's packets hold its Updates (at most UPDATE_PART, and the last one's the
            // buffered ones) and the end of the part before's (one packet).
            let msgs: usize = part.iter().map(|t| t.messages).sum();
            assert!(msgs <= UPDATE_PART + 100, "{msgs} messages in one part");
            paced.extend(part.into_iter().map(|t| (t.dst, t.bytes)));
            if !more {
                break;
            }
        }
        assert!(calls > 3, "{calls} parts");
        assert!(whole.len() > 3 * calls / 2, "{} packets", whole.len());
        assert_eq!(paced, whole);
        assert_eq!(a.counters.updates_sent, b.counters.updates_sent);
        assert!(a.dumps_under_way().next().is_none());
        assert!(!a.continue_dump(now, 2));
        let src = |e: &Engine| format!("{:?}", e.sources);
        assert_eq!(src(&a), src(&b));
        // An interface that goes down forgets its dump.
        a.interfaces.get_mut(&2).unwrap().pending_full = true;
        a.flush_updates(now, 2);
        assert!(a.dumps_under_way().next().is_some());
        a.interface_down(now, 2);
        assert!(a.dumps_under_way().next().is_none());
    }

    /// The pending map keeps every key and value while it is repacked as it grows.
    #[test]
    fn key_map_keeps_entries_while_repacked() {
        let mut m: KeyMap<bool> = KeyMap::default();
        let keys: Vec<RouteKey> = (0..5000u32)
            .map(|i| {
                let a = Ipv6Addr::from(u128::from(i) << 64);
                RouteKey::new(Prefix::new(IpAddr::V6(a), 64).unwrap())
            })
            .collect();
        for (n, k) in keys.iter().enumerate() {
            *m.or_insert(*k, false) |= n % 3 == 0;
        }
        for k in keys.iter().step_by(2) {
            m.insert(*k, true);
        }
        assert_eq!(m.len(), keys.len());
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(m.get(k), Some(&(n % 2 == 0 || n % 3 == 0)), "{n}");
        }
        assert!(m.keys().zip(m.keys().skip(1)).all(|(x, y)| x < y));
        m.clear();
        assert!(m.is_empty());
    }
}
