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
//!   which changes nothing at the same instant;
//! * another change of the neighbour's cost, or a retraction of all its routes: the reselection
//!   starts again from the first destination with the new cost; the destinations not yet reached
//!   are selected once, with the newest cost, rather than twice;
//! * the neighbour flushed: the reselection becomes a removal, started from the first
//!   destination; its interface and address stay known (`departed`) until it is done.
//!
//! RFC 8966 §3.6 holds for each destination as it is selected: only feasible, finite routes are
//! selected, with the neighbour's current cost. §3.7.2's triggered and urgent updates are
//! scheduled by each selection as before (the same jitter draws, in the same key order), so
//! they are sent by the interfaces' flush timers as before, within the urgent timeout.

use super::*;

/// Destinations selected again per slice (as the periodic dump's `UPDATE_PART`).
pub const RESELECT_SLICE: usize = 1024;

impl Engine {
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
        let ids: Vec<u64> = self.departed.keys().copied().collect();
        let flushed: Vec<(RouteKey, Route)> = ids
            .into_iter()
            .filter_map(|nid| Some((*key, self.routes.remove_route(key, nid)?)))
            .collect();
        self.flush_events(now, &flushed);
    }
}
