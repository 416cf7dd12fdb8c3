//! The escrow contract (`contracts/Escrow.sol`) and a JSON-RPC client for it.
//!
//! The bindings are generated from the committed artifacts in `contracts/artifacts/`, so building
//! this crate needs no Solidity compiler; a test recompiles the sources and compares.

use std::time::Duration;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::SolValue;
use ed25519_dalek::{Signer, SigningKey};
use payments::{Amount, CANONICAL_LEN, ChannelId, ChannelUpdate, SignedUpdate};

sol!(
    #[allow(missing_docs)]
    #[sol(rpc)]
    #[derive(Debug)]
    Escrow,
    "contracts/artifacts/Escrow.json"
);

sol!(
    #[allow(missing_docs)]
    #[sol(rpc)]
    #[derive(Debug)]
    SigBench,
    "contracts/artifacts/SigBench.json"
);

/// First 32 bytes of a cooperative close message; otherwise the layout of an update.
pub const CLOSE_TAG: [u8; 32] = *b"babeld-rs channel close v1\0\0\0\0\0\0";
/// Domain of the channel id hash (see [`channel_id`]).
pub const CHANNEL_TAG: [u8; 32] = *b"babeld-rs escrow channel v1\0\0\0\0\0";

/// What went wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node did not answer (down, unreachable, timed out) or answered garbage.
    #[error("chain unreachable: {0}")]
    Unreachable(String),
    /// The contract refused the call; the contract's error name (e.g. `NotNewer`).
    #[error("contract refused: {0}")]
    Reverted(String),
    /// The transaction was mined but failed.
    #[error("transaction {0} failed on chain")]
    Failed(B256),
    /// The URL is not a URL.
    #[error("bad RPC URL: {0}")]
    Url(String),
}

impl From<alloy::contract::Error> for ChainError {
    fn from(e: alloy::contract::Error) -> Self {
        if let Some(err) = e.as_decoded_interface_error::<Escrow::EscrowErrors>() {
            return ChainError::Reverted(error_name(&err));
        }
        if e.as_revert_data().is_some() {
            return ChainError::Reverted(e.to_string());
        }
        ChainError::Unreachable(e.to_string())
    }
}

impl From<alloy::transports::TransportError> for ChainError {
    fn from(e: alloy::transports::TransportError) -> Self {
        ChainError::Unreachable(e.to_string())
    }
}

impl From<alloy::providers::PendingTransactionError> for ChainError {
    fn from(e: alloy::providers::PendingTransactionError) -> Self {
        ChainError::Unreachable(e.to_string())
    }
}

fn error_name(err: &Escrow::EscrowErrors) -> String {
    let debug = format!("{err:?}");
    debug.split('(').next().unwrap_or_default().to_string()
}

/// A mined transaction: its hash and the gas it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxOutcome {
    /// Transaction hash.
    pub tx: B256,
    /// Gas used, as in the receipt.
    pub gas_used: u64,
    /// What the sender paid for it: gas used times the effective gas price, in wei.
    pub fee: u128,
}

/// A channel's state on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainChannel {
    /// Ethereum account that deposited; gets the rest back.
    pub payer: Address,
    /// Ethereum account redemptions are paid to.
    pub payee: Address,
    /// The payer's ed25519 key (signs updates).
    pub payer_key: [u8; 32],
    /// The payee's ed25519 key (signs cooperative closes).
    pub payee_key: [u8; 32],
    /// Seconds a unilateral close waits for a better update.
    pub challenge_period: u64,
    /// End of the challenge period of a unilateral close, if one started.
    pub closing_at: Option<u64>,
    /// Everything deposited.
    pub deposit: Amount,
    /// Everything paid out to the payee.
    pub paid: Amount,
    /// Highest cumulative amount presented, and its nonce.
    pub best: Amount,
    /// Nonce of `best`.
    pub best_nonce: u64,
    /// Closed: the deposit has been paid out.
    pub closed: bool,
}

/// The parameters that make a channel id (see `Escrow.channelId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelParams {
    /// Payer's Ethereum account.
    pub payer: Address,
    /// Payee's Ethereum account.
    pub payee: Address,
    /// Payer's ed25519 key.
    pub payer_key: [u8; 32],
    /// Payee's ed25519 key.
    pub payee_key: [u8; 32],
    /// Chosen by the payer so that a new channel between the same parties gets a new id.
    pub salt: [u8; 32],
}

/// The channel id as the contract computes it: keccak256 of the ABI encoding of the channel tag,
/// the chain id, the contract address, both accounts, both ed25519 keys and the salt.
pub fn channel_id(chain_id: u64, contract: Address, p: &ChannelParams) -> ChannelId {
    let encoded = (
        B256::from(CHANNEL_TAG),
        U256::from(chain_id),
        contract,
        p.payer,
        p.payee,
        B256::from(p.payer_key),
        B256::from(p.payee_key),
        B256::from(p.salt),
    )
        .abi_encode();
    ChannelId(keccak256(encoded).0)
}

/// A cooperative close: the final update's fields, signed by one party's ed25519 key over the
/// update layout with [`CLOSE_TAG`] in place of the update domain tag. The other party sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedClose {
    /// Final nonce and cumulative amount.
    pub update: ChannelUpdate,
    /// ed25519 signature over [`close_bytes`].
    pub signature: [u8; 64],
}

/// The bytes a party signs to agree to a cooperative close.
pub fn close_bytes(update: &ChannelUpdate) -> [u8; CANONICAL_LEN] {
    let mut bytes = update.canonical_bytes();
    if let Some(tag) = bytes.get_mut(..32) {
        tag.copy_from_slice(&CLOSE_TAG);
    }
    bytes
}

impl SignedClose {
    /// Signs a close with one party's key.
    pub fn sign(update: ChannelUpdate, key: &SigningKey) -> SignedClose {
        SignedClose {
            update,
            signature: key.sign(&close_bytes(&update)).to_bytes(),
        }
    }
}

fn sig_parts(signature: &[u8; 64]) -> (B256, B256) {
    let (r, s) = signature.split_at(32);
    (B256::from_slice(r), B256::from_slice(s))
}

/// A JSON-RPC client for one escrow contract, sending transactions from one Ethereum account.
#[derive(Debug, Clone)]
pub struct EscrowClient {
    provider: DynProvider,
    escrow: Escrow::EscrowInstance<DynProvider>,
    account: Address,
}

/// How long one JSON-RPC request may take before the chain counts as unreachable.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a sent transaction may take to be mined before the chain counts as unreachable (it
/// may still be mined later; the next read of the channel shows it).
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn provider(url: &str, key: PrivateKeySigner) -> Result<DynProvider, ChainError> {
    let url = url.parse().map_err(|_| ChainError::Url(url.to_string()))?;
    // The nonce is read from the node for every transaction: a cached nonce would be spent by a
    // call the contract refuses at gas estimation, and the next transaction would then wait
    // forever behind the gap.
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(key)
        .with_reqwest(url, |b| b.timeout(RPC_TIMEOUT).build().unwrap_or_default())
        .erased())
}

impl EscrowClient {
    /// A client for the contract at `contract` (no I/O until the first call).
    pub fn connect(
        url: &str,
        key: PrivateKeySigner,
        contract: Address,
    ) -> Result<Self, ChainError> {
        let account = key.address();
        let provider = provider(url, key)?;
        let escrow = Escrow::new(contract, provider.clone());
        Ok(EscrowClient {
            provider,
            escrow,
            account,
        })
    }

    /// Deploys a new escrow contract from `key`'s account.
    pub async fn deploy(url: &str, key: PrivateKeySigner) -> Result<(Self, TxOutcome), ChainError> {
        let account = key.address();
        let provider = provider(url, key)?;
        let receipt = Escrow::deploy_builder(provider.clone())
            .send()
            .await?
            .with_timeout(Some(RECEIPT_TIMEOUT))
            .get_receipt()
            .await?;
        let outcome = TxOutcome {
            tx: receipt.transaction_hash,
            gas_used: receipt.gas_used,
            fee: u128::from(receipt.gas_used).saturating_mul(receipt.effective_gas_price),
        };
        let address = receipt
            .contract_address
            .ok_or(ChainError::Failed(receipt.transaction_hash))?;
        let escrow = Escrow::new(address, provider.clone());
        Ok((
            EscrowClient {
                provider,
                escrow,
                account,
            },
            outcome,
        ))
    }

    /// The contract's address.
    pub fn address(&self) -> Address {
        *self.escrow.address()
    }

    /// The account this client sends from.
    pub fn account(&self) -> Address {
        self.account
    }

    /// The underlying provider (for node-specific calls in tests and tools).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The chain id the node reports.
    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        Ok(self.provider.get_chain_id().await?)
    }

    /// Timestamp of the latest block (the contract's clock).
    pub async fn chain_time(&self) -> Result<u64, ChainError> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| ChainError::Unreachable("no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    /// Balance of an account, in wei.
    pub async fn balance(&self, who: Address) -> Result<U256, ChainError> {
        Ok(self.provider.get_balance(who).await?)
    }

    async fn send(
        &self,
        call: alloy::contract::SolCallBuilder<&DynProvider, impl alloy::sol_types::SolCall>,
    ) -> Result<TxOutcome, ChainError> {
        let receipt = call
            .send()
            .await?
            .with_timeout(Some(RECEIPT_TIMEOUT))
            .get_receipt()
            .await?;
        if !receipt.status() {
            return Err(ChainError::Failed(receipt.transaction_hash));
        }
        Ok(TxOutcome {
            tx: receipt.transaction_hash,
            gas_used: receipt.gas_used,
            fee: u128::from(receipt.gas_used).saturating_mul(receipt.effective_gas_price),
        })
    }

    /// Opens a channel from this client's account with `deposit`; returns its id.
    pub async fn open(
        &self,
        payee: Address,
        payer_key: [u8; 32],
        payee_key: [u8; 32],
        salt: [u8; 32],
        challenge_period: u64,
        deposit: Amount,
    ) -> Result<(ChannelId, TxOutcome), ChainError> {
        let call = self
            .escrow
            .open(
                payee,
                payer_key.into(),
                payee_key.into(),
                salt.into(),
                challenge_period,
            )
            .value(U256::from(deposit.0));
        let outcome = self.send(call).await?;
        let chain_id = self.chain_id().await?;
        let params = ChannelParams {
            payer: self.account,
            payee,
            payer_key,
            payee_key,
            salt,
        };
        Ok((channel_id(chain_id, self.address(), &params), outcome))
    }

    /// Adds to a channel's deposit.
    pub async fn top_up(&self, id: &ChannelId, amount: Amount) -> Result<TxOutcome, ChainError> {
        self.send(self.escrow.topUp(id.0.into()).value(U256::from(amount.0)))
            .await
    }

    /// Presents an update (the payee's redemption, or an answer to a unilateral close).
    pub async fn redeem(&self, update: &SignedUpdate) -> Result<TxOutcome, ChainError> {
        let (r, s) = sig_parts(&update.signature);
        let u = &update.update;
        self.send(
            self.escrow
                .redeem(u.channel.0.into(), u.nonce, u.cumulative.0, r, s),
        )
        .await
    }

    /// Starts a unilateral close (payer), optionally presenting an update with it.
    pub async fn start_close(
        &self,
        id: &ChannelId,
        update: Option<&SignedUpdate>,
    ) -> Result<TxOutcome, ChainError> {
        match update {
            None => self.send(self.escrow.startClose(id.0.into())).await,
            Some(update) => {
                let (r, s) = sig_parts(&update.signature);
                let u = &update.update;
                self.send(self.escrow.startCloseWithUpdate(
                    id.0.into(),
                    u.nonce,
                    u.cumulative.0,
                    r,
                    s,
                ))
                .await
            }
        }
    }

    /// Ends a unilateral close after its challenge period.
    pub async fn finalize(&self, id: &ChannelId) -> Result<TxOutcome, ChainError> {
        self.send(self.escrow.finalize(id.0.into())).await
    }

    /// The payee closes at once.
    pub async fn close_by_payee(&self, id: &ChannelId) -> Result<TxOutcome, ChainError> {
        self.send(self.escrow.closeByPayee(id.0.into())).await
    }

    /// Cooperative close with the other party's signed close.
    pub async fn close_cooperative(&self, close: &SignedClose) -> Result<TxOutcome, ChainError> {
        let (r, s) = sig_parts(&close.signature);
        let u = &close.update;
        self.send(
            self.escrow
                .closeCooperative(u.channel.0.into(), u.nonce, u.cumulative.0, r, s),
        )
        .await
    }

    /// A channel's state, or `None` if the contract never saw it.
    pub async fn channel(&self, id: &ChannelId) -> Result<Option<ChainChannel>, ChainError> {
        let c = self.escrow.channels(id.0.into()).call().await?;
        if c.payer == Address::ZERO {
            return Ok(None);
        }
        Ok(Some(ChainChannel {
            payer: c.payer,
            payee: c.payee,
            payer_key: c.payerKey.0,
            payee_key: c.payeeKey.0,
            challenge_period: c.challengePeriod,
            closing_at: (c.closingAt != 0).then_some(c.closingAt),
            deposit: Amount(c.deposit),
            paid: Amount(c.paid),
            best: Amount(c.best),
            best_nonce: c.bestNonce,
            closed: c.closed,
        }))
    }

    /// The contract's own channel id computation (to check [`channel_id`] against it).
    pub async fn contract_channel_id(&self, p: &ChannelParams) -> Result<ChannelId, ChainError> {
        let id = self
            .escrow
            .channelId(
                p.payer,
                p.payee,
                p.payer_key.into(),
                p.payee_key.into(),
                p.salt.into(),
            )
            .call()
            .await?;
        Ok(ChannelId(id.0))
    }

    /// Payouts owed to `who` after a failed transfer.
    pub async fn owed(&self, who: Address) -> Result<U256, ChainError> {
        Ok(self.escrow.owed(who).call().await?)
    }
}
