//! The timers: when to call [`Engine::handle_timeout`] next and what runs then.

use std::collections::BTreeSet;

use super::*;

/// What a timer does when it fires. The derived order is the order in which timers due at the
/// same call run: per interface (by index) its Hello, periodic update, urgent repeats and buffered
/// updates, then unicast Hellos, neighbour checks, route expiry, request resends and source GC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Timer {
    /// A job of one (up) interface.
    Interface(u32, IfTimer),
    /// The next scheduled unicast Hello to a neighbour (RFC 8966 §3.4.1).
    UnicastHello(u64),
    /// Missed Hellos, txcost expiry, neighbour flush (RFC 8966 Appendix A.1, §3.4.2).
    NeighbourCheck,
    /// The next slice of a neighbour's destinations to select again (`reselection.rs`), due
    /// at once: the caller drains the outputs of one slice before the next.
    Reselect(u64),
    /// Route refresh, retraction and removal, end of verified metrics (RFC 8966 §3.5.3).
    RouteCheck,
    /// Seqno request resends (RFC 8966 Appendix B).
    RequestCheck,
    /// Source table garbage collection (RFC 8966 §3.2.5).
    SourceGc,
    /// Destinations to select again when a route the hysteresis keeps out becomes worth
    /// switching to ([`SwitchTimers`]).
    Switch,
}

/// The timers of one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum IfTimer {
    /// Multicast Hello (with IHUs).
    Hello,
    /// Periodic full dump (RFC 8966 §3.7.1).
    Update,
    /// Repeats of urgent updates (RFC 8966 §3.7.2).
    UrgentResend,
    /// Buffered updates are sent.
    Flush,
}

/// One deadline per key, with the earliest in O(log n): the engine's [`TimerTable`] and its
/// [`SwitchTimers`].
#[derive(Clone, Debug)]
pub(super) struct Deadlines<K> {
    at: BTreeMap<K, Instant>,
    /// The same deadlines, by time.
    queue: BTreeSet<(Instant, K)>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            at: BTreeMap::new(),
            queue: BTreeSet::new(),
        }
    }
}

/// Every deadline of the engine, one per [`Timer`].
pub(super) type TimerTable = Deadlines<Timer>;

impl<K: Ord + Copy> Deadlines<K> {
    /// The deadline of a timer, if it is armed.
    pub(super) fn get(&self, t: K) -> Option<Instant> {
        self.at.get(&t).copied()
    }

    /// Arms a timer (replacing its deadline).
    pub(super) fn set(&mut self, t: K, at: Instant) {
        if let Some(old) = self.at.insert(t, at) {
            self.queue.remove(&(old, t));
        }
        self.queue.insert((at, t));
    }

    /// Arms a timer, or disarms it with `None`.
    pub(super) fn set_opt(&mut self, t: K, at: Option<Instant>) {
        match at {
            Some(at) => self.set(t, at),
            None => self.stop(t),
        }
    }

    /// Arms a timer for `at` unless it fires sooner already.
    pub(super) fn set_earlier(&mut self, t: K, at: Instant) {
        if self.get(t).is_none_or(|old| at < old) {
            self.set(t, at);
        }
    }

    /// Disarms a timer.
    pub(super) fn stop(&mut self, t: K) {
        if let Some(old) = self.at.remove(&t) {
            self.queue.remove(&(old, t));
        }
    }

    /// The earliest deadline.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// Timers armed.
    pub(super) fn len(&self) -> usize {
        self.at.len()
    }
}

impl TimerTable {
    /// Disarms every timer of an interface.
    pub(super) fn stop_interface(&mut self, ifindex: u32) {
        for k in [
            IfTimer::Hello,
            IfTimer::Update,
            IfTimer::UrgentResend,
            IfTimer::Flush,
        ] {
            self.stop(Timer::Interface(ifindex, k));
        }
    }

    /// The first timer, in [`Timer`] order after `after`, that is due at `now`.
    pub(super) fn next_due(&self, now: Instant, after: Option<Timer>) -> Option<Timer> {
        self.queue
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, t)| *t)
            .filter(|t| after.is_none_or(|a| *t > a))
            .min()
    }
}

/// Destinations whose selection is due again at an instant: when a route that only the
/// hysteresis keeps out (RFC 8966 Appendix A.3, its smoothed metric not yet past the selected
/// route's) becomes worth switching to, as `selection::switch_due` computes it. Selection runs
/// on Updates; without a deadline the switch waits for the destination's next Update, up to an
/// update interval after the crossing, and a chain of such switches waits that long at each hop.
/// One deadline a destination; at most [`SwitchTimers::MAX`], beyond which a switch waits for
/// the next Update as before (counted). A deadline that no longer applies (an Update changed
/// the routes since) only selects the destination again, which changes nothing.
#[derive(Clone, Debug, Default)]
pub(super) struct SwitchTimers(Deadlines<RouteKey>);

impl SwitchTimers {
    /// Destinations with a deadline at once, at most (about 150 bytes each).
    pub(super) const MAX: usize = 4096;

    /// Sets the destination's deadline (replacing any); false when the table is full.
    pub(super) fn set(&mut self, key: RouteKey, at: Instant) -> bool {
        if self.0.len() >= Self::MAX && self.0.get(key).is_none() {
            return false;
        }
        self.0.set(key, at);
        true
    }

    /// The earliest deadline.
    pub(super) fn first(&self) -> Option<Instant> {
        self.0.next_timeout()
    }

    /// Takes a destination whose deadline is `now` or earlier.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<RouteKey> {
        let (_, key) = *self.0.queue.first().filter(|(at, _)| *at <= now)?;
        self.0.stop(key);
        Some(key)
    }
}

impl Engine {
    /// Gives `key` a deadline to be selected again at `at` ([`SwitchTimers`]).
    pub(super) fn schedule_switch(&mut self, key: RouteKey, at: Instant) {
        if self.switches.set(key, at) {
            self.timers.set_earlier(Timer::Switch, at);
        } else {
            self.counters.switch_timers_over_limit += 1;
        }
    }

    /// The instant at which [`Engine::handle_timeout`] must next be called; `None` if nothing is
    /// scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    /// The periodic full dumps (RFC 8966 §3.7.1) that [`Engine::handle_timeout`] sends before
    /// `until`, weighed by the destinations each walks: how much work the timers hold, for a
    /// caller sharing engines between threads (the simulator balances its threads with it).
    pub fn full_dump_work(&self, until: Instant) -> usize {
        let due = |t: Timer| self.timers.get(t).is_some_and(|at| at < until);
        let dumps = self
            .interfaces
            .iter()
            .filter(|&(&ifindex, i)| {
                i.up && (due(Timer::Interface(ifindex, IfTimer::Update))
                    || (i.pending_full && due(Timer::Interface(ifindex, IfTimer::Flush))))
            })
            .count();
        dumps * (self.routes.installed_len() + self.xroutes.len())
    }

    /// Runs every timer due at `now`, each at most once, in a fixed order: Hellos, periodic and
    /// buffered updates, urgent repeats, unicast Hellos, missed-Hello detection and neighbour
    /// flush, route expiry and refresh, request resends and source GC. A timer that a job makes
    /// due later in that order (a periodic update makes the interface's flush due) runs in the
    /// same call.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut last = None;
        while let Some(t) = self.timers.next_due(now, last) {
            last = Some(t);
            self.timers.stop(t);
            self.fire(now, t);
        }
    }

    fn fire(&mut self, now: Instant, t: Timer) {
        match t {
            Timer::Interface(ifindex, job) => {
                let Some(i) = self.interfaces.get(&ifindex).filter(|i| i.up) else {
                    return;
                };
                let (hello_iv, upd_iv) = (i.cfg.hello_interval, i.cfg.update_interval);
                match job {
                    IfTimer::Hello => {
                        self.send_hello(now, ifindex);
                        let next = now + (hello_iv - self.jitter(hello_iv / 16));
                        self.timers.set(t, next);
                    }
                    IfTimer::Update => self.periodic_update(now, ifindex, upd_iv),
                    IfTimer::UrgentResend => self.repeat_urgent(now, ifindex),
                    // A flush waits for the reselection under way (its slices are due now):
                    // the Updates sent are those of the whole reselection (`reselection.rs`).
                    IfTimer::Flush if !self.reselections.is_empty() => self.timers.set(t, now),
                    IfTimer::Flush => self.flush_updates(now, ifindex),
                }
            }
            Timer::UnicastHello(nid) => self.send_unicast_hello(now, nid),
            Timer::NeighbourCheck => self.check_neighbours(now),
            Timer::Reselect(nid) => self.reselect_slice(now, nid),
            Timer::RouteCheck => self.expire_routes(now),
            Timer::RequestCheck => self.resend_requests(now),
            Timer::SourceGc => {
                self.sources.gc(now);
                self.timers.set(t, now + self.sources.gc_period());
            }
            Timer::Switch => {
                while let Some(key) = self.switches.pop_due(now) {
                    self.reselect(now, key);
                }
                self.timers.set_opt(t, self.switches.first());
            }
        }
    }
}

pub(super) fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn one_deadline_per_timer_and_the_earliest_first() {
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::SourceGc, at(50));
        t.set(Timer::RouteCheck, at(30));
        t.set(Timer::RouteCheck, at(40));
        assert_eq!(t.next_timeout(), Some(at(40)));
        t.set_earlier(Timer::RouteCheck, at(45));
        assert_eq!(t.get(Timer::RouteCheck), Some(at(40)));
        t.set_earlier(Timer::RouteCheck, at(10));
        assert_eq!(t.next_timeout(), Some(at(10)));
        t.set_opt(Timer::RouteCheck, None);
        assert_eq!(
            (t.get(Timer::RouteCheck), t.next_timeout()),
            (None, Some(at(50)))
        );
        t.stop(Timer::SourceGc);
        assert_eq!(t.next_timeout(), None);
        assert!(t.at.is_empty() && t.queue.is_empty());
    }

    #[test]
    fn switch_timers_keep_one_deadline_a_destination_and_a_bound() {
        let key = |i: u128| RouteKey::new(Prefix::host(IpAddr::V6(std::net::Ipv6Addr::from(i))));
        let mut s = SwitchTimers::default();
        assert!(s.set(key(1), at(30)));
        assert!(s.set(key(2), at(20)));
        // A new deadline replaces the old one.
        assert!(s.set(key(1), at(10)));
        assert_eq!(s.first(), Some(at(10)));
        assert_eq!(s.pop_due(at(9)), None);
        assert_eq!(s.pop_due(at(25)), Some(key(1)));
        assert_eq!(s.pop_due(at(25)), Some(key(2)));
        assert_eq!((s.pop_due(at(100)), s.first()), (None, None));
        // Full: a new destination is refused, one already there can still move.
        for i in 0..SwitchTimers::MAX as u128 {
            assert!(s.set(key(i), at(50)));
        }
        assert!(!s.set(key(u128::MAX), at(5)));
        assert!(s.set(key(7), at(5)));
        assert_eq!(s.pop_due(at(5)), Some(key(7)));
        assert_eq!(
            (s.0.at.len(), s.0.queue.len()),
            (SwitchTimers::MAX - 1, SwitchTimers::MAX - 1)
        );
    }

    #[test]
    fn due_timers_run_in_timer_order_each_once() {
        let mut t = TimerTable::default();
        t.set(Timer::SourceGc, at(1));
        t.set(Timer::Interface(2, IfTimer::Hello), at(5));
        t.set(Timer::Interface(1, IfTimer::Flush), at(3));
        t.set(Timer::UnicastHello(7), at(9));
        t.set(Timer::NeighbourCheck, at(11));
        let mut ran = Vec::new();
        let mut last = None;
        while let Some(x) = t.next_due(at(10), last) {
            ran.push(x);
            last = Some(x);
            t.stop(x);
            if x == Timer::Interface(2, IfTimer::Hello) {
                // Re-armed due: not run again in this pass, nor are earlier timers made due.
                t.set(x, at(10));
                t.set(Timer::Interface(1, IfTimer::Hello), at(10));
                // Made due later in the order: runs in this pass.
                t.set(Timer::Interface(2, IfTimer::Flush), at(10));
            }
        }
        assert_eq!(
            ran,
            vec![
                Timer::Interface(1, IfTimer::Flush),
                Timer::Interface(2, IfTimer::Hello),
                Timer::Interface(2, IfTimer::Flush),
                Timer::UnicastHello(7),
                Timer::SourceGc,
            ]
        );
        t.stop_interface(2);
        assert_eq!(
            t.next_due(at(10), None),
            Some(Timer::Interface(1, IfTimer::Hello))
        );
    }
}
