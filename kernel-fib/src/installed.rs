//! The routes we installed, and only those: what the daemon's route thread keeps between the
//! engine's route changes and the kernel, generic over [`Fib`].
//!
//! * A delete is only ever sent for a route we installed (or one a previous run left, see
//!   [`Leftovers`]): in an IPv4 delete, metric 0 means "any metric" (see [`Fib::delete`]), so
//!   deleting a route that is already gone could take another route with it.
//! * A held destination (babeld, RFC 8966 §3.5.5 and §3.6: a route retracted while its
//!   feasibility distance still holds) is an `unreachable` route of metric 4294967295 in the
//!   same table, beside which the unicast route is never kept. New routes go in before old
//!   ones go out, so traffic never falls to a less specific route in between.
//! * Without IPv6 subtrees, source-specific routes are projected onto source tables and
//!   `from SRC` rules ([`SourceTables`], RFC 9079 §5.3 ordering); the projection is recomputed
//!   from every route we would install natively after each batch, and applied make before
//!   break (new routes, new rules, then old rules, old routes).
//! * Source-specific routes are IPv6 only, as in babeld ≥ 1.10 (it refuses IPv4 ones).

use std::collections::{BTreeMap, HashMap};

use babel_wire::Prefix;

use crate::{
    Fib, FibChange, FibError, KernelRoute, KernelRouteKey, KernelRule, RouteRecord, SourceTables,
};

/// Route changes sent to the kernel in one netlink batch at most.
pub const APPLY_BATCH: usize = 1024;

/// What to do with one destination, as the routing engine says it (RFC 8966 §3.6 route
/// selection, babeld's holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallOp {
    /// Install the route, replacing whatever we had for its destination (a new route, a
    /// switch of next hop, the end of a hold).
    Install,
    /// Hold the destination: an `unreachable` route in the route's place.
    Hold,
    /// Remove the route (and the hold) of the destination.
    Remove,
}

/// Routes of our protocol a previous run left in the kernel (graceful restart): a route
/// installed with the same key replaces its stale twin in place, and a removal of a key we
/// never installed removes the stale twin.
pub trait Leftovers {
    /// A route with this key was installed: it is no longer stale.
    fn relearned(&mut self, key: &KernelRouteKey);
    /// The stale route with this key, taken out of the book (to be deleted).
    fn take(&mut self, key: &KernelRouteKey) -> Option<KernelRoute>;
}

/// No previous run's routes.
impl Leftovers for () {
    fn relearned(&mut self, _: &KernelRouteKey) {}
    fn take(&mut self, _: &KernelRouteKey) -> Option<KernelRoute> {
        None
    }
}

/// The rule projection's state (`ipv6-subtrees false`).
#[derive(Clone, Debug)]
struct RuleMode {
    tables: SourceTables,
    /// Every route we would install natively, by (destination, source): the projection is
    /// recomputed from these.
    logical: BTreeMap<(Prefix, Option<Prefix>), KernelRoute>,
    /// Routes of the source tables now in the kernel.
    projected: HashMap<KernelRouteKey, KernelRoute>,
    /// Our rules now in the kernel.
    rules: Vec<KernelRule>,
}

/// Our routes in a [`Fib`]: see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Installed {
    /// What we installed, ordered so that a kernel check can resume where it stopped.
    ours: RouteRecord,
    /// `Some` when source-specific routes are projected on rules.
    rule_mode: Option<RuleMode>,
    /// `ours.len()` when it was last rebuilt with full nodes ([`Installed::repack`]).
    packed_len: usize,
}

impl Installed {
    /// Nothing installed yet. With `source_tables`, source-specific routes are projected onto
    /// them (kernels without IPv6 subtrees); without, they are installed with `RTA_SRC`.
    pub fn new(source_tables: Option<SourceTables>) -> Installed {
        Installed {
            ours: RouteRecord::new(),
            packed_len: 0,
            rule_mode: source_tables.map(|tables| RuleMode {
                tables,
                logical: BTreeMap::new(),
                projected: HashMap::new(),
                rules: Vec::new(),
            }),
        }
    }

    /// The routes we installed (holds included, source-table projections not).
    pub fn ours(&self) -> &RouteRecord {
        &self.ours
    }

    /// Whether `key` is a route of the rule projection now in the kernel.
    pub fn is_projected(&self, key: &KernelRouteKey) -> bool {
        self.rule_mode
            .as_ref()
            .is_some_and(|m| m.projected.contains_key(key))
    }

    /// Our rules now in the kernel.
    pub fn rules(&self) -> &[KernelRule] {
        self.rule_mode.as_ref().map_or(&[], |m| &m.rules)
    }

    /// Applies the engine's decisions. Each route is the unicast route as it would be
    /// installed (table, metric, protocol, preferred source set); the hold of its destination
    /// is derived from it. Failures are logged and the rest goes on. The kernel gets them in
    /// batches of [`APPLY_BATCH`] changes (a full table never has a copy of every route in
    /// one batch), and the rule projection is brought in line once, at the end.
    pub fn apply<F, U>(
        &mut self,
        fib: &mut F,
        updates: impl IntoIterator<Item = U>,
        left: &mut impl Leftovers,
    ) where
        F: Fib + ?Sized,
        U: std::borrow::Borrow<(InstallOp, KernelRoute)>,
    {
        // One allocation of the batch's size (an update makes at most two changes): a batch
        // grown by doubling left its smaller buffers as holes in the heap.
        let updates = updates.into_iter();
        let mut batch = Vec::with_capacity(updates.size_hint().0.min(APPLY_BATCH) + 2);
        for u in updates {
            if batch.len() >= APPLY_BATCH {
                Self::run(fib, &mut batch);
            }
            let (op, r) = u.borrow();
            if r.src.is_some() && r.is_ipv4() {
                tracing::warn!(
                    "not installing {} from {:?}: source-specific routing is IPv6 only",
                    r.dst,
                    r.src
                );
                continue;
            }
            if let Some(m) = &mut self.rule_mode {
                let k = (r.dst, r.src);
                match op {
                    InstallOp::Install => {
                        m.logical.insert(k, r.clone());
                    }
                    // Held source-specific destinations are not projected on rules.
                    InstallOp::Remove | InstallOp::Hold => {
                        m.logical.remove(&k);
                    }
                }
                if r.src.is_some() {
                    continue;
                }
            }
            let mut held = KernelRoute::unreachable(r.dst)
                .with_table(r.table)
                .with_protocol(r.protocol);
            if let Some(s) = r.src {
                held = held.with_src(s);
            }
            let (install, remove) = match op {
                InstallOp::Install => (Some(r.clone()), vec![held.key()]),
                InstallOp::Hold => (Some(held), vec![r.key()]),
                InstallOp::Remove => (None, vec![r.key(), held.key()]),
            };
            if let Some(new) = install {
                // A route a previous run left is replaced in place: no gap.
                left.relearned(&new.key());
                self.ours.insert(new.clone());
                batch.push(FibChange::Replace(new));
            }
            for k in remove {
                if let Some(old) = self.ours.remove(&k) {
                    batch.push(FibChange::Delete(old));
                } else if let Some(old) = left.take(&k) {
                    batch.push(FibChange::Delete(old));
                }
            }
        }
        Self::run(fib, &mut batch);
        self.repack();
        self.reproject(fib, left);
    }

    /// Rebuilds the record's part-empty blocks full ([`RouteRecord`]) once it has grown by a
    /// quarter since it was last rebuilt. A full table arrives in key order, which fills the
    /// blocks as it goes; routes inserted out of order split blocks in half, and the rebuild
    /// (only of a group with a tenth of its blocks or more to spare) packs them again. The
    /// geometric trigger keeps it amortised O(1) per route.
    fn repack(&mut self) {
        let n = self.ours.len();
        self.packed_len = self.packed_len.min(n);
        if n < APPLY_BATCH || n < self.packed_len.saturating_add(self.packed_len / 4) {
            return;
        }
        self.ours.repack();
        self.packed_len = n;
    }

    /// Sends `batch` to the kernel and empties it.
    fn run<F: Fib + ?Sized>(fib: &mut F, batch: &mut Vec<FibChange>) {
        for (change, result) in batch.iter().zip(fib.apply(batch)) {
            if let Err(e) = result {
                tracing::warn!("kernel route {change:?}: {e}");
            }
        }
        batch.clear();
    }

    /// `ipv6-subtrees false`: brings the source tables and rules in line with the routes.
    /// New routes and rules go in before old ones go out.
    fn reproject<F: Fib + ?Sized>(&mut self, fib: &mut F, left: &mut impl Leftovers) {
        let Some(m) = &mut self.rule_mode else {
            return;
        };
        if m.projected.is_empty()
            && m.rules.is_empty()
            && !m.logical.keys().any(|(_, s)| s.is_some())
        {
            return;
        }
        let p = m.tables.project(m.logical.values());
        if p.dropped > 0 {
            tracing::warn!(
                "{} source-specific routes not installed (too many source prefixes)",
                p.dropped
            );
        }
        let want: HashMap<KernelRouteKey, KernelRoute> =
            p.routes.into_iter().map(|r| (r.key(), r)).collect();
        let adds: Vec<FibChange> = want
            .iter()
            .filter(|(k, r)| m.projected.get(k) != Some(r))
            .map(|(_, r)| FibChange::Replace(r.clone()))
            .collect();
        let dels: Vec<FibChange> = m
            .projected
            .iter()
            .filter(|(k, _)| !want.contains_key(k))
            .map(|(_, r)| FibChange::Delete(r.clone()))
            .collect();
        let new_rules: Vec<KernelRule> = p
            .rules
            .iter()
            .filter(|r| !m.rules.contains(r))
            .copied()
            .collect();
        let old_rules: Vec<KernelRule> = m
            .rules
            .iter()
            .filter(|r| !p.rules.contains(r))
            .copied()
            .collect();
        for change in &adds {
            if let FibChange::Replace(r) = change {
                left.relearned(&r.key());
            }
        }
        m.projected = want;
        m.rules = p.rules;
        for (change, result) in adds.iter().zip(fib.apply(&adds)) {
            if let Err(e) = result {
                tracing::warn!("source table route {change:?}: {e}");
            }
        }
        for rule in &new_rules {
            match fib.add_rule(rule) {
                Ok(()) | Err(FibError::Exists) => {}
                Err(e) => tracing::warn!("rule {rule}: {e}"),
            }
        }
        for rule in &old_rules {
            if let Err(e) = fib.delete_rule(rule) {
                tracing::warn!("deleting rule {rule}: {e}");
            }
        }
        for (change, result) in dels.iter().zip(fib.apply(&dels)) {
            if let Err(e) = result {
                tracing::warn!("source table route {change:?}: {e}");
            }
        }
    }

    /// Removes our rules, and rules of `protocol` in the projection's priority range left by
    /// an earlier run (at start and at exit). Returns how many went.
    pub fn remove_rules<F: Fib + ?Sized>(&mut self, fib: &mut F, protocol: u8) -> usize {
        let Some(m) = &mut self.rule_mode else {
            return 0;
        };
        let range = m.tables.priorities();
        let mut stale: Vec<KernelRule> = match fib.rules() {
            Ok(rs) => rs
                .into_iter()
                // Source rules never carry a mark: a marked rule is someone else's (route
                // verification's probe rules share our protocol).
                .filter(|r| {
                    r.protocol == protocol && range.contains(&r.priority) && r.fwmark.is_none()
                })
                .collect(),
            Err(e) => {
                tracing::warn!("reading rules: {e}");
                Vec::new()
            }
        };
        stale.append(&mut m.rules);
        stale.sort();
        stale.dedup();
        let mut n = 0;
        for r in &stale {
            match fib.delete_rule(r) {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!("deleting rule {r}: {e}"),
            }
        }
        m.projected.clear();
        m.logical.clear();
        n
    }

    /// Forgets every route (after [`Fib::purge`] removed them all).
    pub fn clear(&mut self) {
        self.ours.clear();
        self.packed_len = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::IpAddr;

    use super::*;
    use crate::{DumpFilter, MemoryFib, RTPROT_BABEL, RouteKind, TABLE_MAIN};

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    /// A route of ours (IPv6 ones with the metric the kernel stores for metric 0).
    fn via(dst: &str, gw: &str) -> KernelRoute {
        let r = KernelRoute::unicast(p(dst), Some(gw.parse::<IpAddr>().unwrap()), Some(2))
            .with_table(TABLE_MAIN)
            .with_protocol(RTPROT_BABEL);
        if r.is_ipv4() {
            r
        } else {
            r.with_metric(crate::IPV6_DEFAULT_METRIC)
        }
    }

    fn ours_in(fib: &mut MemoryFib) -> Vec<KernelRoute> {
        fib.dump(&DumpFilter::protocol(RTPROT_BABEL)).unwrap()
    }

    #[test]
    fn install_switch_hold_and_remove() {
        let mut fib = MemoryFib::new();
        let mut ours = Installed::new(None);
        let a = via("2001:db8:1::/48", "fe80::1");
        ours.apply(&mut fib, &[(InstallOp::Install, a.clone())], &mut ());
        assert_eq!(ours_in(&mut fib).len(), 1);
        assert_eq!(ours.ours().len(), 1);
        // A switch of next hop replaces the route in place.
        let b = via("2001:db8:1::/48", "fe80::2");
        ours.apply(&mut fib, &[(InstallOp::Install, b.clone())], &mut ());
        let now = ours_in(&mut fib);
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].gateway, b.gateway);
        // A hold: an unreachable route of the same destination and table, and no unicast one.
        ours.apply(&mut fib, &[(InstallOp::Hold, b.clone())], &mut ());
        let now = ours_in(&mut fib);
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].kind, RouteKind::Unreachable);
        assert_eq!((now[0].dst, now[0].table), (b.dst, b.table));
        // The end of the hold.
        ours.apply(&mut fib, &[(InstallOp::Install, a.clone())], &mut ());
        let now = ours_in(&mut fib);
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].kind, RouteKind::Unicast);
        // Removal takes both.
        ours.apply(&mut fib, &[(InstallOp::Remove, a)], &mut ());
        assert!(ours_in(&mut fib).is_empty());
        assert!(ours.ours().is_empty());
    }

    /// A full table in key order, in several batches, then half of it removed: the record is
    /// rebuilt along the way and still holds exactly what the kernel has, in key order.
    #[test]
    fn repacking_keeps_the_record() {
        let mut fib = MemoryFib::new();
        let mut ours = Installed::new(None);
        let route = |i: u32| {
            via(
                &format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff),
                "fe80::1",
            )
        };
        for chunk in (0..6000u32).collect::<Vec<_>>().chunks(1500) {
            let ups: Vec<_> = chunk
                .iter()
                .map(|i| (InstallOp::Install, route(*i)))
                .collect();
            ours.apply(&mut fib, &ups, &mut ());
        }
        assert_eq!(ours.packed_len, 6000);
        let downs: Vec<_> = (0..3000u32)
            .map(|i| (InstallOp::Remove, route(i)))
            .collect();
        ours.apply(&mut fib, &downs, &mut ());
        assert_eq!(
            ours.packed_len, 3000,
            "a shrunk record counts from its new size"
        );
        let mut kernel: Vec<KernelRouteKey> =
            ours_in(&mut fib).iter().map(KernelRoute::key).collect();
        kernel.sort();
        let record: Vec<KernelRouteKey> = ours.ours().keys().collect();
        assert_eq!(record, kernel);
        assert_eq!(record.first(), Some(&route(3000).key()));
    }

    #[test]
    fn only_routes_we_installed_are_deleted() {
        // An IPv4 route of our protocol we did not install, with a higher metric: an IPv4
        // metric-0 delete would take it (the kernel's "any metric" rule, which MemoryFib has).
        let mut fib = MemoryFib::new();
        let theirs = via("192.0.2.0/24", "192.0.2.254").with_metric(10);
        fib.add(&theirs).unwrap();
        let mut ours = Installed::new(None);
        let mine = via("192.0.2.0/24", "192.0.2.1");
        ours.apply(&mut fib, &[(InstallOp::Remove, mine.clone())], &mut ());
        assert_eq!(ours_in(&mut fib), vec![theirs.clone()]);
        // Installed and removed twice: the second removal sends nothing.
        ours.apply(&mut fib, &[(InstallOp::Install, mine.clone())], &mut ());
        assert_eq!(ours_in(&mut fib).len(), 2);
        ours.apply(&mut fib, &[(InstallOp::Remove, mine.clone())], &mut ());
        ours.apply(&mut fib, &[(InstallOp::Remove, mine)], &mut ());
        assert_eq!(ours_in(&mut fib), vec![theirs]);
    }

    /// Leftovers of a previous run, by key.
    #[derive(Default)]
    struct Left {
        routes: BTreeMap<KernelRouteKey, KernelRoute>,
        relearned: BTreeSet<KernelRouteKey>,
    }

    impl Leftovers for Left {
        fn relearned(&mut self, key: &KernelRouteKey) {
            if self.routes.remove(key).is_some() {
                self.relearned.insert(*key);
            }
        }
        fn take(&mut self, key: &KernelRouteKey) -> Option<KernelRoute> {
            self.routes.remove(key)
        }
    }

    #[test]
    fn a_previous_runs_routes_are_replaced_in_place_or_removed() {
        let mut fib = MemoryFib::new();
        let old_a = via("2001:db8:1::/48", "fe80::9");
        let old_b = via("2001:db8:2::/48", "fe80::9");
        let mut left = Left::default();
        for r in [&old_a, &old_b] {
            fib.add(r).unwrap();
            left.routes.insert(r.key(), r.clone());
        }
        let mut ours = Installed::new(None);
        let a = via("2001:db8:1::/48", "fe80::1");
        ours.apply(&mut fib, &[(InstallOp::Install, a.clone())], &mut left);
        assert!(left.relearned.contains(&a.key()));
        assert_eq!(fib.get(&a.key()).and_then(|r| r.gateway), a.gateway);
        // A removal of a destination we never installed deletes the stale twin.
        ours.apply(&mut fib, &[(InstallOp::Remove, old_b.clone())], &mut left);
        assert!(fib.get(&old_b.key()).is_none());
        assert!(left.routes.is_empty());
        assert_eq!(ours_in(&mut fib), vec![a]);
    }

    #[test]
    fn ipv4_source_specific_routes_are_refused() {
        let mut fib = MemoryFib::new();
        let mut ours = Installed::new(None);
        let r = via("192.0.2.0/24", "192.0.2.1").with_src(p("198.51.100.0/24"));
        ours.apply(&mut fib, &[(InstallOp::Install, r)], &mut ());
        assert!(fib.is_empty() && ours.ours().is_empty());
    }

    #[test]
    fn native_subtrees_install_source_specific_routes_as_they_are() {
        let mut fib = MemoryFib::new();
        let mut ours = Installed::new(None);
        let r = via("::/0", "fe80::1").with_src(p("2001:db8:aa::/48"));
        ours.apply(&mut fib, &[(InstallOp::Install, r.clone())], &mut ());
        assert_eq!(ours_in(&mut fib), vec![r]);
        assert!(fib.rules().unwrap().is_empty());
    }

    fn source_tables() -> SourceTables {
        SourceTables::new(100, 10, 2, RTPROT_BABEL)
    }

    #[test]
    fn without_subtrees_source_specific_routes_become_a_table_and_a_rule() {
        let mut fib = MemoryFib::new();
        let mut ours = Installed::new(Some(source_tables()));
        let ss = via("::/0", "fe80::1").with_src(p("2001:db8:aa::/48"));
        let plain = via("2001:db8:1::/48", "fe80::2");
        ours.apply(
            &mut fib,
            &[
                (InstallOp::Install, ss.clone()),
                (InstallOp::Install, plain.clone()),
            ],
            &mut (),
        );
        // The plain route in main, the source-specific one in table 10 without its source,
        // one rule selecting table 10 for that source.
        assert!(fib.get(&plain.key()).is_some());
        assert!(fib.get(&ss.key()).is_none());
        let in10 = fib.dump(&DumpFilter::all().in_table(10)).unwrap();
        assert!(in10.iter().any(|r| r.dst == p("::/0") && r.src.is_none()));
        let rule = KernelRule {
            src: p("2001:db8:aa::/48"),
            fwmark: None,
            table: 10,
            priority: 100,
            protocol: RTPROT_BABEL,
        };
        assert_eq!(fib.rules().unwrap(), vec![rule]);
        assert_eq!(ours.rules(), &[rule]);
        assert!(in10.iter().all(|r| ours.is_projected(&r.key())));
        // RFC 9079 §5.3: the more specific destination without a source wins for packets
        // from 2001:db8:aa::/48 too, so table 10 carries it as well.
        assert!(
            in10.iter()
                .any(|r| r.dst == plain.dst && r.gateway == plain.gateway)
        );
        // The source-specific route goes: its table and rule go.
        ours.apply(&mut fib, &[(InstallOp::Remove, ss)], &mut ());
        assert!(
            fib.dump(&DumpFilter::all().in_table(10))
                .unwrap()
                .is_empty()
        );
        assert!(fib.rules().unwrap().is_empty());
        assert!(fib.get(&plain.key()).is_some());
    }

    #[test]
    fn held_source_specific_destinations_are_not_projected() {
        let mut fib = MemoryFib::new();
        let mut ours = Installed::new(Some(source_tables()));
        let ss = via("::/0", "fe80::1").with_src(p("2001:db8:aa::/48"));
        ours.apply(&mut fib, &[(InstallOp::Install, ss.clone())], &mut ());
        assert_eq!(fib.rules().unwrap().len(), 1);
        ours.apply(&mut fib, &[(InstallOp::Hold, ss)], &mut ());
        assert!(fib.rules().unwrap().is_empty());
        assert!(fib.is_empty());
    }

    #[test]
    fn stale_rules_of_our_protocol_in_our_range_are_removed() {
        let mut fib = MemoryFib::new();
        let rule = |priority, protocol| KernelRule {
            src: p("2001:db8:aa::/48"),
            fwmark: None,
            table: 10,
            priority,
            protocol,
        };
        // Ours in range, ours out of range, another protocol's in range, and a marked rule
        // of our protocol in range (a verification probe rule, not a source rule).
        let probe = KernelRule::fwmark_v6(0x6261_0000, 6200, 100, RTPROT_BABEL);
        for r in [
            rule(101, RTPROT_BABEL),
            rule(300, RTPROT_BABEL),
            rule(100, 4),
            probe,
        ] {
            fib.add_rule(&r).unwrap();
        }
        let mut ours = Installed::new(Some(source_tables()));
        assert_eq!(ours.remove_rules(&mut fib, RTPROT_BABEL), 1);
        let mut left = fib.rules().unwrap();
        left.sort();
        let mut want = vec![rule(100, 4), rule(300, RTPROT_BABEL), probe];
        want.sort();
        assert_eq!(left, want);
        // Native subtrees: no rule is ever touched.
        assert_eq!(Installed::new(None).remove_rules(&mut fib, RTPROT_BABEL), 0);
    }
}
