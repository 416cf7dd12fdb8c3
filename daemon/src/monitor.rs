//! The route lines of `monitor` (babeld's `local_notify_route`): what a monitor was shown, and
//! the writing of one drain's route events as lines.
//!
//! A route learned is two events in one drain (added, then selected and installed) and so two
//! lines that differ only in their first word: the rest of the line is written once and copied.
//! Every field is written without `format!` (`control::text`).

use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use babel_core::{ChangeKind, Event, RouteView};
use babel_wire::Prefix;
use foldhash::HashMap as FastHashMap;

use crate::control::{Dialect, RouteLine, write_route_body, write_route_word};

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

/// The routes a monitor was shown and the scratch space of writing their lines.
#[derive(Debug, Default)]
pub struct RouteMonitor {
    /// The routes a monitor was shown, with the `installed` of their last line (their flush
    /// repeats it; the other fields come with the flush event), under a fast hash with a
    /// random seed: a monitor sees every route learned.
    shown: FastHashMap<MonitoredRoute, bool>,
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
    /// The interface of the last route line, with its name.
    ifname: Option<(u32, String)>,
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
        if self.ifname.as_ref().is_none_or(|(ix, _)| *ix != r.ifindex) {
            self.ifname = Some((r.ifindex, ifname(r.ifindex)));
        }
        self.body.clear();
        write_route_body(
            &mut self.body,
            dialect,
            &shown_route_line(
                r,
                installed,
                self.ifname.as_ref().map_or("", |(_, n)| n.as_str()),
            ),
        );
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

/// A stable id for a route line: babeld prints a pointer, we hash what identifies the route.
pub fn route_id(prefix: &Prefix, src: Option<&Prefix>, via: IpAddr) -> u64 {
    // The binary forms, not the text: a monitor computes one id per route event.
    fn bytes(a: IpAddr) -> [u8; 16] {
        match a {
            IpAddr::V6(v6) => v6.octets(),
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        }
    }
    let p = |p: &Prefix| {
        let mut b = [0u8; 17];
        let (addr, len) = b.split_at_mut(16);
        addr.copy_from_slice(&bytes(p.addr()));
        len.fill(p.len());
        b
    };
    let s = src.map(p);
    crate::control::line_id(&[
        b"route",
        &p(prefix),
        s.as_ref().map_or(&[][..], |s| &s[..]),
        &bytes(via),
    ])
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
