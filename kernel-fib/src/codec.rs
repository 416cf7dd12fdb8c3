//! rtnetlink message building and parsing, without I/O.
//!
//! Layouts are from `linux/netlink.h`, `linux/rtnetlink.h`, `linux/if_link.h` and
//! `linux/if_addr.h` (all in host byte order). Parsing treats the input as untrusted: every
//! length is checked, nothing panics, and messages that do not fit are reported as
//! [`FibError::Malformed`] or skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use babel_wire::Prefix;

use crate::watch::{AddressInfo, LinkInfo, NetEvent};
use crate::{FibError, KernelRoute, KernelRule, RouteKind};

// Message types.
pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWADDR: u16 = 20;
const IFA_ADDRESS_ATTR: u16 = 1;
const IFA_LOCAL_ATTR: u16 = 2;
pub(crate) const RTM_DELADDR: u16 = 21;
pub(crate) const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;
pub(crate) const RTM_NEWRULE: u16 = 32;
pub(crate) const RTM_DELRULE: u16 = 33;
pub(crate) const RTM_GETRULE: u16 = 34;

// Header flags.
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;

pub(crate) const AF_INET: u8 = 2;
pub(crate) const AF_INET6: u8 = 10;

// Route attributes.
const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;

// Rule attributes (`linux/fib_rules.h`).
const FRA_SRC: u16 = 2;
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_FWMASK: u16 = 16;
const FRA_TABLE: u16 = 15;
const FRA_PROTOCOL: u16 = 21;
/// Attributes that make a rule match something besides its source and whole firewall mark
/// (destination, interfaces, tunnel id, uid, IP protocol, ports, DSCP, flow label): `FRA_DST`,
/// `FRA_IIFNAME`, `FRA_TUN_ID`, `FRA_OIFNAME`, `FRA_L3MDEV`, `FRA_UID_RANGE`, `FRA_IP_PROTO`,
/// `FRA_SPORT_RANGE`, `FRA_DPORT_RANGE` and the DSCP, flow-label and port-mask attributes of
/// newer kernels (25 to 30). The kernel puts each in a dump only when it is set.
const FRA_SELECTORS: [u16; 15] = [1, 3, 12, 17, 19, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30];
/// `FRA_SUPPRESS_IFGROUP` and `FRA_SUPPRESS_PREFIXLEN`: they suppress the rule's result. The
/// kernel dumps them with every rule, as `u32::MAX` (-1) when unset.
const FRA_SUPPRESSORS: [u16; 2] = [13, 14];
/// `FIB_RULE_INVERT` in `fib_rule_hdr.flags`: `not from SRC`.
const FIB_RULE_INVERT: u32 = 0x2;
/// `FR_ACT_TO_TBL`: look the packet up in a table.
const FR_ACT_TO_TBL: u8 = 1;
/// Length of `struct fib_rule_hdr`.
const FIB_RULE_HDR_LEN: usize = 12;

const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
/// `rtm_table` when the real table is only in `RTA_TABLE` (≥ 256).
const RT_TABLE_UNSPEC: u8 = 0;
/// `RTNH_F_ONLINK` in `rtm_flags`.
pub(crate) const RTNH_F_ONLINK: u32 = 0x4;
/// `RTM_F_CLONED`: a cache entry, not a route.
const RTM_F_CLONED: u32 = 0x200;

// Link attributes and flags.
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_CARRIER: u16 = 33;
/// `IFF_UP`.
pub const IFF_UP: u32 = 0x1;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = 0x8;
/// `IFF_RUNNING`: up and with carrier (what babeld's `link-detect` checks).
pub const IFF_RUNNING: u32 = 0x40;
/// `IFF_LOWER_UP`: carrier.
pub const IFF_LOWER_UP: u32 = 0x1_0000;

// Address attributes.
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_FLAGS: u16 = 8;

/// Length of `struct nlmsghdr`.
pub(crate) const NLMSG_HDRLEN: usize = 16;
const RTMSG_LEN: usize = 12;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn rd_u16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes(s.try_into().ok()?))
}

fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(s.try_into().ok()?))
}

fn rd_i32(b: &[u8], off: usize) -> Option<i32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(i32::from_ne_bytes(s.try_into().ok()?))
}

fn rd_u8(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

fn ip_from(family: u8, bytes: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => {
            let a: [u8; 4] = bytes.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(a)))
        }
        AF_INET6 => {
            let a: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

fn family_of(a: IpAddr) -> u8 {
    if a.is_ipv4() { AF_INET } else { AF_INET6 }
}

fn ip_bytes(a: IpAddr) -> Octets {
    match a {
        IpAddr::V4(v) => Octets::V4(v.octets()),
        IpAddr::V6(v) => Octets::V6(v.octets()),
    }
}

/// An address's bytes on the stack: a full table builds a message per route, and a `Vec` per
/// address was two short-lived allocations a route on the route thread.
enum Octets {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl std::ops::Deref for Octets {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Octets::V4(a) => a,
            Octets::V6(a) => a,
        }
    }
}

/// One netlink message inside a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NlMsg<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid` (port id).
    pub pid: u32,
    /// Everything after the header, up to `nlmsg_len`.
    pub payload: &'a [u8],
}

/// Iterates over the messages of one received datagram. After a malformed header it yields
/// one error and stops.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

/// Iterator returned by [`messages`].
#[derive(Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<NlMsg<'a>, FibError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let parsed = (|| {
            let len = usize::try_from(rd_u32(b, 0)?).ok()?;
            if len < NLMSG_HDRLEN || len > b.len() {
                return None;
            }
            let msg = NlMsg {
                ty: rd_u16(b, 4)?,
                flags: rd_u16(b, 6)?,
                seq: rd_u32(b, 8)?,
                pid: rd_u32(b, 12)?,
                payload: b.get(NLMSG_HDRLEN..len)?,
            };
            Some((msg, b.get(align4(len).min(b.len())..).unwrap_or(&[])))
        })();
        match parsed {
            Some((msg, rest)) => {
                self.rest = rest;
                Some(Ok(msg))
            }
            None => {
                self.rest = &[];
                Some(Err(FibError::Malformed("bad netlink header")))
            }
        }
    }
}

/// Iterates over the attributes (`struct nlattr`/`rtattr`) in `buf`: `(type, payload)`, with
/// the nested and byte-order bits cleared from the type. Stops with an error at a bad length.
pub fn attributes(buf: &[u8]) -> Attributes<'_> {
    Attributes { rest: buf }
}

/// Iterator returned by [`attributes`].
#[derive(Debug)]
pub struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(u16, &'a [u8]), FibError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Fewer bytes than a header is padding at the end (or nothing).
        if self.rest.len() < NLA_HDRLEN {
            return None;
        }
        let b = self.rest;
        let parsed = (|| {
            let len = usize::from(rd_u16(b, 0)?);
            let ty = rd_u16(b, 2)? & NLA_TYPE_MASK;
            if len < NLA_HDRLEN || len > b.len() {
                return None;
            }
            let payload = b.get(NLA_HDRLEN..len)?;
            Some((
                (ty, payload),
                b.get(align4(len).min(b.len())..).unwrap_or(&[]),
            ))
        })();
        match parsed {
            Some((item, rest)) => {
                self.rest = rest;
                Some(Ok(item))
            }
            None => {
                self.rest = &[];
                Some(Err(FibError::Malformed("bad attribute length")))
            }
        }
    }
}

/// Appends netlink messages to one buffer (several requests can share one `send`).
#[derive(Debug, Default)]
pub struct MsgBuilder {
    buf: Vec<u8>,
    start: usize,
}

impl MsgBuilder {
    /// An empty buffer.
    pub fn new() -> MsgBuilder {
        MsgBuilder::default()
    }

    /// An empty buffer with room for `bytes` (one allocation for a batch of messages, where
    /// one grown by doubling left its smaller buffers free in the heap).
    pub fn with_capacity(bytes: usize) -> MsgBuilder {
        MsgBuilder {
            buf: Vec::with_capacity(bytes),
            start: 0,
        }
    }

    /// The bytes built so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes built so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was built.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    fn begin(&mut self, ty: u16, flags: u16, seq: u32) {
        self.start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
    }

    fn attr(&mut self, ty: u16, payload: &[u8]) {
        let len = NLA_HDRLEN + payload.len();
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    fn finish(&mut self) {
        let len = u32::try_from(self.buf.len().saturating_sub(self.start)).unwrap_or(u32::MAX);
        if let Some(slot) = self.buf.get_mut(self.start..self.start + 4) {
            slot.copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// A dump request (`NLM_F_REQUEST | NLM_F_DUMP`) with an all-zero family header of
    /// `header_len` bytes (12 for routes, 16 for links, 8 for addresses).
    pub fn dump_request(&mut self, ty: u16, header_len: usize, seq: u32) {
        self.begin(ty, NLM_F_REQUEST | NLM_F_DUMP, seq);
        self.buf.resize(self.buf.len() + header_len, 0);
        self.finish();
    }

    /// A request to add (or refresh) `addr/prefix_len` on interface `ifindex`, without duplicate
    /// address detection (`IFA_F_NODAD`); link-local IPv6 addresses get link scope.
    pub fn new_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8, seq: u32) {
        self.begin(
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            seq,
        );
        self.address_body(ifindex, addr, prefix_len);
    }

    /// A request to remove `addr/prefix_len` from interface `ifindex`.
    pub fn del_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8, seq: u32) {
        self.begin(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, seq);
        self.address_body(ifindex, addr, prefix_len);
    }

    fn address_body(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) {
        let (family, bytes, scope): (u8, Vec<u8>, u8) = match addr {
            IpAddr::V4(a) => (2, a.octets().to_vec(), RT_SCOPE_UNIVERSE),
            IpAddr::V6(a) => {
                let link = babel_wire::is_link_local(&IpAddr::V6(a));
                (
                    10,
                    a.octets().to_vec(),
                    if link {
                        RT_SCOPE_LINK
                    } else {
                        RT_SCOPE_UNIVERSE
                    },
                )
            }
        };
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        const IFA_F_NODAD_U8: u8 = 0x02;
        self.buf
            .extend_from_slice(&[family, prefix_len, IFA_F_NODAD_U8, scope]);
        self.buf.extend_from_slice(&ifindex.to_ne_bytes());
        self.attr(IFA_LOCAL_ATTR, &bytes);
        self.attr(IFA_ADDRESS_ATTR, &bytes);
        self.finish();
    }

    /// A request to set interface `ifindex` up, and its MTU if given.
    pub fn link_up(&mut self, ifindex: u32, mtu: Option<u32>, seq: u32) {
        self.begin(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
        // struct ifinfomsg: family, pad, type, index, flags, change.
        const IFF_UP: u32 = 0x1;
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(&ifindex.to_ne_bytes());
        self.buf.extend_from_slice(&IFF_UP.to_ne_bytes());
        self.buf.extend_from_slice(&IFF_UP.to_ne_bytes());
        if let Some(m) = mtu {
            const IFLA_MTU: u16 = 4;
            self.attr_u32(IFLA_MTU, m);
        }
        self.finish();
    }

    /// A request to install a route. `flags` are added to `NLM_F_REQUEST | NLM_F_ACK`
    /// (`NLM_F_CREATE | NLM_F_EXCL` for add, `NLM_F_CREATE | NLM_F_REPLACE` for replace).
    /// `onlink` sets `RTNH_F_ONLINK`. The route should have passed
    /// [`KernelRoute::validate`].
    pub fn new_route(&mut self, route: &KernelRoute, flags: u16, seq: u32, onlink: bool) {
        self.begin(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | flags, seq);
        let scope =
            if route.kind == RouteKind::Unicast && route.gateway.is_none() && route.is_ipv4() {
                RT_SCOPE_LINK
            } else {
                RT_SCOPE_UNIVERSE
            };
        let rtm_flags = if onlink { RTNH_F_ONLINK } else { 0 };
        self.rtmsg(route, scope, route.kind.to_rtm_type(), rtm_flags);
        self.route_key_attrs(route);
        if let Some(oif) = route.oif {
            self.attr_u32(RTA_OIF, oif);
        }
        match route.gateway {
            Some(gw) if route.is_ipv4() == gw.is_ipv4() => self.attr(RTA_GATEWAY, &ip_bytes(gw)),
            Some(gw) => {
                // struct rtvia: a 16-bit address family, then the address.
                let mut via = u16::from(family_of(gw)).to_ne_bytes().to_vec();
                via.extend_from_slice(&ip_bytes(gw));
                self.attr(RTA_VIA, &via);
            }
            None => {}
        }
        if let Some(p) = route.pref_src {
            self.attr(RTA_PREFSRC, &ip_bytes(p));
        }
        self.finish();
    }

    /// A request to delete the route with `route`'s key and protocol (whatever its gateway
    /// or interface).
    ///
    /// IPv4 metric 0 is special: the kernel reads priority 0 in a delete as "any metric" and
    /// removes the lowest-metric route of that destination, table and protocol. For those
    /// deletes the kind is sent too (the kernel then matches it), so that deleting a unicast
    /// route that is already gone cannot take babeld's unreachable route (metric 4294967295)
    /// to the same destination with it. See [`crate::Fib::delete`].
    pub fn del_route(&mut self, route: &KernelRoute, seq: u32) {
        self.begin(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq);
        let ty = if route.is_ipv4() && route.metric == 0 {
            route.kind.to_rtm_type()
        } else {
            0
        };
        self.rtmsg(route, RT_SCOPE_NOWHERE, ty, 0);
        self.route_key_attrs(route);
        self.finish();
    }

    /// A request to add the policy rule `rule` (`NLM_F_CREATE | NLM_F_EXCL`).
    pub fn new_rule(&mut self, rule: &KernelRule, seq: u32) {
        self.begin(
            RTM_NEWRULE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            seq,
        );
        self.rule_body(rule);
    }

    /// A request to delete the policy rule `rule` (matched on source, firewall mark, table and
    /// priority).
    pub fn del_rule(&mut self, rule: &KernelRule, seq: u32) {
        self.begin(RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK, seq);
        self.rule_body(rule);
    }

    fn rule_body(&mut self, rule: &KernelRule) {
        let table8 = u8::try_from(rule.table).unwrap_or(RT_TABLE_UNSPEC);
        // struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags.
        self.buf.extend_from_slice(&[
            family_of(rule.src.addr()),
            0,
            rule.src.len(),
            0,
            table8,
            0,
            0,
            FR_ACT_TO_TBL,
        ]);
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        if !rule.src.is_default() {
            self.attr(FRA_SRC, &ip_bytes(rule.src.addr()));
        }
        if let Some(mark) = rule.fwmark {
            // The whole mark: with an explicit mask, `fwmark 0` means "unmarked", not "any".
            self.attr_u32(FRA_FWMARK, mark);
            self.attr_u32(FRA_FWMASK, u32::MAX);
        }
        self.attr_u32(FRA_TABLE, rule.table);
        self.attr_u32(FRA_PRIORITY, rule.priority);
        self.attr(FRA_PROTOCOL, &[rule.protocol]);
        self.finish();
    }

    fn rtmsg(&mut self, route: &KernelRoute, scope: u8, ty: u8, flags: u32) {
        let table8 = u8::try_from(route.table).unwrap_or(RT_TABLE_UNSPEC);
        self.buf.extend_from_slice(&[
            family_of(route.dst.addr()),
            route.dst.len(),
            route.src.map_or(0, |s| s.len()),
            0, // tos
            table8,
            route.protocol,
            scope,
            ty,
        ]);
        self.buf.extend_from_slice(&flags.to_ne_bytes());
    }

    fn route_key_attrs(&mut self, route: &KernelRoute) {
        self.attr(RTA_DST, &ip_bytes(route.dst.addr()));
        if let Some(src) = route.src {
            self.attr(RTA_SRC, &ip_bytes(src.addr()));
        }
        self.attr_u32(RTA_TABLE, route.table);
        // IPv6 metric 0 is stored as 1024: say so, so that a delete matches exactly one route
        // (metric 0 in a delete would match any metric).
        self.attr_u32(RTA_PRIORITY, route.effective_metric());
    }
}

/// Length of the family header of rule dumps.
pub(crate) const RULE_HEADER_LEN: usize = FIB_RULE_HDR_LEN;

/// Parses the payload of an `RTM_NEWRULE` message. `Ok(None)` for rules that are not
/// "look up a table" rules of IPv4/IPv6 (`FR_ACT_TO_TBL`) selecting on their source and
/// whole firewall mark alone (no destination, TOS, partial mark mask, interface, port... and
/// not inverted).
pub fn decode_rule(payload: &[u8]) -> Result<Option<KernelRule>, FibError> {
    let short = || FibError::Malformed("short fib_rule_hdr");
    let family = rd_u8(payload, 0).ok_or_else(short)?;
    let dst_len = rd_u8(payload, 1).ok_or_else(short)?;
    let src_len = rd_u8(payload, 2).ok_or_else(short)?;
    let tos = rd_u8(payload, 3).ok_or_else(short)?;
    let table8 = rd_u8(payload, 4).ok_or_else(short)?;
    let action = rd_u8(payload, 7).ok_or_else(short)?;
    let flags = rd_u32(payload, 8).ok_or_else(short)?;
    if (family != AF_INET && family != AF_INET6) || action != FR_ACT_TO_TBL {
        return Ok(None);
    }
    // A rule that also matches a destination, a TOS, or anything but its source (`not from`)
    // is not `from SRC lookup TABLE`: reporting it as one would hide what it does.
    if dst_len != 0 || tos != 0 || flags & FIB_RULE_INVERT != 0 {
        return Ok(None);
    }
    let unspecified = if family == AF_INET {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let mut src = unspecified;
    let mut table = u32::from(table8);
    let mut priority = 0;
    let mut protocol = 0;
    let mut mark = None;
    let mut mask = None;
    let mut selector = false;
    let attrs = payload.get(FIB_RULE_HDR_LEN..).ok_or_else(short)?;
    for attr in attributes(attrs) {
        let (ty, data) = attr?;
        let bad = FibError::Malformed("bad rule attribute");
        match ty {
            FRA_SRC => src = ip_from(family, data).ok_or(bad)?,
            FRA_TABLE => table = rd_u32(data, 0).ok_or(bad)?,
            FRA_PRIORITY => priority = rd_u32(data, 0).ok_or(bad)?,
            FRA_PROTOCOL => protocol = rd_u8(data, 0).ok_or(bad)?,
            FRA_FWMARK => mark = Some(rd_u32(data, 0).ok_or(bad)?),
            FRA_FWMASK => mask = Some(rd_u32(data, 0).ok_or(bad)?),
            t if FRA_SELECTORS.contains(&t) => selector = true,
            t if FRA_SUPPRESSORS.contains(&t) => {
                selector |= rd_u32(data, 0).ok_or(bad)? != u32::MAX;
            }
            _ => {}
        }
    }
    // The kernel's defaults: a non-zero mark without a mask is matched whole, no mark (or
    // mark 0 without a mask) matches any.
    let fwmark = match (mark.unwrap_or(0), mask) {
        (0, None | Some(0)) => None,
        (m, None | Some(u32::MAX)) => Some(m),
        // Part of the mark only: not a rule this type can say.
        (_, Some(_)) => return Ok(None),
    };
    if selector {
        return Ok(None);
    }
    let src =
        Prefix::new(src, src_len).map_err(|_| FibError::Malformed("prefix length too long"))?;
    Ok(Some(KernelRule {
        src,
        fwmark,
        table,
        priority,
        protocol,
    }))
}

/// Length of the family header that follows the netlink header in route dumps.
pub(crate) const ROUTE_HEADER_LEN: usize = RTMSG_LEN;
/// Length of `struct ifinfomsg`.
pub(crate) const LINK_HEADER_LEN: usize = IFINFOMSG_LEN;
/// Length of `struct ifaddrmsg`.
pub(crate) const ADDR_HEADER_LEN: usize = IFADDRMSG_LEN;

/// Parses the payload of an `NLMSG_ERROR` message: `Ok(())` for an ack (error 0), the
/// mapped error otherwise.
pub fn decode_error(payload: &[u8]) -> Result<(), FibError> {
    let code = rd_i32(payload, 0).ok_or(FibError::Malformed("short error message"))?;
    if code == 0 {
        Ok(())
    } else {
        let errno = nix::errno::Errno::from_raw(code.checked_neg().unwrap_or(i32::MAX));
        Err(FibError::from_errno(errno))
    }
}

/// Parses the payload of an `RTM_NEWROUTE`/`RTM_DELROUTE` message. `Ok(None)` for what is not
/// an IPv4/IPv6 route or is a cache clone. A multipath route is reported with its first next
/// hop.
pub fn decode_route(payload: &[u8]) -> Result<Option<KernelRoute>, FibError> {
    let short = FibError::Malformed("short rtmsg");
    let family = rd_u8(payload, 0).ok_or(FibError::Malformed("short rtmsg"))?;
    if family != AF_INET && family != AF_INET6 {
        return Ok(None);
    }
    let (Some(dst_len), Some(src_len), Some(table8), Some(protocol), Some(ty), Some(flags)) = (
        rd_u8(payload, 1),
        rd_u8(payload, 2),
        rd_u8(payload, 4),
        rd_u8(payload, 5),
        rd_u8(payload, 7),
        rd_u32(payload, 8),
    ) else {
        return Err(short);
    };
    if flags & RTM_F_CLONED != 0 {
        return Ok(None);
    }
    let unspecified = if family == AF_INET {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let mut dst = unspecified;
    let mut src = None;
    let mut table = u32::from(table8);
    let mut gateway = None;
    let mut oif = None;
    let mut metric = 0;
    let mut pref_src = None;
    let attrs = payload.get(RTMSG_LEN..).ok_or(short)?;
    for attr in attributes(attrs) {
        let (ty, data) = attr?;
        let bad = FibError::Malformed("bad route attribute");
        match ty {
            RTA_DST => dst = ip_from(family, data).ok_or(bad)?,
            RTA_SRC => src = Some(ip_from(family, data).ok_or(bad)?),
            RTA_TABLE => table = rd_u32(data, 0).ok_or(bad)?,
            RTA_OIF => oif = Some(rd_u32(data, 0).ok_or(bad)?),
            RTA_PRIORITY => metric = rd_u32(data, 0).ok_or(bad)?,
            RTA_GATEWAY => gateway = Some(ip_from(family, data).ok_or(bad)?),
            RTA_VIA => gateway = Some(decode_via(data).ok_or(bad)?),
            RTA_PREFSRC => pref_src = Some(ip_from(family, data).ok_or(bad)?),
            RTA_MULTIPATH => {
                if let Some((nh_oif, nh_gw)) = first_nexthop(family, data) {
                    oif = oif.or(nh_oif);
                    gateway = gateway.or(nh_gw);
                }
            }
            _ => {}
        }
    }
    let bad_len = FibError::Malformed("prefix length too long");
    let dst = Prefix::new(dst, dst_len).map_err(|_| bad_len)?;
    let src = if src_len > 0 {
        Some(
            Prefix::new(src.unwrap_or(unspecified), src_len)
                .map_err(|_| FibError::Malformed("prefix length too long"))?,
        )
    } else {
        None
    };
    Ok(Some(KernelRoute {
        dst,
        src,
        kind: RouteKind::from_rtm_type(ty),
        gateway,
        oif,
        metric,
        table,
        protocol,
        pref_src,
        onlink: flags & RTNH_F_ONLINK != 0,
    }))
}

fn decode_via(data: &[u8]) -> Option<IpAddr> {
    let family = u8::try_from(rd_u16(data, 0)?).ok()?;
    ip_from(family, data.get(2..)?)
}

/// The first `struct rtnexthop` of an `RTA_MULTIPATH` attribute: (ifindex, gateway).
fn first_nexthop(family: u8, data: &[u8]) -> Option<(Option<u32>, Option<IpAddr>)> {
    let len = usize::from(rd_u16(data, 0)?);
    let ifindex = rd_i32(data, 4)?;
    let nh = data.get(8..len)?;
    let mut gw = None;
    for attr in attributes(nh) {
        match attr.ok()? {
            (RTA_GATEWAY, d) => gw = ip_from(family, d),
            (RTA_VIA, d) => gw = decode_via(d),
            _ => {}
        }
    }
    let oif = u32::try_from(ifindex).ok().filter(|&i| i > 0);
    Some((oif, gw))
}

/// Parses the payload of an `RTM_NEWLINK`/`RTM_DELLINK` message.
pub fn decode_link(payload: &[u8]) -> Result<LinkInfo, FibError> {
    let short = || FibError::Malformed("short ifinfomsg");
    let index = rd_i32(payload, 4).ok_or_else(short)?;
    let flags = rd_u32(payload, 8).ok_or_else(short)?;
    let mut link = LinkInfo {
        index: u32::try_from(index).map_err(|_| FibError::Malformed("negative ifindex"))?,
        name: String::new(),
        flags,
        mtu: None,
        operstate: None,
        carrier: None,
        hw_addr: Vec::new(),
    };
    let attrs = payload.get(IFINFOMSG_LEN..).ok_or_else(short)?;
    for attr in attributes(attrs) {
        let (ty, data) = attr?;
        let bad = FibError::Malformed("bad link attribute");
        match ty {
            IFLA_IFNAME => {
                let name = data.split(|&c| c == 0).next().unwrap_or(&[]);
                link.name = String::from_utf8_lossy(name).into_owned();
            }
            IFLA_MTU => link.mtu = Some(rd_u32(data, 0).ok_or(bad)?),
            IFLA_OPERSTATE => link.operstate = Some(rd_u8(data, 0).ok_or(bad)?),
            IFLA_CARRIER => link.carrier = Some(rd_u8(data, 0).ok_or(bad)? != 0),
            IFLA_ADDRESS => link.hw_addr = data.to_vec(),
            _ => {}
        }
    }
    Ok(link)
}

/// Parses the payload of an `RTM_NEWADDR`/`RTM_DELADDR` message. `Ok(None)` for families
/// other than IPv4 and IPv6.
pub fn decode_address(payload: &[u8]) -> Result<Option<AddressInfo>, FibError> {
    let short = || FibError::Malformed("short ifaddrmsg");
    let family = rd_u8(payload, 0).ok_or_else(short)?;
    if family != AF_INET && family != AF_INET6 {
        return Ok(None);
    }
    let prefix_len = rd_u8(payload, 1).ok_or_else(short)?;
    let mut flags = u32::from(rd_u8(payload, 2).ok_or_else(short)?);
    let scope = rd_u8(payload, 3).ok_or_else(short)?;
    let index = rd_u32(payload, 4).ok_or_else(short)?;
    let mut address = None;
    let mut local = None;
    let mut label = None;
    let attrs = payload.get(IFADDRMSG_LEN..).ok_or_else(short)?;
    for attr in attributes(attrs) {
        let (ty, data) = attr?;
        let bad = FibError::Malformed("bad address attribute");
        match ty {
            IFA_ADDRESS => address = Some(ip_from(family, data).ok_or(bad)?),
            IFA_LOCAL => local = Some(ip_from(family, data).ok_or(bad)?),
            IFA_FLAGS => flags = rd_u32(data, 0).ok_or(bad)?,
            IFA_LABEL => {
                let name = data.split(|&c| c == 0).next().unwrap_or(&[]);
                label = Some(String::from_utf8_lossy(name).into_owned());
            }
            _ => {}
        }
    }
    // IPv4: IFA_LOCAL is our address, IFA_ADDRESS the peer's on point-to-point links.
    let Some(address) = local.or(address) else {
        return Err(FibError::Malformed("address message without an address"));
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    if prefix_len > max {
        return Err(FibError::Malformed("prefix length too long"));
    }
    Ok(Some(AddressInfo {
        index,
        address,
        prefix_len,
        flags,
        scope,
        label,
    }))
}

/// Turns one notification into events (none for message types we do not watch).
pub fn decode_event(msg: &NlMsg<'_>) -> Result<Option<NetEvent>, FibError> {
    Ok(match msg.ty {
        RTM_NEWLINK => Some(NetEvent::LinkChanged(decode_link(msg.payload)?)),
        RTM_DELLINK => Some(NetEvent::LinkRemoved(decode_link(msg.payload)?)),
        RTM_NEWADDR => decode_address(msg.payload)?.map(NetEvent::AddressAdded),
        RTM_DELADDR => decode_address(msg.payload)?.map(NetEvent::AddressRemoved),
        RTM_NEWROUTE => decode_route(msg.payload)?.map(NetEvent::RouteAdded),
        RTM_DELROUTE => decode_route(msg.payload)?.map(NetEvent::RouteRemoved),
        NLMSG_OVERRUN => Some(NetEvent::Overrun),
        _ => None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn one_message(b: &MsgBuilder) -> NlMsg<'_> {
        let all: Vec<_> = messages(b.as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 1);
        all[0]
    }

    fn round_trip(route: &KernelRoute, onlink: bool) -> KernelRoute {
        let mut b = MsgBuilder::new();
        b.new_route(route, NLM_F_CREATE | NLM_F_REPLACE, 77, onlink);
        let m = one_message(&b);
        assert_eq!(m.ty, RTM_NEWROUTE);
        assert_eq!(m.seq, 77);
        assert_eq!(
            m.flags,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        );
        decode_route(m.payload).unwrap().unwrap()
    }

    #[test]
    fn route_round_trips() {
        let routes = [
            KernelRoute::unicast(p("10.1.0.0/16"), Some(ip("10.0.0.2")), Some(3)).with_metric(7),
            KernelRoute::unicast(p("2001:db8:1::/48"), Some(ip("fe80::1")), Some(3))
                .with_metric(1024)
                .with_src(p("2001:db8:9::/48"))
                .with_pref_src(ip("2001:db8::5")),
            KernelRoute::unicast(p("10.7.0.0/16"), Some(ip("fe80::2")), Some(4))
                .with_table(1000)
                .with_protocol(99),
            KernelRoute::unreachable(p("10.8.0.0/16")),
            KernelRoute::unreachable(p("::/0")).with_metric(5),
            KernelRoute::unicast(p("192.168.1.1/32"), None, Some(9))
                .with_pref_src(ip("192.168.0.1")),
        ];
        for r in &routes {
            assert_eq!(&round_trip(r, false), r, "{r}");
        }
        let mut onl = routes[0].clone();
        onl.onlink = true;
        assert_eq!(round_trip(&routes[0], true), onl);
    }

    #[test]
    fn v4_via_v6_uses_rta_via() {
        let r = KernelRoute::unicast(p("10.7.0.0/16"), Some(ip("fe80::2")), Some(4));
        let mut b = MsgBuilder::new();
        b.new_route(&r, 0, 1, false);
        let m = one_message(&b);
        let types: Vec<u16> = attributes(&m.payload[RTMSG_LEN..])
            .map(|a| a.unwrap().0)
            .collect();
        assert!(types.contains(&RTA_VIA));
        assert!(!types.contains(&RTA_GATEWAY));
        assert_eq!(m.payload[0], AF_INET);
    }

    #[test]
    fn delete_carries_only_the_key() {
        let r = KernelRoute::unicast(p("2001:db8::/32"), Some(ip("fe80::1")), Some(3));
        let mut b = MsgBuilder::new();
        b.del_route(&r, 5);
        let m = one_message(&b);
        assert_eq!(m.ty, RTM_DELROUTE);
        let d = decode_route(m.payload).unwrap().unwrap();
        assert_eq!(d.gateway, None);
        assert_eq!(d.oif, None);
        assert_eq!(d.metric, 1024);
        assert_eq!(d.protocol, 42);
        assert_eq!(d.key(), r.key());
    }

    #[test]
    fn several_messages_in_one_buffer() {
        let mut b = MsgBuilder::new();
        b.dump_request(RTM_GETROUTE, ROUTE_HEADER_LEN, 1);
        b.dump_request(RTM_GETLINK, LINK_HEADER_LEN, 2);
        b.dump_request(RTM_GETADDR, ADDR_HEADER_LEN, 3);
        let all: Vec<_> = messages(b.as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].ty, RTM_GETLINK);
        assert_eq!(all[1].payload.len(), 16);
        assert_eq!(all[2].seq, 3);
        assert_eq!(all[2].flags, NLM_F_REQUEST | NLM_F_DUMP);
    }

    fn hdr(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn nla(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn errors_and_acks() {
        let mut ack = 0i32.to_ne_bytes().to_vec();
        ack.extend_from_slice(&[0; 16]);
        assert!(decode_error(&ack).is_ok());
        let eexist = (-17i32).to_ne_bytes();
        assert!(matches!(decode_error(&eexist), Err(FibError::Exists)));
        let enodev = (-19i32).to_ne_bytes();
        assert!(matches!(decode_error(&enodev), Err(FibError::NoDevice)));
        assert!(matches!(decode_error(&[1, 2]), Err(FibError::Malformed(_))));
        assert!(decode_error(&i32::MIN.to_ne_bytes()).is_err());
    }

    #[test]
    fn link_and_address_parsing() {
        let mut ifi = vec![0u8, 0, 1, 0];
        ifi.extend_from_slice(&5i32.to_ne_bytes());
        ifi.extend_from_slice(&(IFF_UP | IFF_RUNNING | IFF_LOWER_UP).to_ne_bytes());
        ifi.extend_from_slice(&0u32.to_ne_bytes());
        ifi.extend(nla(IFLA_IFNAME, b"veth0\0"));
        ifi.extend(nla(IFLA_MTU, &1420u32.to_ne_bytes()));
        ifi.extend(nla(IFLA_CARRIER, &[1]));
        ifi.extend(nla(IFLA_ADDRESS, &[2, 0, 0, 0, 0, 1]));
        let buf = hdr(RTM_NEWLINK, 0, 0, &ifi);
        let m = messages(&buf).next().unwrap().unwrap();
        let Some(NetEvent::LinkChanged(l)) = decode_event(&m).unwrap() else {
            panic!("not a link");
        };
        assert_eq!(l.index, 5);
        assert_eq!(l.name, "veth0");
        assert_eq!(l.mtu, Some(1420));
        assert!(l.is_up() && l.is_running());
        assert_eq!(l.carrier, Some(true));
        assert_eq!(l.hw_addr, vec![2, 0, 0, 0, 0, 1]);

        let mut ifa = vec![AF_INET, 24, 0, 0];
        ifa.extend_from_slice(&5u32.to_ne_bytes());
        ifa.extend(nla(IFA_ADDRESS, &[10, 0, 0, 9]));
        ifa.extend(nla(IFA_LOCAL, &[10, 0, 0, 1]));
        ifa.extend(nla(IFA_FLAGS, &0x80u32.to_ne_bytes()));
        let buf = hdr(RTM_DELADDR, 0, 0, &ifa);
        let m = messages(&buf).next().unwrap().unwrap();
        let Some(NetEvent::AddressRemoved(a)) = decode_event(&m).unwrap() else {
            panic!("not an address");
        };
        assert_eq!(a.address, ip("10.0.0.1"));
        assert_eq!(a.prefix(), p("10.0.0.0/24"));
        assert_eq!(a.flags, 0x80);
        assert_eq!(a.index, 5);
    }

    #[test]
    fn multipath_first_nexthop() {
        let mut rt = vec![AF_INET, 16, 0, 0, 254, 3, 0, 1];
        rt.extend_from_slice(&0u32.to_ne_bytes());
        rt.extend(nla(RTA_DST, &[10, 9, 0, 0]));
        let gw = nla(RTA_GATEWAY, &[10, 0, 0, 2]);
        let mut nh = Vec::new();
        nh.extend_from_slice(&((8 + gw.len()) as u16).to_ne_bytes());
        nh.extend_from_slice(&[0, 0]);
        nh.extend_from_slice(&7i32.to_ne_bytes());
        nh.extend(gw);
        rt.extend(nla(RTA_MULTIPATH, &nh));
        let r = decode_route(&rt).unwrap().unwrap();
        assert_eq!(r.gateway, Some(ip("10.0.0.2")));
        assert_eq!(r.oif, Some(7));
        assert_eq!(r.protocol, 3);
        assert_eq!(r.dst, p("10.9.0.0/16"));
    }

    #[test]
    fn fwmark_rules_round_trip() {
        // Route verification's probe rule: `fwmark M lookup T`, from any source; mark 0 is
        // "unmarked" and survives the trip as such (sent with a whole mask).
        type Build = fn(&mut MsgBuilder, &KernelRule, u32);
        let requests: [(u16, Build); 2] = [
            (RTM_NEWRULE, MsgBuilder::new_rule),
            (RTM_DELRULE, MsgBuilder::del_rule),
        ];
        for mark in [0x6261_0003, 0, u32::MAX] {
            let rule = KernelRule::fwmark_v6(mark, 6203, 1000, 42);
            assert_eq!(rule.src, p("::/0"));
            for (ty, build) in requests {
                let mut b = MsgBuilder::new();
                build(&mut b, &rule, 3);
                let m = one_message(&b);
                assert_eq!(m.ty, ty);
                // AF_INET6, no source length, FRA_SRC left out.
                assert_eq!((m.payload[0], m.payload[2]), (AF_INET6, 0));
                let attrs: Vec<u16> = attributes(&m.payload[FIB_RULE_HDR_LEN..])
                    .map(|a| a.unwrap().0)
                    .collect();
                let want = [
                    FRA_FWMARK,
                    FRA_FWMASK,
                    FRA_TABLE,
                    FRA_PRIORITY,
                    FRA_PROTOCOL,
                ];
                assert_eq!(attrs, want);
                assert_eq!(decode_rule(m.payload).unwrap(), Some(rule));
            }
        }
        assert_eq!(
            KernelRule::fwmark_v6(0x10, 6200, 1000, 42).to_string(),
            "1000: from ::/0 fwmark 0x10 lookup 6200 proto 42"
        );
    }

    #[test]
    fn rules_round_trip() {
        let rule = KernelRule {
            src: p("2001:db8:1::/48"),
            fwmark: None,
            table: 10,
            priority: 100,
            protocol: 42,
        };
        let mut b = MsgBuilder::new();
        b.new_rule(&rule, 7);
        let m = one_message(&b);
        assert_eq!(m.ty, RTM_NEWRULE);
        assert_eq!(
            m.flags,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        // src_len in the header, action FR_ACT_TO_TBL.
        assert_eq!(m.payload[2], 48);
        assert_eq!(m.payload[7], 1);
        assert_eq!(decode_rule(m.payload).unwrap(), Some(rule));
        let mut d = MsgBuilder::new();
        d.del_rule(&rule, 8);
        let m = one_message(&d);
        assert_eq!(m.ty, RTM_DELRULE);
        assert_eq!(decode_rule(m.payload).unwrap(), Some(rule));
        // Other actions (blackhole = 6) are not table rules.
        let mut other = m.payload.to_vec();
        other[7] = 6;
        assert_eq!(decode_rule(&other).unwrap(), None);
        // `from S fwmark 5 lookup T` is a marked rule (the kernel matches a mark given without
        // a mask whole); a partial mask cannot be said; `not from S lookup T` is not ours.
        let mut marked = m.payload.to_vec();
        marked.extend(nla(10, &5u32.to_ne_bytes()));
        let with_mark = KernelRule {
            fwmark: Some(5),
            ..rule
        };
        assert_eq!(decode_rule(&marked).unwrap(), Some(with_mark));
        let mut part = marked.clone();
        part.extend(nla(16, &0xffu32.to_ne_bytes()));
        assert_eq!(decode_rule(&part).unwrap(), None);
        let mut whole = marked.clone();
        whole.extend(nla(16, &u32::MAX.to_ne_bytes()));
        assert_eq!(decode_rule(&whole).unwrap(), Some(with_mark));
        // Mark 0 without a mask matches any packet: no mark.
        let mut zero = m.payload.to_vec();
        zero.extend(nla(10, &0u32.to_ne_bytes()));
        assert_eq!(decode_rule(&zero).unwrap(), Some(rule));
        let mut inverted = m.payload.to_vec();
        inverted[8..12].copy_from_slice(&FIB_RULE_INVERT.to_ne_bytes());
        assert_eq!(decode_rule(&inverted).unwrap(), None);
        // The kernel dumps every rule with FRA_SUPPRESS_PREFIXLEN, -1 when unset: still ours.
        let mut dumped = m.payload.to_vec();
        dumped.extend(nla(14, &u32::MAX.to_ne_bytes()));
        assert_eq!(decode_rule(&dumped).unwrap(), Some(rule));
        // `suppress_prefixlength 0` changes what the rule does.
        let mut suppressing = m.payload.to_vec();
        suppressing.extend(nla(14, &0u32.to_ne_bytes()));
        assert_eq!(decode_rule(&suppressing).unwrap(), None);
        let mut to_dst = m.payload.to_vec();
        to_dst[1] = 64;
        assert_eq!(decode_rule(&to_dst).unwrap(), None);
        for n in 0..m.payload.len() {
            let _ = decode_rule(&m.payload[..n]);
        }
    }

    #[test]
    fn garbage_never_panics() {
        // Every truncation and a walk of byte values through every position of a valid
        // message: parsing may fail but must not panic.
        let mut b = MsgBuilder::new();
        b.new_route(
            &KernelRoute::unicast(p("2001:db8:1::/48"), Some(ip("fe80::1")), Some(3))
                .with_src(p("2001:db8:9::/48")),
            0,
            1,
            false,
        );
        let bytes = b.as_bytes().to_vec();
        for cut in 0..bytes.len() {
            for m in messages(&bytes[..cut]).flatten() {
                let _ = decode_event(&m);
            }
            let _ = decode_route(&bytes[16..cut.max(16)]);
            let _ = decode_link(&bytes[16..cut.max(16)]);
            let _ = decode_address(&bytes[16..cut.max(16)]);
        }
        for pos in 0..bytes.len() {
            for v in [0u8, 1, 3, 4, 0x7f, 0x80, 0xff] {
                let mut m = bytes.clone();
                m[pos] = v;
                for msg in messages(&m).flatten() {
                    let _ = decode_event(&msg);
                    let _ = decode_link(msg.payload);
                    let _ = decode_address(msg.payload);
                }
            }
        }
        // Cloned routes and other families are skipped.
        let mut cloned = vec![AF_INET6, 128, 0, 0, 254, 2, 0, 1];
        cloned.extend_from_slice(&RTM_F_CLONED.to_ne_bytes());
        assert!(decode_route(&cloned).unwrap().is_none());
        assert!(decode_route(&[7, 0, 0, 0]).unwrap().is_none());
        assert!(decode_route(&[AF_INET, 40, 0, 0, 254, 2, 0, 1, 0, 0, 0, 0]).is_err());
    }
}
