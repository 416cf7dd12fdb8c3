//! The payment loop's settlement layer (spec/settlement.md, "In the daemon"): without
//! `settlement` statements (or without the `settlement` cargo feature) every channel's deposit is
//! `pay-deposit` and nothing touches a chain; with them, one [`settlement::ChainSettlement`]
//! worker (its own thread: an unreachable chain never stops routing or metering) opens and tops
//! up the channels we pay on, watches and redeems the channels we are paid on, answers
//! unilateral closes, and carries out operators' requests.
//!
//! Neighbours exchange their chain accounts over the payment socket (message `ACCOUNT`); both
//! ends then compute each channel's id from the chain id, the contract, both accounts, both
//! payment keys and the salt of the pair's channel epoch, so no id travels between them. A
//! cooperative close travels as `CLOSE`: the payer's ed25519 signature over the close message,
//! which the payee sends to the contract. Once a channel is closed or closing on chain (or the
//! payer asked for its close) both ends move to the next epoch's channel
//! ([`settlement::epoch`]).

use payments::{Amount, ChannelId, FixedDeposits, Settlement, SignedUpdate};

/// Type bytes of the daemon's settlement messages on the payment socket (after the payments
/// wire version byte); outside the `payments` crate's types.
pub mod kind {
    /// `[version, ACCOUNT, account (20 bytes)]`.
    pub const ACCOUNT: u8 = 0x40;
    /// `[version, CLOSE, channel (32), nonce (8, BE), cumulative (16, BE), signature (64)]`.
    pub const CLOSE: u8 = 0x41;
}

/// Whether a datagram is one of ours.
pub fn is_settlement(data: &[u8]) -> bool {
    matches!(data.get(1), Some(&kind::ACCOUNT) | Some(&kind::CLOSE))
}

/// The deposits behind the channels: a configured number, or the chain.
pub enum Deposits {
    /// `pay-deposit` for every channel (off-chain IOUs).
    Fixed(FixedDeposits, Amount),
    /// An escrow contract.
    #[cfg(feature = "settlement")]
    Chain(Box<chain::ChainSide>),
}

impl Settlement for Deposits {
    fn deposit(&self, channel: &ChannelId) -> Option<Amount> {
        match self {
            Deposits::Fixed(f, _) => f.deposit(channel),
            #[cfg(feature = "settlement")]
            Deposits::Chain(c) => c.chain.deposit(channel),
        }
    }

    fn offer(&mut self, update: &SignedUpdate) {
        match self {
            Deposits::Fixed(f, _) => f.offer(update),
            #[cfg(feature = "settlement")]
            Deposits::Chain(c) => c.chain.offer(update),
        }
    }
}

impl Deposits {
    /// From the configuration: the chain when `settlement` statements are present.
    pub fn start(
        config: &daemon::config::DaemonConfig,
        key: &ed25519_dalek::SigningKey,
        shared: &daemon::payments::PayShared,
    ) -> anyhow::Result<Deposits> {
        let fixed = Amount(
            config
                .pay
                .deposit
                .unwrap_or(daemon::payments::DEFAULT_DEPOSIT),
        );
        if config.settlement.is_empty() {
            return Ok(Deposits::Fixed(FixedDeposits::default(), fixed));
        }
        #[cfg(feature = "settlement")]
        {
            let side = chain::ChainSide::start(config, key)?;
            if let Ok(mut b) = shared.settlement.lock() {
                b.enabled = true;
            }
            Ok(Deposits::Chain(Box::new(side)))
        }
        #[cfg(not(feature = "settlement"))]
        {
            let _ = (key, shared);
            anyhow::bail!(
                "`settlement` statements need babeld-rs built with the `settlement` feature"
            )
        }
    }

    /// The channels to add a neighbour with once its payment key is known: `Some(None)` for the
    /// off-chain ids, `Some(Some(..))` for the chain's, `None` while its account is unknown.
    pub fn channels(
        &mut self,
        me: [u8; 32],
        neighbour: [u8; 32],
    ) -> Option<Option<(ChannelId, ChannelId)>> {
        match self {
            Deposits::Fixed(f, deposit) => {
                f.set(ChannelId::offchain(&neighbour, &me), *deposit);
                Some(None)
            }
            #[cfg(feature = "settlement")]
            Deposits::Chain(c) => c.channels(me, neighbour).map(Some),
        }
    }

    /// What to send a neighbour along with our Hello.
    pub fn hello(&self) -> Option<Vec<u8>> {
        match self {
            Deposits::Fixed(..) => None,
            #[cfg(feature = "settlement")]
            Deposits::Chain(c) => Some(c.account_message()),
        }
    }

    /// We signed an update on our channel to a neighbour.
    pub fn signed(&self, channel: ChannelId, cumulative: Amount) {
        match self {
            Deposits::Fixed(..) => {
                let _ = (channel, cumulative);
            }
            #[cfg(feature = "settlement")]
            Deposits::Chain(c) => c.chain.signed(channel, cumulative),
        }
    }
}

#[cfg(feature = "settlement")]
pub mod chain {
    use std::collections::HashMap;

    use alloy::primitives::Address;
    use anyhow::Context;
    use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
    use payments::{Amount, ChannelId, ChannelUpdate, Payments, SignedUpdate};
    use settlement::escrow::{ChannelParams, SignedClose, close_bytes};
    use settlement::{ChainSettlement, Request, SettlementConfig, epoch, read_key_file};

    use super::kind;

    /// A message for the neighbour with this payment key.
    pub type ToNeighbour = ([u8; 32], Vec<u8>);

    /// Our channel to one neighbour and its channel to us: their epochs and ids.
    #[derive(Debug, Clone, Copy)]
    struct Pair {
        out_epoch: u64,
        in_epoch: u64,
        out: ChannelId,
        inbound: ChannelId,
        /// We asked for the close of `out` (cooperative or unilateral).
        close_asked: bool,
    }

    /// What the ledger held on a channel when the pair moved off it (shown next to the chain).
    #[derive(Debug, Clone, Copy)]
    struct Retired {
        neighbour: [u8; 32],
        epoch: u64,
        nonce: u64,
        cumulative: Amount,
    }

    /// The chain side of the payment loop.
    pub struct ChainSide {
        /// The worker.
        pub chain: ChainSettlement,
        config: SettlementConfig,
        key: SigningKey,
        /// Neighbours' accounts by payment key.
        accounts: HashMap<[u8; 32], Address>,
        /// Channels per neighbour payment key.
        ids: HashMap<[u8; 32], Pair>,
        /// Channels of earlier epochs, by id.
        retired: HashMap<ChannelId, Retired>,
        /// Malformed or refused settlement messages.
        pub dropped: u64,
    }

    impl ChainSide {
        pub fn start(
            config: &daemon::config::DaemonConfig,
            key: &SigningKey,
        ) -> anyhow::Result<ChainSide> {
            let text: String = config
                .settlement
                .iter()
                .map(|w| format!("settlement {}\n", w.join(" ")))
                .collect();
            let sc = SettlementConfig::parse(&text).context("settlement configuration")?;
            let account = read_key_file(&sc.key_file)?;
            let cc = sc.chain_config(account, key.verifying_key().to_bytes());
            let chain = ChainSettlement::start(cc).context("settlement worker")?;
            tracing::info!(
                "settlement: account {}, chain {} at {}, escrow {}, deposit {} wei",
                chain.account(),
                sc.chain_id,
                sc.rpc_url,
                sc.contract,
                sc.deposit.0
            );
            Ok(ChainSide {
                chain,
                config: sc,
                key: key.clone(),
                accounts: HashMap::new(),
                ids: HashMap::new(),
                retired: HashMap::new(),
                dropped: 0,
            })
        }

        pub fn account_message(&self) -> Vec<u8> {
            let mut m = vec![payments::wire::VERSION, kind::ACCOUNT];
            m.extend_from_slice(self.chain.account().as_slice());
            m
        }

        /// The id of the channel of `epoch` from `payer` to `payee` (key, account).
        fn id(
            &self,
            payer: ([u8; 32], Address),
            payee: ([u8; 32], Address),
            epoch: u64,
        ) -> ChannelId {
            self.chain.channel_for(&ChannelParams {
                payer: payer.1,
                payee: payee.1,
                payer_key: payer.0,
                payee_key: payee.0,
                salt: epoch::salt(epoch),
            })
        }

        /// Our channel to `neighbour` and its channel to us in `epoch`s.
        fn ids_at(
            &self,
            me: [u8; 32],
            neighbour: [u8; 32],
            out: u64,
            inbound: u64,
        ) -> Option<(ChannelId, ChannelId)> {
            let theirs = *self.accounts.get(&neighbour)?;
            let ours = self.chain.account();
            Some((
                self.id((me, ours), (neighbour, theirs), out),
                self.id((neighbour, theirs), (me, ours), inbound),
            ))
        }

        /// Both channel ids with a neighbour whose account we know; the first time, watches its
        /// channel to us and asks the worker to open ours.
        pub fn channels(
            &mut self,
            me: [u8; 32],
            neighbour: [u8; 32],
        ) -> Option<(ChannelId, ChannelId)> {
            if let Some(p) = self.ids.get(&neighbour) {
                return Some((p.out, p.inbound));
            }
            let (out, inbound) = self.ids_at(me, neighbour, 0, 0)?;
            self.chain.watch(inbound, neighbour);
            self.chain.signed(out, Amount(0));
            self.open(me, neighbour, 0);
            self.ids.insert(
                neighbour,
                Pair {
                    out_epoch: 0,
                    in_epoch: 0,
                    out,
                    inbound,
                    close_asked: false,
                },
            );
            Some((out, inbound))
        }

        fn open(&mut self, me: [u8; 32], neighbour: [u8; 32], epoch: u64) -> bool {
            let Some(theirs) = self.accounts.get(&neighbour) else {
                return false;
            };
            self.queue(Request::Open {
                payee: *theirs,
                payer_key: me,
                payee_key: neighbour,
                salt: epoch::salt(epoch),
                challenge_period: self.config.challenge_period,
                deposit: self.config.deposit,
            });
            true
        }

        /// Keeps every neighbour's channels at their epochs (module documentation): a ledger
        /// restored on a later epoch's channel sets the epoch; a channel the chain shows closed
        /// or closing (or whose close we asked for) moves the pair and the ledger to the next
        /// epoch, whose channel we open (ours) or watch (theirs).
        pub fn sync(
            &mut self,
            node: &mut Payments<std::net::IpAddr>,
            store: &mut impl payments::Store,
        ) {
            let me = node.public_key();
            let status = self.chain.status();
            let neighbours: Vec<[u8; 32]> = self.ids.keys().copied().collect();
            for nb in neighbours {
                let (Some(mut p), Some(n)) = (self.ids.get(&nb).copied(), node.neighbour(&nb))
                else {
                    continue;
                };
                let (ledger_out, ledger_in) = (n.peer.payer().channel(), n.peer.payee().channel());
                let signed = n.peer.payer().paid();
                let (Some(theirs), ours) = (self.accounts.get(&nb).copied(), self.chain.account())
                else {
                    continue;
                };
                // The ledger moved on before a restart: its channels say which epochs.
                if ledger_out != p.out
                    && let Some(e) =
                        epoch::find(&ledger_out, |e| self.id((me, ours), (nb, theirs), e))
                {
                    p.out_epoch = e;
                    p.out = ledger_out;
                    self.chain.signed(ledger_out, signed);
                    self.open(me, nb, e);
                }
                if ledger_in != p.inbound
                    && let Some(e) =
                        epoch::find(&ledger_in, |e| self.id((nb, theirs), (me, ours), e))
                {
                    p.in_epoch = e;
                    p.inbound = ledger_in;
                    self.chain.watch(ledger_in, nb);
                }
                let out_over = epoch::over(
                    status.outbound.get(&p.out).and_then(|o| o.chain.as_ref()),
                    p.close_asked,
                );
                let in_over = epoch::over(
                    status
                        .channels
                        .get(&p.inbound)
                        .and_then(|w| w.chain.as_ref()),
                    false,
                );
                let mut next = p;
                if out_over {
                    next.out_epoch += 1;
                    next.out = self.id((me, ours), (nb, theirs), next.out_epoch);
                    next.close_asked = false;
                }
                if in_over {
                    next.in_epoch += 1;
                    next.inbound = self.id((nb, theirs), (me, ours), next.in_epoch);
                }
                let last_out = n.peer.payer().latest().copied();
                let best_in = n.peer.payee().best().copied();
                if out_over || in_over {
                    let moved = node.move_channels(
                        &nb,
                        out_over.then_some(next.out),
                        in_over.then_some(next.inbound),
                        store,
                    );
                    if let Err(e) = moved {
                        tracing::error!(
                            "settlement: ledger commit failed, channels not moved: {e}"
                        );
                        self.ids.insert(nb, p);
                        continue;
                    }
                }
                let retire = |u: Option<SignedUpdate>, epoch: u64| Retired {
                    neighbour: nb,
                    epoch,
                    nonce: u.map_or(0, |u| u.update.nonce),
                    cumulative: u.map_or(Amount(0), |u| u.update.cumulative),
                };
                if out_over || in_over {
                    tracing::info!(
                        "settlement: with {}, epochs now {} (our channel {}) and {} (its channel {})",
                        hex::encode(nb),
                        next.out_epoch,
                        hex::encode(next.out.0),
                        next.in_epoch,
                        hex::encode(next.inbound.0)
                    );
                }
                if out_over {
                    self.retired.insert(p.out, retire(last_out, p.out_epoch));
                    self.chain.signed(next.out, Amount(0));
                    self.open(me, nb, next.out_epoch);
                }
                if in_over {
                    self.retired.insert(p.inbound, retire(best_in, p.in_epoch));
                    self.chain.watch(next.inbound, nb);
                }
                self.ids.insert(nb, next);
            }
        }

        fn queue(&mut self, r: Request) {
            if !self.chain.request(r) {
                self.dropped += 1;
                tracing::warn!("settlement: too many requests wait for the chain; one dropped");
            }
        }

        /// A settlement message from the neighbour with payment key `from`. Returns whether its
        /// account became known (the loop then adds the neighbour).
        pub fn datagram(
            &mut self,
            from: [u8; 32],
            data: &[u8],
            inbound_best: Option<&SignedUpdate>,
        ) -> bool {
            match (data.get(1), data.get(2..)) {
                (Some(&kind::ACCOUNT), Some(a)) if a.len() == 20 => {
                    let a = Address::from_slice(a);
                    match self.accounts.insert(from, a) {
                        Some(old) if old != a => {
                            tracing::warn!(
                                "settlement: neighbour {} changed its account from {old} to {a}; keeping its channels",
                                hex::encode(from)
                            );
                            false
                        }
                        Some(_) => false,
                        None => true,
                    }
                }
                (Some(&kind::CLOSE), Some(b)) if b.len() == 120 => {
                    self.close_from_payer(from, b, inbound_best);
                    false
                }
                _ => {
                    self.dropped += 1;
                    false
                }
            }
        }

        /// The payer asks for a cooperative close: we send it to the contract if it is for its
        /// channel to us, signed by it, and pays at least the best update we hold.
        fn close_from_payer(&mut self, from: [u8; 32], b: &[u8], best: Option<&SignedUpdate>) {
            let me = self.key.verifying_key().to_bytes();
            let arr = |r: std::ops::Range<usize>| b.get(r).unwrap_or_default();
            let Some(Pair { inbound, .. }) = self.ids.get(&from).copied() else {
                self.dropped += 1;
                return;
            };
            let update = ChannelUpdate {
                channel: ChannelId(<[u8; 32]>::try_from(arr(0..32)).unwrap_or([0; 32])),
                payer: from,
                payee: me,
                nonce: u64::from_be_bytes(<[u8; 8]>::try_from(arr(32..40)).unwrap_or([0; 8])),
                cumulative: Amount(u128::from_be_bytes(
                    <[u8; 16]>::try_from(arr(40..56)).unwrap_or([0; 16]),
                )),
            };
            let signature = <[u8; 64]>::try_from(arr(56..120)).unwrap_or([0; 64]);
            let valid = VerifyingKey::from_bytes(&from).is_ok_and(|k| {
                k.verify_strict(&close_bytes(&update), &Signature::from_bytes(&signature))
                    .is_ok()
            });
            let held = best.map_or(Amount(0), |u| u.update.cumulative);
            if update.channel != inbound || !valid || update.cumulative < held {
                tracing::warn!(
                    "settlement: refused a cooperative close from {} (channel ours: {}, signature valid: {valid}, {} < held {})",
                    hex::encode(from),
                    update.channel == inbound,
                    update.cumulative.0,
                    held.0
                );
                self.dropped += 1;
                return;
            }
            tracing::info!(
                "settlement: closing {}'s channel cooperatively at nonce {} cumulative {}",
                hex::encode(from),
                update.nonce,
                update.cumulative.0
            );
            self.queue(Request::Cooperative(SignedClose { update, signature }));
        }

        /// An operator's request (`settlement open|top-up|close|finalize NEIGHBOUR ...`, the
        /// neighbour named by its payment key in hex). Returns a message for the neighbour
        /// (a cooperative close) or an error to log.
        pub fn operator(
            &mut self,
            words: &[String],
            node: &Payments<std::net::IpAddr>,
        ) -> Result<Option<ToNeighbour>, String> {
            let me = node.public_key();
            let who = words.get(1).ok_or("settlement: which neighbour?")?;
            let neighbour = hex::decode(who)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| format!("settlement: {who} is not a payment key (64 hex digits)"))?;
            let pair = self
                .ids
                .get(&neighbour)
                .copied()
                .ok_or_else(|| format!("settlement: no channel with {who} yet"))?;
            let out = pair.out;
            let latest = node
                .neighbour(&neighbour)
                .and_then(|n| n.peer.payer().latest().copied());
            match words.first().map(String::as_str) {
                Some("open") => {
                    self.open(me, neighbour, pair.out_epoch);
                    Ok(None)
                }
                Some("top-up") => {
                    let amount = words
                        .get(2)
                        .and_then(|a| a.parse::<u128>().ok())
                        .filter(|a| *a > 0)
                        .ok_or("settlement top-up NEIGHBOUR WEI")?;
                    self.queue(Request::TopUp(out, Amount(amount)));
                    Ok(None)
                }
                Some("close") if words.get(2).map(String::as_str) == Some("unilateral") => {
                    let update = match words.get(3) {
                        None => latest,
                        Some(h) => {
                            let b = hex::decode(h).map_err(|_| "settlement: update not hex")?;
                            let u = SignedUpdate::from_bytes(&b)
                                .map_err(|e| format!("settlement: update: {e}"))?;
                            if u.update.channel != out || u.update.payer != me {
                                return Err("settlement: not our update on that channel".into());
                            }
                            Some(u)
                        }
                    };
                    self.queue(Request::StartClose(out, update));
                    self.close_asked(neighbour);
                    Ok(None)
                }
                Some("close") => {
                    let (nonce, cumulative) =
                        latest.map_or((0, Amount(0)), |u| (u.update.nonce, u.update.cumulative));
                    let close = SignedClose::sign(
                        ChannelUpdate {
                            channel: out,
                            payer: me,
                            payee: neighbour,
                            nonce,
                            cumulative,
                        },
                        &self.key,
                    );
                    let mut m = vec![payments::wire::VERSION, kind::CLOSE];
                    m.extend_from_slice(&out.0);
                    m.extend_from_slice(&nonce.to_be_bytes());
                    m.extend_from_slice(&cumulative.0.to_be_bytes());
                    m.extend_from_slice(&close.signature);
                    tracing::info!(
                        "settlement: asking {who} to close our channel cooperatively at nonce {nonce} cumulative {}",
                        cumulative.0
                    );
                    self.close_asked(neighbour);
                    Ok(Some((neighbour, m)))
                }
                Some("finalize") => {
                    // The channel closing is the previous epoch's (asking for the close moved
                    // us on).
                    let closing = pair
                        .out_epoch
                        .checked_sub(1)
                        .and_then(|e| {
                            self.retired
                                .iter()
                                .find(|(_, r)| r.neighbour == neighbour && r.epoch == e)
                        })
                        .map_or(out, |(id, _)| *id);
                    self.queue(Request::Finalize(closing));
                    Ok(None)
                }
                _ => Err("settlement open|top-up|close|finalize NEIGHBOUR ...".into()),
            }
        }

        /// We asked for the close of our current channel to `neighbour`: we sign nothing more on
        /// it, and the next [`ChainSide::sync`] moves us to the next epoch.
        fn close_asked(&mut self, neighbour: [u8; 32]) {
            if let Some(p) = self.ids.get_mut(&neighbour) {
                p.close_asked = true;
            }
        }

        /// `dump` lines: the chain's health, then each channel with the chain's state next to
        /// the ledger's.
        pub fn lines(&self, node: &Payments<std::net::IpAddr>) -> Vec<String> {
            let st = self.chain.status();
            let mut out = vec![format!(
                "add settlement chain account {} reachable {} unreachable-for {} rounds {} delayed-rounds {} redemptions {} pending {} dropped {}",
                self.chain.account(),
                st.unreachable_for.is_none() && st.rounds > 0,
                st.unreachable_for.map_or(0, |d| d.as_secs()),
                st.rounds,
                st.failed_rounds,
                st.redemptions,
                st.pending.len(),
                self.dropped
            )];
            let state = |c: &Option<settlement::ChainChannel>| match c {
                None => "unknown".to_owned(),
                Some(c) if c.closed => "closed".to_owned(),
                Some(c) if c.closing_at.is_some() => "closing".to_owned(),
                Some(_) => "open".to_owned(),
            };
            let chain_fields = |c: &Option<settlement::ChainChannel>| match c {
                None => String::new(),
                Some(c) => format!(
                    " deposit {} paid {} best {} best-nonce {} closing-at {}",
                    c.deposit.0,
                    c.paid.0,
                    c.best.0,
                    c.best_nonce,
                    c.closing_at.unwrap_or(0)
                ),
            };
            let note = |n: &Option<String>| {
                n.as_deref()
                    .map(|n| format!(" note {}", n.replace(' ', "_")))
                    .unwrap_or_default()
            };
            for (nb, p) in &self.ids {
                let peer = node.neighbour(nb).map(|n| &n.peer);
                if let Some(o) = st.outbound.get(&p.out) {
                    let l = peer.and_then(|p| p.payer().latest().copied());
                    out.push(format!(
                        "add settlement {} neighbour {} direction out epoch {} ledger-nonce {} ledger-cumulative {} ledger-update {} chain {}{}{}",
                        hex::encode(p.out.0),
                        hex::encode(nb),
                        p.out_epoch,
                        l.map_or(0, |u| u.update.nonce),
                        l.map_or(0, |u| u.update.cumulative.0),
                        l.map_or("-".to_owned(), |u| hex::encode(u.to_bytes())),
                        state(&o.chain),
                        chain_fields(&o.chain),
                        note(&o.note)
                    ));
                }
                if let Some(w) = st.channels.get(&p.inbound) {
                    let b = peer.and_then(|p| p.payee().best().copied());
                    out.push(format!(
                        "add settlement {} neighbour {} direction in epoch {} ledger-nonce {} ledger-cumulative {} chain {}{}{}",
                        hex::encode(p.inbound.0),
                        hex::encode(nb),
                        p.in_epoch,
                        b.map_or(0, |u| u.update.nonce),
                        b.map_or(0, |u| u.update.cumulative.0),
                        state(&w.chain),
                        chain_fields(&w.chain),
                        note(&w.note)
                    ));
                }
            }
            // Earlier epochs' channels, with what the ledger held when the pair moved on.
            for (id, r) in &self.retired {
                let (direction, chain, n) = match (st.outbound.get(id), st.channels.get(id)) {
                    (Some(o), _) => ("out", &o.chain, &o.note),
                    (None, Some(w)) => ("in", &w.chain, &w.note),
                    (None, None) => continue,
                };
                out.push(format!(
                    "add settlement {} neighbour {} direction {direction} epoch {} ledger-nonce {} ledger-cumulative {} chain {}{}{}",
                    hex::encode(id.0),
                    hex::encode(r.neighbour),
                    r.epoch,
                    r.nonce,
                    r.cumulative.0,
                    state(chain),
                    chain_fields(chain),
                    note(n)
                ));
            }
            for (i, d) in st.done.iter().enumerate() {
                out.push(format!(
                    "add settlement-done {i} what {}",
                    d.replace(' ', "_")
                ));
            }
            out
        }
    }
}
