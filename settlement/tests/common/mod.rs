//! Shared helpers of the settlement tests: a local node per test, funded accounts, keys.
#![allow(dead_code)]

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use ed25519_dalek::SigningKey;
use payments::{Amount, ChannelId, ChannelUpdate, SignedUpdate};
use settlement::anvil::{self, Anvil};
use settlement::escrow::EscrowClient;

/// 1 ether in wei.
pub const ETHER: u128 = 1_000_000_000_000_000_000;

/// Starts a node, or says why the test is skipped (tools not installed and not root: as root,
/// as in CI, a missing node is a failure, since `scripts/test.sh` installs it).
pub fn node(chain_id: u64) -> Option<Anvil> {
    if anvil::binary().is_none() {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false);
        assert!(
            !root,
            "anvil is not installed under {}: run scripts/test.sh (it installs it)",
            anvil::tools_dir().display()
        );
        eprintln!(
            "skipping: anvil not installed under {} (scripts/test.sh installs it)",
            anvil::tools_dir().display()
        );
        return None;
    }
    match Anvil::start(chain_id) {
        Ok(a) => Some(a),
        Err(e) => panic!("anvil did not start: {e}"),
    }
}

/// A deterministic Ethereum key for `name`.
pub fn eth_key(name: &str) -> PrivateKeySigner {
    match PrivateKeySigner::from_bytes(&keccak256(name.as_bytes())) {
        Ok(k) => k,
        Err(e) => panic!("key {name}: {e}"),
    }
}

/// A deterministic ed25519 key for `name`.
pub fn ed_key(name: &str) -> SigningKey {
    SigningKey::from_bytes(&keccak256(format!("ed25519 {name}").as_bytes()).0)
}

/// Gives `who` 1000 ether on the node.
pub async fn fund(url: &str, who: Address) {
    let client = match EscrowClient::connect(url, eth_key("funder"), Address::ZERO) {
        Ok(c) => c,
        Err(e) => panic!("connect: {e}"),
    };
    let _: serde_json::Value = match client
        .provider()
        .raw_request(
            "anvil_setBalance".into(),
            (who, U256::from(1000u128 * ETHER)),
        )
        .await
    {
        Ok(v) => v,
        Err(e) => panic!("anvil_setBalance: {e}"),
    };
}

/// Moves the node's clock forward and mines a block.
pub async fn advance(client: &EscrowClient, seconds: u64) {
    let p = client.provider();
    let r: Result<serde_json::Value, _> =
        p.raw_request("evm_increaseTime".into(), (seconds,)).await;
    if let Err(e) = r {
        panic!("evm_increaseTime: {e}");
    }
    let r: Result<serde_json::Value, _> = p.raw_request("evm_mine".into(), ()).await;
    if let Err(e) = r {
        panic!("evm_mine: {e}");
    }
}

/// An update of `channel` from `payer` to `payee`, signed by `payer`.
pub fn update(
    channel: ChannelId,
    payer: &SigningKey,
    payee: &SigningKey,
    nonce: u64,
    cumulative: u128,
) -> SignedUpdate {
    ChannelUpdate {
        channel,
        payer: payer.verifying_key().to_bytes(),
        payee: payee.verifying_key().to_bytes(),
        nonce,
        cumulative: Amount(cumulative),
    }
    .sign(payer)
}

/// Unwraps a result in a test with the error in the message.
#[track_caller]
pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// A 32-byte value from a label.
pub fn salt(label: &str) -> [u8; 32] {
    keccak256(label.as_bytes()).0
}

/// B256 helper.
pub fn b256(b: [u8; 32]) -> B256 {
    B256::from(b)
}
