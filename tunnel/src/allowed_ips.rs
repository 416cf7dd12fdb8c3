//! A small longest-prefix-match table (cryptokey routing).

use std::collections::HashMap;
use std::net::IpAddr;

use babel_wire::Prefix;

fn bits(a: IpAddr) -> (u128, u8) {
    match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

fn mask(v: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        0
    } else {
        let keep = u128::MAX << (u32::from(width - len.min(width)));
        v & keep
    }
}

/// Longest-prefix-match table from IP prefixes to values: one hash map per
/// prefix length, probed from the longest populated length down.
#[derive(Debug, Clone)]
pub struct AllowedIps<T> {
    v4: Family<T>,
    v6: Family<T>,
}

#[derive(Debug, Clone)]
struct Family<T> {
    by_len: Vec<HashMap<u128, (Prefix, T)>>,
    lens: Vec<u8>,
}

impl<T> Family<T> {
    fn new(width: u8) -> Self {
        Family {
            by_len: (0..=width).map(|_| HashMap::new()).collect(),
            lens: Vec::new(),
        }
    }
    fn refresh(&mut self) {
        self.lens = (0..self.by_len.len())
            .rev()
            .filter(|&l| self.by_len.get(l).is_some_and(|m| !m.is_empty()))
            .filter_map(|l| u8::try_from(l).ok())
            .collect();
    }
}

impl<T> Default for AllowedIps<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> AllowedIps<T> {
    /// An empty table.
    pub fn new() -> Self {
        AllowedIps {
            v4: Family::new(32),
            v6: Family::new(128),
        }
    }

    fn family(&mut self, a: IpAddr) -> &mut Family<T> {
        if a.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        }
    }

    /// Inserts (or replaces) a prefix; returns the old value.
    pub fn insert(&mut self, p: Prefix, value: T) -> Option<T> {
        let (key, _) = bits(p.addr());
        let f = self.family(p.addr());
        let old = f
            .by_len
            .get_mut(usize::from(p.len()))
            .and_then(|m| m.insert(key, (p, value)))
            .map(|(_, v)| v);
        f.refresh();
        old
    }

    /// Removes a prefix.
    pub fn remove(&mut self, p: &Prefix) -> Option<T> {
        let (key, _) = bits(p.addr());
        let f = self.family(p.addr());
        let old = f
            .by_len
            .get_mut(usize::from(p.len()))
            .and_then(|m| m.remove(&key))
            .map(|(_, v)| v);
        f.refresh();
        old
    }

    /// Removes every prefix whose value matches.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for f in [&mut self.v4, &mut self.v6] {
            for m in &mut f.by_len {
                m.retain(|_, (_, v)| keep(v));
            }
            f.refresh();
        }
    }

    /// Longest-prefix match.
    pub fn lookup(&self, ip: IpAddr) -> Option<&T> {
        let (v, w) = bits(ip);
        let f = if ip.is_ipv4() { &self.v4 } else { &self.v6 };
        f.lens.iter().find_map(|&l| {
            f.by_len
                .get(usize::from(l))
                .and_then(|m| m.get(&mask(v, l, w)))
                .map(|(_, t)| t)
        })
    }

    /// All entries.
    pub fn iter(&self) -> impl Iterator<Item = (&Prefix, &T)> {
        self.v4
            .by_len
            .iter()
            .chain(self.v6.by_len.iter())
            .flat_map(|m| m.values().map(|(p, t)| (p, t)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = AllowedIps::new();
        t.insert("0.0.0.0/0".parse().unwrap(), 0);
        t.insert("10.0.0.0/8".parse().unwrap(), 1);
        t.insert("10.1.0.0/16".parse().unwrap(), 2);
        t.insert("10.1.2.3/32".parse().unwrap(), 3);
        t.insert("fd00::/8".parse().unwrap(), 6);
        let q = |s: &str| t.lookup(s.parse().unwrap()).copied();
        assert_eq!(q("10.1.2.3"), Some(3));
        assert_eq!(q("10.1.2.4"), Some(2));
        assert_eq!(q("10.2.0.1"), Some(1));
        assert_eq!(q("192.168.0.1"), Some(0));
        assert_eq!(q("fd12::1"), Some(6));
        assert_eq!(q("fe80::1"), None);
        t.remove(&"10.1.0.0/16".parse().unwrap());
        assert_eq!(t.lookup("10.1.2.4".parse().unwrap()), Some(&1));
        t.retain(|v| *v != 1);
        assert_eq!(t.lookup("10.1.2.4".parse().unwrap()), Some(&0));
        assert_eq!(
            "10.1.2.3/24".parse::<Prefix>().unwrap().to_string(),
            "10.1.2.0/24"
        );
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("nonsense".parse::<Prefix>().is_err());
        assert_eq!("::1".parse::<Prefix>().unwrap().len(), 128);
    }
}
