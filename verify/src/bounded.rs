//! Bounded tables (`spec/verify.md` §6).

use std::collections::BTreeMap;

/// One bounded table: its name, its entries now and its bound. The tests and the daemon's
/// `verification` fuzz target read them to see that no input grows a table past its bound;
/// operators read them in the daemon's `dump json` and metrics, where a table at its bound
/// means the oldest entries are being forgotten to make room (`spec/verify.md` §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TableSize {
    /// What it holds.
    pub name: &'static str,
    /// Entries now.
    pub len: usize,
    /// Entries at most.
    pub max: usize,
}

impl TableSize {
    /// Whether the table is within its bound.
    pub fn within(&self) -> bool {
        self.len <= self.max
    }
}

/// Makes room for `key` in `map` (at most `max` entries): if it is new and the table is full,
/// the entry with the smallest `age` goes (least recently used first), and is returned.
pub(crate) fn make_room<K: Ord + Clone, V, A: Ord>(
    map: &mut BTreeMap<K, V>,
    max: usize,
    key: &K,
    age: impl Fn(&V) -> A,
) -> Option<K> {
    if map.contains_key(key) || map.len() < max.max(1) {
        return None;
    }
    let oldest = map
        .iter()
        .min_by_key(|(_, v)| age(v))
        .map(|(k, _)| k.clone())?;
    map.remove(&oldest);
    Some(oldest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// §6: full tables forget their oldest entry, never a present key.
    #[test]
    fn forgets_oldest_only_when_full() {
        let mut m: BTreeMap<u8, u32> = BTreeMap::new();
        for k in 0..3u8 {
            assert_eq!(make_room(&mut m, 3, &k, |v| *v), None);
            m.insert(k, 10 - u32::from(k));
        }
        assert_eq!(make_room(&mut m, 3, &1, |v| *v), None);
        assert_eq!(make_room(&mut m, 3, &9, |v| *v), Some(2));
        assert_eq!(m.len(), 2);
    }
}
