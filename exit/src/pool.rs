//! The sticky address pool (`spec/exits.md`, "Address pool").
//!
//! The pool is a range of **slots**; a user's slot gives both its addresses:
//! * IPv4: in `network/prefix_len`, the network address is not used, `network + 1` is the
//!   exit's own address in the tunnel, users get `network + 2 + slot`, and the broadcast
//!   address is not used;
//! * IPv6 (if configured): the `slot`-th prefix of length `user_prefix_len` inside
//!   `prefix/prefix_len`.
//!
//! A key keeps its slot for as long as it keeps its lease: **always**, unless the pool is full,
//! a new key asks for a slot and this key's lease expired (`lease` after its newest
//! registration); then the slot whose lease expired longest ago is reclaimed. The lowest free
//! slot is handed out first. Leases whose slot no longer fits a reconfigured (smaller) pool are
//! dropped at start; their keys get a new slot at their next registration.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::store::Lease;

/// The IPv4 network users' tunnel addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Pool {
    /// The network address.
    pub network: Ipv4Addr,
    /// Its prefix length (at most 30: a /30 holds one user).
    pub prefix_len: u8,
}

impl Ipv4Pool {
    /// Number of user addresses: all but the network, the exit's and the broadcast address.
    pub fn capacity(&self) -> u32 {
        if self.prefix_len > 30 {
            return 0;
        }
        let size = 1u64 << (32 - u32::from(self.prefix_len));
        u32::try_from(size - 3).unwrap_or(u32::MAX)
    }

    fn base(&self) -> u32 {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len.min(32)))
            .unwrap_or(0);
        u32::from(self.network) & mask
    }

    /// The exit's own address in the tunnel (`network + 1`).
    pub fn exit_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base().wrapping_add(1))
    }

    /// The address of a slot (`network + 2 + slot`), if the slot is in the pool.
    pub fn address(&self, slot: u32) -> Option<Ipv4Addr> {
        (slot < self.capacity())
            .then(|| Ipv4Addr::from(self.base().wrapping_add(2).wrapping_add(slot)))
    }
}

/// The IPv6 prefix users' prefixes are cut from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Pool {
    /// The exit's prefix.
    pub prefix: Ipv6Addr,
    /// Its length.
    pub prefix_len: u8,
    /// The length of each user's prefix (e.g. 64, or 60/56 so the user can hand out /64s).
    pub user_prefix_len: u8,
}

impl Ipv6Pool {
    /// Number of user prefixes (capped at `u32::MAX`): every prefix of the user length but the
    /// last, which holds the exit's own address ([`Ipv6Pool::exit_address`]).
    pub fn capacity(&self) -> u32 {
        if self.user_prefix_len < self.prefix_len || self.user_prefix_len > 128 {
            return 0;
        }
        let bits = u32::from(self.user_prefix_len - self.prefix_len);
        if bits >= 32 {
            u32::MAX
        } else {
            (1u32 << bits) - 1
        }
    }

    /// The exit's own IPv6 address in the tunnel: the last address of the pool's prefix (in the
    /// last user prefix, which is never assigned).
    pub fn exit_address(&self) -> Ipv6Addr {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix_len.min(128)))
            .unwrap_or(0);
        Ipv6Addr::from(u128::from(self.prefix) | !mask)
    }

    /// The prefix of a slot, if the slot is in the pool.
    pub fn user_prefix(&self, slot: u32) -> Option<(Ipv6Addr, u8)> {
        if slot >= self.capacity() {
            return None;
        }
        let len = u32::from(self.user_prefix_len);
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix_len))
            .unwrap_or(0);
        let base = u128::from(self.prefix) & mask;
        let offset = u128::from(slot).checked_shl(128 - len).unwrap_or(0);
        Some((Ipv6Addr::from(base | offset), self.user_prefix_len))
    }
}

/// What the pool would do for a registration; applied with [`Pool::apply`] once committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The user.
    pub user: [u8; 32],
    /// Its lease after this registration.
    pub lease: Lease,
    /// The user whose expired lease is reclaimed, if any.
    pub evicted: Option<[u8; 32]>,
}

/// Leases by key and by slot; the two maps are kept in step only here.
#[derive(Debug, Clone)]
pub struct Pool {
    ipv4: Ipv4Pool,
    ipv6: Option<Ipv6Pool>,
    lease_ms: u64,
    by_user: HashMap<[u8; 32], Lease>,
    by_slot: BTreeMap<u32, [u8; 32]>,
}

impl Pool {
    /// A pool over `ipv4` (and `ipv6`), leases lasting `lease_ms` after the newest
    /// registration, restored from `leases` (those outside the pool are dropped).
    pub fn new(
        ipv4: Ipv4Pool,
        ipv6: Option<Ipv6Pool>,
        lease_ms: u64,
        leases: impl IntoIterator<Item = ([u8; 32], Lease)>,
    ) -> Pool {
        let mut p = Pool {
            ipv4,
            ipv6,
            lease_ms,
            by_user: HashMap::new(),
            by_slot: BTreeMap::new(),
        };
        for (user, lease) in leases {
            if lease.slot < p.capacity() && !p.by_slot.contains_key(&lease.slot) {
                p.by_slot.insert(lease.slot, user);
                p.by_user.insert(user, lease);
            }
        }
        p
    }

    /// Number of slots: the smaller of the IPv4 and IPv6 capacities.
    pub fn capacity(&self) -> u32 {
        let v4 = self.ipv4.capacity();
        self.ipv6.map_or(v4, |p| v4.min(p.capacity()))
    }

    /// The IPv4 pool.
    pub fn ipv4(&self) -> &Ipv4Pool {
        &self.ipv4
    }

    /// The IPv6 pool.
    pub fn ipv6(&self) -> Option<&Ipv6Pool> {
        self.ipv6.as_ref()
    }

    /// Leased slots.
    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    /// Whether nothing is leased.
    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// The lease of `user`.
    pub fn lease(&self, user: &[u8; 32]) -> Option<&Lease> {
        self.by_user.get(user)
    }

    /// All leases.
    pub fn leases(&self) -> impl Iterator<Item = (&[u8; 32], &Lease)> {
        self.by_user.iter()
    }

    /// A slot's addresses.
    pub fn addresses(&self, slot: u32) -> Option<(Ipv4Addr, Option<(Ipv6Addr, u8)>)> {
        let v4 = self.ipv4.address(slot)?;
        let v6 = match &self.ipv6 {
            Some(p) => Some(p.user_prefix(slot)?),
            None => None,
        };
        Some((v4, v6))
    }

    fn expired(&self, lease: &Lease, now_ms: u64) -> bool {
        lease.renewed_ms.saturating_add(self.lease_ms) < now_ms
    }

    /// The lease `user` gets for a registration at `now_ms` (its own slot, renewed; else the
    /// lowest free slot; else the slot whose lease expired longest ago), or `None` when the pool
    /// is exhausted. Changes nothing.
    pub fn plan(
        &self,
        user: &[u8; 32],
        tunnel_key: [u8; 32],
        mesh_address: Ipv6Addr,
        now_ms: u64,
    ) -> Option<Plan> {
        if let Some(l) = self.by_user.get(user) {
            return Some(Plan {
                user: *user,
                lease: Lease {
                    tunnel_key,
                    mesh_address,
                    renewed_ms: now_ms.max(l.renewed_ms),
                    ..*l
                },
                evicted: None,
            });
        }
        let fresh = |slot| Lease {
            slot,
            tunnel_key,
            mesh_address,
            since_ms: now_ms,
            renewed_ms: now_ms,
        };
        // Lowest free slot: the first gap in the ordered occupied slots.
        let mut free = 0u32;
        for &s in self.by_slot.keys() {
            if s != free {
                break;
            }
            free = free.saturating_add(1);
        }
        if free < self.capacity() {
            return Some(Plan {
                user: *user,
                lease: fresh(free),
                evicted: None,
            });
        }
        let (victim, lease) = self
            .by_user
            .iter()
            .filter(|(_, l)| self.expired(l, now_ms))
            .min_by_key(|(k, l)| (l.renewed_ms, **k))?;
        Some(Plan {
            user: *user,
            lease: fresh(lease.slot),
            evicted: Some(*victim),
        })
    }

    /// Applies a committed plan.
    pub fn apply(&mut self, plan: &Plan) {
        if let Some(v) = plan.evicted {
            if let Some(old) = self.by_user.remove(&v) {
                self.by_slot.remove(&old.slot);
            }
        }
        if let Some(old) = self.by_user.insert(plan.user, plan.lease) {
            self.by_slot.remove(&old.slot);
        }
        self.by_slot.insert(plan.lease.slot, plan.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(prefix_len: u8, lease_ms: u64) -> Pool {
        Pool::new(
            Ipv4Pool {
                network: Ipv4Addr::new(172, 16, 0, 0),
                prefix_len,
            },
            Some(Ipv6Pool {
                prefix: "2001:db8:100::".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
                prefix_len: 48,
                user_prefix_len: 56,
            }),
            lease_ms,
            [],
        )
    }

    fn register(p: &mut Pool, user: u8, now_ms: u64) -> Option<Plan> {
        let plan = p.plan(&[user; 32], [user; 32], Ipv6Addr::LOCALHOST, now_ms)?;
        p.apply(&plan);
        Some(plan)
    }

    #[test]
    fn addresses_follow_the_slot() {
        let p = pool(24, 1000);
        assert_eq!(p.ipv4().capacity(), 253);
        assert_eq!(p.ipv4().exit_address(), Ipv4Addr::new(172, 16, 0, 1));
        assert_eq!(
            p.addresses(0),
            Some((
                Ipv4Addr::new(172, 16, 0, 2),
                Some((
                    "2001:db8:100::".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
                    56
                ))
            ))
        );
        assert_eq!(
            p.addresses(252).map(|a| a.0),
            Some(Ipv4Addr::new(172, 16, 0, 254))
        );
        assert_eq!(
            p.addresses(1).and_then(|a| a.1),
            Some((
                "2001:db8:100:100::"
                    .parse()
                    .unwrap_or(Ipv6Addr::UNSPECIFIED),
                56
            ))
        );
        assert_eq!(p.addresses(253), None);
        // The exit's address is the pool's last, in a user prefix no slot reaches.
        let v6 = *p.ipv6().unwrap_or(&Ipv6Pool {
            prefix: Ipv6Addr::UNSPECIFIED,
            prefix_len: 0,
            user_prefix_len: 0,
        });
        assert_eq!(
            v6.exit_address(),
            "2001:db8:100:ffff:ffff:ffff:ffff:ffff"
                .parse::<Ipv6Addr>()
                .unwrap_or(Ipv6Addr::UNSPECIFIED)
        );
        let last = v6.user_prefix(v6.capacity().saturating_sub(1));
        assert!(last.is_some_and(|(a, l)| {
            let span = 1u128 << (128 - u32::from(l));
            u128::from(v6.exit_address()) >= u128::from(a) + span
        }));
        assert_eq!(
            Ipv4Pool {
                network: Ipv4Addr::new(10, 0, 0, 0),
                prefix_len: 31
            }
            .capacity(),
            0
        );
    }

    #[test]
    fn same_key_same_slot_and_exhaustion_then_expiry() {
        let mut p = pool(29, 1000); // 8 addresses: 5 users
        for u in 0..5u8 {
            assert_eq!(
                register(&mut p, u, 10).map(|x| x.lease.slot),
                Some(u32::from(u))
            );
        }
        assert_eq!(register(&mut p, 3, 20).map(|x| x.lease.slot), Some(3));
        // Full, nothing expired: refused.
        assert_eq!(p.plan(&[9; 32], [9; 32], Ipv6Addr::LOCALHOST, 1010), None);
        // User 3 renewed at 20; the others expire after 1010; the oldest (lowest key on ties)
        // goes first.
        let plan = register(&mut p, 9, 1011);
        assert_eq!(plan.and_then(|x| x.evicted), Some([0; 32]));
        assert_eq!(plan.map(|x| x.lease.slot), Some(0));
        assert_eq!(p.lease(&[0; 32]), None);
        assert_eq!(p.len(), 5);
        // The evicted key comes back: it gets the next expired slot, never one in use.
        let again = register(&mut p, 0, 1012);
        assert_eq!(again.and_then(|x| x.evicted), Some([1; 32]));
    }

    #[test]
    fn restored_leases_keep_their_slots_and_misfits_are_dropped() {
        let mut p = pool(24, 1000);
        register(&mut p, 1, 0);
        register(&mut p, 2, 0);
        let saved: Vec<_> = p.leases().map(|(k, l)| (*k, *l)).collect();
        let mut small = saved.clone();
        small.push((
            [7; 32],
            Lease {
                slot: 999,
                tunnel_key: [0; 32],
                mesh_address: Ipv6Addr::LOCALHOST,
                since_ms: 0,
                renewed_ms: 0,
            },
        ));
        let q = Pool::new(*p.ipv4(), p.ipv6().copied(), 1000, small);
        assert_eq!(q.lease(&[2; 32]).map(|l| l.slot), Some(1));
        assert_eq!(q.lease(&[7; 32]), None);
    }
}
