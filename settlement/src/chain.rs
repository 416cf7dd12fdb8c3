//! [`ChainSettlement`]: the payee's [`Settlement`] on an escrow contract, with the watchtower of
//! [`crate::watchtower`] running on its own thread.
//!
//! Nothing here blocks the caller: [`Settlement::deposit`] and [`Settlement::offer`] only read and
//! write a shared table; a worker thread reads the chain, redeems and answers closes. When the
//! chain cannot be reached the worker says so (log line, [`Status::unreachable_for`]), keeps the
//! best update of every channel and tries again each round: settlement is delayed, nothing is
//! dropped. The last deposit read keeps counting for [`WatchtowerPolicy::max_staleness`], which is shorter
//! than the shortest challenge period accepted, so that a close the payee has not seen yet can
//! still be answered when the chain is back.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use payments::{Amount, ChannelId, Settlement, SignedUpdate};
use tracing::{info, warn};

use crate::escrow::{
    ChainChannel, ChainError, ChannelParams, EscrowClient, SignedClose, channel_id,
};
use crate::watchtower::{WatchtowerAction, WatchtowerPolicy, payee_action, payer_top_up};

/// Where the escrow is and who we are on it.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JSON-RPC URL of a node of the chain.
    pub rpc_url: String,
    /// The chain id we expect the node to report (a node of another chain is not used).
    pub chain_id: u64,
    /// Address of the escrow contract.
    pub contract: Address,
    /// Our account: receives redemptions, pays the gas of sending them.
    pub key: PrivateKeySigner,
    /// Our ed25519 channel key (the payee key of the channels we are paid on).
    pub channel_key: [u8; 32],
    /// Redemption and acceptance policy.
    pub policy: WatchtowerPolicy,
    /// How often the worker reads the chain when nothing wakes it.
    pub poll_interval: Duration,
    /// Top-up policy of the channels we pay on.
    pub top_up: TopUp,
}

/// When the payer adds to a channel's deposit (see [`crate::watchtower::payer_top_up`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopUp {
    /// Top up when what we signed reaches this share of the deposit (thousandths).
    pub below_permille: u32,
    /// Amount added at a time (0: never top up).
    pub step: Amount,
}

impl Default for TopUp {
    fn default() -> Self {
        TopUp {
            below_permille: 800,
            step: Amount(0),
        }
    }
}

/// A channel we pay on: what we signed and what the chain holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbound {
    /// The cumulative amount of our latest signed update.
    pub signed: Amount,
    /// The channel on chain at the last good read.
    pub chain: Option<ChainChannel>,
    /// The last top-up or refusal, for operators.
    pub note: Option<String>,
}

/// What we know of one channel we are paid on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watched {
    /// The payer's ed25519 key the channel must carry.
    pub payer_key: [u8; 32],
    /// The best update offered by the payment logic.
    pub best: Option<SignedUpdate>,
    /// The channel on chain at the last good read (`None`: not read yet, or not on chain).
    pub chain: Option<ChainChannel>,
    /// When that read happened.
    pub read_at: Option<Instant>,
    /// The last thing the watchtower did or found, for operators.
    pub note: Option<String>,
    /// The cumulative amount of an update the contract refused, not to be sent again.
    pub refused: Option<Amount>,
}

/// The chain's health and every watched channel, for `babelctl` and logs.
#[derive(Debug, Clone)]
pub struct Status {
    /// Completed worker rounds.
    pub rounds: u64,
    /// How long the chain has been unreachable, if it is.
    pub unreachable_for: Option<Duration>,
    /// The last error talking to the chain.
    pub last_error: Option<String>,
    /// Redemptions and answers sent so far.
    pub redemptions: u64,
    /// Rounds that ended because the chain could not be reached (settlement delayed).
    pub failed_rounds: u64,
    /// Watched channels.
    pub channels: BTreeMap<ChannelId, Watched>,
    /// Channels we pay on.
    pub outbound: BTreeMap<ChannelId, Outbound>,
    /// Requests waiting for the chain.
    pub pending: Vec<Request>,
    /// The latest finished requests, oldest first: what was done, or why the contract refused.
    pub done: Vec<String>,
}

/// An operation on the chain asked for by the daemon or an operator (`babelctl settlement`).
/// The worker performs requests in order at the start of its rounds; one that fails because the
/// chain is unreachable stays queued and is tried again (settlement delayed, nothing dropped); one
/// the contract refuses is done, with the refusal in [`Status::done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Open a channel we pay on, unless the chain already has it (the id is deterministic, see
    /// [`ChainSettlement::channel_for`]); the payment logic then signs on it.
    Open {
        /// The payee's account.
        payee: Address,
        /// Our ed25519 payment key.
        payer_key: [u8; 32],
        /// The payee's ed25519 payment key.
        payee_key: [u8; 32],
        /// The salt of the channel id.
        salt: [u8; 32],
        /// Challenge period (seconds).
        challenge_period: u64,
        /// Deposit.
        deposit: Amount,
    },
    /// Add to a channel we pay on.
    TopUp(ChannelId, Amount),
    /// The payer's unilateral close, presenting the given update if any.
    StartClose(ChannelId, Option<SignedUpdate>),
    /// A cooperative close with the other party's signed close.
    Cooperative(SignedClose),
    /// End a unilateral close whose challenge period is over.
    Finalize(ChannelId),
}

impl Request {
    fn channel(&self) -> Option<ChannelId> {
        match self {
            Request::Open { .. } => None,
            Request::TopUp(id, _) | Request::StartClose(id, _) | Request::Finalize(id) => Some(*id),
            Request::Cooperative(c) => Some(c.update.channel),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Open { .. } => "open",
            Request::TopUp(..) => "top-up",
            Request::StartClose(..) => "unilateral close",
            Request::Cooperative(_) => "cooperative close",
            Request::Finalize(_) => "finalize",
        }
    }
}

/// How many requests may wait for the chain.
pub const MAX_REQUESTS: usize = 64;

/// How many finished requests [`Status::done`] keeps.
const DONE_KEPT: usize = 32;

#[derive(Debug, Default)]
struct Shared {
    channels: BTreeMap<ChannelId, Watched>,
    outbound: BTreeMap<ChannelId, Outbound>,
    requests: std::collections::VecDeque<Request>,
    done: std::collections::VecDeque<String>,
    rounds: u64,
    unreachable_since: Option<Instant>,
    last_error: Option<String>,
    redemptions: u64,
    failed_rounds: u64,
}

type SharedState = Arc<(Mutex<Shared>, Condvar)>;

fn lock(state: &SharedState) -> MutexGuard<'_, Shared> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    state.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// The payee's settlement on an escrow contract (see the module documentation).
#[derive(Debug)]
pub struct ChainSettlement {
    state: SharedState,
    wake: mpsc::Sender<()>,
    account: Address,
    channel_key: [u8; 32],
    policy: WatchtowerPolicy,
    chain_id: u64,
    contract: Address,
}

impl ChainSettlement {
    /// Starts the worker thread. Fails only on a malformed URL: an unreachable node is a state,
    /// not an error.
    pub fn start(config: ChainConfig) -> Result<ChainSettlement, ChainError> {
        let account = config.key.address();
        let client = EscrowClient::connect(&config.rpc_url, config.key.clone(), config.contract)?;
        let state: SharedState = Arc::default();
        let (wake, woken) = mpsc::channel();
        let worker_state = state.clone();
        let policy = config.policy;
        let chain_id = config.chain_id;
        let interval = config.poll_interval;
        let rules = Rules {
            chain_id,
            policy,
            top_up: config.top_up,
        };
        std::thread::Builder::new()
            .name("settlement".into())
            .spawn(move || worker(client, rules, interval, worker_state, woken))
            .map_err(|e| ChainError::Unreachable(format!("cannot start the worker: {e}")))?;
        Ok(ChainSettlement {
            state,
            wake,
            account,
            channel_key: config.channel_key,
            policy,
            chain_id,
            contract: config.contract,
        })
    }

    /// Watches a channel we are paid on by the payer whose ed25519 key is `payer_key`.
    pub fn watch(&self, channel: ChannelId, payer_key: [u8; 32]) {
        lock(&self.state)
            .channels
            .entry(channel)
            .or_insert_with(|| Watched {
                payer_key,
                ..Watched::default()
            });
        let _ = self.wake.send(());
    }

    /// Records what we signed on a channel we pay on (the payment logic calls this with each new
    /// update); the worker tops the channel up by the configured policy.
    pub fn signed(&self, channel: ChannelId, cumulative: Amount) {
        {
            let mut s = lock(&self.state);
            let o = s.outbound.entry(channel).or_default();
            o.signed = o.signed.max(cumulative);
        }
        let _ = self.wake.send(());
    }

    /// A snapshot of the chain's health and the watched channels.
    pub fn status(&self) -> Status {
        let s = lock(&self.state);
        Status {
            rounds: s.rounds,
            unreachable_for: s.unreachable_since.map(|t| t.elapsed()),
            last_error: s.last_error.clone(),
            redemptions: s.redemptions,
            failed_rounds: s.failed_rounds,
            channels: s.channels.clone(),
            outbound: s.outbound.clone(),
            pending: s.requests.iter().cloned().collect(),
            done: s.done.iter().cloned().collect(),
        }
    }

    /// Queues an operation for the worker and wakes it; false (not queued) when
    /// [`MAX_REQUESTS`] already wait, so that a peer sending closes cannot grow the queue.
    pub fn request(&self, r: Request) -> bool {
        {
            let mut s = lock(&self.state);
            if s.requests.len() >= MAX_REQUESTS {
                return false;
            }
            s.requests.push_back(r);
        }
        let _ = self.wake.send(());
        true
    }

    /// The id of the channel `payer` opens to `payee` with `salt` on this chain and contract:
    /// both ends compute it from what they exchanged, so no id travels between them.
    pub fn channel_for(&self, params: &ChannelParams) -> ChannelId {
        channel_id(self.chain_id, self.contract, params)
    }

    /// Our ed25519 payment key as the contract's payee key.
    pub fn channel_key(&self) -> [u8; 32] {
        self.channel_key
    }

    /// Waits until `n` more worker rounds have completed, at most `timeout`; false on timeout.
    /// (A round that had started before the call counts, so wait for two to see a change.)
    pub fn wait_rounds(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = lock(&self.state);
        let target = s.rounds + n;
        let _ = self.wake.send(());
        while s.rounds < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = match self.state.1.wait_timeout(s, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }

    /// The account redemptions are paid to.
    pub fn account(&self) -> Address {
        self.account
    }
}

impl Settlement for ChainSettlement {
    /// The deposit of a watched channel whose chain state matches what we expect (our account and
    /// key as payee, the payer's key, a long enough challenge period), is open and not closing,
    /// and was read within `max_staleness`. Otherwise `None`: accept nothing on it.
    fn deposit(&self, channel: &ChannelId) -> Option<Amount> {
        let s = lock(&self.state);
        let w = s.channels.get(channel)?;
        let ch = w.chain.as_ref()?;
        let fresh = w
            .read_at
            .is_some_and(|t| t.elapsed() <= Duration::from_secs(self.policy.max_staleness));
        let ours = ch.payee == self.account
            && ch.payee_key == self.channel_key
            && ch.payer_key == w.payer_key
            && ch.challenge_period >= self.policy.min_challenge_period;
        (fresh && ours && !ch.closed && ch.closing_at.is_none()).then_some(ch.deposit)
    }

    /// Keeps the update if it is for a watched channel, names the expected keys, verifies, and
    /// pays more than the one held; wakes the worker.
    fn offer(&mut self, update: &SignedUpdate) {
        let u = &update.update;
        {
            let mut s = lock(&self.state);
            let Some(w) = s.channels.get_mut(&u.channel) else {
                warn!(channel = %hex(&u.channel.0), "update offered for a channel not watched");
                return;
            };
            if u.payer != w.payer_key || u.payee != self.channel_key || update.verify().is_err() {
                warn!(channel = %hex(&u.channel.0), "update offered with wrong keys or signature");
                return;
            }
            if w.best.is_some_and(|b| b.update.cumulative >= u.cumulative) {
                return;
            }
            w.best = Some(*update);
        }
        let _ = self.wake.send(());
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().take(6).map(|x| format!("{x:02x}")).collect()
}

/// What the worker goes by.
#[derive(Debug, Clone, Copy)]
struct Rules {
    chain_id: u64,
    policy: WatchtowerPolicy,
    top_up: TopUp,
}

fn worker(
    client: EscrowClient,
    rules: Rules,
    interval: Duration,
    state: SharedState,
    woken: mpsc::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            warn!("settlement worker cannot start its runtime: {e}");
            return;
        }
    };
    loop {
        let result = runtime.block_on(round(&client, &rules, &state));
        {
            let mut s = lock(&state);
            match result {
                Ok(()) => {
                    if let Some(since) = s.unreachable_since.take() {
                        info!(
                            after_secs = since.elapsed().as_secs(),
                            "chain reachable again; settlement resumes"
                        );
                    }
                }
                Err(e) => {
                    let pending = s
                        .channels
                        .values()
                        .filter(|w| {
                            let on_chain = w.chain.as_ref().map_or(Amount(0), |c| c.best);
                            w.best.is_some_and(|b| b.update.cumulative > on_chain)
                        })
                        .count();
                    if s.unreachable_since.is_none() {
                        warn!(
                            error = %e,
                            pending,
                            "chain unreachable: settlement delayed, updates kept; routing and metering go on"
                        );
                        s.unreachable_since = Some(Instant::now());
                    }
                    s.last_error = Some(e.to_string());
                    s.failed_rounds += 1;
                }
            }
            s.rounds += 1;
            state.1.notify_all();
        }
        match woken.recv_timeout(interval) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Several wake-ups in a row need one round.
        while woken.try_recv().is_ok() {}
    }
}

/// One pass over the watched channels: read each, act on it. The first error that says the
/// chain is unreachable ends the round.
async fn round(
    client: &EscrowClient,
    rules: &Rules,
    state: &SharedState,
) -> Result<(), ChainError> {
    let reported = client.chain_id().await?;
    if reported != rules.chain_id {
        return Err(ChainError::Unreachable(format!(
            "node reports chain id {reported}, configured {}",
            rules.chain_id
        )));
    }
    requests(client, rules, state).await?;
    top_ups(client, rules, state).await?;
    let policy = &rules.policy;
    let now = client.chain_time().await?;
    // Closed channels need no more reads.
    let ids: Vec<ChannelId> = lock(state)
        .channels
        .iter()
        .filter(|(_, w)| !w.chain.as_ref().is_some_and(|c| c.closed))
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        let chain = client.channel(&id).await?;
        let best = {
            let mut s = lock(state);
            let Some(w) = s.channels.get_mut(&id) else {
                continue;
            };
            w.chain = chain.clone();
            w.read_at = Some(Instant::now());
            if chain.is_none() {
                w.note = Some("not on chain".into());
            }
            // An update the contract refused once is not sent again (a newer one will be).
            w.best.filter(|b| Some(b.update.cumulative) != w.refused)
        };
        let Some(chain) = chain else { continue };
        let (update, what) = match payee_action(&chain, best.as_ref(), now, policy) {
            WatchtowerAction::Redeem(u) => (u, "redeemed"),
            WatchtowerAction::Answer(u) => (u, "answered a unilateral close with"),
            WatchtowerAction::Wait | WatchtowerAction::Forget => continue,
        };
        let mut refused = None;
        let note = match client.redeem(&update).await {
            Ok(tx) => {
                info!(
                    channel = %hex(&id.0),
                    nonce = update.update.nonce,
                    cumulative = update.update.cumulative.0,
                    gas = tx.gas_used,
                    "{what} update"
                );
                lock(state).redemptions += 1;
                format!(
                    "{what} nonce {} cumulative {} (tx {})",
                    update.update.nonce, update.update.cumulative.0, tx.tx
                )
            }
            Err(ChainError::Reverted(reason)) => {
                warn!(channel = %hex(&id.0), %reason, "redemption refused by the contract");
                refused = Some(update.update.cumulative);
                format!("redemption refused: {reason}")
            }
            Err(e) => return Err(e),
        };
        let fresh = client.channel(&id).await?;
        let mut s = lock(state);
        if let Some(w) = s.channels.get_mut(&id) {
            w.note = Some(note);
            w.refused = refused.or(w.refused);
            w.chain = fresh;
            w.read_at = Some(Instant::now());
        }
    }
    Ok(())
}

/// Performs the queued requests in order; an unreachable chain leaves the rest queued.
async fn requests(
    client: &EscrowClient,
    rules: &Rules,
    state: &SharedState,
) -> Result<(), ChainError> {
    loop {
        let Some(r) = lock(state).requests.front().cloned() else {
            return Ok(());
        };
        let result = perform(client, rules, &r).await;
        let line = match &result {
            Ok(what) => what.clone(),
            Err(ChainError::Reverted(reason)) => format!("{} refused: {reason}", r.name()),
            Err(ChainError::Failed(tx)) => format!("{} failed on chain (tx {tx})", r.name()),
            Err(e) => {
                // Unreachable: kept at the head, tried again next round.
                return Err(ChainError::Unreachable(e.to_string()));
            }
        };
        match &result {
            Ok(_) => info!("settlement: {line}"),
            Err(_) => warn!("settlement: {line}"),
        }
        let fresh = match r.channel() {
            Some(id) => Some((id, client.channel(&id).await?)),
            None => None,
        };
        let mut s = lock(state);
        s.requests.pop_front();
        s.done.push_back(line);
        while s.done.len() > DONE_KEPT {
            s.done.pop_front();
        }
        if let Some((id, chain)) = fresh {
            if let Some(o) = s.outbound.get_mut(&id) {
                o.chain = chain.clone();
            }
            if let Some(w) = s.channels.get_mut(&id) {
                w.chain = chain;
                w.read_at = Some(Instant::now());
            }
        }
    }
}

async fn perform(client: &EscrowClient, rules: &Rules, r: &Request) -> Result<String, ChainError> {
    let short = |id: &ChannelId| hex(&id.0);
    Ok(match r {
        Request::Open {
            payee,
            payer_key,
            payee_key,
            salt,
            challenge_period,
            deposit,
        } => {
            let params = ChannelParams {
                payer: client.account(),
                payee: *payee,
                payer_key: *payer_key,
                payee_key: *payee_key,
                salt: *salt,
            };
            let id = channel_id(rules.chain_id, client.address(), &params);
            if client.channel(&id).await?.is_some() {
                format!("open {}: already on chain", short(&id))
            } else {
                let (id, tx) = client
                    .open(
                        *payee,
                        *payer_key,
                        *payee_key,
                        *salt,
                        *challenge_period,
                        *deposit,
                    )
                    .await?;
                format!(
                    "opened {} deposit {} gas {} (tx {})",
                    short(&id),
                    deposit.0,
                    tx.gas_used,
                    tx.tx
                )
            }
        }
        Request::TopUp(id, amount) => {
            let tx = client.top_up(id, *amount).await?;
            format!(
                "topped up {} by {} gas {}",
                short(id),
                amount.0,
                tx.gas_used
            )
        }
        Request::StartClose(id, update) => {
            let tx = client.start_close(id, update.as_ref()).await?;
            format!(
                "unilateral close of {} started{} gas {}",
                short(id),
                update
                    .map(|u| format!(
                        " with nonce {} cumulative {}",
                        u.update.nonce, u.update.cumulative.0
                    ))
                    .unwrap_or_default(),
                tx.gas_used
            )
        }
        Request::Cooperative(c) => {
            let tx = client.close_cooperative(c).await?;
            format!(
                "closed {} cooperatively at nonce {} cumulative {} gas {}",
                short(&c.update.channel),
                c.update.nonce,
                c.update.cumulative.0,
                tx.gas_used
            )
        }
        Request::Finalize(id) => {
            let tx = client.finalize(id).await?;
            format!("finalized {} gas {}", short(id), tx.gas_used)
        }
    })
}

/// The payer's side of a round: read every channel we pay on and top it up by the policy.
async fn top_ups(
    client: &EscrowClient,
    rules: &Rules,
    state: &SharedState,
) -> Result<(), ChainError> {
    let ids: Vec<(ChannelId, Amount)> = lock(state)
        .outbound
        .iter()
        .map(|(id, o)| (*id, o.signed))
        .collect();
    for (id, signed) in ids {
        let chain = client.channel(&id).await?;
        let add = chain.as_ref().and_then(|c| {
            if c.payer != client.account() {
                return None;
            }
            payer_top_up(c, signed, rules.top_up.below_permille, rules.top_up.step)
        });
        let note = match add {
            None => None,
            Some(amount) => Some(match client.top_up(&id, amount).await {
                Ok(tx) => {
                    info!(channel = %hex(&id.0), amount = amount.0, gas = tx.gas_used, "topped up");
                    format!("topped up {} (tx {})", amount.0, tx.tx)
                }
                Err(ChainError::Reverted(reason)) => {
                    warn!(channel = %hex(&id.0), %reason, "top-up refused by the contract");
                    format!("top-up refused: {reason}")
                }
                Err(e) => return Err(e),
            }),
        };
        let fresh = if note.is_some() {
            client.channel(&id).await?
        } else {
            chain
        };
        let mut s = lock(state);
        if let Some(o) = s.outbound.get_mut(&id) {
            o.chain = fresh;
            if note.is_some() {
                o.note = note;
            }
        }
    }
    Ok(())
}
