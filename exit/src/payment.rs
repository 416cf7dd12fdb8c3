//! Bills and payments between a user and its exit, inside their tunnel (network paper, "Exit
//! nodes" and "Payments"; `spec/exits.md`, "Bills and payments in the tunnel").
//!
//! The exit sends each user its signed cumulative bill ([`crate::wire::Bill`]); the user checks
//! it against its own counters of the tunnel ([`UserBilling`]) and pays it through a `payments`
//! channel, the same channels (signed cumulative updates, durable before sent or acknowledged)
//! neighbours use, here between user and exit. Both travel in UDP datagrams between the two
//! ends' addresses inside the tunnel, on [`PAY_PORT`], each a one-byte [`Frame`] kind then the
//! message. The exit exempts exactly that service from a throttled user's policy, so throttling
//! never blocks the payment that would lift it.
//!
//! [`UserPayments`] is the user's end, [`ExitPayments`] the exit's; both are sans-IO over a
//! `payments::Store`.

use clock::Instant;
use std::collections::HashMap;

use ed25519_dalek::SigningKey;
use payments::{
    Amount, ChannelId, FixedDeposits, PaymentOutput, PaymentPeer, PaymentPeerConfig, Store,
    StoreError, Thresholds,
};

use crate::bill::{BillError, Checked, Tolerance, UserLedger};

/// UDP port of the bill and payment service at both ends' addresses inside the exit tunnel.
pub const PAY_PORT: u16 = 4879;

/// The largest frame (a payment message or a bill, with the kind byte).
pub const MAX_FRAME: usize = 512;

/// Frame kinds.
pub mod frame {
    /// Exit to user: a signed bill (`wire::ExitMessage::Bill`).
    pub const BILL: u8 = 1;
    /// Either way: a `payments::wire` message of the user's channel to the exit.
    pub const CHANNEL: u8 = 2;
}

/// One datagram of the bill and payment service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A signed bill.
    Bill(&'a [u8]),
    /// A payment-channel message.
    Channel(&'a [u8]),
}

/// Why a datagram is not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Nothing in it.
    #[error("empty datagram")]
    Empty,
    /// Longer than [`MAX_FRAME`].
    #[error("datagram of {0} bytes")]
    TooLong(usize),
    /// An unknown kind byte.
    #[error("unknown frame kind {0}")]
    Kind(u8),
}

impl<'a> Frame<'a> {
    /// Parses a datagram (the message itself is checked by its own decoder).
    pub fn decode(b: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        if b.len() > MAX_FRAME {
            return Err(FrameError::TooLong(b.len()));
        }
        let (kind, rest) = b.split_first().ok_or(FrameError::Empty)?;
        match *kind {
            frame::BILL => Ok(Frame::Bill(rest)),
            frame::CHANNEL => Ok(Frame::Channel(rest)),
            k => Err(FrameError::Kind(k)),
        }
    }

    /// The datagram.
    pub fn encode(&self) -> Vec<u8> {
        let (k, body) = match self {
            Frame::Bill(b) => (frame::BILL, b),
            Frame::Channel(b) => (frame::CHANNEL, b),
        };
        let mut o = Vec::with_capacity(body.len() + 1);
        o.push(k);
        o.extend_from_slice(body);
        o
    }
}

/// What a user did with the bills it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BillCounters {
    /// New bills accepted.
    pub accepted: u64,
    /// The accepted bill received again.
    pub duplicates: u64,
    /// Refused: more bytes or a higher amount than the user's counters and the formula allow.
    pub overcharged: u64,
    /// Refused: older than the accepted bill, or a second bill with its sequence number.
    pub replayed: u64,
    /// Refused: not an authentic bill from our exit for us (forged, garbled, someone else's).
    pub forged: u64,
}

impl BillCounters {
    fn count(&mut self, r: &Result<Checked, BillError>) {
        match r {
            Ok(Checked::Accepted(_)) => self.accepted += 1,
            Ok(Checked::Duplicate) => self.duplicates += 1,
            Err(BillError::Overcounted { .. } | BillError::Overcharged { .. }) => {
                self.overcharged += 1
            }
            Err(BillError::Stale { .. } | BillError::Equivocation(_) | BillError::Regressed) => {
                self.replayed += 1
            }
            Err(BillError::Wire(_) | BillError::NotABill | BillError::WrongParty) => {
                self.forged += 1
            }
        }
    }

    /// Bills refused, every reason.
    pub fn refused(&self) -> u64 {
        self.overcharged + self.replayed + self.forged
    }
}

/// The user's bill checking with one exit: its [`UserLedger`] fed from the tunnel's counters,
/// the counters of what it accepted and refused, and the last result for `show exits`.
#[derive(Debug, Clone)]
pub struct UserBilling {
    ledger: UserLedger,
    tunnel: Option<(u64, u64)>,
    /// Accepted and refused bills.
    pub counters: BillCounters,
    last: String,
}

impl UserBilling {
    /// Checking against `ledger` (new, or restored with [`UserLedger::decode`]).
    pub fn new(ledger: UserLedger) -> UserBilling {
        UserBilling {
            ledger,
            tunnel: None,
            counters: BillCounters::default(),
            last: String::new(),
        }
    }

    /// The tunnel peer's cumulative counters of inner bytes now: `sent` to the exit, `received`
    /// from it. The growth since the previous call is counted (since zero at the first call:
    /// the peer counts from its creation); counters that went down (the peer was re-created)
    /// count from zero.
    pub fn tunnel_counters(&mut self, sent: u64, received: u64) {
        let (s0, r0) = match self.tunnel {
            Some((s, r)) if s <= sent && r <= received => (s, r),
            _ => (0, 0),
        };
        self.ledger.count(sent - s0, received - r0);
        self.tunnel = Some((sent, received));
    }

    /// Checks a bill ([`UserLedger::check`]), counts and remembers the result.
    pub fn on_bill(
        &mut self,
        bytes: &[u8],
        tolerance: Tolerance,
        max_route_back_price: payments::Price,
    ) -> Result<Checked, BillError> {
        let r = self.ledger.check(bytes, tolerance, max_route_back_price);
        self.counters.count(&r);
        self.last = match &r {
            Ok(Checked::Accepted(b)) => format!("accepted {}", b.totals.seq),
            Ok(Checked::Duplicate) => "duplicate".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        r
    }

    /// The exit's fee, as its newest registration answer announced it.
    pub fn set_fee(&mut self, fee: payments::Price) {
        self.ledger.set_fee(fee);
    }

    /// The last result: `accepted SEQ`, `duplicate`, `refused: WHY`, or empty.
    pub fn last(&self) -> &str {
        &self.last
    }

    /// The ledger (persist [`UserLedger::encode`] after an accepted bill, before paying).
    pub fn ledger(&self) -> &UserLedger {
        &self.ledger
    }
}

/// The peer configuration of a user-exit channel: the user pays every accepted bill in full at
/// once (pay threshold zero); the exit's own throttling follows `exit::ServiceThresholds`, so
/// the close threshold here is not used.
fn channel_config() -> PaymentPeerConfig {
    PaymentPeerConfig {
        thresholds: Thresholds {
            pay: Amount(0),
            ..Thresholds::default()
        },
        ..PaymentPeerConfig::default()
    }
}

/// The user's end of its payment channel to one exit (payer), over a durable `payments` store.
#[derive(Debug)]
pub struct UserPayments<S: Store> {
    billing: UserBilling,
    peer: PaymentPeer,
    store: S,
    deposits: FixedDeposits,
}

impl<S: Store> UserPayments<S> {
    /// Restores the channel from `user` (our payment key) to `exit` from `store`, with the bill
    /// ledger read back from its durable form (or a new one).
    pub fn open(
        user: SigningKey,
        exit: [u8; 32],
        ledger: UserLedger,
        store: S,
    ) -> Result<UserPayments<S>, StoreError> {
        let me = user.verifying_key().to_bytes();
        let peer = PaymentPeer::restore(
            user,
            exit,
            ChannelId::offchain(&me, &exit),
            ChannelId::offchain(&exit, &me),
            channel_config(),
            &store,
        )?;
        Ok(UserPayments {
            billing: UserBilling::new(ledger),
            peer,
            store,
            deposits: FixedDeposits::default(),
        })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store back (to open the channel to another exit on it).
    pub fn into_store(self) -> S {
        self.store
    }

    /// The exit's key.
    pub fn exit(&self) -> &[u8; 32] {
        self.peer.neighbour()
    }

    /// Bill checking.
    pub fn billing(&self) -> &UserBilling {
        &self.billing
    }

    /// Bill checking, to feed the tunnel's counters and check bills.
    pub fn billing_mut(&mut self) -> &mut UserBilling {
        &mut self.billing
    }

    /// Withholds new payments (`false`), or pays again (`true`); an update already signed is
    /// still retransmitted.
    pub fn set_paying(&mut self, on: bool) {
        self.peer.set_paying(on);
    }

    /// Whether we pay.
    pub fn paying(&self) -> bool {
        self.peer.paying()
    }

    /// What the accepted bills add up to (what we owe in total).
    pub fn billed(&self) -> Amount {
        self.billing.ledger.payable()
    }

    /// What our channel to the exit carries (signed; acknowledged or not).
    pub fn paid(&self) -> Amount {
        self.peer.paid_out()
    }

    /// What the exit acknowledged (its `Ack` of our newest update).
    pub fn acked(&self) -> bool {
        !self.peer.payer().in_flight()
    }

    /// Payment counters (sent, retries, ...).
    pub fn counters(&self) -> payments::PaymentCounters {
        self.peer.counters
    }

    /// Call after an accepted bill was made durable (its ledger persisted): records the bill's
    /// amount as what we owe (committed) and pays the difference if we pay (committed, then the
    /// update is in the output to send).
    pub fn bill_accepted(&mut self, now: Instant) -> Result<PaymentOutput, StoreError> {
        let owed = self
            .billing
            .ledger
            .payable()
            .checked_sub(self.peer.metered_out())
            .unwrap_or_default();
        self.peer.meter(Amount(0), owed);
        let mut out = self.peer.commit_metering(&mut self.store)?;
        let more = self.peer.poll(now, &mut self.store)?;
        out.send.extend(more.send);
        out.events.extend(more.events);
        Ok(out)
    }

    /// A channel message from the exit.
    pub fn handle(&mut self, now: Instant, bytes: &[u8]) -> Result<PaymentOutput, StoreError> {
        self.peer
            .handle(now, bytes, &mut self.deposits, &mut self.store)
    }

    /// Timers: reestablish, retransmit, pay what is due.
    pub fn poll(&mut self, now: Instant) -> Result<PaymentOutput, StoreError> {
        self.peer.poll(now, &mut self.store)
    }
}

/// A user's service level moved (after metering or a payment): what the exit changes in the
/// tunnel, both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The user.
    pub user: [u8; 32],
    /// Before.
    pub from: crate::UserService,
    /// After.
    pub to: crate::UserService,
}

/// The exit's ends of its users' channels (payee), over a durable `payments` store.
#[derive(Debug)]
pub struct ExitPayments<S: Store> {
    key: SigningKey,
    store: S,
    deposits: FixedDeposits,
    deposit: Amount,
    peers: HashMap<[u8; 32], PaymentPeer>,
    /// Users' messages whose channel could not be restored (store errors).
    pub store_failures: u64,
}

impl<S: Store> ExitPayments<S> {
    /// The exit's channel ends, signing with `key` (its payment key), accepting at most
    /// `deposit` cumulative on each user's channel (its off-chain collateral).
    pub fn new(key: SigningKey, store: S, deposit: Amount) -> ExitPayments<S> {
        ExitPayments {
            key,
            store,
            deposits: FixedDeposits::default(),
            deposit,
            peers: HashMap::new(),
            store_failures: 0,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn peer(&mut self, user: &[u8; 32]) -> Result<&mut PaymentPeer, StoreError> {
        if !self.peers.contains_key(user) {
            let me = self.key.verifying_key().to_bytes();
            let inbound = ChannelId::offchain(user, &me);
            self.deposits.set(inbound, self.deposit);
            let p = PaymentPeer::restore(
                self.key.clone(),
                *user,
                ChannelId::offchain(&me, user),
                inbound,
                channel_config(),
                &self.store,
            )?;
            self.peers.insert(*user, p);
        }
        self.peers.get_mut(user).ok_or(StoreError::Corrupt)
    }

    /// What `user`'s channel carries, as the store has it (restores the channel).
    pub fn paid(&mut self, user: &[u8; 32]) -> Result<Amount, StoreError> {
        Ok(self.peer(user)?.paid_in())
    }

    /// A channel message from `user` (the caller knows who from the tunnel's authenticated
    /// source address). Returns what to send back and what its channel now carries; credit it
    /// with `ExitServer::credit`.
    pub fn handle(
        &mut self,
        now: Instant,
        user: &[u8; 32],
        bytes: &[u8],
    ) -> Result<(PaymentOutput, Amount), StoreError> {
        if let Err(e) = self.peer(user) {
            self.store_failures += 1;
            return Err(e);
        }
        let Some(p) = self.peers.get_mut(user) else {
            return Err(StoreError::Corrupt);
        };
        let out = p.handle(now, bytes, &mut self.deposits, &mut self.store)?;
        Ok((out, p.paid_in()))
    }

    /// Timers of every channel restored so far (the exit answers; it never pays users).
    pub fn poll(&mut self, now: Instant) -> Vec<([u8; 32], PaymentOutput)> {
        let mut out = Vec::new();
        for (user, p) in self.peers.iter_mut() {
            match p.poll(now, &mut self.store) {
                Ok(o) if !o.send.is_empty() => out.push((*user, o)),
                Ok(_) => {}
                Err(_) => self.store_failures += 1,
            }
        }
        out
    }

    /// Payment counters of `user`'s channel, if restored.
    pub fn counters(&self, user: &[u8; 32]) -> Option<payments::PaymentCounters> {
        self.peers.get(user).map(|p| p.counters)
    }
}
