//! [`MemoryFib`]: the kernel table's semantics in memory, for the simulator and tests.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use babel_wire::Prefix;

use crate::{DumpFilter, Fib, FibError, KernelRoute, KernelRouteKey, KernelRule};

/// An in-memory forwarding table with the kernel's semantics: routes are keyed by (table,
/// destination, source, metric), IPv6 metric 0 is stored as 1024, `add` of a taken key fails
/// with [`FibError::Exists`], `replace` overwrites in place, `delete` of a missing route (or of
/// a route with another protocol tag) succeeds without doing anything.
#[derive(Clone, Debug, Default)]
pub struct MemoryFib {
    routes: BTreeMap<KernelRouteKey, KernelRoute>,
    rules: BTreeSet<KernelRule>,
    operations: u64,
}

impl MemoryFib {
    /// An empty table.
    pub fn new() -> MemoryFib {
        MemoryFib::default()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every route, ordered by key.
    pub fn routes(&self) -> impl Iterator<Item = &KernelRoute> {
        self.routes.values()
    }

    /// The route with this key.
    pub fn get(&self, key: &KernelRouteKey) -> Option<&KernelRoute> {
        self.routes.get(key)
    }

    /// How many add/replace/delete operations changed the table (for simulator statistics).
    pub fn operations(&self) -> u64 {
        self.operations
    }

    /// The route the kernel would use for a packet to `dst` (from `src`) in `table`: longest
    /// destination prefix, then longest source prefix, then lowest metric. A linear scan.
    pub fn lookup(&self, table: u32, dst: IpAddr, src: Option<IpAddr>) -> Option<&KernelRoute> {
        let covers = |p: &Prefix, a: IpAddr| p.contains(&Prefix::host(a));
        self.routes
            .values()
            .filter(|r| r.table == table && r.dst.is_ipv4() == dst.is_ipv4())
            .filter(|r| covers(&r.dst, dst))
            .filter(|r| match (r.src, src) {
                (None, _) => true,
                (Some(s), Some(a)) => s.is_ipv4() == a.is_ipv4() && covers(&s, a),
                (Some(_), None) => false,
            })
            .max_by(|a, b| {
                a.dst
                    .len()
                    .cmp(&b.dst.len())
                    .then(
                        a.src
                            .map_or(0, |s| s.len())
                            .cmp(&b.src.map_or(0, |s| s.len())),
                    )
                    .then(b.metric.cmp(&a.metric))
            })
    }

    fn stored(route: &KernelRoute) -> KernelRoute {
        let mut r = route.clone();
        r.metric = route.effective_metric();
        r
    }
}

impl Fib for MemoryFib {
    fn add(&mut self, route: &KernelRoute) -> Result<(), FibError> {
        route.validate()?;
        let key = route.key();
        if self.routes.contains_key(&key) {
            return Err(FibError::Exists);
        }
        self.routes.insert(key, MemoryFib::stored(route));
        self.operations += 1;
        Ok(())
    }

    fn replace(&mut self, route: &KernelRoute) -> Result<(), FibError> {
        route.validate()?;
        self.routes.insert(route.key(), MemoryFib::stored(route));
        self.operations += 1;
        Ok(())
    }

    fn delete(&mut self, route: &KernelRoute) -> Result<(), FibError> {
        let key = if route.is_ipv4() && route.metric == 0 {
            // The kernel's rule: metric 0 in an IPv4 delete matches any metric; the
            // lowest-metric route of that kind and protocol goes.
            self.routes
                .range(route.key()..)
                .take_while(|(k, _)| {
                    k.table == route.table && k.dst == route.dst && k.src.is_none()
                })
                .find(|(_, r)| r.protocol == route.protocol && r.kind == route.kind)
                .map(|(k, _)| *k)
        } else {
            let key = route.key();
            self.routes
                .get(&key)
                .filter(|r| r.protocol == route.protocol)
                .map(|_| key)
        };
        if let Some(key) = key {
            self.routes.remove(&key);
            self.operations += 1;
        }
        Ok(())
    }

    fn dump(&mut self, filter: &DumpFilter) -> Result<Vec<KernelRoute>, FibError> {
        Ok(self
            .routes
            .values()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect())
    }

    fn add_rule(&mut self, rule: &KernelRule) -> Result<(), FibError> {
        if !self.rules.insert(*rule) {
            return Err(FibError::Exists);
        }
        self.operations += 1;
        Ok(())
    }

    fn delete_rule(&mut self, rule: &KernelRule) -> Result<(), FibError> {
        if self.rules.remove(rule) {
            self.operations += 1;
        }
        Ok(())
    }

    fn rules(&mut self) -> Result<Vec<KernelRule>, FibError> {
        Ok(self.rules.iter().copied().collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::{FibChange, RouteKind, TABLE_MAIN};

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn add_replace_delete() {
        let mut fib = MemoryFib::new();
        let r = KernelRoute::unicast(p("10.1.0.0/16"), Some(ip("10.0.0.2")), Some(2));
        fib.add(&r).unwrap();
        assert!(matches!(fib.add(&r), Err(FibError::Exists)));
        let r2 = KernelRoute {
            gateway: Some(ip("10.0.0.3")),
            ..r.clone()
        };
        fib.replace(&r2).unwrap();
        assert_eq!(fib.len(), 1);
        assert_eq!(fib.routes().next().unwrap().gateway, Some(ip("10.0.0.3")));
        fib.delete(&r).unwrap();
        assert!(fib.is_empty());
        fib.delete(&r).unwrap();
    }

    #[test]
    fn delete_respects_protocol() {
        let mut fib = MemoryFib::new();
        let theirs = KernelRoute::unicast(p("10.1.0.0/16"), None, Some(2)).with_protocol(4);
        fib.add(&theirs).unwrap();
        fib.delete(&theirs.clone().with_protocol(42)).unwrap();
        assert_eq!(fib.len(), 1);
    }

    #[test]
    fn ipv4_metric_zero_delete_matches_like_the_kernel() {
        let mut fib = MemoryFib::new();
        let r0 = KernelRoute::unicast(p("10.1.0.0/16"), Some(ip("10.0.0.2")), Some(2));
        let r9 = r0.clone().with_metric(9);
        let u = KernelRoute::unreachable(p("10.1.0.0/16"));
        for r in [&r0, &r9, &u] {
            fib.add(r).unwrap();
        }
        fib.delete(&r0).unwrap();
        assert!(fib.get(&r0.key()).is_none());
        // Gone already: the kernel then removes the next unicast route of ours...
        fib.delete(&r0).unwrap();
        assert!(fib.get(&r9.key()).is_none());
        // ...but never the unreachable one.
        fib.delete(&r0).unwrap();
        assert_eq!(fib.len(), 1);
        assert!(fib.get(&u.key()).is_some());
    }

    #[test]
    fn ipv6_metric_zero_is_1024() {
        let mut fib = MemoryFib::new();
        let r = KernelRoute::unicast(p("2001:db8::/48"), Some(ip("fe80::1")), Some(2));
        fib.add(&r).unwrap();
        assert!(matches!(
            fib.add(&r.clone().with_metric(1024)),
            Err(FibError::Exists)
        ));
        assert_eq!(fib.routes().next().unwrap().metric, 1024);
    }

    #[test]
    fn change_is_make_before_break() {
        let mut fib = MemoryFib::new();
        let old = KernelRoute::unicast(p("10.1.0.0/16"), Some(ip("10.0.0.2")), Some(2));
        fib.add(&old).unwrap();
        let new = old.clone().with_metric(5);
        fib.change(&old, &new).unwrap();
        let all = fib.dump(&DumpFilter::all()).unwrap();
        assert_eq!(all, vec![new.clone()]);
        // An invalid new route leaves the old one in place.
        let bad = KernelRoute {
            gateway: Some(ip("fe80::1")),
            oif: None,
            ..new.clone()
        };
        assert!(fib.change(&new, &bad).is_err());
        assert_eq!(fib.dump(&DumpFilter::all()).unwrap(), vec![new]);
    }

    #[test]
    fn apply_and_purge_and_filters() {
        let mut fib = MemoryFib::new();
        let a = KernelRoute::unicast(p("10.1.0.0/16"), Some(ip("10.0.0.2")), Some(2));
        let b = KernelRoute::unreachable(p("2001:db8:1::/48"));
        let c = KernelRoute::unicast(p("10.2.0.0/16"), None, Some(2))
            .with_protocol(3)
            .with_table(100);
        let res = fib.apply(&[
            FibChange::Add(a.clone()),
            FibChange::Add(a.clone()),
            FibChange::Replace(b.clone()),
            FibChange::Add(c.clone()),
            FibChange::Delete(KernelRoute::unreachable(p("10.9.0.0/16"))),
        ]);
        assert!(res[0].is_ok());
        assert!(matches!(res[1], Err(FibError::Exists)));
        assert!(res[2].is_ok() && res[3].is_ok() && res[4].is_ok());
        assert_eq!(fib.dump(&DumpFilter::protocol(42)).unwrap().len(), 2);
        assert_eq!(
            fib.dump(&DumpFilter::all().in_table(100)).unwrap(),
            vec![c.clone()]
        );
        let v6 = fib.dump(&DumpFilter::all().family_ipv4(false)).unwrap();
        assert_eq!(v6.len(), 1);
        assert_eq!(v6[0].kind, RouteKind::Unreachable);
        assert_eq!(fib.purge(42).unwrap(), 2);
        assert_eq!(fib.dump(&DumpFilter::all()).unwrap(), vec![c]);
    }

    #[test]
    fn lookup_longest_prefix_then_metric() {
        let mut fib = MemoryFib::new();
        let wide = KernelRoute::unicast(p("10.0.0.0/8"), None, Some(1));
        let narrow = KernelRoute::unicast(p("10.1.0.0/16"), None, Some(2)).with_metric(10);
        let narrow_better = KernelRoute::unicast(p("10.1.0.0/16"), None, Some(3)).with_metric(5);
        for r in [&wide, &narrow, &narrow_better] {
            fib.add(r).unwrap();
        }
        assert_eq!(
            fib.lookup(TABLE_MAIN, ip("10.1.2.3"), None).unwrap().oif,
            Some(3)
        );
        assert_eq!(
            fib.lookup(TABLE_MAIN, ip("10.2.2.3"), None).unwrap().oif,
            Some(1)
        );
        assert!(fib.lookup(TABLE_MAIN, ip("11.0.0.1"), None).is_none());
        let ss =
            KernelRoute::unicast(p("2001:db8::/32"), None, Some(4)).with_src(p("2001:db8:5::/48"));
        fib.add(&ss).unwrap();
        assert!(fib.lookup(TABLE_MAIN, ip("2001:db8::1"), None).is_none());
        assert_eq!(
            fib.lookup(TABLE_MAIN, ip("2001:db8::1"), Some(ip("2001:db8:5::9")))
                .unwrap()
                .oif,
            Some(4)
        );
    }

    #[test]
    fn marked_rules_are_rules_of_their_own() {
        // `fwmark M lookup T` next to `from ::/0 lookup T` at the same priority: two rules, each
        // added once and deleted on its own, as the kernel keeps them.
        let mut fib = MemoryFib::new();
        let marked = KernelRule::fwmark_v6(0x6261_0001, 6201, 1000, 42);
        let unmarked = KernelRule {
            fwmark: None,
            ..marked
        };
        let other_mark = KernelRule::fwmark_v6(0x6261_0002, 6201, 1000, 42);
        fib.add_rule(&marked).unwrap();
        assert!(matches!(fib.add_rule(&marked), Err(FibError::Exists)));
        fib.add_rule(&unmarked).unwrap();
        fib.add_rule(&other_mark).unwrap();
        assert_eq!(fib.rules().unwrap().len(), 3);
        fib.delete_rule(&marked).unwrap();
        fib.delete_rule(&marked).unwrap();
        let left = fib.rules().unwrap();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&unmarked) && left.contains(&other_mark));
        assert!(left.iter().all(|r| r.fwmark != Some(0x6261_0001)));
    }
}
