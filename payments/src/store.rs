//! Durable channel state: what a [`crate::PaymentPeer`] commits before anything leaves or is
//! acknowledged, and the embedded transactional database behind it ([`RedbStore`]).

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, Durability, TableDefinition};

use crate::{Amount, ChannelId, SIGNED_LEN, SignedUpdate};

/// Version byte of an encoded [`Record`] (version 1, without the channel epochs' fields, still
/// decodes).
const RECORD_VERSION: u8 = 2;

/// Everything about one neighbour that carries value: metered totals and both channels' newest
/// updates. It is committed whole, in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Record {
    /// Value of the service we gave the neighbour (it owes us for it), as we metered it.
    pub metered_in: Amount,
    /// Value of the service the neighbour gave us (we owe it), as we metered it.
    pub metered_out: Amount,
    /// The newest update we signed on our channel to the neighbour.
    pub out: Option<SignedUpdate>,
    /// The best update we accepted on the neighbour's channel to us.
    pub inbound: Option<SignedUpdate>,
    /// Paid by us on our earlier, closed channels to the neighbour (a channel's cumulative amount
    /// starts at 0 again on the next one).
    pub closed_out: Amount,
    /// Paid to us on the neighbour's earlier, closed channels.
    pub closed_in: Amount,
    /// Our current channel to the neighbour (`None`: the one the caller gives).
    pub out_channel: Option<ChannelId>,
    /// The neighbour's current channel to us (`None`: the one the caller gives).
    pub in_channel: Option<ChannelId>,
}

/// Length of an encoded version 1 [`Record`].
const RECORD_V1_LEN: usize = 1 + 16 + 16 + 2 * (1 + SIGNED_LEN);

/// Length of an encoded [`Record`].
pub const RECORD_LEN: usize = RECORD_V1_LEN + 16 + 16 + 2 * (1 + 32);

/// Why the store failed. A failed commit means nothing was sent or acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Backend(String),
    /// A stored record does not decode or its signatures do not verify.
    #[error("corrupt record")]
    Corrupt,
}

impl Record {
    /// Fixed-width encoding: version, metered in, metered out (u128 BE), then for each channel a
    /// presence byte and the signed update (zeros when absent); then closed out, closed in (u128
    /// BE) and for each channel id a presence byte and the id (zeros when absent).
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = Vec::with_capacity(RECORD_LEN);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.metered_in.0.to_be_bytes());
        out.extend_from_slice(&self.metered_out.0.to_be_bytes());
        for u in [self.out, self.inbound] {
            out.push(u8::from(u.is_some()));
            out.extend_from_slice(&u.map(|u| u.to_bytes()).unwrap_or([0; SIGNED_LEN]));
        }
        out.extend_from_slice(&self.closed_out.0.to_be_bytes());
        out.extend_from_slice(&self.closed_in.0.to_be_bytes());
        for c in [self.out_channel, self.in_channel] {
            out.push(u8::from(c.is_some()));
            out.extend_from_slice(&c.map(|c| c.0).unwrap_or([0; 32]));
        }
        <[u8; RECORD_LEN]>::try_from(out.as_slice()).unwrap_or([0; RECORD_LEN])
    }

    /// Decodes and re-verifies both updates (a record is input too).
    pub fn decode(b: &[u8]) -> Result<Record, StoreError> {
        match (b.first(), b.len()) {
            (Some(1), RECORD_V1_LEN) | (Some(&RECORD_VERSION), RECORD_LEN) => {}
            _ => return Err(StoreError::Corrupt),
        }
        let v2 = b.len() == RECORD_LEN;
        let amount = |at: usize| {
            b.get(at..at + 16)
                .and_then(|s| <[u8; 16]>::try_from(s).ok())
                .map(|a| Amount(u128::from_be_bytes(a)))
                .ok_or(StoreError::Corrupt)
        };
        let update = |at: usize| match b.get(at) {
            Some(0) => Ok(None),
            Some(1) => b
                .get(at + 1..at + 1 + SIGNED_LEN)
                .and_then(|s| SignedUpdate::from_bytes(s).ok())
                .map(Some)
                .ok_or(StoreError::Corrupt),
            _ => Err(StoreError::Corrupt),
        };
        let channel = |at: usize| match b.get(at) {
            Some(0) => Ok(None),
            Some(1) => b
                .get(at + 1..at + 33)
                .and_then(|s| <[u8; 32]>::try_from(s).ok())
                .map(|c| Some(ChannelId(c)))
                .ok_or(StoreError::Corrupt),
            _ => Err(StoreError::Corrupt),
        };
        let e = RECORD_V1_LEN;
        Ok(Record {
            metered_in: amount(1)?,
            metered_out: amount(17)?,
            out: update(33)?,
            inbound: update(33 + 1 + SIGNED_LEN)?,
            closed_out: if v2 { amount(e)? } else { Amount(0) },
            closed_in: if v2 { amount(e + 16)? } else { Amount(0) },
            out_channel: if v2 { channel(e + 32)? } else { None },
            in_channel: if v2 { channel(e + 65)? } else { None },
        })
    }
}

/// Where a [`crate::PaymentPeer`] commits its [`Record`]. `commit` returns only once the record is
/// durable (on disk, synced): the caller sends or acknowledges after it, never before.
pub trait Store {
    /// The record of `peer`, if any.
    fn load(&self, peer: &[u8; 32]) -> Result<Option<Record>, StoreError>;
    /// Durably replaces the record of `peer`.
    fn commit(&mut self, peer: &[u8; 32], record: &Record) -> Result<(), StoreError>;
}

/// An in-memory store for unit tests and simulations (not durable).
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    /// The records.
    pub records: BTreeMap<[u8; 32], Record>,
    /// How many commits were made.
    pub commits: u64,
    /// Fail every commit (to test that nothing leaves without one).
    pub fail: bool,
}

impl Store for MemStore {
    fn load(&self, peer: &[u8; 32]) -> Result<Option<Record>, StoreError> {
        Ok(self.records.get(peer).copied())
    }

    fn commit(&mut self, peer: &[u8; 32], record: &Record) -> Result<(), StoreError> {
        if self.fail {
            return Err(StoreError::Backend("commit refused by test".into()));
        }
        self.records.insert(*peer, *record);
        self.commits += 1;
        Ok(())
    }
}

const PEERS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("peers");
/// Every update signed or accepted, keyed by peer (32) | direction (1: 0 out, 1 in) | nonce (8,
/// BE): the audit trail of payments, written in the same transaction as the record.
const JOURNAL: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("journal");

/// A direction relative to a neighbour: of a journal entry (out: signed by us, in: accepted
/// from it) and of a packet (out: we send through it, in: it sent us to forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From us to the neighbour.
    Out = 0,
    /// From the neighbour to us.
    In = 1,
}

/// A database error as a [`StoreError::Backend`].
pub fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The ledger in a `redb` database: one write transaction per commit, with `Durability::Immediate`
/// (the commit returns after the data and the new root are synced).
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens the database at `path`, creating it if it does not exist ([`open_database`]).
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        Ok(RedbStore {
            db: open_database(path, &[PEERS, JOURNAL])?,
        })
    }

    /// The journal of one peer and direction, in nonce order.
    pub fn journal(
        &self,
        peer: &[u8; 32],
        direction: Direction,
    ) -> Result<Vec<SignedUpdate>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(JOURNAL).map_err(backend)?;
        let mut from = peer.to_vec();
        from.push(direction as u8);
        let mut to = from.clone();
        from.extend_from_slice(&[0; 8]);
        to.extend_from_slice(&[0xff; 8]);
        let mut out = Vec::new();
        for entry in table
            .range(from.as_slice()..=to.as_slice())
            .map_err(backend)?
        {
            let (_, v) = entry.map_err(backend)?;
            out.push(SignedUpdate::from_bytes(v.value()).map_err(|_| StoreError::Corrupt)?);
        }
        Ok(out)
    }
}

/// Opens the `redb` database at `path` with `tables` in it, creating it if it does not exist.
/// Creation is atomic: the file is built and synced under a temporary name, then renamed into
/// place and the directory synced, so a process killed while creating it never leaves a
/// half-initialised file. Tables missing from an existing file (one shared with another
/// component) are created in one transaction.
pub fn open_database(
    path: &Path,
    tables: &[TableDefinition<'_, &[u8], &[u8]>],
) -> Result<Database, StoreError> {
    let init = |db: &Database| -> Result<(), StoreError> {
        let txn = db.begin_write().map_err(backend)?;
        for t in tables {
            txn.open_table(*t).map_err(backend)?;
        }
        txn.commit().map_err(backend)
    };
    if !path.exists() {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".creating");
        let tmp = std::path::PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        init(&Database::create(&tmp).map_err(backend)?)?;
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
    let txn = db.begin_read().map_err(backend)?;
    let missing = tables.iter().any(|t| txn.open_table(*t).is_err());
    drop(txn);
    if missing {
        init(&db)?;
    }
    Ok(db)
}

fn journal_key(peer: &[u8; 32], direction: Direction, nonce: u64) -> Vec<u8> {
    let mut k = peer.to_vec();
    k.push(direction as u8);
    k.extend_from_slice(&nonce.to_be_bytes());
    k
}

impl Store for RedbStore {
    fn load(&self, peer: &[u8; 32]) -> Result<Option<Record>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(PEERS).map_err(backend)?;
        match table.get(peer.as_slice()).map_err(backend)? {
            None => Ok(None),
            Some(v) => Record::decode(v.value()).map(Some),
        }
    }

    fn commit(&mut self, peer: &[u8; 32], record: &Record) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut peers = txn.open_table(PEERS).map_err(backend)?;
            peers
                .insert(peer.as_slice(), record.encode().as_slice())
                .map_err(backend)?;
            let mut journal = txn.open_table(JOURNAL).map_err(backend)?;
            for (d, u) in [
                (Direction::Out, record.out),
                (Direction::In, record.inbound),
            ] {
                if let Some(u) = u {
                    let k = journal_key(peer, d, u.update.nonce);
                    journal
                        .insert(k.as_slice(), u.to_bytes().as_slice())
                        .map_err(backend)?;
                }
            }
        }
        txn.commit().map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelId, ChannelUpdate};
    use ed25519_dalek::SigningKey;

    fn signed(nonce: u64, cumulative: u128) -> SignedUpdate {
        let k = SigningKey::from_bytes(&[1; 32]);
        ChannelUpdate {
            channel: ChannelId([9; 32]),
            payer: k.verifying_key().to_bytes(),
            payee: [2; 32],
            nonce,
            cumulative: Amount(cumulative),
        }
        .sign(&k)
    }

    #[test]
    fn record_round_trips_and_rejects_corruption() {
        let r = Record {
            metered_in: Amount(5),
            metered_out: Amount(u128::MAX),
            out: Some(signed(3, 30)),
            inbound: None,
            closed_out: Amount(12),
            closed_in: Amount(u128::MAX - 1),
            out_channel: Some(ChannelId([9; 32])),
            in_channel: None,
        };
        let b = r.encode();
        assert_eq!(Record::decode(&b).ok(), Some(r));
        // A version 1 record (before channel epochs) still decodes, with nothing closed.
        let mut v1 = b.get(..RECORD_V1_LEN).unwrap_or_default().to_vec();
        if let Some(x) = v1.first_mut() {
            *x = 1;
        }
        let old = Record {
            closed_out: Amount(0),
            closed_in: Amount(0),
            out_channel: None,
            ..r
        };
        assert_eq!(Record::decode(&v1).ok(), Some(old));
        let mut bad = b;
        if let Some(x) = bad.get_mut(40) {
            *x ^= 1;
        }
        assert!(Record::decode(&bad).is_err());
        assert!(Record::decode(b.get(1..).unwrap_or_default()).is_err());
    }

    #[test]
    fn redb_commits_survive_reopen_with_their_journal() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("payments-redb-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let peer = [4; 32];
        {
            let mut s = RedbStore::open(&dir)?;
            assert_eq!(s.load(&peer)?, None);
            for n in 1..=3 {
                let r = Record {
                    out: Some(signed(n, u128::from(n) * 10)),
                    ..Record::default()
                };
                s.commit(&peer, &r)?;
            }
        }
        let s = RedbStore::open(&dir)?;
        assert_eq!(
            s.load(&peer)?.and_then(|r| r.out).map(|u| u.update.nonce),
            Some(3)
        );
        let j = s.journal(&peer, Direction::Out)?;
        assert_eq!(
            j.iter().map(|u| u.update.nonce).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(s.journal(&peer, Direction::In)?.is_empty());
        drop(s);
        let _ = std::fs::remove_file(&dir);
        Ok(())
    }
}
