//! Link, address and route notifications (rtnetlink multicast groups), as typed events.

use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use babel_wire::Prefix;
use nix::errno::Errno;

use crate::codec::{self, IFF_LOOPBACK, IFF_LOWER_UP, IFF_RUNNING, IFF_UP};
use crate::socket::NlSocket;
use crate::{FibError, KernelRoute};

/// `IFA_F_TENTATIVE`: IPv6 duplicate address detection still running.
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// `IFA_F_DADFAILED`: IPv6 duplicate address detection failed.
pub const IFA_F_DADFAILED: u32 = 0x08;
/// `IFA_F_DEPRECATED`: preferred lifetime over.
pub const IFA_F_DEPRECATED: u32 = 0x20;

/// `IF_OPER_UP` in [`LinkInfo::operstate`].
pub const IF_OPER_UP: u8 = 6;

/// An interface as the kernel describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Name (`IFLA_IFNAME`).
    pub name: String,
    /// `ifi_flags` (`IFF_UP`, `IFF_RUNNING`, `IFF_LOWER_UP`...).
    pub flags: u32,
    /// MTU.
    pub mtu: Option<u32>,
    /// RFC 2863 operational state (`IF_OPER_UP` = 6).
    pub operstate: Option<u8>,
    /// Carrier (`IFLA_CARRIER`).
    pub carrier: Option<bool>,
    /// Hardware address (empty for devices without one); babeld derives its router-id from
    /// the first interface's MAC.
    pub hw_addr: Vec<u8>,
}

impl LinkInfo {
    /// Administratively up (`IFF_UP`).
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    /// Up and with carrier (`IFF_RUNNING`): what babeld's `link-detect` requires.
    pub fn is_running(&self) -> bool {
        self.flags & IFF_RUNNING != 0
    }

    /// Carrier, from `IFLA_CARRIER` or else `IFF_LOWER_UP`.
    pub fn has_carrier(&self) -> bool {
        self.carrier.unwrap_or(self.flags & IFF_LOWER_UP != 0)
    }

    /// The loopback interface.
    pub fn is_loopback(&self) -> bool {
        self.flags & IFF_LOOPBACK != 0
    }
}

/// An address on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressInfo {
    /// Interface index.
    pub index: u32,
    /// The address itself (`IFA_LOCAL`, else `IFA_ADDRESS`).
    pub address: IpAddr,
    /// Prefix length of the subnet.
    pub prefix_len: u8,
    /// `IFA_F_*` flags.
    pub flags: u32,
    /// Scope (0 global, 253 link, 254 host).
    pub scope: u8,
    /// IPv4 label (`eth0:1`).
    pub label: Option<String>,
}

impl AddressInfo {
    /// The connected subnet (host bits cleared).
    pub fn prefix(&self) -> Prefix {
        Prefix::new(self.address, self.prefix_len).unwrap_or_else(|_| Prefix::host(self.address))
    }

    /// The address as a host prefix (/32 or /128).
    pub fn host_prefix(&self) -> Prefix {
        Prefix::host(self.address)
    }

    /// IPv6 DAD has not finished: the address cannot be used as a source yet.
    pub fn is_tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }
}

/// One change the kernel announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A link appeared or changed (flags, carrier, MTU, name).
    LinkChanged(LinkInfo),
    /// A link went away.
    LinkRemoved(LinkInfo),
    /// An address was added (or its flags changed, e.g. DAD finished).
    AddressAdded(AddressInfo),
    /// An address was removed.
    AddressRemoved(AddressInfo),
    /// A route was added or replaced (any protocol).
    RouteAdded(KernelRoute),
    /// A route was removed.
    RouteRemoved(KernelRoute),
    /// Notifications were lost (`ENOBUFS`): re-read links, addresses and routes.
    Overrun,
}

/// Which notifications to subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Groups {
    /// `RTNLGRP_LINK`.
    pub link: bool,
    /// `RTNLGRP_IPV4_IFADDR`.
    pub ipv4_addr: bool,
    /// `RTNLGRP_IPV6_IFADDR`.
    pub ipv6_addr: bool,
    /// `RTNLGRP_IPV4_ROUTE`.
    pub ipv4_route: bool,
    /// `RTNLGRP_IPV6_ROUTE`.
    pub ipv6_route: bool,
}

impl Groups {
    /// Links and addresses of both families.
    pub fn links_and_addresses() -> Groups {
        Groups {
            link: true,
            ipv4_addr: true,
            ipv6_addr: true,
            ipv4_route: false,
            ipv6_route: false,
        }
    }

    /// Everything: links, addresses and routes.
    pub fn all() -> Groups {
        Groups {
            ipv4_route: true,
            ipv6_route: true,
            ..Groups::links_and_addresses()
        }
    }

    /// The legacy `RTMGRP_*` bitmask for `bind`.
    pub fn mask(&self) -> u32 {
        let mut m = 0;
        if self.link {
            m |= 0x1; // RTMGRP_LINK
        }
        if self.ipv4_addr {
            m |= 0x10; // RTMGRP_IPV4_IFADDR
        }
        if self.ipv4_route {
            m |= 0x40; // RTMGRP_IPV4_ROUTE
        }
        if self.ipv6_addr {
            m |= 0x100; // RTMGRP_IPV6_IFADDR
        }
        if self.ipv6_route {
            m |= 0x400; // RTMGRP_IPV6_ROUTE
        }
        m
    }
}

/// Default kernel receive buffer of a watcher: a full-table route burst must not overflow it.
pub const WATCH_RCVBUF: usize = 8 * 1024 * 1024;

/// A socket subscribed to rtnetlink notifications.
///
/// Subscribe first, then take the one-shot dumps ([`crate::NetlinkFib::links`],
/// [`crate::NetlinkFib::addresses`], [`crate::Fib::dump`]) on another socket, then apply the
/// events: nothing is missed, and events that repeat the dump are harmless. The socket can be
/// polled for readability (`AsFd`); [`Watcher::try_recv`] then never blocks.
#[derive(Debug)]
pub struct Watcher {
    sock: NlSocket,
}

impl Watcher {
    /// Subscribes to `groups` in the calling thread's network namespace.
    pub fn new(groups: Groups) -> Result<Watcher, FibError> {
        Watcher::with_rcvbuf(groups, WATCH_RCVBUF)
    }

    /// Like [`Watcher::new`] with a chosen kernel receive buffer size.
    pub fn with_rcvbuf(groups: Groups, rcvbuf: usize) -> Result<Watcher, FibError> {
        Ok(Watcher {
            sock: NlSocket::open(groups.mask(), rcvbuf, None)?,
        })
    }

    /// Makes [`Watcher::recv`] give up after `timeout` (returning no events); `None` blocks
    /// for ever.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), FibError> {
        self.sock.set_timeout(timeout)
    }

    /// Waits for the next notification datagram and returns its events (possibly none: a
    /// datagram may hold messages we do not report, or the timeout passed).
    pub fn recv(&mut self) -> Result<Vec<NetEvent>, FibError> {
        self.read(false)
    }

    /// Returns the events of one waiting datagram, or none if nothing is waiting.
    pub fn try_recv(&mut self) -> Result<Vec<NetEvent>, FibError> {
        self.read(true)
    }

    /// The events of one waiting datagram (possibly none), or `None` if no datagram is waiting:
    /// for a caller that waits for the socket's readability itself and must know when it has
    /// read everything (an edge-triggered poller).
    pub fn try_recv_waiting(&mut self) -> Result<Option<Vec<NetEvent>>, FibError> {
        self.read_waiting(true)
    }

    /// A blocking iterator over events; it ends only on a socket error (after yielding it).
    pub fn events(&mut self) -> Events<'_> {
        Events {
            watcher: self,
            pending: Vec::new(),
            done: false,
        }
    }

    fn read(&mut self, dontwait: bool) -> Result<Vec<NetEvent>, FibError> {
        Ok(self.read_waiting(dontwait)?.unwrap_or_default())
    }

    fn read_waiting(&mut self, dontwait: bool) -> Result<Option<Vec<NetEvent>>, FibError> {
        let len = match self.sock.recv(dontwait) {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(None),
            Err(FibError::Socket(Errno::ENOBUFS)) | Err(FibError::Truncated(_)) => {
                tracing::warn!("netlink notifications lost; a resync is needed");
                return Ok(Some(vec![NetEvent::Overrun]));
            }
            Err(e) => return Err(e),
        };
        let mut events = Vec::new();
        for msg in codec::messages(self.sock.buffer(len)) {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "netlink notification skipped");
                    break;
                }
            };
            match codec::decode_event(&msg) {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "netlink notification skipped"),
            }
        }
        Ok(Some(events))
    }
}

impl AsFd for Watcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// Iterator returned by [`Watcher::events`].
#[derive(Debug)]
pub struct Events<'a> {
    watcher: &'a mut Watcher,
    pending: Vec<NetEvent>,
    done: bool,
}

impl Iterator for Events<'_> {
    type Item = Result<NetEvent, FibError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if !self.pending.is_empty() {
                return Some(Ok(self.pending.remove(0)));
            }
            match self.watcher.recv() {
                Ok(evs) => self.pending = evs,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_mask() {
        assert_eq!(Groups::all().mask(), 0x1 | 0x10 | 0x40 | 0x100 | 0x400);
        assert_eq!(Groups::links_and_addresses().mask(), 0x111);
    }
}
