//! The source table and feasibility (RFC 8966 §3.2.5, §3.5.1, §3.7.3): for each (destination,
//! originator) we advertised, the feasibility distance (seqno, metric) and when it was last used.

use std::collections::BTreeMap;
use std::time::Duration;

use babel_wire::{INFINITY, RouterId};

use super::RouteKey;
use crate::neighbour::seqno_minus;
use crate::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Source {
    seqno: u16,
    metric: u16,
    time: Instant,
}

/// The source table. An entry unused for `gc_time` (babeld `SOURCE_GC_TIME`) no longer
/// constrains feasibility and is collected by [`SourceTable::gc`].
#[derive(Clone, Debug)]
pub(super) struct SourceTable {
    sources: BTreeMap<(RouteKey, RouterId), Source>,
    gc_time: Duration,
}

impl SourceTable {
    pub(super) fn new(gc_time: Duration) -> SourceTable {
        SourceTable {
            sources: BTreeMap::new(),
            gc_time,
        }
    }

    /// The live entry for (key, originator).
    fn live(&self, now: Instant, key: &RouteKey, rid: RouterId) -> Option<&Source> {
        self.sources
            .get(&(*key, rid))
            .filter(|s| now.saturating_since(s.time) <= self.gc_time)
    }

    /// RFC 8966 §3.5.1 feasibility: no (live) source entry, a newer seqno, or the same seqno and a
    /// strictly smaller metric. Retractions are always feasible.
    pub(super) fn is_feasible(
        &self,
        now: Instant,
        key: &RouteKey,
        rid: RouterId,
        seqno: u16,
        metric: u16,
    ) -> bool {
        if metric == INFINITY {
            return true;
        }
        self.live(now, key, rid).is_none_or(|s| {
            let d = seqno_minus(seqno, s.seqno);
            d > 0 || (d == 0 && metric < s.metric)
        })
    }

    /// RFC 8966 §3.7.3: after advertising (seqno, metric) the feasibility distance becomes the
    /// better of the two; a stale entry is replaced. Retractions change nothing.
    pub(super) fn update(
        &mut self,
        now: Instant,
        key: RouteKey,
        rid: RouterId,
        seqno: u16,
        metric: u16,
    ) {
        if metric == INFINITY {
            return;
        }
        let gc = self.gc_time;
        let e = self.sources.entry((key, rid)).or_insert(Source {
            seqno,
            metric,
            time: now,
        });
        let d = seqno_minus(seqno, e.seqno);
        if now.saturating_since(e.time) > gc || d > 0 || (d == 0 && metric < e.metric) {
            e.seqno = seqno;
            e.metric = metric;
        }
        e.time = now;
    }

    /// RFC 8966 §3.8.2.1: the seqno to ask `rid` for so that its route to `key` becomes
    /// feasible again: one more than our feasibility distance's (or than `seqno`, the route's, when
    /// we have no entry).
    pub(super) fn seqno_to_request(&self, key: &RouteKey, rid: RouterId, seqno: u16) -> u16 {
        self.sources
            .get(&(*key, rid))
            .map_or(seqno, |s| s.seqno)
            .wrapping_add(1)
    }

    /// Forgets the entries unused for the GC time.
    pub(super) fn gc(&mut self, now: Instant) {
        let gc = self.gc_time;
        self.sources
            .retain(|_, s| now.saturating_since(s.time) <= gc);
    }

    /// How often [`SourceTable::gc`] runs (a quarter of the GC time, as before).
    pub(super) fn gc_period(&self) -> Duration {
        self.gc_time / 4
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use babel_wire::Prefix;

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
        assert!(t.is_feasible(at(0), &key(), RID, 5, 300));
        t.update(at(0), key(), RID, 5, 300);
        assert!(t.is_feasible(at(0), &key(), RID, 1, INFINITY));
        // A retraction does not create or move the distance.
        t.update(at(0), key(), RID, 9, INFINITY);
        assert!(!t.is_feasible(at(0), &key(), RID, 5, 300));
    }

    #[test]
    fn newer_seqno_or_strictly_smaller_metric() {
        let mut t = SourceTable::new(Duration::from_secs(200));
        t.update(at(0), key(), RID, 5, 300);
        assert!(!t.is_feasible(at(1), &key(), RID, 5, 300));
        assert!(t.is_feasible(at(1), &key(), RID, 5, 299));
        assert!(t.is_feasible(at(1), &key(), RID, 6, 5000));
        assert!(!t.is_feasible(at(1), &key(), RID, 4, 1));
        // Modular (RFC 8966 §3.2.1): 65535 is older than 5, 0 newer than 65535.
        t.update(at(1), key(), RID, u16::MAX, 1);
        assert!(!t.is_feasible(at(1), &key(), RID, 5, 300), "65535 < 5");
        let other = RouterId([1; 8]);
        assert!(
            t.is_feasible(at(1), &key(), other, 0, 1000),
            "another originator"
        );
        t.update(at(1), key(), other, u16::MAX, 300);
        assert!(t.is_feasible(at(1), &key(), other, 0, 1000));
    }

    #[test]
    fn the_distance_only_improves_while_live() {
        let mut t = SourceTable::new(Duration::from_secs(200));
        t.update(at(0), key(), RID, 5, 300);
        t.update(at(1), key(), RID, 5, 400);
        assert!(
            !t.is_feasible(at(1), &key(), RID, 5, 350),
            "worse metric kept"
        );
        t.update(at(2), key(), RID, 4, 100);
        assert!(
            !t.is_feasible(at(2), &key(), RID, 5, 300),
            "older seqno kept"
        );
        assert_eq!(t.seqno_to_request(&key(), RID, 1), 6);
        assert_eq!(t.seqno_to_request(&key(), RouterId([1; 8]), 1), 2);
    }

    #[test]
    fn stale_entries_stop_counting_and_are_collected() {
        let mut t = SourceTable::new(Duration::from_secs(200));
        t.update(at(0), key(), RID, 5, 300);
        assert!(!t.is_feasible(at(200), &key(), RID, 5, 300));
        assert!(t.is_feasible(at(201), &key(), RID, 5, 300));
        // A stale entry is replaced, even by a worse distance.
        t.update(at(201), key(), RID, 5, 400);
        assert!(!t.is_feasible(at(202), &key(), RID, 5, 400));
        t.gc(at(401));
        assert_eq!(t.len(), 1);
        t.gc(at(402));
        assert_eq!(t.len(), 0);
    }
}
