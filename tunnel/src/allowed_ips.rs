//! A small longest-prefix-match table (cryptokey routing).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IP prefix such as `10.0.0.0/24` or `fd00::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

/// Error parsing an [`IpPrefix`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IP prefix: {0}")]
pub struct PrefixError(String);

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

impl IpPrefix {
    /// Builds a prefix; host bits are cleared. `None` if `len` is too long.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let (v, w) = bits(addr);
        if len > w {
            return None;
        }
        let m = mask(v, len, w);
        let addr = match addr {
            IpAddr::V4(_) => IpAddr::V4((m as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(m.into()),
        };
        Some(IpPrefix { addr, len })
    }
    /// Network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    /// Prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }
    /// True for a /0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Does the prefix contain `ip`?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (a, wa) = bits(self.addr);
        let (b, wb) = bits(ip);
        wa == wb && mask(b, self.len, wb) == a
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let err = || PrefixError(s.to_owned());
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| err())?;
        let len = match l {
            Some(l) => l.trim().parse().map_err(|_| err())?,
            None => bits(addr).1,
        };
        IpPrefix::new(addr, len).ok_or_else(err)
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
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
    by_len: Vec<HashMap<u128, (IpPrefix, T)>>,
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
    pub fn insert(&mut self, p: IpPrefix, value: T) -> Option<T> {
        let (key, _) = bits(p.addr);
        let f = self.family(p.addr);
        let old = f
            .by_len
            .get_mut(usize::from(p.len))
            .and_then(|m| m.insert(key, (p, value)))
            .map(|(_, v)| v);
        f.refresh();
        old
    }

    /// Removes a prefix.
    pub fn remove(&mut self, p: &IpPrefix) -> Option<T> {
        let (key, _) = bits(p.addr);
        let f = self.family(p.addr);
        let old = f
            .by_len
            .get_mut(usize::from(p.len))
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
    pub fn iter(&self) -> impl Iterator<Item = (&IpPrefix, &T)> {
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
            "10.1.2.3/24".parse::<IpPrefix>().unwrap().to_string(),
            "10.1.2.0/24"
        );
        assert!("10.0.0.0/33".parse::<IpPrefix>().is_err());
        assert!("nonsense".parse::<IpPrefix>().is_err());
        assert_eq!("::1".parse::<IpPrefix>().unwrap().len(), 128);
    }
}
