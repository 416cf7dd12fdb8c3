//! The source table and feasibility (RFC 8966 §3.5.1, §3.7.3).

use super::*;

impl Engine {
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
        match self.sources.get(&(*key, rid)) {
            None => true,
            Some(s) if now.saturating_since(s.time) > self.cfg.source_gc_time => true,
            Some(s) => {
                let d = seqno_minus(seqno, s.seqno);
                d > 0 || (d == 0 && metric < s.metric)
            }
        }
    }

    /// RFC 8966 §3.7.3: after advertising (seqno, metric) the feasibility distance is updated.
    pub(super) fn update_source(
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
        let gc = self.cfg.source_gc_time;
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
}
