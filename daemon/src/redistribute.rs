//! babeld's `redistribute` and `install` filters (babeld.man, "Filtering rules").
//!
//! A candidate is a local address (announced as a host prefix) or a kernel route of another
//! protocol. Filters are tried in order and the first whose selectors all match decides. With no
//! match, local addresses are announced and kernel routes are not, as babeld does.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use babel_core::{
    FilterAnswer, FilterRoute, Input, RouteChange, RouteFilter, RouteKey, RouteOp, is_martian,
};
use babel_wire::{Prefix, RouterId};
use kernel_fib::{AddressInfo, KernelRoute, LinkInfo, RTPROT_BABEL, RouteKind};

use crate::actions::Action;

use crate::config::{Filter, FilterAction, FilterKind};

/// What a filter's selectors match on (babeld.man, "Filtering rules"): a local address, a kernel
/// route, or a route received, sent or installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterSubject<'a> {
    /// Destination.
    pub prefix: Prefix,
    /// Source prefix.
    pub src_prefix: Option<Prefix>,
    /// Interface name.
    pub ifname: Option<&'a str>,
    /// Kernel protocol of a route; `None` for a local address.
    pub proto: Option<u8>,
    /// Neighbour it was learned from (install and in filters).
    pub neighbour: Option<IpAddr>,
    /// Originating router (install and in filters).
    pub router_id: Option<RouterId>,
}

/// What the filters decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterVerdict {
    /// Announce (redistribute) or install.
    pub allow: bool,
    /// Metric to add / announce with.
    pub metric: u16,
    /// `table N`.
    pub table: Option<u32>,
    /// `pref-src IP`.
    pub pref_src: Option<IpAddr>,
    /// `src-prefix P`.
    pub src_prefix: Option<Prefix>,
}

fn plen_ok(len: u8, ge: Option<u8>, le: Option<u8>) -> bool {
    ge.is_none_or(|g| len >= g) && le.is_none_or(|l| len <= l)
}

/// The zero-length prefix of `p`'s family.
fn default_of(p: &Prefix) -> Prefix {
    let any = if p.is_ipv4() {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    Prefix::new(any, 0).unwrap_or(*p)
}

/// Whether every selector of `f` matches `c`.
pub fn matches(f: &Filter, c: &FilterSubject<'_>) -> bool {
    if let Some(p) = f.prefix
        && !p.contains(&c.prefix)
    {
        return false;
    }
    if !plen_ok(c.prefix.len(), f.plen_ge, f.plen_le) {
        return false;
    }
    // RFC 9079 §4 / babeld: a route without a source prefix has the zero-length source
    // prefix of its family, so `src-ip ::/0` and `src-eq 0` match it.
    if f.src_prefix.is_some() || f.src_plen_ge.is_some() || f.src_plen_le.is_some() {
        let src = c.src_prefix.unwrap_or_else(|| default_of(&c.prefix));
        if f.src_prefix.is_some_and(|p| !p.contains(&src))
            || !plen_ok(src.len(), f.src_plen_ge, f.src_plen_le)
        {
            return false;
        }
    }
    if f.local && c.proto.is_some() {
        return false;
    }
    if let Some(p) = f.proto
        && c.proto != Some(p)
    {
        return false;
    }
    if let Some(i) = &f.interface
        && c.ifname != Some(i.as_str())
    {
        return false;
    }
    if let Some(n) = f.neighbour
        && c.neighbour != Some(n)
    {
        return false;
    }
    if let Some(id) = f.router_id
        && c.router_id != Some(id)
    {
        return false;
    }
    true
}

/// Runs the filters of `kind` on `c`; `default_allow` applies when none matches.
pub fn verdict(
    filters: &[(FilterKind, Filter)],
    kind: FilterKind,
    c: &FilterSubject<'_>,
    default_allow: bool,
) -> FilterVerdict {
    for (k, f) in filters {
        if *k != kind || !matches(f, c) {
            continue;
        }
        let mut v = FilterVerdict {
            allow: true,
            ..FilterVerdict::default()
        };
        for a in &f.actions {
            match a {
                FilterAction::Allow => {}
                FilterAction::Deny => v.allow = false,
                FilterAction::Metric(m) => v.metric = v.metric.saturating_add(*m),
                FilterAction::Table(t) => v.table = Some(*t),
                FilterAction::PrefSrc(p) => v.pref_src = Some(*p),
                FilterAction::SrcPrefix(p) => v.src_prefix = Some(*p),
            }
        }
        // babeld: a metric of infinity is a deny.
        if v.metric == babel_wire::INFINITY {
            v.allow = false;
        }
        return v;
    }
    FilterVerdict {
        allow: default_allow,
        ..FilterVerdict::default()
    }
}

/// The configuration's `in`, `out` and `install` filters as the engine's route filter: the first
/// matching filter of that kind decides; `deny` (or metric infinity) refuses, `metric N` adds N;
/// with no match the route passes unchanged (babeld's `input_filter`, `output_filter`,
/// `install_filter`). The `install` filter's table and preferred source are the daemon's.
///
/// Before them, one rule of our own: a route received on a `tunnel` interface whose prefix holds
/// that tunnel's own endpoint is refused (see [`TunnelEndpoint`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterRules {
    filters: Vec<(FilterKind, Filter)>,
    endpoints: Vec<TunnelEndpoint>,
}

/// A `tunnel` interface and the address its outer packets go to (`tunnel-peer ... endpoint`).
///
/// A tunnel whose endpoint is reached through the tunnel itself carries nothing: its outer
/// packets would enter it again (the kernel refuses them as too long for the tunnel's MTU, or they
/// loop). This happens as soon as Babel runs over a tunnel to a router whose own address it
/// announces, for example a static tunnel between two mesh routers' addresses, where both the
/// mesh path and the tunnel offer the endpoint at equal cost. So a route learned on the tunnel
/// whose prefix holds the endpoint is not accepted. Default routes (length 0) still are: sending
/// everything into a tunnel is what a tunnel to an exit is for, and the endpoint is then reached
/// by its more specific route.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TunnelEndpoint {
    /// The tunnel interface.
    pub ifname: String,
    /// Its peer's configured endpoint address.
    pub endpoint: IpAddr,
}

impl TunnelEndpoint {
    /// The endpoints of the configuration's `tunnel-peer` lines.
    pub fn from_config(
        tunnels: &[(
            String,
            crate::config::TunnelOptions,
            Vec<crate::config::TunnelPeer>,
        )],
    ) -> Vec<TunnelEndpoint> {
        tunnels
            .iter()
            .flat_map(|(ifname, _, peers)| {
                peers.iter().filter_map(|p| {
                    p.endpoint.map(|e| TunnelEndpoint {
                        ifname: ifname.clone(),
                        endpoint: e.ip(),
                    })
                })
            })
            .collect()
    }

    /// Whether `r`, received on an interface, would route this endpoint through its own tunnel.
    fn refuses(&self, r: &FilterRoute<'_>) -> bool {
        r.ifname == self.ifname
            && !r.prefix.is_default()
            && r.prefix.contains(&Prefix::host(self.endpoint))
    }
}

impl FilterRules {
    /// The `in`, `out` and `install` filters of `filters`, or `None` when there are none.
    pub fn from_config(filters: &[(FilterKind, Filter)]) -> Option<FilterRules> {
        FilterRules::new(filters, Vec::new())
    }

    /// The `in`, `out` and `install` filters of `filters` and the rule for `endpoints`, or
    /// `None` when there is neither.
    pub fn new(
        filters: &[(FilterKind, Filter)],
        endpoints: Vec<TunnelEndpoint>,
    ) -> Option<FilterRules> {
        let filters: Vec<(FilterKind, Filter)> = filters
            .iter()
            .filter(|(k, _)| matches!(k, FilterKind::In | FilterKind::Out | FilterKind::Install))
            .cloned()
            .collect();
        (!filters.is_empty() || !endpoints.is_empty()).then_some(FilterRules { filters, endpoints })
    }

    fn answer(&self, kind: FilterKind, r: &FilterRoute<'_>) -> FilterAnswer {
        if kind == FilterKind::In && self.endpoints.iter().any(|e| e.refuses(r)) {
            return FilterAnswer::Deny;
        }
        let c = FilterSubject {
            prefix: r.prefix,
            src_prefix: r.src_prefix,
            ifname: Some(r.ifname),
            proto: None,
            neighbour: r.neighbour,
            router_id: Some(r.router_id),
        };
        let v = verdict(&self.filters, kind, &c, true);
        if v.allow {
            FilterAnswer::AddMetric(v.metric)
        } else {
            FilterAnswer::Deny
        }
    }
}

impl RouteFilter for FilterRules {
    fn input(&self, route: &FilterRoute<'_>) -> FilterAnswer {
        self.answer(FilterKind::In, route)
    }
    fn output(&self, route: &FilterRoute<'_>) -> FilterAnswer {
        self.answer(FilterKind::Out, route)
    }
    fn install(&self, route: &FilterRoute<'_>) -> bool {
        self.answer(FilterKind::Install, route) != FilterAnswer::Deny
    }
}

/// The routes to announce: key (prefix, source) to metric.
pub type Announcements = BTreeMap<(Prefix, Option<Prefix>), u16>;

/// Computes what to announce from local addresses (`(ifname, address)`) and kernel routes
/// (`(prefix, src, ifname, proto)`).
pub fn announcements<'a>(
    filters: &[(FilterKind, Filter)],
    locals: impl IntoIterator<Item = (Option<&'a str>, IpAddr)>,
    routes: impl IntoIterator<Item = (Prefix, Option<Prefix>, Option<&'a str>, u8)>,
) -> Announcements {
    let mut out = Announcements::new();
    for (ifname, addr) in locals {
        let c = FilterSubject {
            prefix: Prefix::host(addr),
            src_prefix: None,
            ifname,
            proto: None,
            neighbour: None,
            router_id: None,
        };
        let v = verdict(filters, FilterKind::Redistribute, &c, true);
        if v.allow {
            let src = v
                .src_prefix
                .filter(|s| !s.is_default() && s.is_ipv4() == c.prefix.is_ipv4());
            out.insert((c.prefix, src), v.metric);
        }
    }
    for (prefix, src_prefix, ifname, proto) in routes {
        let c = FilterSubject {
            prefix,
            src_prefix,
            ifname,
            proto: Some(proto),
            neighbour: None,
            router_id: None,
        };
        let v = verdict(filters, FilterKind::Redistribute, &c, false);
        if v.allow {
            // `src-prefix P` sets the route's source prefix (babeld: it replaces the kernel
            // route's own); a source of the other family, or a zero-length one, is the
            // non-specific route (RFC 9079 §7.1 forbids sending length 0).
            let src = v
                .src_prefix
                .or(src_prefix)
                .filter(|s| !s.is_default() && s.is_ipv4() == prefix.is_ipv4());
            out.insert((prefix, src), v.metric);
        }
    }
    out
}

/// The kernel tables whose routes are candidates for redistribution: main, then each
/// `import-table`.
pub fn redistributed_tables(import_tables: &[u32]) -> Vec<u32> {
    let mut tables = vec![kernel_fib::TABLE_MAIN];
    tables.extend(import_tables.iter().copied());
    tables
}

/// babeld's redistribution, sans-IO: from the kernel's links, addresses and routes (of the
/// [`redistributed_tables`]) to what is announced, and the [`Action`]s that take us there from
/// `announced` (what we announce now). Link-local addresses, tentative ones, our own
/// protocol's routes, routes that are not unicast, martians and link-local prefixes are never
/// announced (RFC 8966 §3.7 leaves the choice to the implementation; these are babeld's).
pub fn redistribution(
    filters: &[(FilterKind, Filter)],
    links: &[LinkInfo],
    addrs: &[AddressInfo],
    routes: &[KernelRoute],
    announced: &Announcements,
) -> (Announcements, Vec<Action>) {
    let name = |ix: u32| {
        links
            .iter()
            .find(|l| l.index == ix)
            .map(|l| l.name.as_str())
    };
    let locals = addrs
        .iter()
        .filter(|a| !babel_wire::is_link_local(&a.address) && !a.is_tentative())
        .map(|a| (name(a.index), a.address));
    let routes = routes
        .iter()
        .filter(|r| r.protocol != RTPROT_BABEL && r.kind == RouteKind::Unicast)
        .map(|r| (r.dst, r.src, r.oif.and_then(name), r.protocol));
    let wanted: Announcements = announcements(filters, locals, routes)
        .into_iter()
        .filter(|((p, _), _)| !is_martian(p) && !babel_wire::is_link_local(&p.addr()))
        .collect();
    let mut actions: Vec<Action> = announced
        .keys()
        .filter(|k| !wanted.contains_key(k))
        .map(|&(prefix, src_prefix)| Action::Engine(Input::Withdraw { prefix, src_prefix }))
        .collect();
    for (&(prefix, src_prefix), &metric) in &wanted {
        if announced.get(&(prefix, src_prefix)) != Some(&metric) {
            actions.push(Action::Engine(Input::Announce {
                prefix,
                src_prefix,
                metric,
            }));
        }
    }
    (wanted, actions)
}

/// Where a route goes in the kernel: table and preferred source (the `install` filter's
/// answer), `None` for the defaults.
pub type Placement = (Option<u32>, Option<IpAddr>);

/// The table and preferred source each installed destination went in with. The `install`
/// filter is asked once, when a destination is first added; a switch of next hop, the end of
/// a hold (babeld's `ROUTE_MODIFY`), an unreachable route or a removal stays where the route
/// is, as in babeld, whose `change_route` takes them from the installed route.
///
/// While no `install` filter sets a table or a preferred source and nothing is placed yet,
/// every placement is the default and none is recorded (a full table would otherwise cost a
/// map entry per route). A placing filter added at run time then applies to the next `Add` of
/// a destination added before it, where the book would have kept its default placement.
#[derive(Clone, Debug, Default)]
pub struct Placements {
    placed: HashMap<RouteKey, Placement>,
}

/// Whether some `install` filter sets a table or a preferred source.
fn places(filters: &[(FilterKind, Filter)]) -> bool {
    filters.iter().any(|(k, f)| {
        *k == FilterKind::Install
            && f.actions
                .iter()
                .any(|a| matches!(a, FilterAction::Table(_) | FilterAction::PrefSrc(_)))
    })
}

impl Placements {
    /// Where the engine's route change goes. `ifname` names its interface for the filter.
    pub fn place(
        &mut self,
        filters: &[(FilterKind, Filter)],
        change: &RouteChange,
        ifname: &str,
    ) -> Placement {
        if self.placed.is_empty() && !places(filters) {
            return Placement::default();
        }
        let key = RouteKey {
            prefix: change.prefix,
            src_prefix: change.src_prefix,
        };
        match change.op {
            RouteOp::Add => *self.placed.entry(key).or_insert_with(|| {
                let cand = FilterSubject {
                    prefix: change.prefix,
                    src_prefix: change.src_prefix,
                    ifname: Some(ifname),
                    proto: Some(RTPROT_BABEL),
                    neighbour: Some(change.next_hop),
                    router_id: Some(change.router_id),
                };
                let v = verdict(filters, FilterKind::Install, &cand, true);
                (v.table, v.pref_src)
            }),
            RouteOp::Replace | RouteOp::Unreachable => {
                self.placed.get(&key).copied().unwrap_or_default()
            }
            RouteOp::Delete => self.placed.remove(&key).unwrap_or_default(),
        }
    }

    /// How many destinations are placed.
    pub fn len(&self) -> usize {
        self.placed.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.placed.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::config::DaemonConfig;

    fn filters(text: &str) -> Vec<(FilterKind, Filter)> {
        let mut c = DaemonConfig::default();
        c.parse_text("t", text).unwrap();
        c.filters
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn a_tunnel_does_not_learn_a_route_to_its_own_endpoint() {
        let mut c = DaemonConfig::default();
        let key = "YbEXsupB5h/yYLeVOxXW99zR9DNsdPxiQp5qvfEdc20=";
        c.parse_text(
            "t",
            &format!(
                "tunnel wg0 private-key {key}\n\
                 tunnel-peer wg0 public-key {key} endpoint [fd77::2]:51820\n\
                 tunnel wg1 private-key {key}\n\
                 tunnel-peer wg1 public-key {key}\n\
                 in ip fd00::/8 le 128 metric 5\n"
            ),
        )
        .unwrap();
        let endpoints = TunnelEndpoint::from_config(&c.tunnels);
        assert_eq!(
            endpoints,
            [TunnelEndpoint {
                ifname: "wg0".to_owned(),
                endpoint: "fd77::2".parse().unwrap()
            }]
        );
        assert!(FilterRules::new(&[], Vec::new()).is_none());
        let f = FilterRules::new(&c.filters, endpoints).unwrap();
        let r = |prefix: &str, ifname| FilterRoute {
            prefix: p(prefix),
            src_prefix: None,
            router_id: RouterId([2, 0, 0, 0, 0, 0, 0, 1]),
            neighbour: Some("fe80::2".parse().unwrap()),
            ifindex: 1,
            ifname,
        };
        // The endpoint, and any prefix holding it, is refused on its own tunnel only.
        for prefix in ["fd77::2/128", "fd77::/64", "fd00::/8"] {
            assert_eq!(f.input(&r(prefix, "wg0")), FilterAnswer::Deny, "{prefix}");
            assert_eq!(f.input(&r(prefix, "mesh0")), FilterAnswer::AddMetric(5));
            assert_eq!(f.input(&r(prefix, "wg1")), FilterAnswer::AddMetric(5));
        }
        // Other prefixes, and the default route, still come through the tunnel; the
        // configured filters still apply to them.
        assert_eq!(
            f.input(&r("fd77::3/128", "wg0")),
            FilterAnswer::AddMetric(5)
        );
        assert_eq!(f.input(&r("::/0", "wg0")), FilterAnswer::AddMetric(0));
        assert_eq!(f.input(&r("10.0.0.0/8", "wg0")), FilterAnswer::AddMetric(0));
        // Only what is received: announcing and installing are the configured filters' job.
        assert_eq!(
            f.output(&r("fd77::2/128", "wg0")),
            FilterAnswer::AddMetric(0)
        );
        assert!(f.install(&r("fd77::2/128", "wg0")));
    }

    #[test]
    fn in_and_out_filters_as_the_engine_sees_them() {
        assert!(FilterRules::from_config(&filters("redistribute local deny\n")).is_none());
        let f = FilterRules::from_config(&filters(
            "in ip 10.0.0.0/8 le 24 deny\n\
             in if eth1 metric 128\n\
             out neigh fe80::1 deny\n\
             out id 02:00:00:00:00:00:00:09 metric 7\n\
             redistribute ip 10.0.0.0/8 deny\n",
        ))
        .unwrap();
        let r = |prefix: &str, ifname, rid: u8, neighbour: Option<&str>| FilterRoute {
            prefix: p(prefix),
            src_prefix: None,
            router_id: RouterId([2, 0, 0, 0, 0, 0, 0, rid]),
            neighbour: neighbour.map(|n| n.parse().unwrap()),
            ifindex: 1,
            ifname,
        };
        assert_eq!(
            f.input(&r("10.1.0.0/16", "eth0", 1, Some("fe80::2"))),
            FilterAnswer::Deny
        );
        // le 24: a /32 is not matched by the first filter; the second matches on eth1 only.
        assert_eq!(
            f.input(&r("10.1.0.1/32", "eth1", 1, Some("fe80::2"))),
            FilterAnswer::AddMetric(128)
        );
        assert_eq!(
            f.input(&r("10.1.0.1/32", "eth0", 1, Some("fe80::2"))),
            FilterAnswer::AddMetric(0)
        );
        // out filters never see a neighbour, so `neigh` cannot match there.
        assert_eq!(
            f.output(&r("10.1.0.0/16", "eth0", 1, None)),
            FilterAnswer::AddMetric(0)
        );
        assert_eq!(
            f.output(&r("fd00::/64", "eth0", 9, None)),
            FilterAnswer::AddMetric(7)
        );
        // redistribute filters are not route filters.
        assert_eq!(
            f.output(&r("10.1.0.0/16", "eth0", 3, None)),
            FilterAnswer::AddMetric(0)
        );
    }

    #[test]
    fn babeld_defaults_locals_yes_routes_no() {
        let a = announcements(
            &[],
            [(Some("lo"), "10.0.0.1".parse().unwrap())],
            [(p("10.9.0.0/16"), None, Some("eth0"), 4)],
        );
        assert_eq!(a.len(), 1);
        assert!(a.contains_key(&(p("10.0.0.1/32"), None)));
    }

    #[test]
    fn the_capture_scripts_filters() {
        // spec/captures/capture-babeld.sh's configuration.
        let f = filters(
            "redistribute local ip 10.77.0.0/16 allow\nredistribute local ip fd77::/16 allow\nredistribute ip 10.78.0.0/16 le 24 allow\nredistribute ip fd78::/16 le 48 allow\nredistribute local deny\n",
        );
        let locals = [
            (Some("lo"), "10.77.0.1".parse().unwrap()),
            (Some("lo"), "fd77::1".parse().unwrap()),
            (Some("eth0"), "10.99.1.1".parse().unwrap()),
        ];
        let routes = [
            (p("10.78.1.0/24"), None, Some("bh0"), 4),
            (p("fd78:0:1::/48"), None, Some("bh0"), 4),
            (p("10.99.1.0/24"), None, Some("eth0"), 2),
            (p("10.78.0.0/25"), None, Some("bh0"), 4),
        ];
        let a = announcements(&f, locals, routes);
        let keys: Vec<String> = a.keys().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            keys,
            vec![
                "10.77.0.1/32",
                "10.78.1.0/24",
                "fd77::1/128",
                "fd78:0:1::/48"
            ]
        );
    }

    #[test]
    fn althea_filters_and_metrics() {
        let f = filters(
            "redistribute eq 128 allow\nredistribute ip 10.0.0.0/8 metric 300\nredistribute local deny\n",
        );
        let a = announcements(
            &f,
            [
                (Some("wg0"), "fd00::5".parse().unwrap()),
                (Some("eth0"), "192.168.1.1".parse().unwrap()),
            ],
            [
                (p("10.2.0.0/16"), None, None, 3),
                (p("fd01::7/128"), None, None, 4),
            ],
        );
        assert_eq!(a.get(&(p("fd00::5/128"), None)), Some(&0));
        assert_eq!(a.get(&(p("fd01::7/128"), None)), Some(&0));
        assert_eq!(a.get(&(p("10.2.0.0/16"), None)), Some(&300));
        assert!(!a.contains_key(&(p("192.168.1.1/32"), None)));
    }

    #[test]
    fn source_selectors_and_src_prefix_action() {
        // babeld.man: src-ip, src-eq, src-le, src-ge select on the source prefix; a route
        // without one has the zero-length source; `src-prefix` makes the route source-specific.
        let f = filters(
            "redistribute ip ::/0 eq 0 src-eq 0 src-prefix 2001:db8:2::/48\nredistribute src-ip 2001:db8:1::/48 src-le 48 metric 7\nredistribute src-ge 56 deny\nredistribute ip 2001:db8:99::/48 allow\n",
        );
        let a = announcements(
            &f,
            [],
            [
                (p("::/0"), None, Some("up0"), 3),
                (p("::/0"), Some(p("2001:db8:1::/48")), Some("up0"), 3),
                (p("2001:db8:5::/48"), Some(p("2001:db8:1::/56")), None, 3),
                (p("2001:db8:6::/48"), Some(p("2001:db8:7::/60")), None, 3),
                (p("2001:db8:99::/48"), None, None, 3),
            ],
        );
        assert_eq!(a.get(&(p("::/0"), Some(p("2001:db8:2::/48")))), Some(&0));
        assert!(!a.contains_key(&(p("::/0"), None)));
        assert_eq!(a.get(&(p("::/0"), Some(p("2001:db8:1::/48")))), Some(&7));
        // /56 is longer than src-le 48: the second filter does not match; the third denies.
        assert!(a.keys().all(|(d, _)| *d != p("2001:db8:5::/48")));
        assert!(a.keys().all(|(d, _)| *d != p("2001:db8:6::/48")));
        assert_eq!(a.get(&(p("2001:db8:99::/48"), None)), Some(&0));
        // src-ip ::/0 matches a non-specific route too.
        let f = filters("redistribute src-ip ::/0 allow\n");
        let a = announcements(&f, [], [(p("2001:db8:9::/48"), None, None, 3)]);
        assert!(a.contains_key(&(p("2001:db8:9::/48"), None)));
    }

    #[test]
    fn install_filters_table_and_pref_src() {
        let f = filters(
            "install ip 10.0.0.0/8 table 100 pref-src 10.1.1.1\ninstall id 02:00:00:ff:fe:00:00:09 deny\n",
        );
        let c = FilterSubject {
            prefix: p("10.5.0.0/16"),
            src_prefix: None,
            ifname: Some("eth0"),
            proto: Some(42),
            neighbour: None,
            router_id: Some(RouterId([2, 0, 0, 0xff, 0xfe, 0, 0, 1])),
        };
        let v = verdict(&f, FilterKind::Install, &c, true);
        assert!(v.allow);
        assert_eq!(v.table, Some(100));
        let c9 = FilterSubject {
            prefix: p("fd00::/64"),
            router_id: Some(RouterId([2, 0, 0, 0xff, 0xfe, 0, 0, 9])),
            ..c
        };
        assert!(!verdict(&f, FilterKind::Install, &c9, true).allow);
    }

    fn link(index: u32, name: &str) -> LinkInfo {
        LinkInfo {
            index,
            name: name.into(),
            flags: 1,
            mtu: Some(1500),
            operstate: None,
            carrier: None,
            hw_addr: Vec::new(),
        }
    }

    fn addr(index: u32, a: &str, flags: u32) -> AddressInfo {
        AddressInfo {
            index,
            address: a.parse().unwrap(),
            prefix_len: 64,
            flags,
            scope: 0,
            label: None,
        }
    }

    fn route(dst: &str, oif: u32, protocol: u8) -> KernelRoute {
        KernelRoute::unicast(p(dst), None, Some(oif)).with_protocol(protocol)
    }

    #[test]
    fn redistribution_announces_usable_local_addresses_only() {
        let links = [link(2, "eth0")];
        let addrs = [
            addr(2, "2001:db8::1", 0),
            addr(2, "fe80::1", 0),
            addr(2, "2001:db8::2", kernel_fib::IFA_F_TENTATIVE),
            addr(2, "192.0.2.1", 0),
            addr(2, "127.0.0.1", 0),
        ];
        let (wanted, actions) = redistribution(&[], &links, &addrs, &[], &Announcements::new());
        let keys: Vec<_> = wanted.keys().map(|(d, _)| *d).collect();
        assert_eq!(keys, vec![p("192.0.2.1/32"), p("2001:db8::1/128")]);
        assert_eq!(actions.len(), 2);
        assert!(
            actions
                .iter()
                .all(|a| matches!(a, Action::Engine(Input::Announce { metric: 0, .. })))
        );
    }

    #[test]
    fn redistribution_takes_other_protocols_unicast_routes_the_filters_allow() {
        let f = filters("redistribute if eth0 metric 128\nredistribute local deny\n");
        let links = [link(2, "eth0"), link(3, "eth1")];
        let mut unreachable = KernelRoute::unreachable(p("2001:db8:4::/48")).with_protocol(3);
        unreachable.oif = Some(2);
        let routes = [
            route("2001:db8:1::/48", 2, 3),
            route("2001:db8:2::/48", 3, 3),
            // Our own, a link-local prefix, a martian, an unreachable route: never.
            route("2001:db8:3::/48", 2, RTPROT_BABEL),
            route("fe80::/64", 2, 3),
            route("ff02::/16", 2, 3),
            unreachable,
        ];
        let (wanted, _) = redistribution(&f, &links, &[], &routes, &Announcements::new());
        assert_eq!(
            wanted.into_iter().collect::<Vec<_>>(),
            vec![((p("2001:db8:1::/48"), None), 128)]
        );
    }

    #[test]
    fn redistribution_withdraws_what_goes_and_reannounces_what_changes() {
        let links = [link(2, "eth0")];
        let routes = [
            route("2001:db8:1::/48", 2, 3),
            route("2001:db8:2::/48", 2, 3),
        ];
        let f = filters("redistribute metric 100\n");
        let (announced, first) = redistribution(&f, &links, &[], &routes, &Announcements::new());
        assert_eq!(first.len(), 2);
        // Nothing changed: nothing to do.
        let (same, none) = redistribution(&f, &links, &[], &routes, &announced);
        assert_eq!(same, announced);
        assert!(none.is_empty());
        // One route goes, the other's metric changes.
        let f2 = filters("redistribute metric 200\n");
        let (_, actions) = redistribution(&f2, &links, &[], &routes[..1], &announced);
        assert_eq!(
            actions,
            vec![
                Action::Engine(Input::Withdraw {
                    prefix: p("2001:db8:2::/48"),
                    src_prefix: None
                }),
                Action::Engine(Input::Announce {
                    prefix: p("2001:db8:1::/48"),
                    src_prefix: None,
                    metric: 200
                }),
            ]
        );
    }

    fn change(op: RouteOp, dst: &str, id: u8) -> RouteChange {
        RouteChange {
            op,
            prefix: p(dst),
            src_prefix: None,
            next_hop: "fe80::9".parse().unwrap(),
            ifindex: 2,
            metric: Default::default(),
            router_id: RouterId([2, 0, 0, 0xff, 0xfe, 0, 0, id]),
            via: "fe80::9".parse().unwrap(),
        }
    }

    #[test]
    fn placements_ask_the_install_filter_once_per_destination() {
        let f = filters("install ip 10.0.0.0/8 table 100 pref-src 10.1.1.1\n");
        let mut pl = Placements::default();
        let placed = (Some(100), Some("10.1.1.1".parse().unwrap()));
        assert_eq!(
            pl.place(&f, &change(RouteOp::Add, "10.5.0.0/16", 1), "eth0"),
            placed
        );
        assert_eq!(
            pl.place(&f, &change(RouteOp::Add, "192.0.2.0/24", 1), "eth0"),
            (None, None)
        );
        assert_eq!(pl.len(), 2);
        // A switch, a hold, the end of a hold stay in the table the route went to, even if the
        // filters changed meanwhile.
        let none = filters("install deny\n");
        for op in [RouteOp::Replace, RouteOp::Unreachable, RouteOp::Add] {
            assert_eq!(
                pl.place(&none, &change(op, "10.5.0.0/16", 2), "eth1"),
                placed
            );
        }
        // A removal takes it out of the book: the next add asks the filter again.
        assert_eq!(
            pl.place(&none, &change(RouteOp::Delete, "10.5.0.0/16", 2), "eth0"),
            placed
        );
        assert_eq!(pl.len(), 1);
        assert_eq!(
            pl.place(&f, &change(RouteOp::Replace, "10.5.0.0/16", 1), "eth0"),
            (None, None)
        );
        assert_eq!(
            pl.place(&f, &change(RouteOp::Add, "10.5.0.0/16", 1), "eth0"),
            placed
        );
    }

    #[test]
    fn default_placements_are_not_recorded() {
        let mut pl = Placements::default();
        for f in [filters(""), filters("install ip 10.0.0.0/8 deny\n")] {
            for op in [RouteOp::Add, RouteOp::Replace, RouteOp::Unreachable] {
                assert_eq!(
                    pl.place(&f, &change(op, "10.5.0.0/16", 1), "eth0"),
                    (None, None)
                );
            }
        }
        assert!(pl.is_empty());
        let f = filters("install ip 10.0.0.0/8 table 100\n");
        pl.place(&f, &change(RouteOp::Add, "192.0.2.0/24", 1), "eth0");
        assert_eq!(pl.len(), 1, "a placing filter records every destination");
    }
}
