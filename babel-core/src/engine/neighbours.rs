//! Neighbours (RFC 8966 §3.4): discovery, Hello and IHU reception, link cost, RFC 9616 RTT
//! samples, and babeld's neighbour flush.

use super::*;

/// A change of a neighbour's cost that reconsiders this many routes or more is logged at the
/// `info` level, since it costs a burst of route changes and updates; fewer, at `debug`.
const LOGGED_RESELECTION: usize = 1000;

impl Engine {
    pub(super) fn neighbour_cost(&self, id: u64) -> u16 {
        self.neighbours.get(&id).map_or(INFINITY, |n| n.cost)
    }

    /// The neighbour heard from `address` on `ifindex`, for the verification hooks.
    pub(super) fn neighbour_id(&self, ifindex: u32, address: IpAddr) -> Result<u64, EngineError> {
        self.neigh_index
            .get(&(ifindex, address))
            .copied()
            .ok_or(EngineError::NoSuchNeighbour)
    }

    /// Verification hook: sets a neighbour's accuracy score (per mille). Below
    /// [`EngineConfig::accuracy_threshold`] none of its routes can be selected (they leave the kernel);
    /// at or above it they can again.
    pub fn set_neighbour_accuracy(
        &mut self,
        now: Instant,
        ifindex: u32,
        address: IpAddr,
        accuracy: u16,
    ) -> Result<(), EngineError> {
        let id = self.neighbour_id(ifindex, address)?;
        let n = self
            .neighbours
            .get_mut(&id)
            .ok_or(EngineError::NoSuchNeighbour)?;
        let was = self.cfg.evicts(n.accuracy);
        n.accuracy = accuracy;
        if was != self.cfg.evicts(accuracy) {
            self.event(Event::Neighbour {
                kind: ChangeKind::Change,
                ifindex,
                address,
            });
            self.reselect_via(now, id);
        }
        Ok(())
    }

    /// RFC 9616 §2.3 and §3.1: a packet with a timestamped Hello and a timestamped IHU for us
    /// gives one RTT sample ([`crate::rtt::sample`]), smoothed with the interface's `rtt-decay`.
    /// Returns whether a sample was taken.
    pub(super) fn rtt_sample(
        &mut self,
        now: Instant,
        nid: u64,
        ifindex: u32,
        ts: IhuTimestamp,
        transmit: u32,
    ) -> bool {
        let decay = self
            .interfaces
            .get(&ifindex)
            .map_or(42, |i| i.cfg.rtt_decay);
        let Some(n) = self.neighbours.get_mut(&nid) else {
            return false;
        };
        let t4 = now.as_micros() as u32;
        let Some(sample) = crate::rtt::sample(ts.origin, ts.receive, transmit, t4) else {
            debug!(ifindex, neighbour = %n.address, "discarding RTT sample");
            return false;
        };
        n.rtt_sample(now, sample, decay);
        debug!(ifindex, neighbour = %n.address, sample, rtt = ?n.rtt, "RTT sample");
        true
    }

    /// The neighbour `addr` on `ifindex`, created on its first packet whatever it is (RFC 8966
    /// §3.2.4; babeld's `find_neighbour`): a neighbour heard only through unicast on a link
    /// without multicast is learned this way.
    /// The neighbours on `ifindex` as (address, id), by address: a range of the index, which is
    /// ordered by interface, rather than a scan of every neighbour.
    pub(super) fn neighbours_on(&self, ifindex: u32) -> impl Iterator<Item = (IpAddr, u64)> + '_ {
        let first = (ifindex, IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        self.neigh_index
            .range(first..)
            .take_while(move |((i, _), _)| *i == ifindex)
            .map(|((_, a), id)| (*a, *id))
    }

    pub(super) fn neighbour_for(
        &mut self,
        now: Instant,
        ifindex: u32,
        addr: IpAddr,
    ) -> Option<u64> {
        if let Some(id) = self.neigh_index.get(&(ifindex, addr)) {
            return Some(*id);
        }
        self.add_neighbour(now, ifindex, addr, false)
    }

    /// Creates a neighbour (within the per-interface limit). It gets unicast Hellos soon if its
    /// interface sends them to it (RFC 8966 §3.4.1), starting from a random seqno.
    pub(super) fn add_neighbour(
        &mut self,
        now: Instant,
        ifindex: u32,
        addr: IpAddr,
        configured: bool,
    ) -> Option<u64> {
        let count = self.neighbours_on(ifindex).count();
        if count >= self.cfg.limits.max_neighbours_per_interface {
            // Full: the oldest neighbour that has not proved itself makes room (issue 11).
            let victim = crate::neighbour::eviction_victim(
                self.neighbours_on(ifindex)
                    .filter_map(|(_, id)| self.neighbours.get(&id)),
            );
            self.counters.neighbours_over_limit += 1;
            let v = victim?;
            debug!(ifindex, %addr, evicted = v, "neighbour table full: evicting an unproven neighbour");
            self.flush_neighbour(now, v);
        }
        let id = self.next_neigh_id;
        self.next_neigh_id += 1;
        let mut n = Neighbour::new(id, ifindex, addr, now);
        n.configured = configured;
        n.uhello_seqno = u16::try_from(self.rng.below(0x1_0000)).unwrap_or(0);
        let uhello = self
            .interfaces
            .get(&ifindex)
            .and_then(|i| i.cfg.unicast_hello_interval_for(configured));
        if uhello.is_some() {
            let at = now + self.jitter(Duration::from_millis(100));
            self.timers.set(Timer::UnicastHello(id), at);
            n.ihu_asap = true;
        }
        self.neighbours.insert(id, n);
        self.neigh_index.insert((ifindex, addr), id);
        self.event(Event::Neighbour {
            kind: ChangeKind::Add,
            ifindex,
            address: addr,
        });
        self.timers
            .set_earlier(Timer::NeighbourCheck, now + Duration::from_secs(1));
        Some(id)
    }

    /// Makes the configured neighbours of an interface exist and marks them (our `neighbour`
    /// option); neighbours no longer configured become ordinary ones that expire when silent.
    pub(super) fn sync_configured_neighbours(&mut self, now: Instant, ifindex: u32) {
        let Some(wanted) = self
            .interfaces
            .get(&ifindex)
            .map(|i| i.cfg.neighbours.clone())
        else {
            return;
        };
        let cfg = self.interfaces.get(&ifindex).map(|i| i.cfg.clone());
        let j = self.jitter(Duration::from_millis(100));
        for n in self
            .neighbours
            .values_mut()
            .filter(|n| n.ifindex == ifindex)
        {
            if n.configured && !wanted.contains(&n.address) {
                // No longer configured: the next check may flush it.
                self.timers.set(Timer::NeighbourCheck, now);
            }
            n.configured = wanted.contains(&n.address);
            let uhello = cfg
                .as_ref()
                .and_then(|c| c.unicast_hello_interval_for(n.configured));
            if uhello.is_some() && self.timers.get(Timer::UnicastHello(n.id)).is_none() {
                self.timers.set(Timer::UnicastHello(n.id), now + j);
            }
        }
        for addr in wanted {
            if !self.neigh_index.contains_key(&(ifindex, addr)) {
                self.add_neighbour(now, ifindex, addr, true);
            }
        }
    }

    /// RFC 8966 §3.4.1 and Appendix A.1: a Hello updates the multicast or unicast history.
    /// babeld's feedback: a neighbour heard for the first time gets a Hello (with IHUs) soon; a
    /// new neighbour heard twice is asked for a full dump.
    pub(super) fn handle_hello(&mut self, now: Instant, nid: u64, ifindex: u32, h: &Hello) -> bool {
        let Some(n) = self.neighbours.get_mut(&nid) else {
            return false;
        };
        let hist = if h.unicast {
            &mut n.uhello
        } else {
            &mut n.hello
        };
        let out = hist.hello(now, h.seqno, h.interval);
        let reach = hist.reach;
        if h.unicast {
            n.uheard = now;
        }
        if let Some(ts) = h.timestamp {
            n.hello_ts = Some((ts, now.as_micros() as u32));
            n.hello_ts_time = now;
        }
        let next = min_opt(n.hello.next_miss(), n.uhello.next_miss());
        let addr = n.address;
        if let Some(next) = next {
            self.timers.set_earlier(Timer::NeighbourCheck, next);
        }
        if out.rebooted {
            // What it told us before belongs to its previous life.
            debug!(ifindex, %addr, "neighbour rebooted: retracting its routes");
            self.retract_all_from(now, nid, None);
        }
        let unicast_if = self.interfaces.get(&ifindex).is_some_and(|i| i.cfg.unicast);
        let configured = self.neighbours.get(&nid).is_some_and(|n| n.configured);
        if reach & 0xBF00 == 0x8000 && unicast_if && !configured {
            // A new neighbour on a `unicast` interface: its own Hello, with an IHU, soon.
            let j = self.jitter(URGENT_TIMEOUT);
            if let Some(n) = self.neighbours.get_mut(&nid) {
                n.ihu_asap = true;
                self.timers.set_earlier(Timer::UnicastHello(nid), now + j);
            }
        } else if reach & 0xBF00 == 0x8000 {
            let j = self.jitter(URGENT_TIMEOUT);
            if let Some(i) = self.interfaces.get_mut(&ifindex) {
                self.timers
                    .set_earlier(Timer::Interface(ifindex, IfTimer::Hello), now + j);
                i.ihu_asap = true;
            }
        } else if reach & 0xFC00 == 0xC000 {
            let req = Message::RouteRequest(RouteRequest {
                prefix: None,
                v4_via_v6: false,
                src_prefix: None,
            });
            self.counters.route_requests_sent += 1;
            self.queue(ifindex, Destination::Unicast(addr), req);
        }
        out.changed
    }

    /// RFC 8966 §3.4.2: an IHU addressed to us sets the txcost (its RFC 9616 timestamps are
    /// used once the packet is parsed, see [`Engine::rtt_sample`]).
    pub(super) fn handle_ihu(&mut self, now: Instant, nid: u64, i: &Ihu) -> bool {
        let Some(n) = self.neighbours.get_mut(&nid) else {
            return false;
        };
        n.txcost = i.rxcost;
        n.ihu_time = Some(now);
        n.ihu_interval = i.interval;
        true
    }

    /// Recomputes a neighbour's cost; if it changed, every route through it is reconsidered
    /// (RFC 8966 §3.4.3, §3.6).
    pub(super) fn refresh_neighbour(&mut self, now: Instant, nid: u64) {
        let Some(n) = self.neighbours.get_mut(&nid) else {
            return;
        };
        let Some(i) = self.interfaces.get(&n.ifindex) else {
            return;
        };
        let was = n.cost;
        if n.refresh_cost(now, &i.cfg) {
            let (ifindex, address) = (n.ifindex, n.address);
            // What changed the cost, for the log: every route through the neighbour is
            // reconsidered, and with a full table that is a burst of route changes, updates
            // and seqno requests.
            let (cost, rxcost, txcost) = (n.cost, n.rxcost, n.effective_txcost(now));
            let reach = n.hello.reach;
            self.event(Event::Neighbour {
                kind: ChangeKind::Change,
                ifindex,
                address,
            });
            let routes = self.reselect_via(now, nid);
            macro_rules! log {
                ($level:ident) => {
                    tracing::$level!(
                        "neighbour {address} on {ifindex}: cost {was} -> {cost} (rxcost \
                         {rxcost}, txcost {txcost}, Hello history {reach:016b}); {routes} \
                         routes reselected"
                    )
                };
            }
            if routes >= LOGGED_RESELECTION {
                log!(info);
            } else {
                log!(debug);
            }
        }
    }

    /// RFC 8966 A.1 missed Hellos, §3.4.2 txcost expiry, and babeld's neighbour flush (empty
    /// histories or 300 s without a Hello).
    pub(super) fn check_neighbours(&mut self, now: Instant) {
        let ids: Vec<u64> = self.neighbours.keys().copied().collect();
        let mut next: Option<Instant> = None;
        for id in ids {
            let Some(n) = self.neighbours.get_mut(&id) else {
                continue;
            };
            n.hello.check_missed(now);
            n.uhello.check_missed(now);
            let last = n.hello.time.max(n.uhello.time).max(n.uheard);
            let silent = now.saturating_since(last) > NEIGHBOUR_FLUSH;
            let empty = n.hello.reach == 0 && n.uhello.reach == 0;
            // A neighbour heard only through IHUs or requests gets one Hello interval of grace.
            let young = now.saturating_since(n.created) < Duration::from_secs(10);
            // A neighbour that has not proved itself and missed its last three Hellos (issue
            // 11: spoofed one-Hello neighbours) goes now, not when its history has run dry.
            let unproven_gone = crate::neighbour::unproven_and_silent(n);
            // A configured neighbour stays, heard or not (our `neighbour` option).
            if !n.configured && (silent || (empty && !young) || unproven_gone) {
                self.flush_neighbour(now, id);
                continue;
            }
            next = min_opt(next, n.hello.next_miss());
            next = min_opt(next, n.uhello.next_miss());
            next = min_opt(next, n.next_txcost_check(now));
            if empty && !n.configured {
                next = min_opt(next, Some(n.created + Duration::from_secs(10)));
            }
            let configured = n.configured;
            if self.timers.get(Timer::UnicastHello(id)).is_none()
                && let Some(iv) = self
                    .interfaces
                    .get(&n.ifindex)
                    .and_then(|i| i.cfg.unicast_hello_interval_for(configured))
            {
                self.timers.set(Timer::UnicastHello(id), now + iv);
            }
            self.refresh_neighbour(now, id);
        }
        self.timers.set_opt(
            Timer::NeighbourCheck,
            next.map(|t| t.max(now + Duration::from_millis(10))),
        );
    }

    /// babeld's neighbour flush: the neighbour is forgotten at once; its routes leave the table
    /// and its destinations are selected again a slice at a time (`reselection.rs`), while its
    /// interface and address stay known to the installed routes that still name it.
    pub(super) fn flush_neighbour(&mut self, now: Instant, nid: u64) {
        let Some((ifindex, address)) = self.neighbours.get(&nid).map(|n| (n.ifindex, n.address))
        else {
            return;
        };
        // The removal starts over from the first destination, whatever was under way.
        self.departed.insert(nid, (ifindex, address));
        self.reselections.insert(nid, None);
        // Its routes are shown with the metric they had, through the neighbour still known.
        let first = self.take_slice(now, nid);
        let Some(n) = self.neighbours.remove(&nid) else {
            return;
        };
        self.neigh_index.remove(&(n.ifindex, n.address));
        self.timers.stop(Timer::UnicastHello(nid));
        self.auth.forget(n.ifindex, n.address);
        self.requests.forget_target(nid);
        self.event(Event::Neighbour {
            kind: ChangeKind::Flush,
            ifindex: n.ifindex,
            address: n.address,
        });
        self.finish_slice(now, nid, first);
    }
}
