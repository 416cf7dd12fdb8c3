//! The two ends of one unidirectional channel: the payer, who signs ever higher cumulative
//! updates, and the payee, who keeps the best valid one.
//!
//! Neither end writes anything itself: [`crate::PaymentPeer`] commits the new state to its
//! [`crate::Store`] before the update leaves (payer) or is acknowledged (payee).

use ed25519_dalek::SigningKey;

use crate::{Amount, ChannelId, ChannelUpdate, SignedUpdate, UpdateError};

/// Why a payee refused an update. Every kind has its own counter ([`RefusalCounters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    /// Not a well-formed signed update (wrong length or domain tag).
    #[error("garbage: {0}")]
    Garbage(UpdateError),
    /// The signature does not verify strictly under the payer key it names.
    #[error("bad signature")]
    BadSignature,
    /// The update is for another channel.
    #[error("wrong channel")]
    WrongChannel,
    /// The update names another payer or payee than this channel's.
    #[error("wrong key")]
    WrongKey,
    /// The nonce is not above the best update's (an old update or a replay).
    #[error("replay: nonce not above the best update's")]
    Replay,
    /// A higher nonce but a cumulative amount not above the best update's.
    #[error("cumulative amount not above the best update's")]
    LowerCumulative,
    /// The cumulative amount is above the channel's deposit.
    #[error("cumulative amount above the deposit")]
    OverDeposit,
    /// The settlement layer does not know the channel's deposit (yet).
    #[error("deposit unknown")]
    NoDeposit,
}

impl Refusal {
    /// All kinds, in counter order.
    pub const ALL: [Refusal; 8] = [
        Refusal::Garbage(UpdateError::Length(0)),
        Refusal::BadSignature,
        Refusal::WrongChannel,
        Refusal::WrongKey,
        Refusal::Replay,
        Refusal::LowerCumulative,
        Refusal::OverDeposit,
        Refusal::NoDeposit,
    ];

    /// Index of the kind (its wire code minus one).
    pub fn index(&self) -> usize {
        match self {
            Refusal::Garbage(_) => 0,
            Refusal::BadSignature => 1,
            Refusal::WrongChannel => 2,
            Refusal::WrongKey => 3,
            Refusal::Replay => 4,
            Refusal::LowerCumulative => 5,
            Refusal::OverDeposit => 6,
            Refusal::NoDeposit => 7,
        }
    }

    /// A short stable name for logs, `dump` and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::Garbage(_) => "garbage",
            Refusal::BadSignature => "bad-signature",
            Refusal::WrongChannel => "wrong-channel",
            Refusal::WrongKey => "wrong-key",
            Refusal::Replay => "replay",
            Refusal::LowerCumulative => "lower-cumulative",
            Refusal::OverDeposit => "over-deposit",
            Refusal::NoDeposit => "no-deposit",
        }
    }

    /// The one-byte code carried in a `Refuse` message.
    pub fn code(&self) -> u8 {
        // At most 8 kinds: the cast cannot truncate.
        (self.index() + 1) as u8
    }

    /// Decodes a `Refuse` code.
    pub fn from_code(code: u8) -> Option<Refusal> {
        Refusal::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

/// How many updates were refused, per [`Refusal`] kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusalCounters([u64; 8]);

impl RefusalCounters {
    /// Counts one refusal.
    pub fn count(&mut self, r: Refusal) {
        if let Some(c) = self.0.get_mut(r.index()) {
            *c += 1;
        }
    }

    /// The count of one kind.
    pub fn get(&self, r: Refusal) -> u64 {
        self.0.get(r.index()).copied().unwrap_or(0)
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// (name, count) of every kind.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Refusal::ALL.iter().map(|r| (r.name(), self.get(*r)))
    }
}

/// The payer's end: the newest update it signed and the newest the payee acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayerChannel {
    channel: ChannelId,
    payer: [u8; 32],
    payee: [u8; 32],
    latest: Option<SignedUpdate>,
    acked_nonce: u64,
}

impl PayerChannel {
    /// A channel from `payer` to `payee`, restored with the newest update the payer signed (as
    /// committed to its store). Nothing restored counts as acknowledged.
    pub fn new(
        channel: ChannelId,
        payer: [u8; 32],
        payee: [u8; 32],
        latest: Option<SignedUpdate>,
    ) -> PayerChannel {
        PayerChannel {
            channel,
            payer,
            payee,
            latest,
            acked_nonce: 0,
        }
    }

    /// The channel id.
    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    /// Everything signed so far (what our ledger counts as paid).
    pub fn paid(&self) -> Amount {
        self.latest.map(|s| s.update.cumulative).unwrap_or_default()
    }

    /// The newest signed update's nonce (0 before the first).
    pub fn nonce(&self) -> u64 {
        self.latest.map(|s| s.update.nonce).unwrap_or(0)
    }

    /// The newest signed update.
    pub fn latest(&self) -> Option<&SignedUpdate> {
        self.latest.as_ref()
    }

    /// The newest update is not acknowledged yet.
    pub fn in_flight(&self) -> bool {
        self.nonce() > self.acked_nonce
    }

    /// The nonce the payee acknowledged last.
    pub fn acked_nonce(&self) -> u64 {
        self.acked_nonce
    }

    /// Signs the next update, paying `amount` more. It is not yet the channel's state: the caller
    /// commits it, then [`PayerChannel::signed`] it, then sends it. `None` on overflow.
    pub fn next(&self, key: &SigningKey, amount: Amount) -> Option<SignedUpdate> {
        let update = ChannelUpdate {
            channel: self.channel,
            payer: self.payer,
            payee: self.payee,
            nonce: self.nonce().checked_add(1)?,
            cumulative: Amount(self.paid().0.checked_add(amount.0)?),
        };
        Some(update.sign(key))
    }

    /// Makes a committed update the newest.
    pub fn signed(&mut self, update: SignedUpdate) {
        self.latest = Some(update);
    }

    /// The payee acknowledged `nonce` with `cumulative`. True when that is our newest update;
    /// an acknowledgement of an older one is stale, of an unknown one is ignored (false).
    pub fn on_ack(&mut self, nonce: u64, cumulative: Amount) -> bool {
        match self.latest {
            Some(l) if l.update.nonce == nonce && l.update.cumulative == cumulative => {
                self.acked_nonce = nonce;
                true
            }
            _ => false,
        }
    }

    /// The payee holds `update`, newer than our newest: our store lost state (it must not, but a
    /// restored backup can). It is signed by our own key for this channel, so we adopt it rather
    /// than sign a second, different update with the same nonce. True when adopted.
    pub fn adopt(&mut self, update: &SignedUpdate) -> bool {
        let u = &update.update;
        if u.channel != self.channel || u.payer != self.payer || u.payee != self.payee {
            return false;
        }
        if update.verify().is_err() || u.nonce <= self.nonce() || u.cumulative < self.paid() {
            return false;
        }
        self.latest = Some(*update);
        self.acked_nonce = u.nonce;
        true
    }
}

/// What the payee makes of a valid update.
#[allow(clippy::large_enum_variant)] // short-lived, returned by value once per update
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Newer than the best: credits `amount`; commit it, then [`PayeeChannel::accepted`].
    New {
        /// The update.
        update: SignedUpdate,
        /// Its cumulative amount minus the best's.
        amount: Amount,
    },
    /// Exactly the best update again (a retry after a lost acknowledgement): acknowledge again,
    /// credit nothing.
    Duplicate,
}

/// The payee's end: the best (highest) valid update received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayeeChannel {
    channel: ChannelId,
    payer: [u8; 32],
    payee: [u8; 32],
    best: Option<SignedUpdate>,
}

impl PayeeChannel {
    /// A channel from `payer` to `payee`, restored with the best update committed.
    pub fn new(
        channel: ChannelId,
        payer: [u8; 32],
        payee: [u8; 32],
        best: Option<SignedUpdate>,
    ) -> PayeeChannel {
        PayeeChannel {
            channel,
            payer,
            payee,
            best,
        }
    }

    /// The channel id.
    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    /// Everything received so far.
    pub fn paid(&self) -> Amount {
        self.best.map(|s| s.update.cumulative).unwrap_or_default()
    }

    /// The best update's nonce (0 before the first).
    pub fn nonce(&self) -> u64 {
        self.best.map(|s| s.update.nonce).unwrap_or(0)
    }

    /// The best update.
    pub fn best(&self) -> Option<&SignedUpdate> {
        self.best.as_ref()
    }

    /// Checks wire bytes against every rule, in order: well-formed, strictly signed, this
    /// channel and these keys, a strictly higher nonce and cumulative amount, within `deposit`.
    pub fn check(&self, bytes: &[u8], deposit: Option<Amount>) -> Result<Accept, Refusal> {
        let s = SignedUpdate::from_bytes(bytes).map_err(|e| match e {
            UpdateError::Signature | UpdateError::PayerKey => Refusal::BadSignature,
            e => Refusal::Garbage(e),
        })?;
        let u = &s.update;
        if u.channel != self.channel {
            return Err(Refusal::WrongChannel);
        }
        if u.payer != self.payer || u.payee != self.payee {
            return Err(Refusal::WrongKey);
        }
        if self.best == Some(s) {
            return Ok(Accept::Duplicate);
        }
        if u.nonce <= self.nonce() {
            return Err(Refusal::Replay);
        }
        let Some(amount) = u.cumulative.checked_sub(self.paid()).filter(|a| a.0 > 0) else {
            return Err(Refusal::LowerCumulative);
        };
        match deposit {
            None => Err(Refusal::NoDeposit),
            Some(d) if u.cumulative > d => Err(Refusal::OverDeposit),
            Some(_) => Ok(Accept::New { update: s, amount }),
        }
    }

    /// Makes a committed update the best.
    pub fn accepted(&mut self, update: SignedUpdate) {
        self.best = Some(update);
    }
}
