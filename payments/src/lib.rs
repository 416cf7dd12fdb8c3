//! # payments
//!
//! Neighbours pay each other for forwarded traffic through one unidirectional payment channel per
//! (payer, payee) pair: the payer signs updates that carry the **cumulative** amount paid so far,
//! the payee keeps the best one it has seen. This crate is sans-IO: it takes `now` as a parameter
//! and performs no I/O of its own except through the storage it is given.
//!
//! [`update`] fixes the byte layout that both the payee and a settlement layer (an escrow contract
//! on a chain) verify; [`Settlement`] is the boundary to that layer. `spec/payments.md` is the
//! specification:
//!
//! * [`price`]: the unit (wei per byte) and exact costing;
//! * [`meter`]: per-neighbour, per-destination metering;
//! * [`channel`]: the payer's and the payee's ends of a channel, and every refusal;
//! * [`wire`]: the messages between two routers (update, ack, refuse, reestablish, latest);
//! * [`peer`]: one neighbour: ledger, thresholds, retries, resynchronisation, service level;
//! * [`store`]: the durable record and the `redb` ledger, committed before send or ack;
//! * [`shaper`]: free tier and payment-weighted sharing of a link, per packet;
//! * [`node`]: all neighbours of a router, as the daemon drives them.

pub mod channel;
pub mod meter;
pub mod node;
pub mod peer;
pub mod price;
pub mod shaper;
pub mod store;
pub mod update;
pub mod wire;

pub use channel::{Accept, PayeeChannel, PayerChannel, Refusal, RefusalCounters};
pub use meter::{Flow, Meter};
pub use node::{Neighbour, Payments, View};
pub use peer::{
    PaymentCounters, PaymentEvent, PaymentOutput, PaymentPeer, PaymentPeerConfig, ServiceLevel,
    Thresholds,
};
pub use price::{Price, cost};
pub use shaper::{Shaper, ShaperConfig, ShaperVerdict};
pub use store::{Direction, MemStore, Record, RedbStore, Store, StoreError};
pub use update::{
    Amount, CANONICAL_LEN, ChannelId, ChannelUpdate, DOMAIN_TAG, SIGNED_LEN, SignedUpdate,
    UpdateError,
};

/// What the payment logic needs from the layer that holds the money behind a channel (an escrow
/// contract on a chain, or nothing but a configured number for off-chain IOUs).
///
/// Implementations must not block: a chain that is unreachable answers `None` and keeps the last
/// update to offer it later, so that routing and metering never wait on settlement.
pub trait Settlement {
    /// The collateral locked for `channel` as last known, or `None` when it is not known (never
    /// opened, or the layer is unreachable). A payee accepts no update above it.
    fn deposit(&self, channel: &ChannelId) -> Option<Amount>;

    /// The payee's newest valid update for a channel, handed over so the settlement layer can
    /// redeem it before the deposit runs out or answer a unilateral close with it.
    fn offer(&mut self, update: &SignedUpdate);
}

/// Settlement for channels whose deposit is a configured number and that are never redeemed on a
/// chain: the update stream is then a signed, replay-proof debt ledger, and exposure is bounded
/// only by the thresholds.
#[derive(Debug, Clone, Default)]
pub struct FixedDeposits {
    deposits: std::collections::BTreeMap<ChannelId, Amount>,
}

impl FixedDeposits {
    /// Sets the deposit of one channel.
    pub fn set(&mut self, channel: ChannelId, deposit: Amount) {
        self.deposits.insert(channel, deposit);
    }
}

impl Settlement for FixedDeposits {
    fn deposit(&self, channel: &ChannelId) -> Option<Amount> {
        self.deposits.get(channel).copied()
    }

    fn offer(&mut self, _update: &SignedUpdate) {}
}
