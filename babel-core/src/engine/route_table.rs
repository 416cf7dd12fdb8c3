//! The route table (RFC 8966 §3.2.6): per destination, the routes learned from each neighbour,
//! the selected one and what is installed. The table owns its counters (routes in total, per
//! neighbour, installed destinations); no caller keeps them in step.

use std::collections::btree_map::{self, BTreeMap};
use std::net::IpAddr;
use std::num::NonZeroU64;

use babel_wire::{Metric, Prefix, RouterId, Seqno};

use super::{InstalledRoute, RouteKey, prefix_order};
use crate::packed::{Instant48, Interned, Interner, InternerFull, Repack};
use crate::time::Instant;

/// One route: a destination as learned from one neighbour (RFC 8966 §3.2.6). Its data is
/// [`RouteData`] (reached through `Deref`); the neighbour is fixed once the route is in the
/// table, since the counters depend on it. The neighbour's address and interface are the
/// route's `via` and interface ([`Engine::route_via`](super::Engine)): a neighbour is known for
/// as long as it has routes (`flush_neighbour` removes them first), and its id never changes
/// address or interface, so the route does not keep its own copy (21 bytes, issue 18).
#[derive(Clone, Debug)]
pub(super) struct Route {
    neigh: u64,
    data: RouteData,
}

/// What a route carries besides its neighbour.
#[derive(Clone, Debug)]
pub(super) struct RouteData {
    /// The next hop, kept once in the table ([`RouteTable::next_hop`] reads it): most routes'
    /// next hop is their neighbour's address, or the one IPv4 address it announces.
    pub(super) next_hop: Interned,
    pub(super) router_id: RouterId,
    pub(super) seqno: u16,
    pub(super) refmetric: u16,
    /// Metric added by the `in` filter (babeld `add_metric`).
    pub(super) add_metric: u16,
    /// Advertised update interval, centiseconds.
    pub(super) interval: u16,
    pub(super) received_price: u32,
    pub(super) price: u32,
    pub(super) path_rtt: u32,
    /// When the last Update came (RFC 8966 §3.5.3), 48 bits ([`Instant48`]: exact) as the
    /// times below: 6 bytes each, 2-byte aligned.
    pub(super) time: Instant48,
    pub(super) smoothed: u16,
    pub(super) smoothed_time: Instant48,
    /// The verified cost in force ([`RouteData::verified`]); meaningless while
    /// `verified_until` is zero.
    pub(super) verified_metric: u16,
    /// Until when the verified cost is in force; [`Instant::ZERO`]: none. Two fields, not an
    /// `Option<(u16, Instant)>`, which costs 24 bytes in every route instead of 8.
    pub(super) verified_until: Instant48,
    pub(super) refresh_requested: bool,
}

impl RouteData {
    /// The verified cost (`spec/verify.md` §5.2) and until when it is in force, if one was set
    /// and not cleared.
    pub(super) fn verified(&self) -> Option<(u16, Instant)> {
        let until = self.verified_until.get();
        (until != Instant::ZERO).then_some((self.verified_metric, until))
    }

    /// Sets or clears the verified cost. One ending at [`Instant::ZERO`] is none.
    pub(super) fn set_verified(&mut self, v: Option<(u16, Instant)>) {
        let (metric, until) = v.unwrap_or((0, Instant::ZERO));
        (self.verified_metric, self.verified_until) = (metric, until.into());
    }
}

impl Route {
    /// The neighbour this route was learned from.
    pub(super) fn neigh(&self) -> u64 {
        self.neigh
    }
}

impl std::ops::Deref for Route {
    type Target = RouteData;
    fn deref(&self) -> &RouteData {
        &self.data
    }
}

impl std::ops::DerefMut for Route {
    fn deref_mut(&mut self) -> &mut RouteData {
        &mut self.data
    }
}

/// A destination's routes, in the order they were learned. Most destinations of a large table
/// have one route: it is kept inline in the destination (no `Vec` header, no allocation of its
/// own), and only a second route moves them to a `Vec` (issue 18: 24 bytes and an allocation per
/// destination less in a full table).
///
/// With several routes, the place of the selected one is remembered (a hint, checked before
/// use: a removal may move it until the next selection). A periodic dump reads each
/// destination's installed route and nothing else of it: with the hint it reads that route,
/// not every route learned before it (issue 18: one of a destination's routes read per dump
/// instead of half of them on average, each a cache miss in a large table). The hint lives
/// beside the `Vec`, in room the inline route's variant leaves, so it costs no byte.
#[derive(Clone)]
enum Routes {
    One(Route),
    Many(Vec<Route>, SelectedAt),
}

/// The routes, without the hint (which two tables holding the same routes and selections may
/// have in different states: a selection that stands does not write it).
impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Routes::One(r) => f.debug_tuple("One").field(r).finish(),
            Routes::Many(v, _) => f.debug_tuple("Many").field(v).finish(),
        }
    }
}

/// The index in [`Routes::Many`] of the selected route when it was last selected.
#[derive(Clone, Copy, Debug, Default)]
struct SelectedAt(u32);

impl Routes {
    fn push(&mut self, route: Route) {
        match self {
            Routes::Many(v, _) if v.is_empty() => *self = Routes::One(route),
            Routes::Many(v, _) => v.push(route),
            Routes::One(_) => {
                if let Routes::One(first) = std::mem::replace(self, Routes::none()) {
                    *self = Routes::Many(vec![first, route], SelectedAt(0));
                }
            }
        }
    }

    /// No route.
    fn none() -> Routes {
        Routes::Many(Vec::new(), SelectedAt(0))
    }

    /// Back to the inline form once a single route is left.
    fn compact(&mut self) {
        if let Routes::Many(v, _) = self
            && v.len() == 1
            && let Some(r) = v.pop()
        {
            *self = Routes::One(r);
        }
    }

    /// The route learned from `neigh`, looked for first where the selected route was when it
    /// was selected (the caller asks for the selected route).
    fn selected(&self, neigh: u64) -> Option<&Route> {
        if let Routes::Many(v, SelectedAt(i)) = self
            && let Some(r) = v.get(*i as usize).filter(|r| r.neigh == neigh)
        {
            return Some(r);
        }
        self.iter().find(|r| r.neigh == neigh)
    }

    /// Remembers where the route of `neigh` is, as the selected one.
    fn note_selected(&mut self, neigh: Option<u64>) {
        if let Routes::Many(v, at) = self
            && let Some(i) = neigh.and_then(|n| v.iter().position(|r| r.neigh == n))
        {
            *at = SelectedAt(u32::try_from(i).unwrap_or(0));
        }
    }

    /// Removes the routes for which `remove` is true; returns them in order.
    fn extract(&mut self, mut remove: impl FnMut(&Route) -> bool) -> Vec<Route> {
        let out = match self {
            Routes::One(r) if remove(r) => match std::mem::replace(self, Routes::none()) {
                Routes::One(r) => vec![r],
                Routes::Many(..) => Vec::new(),
            },
            Routes::One(_) => Vec::new(),
            Routes::Many(v, _) => v.extract_if(.., |r| remove(r)).collect(),
        };
        self.compact();
        out
    }

    /// Keeps the routes for which `keep` is true (it may change them), in order.
    fn retain_mut(&mut self, mut keep: impl FnMut(&mut Route) -> bool) {
        match self {
            Routes::One(r) => {
                if !keep(r) {
                    *self = Routes::none();
                }
            }
            Routes::Many(v, _) => v.retain_mut(keep),
        }
        self.compact();
    }
}

impl std::ops::Deref for Routes {
    type Target = [Route];
    fn deref(&self) -> &[Route] {
        match self {
            Routes::One(r) => std::slice::from_ref(r),
            Routes::Many(v, _) => v,
        }
    }
}

impl std::ops::DerefMut for Routes {
    fn deref_mut(&mut self) -> &mut [Route] {
        match self {
            Routes::One(r) => std::slice::from_mut(r),
            Routes::Many(v, _) => v,
        }
    }
}

/// What a destination keeps of its installed route: an [`InstalledRoute`] without its `via` and
/// interface (20 bytes a destination, issue 18). Those are the selected neighbour's address and
/// interface: the installed route's neighbour is the destination's selection, and a neighbour's
/// id never changes address or interface. The copy outlives its route until selection runs
/// (a removed route is still deleted from the kernel with the next hop it was installed with), so
/// the neighbour may be gone by then: `flush_neighbour` keeps its address and interface known
/// while it selects again the destinations it had routes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Installed {
    next_hop: Interned,
    pub(super) metric: Metric,
    /// Its originator, kept once in the table for all installed copies
    /// ([`RouteTable::installed_of`] reads it).
    router_id: Interned,
    pub(super) seqno: Seqno,
    pub(super) price: u32,
}

impl Installed {
    fn of(i: &InstalledRoute, next_hop: Interned, router_id: Interned) -> Installed {
        Installed {
            next_hop,
            metric: i.metric,
            router_id,
            seqno: i.seqno,
            price: i.price,
        }
    }

    /// The whole installed route, with its next hop and originator (which `table` keeps) and
    /// the interface and address of its neighbour.
    fn with_via(
        self,
        next_hops: &Interner<IpAddr>,
        router_ids: &Interner<RouterIdBits>,
        (ifindex, via): (u32, IpAddr),
    ) -> InstalledRoute {
        InstalledRoute {
            next_hop: next_hop_in(next_hops, self.next_hop),
            via,
            ifindex,
            metric: self.metric,
            router_id: router_id_in(router_ids, self.router_id),
            seqno: self.seqno,
            price: self.price,
        }
    }
}

/// One destination: its routes (at most one per neighbour), the selected one, the installed one.
#[derive(Clone, Debug)]
pub(super) struct Dest {
    routes: Routes,
    /// The selected route's neighbour. With `installed` empty it is a *held* route (babeld): it
    /// lost its metric, nothing else is selectable, and it stays shown as installed with an
    /// infinite metric (an `unreachable` kernel route) until it leaves the table. Neighbour ids
    /// start at 1, so `NonZeroU64` keeps it 8 bytes (an `Option<u64>` is 16).
    selected: Option<NonZeroU64>,
    installed: Option<Installed>,
}

impl Dest {
    fn new(route: Route) -> Dest {
        Dest {
            routes: Routes::One(route),
            selected: None,
            installed: None,
        }
    }

    /// Its routes, in the order they were learned.
    pub(super) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The neighbour of the selected route (installed, or held).
    pub(super) fn selected(&self) -> Option<u64> {
        self.selected.map(NonZeroU64::get)
    }

    /// The neighbour of the selected route while it is installed (not held).
    pub(super) fn installed_neigh(&self) -> Option<u64> {
        self.installed.and(self.selected())
    }

    /// Whether the destination is held: a route is selected, none installed (babeld keeps an
    /// `unreachable` kernel route for it).
    pub(super) fn is_held(&self) -> bool {
        self.installed.is_none() && self.selected.is_some()
    }

    /// The route in the kernel, without its neighbour's address and interface
    /// ([`RouteTable::installed_of`] makes the whole route), and that neighbour.
    pub(super) fn installed(&self) -> Option<(u64, Installed)> {
        Some((self.selected()?, self.installed?))
    }

    /// Whether a route is in the kernel.
    pub(super) fn is_installed(&self) -> bool {
        self.installed.is_some()
    }

    /// The route learned from `neigh`.
    pub(super) fn route(&self, neigh: u64) -> Option<&Route> {
        self.routes.iter().find(|r| r.neigh == neigh)
    }

    /// The selected route, while it is installed.
    pub(super) fn installed_route(&self) -> Option<&Route> {
        self.installed?;
        self.routes.selected(self.selected()?)
    }
}

/// A router-id as the integer its bytes spell, as the installed copies' originators are
/// interned: selection looks one up whenever it installs a copy with another originator, and
/// one integer comparison is cheaper than comparing 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RouterIdBits(u64);

impl From<RouterId> for RouterIdBits {
    #[inline]
    fn from(r: RouterId) -> RouterIdBits {
        RouterIdBits(u64::from_be_bytes(r.0))
    }
}

impl From<RouterIdBits> for RouterId {
    #[inline]
    fn from(b: RouterIdBits) -> RouterId {
        RouterId(b.0.to_be_bytes())
    }
}

/// Why a new route was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// The neighbour has as many routes as it may.
    NeighbourFull,
    /// The table has as many routes as it may.
    TableFull,
}

/// The counters: everything that changes when a route enters or leaves. (An index of routes by
/// neighbour would make a neighbour's cost change O(its routes) instead of a scan, but it cost
/// 72 bytes per route in the `absorb` bench, 684 against 612; so a neighbour's routes are found
/// by a scan, as before.)
#[derive(Clone, Debug, Default)]
struct Book {
    count: usize,
    /// Routes held from each neighbour that has any.
    per_neighbour: BTreeMap<u64, usize>,
}

impl Book {
    fn add(&mut self, neigh: u64) {
        self.count += 1;
        *self.per_neighbour.entry(neigh).or_default() += 1;
    }

    fn remove(&mut self, neigh: u64) {
        self.count = self.count.saturating_sub(1);
        if let btree_map::Entry::Occupied(mut e) = self.per_neighbour.entry(neigh) {
            *e.get_mut() = e.get().saturating_sub(1);
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    fn len_via(&self, neigh: u64) -> usize {
        self.per_neighbour.get(&neigh).copied().unwrap_or(0)
    }
}

/// Where a route for (destination, neighbour) is, or would go.
pub(super) enum RouteEntry<'a> {
    /// The neighbour already gave us a route to this destination.
    Occupied(OccupiedRoute<'a>),
    /// It did not; [`VacantRoute::insert`] adds one.
    Vacant(VacantRoute<'a>),
}

/// A (destination, neighbour) without a route yet.
pub(super) struct VacantRoute<'a> {
    slot: Slot<'a>,
    book: &'a mut Book,
    repack: &'a mut Repack,
    neigh: u64,
    /// What a [`Selecting`] of the destination lends besides it, for [`VacantRoute::insert`].
    parts: SelectParts<'a>,
}

enum Slot<'a> {
    Dest(&'a mut Dest),
    Plain(btree_map::VacantEntry<'a, PlainKey, Dest>),
    Specific(btree_map::VacantEntry<'a, RouteKey, Dest>),
}

/// The key of a destination without a source prefix: its 18-byte prefix, where a [`RouteKey`]
/// takes 36 (issue 18). Compared as integers, as [`RouteKey`] is, and in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PlainKey(Prefix);

impl Ord for PlainKey {
    #[inline]
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        prefix_order(&self.0).cmp(&prefix_order(&o.0))
    }
}

impl PartialOrd for PlainKey {
    #[inline]
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// Two streams in key order as one, in key order (a destination-only key sorts before the
/// source-specific keys of its prefix, so the two tables interleave).
fn merged<T>(
    a: impl Iterator<Item = (RouteKey, T)>,
    b: impl Iterator<Item = (RouteKey, T)>,
) -> impl Iterator<Item = (RouteKey, T)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some((ka, _)), Some((kb, _))) if kb < ka => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

/// The route to `neigh` in `dests[key]`, or where it would go.
fn find<'a, K: Ord>(
    dests: &'a mut BTreeMap<K, Dest>,
    key: K,
    neigh: u64,
    vacant: impl FnOnce(btree_map::VacantEntry<'a, K, Dest>) -> Slot<'a>,
) -> Result<(&'a mut Dest, usize), Slot<'a>> {
    match dests.entry(key) {
        btree_map::Entry::Occupied(e) => {
            let d = e.into_mut();
            match d.routes.iter().position(|r| r.neigh == neigh) {
                Some(i) => Ok((d, i)),
                None => Err(Slot::Dest(d)),
            }
        }
        btree_map::Entry::Vacant(e) => Err(vacant(e)),
    }
}

/// A (destination, neighbour) with a route ([`RouteTable::entry`]): the route to change, then
/// the destination to select in place, without searching the table again.
pub(super) struct OccupiedRoute<'a> {
    selecting: Selecting<'a>,
    /// The route's place in the destination's routes.
    index: usize,
}

impl<'a> OccupiedRoute<'a> {
    /// The route.
    pub(super) fn route(&mut self) -> &mut Route {
        #[allow(clippy::indexing_slicing)] // `index` was found in this same Vec, which the
        // borrow keeps as it was.
        &mut self.selecting.dest.routes[self.index]
    }

    /// The destination, to select ([`RouteTable::select_in_place`] without its search); the
    /// caller ends with [`RouteTable::after_selection`]. The destination keeps this route, so
    /// it is never left empty.
    pub(super) fn into_selecting(self) -> Selecting<'a> {
        self.selecting
    }
}

impl<'a> VacantRoute<'a> {
    /// Adds the route unless the neighbour or the table is at its limit; returns its
    /// destination, to select in place ([`OccupiedRoute::into_selecting`]; the caller ends
    /// with [`RouteTable::after_selection`]) or to drop.
    pub(super) fn insert(
        self,
        data: RouteData,
        max_per_neighbour: usize,
        max_total: usize,
    ) -> Result<Selecting<'a>, Refused> {
        let VacantRoute {
            slot,
            book,
            repack,
            neigh,
            parts: (next_hops, router_ids, installed),
        } = self;
        if book.len_via(neigh) >= max_per_neighbour {
            return Err(Refused::NeighbourFull);
        }
        if book.count >= max_total {
            return Err(Refused::TableFull);
        }
        let route = Route { neigh, data };
        let dest = match slot {
            Slot::Dest(d) => {
                d.routes.push(route);
                d
            }
            Slot::Plain(e) => {
                repack.inserted();
                e.insert(Dest::new(route))
            }
            Slot::Specific(e) => {
                repack.inserted();
                e.insert(Dest::new(route))
            }
        };
        book.add(neigh);
        Ok(Selecting {
            dest,
            next_hops,
            router_ids,
            installed,
        })
    }
}

/// The address `id` names among `next_hops`; the unspecified address answers an unknown index,
/// never a panic.
fn next_hop_in(next_hops: &Interner<IpAddr>, id: Interned) -> IpAddr {
    next_hops
        .get(id)
        .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
}

/// The originator `id` names among `router_ids`; the reserved all-zeros router-id answers an
/// unknown index, never a panic.
fn router_id_in(router_ids: &Interner<RouterIdBits>, id: Interned) -> RouterId {
    router_ids.get(id).map_or(RouterId([0; 8]), RouterId::from)
}

/// What [`RouteTable::select_in_place`] lends besides the destination.
type SelectParts<'a> = (
    &'a mut Interner<IpAddr>,
    &'a mut Interner<RouterIdBits>,
    &'a mut usize,
);

/// [`RouteTable::select_in_place`] in one tree.
fn in_place<K: Ord, R>(
    dests: &mut BTreeMap<K, Dest>,
    key: K,
    (next_hops, router_ids, installed): SelectParts<'_>,
    f: impl FnOnce(&mut Selecting<'_>) -> R,
) -> Option<R> {
    let btree_map::Entry::Occupied(mut e) = dests.entry(key) else {
        return None;
    };
    let r = f(&mut Selecting {
        dest: e.get_mut(),
        next_hops,
        router_ids,
        installed,
    });
    if e.get().routes.is_empty() && e.get().installed.is_none() {
        e.remove();
    }
    Some(r)
}

/// A destination being selected ([`RouteTable::select_in_place`]): its routes, and the table's
/// interned next hops and originators its installed copy names.
pub(super) struct Selecting<'a> {
    pub(super) dest: &'a mut Dest,
    next_hops: &'a mut Interner<IpAddr>,
    router_ids: &'a mut Interner<RouterIdBits>,
    /// The table's count of installed destinations.
    installed: &'a mut usize,
}

impl Selecting<'_> {
    /// [`RouteTable::next_hop`].
    pub(super) fn next_hop(&self, id: Interned) -> IpAddr {
        next_hop_in(self.next_hops, id)
    }

    /// [`RouteTable::installed_of`] for this destination.
    pub(super) fn installed_of(
        &self,
        via: impl FnOnce(u64) -> Option<(u32, IpAddr)>,
    ) -> Option<InstalledRoute> {
        let (nid, i) = self.dest.installed()?;
        Some(i.with_via(self.next_hops, self.router_ids, via(nid)?))
    }

    /// Whether the installed copy is the one [`Selecting::set`] would make of route `r` with
    /// `metric` (its next hop, originator, seqno and price, and that metric): then writing it
    /// again changes nothing.
    pub(super) fn installed_is(&self, r: &Route, metric: Metric) -> bool {
        self.dest.installed.is_some_and(|i| {
            i.next_hop == r.next_hop
                && i.metric == metric
                && i.seqno == Seqno(r.seqno)
                && i.price == r.price
                && self.router_ids.get(i.router_id) == Some(RouterIdBits::from(r.router_id))
        })
    }

    /// Lets `f` change each route of the destination in order (selection's smoothed metrics).
    pub(super) fn each_route(&mut self, f: impl FnMut(&mut Route)) {
        self.dest.routes.iter_mut().for_each(f);
    }

    /// Records the result of selection: the selected route's neighbour and the copy installed.
    pub(super) fn set(&mut self, selected: Option<u64>, installed: Option<InstalledRoute>) {
        let d = &mut *self.dest;
        let (next_hops, router_ids) = (&mut *self.next_hops, &mut *self.router_ids);
        // The installed copy is made from the selected route: its next hop is the route's,
        // already held (interning it without a sweep covers any other caller).
        let installed = installed.and_then(|i| {
            let held = d
                .routes
                .iter()
                .find(|r| Some(r.neigh) == selected)
                .map(|r| r.next_hop)
                .filter(|id| next_hops.get(*id) == Some(i.next_hop));
            let id = held.or_else(|| next_hops.intern(i.next_hop).ok())?;
            // Most often the copy it replaces has the same originator.
            let rid = RouterIdBits::from(i.router_id);
            let router_id = d
                .installed
                .map(|old| old.router_id)
                .filter(|old| router_ids.get(*old) == Some(rid))
                .or_else(|| router_ids.intern(rid).ok())?;
            Some(Installed::of(&i, id, router_id))
        });
        let count = &mut *self.installed;
        match (d.installed.is_some(), installed.is_some()) {
            (false, true) => *count += 1,
            (true, false) => *count = count.saturating_sub(1),
            _ => {}
        }
        // Ids start at 1 (`Engine::neighbour_id`); a 0 would read as no selection.
        d.selected = selected.and_then(NonZeroU64::new);
        d.installed = installed;
        d.routes.note_selected(selected);
    }
}

/// The route table. Destinations without a source prefix, nearly all of a large table, are
/// keyed by their prefix alone (18 bytes a key, not 36); source-specific ones by the whole key,
/// in a second tree. Walks merge the two in [`RouteKey`] order.
#[derive(Clone, Debug, Default)]
pub(super) struct RouteTable {
    plain: BTreeMap<PlainKey, Dest>,
    specific: BTreeMap<RouteKey, Dest>,
    book: Book,
    installed: usize,
    /// New destinations since each tree was last packed (a dump fills it in key order).
    repack: Repack,
    repack_specific: Repack,
    /// The next hops of the routes and installed copies, each kept once (issue 18: 4 bytes in
    /// each instead of 17). Swept by [`RouteTable::next_hop_id`].
    next_hops: Interner<IpAddr>,
    /// The next hop interned last (a packet's Updates share one): found without a search.
    /// Forgotten when the next hops are swept.
    last_next_hop: Option<(IpAddr, Interned)>,
    /// The originators of the installed copies, each kept once (4 bytes a copy instead of 8;
    /// the routes keep their own). Swept by [`RouteTable::set_selection_smoothed`] after it
    /// installs a copy.
    installed_router_ids: Interner<RouterIdBits>,
}

impl RouteTable {
    /// Routes held, all neighbours.
    pub(super) fn len(&self) -> usize {
        self.book.count
    }

    /// Routes held from one neighbour.
    pub(super) fn len_via(&self, neigh: u64) -> usize {
        self.book.len_via(neigh)
    }

    /// Destinations with an installed route.
    pub(super) fn installed_len(&self) -> usize {
        self.installed
    }

    /// The address a route's or an installed copy's next hop names. Every index in the table
    /// names one; the unspecified address answers any other, never a panic.
    pub(super) fn next_hop(&self, id: Interned) -> IpAddr {
        next_hop_in(&self.next_hops, id)
    }

    /// The index naming `addr`, for a route's next hop. Valid until the next call: the next hops
    /// no route or installed copy names any more may be swept first (so their count stays
    /// bounded by the table's, whatever peers announce), and routes removed from the table
    /// before it no longer read theirs. `Err` only if the index space is exhausted, which the
    /// sweep keeps out of reach of any table that fits in memory.
    pub(super) fn next_hop_id(&mut self, addr: IpAddr) -> Result<Interned, InternerFull> {
        if let Some((last, id)) = self.last_next_hop
            && last == addr
        {
            return Ok(id);
        }
        if let Some(id) = self.next_hops.find(&addr) {
            self.last_next_hop = Some((addr, id));
            return Ok(id);
        }
        self.last_next_hop = None;
        let entries = self.book.count + self.installed;
        if self.next_hops.sweep_due(entries) {
            let (plain, specific) = (&self.plain, &self.specific);
            self.next_hops.sweep(|f| {
                for d in plain.values().chain(specific.values()) {
                    d.routes.iter().for_each(|r| f(r.data.next_hop));
                    if let Some(i) = &d.installed {
                        f(i.next_hop);
                    }
                }
            });
        }
        let id = self.next_hops.intern(addr)?;
        self.last_next_hop = Some((addr, id));
        Ok(id)
    }

    /// The originator of an installed copy. Every copy's index names one; the reserved
    /// all-zeros router-id answers any other, never a panic.
    pub(super) fn installed_router_id(&self, i: &Installed) -> RouterId {
        router_id_in(&self.installed_router_ids, i.router_id)
    }

    /// Sweeps the installed copies' originators if a sweep is due (after a copy named a new
    /// one, so it is kept).
    fn sweep_installed_router_ids(&mut self) {
        if self.installed_router_ids.sweep_due(self.installed) {
            let (plain, specific) = (&self.plain, &self.specific);
            self.installed_router_ids.sweep(|f| {
                for d in plain.values().chain(specific.values()) {
                    if let Some(i) = &d.installed {
                        f(i.router_id);
                    }
                }
            });
        }
    }

    /// The whole route `d` has in the kernel, with its neighbour's interface and address as
    /// `via` gives them.
    pub(super) fn installed_of(
        &self,
        d: &Dest,
        via: impl FnOnce(u64) -> Option<(u32, IpAddr)>,
    ) -> Option<InstalledRoute> {
        let (nid, i) = d.installed()?;
        Some(i.with_via(&self.next_hops, &self.installed_router_ids, via(nid)?))
    }

    /// One destination.
    pub(super) fn get(&self, key: &RouteKey) -> Option<&Dest> {
        match key.src_prefix {
            None => self.plain.get(&PlainKey(key.prefix)),
            Some(_) => self.specific.get(key),
        }
    }

    /// The destination `key`, to change in place.
    fn get_mut(&mut self, key: &RouteKey) -> Option<&mut Dest> {
        match key.src_prefix {
            None => self.plain.get_mut(&PlainKey(key.prefix)),
            Some(_) => self.specific.get_mut(key),
        }
    }

    /// Every destination, in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (RouteKey, &Dest)> {
        merged(
            self.plain.iter().map(|(k, d)| (RouteKey::new(k.0), d)),
            self.specific.iter().map(|(k, d)| (*k, d)),
        )
    }

    /// The destinations after `after` (all with `None`), in key order: a walk that stops and
    /// resumes without holding the table borrowed in between.
    pub(super) fn iter_after(
        &self,
        after: Option<RouteKey>,
    ) -> impl Iterator<Item = (RouteKey, &Dest)> {
        use std::ops::Bound::{Excluded, Unbounded};
        // A destination-only key sorts before the source-specific keys of its prefix, so the
        // plain keys after `after` are those of a greater prefix, whatever its source prefix.
        let plain = after.map_or(Unbounded, |k| Excluded(PlainKey(k.prefix)));
        merged(
            self.plain
                .range((plain, Unbounded))
                .map(|(k, d)| (RouteKey::new(k.0), d)),
            self.specific
                .range((after.map_or(Unbounded, Excluded), Unbounded))
                .map(|(k, d)| (*k, d)),
        )
    }

    /// Every destination, in key order, to change in place.
    fn iter_mut(&mut self) -> impl Iterator<Item = (RouteKey, &mut Dest)> {
        merged(
            self.plain.iter_mut().map(|(k, d)| (RouteKey::new(k.0), d)),
            self.specific.iter_mut().map(|(k, d)| (*k, d)),
        )
    }

    /// Every destination's key, in order.
    pub(super) fn keys(&self) -> Vec<RouteKey> {
        self.iter().map(|(k, _)| k).collect()
    }

    /// The destinations `neigh` gave us a route to, in key order.
    #[cfg(test)]
    pub(super) fn keys_via(&self, neigh: u64) -> Vec<RouteKey> {
        if self.book.len_via(neigh) == 0 {
            return Vec::new();
        }
        self.iter()
            .filter(|(_, d)| d.routes.iter().any(|r| r.neigh == neigh))
            .map(|(k, _)| k)
            .collect()
    }

    /// At most `limit` destinations after `after` (from the first with `None`) that `neigh` gave
    /// us a route to, in key order: one slice of a reselection.
    pub(super) fn keys_via_after(
        &self,
        neigh: u64,
        after: Option<RouteKey>,
        limit: usize,
    ) -> Vec<RouteKey> {
        if self.book.len_via(neigh) == 0 {
            return Vec::new();
        }
        self.iter_after(after)
            .filter(|(_, d)| d.routes.iter().any(|r| r.neigh == neigh))
            .map(|(k, _)| k)
            .take(limit)
            .collect()
    }

    /// Removes the route to `key` learned from `neigh`; the destination stays (selection
    /// forgets it once it has neither routes nor an installed route).
    pub(super) fn remove_route(&mut self, key: &RouteKey, neigh: u64) -> Option<Route> {
        let removed = self
            .get_mut(key)?
            .routes
            .extract(|r| r.neigh == neigh)
            .pop();
        if removed.is_some() {
            self.book.remove(neigh);
        }
        removed
    }

    /// The route to `key` learned from `neigh`, to update in place.
    pub(super) fn route_mut(&mut self, key: &RouteKey, neigh: u64) -> Option<&mut Route> {
        self.get_mut(key)?
            .routes
            .iter_mut()
            .find(|r| r.neigh == neigh)
    }

    /// The route to `key` learned from `neigh`, or its place: one search of the table.
    pub(super) fn entry(&mut self, key: RouteKey, neigh: u64) -> RouteEntry<'_> {
        let RouteTable {
            plain,
            specific,
            book,
            repack,
            repack_specific,
            installed,
            next_hops,
            installed_router_ids,
            ..
        } = self;
        let (found, repack) = match key.src_prefix {
            None => {
                repack.maybe(plain);
                let found = find(plain, PlainKey(key.prefix), neigh, Slot::Plain);
                (found, repack)
            }
            Some(_) => {
                repack_specific.maybe(specific);
                let found = find(specific, key, neigh, Slot::Specific);
                (found, repack_specific)
            }
        };
        let slot = match found {
            Ok((dest, index)) => {
                return RouteEntry::Occupied(OccupiedRoute {
                    selecting: Selecting {
                        dest,
                        next_hops,
                        router_ids: installed_router_ids,
                        installed,
                    },
                    index,
                });
            }
            Err(slot) => slot,
        };
        RouteEntry::Vacant(VacantRoute {
            slot,
            book,
            repack,
            neigh,
            parts: (next_hops, installed_router_ids, installed),
        })
    }

    /// Recomputes every route's total price from its received price (after a fee change), and
    /// the installed route's with it, without selecting again.
    pub(super) fn reprice(&mut self, price: impl Fn(u32) -> u32) {
        for d in self.plain.values_mut().chain(self.specific.values_mut()) {
            for r in d.routes.iter_mut() {
                r.price = price(r.received_price);
            }
            let selected = d.selected();
            if let Some(i) = &mut d.installed
                && let Some(r) = d.routes.iter().find(|r| Some(r.neigh) == selected)
            {
                i.price = r.price;
            }
        }
    }

    /// Every route of `neigh`, with its destination, in key order, to change in place.
    pub(super) fn for_each_via(&mut self, neigh: u64, mut f: impl FnMut(&RouteKey, &mut Route)) {
        if self.book.len_via(neigh) == 0 {
            return;
        }
        for (k, d) in self.iter_mut() {
            for r in d.routes.iter_mut().filter(|r| r.neigh == neigh) {
                f(&k, r);
            }
        }
    }

    /// Removes every route of `neigh`; returns them with their destinations, in key order.
    #[cfg(test)]
    pub(super) fn remove_via(&mut self, neigh: u64) -> Vec<(RouteKey, Route)> {
        let mut removed = Vec::new();
        if self.book.len_via(neigh) == 0 {
            return removed;
        }
        for (k, d) in self.iter_mut() {
            removed.extend(
                d.routes
                    .extract(|r| r.neigh == neigh)
                    .into_iter()
                    .map(|r| (k, r)),
            );
        }
        for _ in &removed {
            self.book.remove(neigh);
        }
        removed
    }

    /// Keeps the routes for which `keep(key, installed_neigh, route)` is true (it may change the
    /// route), where `installed_neigh` is the neighbour of the installed route (none while the
    /// destination is held); returns the (key, neighbour) of those removed.
    pub(super) fn retain(
        &mut self,
        mut keep: impl FnMut(&RouteKey, Option<u64>, &mut Route) -> bool,
    ) -> Vec<(RouteKey, u64)> {
        let mut removed = Vec::new();
        for (k, d) in self.iter_mut() {
            let installed = d.installed_neigh();
            d.routes.retain_mut(|r| {
                let kept = keep(&k, installed, r);
                if !kept {
                    removed.push((k, r.neigh));
                }
                kept
            });
        }
        for (_, n) in &removed {
            self.book.remove(*n);
        }
        removed
    }

    /// Records the result of selection for `key` ([`RouteTable::set_selection_smoothed`]
    /// without smoothing).
    #[cfg(test)]
    pub(super) fn set_selection(
        &mut self,
        key: &RouteKey,
        selected: Option<u64>,
        installed: Option<InstalledRoute>,
    ) {
        self.select_in_place(key, |s| s.set(selected, installed));
    }

    /// Selection of `key` in place ([`Selecting`]): the destination's routes to read and its
    /// selection to write, found by one search of the table (issue 18: it was one to read and
    /// one to write). A destination left without routes or an installed route is forgotten.
    /// `None` if the table has no such destination.
    pub(super) fn select_in_place<R>(
        &mut self,
        key: &RouteKey,
        f: impl FnOnce(&mut Selecting<'_>) -> R,
    ) -> Option<R> {
        let RouteTable {
            plain,
            specific,
            installed,
            next_hops,
            installed_router_ids,
            ..
        } = self;
        let parts = (next_hops, installed_router_ids, installed);
        let r = match key.src_prefix {
            None => in_place(plain, PlainKey(key.prefix), parts, f),
            Some(_) => in_place(specific, *key, parts, f),
        }?;
        self.after_selection();
        Some(r)
    }

    /// What follows a selection made in place: the installed copies' originators are swept if
    /// a sweep is due.
    pub(super) fn after_selection(&mut self) {
        self.sweep_installed_router_ids();
    }

    /// Unselects and uninstalls every destination (shutdown); returns, in key order, what was
    /// installed, with the interface and address `via` gives for its neighbour, and the held
    /// destinations (as `None`).
    pub(super) fn uninstall_all(
        &mut self,
        via: impl Fn(u64) -> Option<(u32, IpAddr)>,
    ) -> Vec<(RouteKey, Option<InstalledRoute>)> {
        let mut taken = Vec::new();
        for (k, d) in self.iter_mut() {
            let selected = d.selected.take().map(NonZeroU64::get);
            let installed = d.installed.take();
            if selected.is_some() || installed.is_some() {
                taken.push((k, selected, installed));
            }
        }
        let out = taken
            .into_iter()
            .map(|(k, selected, installed)| {
                let whole = installed.and_then(|i| {
                    Some(i.with_via(&self.next_hops, &self.installed_router_ids, via(selected?)?))
                });
                (k, whole)
            })
            .collect();
        self.installed = 0;
        self.plain.retain(|_, d| !d.routes.is_empty());
        self.specific.retain(|_, d| !d.routes.is_empty());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use babel_wire::Prefix;
    use std::collections::BTreeSet;

    fn key(s: &str) -> RouteKey {
        RouteKey::new(s.parse::<Prefix>().unwrap_or_else(|_| panic!("{s}")))
    }

    /// The integer comparison of `RouteKey` orders as the derived order of its fields would:
    /// tables iterate in this order, and the conformance goldens depend on it.
    #[test]
    fn route_key_order_is_the_field_order() {
        let prefixes: Vec<Prefix> = [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.0.0.0/24",
            "10.0.1.0/24",
            "192.0.2.1/32",
            "255.255.255.255/32",
            "::/0",
            "::/128",
            "2001:db8::/32",
            "2001:db8::/64",
            "2001:db8:0:1::/64",
            "fd00::/8",
            "fe80::1/128",
            "ffff::/16",
            "::ffff:10.0.0.0/104",
        ]
        .iter()
        .map(|s| s.parse().unwrap_or_else(|_| panic!("{s}")))
        .collect();
        let mut keys = Vec::new();
        for p in &prefixes {
            keys.push(RouteKey::new(*p));
            for s in &prefixes {
                keys.push(RouteKey {
                    prefix: *p,
                    src_prefix: Some(*s),
                });
            }
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(
                    a.cmp(b),
                    (a.prefix, a.src_prefix).cmp(&(b.prefix, b.src_prefix)),
                    "{a:?} {b:?}"
                );
                assert_eq!(a.partial_cmp(b), Some(a.cmp(b)));
            }
        }
    }

    fn fe80_1() -> IpAddr {
        "fe80::1".parse().unwrap_or(IpAddr::V4([0, 0, 0, 0].into()))
    }

    /// A route through fe80::1, interned in `t`.
    fn new_route(t: &mut RouteTable) -> RouteData {
        RouteData {
            next_hop: t.next_hop_id(fe80_1()).unwrap_or_else(|e| panic!("{e}")),
            router_id: RouterId([0, 0, 0, 0, 0, 0, 0, 9]),
            seqno: 1,
            refmetric: 96,
            add_metric: 0,
            interval: 400,
            received_price: 0,
            price: 0,
            path_rtt: 0,
            time: Instant::ZERO.into(),
            smoothed: 192,
            smoothed_time: Instant::ZERO.into(),
            verified_metric: 0,
            verified_until: Instant::ZERO.into(),
            refresh_requested: false,
        }
    }

    fn add(t: &mut RouteTable, k: RouteKey, n: u64) -> Result<(), Refused> {
        let data = new_route(t);
        match t.entry(k, n) {
            RouteEntry::Vacant(v) => v.insert(data, 3, 5).map(drop),
            RouteEntry::Occupied(_) => Ok(()),
        }
    }

    /// The counters and the index agree with the destinations, whatever happened.
    fn check(t: &RouteTable) {
        let routes: usize = t.iter().map(|(_, d)| d.routes.len()).sum();
        assert_eq!(t.len(), routes);
        let installed = t.iter().filter(|(_, d)| d.installed.is_some()).count();
        assert_eq!(t.installed_len(), installed);
        let mut index: BTreeMap<u64, BTreeSet<RouteKey>> = BTreeMap::new();
        let mut per_neighbour: BTreeMap<u64, usize> = BTreeMap::new();
        let keys = t.keys();
        assert!(keys.is_sorted(), "{keys:?}");
        for (k, d) in t.iter() {
            assert!(
                !d.routes.is_empty() || d.installed.is_some(),
                "empty dest {k:?}"
            );
            for r in d.routes.iter() {
                assert!(
                    index.entry(r.neigh).or_default().insert(k),
                    "two routes from one neighbour"
                );
                *per_neighbour.entry(r.neigh).or_default() += 1;
            }
        }
        assert_eq!(per_neighbour, t.book.per_neighbour);
        for (n, keys) in &index {
            assert_eq!(&t.keys_via(*n), &keys.iter().copied().collect::<Vec<_>>());
        }
    }

    /// What a route costs in every destination of a full table (issue 18): the verified cost
    /// as two plain fields (it was 120 bytes with an `Option<(u16, Instant)>`), no copy of its
    /// neighbour's address and interface, its three times in 48 bits and its next hop as a
    /// 4-byte index keep it at 64 bytes. The installed copy without them, its next hop and
    /// originator as indexes, is 16 (an `InstalledRoute` is 56), and a destination-only key 18
    /// (a `RouteKey` 36).
    #[test]
    fn a_route_is_64_bytes() {
        assert_eq!(std::mem::size_of::<Route>(), 64);
        // The one route of most destinations is inline: no `Vec` header, no allocation.
        assert_eq!(std::mem::size_of::<Routes>(), 64);
        assert_eq!(std::mem::size_of::<InstalledRoute>(), 56);
        assert_eq!(std::mem::size_of::<Option<Installed>>(), 16);
        assert_eq!(std::mem::size_of::<Dest>(), 88);
        assert_eq!(std::mem::size_of::<RouteKey>(), 36);
        assert_eq!(std::mem::size_of::<PlainKey>(), 18);
        let mut r = new_route(&mut RouteTable::default());
        assert_eq!(r.verified(), None);
        let until = Instant::from_secs(5);
        r.set_verified(Some((300, until)));
        assert_eq!(r.verified(), Some((300, until)));
        r.set_verified(None);
        assert_eq!(r.verified(), None);
    }

    /// A peer announcing a new next hop with every update: the table keeps the next hops its
    /// routes and installed copies name, plus a bounded slack, and each still reads its own.
    #[test]
    fn next_hops_stay_bounded_by_the_routes() {
        let mut t = RouteTable::default();
        let addr = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let k = |i: u32| key(&format!("2001:db8:{i:x}::/48"));
        for i in 0..10 {
            let nh = t.next_hop_id(addr(i)).unwrap_or_else(|e| panic!("{e}"));
            let mut data = new_route(&mut t);
            data.next_hop = nh;
            if let RouteEntry::Vacant(v) = t.entry(k(i), 1) {
                v.insert(data, 100, 100)
                    .map(drop)
                    .unwrap_or_else(|e| panic!("{e:?}"));
            }
        }
        let inst = |i: u32| InstalledRoute {
            next_hop: addr(i),
            via: fe80_1(),
            ifindex: 1,
            metric: babel_wire::Metric(192),
            router_id: RouterId([0, 0, 0, 0, 0, 0, 0, 9]),
            seqno: babel_wire::Seqno(1),
            price: 0,
        };
        t.set_selection(&k(3), Some(1), Some(inst(3)));
        // The route changes its next hop 100,000 times, always to a new one.
        for j in 0..100_000u32 {
            let nh = t
                .next_hop_id(addr(1000 + j))
                .unwrap_or_else(|e| panic!("{e}"));
            if let Some(r) = t.route_mut(&k(3), 1) {
                r.next_hop = nh;
            }
            assert!(
                t.next_hops.len() <= 2 * 12 + 11 / 4 + 64 + 1,
                "{}",
                t.next_hops.len()
            );
        }
        for i in 0..10 {
            let r = t.get(&k(i)).and_then(|d| d.route(1));
            let want = if i == 3 { addr(1000 + 99_999) } else { addr(i) };
            assert_eq!(r.map(|r| t.next_hop(r.next_hop)), Some(want), "{i}");
        }
        // The installed copy keeps the next hop it was installed with.
        let installed = t
            .get(&k(3))
            .and_then(|d| t.installed_of(d, |_| Some((1, fe80_1()))));
        assert_eq!(installed, Some(inst(3)));
        check(&t);
    }

    /// Installed copies naming ever new originators: the table keeps those in use, plus a
    /// bounded slack, and each copy still shows its own.
    #[test]
    fn installed_router_ids_stay_bounded() {
        let mut t = RouteTable::default();
        let k = |i: u32| key(&format!("2001:db8:{i:x}::/48"));
        for i in 0..4 {
            add(&mut t, k(i), 1 + u64::from(i)).unwrap_or_else(|e| panic!("{e:?}"));
        }
        let inst = |rid: u32| InstalledRoute {
            next_hop: fe80_1(),
            via: fe80_1(),
            ifindex: 1,
            metric: babel_wire::Metric(192),
            router_id: RouterId([0; 8]),
            seqno: babel_wire::Seqno(1),
            price: rid,
        };
        let with_rid = |rid: u32| {
            let mut i = inst(rid);
            i.router_id.0[4..].copy_from_slice(&rid.to_be_bytes());
            i.router_id.0[0] = 2;
            i
        };
        for i in 0..3 {
            t.set_selection(&k(i), Some(1 + u64::from(i)), Some(with_rid(i)));
        }
        for j in 0..50_000u32 {
            t.set_selection(&k(3), Some(4), Some(with_rid(1000 + j)));
            assert!(t.installed_router_ids.len() <= 2 * 4 + 4 / 4 + 64 + 1);
        }
        for i in 0..4 {
            let want = with_rid(if i == 3 { 1000 + 49_999 } else { i });
            let got = t
                .get(&k(i))
                .and_then(|d| t.installed_of(d, |_| Some((1, fe80_1()))));
            assert_eq!(got, Some(want), "{i}");
        }
        check(&t);
    }

    /// Destination-only and source-specific destinations live in two trees; every walk sees them
    /// as one table in `RouteKey` order, and each is found, changed and removed where it is.
    #[test]
    fn both_kinds_of_key_walk_in_route_key_order() {
        let sp = |d: &str, s: &str| RouteKey {
            prefix: d.parse().unwrap_or_else(|_| panic!("{d}")),
            src_prefix: Some(s.parse().unwrap_or_else(|_| panic!("{s}"))),
        };
        let keys = [
            sp("2001:db8:1::/48", "2001:db8:ff::/48"),
            key("2001:db8:2::/48"),
            sp("2001:db8:1::/48", "::/0"),
            key("2001:db8:1::/48"),
            key("10.0.0.0/8"),
            sp("10.0.0.0/8", "192.0.2.0/24"),
            sp("::/0", "2001:db8::/32"),
        ];
        let mut t = RouteTable::default();
        for (i, k) in keys.iter().enumerate() {
            let data = new_route(&mut t);
            if let RouteEntry::Vacant(v) = t.entry(*k, 1 + i as u64 % 2) {
                v.insert(data, 10, 10)
                    .map(drop)
                    .unwrap_or_else(|e| panic!("{e:?}"));
            }
        }
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(t.keys(), sorted);
        assert_eq!(t.iter().map(|(k, _)| k).collect::<Vec<_>>(), sorted);
        for k in &keys {
            assert!(t.get(k).is_some_and(|d| d.routes().len() == 1), "{k:?}");
        }
        let via_1: Vec<RouteKey> = sorted
            .iter()
            .copied()
            .filter(|k| keys.iter().position(|x| x == k).is_some_and(|i| i % 2 == 0))
            .collect();
        assert_eq!(t.keys_via(1), via_1);
        if let Some(r) = t.route_mut(&keys[0], 1) {
            r.refmetric = 5;
        }
        assert_eq!(
            t.get(&keys[0])
                .and_then(|d| d.route(1))
                .map(|r| r.refmetric),
            Some(5)
        );
        let removed: Vec<RouteKey> = t.remove_via(1).into_iter().map(|(k, _)| k).collect();
        assert_eq!(removed, via_1);
        for k in &via_1 {
            t.set_selection(k, None, None);
            assert!(t.get(k).is_none(), "{k:?}");
        }
        check(&t);
        assert_eq!(t.len(), keys.len() - via_1.len());
    }

    #[test]
    fn entry_finds_the_route_it_inserted() {
        let mut t = RouteTable::default();
        let k = key("2001:db8::/64");
        add(&mut t, k, 1).unwrap_or_else(|e| panic!("{e:?}"));
        match t.entry(k, 1) {
            RouteEntry::Occupied(mut o) => o.route().refmetric = 7,
            RouteEntry::Vacant(_) => panic!("route not found"),
        }
        assert_eq!(
            t.get(&k).and_then(|d| d.route(1)).map(|r| r.refmetric),
            Some(7)
        );
        assert!(matches!(t.entry(k, 2), RouteEntry::Vacant(_)));
        check(&t);
    }

    #[test]
    fn limits_per_neighbour_and_in_total() {
        let mut t = RouteTable::default();
        for i in 0..3 {
            add(&mut t, key(&format!("2001:db8:{i}::/48")), 1).unwrap_or_else(|e| panic!("{e:?}"));
        }
        assert_eq!(
            add(&mut t, key("2001:db8:9::/48"), 1),
            Err(Refused::NeighbourFull)
        );
        add(&mut t, key("2001:db8:9::/48"), 2).unwrap_or_else(|e| panic!("{e:?}"));
        add(&mut t, key("2001:db8:8::/48"), 2).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            add(&mut t, key("2001:db8:7::/48"), 3),
            Err(Refused::TableFull)
        );
        // A refused route leaves no empty destination behind.
        assert!(t.get(&key("2001:db8:7::/48")).is_none());
        check(&t);
        assert_eq!(
            (t.len(), t.len_via(1), t.len_via(2), t.len_via(3)),
            (5, 3, 2, 0)
        );
    }

    #[test]
    fn removal_keeps_counters_and_index() {
        let mut t = RouteTable::default();
        let (a, b) = (key("2001:db8:1::/48"), key("2001:db8:2::/48"));
        for (k, n) in [(a, 1), (a, 2), (b, 1)] {
            add(&mut t, k, n).unwrap_or_else(|e| panic!("{e:?}"));
        }
        assert_eq!(t.keys_via(1), vec![a, b]);
        let removed = t.retain(|k, _, r| !(*k == a && r.neigh() == 2));
        assert_eq!(removed, vec![(a, 2)]);
        check(&t);
        let removed: Vec<RouteKey> = t.remove_via(1).into_iter().map(|(k, _)| k).collect();
        assert_eq!(removed, vec![a, b]);
        // Emptied destinations stay until selection has seen them.
        assert_eq!(t.len(), 0);
        assert!(t.get(&a).is_some());
        t.set_selection(&a, None, None);
        t.set_selection(&b, None, None);
        check(&t);
        assert!(t.iter().next().is_none());
    }

    #[test]
    fn installed_count_follows_selection() {
        let mut t = RouteTable::default();
        let k = key("2001:db8::/64");
        add(&mut t, k, 1).unwrap_or_else(|e| panic!("{e:?}"));
        let a: IpAddr = "fe80::1".parse().unwrap_or(IpAddr::V4([0, 0, 0, 0].into()));
        let inst = InstalledRoute {
            next_hop: a,
            via: a,
            ifindex: 1,
            metric: babel_wire::Metric(192),
            router_id: RouterId([0, 0, 0, 0, 0, 0, 0, 9]),
            seqno: babel_wire::Seqno(1),
            price: 0,
        };
        t.set_selection(&k, Some(1), Some(inst));
        t.set_selection(&k, Some(1), Some(inst));
        assert_eq!(t.installed_len(), 1);
        assert!(t.get(&k).and_then(Dest::installed_route).is_some());
        assert_eq!(
            t.get(&k)
                .and_then(Dest::installed)
                .map(|(n, i)| (n, i.with_via(&t.next_hops, &t.installed_router_ids, (1, a)))),
            Some((1, inst))
        );
        // Its only route goes, the installed route stays until selection removes it.
        t.remove_via(1);
        check(&t);
        assert_eq!(t.installed_len(), 1);
        t.set_selection(&k, None, None);
        check(&t);
        assert_eq!((t.installed_len(), t.get(&k).is_none()), (0, true));
        t.set_selection(&k, Some(1), Some(inst));
        assert_eq!(
            t.installed_len(),
            0,
            "no selection for an unknown destination"
        );
        add(&mut t, k, 1).unwrap_or_else(|e| panic!("{e:?}"));
        t.set_selection(&k, Some(1), Some(inst));
        assert_eq!(t.uninstall_all(|_| Some((1, a))), vec![(k, Some(inst))]);
        check(&t);
    }

    #[test]
    fn a_held_destination_is_selected_not_installed() {
        let mut t = RouteTable::default();
        let (a, b) = (key("2001:db8:1::/48"), key("2001:db8:2::/48"));
        add(&mut t, a, 1).unwrap_or_else(|e| panic!("{e:?}"));
        add(&mut t, b, 2).unwrap_or_else(|e| panic!("{e:?}"));
        let a_addr: IpAddr = "fe80::1".parse().unwrap_or(IpAddr::V4([0, 0, 0, 0].into()));
        let inst = InstalledRoute {
            next_hop: a_addr,
            via: a_addr,
            ifindex: 1,
            metric: babel_wire::Metric(192),
            router_id: RouterId([0, 0, 0, 0, 0, 0, 0, 9]),
            seqno: babel_wire::Seqno(1),
            price: 0,
        };
        t.set_selection(&a, Some(1), None);
        t.set_selection(&b, Some(2), Some(inst));
        let d = t.get(&a).unwrap_or_else(|| panic!("held destination gone"));
        assert!(d.is_held());
        assert_eq!((d.selected(), d.installed_neigh()), (Some(1), None));
        assert!(d.installed_route().is_none());
        assert_eq!(t.installed_len(), 1, "a held destination is not installed");
        // Route expiry sees only the installed route as selected.
        let mut seen = Vec::new();
        t.retain(|k, installed, _| {
            seen.push((*k, installed));
            true
        });
        assert_eq!(seen, vec![(a, None), (b, Some(2))]);
        // Shutdown reports both, the held one without an installed route.
        assert_eq!(
            t.uninstall_all(|_| Some((1, a_addr))),
            vec![(a, None), (b, Some(inst))]
        );
        check(&t);
        assert!(t.get(&a).is_some_and(|d| !d.is_held()));
    }

    /// The installed route is the selected neighbour's, wherever the routes before it went:
    /// the place remembered at selection is a hint, checked before use.
    #[test]
    fn the_installed_route_is_found_after_its_place_moved() {
        let mut t = RouteTable::default();
        let a = key("2001:db8:1::/48");
        for n in 1..=4 {
            add(&mut t, a, n).unwrap_or_else(|e| panic!("{e:?}"));
        }
        let via: IpAddr = "fe80::1".parse().unwrap_or(IpAddr::V4([0, 0, 0, 0].into()));
        let inst = InstalledRoute {
            next_hop: via,
            via,
            ifindex: 1,
            metric: babel_wire::Metric(192),
            router_id: RouterId([0, 0, 0, 0, 0, 0, 0, 9]),
            seqno: babel_wire::Seqno(1),
            price: 0,
        };
        let installed = |t: &RouteTable| {
            t.get(&a)
                .and_then(|d| d.installed_route())
                .map(|r| r.neigh())
        };
        t.set_selection(&a, Some(3), Some(inst));
        assert_eq!(installed(&t), Some(3));
        // Routes before it leave (its place moves), one after it is added.
        assert!(t.remove_route(&a, 1).is_some());
        assert_eq!(installed(&t), Some(3));
        assert!(t.remove_route(&a, 2).is_some());
        add(&mut t, a, 5).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(installed(&t), Some(3));
        // Its own route leaves: nothing is installed from the table's routes.
        assert!(t.remove_route(&a, 3).is_some());
        assert_eq!(installed(&t), None);
        t.set_selection(&a, Some(5), Some(inst));
        assert_eq!(installed(&t), Some(5));
        check(&t);
    }

    /// A walk resumed after any key, in the table or not, of either kind, sees what a whole
    /// walk sees after that key.
    #[test]
    fn a_walk_resumes_after_any_key() {
        let sp = |d: &str, s: &str| RouteKey {
            src_prefix: Some(s.parse().unwrap_or_else(|_| panic!("{s}"))),
            ..key(d)
        };
        // Each destination without a source prefix, with one, or both; and one with two.
        let dsts = [
            "10.0.0.0/8",
            "::/0",
            "2001:db8:1::/48",
            "2001:db8:2::/48",
            "2001:db8:3::/48",
        ];
        let mut keys = vec![sp("2001:db8:1::/48", "2001:db8:ff::/48")];
        for (i, d) in dsts.iter().enumerate() {
            if i % 3 != 2 {
                keys.push(key(d));
            }
            if i % 3 != 1 {
                keys.push(sp(d, if i == 0 { "192.0.2.0/24" } else { "::/0" }));
            }
        }
        let mut t = RouteTable::default();
        for k in &keys {
            let data = new_route(&mut t);
            if let RouteEntry::Vacant(v) = t.entry(*k, 1) {
                v.insert(data, 10, 10)
                    .map(drop)
                    .unwrap_or_else(|e| panic!("{e:?}"));
            }
        }
        let all: Vec<RouteKey> = t.iter().map(|(k, _)| k).collect();
        assert_eq!(t.iter_after(None).map(|(k, _)| k).collect::<Vec<_>>(), all);
        // Keys not in the table too: a plain key whose prefix has only source-specific
        // destinations, a source-specific one between two others, and past the end.
        let absent = [
            key("2001:db8:1::/48"),
            sp("::/0", "2001:db8::/32"),
            sp("2001:db8:1::/48", "2001:db8:f0::/48"),
            key("2001:db8:ffff::/48"),
            sp("10.0.0.0/8", "0.0.0.0/0"),
        ];
        assert!(absent.iter().all(|k| t.get(k).is_none()));
        for after in keys.iter().chain(&absent) {
            let want: Vec<RouteKey> = all.iter().copied().filter(|k| k > after).collect();
            let got: Vec<RouteKey> = t.iter_after(Some(*after)).map(|(k, _)| k).collect();
            assert_eq!(got, want, "after {after:?}");
        }
    }
}
