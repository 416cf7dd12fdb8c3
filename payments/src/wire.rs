//! The messages two neighbours exchange about their channels (layout in `spec/payments.md`).
//!
//! Every message starts with a version byte ([`VERSION`]) and a type byte; all integers are
//! big-endian; every message has one fixed length, so a parser never guesses.

use crate::{Amount, ChannelId, SIGNED_LEN};

/// Version byte of every message.
pub const VERSION: u8 = 1;

/// Message type codes.
pub mod kind {
    /// A signed update, payer to payee.
    pub const UPDATE: u8 = 1;
    /// The payee accepted (or already had) an update.
    pub const ACK: u8 = 2;
    /// The payee refused an update.
    pub const REFUSE: u8 = 3;
    /// Where each side stands, after a (re)start.
    pub const REESTABLISH: u8 = 4;
    /// The payee's best update, returned to a payer that has forgotten it.
    pub const LATEST: u8 = 5;
    /// The sender's payment key, inside the tunnel that authenticates the sender.
    pub const HELLO: u8 = 6;
}

/// A channel's position: a nonce and the cumulative amount at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// The update's nonce (0: none yet).
    pub nonce: u64,
    /// Its cumulative amount.
    pub cumulative: Amount,
}

/// One message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMessage {
    /// A signed update (2 + 216 bytes). Its signature is verified by the payee, not the parser.
    Update([u8; SIGNED_LEN]),
    /// The payee's best update is now `at` (2 + 32 + 24 + 16 = 74 bytes). `claim` is what the
    /// payee metered for the payer so far (its own view of the value it gave).
    Ack {
        /// The payer's channel.
        channel: ChannelId,
        /// The payee's best update.
        at: Position,
        /// The payee's metered view.
        claim: Amount,
    },
    /// The payee refused an update (2 + 32 + 24 + 1 = 59 bytes); `at` is its best.
    Refuse {
        /// The payer's channel.
        channel: ChannelId,
        /// The payee's best update.
        at: Position,
        /// Why ([`crate::Refusal::code`]).
        reason: u8,
    },
    /// Where the sender stands (2 + 1 + 2 * 56 = 115 bytes): `out` is the newest update it
    /// signed on its channel to the receiver, `inbound` the best it accepted on the receiver's
    /// channel to it. `reply` asks the receiver to answer with its own.
    Reestablish {
        /// Answer with a Reestablish.
        reply: bool,
        /// The sender's channel to the receiver.
        out_channel: ChannelId,
        /// The newest update the sender signed on it.
        out: Position,
        /// The receiver's channel to the sender.
        in_channel: ChannelId,
        /// The best update the sender accepted on it.
        inbound: Position,
    },
    /// The payee's best update of the receiver's own channel (2 + 216 bytes).
    Latest([u8; SIGNED_LEN]),
    /// The sender's ed25519 payment key (2 + 32 + 1 = 35 bytes). It travels inside the tunnel to
    /// the receiver, whose authentication names the sender; `known` says the sender already has
    /// the receiver's key (otherwise the receiver answers with its own Hello).
    Hello {
        /// The sender's payment public key.
        key: [u8; 32],
        /// The sender knows the receiver's key.
        known: bool,
    },
}

/// Why bytes are not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than the two header bytes.
    #[error("message too short")]
    Short,
    /// Unknown version byte.
    #[error("unknown version {0}")]
    Version(u8),
    /// Unknown type byte.
    #[error("unknown message type {0}")]
    Kind(u8),
    /// The length does not match the type's.
    #[error("message type {kind} must be {want} bytes, got {got}")]
    Length {
        /// Type byte.
        kind: u8,
        /// Expected total length.
        want: usize,
        /// Received length.
        got: usize,
    },
    /// A boolean byte other than 0 or 1.
    #[error("bad flag byte")]
    Flag,
}

/// Total length of each message type.
pub fn length_of(kind: u8) -> Option<usize> {
    Some(match kind {
        kind::UPDATE | kind::LATEST => 2 + SIGNED_LEN,
        kind::ACK => 2 + 32 + 24 + 16,
        kind::REFUSE => 2 + 32 + 24 + 1,
        kind::REESTABLISH => 2 + 1 + 2 * 56,
        kind::HELLO => 2 + 32 + 1,
        _ => return None,
    })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at_checked(N).unwrap_or((&[], &[]));
        self.0 = rest;
        <[u8; N]>::try_from(head).unwrap_or([0; N])
    }
    fn position(&mut self) -> Position {
        Position {
            nonce: u64::from_be_bytes(self.take()),
            cumulative: Amount(u128::from_be_bytes(self.take())),
        }
    }
}

fn put_position(out: &mut Vec<u8>, p: Position) {
    out.extend_from_slice(&p.nonce.to_be_bytes());
    out.extend_from_slice(&p.cumulative.0.to_be_bytes());
}

impl PaymentMessage {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + SIGNED_LEN);
        out.push(VERSION);
        match self {
            PaymentMessage::Update(b) | PaymentMessage::Latest(b) => {
                out.push(if matches!(self, PaymentMessage::Update(_)) {
                    kind::UPDATE
                } else {
                    kind::LATEST
                });
                out.extend_from_slice(b);
            }
            PaymentMessage::Ack { channel, at, claim } => {
                out.push(kind::ACK);
                out.extend_from_slice(&channel.0);
                put_position(&mut out, *at);
                out.extend_from_slice(&claim.0.to_be_bytes());
            }
            PaymentMessage::Refuse {
                channel,
                at,
                reason,
            } => {
                out.push(kind::REFUSE);
                out.extend_from_slice(&channel.0);
                put_position(&mut out, *at);
                out.push(*reason);
            }
            PaymentMessage::Reestablish {
                reply,
                out_channel,
                out: o,
                in_channel,
                inbound,
            } => {
                out.push(kind::REESTABLISH);
                out.push(u8::from(*reply));
                out.extend_from_slice(&out_channel.0);
                put_position(&mut out, *o);
                out.extend_from_slice(&in_channel.0);
                put_position(&mut out, *inbound);
            }
            PaymentMessage::Hello { key, known } => {
                out.push(kind::HELLO);
                out.extend_from_slice(key);
                out.push(u8::from(*known));
            }
        }
        out
    }

    /// Parses one message; the length must be exactly its type's.
    pub fn decode(bytes: &[u8]) -> Result<PaymentMessage, WireError> {
        let [version, k, ..] = bytes else {
            return Err(WireError::Short);
        };
        if *version != VERSION {
            return Err(WireError::Version(*version));
        }
        let want = length_of(*k).ok_or(WireError::Kind(*k))?;
        if bytes.len() != want {
            return Err(WireError::Length {
                kind: *k,
                want,
                got: bytes.len(),
            });
        }
        let mut r = Reader(bytes.get(2..).unwrap_or_default());
        Ok(match *k {
            kind::UPDATE => PaymentMessage::Update(r.take()),
            kind::LATEST => PaymentMessage::Latest(r.take()),
            kind::ACK => PaymentMessage::Ack {
                channel: ChannelId(r.take()),
                at: r.position(),
                claim: Amount(u128::from_be_bytes(r.take())),
            },
            kind::REFUSE => PaymentMessage::Refuse {
                channel: ChannelId(r.take()),
                at: r.position(),
                reason: u8::from_be_bytes(r.take()),
            },
            kind::HELLO => {
                let key = r.take();
                let known = match r.take::<1>() {
                    [0] => false,
                    [1] => true,
                    _ => return Err(WireError::Flag),
                };
                PaymentMessage::Hello { key, known }
            }
            _ => {
                let reply = match r.take::<1>() {
                    [0] => false,
                    [1] => true,
                    _ => return Err(WireError::Flag),
                };
                PaymentMessage::Reestablish {
                    reply,
                    out_channel: ChannelId(r.take()),
                    out: r.position(),
                    in_channel: ChannelId(r.take()),
                    inbound: r.position(),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<PaymentMessage> {
        let p = Position {
            nonce: 7,
            cumulative: Amount(1 << 100),
        };
        vec![
            PaymentMessage::Update([3; SIGNED_LEN]),
            PaymentMessage::Latest([4; SIGNED_LEN]),
            PaymentMessage::Ack {
                channel: ChannelId([1; 32]),
                at: p,
                claim: Amount(99),
            },
            PaymentMessage::Refuse {
                channel: ChannelId([2; 32]),
                at: p,
                reason: 5,
            },
            PaymentMessage::Reestablish {
                reply: true,
                out_channel: ChannelId([5; 32]),
                out: p,
                in_channel: ChannelId([6; 32]),
                inbound: Position::default(),
            },
            PaymentMessage::Hello {
                key: [7; 32],
                known: true,
            },
        ]
    }

    #[test]
    fn every_message_round_trips_at_its_documented_length() {
        for m in samples() {
            let b = m.encode();
            assert_eq!(Some(b.len()), b.get(1).and_then(|k| length_of(*k)));
            assert_eq!(PaymentMessage::decode(&b), Ok(m));
            // One byte more or less is refused.
            assert!(PaymentMessage::decode(b.get(..b.len() - 1).unwrap_or_default()).is_err());
            let mut longer = b.clone();
            longer.push(0);
            assert!(PaymentMessage::decode(&longer).is_err());
        }
        let lens: Vec<usize> = samples().iter().map(|m| m.encode().len()).collect();
        assert_eq!(lens, vec![218, 218, 74, 59, 115, 35]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_reencode_exactly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = PaymentMessage::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }
    }
}
