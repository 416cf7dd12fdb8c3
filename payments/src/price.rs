//! The price unit and how metered bytes become money.
//!
//! A price is the `u32` that Althea's babeld fork carries per route: **wei per byte**, where wei
//! is the smallest unit of the settlement asset (10^-18 of one token; on a dollar-pegged chain
//! 10^18 wei = 1 USD). The largest price, `u32::MAX` wei/byte, is about 4.3 USD per GB, so one
//! hop's fee and a whole path's price fit with room to spare; a path price that saturates at
//! `u32::MAX` (see `price-metric`) reads as "unaffordable".
//!
//! Bytes (u64) times a price (u32) fits in 96 bits, so [`cost`] is exact in the `u128` of
//! [`Amount`]: metering never rounds.

use crate::Amount;

/// A route price: wei per byte (the unit of the price field of Althea's Update TLV).
pub type Price = u32;

/// What `bytes` cost at `price` wei per byte, exactly.
pub fn cost(bytes: u64, price: Price) -> Amount {
    Amount(u128::from(bytes) * u128::from(price))
}

impl Amount {
    /// Sum, saturating at `u128::MAX` (2^128 wei is about 3.4 * 10^20 tokens: unreachable).
    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }

    /// Difference, or `None` when `other` is larger.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact_at_the_extremes() {
        assert_eq!(cost(0, u32::MAX), Amount(0));
        assert_eq!(
            cost(u64::MAX, u32::MAX),
            Amount(u128::from(u64::MAX) * u128::from(u32::MAX))
        );
        assert_eq!(cost(1500, 1_000_000), Amount(1_500_000_000));
    }
}
