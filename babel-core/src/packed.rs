//! B-trees that stay full after a burst of insertions in key order.
//!
//! A neighbour's full-table dump arrives in key order, so every new key goes to the right edge of
//! the table's B-tree. std's B-tree splits a full node at its middle, which leaves every leaf
//! filled in order about half full (6 of 11 slots): the route table and the source table then
//! cost nearly twice their entries. [`Repack`] counts the keys added since the tree was last
//! packed and, once they are a quarter of it, rebuilds the tree with full nodes: `append`
//! streams both trees in order into freshly filled nodes, freeing the old ones as it goes, so
//! the rebuild costs O(n) moves and about one node's worth of extra memory at a time. The
//! geometric trigger keeps the cost amortised O(1) per insertion and the part of the tree that
//! is not packed under a fifth of it. The daemon's record of its kernel routes, filled in the
//! same order, uses it too.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use crate::time::Instant;

/// Trees smaller than this are never repacked (the slack is a few nodes).
const MIN_INSERTED: usize = 1024;

/// Keys added to one B-tree since it was last packed.
#[derive(Clone, Debug, Default)]
pub struct Repack {
    inserted: usize,
}

impl Repack {
    /// Counts one key added to the tree.
    pub fn inserted(&mut self) {
        self.inserted += 1;
    }

    /// Packs `tree` when the keys added since it was last packed are a quarter of it.
    pub fn maybe<K: Ord, V>(&mut self, tree: &mut BTreeMap<K, V>) {
        if self.inserted >= MIN_INSERTED && self.inserted.saturating_mul(4) >= tree.len() {
            pack(tree);
            self.inserted = 0;
        }
    }
}

/// Rebuilds `tree` with every node full. The order and the entries are unchanged.
pub fn pack<K: Ord, V>(tree: &mut BTreeMap<K, V>) {
    let Some((k, v)) = tree.pop_first() else {
        return;
    };
    // `append` into a non-empty tree merges both in order with bulk pushes that fill each node
    // before starting the next (into an empty one it would only swap the two).
    let mut packed = BTreeMap::new();
    packed.insert(k, v);
    packed.append(tree);
    *tree = packed;
}

/// An [`Instant`] in 48 bits, 2-byte aligned: six bytes where an `Instant` takes eight with
/// 8-byte alignment. Exact for every instant in the first 2^48 µs (8.9 years) after the epoch
/// (the process's start for a driver) and for the end of time (`u64::MAX`, where a saturating
/// `Instant + Duration` ends); an instant between the two is kept as the end of time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Instant48([u16; 3]);

impl Instant48 {
    /// The largest value kept: the end of time.
    const END: u64 = (1 << 48) - 1;

    /// Packs `t`.
    pub fn new(t: Instant) -> Instant48 {
        let us = t.as_micros().min(Self::END);
        Instant48([(us >> 32) as u16, (us >> 16) as u16, us as u16])
    }

    /// The instant packed.
    pub fn get(self) -> Instant {
        let [a, b, c] = self.0;
        let us = (u64::from(a) << 32) | (u64::from(b) << 16) | u64::from(c);
        Instant::from_micros(if us == Self::END { u64::MAX } else { us })
    }
}

impl From<Instant> for Instant48 {
    fn from(t: Instant) -> Instant48 {
        Instant48::new(t)
    }
}

/// An interned value's index: 4 bytes where the value may take 8 (a router-id) or 17 (an
/// address), and 4 bytes in an `Option` too (indexes start at 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interned(NonZeroU32);

impl Interned {
    /// The index as a number (at least 1), to store it in a byte key.
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// The index a number names (`None` for 0).
    pub fn new(n: u32) -> Option<Interned> {
        NonZeroU32::new(n).map(Interned)
    }

    /// Its slot in [`Interner`]'s values.
    fn slot(self) -> Option<usize> {
        usize::try_from(self.0.get()).ok()?.checked_sub(1)
    }
}

/// The interner holds as many values as an index can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("interner full")]
pub struct InternerFull;

/// Values shared by many table entries, each kept once and named by an [`Interned`] index.
///
/// No reference counts: the owner sweeps. Values no entry names any more stay until the
/// owner's next [`Interner::sweep`], which it runs when [`Interner::sweep_due`] says so (before
/// adding a value); a sweep frees their indexes for new values and leaves the others as they
/// are, so indexes held outside the owner's tables are valid until then. A sweep is due once
/// every freed index is taken again and the values held are at least twice those in use after
/// the last sweep, plus a quarter of the entries that may name one, plus 64: so the interner
/// stays bounded by the entries it serves (at most about 2.25 values an entry) whatever a peer
/// sends, and each sweep's walk of the owner's entries is amortised over at least a quarter of
/// the entries' count of new values.
#[derive(Clone, Debug)]
pub struct Interner<T> {
    /// By index; `None` where an index was freed.
    values: Vec<Option<T>>,
    index: BTreeMap<T, Interned>,
    /// Freed indexes, taken again before the values grow.
    free: Vec<Interned>,
    /// Values in use after the last sweep.
    live: usize,
}

impl<T> Default for Interner<T> {
    fn default() -> Interner<T> {
        Interner {
            values: Vec::new(),
            index: BTreeMap::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T: Ord + Copy> Interner<T> {
    /// The value `id` names (`None` for an index this interner did not give, or freed since).
    pub fn get(&self, id: Interned) -> Option<T> {
        self.values.get(id.slot()?).copied().flatten()
    }

    /// The index of `v`, if it is held.
    pub fn find(&self, v: &T) -> Option<Interned> {
        self.index.get(v).copied()
    }

    /// The index of `v`, added if it was not held. Does not sweep.
    pub fn intern(&mut self, v: T) -> Result<Interned, InternerFull> {
        if let Some(id) = self.index.get(&v) {
            return Ok(*id);
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let n = u32::try_from(self.values.len() + 1).map_err(|_| InternerFull)?;
                self.values.push(None);
                Interned::new(n).ok_or(InternerFull)?
            }
        };
        if let Some(slot) = id.slot().and_then(|i| self.values.get_mut(i)) {
            *slot = Some(v);
        }
        self.index.insert(v, id);
        Ok(id)
    }

    /// Values held, used or not.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether the owner should sweep before adding a value, with `entries` table entries that
    /// may each name one.
    pub fn sweep_due(&self, entries: usize) -> bool {
        self.free.is_empty() && self.index.len() >= self.live.saturating_mul(2) + entries / 4 + 64
    }

    /// Frees the values no entry names. `each` must call its argument with every index the
    /// owner's entries hold.
    pub fn sweep(&mut self, each: impl FnOnce(&mut dyn FnMut(Interned))) {
        let mut used = vec![false; self.values.len()];
        each(&mut |id| {
            if let Some(u) = id.slot().and_then(|i| used.get_mut(i)) {
                *u = true;
            }
        });
        for ((slot, used), n) in self.values.iter_mut().zip(&used).zip(1..) {
            if !used && let Some(v) = slot.take() {
                self.index.remove(&v);
                self.free.extend(Interned::new(n));
            }
        }
        // Lowest indexes first.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        self.live = self.index.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_keeps_the_entries_and_their_order() {
        let mut t: BTreeMap<u32, u32> = (0..5000).map(|i| (i * 3, i)).collect();
        let before: Vec<_> = t.iter().map(|(k, v)| (*k, *v)).collect();
        pack(&mut t);
        let after: Vec<_> = t.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(before, after);
        let mut empty: BTreeMap<u32, u32> = BTreeMap::new();
        pack(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn repacks_after_a_quarter_of_new_keys() {
        let mut t = BTreeMap::new();
        let mut r = Repack::default();
        for i in 0..MIN_INSERTED as u32 - 1 {
            t.insert(i, ());
            r.inserted();
        }
        r.maybe(&mut t);
        assert_eq!(r.inserted, MIN_INSERTED - 1, "too few to repack");
        t.insert(u32::MAX, ());
        r.inserted();
        r.maybe(&mut t);
        assert_eq!(r.inserted, 0, "repacked");
        assert_eq!(t.len(), MIN_INSERTED);
        assert_eq!(t.keys().next_back(), Some(&u32::MAX));
    }

    /// Interning gives one index a value; a sweep frees the values no entry names and leaves
    /// the others' indexes as they were; freed indexes are taken again first; an index from
    /// elsewhere reads as nothing, never a panic.
    #[test]
    #[allow(clippy::unwrap_used, clippy::indexing_slicing)]
    fn an_interner_keeps_what_is_used() {
        let mut t: Interner<u64> = Interner::default();
        let ids: Vec<Interned> = (0..100u64).map(|v| t.intern(v * 7).unwrap()).collect();
        assert_eq!(t.intern(7).unwrap(), ids[1]);
        assert_eq!(t.len(), 100);
        assert!(t.sweep_due(0) && !t.sweep_due(400));
        // Entries name every tenth value.
        let held: Vec<Interned> = ids.iter().copied().step_by(10).collect();
        t.sweep(|f| held.iter().for_each(|id| f(*id)));
        assert_eq!(t.len(), 10);
        for (i, id) in held.iter().enumerate() {
            assert_eq!(t.get(*id), Some(i as u64 * 70));
            assert_eq!(t.find(&(i as u64 * 70)), Some(*id));
        }
        assert_eq!((t.find(&7), t.get(ids[1])), (None, None));
        assert!(!t.sweep_due(0), "90 indexes free");
        assert_eq!(t.intern(1).unwrap(), ids[1], "the lowest free index");
        for v in 2..91 {
            t.intern(v * 1000).unwrap();
        }
        assert_eq!(
            (t.len(), t.values.len()),
            (100, 100),
            "no growth while indexes are free"
        );
        assert!(t.sweep_due(0));
        let stray = Interned::new(999).unwrap();
        assert_eq!(t.get(stray), None);
        t.sweep(|f| f(stray));
        assert!(t.is_empty());
    }

    #[test]
    fn a_48_bit_instant_is_the_same_instant_for_9_years() {
        let end = (1u64 << 48) - 2;
        for us in [
            0,
            1,
            0xffff,
            0x1_0000,
            u64::from(u32::MAX) + 1,
            3 << 40,
            end,
        ] {
            let t = Instant::from_micros(us);
            assert_eq!(Instant48::new(t).get(), t);
        }
        let eternity = Instant::from_micros(u64::MAX);
        assert_eq!(Instant48::new(eternity).get(), eternity);
        assert_eq!(
            Instant48::new(Instant::from_micros(end + 1)).get(),
            eternity
        );
        assert_eq!(
            Instant48::new(Instant::from_micros(1 << 60)).get(),
            eternity
        );
        assert_eq!(std::mem::size_of::<Instant48>(), 6);
        assert_eq!(std::mem::align_of::<Instant48>(), 2);
    }
}
