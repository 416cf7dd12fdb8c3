//! The primitives WireGuard composes: BLAKE2s-256 `HASH`, keyed
//! BLAKE2s-128 `MAC`, HMAC-BLAKE2s and the HKDF-style `KDF1/2/3`, the
//! handshake AEAD (ChaCha20-Poly1305) and the cookie XAEAD
//! (XChaCha20-Poly1305).

use blake2::digest::{FixedOutput, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};

use crate::aead::AeadError;

/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;

/// `HASH(a ‖ b ‖ …)`: BLAKE2s-256 over the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

/// `MAC(key, input)`: keyed BLAKE2s with a 16-byte output.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // Keys here are always 16 or 32 bytes, which BLAKE2s accepts; an
    // invalid length would only come from a programming error, and yields
    // an all-zero MAC that can never verify against a real one.
    let Ok(mut m) = <Blake2sMac<blake2::digest::consts::U16> as KeyInit>::new_from_slice(key)
    else {
        return [0; 16];
    };
    for p in parts {
        Update::update(&mut m, p);
    }
    m.finalize_fixed().into()
}

const BLOCK: usize = 64;

/// HMAC-BLAKE2s-256 with a 32-byte key.
pub fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(key.iter()) {
        *i ^= k;
        *o ^= k;
    }
    let mut inner = Blake2s256::new();
    Digest::update(&mut inner, ipad);
    for p in parts {
        Digest::update(&mut inner, p);
    }
    let ih: [u8; 32] = inner.finalize().into();
    let mut outer = Blake2s256::new();
    Digest::update(&mut outer, opad);
    Digest::update(&mut outer, ih);
    outer.finalize().into()
}

/// `KDF1(key, input)`.
pub fn kdf1(key: &[u8; 32], input: &[u8]) -> [u8; 32] {
    let t0 = hmac(key, &[input]);
    hmac(&t0, &[&[1]])
}

/// `KDF2(key, input)`.
pub fn kdf2(key: &[u8; 32], input: &[u8]) -> ([u8; 32], [u8; 32]) {
    let t0 = hmac(key, &[input]);
    let t1 = hmac(&t0, &[&[1]]);
    let t2 = hmac(&t0, &[&t1, &[2]]);
    (t1, t2)
}

/// `KDF3(key, input)`.
pub fn kdf3(key: &[u8; 32], input: &[u8]) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let t0 = hmac(key, &[input]);
    let t1 = hmac(&t0, &[&[1]]);
    let t2 = hmac(&t0, &[&t1, &[2]]);
    let t3 = hmac(&t0, &[&t2, &[3]]);
    (t1, t2, t3)
}

fn nonce12(counter: u64) -> chacha20poly1305::Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n.into()
}

/// Handshake `AEAD(key, counter, plaintext, aad)`: writes
/// ciphertext ‖ tag into `out`, which must be `plaintext.len() + 16` long.
pub fn aead_seal(key: &[u8; 32], counter: u64, plaintext: &[u8], aad: &[u8], out: &mut [u8]) {
    let cipher = ChaCha20Poly1305::new(key.into());
    let Some((ct, tag_out)) = out.split_at_mut_checked(plaintext.len()) else {
        return;
    };
    ct.copy_from_slice(plaintext);
    if let Ok(tag) = cipher.encrypt_in_place_detached(&nonce12(counter), aad, ct)
        && tag_out.len() == TAG_LEN
    {
        tag_out.copy_from_slice(&tag);
    }
}

/// Handshake AEAD open: `ciphertext` is ct ‖ tag; the plaintext goes to
/// `out` (exactly `ciphertext.len() - 16` bytes).
pub fn aead_open(
    key: &[u8; 32],
    counter: u64,
    ciphertext: &[u8],
    aad: &[u8],
    out: &mut [u8],
) -> Result<(), AeadError> {
    let cipher = ChaCha20Poly1305::new(key.into());
    let n = ciphertext.len().checked_sub(TAG_LEN).ok_or(AeadError)?;
    let (ct, tag) = ciphertext.split_at(n);
    if out.len() != n {
        return Err(AeadError);
    }
    out.copy_from_slice(ct);
    cipher
        .decrypt_in_place_detached(&nonce12(counter), aad, out, tag.into())
        .map_err(|_| AeadError)
}

/// Cookie `XAEAD(key, nonce, plaintext, aad)` (XChaCha20-Poly1305).
pub fn xaead_seal(key: &[u8; 32], nonce: &[u8; 24], plaintext: &[u8], aad: &[u8], out: &mut [u8]) {
    let cipher = XChaCha20Poly1305::new(key.into());
    let Some((ct, tag_out)) = out.split_at_mut_checked(plaintext.len()) else {
        return;
    };
    ct.copy_from_slice(plaintext);
    if let Ok(tag) = cipher.encrypt_in_place_detached(nonce.into(), aad, ct)
        && tag_out.len() == TAG_LEN
    {
        tag_out.copy_from_slice(&tag);
    }
}

/// Cookie XAEAD open (ciphertext is ct ‖ tag).
pub fn xaead_open(
    key: &[u8; 32],
    nonce: &[u8; 24],
    ciphertext: &[u8],
    aad: &[u8],
    out: &mut [u8],
) -> Result<(), AeadError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let n = ciphertext.len().checked_sub(TAG_LEN).ok_or(AeadError)?;
    let (ct, tag) = ciphertext.split_at(n);
    if out.len() != n {
        return Err(AeadError);
    }
    out.copy_from_slice(ct);
    cipher
        .decrypt_in_place_detached(nonce.into(), aad, out, tag.into())
        .map_err(|_| AeadError)
}

/// Constant-time equality for MACs and keys.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    // Prevent the compiler from short-circuiting on `d`.
    std::hint::black_box(d) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn blake2s_known_answers() {
        // RFC 7693 Appendix B: BLAKE2s-256("abc").
        assert_eq!(
            hex::encode(hash(&[b"abc"])),
            "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"
        );
        // Split input hashes like the concatenation.
        assert_eq!(hash(&[b"a", b"bc"]), hash(&[b"abc"]));
    }

    #[test]
    fn hmac_matches_generic_construction() {
        // HMAC via the `hmac` definition with BLAKE2s as computed by a
        // different code path: RustCrypto's SimpleHmac is not a dependency,
        // so check the defining property against the keyed-hash identity
        // H((K^opad) ‖ H((K^ipad) ‖ m)) built by hand with a 64-byte key.
        let key = [7u8; 32];
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&key);
        let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        let inner = hash(&[&ipad, b"message"]);
        let expect = hash(&[&opad, &inner]);
        assert_eq!(hmac(&key, &[b"mess", b"age"]), expect);
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        let key = [3u8; 32];
        let mut ct = [0u8; 5 + 16];
        aead_seal(&key, 9, b"hello", b"ad", &mut ct);
        let mut pt = [0u8; 5];
        aead_open(&key, 9, &ct, b"ad", &mut pt).unwrap();
        assert_eq!(&pt, b"hello");
        assert!(aead_open(&key, 8, &ct, b"ad", &mut pt).is_err());
        assert!(aead_open(&key, 9, &ct, b"xx", &mut pt).is_err());
        assert!(aead_open(&key, 9, &ct[..10], b"ad", &mut pt).is_err());
        let n = [1u8; 24];
        let mut xct = [0u8; 16 + 16];
        xaead_seal(&key, &n, &[5u8; 16], b"m", &mut xct);
        let mut xpt = [0u8; 16];
        xaead_open(&key, &n, &xct, b"m", &mut xpt).unwrap();
        assert_eq!(xpt, [5u8; 16]);
        xct[0] ^= 1;
        assert!(xaead_open(&key, &n, &xct, b"m", &mut xpt).is_err());
    }
}
