//! Shared by the integration tests: the clock, keys and one exit configuration.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;

use exit::{ExitConfig, Ipv4Pool, ServiceThresholds};
use payments::Amount;

/// An exit on 172.16.0.0/24 at `fee`, throttling above 1,000,000 wei owed and cutting above
/// `cut`.
pub fn config(fee: u32, cut: u128) -> ExitConfig {
    let mut c = ExitConfig::new(
        Ipv4Pool {
            network: Ipv4Addr::new(172, 16, 0, 0),
            prefix_len: 24,
        },
        [0xee; 32],
        59999,
        fee,
    );
    c.thresholds = ServiceThresholds {
        close: Amount(1_000_000),
        cut: Amount(cut),
    };
    c
}

/// `s` seconds after a fixed instant.
pub fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

/// The ed25519 key of `seed`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Its public key.
pub fn pk(seed: u8) -> [u8; 32] {
    key(seed).verifying_key().to_bytes()
}
