//! Pending seqno requests (RFC 8966 §3.8.2, Appendix B): duplicate suppression, resending (2 s,
//! doubled, 3 times) and satisfaction.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::time::Duration;

use babel_wire::{RouterId, Seqno};

use super::{REQUEST_RESENDS, REQUEST_TIMEOUT, RouteKey};
use crate::time::Instant;

/// A seqno request to send, or to send again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SeqnoAsk {
    pub(super) key: RouteKey,
    pub(super) router_id: RouterId,
    pub(super) seqno: Seqno,
    pub(super) hop_count: u8,
    /// `None`: multicast on every interface; otherwise one neighbour.
    pub(super) target: Option<u64>,
}

#[derive(Clone, Debug)]
struct Pending {
    ask: SeqnoAsk,
    resends_left: u8,
    next_resend: Instant,
    delay: Duration,
    expires: Instant,
}

impl Pending {
    fn deadline(&self) -> Instant {
        if self.resends_left > 0 {
            self.next_resend
        } else {
            self.expires
        }
    }
}

/// What [`RequestTable::insert`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Insert {
    /// Recorded: send it now; the table wants a check at the given time.
    Send(Instant),
    /// An equivalent request is pending (RFC 8966 §3.8.2): nothing to send.
    Duplicate,
    /// The table is full: dropped.
    Full,
}

/// The pending seqno requests, one per destination.
#[derive(Clone, Debug, Default)]
pub(super) struct RequestTable {
    pending: BTreeMap<RouteKey, Pending>,
}

impl RequestTable {
    /// Records a request unless one for the same originator and at least this seqno is pending
    /// to the same neighbour or to all of them (a request for a newer seqno, or one to another
    /// neighbour, replaces it), within `limit` entries. A request we sent to one neighbour does
    /// not make one to another redundant (babeld's `request_redundant` compares interfaces
    /// too): a router that asked a neighbour behind it for a destination's seqno, and then
    /// hears a request for the same seqno from that neighbour, must forward it to its own
    /// successor, or both wait for the first request to expire (30 s).
    pub(super) fn insert(&mut self, now: Instant, ask: SeqnoAsk, limit: usize) -> Insert {
        let full = self.pending.len() >= limit;
        let delay = REQUEST_TIMEOUT;
        let new = Pending {
            ask,
            resends_left: REQUEST_RESENDS,
            next_resend: now + delay,
            delay,
            expires: now + delay * (1 + 2 + 4 + 8),
        };
        match self.pending.entry(ask.key) {
            Entry::Occupied(mut e) => {
                let p = e.get();
                if p.ask.router_id == ask.router_id
                    && p.ask.seqno.is_at_least(ask.seqno)
                    && (p.ask.target.is_none() || p.ask.target == ask.target)
                    && now < p.expires
                {
                    return Insert::Duplicate;
                }
                e.insert(new);
            }
            Entry::Vacant(_) if full => return Insert::Full,
            Entry::Vacant(e) => {
                e.insert(new);
            }
        }
        Insert::Send(now + delay)
    }

    /// RFC 8966 §3.8.2: a route from `rid` with at least the requested seqno satisfies the
    /// pending request for `key`, which is forgotten. Returns whether there was one.
    pub(super) fn satisfy(&mut self, key: &RouteKey, rid: RouterId, seqno: Seqno) -> bool {
        match self.pending.entry(*key) {
            Entry::Occupied(e)
                if e.get().ask.router_id == rid && seqno.is_at_least(e.get().ask.seqno) =>
            {
                e.remove();
                true
            }
            _ => false,
        }
    }

    /// Forgets the requests forwarded to a neighbour that is gone.
    pub(super) fn forget_target(&mut self, neigh: u64) {
        self.pending.retain(|_, p| p.ask.target != Some(neigh));
    }

    /// Drops expired requests and returns those to resend now (each resend doubles the delay),
    /// with the time of the next check.
    pub(super) fn due(&mut self, now: Instant) -> (Vec<SeqnoAsk>, Option<Instant>) {
        let mut next: Option<Instant> = None;
        let mut resend = Vec::new();
        self.pending.retain(|_, p| {
            if now >= p.expires {
                return false;
            }
            if p.resends_left > 0 && now >= p.next_resend {
                p.resends_left -= 1;
                p.delay *= 2;
                p.next_resend = now + p.delay;
                resend.push(p.ask);
            }
            let d = p.deadline();
            next = Some(next.map_or(d, |n: Instant| n.min(d)));
            true
        });
        (resend, next)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use babel_wire::Prefix;

    fn ask(prefix: &str, seqno: u16) -> SeqnoAsk {
        SeqnoAsk {
            key: RouteKey::new(prefix.parse::<Prefix>().unwrap_or_else(|e| panic!("{e}"))),
            router_id: RouterId([0, 0, 0, 0, 0, 0, 0, 7]),
            seqno: Seqno(seqno),
            hop_count: 127,
            target: None,
        }
    }

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn duplicates_suppressed_newer_seqno_replaces() {
        let mut t = RequestTable::default();
        assert_eq!(
            t.insert(at(0), ask("2001:db8::/64", 5), 10),
            Insert::Send(at(2000))
        );
        assert_eq!(
            t.insert(at(10), ask("2001:db8::/64", 5), 10),
            Insert::Duplicate
        );
        assert_eq!(
            t.insert(at(10), ask("2001:db8::/64", 4), 10),
            Insert::Duplicate
        );
        assert_eq!(
            t.insert(at(10), ask("2001:db8::/64", 6), 10),
            Insert::Send(at(2010))
        );
        assert_eq!(t.len(), 1);
    }

    /// A request pending to one neighbour does not suppress the same request to another (it
    /// replaces it); a multicast request pending covers every neighbour.
    #[test]
    fn a_request_to_another_neighbour_is_not_a_duplicate() {
        let to = |n: u64| SeqnoAsk {
            target: Some(n),
            ..ask("2001:db8::/64", 5)
        };
        let mut t = RequestTable::default();
        assert_eq!(t.insert(at(0), to(1), 10), Insert::Send(at(2000)));
        assert_eq!(t.insert(at(10), to(1), 10), Insert::Duplicate);
        assert_eq!(t.insert(at(10), to(2), 10), Insert::Send(at(2010)));
        assert_eq!(t.insert(at(20), to(2), 10), Insert::Duplicate);
        assert_eq!(t.len(), 1);
        let mut t = RequestTable::default();
        assert_eq!(
            t.insert(at(0), ask("2001:db8::/64", 5), 10),
            Insert::Send(at(2000))
        );
        assert_eq!(t.insert(at(10), to(2), 10), Insert::Duplicate);
    }

    #[test]
    fn limit_counts_destinations() {
        let mut t = RequestTable::default();
        assert!(matches!(
            t.insert(at(0), ask("2001:db8:1::/48", 1), 1),
            Insert::Send(_)
        ));
        assert_eq!(t.insert(at(0), ask("2001:db8:2::/48", 1), 1), Insert::Full);
        // Replacing the one entry is allowed at the limit.
        assert!(matches!(
            t.insert(at(0), ask("2001:db8:1::/48", 2), 1),
            Insert::Send(_)
        ));
    }

    #[test]
    fn resent_three_times_doubling_then_expired() {
        let mut t = RequestTable::default();
        t.insert(at(0), ask("2001:db8::/64", 5), 10);
        let mut sent = Vec::new();
        let mut now = at(0);
        while let (resend, Some(next)) = t.due(now) {
            if !resend.is_empty() {
                sent.push(now);
            }
            now = next;
        }
        assert_eq!(sent, vec![at(2000), at(6000), at(14000)]);
        assert_eq!((now, t.len()), (at(30000), 0));
    }

    #[test]
    fn satisfied_by_the_originator_with_the_seqno() {
        let mut t = RequestTable::default();
        let a = ask("2001:db8::/64", 5);
        t.insert(at(0), a, 10);
        assert!(!t.satisfy(&a.key, a.router_id, Seqno(4)));
        assert!(!t.satisfy(&a.key, RouterId([1; 8]), Seqno(9)));
        assert!(t.satisfy(&a.key, a.router_id, Seqno(5)));
        assert_eq!(t.len(), 0);
        t.insert(
            at(0),
            SeqnoAsk {
                target: Some(3),
                ..a
            },
            10,
        );
        t.forget_target(3);
        assert_eq!(t.len(), 0);
    }
}
