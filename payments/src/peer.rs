//! One neighbour: what we metered each way, our channel to it, its channel to us, the message
//! exchange between the two routers, and the service level that follows from its payments.
//!
//! Ordering rule (the reason this type takes a [`Store`]): a new update is committed before it
//! is sent, an accepted update is committed before it is acknowledged, an adopted update is
//! committed before it counts. A failed commit sends and acknowledges nothing.

use clock::Instant;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha512};

use crate::channel::{Accept, PayeeChannel, PayerChannel, Refusal, RefusalCounters};
use crate::store::{Record, Store, StoreError};
use crate::wire::{PaymentMessage, Position, WireError};
use crate::{Amount, ChannelId, Settlement, SignedUpdate};

impl ChannelId {
    /// The id of an off-chain channel (deposit configured, never redeemed): SHA-512 over a tag and
    /// both keys, truncated to 32 bytes. A settlement layer supplies its own ids instead.
    pub fn offchain(payer: &[u8; 32], payee: &[u8; 32]) -> ChannelId {
        let mut h = Sha512::new();
        h.update(b"babeld-rs off-chain channel v1");
        h.update(payer);
        h.update(payee);
        let d = h.finalize();
        ChannelId(<[u8; 32]>::try_from(d.get(..32).unwrap_or_default()).unwrap_or([0; 32]))
    }
}

/// Althea's thresholds, in wei. Defaults are rita's: pay at 3 * 10^17 (0.30 USD), cut off a
/// neighbour owing more than 10 times that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Pay when what we owe exceeds this.
    pub pay: Amount,
    /// A neighbour owing more than this falls to the free tier.
    pub close: Amount,
    /// How far above our own metering a payee's claim may be and still be paid, in millionths of
    /// what we metered (see "Drift" in `spec/payments.md`).
    pub drift_ppm: u32,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            pay: Amount(300_000_000_000_000_000),
            close: Amount(3_000_000_000_000_000_000),
            drift_ppm: 20_000,
        }
    }
}

/// The service a neighbour gets from us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceLevel {
    /// Paying (or within the close threshold): full service, weighted by payment when contended.
    Full,
    /// Owes more than the close threshold: capped at the free tier.
    FreeTier,
}

impl ServiceLevel {
    /// Name for logs and `dump`.
    pub fn name(&self) -> &'static str {
        match self {
            ServiceLevel::Full => "full",
            ServiceLevel::FreeTier => "free-tier",
        }
    }
}

/// Configuration of one neighbour's payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentPeerConfig {
    /// Pay and close thresholds.
    pub thresholds: Thresholds,
    /// First retransmission delay of an unacknowledged update or reestablish; doubles up to
    /// `retry_max`.
    pub retry: Duration,
    /// Largest retransmission delay.
    pub retry_max: Duration,
}

impl Default for PaymentPeerConfig {
    fn default() -> PaymentPeerConfig {
        PaymentPeerConfig {
            thresholds: Thresholds::default(),
            retry: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// Something that happened, for logs, `monitor` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentEvent {
    /// We signed (and committed) a payment.
    PaymentSent {
        /// Its nonce.
        nonce: u64,
        /// Cumulative paid.
        cumulative: Amount,
        /// This payment.
        amount: Amount,
    },
    /// The peer acknowledged our newest update.
    PaymentAcked {
        /// Its nonce.
        nonce: u64,
    },
    /// We accepted (and committed) a payment.
    PaymentReceived {
        /// Its nonce.
        nonce: u64,
        /// Cumulative received.
        cumulative: Amount,
        /// This payment.
        amount: Amount,
    },
    /// We refused an update.
    PaymentRefused(Refusal),
    /// The peer refused our update (`reason` as it said, `None` if unknown code).
    RefusedByPeer {
        /// Its reason.
        reason: Option<Refusal>,
        /// Its best update.
        at: Position,
    },
    /// Our store was behind the peer: we adopted our own newer update from it.
    Adopted {
        /// Its nonce.
        nonce: u64,
    },
    /// The neighbour's service level changed.
    Service(ServiceLevel),
    /// A message that does not parse.
    Malformed(WireError),
}

/// What the driver does after a call: send these messages to the neighbour (in order).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PaymentOutput {
    /// Encoded messages.
    pub send: Vec<Vec<u8>>,
    /// What happened.
    pub events: Vec<PaymentEvent>,
}

/// Counters of one neighbour.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PaymentCounters {
    /// Updates signed.
    pub sent: u64,
    /// Retransmissions.
    pub retries: u64,
    /// Updates accepted.
    pub received: u64,
    /// Duplicate updates acknowledged again.
    pub duplicates: u64,
    /// Messages that do not parse.
    pub malformed: u64,
    /// Acknowledgements or `Latest` messages that match nothing we signed.
    pub unmatched: u64,
    /// Refusals of our updates by the peer.
    pub refused_by_peer: u64,
}

/// One neighbour's payments (module documentation).
#[derive(Debug, Clone)]
pub struct PaymentPeer {
    key: SigningKey,
    neighbour: [u8; 32],
    cfg: PaymentPeerConfig,
    metered_in: Amount,
    metered_out: Amount,
    closed_out: Amount,
    closed_in: Amount,
    /// The channels the caller gave at restore: the record names ours only once they moved.
    given: (ChannelId, ChannelId),
    claim: Amount,
    payer: PayerChannel,
    payee: PayeeChannel,
    retry_at: Option<Instant>,
    backoff: Duration,
    heard: bool,
    reestablish_at: Option<Instant>,
    level: ServiceLevel,
    paying: bool,
    /// Refused updates by kind.
    pub refusals: RefusalCounters,
    /// Other counters.
    pub counters: PaymentCounters,
}

impl PaymentPeer {
    /// Restores the neighbour `neighbour` (its ed25519 public key) from `store`. `out_channel` is
    /// our channel to it, `in_channel` its channel to us, unless the record names others (the
    /// channels it moved to, [`PaymentPeer::move_out`] and [`PaymentPeer::move_in`]).
    pub fn restore(
        key: SigningKey,
        neighbour: [u8; 32],
        out_channel: ChannelId,
        in_channel: ChannelId,
        cfg: PaymentPeerConfig,
        store: &impl Store,
    ) -> Result<PaymentPeer, StoreError> {
        let me = key.verifying_key().to_bytes();
        let r = store.load(&neighbour)?.unwrap_or_default();
        let given = (out_channel, in_channel);
        let out_channel = r.out_channel.unwrap_or(out_channel);
        let in_channel = r.in_channel.unwrap_or(in_channel);
        let mine = |u: &Option<SignedUpdate>, ch: ChannelId, payer: [u8; 32], payee: [u8; 32]| {
            u.filter(|u| {
                u.update.channel == ch && u.update.payer == payer && u.update.payee == payee
            })
        };
        let out = mine(&r.out, out_channel, me, neighbour);
        let inbound = mine(&r.inbound, in_channel, neighbour, me);
        if out != r.out || inbound != r.inbound {
            return Err(StoreError::Corrupt);
        }
        let mut peer = PaymentPeer {
            key,
            neighbour,
            cfg,
            metered_in: r.metered_in,
            metered_out: r.metered_out,
            closed_out: r.closed_out,
            closed_in: r.closed_in,
            given,
            claim: Amount(0),
            payer: PayerChannel::new(out_channel, me, neighbour, out),
            payee: PayeeChannel::new(in_channel, neighbour, me, inbound),
            retry_at: None,
            backoff: cfg.retry,
            heard: false,
            reestablish_at: None,
            level: ServiceLevel::Full,
            paying: true,
            refusals: RefusalCounters::default(),
            counters: PaymentCounters::default(),
        };
        peer.level = peer.computed_level();
        Ok(peer)
    }

    /// Whether we sign new payments when they are due (on by default). Off, an operator (or a
    /// test) withholds payment: debts keep growing, updates already signed are still
    /// retransmitted until acknowledged.
    pub fn set_paying(&mut self, on: bool) {
        self.paying = on;
    }

    /// See [`PaymentPeer::set_paying`].
    pub fn paying(&self) -> bool {
        self.paying
    }

    /// The neighbour's key.
    pub fn neighbour(&self) -> &[u8; 32] {
        &self.neighbour
    }

    /// Our channel to the neighbour.
    pub fn payer(&self) -> &PayerChannel {
        &self.payer
    }

    /// The neighbour's channel to us.
    pub fn payee(&self) -> &PayeeChannel {
        &self.payee
    }

    /// Value of the service we gave the neighbour, as we metered it.
    pub fn metered_in(&self) -> Amount {
        self.metered_in
    }

    /// Value of the service the neighbour gave us, as we metered it.
    pub fn metered_out(&self) -> Amount {
        self.metered_out
    }

    /// The neighbour's last claim of what we owe in total (from its acknowledgements).
    pub fn claim(&self) -> Amount {
        self.claim
    }

    /// Adds metered value: `value_in` of service we gave (forwarded for the neighbour),
    /// `value_out` of service we received. In memory until the next commit.
    pub fn meter(&mut self, value_in: Amount, value_out: Amount) {
        self.metered_in = self.metered_in.saturating_add(value_in);
        self.metered_out = self.metered_out.saturating_add(value_out);
    }

    /// Commits the metered totals (once per metering interval) and re-evaluates the service
    /// level.
    pub fn commit_metering(&mut self, store: &mut impl Store) -> Result<PaymentOutput, StoreError> {
        store.commit(&self.neighbour, &self.record())?;
        let mut out = PaymentOutput::default();
        self.update_level(&mut out);
        Ok(out)
    }

    /// What we pay for in total: our own metering, raised to the neighbour's claim when that is
    /// within `drift_ppm` of it.
    pub fn billable_out(&self) -> Amount {
        let m = self.metered_out.0;
        let cap = m.saturating_add(m / 1_000_000 * u128::from(self.cfg.thresholds.drift_ppm));
        Amount(m.max(self.claim.0.min(cap)))
    }

    /// What we owe the neighbour now.
    pub fn owed_out(&self) -> Amount {
        self.billable_out()
            .checked_sub(self.paid_out())
            .unwrap_or_default()
    }

    /// What the neighbour owes us now.
    pub fn owed_in(&self) -> Amount {
        self.metered_in
            .checked_sub(self.paid_in())
            .unwrap_or_default()
    }

    /// Everything we paid the neighbour: on our earlier channels and on the current one.
    pub fn paid_out(&self) -> Amount {
        self.closed_out.saturating_add(self.payer.paid())
    }

    /// Everything the neighbour paid us: on its earlier channels and on the current one.
    pub fn paid_in(&self) -> Amount {
        self.closed_in.saturating_add(self.payee.paid())
    }

    /// Our channel to the neighbour was closed (or a close asked for): from now on we pay on
    /// `channel`, from cumulative 0, and what we signed on the old one counts as paid
    /// ([`PaymentPeer::paid_out`]). Committed before it takes effect; an update in flight on the old
    /// channel is no longer retransmitted. False when `channel` is already ours.
    pub fn move_out(
        &mut self,
        channel: ChannelId,
        store: &mut impl Store,
    ) -> Result<bool, StoreError> {
        if channel == self.payer.channel() {
            return Ok(false);
        }
        let me = self.key.verifying_key().to_bytes();
        let next = PayerChannel::new(channel, me, self.neighbour, None);
        let mut r = self.record();
        r.closed_out = self.paid_out();
        r.out = None;
        r.out_channel = Some(channel);
        store.commit(&self.neighbour, &r)?;
        self.closed_out = r.closed_out;
        self.payer = next;
        self.retry_at = None;
        self.backoff = self.cfg.retry;
        Ok(true)
    }

    /// The neighbour's channel to us was closed: from now on it pays on `channel`, from
    /// cumulative 0, and the best update of the old one counts as paid ([`PaymentPeer::paid_in`]).
    /// Committed before it takes effect. False when `channel` is already its.
    pub fn move_in(
        &mut self,
        channel: ChannelId,
        store: &mut impl Store,
    ) -> Result<bool, StoreError> {
        if channel == self.payee.channel() {
            return Ok(false);
        }
        let me = self.key.verifying_key().to_bytes();
        let next = PayeeChannel::new(channel, self.neighbour, me, None);
        let mut r = self.record();
        r.closed_in = self.paid_in();
        r.inbound = None;
        r.in_channel = Some(channel);
        store.commit(&self.neighbour, &r)?;
        self.closed_in = r.closed_in;
        self.payee = next;
        Ok(true)
    }

    /// The service level the neighbour's debt gives it.
    pub fn service_level(&self) -> ServiceLevel {
        self.level
    }

    fn computed_level(&self) -> ServiceLevel {
        if self.owed_in() > self.cfg.thresholds.close {
            ServiceLevel::FreeTier
        } else {
            ServiceLevel::Full
        }
    }

    fn update_level(&mut self, out: &mut PaymentOutput) {
        let l = self.computed_level();
        if l != self.level {
            self.level = l;
            out.events.push(PaymentEvent::Service(l));
        }
    }

    fn record(&self) -> Record {
        Record {
            metered_in: self.metered_in,
            metered_out: self.metered_out,
            out: self.payer.latest().copied(),
            inbound: self.payee.best().copied(),
            closed_out: self.closed_out,
            closed_in: self.closed_in,
            out_channel: Some(self.payer.channel()).filter(|c| *c != self.given.0),
            in_channel: Some(self.payee.channel()).filter(|c| *c != self.given.1),
        }
    }

    fn reestablish(&self, reply: bool) -> Vec<u8> {
        let pos = |u: Option<&SignedUpdate>| Position {
            nonce: u.map(|u| u.update.nonce).unwrap_or(0),
            cumulative: u.map(|u| u.update.cumulative).unwrap_or_default(),
        };
        PaymentMessage::Reestablish {
            reply,
            out_channel: self.payer.channel(),
            out: pos(self.payer.latest()),
            in_channel: self.payee.channel(),
            inbound: pos(self.payee.best()),
        }
        .encode()
    }

    fn arm_retry(&mut self, now: Instant) {
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.cfg.retry_max);
    }

    /// Timers and decisions: reestablish until the neighbour answers, retransmit an
    /// unacknowledged update, and pay (commit, then send) when we owe more than the pay
    /// threshold and nothing is in flight.
    pub fn poll(
        &mut self,
        now: Instant,
        store: &mut impl Store,
    ) -> Result<PaymentOutput, StoreError> {
        let mut out = PaymentOutput::default();
        if !self.heard && self.reestablish_at.is_none_or(|t| now >= t) {
            out.send.push(self.reestablish(true));
            self.reestablish_at = Some(now + self.cfg.retry);
        }
        if self.payer.in_flight() {
            if self.retry_at.is_none_or(|t| now >= t) {
                if let Some(u) = self.payer.latest() {
                    out.send.push(PaymentMessage::Update(u.to_bytes()).encode());
                    self.counters.retries += 1;
                }
                self.arm_retry(now);
            }
        } else {
            self.pay_if_due(now, store, &mut out)?;
        }
        self.update_level(&mut out);
        Ok(out)
    }

    /// Signs, commits and sends a payment when we owe more than the pay threshold and nothing is
    /// in flight.
    fn pay_if_due(
        &mut self,
        now: Instant,
        store: &mut impl Store,
        out: &mut PaymentOutput,
    ) -> Result<(), StoreError> {
        if self.payer.in_flight() || !self.paying {
            return Ok(());
        }
        let owed = self.owed_out();
        if owed <= self.cfg.thresholds.pay || owed.0 == 0 {
            return Ok(());
        }
        let Some(u) = self.payer.next(&self.key, owed) else {
            return Ok(());
        };
        let mut r = self.record();
        r.out = Some(u);
        store.commit(&self.neighbour, &r)?;
        self.payer.signed(u);
        self.counters.sent += 1;
        self.backoff = self.cfg.retry;
        self.arm_retry(now);
        out.send.push(PaymentMessage::Update(u.to_bytes()).encode());
        out.events.push(PaymentEvent::PaymentSent {
            nonce: u.update.nonce,
            cumulative: u.update.cumulative,
            amount: owed,
        });
        Ok(())
    }

    /// One message from the neighbour. An acknowledgement that completes our update lets the
    /// next payment go at once if one is due.
    pub fn handle(
        &mut self,
        now: Instant,
        bytes: &[u8],
        settlement: &mut impl Settlement,
        store: &mut impl Store,
    ) -> Result<PaymentOutput, StoreError> {
        let mut out = PaymentOutput::default();
        let msg = match PaymentMessage::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.counters.malformed += 1;
                out.events.push(PaymentEvent::Malformed(e));
                return Ok(out);
            }
        };
        self.heard = true;
        match msg {
            PaymentMessage::Update(b) => self.on_update(&b, settlement, store, &mut out)?,
            PaymentMessage::Ack { channel, at, claim } => {
                if channel == self.payer.channel() && self.payer.on_ack(at.nonce, at.cumulative) {
                    self.retry_at = None;
                    self.backoff = self.cfg.retry;
                    out.events
                        .push(PaymentEvent::PaymentAcked { nonce: at.nonce });
                } else if at.nonce > self.payer.nonce() {
                    self.counters.unmatched += 1;
                }
                if channel == self.payer.channel() {
                    self.claim = self.claim.max(claim);
                    self.pay_if_due(now, store, &mut out)?;
                }
            }
            PaymentMessage::Refuse { at, reason, .. } => {
                self.counters.refused_by_peer += 1;
                out.events.push(PaymentEvent::RefusedByPeer {
                    reason: Refusal::from_code(reason),
                    at,
                });
            }
            PaymentMessage::Reestablish {
                reply,
                out_channel,
                out: their_out,
                in_channel,
                inbound,
            } => {
                if reply {
                    out.send.push(self.reestablish(false));
                }
                if in_channel == self.payer.channel() {
                    if let Some(u) = self.payer.latest().copied() {
                        if inbound.nonce < u.update.nonce {
                            out.send.push(PaymentMessage::Update(u.to_bytes()).encode());
                            self.arm_retry(now);
                        } else if inbound.nonce == u.update.nonce
                            && self.payer.on_ack(inbound.nonce, inbound.cumulative)
                        {
                            self.retry_at = None;
                            out.events.push(PaymentEvent::PaymentAcked {
                                nonce: inbound.nonce,
                            });
                        }
                    }
                }
                if out_channel == self.payee.channel() && their_out.nonce < self.payee.nonce() {
                    if let Some(b) = self.payee.best() {
                        out.send.push(PaymentMessage::Latest(b.to_bytes()).encode());
                    }
                }
            }
            PaymentMessage::Latest(b) => {
                let mut p = self.payer.clone();
                match SignedUpdate::from_bytes(&b) {
                    Ok(u) if p.adopt(&u) => {
                        let mut r = self.record();
                        r.out = Some(u);
                        store.commit(&self.neighbour, &r)?;
                        self.payer = p;
                        self.retry_at = None;
                        out.events.push(PaymentEvent::Adopted {
                            nonce: u.update.nonce,
                        });
                    }
                    _ => self.counters.unmatched += 1,
                }
            }
            // Keys are exchanged by the driver (it knows which tunnel a message came through).
            PaymentMessage::Hello { .. } => {}
        }
        self.update_level(&mut out);
        Ok(out)
    }

    fn on_update(
        &mut self,
        bytes: &[u8],
        settlement: &mut impl Settlement,
        store: &mut impl Store,
        out: &mut PaymentOutput,
    ) -> Result<(), StoreError> {
        let channel = self.payee.channel();
        match self.payee.check(bytes, settlement.deposit(&channel)) {
            Ok(Accept::New { update, amount }) => {
                let mut r = self.record();
                r.inbound = Some(update);
                store.commit(&self.neighbour, &r)?;
                self.payee.accepted(update);
                settlement.offer(&update);
                self.counters.received += 1;
                out.events.push(PaymentEvent::PaymentReceived {
                    nonce: update.update.nonce,
                    cumulative: update.update.cumulative,
                    amount,
                });
                out.send.push(self.ack());
            }
            Ok(Accept::Duplicate) => {
                self.counters.duplicates += 1;
                out.send.push(self.ack());
            }
            Err(refusal) => {
                self.refusals.count(refusal);
                out.events.push(PaymentEvent::PaymentRefused(refusal));
                out.send.push(
                    PaymentMessage::Refuse {
                        channel,
                        at: self.payee_position(),
                        reason: refusal.code(),
                    }
                    .encode(),
                );
            }
        }
        Ok(())
    }

    fn payee_position(&self) -> Position {
        Position {
            nonce: self.payee.nonce(),
            cumulative: self.payee.paid(),
        }
    }

    fn ack(&self) -> Vec<u8> {
        PaymentMessage::Ack {
            channel: self.payee.channel(),
            at: self.payee_position(),
            claim: self.metered_in,
        }
        .encode()
    }
}
