//! One WireGuard peer: handshake state, keypairs, timers, counters and
//! forwarding policy. Sans-IO: every method takes [`Now`].

use clock::Instant;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_core::{CryptoRng, RngCore};

use crate::aead::AeadProvider;
use crate::crypto::{ct_eq, xaead_open};
use crate::error::{DropReason, TunnelError};
use crate::keys::{PresharedKey, PublicKey};
use crate::messages::{self, CookieReply, Data, Response, TunnelMessage};
use crate::noise::{self, Identity, InitiationFirstHalf, InitiatorState, PeerKeys};
use crate::policy::{ForwardingPolicy, PolicyExempt, PolicyGate};
use crate::session::Keypair;
use crate::stats::PeerStats;
use crate::time::{Now, Tai64N};
use crate::timers::*;

/// Result of a tunnel operation.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum PeerAction<'a> {
    /// Nothing to do.
    None,
    /// Send this datagram to the peer.
    SendToNetwork(&'a [u8]),
    /// Write this IP packet to the tunnel interface.
    WriteToTunnel(&'a [u8], IpAddr),
}

/// Per-peer options.
#[derive(Debug, Clone, Default)]
pub struct PeerOptions {
    /// Optional pre-shared key.
    pub preshared_key: Option<PresharedKey>,
    /// Persistent keepalive interval in seconds (0 or `None`: off).
    pub persistent_keepalive: Option<u16>,
    /// Forwarding policy for data packets.
    pub policy: ForwardingPolicy,
    /// Initial endpoint (the driver/device updates it on roaming).
    pub endpoint: Option<SocketAddr>,
}

enum Handshake {
    None,
    InitiationSent {
        state: InitiatorState,
        first_attempt: Instant,
        retransmit_at: Instant,
    },
}

/// A WireGuard peer (the per-neighbour tunnel).
pub struct Peer {
    identity: Arc<Identity>,
    keys: PeerKeys,
    provider: &'static dyn AeadProvider,
    rng: ChaCha20Rng,
    index_base: u32,
    index_counter: u8,
    handshake: Handshake,
    last_initiation_sent: Option<Instant>,
    last_accepted_timestamp: Option<Tai64N>,
    last_initiation_received: Option<Instant>,
    current: Option<Keypair>,
    previous: Option<Keypair>,
    next: Option<Keypair>,
    cookie: Option<([u8; 16], Instant)>,
    last_sent_mac1: Option<[u8; 16]>,
    pub(crate) endpoint: Option<SocketAddr>,
    queue: VecDeque<Vec<u8>>,
    pending_initiation: bool,
    pending_keepalive: bool,
    last_sent: Option<Instant>,
    data_sent_unanswered_since: Option<Instant>,
    data_received_unanswered_since: Option<Instant>,
    last_handshake_completed: Option<Instant>,
    persistent_keepalive: Option<Duration>,
    mtu: Option<usize>,
    policy: ForwardingPolicy,
    policy_exempt: Option<PolicyExempt>,
    tx_gate: PolicyGate,
    rx_gate: PolicyGate,
    stats: PeerStats,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("public", &self.keys.public)
            .field("endpoint", &self.endpoint)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Parses an IP header; returns the packet's total length and
/// (source, destination).
pub(crate) fn ip_header(p: &[u8]) -> Option<(usize, IpAddr, IpAddr)> {
    match p.first()? >> 4 {
        4 => {
            let h: &[u8; 20] = p.first_chunk()?;
            let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
            let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
            (len >= 20 && len <= p.len()).then_some((len, src.into(), dst.into()))
        }
        6 => {
            let h: &[u8; 40] = p.first_chunk()?;
            let len = usize::from(u16::from_be_bytes([h[4], h[5]])) + 40;
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&h[8..24]);
            d.copy_from_slice(&h[24..40]);
            (len <= p.len()).then_some((len, Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into()))
        }
        _ => None,
    }
}

impl Peer {
    /// Creates a standalone peer (point-to-point use, like boringtun's
    /// `Tunn`). `rng` seeds the peer's own CSPRNG.
    pub fn new<R: RngCore + CryptoRng>(
        identity: Arc<Identity>,
        peer_public: PublicKey,
        options: PeerOptions,
        provider: &'static dyn AeadProvider,
        rng: &mut R,
    ) -> Self {
        let mut prng =
            ChaCha20Rng::from_rng(rng).unwrap_or_else(|_| ChaCha20Rng::from_seed([0; 32]));
        let base = prng.next_u32() & 0xffff_ff00;
        Self::with_index_base(identity, peer_public, options, provider, prng, base)
    }

    pub(crate) fn with_index_base(
        identity: Arc<Identity>,
        peer_public: PublicKey,
        options: PeerOptions,
        provider: &'static dyn AeadProvider,
        rng: ChaCha20Rng,
        index_base: u32,
    ) -> Self {
        let keys = PeerKeys::new(
            &identity,
            peer_public,
            options.preshared_key.as_ref().map(|k| k.0),
        );
        Peer {
            identity,
            keys,
            provider,
            rng,
            index_base,
            index_counter: 0,
            handshake: Handshake::None,
            last_initiation_sent: None,
            last_accepted_timestamp: None,
            last_initiation_received: None,
            current: None,
            previous: None,
            next: None,
            cookie: None,
            last_sent_mac1: None,
            endpoint: options.endpoint,
            queue: VecDeque::new(),
            pending_initiation: false,
            pending_keepalive: false,
            last_sent: None,
            data_sent_unanswered_since: None,
            data_received_unanswered_since: None,
            last_handshake_completed: None,
            persistent_keepalive: options
                .persistent_keepalive
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s))),
            mtu: None,
            policy: options.policy,
            policy_exempt: None,
            tx_gate: PolicyGate::new(),
            rx_gate: PolicyGate::new(),
            stats: PeerStats::default(),
        }
    }

    /// The peer's public key.
    pub fn public_key(&self) -> PublicKey {
        self.keys.public
    }
    /// Counters.
    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }
    /// Current endpoint.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint
    }
    /// Sets the endpoint.
    pub fn set_endpoint(&mut self, ep: Option<SocketAddr>) {
        self.endpoint = ep;
    }
    /// Current forwarding policy.
    pub fn policy(&self) -> ForwardingPolicy {
        self.policy
    }
    /// Changes the forwarding policy (takes effect on the next packet).
    pub fn set_policy(&mut self, p: ForwardingPolicy) {
        self.policy = p;
    }
    /// Exempts one local UDP service from the policy (`None`: nothing is exempt).
    pub fn set_policy_exempt(&mut self, e: Option<PolicyExempt>) {
        self.policy_exempt = e;
    }
    /// Sets the tunnel interface MTU used to cap padding (`None`: always
    /// pad to a multiple of 16).
    pub fn set_mtu(&mut self, mtu: Option<usize>) {
        self.mtu = mtu;
    }
    /// Is a usable transport keypair established?
    pub fn is_established(&self, now: Instant) -> bool {
        self.current.as_ref().is_some_and(|k| k.can_send(now))
    }
    /// Is a handshake initiation outstanding?
    pub fn handshake_in_progress(&self) -> bool {
        matches!(self.handshake, Handshake::InitiationSent { .. })
    }
    /// Time of the last completed handshake.
    pub fn last_handshake(&self) -> Option<Instant> {
        self.last_handshake_completed
    }

    pub(crate) fn index_base(&self) -> u32 {
        self.index_base
    }

    fn new_index(&mut self) -> u32 {
        self.index_counter = self.index_counter.wrapping_add(1);
        self.index_base | u32::from(self.index_counter)
    }

    pub(crate) fn count_drop(&mut self, r: DropReason) -> TunnelError {
        self.stats.count_drop(r);
        tracing::trace!(peer = %self.keys.public, reason = %r, "drop");
        TunnelError::Dropped(r)
    }

    fn mark_sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.data_received_unanswered_since = None;
    }

    fn mark_authenticated_receive(&mut self) {
        self.data_sent_unanswered_since = None;
    }

    /// Adds mac1 (and mac2 if we hold a fresh cookie) to an outgoing
    /// handshake message.
    fn add_macs(&mut self, now: Instant, msg: &mut [u8], mac1_off: usize) {
        let mac1 = noise::mac_prefix(&self.keys.mac1_key, msg, mac1_off);
        messages::put(msg, mac1_off, &mac1);
        self.last_sent_mac1 = Some(mac1);
        let mac2 = match self.cookie {
            Some((c, at)) if now.saturating_since(at) < COOKIE_VALIDITY => {
                noise::mac_prefix(&c, msg, mac1_off + 16)
            }
            _ => [0; 16],
        };
        messages::put(msg, mac1_off + 16, &mac2);
    }

    // ---- handshake initiation ---------------------------------------

    /// Asks for a handshake unless one is running or one was sent less than
    /// `REKEY_TIMEOUT` ago.
    fn want_handshake(&mut self, now: Instant) {
        if self.handshake_in_progress() {
            return;
        }
        if self
            .last_initiation_sent
            .is_some_and(|t| now.saturating_since(t) < REKEY_TIMEOUT)
        {
            return;
        }
        self.pending_initiation = true;
    }

    fn write_initiation<'a>(
        &mut self,
        now: &Now,
        out: &'a mut [u8],
    ) -> Result<&'a [u8], TunnelError> {
        // Consumed whether or not the initiation can be built.
        self.pending_initiation = false;
        let Some(buf) = out.first_chunk_mut::<{ messages::INITIATION_LEN }>() else {
            return Err(TunnelError::BufferTooSmall {
                need: messages::INITIATION_LEN,
            });
        };
        let idx = self.new_index();
        let state = noise::create_initiation(
            &self.identity,
            &self.keys,
            idx,
            now.wall,
            &mut self.rng,
            buf,
        )
        .map_err(|r| self.count_drop(r))?;
        let first_attempt = match &self.handshake {
            Handshake::InitiationSent { first_attempt, .. } => *first_attempt,
            Handshake::None => now.instant,
        };
        let jitter = Duration::from_millis(self.rng.next_u64() % REKEY_TIMEOUT_JITTER_MS);
        self.handshake = Handshake::InitiationSent {
            state,
            first_attempt,
            retransmit_at: now.instant + REKEY_TIMEOUT + jitter,
        };
        self.add_macs(now.instant, buf, messages::INIT_MAC1);
        self.pending_initiation = false;
        self.last_initiation_sent = Some(now.instant);
        self.stats.handshake_initiations_sent += 1;
        self.mark_sent(now.instant);
        tracing::debug!(peer = %self.keys.public, index = idx, "sending handshake initiation");
        Ok(out.get(..messages::INITIATION_LEN).unwrap_or(&[]))
    }

    /// Builds a handshake initiation now (e.g. to bring a tunnel up
    /// eagerly). Returns `PeerAction::None` if one is already in flight.
    pub fn initiate<'a>(
        &mut self,
        now: &Now,
        out: &'a mut [u8],
    ) -> Result<PeerAction<'a>, TunnelError> {
        if self.handshake_in_progress() {
            return Ok(PeerAction::None);
        }
        self.write_initiation(now, out)
            .map(PeerAction::SendToNetwork)
    }

    // ---- sending ----------------------------------------------------

    fn seal<'a>(
        &mut self,
        now: Instant,
        plaintext: &[u8],
        out: &'a mut [u8],
    ) -> Result<&'a [u8], TunnelError> {
        // Pad to a multiple of 16, but never beyond the tunnel MTU (so a
        // full-MTU packet does not grow the outer datagram), as WireGuard.
        let mut padded = plaintext.len().div_ceil(16) * 16;
        if let Some(mtu) = self.mtu {
            padded = padded.min(mtu.max(plaintext.len()));
        }
        let total = messages::DATA_HEADER_LEN + padded + 16;
        let Some(kp) = self.current.as_mut() else {
            return Err(TunnelError::Dropped(DropReason::KeyExpired));
        };
        let Some(buf) = out.get_mut(..total) else {
            return Err(TunnelError::BufferTooSmall { need: total });
        };
        let counter = kp.send_counter;
        kp.send_counter += 1;
        let (hdr, rest) = buf.split_at_mut(messages::DATA_HEADER_LEN);
        messages::put_header(hdr, messages::TYPE_DATA);
        messages::put(hdr, 4, &kp.remote_index.to_le_bytes());
        messages::put(hdr, 8, &counter.to_le_bytes());
        let (body, tag_out) = rest.split_at_mut(padded);
        let (data, pad) = body.split_at_mut(plaintext.len());
        data.copy_from_slice(plaintext);
        pad.fill(0);
        let tag = kp
            .send
            .seal_in_place(counter, body)
            .map_err(|_| TunnelError::Dropped(DropReason::DecryptFailed))?;
        tag_out.copy_from_slice(&tag);
        let rekey =
            (kp.initiator && kp.age(now) >= REKEY_AFTER_TIME) || counter >= REKEY_AFTER_MESSAGES;
        if rekey {
            self.want_handshake(now);
        }
        self.mark_sent(now);
        Ok(&*buf)
    }

    /// Encrypts one IP packet for the peer. Without an established session
    /// the packet is queued and a handshake initiation is returned instead.
    /// After any call, drain [`Peer::poll_transmit`].
    pub fn encapsulate<'a>(
        &mut self,
        now: &Now,
        plaintext: &[u8],
        out: &'a mut [u8],
    ) -> Result<PeerAction<'a>, TunnelError> {
        if plaintext.len() > messages::MAX_DATAGRAM - crate::DATA_OVERHEAD - 16 {
            return Err(self.count_drop(DropReason::Malformed));
        }
        if !plaintext.is_empty()
            && !self
                .policy_exempt
                .is_some_and(|e| e.matches(plaintext, false))
            && !self
                .tx_gate
                .admit(self.policy, now.instant, plaintext.len())
        {
            self.stats.tx_policy_drops += 1;
            return Err(TunnelError::Dropped(DropReason::Policy));
        }
        if self.is_established(now.instant) {
            let pkt = self.seal(now.instant, plaintext, out)?;
            if plaintext.is_empty() {
                self.stats.tx_keepalives += 1;
            } else {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += plaintext.len() as u64;
                self.data_sent_unanswered_since.get_or_insert(now.instant);
            }
            return Ok(PeerAction::SendToNetwork(pkt));
        }
        if !plaintext.is_empty() {
            if self.queue.len() >= MAX_QUEUED_PACKETS {
                self.queue.pop_front();
                self.stats.count_drop(DropReason::QueueFull);
            }
            self.queue.push_back(plaintext.to_vec());
        }
        self.want_handshake(now.instant);
        if self.pending_initiation {
            return self
                .write_initiation(now, out)
                .map(PeerAction::SendToNetwork);
        }
        Ok(PeerAction::None)
    }

    /// Returns the next datagram the peer wants to send (handshake
    /// initiations, queued packets after a handshake, keepalives), or
    /// `None` when idle. Call after every other method until `None`.
    pub fn poll_transmit<'a>(
        &mut self,
        now: &Now,
        out: &'a mut [u8],
    ) -> Option<Result<&'a [u8], TunnelError>> {
        if self.pending_initiation {
            return Some(self.write_initiation(now, out));
        }
        if self.is_established(now.instant) {
            if let Some(p) = self.queue.pop_front() {
                self.pending_keepalive = false;
                let r = self.seal(now.instant, &p, out);
                if r.is_ok() {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += p.len() as u64;
                    self.data_sent_unanswered_since.get_or_insert(now.instant);
                }
                return Some(r);
            }
            if self.pending_keepalive {
                self.pending_keepalive = false;
                self.stats.tx_keepalives += 1;
                return Some(self.seal(now.instant, &[], out));
            }
        } else {
            self.pending_keepalive = false;
        }
        None
    }

    // ---- receiving --------------------------------------------------

    /// Point-to-point receive (like boringtun's `Tunn::decapsulate`):
    /// verifies mac1 against our own key but applies no cookie/load logic
    /// (use [`crate::Device`] for that). Drain [`Peer::poll_transmit`]
    /// afterwards.
    pub fn decapsulate<'a>(
        &mut self,
        now: &Now,
        datagram: &[u8],
        out: &'a mut [u8],
    ) -> Result<PeerAction<'a>, TunnelError> {
        let msg = TunnelMessage::parse(datagram).map_err(|r| self.count_drop(r))?;
        match msg {
            TunnelMessage::Initiation(m) => {
                if !mac1_ok(&self.identity.mac1_key, datagram, messages::INIT_MAC1) {
                    return Err(self.count_drop(DropReason::InvalidMac1));
                }
                let half = noise::consume_initiation(&self.identity, &m)
                    .map_err(|r| self.count_drop(r))?;
                if half.peer_public != self.keys.public {
                    return Err(self.count_drop(DropReason::UnknownPeer));
                }
                self.handle_initiation(now, half, out)
            }
            TunnelMessage::Response(m) => {
                if !mac1_ok(&self.identity.mac1_key, datagram, messages::RESP_MAC1) {
                    return Err(self.count_drop(DropReason::InvalidMac1));
                }
                self.handle_response(now, &m, out)
            }
            TunnelMessage::CookieReply(m) => {
                self.handle_cookie_reply(now, &m).map(|()| PeerAction::None)
            }
            TunnelMessage::Data(m) => self.handle_data(now, &m, out),
        }
    }

    pub(crate) fn handle_initiation<'a>(
        &mut self,
        now: &Now,
        mut half: InitiationFirstHalf,
        out: &'a mut [u8],
    ) -> Result<PeerAction<'a>, TunnelError> {
        let ts = noise::finish_initiation(&mut half, &self.keys).map_err(|r| self.count_drop(r))?;
        if self.last_accepted_timestamp.is_some_and(|last| ts <= last) {
            return Err(self.count_drop(DropReason::HandshakeReplay));
        }
        if self.last_initiation_received.is_some_and(|t| {
            now.instant.saturating_since(t) < Duration::from_secs(1) / INITIATIONS_PER_SECOND
        }) {
            return Err(self.count_drop(DropReason::HandshakeReplay));
        }
        let Some(buf) = out.first_chunk_mut::<{ messages::RESPONSE_LEN }>() else {
            return Err(TunnelError::BufferTooSmall {
                need: messages::RESPONSE_LEN,
            });
        };
        let idx = self.new_index();
        let keys = noise::create_response(&half, &self.keys, idx, &mut self.rng, buf)
            .map_err(|r| self.count_drop(r))?;
        self.add_macs(now.instant, buf, messages::RESP_MAC1);
        self.last_accepted_timestamp = Some(ts);
        self.last_initiation_received = Some(now.instant);
        self.next = Some(Keypair::new(self.provider, &keys, idx, now.instant, false));
        self.stats.handshakes_completed += 1;
        self.stats.last_handshake = Some(now.instant);
        self.last_handshake_completed = Some(now.instant);
        self.mark_sent(now.instant);
        tracing::debug!(peer = %self.keys.public, index = idx, "handshake response sent");
        Ok(PeerAction::SendToNetwork(&*buf))
    }

    pub(crate) fn handle_response<'a>(
        &mut self,
        now: &Now,
        m: &Response<'_>,
        out: &'a mut [u8],
    ) -> Result<PeerAction<'a>, TunnelError> {
        let Handshake::InitiationSent { state, .. } = &self.handshake else {
            return Err(self.count_drop(DropReason::Unexpected));
        };
        if state.local_index != m.receiver() {
            return Err(self.count_drop(DropReason::UnknownIndex));
        }
        let idx = state.local_index;
        let keys = match noise::consume_response(state, &self.identity, &self.keys, m) {
            Ok(k) => k,
            Err(r) => return Err(self.count_drop(r)),
        };
        self.handshake = Handshake::None;
        let kp = Keypair::new(self.provider, &keys, idx, now.instant, true);
        // Crossed handshakes: an unconfirmed responder session in `next` is the one the peer,
        // as its initiator, is sending on. It stays receivable as `previous` (the older
        // `current` goes instead), or nothing either side sends would reach the other until
        // a third handshake. wireguard-go rotates its keypairs the same way.
        self.previous = match self.next.take() {
            Some(unconfirmed) => Some(unconfirmed),
            None => self.current.take(),
        };
        self.current = Some(kp);
        self.stats.handshakes_completed += 1;
        self.stats.last_handshake = Some(now.instant);
        self.last_handshake_completed = Some(now.instant);
        self.mark_authenticated_receive();
        self.pending_keepalive = true;
        tracing::debug!(peer = %self.keys.public, index = idx, "handshake complete (initiator)");
        match self.poll_transmit(now, out) {
            Some(Ok(p)) => Ok(PeerAction::SendToNetwork(p)),
            Some(Err(e)) => Err(e),
            None => Ok(PeerAction::None),
        }
    }

    pub(crate) fn handle_cookie_reply(
        &mut self,
        now: &Now,
        m: &CookieReply<'_>,
    ) -> Result<(), TunnelError> {
        let expected = match &self.handshake {
            Handshake::InitiationSent { state, .. } => Some(state.local_index),
            Handshake::None => None,
        };
        let next_idx = self.next.as_ref().map(|k| k.local_index);
        if expected != Some(m.receiver()) && next_idx != Some(m.receiver()) {
            return Err(self.count_drop(DropReason::UnknownIndex));
        }
        let Some(mac1) = self.last_sent_mac1 else {
            return Err(self.count_drop(DropReason::Unexpected));
        };
        let mut cookie = [0u8; 16];
        if xaead_open(
            &self.keys.cookie_key,
            &m.nonce(),
            &m.encrypted_cookie(),
            &mac1,
            &mut cookie,
        )
        .is_err()
        {
            return Err(self.count_drop(DropReason::Unexpected));
        }
        self.cookie = Some((cookie, now.instant));
        self.stats.cookie_replies_received += 1;
        tracing::debug!(peer = %self.keys.public, "cookie reply received");
        Ok(())
    }

    pub(crate) fn handle_data<'a>(
        &mut self,
        now: &Now,
        m: &Data<'_>,
        out: &'a mut [u8],
    ) -> Result<PeerAction<'a>, TunnelError> {
        let t = now.instant;
        let slot = [&mut self.current, &mut self.previous, &mut self.next]
            .into_iter()
            .position(|k| k.as_ref().is_some_and(|k| k.local_index == m.receiver));
        let kp = match slot {
            Some(0) => self.current.as_mut(),
            Some(1) => self.previous.as_mut(),
            Some(2) => self.next.as_mut(),
            _ => None,
        };
        let Some(kp) = kp else {
            return Err(self.count_drop(DropReason::UnknownIndex));
        };
        if kp.expired(t) {
            return Err(self.count_drop(DropReason::KeyExpired));
        }
        if kp.replay.check(m.counter).is_err() {
            return Err(self.count_drop(DropReason::Replay));
        }
        let n = m.ciphertext.len();
        let Some(buf) = out.get_mut(..n) else {
            return Err(TunnelError::BufferTooSmall { need: n });
        };
        buf.copy_from_slice(m.ciphertext);
        if kp.recv.open_in_place(m.counter, buf, &m.tag).is_err() {
            return Err(self.count_drop(DropReason::DecryptFailed));
        }
        if kp.replay.update(m.counter).is_err() {
            return Err(self.count_drop(DropReason::Replay));
        }
        let initiator_age = kp.initiator.then(|| kp.age(t));
        if slot == Some(2) {
            // First packet on the responder's new keypair confirms it.
            self.previous = self.current.take();
            self.current = self.next.take();
            // A session is confirmed: an initiation of ours still waiting for its response is
            // dropped, as wireguard-go does once a handshake completes, instead of being retried
            // into a second handshake that replaces this fresh session under traffic.
            if self.handshake_in_progress() {
                self.handshake = Handshake::None;
                self.pending_initiation = false;
            }
            tracing::debug!(peer = %self.keys.public, "handshake confirmed (responder)");
        }
        self.mark_authenticated_receive();
        if slot == Some(0) && initiator_age.is_some_and(|a| a >= REKEY_ON_RECEIVE_AGE) {
            self.want_handshake(t);
        }
        if n == 0 {
            self.stats.rx_keepalives += 1;
            return Ok(PeerAction::None);
        }
        let Some((len, src, _dst)) = out.get(..n).and_then(ip_header) else {
            return Err(self.count_drop(DropReason::Malformed));
        };
        // Authenticated data counts for the keepalive timer even if the
        // policy then drops it: the keepalive confirms the transport.
        self.data_received_unanswered_since.get_or_insert(t);
        let exempt = self
            .policy_exempt
            .is_some_and(|e| out.get(..len).is_some_and(|p| e.matches(p, true)));
        if !exempt && !self.rx_gate.admit(self.policy, t, len) {
            self.stats.rx_policy_drops += 1;
            return Err(TunnelError::Dropped(DropReason::Policy));
        }
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += len as u64;
        Ok(PeerAction::WriteToTunnel(
            out.get(..len).unwrap_or(&[]),
            src,
        ))
    }

    // ---- timers -----------------------------------------------------

    /// Runs the WireGuard timers. Call every ~250 ms (or whenever
    /// convenient; it is idempotent), then drain [`Peer::poll_transmit`].
    pub fn update_timers(&mut self, now: &Now) {
        let t = now.instant;
        if let Handshake::InitiationSent {
            first_attempt,
            retransmit_at,
            ..
        } = &self.handshake
            && t >= *retransmit_at
        {
            if t.saturating_since(*first_attempt) >= REKEY_ATTEMPT_TIME {
                tracing::debug!(peer = %self.keys.public, "handshake gave up after REKEY_ATTEMPT_TIME");
                self.handshake = Handshake::None;
                self.pending_initiation = false;
                let dropped = self.queue.len();
                self.queue.clear();
                for _ in 0..dropped {
                    self.stats.count_drop(DropReason::QueueFull);
                }
                self.data_sent_unanswered_since = None;
            } else {
                self.pending_initiation = true;
            }
        }
        if self
            .data_sent_unanswered_since
            .is_some_and(|s| t.saturating_since(s) >= KEEPALIVE_TIMEOUT + REKEY_TIMEOUT)
        {
            self.data_sent_unanswered_since = None;
            self.want_handshake(t);
        }
        if self
            .data_received_unanswered_since
            .is_some_and(|s| t.saturating_since(s) >= KEEPALIVE_TIMEOUT)
        {
            self.data_received_unanswered_since = None;
            self.pending_keepalive = true;
        }
        if let Some(iv) = self.persistent_keepalive
            && self.last_sent.is_none_or(|s| t.saturating_since(s) >= iv)
        {
            if self.is_established(t) {
                self.pending_keepalive = true;
            } else {
                self.want_handshake(t);
            }
        }
        for slot in [&mut self.current, &mut self.previous, &mut self.next] {
            if slot.as_ref().is_some_and(|k| k.expired(t)) {
                *slot = None;
            }
        }
        if self
            .last_handshake_completed
            .is_some_and(|h| t.saturating_since(h) >= ZERO_KEYS_AFTER)
        {
            self.current = None;
            self.previous = None;
            self.next = None;
            if !self.handshake_in_progress() {
                self.handshake = Handshake::None;
            }
            self.last_handshake_completed = None;
        }
    }

    /// Earliest instant at which [`Peer::update_timers`] has something to
    /// do, given the current time (`None`: nothing scheduled). Calling
    /// earlier is harmless; the driver may simply tick every 250 ms instead.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if let Handshake::InitiationSent { retransmit_at, .. } = &self.handshake {
            consider(Some(*retransmit_at));
        }
        consider(
            self.data_sent_unanswered_since
                .map(|s| s + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT),
        );
        consider(
            self.data_received_unanswered_since
                .map(|s| s + KEEPALIVE_TIMEOUT),
        );
        if let Some(iv) = self.persistent_keepalive {
            consider(Some(self.last_sent.map_or(now, |s| s + iv)));
        }
        for k in [&self.current, &self.previous, &self.next]
            .into_iter()
            .flatten()
        {
            consider(Some(k.created + REJECT_AFTER_TIME));
        }
        consider(self.last_handshake_completed.map(|h| h + ZERO_KEYS_AFTER));
        next
    }

    /// Local indices in use (handshake + keypairs), for tests/diagnostics.
    pub fn local_indices(&self) -> Vec<u32> {
        let mut v: Vec<u32> = [&self.current, &self.previous, &self.next]
            .into_iter()
            .flatten()
            .map(|k| k.local_index)
            .collect();
        if let Handshake::InitiationSent { state, .. } = &self.handshake {
            v.push(state.local_index);
        }
        v
    }

    /// Age of the current keypair.
    pub fn current_key_age(&self, now: Instant) -> Option<Duration> {
        self.current.as_ref().map(|k| k.age(now))
    }
}

pub(crate) fn mac1_ok(our_mac1_key: &[u8; 32], msg: &[u8], off: usize) -> bool {
    let expect = noise::mac_prefix(our_mac1_key, msg, off);
    msg.get(off..off + 16).is_some_and(|m| ct_eq(m, &expect))
}
