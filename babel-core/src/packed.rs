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

/// An [`Instant`] (64-bit µs) as two 32-bit halves: the same value, exactly, in a field aligned
/// to 4 bytes, so a table entry with 16-bit fields beside it does not pad to 8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackedInstant([u32; 2]);

impl PackedInstant {
    /// Packs `t`.
    pub fn new(t: Instant) -> PackedInstant {
        let us = t.as_micros();
        PackedInstant([(us >> 32) as u32, us as u32])
    }

    /// The instant packed.
    pub fn get(self) -> Instant {
        let [hi, lo] = self.0;
        Instant::from_micros((u64::from(hi) << 32) | u64::from(lo))
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
    fn a_packed_instant_is_the_same_instant() {
        for us in [0, 1, u64::from(u32::MAX), u64::from(u32::MAX) + 1, u64::MAX] {
            let t = Instant::from_micros(us);
            assert_eq!(PackedInstant::new(t).get(), t);
        }
        assert_eq!(std::mem::align_of::<PackedInstant>(), 4);
    }
}
