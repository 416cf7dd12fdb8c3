//! Which configured interfaces run, and when they are reconfigured: babeld's
//! `check_interfaces`, sans-IO, from the kernel's links and addresses to [`Action`]s.
//!
//! An interface runs while it exists, is up (and, with `link-detect`, has carrier:
//! `IFF_RUNNING`) and has a usable IPv6 link-local address (RFC 8966 §3.2 and §4.1: Babel
//! speaks from link-local addresses; a tentative one cannot be used before DAD ends). A running
//! interface whose link-local address, MTU or IPv4 address changes is reconfigured in place.

use std::net::IpAddr;

use kernel_fib::{AddressInfo, LinkInfo};

use crate::actions::Action;
use crate::state::Iface;

/// `IFF_POINTOPOINT` (linux/if.h): TUN devices, WireGuard, GRE and other point-to-point links.
pub const IFF_POINTOPOINT: u32 = 0x10;

/// MTU assumed when the kernel reports none.
pub const DEFAULT_MTU: usize = 1500;

/// Updates each interface in `ifaces` from `links` and `addrs` and returns what to do.
/// `link_detect` is babeld's option of that name. Interfaces are marked running here; the loop
/// marks one not running again if joining the multicast group fails (see
/// [`Action::StartInterface`]).
pub fn sync_interfaces(
    ifaces: &mut [Iface],
    links: &[LinkInfo],
    addrs: &[AddressInfo],
    link_detect: bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for iface in ifaces.iter_mut() {
        let link = links.iter().find(|l| l.name == iface.name);
        let ll = link.and_then(|l| {
            addrs.iter().find_map(|a| match a.address {
                IpAddr::V6(v6)
                    if a.index == l.index
                        && babel_wire::is_link_local(&a.address)
                        && !a.is_tentative() =>
                {
                    Some(v6)
                }
                _ => None,
            })
        });
        let ipv4 = link.and_then(|l| {
            addrs.iter().find_map(|a| match a.address {
                IpAddr::V4(v4) if a.index == l.index => Some(v4),
                _ => None,
            })
        });
        let up = link.is_some_and(|l| l.is_up() && (!link_detect || l.is_running()));
        let mut next = Iface {
            ifindex: link.map(|l| l.index),
            link_local: ll,
            ipv4,
            mtu: link.and_then(|l| l.mtu).map_or(DEFAULT_MTU, |m| m as usize),
            point_to_point: link.is_some_and(|l| l.flags & IFF_POINTOPOINT != 0),
            link_up: up,
            ..iface.clone()
        };
        let should_run = up && ll.is_some();
        match (iface.running, should_run, next.ifindex) {
            (false, true, Some(ifindex)) => {
                next.running = true;
                actions.push(Action::StartInterface { ifindex });
            }
            (true, false, _) => {
                if let Some(ifindex) = iface.ifindex {
                    actions.push(Action::StopInterface { ifindex });
                }
                next.running = false;
            }
            (true, true, Some(ifindex))
                if iface.link_local != next.link_local
                    || iface.mtu != next.mtu
                    || iface.ipv4 != next.ipv4 =>
            {
                actions.push(Action::ReconfigureInterface { ifindex });
            }
            _ => {}
        }
        *iface = next;
    }
    actions
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use kernel_fib::IFA_F_TENTATIVE;

    use super::*;

    const IFF_UP: u32 = 0x1;
    const IFF_RUNNING: u32 = 0x40;

    fn iface(name: &str) -> Iface {
        Iface {
            name: name.into(),
            ifindex: None,
            link_local: None,
            ipv4: None,
            mtu: DEFAULT_MTU,
            wireless: false,
            point_to_point: false,
            link_up: false,
            running: false,
        }
    }

    fn link(index: u32, name: &str, flags: u32, mtu: u32) -> LinkInfo {
        LinkInfo {
            index,
            name: name.into(),
            flags,
            mtu: Some(mtu),
            operstate: None,
            carrier: None,
            hw_addr: Vec::new(),
        }
    }

    fn addr(index: u32, a: &str, flags: u32) -> AddressInfo {
        let address: IpAddr = a.parse().unwrap();
        AddressInfo {
            index,
            address,
            prefix_len: if address.is_ipv4() { 24 } else { 64 },
            flags,
            scope: 0,
            label: None,
        }
    }

    const LL: &str = "fe80::1";

    #[test]
    fn an_interface_runs_once_up_with_a_link_local_address() {
        let mut ifs = vec![iface("eth0")];
        // Not there yet: nothing.
        assert!(sync_interfaces(&mut ifs, &[], &[], false).is_empty());
        assert_eq!(ifs[0].ifindex, None);
        // There but down.
        let down = [link(3, "eth0", 0, 1500)];
        let lls = [addr(3, LL, 0)];
        assert!(sync_interfaces(&mut ifs, &down, &lls, false).is_empty());
        assert!(!ifs[0].running && ifs[0].ifindex == Some(3));
        // Up without a link-local address.
        let up = [link(3, "eth0", IFF_UP, 1500)];
        assert!(sync_interfaces(&mut ifs, &up, &[addr(3, "2001:db8::1", 0)], false).is_empty());
        assert!(ifs[0].link_up && !ifs[0].running);
        // Up with one: started, once.
        assert_eq!(
            sync_interfaces(&mut ifs, &up, &lls, false),
            vec![Action::StartInterface { ifindex: 3 }]
        );
        assert!(ifs[0].running);
        assert_eq!(ifs[0].link_local, Some(LL.parse().unwrap()));
        assert!(sync_interfaces(&mut ifs, &up, &lls, false).is_empty());
    }

    #[test]
    fn a_tentative_link_local_address_is_not_used() {
        let mut ifs = vec![iface("eth0")];
        let up = [link(3, "eth0", IFF_UP, 1500)];
        let tentative = [addr(3, LL, IFA_F_TENTATIVE)];
        assert!(sync_interfaces(&mut ifs, &up, &tentative, false).is_empty());
        assert_eq!(ifs[0].link_local, None);
        // DAD done.
        let ready = [addr(3, LL, 0)];
        assert_eq!(
            sync_interfaces(&mut ifs, &up, &ready, false),
            vec![Action::StartInterface { ifindex: 3 }]
        );
    }

    #[test]
    fn link_detect_needs_carrier() {
        let up_no_carrier = [link(3, "eth0", IFF_UP, 1500)];
        let lls = [addr(3, LL, 0)];
        let mut ifs = vec![iface("eth0")];
        assert!(sync_interfaces(&mut ifs, &up_no_carrier, &lls, true).is_empty());
        assert!(!ifs[0].link_up);
        // Without link-detect, administratively up is enough.
        assert_eq!(
            sync_interfaces(&mut ifs, &up_no_carrier, &lls, false),
            vec![Action::StartInterface { ifindex: 3 }]
        );
        // With it, losing carrier stops the interface.
        assert_eq!(
            sync_interfaces(&mut ifs, &up_no_carrier, &lls, true),
            vec![Action::StopInterface { ifindex: 3 }]
        );
        let carrier = [link(3, "eth0", IFF_UP | IFF_RUNNING, 1500)];
        assert_eq!(
            sync_interfaces(&mut ifs, &carrier, &lls, true),
            vec![Action::StartInterface { ifindex: 3 }]
        );
    }

    #[test]
    fn down_removed_or_without_address_stops() {
        let up = [link(3, "eth0", IFF_UP, 1500)];
        let lls = [addr(3, LL, 0)];
        for (links, addrs) in [
            (&[link(3, "eth0", 0, 1500)][..], &lls[..]),
            (&[][..], &[][..]),
            (&up[..], &[][..]),
        ] {
            let mut ifs = vec![iface("eth0")];
            sync_interfaces(&mut ifs, &up, &lls, false);
            assert_eq!(
                sync_interfaces(&mut ifs, links, addrs, false),
                vec![Action::StopInterface { ifindex: 3 }]
            );
            assert!(!ifs[0].running);
            assert!(sync_interfaces(&mut ifs, links, addrs, false).is_empty());
        }
    }

    #[test]
    fn a_running_interface_is_reconfigured_when_its_addresses_or_mtu_change() {
        let up = [link(3, "eth0", IFF_UP, 1500)];
        let lls = vec![addr(3, LL, 0)];
        let mut ifs = vec![iface("eth0")];
        sync_interfaces(&mut ifs, &up, &lls, false);
        let reconfigured = vec![Action::ReconfigureInterface { ifindex: 3 }];
        // New MTU.
        let bigger = [link(3, "eth0", IFF_UP, 9000)];
        assert_eq!(
            sync_interfaces(&mut ifs, &bigger, &lls, false),
            reconfigured
        );
        assert_eq!(ifs[0].mtu, 9000);
        // An IPv4 address appears (babeld's `ipv4` field, IPv4 next hops).
        let mut with_v4 = lls.clone();
        with_v4.push(addr(3, "192.0.2.1", 0));
        assert_eq!(
            sync_interfaces(&mut ifs, &bigger, &with_v4, false),
            reconfigured
        );
        assert_eq!(ifs[0].ipv4, Some(Ipv4Addr::new(192, 0, 2, 1)));
        // Another link-local address.
        let other = [addr(3, "fe80::2", 0), addr(3, "192.0.2.1", 0)];
        assert_eq!(
            sync_interfaces(&mut ifs, &bigger, &other, false),
            reconfigured
        );
        assert_eq!(
            ifs[0].link_local,
            Some("fe80::2".parse::<Ipv6Addr>().unwrap())
        );
        // A global address is no reason.
        let mut global = other.to_vec();
        global.push(addr(3, "2001:db8::1", 0));
        assert!(sync_interfaces(&mut ifs, &bigger, &global, false).is_empty());
    }

    #[test]
    fn addresses_of_other_interfaces_and_unconfigured_links_are_ignored() {
        let links = [
            link(2, "eth1", IFF_UP, 1500),
            link(3, "eth0", IFF_UP | IFF_POINTOPOINT, 1400),
        ];
        let addrs = [addr(2, LL, 0), addr(2, "192.0.2.1", 0)];
        let mut ifs = vec![iface("eth0")];
        assert!(sync_interfaces(&mut ifs, &links, &addrs, false).is_empty());
        assert_eq!(ifs[0].link_local, None);
        assert_eq!(ifs[0].ipv4, None);
        assert_eq!(ifs[0].mtu, 1400);
        assert!(ifs[0].point_to_point);
        // Unknown MTU: 1500.
        let mut no_mtu = link(3, "eth0", IFF_UP, 0);
        no_mtu.mtu = None;
        sync_interfaces(&mut ifs, &[no_mtu], &[], false);
        assert_eq!(ifs[0].mtu, DEFAULT_MTU);
    }

    #[test]
    fn each_interface_is_decided_on_its_own() {
        let links = [link(2, "eth1", IFF_UP, 1500), link(3, "eth0", IFF_UP, 1500)];
        let addrs = [addr(2, "fe80::2", 0), addr(3, LL, 0)];
        let mut ifs = vec![iface("eth0"), iface("eth1"), iface("wg0")];
        assert_eq!(
            sync_interfaces(&mut ifs, &links, &addrs, false),
            vec![
                Action::StartInterface { ifindex: 3 },
                Action::StartInterface { ifindex: 2 }
            ]
        );
        assert!(!ifs[2].running);
    }
}
