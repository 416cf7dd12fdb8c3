//! The route lines of `monitor` (babeld's `local_notify_route`): what a monitor was shown, and
//! the writing of one drain's route events as lines.
//!
//! A route learned is two events in one drain (added, then selected and installed) and so two
//! lines that differ only in their first word: the rest of the line is written once and copied.
//! Every field is written without `format!` (`control::text`).

use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

use babel_core::{ChangeKind, Event, RouteView};
use babel_wire::Prefix;
use foldhash::HashMap as FastHashMap;

use crate::control::text::HeadBuf;
use crate::control::{Dialect, RouteLine, write_route_head_in, write_route_tail, write_route_word};

/// A route as monitors know it: destination, source prefix, neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MonitoredRoute {
    prefix: Prefix,
    src_prefix: Option<Prefix>,
    via: IpAddr,
}

impl MonitoredRoute {
    fn of(r: &RouteView) -> Self {
        MonitoredRoute {
            prefix: r.prefix,
            src_prefix: r.src_prefix,
            via: r.via,
        }
    }
}

/// An address as one number (IPv4 mapped), for hashing.
fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V6(a) => u128::from(a),
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
    }
}

/// A few wide words instead of the fields one by one (a monitor hashes every route learned);
/// equal keys give equal words, so this agrees with `Eq`.
impl Hash for MonitoredRoute {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let family = |a: IpAddr| u32::from(a.is_ipv4());
        h.write_u128(bits(self.prefix.addr()));
        h.write_u128(bits(self.via));
        let src = self.src_prefix.map_or(0, |p| {
            h.write_u128(bits(p.addr()));
            0x100 | u32::from(p.len()) | family(p.addr()) << 9
        });
        h.write_u32(
            u32::from(self.prefix.len())
                | family(self.prefix.addr()) << 8
                | family(self.via) << 9
                | src << 10,
        );
    }
}

/// A route a monitor was shown, with the `installed` of its last line and its hash.
#[derive(Debug)]
struct ShownRoute {
    route: MonitoredRoute,
    installed: bool,
    hash: u32,
}

/// The routes a monitor was shown. A monitor sees every route learned, so this is one insert
/// per route: the routes are kept in a vector and the hash table holds only their index and
/// 32 bits of their hash (8 bytes a slot, about 1 MB for 100,000 routes, where slots holding
/// the routes took 7 MB and a cache miss or two per insert), under a fast hash with a random
/// seed.
#[derive(Debug, Default)]
struct ShownRoutes {
    index: hashbrown::HashTable<(u32, u32)>,
    routes: Vec<ShownRoute>,
    seed: foldhash::fast::RandomState,
}

/// A stored 32-bit hash as the table's 64 (its top bits choose the control byte, its low
/// bits the slot).
fn spread(h: u32) -> u64 {
    u64::from(h) << 32 | u64::from(h)
}

impl ShownRoutes {
    fn hash(&self, r: &MonitoredRoute) -> u32 {
        (self.seed.hash_one(r) >> 32) as u32
    }

    fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Records that `r`'s last line said `installed`.
    fn insert(&mut self, r: MonitoredRoute, installed: bool) {
        let h = self.hash(&r);
        let routes = &mut self.routes;
        let entry = self.index.entry(
            spread(h),
            |&(i, hh)| {
                hh == h
                    && routes
                        .get(i as usize)
                        .is_some_and(|s: &ShownRoute| s.route == r)
            },
            |&(_, hh)| spread(hh),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(o) => {
                if let Some(s) = routes.get_mut(o.get().0 as usize) {
                    s.installed = installed;
                }
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                // More than 4 billion routes cannot be held in memory anyway.
                let Ok(i) = u32::try_from(routes.len()) else {
                    return;
                };
                routes.push(ShownRoute {
                    route: r,
                    installed,
                    hash: h,
                });
                v.insert((i, h));
            }
        }
    }

    /// Forgets `r`; the `installed` of its last line if it was shown.
    fn remove(&mut self, r: &MonitoredRoute) -> Option<bool> {
        let h = self.hash(r);
        let routes = &self.routes;
        let found = self.index.find_entry(spread(h), |&(i, hh)| {
            hh == h && routes.get(i as usize).is_some_and(|s| s.route == *r)
        });
        let ((i, _), _) = found.ok()?.remove();
        let last = self.routes.len().checked_sub(1)?;
        let gone = self.routes.swap_remove(i as usize);
        // The last route moved to the hole: its slot follows it.
        if let Some(moved) = self.routes.get(i as usize)
            && let Some(slot) = self
                .index
                .find_mut(spread(moved.hash), |&(j, _)| j as usize == last)
        {
            slot.0 = i;
        }
        Some(gone.installed)
    }
}

/// The routes a monitor was shown and the scratch space of writing their lines.
#[derive(Debug, Default)]
pub struct RouteMonitor {
    /// The routes a monitor was shown, with the `installed` of their last line (their flush
    /// repeats it; the other fields come with the flush event).
    shown: ShownRoutes,
    /// Per drain: for each event, the index of the drain's last event about the same route.
    latest: Vec<usize>,
    /// Per drain: the last event index of each route, while `latest` is computed.
    last_of: FastHashMap<(MonitoredRoute, u32), usize>,
    /// The rest of the last line written (after its first word), and the event it shows.
    body: String,
    body_of: Option<usize>,
    /// The last event whose route was recorded in `shown` (a route's consecutive events
    /// record it once).
    recorded: Option<usize>,
    /// The neighbour and interface of the last route line, with the line's end written for
    /// them (` via A if I`); forgotten at each drain, so a renamed interface shows its new name.
    tail: Option<(IpAddr, u32, String)>,
    /// Where a line's head is built, kept from line to line.
    head: HeadBuf,
}

impl RouteMonitor {
    /// Whether it remembers a route shown to a monitor (whose flush it must hear of).
    pub fn remembers(&self) -> bool {
        !self.shown.is_empty()
    }

    /// Keeps the shown set right while no client monitors: a flushed route is forgotten.
    pub fn forget(&mut self, route: &RouteView) {
        if !self.shown.is_empty() {
            self.shown.remove(&MonitoredRoute::of(route));
        }
    }

    /// Starts writing the lines of one drain's `events`: each route event's line is then
    /// written by [`RouteMonitor::write_line`], in order.
    pub fn begin(&mut self, events: &[Event]) {
        self.find_latest(events);
        self.body_of = None;
        self.recorded = None;
        self.tail = None;
    }

    /// Appends the line of `events[i]`, a route event, to `out` with its newline; false if
    /// it has none. A line shows its route as it is after the drain (a route added then
    /// installed in one step shows `installed yes` twice); a `flush` line shows the fields
    /// the flush event carries with `installed` as the route's last line said, and only for a
    /// route a monitor was shown. Nothing is looked up in the engine.
    pub fn write_line(
        &mut self,
        events: &[Event],
        i: usize,
        dialect: Dialect,
        ifname: &dyn Fn(u32) -> String,
        out: &mut String,
    ) -> bool {
        let Some(Event::Route { kind, route }) = events.get(i) else {
            return false;
        };
        let key = MonitoredRoute::of(route);
        match kind {
            ChangeKind::Flush => {
                self.recorded = None;
                let Some(installed) = self.shown.remove(&key) else {
                    return false;
                };
                self.body_of = None;
                self.write_body(route, installed, dialect, ifname);
            }
            ChangeKind::Add | ChangeKind::Change => {
                let Some((j, now)) = self.latest.get(i).and_then(|&j| match events.get(j) {
                    Some(Event::Route {
                        kind: ChangeKind::Add | ChangeKind::Change,
                        route,
                    }) => Some((j, route)),
                    // The route left the table in this drain: only its flush is shown.
                    _ => None,
                }) else {
                    return false;
                };
                if self.recorded != Some(j) {
                    self.shown.insert(key, now.installed);
                    self.recorded = Some(j);
                }
                if self.body_of != Some(j) {
                    self.write_body(now, now.installed, dialect, ifname);
                    self.body_of = Some(j);
                }
            }
        }
        write_route_word(out, *kind, &self.body);
        out.push('\n');
        true
    }

    /// Writes `r`'s line after its first word into `self.body`.
    fn write_body(
        &mut self,
        r: &RouteView,
        installed: bool,
        dialect: Dialect,
        ifname: &dyn Fn(u32) -> String,
    ) {
        let tail = match &mut self.tail {
            Some((via, ix, tail)) if *via == r.via && *ix == r.ifindex => tail,
            t => {
                let mut tail = String::new();
                write_route_tail(&mut tail, r.via, &ifname(r.ifindex));
                &t.insert((r.via, r.ifindex, tail)).2
            }
        };
        self.body.clear();
        // The interface's name is only in the tail.
        write_route_head_in(
            &mut self.head,
            &mut self.body,
            dialect,
            &shown_route_line(r, installed, ""),
        );
        self.body.push_str(tail);
    }

    /// For each event of one drain, the index of the drain's last event about the same route
    /// (its own index for other events): that event's route is the route as it is after the
    /// drain. A route's events are usually consecutive (added, then selected): a run of them
    /// is looked up once.
    fn find_latest(&mut self, events: &[Event]) {
        self.latest.clear();
        self.latest.extend(0..events.len());
        self.last_of.clear();
        let mut run: Option<((MonitoredRoute, u32), usize)> = None;
        for (i, e) in events.iter().enumerate().rev() {
            let Event::Route { route: r, .. } = e else {
                continue;
            };
            let key = (MonitoredRoute::of(r), r.ifindex);
            let last = match run {
                Some((k, last)) if k == key => last,
                _ => match self.last_of.entry(key) {
                    Entry::Occupied(o) => *o.get(),
                    Entry::Vacant(v) => *v.insert(i),
                },
            };
            if let Some(l) = self.latest.get_mut(i) {
                *l = last;
            }
            run = Some((key, last));
        }
        // A burst's scratch space is not kept.
        if self.last_of.capacity() > 4096 {
            self.last_of = FastHashMap::default();
        }
    }
}

/// The fields of `r`'s route line (`installed` as the line should say it).
pub fn shown_route_line<'a>(r: &RouteView, installed: bool, ifname: &'a str) -> RouteLine<'a> {
    RouteLine {
        id: route_id(&r.prefix, r.src_prefix.as_ref(), r.via),
        prefix: r.prefix,
        src_prefix: r.src_prefix,
        installed,
        router_id: r.router_id,
        metric: r.metric.0,
        refmetric: r.refmetric.0,
        received_price: r.received_price,
        fee: r.fee,
        full_path_rtt: r.full_path_rtt,
        via: r.via,
        ifname,
    }
}

/// A stable id for a route line: babeld prints a pointer, we hash what identifies the route
/// (48 bits, the same in every run, as [`crate::control::line_id`] gives the other lines).
/// A monitor computes one per route learned, so the route is mixed in 64-bit words (seven
/// multiplications) rather than byte by byte.
pub fn route_id(prefix: &Prefix, src: Option<&Prefix>, via: IpAddr) -> u64 {
    fn mix(h: u64, w: u64) -> u64 {
        (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    }
    fn words(h: u64, a: IpAddr) -> u64 {
        let v = bits(a);
        mix(mix(h, (v >> 64) as u64), v as u64)
    }
    let family = |a: IpAddr| u64::from(a.is_ipv4());
    let mut h = words(0x726f_7574_6500_0000, prefix.addr());
    let mut shape = u64::from(prefix.len()) | family(prefix.addr()) << 8 | family(via) << 9;
    if let Some(s) = src {
        h = words(h, s.addr());
        shape |= 1 << 10 | family(s.addr()) << 11 | u64::from(s.len()) << 16;
    }
    h = words(mix(h, shape), via);
    // A final avalanche, so the low bits kept depend on every word.
    h ^= h >> 32;
    h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
    (h ^ h >> 32) & 0xffff_ffff_ffff
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::net::Ipv6Addr;
    use std::time::Duration;

    use babel_wire::{Metric, RouterId, Seqno};

    use super::*;

    fn view(i: u16, installed: bool, metric: u16) -> RouteView {
        let a = Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0);
        RouteView {
            prefix: Prefix::new(IpAddr::V6(a), 64).unwrap(),
            src_prefix: None,
            installed,
            feasible: true,
            router_id: RouterId([2, 0, 0, 0, 0, 0, 1, i as u8]),
            metric: Metric(metric),
            smoothed_metric: Metric(metric),
            refmetric: Metric(metric - 96),
            verified_metric: None,
            price: 0,
            received_price: 0,
            fee: 0,
            seqno: Seqno(7),
            age: Duration::ZERO,
            via: "fe80::2".parse().unwrap(),
            next_hop: "fe80::2".parse().unwrap(),
            ifindex: 1,
            full_path_rtt: 0,
        }
    }

    fn ev(kind: ChangeKind, route: RouteView) -> Event {
        Event::Route { kind, route }
    }

    fn write(m: &mut RouteMonitor, events: &[Event]) -> Vec<String> {
        let mut out = String::new();
        m.begin(events);
        let n = (0..events.len())
            .filter(|&i| m.write_line(events, i, Dialect::Babel, &|_| "eth0".into(), &mut out))
            .count();
        let lines: Vec<String> = out.lines().map(str::to_owned).collect();
        assert_eq!(n, lines.len());
        lines
    }

    /// Route ids are the same in every run and tell apart routes that differ in any one of
    /// prefix, length, source prefix, family or neighbour; they fit in 48 bits.
    #[test]
    fn route_ids_tell_routes_apart() {
        let p = |s: &str| s.parse::<Prefix>().unwrap();
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        let via = a("fe80::2");
        let routes = [
            (p("2001:db8:1::/64"), None, via),
            (p("2001:db8:1::/48"), None, via),
            (p("2001:db8:2::/64"), None, via),
            (p("2001:db8:1::/64"), Some(p("2001:db8:9::/48")), via),
            (p("2001:db8:1::/64"), Some(p("2001:db8:9::/56")), via),
            (p("2001:db8:1::/64"), None, a("fe80::3")),
            (p("10.0.0.0/8"), None, via),
            (p("10.0.0.0/8"), None, a("10.0.0.1")),
            (p("::ffff:10.0.0.0/104"), None, via),
        ];
        let ids: Vec<u64> = routes
            .iter()
            .map(|(d, s, v)| route_id(d, s.as_ref(), *v))
            .collect();
        for (i, x) in ids.iter().enumerate() {
            assert!(*x <= 0xffff_ffff_ffff);
            assert_eq!(ids.iter().filter(|y| *y == x).count(), 1, "{:?}", routes[i]);
        }
        // The same route, the same id.
        assert_eq!(ids[0], route_id(&routes[0].0, None, via));
    }

    /// The shown set agrees with a map of the same inserts and removals (removals move the
    /// last route into the hole and its slot with it).
    #[test]
    fn shown_routes_agree_with_a_map() {
        let mut shown = ShownRoutes::default();
        let mut model = std::collections::HashMap::new();
        let key = |i: u64| MonitoredRoute::of(&view((i % 700) as u16, false, 200));
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key(x >> 8);
            if x.is_multiple_of(3) {
                assert_eq!(shown.remove(&k), model.remove(&k), "step {step}");
            } else {
                shown.insert(k, x.is_multiple_of(2));
                model.insert(k, x.is_multiple_of(2));
            }
            assert_eq!(shown.routes.len(), model.len());
            assert_eq!(shown.index.len(), model.len());
        }
        for (k, v) in model {
            assert_eq!(shown.remove(&k), Some(v));
        }
        assert!(shown.is_empty() && shown.index.is_empty());
    }

    /// The end of a line (` via A if I`) is written once per neighbour and interface: routes
    /// through other neighbours or interfaces in the same drain end in theirs, and a name the
    /// interface has in a later drain is the one shown.
    #[test]
    fn line_ends_follow_neighbour_and_interface() {
        let mut m = RouteMonitor::default();
        let mut other = view(2, true, 300);
        other.via = "fe80::3".parse().unwrap();
        let mut third = view(3, true, 300);
        third.ifindex = 2;
        let events = [
            ev(ChangeKind::Add, view(1, true, 200)),
            ev(ChangeKind::Add, other),
            ev(ChangeKind::Add, third),
            ev(ChangeKind::Add, view(4, true, 200)),
        ];
        let mut out = String::new();
        let name = |ix: u32| format!("eth{ix}");
        m.begin(&events);
        for i in 0..events.len() {
            assert!(m.write_line(&events, i, Dialect::Babel, &name, &mut out));
        }
        let ends: Vec<&str> = out
            .lines()
            .map(|l| l.split(" via ").nth(1).unwrap())
            .collect();
        assert_eq!(
            ends,
            [
                "fe80::2 if eth1",
                "fe80::3 if eth1",
                "fe80::2 if eth2",
                "fe80::2 if eth1"
            ]
        );
        let events = [ev(ChangeKind::Change, view(1, true, 200))];
        let mut out = String::new();
        m.begin(&events);
        assert!(m.write_line(&events, 0, Dialect::Babel, &|_| "wlan0".into(), &mut out));
        assert!(out.ends_with(" via fe80::2 if wlan0\n"), "{out}");
    }

    /// Events of two routes interleaved: every line shows its route as the drain left it,
    /// each body written for the right route; a flush repeats the last `installed` shown.
    #[test]
    fn interleaved_routes_show_their_state_after_the_drain() {
        let mut m = RouteMonitor::default();
        let events = [
            ev(ChangeKind::Add, view(1, false, 200)),
            ev(ChangeKind::Add, view(2, false, 300)),
            ev(ChangeKind::Change, view(1, true, 250)),
            ev(ChangeKind::Change, view(2, true, 350)),
        ];
        let got = write(&mut m, &events);
        assert_eq!(got.len(), 4);
        for (l, (word, p, metric)) in got.iter().zip([
            ("add", "2001:db8:1::/64", 250),
            ("add", "2001:db8:2::/64", 350),
            ("change", "2001:db8:1::/64", 250),
            ("change", "2001:db8:2::/64", 350),
        ]) {
            assert!(l.starts_with(&format!("{word} route ")), "{l}");
            assert!(
                l.contains(&format!(" prefix {p} from ::/0 installed yes ")),
                "{l}"
            );
            assert!(l.contains(&format!(" metric {metric} ")), "{l}");
            assert!(l.ends_with(" via fe80::2 if eth0"), "{l}");
        }
        // Flushed with `installed` as its event says no: the line repeats the last shown.
        let got = write(&mut m, &[ev(ChangeKind::Flush, view(1, false, 250))]);
        assert_eq!(got, [got[0].clone()]);
        assert!(got[0].starts_with("flush route ") && got[0].contains(" installed yes "));
        // Flushed again, or a route never shown: no line.
        assert!(write(&mut m, &[ev(ChangeKind::Flush, view(1, false, 250))]).is_empty());
        assert!(write(&mut m, &[ev(ChangeKind::Flush, view(3, false, 250))]).is_empty());
        // Forgotten while nobody monitored: no flush line later.
        m.forget(&view(2, true, 350));
        assert!(write(&mut m, &[ev(ChangeKind::Flush, view(2, true, 350))]).is_empty());
    }
}
