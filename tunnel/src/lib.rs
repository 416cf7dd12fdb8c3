//! A WireGuard-compatible encrypted tunnel, one per Babel neighbour.
//!
//! The protocol core ([`Peer`], [`Device`]) is sans-IO: it never reads a
//! clock, never opens a socket and never spawns. Every call takes the
//! current time as a [`Now`] value (a monotonic [`clock::Instant`] plus a
//! wall-clock [`Tai64N`] used only for handshake timestamps). Randomness
//! (ephemeral keys, indices, cookie nonces, timer jitter) comes from an RNG
//! handed in at construction, so tests can be fully deterministic.
//!
//! Wire format and cryptography follow the WireGuard whitepaper:
//! Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake (message types 1 and 2),
//! cookie replies (type 3) with MAC1/MAC2, transport data (type 4),
//! keepalives, the rekey/reject timers and an 8192-bit replay window.
//!
//! The bulk transport AEAD sits behind [`aead::AeadProvider`]; `ring` is the
//! default (≈3× faster than the portable RustCrypto build at MTU size, see
//! docs/benchmarks-tunnel.md),
//! RustCrypto's `chacha20poly1305` is always available.
//!
//! With the `driver` feature (on by default) the [`driver`] module runs a
//! [`Device`] over a Linux TUN interface and a tokio UDP socket.

pub mod aead;
pub mod allowed_ips;
pub mod config;
mod cookie;
pub mod crypto;
pub mod device;
#[cfg(feature = "driver")]
pub mod driver;
pub mod error;
pub mod hook;
#[cfg(test)]
mod kat;
pub mod keys;
pub mod messages;
pub mod noise;
pub mod peer;
pub mod policy;
pub mod replay;
mod session;
pub mod stats;
pub mod time;
pub mod timers;

pub use allowed_ips::AllowedIps;
pub use config::{PeerConfig, TunnelConfig};
pub use device::{Device, DeviceAction, PeerId};
pub use error::{DropReason, TunnelError};
pub use hook::{PacketHook, PacketVerdict};
pub use keys::{KeyError, PresharedKey, PrivateKey, PublicKey, generate_keypair};
pub use peer::{Peer, PeerAction, PeerOptions};
pub use policy::{ForwardingPolicy, PolicyExempt};
pub use stats::{DeviceStats, PeerStats};
pub use time::{Now, Tai64N};

/// Bytes added to every transport message: 16-byte header + 16-byte tag.
pub const DATA_OVERHEAD: usize = 32;

/// Smallest output buffer that fits any handshake or cookie message.
pub const MIN_OUT_BUFFER: usize = messages::INITIATION_LEN;

/// Output buffer size needed to encapsulate `plaintext_len` bytes
/// (header, tag and up to 15 bytes of padding).
pub const fn encapsulated_len(plaintext_len: usize) -> usize {
    let padded = plaintext_len.div_ceil(16) * 16;
    let n = padded + DATA_OVERHEAD;
    if n < MIN_OUT_BUFFER {
        MIN_OUT_BUFFER
    } else {
        n
    }
}
