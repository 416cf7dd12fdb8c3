//! Metrics and sequence numbers with the RFC's arithmetic (RFC 8966 §2.1, §3.2.1), and the
//! address classes Babel refuses or requires (RFC 8966 Appendix C, §4): one definition of each
//! for the workspace.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use crate::types::{INFINITY, Prefix};

/// `From` both ways and `Display` for a newtype over `u16`.
macro_rules! u16_newtype {
    ($t:ident) => {
        impl From<u16> for $t {
            fn from(v: u16) -> $t {
                $t(v)
            }
        }

        impl From<$t> for u16 {
            fn from(v: $t) -> u16 {
                v.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

u16_newtype!(Metric);
u16_newtype!(Seqno);

/// A metric equals and compares with the raw 16-bit value of a wire field or a literal.
impl PartialEq<u16> for Metric {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

impl PartialOrd<u16> for Metric {
    fn partial_cmp(&self, other: &u16) -> Option<Ordering> {
        Some(self.0.cmp(other))
    }
}

/// A seqno equals a raw 16-bit value (its order is modular: compare two [`Seqno`]s).
impl PartialEq<u16> for Seqno {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

/// A Babel metric: 16 bits, [`INFINITY`] (0xFFFF) meaning unreachable. Additions saturate at
/// infinity (RFC 8966 §3.5.2: a metric is never allowed to wrap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Metric(pub u16);

impl Metric {
    /// Unreachable.
    pub const INFINITY: Metric = Metric(INFINITY);
    /// The metric of a local route.
    pub const ZERO: Metric = Metric(0);

    /// `self + other`, infinity if either is infinite or the sum does not fit.
    #[must_use]
    pub fn saturating_add(self, other: Metric) -> Metric {
        Metric(self.0.saturating_add(other.0))
    }

    /// Whether this is [`Metric::INFINITY`] (a retraction, an unreachable route).
    pub fn is_infinite(self) -> bool {
        self.0 == INFINITY
    }
}

/// A 16-bit sequence number (router seqno, Hello seqno), compared modulo 2^16 (RFC 8966
/// §3.2.1): `a < b` when `0 < (b - a) mod 2^16 < 32768`. The order is partial: two seqnos exactly
/// 32768 apart are not comparable (`partial_cmp` is `None`, and neither is newer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Seqno(pub u16);

impl Seqno {
    /// The signed distance `self - other` in `-32768..=32767` (32768 apart counts as behind).
    pub fn minus(self, other: Seqno) -> i32 {
        i32::from(self.0.wrapping_sub(other.0) as i16)
    }

    /// The next seqno (RFC 8966 §3.2.1: incremented modulo 2^16).
    #[must_use]
    pub fn next(self) -> Seqno {
        Seqno(self.0.wrapping_add(1))
    }

    /// Whether `self` is newer than `other` (strictly greater, modulo 2^16).
    pub fn is_newer_than(self, other: Seqno) -> bool {
        self.partial_cmp(&other) == Some(Ordering::Greater)
    }

    /// Whether `self` is `other` or newer.
    pub fn is_at_least(self, other: Seqno) -> bool {
        matches!(
            self.partial_cmp(&other),
            Some(Ordering::Greater | Ordering::Equal)
        )
    }
}

impl PartialOrd for Seqno {
    fn partial_cmp(&self, other: &Seqno) -> Option<Ordering> {
        match self.0.wrapping_sub(other.0) {
            0 => Some(Ordering::Equal),
            0x8000 => None,
            d if d < 0x8000 => Some(Ordering::Greater),
            _ => Some(Ordering::Less),
        }
    }
}

/// A link-local address: IPv6 fe80::/10 or IPv4 169.254.0.0/16. Babel packets come from IPv6
/// link-local addresses (RFC 8966 §4); link-local prefixes are never redistributed. The
/// workspace's one link-local predicate.
pub fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V6(v6) => v6.segments().first().is_some_and(|s| s & 0xFFC0 == 0xFE80),
        IpAddr::V4(v4) => v4.is_link_local(),
    }
}

/// babeld's `martian_prefix` (RFC 8966 Appendix C): multicast, link-local, loopback,
/// unspecified, and the IPv4 this-network, loopback and class D/E ranges. Routes to them are
/// neither accepted nor announced.
pub fn is_martian(p: &Prefix) -> bool {
    let len = p.len();
    match p.addr() {
        IpAddr::V6(a) => {
            let [o0, o1, ..] = a.octets();
            if let Some(v4) = a.to_ipv4_mapped() {
                return len >= 96 && v4_martian(v4.octets(), len - 96);
            }
            (len >= 8 && o0 == 0xFF)
                || (len >= 10 && o0 == 0xFE && o1 & 0xC0 == 0x80)
                || (len == 128 && (a.is_unspecified() || a.is_loopback()))
        }
        IpAddr::V4(a) => v4_martian(a.octets(), len),
    }
}

fn v4_martian(o: [u8; 4], len: u8) -> bool {
    let [o0, ..] = o;
    (len >= 8 && (o0 == 127 || o0 == 0)) || (len >= 4 && o0 & 0xE0 == 0xE0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_addition_saturates_at_infinity() {
        assert_eq!(Metric(96).saturating_add(Metric(160)), Metric(256));
        assert_eq!(
            Metric(0xFF00).saturating_add(Metric(0x200)),
            Metric::INFINITY
        );
        assert_eq!(
            Metric::INFINITY.saturating_add(Metric::ZERO),
            Metric::INFINITY
        );
        assert!(Metric(0xFFFE).saturating_add(Metric(1)).is_infinite());
        assert!(!Metric(0xFFFE).is_infinite());
    }

    #[test]
    fn seqno_comparison_is_modular() {
        assert!(Seqno(1).is_newer_than(Seqno(0)));
        assert!(Seqno(0).is_newer_than(Seqno(0xFFFF)));
        assert!(Seqno(0x7FFF).is_newer_than(Seqno(0)));
        assert!(!Seqno(0x8000).is_newer_than(Seqno(0)));
        assert!(!Seqno(0).is_newer_than(Seqno(0x8000)));
        assert_eq!(Seqno(0).partial_cmp(&Seqno(0x8000)), None);
        assert!(Seqno(5).is_at_least(Seqno(5)) && !Seqno(4).is_at_least(Seqno(5)));
        assert_eq!(Seqno(2).minus(Seqno(0xFFFE)), 4);
        assert_eq!(Seqno(0xFFFE).minus(Seqno(2)), -4);
        assert_eq!(Seqno(0xFFFF).next(), Seqno(0));
    }

    #[test]
    fn martians_and_link_local() {
        let p = |s: &str| s.parse::<Prefix>().unwrap_or_else(|e| panic!("{s}: {e}"));
        for m in [
            "ff02::/16",
            "fe80::/64",
            "::1/128",
            "::/128",
            "127.0.0.0/8",
            "224.0.0.0/4",
        ] {
            assert!(is_martian(&p(m)), "{m}");
        }
        for ok in [
            "2001:db8::/32",
            "::/0",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "fc00::/7",
        ] {
            assert!(!is_martian(&p(ok)), "{ok}");
        }
        let a = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(is_link_local(&a("fe80::1")) && is_link_local(&a("febf::1")));
        assert!(is_link_local(&a("169.254.1.1")));
        assert!(!is_link_local(&a("fec0::1")) && !is_link_local(&a("2001:db8::1")));
        assert!(!is_link_local(&a("10.0.0.1")));
    }
}
