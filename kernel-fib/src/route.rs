//! The plain route type shared by every [`crate::Fib`] implementation.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use babel_wire::Prefix;

use crate::FibError;

/// `RTPROT_BABEL`: the protocol number babeld tags its routes with (`proto babel`).
pub const RTPROT_BABEL: u8 = 42;
/// `RTPROT_KERNEL`: routes the kernel made itself (connected subnets).
pub const RTPROT_KERNEL: u8 = 2;
/// `RTPROT_BOOT`: routes added by `ip route` without a `proto`.
pub const RTPROT_BOOT: u8 = 3;
/// `RTPROT_STATIC`: routes added by an administrator.
pub const RTPROT_STATIC: u8 = 4;
/// `RT_TABLE_MAIN`.
pub const TABLE_MAIN: u32 = 254;
/// `RT_TABLE_LOCAL`: local and broadcast addresses.
pub const TABLE_LOCAL: u32 = 255;
/// The metric babeld gives unreachable routes for held destinations.
pub const UNREACHABLE_METRIC: u32 = u32::MAX;
/// The metric the kernel gives an IPv6 route installed with metric 0 (`IP6_RT_PRIO_USER`).
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

/// What a route does with matching packets (`rtm_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// Forward through a gateway or out of an interface (`RTN_UNICAST`).
    Unicast,
    /// Drop with ICMP unreachable (`RTN_UNREACHABLE`); babeld's held destinations.
    Unreachable,
    /// Drop silently (`RTN_BLACKHOLE`).
    Blackhole,
    /// Drop with ICMP prohibited (`RTN_PROHIBIT`).
    Prohibit,
    /// Continue the lookup in the next rule (`RTN_THROW`).
    Throw,
    /// A local address (`RTN_LOCAL`), seen in dumps of the local table.
    Local,
    /// A broadcast address (`RTN_BROADCAST`).
    Broadcast,
    /// A multicast route (`RTN_MULTICAST`).
    Multicast,
    /// An anycast address (`RTN_ANYCAST`).
    Anycast,
    /// Any other `rtm_type` value.
    Other(u8),
}

impl RouteKind {
    /// The `rtm_type` value.
    pub fn to_rtm_type(self) -> u8 {
        match self {
            RouteKind::Unicast => 1,
            RouteKind::Local => 2,
            RouteKind::Broadcast => 3,
            RouteKind::Anycast => 4,
            RouteKind::Multicast => 5,
            RouteKind::Blackhole => 6,
            RouteKind::Unreachable => 7,
            RouteKind::Prohibit => 8,
            RouteKind::Throw => 9,
            RouteKind::Other(t) => t,
        }
    }

    /// The kind for an `rtm_type` value.
    pub fn from_rtm_type(t: u8) -> RouteKind {
        match t {
            1 => RouteKind::Unicast,
            2 => RouteKind::Local,
            3 => RouteKind::Broadcast,
            4 => RouteKind::Anycast,
            5 => RouteKind::Multicast,
            6 => RouteKind::Blackhole,
            7 => RouteKind::Unreachable,
            8 => RouteKind::Prohibit,
            9 => RouteKind::Throw,
            other => RouteKind::Other(other),
        }
    }

    /// Whether the route drops traffic (unreachable, blackhole, prohibit).
    pub fn is_reject(self) -> bool {
        matches!(
            self,
            RouteKind::Unreachable | RouteKind::Blackhole | RouteKind::Prohibit
        )
    }
}

/// One kernel route, as installed or as dumped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelRoute {
    /// Destination prefix (`RTA_DST`, `rtm_dst_len`).
    pub dst: Prefix,
    /// Source prefix of an IPv6 source-specific route (`ip -6 route add D from S`).
    pub src: Option<Prefix>,
    /// Unicast or a reject kind.
    pub kind: RouteKind,
    /// Next hop. An IPv6 gateway on an IPv4 route is an RFC 9229 v4-via-v6 route (sent as
    /// `RTA_VIA`); an IPv6 link-local gateway needs `oif`.
    pub gateway: Option<IpAddr>,
    /// Output interface index (`RTA_OIF`).
    pub oif: Option<u32>,
    /// Metric (`RTA_PRIORITY`); part of the route's key. IPv6 metric 0 means 1024.
    pub metric: u32,
    /// Routing table (`RTA_TABLE`), 254 = main.
    pub table: u32,
    /// Protocol tag (`rtm_protocol`); ours is 42 unless configured otherwise.
    pub protocol: u8,
    /// Preferred source address (`RTA_PREFSRC`, babeld's `pref-src` install filter).
    pub pref_src: Option<IpAddr>,
    /// Force `RTNH_F_ONLINK`. [`crate::NetlinkFib`] also sets it by itself for IPv4 routes
    /// whose IPv4 gateway is outside every subnet of the output interface (see
    /// [`crate::NetlinkFib::set_auto_onlink`]); dumps report the kernel's flag here.
    pub onlink: bool,
}

/// The part of a route the kernel uses to tell routes apart: two routes with the same key are
/// the same route, and replacing one with the other is atomic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelRouteKey {
    /// Table.
    pub table: u32,
    /// Destination prefix.
    pub dst: Prefix,
    /// Source prefix (IPv6 source-specific routes).
    pub src: Option<Prefix>,
    /// Metric, with IPv6 metric 0 normalised to 1024 as the kernel does.
    pub metric: u32,
}

impl KernelRoute {
    /// A unicast route to `dst` via `gateway` out of interface `oif`, protocol 42, main table,
    /// metric 0.
    pub fn unicast(dst: Prefix, gateway: Option<IpAddr>, oif: Option<u32>) -> KernelRoute {
        KernelRoute {
            dst,
            src: None,
            kind: RouteKind::Unicast,
            gateway,
            oif,
            metric: 0,
            table: TABLE_MAIN,
            protocol: RTPROT_BABEL,
            pref_src: None,
            onlink: false,
        }
    }

    /// An unreachable route to `dst` with babeld's metric 4294967295.
    pub fn unreachable(dst: Prefix) -> KernelRoute {
        KernelRoute {
            kind: RouteKind::Unreachable,
            metric: UNREACHABLE_METRIC,
            ..KernelRoute::unicast(dst, None, None)
        }
    }

    /// Sets the metric.
    #[must_use]
    pub fn with_metric(mut self, metric: u32) -> KernelRoute {
        self.metric = metric;
        self
    }

    /// Sets the table.
    #[must_use]
    pub fn with_table(mut self, table: u32) -> KernelRoute {
        self.table = table;
        self
    }

    /// Sets the protocol tag.
    #[must_use]
    pub fn with_protocol(mut self, protocol: u8) -> KernelRoute {
        self.protocol = protocol;
        self
    }

    /// Makes the route source-specific.
    #[must_use]
    pub fn with_src(mut self, src: Prefix) -> KernelRoute {
        self.src = Some(src);
        self
    }

    /// Sets the preferred source address.
    #[must_use]
    pub fn with_pref_src(mut self, pref_src: IpAddr) -> KernelRoute {
        self.pref_src = Some(pref_src);
        self
    }

    /// Whether the destination is IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.dst.is_ipv4()
    }

    /// The metric as the kernel stores it (IPv6 metric 0 becomes 1024).
    pub fn effective_metric(&self) -> u32 {
        if !self.is_ipv4() && self.metric == 0 {
            IPV6_DEFAULT_METRIC
        } else {
            self.metric
        }
    }

    /// The route's identity in its table.
    pub fn key(&self) -> KernelRouteKey {
        KernelRouteKey {
            table: self.table,
            dst: self.dst,
            src: self.src,
            metric: self.effective_metric(),
        }
    }

    /// Whether this is an IPv4 route via an IPv6 next hop (RFC 9229).
    pub fn is_v4_via_v6(&self) -> bool {
        self.is_ipv4() && matches!(self.gateway, Some(IpAddr::V6(_)))
    }

    /// Whether `kernel` (a route from a dump) is this route as installed: same key, kind,
    /// protocol, gateway and pref-src; same interface unless this is a reject route (the kernel
    /// hangs IPv6 reject routes on `lo`); onlink if this route forced it (the kernel may also
    /// report an onlink flag that [`crate::NetlinkFib`] chose by itself). For checking that
    /// installed routes are still there (babeld's `kernel-check-interval`).
    pub fn same_as_installed(&self, kernel: &KernelRoute) -> bool {
        self.key() == kernel.key()
            && self.kind == kernel.kind
            && self.protocol == kernel.protocol
            && self.gateway == kernel.gateway
            && self.pref_src == kernel.pref_src
            && (self.kind.is_reject() || self.oif == kernel.oif)
            && (!self.onlink || kernel.onlink)
    }

    /// Checks what the kernel would refuse or misread, before anything is sent.
    pub fn validate(&self) -> Result<(), FibError> {
        if let Some(src) = self.src {
            if src.is_ipv4() != self.is_ipv4() {
                return Err(FibError::InvalidRoute(
                    "source prefix family differs from destination",
                ));
            }
            if self.is_ipv4() {
                return Err(FibError::InvalidRoute(
                    "source-specific routes are IPv6 only",
                ));
            }
        }
        if let Some(p) = self.pref_src
            && p.is_ipv4() != self.is_ipv4()
        {
            return Err(FibError::InvalidRoute(
                "pref-src family differs from destination",
            ));
        }
        match self.kind {
            RouteKind::Unicast => {
                match self.gateway {
                    None => {
                        if self.oif.is_none() {
                            return Err(FibError::InvalidRoute(
                                "unicast route needs a gateway or an interface",
                            ));
                        }
                    }
                    Some(IpAddr::V4(_)) if !self.is_ipv4() => {
                        return Err(FibError::InvalidRoute("IPv6 route via an IPv4 gateway"));
                    }
                    Some(IpAddr::V6(g)) => {
                        if babel_wire::is_link_local(&IpAddr::V6(g)) && self.oif.is_none() {
                            return Err(FibError::InvalidRoute(
                                "link-local gateway needs an interface",
                            ));
                        }
                        if self.is_ipv4() && self.oif.is_none() {
                            return Err(FibError::InvalidRoute(
                                "IPv4 route via IPv6 needs an interface",
                            ));
                        }
                    }
                    Some(IpAddr::V4(_)) => {}
                }
                Ok(())
            }
            RouteKind::Unreachable
            | RouteKind::Blackhole
            | RouteKind::Prohibit
            | RouteKind::Throw => {
                if self.gateway.is_some() || self.oif.is_some() {
                    return Err(FibError::InvalidRoute(
                        "reject route with a gateway or interface",
                    ));
                }
                if self.onlink {
                    // babeld#14: the kernel answers ENODEV to ONLINK on a route without a device.
                    return Err(FibError::InvalidRoute(
                        "onlink on a reject route (ENODEV, babeld#14)",
                    ));
                }
                Ok(())
            }
            _ => Err(FibError::InvalidRoute(
                "only unicast and reject routes are installed",
            )),
        }
    }
}

impl fmt::Display for KernelRoute {
    /// Roughly `ip route`'s format: `unreachable 10.0.0.0/24 from ... via ... dev 3 metric 0
    /// table 254 proto 42`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RouteKind::Unicast => {}
            RouteKind::Other(t) => write!(f, "type{t} ")?,
            k => write!(f, "{} ", format!("{k:?}").to_lowercase())?,
        }
        write!(f, "{}", self.dst)?;
        if let Some(src) = self.src {
            write!(f, " from {src}")?;
        }
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " dev #{oif}")?;
        }
        if let Some(p) = self.pref_src {
            write!(f, " src {p}")?;
        }
        write!(
            f,
            " metric {} table {} proto {}",
            self.metric, self.table, self.protocol
        )?;
        if self.onlink {
            write!(f, " onlink")?;
        }
        Ok(())
    }
}

/// Whether an IPv4 route via the IPv4 `gateway` needs `RTNH_F_ONLINK` on an interface whose
/// IPv4 subnets are `link_prefixes`.
///
/// The kernel accepts an IPv4 gateway only if it is reachable through a connected route of
/// the output interface (otherwise `ENETUNREACH`, "Nexthop has invalid gateway"). Babel
/// routers often number their mesh links with /32 host addresses (or not at all), so the
/// neighbour's address is on no subnet; babeld then marks the next hop on-link. We do the same
/// but only in that case: with the flag the kernel skips its sanity check, so setting it
/// everywhere would hide configuration errors, and it must never be set on reject routes
/// (babeld#14) or IPv6 routes (link-local next hops are on-link by definition).
pub fn ipv4_gateway_needs_onlink(gateway: Ipv4Addr, link_prefixes: &[Prefix]) -> bool {
    let gw = IpAddr::V4(gateway);
    !link_prefixes
        .iter()
        .any(|p| p.is_ipv4() && p.len() < 32 && Prefix::new(gw, p.len()).is_ok_and(|g| g == *p))
}

/// One change in a batch for [`crate::Fib::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FibChange {
    /// Install a new route; fails with [`FibError::Exists`] if its key is taken.
    Add(KernelRoute),
    /// Install or atomically replace the route with the same key.
    Replace(KernelRoute),
    /// Move from `old` to `new` without a gap: a replace if the keys are equal, otherwise the
    /// new route is installed first and the old one removed only if that succeeded.
    Change {
        /// The route currently installed.
        old: KernelRoute,
        /// The route that must take its place.
        new: KernelRoute,
    },
    /// Remove a route (matched by key and protocol); a missing route is not an error.
    Delete(KernelRoute),
}

/// Which routes [`crate::Fib::dump`] returns. Empty fields match everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpFilter {
    /// `Some(true)`: IPv4 only; `Some(false)`: IPv6 only.
    pub ipv4: Option<bool>,
    /// Only routes with this protocol tag.
    pub protocol: Option<u8>,
    /// Only routes in this table.
    pub table: Option<u32>,
    /// No routes with this protocol tag: a reading of what to redistribute leaves out our own
    /// routes while it decodes them, instead of holding all of them first (100,000 routes
    /// took 21 MB).
    pub except_protocol: Option<u8>,
}

impl DumpFilter {
    /// Every route of both families in every table.
    pub fn all() -> DumpFilter {
        DumpFilter::default()
    }

    /// Routes with one protocol tag, in any table.
    pub fn protocol(protocol: u8) -> DumpFilter {
        DumpFilter {
            protocol: Some(protocol),
            ..DumpFilter::default()
        }
    }

    /// Restricts to one table.
    #[must_use]
    pub fn in_table(mut self, table: u32) -> DumpFilter {
        self.table = Some(table);
        self
    }

    /// Leaves out the routes tagged with `protocol`.
    #[must_use]
    pub fn without_protocol(mut self, protocol: u8) -> DumpFilter {
        self.except_protocol = Some(protocol);
        self
    }

    /// Restricts to one family.
    #[must_use]
    pub fn family_ipv4(mut self, ipv4: bool) -> DumpFilter {
        self.ipv4 = Some(ipv4);
        self
    }

    /// Whether `route` passes.
    pub fn matches(&self, route: &KernelRoute) -> bool {
        self.ipv4.is_none_or(|v4| v4 == route.is_ipv4())
            && self.protocol.is_none_or(|p| p == route.protocol)
            && self.table.is_none_or(|t| t == route.table)
            && self.except_protocol != Some(route.protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap_or_else(|_| panic!("bad prefix {s}"))
    }

    /// Each field of a dump filter keeps out what it says, and only that.
    #[test]
    fn dump_filter_fields() {
        let r = KernelRoute::unicast(p("2001:db8::/64"), None, Some(2)).with_protocol(42);
        assert!(DumpFilter::all().matches(&r));
        assert!(DumpFilter::protocol(42).matches(&r));
        assert!(!DumpFilter::protocol(3).matches(&r));
        assert!(!DumpFilter::all().without_protocol(42).matches(&r));
        assert!(DumpFilter::all().without_protocol(3).matches(&r));
        let main = DumpFilter::all().in_table(r.table).without_protocol(3);
        assert!(main.matches(&r));
        assert!(!main.in_table(r.table + 1).matches(&r));
        assert!(!DumpFilter::all().family_ipv4(true).matches(&r));
    }

    #[test]
    fn onlink_only_off_subnet() {
        let link = [p("10.0.0.0/24"), p("192.168.5.1/32"), p("2001:db8::/64")];
        assert!(!ipv4_gateway_needs_onlink(
            Ipv4Addr::new(10, 0, 0, 7),
            &link
        ));
        assert!(ipv4_gateway_needs_onlink(Ipv4Addr::new(10, 0, 1, 7), &link));
        // A /32 on the link is no subnet: a neighbour numbered like that needs onlink.
        assert!(ipv4_gateway_needs_onlink(
            Ipv4Addr::new(192, 168, 5, 1),
            &link
        ));
        assert!(ipv4_gateway_needs_onlink(Ipv4Addr::new(10, 0, 0, 7), &[]));
    }

    #[test]
    fn validation() {
        let ll: IpAddr = "fe80::1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(
            KernelRoute::unicast(p("2001:db8::/48"), Some(ll), None)
                .validate()
                .is_err()
        );
        assert!(
            KernelRoute::unicast(p("2001:db8::/48"), Some(ll), Some(3))
                .validate()
                .is_ok()
        );
        assert!(
            KernelRoute::unicast(p("10.0.0.0/8"), Some(ll), Some(3))
                .validate()
                .is_ok()
        );
        assert!(
            KernelRoute::unicast(
                p("2001:db8::/48"),
                Some(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))),
                Some(3)
            )
            .validate()
            .is_err()
        );
        assert!(KernelRoute::unreachable(p("10.0.0.0/8")).validate().is_ok());
        let mut u = KernelRoute::unreachable(p("10.0.0.0/8"));
        u.onlink = true;
        assert!(u.validate().is_err());
        assert!(
            KernelRoute::unicast(p("10.0.0.0/8"), None, Some(1))
                .with_src(p("10.1.0.0/16"))
                .validate()
                .is_err()
        );
        assert!(
            KernelRoute::unicast(p("10.0.0.0/8"), None, None)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn keys_and_filters() {
        let a = KernelRoute::unicast(p("2001:db8::/48"), None, Some(2));
        let b = a.clone().with_metric(1024);
        assert_eq!(a.key(), b.key());
        let c = KernelRoute::unicast(p("10.0.0.0/8"), None, Some(2));
        assert_ne!(c.key(), c.clone().with_metric(1).key());
        assert!(DumpFilter::protocol(42).matches(&a));
        assert!(!DumpFilter::protocol(3).matches(&a));
        assert!(!DumpFilter::all().family_ipv4(true).matches(&a));
        assert!(!DumpFilter::all().in_table(100).matches(&a));
        assert_eq!(RouteKind::from_rtm_type(7), RouteKind::Unreachable);
        for t in 0..=255u8 {
            assert_eq!(RouteKind::from_rtm_type(t).to_rtm_type(), t);
        }
        let mut dumped = KernelRoute::unreachable(p("2001:db8::/32"));
        dumped.oif = Some(1);
        assert!(KernelRoute::unreachable(p("2001:db8::/32")).same_as_installed(&dumped));
        let mut onl = c.clone();
        onl.onlink = true;
        assert!(c.same_as_installed(&onl));
        assert!(!onl.same_as_installed(&c));
        assert!(!c.same_as_installed(&c.clone().with_metric(3)));
        assert_eq!(
            KernelRoute::unreachable(p("10.0.0.0/8")).to_string(),
            "unreachable 10.0.0.0/8 metric 4294967295 table 254 proto 42"
        );
    }
}
