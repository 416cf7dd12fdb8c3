//! A neighbour's destinations selected again a slice at a time (issue 18: the memory of a
//! whole-table reselection).
//!
//! When a neighbour's cost changes (a Hello or an IHU, RFC 8966 §3.4.3), when it retracts every
//! route (§4.6.9, or it rebooted) or when it is flushed, every destination it gave us a route to
//! is selected again (§3.6). With a full table that is 100,000 selections, and done in one input
//! their outputs (kernel route changes, seqno requests and their packets, events) and the list
//! of destinations were all held at once: 30-35 MB. Here the destinations are taken
//! [`RESELECT_SLICE`] at a time, in key order, resuming after the last one done, as the periodic
//! dump does (`RouteTable::iter_after`); the first slice runs in the input itself, and each
//! further slice runs when [`Timer::Reselect`] fires, armed at `now`: the caller drains the
//! outputs of one slice ([`Engine::poll_route`], [`Engine::poll_transmit`], ...) as it drains
//! those of any input, sees [`Engine::poll_timeout`] due, and calls [`Engine::handle_timeout`],
//! which runs the next slice. A table of up to one slice is done within the input, as before.
//! What stays in proportion to the table is protocol state, not a slice's outputs: the
//! interfaces' pending updates and urgent repeats (§3.7.2) and the seqno requests
//! outstanding (§3.8.2.1), held until their timers send them.
//!
//! The invariant: every destination the neighbour has a route to is either at or before the
//! cursor, and has been selected since the change with the neighbour's cost in force, or after
//! it, and keeps the selection it had before the change until it is selected, by its slice or
//! by an input that reaches it first ([`Engine::settle`]); a departed neighbour's routes after the
//! cursor are in the table but never selectable (the neighbour has no cost), and any selection of
//! their destination removes them first, as the one-step flush did. So with no input between
//! slices, the table, the selections, the installed routes, the kernel changes and the Updates
//! sent are those of selecting every destination in one step (the tests check it for random
//! tables and slice sizes, with outputs drained between slices and Updates from the same and
//! other neighbours in between).
//!
//! An input while a reselection is half done:
//! * a packet from the same neighbour (or any other) with an Update for a destination not yet
//!   reached: the destination is first selected as its slice would have (the change before
//!   the Update, as in one step), then the Update is applied; its slice selects it again later,
//!   which at the same instant changes nothing in the kernel or the table (a starved
//!   destination may ask for a newer seqno again, as any selection of it does);
//! * another change of the neighbour's cost, or a retraction of all its routes: the reselection
//!   starts again from the first destination with the new cost; the destinations not yet reached
//!   are selected once, with the newest cost, rather than twice;
//! * the neighbour flushed: the reselection becomes a removal, started from the first
//!   destination; its interface and address stay known (`departed`) until it is done.
//!
//! RFC 8966 §3.6 holds for each destination as it is selected: only feasible, finite routes are
//! selected, with the neighbour's current cost. §3.7.2's triggered and urgent updates are
//! scheduled by each selection as before (the same jitter draws, in the same key order); an
//! interface's flush that falls due while a reselection is under way waits for its last slice
//! (`timers.rs`), so the Updates sent are those of the whole reselection, not parts of it.
//! Timers other than the flush that fall due at the same instant (Hellos, route expiry) run
//! between two slices, as they would between two inputs.

use super::*;

/// Destinations selected again per slice (as the periodic dump's `UPDATE_PART`).
pub const RESELECT_SLICE: usize = 1024;

impl Engine {
    /// Sets how many destinations a slice selects again ([`RESELECT_SLICE`] by default, at
    /// least 1): `usize::MAX` selects them all within the input, as before slices (the
    /// reference the `teardown` benchmark measures against).
    pub fn set_reselect_slice(&mut self, destinations: usize) {
        self.reselect_slice = destinations.max(1);
    }

    /// Selects again every destination neighbour `nid` gave us a route to (RFC 8966 §3.4.3,
    /// §3.6), a slice at a time, starting over from the first; runs the first slice now.
    /// Returns how many routes the neighbour has.
    pub(super) fn reselect_via(&mut self, now: Instant, nid: u64) -> usize {
        let routes = self.routes.len_via(nid);
        if routes > 0 {
            self.reselections.insert(nid, None);
            self.reselect_slice(now, nid);
        }
        routes
    }

    /// The next slice of `nid`'s reselection (its timer).
    pub(super) fn reselect_slice(&mut self, now: Instant, nid: u64) {
        let keys = self.take_slice(now, nid);
        self.finish_slice(now, nid, keys);
    }

    /// The next slice's destinations; a departed neighbour's routes to them leave the table
    /// (with their flush events).
    pub(super) fn take_slice(&mut self, now: Instant, nid: u64) -> Vec<RouteKey> {
        let Some(after) = self.reselections.get(&nid).copied() else {
            return Vec::new();
        };
        let keys = self.routes.keys_via_after(nid, after, self.reselect_slice);
        if self.departed.contains_key(&nid) {
            let flushed: Vec<(RouteKey, Route)> = keys
                .iter()
                .filter_map(|k| Some((*k, self.routes.remove_route(k, nid)?)))
                .collect();
            self.flush_events(now, &flushed);
        }
        keys
    }

    /// Selects a slice's destinations; arms the next slice, or ends the reselection.
    pub(super) fn finish_slice(&mut self, now: Instant, nid: u64, keys: Vec<RouteKey>) {
        let last = keys.last().copied();
        let done = keys.len() < self.reselect_slice;
        for k in keys {
            self.reselect(now, k);
        }
        if done {
            self.reselections.remove(&nid);
            self.departed.remove(&nid);
            self.timers.stop(Timer::Reselect(nid));
        } else {
            self.reselections.insert(nid, last);
            self.timers.set(Timer::Reselect(nid), now);
        }
    }

    /// Before an input changes the routes of `key`: if a reselection has not reached it yet,
    /// it is selected now, so that it sees the neighbour's change before the input, as it
    /// would have in one step.
    pub(super) fn settle(&mut self, now: Instant, key: &RouteKey) {
        if self.reselections.is_empty() {
            return;
        }
        let Some(d) = self.routes.get(key) else {
            return;
        };
        let pending = self
            .reselections
            .iter()
            .any(|(nid, after)| after.is_none_or(|a| a < *key) && d.route(*nid).is_some());
        if pending {
            self.reselect(now, *key);
        }
    }

    /// Before `key` is selected: the routes a departed neighbour still has to it leave the
    /// table (with their flush events), as they would have had it been removed in one step.
    pub(super) fn drop_departed(&mut self, now: Instant, key: &RouteKey) {
        if self.departed.is_empty() {
            return;
        }
        let routes = &mut self.routes;
        let flushed: Vec<(RouteKey, Route)> = self
            .departed
            .keys()
            .filter_map(|nid| Some((*key, routes.remove_route(key, *nid)?)))
            .collect();
        self.flush_events(now, &flushed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::net::Ipv6Addr;

    use babel_wire::{DecodeOptions, EncodeOptions, encode};

    use super::*;

    const US1: &str = "fe80::1";
    const US2: &str = "fe80::9";
    /// Neighbours: (address, interface).
    const NEIGHBOURS: [(&str, u32); 3] = [("fe80::2", 1), ("fe80::3", 1), ("fe80::4", 2)];

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn prefix(i: u32) -> Prefix {
        let a = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) << 64));
        Prefix::new(IpAddr::V6(a), 64).unwrap()
    }

    fn update(i: u32, metric: u16, seqno: u16, rid: u8) -> Message {
        Message::Update(Update {
            prefix: Some(prefix(i)),
            v4_via_v6: false,
            src_prefix: None,
            interval: 1600,
            seqno,
            metric,
            router_id: Some(RouterId([2, 0, 0, 0, 0, 0, 0, rid])),
            next_hop: None,
            price: Some(100),
            path_rtt: None,
            diversity: None,
        })
    }

    fn hello_ihu(seqno: u16, ifindex: u32, rxcost: u16) -> Vec<Message> {
        let us = if ifindex == 1 { US1 } else { US2 };
        vec![
            Message::Hello(Hello {
                unicast: false,
                seqno,
                interval: 400,
                timestamp: None,
            }),
            Message::Ihu(Ihu {
                address: Some(addr(us)),
                rxcost,
                interval: 1200,
                timestamp: None,
            }),
        ]
    }

    /// Neighbour `n` sends `msgs`.
    fn from(e: &mut Engine, now: Instant, n: usize, msgs: &[Message]) {
        let (a, ifindex) = NEIGHBOURS[n];
        for p in encode(msgs, &EncodeOptions::default()).unwrap() {
            e.handle_packet(now, ifindex, addr(a), Destination::Multicast, &p);
        }
    }

    /// A random table: `dests` /64s, each learned from each of three neighbours with some
    /// probability, with random metrics, originators and seqnos; some of them our own.
    fn engine(seed: u64, dests: u32, slice: usize) -> Engine {
        let now = Instant::ZERO;
        let mut cfg = EngineConfig::new(RouterId([0, 0, 0, 0, 0, 0, 0, 1]));
        cfg.seed = seed;
        let mut e = Engine::new(cfg, now).unwrap();
        e.reselect_slice = slice;
        e.interface_up(
            now,
            1,
            InterfaceConfig::new("eth0", InterfaceKind::Wired, addr(US1)),
        );
        e.interface_up(
            now,
            2,
            InterfaceConfig::new("eth1", InterfaceKind::Wired, addr(US2)),
        );
        let mut rng = Rng::new(seed ^ 0x5eed);
        for (n, (_, ifindex)) in NEIGHBOURS.iter().enumerate() {
            for s in 1..=2 {
                from(&mut e, now, n, &hello_ihu(s, *ifindex, 96));
            }
        }
        for n in 0..NEIGHBOURS.len() {
            let odds = [9, 5, 3][n];
            let mut msgs = Vec::new();
            for i in 0..dests {
                if rng.below(10) < odds {
                    let metric = 96 + rng.below(600) as u16;
                    let rid = rng.below(4) as u8;
                    msgs.push(update(i, metric, 7 + rng.below(2) as u16, rid));
                }
            }
            from(&mut e, now, n, &msgs);
        }
        for i in (0..dests).filter(|_| rng.below(20) == 0) {
            e.announce(now, RouteKey::new(prefix(i)), 0).unwrap();
        }
        let later = Instant::from_secs(1);
        e.handle_timeout(later);
        outputs(&mut e);
        e
    }

    /// A moment before the engine's next timer: nothing else is due while the slices run (a
    /// timer due with them runs between two slices, see the module's doc).
    fn quiet(e: &Engine) -> Instant {
        let last = Instant::from_secs(1);
        let next = e.poll_timeout().unwrap();
        last + next.saturating_since(last) / 2
    }

    /// Drains every output: the kernel changes and the packets.
    fn outputs(e: &mut Engine) -> (Vec<RouteChange>, Vec<Transmit>) {
        let (t, r, _) = e.take_outputs();
        (r, t)
    }

    /// What has to agree: every destination with its routes, selection and installed route,
    /// the source table and the outstanding seqno requests.
    fn state(e: &Engine) -> String {
        format!(
            "{:?}\n{:?}\n{:?}",
            e.routes.iter().collect::<Vec<_>>(),
            e.sources,
            e.requests
        )
    }

    /// Where two states first differ, for the failure message.
    fn differ(a: &str, b: &str) -> String {
        let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
        let from = at.saturating_sub(400);
        format!(
            "\n  one step: {}\n  sliced:   {}",
            &a[from..(at + 100).min(a.len())],
            &b[from..(at + 100).min(b.len())]
        )
    }

    /// The messages sent, by interface and destination, in order: a slice's seqno requests go
    /// out in its own packets, so the packets' boundaries are not the one step's.
    fn messages(t: &[Transmit]) -> BTreeMap<(u32, Destination), Vec<Message>> {
        let mut m: BTreeMap<(u32, Destination), Vec<Message>> = BTreeMap::new();
        for t in t {
            let d = decode(&t.bytes, &DecodeOptions::default()).unwrap();
            m.entry((t.ifindex, t.dst))
                .or_default()
                .extend(d.packet.messages);
        }
        m
    }

    /// The kernel after a list of changes, by destination: the route in force (next hop,
    /// interface, metric), `unreachable` (`None`), or nothing (absent).
    #[allow(clippy::type_complexity)]
    fn kernel(
        changes: &[RouteChange],
    ) -> BTreeMap<(Prefix, Option<Prefix>), Option<(IpAddr, u32, Metric)>> {
        let mut k = BTreeMap::new();
        for c in changes {
            let key = (c.prefix, c.src_prefix);
            match c.op {
                RouteOp::Add | RouteOp::Replace => {
                    k.insert(key, Some((c.next_hop, c.ifindex, c.metric)));
                }
                RouteOp::Unreachable => {
                    k.insert(key, None);
                }
                RouteOp::Delete => {
                    k.remove(&key);
                }
            }
        }
        k
    }

    /// Each destination's kernel changes, in order.
    fn per_destination(
        changes: &[RouteChange],
    ) -> BTreeMap<(Prefix, Option<Prefix>), Vec<RouteChange>> {
        let mut k: BTreeMap<_, Vec<RouteChange>> = BTreeMap::new();
        for c in changes {
            k.entry((c.prefix, c.src_prefix))
                .or_default()
                .push(c.clone());
        }
        k
    }

    #[derive(Clone, Copy, Debug)]
    enum Change {
        /// The neighbour's IHUs say this rxcost (65535: its txcost becomes infinite).
        Cost(u16),
        /// A wildcard retraction.
        Retract,
        /// The neighbour is flushed.
        Flush,
        /// Its interface goes down (two neighbours flushed).
        Down,
    }

    fn apply(e: &mut Engine, now: Instant, c: Change) {
        match c {
            Change::Cost(rxcost) => from(e, now, 0, &hello_ihu(3, 1, rxcost)),
            Change::Retract => {
                let w = e.wildcard_retraction(1600);
                from(e, now, 0, &[w]);
            }
            Change::Flush => {
                let id = e.neighbour_id(1, addr(NEIGHBOURS[0].0)).unwrap();
                e.flush_neighbour(now, id);
            }
            Change::Down => e.interface_down(now, 1),
        }
    }

    /// Runs the slices due at `now`, draining the outputs after each call as a host does; between
    /// two, `between` may give an input. Returns every kernel change and packet, and how many
    /// calls it took.
    fn drive(
        e: &mut Engine,
        now: Instant,
        mut between: impl FnMut(&mut Engine, usize),
    ) -> (Vec<RouteChange>, Vec<Transmit>, usize) {
        let (mut r, mut t) = outputs(e);
        let mut calls = 0;
        while e.poll_timeout().is_some_and(|at| at <= now) {
            between(e, calls);
            e.handle_timeout(now);
            calls += 1;
            let (r2, t2) = outputs(e);
            r.extend(r2);
            t.extend(t2);
            assert!(calls < 100_000, "the slices do not end");
        }
        (r, t, calls)
    }

    /// Sends every pending update: the Updates of the change.
    fn flushed(e: &mut Engine, now: Instant) -> Vec<(u32, Destination, bytes::Bytes)> {
        e.handle_timeout(now + Duration::from_secs(3));
        let (_, t) = outputs(e);
        t.into_iter().map(|t| (t.ifindex, t.dst, t.bytes)).collect()
    }

    /// The invariant: with outputs drained between slices, the slices end in the table,
    /// selections, installed routes, kernel changes and Updates sent of the one-step
    /// reselection, for random tables, slice sizes and changes (cost up to infinity and back
    /// down, wildcard retraction, flush, interface down).
    #[test]
    fn slices_end_where_one_step_does() {
        let mut rng = Rng::new(18);
        let changes = [
            Change::Cost(INFINITY),
            Change::Cost(300),
            Change::Retract,
            Change::Flush,
            Change::Down,
        ];
        for case in 0..40u64 {
            let dests = 50 + rng.below(1500) as u32;
            let slice = 1 + rng.below(200) as usize;
            let change = changes[(case % changes.len() as u64) as usize];
            let mut one = engine(case, dests, usize::MAX);
            let mut sliced = engine(case, dests, slice);
            assert_eq!(state(&one), state(&sliced));
            let now = quiet(&one);
            let nid = one.neighbour_id(1, addr(NEIGHBOURS[0].0)).unwrap();
            let routes = one.routes.len_via(nid);
            apply(&mut one, now, change);
            apply(&mut sliced, now, change);
            let (r1, t1, c1) = drive(&mut one, now, |_, _| {});
            let (r2, t2, c2) = drive(&mut sliced, now, |_, _| {});
            let what = format!("case {case}: {dests} destinations, slices of {slice}, {change:?}");
            // Timers due at `now` anyway run in both; the slices after the first add calls.
            assert!(
                c2 > c1 || routes < slice,
                "{what}: no slice after the first"
            );
            if let Change::Down = change {
                // Two neighbours gone: a destination through both is reached by either's
                // slices; the one step switches it to the second and then removes it.
                assert_eq!(kernel(&r1), kernel(&r2), "{what}: kernel");
            } else {
                assert_eq!(r1, r2, "{what}: kernel changes");
            }
            let (m1, m2) = (messages(&t1), messages(&t2));
            // (With two neighbours gone, the one step asks the second for what the first had,
            // a moment before it forgets the second too; the slices do not.)
            if !matches!(change, Change::Down) {
                for (k, v1) in &m1 {
                    let v2 = m2.get(k).map_or(&[][..], |v| &v[..]);
                    let at = v1.iter().zip(v2).take_while(|(x, y)| x == y).count();
                    assert!(
                        at == v1.len() && at == v2.len(),
                        "{what}: messages sent on {k:?} differ at {at} of {} and {}:\n{:?}\n{:?}",
                        v1.len(),
                        v2.len(),
                        v1.get(at),
                        v2.get(at)
                    );
                }
                assert_eq!(m1.len(), m2.len(), "{what}: messages sent");
            }
            let (a, b) = if let Change::Down = change {
                // The seqno requests for the destinations lost name the originator of the
                // route lost: the second neighbour's in one step, the first's in slices.
                let routes = |e: &Engine| format!("{:?}", e.routes.iter().collect::<Vec<_>>());
                (routes(&one), routes(&sliced))
            } else {
                (state(&one), state(&sliced))
            };
            assert!(a == b, "{what}: {}", differ(&a, &b));
            assert!(sliced.reselections.is_empty() && sliced.departed.is_empty());
            let (f1, f2) = (flushed(&mut one, now), flushed(&mut sliced, now));
            if let Change::Down = change {
                // The Updates; the seqno requests repeated differ as above.
                let updates = |f: &[(u32, Destination, bytes::Bytes)]| {
                    f.iter()
                        .flat_map(|(i, _, b)| {
                            let d = decode(b, &DecodeOptions::default()).unwrap();
                            d.packet.messages.into_iter().map(move |m| (*i, m))
                        })
                        .filter(|(_, m)| matches!(m, Message::Update(_)))
                        .collect::<Vec<_>>()
                };
                assert_eq!(updates(&f1), updates(&f2), "{what}: Updates");
            } else {
                assert_eq!(f1, f2, "{what}");
                assert_eq!(state(&one), state(&sliced), "{what}: after the flush");
            }
        }
    }

    /// Updates from the changed neighbour (after a flush: the same address heard again, a new
    /// neighbour) and from another one, arriving between slices for destinations reached or not
    /// yet: each destination sees the change before the Update, as
    /// in one step, so the table, the Updates sent and each destination's kernel changes are
    /// those of the one-step reselection followed by the same Updates.
    #[test]
    fn updates_between_slices_see_the_change_first() {
        let mut rng = Rng::new(1818);
        let changes = [
            Change::Cost(INFINITY),
            Change::Cost(300),
            Change::Retract,
            Change::Flush,
        ];
        for case in 0..40u64 {
            let dests = 200 + rng.below(1200) as u32;
            let slice = 1 + rng.below(100) as usize;
            let change = changes[(case % changes.len() as u64) as usize];
            let mut one = engine(case, dests, usize::MAX);
            let mut sliced = engine(case, dests, slice);
            let now = quiet(&one);
            // The calls after the first slice: an input goes in before one of them.
            let nid = one.neighbour_id(1, addr(NEIGHBOURS[0].0)).unwrap();
            let calls = one.routes.len_via(nid) / slice;
            if calls == 0 {
                continue;
            }
            // The inputs: before which call, from whom, for which destination, what metric.
            let inputs: Vec<(usize, usize, Message)> = (0..1 + rng.below(12))
                .map(|_| {
                    let metric = if rng.below(4) == 0 {
                        INFINITY
                    } else {
                        96 + rng.below(400) as u16
                    };
                    let u = update(rng.below(u64::from(dests)) as u32, metric, 8, 1);
                    let call = rng.below(calls as u64) as usize;
                    (call, rng.below(2) as usize, u)
                })
                .collect();
            let mut inputs = inputs;
            inputs.sort_by_key(|(call, _, _)| *call);
            // One step: the change, the inputs at the same instant, then the timers due.
            apply(&mut one, now, change);
            for (_, n, u) in &inputs {
                from(&mut one, now, *n, std::slice::from_ref(u));
            }
            let (r1, _, _) = drive(&mut one, now, |_, _| {});
            apply(&mut sliced, now, change);
            let mut fed = 0;
            let (r2, _, calls) = drive(&mut sliced, now, |e, call| {
                while fed < inputs.len() && inputs[fed].0 <= call {
                    let (_, n, u) = &inputs[fed];
                    from(e, now, *n, std::slice::from_ref(u));
                    fed += 1;
                }
            });
            assert_eq!(fed, inputs.len());
            let what = format!(
                "case {case}: {dests} destinations, slices of {slice}, {change:?}, {} inputs, \
                 {fed} between {calls} slices",
                inputs.len()
            );
            // Each destination's changes are those of one step; only their order across
            // destinations differs (an Update's come between two slices').
            assert_eq!(per_destination(&r1), per_destination(&r2), "{what}: kernel");
            let (a, b) = (state(&one), state(&sliced));
            assert!(a == b, "{what}: {}", differ(&a, &b));
            assert_eq!(flushed(&mut one, now), flushed(&mut sliced, now), "{what}");
        }
    }

    /// A second change of the neighbour's cost while its destinations are half done starts
    /// over from the first: when the slices end, every destination is selected with the second
    /// cost, as one step of the second change leaves it; the neighbour flushed half way
    /// leaves none of its routes.
    #[test]
    fn a_change_half_way_starts_over() {
        for case in 0..10u64 {
            let dests = 1500;
            let mut e = engine(case, dests, 64);
            let now = Instant::from_secs(2);
            apply(&mut e, now, Change::Cost(INFINITY));
            let mut once = false;
            let (_, _, calls) = drive(&mut e, now, |e, call| {
                if call == 3 && !once {
                    once = true;
                    apply(e, now, Change::Cost(200));
                }
            });
            assert!(once && calls > 3);
            let nid = e.neighbour_id(1, addr(NEIGHBOURS[0].0)).unwrap();
            assert!(e.neighbour_cost(nid) < INFINITY);
            // Every destination of the neighbour has been selected since the second change:
            // selecting each again changes nothing in the kernel or the table (it may ask for a
            // seqno again: a starved destination asks on each selection).
            let table = |e: &Engine| format!("{:?}", e.routes.iter().collect::<Vec<_>>());
            let before = table(&e);
            for k in e.routes.keys_via(nid) {
                e.reselect(now, k);
            }
            let (r, _) = outputs(&mut e);
            assert_eq!(r, vec![], "case {case}");
            assert!(
                table(&e) == before,
                "case {case}: {}",
                differ(&before, &table(&e))
            );
            assert!(e.reselections.is_empty());
            // Now the neighbour goes, half way through another change.
            apply(&mut e, now, Change::Cost(INFINITY));
            let mut flushed = false;
            drive(&mut e, now, |e, call| {
                if call == 2 && !flushed {
                    flushed = true;
                    apply(e, now, Change::Flush);
                }
            });
            assert!(flushed);
            assert_eq!(e.routes.len_via(nid), 0);
            assert!(e.routes.iter().all(|(_, d)| d.selected() != Some(nid)));
            assert!(e.reselections.is_empty() && e.departed.is_empty());
        }
    }
}
