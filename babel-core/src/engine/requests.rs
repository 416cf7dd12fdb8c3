//! Route and seqno requests (RFC 8966 §3.8): answering, forwarding, sending and resending.

use super::*;

impl Engine {
    /// RFC 8966 §3.8.1.1: a wildcard request gets a full dump (at most one per Hello interval,
    /// as babeld), a specific one an update or a retraction.
    pub(super) fn handle_route_request(&mut self, now: Instant, ifindex: u32, r: &RouteRequest) {
        self.counters.route_requests_received += 1;
        match r.prefix {
            None => {
                if r.src_prefix.is_some() {
                    self.counters.rfc_violations += 1;
                    return;
                }
                let j = self.jitter(URGENT_TIMEOUT);
                if let Some(i) = self.interfaces.get_mut(&ifindex) {
                    // babeld sends at most one full dump per Hello interval; a request that
                    // comes sooner is served when that interval is over (babeld drops it).
                    let min_gap = i.cfg.hello_interval.max(Duration::from_secs(1));
                    let at = match i.last_full {
                        Some(t) if now.saturating_since(t) < min_gap => t + min_gap + j,
                        _ => now + j,
                    };
                    i.pending_full = true;
                    self.timers
                        .set_earlier(Timer::Interface(ifindex, IfTimer::Flush), at);
                }
            }
            Some(prefix) => {
                let key = RouteKey {
                    prefix,
                    src_prefix: r.src_prefix,
                };
                self.schedule_update(now, Some(ifindex), key, false);
            }
        }
    }

    /// RFC 8966 §3.8.1.2: a seqno request for our own prefix bumps our seqno (babeld ignores
    /// requests more than 100 ahead); one we can satisfy is answered with an urgent update; otherwise
    /// it is forwarded with the hop count decremented to our successor or, when that is the
    /// requester, to the next hop of our best other route; never back to the requester.
    pub(super) fn handle_seqno_request(
        &mut self,
        now: Instant,
        nid: u64,
        ifindex: u32,
        s: &SeqnoRequest,
    ) {
        self.counters.seqno_requests_received += 1;
        if s.hop_count == 0 || !s.router_id.is_valid() {
            self.counters.rfc_violations += 1;
            return;
        }
        let key = RouteKey {
            prefix: s.prefix,
            src_prefix: s.src_prefix,
        };
        if self.xroutes.contains_key(&key) {
            if s.router_id == self.cfg.router_id {
                let d = Seqno(s.seqno).minus(Seqno(self.seqno));
                if d > MAX_SEQNO_JUMP {
                    debug!(prefix = %s.prefix, "ignoring seqno request too far ahead");
                    return;
                }
                if d > 0 {
                    self.set_seqno(s.seqno);
                }
            }
            self.schedule_update(now, None, key, true);
            return;
        }
        let dest = self.routes.get(&key);
        if let Some((_, inst)) = dest.and_then(Dest::installed)
            && (self.routes.installed_router_id(&inst) != s.router_id
                || inst.seqno.is_at_least(Seqno(s.seqno)))
        {
            self.schedule_update(now, Some(ifindex), key, true);
            return;
        }
        if s.hop_count < 2 {
            return;
        }
        // The successor; when that is the requester itself (it lost the route through us) or
        // nothing is installed, the next hop of our best other route, feasible or not (§3.8.1.2;
        // babeld does the same): dropping the request would leave the requester waiting for
        // its resend.
        let Some(dest) = dest else {
            return;
        };
        let Some(succ) = dest.installed_neigh().filter(|&id| id != nid).or_else(|| {
            dest.routes()
                .iter()
                .filter(|r| r.neigh() != nid)
                .map(|r| (r.neigh(), self.route_metric(r)))
                .filter(|&(_, m)| m < INFINITY)
                .min_by_key(|&(_, m)| m)
                .map(|(id, _)| id)
        }) else {
            return;
        };
        self.counters.seqno_requests_forwarded += 1;
        self.request_seqno(
            now,
            key,
            s.router_id,
            Seqno(s.seqno),
            s.hop_count - 1,
            Some(succ),
        );
    }

    /// Sends a seqno request unless an equivalent one is pending (RFC 8966 §3.8.2 duplicate
    /// suppression), and records it for resending (2 s, doubled, 3 resends).
    pub(super) fn request_seqno(
        &mut self,
        now: Instant,
        key: RouteKey,
        rid: RouterId,
        seqno: Seqno,
        hop_count: u8,
        target: Option<u64>,
    ) {
        let ask = SeqnoAsk {
            key,
            router_id: rid,
            seqno,
            hop_count,
            target,
        };
        match self
            .requests
            .insert(now, ask, self.cfg.limits.max_pending_requests)
        {
            Insert::Send(check) => {
                self.timers.set_earlier(Timer::RequestCheck, check);
            }
            Insert::Duplicate => return,
            Insert::Full => {
                self.counters.requests_over_limit += 1;
                return;
            }
        }
        self.send_seqno_request(ask);
    }

    pub(super) fn send_seqno_request(&mut self, ask: SeqnoAsk) {
        let msg = Message::SeqnoRequest(SeqnoRequest {
            prefix: ask.key.prefix,
            v4_via_v6: false,
            src_prefix: ask.key.src_prefix,
            seqno: ask.seqno.0,
            hop_count: ask.hop_count,
            router_id: ask.router_id,
        });
        match ask.target {
            Some(nid) => {
                if let Some(n) = self.neighbours.get(&nid) {
                    let (ifindex, addr) = (n.ifindex, n.address);
                    self.counters.seqno_requests_sent += 1;
                    self.queue(ifindex, Destination::Unicast(addr), msg);
                }
            }
            None => {
                let ifs: Vec<u32> = self.up_interfaces();
                for ifindex in ifs {
                    self.counters.seqno_requests_sent += 1;
                    self.queue(ifindex, Destination::Multicast, msg.clone());
                }
            }
        }
    }

    /// RFC 8966 Appendix B: pending seqno requests are resent (2 s, doubled, 3 times).
    pub(super) fn resend_requests(&mut self, now: Instant) {
        let (resend, next) = self.requests.due(now);
        for ask in resend {
            self.send_seqno_request(ask);
        }
        self.timers.set_opt(Timer::RequestCheck, next);
    }
}
