//! The record of our routes in the kernel ([`RouteRecord`]): each route stored once, found by
//! its key.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

use crate::{KernelRoute, KernelRouteKey, RouteKind};

/// A route ordered, compared and found by its key ([`KernelRoute::key`]).
#[derive(Clone, Debug)]
struct ByKey(KernelRoute);

impl ByKey {
    /// A route with only `k`'s fields, to look up the route with that key.
    fn probe(k: &KernelRouteKey) -> ByKey {
        ByKey(KernelRoute {
            dst: k.dst,
            src: k.src,
            kind: RouteKind::Unicast,
            gateway: None,
            oif: None,
            metric: k.metric,
            table: k.table,
            protocol: 0,
            pref_src: None,
            onlink: false,
        })
    }
}

impl PartialEq for ByKey {
    fn eq(&self, o: &Self) -> bool {
        self.0.key() == o.0.key()
    }
}

impl Eq for ByKey {}

impl PartialOrd for ByKey {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for ByKey {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.key().cmp(&o.0.key())
    }
}

/// Routes by [`KernelRouteKey`], in key order. A route holds its key's fields, so the record
/// keeps each route once, where a map from key to route would keep every key twice (44 more
/// bytes per route, 4.4 MB with 100,000 routes).
#[derive(Clone, Debug, Default)]
pub struct RouteRecord {
    routes: BTreeSet<ByKey>,
}

impl RouteRecord {
    /// An empty record.
    pub fn new() -> RouteRecord {
        RouteRecord::default()
    }

    /// How many routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether it holds no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route with key `k`.
    pub fn get(&self, k: &KernelRouteKey) -> Option<&KernelRoute> {
        self.routes.get(&ByKey::probe(k)).map(|r| &r.0)
    }

    /// Whether a route has key `k`.
    pub fn contains_key(&self, k: &KernelRouteKey) -> bool {
        self.routes.contains(&ByKey::probe(k))
    }

    /// Records `r`, replacing the route with the same key; returns that route.
    pub fn insert(&mut self, r: KernelRoute) -> Option<KernelRoute> {
        self.routes.replace(ByKey(r)).map(|r| r.0)
    }

    /// Takes the route with key `k` out of the record.
    pub fn remove(&mut self, k: &KernelRouteKey) -> Option<KernelRoute> {
        self.routes.take(&ByKey::probe(k)).map(|r| r.0)
    }

    /// Every route, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &KernelRoute> + '_ {
        self.routes.iter().map(|r| &r.0)
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = KernelRouteKey> + '_ {
        self.iter().map(KernelRoute::key)
    }

    /// The routes after key `after` (all with `None`), in key order.
    pub fn after(&self, after: Option<&KernelRouteKey>) -> impl Iterator<Item = &KernelRoute> + '_ {
        let from = after.map_or(Bound::Unbounded, |k| Bound::Excluded(ByKey::probe(k)));
        self.routes.range((from, Bound::Unbounded)).map(|r| &r.0)
    }

    /// Forgets every route.
    pub fn clear(&mut self) {
        self.routes.clear();
    }

    /// Rebuilds the tree with full nodes: `append` into a one-entry tree streams both in order
    /// into full nodes, freeing the old ones as it goes (see [`crate::Installed`]'s repacking).
    pub(crate) fn repack(&mut self) {
        if let Some(first) = self.routes.pop_first() {
            let mut full = BTreeSet::from([first]);
            full.append(&mut self.routes);
            self.routes = full;
        }
    }
}

impl FromIterator<KernelRoute> for RouteRecord {
    fn from_iter<I: IntoIterator<Item = KernelRoute>>(routes: I) -> RouteRecord {
        let mut r = RouteRecord::new();
        for route in routes {
            r.insert(route);
        }
        r
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn route(dst: &str, metric: u32) -> KernelRoute {
        KernelRoute::unicast(
            dst.parse().unwrap(),
            Some("fe80::1".parse().unwrap()),
            Some(2),
        )
        .with_metric(metric)
    }

    /// Found, replaced and removed by key, in key order, with IPv6 metric 0 the kernel's 1024
    /// as in the key.
    #[test]
    fn routes_are_found_by_their_key() {
        let mut rec = RouteRecord::new();
        let a = route("2001:db8:2::/48", 0);
        let b = route("2001:db8:1::/48", 0);
        assert!(rec.insert(a.clone()).is_none());
        assert!(rec.insert(b.clone()).is_none());
        let mut a2 = a.clone();
        a2.oif = Some(7);
        assert_eq!(rec.insert(a2.clone()), Some(a.clone()));
        assert_eq!(rec.get(&a.key()), Some(&a2));
        assert_eq!(a.key().metric, 1024);
        assert!(rec.contains_key(&route("2001:db8:2::/48", 1024).key()));
        assert!(!rec.contains_key(&route("2001:db8:2::/48", 5).key()));
        assert_eq!(rec.keys().collect::<Vec<_>>(), vec![b.key(), a.key()]);
        assert_eq!(rec.after(Some(&b.key())).collect::<Vec<_>>(), vec![&a2]);
        assert_eq!(rec.after(None).count(), 2);
        assert_eq!(rec.remove(&b.key()), Some(b));
        assert_eq!(rec.len(), 1);
        rec.repack();
        assert_eq!(rec.iter().collect::<Vec<_>>(), vec![&a2]);
    }
}
