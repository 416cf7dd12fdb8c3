//! What an exit keeps durably: each user's lease (its slot in the address pool, hence its
//! addresses) and its billed totals. Both are committed **before** the reply or bill that
//! depends on them is produced (`spec/exits.md`, "Persistence"), so a process killed at any
//! instant restarts with every address it ever handed out and every amount it ever billed.
//!
//! [`RedbStore`] keeps them in a `redb` database, one write transaction per commit with
//! `Durability::Immediate`, as the `payments` ledger does.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::Path;

use payments::{Amount, StoreError};
use redb::{Database, Durability, ReadableTable, TableDefinition};

use crate::wire::Bill;

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
        let mut at = 1;
        let mut take = |n: usize| {
            let s = b.get(at..at + n).unwrap_or_default();
            at += n;
            s
        };
        Ok(Lease {
            slot: u32::from_be_bytes(arr(take(4))?),
            tunnel_key: arr(take(32))?,
            mesh_address: Ipv6Addr::from(arr::<16>(take(16))?),
            since_ms: u64::from_be_bytes(arr(take(8))?),
            renewed_ms: u64::from_be_bytes(arr(take(8))?),
        })
    }
}

/// A user's billed totals: the content of its newest bill without the two keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Totals {
    /// The bill's sequence number (0: never billed).
    pub seq: u64,
    /// When committed (exit clock, ms since the Unix epoch).
    pub time_ms: u64,
    /// Cumulative upload bytes.
    pub upload_bytes: u64,
    /// Cumulative download bytes.
    pub download_bytes: u64,
    /// Cumulative upload value.
    pub upload_amount: Amount,
    /// Cumulative download value.
    pub download_amount: Amount,
}

/// Length of encoded [`Totals`].
pub const TOTALS_LEN: usize = 1 + 4 * 8 + 2 * 16;

impl Totals {
    /// The bill stating these totals.
    pub fn bill(&self, exit: [u8; 32], user: [u8; 32]) -> Bill {
        Bill {
            exit,
            user,
            seq: self.seq,
            time_ms: self.time_ms,
            upload_bytes: self.upload_bytes,
            download_bytes: self.download_bytes,
            upload_amount: self.upload_amount,
            download_amount: self.download_amount,
        }
    }

    /// Fixed-width encoding: version, seq, time, upload and download bytes (u64 BE), upload and
    /// download amounts (u128 BE).
    pub fn encode(&self) -> [u8; TOTALS_LEN] {
        let mut o = [0u8; TOTALS_LEN];
        let fields: [&[u8]; 7] = [
            &[RECORD_VERSION],
            &self.seq.to_be_bytes(),
            &self.time_ms.to_be_bytes(),
            &self.upload_bytes.to_be_bytes(),
            &self.download_bytes.to_be_bytes(),
            &self.upload_amount.0.to_be_bytes(),
            &self.download_amount.0.to_be_bytes(),
        ];
        put_fields(&mut o, &fields);
        o
    }

    /// Decodes.
    pub fn decode(b: &[u8]) -> Result<Totals, StoreError> {
        if b.len() != TOTALS_LEN || b.first() != Some(&RECORD_VERSION) {
            return Err(StoreError::Corrupt);
        }
        let mut at = 1;
        let mut take = |n: usize| {
            let s = b.get(at..at + n).unwrap_or_default();
            at += n;
            s
        };
        Ok(Totals {
            seq: u64::from_be_bytes(arr(take(8))?),
            time_ms: u64::from_be_bytes(arr(take(8))?),
            upload_bytes: u64::from_be_bytes(arr(take(8))?),
            download_bytes: u64::from_be_bytes(arr(take(8))?),
            upload_amount: Amount(u128::from_be_bytes(arr(take(16))?)),
            download_amount: Amount(u128::from_be_bytes(arr(take(16))?)),
        })
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
pub struct MemStore {
    /// The data.
    pub stored: Stored,
    /// Commits made.
    pub commits: u64,
    /// Fail every commit (to test that nothing is answered without one).
    pub fail: bool,
}

impl MemStore {
    fn check(&mut self) -> Result<(), StoreError> {
        if self.fail {
            return Err(StoreError::Backend("commit refused by test".into()));
        }
        self.commits += 1;
        Ok(())
    }
}

impl ExitStore for MemStore {
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

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The exit's records in a `redb` database (its own file, or the payments ledger's: the table
/// names do not collide).
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens the database at `path`, creating it if needed. Creation is atomic (built and
    /// synced under a temporary name, renamed into place, directory synced), so a process
    /// killed while creating it never leaves a half-initialised file.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        if !path.exists() {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".creating");
            let tmp = std::path::PathBuf::from(tmp);
            let _ = std::fs::remove_file(&tmp);
            {
                let db = Database::create(&tmp).map_err(backend)?;
                let txn = db.begin_write().map_err(backend)?;
                txn.open_table(LEASES).map_err(backend)?;
                txn.open_table(TOTALS).map_err(backend)?;
                txn.commit().map_err(backend)?;
            }
            std::fs::rename(&tmp, path).map_err(backend)?;
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(backend)?;
        }
        let db = Database::open(path).map_err(backend)?;
        // A database created by another component may lack our tables.
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(LEASES).map_err(backend)?;
        txn.open_table(TOTALS).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(RedbStore { db })
    }
}

impl ExitStore for RedbStore {
    fn load(&self) -> Result<Stored, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let mut out = Stored::default();
        for entry in txn
            .open_table(LEASES)
            .map_err(backend)?
            .iter()
            .map_err(backend)?
        {
            let (k, v) = entry.map_err(backend)?;
            out.leases
                .insert(arr(k.value())?, Lease::decode(v.value())?);
        }
        for entry in txn
            .open_table(TOTALS)
            .map_err(backend)?
            .iter()
            .map_err(backend)?
        {
            let (k, v) = entry.map_err(backend)?;
            out.totals
                .insert(arr(k.value())?, Totals::decode(v.value())?);
        }
        Ok(out)
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
            let mut s = RedbStore::open(&path)?;
            assert_eq!(s.load()?, Stored::default());
            s.commit_lease(&[1; 32], &lease(0), None)?;
            s.commit_lease(&[2; 32], &lease(1), None)?;
            s.commit_lease(&[3; 32], &lease(1), Some(&[2; 32]))?;
            s.commit_totals(&[1; 32], &t)?;
        }
        let s = RedbStore::open(&path)?;
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
