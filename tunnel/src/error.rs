//! Error and drop-reason types.

/// Why an input was dropped. Every dropped input is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// Wrong length, unknown type, non-zero reserved bytes, or a decrypted
    /// payload that is not an IP packet.
    #[error("malformed packet")]
    Malformed,
    /// mac1 did not verify.
    #[error("invalid mac1")]
    InvalidMac1,
    /// Under load and mac2 missing/invalid: a cookie reply was sent.
    #[error("under load, cookie required")]
    CookieRequired,
    /// Per-source handshake rate limit hit while under load.
    #[error("handshake rate limited")]
    RateLimited,
    /// No session/handshake with this receiver index.
    #[error("unknown receiver index")]
    UnknownIndex,
    /// Handshake initiation from a static key we do not know.
    #[error("unknown peer")]
    UnknownPeer,
    /// Noise decryption failed (bad static/timestamp/empty payload, wrong
    /// PSK, wrong key).
    #[error("handshake authentication failed")]
    HandshakeAuth,
    /// Initiation timestamp not newer than the last accepted one, or
    /// initiations arriving faster than allowed.
    #[error("replayed or flooded handshake initiation")]
    HandshakeReplay,
    /// Transport message failed authentication.
    #[error("transport decryption failed")]
    DecryptFailed,
    /// Transport counter already seen or too old for the window.
    #[error("replayed or too old counter")]
    Replay,
    /// Key too old or counter exhausted.
    #[error("keypair expired")]
    KeyExpired,
    /// Unexpected message in the current state (e.g. a response with no
    /// initiation outstanding, a cookie reply that does not decrypt).
    #[error("unexpected message")]
    Unexpected,
    /// Forwarding policy (Block or RateLimit) dropped a data packet.
    #[error("dropped by forwarding policy")]
    Policy,
    /// Decrypted packet's source address is not in the peer's allowed IPs.
    #[error("source address not allowed for this peer")]
    NotAllowedSource,
    /// No peer owns the destination address of an outgoing packet.
    #[error("no route to a peer")]
    NoRoute,
    /// Peer has no endpoint address to send to.
    #[error("peer has no endpoint")]
    NoEndpoint,
    /// Packet queued waiting for a handshake, queue full.
    #[error("send queue full")]
    QueueFull,
}

/// Errors returned by the tunnel API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// The input was dropped (and counted).
    #[error("dropped: {0}")]
    Dropped(#[from] DropReason),
    /// The output buffer is too small for the result.
    #[error("output buffer too small: need {need} bytes")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
    },
    /// Unknown peer id.
    #[error("no such peer")]
    NoSuchPeer,
}

impl TunnelError {
    /// The drop reason, if this error is a drop.
    pub fn drop_reason(&self) -> Option<DropReason> {
        match self {
            TunnelError::Dropped(r) => Some(*r),
            _ => None,
        }
    }
}
