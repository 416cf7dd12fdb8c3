//! The record of our routes in the kernel ([`RouteRecord`]): a few bytes per route.
//!
//! Our routes differ in their destination; almost everything else is shared by all of them or
//! by many: the table, the source prefix and the metric (the parts of the key besides the
//! destination: one value for installed routes, one for holds), and the next hop, interface,
//! kind, protocol and preferred source (one per neighbour). So the record keeps, per route, its
//! destination and the index of its attributes in a small interned table, grouped by the rest of
//! its key: 22 bytes per route (18-byte [`Prefix`], 4-byte index) in full B-tree nodes, where a
//! set of whole [`KernelRoute`]s took 92 (and 149 with half-empty nodes).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::Bound;

use babel_wire::Prefix;

use crate::{KernelRoute, KernelRouteKey, RouteKind};

/// The part of a key shared by a group of routes: everything but the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    table: u32,
    src: Option<Prefix>,
    /// The effective metric (IPv6 0 is 1024), as in [`KernelRouteKey`].
    metric: u32,
}

impl Group {
    fn of(k: &KernelRouteKey) -> Group {
        Group {
            table: k.table,
            src: k.src,
            metric: k.metric,
        }
    }
}

/// A route's fields besides its key, shared by the routes through one next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Attrs {
    kind: RouteKind,
    gateway: Option<IpAddr>,
    oif: Option<u32>,
    /// The metric as given (an IPv6 route's 0 is kept as 0; the key has 1024).
    metric: u32,
    protocol: u8,
    pref_src: Option<IpAddr>,
    onlink: bool,
}

impl Attrs {
    fn of(r: &KernelRoute) -> Attrs {
        Attrs {
            kind: r.kind,
            gateway: r.gateway,
            oif: r.oif,
            metric: r.metric,
            protocol: r.protocol,
            pref_src: r.pref_src,
            onlink: r.onlink,
        }
    }

    fn route(&self, g: &Group, dst: Prefix) -> KernelRoute {
        KernelRoute {
            dst,
            src: g.src,
            kind: self.kind,
            gateway: self.gateway,
            oif: self.oif,
            metric: self.metric,
            table: g.table,
            protocol: self.protocol,
            pref_src: self.pref_src,
            onlink: self.onlink,
        }
    }
}

/// Interned [`Attrs`], each with the number of routes using it; an index whose count falls to
/// zero is reused.
#[derive(Clone, Debug, Default)]
struct Interned {
    slots: Vec<(Attrs, u32)>,
    index: HashMap<Attrs, u32>,
    free: Vec<u32>,
}

impl Interned {
    /// The index of `a`, counting one more route using it.
    fn acquire(&mut self, a: Attrs) -> u32 {
        if let Some(&i) = self.index.get(&a) {
            if let Some(slot) = self.slots.get_mut(i as usize) {
                slot.1 += 1;
            }
            return i;
        }
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.slots.get_mut(i as usize) {
                    *slot = (a, 1);
                }
                i
            }
            None => {
                // More distinct attributes than u32 indexes would need more routes than memory.
                let i = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push((a, 1));
                i
            }
        };
        self.index.insert(a, i);
        i
    }

    /// One route less uses index `i`.
    fn release(&mut self, i: u32) {
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.1 = slot.1.saturating_sub(1);
            if slot.1 == 0 {
                self.index.remove(&slot.0);
                self.free.push(i);
            }
        }
    }

    fn get(&self, i: u32) -> Option<&Attrs> {
        self.slots.get(i as usize).map(|s| &s.0)
    }

    fn clear(&mut self) {
        *self = Interned::default();
    }
}

/// Our routes by [`KernelRouteKey`]. Routes are visited grouped by table, source prefix and
/// metric, then in destination order (a kernel check resumes after a key with
/// [`RouteRecord::after`]). Routes come out by value, rebuilt from their destination, group
/// and attributes.
#[derive(Clone, Debug, Default)]
pub struct RouteRecord {
    groups: BTreeMap<Group, BTreeMap<Prefix, u32>>,
    attrs: Interned,
    len: usize,
}

impl RouteRecord {
    /// An empty record.
    pub fn new() -> RouteRecord {
        RouteRecord::default()
    }

    /// How many routes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no route.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many distinct sets of attributes (next hop, interface, kind...) the routes share.
    pub fn shared_attributes(&self) -> usize {
        self.attrs.index.len()
    }

    /// The route with key `k`.
    pub fn get(&self, k: &KernelRouteKey) -> Option<KernelRoute> {
        let g = Group::of(k);
        let i = *self.groups.get(&g)?.get(&k.dst)?;
        Some(self.attrs.get(i)?.route(&g, k.dst))
    }

    /// Whether a route has key `k`.
    pub fn contains_key(&self, k: &KernelRouteKey) -> bool {
        self.groups
            .get(&Group::of(k))
            .is_some_and(|m| m.contains_key(&k.dst))
    }

    /// Records `r`, replacing the route with the same key; returns that route.
    pub fn insert(&mut self, r: KernelRoute) -> Option<KernelRoute> {
        let g = Group::of(&r.key());
        let i = self.attrs.acquire(Attrs::of(&r));
        let Some(old) = self.groups.entry(g).or_default().insert(r.dst, i) else {
            self.len += 1;
            return None;
        };
        let before = self.attrs.get(old).map(|a| a.route(&g, r.dst));
        self.attrs.release(old);
        before
    }

    /// Takes the route with key `k` out of the record.
    pub fn remove(&mut self, k: &KernelRouteKey) -> Option<KernelRoute> {
        let g = Group::of(k);
        let m = self.groups.get_mut(&g)?;
        let i = m.remove(&k.dst)?;
        if m.is_empty() {
            self.groups.remove(&g);
        }
        self.len -= 1;
        let r = self.attrs.get(i).map(|a| a.route(&g, k.dst));
        self.attrs.release(i);
        r
    }

    /// Every route, in the record's order.
    pub fn iter(&self) -> impl Iterator<Item = KernelRoute> + '_ {
        self.after(None)
    }

    /// Every key, in the record's order.
    pub fn keys(&self) -> impl Iterator<Item = KernelRouteKey> + '_ {
        self.groups.iter().flat_map(|(g, m)| {
            m.keys().map(move |&dst| KernelRouteKey {
                table: g.table,
                dst,
                src: g.src,
                metric: g.metric,
            })
        })
    }

    /// The routes after key `after` (all with `None`), in the record's order. `after` need
    /// not be in the record.
    pub fn after(&self, after: Option<&KernelRouteKey>) -> impl Iterator<Item = KernelRoute> + '_ {
        let (first, rest) = match after {
            None => (None, self.groups.range::<Group, _>(..)),
            Some(k) => {
                let g = Group::of(k);
                let first = self
                    .groups
                    .get_key_value(&g)
                    .map(|(g, m)| (g, m.range((Bound::Excluded(k.dst), Bound::Unbounded))));
                (
                    first,
                    self.groups.range((Bound::Excluded(g), Bound::Unbounded)),
                )
            }
        };
        let first = first
            .into_iter()
            .flat_map(|(g, dsts)| dsts.map(move |(dst, i)| (g, *dst, *i)));
        let rest = rest.flat_map(|(g, m)| m.iter().map(move |(dst, i)| (g, *dst, *i)));
        first
            .chain(rest)
            .filter_map(|(g, dst, i)| Some(self.attrs.get(i)?.route(g, dst)))
    }

    /// Forgets every route.
    pub fn clear(&mut self) {
        self.groups.clear();
        self.attrs.clear();
        self.len = 0;
    }

    /// Rebuilds the trees with full nodes: `append` into a one-entry tree streams both in
    /// order into full nodes, freeing the old ones as it goes (see [`crate::Installed`]'s
    /// repacking).
    pub(crate) fn repack(&mut self) {
        for m in self.groups.values_mut() {
            if let Some((k, v)) = m.pop_first() {
                let mut full = BTreeMap::from([(k, v)]);
                full.append(m);
                *m = full;
            }
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
        assert_eq!(rec.get(&a.key()), Some(a2.clone()));
        assert_eq!(a.key().metric, 1024);
        assert!(rec.contains_key(&route("2001:db8:2::/48", 1024).key()));
        assert!(!rec.contains_key(&route("2001:db8:2::/48", 5).key()));
        assert_eq!(rec.keys().collect::<Vec<_>>(), vec![b.key(), a.key()]);
        assert_eq!(
            rec.after(Some(&b.key())).collect::<Vec<_>>(),
            vec![a2.clone()]
        );
        assert_eq!(rec.after(None).count(), 2);
        assert_eq!(rec.remove(&b.key()), Some(b));
        assert_eq!(rec.len(), 1);
        rec.repack();
        assert_eq!(rec.iter().collect::<Vec<_>>(), vec![a2]);
    }

    /// Every field comes back as it went in: source-specific routes, v4-via-v6, holds in
    /// another table, preferred source, onlink; routes through one next hop share one set of
    /// attributes, which goes when its last route goes.
    #[test]
    fn every_field_is_kept_and_attributes_are_shared() {
        let mut rec = RouteRecord::new();
        let ss = route("::/0", 0).with_src("2001:db8:aa::/48".parse().unwrap());
        let mut v4v6 = KernelRoute::unicast(
            "192.0.2.0/24".parse().unwrap(),
            Some("fe80::9".parse().unwrap()),
            Some(3),
        )
        .with_metric(7)
        .with_pref_src("198.51.100.1".parse().unwrap());
        v4v6.onlink = true;
        let hold = KernelRoute::unreachable("2001:db8:5::/48".parse().unwrap())
            .with_table(300)
            .with_protocol(44);
        let plain: Vec<KernelRoute> = (0..50)
            .map(|i| route(&format!("2001:db8:1:{i:x}::/64"), 0))
            .collect();
        for r in [&ss, &v4v6, &hold].into_iter().chain(&plain) {
            assert!(rec.insert(r.clone()).is_none());
        }
        assert_eq!(rec.len(), 53);
        for r in [&ss, &v4v6, &hold].into_iter().chain(&plain) {
            assert_eq!(rec.get(&r.key()).as_ref(), Some(r));
        }
        // ss and the plain routes share the next hop; v4v6 and the hold have their own.
        assert_eq!(rec.shared_attributes(), 3);
        // An IPv4 route and an IPv6 route with the same bits are different routes.
        assert!(!rec.contains_key(&route("::/0", 0).key()));
        let mut all: Vec<KernelRoute> = rec.iter().collect();
        all.sort_by_key(KernelRoute::key);
        let mut want: Vec<KernelRoute> = [&ss, &v4v6, &hold]
            .into_iter()
            .chain(&plain)
            .cloned()
            .collect();
        want.sort_by_key(KernelRoute::key);
        assert_eq!(all, want);
        assert_eq!(rec.remove(&hold.key()), Some(hold.clone()));
        assert_eq!(rec.shared_attributes(), 2);
        assert_eq!(rec.get(&hold.key()), None);
        // A resumed walk visits each remaining route once, whichever key it resumes after.
        let keys: Vec<KernelRouteKey> = rec.keys().collect();
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(rec.after(Some(k)).count(), keys.len() - n - 1);
        }
        // A key no longer in the record: table 300 sorts after every route left.
        assert_eq!(rec.after(Some(&hold.key())).count(), 0);
        rec.clear();
        assert!(rec.is_empty() && rec.shared_attributes() == 0);
    }
}
