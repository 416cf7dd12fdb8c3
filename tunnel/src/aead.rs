//! The bulk transport AEAD behind a small provider seam.
//!
//! Transport messages use ChaCha20-Poly1305 with a 32-byte key, a nonce of
//! four zero bytes followed by the 64-bit little-endian counter, and no
//! associated data. Two providers are built in: [`RING`] (the default when
//! the `ring` feature is on) and [`RUST_CRYPTO`].

use std::fmt;

/// Authentication failed (or the buffer was malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AEAD authentication failed")]
pub struct AeadError;

/// One direction's key of a transport keypair.
pub trait TransportKey: Send + Sync {
    /// Encrypts `buf` in place and returns the 16-byte tag.
    fn seal_in_place(&self, counter: u64, buf: &mut [u8]) -> Result<[u8; 16], AeadError>;
    /// Verifies `tag` and decrypts `buf` in place.
    fn open_in_place(&self, counter: u64, buf: &mut [u8], tag: &[u8; 16]) -> Result<(), AeadError>;
}

/// A factory for [`TransportKey`]s.
pub trait AeadProvider: Send + Sync + fmt::Debug {
    /// Short name for logs and benchmarks.
    fn name(&self) -> &'static str;
    /// Prepares a key for sealing/opening.
    fn key(&self, key: &[u8; 32]) -> Box<dyn TransportKey>;
}

/// RustCrypto `chacha20poly1305` provider (portable, always available).
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCryptoProvider;

/// The RustCrypto provider.
pub static RUST_CRYPTO: RustCryptoProvider = RustCryptoProvider;

struct RustCryptoKey(chacha20poly1305::ChaCha20Poly1305);

fn nonce_bytes(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

impl TransportKey for RustCryptoKey {
    fn seal_in_place(&self, counter: u64, buf: &mut [u8]) -> Result<[u8; 16], AeadError> {
        use chacha20poly1305::aead::AeadInPlace;
        let tag = self
            .0
            .encrypt_in_place_detached(&nonce_bytes(counter).into(), &[], buf)
            .map_err(|_| AeadError)?;
        Ok(tag.into())
    }
    fn open_in_place(&self, counter: u64, buf: &mut [u8], tag: &[u8; 16]) -> Result<(), AeadError> {
        use chacha20poly1305::aead::AeadInPlace;
        self.0
            .decrypt_in_place_detached(&nonce_bytes(counter).into(), &[], buf, tag.into())
            .map_err(|_| AeadError)
    }
}

impl AeadProvider for RustCryptoProvider {
    fn name(&self) -> &'static str {
        "rustcrypto"
    }
    fn key(&self, key: &[u8; 32]) -> Box<dyn TransportKey> {
        use chacha20poly1305::KeyInit;
        Box::new(RustCryptoKey(chacha20poly1305::ChaCha20Poly1305::new(
            key.into(),
        )))
    }
}

#[cfg(feature = "ring")]
mod ring_impl {
    use super::*;
    use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};

    /// `ring` provider (assembly ChaCha20-Poly1305; the fast default).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct RingProvider;

    struct RingKey(LessSafeKey);

    impl TransportKey for RingKey {
        fn seal_in_place(&self, counter: u64, buf: &mut [u8]) -> Result<[u8; 16], AeadError> {
            let nonce = Nonce::assume_unique_for_key(nonce_bytes(counter));
            let tag = self
                .0
                .seal_in_place_separate_tag(nonce, Aad::empty(), buf)
                .map_err(|_| AeadError)?;
            let mut out = [0u8; 16];
            out.copy_from_slice(tag.as_ref());
            Ok(out)
        }
        fn open_in_place(
            &self,
            counter: u64,
            buf: &mut [u8],
            tag: &[u8; 16],
        ) -> Result<(), AeadError> {
            let nonce = Nonce::assume_unique_for_key(nonce_bytes(counter));
            let tag = Tag::from(*tag);
            self.0
                .open_in_place_separate_tag(nonce, Aad::empty(), tag, buf, 0..)
                .map(|_| ())
                .map_err(|_| AeadError)
        }
    }

    impl AeadProvider for RingProvider {
        fn name(&self) -> &'static str {
            "ring"
        }
        fn key(&self, key: &[u8; 32]) -> Box<dyn TransportKey> {
            match UnboundKey::new(&CHACHA20_POLY1305, key) {
                Ok(k) => Box::new(RingKey(LessSafeKey::new(k))),
                // Cannot happen for a 32-byte key; fall back to the portable
                // implementation rather than panic.
                Err(_) => RUST_CRYPTO.key(key),
            }
        }
    }
}

#[cfg(feature = "ring")]
pub use ring_impl::RingProvider;

/// The `ring` provider.
#[cfg(feature = "ring")]
pub static RING: RingProvider = RingProvider;

/// The default provider: `ring` when enabled (measured ≈3–4× faster at
/// 1420 bytes, see docs/benchmarks-tunnel.md), else RustCrypto.
pub fn default_provider() -> &'static dyn AeadProvider {
    #[cfg(feature = "ring")]
    {
        &RING
    }
    #[cfg(not(feature = "ring"))]
    {
        &RUST_CRYPTO
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn providers() -> Vec<&'static dyn AeadProvider> {
        let mut v: Vec<&'static dyn AeadProvider> = vec![&RUST_CRYPTO];
        #[cfg(feature = "ring")]
        v.push(&RING);
        v
    }

    #[test]
    fn rfc8439_vector_all_providers() {
        // RFC 8439 §2.8.2 with the nonce's first 4 bytes 07000000 — our
        // nonce layout has zeros there, so use the counter-derived variant:
        // cross-check providers against each other and against the
        // handshake AEAD (a separate RustCrypto code path).
        let key = [0x42u8; 32];
        let pt: Vec<u8> = (0..1420u32).map(|i| i as u8).collect();
        let mut reference = vec![0u8; pt.len() + 16];
        crate::crypto::aead_seal(&key, 77, &pt, &[], &mut reference);
        for p in providers() {
            let k = p.key(&key);
            let mut buf = pt.clone();
            let tag = k.seal_in_place(77, &mut buf).unwrap();
            assert_eq!(&buf[..], &reference[..pt.len()], "{}", p.name());
            assert_eq!(&tag[..], &reference[pt.len()..], "{}", p.name());
            k.open_in_place(77, &mut buf, &tag).unwrap();
            assert_eq!(buf, pt);
            let mut bad = tag;
            bad[0] ^= 1;
            assert!(k.open_in_place(77, &mut buf, &bad).is_err());
        }
    }
}
