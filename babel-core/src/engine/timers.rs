//! The timers: when to call [`Engine::handle_timeout`] next and what runs then.

use super::*;

impl Engine {
    /// The instant at which [`Engine::handle_timeout`] must next be called; `None` if nothing is
    /// scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = min_opt(self.next_neigh_check, self.next_route_check);
        t = min_opt(t, self.next_request_check);
        t = min_opt(t, Some(self.next_source_gc));
        for i in self.interfaces.values().filter(|i| i.up) {
            t = min_opt(t, Some(i.next_hello));
            t = min_opt(t, Some(i.next_update));
            t = min_opt(t, i.flush_at);
            t = min_opt(t, i.next_resend);
        }
        for n in self.neighbours.values() {
            t = min_opt(t, n.next_uhello);
        }
        t
    }

    /// Runs every timer due at `now`: Hellos, periodic and buffered updates, urgent repeats,
    /// missed-Hello detection and neighbour flush, route expiry and refresh, request resends and
    /// source GC.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ifs: Vec<u32> = self
            .interfaces
            .iter()
            .filter(|(_, i)| i.up)
            .map(|(k, _)| *k)
            .collect();
        for ifindex in ifs {
            let Some(i) = self.interfaces.get(&ifindex) else {
                continue;
            };
            let (hello_due, update_due) = (i.next_hello <= now, i.next_update <= now);
            let hello_iv = i.cfg.hello_interval;
            let upd_iv = i.cfg.update_interval;
            if hello_due {
                self.send_hello(now, ifindex);
                let next = now + (hello_iv - self.jitter(hello_iv / 16));
                if let Some(i) = self.interfaces.get_mut(&ifindex) {
                    i.next_hello = next;
                }
            }
            if update_due {
                let next = now + self.roughly(upd_iv);
                if let Some(i) = self.interfaces.get_mut(&ifindex) {
                    i.next_update = next;
                    i.pending_full = true;
                    i.flush_at = Some(now);
                }
            }
            if let Some(i) = self.interfaces.get_mut(&ifindex) {
                let resend = REQUEST_TIMEOUT.min(i.cfg.hello_interval / 2);
                let mut due = Vec::new();
                if i.next_resend.is_some_and(|t| t <= now) {
                    let mut next = None;
                    i.resends.retain(|k, (left, at)| {
                        if *at <= now {
                            due.push(*k);
                            *left = left.saturating_sub(1);
                            *at = now + resend;
                        }
                        if *left > 0 {
                            next = min_opt(next, Some(*at));
                        }
                        *left > 0
                    });
                    i.next_resend = next;
                }
                for k in due {
                    i.pending.insert(k, true);
                    i.flush_at = Some(now);
                }
                if i.flush_at.is_some_and(|t| t <= now) {
                    self.flush_updates(now, ifindex);
                }
            }
        }
        let uh: Vec<u64> = self
            .neighbours
            .values()
            .filter(|n| n.next_uhello.is_some_and(|t| t <= now))
            .map(|n| n.id)
            .collect();
        for id in uh {
            self.send_unicast_hello(now, id);
        }
        if self.next_neigh_check.is_some_and(|t| t <= now) {
            self.check_neighbours(now);
        }
        if self.next_route_check.is_some_and(|t| t <= now) {
            self.expire_routes(now);
        }
        if self.next_request_check.is_some_and(|t| t <= now) {
            self.resend_requests(now);
        }
        if self.next_source_gc <= now {
            self.sources.gc(now);
            self.next_source_gc = now + self.sources.gc_period();
        }
    }
}

pub(super) fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
