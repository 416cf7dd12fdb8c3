//! The messages between a user node and an exit (byte layouts in `spec/exits.md`).
//!
//! Every message is `version (1) | kind (1) | body | signature (64)`, all integers big-endian,
//! one fixed length per kind, so a parser never guesses. The signature is ed25519 (RFC 8032
//! §5.1, verified strictly) over [`DOMAIN_TAG`] followed by every byte before the signature, by
//! the key the message names as its signer: the user's payment key for a [`Register`], the
//! exit's payment key for the rest. These are the same ed25519 keys the `payments` crate signs
//! channel updates with, so the key an exit registers is the key whose channel pays it.
//!
//! [`ExitMessage::decode`] checks the layout **and** the signature: a decoded message is authentic
//! (its signer signed it). Whether the signer is the one expected is the caller's check.

use std::net::{Ipv4Addr, Ipv6Addr};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use payments::{Amount, Price};

/// Version byte of every message.
pub const VERSION: u8 = 1;

/// The domain tag signed before every message, zero-padded to 32 bytes (distinct from the
/// channel-update tag, so no exit signature can be read as a payment and vice versa).
pub const DOMAIN_TAG: [u8; 32] = *b"babeld-rs exit message v1\0\0\0\0\0\0\0";

/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Message type codes.
pub mod kind {
    /// User to exit: register (or refresh a registration).
    pub const REGISTER: u8 = 1;
    /// Exit to user: registered, with addresses and tunnel parameters.
    pub const REGISTERED: u8 = 2;
    /// Exit to user: refused, with a reason.
    pub const REFUSED: u8 = 3;
    /// Exit to user: a cumulative bill.
    pub const BILL: u8 = 4;
}

/// Total length of each message kind, signature included.
pub const fn length_of(kind: u8) -> Option<usize> {
    Some(match kind {
        kind::REGISTER => 2 + 32 + 32 + 32 + 16 + 8 + 16 + SIGNATURE_LEN,
        kind::REGISTERED => {
            2 + 32 + 32 + 8 + 16 + 32 + 2 + 2 + 4 + 1 + 4 + 16 + 16 + 1 + 4 + 8 + SIGNATURE_LEN
        }
        kind::REFUSED => 2 + 32 + 32 + 8 + 16 + 1 + 8 + SIGNATURE_LEN,
        kind::BILL => 2 + 32 + 32 + 8 + 8 + 8 + 8 + 16 + 16 + SIGNATURE_LEN,
        _ => return None,
    })
}

/// A user's registration request, signed by `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Register {
    /// The user's ed25519 payment key (the signer).
    pub user: [u8; 32],
    /// The exit's ed25519 payment key: a request is valid at one exit only.
    pub exit: [u8; 32],
    /// The user's x25519 public key for the user-to-exit tunnel.
    pub tunnel_key: [u8; 32],
    /// The user's mesh address (where the exit sends the tunnel's packets).
    pub mesh_address: Ipv6Addr,
    /// The user's wall clock, milliseconds since the Unix epoch; strictly increasing per user.
    pub timestamp_ms: u64,
    /// Random bytes chosen by the user; echoed in the answer.
    pub nonce: [u8; 16],
}

/// The exit's grant, signed by `exit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Registered {
    /// The exit's ed25519 payment key (the signer).
    pub exit: [u8; 32],
    /// The user it answers.
    pub user: [u8; 32],
    /// The request's timestamp, echoed.
    pub timestamp_ms: u64,
    /// The request's nonce, echoed.
    pub nonce: [u8; 16],
    /// The exit's x25519 public key for the user-to-exit tunnel.
    pub tunnel_key: [u8; 32],
    /// The exit's UDP port for the user-to-exit tunnel.
    pub tunnel_port: u16,
    /// The MTU of the user-to-exit tunnel's interface, on both ends.
    pub mtu: u16,
    /// The user's IPv4 address inside the tunnel.
    pub ipv4: Ipv4Addr,
    /// Prefix length of the tunnel's IPv4 network.
    pub ipv4_prefix_len: u8,
    /// The exit's IPv4 address inside the tunnel (the user's default gateway).
    pub exit_ipv4: Ipv4Addr,
    /// The exit's IPv6 address inside the tunnel, if it carries IPv6 (`::` on the wire: none).
    pub exit_ipv6: Option<Ipv6Addr>,
    /// The IPv6 prefix routed to the user, with its length (length 0 on the wire: none).
    pub ipv6_prefix: Option<(Ipv6Addr, u8)>,
    /// The exit's fee, wei per byte, both ways (`payments::Price`).
    pub fee: Price,
    /// The free tier, bits per second each way, that a user who does not pay still gets.
    pub free_tier_bps: u64,
}

/// Why an exit refuses a registration (a signed answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ExitRefusal {
    /// The exit's policy is an allow-list and the key is not on it.
    #[error("key not allowed by the exit's policy")]
    NotAllowed,
    /// Every address of the pool is leased to another user and no lease has expired.
    #[error("address pool exhausted")]
    PoolExhausted,
    /// The request's timestamp is outside the exit's replay window (check the clock).
    #[error("request timestamp outside the exit's window")]
    ClockSkew,
}

impl ExitRefusal {
    /// Every refusal, in code order.
    pub const ALL: [ExitRefusal; 3] = [
        ExitRefusal::NotAllowed,
        ExitRefusal::PoolExhausted,
        ExitRefusal::ClockSkew,
    ];

    /// The wire code.
    pub fn code(&self) -> u8 {
        match self {
            ExitRefusal::NotAllowed => 1,
            ExitRefusal::PoolExhausted => 2,
            ExitRefusal::ClockSkew => 3,
        }
    }

    /// The refusal of a wire code.
    pub fn from_code(code: u8) -> Option<ExitRefusal> {
        ExitRefusal::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Name for logs and `show exits`.
    pub fn name(&self) -> &'static str {
        match self {
            ExitRefusal::NotAllowed => "not-allowed",
            ExitRefusal::PoolExhausted => "pool-exhausted",
            ExitRefusal::ClockSkew => "clock-skew",
        }
    }
}

/// The exit's refusal, signed by `exit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Refused {
    /// The exit's ed25519 payment key (the signer).
    pub exit: [u8; 32],
    /// The user it answers.
    pub user: [u8; 32],
    /// The request's timestamp, echoed.
    pub timestamp_ms: u64,
    /// The request's nonce, echoed.
    pub nonce: [u8; 16],
    /// Why.
    pub reason: ExitRefusal,
    /// The exit's clock when it refused, milliseconds since the Unix epoch (to diagnose skew).
    pub exit_time_ms: u64,
}

/// A user's cumulative totals at the exit as of one bill: everything metered since its first
/// registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Totals {
    /// Strictly increasing per (exit, user) with every change of the totals (0: never billed).
    pub seq: u64,
    /// The exit's clock when the totals were committed, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Bytes the exit received from the user in the tunnel (inner packets), cumulative.
    pub upload_bytes: u64,
    /// Bytes the exit sent to the user in the tunnel (inner packets), cumulative.
    pub download_bytes: u64,
    /// Value of the upload: sum of upload bytes × the exit's fee, cumulative.
    pub upload_amount: Amount,
    /// Value of the download: sum of download bytes × (fee + price of the route back), cumulative.
    pub download_amount: Amount,
}

impl Totals {
    /// The cumulative amount: upload plus download value.
    pub fn amount(&self) -> Amount {
        self.upload_amount.saturating_add(self.download_amount)
    }

    /// The bill from `exit` to `user` stating these totals.
    pub fn bill(self, exit: [u8; 32], user: [u8; 32]) -> Bill {
        Bill {
            exit,
            user,
            totals: self,
        }
    }

    pub(crate) fn put(&self, o: &mut Vec<u8>) {
        o.extend_from_slice(&self.seq.to_be_bytes());
        o.extend_from_slice(&self.time_ms.to_be_bytes());
        o.extend_from_slice(&self.upload_bytes.to_be_bytes());
        o.extend_from_slice(&self.download_bytes.to_be_bytes());
        o.extend_from_slice(&self.upload_amount.0.to_be_bytes());
        o.extend_from_slice(&self.download_amount.0.to_be_bytes());
    }

    pub(crate) fn read(f: &mut Fields<'_>) -> Totals {
        Totals {
            seq: f.u64(),
            time_ms: f.u64(),
            upload_bytes: f.u64(),
            download_bytes: f.u64(),
            upload_amount: f.amount(),
            download_amount: f.amount(),
        }
    }
}

/// A cumulative bill, signed by `exit`: the user's [`Totals`]. A later bill supersedes an
/// earlier one; nothing is ever billed twice because nothing is ever billed incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Bill {
    /// The exit's ed25519 payment key (the signer).
    pub exit: [u8; 32],
    /// The billed user.
    pub user: [u8; 32],
    /// What it states.
    pub totals: Totals,
}

impl Bill {
    /// The cumulative amount billed: upload plus download value.
    pub fn amount(&self) -> Amount {
        self.totals.amount()
    }
}

/// One message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitMessage {
    /// User to exit.
    Register(Register),
    /// Exit to user.
    Registered(Registered),
    /// Exit to user.
    Refused(Refused),
    /// Exit to user.
    Bill(Bill),
}

/// Why bytes are not an authentic message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ExitWireError {
    /// Shorter than the two header bytes.
    #[error("message too short")]
    Short,
    /// Unknown version byte.
    #[error("unknown version {0}")]
    Version(u8),
    /// Unknown kind byte.
    #[error("unknown message kind {0}")]
    Kind(u8),
    /// The length does not match the kind's.
    #[error("message kind {kind} must be {want} bytes, got {got}")]
    Length {
        /// Kind byte.
        kind: u8,
        /// Expected total length.
        want: usize,
        /// Received length.
        got: usize,
    },
    /// A field holds a value its type does not allow (named).
    #[error("invalid field {0}")]
    Field(&'static str),
    /// The signer field is not a valid ed25519 public key.
    #[error("signer key is not a valid ed25519 point")]
    SignerKey,
    /// The signature does not verify strictly under the signer's key.
    #[error("bad signature")]
    Signature,
}

/// A cursor over fixed-width big-endian fields, for this crate's decoders (messages and stored
/// records), which check the total length first: past the end it yields zeros, never panics.
pub(crate) struct Fields<'a>(pub(crate) &'a [u8]);

impl Fields<'_> {
    pub(crate) fn take<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.0 = rest;
                *head
            }
            None => {
                self.0 = &[];
                [0; N]
            }
        }
    }
    pub(crate) fn u8(&mut self) -> u8 {
        let [b] = self.take::<1>();
        b
    }
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }
    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }
    pub(crate) fn amount(&mut self) -> Amount {
        Amount(u128::from_be_bytes(self.take()))
    }
    pub(crate) fn v4(&mut self) -> Ipv4Addr {
        Ipv4Addr::from(self.take::<4>())
    }
    pub(crate) fn v6(&mut self) -> Ipv6Addr {
        Ipv6Addr::from(self.take::<16>())
    }
}

impl ExitMessage {
    /// The kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            ExitMessage::Register(_) => kind::REGISTER,
            ExitMessage::Registered(_) => kind::REGISTERED,
            ExitMessage::Refused(_) => kind::REFUSED,
            ExitMessage::Bill(_) => kind::BILL,
        }
    }

    /// The key that signs this message: the user's for a [`Register`], the exit's otherwise.
    pub fn signer(&self) -> [u8; 32] {
        match self {
            ExitMessage::Register(m) => m.user,
            ExitMessage::Registered(m) => m.exit,
            ExitMessage::Refused(m) => m.exit,
            ExitMessage::Bill(m) => m.exit,
        }
    }

    /// Everything before the signature.
    fn body(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(length_of(self.kind()).unwrap_or(0));
        o.push(VERSION);
        o.push(self.kind());
        match self {
            ExitMessage::Register(m) => {
                o.extend_from_slice(&m.user);
                o.extend_from_slice(&m.exit);
                o.extend_from_slice(&m.tunnel_key);
                o.extend_from_slice(&m.mesh_address.octets());
                o.extend_from_slice(&m.timestamp_ms.to_be_bytes());
                o.extend_from_slice(&m.nonce);
            }
            ExitMessage::Registered(m) => {
                o.extend_from_slice(&m.exit);
                o.extend_from_slice(&m.user);
                o.extend_from_slice(&m.timestamp_ms.to_be_bytes());
                o.extend_from_slice(&m.nonce);
                o.extend_from_slice(&m.tunnel_key);
                o.extend_from_slice(&m.tunnel_port.to_be_bytes());
                o.extend_from_slice(&m.mtu.to_be_bytes());
                o.extend_from_slice(&m.ipv4.octets());
                o.push(m.ipv4_prefix_len);
                o.extend_from_slice(&m.exit_ipv4.octets());
                o.extend_from_slice(&m.exit_ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED).octets());
                let (p, l) = m.ipv6_prefix.unwrap_or((Ipv6Addr::UNSPECIFIED, 0));
                o.extend_from_slice(&p.octets());
                o.push(l);
                o.extend_from_slice(&m.fee.to_be_bytes());
                o.extend_from_slice(&m.free_tier_bps.to_be_bytes());
            }
            ExitMessage::Refused(m) => {
                o.extend_from_slice(&m.exit);
                o.extend_from_slice(&m.user);
                o.extend_from_slice(&m.timestamp_ms.to_be_bytes());
                o.extend_from_slice(&m.nonce);
                o.push(m.reason.code());
                o.extend_from_slice(&m.exit_time_ms.to_be_bytes());
            }
            ExitMessage::Bill(m) => {
                o.extend_from_slice(&m.exit);
                o.extend_from_slice(&m.user);
                m.totals.put(&mut o);
            }
        }
        o
    }

    /// The signed wire form. `key` must be the [`ExitMessage::signer`]'s (otherwise the result does
    /// not decode: [`ExitWireError::Signature`]).
    pub fn sign(&self, key: &SigningKey) -> Vec<u8> {
        let mut o = self.body();
        let mut signed = Vec::with_capacity(32 + o.len());
        signed.extend_from_slice(&DOMAIN_TAG);
        signed.extend_from_slice(&o);
        o.extend_from_slice(&key.sign(&signed).to_bytes());
        o
    }

    /// Parses bytes and verifies the signature under the signer named inside. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<ExitMessage, ExitWireError> {
        let (&version, rest) = bytes.split_first().ok_or(ExitWireError::Short)?;
        let &kind = rest.first().ok_or(ExitWireError::Short)?;
        if version != VERSION {
            return Err(ExitWireError::Version(version));
        }
        let want = length_of(kind).ok_or(ExitWireError::Kind(kind))?;
        if bytes.len() != want {
            return Err(ExitWireError::Length {
                kind,
                want,
                got: bytes.len(),
            });
        }
        let (head, sig) = bytes
            .split_at_checked(want - SIGNATURE_LEN)
            .ok_or(ExitWireError::Short)?;
        let mut r = Fields(head.get(2..).unwrap_or_default());
        let msg = match kind {
            kind::REGISTER => ExitMessage::Register(Register {
                user: r.take(),
                exit: r.take(),
                tunnel_key: r.take(),
                mesh_address: r.v6(),
                timestamp_ms: r.u64(),
                nonce: r.take(),
            }),
            kind::REGISTERED => {
                let exit = r.take();
                let user = r.take();
                let timestamp_ms = r.u64();
                let nonce = r.take();
                let tunnel_key = r.take();
                let tunnel_port = r.u16();
                let mtu = r.u16();
                let ipv4 = r.v4();
                let ipv4_prefix_len = r.u8();
                let exit_ipv4 = r.v4();
                let exit_ipv6 = Some(r.v6()).filter(|a| !a.is_unspecified());
                let prefix = r.v6();
                let len = r.u8();
                if ipv4_prefix_len > 32 {
                    return Err(ExitWireError::Field("ipv4 prefix length"));
                }
                if len > 128 || (len == 0 && !prefix.is_unspecified()) {
                    return Err(ExitWireError::Field("ipv6 prefix length"));
                }
                ExitMessage::Registered(Registered {
                    exit,
                    user,
                    timestamp_ms,
                    nonce,
                    tunnel_key,
                    tunnel_port,
                    mtu,
                    ipv4,
                    ipv4_prefix_len,
                    exit_ipv4,
                    exit_ipv6,
                    ipv6_prefix: (len > 0).then_some((prefix, len)),
                    fee: r.u32(),
                    free_tier_bps: r.u64(),
                })
            }
            kind::REFUSED => ExitMessage::Refused(Refused {
                exit: r.take(),
                user: r.take(),
                timestamp_ms: r.u64(),
                nonce: r.take(),
                reason: ExitRefusal::from_code(r.u8())
                    .ok_or(ExitWireError::Field("refusal reason"))?,
                exit_time_ms: r.u64(),
            }),
            kind::BILL => ExitMessage::Bill(Bill {
                exit: r.take(),
                user: r.take(),
                totals: Totals::read(&mut r),
            }),
            other => return Err(ExitWireError::Kind(other)),
        };
        let key = VerifyingKey::from_bytes(&msg.signer()).map_err(|_| ExitWireError::SignerKey)?;
        let sig = <[u8; SIGNATURE_LEN]>::try_from(sig).map_err(|_| ExitWireError::Short)?;
        let mut signed = Vec::with_capacity(32 + head.len());
        signed.extend_from_slice(&DOMAIN_TAG);
        signed.extend_from_slice(head);
        key.verify_strict(&signed, &Signature::from_bytes(&sig))
            .map_err(|_| ExitWireError::Signature)?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn pk(seed: u8) -> [u8; 32] {
        key(seed).verifying_key().to_bytes()
    }

    fn register() -> ExitMessage {
        ExitMessage::Register(Register {
            user: pk(1),
            exit: pk(2),
            tunnel_key: [3; 32],
            mesh_address: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
            timestamp_ms: 1_700_000_000_000,
            nonce: [4; 16],
        })
    }

    #[test]
    fn lengths_are_fixed_per_kind() {
        assert_eq!(length_of(kind::REGISTER), Some(202));
        assert_eq!(length_of(kind::REGISTERED), Some(244));
        assert_eq!(length_of(kind::REFUSED), Some(163));
        assert_eq!(length_of(kind::BILL), Some(194));
        assert_eq!(length_of(0), None);
        assert_eq!(length_of(5), None);
    }

    #[test]
    fn forged_and_tampered_messages_fail_with_typed_errors() {
        let m = register();
        let good = m.sign(&key(1));
        assert_eq!(ExitMessage::decode(&good), Ok(m));
        // Signed by someone else than the user it names.
        assert_eq!(
            ExitMessage::decode(&m.sign(&key(9))),
            Err(ExitWireError::Signature)
        );
        // Any flipped bit in body or signature.
        for i in 2..good.len() {
            let mut bad = good.clone();
            if let Some(b) = bad.get_mut(i) {
                *b ^= 0x10;
            }
            assert!(ExitMessage::decode(&bad).is_err(), "flip at {i} accepted");
        }
        // Header and length errors.
        assert_eq!(ExitMessage::decode(&[]), Err(ExitWireError::Short));
        assert_eq!(ExitMessage::decode(&[1]), Err(ExitWireError::Short));
        assert_eq!(ExitMessage::decode(&[2, 1]), Err(ExitWireError::Version(2)));
        assert_eq!(ExitMessage::decode(&[1, 9]), Err(ExitWireError::Kind(9)));
        assert_eq!(
            ExitMessage::decode(good.get(..201).unwrap_or_default()),
            Err(ExitWireError::Length {
                kind: kind::REGISTER,
                want: 202,
                got: 201
            })
        );
        // A signature cannot move to another domain: the same body signed without the tag.
        let mut raw = good.clone();
        raw.truncate(202 - 64);
        let sig = key(1).sign(&raw).to_bytes();
        raw.extend_from_slice(&sig);
        assert_eq!(ExitMessage::decode(&raw), Err(ExitWireError::Signature));
    }

    #[test]
    fn non_canonical_fields_are_refused() {
        let m = ExitMessage::Registered(Registered {
            exit: pk(2),
            user: pk(1),
            timestamp_ms: 5,
            nonce: [0; 16],
            tunnel_key: [7; 32],
            tunnel_port: 51820,
            mtu: 1340,
            ipv4: Ipv4Addr::new(172, 16, 0, 2),
            ipv4_prefix_len: 33,
            exit_ipv4: Ipv4Addr::new(172, 16, 0, 1),
            exit_ipv6: None,
            ipv6_prefix: None,
            fee: 10,
            free_tier_bps: 1_000_000,
        });
        assert_eq!(
            ExitMessage::decode(&m.sign(&key(2))),
            Err(ExitWireError::Field("ipv4 prefix length"))
        );
        let mut refused = ExitMessage::Refused(Refused {
            exit: pk(2),
            user: pk(1),
            timestamp_ms: 5,
            nonce: [0; 16],
            reason: ExitRefusal::NotAllowed,
            exit_time_ms: 6,
        })
        .sign(&key(2));
        if let Some(b) = refused.get_mut(2 + 32 + 32 + 8 + 16) {
            *b = 0;
        }
        assert_eq!(
            ExitMessage::decode(&refused),
            Err(ExitWireError::Field("refusal reason"))
        );
    }

    fn arb_v6() -> impl Strategy<Value = Ipv6Addr> {
        any::<u128>().prop_map(Ipv6Addr::from)
    }

    fn arb_message() -> impl Strategy<Value = ExitMessage> {
        let register = (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            arb_v6(),
            any::<u64>(),
            any::<[u8; 16]>(),
        )
            .prop_map(|(exit, tunnel_key, mesh_address, timestamp_ms, nonce)| {
                ExitMessage::Register(Register {
                    user: pk(1),
                    exit,
                    tunnel_key,
                    mesh_address,
                    timestamp_ms,
                    nonce,
                })
            });
        let registered = (
            (
                any::<[u8; 32]>(),
                any::<u64>(),
                any::<[u8; 16]>(),
                any::<[u8; 32]>(),
            ),
            (
                any::<u16>(),
                any::<u16>(),
                any::<u32>(),
                0u8..=32,
                any::<u32>(),
            ),
            (proptest::option::of(arb_v6().prop_filter("set", |a| !a.is_unspecified()))),
            proptest::option::of((arb_v6(), 1u8..=128)),
            (any::<u32>(), any::<u64>()),
        )
            .prop_map(
                |((user, ts, nonce, tk), (port, mtu, v4, len, ev4), ev6, v6, (fee, free))| {
                    ExitMessage::Registered(Registered {
                        exit: pk(2),
                        user,
                        timestamp_ms: ts,
                        nonce,
                        tunnel_key: tk,
                        tunnel_port: port,
                        mtu,
                        ipv4: Ipv4Addr::from(v4),
                        ipv4_prefix_len: len,
                        exit_ipv4: Ipv4Addr::from(ev4),
                        exit_ipv6: ev6,
                        ipv6_prefix: v6,
                        fee,
                        free_tier_bps: free,
                    })
                },
            );
        let refused = (
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<[u8; 16]>(),
            0usize..3,
            any::<u64>(),
        )
            .prop_map(|(user, ts, nonce, r, t)| {
                ExitMessage::Refused(Refused {
                    exit: pk(2),
                    user,
                    timestamp_ms: ts,
                    nonce,
                    reason: ExitRefusal::ALL
                        .get(r)
                        .copied()
                        .unwrap_or(ExitRefusal::NotAllowed),
                    exit_time_ms: t,
                })
            });
        let bill = (
            any::<[u8; 32]>(),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            (any::<u128>(), any::<u128>()),
        )
            .prop_map(|(user, (seq, t, up, down), (ua, da))| {
                ExitMessage::Bill(Bill {
                    exit: pk(2),
                    user,
                    totals: Totals {
                        seq,
                        time_ms: t,
                        upload_bytes: up,
                        download_bytes: down,
                        upload_amount: Amount(ua),
                        download_amount: Amount(da),
                    },
                })
            });
        prop_oneof![register, registered, refused, bill]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_message_round_trips(m in arb_message()) {
            let k = if matches!(m, ExitMessage::Register(_)) { key(1) } else { key(2) };
            let b = m.sign(&k);
            prop_assert_eq!(Some(b.len()), length_of(m.kind()));
            prop_assert_eq!(ExitMessage::decode(&b), Ok(m));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ExitMessage::decode(&b);
        }

        #[test]
        fn arbitrary_bodies_of_the_right_length_never_panic(
            k in 1u8..=4,
            body in proptest::collection::vec(any::<u8>(), 242),
        ) {
            let mut b = vec![VERSION, k];
            b.extend_from_slice(&body);
            b.truncate(length_of(k).unwrap_or(0));
            prop_assert!(ExitMessage::decode(&b).is_err());
        }
    }
}
