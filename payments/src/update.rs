//! Channel updates: the canonical byte layout, signing and strict verification.
//!
//! An update is signed with the payer's ed25519 key over a fixed-width encoding (never a
//! serialisation format with choices in it):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 32 | domain tag: `babeld-rs channel update v1`, zero-padded |
//! | 32 | 32 | channel id (binds the collateral: for an escrow contract, its channel id) |
//! | 64 | 32 | payer's ed25519 public key |
//! | 96 | 32 | payee's ed25519 public key |
//! | 128 | 8 | nonce, big-endian, strictly increasing per channel |
//! | 136 | 16 | cumulative amount paid, big-endian, in the smallest money unit |
//!
//! On the wire a [`SignedUpdate`] is these 152 bytes followed by the 64-byte signature.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// The domain tag that starts every signed update, zero-padded to 32 bytes.
pub const DOMAIN_TAG: [u8; 32] = *b"babeld-rs channel update v1\0\0\0\0\0";
/// Length of the canonical (signed) bytes of an update.
pub const CANONICAL_LEN: usize = 152;
/// Length of a signed update on the wire: canonical bytes then the signature.
pub const SIGNED_LEN: usize = CANONICAL_LEN + 64;

/// An amount of money in the smallest unit of the settlement asset (wei on an EVM chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub u128);

/// A channel's identity: 32 bytes that bind the collateral behind it. For an escrow contract it is
/// the contract's channel id (which itself binds chain id, contract address and both parties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(pub [u8; 32]);

/// An unsigned channel update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelUpdate {
    /// The channel this update belongs to.
    pub channel: ChannelId,
    /// The payer's ed25519 public key (the signer).
    pub payer: [u8; 32],
    /// The payee's ed25519 public key.
    pub payee: [u8; 32],
    /// Strictly increasing per channel.
    pub nonce: u64,
    /// Everything paid on this channel so far.
    pub cumulative: Amount,
}

/// An update with the payer's signature over its canonical bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedUpdate {
    /// The signed fields.
    pub update: ChannelUpdate,
    /// ed25519 signature by `update.payer` over [`ChannelUpdate::canonical_bytes`].
    pub signature: [u8; 64],
}

/// Why bytes are not a valid signed update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum UpdateError {
    /// Not exactly [`SIGNED_LEN`] bytes.
    #[error("signed update must be {SIGNED_LEN} bytes, got {0}")]
    Length(usize),
    /// The first 32 bytes are not [`DOMAIN_TAG`].
    #[error("wrong domain tag")]
    DomainTag,
    /// The payer field is not a valid ed25519 public key.
    #[error("payer key is not a valid ed25519 point")]
    PayerKey,
    /// The signature does not verify strictly under the payer's key.
    #[error("bad signature")]
    Signature,
}

impl ChannelUpdate {
    /// The exact bytes the payer signs (layout in the module documentation).
    pub fn canonical_bytes(&self) -> [u8; CANONICAL_LEN] {
        let mut out = [0u8; CANONICAL_LEN];
        let fields: [&[u8]; 6] = [
            &DOMAIN_TAG,
            &self.channel.0,
            &self.payer,
            &self.payee,
            &self.nonce.to_be_bytes(),
            &self.cumulative.0.to_be_bytes(),
        ];
        let mut at = 0;
        for f in fields {
            if let Some(dst) = out.get_mut(at..at + f.len()) {
                dst.copy_from_slice(f);
            }
            at += f.len();
        }
        out
    }

    /// Signs with the payer's key. The caller makes sure `key` is the payer's.
    pub fn sign(self, key: &SigningKey) -> SignedUpdate {
        let signature = key.sign(&self.canonical_bytes()).to_bytes();
        SignedUpdate {
            update: self,
            signature,
        }
    }
}

impl SignedUpdate {
    /// The wire form: canonical bytes then signature.
    pub fn to_bytes(&self) -> [u8; SIGNED_LEN] {
        let mut out = [0u8; SIGNED_LEN];
        let (head, tail) = out.split_at_mut(CANONICAL_LEN);
        head.copy_from_slice(&self.update.canonical_bytes());
        tail.copy_from_slice(&self.signature);
        out
    }

    /// Parses the wire form and verifies the signature strictly (no malleable encodings, no
    /// small-order keys) under the payer key it names. Whether that payer, payee and channel are
    /// the ones expected is the caller's check.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedUpdate, UpdateError> {
        let b: &[u8; SIGNED_LEN] = bytes
            .try_into()
            .map_err(|_| UpdateError::Length(bytes.len()))?;
        let (head, sig) = b.split_at(CANONICAL_LEN);
        let field = |from: usize, to: usize| head.get(from..to).unwrap_or_default();
        if field(0, 32) != DOMAIN_TAG {
            return Err(UpdateError::DomainTag);
        }
        let arr32 = |s: &[u8]| <[u8; 32]>::try_from(s).unwrap_or([0; 32]);
        let nonce = u64::from_be_bytes(field(128, 136).try_into().unwrap_or([0; 8]));
        let cumulative = u128::from_be_bytes(field(136, 152).try_into().unwrap_or([0; 16]));
        let signed = SignedUpdate {
            update: ChannelUpdate {
                channel: ChannelId(arr32(field(32, 64))),
                payer: arr32(field(64, 96)),
                payee: arr32(field(96, 128)),
                nonce,
                cumulative: Amount(cumulative),
            },
            signature: <[u8; 64]>::try_from(sig).unwrap_or([0; 64]),
        };
        signed.verify()?;
        Ok(signed)
    }

    /// Verifies the signature strictly under `update.payer`.
    pub fn verify(&self) -> Result<(), UpdateError> {
        let key =
            VerifyingKey::from_bytes(&self.update.payer).map_err(|_| UpdateError::PayerKey)?;
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&self.update.canonical_bytes(), &sig)
            .map_err(|_| UpdateError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn update(payer: &SigningKey) -> ChannelUpdate {
        ChannelUpdate {
            channel: ChannelId([7; 32]),
            payer: payer.verifying_key().to_bytes(),
            payee: key(2).verifying_key().to_bytes(),
            nonce: 5,
            cumulative: Amount(1_000_000_000_000),
        }
    }

    #[test]
    fn layout_matches_the_documented_offsets() {
        let u = update(&key(1));
        let b = u.canonical_bytes();
        assert_eq!(b.get(..27), Some(&b"babeld-rs channel update v1"[..]));
        assert_eq!(b.get(32..64), Some(&[7u8; 32][..]));
        assert_eq!(b.get(128..136), Some(&5u64.to_be_bytes()[..]));
        assert_eq!(
            b.get(136..152),
            Some(&1_000_000_000_000u128.to_be_bytes()[..])
        );
    }

    #[test]
    fn signed_update_round_trips_and_rejects_any_changed_byte() {
        let payer = key(1);
        let s = update(&payer).sign(&payer);
        let bytes = s.to_bytes();
        assert_eq!(SignedUpdate::from_bytes(&bytes), Ok(s));
        for i in 0..SIGNED_LEN {
            let mut bad = bytes;
            if let Some(b) = bad.get_mut(i) {
                *b ^= 1;
            }
            assert!(SignedUpdate::from_bytes(&bad).is_err(), "byte {i} flipped");
        }
        assert_eq!(
            SignedUpdate::from_bytes(bytes.get(..100).unwrap_or_default()),
            Err(UpdateError::Length(100))
        );
    }

    #[test]
    fn signature_by_another_key_fails() {
        let payer = key(1);
        let s = update(&payer).sign(&key(3));
        assert_eq!(s.verify(), Err(UpdateError::Signature));
    }
}
