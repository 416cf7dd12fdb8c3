//! One tunnel interface with many peers: dispatches datagrams by receiver
//! index, answers initiations from unknown sessions, checks mac1, sends
//! cookie replies under load and routes outgoing packets by allowed IPs.

use clock::Instant;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_core::{CryptoRng, RngCore};

use crate::aead::{AeadProvider, default_provider};
use crate::allowed_ips::AllowedIps;
use crate::cookie::CookieChecker;
use crate::error::{DropReason, TunnelError};
use crate::hook::{PacketDirection, PacketHook, PacketVerdict};
use crate::keys::{PrivateKey, PublicKey};
use crate::messages::{self, TunnelMessage};
use crate::noise::{self, Identity};
use crate::peer::{Peer, PeerAction, PeerOptions, ip_header, mac1_ok};
use crate::stats::DeviceStats;
use crate::time::Now;
use babel_wire::Prefix;

/// Identifies a peer within a [`Device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

/// Result of a device operation.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum DeviceAction<'a> {
    /// Nothing to do.
    None,
    /// Send `data` to `to` (on behalf of `peer`, or `None` for a cookie
    /// reply to an unauthenticated sender).
    Send {
        /// Peer concerned, if known.
        peer: Option<PeerId>,
        /// Destination.
        to: SocketAddr,
        /// Datagram.
        data: &'a [u8],
    },
    /// Write `packet` (received from `peer`) to the TUN interface.
    WriteToTunnel {
        /// Sender.
        peer: PeerId,
        /// IP packet.
        packet: &'a [u8],
    },
}

/// Default "under load" threshold: handshake messages per second.
pub const DEFAULT_LOAD_THRESHOLD: u32 = 256;

/// A WireGuard interface: our static key plus peers.
pub struct Device {
    identity: Arc<Identity>,
    provider: &'static dyn AeadProvider,
    rng: ChaCha20Rng,
    peers: BTreeMap<PeerId, Peer>,
    by_public: HashMap<PublicKey, PeerId>,
    by_index_base: HashMap<u32, PeerId>,
    allowed: AllowedIps<PeerId>,
    cookies: CookieChecker,
    next_id: u32,
    mtu: Option<usize>,
    stats: DeviceStats,
    /// Check a decrypted packet's source against the sender's allowed IPs (WireGuard's
    /// cryptokey routing). Off when every peer has an interface of its own, which then
    /// identifies the sender.
    check_source: bool,
    /// Metering and shaping of inner packets, if any.
    hook: Option<Box<dyn PacketHook>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("public", &self.identity.public)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Creates a device with the default AEAD provider. `rng` seeds the
    /// device's CSPRNG (pass `OsRng` in production, a seeded RNG in tests).
    pub fn new<R: RngCore + CryptoRng>(private: PrivateKey, rng: &mut R) -> Self {
        Self::with_provider(private, default_provider(), rng)
    }

    /// Creates a device with a specific AEAD provider.
    pub fn with_provider<R: RngCore + CryptoRng>(
        private: PrivateKey,
        provider: &'static dyn AeadProvider,
        rng: &mut R,
    ) -> Self {
        let rng = ChaCha20Rng::from_rng(rng).unwrap_or_else(|_| ChaCha20Rng::from_seed([0; 32]));
        Device {
            identity: Arc::new(Identity::new(private)),
            provider,
            rng,
            peers: BTreeMap::new(),
            by_public: HashMap::new(),
            by_index_base: HashMap::new(),
            allowed: AllowedIps::new(),
            cookies: CookieChecker::new(DEFAULT_LOAD_THRESHOLD),
            next_id: 0,
            mtu: None,
            stats: DeviceStats::default(),
            check_source: true,
            hook: None,
        }
    }

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.identity.public
    }

    /// Adds a peer (or returns the existing one's id) with its allowed IPs.
    pub fn add_peer(
        &mut self,
        public: PublicKey,
        options: PeerOptions,
        allowed_ips: &[Prefix],
    ) -> PeerId {
        if let Some(id) = self.by_public.get(&public) {
            return *id;
        }
        let id = PeerId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let base = loop {
            let b = self.rng.next_u32() & 0xffff_ff00;
            if !self.by_index_base.contains_key(&(b >> 8)) {
                break b;
            }
        };
        let prng = ChaCha20Rng::from_rng(&mut self.rng)
            .unwrap_or_else(|_| ChaCha20Rng::from_seed([1; 32]));
        let mut peer = Peer::with_index_base(
            self.identity.clone(),
            public,
            options,
            self.provider,
            prng,
            base,
        );
        // A peer added after `set_mtu` pads within the same MTU as the others.
        peer.set_mtu(self.mtu);
        self.by_index_base.insert(base >> 8, id);
        self.by_public.insert(public, id);
        for p in allowed_ips {
            self.allowed.insert(*p, id);
        }
        self.peers.insert(id, peer);
        id
    }

    /// Removes a peer, its indices and allowed IPs.
    pub fn remove_peer(&mut self, id: PeerId) -> Option<Peer> {
        let p = self.peers.remove(&id)?;
        self.by_public.remove(&p.public_key());
        self.by_index_base.remove(&(p.index_base() >> 8));
        self.allowed.retain(|v| *v != id);
        Some(p)
    }

    /// Looks a peer up by public key.
    pub fn peer_id(&self, public: &PublicKey) -> Option<PeerId> {
        self.by_public.get(public).copied()
    }
    /// A peer.
    pub fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(&id)
    }
    /// A peer, mutably (policy, endpoint, …).
    pub fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(&id)
    }
    /// All peers.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &Peer)> {
        self.peers.iter().map(|(k, v)| (*k, v))
    }
    /// Device-wide counters.
    pub fn stats(&self) -> &DeviceStats {
        &self.stats
    }
    /// The allowed-IPs table.
    pub fn allowed_ips(&self) -> &AllowedIps<PeerId> {
        &self.allowed
    }
    /// Sets the tunnel MTU for all peers (caps transport padding).
    pub fn set_mtu(&mut self, mtu: Option<usize>) {
        self.mtu = mtu;
        for p in self.peers.values_mut() {
            p.set_mtu(mtu);
        }
    }
    /// Turns the allowed-IPs check of decrypted packets' sources off (`false`) or on: for a
    /// driver that gives every peer its own interface (one tunnel per mesh neighbour), where
    /// the interface tells the kernel who sent a packet.
    pub fn set_source_check(&mut self, on: bool) {
        self.check_source = on;
    }
    /// Installs (or removes) the hook called for every inner packet (metering, shaping).
    pub fn set_packet_hook(&mut self, hook: Option<Box<dyn PacketHook>>) {
        self.hook = hook;
    }
    /// Forces (or clears) the under-load state (tests, operator knob).
    pub fn set_under_load(&mut self, on: bool) {
        self.cookies.force_under_load = on;
    }
    /// Sets the handshake rate (per second) above which we are under load.
    pub fn set_load_threshold(&mut self, per_second: u32) {
        self.cookies.load_threshold = per_second;
    }

    fn peer_drop(&mut self, id: PeerId, r: DropReason) -> TunnelError {
        self.stats.peer_drops += 1;
        match self.peers.get_mut(&id) {
            Some(p) => p.count_drop(r),
            None => TunnelError::Dropped(r),
        }
    }

    fn global_drop(&mut self, r: DropReason) -> TunnelError {
        let s = &mut self.stats;
        match r {
            DropReason::Malformed => s.malformed += 1,
            DropReason::InvalidMac1 => s.invalid_mac1 += 1,
            DropReason::UnknownIndex => s.unknown_index += 1,
            DropReason::UnknownPeer => s.unknown_peer += 1,
            DropReason::HandshakeAuth => s.handshake_auth_failed += 1,
            DropReason::RateLimited => s.rate_limited += 1,
            DropReason::CookieRequired => s.cookie_replies_sent += 1,
            DropReason::NoRoute => s.no_route += 1,
            _ => s.peer_drops += 1,
        }
        tracing::trace!(reason = %r, "drop");
        TunnelError::Dropped(r)
    }

    fn lift<'a>(
        id: PeerId,
        ep: Option<SocketAddr>,
        a: PeerAction<'a>,
    ) -> Result<DeviceAction<'a>, TunnelError> {
        Ok(match a {
            PeerAction::None => DeviceAction::None,
            PeerAction::SendToNetwork(data) => match ep {
                Some(to) => DeviceAction::Send {
                    peer: Some(id),
                    to,
                    data,
                },
                None => return Err(TunnelError::Dropped(DropReason::NoEndpoint)),
            },
            PeerAction::WriteToTunnel(packet, _) => {
                DeviceAction::WriteToTunnel { peer: id, packet }
            }
        })
    }

    /// DoS checks for handshake messages. `Ok(Some(n))` means a cookie
    /// reply of `n` bytes was written to `out`.
    fn handshake_gate(
        &mut self,
        now: &Now,
        src: SocketAddr,
        datagram: &[u8],
        sender: u32,
        mac1_off: usize,
        out: &mut [u8],
    ) -> Result<Option<usize>, TunnelError> {
        if !mac1_ok(&self.identity.mac1_key, datagram, mac1_off) {
            return Err(self.global_drop(DropReason::InvalidMac1));
        }
        if !self.cookies.note_handshake(now.instant) {
            return Ok(None);
        }
        if !self
            .cookies
            .mac2_valid(now.instant, src, datagram, mac1_off + 16, &mut self.rng)
        {
            let Some(buf) = out.first_chunk_mut::<{ messages::COOKIE_REPLY_LEN }>() else {
                return Err(TunnelError::BufferTooSmall {
                    need: messages::COOKIE_REPLY_LEN,
                });
            };
            let key = self.identity.cookie_key;
            self.cookies.cookie_reply(
                now.instant,
                src,
                sender,
                datagram,
                mac1_off,
                &key,
                &mut self.rng,
                buf,
            );
            self.stats.cookie_replies_sent += 1;
            tracing::debug!(%src, "under load: sending cookie reply");
            return Ok(Some(messages::COOKIE_REPLY_LEN));
        }
        if !self.cookies.allow_source(now.instant, src.ip()) {
            return Err(self.global_drop(DropReason::RateLimited));
        }
        Ok(None)
    }

    /// Handles one received UDP datagram from `src`.
    pub fn handle_datagram<'a>(
        &mut self,
        now: &Now,
        src: SocketAddr,
        datagram: &[u8],
        out: &'a mut [u8],
    ) -> Result<DeviceAction<'a>, TunnelError> {
        self.stats.rx_datagrams += 1;
        let msg = TunnelMessage::parse(datagram).map_err(|r| self.global_drop(r))?;
        match msg {
            TunnelMessage::Initiation(m) => {
                if let Some(n) =
                    self.handshake_gate(now, src, datagram, m.sender(), messages::INIT_MAC1, out)?
                {
                    return Ok(DeviceAction::Send {
                        peer: None,
                        to: src,
                        data: out.get(..n).unwrap_or(&[]),
                    });
                }
                let half = noise::consume_initiation(&self.identity, &m)
                    .map_err(|r| self.global_drop(r))?;
                let Some(&id) = self.by_public.get(&half.peer_public) else {
                    return Err(self.global_drop(DropReason::UnknownPeer));
                };
                let Some(peer) = self.peers.get_mut(&id) else {
                    return Err(self.global_drop(DropReason::UnknownPeer));
                };
                let a = peer.handle_initiation(now, half, out);
                if a.is_ok() {
                    peer.endpoint = Some(src);
                } else {
                    self.stats.peer_drops += 1;
                }
                Self::lift(id, Some(src), a?)
            }
            TunnelMessage::Response(m) => {
                if let Some(n) =
                    self.handshake_gate(now, src, datagram, m.sender(), messages::RESP_MAC1, out)?
                {
                    return Ok(DeviceAction::Send {
                        peer: None,
                        to: src,
                        data: out.get(..n).unwrap_or(&[]),
                    });
                }
                let id = self.index_owner(m.receiver())?;
                let Some(peer) = self.peers.get_mut(&id) else {
                    return Err(self.global_drop(DropReason::UnknownIndex));
                };
                let a = peer.handle_response(now, &m, out);
                if a.is_ok() {
                    peer.endpoint = Some(src);
                } else {
                    self.stats.peer_drops += 1;
                }
                Self::lift(id, Some(src), a?)
            }
            TunnelMessage::CookieReply(m) => {
                let id = self.index_owner(m.receiver())?;
                let Some(peer) = self.peers.get_mut(&id) else {
                    return Err(self.global_drop(DropReason::UnknownIndex));
                };
                if let Err(e) = peer.handle_cookie_reply(now, &m) {
                    self.stats.peer_drops += 1;
                    return Err(e);
                }
                Ok(DeviceAction::None)
            }
            TunnelMessage::Data(m) => {
                let id = self.index_owner(m.receiver)?;
                let Some(peer) = self.peers.get_mut(&id) else {
                    return Err(self.global_drop(DropReason::UnknownIndex));
                };
                let a = match peer.handle_data(now, &m, out) {
                    Ok(a) => a,
                    Err(e) => {
                        if !matches!(e, TunnelError::Dropped(DropReason::Policy)) {
                            self.stats.peer_drops += 1;
                        }
                        return Err(e);
                    }
                };
                peer.endpoint = Some(src);
                if let PeerAction::WriteToTunnel(_, inner_src) = &a
                    && self.check_source
                    && self.allowed.lookup(*inner_src) != Some(&id)
                {
                    return Err(self.peer_drop(id, DropReason::NotAllowedSource));
                }
                if let PeerAction::WriteToTunnel(packet, _) = &a
                    && let Some(hook) = self.hook.as_mut()
                    && let Some((_, _, dst)) = ip_header(packet)
                    && hook.packet(PacketDirection::In, id, dst, packet.len())
                        == PacketVerdict::Drop
                {
                    return Err(self.peer_drop(id, DropReason::Policy));
                }
                Self::lift(id, Some(src), a)
            }
        }
    }

    fn index_owner(&mut self, receiver: u32) -> Result<PeerId, TunnelError> {
        match self.by_index_base.get(&(receiver >> 8)) {
            Some(id) => Ok(*id),
            None => Err(self.global_drop(DropReason::UnknownIndex)),
        }
    }

    /// Encrypts an IP packet read from the TUN interface, routed by its
    /// destination address through the allowed-IPs table.
    pub fn encapsulate<'a>(
        &mut self,
        now: &Now,
        packet: &[u8],
        out: &'a mut [u8],
    ) -> Result<DeviceAction<'a>, TunnelError> {
        let Some((_, _, dst)) = ip_header(packet) else {
            return Err(self.global_drop(DropReason::Malformed));
        };
        let Some(&id) = self.allowed.lookup(dst) else {
            return Err(self.global_drop(DropReason::NoRoute));
        };
        self.encapsulate_to(now, id, packet, out)
    }

    /// Encrypts `plaintext` for a given peer.
    pub fn encapsulate_to<'a>(
        &mut self,
        now: &Now,
        id: PeerId,
        plaintext: &[u8],
        out: &'a mut [u8],
    ) -> Result<DeviceAction<'a>, TunnelError> {
        if let Some(hook) = self.hook.as_mut()
            && let Some((_, _, dst)) = ip_header(plaintext)
            && hook.packet(PacketDirection::Out, id, dst, plaintext.len()) == PacketVerdict::Drop
        {
            return Err(self.peer_drop(id, DropReason::Policy));
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return Err(TunnelError::NoSuchPeer);
        };
        let ep = peer.endpoint;
        let a = peer.encapsulate(now, plaintext, out)?;
        if ep.is_none() && a != PeerAction::None {
            return Err(self.peer_drop(id, DropReason::NoEndpoint));
        }
        Self::lift(id, ep, a)
    }

    /// Starts a handshake with a peer right away (if it has an endpoint).
    pub fn initiate<'a>(
        &mut self,
        now: &Now,
        id: PeerId,
        out: &'a mut [u8],
    ) -> Result<DeviceAction<'a>, TunnelError> {
        let Some(peer) = self.peers.get_mut(&id) else {
            return Err(TunnelError::NoSuchPeer);
        };
        let ep = peer.endpoint;
        if ep.is_none() {
            return Err(self.peer_drop(id, DropReason::NoEndpoint));
        }
        let a = peer.initiate(now, out)?;
        Self::lift(id, ep, a)
    }

    /// Runs every peer's timers; drain [`Device::poll_transmit`] afterwards.
    pub fn update_timers(&mut self, now: &Now) {
        for p in self.peers.values_mut() {
            p.update_timers(now);
        }
    }

    /// Earliest instant at which [`Device::update_timers`] has work.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.poll_timeout(now))
            .min()
    }

    /// Next datagram some peer wants to send, as `(peer, destination,
    /// bytes)`. Call until `None` after every other call.
    pub fn poll_transmit<'a>(
        &mut self,
        now: &Now,
        out: &'a mut [u8],
    ) -> Option<(PeerId, SocketAddr, &'a [u8])> {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            // Terminates: every `poll_transmit` call consumes the pending
            // item it reports, whether it succeeds or fails.
            while let Some(peer) = self.peers.get_mut(&id) {
                let ep = peer.endpoint;
                let n = match peer.poll_transmit(now, out) {
                    None => break,
                    Some(Err(_)) => {
                        self.stats.peer_drops += 1;
                        continue;
                    }
                    Some(Ok(d)) => d.len(),
                };
                match ep {
                    Some(to) => return Some((id, to, out.get(..n).unwrap_or(&[]))),
                    None => {
                        self.peer_drop(id, DropReason::NoEndpoint);
                    }
                }
            }
        }
        None
    }

    /// Is `ip` routed to some peer?
    pub fn route(&self, ip: IpAddr) -> Option<PeerId> {
        self.allowed.lookup(ip).copied()
    }
}
