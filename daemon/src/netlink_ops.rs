//! What the daemon's other parts ask of netlink, as values: route verification's probe rules
//! and tables (spec/verify.md §2.3) and the exit tunnel's link, addresses and routes. Each part
//! decides here what it wants (unit-tested against [`kernel_fib::MemoryFib`]); the binary's
//! netlink-owning thread carries the requests out in order with [`run`], so one thread holds
//! the netlink socket for requests and the async main loop never waits for one (nor for `ip`).

use std::fmt;
use std::net::IpAddr;

use babel_wire::Prefix;
use kernel_fib::{DumpFilter, Fib, FibChange, FibError, KernelRoute, KernelRule};

use crate::exit::PathChanges;
use crate::verification::{ProbeRoute, RULE_PRIORITY};

/// One netlink request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetlinkOp {
    /// Add a policy rule; the same rule already there is fine.
    AddRule(KernelRule),
    /// Delete a policy rule; one already gone is fine.
    DeleteRule(KernelRule),
    /// Add or atomically replace a route.
    ReplaceRoute(KernelRoute),
    /// Delete a route; one already gone is fine.
    DeleteRoute(KernelRoute),
    /// Delete every route of a table (`ip route flush table T`).
    FlushTable(u32),
    /// Set a link up, with this MTU if given.
    LinkUp {
        /// The link.
        ifindex: u32,
        /// Its MTU.
        mtu: Option<u32>,
    },
    /// Add (or refresh) an address.
    AddAddress {
        /// The link.
        ifindex: u32,
        /// The address.
        address: IpAddr,
        /// Its prefix length.
        len: u8,
    },
    /// Remove an address; one already gone is fine.
    DeleteAddress {
        /// The link.
        ifindex: u32,
        /// The address.
        address: IpAddr,
        /// Its prefix length.
        len: u8,
    },
}

impl fmt::Display for NetlinkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetlinkOp::AddRule(r) => write!(f, "add rule {r}"),
            NetlinkOp::DeleteRule(r) => write!(f, "delete rule {r}"),
            NetlinkOp::ReplaceRoute(r) => write!(f, "route {} table {}", r.dst, r.table),
            NetlinkOp::DeleteRoute(r) => write!(f, "delete route {} table {}", r.dst, r.table),
            NetlinkOp::FlushTable(t) => write!(f, "flush table {t}"),
            NetlinkOp::LinkUp { ifindex, mtu } => write!(f, "link {ifindex} up, mtu {mtu:?}"),
            NetlinkOp::AddAddress {
                ifindex,
                address,
                len,
            } => write!(f, "address {address}/{len} on {ifindex}"),
            NetlinkOp::DeleteAddress {
                ifindex,
                address,
                len,
            } => write!(f, "remove address {address}/{len} from {ifindex}"),
        }
    }
}

/// What [`run`] needs besides a [`Fib`]: links and addresses.
pub trait Links {
    /// Sets a link up, with `mtu` if given.
    fn set_link_up(&mut self, ifindex: u32, mtu: Option<u32>) -> Result<(), FibError>;
    /// Adds (or refreshes) an address.
    fn add_address(&mut self, ifindex: u32, address: IpAddr, len: u8) -> Result<(), FibError>;
    /// Removes an address; one already gone is not an error.
    fn delete_address(&mut self, ifindex: u32, address: IpAddr, len: u8) -> Result<(), FibError>;
}

impl Links for kernel_fib::NetlinkFib {
    fn set_link_up(&mut self, ifindex: u32, mtu: Option<u32>) -> Result<(), FibError> {
        kernel_fib::NetlinkFib::set_link_up(self, ifindex, mtu)
    }
    fn add_address(&mut self, ifindex: u32, address: IpAddr, len: u8) -> Result<(), FibError> {
        kernel_fib::NetlinkFib::add_address(self, ifindex, address, len)
    }
    fn delete_address(&mut self, ifindex: u32, address: IpAddr, len: u8) -> Result<(), FibError> {
        kernel_fib::NetlinkFib::delete_address(self, ifindex, address, len)
    }
}

/// Carries out `ops` in order; a failure does not stop the rest. Returns the failures, each
/// with the request it answers.
pub fn run<F: Fib + Links>(fib: &mut F, ops: &[NetlinkOp]) -> Vec<(NetlinkOp, FibError)> {
    let mut failed = Vec::new();
    for op in ops {
        let result = match op {
            NetlinkOp::AddRule(r) => match fib.add_rule(r) {
                Err(FibError::Exists) => Ok(()),
                other => other,
            },
            NetlinkOp::DeleteRule(r) => fib.delete_rule(r),
            NetlinkOp::ReplaceRoute(r) => fib.replace(r),
            NetlinkOp::DeleteRoute(r) => fib.delete(r),
            NetlinkOp::FlushTable(t) => fib.dump(&DumpFilter::all().in_table(*t)).and_then(|rs| {
                let dels: Vec<FibChange> = rs.into_iter().map(FibChange::Delete).collect();
                fib.apply(&dels)
                    .into_iter()
                    .find(Result::is_err)
                    .unwrap_or(Ok(()))
            }),
            NetlinkOp::LinkUp { ifindex, mtu } => fib.set_link_up(*ifindex, *mtu),
            NetlinkOp::AddAddress {
                ifindex,
                address,
                len,
            } => fib.add_address(*ifindex, *address, *len),
            NetlinkOp::DeleteAddress {
                ifindex,
                address,
                len,
            } => fib.delete_address(*ifindex, *address, *len),
        };
        if let Err(e) = result {
            failed.push((op.clone(), e));
        }
    }
    failed
}

/// The protocol of the probe routes: not ours (42), which the kernel check would take for a
/// Babel route it does not own and remove; the one `ip route` gives a route by default.
pub const PROBE_ROUTE_PROTOCOL: u8 = kernel_fib::RTPROT_BOOT;

/// The probe rule of a neighbour's `mark` and `table` (§2.3): `fwmark mark lookup table` at
/// [`RULE_PRIORITY`], tagged with our protocol.
pub fn probe_rule(mark: u32, table: u32) -> KernelRule {
    KernelRule::fwmark_v6(mark, table, RULE_PRIORITY, kernel_fib::RTPROT_BABEL)
}

/// What a [`ProbeRoute`] asks (§2.3): with `new_rule` (the first route of its neighbour's
/// table), the rule sending packets of its mark to its table, put there afresh (a rule a
/// previous run left goes first); then, in its table, the destination via the neighbour under
/// test, replacing what the table had for it.
pub fn probe(r: &ProbeRoute, new_rule: bool) -> Vec<NetlinkOp> {
    let mut ops = Vec::new();
    if new_rule {
        let rule = probe_rule(r.mark, r.table);
        ops.push(NetlinkOp::DeleteRule(rule));
        ops.push(NetlinkOp::AddRule(rule));
    }
    let route = KernelRoute::unicast(
        r.prefix,
        Some(r.neighbour.address),
        Some(r.neighbour.ifindex),
    )
    .with_table(r.table)
    .with_protocol(PROBE_ROUTE_PROTOCOL);
    ops.push(NetlinkOp::ReplaceRoute(route));
    ops
}

/// At exit: each probe rule of `marks_and_tables` goes, and so does its table's content.
pub fn probe_cleanup(marks_and_tables: impl IntoIterator<Item = (u32, u32)>) -> Vec<NetlinkOp> {
    marks_and_tables
        .into_iter()
        .flat_map(|(mark, table)| {
            [
                NetlinkOp::DeleteRule(probe_rule(mark, table)),
                NetlinkOp::FlushTable(table),
            ]
        })
        .collect()
}

/// The exit role's tunnel `ifindex` set up: up with `mtu`, the gateway address of the IPv4
/// pool, and with an IPv6 pool the exit's own address in it and the pool routed into the
/// tunnel (tagged `protocol`), which hands each packet to the peer holding it.
pub fn exit_tunnel(
    ifindex: u32,
    mtu: u32,
    gateway_v4: (IpAddr, u8),
    v6: Option<(IpAddr, Prefix)>,
    protocol: u8,
) -> Vec<NetlinkOp> {
    let mut ops = vec![
        NetlinkOp::LinkUp {
            ifindex,
            mtu: Some(mtu),
        },
        NetlinkOp::AddAddress {
            ifindex,
            address: gateway_v4.0,
            len: gateway_v4.1,
        },
    ];
    if let Some((address, pool)) = v6 {
        ops.push(NetlinkOp::AddAddress {
            ifindex,
            address,
            len: 128,
        });
        ops.push(NetlinkOp::ReplaceRoute(
            KernelRoute::unicast(pool, None, Some(ifindex)).with_protocol(protocol),
        ));
    }
    ops
}

/// A user node's tunnel path changes on `ifindex`: the old exit's addresses go first (or the
/// LAN's masquerade would keep using them), then the old routes; the new addresses come before
/// the routes that use them.
pub fn user_path(ifindex: u32, c: &PathChanges) -> Vec<NetlinkOp> {
    let addr = |&(address, len): &(IpAddr, u8), add: bool| {
        if add {
            NetlinkOp::AddAddress {
                ifindex,
                address,
                len,
            }
        } else {
            NetlinkOp::DeleteAddress {
                ifindex,
                address,
                len,
            }
        }
    };
    c.del_addresses
        .iter()
        .map(|a| addr(a, false))
        .chain(c.del_routes.iter().cloned().map(NetlinkOp::DeleteRoute))
        .chain(c.add_addresses.iter().map(|a| addr(a, true)))
        .chain(c.add_routes.iter().cloned().map(NetlinkOp::ReplaceRoute))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use kernel_fib::MemoryFib;
    use std::collections::{BTreeMap, BTreeSet};
    use verify::NeighbourId;

    /// A [`MemoryFib`] with links and addresses.
    #[derive(Default)]
    struct Kernel {
        fib: MemoryFib,
        up: BTreeMap<u32, Option<u32>>,
        addresses: BTreeSet<(u32, IpAddr, u8)>,
    }

    impl Fib for Kernel {
        fn add(&mut self, r: &KernelRoute) -> Result<(), FibError> {
            self.fib.add(r)
        }
        fn replace(&mut self, r: &KernelRoute) -> Result<(), FibError> {
            self.fib.replace(r)
        }
        fn delete(&mut self, r: &KernelRoute) -> Result<(), FibError> {
            self.fib.delete(r)
        }
        fn dump(&mut self, f: &DumpFilter) -> Result<Vec<KernelRoute>, FibError> {
            self.fib.dump(f)
        }
        fn add_rule(&mut self, r: &KernelRule) -> Result<(), FibError> {
            self.fib.add_rule(r)
        }
        fn delete_rule(&mut self, r: &KernelRule) -> Result<(), FibError> {
            self.fib.delete_rule(r)
        }
        fn rules(&mut self) -> Result<Vec<KernelRule>, FibError> {
            self.fib.rules()
        }
    }

    impl Links for Kernel {
        fn set_link_up(&mut self, ifindex: u32, mtu: Option<u32>) -> Result<(), FibError> {
            self.up.insert(ifindex, mtu);
            Ok(())
        }
        fn add_address(&mut self, ix: u32, a: IpAddr, len: u8) -> Result<(), FibError> {
            if !self.up.contains_key(&ix) {
                return Err(FibError::NoDevice);
            }
            self.addresses.insert((ix, a, len));
            Ok(())
        }
        fn delete_address(&mut self, ix: u32, a: IpAddr, len: u8) -> Result<(), FibError> {
            self.addresses.remove(&(ix, a, len));
            Ok(())
        }
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn probe_route(k: u32, prefix: &str, via: &str) -> ProbeRoute {
        ProbeRoute {
            mark: crate::verification::FWMARK_BASE + k,
            table: crate::verification::TABLE_BASE + k,
            prefix: p(prefix),
            neighbour: NeighbourId {
                ifindex: 3,
                address: ip(via),
            },
        }
    }

    #[test]
    fn a_probe_route_is_a_marked_rule_and_a_route_in_its_table() {
        let mut k = Kernel::default();
        let first = probe_route(1, "2001:db8:7::/48", "fe80::7");
        let ops = probe(&first, true);
        assert!(run(&mut k, &ops).is_empty());
        let rule = k.fib.rules().unwrap();
        assert_eq!(
            rule,
            vec![KernelRule::fwmark_v6(
                0x6261_0001,
                6201,
                RULE_PRIORITY,
                kernel_fib::RTPROT_BABEL
            )]
        );
        let in_table = k.fib.dump(&DumpFilter::all().in_table(6201)).unwrap();
        assert_eq!(in_table.len(), 1);
        let r = &in_table[0];
        assert_eq!(
            (r.dst, r.gateway, r.oif, r.protocol),
            (p("2001:db8:7::/48"), Some(ip("fe80::7")), Some(3), 3)
        );
        // Nothing of ours (42) in the table: the kernel check would remove it.
        assert_ne!(r.protocol, kernel_fib::RTPROT_BABEL);
        // The same neighbour's next destination: a route only; a new neighbour on the same
        // destination: a rule and a table of its own.
        let second = probe_route(1, "2001:db8:8::/48", "fe80::7");
        assert!(matches!(
            probe(&second, false)[..],
            [NetlinkOp::ReplaceRoute(_)]
        ));
        let other = probe_route(2, "2001:db8:7::/48", "fe80::9");
        for r in [probe(&second, false), probe(&other, true)] {
            assert!(run(&mut k, &r).is_empty());
        }
        assert_eq!(k.fib.rules().unwrap().len(), 2);
        assert_eq!(
            k.fib.dump(&DumpFilter::all().in_table(6201)).unwrap().len(),
            2
        );
        // The route under test changes neighbour address: replaced, not added beside.
        let moved = probe_route(1, "2001:db8:7::/48", "fe80::70");
        assert!(run(&mut k, &probe(&moved, false)).is_empty());
        let in_table = k.fib.dump(&DumpFilter::all().in_table(6201)).unwrap();
        assert_eq!(in_table.len(), 2);
        assert!(in_table.iter().any(|r| r.gateway == Some(ip("fe80::70"))));
        // A rule left by a previous run is replaced, never doubled.
        assert!(run(&mut k, &probe(&first, true)).is_empty());
        assert_eq!(k.fib.rules().unwrap().len(), 2);
        // At exit, the rules and the tables' routes go, and only those.
        let keep = KernelRoute::unicast(p("2001:db8:7::/48"), Some(ip("fe80::1")), Some(3));
        k.fib.add(&keep).unwrap();
        let ops = probe_cleanup([(0x6261_0001, 6201), (0x6261_0002, 6202)]);
        assert!(run(&mut k, &ops).is_empty());
        assert!(k.fib.rules().unwrap().is_empty());
        assert_eq!(
            k.fib.dump(&DumpFilter::all()).unwrap(),
            vec![keep.with_metric(kernel_fib::IPV6_DEFAULT_METRIC)]
        );
        // Cleaning up twice is harmless.
        assert!(run(&mut k, &ops).is_empty());
    }

    #[test]
    fn the_exit_tunnel_is_up_before_its_addresses_and_routes() {
        let mut k = Kernel::default();
        let pool = p("2001:db8:e::/48");
        let ops = exit_tunnel(
            9,
            1420,
            (ip("100.64.0.1"), 16),
            Some((ip("2001:db8:e:ffff::1"), pool)),
            44,
        );
        assert!(matches!(
            ops[0],
            NetlinkOp::LinkUp {
                ifindex: 9,
                mtu: Some(1420)
            }
        ));
        assert!(run(&mut k, &ops).is_empty());
        assert_eq!(
            k.addresses,
            BTreeSet::from([
                (9, ip("100.64.0.1"), 16),
                (9, ip("2001:db8:e:ffff::1"), 128)
            ])
        );
        let routes = k.fib.dump(&DumpFilter::protocol(44)).unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!((routes[0].dst, routes[0].oif), (pool, Some(9)));
        // IPv4 only: no IPv6 address, no pool route.
        assert_eq!(
            exit_tunnel(9, 1420, (ip("100.64.0.1"), 16), None, 44).len(),
            2
        );
        // Without the link up first, an address fails, and the failure says which request.
        let mut cold = Kernel::default();
        let failed = run(&mut cold, &ops[1..2]);
        assert_eq!(failed.len(), 1);
        assert!(failed[0].0.to_string().contains("100.64.0.1/16"));
    }

    #[test]
    fn a_user_path_change_removes_the_old_exit_before_adding_the_new() {
        let old_addr = (ip("100.64.0.7"), 16);
        let new_addr = (ip("100.65.0.9"), 16);
        let old_route = KernelRoute::unicast(p("0.0.0.0/0"), None, Some(5)).with_table(77);
        let new_route = old_route.clone().with_metric(10);
        let c = PathChanges {
            del_addresses: vec![old_addr],
            add_addresses: vec![new_addr],
            del_routes: vec![old_route.clone()],
            add_routes: vec![new_route.clone()],
        };
        let ops = user_path(5, &c);
        assert_eq!(
            ops,
            vec![
                NetlinkOp::DeleteAddress {
                    ifindex: 5,
                    address: old_addr.0,
                    len: 16
                },
                NetlinkOp::DeleteRoute(old_route.clone()),
                NetlinkOp::AddAddress {
                    ifindex: 5,
                    address: new_addr.0,
                    len: 16
                },
                NetlinkOp::ReplaceRoute(new_route.clone()),
            ]
        );
        let mut k = Kernel::default();
        k.up.insert(5, None);
        k.addresses.insert((5, old_addr.0, 16));
        k.fib.add(&old_route).unwrap();
        assert!(run(&mut k, &ops).is_empty());
        assert_eq!(k.addresses, BTreeSet::from([(5, new_addr.0, 16)]));
        assert_eq!(k.fib.dump(&DumpFilter::all()).unwrap(), vec![new_route]);
        assert!(user_path(5, &PathChanges::default()).is_empty());
    }
}
