//! Settlement configuration: `settlement` statements in babeld's one-line style, so that the
//! daemon's configuration file can carry them, and the key file.
//!
//! ```text
//! settlement rpc-url http://127.0.0.1:8545 chain-id 100 contract 0x5FbDB2315678afecb367f032d93F642f64180aa3
//! settlement key-file /etc/babeld-rs/settlement.key
//! settlement deposit 10000000000000000000 challenge-period 3600
//! settlement top-up-below 800 top-up-step 5000000000000000000
//! settlement redeem-at 500 min-challenge-period 3600 max-staleness 1200 poll-interval 15
//! ```
//!
//! Several statements accumulate; a later value overrides an earlier one. Amounts are in the
//! chain's smallest unit (wei), shares in thousandths, times in seconds. Specification:
//! `spec/settlement.md`, section "Configuration".

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use payments::Amount;

use crate::chain::{ChainConfig, TopUp};
use crate::watchtower::WatchtowerPolicy;

/// Why a configuration or key file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementConfigError {
    /// A line that is not a `settlement` statement.
    #[error("line {line}: not a settlement statement")]
    NotSettlement {
        /// 1-based line number.
        line: usize,
    },
    /// An option this module does not know.
    #[error("line {line}: unknown option {option:?}")]
    UnknownOption {
        /// 1-based line number.
        line: usize,
        /// The option.
        option: String,
    },
    /// An option without its value.
    #[error("line {line}: {option} needs a value")]
    MissingValue {
        /// 1-based line number.
        line: usize,
        /// The option.
        option: String,
    },
    /// A value that does not parse or is out of range.
    #[error("line {line}: bad value {value:?} for {option}")]
    BadValue {
        /// 1-based line number.
        line: usize,
        /// The option.
        option: String,
        /// The value.
        value: String,
    },
    /// A required option is missing.
    #[error("settlement: {0} is required")]
    Required(&'static str),
    /// The policy contradicts itself.
    #[error(
        "settlement: max-staleness ({max_staleness} s) must be below min-challenge-period ({min_challenge} s)"
    )]
    Staleness {
        /// Configured max-staleness.
        max_staleness: u64,
        /// Configured min-challenge-period.
        min_challenge: u64,
    },
    /// The key file cannot be read or holds no key.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The settlement settings of a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementConfig {
    /// JSON-RPC URL of a node of the chain.
    pub rpc_url: String,
    /// The chain id the node must report.
    pub chain_id: u64,
    /// The escrow contract.
    pub contract: Address,
    /// File holding our account's private key (hex), readable by its owner only.
    pub key_file: PathBuf,
    /// Deposit of a channel we open as payer.
    pub deposit: Amount,
    /// Challenge period of a channel we open as payer (seconds).
    pub challenge_period: u64,
    /// Top up when what we signed reaches this share of the deposit (thousandths).
    pub top_up_below: u32,
    /// Top-up step.
    pub top_up_step: Amount,
    /// The payee's policy.
    pub policy: WatchtowerPolicy,
    /// Worker poll interval.
    pub poll_interval: Duration,
}

#[derive(Debug, Default)]
struct Partial {
    rpc_url: Option<String>,
    chain_id: Option<u64>,
    contract: Option<Address>,
    key_file: Option<PathBuf>,
    deposit: Option<u128>,
    challenge_period: Option<u64>,
    top_up_below: Option<u32>,
    top_up_step: Option<u128>,
    redeem_at: Option<u32>,
    min_challenge: Option<u64>,
    max_staleness: Option<u64>,
    poll_interval: Option<u64>,
}

impl SettlementConfig {
    /// Parses `settlement` statements; blank lines and `#` comments are skipped, any other line is
    /// an error (the daemon passes only its `settlement` lines).
    pub fn parse(text: &str) -> Result<SettlementConfig, SettlementConfigError> {
        let mut p = Partial::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            let mut words = content.split_whitespace();
            if words.next() != Some("settlement") {
                return Err(SettlementConfigError::NotSettlement { line });
            }
            while let Some(option) = words.next() {
                let value = words
                    .next()
                    .ok_or_else(|| SettlementConfigError::MissingValue {
                        line,
                        option: option.to_string(),
                    })?;
                let bad = || SettlementConfigError::BadValue {
                    line,
                    option: option.to_string(),
                    value: value.to_string(),
                };
                match option {
                    "rpc-url" => {
                        if !(value.starts_with("http://") || value.starts_with("https://")) {
                            return Err(bad());
                        }
                        p.rpc_url = Some(value.to_string());
                    }
                    "chain-id" => p.chain_id = Some(value.parse().map_err(|_| bad())?),
                    "contract" => p.contract = Some(value.parse().map_err(|_| bad())?),
                    "key-file" => p.key_file = Some(PathBuf::from(value)),
                    "deposit" => p.deposit = Some(positive(value).ok_or_else(bad)?),
                    "challenge-period" => {
                        p.challenge_period = Some(seconds(value).ok_or_else(bad)?)
                    }
                    "top-up-below" => p.top_up_below = Some(share(value).ok_or_else(bad)?),
                    "top-up-step" => p.top_up_step = Some(positive(value).ok_or_else(bad)?),
                    "redeem-at" => p.redeem_at = Some(share(value).ok_or_else(bad)?),
                    "min-challenge-period" => {
                        p.min_challenge = Some(seconds(value).ok_or_else(bad)?)
                    }
                    "max-staleness" => p.max_staleness = Some(seconds(value).ok_or_else(bad)?),
                    "poll-interval" => p.poll_interval = Some(seconds(value).ok_or_else(bad)?),
                    _ => {
                        return Err(SettlementConfigError::UnknownOption {
                            line,
                            option: option.to_string(),
                        });
                    }
                }
            }
        }
        let defaults = WatchtowerPolicy::default();
        let policy = WatchtowerPolicy {
            redeem_at_permille: p.redeem_at.unwrap_or(defaults.redeem_at_permille),
            min_challenge_period: p.min_challenge.unwrap_or(defaults.min_challenge_period),
            max_staleness: p.max_staleness.unwrap_or(defaults.max_staleness),
        };
        if policy.max_staleness >= policy.min_challenge_period {
            return Err(SettlementConfigError::Staleness {
                max_staleness: policy.max_staleness,
                min_challenge: policy.min_challenge_period,
            });
        }
        let deposit = p.deposit.unwrap_or(1_000_000_000_000_000_000);
        Ok(SettlementConfig {
            rpc_url: p
                .rpc_url
                .ok_or(SettlementConfigError::Required("rpc-url"))?,
            chain_id: p
                .chain_id
                .ok_or(SettlementConfigError::Required("chain-id"))?,
            contract: p
                .contract
                .ok_or(SettlementConfigError::Required("contract"))?,
            key_file: p
                .key_file
                .ok_or(SettlementConfigError::Required("key-file"))?,
            deposit: Amount(deposit),
            challenge_period: p.challenge_period.unwrap_or(policy.min_challenge_period),
            top_up_below: p.top_up_below.unwrap_or(800),
            top_up_step: Amount(p.top_up_step.unwrap_or(deposit / 2)),
            policy,
            poll_interval: Duration::from_secs(p.poll_interval.unwrap_or(15)),
        })
    }
}

impl SettlementConfig {
    /// The worker's configuration for our account `key` (read with [`read_key_file`]) and our
    /// ed25519 channel key.
    pub fn chain_config(&self, key: PrivateKeySigner, channel_key: [u8; 32]) -> ChainConfig {
        ChainConfig {
            rpc_url: self.rpc_url.clone(),
            chain_id: self.chain_id,
            contract: self.contract,
            key,
            channel_key,
            policy: self.policy,
            poll_interval: self.poll_interval,
            top_up: TopUp {
                below_permille: self.top_up_below,
                step: self.top_up_step,
            },
        }
    }
}

fn positive(v: &str) -> Option<u128> {
    v.parse::<u128>().ok().filter(|&n| n > 0)
}

fn seconds(v: &str) -> Option<u64> {
    v.parse::<u64>()
        .ok()
        .filter(|&n| n > 0 && n <= 365 * 86_400)
}

fn share(v: &str) -> Option<u32> {
    v.parse::<u32>().ok().filter(|&n| (1..=1000).contains(&n))
}

/// Reads our account's private key: one line of 64 hex digits (optionally `0x`-prefixed), in a
/// file that only its owner may read.
pub fn read_key_file(path: &Path) -> Result<PrivateKeySigner, SettlementConfigError> {
    let fail = |reason: String| SettlementConfigError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(fail("readable by others than its owner (chmod 600)".into()));
        }
    }
    if meta.len() > 200 {
        return Err(fail("too long for a key".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail("not 64 hex digits".into()));
    }
    hex.parse::<PrivateKeySigner>()
        .map_err(|_| fail("not a valid secp256k1 private key".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const GOOD: &str = "
        # the chain
        settlement rpc-url http://127.0.0.1:8545 chain-id 100 contract 0x5FbDB2315678afecb367f032d93F642f64180aa3
        settlement key-file /etc/babeld-rs/settlement.key
        settlement deposit 10000 challenge-period 7200 top-up-below 900 top-up-step 2500
        settlement redeem-at 400 min-challenge-period 1800 max-staleness 600 poll-interval 5
    ";

    #[test]
    fn parses_every_option() {
        let c = SettlementConfig::parse(GOOD).unwrap();
        assert_eq!(c.rpc_url, "http://127.0.0.1:8545");
        assert_eq!(c.chain_id, 100);
        assert_eq!(
            c.contract,
            "0x5FbDB2315678afecb367f032d93F642f64180aa3"
                .parse::<Address>()
                .unwrap()
        );
        assert_eq!(c.key_file, PathBuf::from("/etc/babeld-rs/settlement.key"));
        assert_eq!((c.deposit, c.challenge_period), (Amount(10_000), 7200));
        assert_eq!((c.top_up_below, c.top_up_step), (900, Amount(2500)));
        assert_eq!(
            c.policy,
            WatchtowerPolicy {
                redeem_at_permille: 400,
                min_challenge_period: 1800,
                max_staleness: 600
            }
        );
        assert_eq!(c.poll_interval, Duration::from_secs(5));
        let key = PrivateKeySigner::from_bytes(&[7u8; 32].into()).unwrap();
        let chain = c.chain_config(key.clone(), [3; 32]);
        assert_eq!((chain.chain_id, chain.contract), (100, c.contract));
        assert_eq!(
            (chain.key.address(), chain.channel_key),
            (key.address(), [3; 32])
        );
        assert_eq!(chain.policy, c.policy);
        assert_eq!(
            chain.top_up,
            TopUp {
                below_permille: 900,
                step: Amount(2500)
            }
        );
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let base = "settlement rpc-url http://x chain-id 1 contract 0x5FbDB2315678afecb367f032d93F642f64180aa3 key-file k\n";
        assert!(SettlementConfig::parse(base).is_ok());
        type Check = fn(&SettlementConfigError) -> bool;
        let cases: [(&str, Check); 8] = [
            ("interface eth0", |e| {
                matches!(e, SettlementConfigError::NotSettlement { line: 2 })
            }),
            ("settlement colour blue", |e| {
                matches!(e, SettlementConfigError::UnknownOption { .. })
            }),
            ("settlement deposit", |e| {
                matches!(e, SettlementConfigError::MissingValue { .. })
            }),
            ("settlement deposit 0", |e| {
                matches!(e, SettlementConfigError::BadValue { .. })
            }),
            ("settlement redeem-at 1001", |e| {
                matches!(e, SettlementConfigError::BadValue { .. })
            }),
            ("settlement contract 0x12", |e| {
                matches!(e, SettlementConfigError::BadValue { .. })
            }),
            ("settlement rpc-url ftp://x", |e| {
                matches!(e, SettlementConfigError::BadValue { .. })
            }),
            ("settlement max-staleness 4000", |e| {
                matches!(e, SettlementConfigError::Staleness { .. })
            }),
        ];
        for (extra, expected) in cases {
            let err = SettlementConfig::parse(&format!("{base}{extra}")).unwrap_err();
            assert!(expected(&err), "{extra}: {err}");
        }
        assert_eq!(
            SettlementConfig::parse("settlement chain-id 1").unwrap_err(),
            SettlementConfigError::Required("rpc-url")
        );
    }

    #[test]
    fn key_file_must_be_private_and_hold_a_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("settlement-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        let hex = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318\n";
        std::fs::write(&path, hex).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_key_file(&path).is_err(), "world-readable key accepted");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = read_key_file(&path).unwrap();
        assert_eq!(
            key.address(),
            "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
                .parse::<Address>()
                .unwrap()
        );
        std::fs::write(&path, "nonsense").unwrap();
        assert!(read_key_file(&path).is_err());
        std::fs::write(&path, format!("{}\n", "0".repeat(64))).unwrap();
        assert!(read_key_file(&path).is_err(), "zero is not a key");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
