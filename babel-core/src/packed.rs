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
