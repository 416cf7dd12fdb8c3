//! Shared by the integration tests: one exit configuration.

use std::net::Ipv4Addr;

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
