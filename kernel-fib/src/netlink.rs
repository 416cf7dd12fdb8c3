//! [`NetlinkFib`]: the kernel's forwarding table over a NETLINK_ROUTE socket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use babel_wire::Prefix;

use crate::codec::{
    self, ADDR_HEADER_LEN, LINK_HEADER_LEN, MsgBuilder, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE,
    ROUTE_HEADER_LEN, RULE_HEADER_LEN,
};
use crate::socket::NlSocket;
use crate::watch::{AddressInfo, LinkInfo};
use crate::{DumpFilter, Fib, FibChange, FibError, KernelRoute, KernelRule, RouteKind};

/// Settings of a [`NetlinkFib`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetlinkConfig {
    /// Kernel receive buffer of the socket (acks of a batch queue up there).
    pub socket_rcvbuf: usize,
    /// How long to wait for the kernel's answer before [`FibError::Timeout`].
    pub timeout: Duration,
    /// Requests sent in one datagram by [`Fib::apply`] before their acks are read.
    pub batch: usize,
    /// Decide `RTNH_F_ONLINK` by itself (see [`crate::ipv4_gateway_needs_onlink`]).
    pub auto_onlink: bool,
}

impl Default for NetlinkConfig {
    fn default() -> Self {
        NetlinkConfig {
            socket_rcvbuf: 4 * 1024 * 1024,
            timeout: Duration::from_secs(5),
            batch: 256,
            auto_onlink: true,
        }
    }
}

/// The kernel's routing tables, reached through rtnetlink in the network namespace of the
/// thread that created it.
///
/// * `add` is `NLM_F_CREATE | NLM_F_EXCL`; `replace` is `NLM_F_CREATE | NLM_F_REPLACE`, one
///   atomic kernel operation (never the delete-then-add of babeld#110).
/// * `delete` sends only the route's key and protocol; `ESRCH` (already gone) counts as done.
/// * `apply` pipelines up to [`NetlinkConfig::batch`] requests per datagram and matches the
///   acks by sequence number.
/// * IPv4 routes via an IPv6 next hop use `RTA_VIA` (RFC 9229).
/// * `RTNH_F_ONLINK` is set when the route asks for it, or (auto mode) for an IPv4 route via
///   an IPv4 gateway outside every IPv4 subnet of the output interface; never on reject
///   routes (ENODEV since Linux 4.16, babeld#14) nor on IPv6 routes.
#[derive(Debug)]
pub struct NetlinkFib {
    sock: NlSocket,
    config: NetlinkConfig,
    /// IPv4 subnets per interface index, for the onlink decision; loaded on demand.
    v4_subnets: Option<HashMap<u32, Vec<Prefix>>>,
}

/// Room reserved per request of a batch: an IPv6 route with a gateway, an interface, a
/// preferred source and a source prefix takes about 130 bytes.
const ROUTE_MSG_BYTES: usize = 144;

/// What one request of a batch stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Install (add or replace) change `index`'s new route, `onlink` as sent.
    Install { index: usize, onlink: bool },
    /// Delete for change `index`.
    Delete { index: usize },
}

impl NetlinkFib {
    /// Opens a socket with the default settings.
    pub fn new() -> Result<NetlinkFib, FibError> {
        NetlinkFib::with_config(NetlinkConfig::default())
    }

    /// Opens a socket with `config`.
    pub fn with_config(config: NetlinkConfig) -> Result<NetlinkFib, FibError> {
        Ok(NetlinkFib {
            sock: NlSocket::open(0, config.socket_rcvbuf, Some(config.timeout))?,
            config,
            v4_subnets: None,
        })
    }

    /// Turns the automatic `RTNH_F_ONLINK` decision on or off.
    pub fn set_auto_onlink(&mut self, on: bool) {
        self.config.auto_onlink = on;
    }

    /// Forgets the cached interface subnets (call on address changes); they are re-read when
    /// next needed.
    pub fn invalidate_addresses(&mut self) {
        self.v4_subnets = None;
    }

    /// Adds (or refreshes) an address on an interface, without duplicate address detection.
    pub fn add_address(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), FibError> {
        self.request(|b, seq| b.new_address(ifindex, addr, prefix_len, seq))
    }

    /// One request built by `build` (given the sequence number), and its acknowledgement.
    fn request(&mut self, build: impl FnOnce(&mut codec::MsgBuilder, u32)) -> Result<(), FibError> {
        let seq = self.sock.take_seqs(1);
        let mut b = codec::MsgBuilder::new();
        build(&mut b, seq);
        self.sock
            .transact(&b, seq, 1)
            .into_iter()
            .next()
            .unwrap_or(Err(FibError::Timeout))
    }

    /// Removes an address from an interface; an address that is already gone is not an error.
    pub fn delete_address(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), FibError> {
        self.request(|b, seq| b.del_address(ifindex, addr, prefix_len, seq))
            // The kernel says a missing address with `EADDRNOTAVAIL`.
            .or_else(|e| match e {
                FibError::AddrNotAvailable => Ok(()),
                other => gone_is_ok(other),
            })
    }

    /// Sets an interface up, and its MTU if given.
    pub fn set_link_up(&mut self, ifindex: u32, mtu: Option<u32>) -> Result<(), FibError> {
        self.request(|b, seq| b.link_up(ifindex, mtu, seq))
    }

    /// Every interface.
    pub fn links(&mut self) -> Result<Vec<LinkInfo>, FibError> {
        self.sock.dump(codec::RTM_GETLINK, LINK_HEADER_LEN, |m| {
            if m.ty == codec::RTM_NEWLINK {
                codec::decode_link(m.payload).map(Some)
            } else {
                Ok(None)
            }
        })
    }

    /// Every IPv4 and IPv6 address.
    pub fn addresses(&mut self) -> Result<Vec<AddressInfo>, FibError> {
        self.sock.dump(codec::RTM_GETADDR, ADDR_HEADER_LEN, |m| {
            if m.ty == codec::RTM_NEWADDR {
                codec::decode_address(m.payload)
            } else {
                Ok(None)
            }
        })
    }

    /// Adds the policy rule `rule` ([`FibError::Exists`] if the same rule is there).
    pub fn add_rule(&mut self, rule: &KernelRule) -> Result<(), FibError> {
        let seq = self.sock.take_seqs(1);
        let mut b = MsgBuilder::new();
        b.new_rule(rule, seq);
        self.sock
            .transact(&b, seq, 1)
            .pop()
            .unwrap_or(Err(FibError::Timeout))
    }

    /// Deletes the policy rule `rule`; a rule that is already gone is not an error.
    pub fn delete_rule(&mut self, rule: &KernelRule) -> Result<(), FibError> {
        let seq = self.sock.take_seqs(1);
        let mut b = MsgBuilder::new();
        b.del_rule(rule, seq);
        self.sock
            .transact(&b, seq, 1)
            .pop()
            .unwrap_or(Err(FibError::Timeout))
            .or_else(gone_is_ok)
    }

    /// Every IPv4 and IPv6 "look up a table" policy rule.
    pub fn rules(&mut self) -> Result<Vec<KernelRule>, FibError> {
        self.sock.dump(codec::RTM_GETRULE, RULE_HEADER_LEN, |m| {
            if m.ty == codec::RTM_NEWRULE {
                codec::decode_rule(m.payload)
            } else {
                Ok(None)
            }
        })
    }

    /// Whether `route` is sent with `RTNH_F_ONLINK`.
    fn onlink_for(&mut self, route: &KernelRoute) -> bool {
        if route.onlink {
            return true;
        }
        if !self.config.auto_onlink || route.kind != RouteKind::Unicast {
            return false;
        }
        let (Some(IpAddr::V4(gw)), Some(oif)) = (route.gateway, route.oif) else {
            return false;
        };
        if !route.is_ipv4() {
            return false;
        }
        if self.v4_subnets.is_none() {
            match self.addresses() {
                Ok(addrs) => {
                    let mut map: HashMap<u32, Vec<Prefix>> = HashMap::new();
                    for a in addrs.iter().filter(|a| a.address.is_ipv4()) {
                        map.entry(a.index).or_default().push(a.prefix());
                    }
                    self.v4_subnets = Some(map);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read addresses for the onlink decision");
                    return false;
                }
            }
        }
        let subnets = self
            .v4_subnets
            .as_ref()
            .and_then(|m| m.get(&oif))
            .map_or(&[][..], |v| v.as_slice());
        crate::ipv4_gateway_needs_onlink(gw, subnets)
    }

    /// Runs `changes` (at most one `Change` with distinct keys, and only as the last entry)
    /// as one pipelined batch, writing into `results`.
    fn run_chunk(
        &mut self,
        changes: &[(usize, &FibChange)],
        results: &mut [Option<Result<(), FibError>>],
    ) {
        let mut msgs = MsgBuilder::with_capacity(changes.len().saturating_mul(ROUTE_MSG_BYTES));
        let mut steps = Vec::with_capacity(changes.len());
        let first = self
            .sock
            .take_seqs(u32::try_from(changes.len()).unwrap_or(u32::MAX));
        let mut seq = first;
        for &(index, change) in changes {
            let (route, flags) = match change {
                FibChange::Add(r) => (r, NLM_F_CREATE | NLM_F_EXCL),
                FibChange::Replace(r) | FibChange::Change { new: r, .. } => {
                    (r, NLM_F_CREATE | NLM_F_REPLACE)
                }
                FibChange::Delete(r) => {
                    msgs.del_route(r, seq);
                    seq = seq.wrapping_add(1);
                    steps.push(Step::Delete { index });
                    continue;
                }
            };
            if let Err(e) = route.validate() {
                set(results, index, Err(e));
                continue;
            }
            let onlink = self.onlink_for(route);
            msgs.new_route(route, flags, seq, onlink);
            seq = seq.wrapping_add(1);
            steps.push(Step::Install { index, onlink });
        }
        let acks = self.sock.transact(&msgs, first, steps.len());
        for (step, ack) in steps.into_iter().zip(acks) {
            match step {
                Step::Install { index, onlink } => {
                    let ack = match (ack, changes.iter().find(|(i, _)| *i == index)) {
                        (Err(FibError::NetUnreachable), Some((_, change))) if !onlink => {
                            self.retry_onlink(change)
                        }
                        (ack, _) => ack,
                    };
                    set(results, index, ack);
                }
                Step::Delete { index } => {
                    set(results, index, ack.or_else(gone_is_ok));
                }
            }
        }
        // Make before break: remove the old route of a Change once the new one is in.
        for &(index, change) in changes {
            if let FibChange::Change { old, new } = change
                && old.key() != new.key()
                && matches!(results.get(index), Some(Some(Ok(()))))
            {
                let seq = self.sock.take_seqs(1);
                let mut del = MsgBuilder::new();
                del.del_route(old, seq);
                let res = self
                    .sock
                    .transact(&del, seq, 1)
                    .pop()
                    .unwrap_or(Err(FibError::Timeout))
                    .or_else(gone_is_ok);
                set(results, index, res);
            }
        }
    }

    /// The kernel said the gateway is not on the link: our subnet cache may be stale. Re-read
    /// it and, if the gateway is now off every subnet, try once more with `RTNH_F_ONLINK`.
    fn retry_onlink(&mut self, change: &FibChange) -> Result<(), FibError> {
        let (route, flags) = match change {
            FibChange::Add(r) => (r, NLM_F_CREATE | NLM_F_EXCL),
            FibChange::Replace(r) | FibChange::Change { new: r, .. } => {
                (r, NLM_F_CREATE | NLM_F_REPLACE)
            }
            FibChange::Delete(_) => return Err(FibError::NetUnreachable),
        };
        self.invalidate_addresses();
        if !self.onlink_for(route) {
            return Err(FibError::NetUnreachable);
        }
        let seq = self.sock.take_seqs(1);
        let mut msgs = MsgBuilder::new();
        msgs.new_route(route, flags, seq, true);
        self.sock
            .transact(&msgs, seq, 1)
            .pop()
            .unwrap_or(Err(FibError::Timeout))
    }

    fn one(&mut self, change: FibChange) -> Result<(), FibError> {
        self.apply(std::slice::from_ref(&change))
            .pop()
            .unwrap_or(Err(FibError::Timeout))
    }
}

fn gone_is_ok(e: FibError) -> Result<(), FibError> {
    match e {
        FibError::NotFound => Ok(()),
        other => Err(other),
    }
}

fn set(results: &mut [Option<Result<(), FibError>>], index: usize, r: Result<(), FibError>) {
    if let Some(slot) = results.get_mut(index) {
        *slot = Some(r);
    }
}

impl Fib for NetlinkFib {
    fn add(&mut self, route: &KernelRoute) -> Result<(), FibError> {
        self.one(FibChange::Add(route.clone()))
    }

    fn replace(&mut self, route: &KernelRoute) -> Result<(), FibError> {
        self.one(FibChange::Replace(route.clone()))
    }

    fn delete(&mut self, route: &KernelRoute) -> Result<(), FibError> {
        self.one(FibChange::Delete(route.clone()))
    }

    fn change(&mut self, old: &KernelRoute, new: &KernelRoute) -> Result<(), FibError> {
        self.one(FibChange::Change {
            old: old.clone(),
            new: new.clone(),
        })
    }

    fn apply(&mut self, changes: &[FibChange]) -> Vec<Result<(), FibError>> {
        let mut results: Vec<Option<Result<(), FibError>>> =
            (0..changes.len()).map(|_| None).collect();
        let batch = self.config.batch.max(1);
        let mut chunk: Vec<(usize, &FibChange)> = Vec::with_capacity(batch.min(changes.len()));
        for (index, change) in changes.iter().enumerate() {
            chunk.push((index, change));
            // A Change whose old route must go after the new one is in ends its chunk, so that
            // the order of the batch is kept.
            let ends_chunk =
                matches!(change, FibChange::Change { old, new } if old.key() != new.key());
            if ends_chunk || chunk.len() >= batch {
                self.run_chunk(&chunk, &mut results);
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            self.run_chunk(&chunk, &mut results);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(FibError::Timeout)))
            .collect()
    }

    fn dump(&mut self, filter: &DumpFilter) -> Result<Vec<KernelRoute>, FibError> {
        let filter = *filter;
        self.sock
            .dump(codec::RTM_GETROUTE, ROUTE_HEADER_LEN, move |m| {
                if m.ty != codec::RTM_NEWROUTE {
                    return Ok(None);
                }
                Ok(codec::decode_route(m.payload)?.filter(|r| filter.matches(r)))
            })
    }

    fn add_rule(&mut self, rule: &KernelRule) -> Result<(), FibError> {
        NetlinkFib::add_rule(self, rule)
    }

    fn delete_rule(&mut self, rule: &KernelRule) -> Result<(), FibError> {
        NetlinkFib::delete_rule(self, rule)
    }

    fn rules(&mut self) -> Result<Vec<KernelRule>, FibError> {
        NetlinkFib::rules(self)
    }
}

impl AsFd for NetlinkFib {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
