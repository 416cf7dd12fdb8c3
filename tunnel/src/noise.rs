//! Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as profiled by WireGuard.
//!
//! The functions here compute message bodies and session keys only; MAC1/
//! MAC2, indices bookkeeping, replay checks on timestamps and timers live in
//! [`crate::peer`].

use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey as XPublic, StaticSecret};
use zeroize::Zeroize;

use crate::crypto::{aead_open, aead_seal, hash, kdf1, kdf2, kdf3, mac};
use crate::error::DropReason;
use crate::keys::{PrivateKey, PublicKey};
use crate::messages::{self, Initiation, Response};
use crate::time::Tai64N;

/// Noise protocol name.
pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// WireGuard identifier mixed into the initial hash.
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
/// mac1 key label.
pub const LABEL_MAC1: &[u8] = b"mac1----";
/// Cookie key label.
pub const LABEL_COOKIE: &[u8] = b"cookie--";

/// `(C_i, H_i)` before the responder's static key is mixed in.
pub fn initial_chain() -> ([u8; 32], [u8; 32]) {
    let ck = hash(&[CONSTRUCTION]);
    let h = hash(&[&ck, IDENTIFIER]);
    (ck, h)
}

/// Our static identity plus the keys derived from it.
pub struct Identity {
    pub(crate) private: PrivateKey,
    pub(crate) public: PublicKey,
    /// `HASH(LABEL_MAC1 ‖ our public)`: verifies mac1 on messages to us.
    pub(crate) mac1_key: [u8; 32],
    /// `HASH(LABEL_COOKIE ‖ our public)`: encrypts cookie replies we send.
    pub(crate) cookie_key: [u8; 32],
    /// `HASH(H0 ‖ our public)`: the responder's starting hash.
    pub(crate) responder_hash: [u8; 32],
}

impl Identity {
    /// Derives everything from a private key.
    pub fn new(private: PrivateKey) -> Self {
        let public = private.public_key();
        let (_, h0) = initial_chain();
        Identity {
            mac1_key: hash(&[LABEL_MAC1, &public.0]),
            cookie_key: hash(&[LABEL_COOKIE, &public.0]),
            responder_hash: hash(&[&h0, &public.0]),
            private,
            public,
        }
    }
    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Per-peer precomputed values.
pub(crate) struct PeerKeys {
    pub(crate) public: PublicKey,
    pub(crate) psk: [u8; 32],
    /// `HASH(LABEL_MAC1 ‖ peer public)`: mac1 on messages we send.
    pub(crate) mac1_key: [u8; 32],
    /// `HASH(LABEL_COOKIE ‖ peer public)`: decrypts cookie replies.
    pub(crate) cookie_key: [u8; 32],
    /// `DH(our static, peer static)`; `None` if the result is all zeros.
    pub(crate) static_static: Option<[u8; 32]>,
}

impl PeerKeys {
    pub(crate) fn new(id: &Identity, public: PublicKey, psk: Option<[u8; 32]>) -> Self {
        let ss = id.private.secret().diffie_hellman(&XPublic::from(public.0));
        PeerKeys {
            public,
            psk: psk.unwrap_or([0; 32]),
            mac1_key: hash(&[LABEL_MAC1, &public.0]),
            cookie_key: hash(&[LABEL_COOKIE, &public.0]),
            static_static: ss.was_contributory().then(|| ss.to_bytes()),
        }
    }
}

impl Drop for PeerKeys {
    fn drop(&mut self) {
        self.psk.zeroize();
        if let Some(s) = self.static_static.as_mut() {
            s.zeroize();
        }
    }
}

fn dh(secret: &StaticSecret, public: &[u8; 32]) -> Result<[u8; 32], DropReason> {
    let s = secret.diffie_hellman(&XPublic::from(*public));
    if s.was_contributory() {
        Ok(s.to_bytes())
    } else {
        Err(DropReason::HandshakeAuth)
    }
}

/// Initiator state between sending the initiation and receiving the
/// response.
pub(crate) struct InitiatorState {
    pub(crate) ck: [u8; 32],
    pub(crate) h: [u8; 32],
    pub(crate) ephemeral: StaticSecret,
    pub(crate) local_index: u32,
}

impl Drop for InitiatorState {
    fn drop(&mut self) {
        self.ck.zeroize();
        self.h.zeroize();
    }
}

/// Session keys from a completed handshake.
pub(crate) struct SessionKeys {
    pub(crate) send: [u8; 32],
    pub(crate) recv: [u8; 32],
    pub(crate) remote_index: u32,
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        self.send.zeroize();
        self.recv.zeroize();
    }
}

/// Writes an initiation (everything except mac1/mac2) into `out`.
pub(crate) fn create_initiation<R: RngCore + CryptoRng>(
    id: &Identity,
    peer: &PeerKeys,
    local_index: u32,
    timestamp: Tai64N,
    rng: &mut R,
    out: &mut [u8; messages::INITIATION_LEN],
) -> Result<InitiatorState, DropReason> {
    let ss = peer.static_static.ok_or(DropReason::HandshakeAuth)?;
    let (ck, h0) = initial_chain();
    let mut h = hash(&[&h0, &peer.public.0]);
    let ephemeral = StaticSecret::random_from_rng(rng);
    let e_pub = XPublic::from(&ephemeral).to_bytes();
    messages::put_header(out, messages::TYPE_INITIATION);
    messages::put(out, 4, &local_index.to_le_bytes());
    messages::put(out, 8, &e_pub);
    let mut ck = kdf1(&ck, &e_pub);
    h = hash(&[&h, &e_pub]);
    let es = dh(&ephemeral, &peer.public.0)?;
    let (ck2, mut k) = kdf2(&ck, &es);
    ck = ck2;
    let mut enc_static = [0u8; 48];
    aead_seal(&k, 0, &id.public.0, &h, &mut enc_static);
    messages::put(out, 40, &enc_static);
    h = hash(&[&h, &enc_static]);
    let (ck3, k2) = kdf2(&ck, &ss);
    ck = ck3;
    k = k2;
    let mut enc_ts = [0u8; 28];
    aead_seal(&k, 0, &timestamp.to_bytes(), &h, &mut enc_ts);
    messages::put(out, 88, &enc_ts);
    h = hash(&[&h, &enc_ts]);
    k.zeroize();
    Ok(InitiatorState {
        ck,
        h,
        ephemeral,
        local_index,
    })
}

/// Result of decrypting an initiation's static key: identifies the peer.
pub(crate) struct InitiationFirstHalf {
    pub(crate) peer_public: PublicKey,
    pub(crate) ck: [u8; 32],
    pub(crate) h: [u8; 32],
    pub(crate) remote_ephemeral: [u8; 32],
    pub(crate) remote_index: u32,
    pub(crate) encrypted_timestamp: [u8; 28],
}

/// Responder, step 1: decrypt the initiator's static key.
pub(crate) fn consume_initiation(
    id: &Identity,
    msg: &Initiation<'_>,
) -> Result<InitiationFirstHalf, DropReason> {
    let (ck, _) = initial_chain();
    let e = msg.ephemeral();
    let ck = kdf1(&ck, &e);
    let h = hash(&[&id.responder_hash, &e]);
    let es = dh(id.private.secret(), &e)?;
    let (ck, mut k) = kdf2(&ck, &es);
    let enc_static = msg.encrypted_static();
    let mut s = [0u8; 32];
    aead_open(&k, 0, &enc_static, &h, &mut s).map_err(|_| DropReason::HandshakeAuth)?;
    k.zeroize();
    let h = hash(&[&h, &enc_static]);
    Ok(InitiationFirstHalf {
        peer_public: PublicKey(s),
        ck,
        h,
        remote_ephemeral: e,
        remote_index: msg.sender(),
        encrypted_timestamp: msg.encrypted_timestamp(),
    })
}

/// Responder, step 2 (peer known): decrypt the timestamp.
pub(crate) fn finish_initiation(
    half: &mut InitiationFirstHalf,
    peer: &PeerKeys,
) -> Result<Tai64N, DropReason> {
    let ss = peer.static_static.ok_or(DropReason::HandshakeAuth)?;
    let (ck, mut k) = kdf2(&half.ck, &ss);
    let mut ts = [0u8; 12];
    aead_open(&k, 0, &half.encrypted_timestamp, &half.h, &mut ts)
        .map_err(|_| DropReason::HandshakeAuth)?;
    k.zeroize();
    half.ck = ck;
    half.h = hash(&[&half.h, &half.encrypted_timestamp]);
    Ok(Tai64N::from_bytes(&ts))
}

/// Responder, step 3: write the response body (without MACs) and derive
/// the transport keys.
pub(crate) fn create_response<R: RngCore + CryptoRng>(
    half: &InitiationFirstHalf,
    peer: &PeerKeys,
    local_index: u32,
    rng: &mut R,
    out: &mut [u8; messages::RESPONSE_LEN],
) -> Result<SessionKeys, DropReason> {
    let ephemeral = StaticSecret::random_from_rng(rng);
    let e_pub = XPublic::from(&ephemeral).to_bytes();
    messages::put_header(out, messages::TYPE_RESPONSE);
    messages::put(out, 4, &local_index.to_le_bytes());
    messages::put(out, 8, &half.remote_index.to_le_bytes());
    messages::put(out, 12, &e_pub);
    let mut ck = kdf1(&half.ck, &e_pub);
    let mut h = hash(&[&half.h, &e_pub]);
    ck = kdf1(&ck, &dh(&ephemeral, &half.remote_ephemeral)?);
    ck = kdf1(&ck, &dh(&ephemeral, &half.peer_public.0)?);
    let (ck2, t, mut k) = kdf3(&ck, &peer.psk);
    ck = ck2;
    h = hash(&[&h, &t]);
    let mut empty = [0u8; 16];
    aead_seal(&k, 0, &[], &h, &mut empty);
    messages::put(out, 44, &empty);
    k.zeroize();
    let (recv, send) = kdf2(&ck, &[]);
    ck.zeroize();
    Ok(SessionKeys {
        send,
        recv,
        remote_index: half.remote_index,
    })
}

/// Initiator: consume a response, deriving the transport keys.
pub(crate) fn consume_response(
    st: &InitiatorState,
    id: &Identity,
    peer: &PeerKeys,
    msg: &Response<'_>,
) -> Result<SessionKeys, DropReason> {
    let e = msg.ephemeral();
    let mut ck = kdf1(&st.ck, &e);
    let mut h = hash(&[&st.h, &e]);
    ck = kdf1(&ck, &dh(&st.ephemeral, &e)?);
    ck = kdf1(&ck, &dh(id.private.secret(), &e)?);
    let (ck2, t, mut k) = kdf3(&ck, &peer.psk);
    ck = ck2;
    h = hash(&[&h, &t]);
    let mut nothing = [0u8; 0];
    aead_open(&k, 0, &msg.encrypted_nothing(), &h, &mut nothing)
        .map_err(|_| DropReason::HandshakeAuth)?;
    k.zeroize();
    let (send, recv) = kdf2(&ck, &[]);
    ck.zeroize();
    Ok(SessionKeys {
        send,
        recv,
        remote_index: msg.sender(),
    })
}

/// `MAC(key, msg[..off])` — mac1 or mac2 over a message prefix.
pub(crate) fn mac_prefix(key: &[u8], msg: &[u8], off: usize) -> [u8; 16] {
    mac(key, &[msg.get(..off).unwrap_or(&[])])
}
