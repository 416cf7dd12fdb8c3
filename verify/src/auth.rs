//! Remote IHU authentication (`spec/verify.md` §3): the destination signs its report with
//! ed25519; the verifier checks the signature, that the key may answer for the verified prefix,
//! and that the report is fresh.

use std::collections::BTreeMap;
use std::net::IpAddr;

use babel_wire::{IhuTimestamp, Prefix, RemoteIhu, RouterId, tlv};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};

/// Sub-TLV type of the signed verification report inside a Remote IHU (experimental,
/// non-mandatory range 112-126 of RFC 8966 §6; 112 and 113 are Althea's price and RTT).
pub const REPORT_SUB_TLV: u8 = 114;
/// Length of the report sub-TLV body: counter, hops, highest seqno, receive bitmap, key,
/// signature.
pub const REPORT_LEN: usize = 8 + 1 + 2 + 8 + 32 + 64;
/// Domain separation prefixed to every signed message.
pub const SIGNING_DOMAIN: &[u8] = b"babeld-rs remote-ihu v1";
/// Fewest key-derived bits a prefix must fix to be bound to one key (§3.2): finding a second
/// key whose address falls in someone's prefix then costs about 2^56 key generations.
pub const DERIVED_MIN_BITS: u8 = 56;
/// Domain of the key-derived address (§3.2).
pub const DERIVE_DOMAIN: &[u8] = b"babeld-rs verify address v1";

/// Why a Remote IHU was dropped. Each has a counter ([`crate::ProbeCounters`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportDropReason {
    /// Not a well-formed Remote IHU with exactly one report sub-TLV.
    #[error("malformed Remote IHU")]
    Malformed,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The key may not answer for this prefix.
    #[error("key not bound to the prefix")]
    Unbound,
    /// The counter is not above the last one accepted from this key.
    #[error("replayed")]
    Replayed,
    /// Not an answer to a probe session of ours (origin, via, prefix or seqno).
    #[error("unexpected")]
    Unexpected,
}

/// The signed fields of a report (besides the Remote IHU's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Strictly increasing per signing key (replay protection).
    pub counter: u64,
    /// Links the Remote Hellos crossed, from their IPv6 hop limit.
    pub hops: u8,
    /// Highest Remote Hello seqno received.
    pub highest_seqno: u16,
    /// Bit `i` set: Remote Hello `highest_seqno − i` was received (the last 64).
    pub bitmap: u64,
}

impl Report {
    /// Remote Hellos received among the seqnos `first .. first + count` (at most the last 64).
    pub fn received_in(&self, first: u16, count: u16) -> u16 {
        let mut n = 0;
        for i in 0..count {
            let s = first.wrapping_add(i);
            let back = self.highest_seqno.wrapping_sub(s);
            if back < 64 && self.bitmap & (1u64 << back) != 0 {
                n += 1;
            }
        }
        n
    }
}

/// A Remote IHU whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIhu {
    /// The Remote IHU fields.
    pub ihu: RemoteIhu,
    /// The report.
    pub report: Report,
    /// The key that signed.
    pub key: [u8; 32],
}

/// Encodes a Remote IHU TLV (type, length, body; `spec/wire.md` §5.2) with its signed report
/// sub-TLV.
pub fn encode_signed_ihu(ihu: &RemoteIhu, report: &Report, key: &SigningKey) -> Option<Vec<u8>> {
    let (ae, octets) = match ihu.prefix.addr() {
        IpAddr::V4(a) => (1u8, a.octets().to_vec()),
        IpAddr::V6(a) => (2u8, a.octets().to_vec()),
    };
    let plen = ihu.prefix.len();
    let n = usize::from(plen).div_ceil(8);
    let mut body = Vec::with_capacity(200);
    body.extend_from_slice(&[ae, plen]);
    body.extend_from_slice(&ihu.rxcost.to_be_bytes());
    body.extend_from_slice(&ihu.interval.to_be_bytes());
    body.extend_from_slice(&ihu.origin.0);
    body.extend_from_slice(&ihu.via.0);
    body.extend_from_slice(octets.get(..n)?);
    if let Some(ts) = ihu.timestamp {
        body.extend_from_slice(&[3, 8]);
        body.extend_from_slice(&ts.origin.to_be_bytes());
        body.extend_from_slice(&ts.receive.to_be_bytes());
    }
    body.extend_from_slice(&[REPORT_SUB_TLV, REPORT_LEN as u8]);
    body.extend_from_slice(&report.counter.to_be_bytes());
    body.push(report.hops);
    body.extend_from_slice(&report.highest_seqno.to_be_bytes());
    body.extend_from_slice(&report.bitmap.to_be_bytes());
    body.extend_from_slice(key.verifying_key().as_bytes());
    let len = u8::try_from(body.len() + 64).ok()?;
    let mut out = Vec::with_capacity(2 + body.len() + 64);
    out.extend_from_slice(&[tlv::REMOTE_IHU, len]);
    out.extend_from_slice(&body);
    let sig = key.sign(&signed_message(&out));
    out.extend_from_slice(&sig.to_bytes());
    Some(out)
}

fn signed_message(tlv_without_sig: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_DOMAIN.len() + tlv_without_sig.len());
    m.extend_from_slice(SIGNING_DOMAIN);
    m.extend_from_slice(tlv_without_sig);
    m
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn rid(b: &[u8], at: usize) -> Option<RouterId> {
    Some(RouterId(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses a Remote IHU TLV (type octet first) and checks its signature. It does not check the
/// key binding nor freshness ([`Keyring::admit`] does).
pub fn decode_signed_ihu(tlv_bytes: &[u8]) -> Result<SignedIhu, ReportDropReason> {
    let m = ReportDropReason::Malformed;
    let (&ty, rest) = tlv_bytes.split_first().ok_or(m)?;
    let (&len, _) = rest.split_first().ok_or(m)?;
    if ty != tlv::REMOTE_IHU {
        return Err(m);
    }
    let end = 2 + usize::from(len);
    let whole = tlv_bytes.get(..end).ok_or(m)?;
    let body = whole.get(2..).ok_or(m)?;
    let ae = *body.first().ok_or(m)?;
    let plen = *body.get(1).ok_or(m)?;
    let rxcost = be16(body, 2).ok_or(m)?;
    let interval = be16(body, 4).ok_or(m)?;
    let origin = rid(body, 6).ok_or(m)?;
    let via = rid(body, 14).ok_or(m)?;
    let n = usize::from(plen).div_ceil(8);
    let raw = body.get(22..22 + n).ok_or(m)?;
    let addr = match ae {
        1 if plen <= 32 => {
            let mut o = [0u8; 4];
            o.get_mut(..n).ok_or(m)?.copy_from_slice(raw);
            IpAddr::from(o)
        }
        2 if plen <= 128 => {
            let mut o = [0u8; 16];
            o.get_mut(..n).ok_or(m)?.copy_from_slice(raw);
            IpAddr::from(o)
        }
        _ => return Err(m),
    };
    let prefix = Prefix::new(addr, plen).map_err(|_| m)?;
    if prefix.addr() != addr {
        // Bits beyond the prefix length must be zero, so that one prefix has one encoding.
        return Err(m);
    }
    let mut at = 22 + n;
    let mut timestamp = None;
    let mut report = None;
    while at < body.len() {
        let st = *body.get(at).ok_or(m)?;
        if st == 0 {
            at += 1;
            continue;
        }
        let sl = usize::from(*body.get(at + 1).ok_or(m)?);
        let sb = body.get(at + 2..at + 2 + sl).ok_or(m)?;
        match st {
            3 if sl == 8 && timestamp.is_none() => {
                timestamp = Some(IhuTimestamp {
                    origin: be32(sb, 0).ok_or(m)?,
                    receive: be32(sb, 4).ok_or(m)?,
                });
            }
            REPORT_SUB_TLV if sl == REPORT_LEN && report.is_none() => {
                // The signature is the last 64 octets of the TLV: nothing may follow it.
                if at + 2 + sl != body.len() {
                    return Err(m);
                }
                report = Some((at + 2, sb));
            }
            s if s >= 128 => return Err(m),
            _ => {}
        }
        at += 2 + sl;
    }
    let (start, sb) = report.ok_or(m)?;
    let r = Report {
        counter: be64(sb, 0).ok_or(m)?,
        hops: *sb.get(8).ok_or(m)?,
        highest_seqno: be16(sb, 9).ok_or(m)?,
        bitmap: be64(sb, 11).ok_or(m)?,
    };
    let key: [u8; 32] = sb.get(19..51).ok_or(m)?.try_into().map_err(|_| m)?;
    let sig: [u8; 64] = sb.get(51..115).ok_or(m)?.try_into().map_err(|_| m)?;
    let signed = whole.get(..2 + start + 51).ok_or(m)?;
    let vk = VerifyingKey::from_bytes(&key).map_err(|_| ReportDropReason::BadSignature)?;
    vk.verify_strict(&signed_message(signed), &Signature::from_bytes(&sig))
        .map_err(|_| ReportDropReason::BadSignature)?;
    Ok(SignedIhu {
        ihu: RemoteIhu {
            rxcost,
            interval,
            origin,
            via,
            prefix,
            timestamp,
        },
        report: r,
        key,
    })
}

/// The address a key owns under a key-derived range (§3.2): the range's bits, then the first
/// bits of SHA-512(domain ‖ key).
pub fn derived_address(range: &Prefix, key: &[u8; 32]) -> Option<IpAddr> {
    let mut h = Sha512::new();
    h.update(DERIVE_DOMAIN);
    h.update(key);
    let digest = h.finalize();
    let (base, width): (Vec<u8>, usize) = match range.addr() {
        IpAddr::V4(a) => (a.octets().to_vec(), 32),
        IpAddr::V6(a) => (a.octets().to_vec(), 128),
    };
    let keep = usize::from(range.len());
    let mut out = vec![0u8; width / 8];
    for bit in 0..width {
        let src = if bit < keep { &base } else { &digest[..] };
        let idx = if bit < keep { bit } else { bit - keep };
        let byte = *src.get(idx / 8)?;
        if byte & (0x80 >> (idx % 8)) != 0 {
            *out.get_mut(bit / 8)? |= 0x80 >> (bit % 8);
        }
    }
    Some(match width {
        32 => IpAddr::from(<[u8; 4]>::try_from(out.as_slice()).ok()?),
        _ => IpAddr::from(<[u8; 16]>::try_from(out.as_slice()).ok()?),
    })
}

/// Which keys may answer for which prefixes (§3.2), and the last counter accepted per key
/// (bounded).
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    configured: Vec<(Prefix, [u8; 32])>,
    derived: Vec<Prefix>,
    counters: BTreeMap<[u8; 32], u64>,
    max_keys: usize,
}

impl Keyring {
    /// The keys whose last counter is remembered (§3.3), against their bound.
    pub fn counters_size(&self) -> crate::TableSize {
        crate::TableSize {
            name: "keys' last counters",
            len: self.counters.len(),
            max: self.max_keys,
        }
    }

    /// An empty keyring remembering counters of at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Keyring {
        Keyring {
            max_keys: max_keys.max(1),
            ..Keyring::default()
        }
    }

    /// Binds `key` to `prefix` and everything inside it (configuration, e.g. an exit's key).
    pub fn bind(&mut self, prefix: Prefix, key: [u8; 32]) {
        self.configured.push((prefix, key));
    }

    /// Accepts key-derived prefixes under `range` (self-certifying, §3.2).
    pub fn allow_derived(&mut self, range: Prefix) {
        self.derived.push(range);
    }

    /// Whether `key` may answer for `prefix`.
    pub fn may_answer(&self, prefix: &Prefix, key: &[u8; 32]) -> bool {
        if self
            .configured
            .iter()
            .any(|(p, k)| k == key && p.contains(prefix))
        {
            return true;
        }
        self.derived.iter().any(|range| {
            range.contains(prefix)
                && prefix.len() >= range.len().saturating_add(DERIVED_MIN_BITS)
                && derived_address(range, key).is_some_and(|a| {
                    let host = Prefix::host(a);
                    prefix.contains(&host)
                })
        })
    }

    /// Checks binding and freshness of a verified report, and records its counter.
    pub fn admit(&mut self, s: &SignedIhu) -> Result<(), ReportDropReason> {
        if !self.may_answer(&s.ihu.prefix, &s.key) {
            return Err(ReportDropReason::Unbound);
        }
        if self
            .counters
            .get(&s.key)
            .is_some_and(|c| s.report.counter <= *c)
        {
            return Err(ReportDropReason::Replayed);
        }
        // Full: forget the key with the lowest counter; a replay to it is still caught by the
        // session check (origin, via, prefix, seqno range).
        crate::bounded::make_room(&mut self.counters, self.max_keys, &s.key, |c| *c);
        self.counters.insert(s.key, s.report.counter);
        Ok(())
    }

    /// Keys whose counters are remembered.
    pub fn remembered(&self) -> usize {
        self.counters.len()
    }
}

/// The address Remote Hellos for `prefix` go to (`spec/verify.md` §3.2.1): the address itself
/// for an IPv6 host route, otherwise the prefix's first address after the all-zeros one (its
/// host bits 0…01, as a router's own address on its LAN `/64` usually is). The destination that
/// announces the prefix answers there, and the key bound to the prefix signs (§3.2). `None` for
/// IPv4 prefixes and the default route `::/0` (nobody owns it; the exit behind it is verified at
/// its own address).
pub fn probe_address(prefix: &Prefix) -> Option<std::net::Ipv6Addr> {
    let IpAddr::V6(a) = prefix.addr() else {
        return None;
    };
    if prefix.len() == 0 {
        return None;
    }
    if prefix.len() >= 127 {
        return Some(a);
    }
    let bits = u128::from(a);
    let host_mask = u128::MAX >> prefix.len();
    Some(std::net::Ipv6Addr::from((bits & !host_mask) | 1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn ihu() -> RemoteIhu {
        RemoteIhu {
            rxcost: 300,
            interval: 100,
            origin: RouterId([1; 8]),
            via: RouterId([2; 8]),
            prefix: "fd00::7/128"
                .parse()
                .unwrap_or_else(|_| Prefix::host(IpAddr::from([0u8; 16]))),
            timestamp: Some(IhuTimestamp {
                origin: 10,
                receive: 20,
            }),
        }
    }

    fn report(counter: u64) -> Report {
        Report {
            counter,
            hops: 3,
            highest_seqno: 19,
            bitmap: 0b1011,
        }
    }

    /// §3.1: the layout is the Remote IHU of spec/wire.md §5.2; babel-wire reads it (ignoring
    /// the report sub-TLV, which is not mandatory), and so would any Babel speaker.
    #[test]
    fn encoding_is_a_remote_ihu_babel_wire_reads() {
        let tlv = encode_signed_ihu(&ihu(), &report(1), &key(7)).unwrap_or_default();
        let mut pkt = vec![42, 2];
        pkt.extend_from_slice(&(tlv.len() as u16).to_be_bytes());
        pkt.extend_from_slice(&tlv);
        let d = babel_wire::decode(&pkt, &babel_wire::DecodeOptions::default());
        let Ok(d) = d else {
            panic!("babel-wire refused it")
        };
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(
            d.packet.messages,
            vec![babel_wire::Message::RemoteIhu(ihu())]
        );
        let s = decode_signed_ihu(&tlv);
        assert_eq!(
            s,
            Ok(SignedIhu {
                ihu: ihu(),
                report: report(1),
                key: *key(7).verifying_key().as_bytes()
            })
        );
    }

    /// §3.1: the bitmap counts the Remote Hellos of a session.
    #[test]
    fn received_in_session() {
        let r = report(1);
        assert_eq!(r.received_in(16, 4), 3);
        assert_eq!(r.received_in(18, 2), 2);
        assert_eq!(r.received_in(17, 1), 0);
        assert_eq!(r.received_in(20, 5), 0);
        let w = Report {
            highest_seqno: 2,
            bitmap: 0b111,
            ..r
        };
        assert_eq!(w.received_in(65535, 4), 3);
    }

    /// §3.1: any altered octet (field, report, key or signature) fails.
    #[test]
    fn every_alteration_fails() {
        let tlv = encode_signed_ihu(&ihu(), &report(1), &key(7)).unwrap_or_default();
        for i in 0..tlv.len() {
            for flip in [0x01u8, 0x80] {
                let mut t = tlv.clone();
                if let Some(b) = t.get_mut(i) {
                    *b ^= flip;
                }
                assert!(decode_signed_ihu(&t).is_err(), "octet {i} flip {flip:#x}");
            }
        }
    }

    /// §3.1: malformed input never panics and is refused.
    #[test]
    fn malformed_refused_without_panic() {
        let tlv = encode_signed_ihu(&ihu(), &report(1), &key(7)).unwrap_or_default();
        for cut in 0..tlv.len() {
            assert!(decode_signed_ihu(tlv.get(..cut).unwrap_or_default()).is_err());
        }
        let mut seed = 1u64;
        for _ in 0..2000 {
            let len = (seed % 200) as usize;
            let mut junk = vec![tlv::REMOTE_IHU, len as u8];
            for _ in 0..len {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                junk.push((seed >> 33) as u8);
            }
            assert!(decode_signed_ihu(&junk).is_err());
        }
    }

    /// §3.2: a configured key answers for its prefix and what it contains, nothing else.
    #[test]
    fn configured_binding() {
        let mut ring = Keyring::new(4);
        let k = *key(7).verifying_key().as_bytes();
        ring.bind("fd00::/120".parse().unwrap_or_else(|_| ihu().prefix), k);
        assert!(ring.may_answer(&ihu().prefix, &k));
        assert!(!ring.may_answer(&ihu().prefix, key(8).verifying_key().as_bytes()));
        let other: Prefix = "fd01::7/128".parse().unwrap_or_else(|_| ihu().prefix);
        assert!(!ring.may_answer(&other, &k));
    }

    /// §3.2: a key-derived prefix is bound to its key only.
    #[test]
    fn derived_binding() {
        let range: Prefix = "fd00::/16".parse().unwrap_or_else(|_| ihu().prefix);
        let mut ring = Keyring::new(4);
        ring.allow_derived(range);
        let k = *key(9).verifying_key().as_bytes();
        let a = derived_address(&range, &k).unwrap_or(range.addr());
        let p80 = Prefix::new(a, 80).unwrap_or(range);
        assert!(range.contains(&p80));
        assert!(ring.may_answer(&p80, &k));
        assert!(ring.may_answer(&Prefix::host(a), &k));
        assert!(!ring.may_answer(&p80, key(10).verifying_key().as_bytes()));
        // Fewer than DERIVED_MIN_BITS derived bits: not bound.
        let p64 = Prefix::new(a, 64).unwrap_or(range);
        assert!(!ring.may_answer(&p64, &k));
        // A prefix wider than the derived part of the address is not owned by one key.
        assert!(!ring.may_answer(&range, &k));
    }

    /// §3.2.1: where Remote Hellos for a prefix go, and that a non-host prefix is answered for
    /// by the key bound to it (configured, or derived from the key).
    #[test]
    fn probe_address_of_prefixes() {
        let pa = |s: &str| probe_address(&s.parse().unwrap_or_else(|_| ihu().prefix));
        assert_eq!(pa("fd00::7/128"), "fd00::7".parse().ok());
        assert_eq!(pa("2001:db8:5:6::/64"), "2001:db8:5:6::1".parse().ok());
        assert_eq!(pa("2001:db8:5:6:ff::/56"), "2001:db8:5::1".parse().ok());
        assert_eq!(pa("10.0.0.0/24"), None);
        assert_eq!(pa("::/0"), None);
        let mut ring = Keyring::new(4);
        let k = *key(7).verifying_key().as_bytes();
        let lan: Prefix = "2001:db8:5:6::/64".parse().unwrap_or_else(|_| ihu().prefix);
        ring.bind(lan, k);
        assert!(ring.may_answer(&lan, &k));
        assert!(!ring.may_answer(&lan, key(8).verifying_key().as_bytes()));
        // A wider prefix than the bound one is not answered for by that key.
        let wider: Prefix = "2001:db8:5::/48".parse().unwrap_or_else(|_| ihu().prefix);
        assert!(!ring.may_answer(&wider, &k));
        // Derived: a /64 under a /8 range fixes 56 derived bits.
        let range: Prefix = "fd00::/8".parse().unwrap_or_else(|_| ihu().prefix);
        let mut dring = Keyring::new(4);
        dring.allow_derived(range);
        let d = derived_address(&range, &k).unwrap_or(range.addr());
        let p64 = Prefix::new(d, 64).unwrap_or(range);
        assert!(dring.may_answer(&p64, &k));
        assert!(p64.contains(&Prefix::host(IpAddr::V6(
            probe_address(&p64).unwrap_or(std::net::Ipv6Addr::UNSPECIFIED)
        ))));
    }

    /// §3.3: replays (same or older counter) are refused; counters are bounded.
    #[test]
    fn replay_refused_and_bounded() {
        let mut ring = Keyring::new(2);
        let k = key(7);
        ring.bind(ihu().prefix, *k.verifying_key().as_bytes());
        let s =
            |c| decode_signed_ihu(&encode_signed_ihu(&ihu(), &report(c), &k).unwrap_or_default());
        let Ok(s5) = s(5) else { panic!() };
        assert_eq!(ring.admit(&s5), Ok(()));
        assert_eq!(ring.admit(&s5), Err(ReportDropReason::Replayed));
        let Ok(s4) = s(4) else { panic!() };
        assert_eq!(ring.admit(&s4), Err(ReportDropReason::Replayed));
        let Ok(s6) = s(6) else { panic!() };
        assert_eq!(ring.admit(&s6), Ok(()));
        for b in 20..40u8 {
            let kk = key(b);
            ring.bind(ihu().prefix, *kk.verifying_key().as_bytes());
            let t = encode_signed_ihu(&ihu(), &report(1), &kk).unwrap_or_default();
            let Ok(s) = decode_signed_ihu(&t) else {
                panic!()
            };
            assert_eq!(ring.admit(&s), Ok(()));
        }
        assert_eq!(ring.remembered(), 2);
        let unbound = key(99);
        let t = encode_signed_ihu(&ihu(), &report(1), &unbound).unwrap_or_default();
        let Ok(s) = decode_signed_ihu(&t) else {
            panic!()
        };
        assert_eq!(ring.admit(&s), Err(ReportDropReason::Unbound));
    }
}
