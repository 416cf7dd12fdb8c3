//! What the payee does about one channel, given the chain's view of it and the best update it
//! holds (sans-IO: the caller reads the chain, passes the chain's clock, and carries the action
//! out). The rules are in `spec/settlement.md`, section "Watchtower".

use payments::{Amount, SignedUpdate};

use crate::escrow::ChainChannel;

/// When the payee redeems and which channels it counts as collateral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchtowerPolicy {
    /// Redeem once the part of the deposit owed but not yet paid out reaches this share of the
    /// deposit, in thousandths (500: half the deposit). A channel whose updates reach the deposit
    /// is therefore always redeemed before it runs out.
    pub redeem_at_permille: u32,
    /// Shortest challenge period the payee accepts: a payer closing unilaterally must give the
    /// watchtower at least this long to answer.
    pub min_challenge_period: u64,
    /// How old the last good read of a channel may be for its deposit to still count (seconds).
    /// Must stay well below `min_challenge_period`: within it, a close the payee has not seen yet
    /// can still be answered once the chain is back.
    pub max_staleness: u64,
}

impl Default for WatchtowerPolicy {
    fn default() -> Self {
        WatchtowerPolicy {
            redeem_at_permille: 500,
            min_challenge_period: 3600,
            max_staleness: 1200,
        }
    }
}

/// What to do next about a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchtowerAction {
    /// Nothing now.
    Wait,
    /// Redeem this update while the channel is open.
    Redeem(SignedUpdate),
    /// The payer started a unilateral close with less than we hold: present ours before
    /// `closing_at`.
    Answer(SignedUpdate),
    /// The channel is closed: stop watching it.
    Forget,
}

/// The amount an update is worth on chain: its cumulative amount up to the deposit.
pub fn covered(chain: &ChainChannel, cumulative: Amount) -> Amount {
    Amount(cumulative.0.min(chain.deposit.0))
}

/// `amount * p / 1000` without overflow for any `u128` amount (p <= 1000 in practice).
fn permille(amount: u128, p: u32) -> u128 {
    let p = u128::from(p);
    (amount / 1000).saturating_mul(p) + amount % 1000 * p / 1000
}

/// The payee's next step for a channel (spec/settlement.md, "Watchtower").
pub fn payee_action(
    chain: &ChainChannel,
    best: Option<&SignedUpdate>,
    chain_now: u64,
    policy: &WatchtowerPolicy,
) -> WatchtowerAction {
    if chain.closed {
        return WatchtowerAction::Forget;
    }
    let Some(best) = best else {
        return WatchtowerAction::Wait;
    };
    if best.update.cumulative <= chain.best {
        return WatchtowerAction::Wait;
    }
    if let Some(closing_at) = chain.closing_at {
        return if chain_now < closing_at {
            WatchtowerAction::Answer(*best)
        } else {
            WatchtowerAction::Wait
        };
    }
    let unpaid = covered(chain, best.update.cumulative)
        .0
        .saturating_sub(chain.paid.0);
    let threshold = permille(chain.deposit.0, policy.redeem_at_permille);
    if unpaid > 0 && unpaid >= threshold {
        WatchtowerAction::Redeem(*best)
    } else {
        WatchtowerAction::Wait
    }
}

/// The payer's top-up: how much to add so that what it has signed stays below
/// `low_permille` of the deposit, adding `step` at a time (None: no top-up needed, or the
/// channel is closing or closed).
pub fn payer_top_up(
    chain: &ChainChannel,
    signed: Amount,
    low_permille: u32,
    step: Amount,
) -> Option<Amount> {
    if chain.closed || chain.closing_at.is_some() || step.0 == 0 {
        return None;
    }
    let limit = |deposit: u128| permille(deposit, low_permille);
    let mut add = 0u128;
    while signed.0 >= limit(chain.deposit.0.saturating_add(add)) {
        add = add.checked_add(step.0)?;
    }
    (add > 0).then_some(Amount(add))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloy::primitives::Address;
    use ed25519_dalek::SigningKey;
    use payments::{ChannelId, ChannelUpdate};

    pub(crate) fn chain(deposit: u128, paid: u128, best: u128) -> ChainChannel {
        ChainChannel {
            payer: Address::ZERO,
            payee: Address::ZERO,
            payer_key: [0; 32],
            payee_key: [0; 32],
            challenge_period: 3600,
            closing_at: None,
            deposit: Amount(deposit),
            paid: Amount(paid),
            best: Amount(best),
            best_nonce: 0,
            closed: false,
        }
    }

    fn upd(cumulative: u128) -> SignedUpdate {
        let k = SigningKey::from_bytes(&[1; 32]);
        ChannelUpdate {
            channel: ChannelId([2; 32]),
            payer: k.verifying_key().to_bytes(),
            payee: [3; 32],
            nonce: 1,
            cumulative: Amount(cumulative),
        }
        .sign(&k)
    }

    #[test]
    fn redeems_once_half_the_deposit_is_owed() {
        let p = WatchtowerPolicy::default();
        let c = chain(1000, 0, 0);
        assert_eq!(
            payee_action(&c, Some(&upd(499)), 0, &p),
            WatchtowerAction::Wait
        );
        assert_eq!(
            payee_action(&c, Some(&upd(500)), 0, &p),
            WatchtowerAction::Redeem(upd(500))
        );
        // Counted from what was already paid out.
        let c = chain(1000, 400, 400);
        assert_eq!(
            payee_action(&c, Some(&upd(899)), 0, &p),
            WatchtowerAction::Wait
        );
        assert_eq!(
            payee_action(&c, Some(&upd(900)), 0, &p),
            WatchtowerAction::Redeem(upd(900))
        );
        // Beyond the deposit only the deposit counts; once it is all paid there is nothing to do.
        let c = chain(1000, 1000, 1000);
        assert_eq!(
            payee_action(&c, Some(&upd(5000)), 0, &p),
            WatchtowerAction::Wait
        );
        assert_eq!(payee_action(&c, None, 0, &p), WatchtowerAction::Wait);
    }

    #[test]
    fn answers_a_close_only_inside_the_challenge_period_and_only_with_more() {
        let p = WatchtowerPolicy::default();
        let mut c = chain(1000, 100, 100);
        c.closing_at = Some(50);
        assert_eq!(
            payee_action(&c, Some(&upd(101)), 49, &p),
            WatchtowerAction::Answer(upd(101))
        );
        assert_eq!(
            payee_action(&c, Some(&upd(100)), 49, &p),
            WatchtowerAction::Wait
        );
        assert_eq!(
            payee_action(&c, Some(&upd(900)), 50, &p),
            WatchtowerAction::Wait
        );
        c.closed = true;
        assert_eq!(
            payee_action(&c, Some(&upd(900)), 0, &p),
            WatchtowerAction::Forget
        );
    }

    #[test]
    fn tops_up_in_steps_until_signed_is_below_the_mark() {
        let c = chain(1000, 0, 0);
        assert_eq!(payer_top_up(&c, Amount(799), 800, Amount(500)), None);
        assert_eq!(
            payer_top_up(&c, Amount(800), 800, Amount(500)),
            Some(Amount(500))
        );
        assert_eq!(
            payer_top_up(&c, Amount(1300), 800, Amount(500)),
            Some(Amount(1000))
        );
        let mut closing = c.clone();
        closing.closing_at = Some(1);
        assert_eq!(payer_top_up(&closing, Amount(900), 800, Amount(500)), None);
        assert_eq!(payer_top_up(&c, Amount(900), 800, Amount(0)), None);
    }
}
