//! The source table and feasibility (RFC 8966 §3.2.5, §3.5.1, §3.7.3): for each (destination,
//! originator) we advertised, the feasibility distance (seqno, metric) and when it was last used.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::IpAddr;
use std::time::Duration;

use babel_wire::{Metric, Prefix, RouterId, Seqno};

use super::RouteKey;
use crate::packed::{Instant48, Repack};
use crate::time::Instant;

/// One entry's value: 10 bytes (the time in 48 bits keeps it 2-aligned; it was 16, then 12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Source {
    seqno: Seqno,
    metric: Metric,
    time: Instant48,
}

/// A (destination prefix, originator) as 25 bytes: the address, then the length and family in
/// one byte (an IPv6 length, 0-128, as it is; an IPv4 one, 0-32, plus 129), then the router-id.
/// The source table only looks entries up (its order is never seen; [`SourceTable::update_in_order`]
/// takes entries out of this order one by one), so any one-to-one encoding would do; 25 bytes with
/// alignment 1 instead of the 36-byte `RouteKey` and the router-id keep an entry at 35 bytes
/// instead of 60.
///
/// Compared as two big-endian integers and a byte, which is the order of the 25 bytes compared
/// one by one (what a tuple of byte arrays gives, through `memcmp`), in three comparisons: every
/// Update received looks its originator's entry up (issue 18, the tenth pass).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PlainKey {
    addr: [u8; 16],
    length: u8,
    rid: [u8; 8],
}

impl Ord for PlainKey {
    #[inline]
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        u128::from_be_bytes(self.addr)
            .cmp(&u128::from_be_bytes(o.addr))
            .then(self.length.cmp(&o.length))
            .then(u64::from_be_bytes(self.rid).cmp(&u64::from_be_bytes(o.rid)))
    }
}

impl PartialOrd for PlainKey {
    #[inline]
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

fn plain_key(prefix: &Prefix, rid: RouterId) -> PlainKey {
    let (length, addr) = match prefix.addr() {
        IpAddr::V4(a) => (prefix.len().saturating_add(129), u128::from(u32::from(a))),
        IpAddr::V6(a) => (prefix.len(), u128::from(a)),
    };
    PlainKey {
        addr: addr.to_be_bytes(),
        length,
        rid: rid.0,
    }
}

/// The entries of a B-tree keyed by `K`, packed as the dump fills it in order.
#[derive(Clone, Debug)]
struct Sources<K> {
    map: BTreeMap<K, Source>,
    /// Entries added since `map` was last packed (re-advertising a dump adds them in order).
    repack: Repack,
}

impl<K: Ord> Sources<K> {
    fn new() -> Sources<K> {
        Sources {
            map: BTreeMap::new(),
            repack: Repack::default(),
        }
    }

    /// The entry for `k`, created with (seqno, metric, now) if there was none.
    fn entry(&mut self, k: K, now: Instant, seqno: Seqno, metric: Metric) -> &mut Source {
        self.repack.maybe(&mut self.map);
        match self.map.entry(k) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.repack.inserted();
                e.insert(Source {
                    seqno,
                    metric,
                    time: Instant48::new(now),
                })
            }
        }
    }

    fn gc(&mut self, now: Instant, gc: Duration) {
        self.map
            .retain(|_, s| now.saturating_since(s.time.get()) <= gc);
    }
}

impl Source {
    /// RFC 8966 §3.7.3: we advertised (seqno, metric) at `now`; the entry keeps the better
    /// distance, or takes this one if it was stale for `gc`.
    fn advertised(&mut self, now: Instant, gc: Duration, seqno: Seqno, metric: Metric) {
        if now.saturating_since(self.time.get()) > gc
            || seqno.is_newer_than(self.seqno)
            || (seqno == self.seqno && metric < self.metric)
        {
            self.seqno = seqno;
            self.metric = metric;
        }
        self.time = Instant48::new(now);
    }
}

/// The source table. An entry unused for `gc_time` (babeld `SOURCE_GC_TIME`) no longer
/// constrains feasibility and is collected by [`SourceTable::gc`]. Entries for destinations
/// without a source prefix (nearly all) have a compact key; source-specific ones (RFC 9079)
/// keep the whole `RouteKey`.
#[derive(Clone, Debug)]
pub(super) struct SourceTable {
    plain: Sources<PlainKey>,
    specific: Sources<(RouteKey, RouterId)>,
    gc_time: Duration,
}

impl SourceTable {
    pub(super) fn new(gc_time: Duration) -> SourceTable {
        SourceTable {
            plain: Sources::new(),
            specific: Sources::new(),
            gc_time,
        }
    }

    /// The entry for (key, originator), live or not.
    fn get(&self, key: &RouteKey, rid: RouterId) -> Option<&Source> {
        match key.src_prefix {
            None => self.plain.map.get(&plain_key(&key.prefix, rid)),
            Some(_) => self.specific.map.get(&(*key, rid)),
        }
    }

    /// The live entry for (key, originator).
    fn live(&self, now: Instant, key: &RouteKey, rid: RouterId) -> Option<&Source> {
        self.get(key, rid)
            .filter(|s| now.saturating_since(s.time.get()) <= self.gc_time)
    }

    /// RFC 8966 §3.5.1 feasibility: no (live) source entry, a newer seqno, or the same seqno and a
    /// strictly smaller metric. Retractions are always feasible.
    pub(super) fn is_feasible(
        &self,
        now: Instant,
        key: &RouteKey,
        rid: RouterId,
        seqno: Seqno,
        metric: Metric,
    ) -> bool {
        is_feasible_after(self.feasibility_distance(now, key, rid), seqno, metric)
    }

    /// The live feasibility distance (seqno, metric) for (key, originator), if any: what
    /// [`SourceTable::is_feasible`] compares with, for callers that test several routes with
    /// the same originator.
    pub(super) fn feasibility_distance(
        &self,
        now: Instant,
        key: &RouteKey,
        rid: RouterId,
    ) -> Option<(Seqno, Metric)> {
        self.live(now, key, rid).map(|s| (s.seqno, s.metric))
    }

    /// RFC 8966 §3.7.3: after advertising (seqno, metric) the feasibility distance becomes the
    /// better of the two; a stale entry is replaced. Retractions change nothing.
    pub(super) fn update(
        &mut self,
        now: Instant,
        key: RouteKey,
        rid: RouterId,
        seqno: Seqno,
        metric: Metric,
    ) {
        if metric.is_infinite() {
            return;
        }
        let gc = self.gc_time;
        let e = match key.src_prefix {
            None => self
                .plain
                .entry(plain_key(&key.prefix, rid), now, seqno, metric),
            Some(_) => self.specific.entry((key, rid), now, seqno, metric),
        };
        e.advertised(now, gc, seqno, metric);
    }

    /// [`SourceTable::update`] for each (destination, originator) advertised, given in key
    /// order as a periodic dump sends them: one walk of the table instead of a search per entry.
    /// Entries out of order or not in the table yet take [`SourceTable::update`].
    pub(super) fn update_in_order(
        &mut self,
        now: Instant,
        advertised: &[((RouteKey, RouterId), Seqno, Metric)],
    ) {
        let gc = self.gc_time;
        // Only entries with a compact key are walked (source-specific ones are rare).
        let mut rest: Vec<_> = advertised
            .iter()
            .filter(|(k, _, m)| !m.is_infinite() && k.0.src_prefix.is_some())
            .copied()
            .collect();
        let mut wanted = advertised
            .iter()
            .filter(|(k, _, m)| !m.is_infinite() && k.0.src_prefix.is_none())
            .map(|&(k, seqno, metric)| (k, plain_key(&k.0.prefix, k.1), seqno, metric));
        if let Some(first) = wanted.next() {
            let mut entries = self.plain.map.range_mut(first.1..).peekable();
            for (k, pk, seqno, metric) in std::iter::once(first).chain(wanted) {
                while entries.next_if(|(ek, _)| **ek < pk).is_some() {}
                let Some((_, e)) = entries.next_if(|(ek, _)| **ek == pk) else {
                    rest.push((k, seqno, metric));
                    continue;
                };
                e.advertised(now, gc, seqno, metric);
            }
        }
        for ((key, rid), seqno, metric) in rest {
            self.update(now, key, rid, seqno, metric);
        }
    }

    /// RFC 8966 §3.8.2.1: the seqno to ask `rid` for so that its route to `key` becomes
    /// feasible again: one more than our feasibility distance's (or than `seqno`, the route's, when
    /// we have no entry).
    pub(super) fn seqno_to_request(&self, key: &RouteKey, rid: RouterId, seqno: Seqno) -> Seqno {
        self.get(key, rid).map_or(seqno, |s| s.seqno).next()
    }

    /// Forgets the entries unused for the GC time.
    pub(super) fn gc(&mut self, now: Instant) {
        self.plain.gc(now, self.gc_time);
        self.specific.gc(now, self.gc_time);
    }

    /// How often [`SourceTable::gc`] runs (a quarter of the GC time, as before).
    pub(super) fn gc_period(&self) -> Duration {
        self.gc_time / 4
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.plain.map.len() + self.specific.map.len()
    }
}

/// RFC 8966 §3.5.1 feasibility of (seqno, metric) against a feasibility distance (`None`: no
/// live source entry).
pub(super) fn is_feasible_after(
    distance: Option<(Seqno, Metric)>,
    seqno: Seqno,
    metric: Metric,
) -> bool {
    metric.is_infinite()
        || distance.is_none_or(|(fd_seqno, fd_metric)| {
            seqno.is_newer_than(fd_seqno) || (seqno == fd_seqno && metric < fd_metric)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use babel_wire::{INFINITY, Prefix};

    const RID: RouterId = RouterId([0, 0, 0, 0, 0, 0, 0, 7]);

    fn key() -> RouteKey {
        RouteKey::new(
            "2001:db8::/64"
                .parse::<Prefix>()
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn at(s: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(s)
    }

    #[test]
    fn feasible_without_entry_and_for_retractions() {
        let mut t = SourceTable::new(Duration::from_secs(200));
        assert!(t.is_feasible(at(0), &key(), RID, Seqno(5), Metric(300)));
        t.update(at(0), key(), RID, Seqno(5), Metric(300));
        assert!(t.is_feasible(at(0), &key(), RID, Seqno(1), Metric(INFINITY)));
        // A retraction does not create or move the distance.
        t.update(at(0), key(), RID, Seqno(9), Metric(INFINITY));
        assert!(!t.is_feasible(at(0), &key(), RID, Seqno(5), Metric(300)));
    }

    #[test]
    fn newer_seqno_or_strictly_smaller_metric() {
        let mut t = SourceTable::new(Duration::from_secs(200));
        t.update(at(0), key(), RID, Seqno(5), Metric(300));
        assert!(!t.is_feasible(at(1), &key(), RID, Seqno(5), Metric(300)));
        assert!(t.is_feasible(at(1), &key(), RID, Seqno(5), Metric(299)));
        assert!(t.is_feasible(at(1), &key(), RID, Seqno(6), Metric(5000)));
        assert!(!t.is_feasible(at(1), &key(), RID, Seqno(4), Metric(1)));
        // Modular (RFC 8966 §3.2.1): 65535 is older than 5, 0 newer than 65535.
        t.update(at(1), key(), RID, Seqno(u16::MAX), Metric(1));
        assert!(
            !t.is_feasible(at(1), &key(), RID, Seqno(5), Metric(300)),
            "65535 < 5"
        );
        let other = RouterId([1; 8]);
        assert!(
            t.is_feasible(at(1), &key(), other, Seqno(0), Metric(1000)),
            "another originator"
        );
        t.update(at(1), key(), other, Seqno(u16::MAX), Metric(300));
        assert!(t.is_feasible(at(1), &key(), other, Seqno(0), Metric(1000)));
    }

    #[test]
    fn the_distance_only_improves_while_live() {
        let mut t = SourceTable::new(Duration::from_secs(200));
        t.update(at(0), key(), RID, Seqno(5), Metric(300));
        t.update(at(1), key(), RID, Seqno(5), Metric(400));
        assert!(
            !t.is_feasible(at(1), &key(), RID, Seqno(5), Metric(350)),
            "worse metric kept"
        );
        t.update(at(2), key(), RID, Seqno(4), Metric(100));
        assert!(
            !t.is_feasible(at(2), &key(), RID, Seqno(5), Metric(300)),
            "older seqno kept"
        );
        assert_eq!(t.seqno_to_request(&key(), RID, Seqno(1)), Seqno(6));
        assert_eq!(
            t.seqno_to_request(&key(), RouterId([1; 8]), Seqno(1)),
            Seqno(2)
        );
    }

    /// Distinct destinations never share an entry: IPv4 and IPv4-mapped IPv6, lengths, and a
    /// source-specific key beside the plain one (issue 18's compact keys).
    #[test]
    fn compact_keys_keep_destinations_apart() {
        let keys: Vec<RouteKey> = [
            "10.0.0.0/8",
            "10.0.0.0/9",
            "::ffff:10.0.0.0/104",
            "::/0",
            "0.0.0.0/0",
            "10.0.0.0/32",
            "::a00:0/128",
            "::a00:0/32",
        ]
        .iter()
        .map(|p| RouteKey::new(p.parse::<Prefix>().unwrap_or_else(|e| panic!("{e}"))))
        .chain(std::iter::once(RouteKey {
            src_prefix: Some("2001:db8::/32".parse().unwrap_or_else(|e| panic!("{e}"))),
            ..key()
        }))
        .chain(std::iter::once(key()))
        .collect();
        let mut t = SourceTable::new(Duration::from_secs(200));
        for (i, k) in keys.iter().enumerate() {
            t.update(at(0), *k, RID, Seqno(i as u16), Metric(100));
        }
        assert_eq!(t.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                t.feasibility_distance(at(1), k, RID),
                Some((Seqno(i as u16), Metric(100)))
            );
        }
        assert_eq!(std::mem::size_of::<Source>(), 10);
        assert_eq!(std::mem::size_of::<PlainKey>(), 25);
    }

    /// The compact key sorts as its 25 bytes compared one by one (the order the table had with
    /// a tuple of byte arrays): keys that differ in the first, a middle or the last byte of the
    /// address, in the length byte or only in the router-id.
    #[test]
    fn plain_keys_sort_as_their_bytes() {
        let bytes = |k: &PlainKey| {
            let mut b = k.addr.to_vec();
            b.push(k.length);
            b.extend_from_slice(&k.rid);
            b
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut keys = Vec::new();
        for _ in 0..400 {
            let r = next();
            let mut addr = [0u8; 16];
            // Few distinct values per byte, so that long common prefixes happen.
            for (i, a) in addr.iter_mut().enumerate() {
                *a = ((r >> (i % 8 * 8)) & 0x81) as u8;
            }
            let rid = (next() & 0x8000_0000_0000_0181).to_be_bytes();
            keys.push(PlainKey {
                addr,
                length: [0, 64, 128, 129, 161]
                    .get((r % 5) as usize)
                    .copied()
                    .unwrap_or(0),
                rid,
            });
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(a.cmp(b), bytes(a).cmp(&bytes(b)), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn stale_entries_stop_counting_and_are_collected() {
        let mut t = SourceTable::new(Duration::from_secs(200));
        t.update(at(0), key(), RID, Seqno(5), Metric(300));
        assert!(!t.is_feasible(at(200), &key(), RID, Seqno(5), Metric(300)));
        assert!(t.is_feasible(at(201), &key(), RID, Seqno(5), Metric(300)));
        // A stale entry is replaced, even by a worse distance.
        t.update(at(201), key(), RID, Seqno(5), Metric(400));
        assert!(!t.is_feasible(at(202), &key(), RID, Seqno(5), Metric(400)));
        t.gc(at(401));
        assert_eq!(t.len(), 1);
        t.gc(at(402));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn updates_in_order_are_updates_one_by_one() {
        let k = |i: u16| {
            RouteKey::new(Prefix::host(std::net::IpAddr::V6(std::net::Ipv6Addr::new(
                0xfd00, 0, 0, 0, 0, 0, 0, i,
            ))))
        };
        let gc = Duration::from_secs(200);
        let mut one = SourceTable::new(gc);
        for i in (0..40).step_by(3) {
            one.update(at(0), k(i), RID, Seqno(5), Metric(300));
        }
        one.update(at(0), k(7), RID, Seqno(5), Metric(300));
        let mut batch = one.clone();
        // Present and absent keys, a retraction, a stale entry (k(7) at 250 s), a key out of order.
        let adv: Vec<_> = (0..40)
            .map(|i| ((k(i), RID), Seqno(5 + i % 2), Metric(200 + 50 * (i % 5))))
            .chain([((k(2), RID), Seqno(9), Metric(INFINITY))])
            .chain([((k(1), RID), Seqno(4), Metric(1))])
            .collect();
        for (now, adv) in [
            (at(10), &adv[..]),
            (at(250), adv.get(7..8).unwrap_or_default()),
        ] {
            for &((key, rid), seqno, metric) in adv {
                one.update(now, key, rid, seqno, metric);
            }
            batch.update_in_order(now, adv);
            let entries = |t: &SourceTable| {
                let plain: Vec<_> = t.plain.map.iter().map(|(k, s)| (*k, *s)).collect();
                let specific: Vec<_> = t.specific.map.iter().map(|(k, s)| (*k, *s)).collect();
                (plain, specific)
            };
            assert_eq!(entries(&one), entries(&batch));
        }
        assert_eq!(one.len(), 40);
    }
}
