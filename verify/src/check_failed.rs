//! The Check Failed TLV (226, `spec/wire.md` §5.3; `spec/verify.md` §2.5): a verifier tells
//! the neighbour whose route to a destination failed its check, over the link between them.

use babel_wire::Prefix;

/// Why a Check Failed TLV was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckFailedError {
    /// Not a Check Failed TLV, too short or too long for its prefix, an unknown address
    /// encoding or a prefix length beyond the family's.
    #[error("malformed Check Failed")]
    Malformed,
}

/// The TLV for `prefix`: type, length, AE (1 IPv4, 2 IPv6), prefix length, then the prefix's
/// ⌈plen/8⌉ octets.
pub fn encode_check_failed(prefix: &Prefix) -> Vec<u8> {
    let mut t = vec![babel_wire::tlv::CHECK_FAILED, 0];
    crate::justify::put_prefix_header(&mut t, prefix);
    crate::justify::put_prefix_octets(&mut t, prefix);
    let len = t.len().saturating_sub(2);
    if let Some(l) = t.get_mut(1) {
        *l = u8::try_from(len).unwrap_or(u8::MAX);
    }
    t
}

/// The prefix of a Check Failed TLV (type octet first, as [`encode_check_failed`] makes it).
/// Every length is checked before it is read; octets past the prefix are refused.
pub fn decode_check_failed(tlv: &[u8]) -> Result<Prefix, CheckFailedError> {
    let m = CheckFailedError::Malformed;
    let (&[t, len, ae, plen], rest) = tlv.split_first_chunk::<4>().ok_or(m)?;
    if t != babel_wire::tlv::CHECK_FAILED || usize::from(len) != tlv.len().saturating_sub(2) {
        return Err(m);
    }
    crate::justify::read_prefix(ae, plen, rest).ok_or(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bytes() {
        let p = Prefix::new("fd77::4".parse().unwrap(), 128).unwrap();
        let t = encode_check_failed(&p);
        assert_eq!(t.len(), 4 + 16);
        assert_eq!(&t[..4], &[226, 18, 2, 128]);
        assert_eq!(decode_check_failed(&t), Ok(p));
        let lan = Prefix::new("fd77:0:0:4::".parse().unwrap(), 64).unwrap();
        let t = encode_check_failed(&lan);
        assert_eq!(&t[..4], &[226, 10, 2, 64]);
        assert_eq!(decode_check_failed(&t), Ok(lan));
        let v4 = Prefix::new("10.77.0.0".parse().unwrap(), 16).unwrap();
        let t = encode_check_failed(&v4);
        assert_eq!(t, vec![226, 4, 1, 16, 10, 77]);
        assert_eq!(decode_check_failed(&t), Ok(v4));
    }

    #[test]
    fn malformed_is_refused() {
        let m = Err(CheckFailedError::Malformed);
        for bad in [
            &[][..],
            &[226, 2, 2][..],
            &[225, 2, 2, 0][..],
            &[226, 3, 2, 0][..],
            &[226, 3, 2, 8][..],
            &[226, 4, 2, 8, 1, 2][..],
            &[226, 3, 3, 8, 1][..],
            &[226, 3, 1, 33, 1][..],
            &[
                226, 19, 2, 129, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ][..],
        ] {
            assert_eq!(decode_check_failed(bad), m, "{bad:?}");
        }
    }

    /// Arbitrary bytes (a seeded generator) give a prefix or an error, never a panic; every
    /// prefix decoded encodes back to the same bytes.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = babel_core::Rng::new(7);
        for _ in 0..20_000 {
            let n = rng.below(24) as usize;
            let mut b: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
            if let Some(t) = b.first_mut() {
                *t = 226;
            }
            if let Ok(p) = decode_check_failed(&b) {
                let again = encode_check_failed(&p);
                assert_eq!(decode_check_failed(&again), Ok(p));
            }
        }
    }
}
