//! What an exit keeps durably: each user's lease (its slot in the address pool, hence its
//! addresses) and its billed totals. Both are committed **before** the reply or bill that
//! depends on them is produced (`spec/exits.md`, "Persistence"), so a process killed at any
//! instant restarts with every address it ever handed out and every amount it ever billed.
//!
//! [`ExitRedbStore`] keeps them in a `redb` database, one write transaction per commit with
//! `Durability::Immediate`, as the `payments` ledger does.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::Path;

use payments::StoreError;
use payments::store::{backend, open_database};
use redb::{Database, Durability, ReadableTable, TableDefinition};

use crate::wire::Fields;
pub use crate::wire::Totals;

/// Version byte of an encoded [`Lease`] or [`Totals`].
const RECORD_VERSION: u8 = 1;

/// One user's lease on a slot of the address pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The slot: the user's IPv4 address is the pool's `first user address + slot`, its IPv6
    /// prefix the pool's `slot`-th (see [`crate::pool`]).
    pub slot: u32,
    /// The user's x25519 tunnel key, from its newest registration.
    pub tunnel_key: [u8; 32],
    /// The user's mesh address, from its newest registration.
    pub mesh_address: Ipv6Addr,
    /// When the slot was first leased to this user (exit clock, ms since the Unix epoch).
    pub since_ms: u64,
    /// The user's newest registration (exit clock, ms since the Unix epoch); the lease expires
    /// `lease` after it.
    pub renewed_ms: u64,
}

/// Length of an encoded [`Lease`].
pub const LEASE_LEN: usize = 1 + 4 + 32 + 16 + 8 + 8;

impl Lease {
    /// Fixed-width encoding: version, slot, tunnel key, mesh address, since, renewed (BE).
    pub fn encode(&self) -> [u8; LEASE_LEN] {
        let mut o = [0u8; LEASE_LEN];
        let fields: [&[u8]; 6] = [
            &[RECORD_VERSION],
            &self.slot.to_be_bytes(),
            &self.tunnel_key,
            &self.mesh_address.octets(),
            &self.since_ms.to_be_bytes(),
            &self.renewed_ms.to_be_bytes(),
        ];
        put_fields(&mut o, &fields);
        o
    }

    /// Decodes (a record read back is input too).
    pub fn decode(b: &[u8]) -> Result<Lease, StoreError> {
        if b.len() != LEASE_LEN || b.first() != Some(&RECORD_VERSION) {
            return Err(StoreError::Corrupt);
        }
        let mut f = Fields(b.get(1..).unwrap_or_default());
        Ok(Lease {
            slot: f.u32(),
            tunnel_key: f.take(),
            mesh_address: f.v6(),
            since_ms: f.u64(),
            renewed_ms: f.u64(),
        })
    }
}

/// Length of encoded [`Totals`].
pub const TOTALS_LEN: usize = 1 + 4 * 8 + 2 * 16;

impl Totals {
    /// The stored form (table `exit_totals`): version, then the bill's totals as on the wire
    /// (seq, time, upload and download bytes as u64, upload and download amounts as u128, BE).
    pub fn encode(&self) -> [u8; TOTALS_LEN] {
        let mut o = Vec::with_capacity(TOTALS_LEN);
        o.push(RECORD_VERSION);
        self.put(&mut o);
        <[u8; TOTALS_LEN]>::try_from(o.as_slice()).unwrap_or([0; TOTALS_LEN])
    }

    /// Decodes the stored form.
    pub fn decode(b: &[u8]) -> Result<Totals, StoreError> {
        if b.len() != TOTALS_LEN || b.first() != Some(&RECORD_VERSION) {
            return Err(StoreError::Corrupt);
        }
        Ok(Totals::read(&mut Fields(b.get(1..).unwrap_or_default())))
    }
}

fn put_fields(out: &mut [u8], fields: &[&[u8]]) {
    let mut at = 0;
    for f in fields {
        if let Some(dst) = out.get_mut(at..at + f.len()) {
            dst.copy_from_slice(f);
        }
        at += f.len();
    }
}

fn arr<const N: usize>(s: &[u8]) -> Result<[u8; N], StoreError> {
    <[u8; N]>::try_from(s).map_err(|_| StoreError::Corrupt)
}

/// Everything an exit stored, as loaded at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Leases by user key.
    pub leases: BTreeMap<[u8; 32], Lease>,
    /// Billed totals by user key.
    pub totals: BTreeMap<[u8; 32], Totals>,
}

/// Where an exit commits leases and totals. A commit returns only once the data is durable; the
/// caller produces the reply or bill after it, never before.
pub trait ExitStore {
    /// Everything stored.
    fn load(&self) -> Result<Stored, StoreError>;
    /// Durably writes `user`'s lease and, in the same transaction, deletes `evicted`'s (a lease
    /// reclaimed for `user`).
    fn commit_lease(
        &mut self,
        user: &[u8; 32],
        lease: &Lease,
        evicted: Option<&[u8; 32]>,
    ) -> Result<(), StoreError>;
    /// Durably writes `user`'s billed totals.
    fn commit_totals(&mut self, user: &[u8; 32], totals: &Totals) -> Result<(), StoreError>;
}

/// An in-memory store for unit tests and simulations (not durable).
#[derive(Debug, Clone, Default)]
pub struct ExitMemStore {
    /// The data.
    pub stored: Stored,
    /// Commits made.
    pub commits: u64,
    /// Fail every commit (to test that nothing is answered without one).
    pub fail: bool,
}

impl ExitMemStore {
    fn check(&mut self) -> Result<(), StoreError> {
        if self.fail {
            return Err(StoreError::Backend("commit refused by test".into()));
        }
        self.commits += 1;
        Ok(())
    }
}

impl ExitStore for ExitMemStore {
    fn load(&self) -> Result<Stored, StoreError> {
        Ok(self.stored.clone())
    }

    fn commit_lease(
        &mut self,
        user: &[u8; 32],
        lease: &Lease,
        evicted: Option<&[u8; 32]>,
    ) -> Result<(), StoreError> {
        self.check()?;
        if let Some(e) = evicted {
            self.stored.leases.remove(e);
        }
        self.stored.leases.insert(*user, *lease);
        Ok(())
    }

    fn commit_totals(&mut self, user: &[u8; 32], totals: &Totals) -> Result<(), StoreError> {
        self.check()?;
        self.stored.totals.insert(*user, *totals);
        Ok(())
    }
}

const LEASES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("exit_leases");
const TOTALS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("exit_totals");

/// The exit's records in a `redb` database file of their own.
pub struct ExitRedbStore {
    db: Database,
}

impl ExitRedbStore {
    /// Opens the database at `path`, creating it atomically if needed
    /// (`payments::store::open_database`).
    pub fn open(path: &Path) -> Result<ExitRedbStore, StoreError> {
        Ok(ExitRedbStore {
            db: open_database(path, &[LEASES, TOTALS])?,
        })
    }
}

impl ExitStore for ExitRedbStore {
    fn load(&self) -> Result<Stored, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        /// Every record of one table, decoded.
        fn all<T>(
            txn: &redb::ReadTransaction,
            table: TableDefinition<'_, &[u8], &[u8]>,
            decode: fn(&[u8]) -> Result<T, StoreError>,
        ) -> Result<BTreeMap<[u8; 32], T>, StoreError> {
            let mut out = BTreeMap::new();
            for entry in txn
                .open_table(table)
                .map_err(backend)?
                .iter()
                .map_err(backend)?
            {
                let (k, v) = entry.map_err(backend)?;
                out.insert(arr(k.value())?, decode(v.value())?);
            }
            Ok(out)
        }
        Ok(Stored {
            leases: all(&txn, LEASES, Lease::decode)?,
            totals: all(&txn, TOTALS, Totals::decode)?,
        })
    }

    fn commit_lease(
        &mut self,
        user: &[u8; 32],
        lease: &Lease,
        evicted: Option<&[u8; 32]>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut t = txn.open_table(LEASES).map_err(backend)?;
            if let Some(e) = evicted {
                t.remove(e.as_slice()).map_err(backend)?;
            }
            t.insert(user.as_slice(), lease.encode().as_slice())
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }

    fn commit_totals(&mut self, user: &[u8; 32], totals: &Totals) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut t = txn.open_table(TOTALS).map_err(backend)?;
            t.insert(user.as_slice(), totals.encode().as_slice())
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use payments::Amount;

    fn lease(slot: u32) -> Lease {
        Lease {
            slot,
            tunnel_key: [slot as u8; 32],
            mesh_address: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, slot as u16),
            since_ms: 10,
            renewed_ms: 20 + u64::from(slot),
        }
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let l = lease(7);
        assert_eq!(Lease::decode(&l.encode()).ok(), Some(l));
        let t = Totals {
            seq: 3,
            time_ms: 4,
            upload_bytes: 5,
            download_bytes: 6,
            upload_amount: Amount(7),
            download_amount: Amount(u128::MAX),
        };
        assert_eq!(Totals::decode(&t.encode()).ok(), Some(t));
        assert!(Lease::decode(&[1, 2, 3]).is_err());
        assert!(Totals::decode(&l.encode()).is_err());
        let mut bad = t.encode();
        bad[0] = 9;
        assert!(Totals::decode(&bad).is_err());
    }

    #[test]
    fn redb_leases_and_totals_survive_reopen() -> Result<(), StoreError> {
        let path = std::env::temp_dir().join(format!("exit-store-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let t = Totals {
            seq: 1,
            upload_bytes: 100,
            ..Totals::default()
        };
        {
            let mut s = ExitRedbStore::open(&path)?;
            assert_eq!(s.load()?, Stored::default());
            s.commit_lease(&[1; 32], &lease(0), None)?;
            s.commit_lease(&[2; 32], &lease(1), None)?;
            s.commit_lease(&[3; 32], &lease(1), Some(&[2; 32]))?;
            s.commit_totals(&[1; 32], &t)?;
        }
        let s = ExitRedbStore::open(&path)?;
        let got = s.load()?;
        assert_eq!(got.leases.len(), 2);
        assert_eq!(got.leases.get(&[1; 32]), Some(&lease(0)));
        assert_eq!(got.leases.get(&[3; 32]), Some(&lease(1)));
        assert_eq!(got.leases.get(&[2; 32]), None);
        assert_eq!(got.totals.get(&[1; 32]), Some(&t));
        drop(s);
        let _ = std::fs::remove_file(&path);
        Ok(())
    }
}
