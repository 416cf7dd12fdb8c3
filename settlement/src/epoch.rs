//! Channel epochs (spec/settlement.md, "Channel epochs"): the channels between one payer key and
//! one payee key are numbered 0, 1, 2, ...; the channel of epoch `e` has salt [`salt`]`(e)`, so
//! its id is known to both ends without any message. The current epoch is the first whose
//! channel the chain does not show closed or closing (and, for the payer, that it did not ask to
//! close): both ends read it from the chain and agree.

use crate::escrow::ChainChannel;

/// How many epochs a restored channel id is looked up among (a router pays one neighbour on at
/// most this many successive channels before its ledger's channel is no longer recognised).
pub const MAX_EPOCH: u64 = 1024;

/// The salt of epoch `epoch`: 24 zero bytes then the epoch, big-endian (epoch 0: all zeros, the
/// salt of every channel before epochs).
pub fn salt(epoch: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[24..].copy_from_slice(&epoch.to_be_bytes());
    s
}

/// Whether the channel of the current epoch is over, so that the next epoch begins: the chain
/// shows it closed or closing, or (payer only) we asked for its close. A channel not read yet or
/// not on chain is not over.
pub fn over(chain: Option<&ChainChannel>, close_asked: bool) -> bool {
    close_asked || chain.is_some_and(|c| c.closed || c.closing_at.is_some())
}

/// The epoch of `channel` among the ids `id(0)`, `id(1)`, ... below [`MAX_EPOCH`], if any.
pub fn find(channel: &payments::ChannelId, id: impl Fn(u64) -> payments::ChannelId) -> Option<u64> {
    (0..MAX_EPOCH).find(|e| id(*e) == *channel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escrow::{ChannelParams, channel_id};
    use alloy::primitives::Address;

    fn chain(closed: bool, closing_at: Option<u64>) -> ChainChannel {
        ChainChannel {
            closed,
            closing_at,
            ..crate::watchtower::tests::chain(10, 0, 0)
        }
    }

    #[test]
    fn epoch_zero_is_the_salt_of_channels_before_epochs() {
        assert_eq!(salt(0), [0; 32]);
        assert_eq!(salt(1)[31], 1);
        assert_eq!(salt(0x0102)[30..], [1, 2]);
        assert_ne!(salt(1), salt(2));
    }

    #[test]
    fn the_next_epoch_begins_when_the_chain_shows_the_channel_closed_or_closing() {
        assert!(!over(None, false), "not read yet or not on chain: stay");
        assert!(!over(Some(&chain(false, None)), false), "open: stay");
        assert!(over(Some(&chain(false, Some(100))), false), "closing");
        assert!(over(Some(&chain(true, None)), false), "closed");
        assert!(over(None, true), "the payer asked for a close");
        assert!(over(Some(&chain(false, None)), true));
    }

    #[test]
    fn both_ends_find_the_same_ids_and_each_epoch_has_its_own() {
        let p = |e| ChannelParams {
            payer: Address::repeat_byte(1),
            payee: Address::repeat_byte(2),
            payer_key: [3; 32],
            payee_key: [4; 32],
            salt: salt(e),
        };
        let id = |e| channel_id(31337, Address::repeat_byte(9), &p(e));
        assert_ne!(id(0), id(1));
        assert_eq!(find(&id(7), id), Some(7));
        assert_eq!(find(&payments::ChannelId([0xee; 32]), id), None);
    }
}
