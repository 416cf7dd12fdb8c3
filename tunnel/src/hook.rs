//! A per-packet hook for metering and shaping: the [`crate::Device`] calls it once for every
//! inner (plaintext) IP packet that crosses the tunnel, with the direction, the peer and the
//! packet's destination, and drops the packet when it answers [`PacketVerdict::Drop`].
//!
//! The hook runs on the tunnel's hot path: implementations must not block and should cost no
//! more than a few hash lookups (the daemon's metering caches prices per destination).
//! Keepalives (empty packets) are not reported.

use std::net::IpAddr;

use crate::device::PeerId;

/// Which way an inner packet crosses the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketDirection {
    /// Decrypted from a peer, about to be written to the TUN interface.
    In,
    /// Read from the TUN interface, about to be encrypted for a peer.
    Out,
}

/// What the hook decides for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketVerdict {
    /// Let it through.
    Pass,
    /// Drop it (counted as a policy drop of the peer).
    Drop,
}

/// Called by [`crate::Device`] for every inner packet (see the module documentation).
pub trait PacketHook: Send {
    /// One inner packet of `len` bytes to `destination`, crossing in `direction` for `peer`.
    fn packet(
        &mut self,
        direction: PacketDirection,
        peer: PeerId,
        destination: IpAddr,
        len: usize,
    ) -> PacketVerdict;
}
