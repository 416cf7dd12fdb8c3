//! Our rtnetlink codec against an independent one (`netlink-packet-route`): route, rule, link
//! and address messages encoded by one side must parse on the other with the same fields, over
//! generated cases (both families, source-specific routes, tables above 255, any metric,
//! unreachable routes, multipath, v4-via-v6, rules with fwmarks, priorities and tables).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use babel_wire::Prefix;
use kernel_fib::codec::{
    MsgBuilder, decode_address, decode_event, decode_link, decode_rule, messages,
};
use kernel_fib::{KernelRoute, KernelRule, NetEvent, RouteKind};
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteNextHop, RouteProtocol,
    RouteScope, RouteType, RouteVia,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use proptest::prelude::*;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;

// ---- generated cases ----

fn v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn link_local() -> impl Strategy<Value = Ipv6Addr> {
    any::<u64>().prop_map(|low| Ipv6Addr::from((0xfe80u128 << 112) | u128::from(low)))
}

fn prefix4() -> impl Strategy<Value = Prefix> {
    (v4(), 0u8..=32).prop_map(|(a, l)| Prefix::new(IpAddr::V4(a), l).unwrap())
}

fn prefix6() -> impl Strategy<Value = Prefix> {
    (v6(), 0u8..=128).prop_map(|(a, l)| Prefix::new(IpAddr::V6(a), l).unwrap())
}

fn metric() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(1024), Just(u32::MAX), any::<u32>()]
}

fn table() -> impl Strategy<Value = u32> {
    prop_oneof![Just(254u32), 1u32..=255, 256u32..=u32::MAX]
}

fn unicast4() -> impl Strategy<Value = KernelRoute> {
    let gw = prop_oneof![
        Just(None),
        v4().prop_map(|a| Some(IpAddr::V4(a))),
        // RFC 9229: an IPv4 route via an IPv6 next hop (RTA_VIA).
        link_local().prop_map(|a| Some(IpAddr::V6(a))),
    ];
    (
        prefix4(),
        gw,
        1u32..100_000,
        proptest::option::of(v4()),
        any::<bool>(),
    )
        .prop_map(|(dst, gateway, oif, pref, onlink)| {
            let mut r = KernelRoute::unicast(dst, gateway, Some(oif));
            r.pref_src = pref.map(IpAddr::V4);
            r.onlink = onlink && !matches!(gateway, Some(IpAddr::V6(_)));
            r
        })
}

fn unicast6() -> impl Strategy<Value = KernelRoute> {
    let gw = prop_oneof![
        Just(None),
        link_local().prop_map(|a| Some(IpAddr::V6(a))),
        v6().prop_map(|a| Some(IpAddr::V6(a))),
    ];
    (
        prefix6(),
        proptest::option::of(prefix6()),
        gw,
        1u32..100_000,
        proptest::option::of(v6()),
    )
        .prop_map(|(dst, src, gateway, oif, pref)| {
            let mut r = KernelRoute::unicast(dst, gateway, Some(oif));
            // A source prefix of length 0 is no source prefix (`rtm_src_len` 0).
            r.src = src.filter(|s| s.len() > 0);
            r.pref_src = pref.map(IpAddr::V6);
            r
        })
}

fn unreachable() -> impl Strategy<Value = KernelRoute> {
    (
        prop_oneof![prefix4(), prefix6()],
        proptest::option::of(prefix6()),
    )
        .prop_map(|(dst, src)| {
            let mut r = KernelRoute::unreachable(dst);
            if !dst.is_ipv4() {
                r.src = src.filter(|s| s.len() > 0);
            }
            r
        })
}

fn route() -> impl Strategy<Value = KernelRoute> {
    (
        prop_oneof![unicast4(), unicast6(), unreachable()],
        metric(),
        table(),
        any::<u8>(),
    )
        .prop_map(|(r, m, t, p)| r.with_metric(m).with_table(t).with_protocol(p))
}

fn rule() -> impl Strategy<Value = KernelRule> {
    (
        prop_oneof![prefix4(), prefix6()],
        table(),
        any::<u32>(),
        any::<u8>(),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(src, table, priority, protocol, fwmark)| KernelRule {
            src,
            fwmark,
            table,
            priority,
            protocol,
        })
}

// ---- their side ----

fn family(is_v4: bool) -> AddressFamily {
    if is_v4 {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn serialize(ty_msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(ty_msg));
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

fn deserialize(bytes: &[u8]) -> (NetlinkHeader, RouteNetlinkMessage) {
    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).expect("theirs parses ours");
    assert_eq!(m.header.length as usize, bytes.len());
    match m.payload {
        NetlinkPayload::InnerMessage(inner) => (m.header, inner),
        other => panic!("not an rtnetlink message: {other:?}"),
    }
}

fn ip_of(a: &RouteAddress) -> IpAddr {
    match a {
        RouteAddress::Inet(a) => IpAddr::V4(*a),
        RouteAddress::Inet6(a) => IpAddr::V6(*a),
        other => panic!("not an IP address: {other:?}"),
    }
}

/// Their route message read into our route type, field by field.
fn route_from_theirs(m: &RouteMessage) -> KernelRoute {
    let h = &m.header;
    let is_v4 = match h.address_family {
        AddressFamily::Inet => true,
        AddressFamily::Inet6 => false,
        f => panic!("family {f:?}"),
    };
    let any = if is_v4 {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let mut dst = any;
    let mut src = None;
    let mut table = u32::from(h.table);
    let mut r = KernelRoute::unicast(Prefix::new(any, 0).unwrap(), None, None).with_metric(0);
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(a) => dst = ip_of(a),
            RouteAttribute::Source(a) => src = Some(ip_of(a)),
            RouteAttribute::Gateway(a) => r.gateway = Some(ip_of(a)),
            RouteAttribute::Via(RouteVia::Inet(a)) => r.gateway = Some(IpAddr::V4(*a)),
            RouteAttribute::Via(RouteVia::Inet6(a)) => r.gateway = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            RouteAttribute::Priority(p) => r.metric = *p,
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::PrefSource(a) => r.pref_src = Some(ip_of(a)),
            other => panic!("unexpected attribute {other:?}"),
        }
    }
    r.dst = Prefix::new(dst, h.destination_prefix_length).unwrap();
    r.src = (h.source_prefix_length > 0)
        .then(|| Prefix::new(src.unwrap_or(any), h.source_prefix_length).unwrap());
    r.table = table;
    r.protocol = u8::from(h.protocol);
    r.kind = RouteKind::from_rtm_type(u8::from(h.kind));
    r.onlink = h.flags.contains(RouteFlags::Onlink);
    r
}

/// How they would say `r`, the way the kernel dumps it: `rtm_table` the table when it fits in
/// 8 bits (else `RT_TABLE_COMPAT`, 252), `RTA_TABLE` always unless `table_attr` is false.
fn theirs_from_route(r: &KernelRoute, table_attr: bool, multipath: bool) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family(r.is_ipv4());
    m.header.destination_prefix_length = r.dst.len();
    m.header.source_prefix_length = r.src.map_or(0, |s| s.len());
    m.header.table = u8::try_from(r.table).unwrap_or(252);
    m.header.protocol = RouteProtocol::from(r.protocol);
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::from(r.kind.to_rtm_type());
    if r.onlink {
        m.header.flags = RouteFlags::Onlink;
    }
    let a = &mut m.attributes;
    a.push(RouteAttribute::Destination(r.dst.addr().into()));
    if let Some(s) = r.src {
        a.push(RouteAttribute::Source(s.addr().into()));
    }
    if table_attr || r.table > 255 {
        a.push(RouteAttribute::Table(r.table));
    }
    a.push(RouteAttribute::Priority(r.metric));
    if let Some(p) = r.pref_src {
        a.push(RouteAttribute::PrefSource(p.into()));
    }
    let gw_attr = |gw: IpAddr| {
        if gw.is_ipv4() == r.is_ipv4() {
            RouteAttribute::Gateway(gw.into())
        } else {
            match gw {
                IpAddr::V4(a) => RouteAttribute::Via(RouteVia::Inet(a)),
                IpAddr::V6(a) => RouteAttribute::Via(RouteVia::Inet6(a)),
            }
        }
    };
    if multipath && r.oif.is_some() {
        // The route as the first of two next hops; the second must not leak into ours.
        let mut first = RouteNextHop::default();
        first.interface_index = r.oif.unwrap_or(0);
        first.attributes.extend(r.gateway.map(gw_attr));
        let mut second = RouteNextHop::default();
        second.interface_index = r.oif.unwrap_or(0).wrapping_add(1);
        a.push(RouteAttribute::MultiPath(vec![first, second]));
    } else {
        if let Some(o) = r.oif {
            a.push(RouteAttribute::Oif(o));
        }
        if let Some(gw) = r.gateway {
            a.push(gw_attr(gw));
        }
    }
    m
}

/// Our rule as they read it, and the mark mask they saw.
fn rule_from_theirs(m: &RuleMessage) -> (KernelRule, Option<u32>) {
    let h = &m.header;
    assert_eq!(h.action, RuleAction::ToTable);
    assert_eq!(h.dst_len, 0);
    assert_eq!(h.tos, 0);
    let any = match h.family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let mut src = any;
    let mut rule = KernelRule {
        src: Prefix::new(any, 0).unwrap(),
        fwmark: None,
        table: u32::from(h.table),
        priority: 0,
        protocol: 0,
    };
    let mut mask = None;
    for a in &m.attributes {
        match a {
            RuleAttribute::Source(s) => src = *s,
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::Priority(p) => rule.priority = *p,
            RuleAttribute::Protocol(p) => rule.protocol = u8::from(*p),
            RuleAttribute::FwMark(f) => rule.fwmark = Some(*f),
            RuleAttribute::FwMask(f) => mask = Some(*f),
            other => panic!("unexpected attribute {other:?}"),
        }
    }
    rule.src = Prefix::new(src, h.src_len).unwrap();
    (rule, mask)
}

/// How they would say `r` as the kernel dumps it: `FRA_SUPPRESS_PREFIXLEN` always (-1 when
/// unset, `suppress` otherwise), its fwmark with `mask` (all ones: the whole mark), `not from`
/// when `invert`.
fn theirs_from_rule(r: &KernelRule, mask: u32, invert: bool, suppress: Option<u32>) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = family(r.src.is_ipv4());
    m.header.src_len = r.src.len();
    m.header.table = u8::try_from(r.table).unwrap_or(252);
    m.header.action = RuleAction::ToTable;
    if invert {
        m.header.flags = RuleFlags::Invert;
    }
    if r.src.len() > 0 {
        m.attributes.push(RuleAttribute::Source(r.src.addr()));
    }
    m.attributes.push(RuleAttribute::Table(r.table));
    m.attributes.push(RuleAttribute::SuppressPrefixLen(
        suppress.unwrap_or(u32::MAX),
    ));
    if r.priority != 0 {
        m.attributes.push(RuleAttribute::Priority(r.priority));
    }
    m.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::from(r.protocol)));
    if let Some(f) = r.fwmark {
        // The kernel leaves a zero mark out and always says the mask.
        if f != 0 {
            m.attributes.push(RuleAttribute::FwMark(f));
        }
        m.attributes.push(RuleAttribute::FwMask(mask));
    }
    m
}

fn one_of_ours(bytes: &[u8]) -> kernel_fib::codec::NlMsg<'_> {
    let all: Vec<_> = messages(bytes).collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 1);
    all[0]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Ours encodes a route (add and delete), theirs parses the same fields.
    #[test]
    fn our_routes_parse_as_theirs(r in route(), seq in any::<u32>()) {
        prop_assume!(r.validate().is_ok());
        let mut b = MsgBuilder::new();
        b.new_route(&r, NLM_F_CREATE | NLM_F_REPLACE, seq, r.onlink);
        let (h, msg) = deserialize(b.as_bytes());
        prop_assert_eq!(h.sequence_number, seq);
        prop_assert_eq!(h.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        let RouteNetlinkMessage::NewRoute(m) = msg else { panic!("not RTM_NEWROUTE") };
        // The metric is sent as the kernel stores it (IPv6 0 is 1024).
        let expected = r.clone().with_metric(r.effective_metric());
        prop_assert_eq!(route_from_theirs(&m), expected.clone());
        // A route from Babel is in the universe scope unless it is a direct IPv4 route.
        let link = r.kind == RouteKind::Unicast && r.gateway.is_none() && r.is_ipv4();
        prop_assert_eq!(m.header.scope, if link { RouteScope::Link } else { RouteScope::Universe });

        let mut d = MsgBuilder::new();
        d.del_route(&r, seq);
        let (_, msg) = deserialize(d.as_bytes());
        let RouteNetlinkMessage::DelRoute(m) = msg else { panic!("not RTM_DELROUTE") };
        let got = route_from_theirs(&m);
        prop_assert_eq!(got.key(), r.key());
        prop_assert_eq!(got.protocol, r.protocol);
        prop_assert_eq!(got.gateway, None);
        prop_assert_eq!(got.oif, None);
    }

    /// Theirs encodes a route as the kernel dumps it (with or without `RTA_TABLE`, single or
    /// multipath), ours parses the same fields.
    #[test]
    fn their_routes_parse_as_ours(
        r in route(),
        table_attr in any::<bool>(),
        multipath in any::<bool>(),
        seq in any::<u32>(),
    ) {
        let bytes = serialize(
            RouteNetlinkMessage::NewRoute(theirs_from_route(&r, table_attr, multipath)),
            0,
            seq,
        );
        let m = one_of_ours(&bytes);
        prop_assert_eq!(m.ty, 24);
        prop_assert_eq!(m.seq, seq);
        let Some(NetEvent::RouteAdded(got)) = decode_event(&m).unwrap() else {
            panic!("not a route")
        };
        prop_assert_eq!(got, r.clone());
        let bytes = serialize(
            RouteNetlinkMessage::DelRoute(theirs_from_route(&r, table_attr, multipath)),
            0,
            seq,
        );
        let Some(NetEvent::RouteRemoved(got)) = decode_event(&one_of_ours(&bytes)).unwrap() else {
            panic!("not a route removal")
        };
        prop_assert_eq!(got, r);
    }

    /// Ours encodes a rule (add and delete), theirs parses the same fields.
    #[test]
    fn our_rules_parse_as_theirs(r in rule(), seq in any::<u32>()) {
        let mut b = MsgBuilder::new();
        b.new_rule(&r, seq);
        let (h, msg) = deserialize(b.as_bytes());
        prop_assert_eq!(h.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        prop_assert_eq!(h.sequence_number, seq);
        let RouteNetlinkMessage::NewRule(m) = msg else { panic!("not RTM_NEWRULE") };
        // A marked rule goes with the whole mask (so that mark 0 means "unmarked").
        let mask = r.fwmark.map(|_| u32::MAX);
        prop_assert_eq!(rule_from_theirs(&m), (r, mask));
        let mut d = MsgBuilder::new();
        d.del_rule(&r, seq);
        let (_, msg) = deserialize(d.as_bytes());
        let RouteNetlinkMessage::DelRule(m) = msg else { panic!("not RTM_DELRULE") };
        prop_assert_eq!(rule_from_theirs(&m), (r, mask));
    }

    /// Theirs encodes a rule, ours parses the same fields, the whole firewall mark included; a
    /// rule that matches part of a mark, or matches everything but its source (`not from`), or
    /// suppresses its result, is not one ours can say and ours says so (`None`) instead of
    /// reporting a different rule.
    #[test]
    fn their_rules_parse_as_ours(
        r in rule(),
        partial_mask in proptest::option::of(1u32..u32::MAX),
        invert in any::<bool>(),
        suppress in proptest::option::of(0u32..=128),
    ) {
        let mask = partial_mask.unwrap_or(u32::MAX);
        let bytes = serialize(
            RouteNetlinkMessage::NewRule(theirs_from_rule(&r, mask, invert, suppress)),
            0,
            1,
        );
        let m = one_of_ours(&bytes);
        prop_assert_eq!(m.ty, 32);
        let got = decode_rule(m.payload).unwrap();
        let partial = r.fwmark.is_some() && partial_mask.is_some();
        if partial || invert || suppress.is_some() {
            prop_assert_eq!(got, None);
        } else {
            prop_assert_eq!(got, Some(r));
        }
    }

    /// Ours asks for a link up (with an MTU), theirs reads the same request.
    #[test]
    fn our_link_requests_parse_as_theirs(
        index in 1u32..=i32::MAX as u32,
        mtu in proptest::option::of(any::<u32>()),
        seq in any::<u32>(),
    ) {
        let mut b = MsgBuilder::new();
        b.link_up(index, mtu, seq);
        let (h, msg) = deserialize(b.as_bytes());
        prop_assert_eq!(h.sequence_number, seq);
        let RouteNetlinkMessage::NewLink(m) = msg else { panic!("not RTM_NEWLINK") };
        prop_assert_eq!(m.header.index, index);
        prop_assert_eq!(m.header.flags, LinkFlags::Up);
        prop_assert_eq!(m.header.change_mask, LinkFlags::Up);
        let mtus: Vec<u32> = m.attributes.iter().filter_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        }).collect();
        prop_assert_eq!(mtus, mtu.into_iter().collect::<Vec<_>>());
        prop_assert_eq!(m.attributes.len(), usize::from(mtu.is_some()));
    }

    /// Theirs encodes a link as the kernel reports it, ours parses the same fields.
    #[test]
    fn their_links_parse_as_ours(
        index in 1u32..=i32::MAX as u32,
        flags in any::<u32>(),
        name in "[a-z][a-z0-9._-]{0,14}",
        mtu in proptest::option::of(any::<u32>()),
        operstate in proptest::option::of(0u8..=6),
        carrier in proptest::option::of(any::<bool>()),
        hw in proptest::collection::vec(any::<u8>(), 0..=20),
        removed in any::<bool>(),
    ) {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::from_bits_retain(flags);
        m.attributes.push(LinkAttribute::IfName(name.clone()));
        m.attributes.extend(mtu.map(LinkAttribute::Mtu));
        m.attributes.extend(operstate.map(|s| LinkAttribute::OperState(State::from(s))));
        m.attributes.extend(carrier.map(|c| LinkAttribute::Carrier(u8::from(c))));
        if !hw.is_empty() {
            m.attributes.push(LinkAttribute::Address(hw.clone()));
        }
        let msg = if removed {
            RouteNetlinkMessage::DelLink(m)
        } else {
            RouteNetlinkMessage::NewLink(m)
        };
        let bytes = serialize(msg, 0, 1);
        let ours = one_of_ours(&bytes);
        let link = match decode_event(&ours).unwrap() {
            Some(NetEvent::LinkChanged(l)) if !removed => l,
            Some(NetEvent::LinkRemoved(l)) if removed => l,
            other => panic!("wrong event {other:?}"),
        };
        prop_assert_eq!(&link, &decode_link(ours.payload).unwrap());
        prop_assert_eq!(link.index, index);
        prop_assert_eq!(link.flags, flags);
        prop_assert_eq!(link.name, name);
        prop_assert_eq!(link.mtu, mtu);
        prop_assert_eq!(link.operstate, operstate);
        prop_assert_eq!(link.carrier, carrier);
        prop_assert_eq!(link.hw_addr, hw);
    }

    /// Ours adds and removes an address, theirs reads the same requests.
    #[test]
    fn our_address_requests_parse_as_theirs(
        index in any::<u32>(),
        addr in prop_oneof![v4().prop_map(IpAddr::V4), v6().prop_map(IpAddr::V6), link_local().prop_map(IpAddr::V6)],
        len in 0u8..=128,
        seq in any::<u32>(),
    ) {
        let len = if addr.is_ipv4() { len % 33 } else { len };
        let mut b = MsgBuilder::new();
        b.new_address(index, addr, len, seq);
        let (h, msg) = deserialize(b.as_bytes());
        prop_assert_eq!(h.sequence_number, seq);
        prop_assert_eq!(h.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        let RouteNetlinkMessage::NewAddress(m) = msg else { panic!("not RTM_NEWADDR") };
        prop_assert_eq!(m.header.family, family(addr.is_ipv4()));
        prop_assert_eq!(m.header.index, index);
        prop_assert_eq!(m.header.prefix_len, len);
        prop_assert_eq!(m.header.flags, AddressHeaderFlags::Nodad);
        let link_local = addr.is_ipv6() && babel_wire::is_link_local(&addr);
        prop_assert_eq!(m.header.scope, if link_local { AddressScope::Link } else { AddressScope::Universe });
        prop_assert_eq!(
            &m.attributes,
            &vec![AddressAttribute::Local(addr), AddressAttribute::Address(addr)]
        );
        let mut d = MsgBuilder::new();
        d.del_address(index, addr, len, seq);
        let (h, msg) = deserialize(d.as_bytes());
        prop_assert_eq!(h.flags, NLM_F_REQUEST | NLM_F_ACK);
        let RouteNetlinkMessage::DelAddress(m) = msg else { panic!("not RTM_DELADDR") };
        prop_assert_eq!(m.header.index, index);
        prop_assert_eq!(m.header.prefix_len, len);
        prop_assert_eq!(
            &m.attributes,
            &vec![AddressAttribute::Local(addr), AddressAttribute::Address(addr)]
        );
    }

    /// Theirs encodes an address as the kernel reports it (IPv4 with `IFA_LOCAL` and a peer
    /// `IFA_ADDRESS`, IPv6 with `IFA_ADDRESS` only; 32-bit `IFA_FLAGS`), ours parses the same
    /// fields.
    #[test]
    fn their_addresses_parse_as_ours(
        index in any::<u32>(),
        a4 in v4(), peer in v4(), a6 in v6(),
        is_v4 in any::<bool>(),
        len in 0u8..=128,
        scope in any::<u8>(),
        hflags in any::<u8>(),
        flags in proptest::option::of(any::<u32>()),
        label in proptest::option::of("[a-z][a-z0-9:]{0,14}"),
        removed in any::<bool>(),
    ) {
        let len = if is_v4 { len % 33 } else { len };
        let mut m = AddressMessage::default();
        m.header.family = family(is_v4);
        m.header.prefix_len = len;
        m.header.flags = AddressHeaderFlags::from_bits_retain(hflags);
        m.header.scope = AddressScope::from(scope);
        m.header.index = index;
        let ours_addr = if is_v4 {
            m.attributes.push(AddressAttribute::Address(IpAddr::V4(peer)));
            m.attributes.push(AddressAttribute::Local(IpAddr::V4(a4)));
            IpAddr::V4(a4)
        } else {
            m.attributes.push(AddressAttribute::Address(IpAddr::V6(a6)));
            IpAddr::V6(a6)
        };
        if let Some(l) = &label {
            m.attributes.push(AddressAttribute::Label(l.clone()));
        }
        if let Some(f) = flags {
            m.attributes.push(AddressAttribute::Flags(AddressFlags::from_bits_retain(f)));
        }
        let msg = if removed {
            RouteNetlinkMessage::DelAddress(m)
        } else {
            RouteNetlinkMessage::NewAddress(m)
        };
        let bytes = serialize(msg, 0, 1);
        let ours = one_of_ours(&bytes);
        let a = match decode_event(&ours).unwrap() {
            Some(NetEvent::AddressAdded(a)) if !removed => a,
            Some(NetEvent::AddressRemoved(a)) if removed => a,
            other => panic!("wrong event {other:?}"),
        };
        prop_assert_eq!(&Some(a.clone()), &decode_address(ours.payload).unwrap());
        prop_assert_eq!(a.index, index);
        prop_assert_eq!(a.address, ours_addr);
        prop_assert_eq!(a.prefix_len, len);
        prop_assert_eq!(a.scope, scope);
        prop_assert_eq!(a.flags, flags.unwrap_or(u32::from(hflags)));
        prop_assert_eq!(a.label, label);
    }
}
