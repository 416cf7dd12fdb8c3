//! # settlement
//!
//! The money behind the payment channels of the `payments` crate, on an EVM chain: an escrow
//! contract (`contracts/Escrow.sol`, with its own ed25519 verifier `contracts/Ed25519.sol`), a
//! JSON-RPC client for it ([`escrow`]), and [`ChainSettlement`], the [`payments::Settlement`]
//! implementation with a small watchtower built in. Its own crate so that a router that does not
//! settle on a chain does not carry an Ethereum client. Specification: `spec/settlement.md`.

pub mod anvil;
pub mod chain;
pub mod config;
pub mod epoch;
pub mod escrow;
pub mod watchtower;

pub use chain::{ChainConfig, ChainSettlement, Outbound, Request, Status, TopUp, Watched};
pub use config::{SettlementConfig, SettlementConfigError, read_key_file};
pub use escrow::{ChainChannel, ChainError, ChannelParams, EscrowClient, SignedClose, TxOutcome};
pub use watchtower::WatchtowerPolicy;
