//! babeld's kernel check (`kernel-check-interval`) in linear time and small steps, and the
//! graceful-restart bookkeeping of routes a previous run left in the kernel.
//!
//! The daemon's route thread installs what the engine selects. Now and then it compares that
//! with a dump of the kernel's routes of our protocol: a route of ours that is missing or
//! different (someone ran `ip route flush`, an interface flapped) is put back, and a route of
//! our protocol that we no longer own (a failed delete, a route left over) is removed. With a
//! million routes a comparison must not be quadratic, nor hold up route changes: [`CheckRun`]
//! indexes the dump by key once, then works through our routes in steps of bounded size, so the
//! route thread applies the engine's changes between two steps.
//!
//! [`Stale`] keeps the routes a killed run left behind while the table is relearned (as
//! routers with graceful restart do): a relearned route replaces its stale twin in place, with
//! no gap in forwarding; what is not relearned within the grace period is removed.

use clock::Instant;
use std::collections::HashMap;
use std::time::Duration;

use kernel_fib::{FibChange, KernelRoute, KernelRouteKey, RouteRecord};

/// Routes a check examines per step (about a millisecond of work).
pub const CHECK_STEP: usize = 4096;

/// One comparison of our routes with a dump of the kernel's, done in steps.
#[derive(Debug)]
pub struct CheckRun {
    /// The kernel's routes of our protocol not yet matched with one of ours.
    present: HashMap<KernelRouteKey, KernelRoute>,
    /// Our routes are examined in key order; the last key examined.
    cursor: Option<KernelRouteKey>,
    ours_done: bool,
    /// Routes reinstalled and removed so far.
    pub reinstalled: usize,
    /// See [`CheckRun::reinstalled`].
    pub removed: usize,
}

impl CheckRun {
    /// Starts a comparison with `present`, a dump of the kernel's routes of our protocol.
    pub fn new(present: Vec<KernelRoute>) -> Self {
        CheckRun {
            present: present.into_iter().map(|r| (r.key(), r)).collect(),
            cursor: None,
            ours_done: false,
            reinstalled: 0,
            removed: 0,
        }
    }

    /// Examines at most `budget` routes and returns what to change; `true` once done. `ours` is
    /// what we have installed now (it may change between steps: a route added after the dump
    /// is reinstalled once, harmlessly; one removed after it is deleted again, harmlessly),
    /// and `keep(key)` spares kernel routes we do not own but must not remove (stale routes in
    /// their grace period, source-table projections).
    pub fn step(
        &mut self,
        ours: &RouteRecord,
        keep: impl Fn(&KernelRouteKey) -> bool,
        budget: usize,
    ) -> (Vec<FibChange>, bool) {
        let mut changes = Vec::new();
        if !self.ours_done {
            for (n, r) in ours.after(self.cursor.as_ref()).enumerate() {
                if n == budget {
                    return (changes, false);
                }
                let k = r.key();
                self.cursor = Some(k);
                match self.present.remove(&k) {
                    Some(installed) if r.same_as_installed(&installed) => {}
                    _ => {
                        self.reinstalled += 1;
                        changes.push(FibChange::Replace(r));
                    }
                }
            }
            self.ours_done = true;
            return (changes, self.present.is_empty());
        }
        // What is left of the dump is not ours.
        let batch: Vec<KernelRouteKey> = self.present.keys().take(budget).copied().collect();
        for k in batch {
            if let Some(r) = self.present.remove(&k)
                && !ours.contains_key(&k)
                && !keep(&k)
            {
                self.removed += 1;
                changes.push(FibChange::Delete(r));
            }
        }
        (changes, self.present.is_empty())
    }
}

/// Routes of our protocol found in the kernel at start-up (graceful restart).
#[derive(Debug, Default)]
pub struct Stale {
    routes: HashMap<KernelRouteKey, KernelRoute>,
    deadline: Option<Instant>,
}

impl Stale {
    /// Keeps `routes` until `now + grace`.
    pub fn new(routes: Vec<KernelRoute>, now: Instant, grace: Duration) -> Self {
        let routes: HashMap<KernelRouteKey, KernelRoute> =
            routes.into_iter().map(|r| (r.key(), r)).collect();
        let deadline = (!routes.is_empty()).then(|| now + grace);
        Stale { routes, deadline }
    }

    /// Stale routes left.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when none are left.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// When the rest must go, while some are left.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.filter(|_| !self.routes.is_empty())
    }

    /// Whether `key` is a stale route still kept.
    pub fn contains(&self, key: &KernelRouteKey) -> bool {
        self.routes.contains_key(key)
    }

    /// A route with this key was installed again: the replace took the stale one's place.
    pub fn relearned(&mut self, key: &KernelRouteKey) {
        self.routes.remove(key);
    }

    /// A stale route the engine asks us to delete (it cannot: it never installed it, but a
    /// destination it withdraws must not keep the old route).
    pub fn take(&mut self, key: &KernelRouteKey) -> Option<KernelRoute> {
        self.routes.remove(key)
    }

    /// After the deadline: the routes not relearned, to delete.
    pub fn expire(&mut self, now: Instant) -> Vec<KernelRoute> {
        match self.deadline {
            Some(d) if now >= d => self.routes.drain().map(|(_, r)| r).collect(),
            _ => Vec::new(),
        }
    }
}

impl kernel_fib::Leftovers for Stale {
    fn relearned(&mut self, key: &KernelRouteKey) {
        Stale::relearned(self, key);
    }

    fn take(&mut self, key: &KernelRouteKey) -> Option<KernelRoute> {
        Stale::take(self, key)
    }
}

/// The routes a crashed run of ours left in the kernel as the engine's graceful-restart input
/// ([`babel_core::EngineConfig::resume_routes`]): where it sent each destination. `left` is a
/// dump of our protocol's routes; only unicast routes with a next hop and an interface in
/// `table` count. Source-specific routes in the per-source tables of the rule mode are left
/// out (their source is in a rule, not in the route); held (unreachable) routes name no next
/// hop.
pub fn resume_routes(left: &[KernelRoute], table: u32) -> Vec<babel_core::ResumeRoute> {
    left.iter()
        .filter(|r| r.kind == kernel_fib::RouteKind::Unicast && r.table == table)
        .filter_map(|r| {
            Some(babel_core::ResumeRoute {
                prefix: r.dst,
                src_prefix: r.src,
                ifindex: r.oif?,
                next_hop: r.gateway?,
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn route(i: u32) -> KernelRoute {
        let p = format!("10.{}.{}.0/24", (i >> 8) & 0xff, i & 0xff);
        KernelRoute::unicast(
            p.parse().unwrap(),
            Some("192.0.2.1".parse().unwrap()),
            Some(2),
        )
        .with_protocol(42)
    }

    fn run_all(
        c: &mut CheckRun,
        ours: &RouteRecord,
        keep: impl Fn(&KernelRouteKey) -> bool + Copy,
    ) -> Vec<FibChange> {
        let mut all = Vec::new();
        let mut steps = 0;
        loop {
            let (ch, done) = c.step(ours, keep, 3);
            assert!(ch.len() <= 3);
            all.extend(ch);
            steps += 1;
            if done {
                break;
            }
            assert!(steps < 100);
        }
        all
    }

    #[test]
    fn missing_and_changed_routes_come_back_and_foreign_ones_go() {
        let ours: RouteRecord = (0..10).map(route).collect();
        let mut present: Vec<KernelRoute> = (0..10).filter(|i| i % 3 != 0).map(route).collect();
        // Route 1 points elsewhere in the kernel.
        present[0].oif = Some(9);
        // Routes 20 and 21 are of our protocol but not ours; 21 is stale and kept.
        present.push(route(20));
        present.push(route(21));
        let keep_key = route(21).key();
        let mut c = CheckRun::new(present);
        let changes = run_all(&mut c, &ours, |k| *k == keep_key);
        let mut replaced: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                FibChange::Replace(r) => Some(r.dst.to_string()),
                _ => None,
            })
            .collect();
        replaced.sort();
        assert_eq!(
            replaced,
            [
                "10.0.0.0/24",
                "10.0.1.0/24",
                "10.0.3.0/24",
                "10.0.6.0/24",
                "10.0.9.0/24"
            ]
        );
        let deleted: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                FibChange::Delete(r) => Some(r.dst.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, ["10.0.20.0/24"]);
        assert_eq!((c.reinstalled, c.removed), (5, 1));
    }

    #[test]
    fn routes_changed_between_steps_are_not_lost() {
        let mut ours: RouteRecord = (0..10).map(route).collect();
        let present: Vec<KernelRoute> = (0..10).map(route).collect();
        let mut c = CheckRun::new(present);
        let (ch, done) = c.step(&ours, |_| false, 3);
        assert!(ch.is_empty() && !done);
        // Route 9 is withdrawn (and deleted by the route thread) in the middle of the check;
        // it is deleted again, never reinstalled.
        let r9 = ours.remove(&route(9).key()).unwrap();
        let rest = run_all(&mut c, &ours, |_| false);
        assert_eq!(rest, vec![FibChange::Delete(r9)]);
    }

    #[test]
    fn stale_routes_are_kept_until_the_deadline_unless_relearned() {
        let t0 = clock::now();
        let mut s = Stale::new(
            vec![route(1), route(2), route(3)],
            t0,
            Duration::from_secs(30),
        );
        assert_eq!(s.deadline(), Some(t0 + Duration::from_secs(30)));
        s.relearned(&route(1).key());
        assert!(s.take(&route(2).key()).is_some());
        assert!(s.expire(t0 + Duration::from_secs(29)).is_empty());
        let gone = s.expire(t0 + Duration::from_secs(30));
        assert_eq!(gone, vec![route(3)]);
        assert!(s.is_empty() && s.deadline().is_none());
    }

    #[test]
    fn resumed_routes_are_our_unicast_routes_of_the_export_table() {
        let main = route(1).with_table(254);
        let other_table = route(2).with_table(300);
        let no_gateway =
            KernelRoute::unicast("10.9.0.0/24".parse().unwrap(), None, Some(2)).with_table(254);
        let r = resume_routes(&[main.clone(), other_table, no_gateway], 254);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].prefix, main.dst);
        assert_eq!(r[0].ifindex, 2);
        assert_eq!(r[0].next_hop, main.gateway.unwrap());
        assert!(resume_routes(&[], 254).is_empty());
    }
}
