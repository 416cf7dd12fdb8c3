//! The engine: one Babel router's state machine (RFC 8966 §3), sans IO.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use babel_wire::is_martian;
use babel_wire::mac::{self, MacCheck, PseudoHeader};
use babel_wire::{
    DecodeOptions, EncodeOptions, Hello, INFINITY, Ihu, IhuTimestamp, Message, PacketBuilder,
    Prefix, PushError, RouteRequest, RouterId, SeqnoRequest, Update, decode,
};
use babel_wire::{Metric, Seqno, is_link_local};
use price_metric::{Candidate, Policy, accumulate, shown_price};
use tracing::{debug, warn};

use crate::auth::Auth;
use crate::config::{EngineConfig, InterfaceConfig, InterfaceKind};
use crate::filter::{FilterAnswer, FilterRoute, RouteFilter};
use crate::neighbour::Neighbour;
use crate::output::{
    ChangeKind, Counters, Destination, Event, InterfaceView, NeighbourView, RouteChange, RouteOp,
    RouteView, Transmit, XrouteView,
};
use crate::rng::Rng;
use crate::time::{Instant, from_centis, to_centis};

mod hello;
mod neighbours;
mod request_table;
mod requests;
mod reselection;
mod resume;
mod route_table;
mod routes;
mod selection;
mod source_table;
mod timers;
mod updates;
mod views;
mod wire;

use request_table::{Insert, RequestTable, SeqnoAsk};
pub use reselection::RESELECT_SLICE;
use route_table::{Dest, Refused, Route, RouteData, RouteEntry, RouteTable};
use source_table::{SourceTable, is_feasible_after};
use timers::{IfTimer, SwitchTimers, Timer, TimerTable, min_opt};
pub use views::link_cost_algorithm;

/// Errors of the engine's configuration inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// RFC 8966 §4.6.7: all-zeros and all-ones router-ids are reserved.
    #[error("invalid router-id {0}")]
    InvalidRouterId(RouterId),
    /// No interface with this index.
    #[error("unknown interface {0}")]
    UnknownInterface(u32),
    /// A martian prefix cannot be announced (RFC 8966 Appendix C).
    #[error("martian prefix {0}")]
    Martian(Prefix),
    /// Source prefixes of length 0 are the ordinary route (RFC 9079 §7).
    #[error("source prefix of length 0")]
    ZeroSourcePrefix,
    /// No route learned from that neighbour for that destination.
    #[error("no such route")]
    NoSuchRoute,
    /// No neighbour with that address on that interface.
    #[error("no such neighbour")]
    NoSuchNeighbour,
}

/// An output queue keeps at most this many slots once drained: a burst (a full table learned or
/// withdrawn) grows it to the burst's size, and without this the capacity would stay allocated
/// for the life of the engine (tens of MiB at 100,000 routes, see `docs/benchmarks.md`).
const QUEUE_KEEP: usize = 64;

/// Pops the next output; when the queue is empty, gives a burst's capacity back.
fn pop_releasing<T>(q: &mut VecDeque<T>) -> Option<T> {
    let next = q.pop_front();
    if next.is_none() && q.capacity() > QUEUE_KEEP {
        q.shrink_to(QUEUE_KEEP);
    }
    next
}

/// Which route events the engine queues ([`Engine::set_route_events`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteEvents {
    /// Every route added, changed or flushed.
    All,
    /// Only routes flushed (a host that remembers routes it showed forgets them).
    Flushes,
    /// None.
    Off,
}

/// A destination: prefix and optional source prefix (RFC 9079). Ordered as the derived order of
/// `(prefix, src_prefix)` would be (IPv4 before IPv6, then address, then length; no source
/// prefix first), but compared as integers: every table lookup compares keys, and the derived
/// comparison of `IpAddr` byte by byte was the engine's hottest function in the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteKey {
    /// Destination prefix.
    pub prefix: Prefix,
    /// Source prefix, for source-specific routes.
    pub src_prefix: Option<Prefix>,
}

/// A prefix as integers that order as `Prefix`'s derived `Ord` does.
#[inline]
fn prefix_order(p: &Prefix) -> (u8, u128, u8) {
    match p.addr() {
        IpAddr::V4(a) => (0, u128::from(u32::from(a)), p.len()),
        IpAddr::V6(a) => (1, u128::from(a), p.len()),
    }
}

impl Ord for RouteKey {
    #[inline]
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        prefix_order(&self.prefix)
            .cmp(&prefix_order(&o.prefix))
            .then_with(|| match (&self.src_prefix, &o.src_prefix) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(a), Some(b)) => prefix_order(a).cmp(&prefix_order(b)),
            })
    }
}

impl PartialOrd for RouteKey {
    #[inline]
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl RouteKey {
    /// A destination-only key.
    pub fn new(prefix: Prefix) -> RouteKey {
        RouteKey {
            prefix,
            src_prefix: None,
        }
    }
}

/// The route a destination currently uses (what is in the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstalledRoute {
    /// Next hop.
    pub next_hop: IpAddr,
    /// The neighbour it was learned from.
    pub via: IpAddr,
    /// Interface.
    pub ifindex: u32,
    /// Metric (refmetric + link cost).
    pub metric: Metric,
    /// Originator.
    pub router_id: RouterId,
    /// Seqno.
    pub seqno: Seqno,
    /// Total price (received + our fee).
    pub price: u32,
}

#[derive(Clone, Copy, Debug)]
struct Xroute {
    metric: u16,
}

#[derive(Clone, Debug)]
struct Interface {
    cfg: InterfaceConfig,
    up: bool,
    hello_seqno: u16,
    hello_count: u64,
    ihu_asap: bool,
    pending: updates::KeyMap<updates::OnSplit>,
    pending_full: bool,
    last_full: Option<Instant>,
    /// Urgent updates still to repeat: remaining repeats and next time.
    resends: updates::KeyMap<(u8, Instant)>,
    /// When it came up continuing the previous run's Hello seqnos ([`EngineConfig::resume_hellos`]).
    resumed: Option<Instant>,
}

/// A selected route whose metric improves by this much is re-advertised at once (non-urgent);
/// smaller changes wait for the periodic update. Ours: babeld waits for larger changes, which
/// makes improvements crawl one hop per update interval.
pub const TRIGGER_IMPROVEMENT: u16 = 64;
/// A selected route whose metric worsens by this much is re-advertised at once (non-urgent).
pub const TRIGGER_WORSENING: u16 = 256;
/// The highest metric a verified cost or a last-resort penalty raises what we advertise for a
/// route to (`spec/verify.md` §5.2, §4.3): 4,096 under infinity, so that a route we still
/// forward over, however bad it was measured, stays a route (the worst one) for the routers
/// that reach the destination through us and add their own links. A route whose own metric is
/// higher is advertised at that metric.
pub const CORRECTION_CEILING: u16 = INFINITY - 4096;
/// Initial hop count of seqno requests (babeld: 127).
pub const SEQNO_REQUEST_HOP_COUNT: u8 = 127;
/// Initial seqno-request resend delay (RFC 8966 Appendix B: 2 s, doubled each time).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Seqno-request resends (RFC 8966 Appendix B, babeld `RESEND_MAX`).
pub const REQUEST_RESENDS: u8 = 3;
/// Repeats of an urgent update after the first send (babeld: sent up to 3 times).
pub const URGENT_REPEATS: u8 = 2;
/// Delay before an urgent update (RFC 8966 Appendix B urgent timeout 0.2 s).
pub const URGENT_TIMEOUT: Duration = Duration::from_millis(200);
/// Seqno requests further ahead than this are ignored (babeld).
pub const MAX_SEQNO_JUMP: i32 = 100;
/// A neighbour silent this long is flushed (babeld).
pub const NEIGHBOUR_FLUSH: Duration = Duration::from_secs(300);
/// Minimum route hold time (babeld: max(6 × interval, 15 s)).
pub const MIN_HOLD: Duration = Duration::from_secs(15);
/// After a resumed start ([`EngineConfig::resume_hellos`]), for this long no IHU announces an infinite
/// rxcost to a neighbour that has not had a finite one from us yet.
pub const RESUME_QUIET: Duration = Duration::from_secs(30);

/// One Babel router, sans IO. See the crate documentation for the driver loop.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    rng: Rng,
    seqno: u16,
    interfaces: BTreeMap<u32, Interface>,
    neighbours: BTreeMap<u64, Neighbour>,
    neigh_index: BTreeMap<(u32, IpAddr), u64>,
    next_neigh_id: u64,
    /// Neighbours flushed whose routes are still being removed a slice at a time: interface and
    /// address by id, known until every destination they had routes to is selected again
    /// ([`Engine::route_via`], `reselection.rs`).
    departed: BTreeMap<u64, (u32, IpAddr)>,
    /// Neighbours whose destinations are being reselected a slice at a time: the last
    /// destination done (`None`: none yet), see `reselection.rs`.
    reselections: BTreeMap<u64, Option<RouteKey>>,
    /// Destinations per slice ([`RESELECT_SLICE`]; smaller in tests).
    reselect_slice: usize,
    routes: RouteTable,
    /// Periodic dumps under way, by interface, when the host paces them
    /// ([`Engine::set_paced_dumps`]).
    dumps: BTreeMap<u32, updates::Dump>,
    paced_dumps: bool,
    total_limit_logged: bool,
    sources: SourceTable,
    xroutes: BTreeMap<RouteKey, Xroute>,
    requests: RequestTable,
    transmits: VecDeque<Transmit>,
    outbox: BTreeMap<(u32, Destination), Vec<Message>>,
    route_changes: VecDeque<RouteChange>,
    events: VecDeque<Event>,
    /// Which [`Event::Route`]s are queued (with `cfg.events`), see [`Engine::set_route_events`].
    route_events: RouteEvents,
    counters: Counters,
    /// RFC 8967 state: our PCs, neighbours' Indexes and PCs, challenges.
    auth: Auth,
    /// Every deadline (RFC 8966 Appendix B), see [`Timer`].
    timers: TimerTable,
    /// Route switches the hysteresis delays, by deadline ([`Timer::Switch`]).
    switches: SwitchTimers,
    filter: Option<Arc<dyn RouteFilter>>,
    /// Graceful restart: the previous run's routes, until the window ends (`resume.rs`).
    resume: Option<resume::Resume>,
    /// Selection's working list, kept between calls (it runs for every Update received).
    contenders: Vec<selection::Contender>,
    /// Tests: every selection takes the full path (the reference for the fast one), and an
    /// Update's destination is found again by [`Engine::reselect`] (not selected in place).
    #[cfg(test)]
    full_selection: bool,
    /// Tests: selections that took the fast path.
    #[cfg(test)]
    fast_selections: u64,
    /// Tests: selections of a route changed, added or retracted by an Update made where the
    /// Update wrote it (`routes.rs`, `select_here`).
    #[cfg(test)]
    in_place_selections: u64,
}

impl Engine {
    /// Sets (or removes) the `in`/`out` route filter. It applies to updates received and sent
    /// from now on; routes already held keep their metric until their next update.
    pub fn set_route_filter(&mut self, filter: Option<Arc<dyn RouteFilter>>) {
        self.filter = filter;
    }

    /// A new engine (RFC 8966 §3.2: router-id, own seqno).
    pub fn new(mut cfg: EngineConfig, now: Instant) -> Result<Engine, EngineError> {
        if !cfg.router_id.is_valid() {
            return Err(EngineError::InvalidRouterId(cfg.router_id));
        }
        let mut rng = Rng::new(cfg.seed);
        let mut timers = TimerTable::default();
        timers.set(Timer::SourceGc, now + cfg.source_gc_time / 4);
        let resume = resume::Resume::new(now, std::mem::take(&mut cfg.resume_routes));
        if let Some(r) = &resume {
            timers.set(Timer::RouteCheck, r.until);
        }
        let seqno = match cfg.seqno {
            Some(s) => s,
            None => u16::try_from(rng.below(0x1_0000)).unwrap_or(0),
        };
        Ok(Engine {
            rng,
            seqno,
            interfaces: BTreeMap::new(),
            neighbours: BTreeMap::new(),
            neigh_index: BTreeMap::new(),
            next_neigh_id: 1,
            departed: BTreeMap::new(),
            reselections: BTreeMap::new(),
            reselect_slice: RESELECT_SLICE,
            routes: RouteTable::default(),
            dumps: BTreeMap::new(),
            paced_dumps: false,
            total_limit_logged: false,
            sources: SourceTable::new(cfg.source_gc_time),
            xroutes: BTreeMap::new(),
            requests: RequestTable::default(),
            transmits: VecDeque::new(),
            outbox: BTreeMap::new(),
            route_changes: VecDeque::new(),
            events: VecDeque::new(),
            route_events: RouteEvents::All,
            counters: Counters::default(),
            timers,
            switches: SwitchTimers::default(),
            filter: None,
            resume,
            contenders: Vec::new(),
            #[cfg(test)]
            full_selection: false,
            #[cfg(test)]
            fast_selections: 0,
            #[cfg(test)]
            in_place_selections: 0,
            auth: Auth::new(cfg.auth_entropy, cfg.seed),
            cfg,
        })
    }

    /// Next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.outbox.is_empty() {
            self.flush_outbox();
        }
        pop_releasing(&mut self.transmits)
    }

    /// Queues a small message (request, Ack) so that those produced by one input share packets.
    fn queue(&mut self, ifindex: u32, dst: Destination, msg: Message) {
        self.outbox.entry((ifindex, dst)).or_default().push(msg);
    }

    fn flush_outbox(&mut self) {
        let outbox = std::mem::take(&mut self.outbox);
        for ((ifindex, dst), msgs) in outbox {
            self.send(ifindex, dst, msgs);
        }
    }

    /// Next kernel route change.
    pub fn poll_route(&mut self) -> Option<RouteChange> {
        pop_releasing(&mut self.route_changes)
    }

    /// Every queued output at once, in the order [`Engine::poll_transmit`],
    /// [`Engine::poll_route`] and [`Engine::poll_event`] would give them: each queue's buffer
    /// is handed over as it is, not copied, so a burst (one input that changes 100,000 routes)
    /// is held once, by the caller, instead of twice while it is drained (issue 18's teardown
    /// peak). The queues start again empty, without capacity.
    pub fn take_outputs(&mut self) -> (Vec<Transmit>, Vec<RouteChange>, Vec<Event>) {
        if !self.outbox.is_empty() {
            self.flush_outbox();
        }
        (
            Vec::from(std::mem::take(&mut self.transmits)),
            Vec::from(std::mem::take(&mut self.route_changes)),
            Vec::from(std::mem::take(&mut self.events)),
        )
    }

    /// Next observer event.
    pub fn poll_event(&mut self) -> Option<Event> {
        pop_releasing(&mut self.events)
    }

    /// Chooses which [`Event::Route`]s are queued from now on (all by default; nothing at all
    /// without [`EngineConfig::events`]). A route event carries a copy of its route, and one
    /// input can produce one per route of the table (a neighbour's cost change reselects all
    /// its routes): a host that reads them only for some consumers (monitors) turns them off
    /// while it has none, instead of draining and dropping 100,000 of them.
    pub fn set_route_events(&mut self, which: RouteEvents) {
        self.route_events = which;
    }

    fn event(&mut self, e: Event) {
        if self.cfg.events {
            self.events.push_back(e);
        }
    }

    fn jitter(&mut self, max: Duration) -> Duration {
        let us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.below(us))
    }

    /// RFC 8966 §3.1: periodic timers are jittered; babeld's `roughly`: 3/4 to 5/4 of the value.
    fn roughly(&mut self, d: Duration) -> Duration {
        d * 3 / 4 + self.jitter(d / 2)
    }

    fn set_seqno(&mut self, seqno: u16) {
        if seqno != self.seqno {
            self.seqno = seqno;
            self.event(Event::SeqnoChanged {
                seqno: Seqno(seqno),
            });
        }
    }

    /// An interface comes up, or an up interface is reconfigured (babeld `interface` statement).
    /// On coming up: an immediate Hello, a full dump and a wildcard route request (RFC 8966
    /// §3.8.1.1), as babeld does, after a wildcard retraction (babeld: in case we restarted).
    ///
    /// Graceful restart: an interface named in [`EngineConfig::resume_hellos`] (the process crashed and
    /// was started again; its routes are still in the kernel) continues the previous run's Hello
    /// seqnos, so that neighbours keep their Hello history and the link cost (a jump would read
    /// as a reboot or as missed Hellos, RFC 8966 A.1, and take the link down until enough Hellos
    /// arrive), and sends no wildcard retraction, so neighbours keep the routes through us while
    /// we relearn them. For [`RESUME_QUIET`] it also sends no IHU announcing an infinite rxcost to
    /// a neighbour it has not yet sent a finite one: a neighbour heard once is not yet up by 2-of-3
    /// (A.2.1), and such an IHU would take down a link that works.
    pub fn interface_up(&mut self, now: Instant, ifindex: u32, cfg: InterfaceConfig) {
        let hello_jitter = self.jitter(Duration::from_millis(100));
        let first_update = self.first_periodic_update(now, cfg.update_interval);
        match self.interfaces.get_mut(&ifindex) {
            Some(i) if i.up => {
                i.cfg = cfg;
                self.event(Event::Interface {
                    kind: ChangeKind::Change,
                    ifindex,
                });
                let ids: Vec<u64> = self.neighbours_on(ifindex).map(|(_, id)| id).collect();
                for id in ids {
                    self.refresh_neighbour(now, id);
                }
                self.sync_configured_neighbours(now, ifindex);
                return;
            }
            _ => {}
        }
        let previous = self.cfg.resume_hellos.remove(&cfg.name);
        let hello_seqno =
            previous.unwrap_or_else(|| u16::try_from(self.rng.below(0x1_0000)).unwrap_or(0));
        let upd_iv = cfg.update_interval;
        let iface = Interface {
            cfg,
            up: true,
            hello_seqno,
            hello_count: 0,
            ihu_asap: false,
            pending: Default::default(),
            pending_full: true,
            last_full: None,
            resends: Default::default(),
            resumed: previous.map(|_| now),
        };
        self.interfaces.insert(ifindex, iface);
        self.timers.set(
            Timer::Interface(ifindex, IfTimer::Hello),
            now + hello_jitter,
        );
        self.timers
            .set(Timer::Interface(ifindex, IfTimer::Update), first_update);
        self.timers.set(
            Timer::Interface(ifindex, IfTimer::Flush),
            now + hello_jitter,
        );
        self.timers
            .stop(Timer::Interface(ifindex, IfTimer::UrgentResend));
        self.event(Event::Interface {
            kind: ChangeKind::Add,
            ifindex,
        });
        self.sync_configured_neighbours(now, ifindex);
        // "Forget what I said before" (a restart may have lost our state), then ask for a dump.
        // A graceful restart keeps what it said: its routes are still in the kernel.
        let req = Message::RouteRequest(RouteRequest {
            prefix: None,
            v4_via_v6: false,
            src_prefix: None,
        });
        self.counters.route_requests_sent += 1;
        let msgs = if previous.is_some() {
            vec![req]
        } else {
            self.counters.updates_sent += 1;
            vec![self.wildcard_retraction(to_centis(upd_iv)), req]
        };
        self.send(ifindex, Destination::Multicast, msgs);
    }

    /// Reconfigures an interface that is up (babeld's `interface` statement at runtime, e.g. a
    /// new `rxcost`): neighbours are kept and their costs recomputed at once.
    pub fn set_interface_config(
        &mut self,
        now: Instant,
        ifindex: u32,
        cfg: InterfaceConfig,
    ) -> Result<(), EngineError> {
        if !self.interfaces.get(&ifindex).is_some_and(|i| i.up) {
            return Err(EngineError::UnknownInterface(ifindex));
        }
        self.interface_up(now, ifindex, cfg);
        Ok(())
    }

    /// An interface goes down: its neighbours and their routes are flushed.
    pub fn interface_down(&mut self, now: Instant, ifindex: u32) {
        let Some(i) = self.interfaces.get_mut(&ifindex) else {
            return;
        };
        i.up = false;
        i.pending.clear();
        i.resends.clear();
        i.pending_full = false;
        self.dumps.remove(&ifindex);
        self.timers.stop_interface(ifindex);
        let ids: Vec<u64> = self.neighbours_on(ifindex).map(|(_, id)| id).collect();
        for id in ids {
            self.flush_neighbour(now, id);
        }
        self.event(Event::Interface {
            kind: ChangeKind::Flush,
            ifindex,
        });
    }

    /// Announces a local route (an xroute; RFC 8966 §3.7: advertised with our router-id and seqno,
    /// price 0).
    pub fn announce(
        &mut self,
        now: Instant,
        key: RouteKey,
        metric: u16,
    ) -> Result<(), EngineError> {
        if is_martian(&key.prefix) {
            return Err(EngineError::Martian(key.prefix));
        }
        if key.src_prefix.is_some_and(|s| s.len() == 0) {
            return Err(EngineError::ZeroSourcePrefix);
        }
        let kind = if self.xroutes.insert(key, Xroute { metric }).is_some() {
            ChangeKind::Change
        } else {
            ChangeKind::Add
        };
        self.event(Event::Xroute {
            kind,
            prefix: key.prefix,
            src_prefix: key.src_prefix,
        });
        self.reselect(now, key);
        self.schedule_update(now, None, key, false);
        Ok(())
    }

    /// Withdraws a local route: an urgent retraction is sent (RFC 8966 §3.7.2).
    pub fn withdraw(&mut self, now: Instant, key: RouteKey) -> bool {
        if self.xroutes.remove(&key).is_none() {
            return false;
        }
        self.event(Event::Xroute {
            kind: ChangeKind::Flush,
            prefix: key.prefix,
            src_prefix: key.src_prefix,
        });
        self.reselect(now, key);
        self.schedule_update(now, None, key, true);
        true
    }

    /// Changes our fee at runtime (Althea `fee`, which rita repeats every 60 s). The same fee
    /// again changes nothing. A new fee costs nothing on the wire either, as in Althea's fork:
    /// every stored price is recomputed at once (so `dump` shows it), the selection follows at
    /// each route's next Update, and neighbours learn the new prices from our periodic updates.
    pub fn set_fee(&mut self, _now: Instant, fee: u32) {
        if fee == self.cfg.fee {
            return;
        }
        self.cfg.fee = fee;
        self.routes
            .reprice(|received| accumulate(received, fee, self.cfg.accumulation));
    }

    /// Changes the selection policy at runtime.
    pub fn set_policy(&mut self, now: Instant, policy: Policy) {
        self.cfg.policy = policy;
        self.reselect_all(now);
    }

    /// Changes Althea's metric factor at runtime (Althea `metric-factor`); switches the policy to
    /// [`Policy::Althea`].
    pub fn set_metric_factor(&mut self, now: Instant, metric_factor: u32) {
        self.set_policy(now, Policy::Althea { metric_factor });
    }

    /// Verification hook: until `until`, selection uses `metric` instead of the advertised metric
    /// for the route to `key` learned from `via` on `ifindex`. Feasibility and what we advertise are
    /// unchanged (the override only chooses among feasible routes, so loop-freedom is kept).
    pub fn set_verified_metric(
        &mut self,
        now: Instant,
        key: RouteKey,
        ifindex: u32,
        via: IpAddr,
        metric: u16,
        until: Instant,
    ) -> Result<(), EngineError> {
        let id = self.neighbour_id(ifindex, via)?;
        let r = self
            .routes
            .route_mut(&key, id)
            .ok_or(EngineError::NoSuchRoute)?;
        r.set_verified(Some((metric, until)));
        // The override takes effect at once, not through smoothing.
        r.smoothed = metric;
        r.smoothed_time = now.into();
        self.timers.set_earlier(Timer::RouteCheck, until);
        self.reselect(now, key);
        Ok(())
    }

    /// Sends on `ifindex` (within half a Hello interval, as a triggered update) the Update we
    /// advertise for `key` now, and a retraction where split horizon (RFC 8966 §3.7.4) keeps
    /// our selected route off that interface or we have no route: a neighbour there holds a
    /// claim of ours we no longer make. For verification (`spec/verify.md` §4.2.5): a router
    /// asked to justify a claim it can no longer back (its route now runs through the one
    /// asking, or it has none) corrects the claim instead. Nothing on an interface not up.
    pub fn readvertise(&mut self, now: Instant, ifindex: u32, key: RouteKey) {
        if !self.interfaces.get(&ifindex).is_some_and(|i| i.up) {
            return;
        }
        self.schedule_update(now, Some(ifindex), key, false);
        self.retract_on_split(key, ifindex);
    }

    /// The indexes of the interfaces that are up.
    fn up_interfaces(&self) -> Vec<u32> {
        self.interfaces
            .iter()
            .filter(|(_, i)| i.up)
            .map(|(k, _)| *k)
            .collect()
    }

    /// RFC 8966 §4.6.9: a wildcard retraction ("forget every route I gave you").
    fn wildcard_retraction(&self, interval: u16) -> Message {
        Message::Update(Update {
            prefix: None,
            v4_via_v6: false,
            src_prefix: None,
            interval,
            seqno: self.seqno,
            metric: INFINITY,
            router_id: None,
            next_hop: None,
            price: None,
            path_rtt: None,
            diversity: None,
        })
    }

    /// Graceful shutdown (babeld): a wildcard retraction on every interface, then every installed
    /// route is deleted, and every held destination's `unreachable` route.
    pub fn shutdown(&mut self, _now: Instant) {
        let ifs: Vec<u32> = self.up_interfaces();
        for ifindex in ifs {
            let interval = self
                .interfaces
                .get(&ifindex)
                .map_or(0, |i| to_centis(i.cfg.update_interval));
            let m = self.wildcard_retraction(interval);
            self.counters.updates_sent += 1;
            self.send(ifindex, Destination::Multicast, vec![m]);
        }
        let (neighbours, departed) = (&self.neighbours, &self.departed);
        let via = |nid| {
            neighbours
                .get(&nid)
                .map(|n: &Neighbour| (n.ifindex, n.address))
                .or_else(|| departed.get(&nid).copied())
        };
        for (k, inst) in self.routes.uninstall_all(via) {
            match inst {
                Some(inst) => self.kernel(RouteOp::Delete, k, &inst),
                None => self.kernel_unhold(k),
            }
        }
    }
}
