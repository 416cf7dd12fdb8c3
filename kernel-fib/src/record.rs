//! The record of our routes in the kernel ([`RouteRecord`]): a few bytes per route.
//!
//! Our routes differ in their destination; almost everything else is shared by all of them or
//! by many: the table, the source prefix and the metric (the parts of the key besides the
//! destination: one value for installed routes, one for holds), and the next hop, interface,
//! kind, protocol and preferred source (one per neighbour). So the record keeps, per route, its
//! destination and the index of its attributes in a small interned table, grouped by the rest of
//! its key.
//!
//! The destinations of a group are kept in order in blocks of at most [`BLOCK`] routes, each
//! block a byte string front-coded against the route before it: the number of leading bytes of
//! the destination's 18-byte key it shares with the previous one, the bytes that differ, and the
//! attributes' index (LEB128). A full table's neighbouring destinations share most of their
//! bytes: 100,000 IPv6 /128s take about 5 bytes a route (blocks and the tree over them
//! included), where a B-tree of 18-byte [`Prefix`]es and 4-byte indexes took 22 (and a set of
//! whole [`KernelRoute`]s 92). A look-up decodes one block (at most [`BLOCK`] entries); a change
//! re-encodes it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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

/// Routes a block holds at most.
pub const BLOCK: usize = 64;

/// Bytes of a destination's key: the family (0 IPv4, 1 IPv6), 16 bytes of address (an IPv4
/// address left-aligned, zeros after), the length. Keys compare as [`Prefix`]es do.
const KEY: usize = 18;

/// A destination as the blocks store it.
type Key = [u8; KEY];

fn key_of(p: &Prefix) -> Key {
    let mut k = [0u8; KEY];
    let (family, addr) = match p.addr() {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (0, b)
        }
        IpAddr::V6(a) => (1, a.octets()),
    };
    k[0] = family;
    k[1..17].copy_from_slice(&addr);
    k[17] = p.len();
    k
}

/// The destination of a key made by [`key_of`].
fn prefix_of(k: &Key) -> Option<Prefix> {
    let mut a = [0u8; 16];
    a.copy_from_slice(&k[1..17]);
    let addr = if k[0] == 0 {
        IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(a))
    };
    Prefix::new(addr, k[17]).ok()
}

/// The entries of a block, decoded in order.
#[derive(Clone)]
struct Entries<'a> {
    bytes: &'a [u8],
    key: Key,
}

impl<'a> Entries<'a> {
    /// The entries of the block whose first key is `first`.
    fn new(first: &Key, bytes: &'a [u8]) -> Entries<'a> {
        Entries { bytes, key: *first }
    }
}

impl Iterator for Entries<'_> {
    type Item = (Key, u32);

    fn next(&mut self) -> Option<(Key, u32)> {
        let (&shared, rest) = self.bytes.split_first()?;
        let shared = usize::from(shared).min(KEY);
        let (suffix, mut rest) = rest.split_at_checked(KEY - shared)?;
        self.key.get_mut(shared..)?.copy_from_slice(suffix);
        let mut attr = 0u32;
        let mut shift = 0;
        loop {
            let (&b, r) = rest.split_first()?;
            rest = r;
            attr |= u32::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        self.bytes = rest;
        Some((self.key, attr))
    }
}

/// Writes `entries` (in key order) as a block into `out`, keeping `out`'s allocation when it
/// is large enough and growing it by an eighth more than needed when not, so that a block
/// filled a route at a time is reallocated now and then, not at each route.
fn encode(entries: &[(Key, u32)], out: &mut Vec<u8>) {
    debug_assert!(entries.len() <= BLOCK);
    let mut bytes = [0u8; BLOCK * (1 + KEY + 5)];
    let mut n = 0;
    let mut prev = entries.first().map_or([0u8; KEY], |e| e.0);
    for (k, a) in entries {
        let shared = prev.iter().zip(k).take_while(|(x, y)| x == y).count();
        let mut put = |b: u8| {
            if let Some(slot) = bytes.get_mut(n) {
                *slot = b;
                n += 1;
            }
        };
        put(u8::try_from(shared).unwrap_or(0));
        for &b in k.get(shared..).unwrap_or(&[]) {
            put(b);
        }
        let mut a = *a;
        while a >= 0x80 {
            put((a & 0x7f) as u8 | 0x80);
            a >>= 7;
        }
        put(a as u8);
        prev = *k;
    }
    let bytes = bytes.get(..n).unwrap_or(&[]);
    out.clear();
    if out.capacity() < n {
        out.reserve_exact(n + n / 8);
    }
    out.extend_from_slice(bytes);
}

/// The destinations of a group, in blocks by their first key.
#[derive(Clone, Debug, Default)]
struct Blocks {
    blocks: BTreeMap<Key, Vec<u8>>,
    /// Routes in all the blocks.
    len: usize,
}

impl Blocks {
    /// The block that holds `k` if any does: the last whose first key is at most `k`.
    fn holding(&self, k: &Key) -> Option<(&Key, &Vec<u8>)> {
        self.blocks.range(..=*k).next_back()
    }

    fn get(&self, k: &Key) -> Option<u32> {
        let (first, b) = self.holding(k)?;
        Entries::new(first, b)
            .take_while(|(e, _)| e <= k)
            .find(|(e, _)| e == k)
            .map(|(_, a)| a)
    }

    /// Puts `(k, a)` in, returning the index it replaced. `scratch` holds a block decoded.
    fn insert(&mut self, k: Key, a: u32, scratch: &mut Vec<(Key, u32)>) -> Option<u32> {
        // The block that holds `k`, else the first (`k` goes before every key).
        let first = match self.holding(&k).or_else(|| self.blocks.first_key_value()) {
            Some((f, _)) => *f,
            None => {
                let mut b = Vec::new();
                encode(&[(k, a)], &mut b);
                self.blocks.insert(k, b);
                self.len += 1;
                return None;
            }
        };
        let mut bytes = self.blocks.remove(&first).unwrap_or_default();
        scratch.clear();
        scratch.extend(Entries::new(&first, &bytes));
        let (old, at) = match scratch.binary_search_by(|e| e.0.cmp(&k)) {
            Ok(i) => (
                scratch.get_mut(i).map(|e| std::mem::replace(&mut e.1, a)),
                i,
            ),
            Err(i) => {
                scratch.insert(i, (k, a));
                self.len += 1;
                (None, i)
            }
        };
        if scratch.len() > BLOCK {
            // A table learned in order appends at the end: the block stays full and the new
            // one starts with the route that did not fit. Elsewhere the block splits in half.
            let cut = if at + 1 == scratch.len() {
                BLOCK
            } else {
                scratch.len() / 2
            };
            let (left, right) = scratch.split_at(cut);
            let mut rb = Vec::new();
            encode(right, &mut rb);
            encode(left, &mut bytes);
            bytes.shrink_to_fit();
            if let Some((rf, _)) = right.first() {
                self.blocks.insert(*rf, rb);
            }
        } else {
            encode(scratch, &mut bytes);
        }
        let first = scratch.first().map_or(first, |e| e.0);
        self.blocks.insert(first, bytes);
        old
    }

    /// Takes `k` out, returning its index. A block left with fewer than a quarter of
    /// [`BLOCK`] routes is merged with the next one.
    fn remove(&mut self, k: &Key, scratch: &mut Vec<(Key, u32)>) -> Option<u32> {
        let first = *self.holding(k)?.0;
        // Not there: the block stays as it is.
        self.get(k)?;
        let mut bytes = self.blocks.remove(&first).unwrap_or_default();
        scratch.clear();
        scratch.extend(Entries::new(&first, &bytes));
        let i = scratch.binary_search_by(|e| e.0.cmp(k)).ok()?;
        let (_, a) = scratch.remove(i);
        self.len -= 1;
        if scratch.len() < BLOCK / 4 {
            let next = self
                .blocks
                .range((Bound::Excluded(first), Bound::Unbounded))
                .next()
                .map(|(f, _)| *f);
            if let Some(nf) = next
                && let Some(nb) = self.blocks.remove(&nf)
            {
                scratch.extend(Entries::new(&nf, &nb));
            }
        }
        if scratch.len() > BLOCK {
            let (left, right) = scratch.split_at(scratch.len() / 2);
            let mut rb = Vec::new();
            encode(right, &mut rb);
            if let Some((rf, _)) = right.first() {
                self.blocks.insert(*rf, rb);
            }
            encode(left, &mut bytes);
        } else {
            encode(scratch, &mut bytes);
        }
        if bytes.capacity() > 2 * bytes.len() {
            bytes.shrink_to_fit();
        }
        if let Some((f, _)) = scratch.first() {
            self.blocks.insert(*f, bytes);
        }
        Some(a)
    }

    /// Every entry from the block that would hold `from` on (all with `None`).
    fn from(&self, from: Option<Key>) -> impl Iterator<Item = (Key, u32)> + '_ {
        let start = from
            .and_then(|k| self.holding(&k))
            .map(|(f, _)| *f)
            .map_or(Bound::Unbounded, Bound::Included);
        self.blocks
            .range((start, Bound::Unbounded))
            .flat_map(|(f, b)| Entries::new(f, b))
    }

    /// Rebuilds the blocks full (and their tree with full nodes) when a tenth of the blocks or
    /// more could go.
    fn repack(&mut self, scratch: &mut Vec<(Key, u32)>) {
        let full = self.len.div_ceil(BLOCK);
        if self.blocks.len() <= full + full / 10 {
            return;
        }
        let old = std::mem::take(&mut self.blocks);
        let mut blocks = Vec::with_capacity(full);
        scratch.clear();
        for (f, b) in old {
            for e in Entries::new(&f, &b) {
                scratch.push(e);
                if scratch.len() == BLOCK {
                    let mut nb = Vec::new();
                    encode(scratch, &mut nb);
                    nb.shrink_to_fit();
                    blocks.push((scratch.first().map_or(f, |e| e.0), nb));
                    scratch.clear();
                }
            }
        }
        if let Some((f, _)) = scratch.first() {
            let mut nb = Vec::new();
            encode(scratch, &mut nb);
            nb.shrink_to_fit();
            blocks.push((*f, nb));
        }
        // Built from keys in order: full nodes.
        self.blocks = blocks.into_iter().collect();
    }
}

/// Our routes by [`KernelRouteKey`]. Routes are visited grouped by table, source prefix and
/// metric, then in destination order (a kernel check resumes after a key with
/// [`RouteRecord::after`]). Routes come out by value, rebuilt from their destination, group
/// and attributes.
#[derive(Clone, Debug, Default)]
pub struct RouteRecord {
    groups: BTreeMap<Group, Blocks>,
    attrs: Interned,
    len: usize,
    /// A block decoded for a change (kept: a full table changes blocks 100,000 times).
    scratch: Vec<(Key, u32)>,
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
        let i = self.groups.get(&g)?.get(&key_of(&k.dst))?;
        Some(self.attrs.get(i)?.route(&g, k.dst))
    }

    /// Whether a route has key `k`.
    pub fn contains_key(&self, k: &KernelRouteKey) -> bool {
        self.groups
            .get(&Group::of(k))
            .is_some_and(|m| m.get(&key_of(&k.dst)).is_some())
    }

    /// Records `r`, replacing the route with the same key; returns that route.
    pub fn insert(&mut self, r: KernelRoute) -> Option<KernelRoute> {
        let g = Group::of(&r.key());
        let i = self.attrs.acquire(Attrs::of(&r));
        let blocks = self.groups.entry(g).or_default();
        let Some(old) = blocks.insert(key_of(&r.dst), i, &mut self.scratch) else {
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
        let i = m.remove(&key_of(&k.dst), &mut self.scratch)?;
        if m.len == 0 {
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
            m.from(None).filter_map(move |(k, _)| {
                Some(KernelRouteKey {
                    table: g.table,
                    dst: prefix_of(&k)?,
                    src: g.src,
                    metric: g.metric,
                })
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
                let dst = key_of(&k.dst);
                let first = self
                    .groups
                    .get_key_value(&g)
                    .map(move |(g, m)| (g, m.from(Some(dst)).skip_while(move |(e, _)| *e <= dst)));
                (
                    first,
                    self.groups.range((Bound::Excluded(g), Bound::Unbounded)),
                )
            }
        };
        let first = first
            .into_iter()
            .flat_map(|(g, dsts)| dsts.map(move |(dst, i)| (g, dst, i)));
        let rest = rest.flat_map(|(g, m)| m.from(None).map(move |(dst, i)| (g, dst, i)));
        first
            .chain(rest)
            .filter_map(|(g, dst, i)| Some(self.attrs.get(i)?.route(g, prefix_of(&dst)?)))
    }

    /// Forgets every route.
    pub fn clear(&mut self) {
        self.groups.clear();
        self.attrs.clear();
        self.len = 0;
        self.scratch = Vec::new();
    }

    /// Rebuilds sparse blocks full (routes removed, or inserted out of order, leave them part
    /// empty): see [`crate::Installed`]'s repacking.
    pub(crate) fn repack(&mut self) {
        for m in self.groups.values_mut() {
            m.repack(&mut self.scratch);
        }
    }

    /// Blocks and the bytes their entries take (for the size tests and benchmarks).
    #[doc(hidden)]
    pub fn footprint(&self) -> (usize, usize) {
        self.groups.values().fold((0, 0), |(n, b), m| {
            (
                n + m.blocks.len(),
                b + m.blocks.values().map(Vec::capacity).sum::<usize>(),
            )
        })
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

    /// A model check: routes of both families, several groups and next hops, inserted,
    /// replaced and removed in a scrambled order (blocks split, merge and change their first
    /// key), against a `BTreeMap` of whole routes; every look-up, walk and resumed walk agrees.
    #[test]
    fn blocks_agree_with_a_map_of_whole_routes() {
        let mut rec = RouteRecord::new();
        let mut model: BTreeMap<KernelRouteKey, KernelRoute> = BTreeMap::new();
        let dst = |i: u32| -> Prefix {
            match i % 3 {
                0 => format!("10.{}.{}.0/24", (i >> 8) & 0xff, i & 0xff),
                1 => format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff),
                _ => format!("2001:db8::{:x}:{:x}/128", i >> 16, i & 0xffff),
            }
            .parse()
            .unwrap()
        };
        let make = |i: u32, hop: u32| {
            let gw: IpAddr = if i.is_multiple_of(3) {
                format!("192.0.2.{}", hop + 1).parse().unwrap()
            } else {
                format!("fe80::{}", hop + 1).parse().unwrap()
            };
            let r = KernelRoute::unicast(dst(i), Some(gw), Some(2 + hop)).with_metric(i % 2);
            if i.is_multiple_of(7) {
                KernelRoute::unreachable(dst(i)).with_table(300)
            } else {
                r
            }
        };
        // A scrambled order that visits 0..n once (n prime, step coprime).
        let n = 4999u32;
        let order = |step: u32| (0..n).map(move |j| (j * step) % n);
        for i in order(1237) {
            let r = make(i, i % 5);
            assert_eq!(rec.insert(r.clone()), model.insert(r.key(), r));
        }
        for i in order(2) {
            let r = make(i, (i + 1) % 5);
            assert_eq!(rec.insert(r.clone()), model.insert(r.key(), r));
        }
        for i in order(911).filter(|i| !i.is_multiple_of(4)) {
            let k = make(i, 0).key();
            assert_eq!(rec.remove(&k), model.remove(&k));
            assert_eq!(rec.remove(&k), None);
        }
        assert_eq!(rec.len(), model.len());
        let walk: Vec<KernelRoute> = rec.iter().collect();
        let want: Vec<KernelRoute> = model.values().cloned().collect();
        assert_eq!(walk, want);
        for (i, k) in model.keys().enumerate().step_by(97) {
            assert_eq!(rec.after(Some(k)).count(), model.len() - i - 1);
            assert_eq!(rec.get(k).as_ref(), model.get(k));
        }
        rec.repack();
        assert_eq!(rec.iter().collect::<Vec<_>>(), want);
        let (blocks, _) = rec.footprint();
        assert!(blocks <= model.len().div_ceil(BLOCK) + 4, "{blocks} blocks");
        for k in model.keys() {
            assert!(rec.remove(k).is_some());
        }
        assert!(rec.is_empty() && rec.footprint() == (0, 0));
    }

    /// 100,000 IPv6 /128s learned in order through one next hop, as in the full-table
    /// benchmark: the blocks take at most 6 bytes a route (22 before, as a B-tree of `Prefix`
    /// and index).
    #[test]
    fn a_full_table_takes_a_few_bytes_a_route() {
        let mut rec: RouteRecord = (0..100_000u32)
            .map(|i| {
                let a = std::net::Ipv6Addr::from(
                    0x2001_0db8_0000_0000_0000_0000_0001_0000u128 + u128::from(i),
                );
                KernelRoute::unicast(
                    Prefix::host(IpAddr::V6(a)),
                    Some("fe80::1".parse().unwrap()),
                    Some(2),
                )
            })
            .collect();
        rec.repack();
        let (blocks, bytes) = rec.footprint();
        // Each block also costs its entry in the tree (18-byte key, 24-byte Vec) and its
        // allocation's header.
        let total = bytes + blocks * (KEY + 24 + 16);
        println!(
            "{bytes} bytes in {blocks} blocks, {total} with their tree: {:.1} B a route",
            total as f64 / 1e5
        );
        assert!(total <= 6 * 100_000, "{total} bytes in {blocks} blocks");
        assert_eq!(rec.len(), 100_000);
    }
}
