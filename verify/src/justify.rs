//! Justified claims (`spec/verify.md` §4.2.5, `spec/wire.md` §5.4-5.6): a verifier whose check
//! of a neighbour's route failed asks the neighbour to justify its claim (Justify Request); the
//! neighbour asks its own next hop on the route (Claim Request), which signs the metric it offers
//! (Signed Claim); the neighbour relays the Signed Claim to the verifier unchanged. Every message
//! goes over one link, between link-local addresses, with IPv6 hop limit 255.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use babel_core::Instant;
use babel_wire::{Prefix, tlv};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::NeighbourId;

/// Domain separation prefixed to every signed claim.
pub const CLAIM_SIGNING_DOMAIN: &[u8] = b"babeld-rs signed claim v1";
/// Signed Claims a router signs at most per second (§4.2.5): a neighbour cannot make it spend
/// more on signatures.
pub const CLAIM_SIGN_RATE: u32 = 32;
/// How long a relay waits for its next hop's Signed Claim, and a verifier for the relayed one.
pub const JUSTIFY_WAIT: Duration = Duration::from_secs(10);
/// With `justify_on_rise` (`spec/verify.md` §4.2.5): how often the verifier looks at the claims
/// while a refused Signed Claim waits for its claim to reach the floor.
pub const RISE_POLL: Duration = Duration::from_millis(500);
/// A Justify Request not answered after this long is sent again with the same nonce, at most
/// [`JUSTIFY_SENDS`] times in all within [`JUSTIFY_WAIT`] (§4.2.5): a lost request or answer
/// on a lossy link does not leave an honest neighbour unjustified.
pub const JUSTIFY_RETRY: Duration = Duration::from_secs(3);
/// How many times a Justify Request is sent at most (the first and its retries).
pub const JUSTIFY_SENDS: u8 = 3;
/// With `confirmed_awaits_justification` (`spec/verify.md` §4.2.5): how long a check that
/// confirms failures blamed on nobody waits for the justification before it evicts. Time for
/// one retry of the Justify Request ([`JUSTIFY_RETRY`]) and its answer, and short of a cycle,
/// so that a liar caught so is evicted in the cycle that caught it.
pub const AWAIT_JUSTIFY: Duration = Duration::from_secs(4);

/// Why a Justify Request, Claim Request or Signed Claim was refused. Each has a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JustifyError {
    /// Not the TLV expected, a length that does not match, an unknown address encoding or a
    /// prefix length beyond the family's.
    #[error("malformed")]
    Malformed,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The key may not sign for the owner prefix it names (§3.2).
    #[error("key not bound to its owner prefix")]
    Unbound,
    /// Not an answer to a request of ours (neighbour, prefix, nonce), or too late.
    #[error("unexpected")]
    Unexpected,
    /// The signer offers infinity: it had no route for the destination when it signed.
    #[error("signed metric infinite")]
    Unreachable,
    /// The neighbour's claim is under the signed metric plus a link: its route cannot cost
    /// it what it claims, at least not at the instant the next hop signed.
    #[error("claim under the signed metric plus a link")]
    UnderFloor,
}

/// A request (Justify Request or Claim Request): the destination and the verifier's nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The destination whose route is to be justified.
    pub prefix: Prefix,
    /// Chosen by the verifier; echoed by the relay and signed by the next hop.
    pub nonce: u64,
}

/// A Signed Claim whose signature verified (its key's binding is the verifier's to check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedClaim {
    /// The destination.
    pub prefix: Prefix,
    /// The verifier's nonce.
    pub nonce: u64,
    /// The metric the signer offers for the destination (`INFINITY`: unreachable).
    pub metric: u16,
    /// A prefix the signer owns: its key must be bound to it (§3.2).
    pub owner: Prefix,
    /// The signer's key.
    pub key: [u8; 32],
}

pub(crate) fn put_prefix_header(out: &mut Vec<u8>, p: &Prefix) {
    out.push(match p.addr() {
        IpAddr::V4(_) => 1,
        IpAddr::V6(_) => 2,
    });
    out.push(p.len());
}

pub(crate) fn put_prefix_octets(out: &mut Vec<u8>, p: &Prefix) {
    let n = usize::from(p.len()).div_ceil(8);
    let octets: Vec<u8> = match p.addr() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    out.extend(octets.into_iter().take(n));
}

/// The octets a prefix of `(ae, plen)` takes, if the encoding is known and the length fits.
fn prefix_octets(ae: u8, plen: u8) -> Option<usize> {
    match ae {
        1 if plen <= 32 => Some(usize::from(plen).div_ceil(8)),
        2 if plen <= 128 => Some(usize::from(plen).div_ceil(8)),
        _ => None,
    }
}

/// The prefix of `(ae, plen)` from exactly its octets.
pub(crate) fn read_prefix(ae: u8, plen: u8, octets: &[u8]) -> Option<Prefix> {
    if prefix_octets(ae, plen)? != octets.len() {
        return None;
    }
    let addr = match ae {
        1 => {
            let mut o = [0u8; 4];
            o.get_mut(..octets.len())?.copy_from_slice(octets);
            IpAddr::V4(Ipv4Addr::from(o))
        }
        _ => {
            let mut o = [0u8; 16];
            o.get_mut(..octets.len())?.copy_from_slice(octets);
            IpAddr::V6(Ipv6Addr::from(o))
        }
    };
    Prefix::new(addr, plen).ok()
}

/// A Justify Request (`ty` = 227, verifier to neighbour) or a Claim Request (`ty` = 228,
/// neighbour to its next hop): type, length, AE, prefix length, nonce, the prefix's octets.
pub fn encode_request(ty: u8, r: &ClaimRequest) -> Vec<u8> {
    let mut t = vec![ty, 0];
    put_prefix_header(&mut t, &r.prefix);
    t.extend_from_slice(&r.nonce.to_be_bytes());
    put_prefix_octets(&mut t, &r.prefix);
    let len = t.len().saturating_sub(2);
    if let Some(l) = t.get_mut(1) {
        *l = u8::try_from(len).unwrap_or(u8::MAX);
    }
    t
}

/// Parses a request of type `ty` ([`encode_request`]); every length is checked first.
pub fn decode_request(ty: u8, b: &[u8]) -> Result<ClaimRequest, JustifyError> {
    let m = JustifyError::Malformed;
    let (&[t, len, ae, plen], rest) = b.split_first_chunk::<4>().ok_or(m)?;
    if t != ty || usize::from(len) != b.len().saturating_sub(2) {
        return Err(m);
    }
    let (nonce, octets) = rest.split_first_chunk::<8>().ok_or(m)?;
    Ok(ClaimRequest {
        prefix: read_prefix(ae, plen, octets).ok_or(m)?,
        nonce: u64::from_be_bytes(*nonce),
    })
}

fn claim_message(tlv_without_sig: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CLAIM_SIGNING_DOMAIN.len() + tlv_without_sig.len());
    m.extend_from_slice(CLAIM_SIGNING_DOMAIN);
    m.extend_from_slice(tlv_without_sig);
    m
}

/// The Signed Claim (229) of `metric` for `r`'s prefix, answering `r`'s nonce, signed by `key`
/// for its `owner` prefix (`spec/wire.md` §5.6).
pub fn encode_signed_claim(
    r: &ClaimRequest,
    metric: u16,
    owner: &Prefix,
    key: &SigningKey,
) -> Vec<u8> {
    let mut t = vec![tlv::SIGNED_CLAIM, 0];
    put_prefix_header(&mut t, &r.prefix);
    t.extend_from_slice(&r.nonce.to_be_bytes());
    t.extend_from_slice(&metric.to_be_bytes());
    put_prefix_header(&mut t, owner);
    put_prefix_octets(&mut t, &r.prefix);
    put_prefix_octets(&mut t, owner);
    t.extend_from_slice(key.verifying_key().as_bytes());
    // At most 16 + 16 + 16 + 32 + 64 octets after the type and length: always fits.
    let len = t.len().saturating_sub(2).saturating_add(64);
    if let Some(l) = t.get_mut(1) {
        *l = u8::try_from(len).unwrap_or(u8::MAX);
    }
    let sig = key.sign(&claim_message(&t));
    t.extend_from_slice(&sig.to_bytes());
    t
}

/// Parses a Signed Claim and checks its signature (`verify_strict`). Not its key's binding, nor
/// whether it answers a request ([`crate::Verifier::handle_signed_claim`]).
pub fn decode_signed_claim(b: &[u8]) -> Result<SignedClaim, JustifyError> {
    let m = JustifyError::Malformed;
    let (&[t, len, ae, plen], rest) = b.split_first_chunk::<4>().ok_or(m)?;
    if t != tlv::SIGNED_CLAIM || usize::from(len) != b.len().saturating_sub(2) {
        return Err(m);
    }
    let (nonce, rest) = rest.split_first_chunk::<8>().ok_or(m)?;
    let (&[m0, m1, oae, oplen], rest) = rest.split_first_chunk::<4>().ok_or(m)?;
    let n = prefix_octets(ae, plen).ok_or(m)?;
    let on = prefix_octets(oae, oplen).ok_or(m)?;
    let (p, rest) = rest.split_at_checked(n).ok_or(m)?;
    let (o, rest) = rest.split_at_checked(on).ok_or(m)?;
    let (key, sig) = rest.split_first_chunk::<32>().ok_or(m)?;
    let sig: &[u8; 64] = sig.try_into().map_err(|_| m)?;
    let signed = b.get(..b.len().saturating_sub(64)).ok_or(m)?;
    let vk = VerifyingKey::from_bytes(key).map_err(|_| JustifyError::BadSignature)?;
    vk.verify_strict(&claim_message(signed), &Signature::from_bytes(sig))
        .map_err(|_| JustifyError::BadSignature)?;
    Ok(SignedClaim {
        prefix: read_prefix(ae, plen, p).ok_or(m)?,
        nonce: u64::from_be_bytes(*nonce),
        metric: u16::from_be_bytes([m0, m1]),
        owner: read_prefix(oae, oplen, o).ok_or(m)?,
        key: *key,
    })
}

/// A relay's side (§4.2.5): Justify Requests forwarded to the next hop as Claim Requests,
/// waiting for its Signed Claim. Bounded to `max` (the oldest make room).
#[derive(Clone, Debug, Default)]
pub struct ClaimRelay {
    /// (prefix, nonce) → (the verifier that asked, the next hop asked, when).
    pending: BTreeMap<(Prefix, u64), (NeighbourId, NeighbourId, Instant)>,
    max: usize,
}

impl ClaimRelay {
    /// A relay remembering at most `max` requests.
    pub fn new(max: usize) -> ClaimRelay {
        ClaimRelay {
            pending: BTreeMap::new(),
            max: max.max(1),
        }
    }

    /// Verifier `from` asks us to justify our claim for `r.prefix`; `next_hop` is our selected
    /// route's next hop for it. Returns the Claim Request to send to the next hop, or `None`
    /// when there is nobody to ask (no route). A route through the verifier itself asks the
    /// verifier: where we advertise such a route back to it (no split horizon, which RFC 8966
    /// §3.7.4 leaves optional and babeld applies only to interfaces declared wired), its own
    /// Signed Claim is what justifies our claim (`spec/verify.md` §4.2.5 step 3).
    pub fn forward(
        &mut self,
        now: Instant,
        from: NeighbourId,
        r: ClaimRequest,
        next_hop: Option<NeighbourId>,
    ) -> Option<(NeighbourId, Vec<u8>)> {
        let x = next_hop?;
        self.pending
            .retain(|_, (_, _, at)| now.saturating_since(*at) <= JUSTIFY_WAIT);
        crate::bounded::make_room(&mut self.pending, self.max, &(r.prefix, r.nonce), |v| v.2);
        self.pending.insert((r.prefix, r.nonce), (from, x, now));
        Some((x, encode_request(tlv::CLAIM_REQUEST, &r)))
    }

    /// A Signed Claim arrived from neighbour `from`. Returns the verifier to relay it to
    /// (unchanged) if it answers a request we forwarded to `from`; its signature is the
    /// verifier's to check.
    pub fn answer(&mut self, now: Instant, from: NeighbourId, tlv: &[u8]) -> Option<NeighbourId> {
        let r = decode_request_fields(tlv)?;
        let (v, x, at) = *self.pending.get(&r)?;
        if x != from || now.saturating_since(at) > JUSTIFY_WAIT {
            return None;
        }
        self.pending.remove(&r);
        Some(v)
    }

    /// Requests waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The requests waiting, against their bound.
    pub fn table_size(&self) -> crate::TableSize {
        crate::TableSize {
            name: "relayed Justify Requests",
            len: self.pending.len(),
            max: self.max,
        }
    }
}

/// The (prefix, nonce) of a Signed Claim, without checking its signature.
fn decode_request_fields(b: &[u8]) -> Option<(Prefix, u64)> {
    let (&[t, _, ae, plen], rest) = b.split_first_chunk::<4>()?;
    if t != tlv::SIGNED_CLAIM {
        return None;
    }
    let (nonce, rest) = rest.split_first_chunk::<8>()?;
    let rest = rest.get(4..)?;
    let p = rest.get(..prefix_octets(ae, plen)?)?;
    Some((read_prefix(ae, plen, p)?, u64::from_be_bytes(*nonce)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn p(s: &str, len: u8) -> Prefix {
        Prefix::new(s.parse().unwrap(), len).unwrap()
    }

    fn nb(i: u8) -> NeighbourId {
        NeighbourId {
            ifindex: u32::from(i),
            address: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(i))),
        }
    }

    #[test]
    fn requests_round_trip_with_their_bytes() {
        let r = ClaimRequest {
            prefix: p("fd77::4", 128),
            nonce: 0x0102_0304_0506_0708,
        };
        let t = encode_request(tlv::JUSTIFY_REQUEST, &r);
        assert_eq!(&t[..12], &[227, 26, 2, 128, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(t.len(), 28);
        assert_eq!(decode_request(tlv::JUSTIFY_REQUEST, &t), Ok(r));
        // The other type is refused.
        assert_eq!(
            decode_request(tlv::CLAIM_REQUEST, &t),
            Err(JustifyError::Malformed)
        );
        let v4 = ClaimRequest {
            prefix: p("10.77.0.0", 16),
            nonce: 9,
        };
        let t = encode_request(tlv::CLAIM_REQUEST, &v4);
        assert_eq!(t, vec![228, 12, 1, 16, 0, 0, 0, 0, 0, 0, 0, 9, 10, 77]);
        assert_eq!(decode_request(tlv::CLAIM_REQUEST, &t), Ok(v4));
    }

    #[test]
    fn signed_claims_verify_and_refuse_tampering() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let r = ClaimRequest {
            prefix: p("fd77::4", 128),
            nonce: 42,
        };
        let owner = p("fd77::9", 128);
        let t = encode_signed_claim(&r, 336, &owner, &key);
        assert_eq!(usize::from(t[1]), t.len() - 2);
        let c = decode_signed_claim(&t).unwrap();
        assert_eq!(
            c,
            SignedClaim {
                prefix: r.prefix,
                nonce: 42,
                metric: 336,
                owner,
                key: *key.verifying_key().as_bytes(),
            }
        );
        // Any octet changed before the signature breaks it (or the framing).
        for i in 2..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 0x10;
            assert!(decode_signed_claim(&bad).is_err(), "octet {i}");
        }
        // Truncated or extended.
        for n in 0..t.len() {
            assert!(decode_signed_claim(&t[..n]).is_err());
        }
        let mut long = t.clone();
        long.push(0);
        assert!(decode_signed_claim(&long).is_err());
    }

    /// Arbitrary bytes give a value or an error, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = babel_core::Rng::new(11);
        for _ in 0..20_000 {
            let n = rng.below(160) as usize;
            let mut b: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
            let ty = [227u8, 228, 229][rng.below(3) as usize];
            if let Some(t) = b.first_mut() {
                *t = ty;
            }
            if let Some(l) = b.get_mut(1) {
                *l = u8::try_from(n.saturating_sub(2)).unwrap_or(0);
            }
            let _ = decode_request(ty, &b);
            let _ = decode_signed_claim(&b);
            let mut relay = ClaimRelay::new(4);
            let _ = relay.answer(Instant::from_secs(0), nb(1), &b);
        }
    }

    /// A relay forwards to its next hop (the verifier itself when its route runs through
    /// the verifier), relays back only the answer of the router it asked, once, in time; and
    /// stays bounded.
    #[test]
    fn relay_forwards_and_answers_once() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let owner = p("fd77::3", 128);
        let t0 = Instant::from_secs(0);
        let mut relay = ClaimRelay::new(2);
        let r = ClaimRequest {
            prefix: p("fd77::4", 128),
            nonce: 5,
        };
        assert_eq!(relay.forward(t0, nb(1), r, None), None);
        // Through the verifier: the verifier is asked, and its own Signed Claim goes back to
        // it.
        let mut through = relay.clone();
        let (to, _) = through.forward(t0, nb(1), r, Some(nb(1))).unwrap();
        assert_eq!(to, nb(1));
        let own = encode_signed_claim(&r, 192, &p("fd77::1", 128), &key);
        assert_eq!(through.answer(t0, nb(1), &own), Some(nb(1)));
        let (to, req) = relay.forward(t0, nb(1), r, Some(nb(2))).unwrap();
        assert_eq!(to, nb(2));
        assert_eq!(decode_request(tlv::CLAIM_REQUEST, &req), Ok(r));
        let claim = encode_signed_claim(&r, 96, &owner, &key);
        // From another router: not relayed.
        assert_eq!(relay.answer(t0, nb(3), &claim), None);
        // Too late.
        let late = t0 + JUSTIFY_WAIT + Duration::from_secs(1);
        let mut copy = relay.clone();
        assert_eq!(copy.answer(late, nb(2), &claim), None);
        assert_eq!(relay.answer(t0, nb(2), &claim), Some(nb(1)));
        assert_eq!(relay.answer(t0, nb(2), &claim), None);
        for i in 0..10 {
            let r = ClaimRequest {
                prefix: r.prefix,
                nonce: i,
            };
            relay.forward(t0, nb(1), r, Some(nb(2)));
        }
        assert_eq!(relay.pending(), 2);
    }
}
