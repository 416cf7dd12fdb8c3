//! Counters.

use clock::Instant;

use serde::Serialize;

use crate::error::DropReason;

/// Per-peer counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerStats {
    /// Plaintext bytes sent through the tunnel (data packets, not keepalives).
    pub tx_bytes: u64,
    /// Data packets sent.
    pub tx_packets: u64,
    /// Plaintext bytes received.
    pub rx_bytes: u64,
    /// Data packets received.
    pub rx_packets: u64,
    /// Keepalives sent.
    pub tx_keepalives: u64,
    /// Keepalives received.
    pub rx_keepalives: u64,
    /// Outgoing data packets dropped by the forwarding policy.
    pub tx_policy_drops: u64,
    /// Incoming data packets dropped by the forwarding policy.
    pub rx_policy_drops: u64,
    /// Handshake initiations sent.
    pub handshake_initiations_sent: u64,
    /// Completed handshakes (either role).
    pub handshakes_completed: u64,
    /// Cookie replies received from this peer.
    pub cookie_replies_received: u64,
    /// Replayed or too-old transport messages.
    pub replay_drops: u64,
    /// Transport messages that failed authentication.
    pub decrypt_drops: u64,
    /// Handshake messages that failed authentication or replay checks.
    pub handshake_drops: u64,
    /// Other drops attributed to this peer (expired keys, bad payload,
    /// disallowed source, queue overflow, …).
    pub other_drops: u64,
    /// Time of the last completed handshake.
    #[serde(skip)]
    pub last_handshake: Option<Instant>,
}

impl PeerStats {
    pub(crate) fn count_drop(&mut self, r: DropReason) {
        match r {
            DropReason::Replay => self.replay_drops += 1,
            DropReason::DecryptFailed => self.decrypt_drops += 1,
            DropReason::HandshakeAuth | DropReason::HandshakeReplay => self.handshake_drops += 1,
            DropReason::Policy => {}
            _ => self.other_drops += 1,
        }
    }
}

/// Device-wide counters (drops that cannot be attributed to a peer, plus
/// cookie activity).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStats {
    /// Datagrams received.
    pub rx_datagrams: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// Handshake messages with a bad mac1.
    pub invalid_mac1: u64,
    /// Data/response/cookie messages for unknown receiver indices.
    pub unknown_index: u64,
    /// Initiations from unknown static keys.
    pub unknown_peer: u64,
    /// Handshake messages that failed authentication before a peer was
    /// identified.
    pub handshake_auth_failed: u64,
    /// Cookie replies sent (under load).
    pub cookie_replies_sent: u64,
    /// Handshake messages dropped by the per-source rate limiter.
    pub rate_limited: u64,
    /// Outgoing packets with no matching allowed IP.
    pub no_route: u64,
    /// Drops attributed to a peer (sum of the peer counters' drops).
    pub peer_drops: u64,
}
