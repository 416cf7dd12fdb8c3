//! Static keys in WireGuard's base64 format.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// Errors parsing a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not valid base64.
    #[error("key is not valid base64")]
    Base64,
    /// Decoded to the wrong number of bytes.
    #[error("key must be 32 bytes, got {0}")]
    Length(usize),
}

fn decode32(s: &str) -> Result<[u8; 32], KeyError> {
    let s = s.trim();
    // 32 bytes encode to 44 characters; refuse anything much longer
    // before allocating.
    if s.len() > 64 {
        return Err(KeyError::Length(s.len() * 3 / 4));
    }
    let v = B64.decode(s).map_err(|_| KeyError::Base64)?;
    let out: [u8; 32] = v
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Length(v.len()))?;
    Ok(out)
}

/// A Curve25519 static private key.
#[derive(Clone)]
pub struct PrivateKey(x25519_dalek::StaticSecret);

impl PrivateKey {
    /// Generates a new random key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        PrivateKey(x25519_dalek::StaticSecret::random_from_rng(rng))
    }
    /// From raw bytes (clamping is applied when used, as in WireGuard).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        PrivateKey(x25519_dalek::StaticSecret::from(b))
    }
    /// Raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
    /// Derives the public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }
    /// Base64 encoding (WireGuard format). Handle with care.
    pub fn to_base64(&self) -> String {
        let mut b = self.0.to_bytes();
        let s = B64.encode(b);
        b.zeroize();
        s
    }
    pub(crate) fn secret(&self) -> &x25519_dalek::StaticSecret {
        &self.0
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(<redacted>, public {})", self.public_key())
    }
}

impl FromStr for PrivateKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let mut b = decode32(s)?;
        let k = PrivateKey::from_bytes(b);
        b.zeroize();
        Ok(k)
    }
}

/// A Curve25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Base64 encoding (WireGuard format).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}
impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        decode32(s).map(PublicKey)
    }
}

/// An optional symmetric pre-shared key mixed into the handshake.
#[derive(Clone, PartialEq, Eq)]
pub struct PresharedKey(pub [u8; 32]);

impl PresharedKey {
    /// Generates a random PSK.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        PresharedKey(b)
    }
    /// Base64 encoding (WireGuard format).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }
}
impl Drop for PresharedKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}
impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}
impl FromStr for PresharedKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        decode32(s).map(PresharedKey)
    }
}

macro_rules! serde_base64 {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_base64())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_base64!(PrivateKey);
serde_base64!(PublicKey);
serde_base64!(PresharedKey);

/// Generates a key pair (for `babelctl genkey`/`pubkey`).
pub fn generate_keypair<R: RngCore + CryptoRng>(rng: &mut R) -> (PrivateKey, PublicKey) {
    let sk = PrivateKey::generate(rng);
    let pk = sk.public_key();
    (sk, pk)
}

/// Derives the base64 public key from a base64 private key (`wg pubkey`).
pub fn public_key_from_base64(private: &str) -> Result<String, KeyError> {
    Ok(private.parse::<PrivateKey>()?.public_key().to_base64())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_errors() {
        // Vector from RFC 7748 §6.1 (Alice), in WireGuard base64.
        let sk_hex = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
        let pk_hex = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
        let sk = PrivateKey::from_bytes(hex::decode(sk_hex).unwrap().try_into().unwrap());
        assert_eq!(hex::encode(sk.public_key().0), pk_hex);
        let b = sk.to_base64();
        let sk2: PrivateKey = b.parse().unwrap();
        assert_eq!(sk2.to_bytes(), sk.to_bytes());
        let pk_b64 = public_key_from_base64(&b).unwrap();
        assert_eq!(pk_b64.parse::<PublicKey>().unwrap(), sk.public_key());
        assert_eq!("!!!".parse::<PublicKey>(), Err(KeyError::Base64));
        assert_eq!("AAAA".parse::<PublicKey>(), Err(KeyError::Length(3)));
        assert!("A".repeat(1000).parse::<PublicKey>().is_err());
        let json = serde_json::to_string(&sk.public_key()).unwrap();
        assert_eq!(
            serde_json::from_str::<PublicKey>(&json).unwrap(),
            sk.public_key()
        );
    }
}
