//! The engine: one Babel router's state machine (RFC 8966 §3), sans IO.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use babel_wire::mac::{self, MacCheck, PseudoHeader};
use babel_wire::{
    DecodeOptions, EncodeOptions, Hello, INFINITY, Ihu, IhuTimestamp, Message, PacketBuilder,
    Prefix, PushError, RouteRequest, RouterId, SeqnoRequest, Update, decode,
};
use price_metric::{Candidate, Policy, accumulate, shown_price};
use tracing::{debug, warn};

use crate::auth::Auth;
use crate::config::{Config, InterfaceConfig, InterfaceKind};
use crate::filter::{FilterRoute, RouteFilter, add_metric};
use crate::neighbour::{Neighbour, seqno_minus};
use crate::output::{
    ChangeKind, Counters, Destination, Event, InterfaceView, NeighbourView, RouteChange, RouteOp,
    RouteView, Transmit, XrouteView,
};
use crate::rng::Rng;
use crate::time::{Instant, from_centis, to_centis};

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

/// A destination: prefix and optional source prefix (RFC 9079).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    /// Destination prefix.
    pub prefix: Prefix,
    /// Source prefix, for source-specific routes.
    pub src_prefix: Option<Prefix>,
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
pub struct Installed {
    /// Next hop.
    pub next_hop: IpAddr,
    /// The neighbour it was learned from.
    pub via: IpAddr,
    /// Interface.
    pub ifindex: u32,
    /// Metric (refmetric + link cost).
    pub metric: u16,
    /// Originator.
    pub router_id: RouterId,
    /// Seqno.
    pub seqno: u16,
    /// Total price (received + our fee).
    pub price: u32,
}

#[derive(Clone, Debug)]
struct Route {
    neigh: u64,
    ifindex: u32,
    via: IpAddr,
    next_hop: IpAddr,
    router_id: RouterId,
    seqno: u16,
    refmetric: u16,
    /// Metric added by the `in` filter (babeld `add_metric`).
    add_metric: u16,
    /// Advertised update interval, centiseconds.
    interval: u16,
    received_price: u32,
    price: u32,
    path_rtt: u32,
    time: Instant,
    smoothed: u16,
    smoothed_time: Instant,
    verified: Option<(u16, Instant)>,
    refresh_requested: bool,
}

#[derive(Clone, Debug, Default)]
struct Dest {
    routes: Vec<Route>,
    /// The selected route's neighbour. With `installed` empty it is a *held* route (babeld): it
    /// lost its metric, nothing else is selectable, and it stays shown as installed with an
    /// infinite metric (an `unreachable` kernel route) until it leaves the table.
    selected: Option<u64>,
    installed: Option<Installed>,
}

#[derive(Clone, Copy, Debug)]
struct Source {
    seqno: u16,
    metric: u16,
    time: Instant,
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
    next_hello: Instant,
    ihu_asap: bool,
    next_update: Instant,
    flush_at: Option<Instant>,
    pending: BTreeMap<RouteKey, bool>,
    pending_full: bool,
    last_full: Option<Instant>,
    /// Urgent updates still to repeat: remaining repeats and next time.
    resends: BTreeMap<RouteKey, (u8, Instant)>,
    /// Earliest time in `resends`.
    next_resend: Option<Instant>,
}

#[derive(Clone, Debug)]
struct PendingRequest {
    router_id: RouterId,
    seqno: u16,
    hop_count: u8,
    /// `None`: multicast on every interface; otherwise one neighbour.
    target: Option<u64>,
    resends_left: u8,
    next_resend: Instant,
    delay: Duration,
    expires: Instant,
}

/// A selected route whose metric improves by this much is re-advertised at once (non-urgent);
/// smaller changes wait for the periodic update. Ours: babeld waits for larger changes, which
/// makes improvements crawl one hop per update interval.
pub const TRIGGER_IMPROVEMENT: u16 = 64;
/// A selected route whose metric worsens by this much is re-advertised at once (non-urgent).
pub const TRIGGER_WORSENING: u16 = 256;
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

/// One Babel router, sans IO. See the crate documentation for the driver loop.
#[derive(Debug)]
pub struct Engine {
    cfg: Config,
    rng: Rng,
    seqno: u16,
    interfaces: BTreeMap<u32, Interface>,
    neighbours: BTreeMap<u64, Neighbour>,
    neigh_index: BTreeMap<(u32, IpAddr), u64>,
    next_neigh_id: u64,
    routes: BTreeMap<RouteKey, Dest>,
    route_count: usize,
    total_limit_logged: bool,
    sources: BTreeMap<(RouteKey, RouterId), Source>,
    xroutes: BTreeMap<RouteKey, Xroute>,
    requests: BTreeMap<RouteKey, PendingRequest>,
    transmits: VecDeque<Transmit>,
    outbox: BTreeMap<(u32, Destination), Vec<Message>>,
    route_changes: VecDeque<RouteChange>,
    events: VecDeque<Event>,
    counters: Counters,
    /// RFC 8967 state: our PCs, neighbours' Indexes and PCs, challenges.
    auth: Auth,
    next_neigh_check: Option<Instant>,
    next_route_check: Option<Instant>,
    next_request_check: Option<Instant>,
    next_source_gc: Instant,
    filter: Option<Arc<dyn RouteFilter>>,
}

/// babeld's `martian_prefix` (RFC 8966 Appendix C): multicast, link-local, loopback,
/// unspecified, and the IPv4 this-network, loopback and class D/E ranges.
pub fn is_martian(p: &Prefix) -> bool {
    let len = p.len();
    match p.addr() {
        IpAddr::V6(a) => {
            let [o0, o1, ..] = a.octets();
            if let Some(v4) = a.to_ipv4_mapped() {
                return len >= 96 && v4_martian(v4.octets(), len - 96);
            }
            (len >= 8 && o0 == 0xFF)
                || (len >= 10 && o0 == 0xFE && o1 & 0xC0 == 0x80)
                || (len == 128 && (a.is_unspecified() || a.is_loopback()))
        }
        IpAddr::V4(a) => v4_martian(a.octets(), len),
    }
}

fn v4_martian(o: [u8; 4], len: u8) -> bool {
    let [o0, ..] = o;
    (len >= 8 && (o0 == 127 || o0 == 0)) || (len >= 4 && o0 & 0xE0 == 0xE0)
}

fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V6(v6) => v6.segments().first().is_some_and(|s| s & 0xFFC0 == 0xFE80),
        IpAddr::V4(_) => false,
    }
}

/// babeld's smoothing (RFC 8966 Appendix A.3): the smoothed metric decays exponentially toward
/// the metric with the given half-life (fixed point: whole half-lives by shifting, the fraction
/// linearly).
fn smooth(old: u16, target: u16, dt: Duration, half_life: Duration) -> u16 {
    if half_life.is_zero() || old == INFINITY || target == INFINITY {
        return target;
    }
    let hl = u64::try_from(half_life.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let dt = u64::try_from(dt.as_micros()).unwrap_or(u64::MAX);
    let halves = dt / hl;
    if halves >= 16 {
        return target;
    }
    let rem = dt % hl;
    let f = ((1u64 << 16) >> halves) * (2 * hl - rem) / (2 * hl);
    let diff = i64::from(old) - i64::from(target);
    let f = i64::try_from(f).unwrap_or(0);
    let v = i64::from(target) + diff * f / 65536;
    u16::try_from(v.clamp(0, i64::from(INFINITY) - 1)).unwrap_or(target)
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn hold_time(interval_cs: u16) -> Duration {
    (from_centis(interval_cs) * 6).max(MIN_HOLD)
}

impl Engine {
    /// Sets (or removes) the `in`/`out` route filter. It applies to updates received and sent
    /// from now on; routes already held keep their metric until their next update.
    pub fn set_route_filter(&mut self, filter: Option<Arc<dyn RouteFilter>>) {
        self.filter = filter;
    }

    /// A new engine (RFC 8966 §3.2: router-id, own seqno).
    pub fn new(cfg: Config, now: Instant) -> Result<Engine, EngineError> {
        if !cfg.router_id.is_valid() {
            return Err(EngineError::InvalidRouterId(cfg.router_id));
        }
        let mut rng = Rng::new(cfg.seed);
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
            routes: BTreeMap::new(),
            route_count: 0,
            total_limit_logged: false,
            sources: BTreeMap::new(),
            xroutes: BTreeMap::new(),
            requests: BTreeMap::new(),
            transmits: VecDeque::new(),
            outbox: BTreeMap::new(),
            route_changes: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            next_neigh_check: None,
            next_route_check: None,
            next_request_check: None,
            next_source_gc: now + cfg.source_gc_time / 4,
            filter: None,
            auth: Auth::new(cfg.auth_entropy, cfg.seed),
            cfg,
        })
    }

    // ------------------------------------------------------------------ outputs

    /// Next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.outbox.is_empty() {
            self.flush_outbox();
        }
        self.transmits.pop_front()
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
        self.route_changes.pop_front()
    }

    /// Next observer event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

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

    // ------------------------------------------------------------------ views

    /// Our router-id.
    pub fn router_id(&self) -> RouterId {
        self.cfg.router_id
    }

    /// Our current seqno (RFC 8966 §3.2.2).
    pub fn seqno(&self) -> u16 {
        self.seqno
    }

    /// Our fee.
    pub fn fee(&self) -> u32 {
        self.cfg.fee
    }

    /// The selection policy.
    pub fn policy(&self) -> Policy {
        self.cfg.policy
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Number of learned route entries (all neighbours).
    pub fn route_count(&self) -> usize {
        self.route_count
    }

    /// Number of destinations with an installed route.
    pub fn installed_count(&self) -> usize {
        self.routes
            .values()
            .filter(|d| d.installed.is_some())
            .count()
    }

    /// The installed route of a destination.
    pub fn installed(&self, key: &RouteKey) -> Option<Installed> {
        self.routes.get(key).and_then(|d| d.installed)
    }

    /// Iterates installed routes.
    pub fn installed_routes(&self) -> impl Iterator<Item = (&RouteKey, &Installed)> + '_ {
        self.routes
            .iter()
            .filter_map(|(k, d)| d.installed.as_ref().map(|i| (k, i)))
    }

    /// Interfaces.
    pub fn interfaces(&self) -> Vec<InterfaceView> {
        self.interfaces
            .iter()
            .map(|(&ifindex, i)| InterfaceView {
                ifindex,
                name: i.cfg.name.clone(),
                kind: i.cfg.kind,
                up: i.up,
                address: i.cfg.address,
                hello_seqno: i.hello_seqno,
                hello_interval: i.cfg.hello_interval,
                update_interval: i.cfg.update_interval,
            })
            .collect()
    }

    /// Neighbours.
    pub fn neighbours(&self, now: Instant) -> Vec<NeighbourView> {
        self.neighbours
            .values()
            .map(|n| {
                let rttcost = self
                    .interfaces
                    .get(&n.ifindex)
                    .map_or(0, |i| n.rttcost(now, &i.cfg));
                NeighbourView {
                    ifindex: n.ifindex,
                    address: n.address,
                    reach: n.hello.reach,
                    ureach: n.uhello.reach,
                    rxcost: n.rxcost,
                    txcost: n.effective_txcost(now),
                    rtt: n.valid_rtt(now),
                    rttcost,
                    cost: n.cost,
                    accuracy: n.accuracy,
                    blocked: n.accuracy < self.cfg.accuracy_threshold,
                }
            })
            .collect()
    }

    /// Local routes we announce.
    pub fn xroutes(&self) -> Vec<XrouteView> {
        self.xroutes
            .iter()
            .map(|(k, x)| XrouteView {
                prefix: k.prefix,
                src_prefix: k.src_prefix,
                metric: x.metric,
            })
            .collect()
    }

    /// Learned routes.
    pub fn routes(&self, now: Instant) -> Vec<RouteView> {
        let mut out = Vec::with_capacity(self.route_count);
        for (k, d) in &self.routes {
            for r in &d.routes {
                let metric = self.route_metric(r);
                out.push(RouteView {
                    prefix: k.prefix,
                    src_prefix: k.src_prefix,
                    // A held route (selected, lost) shows as installed, as in babeld.
                    installed: d.selected == Some(r.neigh),
                    feasible: self.is_feasible(now, k, r.router_id, r.seqno, r.refmetric),
                    router_id: r.router_id,
                    metric,
                    smoothed_metric: r.smoothed,
                    refmetric: r.refmetric,
                    verified_metric: r.verified.filter(|(_, t)| now < *t).map(|(m, _)| m),
                    price: r.price,
                    received_price: shown_price(r.price, self.cfg.fee, self.cfg.accumulation),
                    fee: self.cfg.fee,
                    seqno: r.seqno,
                    age: now.saturating_since(r.time),
                    via: r.via,
                    next_hop: r.next_hop,
                    ifindex: r.ifindex,
                    full_path_rtt: r.path_rtt,
                });
            }
        }
        out
    }

    // ------------------------------------------------------------------ helpers

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

    fn neighbour_cost(&self, id: u64) -> u16 {
        self.neighbours.get(&id).map_or(INFINITY, |n| n.cost)
    }

    fn route_metric(&self, r: &Route) -> u16 {
        let m = u32::from(r.refmetric)
            + u32::from(self.neighbour_cost(r.neigh))
            + u32::from(r.add_metric);
        u16::try_from(m.min(u32::from(INFINITY))).unwrap_or(INFINITY)
    }

    /// RFC 8966 §3.5.1 feasibility: no (live) source entry, a newer seqno, or the same seqno and a
    /// strictly smaller metric. Retractions are always feasible.
    fn is_feasible(
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
    fn update_source(
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

    fn set_seqno(&mut self, seqno: u16) {
        if seqno != self.seqno {
            self.seqno = seqno;
            self.event(Event::SeqnoChanged { seqno });
        }
    }

    // ------------------------------------------------------------------ config inputs

    /// An interface comes up, or an up interface is reconfigured (babeld `interface` statement).
    /// On coming up: an immediate Hello, a full dump and a wildcard route request (RFC 8966
    /// §3.8.1.1), as babeld does.
    pub fn interface_up(&mut self, now: Instant, ifindex: u32, cfg: InterfaceConfig) {
        let hello_jitter = self.jitter(Duration::from_millis(100));
        let upd = self.roughly(cfg.update_interval);
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
        let hello_seqno = u16::try_from(self.rng.below(0x1_0000)).unwrap_or(0);
        let upd_iv = cfg.update_interval;
        let iface = Interface {
            cfg,
            up: true,
            hello_seqno,
            hello_count: 0,
            next_hello: now + hello_jitter,
            ihu_asap: false,
            next_update: now + upd,
            flush_at: Some(now + hello_jitter),
            pending: BTreeMap::new(),
            pending_full: true,
            last_full: None,
            resends: BTreeMap::new(),
            next_resend: None,
        };
        self.interfaces.insert(ifindex, iface);
        self.event(Event::Interface {
            kind: ChangeKind::Add,
            ifindex,
        });
        self.sync_configured_neighbours(now, ifindex);
        // "Forget what I said before" (a restart may have lost our state), then ask for a dump.
        let retract = Message::Update(Update {
            prefix: None,
            v4_via_v6: false,
            src_prefix: None,
            interval: to_centis(upd_iv),
            seqno: self.seqno,
            metric: INFINITY,
            router_id: None,
            next_hop: None,
            price: None,
            path_rtt: None,
            diversity: None,
        });
        let req = Message::RouteRequest(RouteRequest {
            prefix: None,
            v4_via_v6: false,
            src_prefix: None,
        });
        self.counters.route_requests_sent += 1;
        self.counters.updates_sent += 1;
        self.send(ifindex, Destination::Multicast, vec![retract, req]);
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
        i.next_resend = None;
        i.pending_full = false;
        i.flush_at = None;
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
        let mode = self.cfg.accumulation;
        for d in self.routes.values_mut() {
            for r in &mut d.routes {
                r.price = accumulate(r.received_price, fee, mode);
            }
            let selected = d.selected;
            if let Some(i) = &mut d.installed
                && let Some(r) = d.routes.iter().find(|r| Some(r.neigh) == selected)
            {
                i.price = r.price;
            }
        }
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

    /// The neighbour heard from `address` on `ifindex`, for the verification hooks.
    fn neighbour_id(&self, ifindex: u32, address: IpAddr) -> Result<u64, EngineError> {
        self.neigh_index
            .get(&(ifindex, address))
            .copied()
            .ok_or(EngineError::NoSuchNeighbour)
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
            .get_mut(&key)
            .and_then(|d| d.routes.iter_mut().find(|r| r.neigh == id))
            .ok_or(EngineError::NoSuchRoute)?;
        r.verified = Some((metric, until));
        // The override takes effect at once, not through smoothing.
        r.smoothed = metric;
        r.smoothed_time = now;
        self.next_route_check = min_opt(self.next_route_check, Some(until));
        self.reselect(now, key);
        Ok(())
    }

    /// Verification hook: sets a neighbour's accuracy score (per mille). Below
    /// [`Config::accuracy_threshold`] none of its routes can be selected (they leave the kernel);
    /// at or above it they can again.
    pub fn set_neighbour_accuracy(
        &mut self,
        now: Instant,
        ifindex: u32,
        address: IpAddr,
        accuracy: u16,
    ) -> Result<(), EngineError> {
        let id = self.neighbour_id(ifindex, address)?;
        let threshold = self.cfg.accuracy_threshold;
        let n = self
            .neighbours
            .get_mut(&id)
            .ok_or(EngineError::NoSuchNeighbour)?;
        let was = n.accuracy < threshold;
        n.accuracy = accuracy;
        if was != (accuracy < threshold) {
            self.event(Event::Neighbour {
                kind: ChangeKind::Change,
                ifindex,
                address,
            });
            self.reselect_via(now, id);
        }
        Ok(())
    }

    /// Graceful shutdown (babeld): a wildcard retraction on every interface, then every installed
    /// route is deleted.
    pub fn shutdown(&mut self, _now: Instant) {
        let ifs: Vec<u32> = self
            .interfaces
            .iter()
            .filter(|(_, i)| i.up)
            .map(|(k, _)| *k)
            .collect();
        for ifindex in ifs {
            let interval = self
                .interfaces
                .get(&ifindex)
                .map_or(0, |i| to_centis(i.cfg.update_interval));
            let m = Message::Update(Update {
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
            });
            self.counters.updates_sent += 1;
            self.send(ifindex, Destination::Multicast, vec![m]);
        }
        let keys: Vec<RouteKey> = self.routes.keys().copied().collect();
        for k in keys {
            let held = self
                .routes
                .get_mut(&k)
                .is_some_and(|d| d.installed.is_none() && d.selected.take().is_some());
            if held {
                self.kernel_unhold(k);
            }
            if let Some(d) = self.routes.get_mut(&k)
                && let Some(inst) = d.installed.take()
            {
                d.selected = None;
                self.route_changes.push_back(RouteChange {
                    op: RouteOp::Delete,
                    prefix: k.prefix,
                    src_prefix: k.src_prefix,
                    next_hop: inst.next_hop,
                    ifindex: inst.ifindex,
                    metric: inst.metric,
                });
            }
        }
    }

    // ------------------------------------------------------------------ packets in

    /// A UDP payload arrived on `ifindex` from `src` (sent to `dst`). It is decoded with the
    /// interface's flavour and each message is processed (RFC 8966 §4, §3).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: IpAddr,
        dst: Destination,
        bytes: &[u8],
    ) {
        self.counters.packets_received += 1;
        self.counters.bytes_received += bytes.len() as u64;
        let Some(iface) = self.interfaces.get(&ifindex).filter(|i| i.up) else {
            self.counters.packets_refused += 1;
            return;
        };
        if src == iface.cfg.address || (self.cfg.require_link_local && !is_link_local(&src)) {
            self.counters.packets_refused += 1;
            return;
        }
        let our_addr = iface.cfg.address;
        let decoded = match decode(
            bytes,
            &DecodeOptions {
                flavour: iface.cfg.flavour,
            },
        ) {
            Ok(d) => d,
            Err(e) => {
                self.counters.packets_malformed += 1;
                debug!(ifindex, %src, error = %e, "dropping undecodable packet");
                return;
            }
        };
        self.counters.tlv_errors += decoded.errors.len() as u64;
        if !self.authenticate(now, ifindex, src, dst, bytes, &decoded) {
            return;
        }
        let Some(nid) = self.neighbour_for(now, ifindex, src) else {
            return;
        };
        // RFC 9616: the transmit timestamp of the (last) timestamped Hello in this packet, and
        // the timestamps of the (last) IHU for us that carries some; the sample is taken once
        // the whole packet is parsed, as babeld does.
        let hello_ts = decoded.packet.messages.iter().rev().find_map(|m| match m {
            Message::Hello(h) => h.timestamp,
            _ => None,
        });
        let mut ihu_ts = None;
        let mut link_changed = false;
        for msg in decoded.packet.messages {
            match msg {
                Message::Hello(h) => {
                    if h.unicast && dst == Destination::Multicast {
                        self.counters.rfc_violations += 1;
                        continue;
                    }
                    self.handle_hello(now, nid, ifindex, &h);
                    link_changed = true;
                }
                Message::Ihu(i) => {
                    if i.interval == 0 {
                        self.counters.rfc_violations += 1;
                        continue;
                    }
                    if i.address.is_none_or(|a| a == our_addr) {
                        ihu_ts = i.timestamp.or(ihu_ts);
                        link_changed |= self.handle_ihu(now, nid, &i);
                    }
                }
                Message::Update(u) => {
                    if link_changed {
                        link_changed = false;
                        self.refresh_neighbour(now, nid);
                    }
                    self.handle_update(now, nid, ifindex, src, u);
                }
                Message::RouteRequest(r) => self.handle_route_request(now, ifindex, &r),
                Message::SeqnoRequest(s) => self.handle_seqno_request(now, nid, ifindex, &s),
                Message::AckReq { opaque, interval } => {
                    if interval == 0 {
                        self.counters.rfc_violations += 1;
                        continue;
                    }
                    // RFC 8966 §3.3: answer with a unicast Acknowledgment.
                    self.counters.acks_sent += 1;
                    self.queue(ifindex, Destination::Unicast(src), Message::Ack { opaque });
                }
                _ => {}
            }
        }
        if let (Some(ts), Some(t3)) = (ihu_ts, hello_ts) {
            link_changed |= self.rtt_sample(now, nid, ifindex, ts, t3);
        }
        if link_changed {
            self.refresh_neighbour(now, nid);
        }
    }

    /// RFC 9616 §2.3 and §3.1: a packet with a timestamped Hello and a timestamped IHU for us
    /// gives one RTT sample ([`crate::rtt::sample`]), smoothed with the interface's `rtt-decay`.
    /// Returns whether a sample was taken.
    fn rtt_sample(
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

    /// The destination address of a packet, as the pseudo-header has it (RFC 8967 §4.1).
    fn dst_address(&self, dst: Destination) -> IpAddr {
        match dst {
            Destination::Multicast => IpAddr::V6(self.cfg.protocol_group),
            Destination::Unicast(a) => a,
        }
    }

    /// RFC 8967 §4.3 on an interface with keys: true if the packet's TLVs are to be processed.
    /// The MAC is checked with the pseudo-header of the datagram as received (the sender's
    /// address, the address it was sent to, the protocol port), then the PC and challenges
    /// ([`Auth::preparse`]); Challenge Requests and Replies it calls for are queued unicast.
    fn authenticate(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: IpAddr,
        dst: Destination,
        bytes: &[u8],
        decoded: &babel_wire::Decoded,
    ) -> bool {
        let Some(auth) = self
            .interfaces
            .get(&ifindex)
            .and_then(|i| i.cfg.auth.as_ref())
            .filter(|a| !a.keys.is_empty())
        else {
            return true;
        };
        let pseudo = PseudoHeader::babeld(src, self.dst_address(dst), self.cfg.protocol_port);
        let covered = bytes.get(..decoded.body_end).unwrap_or_default();
        match mac::verify(covered, &decoded.packet.macs, &auth.keys, &pseudo) {
            MacCheck::Valid => {}
            check => {
                let accept_bad = auth.accept_bad_signatures;
                if check == MacCheck::Missing {
                    self.counters.auth_no_mac += 1;
                } else {
                    self.counters.auth_bad_mac += 1;
                }
                if accept_bad {
                    self.counters.auth_accepted_unsigned += 1;
                    debug!(ifindex, %src, ?check, "processing packet without a valid MAC (accept-bad-signatures)");
                } else {
                    debug!(ifindex, %src, ?check, "dropping packet without a valid MAC");
                }
                return accept_bad;
            }
        }
        let limit = self.cfg.limits.max_neighbours_per_interface;
        let p = self.auth.preparse(
            now,
            ifindex,
            src,
            dst == Destination::Multicast,
            &decoded.packet.messages,
            limit,
            &mut self.counters,
        );
        for m in p.replies {
            self.queue(ifindex, Destination::Unicast(src), m);
        }
        p.accept
    }

    /// The neighbour `addr` on `ifindex`, created on its first packet whatever it is (RFC 8966
    /// §3.2.4; babeld's `find_neighbour`): a neighbour heard only through unicast on a link
    /// without multicast is learned this way.
    /// The neighbours on `ifindex` as (address, id), by address: a range of the index, which is
    /// ordered by interface, rather than a scan of every neighbour.
    fn neighbours_on(&self, ifindex: u32) -> impl Iterator<Item = (IpAddr, u64)> + '_ {
        let first = (ifindex, IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        self.neigh_index
            .range(first..)
            .take_while(move |((i, _), _)| *i == ifindex)
            .map(|((_, a), id)| (*a, *id))
    }

    fn neighbour_for(&mut self, now: Instant, ifindex: u32, addr: IpAddr) -> Option<u64> {
        if let Some(id) = self.neigh_index.get(&(ifindex, addr)) {
            return Some(*id);
        }
        self.add_neighbour(now, ifindex, addr, false)
    }

    /// Creates a neighbour (within the per-interface limit). It gets unicast Hellos soon if its
    /// interface sends them to it (RFC 8966 §3.4.1), starting from a random seqno.
    fn add_neighbour(
        &mut self,
        now: Instant,
        ifindex: u32,
        addr: IpAddr,
        configured: bool,
    ) -> Option<u64> {
        let count = self.neighbours_on(ifindex).count();
        if count >= self.cfg.limits.max_neighbours_per_interface {
            self.counters.neighbours_over_limit += 1;
            return None;
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
            n.next_uhello = Some(now + self.jitter(Duration::from_millis(100)));
            n.ihu_asap = true;
        }
        self.neighbours.insert(id, n);
        self.neigh_index.insert((ifindex, addr), id);
        self.event(Event::Neighbour {
            kind: ChangeKind::Add,
            ifindex,
            address: addr,
        });
        self.next_neigh_check = min_opt(self.next_neigh_check, Some(now + Duration::from_secs(1)));
        Some(id)
    }

    /// Makes the configured neighbours of an interface exist and marks them (our `neighbour`
    /// option); neighbours no longer configured become ordinary ones that expire when silent.
    fn sync_configured_neighbours(&mut self, now: Instant, ifindex: u32) {
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
                self.next_neigh_check = Some(now);
            }
            n.configured = wanted.contains(&n.address);
            let uhello = cfg
                .as_ref()
                .and_then(|c| c.unicast_hello_interval_for(n.configured));
            if uhello.is_some() && n.next_uhello.is_none() {
                n.next_uhello = Some(now + j);
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
    fn handle_hello(&mut self, now: Instant, nid: u64, ifindex: u32, h: &Hello) -> bool {
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
        self.next_neigh_check = min_opt(self.next_neigh_check, next);
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
                n.next_uhello = min_opt(n.next_uhello, Some(now + j));
            }
        } else if reach & 0xBF00 == 0x8000 {
            let j = self.jitter(URGENT_TIMEOUT);
            if let Some(i) = self.interfaces.get_mut(&ifindex) {
                i.next_hello = i.next_hello.min(now + j);
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
    fn handle_ihu(&mut self, now: Instant, nid: u64, i: &Ihu) -> bool {
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
    fn refresh_neighbour(&mut self, now: Instant, nid: u64) {
        let Some(n) = self.neighbours.get_mut(&nid) else {
            return;
        };
        let Some(i) = self.interfaces.get(&n.ifindex) else {
            return;
        };
        if n.refresh_cost(now, &i.cfg) {
            let (ifindex, address) = (n.ifindex, n.address);
            self.event(Event::Neighbour {
                kind: ChangeKind::Change,
                ifindex,
                address,
            });
            self.reselect_via(now, nid);
        }
    }

    fn reselect_via(&mut self, now: Instant, nid: u64) {
        let keys: Vec<RouteKey> = self
            .routes
            .iter()
            .filter(|(_, d)| d.routes.iter().any(|r| r.neigh == nid))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.reselect(now, k);
        }
    }

    fn reselect_all(&mut self, now: Instant) {
        let keys: Vec<RouteKey> = self.routes.keys().copied().collect();
        for k in keys {
            self.reselect(now, k);
        }
    }

    /// RFC 8966 §3.5.3 route acquisition (with §3.5.4 retractions, §4.6.9 wildcard retractions and
    /// §3.8.2.2 unfeasible updates), then §3.6 selection.
    fn handle_update(&mut self, now: Instant, nid: u64, ifindex: u32, src: IpAddr, u: Update) {
        self.counters.updates_received += 1;
        if u.interval == 0 {
            self.counters.rfc_violations += 1;
            return;
        }
        let Some(prefix) = u.prefix else {
            if u.metric == INFINITY && u.src_prefix.is_none() {
                self.retract_all_from(now, nid, Some(u.interval));
            } else {
                self.counters.rfc_violations += 1;
            }
            return;
        };
        if is_martian(&prefix) || u.src_prefix.is_some_and(|s| is_martian(&s)) {
            self.counters.martians += 1;
            return;
        }
        if u.src_prefix.is_some_and(|s| s.len() == 0) {
            self.counters.rfc_violations += 1;
            return;
        }
        let key = RouteKey {
            prefix,
            src_prefix: u.src_prefix,
        };
        if u.is_retraction() {
            let mut changed = false;
            if let Some(r) = self
                .routes
                .get_mut(&key)
                .and_then(|d| d.routes.iter_mut().find(|r| r.neigh == nid))
            {
                changed = r.refmetric != INFINITY;
                r.refmetric = INFINITY;
                r.time = now;
                r.interval = u.interval;
                r.refresh_requested = false;
            }
            if changed {
                self.route_event(ChangeKind::Change, key, nid);
                self.reselect(now, key);
            }
            self.note_route_deadline(now, u.interval);
            return;
        }
        let Some(rid) = u.router_id else {
            self.counters.rfc_violations += 1;
            return;
        };
        if !rid.is_valid() {
            self.counters.rfc_violations += 1;
            return;
        }
        if rid == self.cfg.router_id {
            // babeld ignores routes carrying our own router-id (a stale echo of our prefix).
            return;
        }
        let price = accumulate(u.price.unwrap_or(0), self.cfg.fee, self.cfg.accumulation);
        let (neigh_rtt, via) = match self.neighbours.get(&nid) {
            Some(n) => (n.rtt, n.address),
            None => return,
        };
        let add_metric = self.input_filter(key, rid, via, ifindex);
        if add_metric == INFINITY {
            self.counters.filtered_in += 1;
            return;
        }
        let path_rtt = match (u.path_rtt, neigh_rtt) {
            (Some(p), Some(r)) => {
                p.saturating_add(u32::try_from(r.as_micros()).unwrap_or(u32::MAX))
            }
            _ => 0,
        };
        let next_hop = u.next_hop.unwrap_or(src);
        let cost = self.neighbour_cost(nid);
        let metric = u16::try_from(
            (u32::from(u.metric) + u32::from(cost) + u32::from(add_metric))
                .min(u32::from(INFINITY)),
        )
        .unwrap_or(INFINITY);
        let exists = self
            .routes
            .get(&key)
            .is_some_and(|d| d.routes.iter().any(|r| r.neigh == nid));
        if exists {
            let mut kind = None;
            if let Some(r) = self
                .routes
                .get_mut(&key)
                .and_then(|d| d.routes.iter_mut().find(|r| r.neigh == nid))
            {
                if r.refmetric != u.metric
                    || r.seqno != u.seqno
                    || r.router_id != rid
                    || r.price != price
                {
                    kind = Some(ChangeKind::Change);
                }
                if r.refmetric == INFINITY {
                    r.smoothed = metric;
                    r.smoothed_time = now;
                }
                r.router_id = rid;
                r.seqno = u.seqno;
                r.refmetric = u.metric;
                r.add_metric = add_metric;
                r.interval = u.interval;
                r.received_price = u.price.unwrap_or(0);
                r.price = price;
                r.path_rtt = path_rtt;
                r.next_hop = next_hop;
                r.time = now;
                r.refresh_requested = false;
            }
            if let Some(k) = kind {
                self.route_event(k, key, nid);
            }
        } else {
            let per_neigh = self.neighbours.get(&nid).map_or(0, |n| n.routes);
            if per_neigh >= self.cfg.limits.max_routes_per_neighbour {
                self.counters.routes_over_limit += 1;
                if let Some(n) = self.neighbours.get_mut(&nid)
                    && !n.limit_logged
                {
                    n.limit_logged = true;
                    warn!(ifindex, neighbour = %via, limit = self.cfg.limits.max_routes_per_neighbour,
                        "neighbour exceeds its route limit; dropping the excess");
                }
                return;
            }
            if self.route_count >= self.cfg.limits.max_routes {
                self.counters.routes_over_limit += 1;
                if !self.total_limit_logged {
                    self.total_limit_logged = true;
                    warn!(
                        limit = self.cfg.limits.max_routes,
                        "route table full; dropping new routes"
                    );
                }
                return;
            }
            let route = Route {
                neigh: nid,
                ifindex,
                via,
                next_hop,
                router_id: rid,
                seqno: u.seqno,
                refmetric: u.metric,
                add_metric,
                interval: u.interval,
                received_price: u.price.unwrap_or(0),
                price,
                path_rtt,
                time: now,
                smoothed: metric,
                smoothed_time: now,
                verified: None,
                refresh_requested: false,
            };
            let dest = self.routes.entry(key).or_insert_with(|| Dest {
                // Most destinations have one or two routes; Vec's default growth would reserve 4.
                routes: Vec::with_capacity(1),
                selected: None,
                installed: None,
            });
            dest.routes.push(route);
            self.route_count += 1;
            if let Some(n) = self.neighbours.get_mut(&nid) {
                n.routes += 1;
            }
            self.route_event(ChangeKind::Add, key, nid);
        }
        self.note_route_deadline(now, u.interval);
        self.reselect(now, key);
    }

    /// babeld's `input_filter`: the metric the `in` filter adds to a route from `neighbour`.
    fn input_filter(&self, key: RouteKey, rid: RouterId, neighbour: IpAddr, ifindex: u32) -> u16 {
        let Some(filter) = &self.filter else {
            return 0;
        };
        filter.input(&FilterRoute {
            prefix: key.prefix,
            src_prefix: key.src_prefix,
            router_id: rid,
            neighbour: Some(neighbour),
            ifindex,
            ifname: self
                .interfaces
                .get(&ifindex)
                .map_or("", |i| i.cfg.name.as_str()),
        })
    }

    fn note_route_deadline(&mut self, now: Instant, interval: u16) {
        let t = now + from_centis(interval) * 3;
        self.next_route_check = min_opt(self.next_route_check, Some(t));
    }

    fn route_event(&mut self, kind: ChangeKind, key: RouteKey, nid: u64) {
        if !self.cfg.events {
            return;
        }
        if let Some(n) = self.neighbours.get(&nid) {
            let e = Event::Route {
                kind,
                prefix: key.prefix,
                src_prefix: key.src_prefix,
                neighbour: n.address,
                ifindex: n.ifindex,
            };
            self.events.push_back(e);
        }
    }

    /// RFC 8966 §4.6.9: a wildcard retraction retracts every route learned from the neighbour.
    fn retract_all_from(&mut self, now: Instant, nid: u64, interval: Option<u16>) {
        let mut keys = Vec::new();
        for (k, d) in self.routes.iter_mut() {
            for r in d.routes.iter_mut().filter(|r| r.neigh == nid) {
                if r.refmetric != INFINITY {
                    r.refmetric = INFINITY;
                    r.time = now;
                    r.interval = interval.unwrap_or(r.interval);
                    keys.push(*k);
                }
            }
        }
        for k in keys {
            self.route_event(ChangeKind::Change, k, nid);
            self.reselect(now, k);
        }
    }

    /// RFC 8966 §3.8.1.1: a wildcard request gets a full dump (at most one per Hello interval,
    /// as babeld), a specific one an update or a retraction.
    fn handle_route_request(&mut self, now: Instant, ifindex: u32, r: &RouteRequest) {
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
                    i.flush_at = min_opt(i.flush_at, Some(at));
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
    /// it is forwarded to our successor with the hop count decremented, never back to the requester.
    fn handle_seqno_request(&mut self, now: Instant, nid: u64, ifindex: u32, s: &SeqnoRequest) {
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
                let d = seqno_minus(s.seqno, self.seqno);
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
        let Some(inst) = self.routes.get(&key).and_then(|d| d.installed) else {
            return;
        };
        if inst.router_id != s.router_id || seqno_minus(inst.seqno, s.seqno) >= 0 {
            self.schedule_update(now, Some(ifindex), key, true);
            return;
        }
        if s.hop_count < 2 {
            return;
        }
        let Some(succ) = self
            .routes
            .get(&key)
            .and_then(|d| d.installed.and(d.selected))
        else {
            return;
        };
        if succ == nid {
            return;
        }
        self.counters.seqno_requests_forwarded += 1;
        self.request_seqno(now, key, s.router_id, s.seqno, s.hop_count - 1, Some(succ));
    }

    /// Sends a seqno request unless an equivalent one is pending (RFC 8966 §3.8.2 duplicate
    /// suppression), and records it for resending (2 s, doubled, 3 resends).
    fn request_seqno(
        &mut self,
        now: Instant,
        key: RouteKey,
        rid: RouterId,
        seqno: u16,
        hop_count: u8,
        target: Option<u64>,
    ) {
        if let Some(p) = self.requests.get(&key)
            && p.router_id == rid
            && seqno_minus(p.seqno, seqno) >= 0
            && now < p.expires
        {
            return;
        }
        if !self.requests.contains_key(&key)
            && self.requests.len() >= self.cfg.limits.max_pending_requests
        {
            self.counters.requests_over_limit += 1;
            return;
        }
        let delay = REQUEST_TIMEOUT;
        let total = delay * (1 + 2 + 4 + 8);
        self.requests.insert(
            key,
            PendingRequest {
                router_id: rid,
                seqno,
                hop_count,
                target,
                resends_left: REQUEST_RESENDS,
                next_resend: now + delay,
                delay,
                expires: now + total,
            },
        );
        self.next_request_check = min_opt(self.next_request_check, Some(now + delay));
        self.send_seqno_request(key, rid, seqno, hop_count, target);
    }

    fn send_seqno_request(
        &mut self,
        key: RouteKey,
        rid: RouterId,
        seqno: u16,
        hop_count: u8,
        target: Option<u64>,
    ) {
        let msg = Message::SeqnoRequest(SeqnoRequest {
            prefix: key.prefix,
            v4_via_v6: false,
            src_prefix: key.src_prefix,
            seqno,
            hop_count,
            router_id: rid,
        });
        match target {
            Some(nid) => {
                if let Some(n) = self.neighbours.get(&nid) {
                    let (ifindex, addr) = (n.ifindex, n.address);
                    self.counters.seqno_requests_sent += 1;
                    self.queue(ifindex, Destination::Unicast(addr), msg);
                }
            }
            None => {
                let ifs: Vec<u32> = self
                    .interfaces
                    .iter()
                    .filter(|(_, i)| i.up)
                    .map(|(k, _)| *k)
                    .collect();
                for ifindex in ifs {
                    self.counters.seqno_requests_sent += 1;
                    self.queue(ifindex, Destination::Multicast, msg.clone());
                }
            }
        }
    }

    // ------------------------------------------------------------------ selection

    /// RFC 8966 §3.6 route selection with babeld's smoothing and hysteresis (Appendix A.3), using
    /// the configured [`Policy`]; then the consequences: kernel changes, triggered or urgent
    /// updates (§3.7.2), satisfied requests (§3.8.2) and starvation recovery (§3.8.2.1).
    fn reselect(&mut self, now: Instant, key: RouteKey) {
        let shadowed = self.xroutes.contains_key(&key);
        let policy = self.cfg.policy;
        let hl = self.cfg.smoothing_half_life;
        let threshold = self.cfg.accuracy_threshold;
        let Some(dest) = self.routes.get(&key) else {
            return;
        };
        let mut cands: Vec<Candidate> = Vec::with_capacity(dest.routes.len());
        let mut smoothed: Vec<u16> = Vec::with_capacity(dest.routes.len());
        let mut any_unfeasible: Option<(RouterId, u16)> = None;
        // The best route that only feasibility keeps out (RFC 8966 §3.8.2.2).
        let mut best_unfeasible: Option<(Candidate, RouterId, u16)> = None;
        for r in &dest.routes {
            let metric = self.route_metric(r);
            let eff = match r.verified {
                Some((m, until)) if now < until && metric < INFINITY => m,
                _ => metric,
            };
            let s = smooth(r.smoothed, eff, now.saturating_since(r.smoothed_time), hl);
            smoothed.push(s);
            let feasible = self.is_feasible(now, &key, r.router_id, r.seqno, r.refmetric);
            if !feasible && metric < INFINITY && any_unfeasible.is_none() {
                any_unfeasible = Some((r.router_id, r.seqno));
            }
            let blocked = self
                .neighbours
                .get(&r.neigh)
                .is_none_or(|n| n.accuracy < threshold);
            let c = Candidate {
                metric: eff,
                smoothed_metric: s,
                price: r.price,
                feasible: feasible && !blocked && !shadowed,
                tie_break: r.neigh,
            };
            if !feasible && !blocked && !shadowed && eff < INFINITY {
                let as_feasible = Candidate {
                    feasible: true,
                    ..c
                };
                if best_unfeasible.is_none_or(|(b, _, _)| policy.cmp(&as_feasible, &b).is_lt()) {
                    best_unfeasible = Some((as_feasible, r.router_id, r.seqno));
                }
            }
            cands.push(c);
        }
        let current = dest
            .selected
            .and_then(|id| cands.iter().find(|c| c.tie_break == id))
            .copied();
        let chosen = match current {
            Some(cur) if cur.selectable() => cands
                .iter()
                .filter(|c| c.tie_break != cur.tie_break && policy.should_switch(&cur, c))
                .min_by(|a, b| policy.cmp(a, b))
                .map_or(Some(cur.tie_break), |c| Some(c.tie_break)),
            _ => policy.best(cands.iter()).map(|c| c.tie_break),
        };
        let new_inst = chosen.and_then(|id| {
            dest.routes
                .iter()
                .find(|r| r.neigh == id)
                .map(|r| Installed {
                    next_hop: r.next_hop,
                    via: r.via,
                    ifindex: r.ifindex,
                    metric: self.route_metric(r),
                    router_id: r.router_id,
                    seqno: r.seqno,
                    price: r.price,
                })
        });
        let chosen_cand = chosen
            .and_then(|id| cands.iter().find(|c| c.tie_break == id))
            .copied();
        let old_inst = dest.installed;
        let old_sel = dest.selected;
        // babeld holds a destination whose selected route was lost while nothing else is
        // selectable: the route stays selected with its infinite metric until it leaves the
        // table, and the kernel keeps an `unreachable` route for it.
        let held_before = old_inst.is_none() && old_sel.is_some();
        let held = if new_inst.is_none() && !shadowed {
            old_sel.filter(|id| {
                cands
                    .iter()
                    .any(|c| c.tie_break == *id && c.metric == INFINITY)
            })
        } else {
            None
        };
        if let Some(dest) = self.routes.get_mut(&key) {
            for (r, s) in dest.routes.iter_mut().zip(smoothed) {
                r.smoothed = s;
                r.smoothed_time = now;
            }
            dest.selected = chosen.or(held);
            dest.installed = new_inst;
        }
        // Kernel.
        match (old_inst, new_inst) {
            (None, Some(n)) => self.kernel(RouteOp::Add, key, &n),
            (Some(o), None) if held.is_some() => self.kernel(RouteOp::Unreachable, key, &o),
            (Some(o), None) => self.kernel(RouteOp::Delete, key, &o),
            (Some(o), Some(n)) if o.next_hop != n.next_hop || o.ifindex != n.ifindex => {
                self.kernel(RouteOp::Replace, key, &n)
            }
            (None, None) if held_before && held.is_none() => self.kernel_unhold(key),
            _ => {}
        }
        if old_sel != chosen {
            if let Some(id) = old_sel {
                self.route_event(ChangeKind::Change, key, id);
            }
            if let Some(id) = chosen {
                self.route_event(ChangeKind::Change, key, id);
            }
        }
        // Requests satisfied by the new route (RFC 8966 §3.8.2).
        let mut satisfied = false;
        if let Some(n) = new_inst
            && let Some(p) = self.requests.get(&key)
            && p.router_id == n.router_id
            && seqno_minus(n.seqno, p.seqno) >= 0
        {
            self.requests.remove(&key);
            satisfied = true;
        }
        // An unfeasible route the policy prefers to the selected one: ask its sender for a newer
        // seqno (RFC 8966 §3.8.2.2), so that price-aware policies can move to it too.
        if let (Some((u, rid, seqno)), Some(c)) = (best_unfeasible, chosen_cand)
            && policy.cmp(&u, &c).is_lt()
        {
            let want = self
                .sources
                .get(&(key, rid))
                .map_or(seqno.wrapping_add(1), |s| s.seqno.wrapping_add(1));
            self.request_seqno(
                now,
                key,
                rid,
                want,
                SEQNO_REQUEST_HOP_COUNT,
                Some(u.tie_break),
            );
        }
        // Triggered updates (RFC 8966 §3.7.2).
        match (old_inst, new_inst) {
            (None, Some(_)) => self.schedule_update(now, None, key, satisfied),
            (Some(o), None) => {
                self.schedule_update(now, None, key, true);
                // Starvation (RFC 8966 §3.8.2.1): ask the source for a newer seqno.
                let want = self
                    .sources
                    .get(&(key, o.router_id))
                    .map_or(o.seqno.wrapping_add(1), |s| s.seqno.wrapping_add(1));
                self.request_seqno(now, key, o.router_id, want, SEQNO_REQUEST_HOP_COUNT, None);
            }
            (Some(o), Some(n)) => {
                if o.router_id != n.router_id || satisfied {
                    self.schedule_update(now, None, key, true);
                } else if o.seqno != n.seqno
                    || o.next_hop != n.next_hop
                    || n.metric.saturating_add(TRIGGER_IMPROVEMENT) <= o.metric
                    || n.metric >= o.metric.saturating_add(TRIGGER_WORSENING)
                    || o.price != n.price
                {
                    self.schedule_update(now, None, key, false);
                }
            }
            (None, None) => {
                if let Some((rid, seqno)) = any_unfeasible
                    && !shadowed
                {
                    let want = self
                        .sources
                        .get(&(key, rid))
                        .map_or(seqno.wrapping_add(1), |s| s.seqno.wrapping_add(1));
                    self.request_seqno(now, key, rid, want, SEQNO_REQUEST_HOP_COUNT, None);
                }
            }
        }
    }

    /// The held destination's `unreachable` kernel route goes (its route left the table).
    fn kernel_unhold(&mut self, key: RouteKey) {
        self.route_changes.push_back(RouteChange {
            op: RouteOp::Delete,
            prefix: key.prefix,
            src_prefix: key.src_prefix,
            next_hop: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            ifindex: 0,
            metric: INFINITY,
        });
    }

    fn kernel(&mut self, op: RouteOp, key: RouteKey, i: &Installed) {
        self.route_changes.push_back(RouteChange {
            op,
            prefix: key.prefix,
            src_prefix: key.src_prefix,
            next_hop: i.next_hop,
            ifindex: i.ifindex,
            metric: i.metric,
        });
    }

    // ------------------------------------------------------------------ updates out

    /// Queues an update for `key` on one interface or all; urgent ones go out within 200 ms and
    /// are repeated (RFC 8966 §3.7.2), others within half a Hello interval.
    fn schedule_update(&mut self, now: Instant, ifindex: Option<u32>, key: RouteKey, urgent: bool) {
        let ifs: Vec<u32> = match ifindex {
            Some(i) => vec![i],
            None => self
                .interfaces
                .iter()
                .filter(|(_, i)| i.up)
                .map(|(k, _)| *k)
                .collect(),
        };
        for ifindex in ifs {
            let delay_max = match self.interfaces.get(&ifindex) {
                Some(i) if i.up => {
                    if urgent {
                        URGENT_TIMEOUT
                    } else {
                        i.cfg.hello_interval / 2
                    }
                }
                _ => continue,
            };
            let j = self.jitter(delay_max);
            let resend = REQUEST_TIMEOUT;
            if let Some(i) = self.interfaces.get_mut(&ifindex) {
                let e = i.pending.entry(key).or_insert(false);
                *e |= urgent;
                i.flush_at = min_opt(i.flush_at, Some(now + j));
                if urgent {
                    let resend = resend.min(i.cfg.hello_interval / 2);
                    i.resends.insert(key, (URGENT_REPEATS, now + resend));
                    i.next_resend = min_opt(i.next_resend, Some(now + resend));
                }
            }
        }
    }

    /// The Update we advertise for `key` on `ifindex` now: our xroute, our selected route (not on
    /// its own interface when split horizon applies, RFC 8966 §3.7.4), or a retraction. `full`
    /// (periodic dump) leaves out retractions and split-horizon routes. The `out` filter
    /// (babeld's `output_filter`) adds its metric or keeps the update off this interface.
    fn update_for(
        &mut self,
        now: Instant,
        ifindex: u32,
        key: RouteKey,
        full: bool,
    ) -> Option<Message> {
        let mut msg = self.unfiltered_update_for(now, ifindex, key, full)?;
        let (Some(filter), Message::Update(u)) = (&self.filter, &mut msg) else {
            return Some(msg);
        };
        let ifname = self
            .interfaces
            .get(&ifindex)
            .map_or("", |i| i.cfg.name.as_str());
        let add = filter.output(&FilterRoute {
            prefix: key.prefix,
            src_prefix: key.src_prefix,
            router_id: u.router_id.unwrap_or(self.cfg.router_id),
            neighbour: None,
            ifindex,
            ifname,
        });
        if add == INFINITY {
            self.counters.filtered_out += 1;
            return None;
        }
        u.metric = add_metric(u.metric, add);
        Some(msg)
    }

    fn unfiltered_update_for(
        &mut self,
        now: Instant,
        ifindex: u32,
        key: RouteKey,
        full: bool,
    ) -> Option<Message> {
        let iface = self.interfaces.get(&ifindex)?;
        let interval = to_centis(iface.cfg.update_interval);
        let split = iface.cfg.split_horizon;
        let althea = iface.cfg.flavour == babel_wire::Flavour::Althea;
        let v4 = key.prefix.is_ipv4();
        // babeld: AE 1 with our IPv4 address on links that have one, else AE 4 (RFC 9229).
        let v4_next_hop = iface.cfg.ipv4.filter(|_| v4).map(IpAddr::V4);
        if v4 && v4_next_hop.is_none() && !iface.cfg.v4_via_v6 {
            // RFC 9229 §2 leaves AE 4 optional; babeld then sends nothing for IPv4 on this link,
            // not even retractions, since no neighbour here can use an IPv4 route from us.
            return None;
        }
        let mk = |seqno: u16, metric: u16, rid: RouterId, price: Option<u32>, rtt: Option<u32>| {
            Message::Update(Update {
                prefix: Some(key.prefix),
                v4_via_v6: v4 && v4_next_hop.is_none(),
                src_prefix: key.src_prefix,
                interval,
                seqno,
                metric,
                router_id: Some(rid),
                next_hop: v4_next_hop,
                price,
                path_rtt: rtt,
                diversity: None,
            })
        };
        if let Some(x) = self.xroutes.get(&key) {
            let (seqno, metric, rid) = (self.seqno, x.metric, self.cfg.router_id);
            self.update_source(now, key, rid, seqno, metric);
            return Some(mk(seqno, metric, rid, Some(0), althea.then_some(0)));
        }
        let inst = self.routes.get(&key).and_then(|d| {
            let id = d.selected?;
            let r = d.routes.iter().find(|r| r.neigh == id)?;
            d.installed.map(|_| (r.clone(), self.route_metric(r)))
        });
        match inst {
            Some((r, metric)) if metric < INFINITY => {
                if split && r.ifindex == ifindex {
                    // babeld: the route is simply not sent back where it came from.
                    return None;
                }
                self.update_source(now, key, r.router_id, r.seqno, metric);
                let rtt = (r.path_rtt != 0).then_some(r.path_rtt);
                Some(mk(r.seqno, metric, r.router_id, Some(r.price), rtt))
            }
            _ if full => None,
            _ => Some(mk(self.seqno, INFINITY, self.cfg.router_id, None, None)),
        }
    }

    /// Sends the buffered updates of an interface, packed (RFC 8966 §3.7, §4.5 compression by the
    /// codec).
    fn flush_updates(&mut self, now: Instant, ifindex: u32) {
        let Some(i) = self.interfaces.get_mut(&ifindex) else {
            return;
        };
        i.flush_at = None;
        let full = std::mem::take(&mut i.pending_full);
        let pending = std::mem::take(&mut i.pending);
        if full {
            i.last_full = Some(now);
        }
        let mut msgs = Vec::new();
        if full {
            let mut keys: Vec<RouteKey> = self.xroutes.keys().copied().collect();
            keys.extend(
                self.routes
                    .iter()
                    .filter(|(_, d)| d.installed.is_some())
                    .map(|(k, _)| *k),
            );
            keys.sort_unstable();
            keys.dedup();
            for k in keys {
                if pending.contains_key(&k) {
                    continue;
                }
                if let Some(m) = self.update_for(now, ifindex, k, true) {
                    msgs.push(m);
                }
            }
        }
        for k in pending.keys() {
            if let Some(m) = self.update_for(now, ifindex, *k, false) {
                msgs.push(m);
            }
        }
        if !msgs.is_empty() {
            self.counters.updates_sent += msgs.len() as u64;
            self.send(ifindex, Destination::Multicast, msgs);
        }
    }

    /// Sends messages to `dst`; on a `unicast` interface what would go to the multicast group
    /// goes instead as one copy to each neighbour on it (babeld's `unicast`: RFC 8966 §4 allows
    /// any TLV but Hellos to be sent unicast, and Hellos are handled by the callers).
    fn send(&mut self, ifindex: u32, dst: Destination, msgs: Vec<Message>) {
        let Some(i) = self.interfaces.get(&ifindex) else {
            return;
        };
        if dst == Destination::Multicast && i.cfg.unicast {
            let addrs: Vec<IpAddr> = self.neighbours_on(ifindex).map(|(a, _)| a).collect();
            for a in addrs {
                self.send_packed(ifindex, Destination::Unicast(a), msgs.clone());
            }
            return;
        }
        self.send_packed(ifindex, dst, msgs);
    }

    /// Packs messages into as few packets as the interface allows and queues them.
    fn send_packed(&mut self, ifindex: u32, dst: Destination, msgs: Vec<Message>) {
        let Some(i) = self.interfaces.get(&ifindex) else {
            return;
        };
        let opts = EncodeOptions {
            flavour: i.cfg.flavour,
            max_packet_len: i.cfg.mtu.saturating_sub(48).max(64),
            // RFC 8967 §4.2: room for the PC TLV and the MACs, so signed packets fit the MTU.
            trailer_room: i.cfg.auth.as_ref().map_or(0, |a| {
                if a.keys.is_empty() {
                    0
                } else {
                    mac::overhead(&a.keys)
                }
            }),
            one_sub_tlv: i.cfg.one_sub_tlv,
        };
        let mut b = PacketBuilder::new(opts);
        let mut count = 0usize;
        for m in &msgs {
            match b.push(m) {
                Ok(()) => count += 1,
                Err(PushError::Full) => {
                    let full = std::mem::replace(&mut b, PacketBuilder::new(opts));
                    self.emit(ifindex, dst, full, count);
                    count = 0;
                    match b.push(m) {
                        Ok(()) => count += 1,
                        Err(e) => warn!(error = %e, "cannot encode message"),
                    }
                }
                Err(e) => warn!(error = %e, "cannot encode message"),
            }
        }
        self.emit(ifindex, dst, b, count);
    }

    fn emit(&mut self, ifindex: u32, dst: Destination, b: PacketBuilder, messages: usize) {
        if b.is_empty() {
            return;
        }
        let mut bytes = b.finish();
        match self.sign(ifindex, dst, &bytes) {
            Ok(Some(signed)) => bytes = signed,
            Ok(None) => {}
            Err(()) => return,
        }
        self.counters.packets_sent += 1;
        self.counters.bytes_sent += bytes.len() as u64;
        self.transmits.push_back(Transmit {
            ifindex,
            dst,
            bytes,
            messages,
        });
    }

    /// RFC 8967 §4.2: on an interface with keys, the packet gets our next PC and Index and one MAC
    /// per key, computed with the pseudo-header from our link-local address to the destination
    /// (the multicast group or the neighbour) on the protocol port. `Ok(None)`: no keys, sent
    /// unsigned; `Err`: not sent.
    fn sign(
        &mut self,
        ifindex: u32,
        dst: Destination,
        unsigned: &[u8],
    ) -> Result<Option<bytes::Bytes>, ()> {
        let Some(i) = self.interfaces.get(&ifindex) else {
            return Ok(None);
        };
        let Some(auth) = i.cfg.auth.as_ref().filter(|a| !a.keys.is_empty()) else {
            return Ok(None);
        };
        let pseudo =
            PseudoHeader::babeld(i.cfg.address, self.dst_address(dst), self.cfg.protocol_port);
        let keys = auth.keys.clone();
        let (pc, index) = self.auth.next_pc(ifindex);
        match mac::sign(unsigned, pc, &index, &keys, &pseudo) {
            Ok(v) => Ok(Some(bytes::Bytes::from(v))),
            Err(e) => {
                warn!(ifindex, error = %e, "cannot sign packet, not sent");
                Err(())
            }
        }
    }

    /// RFC 8966 §3.4.1-§3.4.2: a multicast Hello, with IHUs for every neighbour every third Hello
    /// (babeld), and in between for neighbours whose rxcost changed since the last IHU or, on
    /// lossy (link-quality) links, whose rxcost is above nominal. With timestamps (RFC 9616) the
    /// IHUs echo the neighbour's last Hello timestamp and travel with our timestamped Hello. On a
    /// `unicast` interface the multicast Hello goes alone (babeld still sends it) and each
    /// neighbour's IHU travels with its unicast Hello ([`Engine::send_unicast_hello`]).
    fn send_hello(&mut self, now: Instant, ifindex: u32) {
        let Some(i) = self.interfaces.get_mut(&ifindex) else {
            return;
        };
        i.hello_seqno = i.hello_seqno.wrapping_add(1);
        i.hello_count += 1;
        let all = i.ihu_asap || i.hello_count % 3 == 1;
        i.ihu_asap = false;
        let ts = i.cfg.timestamps.then(|| now.as_micros() as u32);
        let hello = Message::Hello(Hello {
            unicast: false,
            seqno: i.hello_seqno,
            interval: to_centis(i.cfg.hello_interval),
            timestamp: ts,
        });
        let cfg = i.cfg.clone();
        let mut msgs = vec![hello.clone()];
        let ids: Vec<u64> = self.neighbours_on(ifindex).map(|(_, id)| id).collect();
        let mut copies = Vec::new();
        for id in ids {
            self.refresh_neighbour(now, id);
            let Some(n) = self.neighbours.get(&id) else {
                continue;
            };
            let (addr, configured) = (n.address, n.configured);
            // A configured neighbour whose multicast Hellos we do not hear gets a unicast copy of
            // this Hello: babeld 1.12 flushes a neighbour whose multicast history is empty.
            let copy = configured && n.hello.reach & 0xF000 == 0;
            if cfg.unicast && !configured {
                continue;
            }
            let ihu = self.ihu_for(now, id, &cfg, all, ts.is_some());
            match (cfg.unicast, copy) {
                (false, _) => {
                    msgs.extend(ihu);
                    if copy {
                        copies.push((addr, vec![hello.clone()]));
                    }
                }
                (true, true) => {
                    copies.push((addr, [hello.clone()].into_iter().chain(ihu).collect()))
                }
                (true, false) => copies.extend(ihu.map(|m| (addr, vec![m]))),
            }
        }
        self.counters.hellos_sent += 1;
        self.counters.ihus_sent += (msgs.len() - 1) as u64;
        if ts.is_some() {
            self.send_timestamped(now, ifindex, msgs);
        } else {
            self.send_packed(ifindex, Destination::Multicast, msgs);
        }
        for (addr, msgs) in copies {
            self.counters.ihus_sent +=
                msgs.iter().filter(|m| matches!(m, Message::Ihu(_))).count() as u64;
            self.send_packed(ifindex, Destination::Unicast(addr), msgs);
        }
    }

    /// RFC 9616 §2.3: a timestamped IHU is only useful in a packet that also carries a
    /// timestamped Hello (the receiver takes t3 from it). `msgs` starts with our Hello; when the
    /// IHUs overflow into more packets, each further packet gets an unscheduled Hello (interval
    /// 0, next seqno, timestamp) first, as babeld's `send_ihu` does.
    fn send_timestamped(&mut self, now: Instant, ifindex: u32, mut msgs: Vec<Message>) {
        loop {
            let before = self.transmits.len();
            self.send_packed(ifindex, Destination::Multicast, msgs.clone());
            let first = self.transmits.get(before).map_or(0, |t| t.messages);
            if self.transmits.len() <= before + 1 || first <= 1 || first >= msgs.len() {
                return;
            }
            // Take back the overflow packets and send their messages after a new Hello.
            for t in self.transmits.drain(before + 1..) {
                self.counters.packets_sent = self.counters.packets_sent.saturating_sub(1);
                self.counters.bytes_sent = self
                    .counters
                    .bytes_sent
                    .saturating_sub(t.bytes.len() as u64);
            }
            let Some(i) = self.interfaces.get_mut(&ifindex) else {
                return;
            };
            i.hello_seqno = i.hello_seqno.wrapping_add(1);
            let hello = Message::Hello(Hello {
                unicast: false,
                seqno: i.hello_seqno,
                interval: 0,
                timestamp: Some(now.as_micros() as u32),
            });
            self.counters.hellos_sent += 1;
            msgs = std::iter::once(hello)
                .chain(msgs.into_iter().skip(first))
                .collect();
        }
    }

    /// The IHU for neighbour `nid` (RFC 8966 §3.4.2) if one is due: with every third Hello (`all`),
    /// when its rxcost changed since the last one, or when it is lossy on a link-quality link;
    /// with `timestamped`, echoing its last Hello timestamp (RFC 9616 §3.2).
    fn ihu_for(
        &mut self,
        now: Instant,
        nid: u64,
        cfg: &InterfaceConfig,
        all: bool,
        timestamped: bool,
    ) -> Option<Message> {
        let n = self.neighbours.get_mut(&nid)?;
        let marginal = cfg.link_quality && n.rxcost > cfg.rxcost;
        if !(all || marginal || n.rxcost != n.rxcost_sent) {
            return None;
        }
        n.rxcost_sent = n.rxcost;
        // babeld echoes the neighbour's last Hello timestamp while it is fresh enough, and
        // forgets it otherwise (or when we send no timestamps).
        let fresh = now.saturating_since(n.hello_ts_time) < crate::rtt::ECHO_VALIDITY;
        if !timestamped || !fresh {
            n.hello_ts = None;
        }
        let timestamp = match (timestamped, n.hello_ts) {
            (true, Some((origin, receive))) => Some(IhuTimestamp { origin, receive }),
            _ => None,
        };
        Some(Message::Ihu(Ihu {
            address: Some(n.address),
            rxcost: n.rxcost,
            interval: to_centis(cfg.hello_interval * 3),
            timestamp,
        }))
    }

    /// RFC 8966 §3.4.1: a scheduled unicast Hello to one neighbour, with the neighbour's own
    /// seqno. On a `unicast` interface it carries the neighbour's IHU (every third Hello, or as
    /// [`Engine::ihu_for`] says), so that IHU and Hello timestamps share a packet (RFC 9616).
    fn send_unicast_hello(&mut self, now: Instant, nid: u64) {
        let Some(n) = self.neighbours.get_mut(&nid) else {
            return;
        };
        let Some(i) = self.interfaces.get(&n.ifindex).filter(|i| i.up) else {
            n.next_uhello = None;
            return;
        };
        let Some(iv) = i.cfg.unicast_hello_interval_for(n.configured) else {
            n.next_uhello = None;
            return;
        };
        n.uhello_seqno = n.uhello_seqno.wrapping_add(1);
        n.uhello_count = n.uhello_count.wrapping_add(1);
        n.next_uhello = Some(now + iv);
        let all = std::mem::take(&mut n.ihu_asap) || n.uhello_count % 3 == 1;
        let ts = i.cfg.timestamps.then(|| now.as_micros() as u32);
        let msg = Message::Hello(Hello {
            unicast: true,
            seqno: n.uhello_seqno,
            interval: to_centis(iv),
            timestamp: ts,
        });
        let (ifindex, addr) = (n.ifindex, n.address);
        let cfg = i.cfg.clone();
        let mut msgs = vec![msg];
        if cfg.unicast {
            self.refresh_neighbour(now, nid);
            if let Some(ihu) = self.ihu_for(now, nid, &cfg, all, ts.is_some()) {
                self.counters.ihus_sent += 1;
                msgs.push(ihu);
            }
        }
        self.counters.hellos_sent += 1;
        self.send_packed(ifindex, Destination::Unicast(addr), msgs);
    }

    // ------------------------------------------------------------------ timers

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
            let gc = self.cfg.source_gc_time;
            self.sources
                .retain(|_, s| now.saturating_since(s.time) <= gc);
            self.next_source_gc = now + gc / 4;
        }
    }

    /// RFC 8966 A.1 missed Hellos, §3.4.2 txcost expiry, and babeld's neighbour flush (empty
    /// histories or 300 s without a Hello).
    fn check_neighbours(&mut self, now: Instant) {
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
            // A configured neighbour stays, heard or not (our `neighbour` option).
            if !n.configured && (silent || (empty && !young)) {
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
            if n.next_uhello.is_none()
                && let Some(iv) = self
                    .interfaces
                    .get(&n.ifindex)
                    .and_then(|i| i.cfg.unicast_hello_interval_for(configured))
            {
                n.next_uhello = Some(now + iv);
            }
            self.refresh_neighbour(now, id);
        }
        self.next_neigh_check = next.map(|t| t.max(now + Duration::from_millis(10)));
    }

    fn flush_neighbour(&mut self, now: Instant, nid: u64) {
        let Some(n) = self.neighbours.remove(&nid) else {
            return;
        };
        self.neigh_index.remove(&(n.ifindex, n.address));
        self.auth.forget(n.ifindex, n.address);
        let mut keys = Vec::new();
        for (k, d) in self.routes.iter_mut() {
            let before = d.routes.len();
            d.routes.retain(|r| r.neigh != nid);
            if d.routes.len() != before {
                keys.push(*k);
            }
        }
        self.route_count = self.route_count.saturating_sub(n.routes);
        self.requests.retain(|_, p| p.target != Some(nid));
        if self.cfg.events {
            for k in &keys {
                self.events.push_back(Event::Route {
                    kind: ChangeKind::Flush,
                    prefix: k.prefix,
                    src_prefix: k.src_prefix,
                    neighbour: n.address,
                    ifindex: n.ifindex,
                });
            }
        }
        self.event(Event::Neighbour {
            kind: ChangeKind::Flush,
            ifindex: n.ifindex,
            address: n.address,
        });
        for k in keys {
            self.reselect(now, k);
            if self
                .routes
                .get(&k)
                .is_some_and(|d| d.routes.is_empty() && d.installed.is_none())
            {
                self.routes.remove(&k);
            }
        }
    }

    /// RFC 8966 §3.5.3-§3.5.4 and §3.8.2.3: a route not refreshed for 3 intervals is refreshed by a
    /// unicast route request if selected; after 3.5 intervals it is retracted (metric infinite);
    /// after babeld's hold time (max(6 × interval, 15 s)) it is removed. Also ends verified-metric
    /// overrides.
    fn expire_routes(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        let mut reselect = Vec::new();
        let mut refresh: Vec<(u32, IpAddr, RouteKey)> = Vec::new();
        let mut flushed: Vec<(RouteKey, IpAddr, u32)> = Vec::new();
        let mut removed_per_neigh: BTreeMap<u64, usize> = BTreeMap::new();
        for (k, d) in self.routes.iter_mut() {
            let mut changed = false;
            let selected = d.installed.and(d.selected);
            d.routes.retain_mut(|r| {
                let iv = from_centis(r.interval);
                let hold = r.time + hold_time(r.interval);
                if now >= hold {
                    changed = true;
                    flushed.push((*k, r.via, r.ifindex));
                    *removed_per_neigh.entry(r.neigh).or_default() += 1;
                    return false;
                }
                next = min_opt(next, Some(hold));
                let expiry = r.time + iv * 7 / 2;
                if r.refmetric < INFINITY {
                    if now >= expiry {
                        r.refmetric = INFINITY;
                        changed = true;
                    } else {
                        next = min_opt(next, Some(expiry));
                        let old = r.time + iv * 3;
                        if selected == Some(r.neigh) && !r.refresh_requested {
                            if now >= old {
                                r.refresh_requested = true;
                                refresh.push((r.ifindex, r.via, *k));
                            } else {
                                next = min_opt(next, Some(old));
                            }
                        }
                    }
                }
                if let Some((_, until)) = r.verified {
                    if now >= until {
                        r.verified = None;
                        changed = true;
                    } else {
                        next = min_opt(next, Some(until));
                    }
                }
                true
            });
            if changed {
                reselect.push(*k);
            }
        }
        for (nid, c) in removed_per_neigh {
            self.route_count = self.route_count.saturating_sub(c);
            if let Some(n) = self.neighbours.get_mut(&nid) {
                n.routes = n.routes.saturating_sub(c);
            }
        }
        if self.cfg.events {
            for (k, via, ifindex) in flushed {
                self.events.push_back(Event::Route {
                    kind: ChangeKind::Flush,
                    prefix: k.prefix,
                    src_prefix: k.src_prefix,
                    neighbour: via,
                    ifindex,
                });
            }
        }
        for (ifindex, via, k) in refresh {
            let req = Message::RouteRequest(RouteRequest {
                prefix: Some(k.prefix),
                v4_via_v6: false,
                src_prefix: k.src_prefix,
            });
            self.counters.route_requests_sent += 1;
            self.queue(ifindex, Destination::Unicast(via), req);
        }
        for k in reselect {
            self.reselect(now, k);
            if self
                .routes
                .get(&k)
                .is_some_and(|d| d.routes.is_empty() && d.installed.is_none())
            {
                self.routes.remove(&k);
            }
        }
        self.next_route_check = next.map(|t| t.max(now + Duration::from_millis(500)));
    }

    fn resend_requests(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        let mut resend = Vec::new();
        self.requests.retain(|k, p| {
            if now >= p.expires {
                return false;
            }
            if p.resends_left > 0 && now >= p.next_resend {
                p.resends_left -= 1;
                p.delay *= 2;
                p.next_resend = now + p.delay;
                resend.push((*k, p.router_id, p.seqno, p.hop_count, p.target));
            }
            next = min_opt(
                next,
                Some(if p.resends_left > 0 {
                    p.next_resend
                } else {
                    p.expires
                }),
            );
            true
        });
        for (k, rid, seqno, hop, target) in resend {
            self.send_seqno_request(k, rid, seqno, hop, target);
        }
        self.next_request_check = next;
    }
}

/// The kind of link cost computation an interface of this kind uses, for dumps.
pub fn link_cost_algorithm(kind: InterfaceKind) -> &'static str {
    match kind {
        InterfaceKind::Wired | InterfaceKind::Tunnel => "2-out-of-3",
        InterfaceKind::Wireless => "etx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_halves_per_half_life() {
        let hl = Duration::from_secs(4);
        assert_eq!(smooth(1000, 0, Duration::from_secs(4), hl), 500);
        assert_eq!(smooth(1000, 0, Duration::from_secs(8), hl), 250);
        assert_eq!(smooth(1000, 0, Duration::ZERO, hl), 1000);
        assert_eq!(smooth(1000, 0, Duration::from_secs(100), hl), 0);
        assert_eq!(smooth(INFINITY, 10, Duration::ZERO, hl), 10);
    }
}
