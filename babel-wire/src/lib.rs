//! # babel-wire
//!
//! A sans-IO codec for the Babel routing protocol: RFC 8966 (the protocol), RFC 8967 (MAC
//! authentication TLVs), RFC 9079 (source-specific routing), RFC 9229 (IPv4 via IPv6), RFC 9616
//! (timestamps), and Althea's extensions (price, full-path RTT, route verification). The byte
//! layouts, type numbers and the reasons for them are in `spec/wire.md`.
//!
//! * [`decode`] turns one UDP payload into a [`Decoded`] packet: fully resolved [`Message`]s (the
//!   RFC 8966 §4.5 parser state is applied: every [`Update`] has its whole prefix, router-id and
//!   next hop), the trailer's MACs, the end of the bytes a MAC covers, and a [`TlvError`] for every
//!   TLV that was ignored. It never panics and allocates at most in proportion to its input.
//! * [`PacketBuilder`] and [`encode`] pack messages into packets no larger than a limit, using
//!   prefix compression and emitting Router-Id and Next Hop TLVs only when they change.
//!
//! * [`mac`] computes and checks RFC 8967 MACs (HMAC-SHA256, BLAKE2s-128) and signs packets.
//!
//! The [`Flavour`] decides the Update layout per interface: standard RFC 8966 with the price as a
//! sub-TLV, or Althea's fork with the price as a fixed field.

mod decode;
mod encode;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod mac;
mod metric;
mod types;

pub use decode::{DecodeOptions, Decoded, decode};
pub use encode::{EncodeOptions, PacketBuilder, encode, encode_packet};
pub use error::{EncodeError, PacketError, PushError, TlvError, TlvErrorKind};
pub use metric::{Metric, Seqno, is_link_local, is_martian};
pub use types::{
    Flavour, Hello, INFINITY, Ihu, IhuTimestamp, Message, Packet, Prefix, PrefixError, RemoteHello,
    RemoteIhu, RouteRequest, RouterId, RouterIdParseError, SeqnoRequest, Update,
};

/// UDP port of Babel (RFC 8966 §5).
pub const PORT: u16 = 6696;
/// Link-local IPv6 multicast group of Babel (RFC 8966 §5).
pub const MULTICAST_V6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 6);
/// First octet of every packet (RFC 8966 §4.2).
pub const MAGIC: u8 = 42;
/// Second octet of every packet (RFC 8966 §4.2).
pub const VERSION: u8 = 2;
/// Length of the packet header: magic, version, body length.
pub const HEADER_LEN: usize = 4;

/// TLV type numbers (RFC 8966 §4.6, RFC 8967 §4, and ours from the experimental range).
pub mod tlv {
    /// Pad1 (RFC 8966 §4.6.1).
    pub const PAD1: u8 = 0;
    /// PadN (RFC 8966 §4.6.2).
    pub const PADN: u8 = 1;
    /// Acknowledgment Request (RFC 8966 §4.6.3).
    pub const ACK_REQ: u8 = 2;
    /// Acknowledgment (RFC 8966 §4.6.4).
    pub const ACK: u8 = 3;
    /// Hello (RFC 8966 §4.6.5).
    pub const HELLO: u8 = 4;
    /// IHU (RFC 8966 §4.6.6).
    pub const IHU: u8 = 5;
    /// Router-Id (RFC 8966 §4.6.7).
    pub const ROUTER_ID: u8 = 6;
    /// Next Hop (RFC 8966 §4.6.8).
    pub const NEXT_HOP: u8 = 7;
    /// Update (RFC 8966 §4.6.9).
    pub const UPDATE: u8 = 8;
    /// Route Request (RFC 8966 §4.6.10).
    pub const ROUTE_REQUEST: u8 = 9;
    /// Seqno Request (RFC 8966 §4.6.11).
    pub const SEQNO_REQUEST: u8 = 10;
    /// MAC (RFC 8967 §4.1); only in the trailer.
    pub const MAC: u8 = 16;
    /// PC (RFC 8967 §4.2).
    pub const PC: u8 = 17;
    /// Challenge Request (RFC 8967 §4.3).
    pub const CHALLENGE_REQUEST: u8 = 18;
    /// Challenge Reply (RFC 8967 §4.3).
    pub const CHALLENGE_REPLY: u8 = 19;
    /// Remote Hello (ours, experimental range 224-254; `spec/wire.md`).
    pub const REMOTE_HELLO: u8 = 224;
    /// Remote IHU (ours, experimental range 224-254; `spec/wire.md`).
    pub const REMOTE_IHU: u8 = 225;
    /// Check Failed (ours, experimental range 224-254; `spec/wire.md`).
    pub const CHECK_FAILED: u8 = 226;
    /// Justify Request (ours, experimental range 224-254; `spec/wire.md`).
    pub const JUSTIFY_REQUEST: u8 = 227;
    /// Claim Request (ours, experimental range 224-254; `spec/wire.md`).
    pub const CLAIM_REQUEST: u8 = 228;
    /// Signed Claim (ours, experimental range 224-254; `spec/wire.md`).
    pub const SIGNED_CLAIM: u8 = 229;
}

/// Sub-TLV type numbers (RFC 8966 §4.4, RFC 9616, RFC 9079, Althea, and ours).
pub mod subtlv {
    /// Pad1 (RFC 8966 §4.7.1).
    pub const PAD1: u8 = 0;
    /// PadN (RFC 8966 §4.7.2).
    pub const PADN: u8 = 1;
    /// Diversity (draft-chroboczek-babel-diversity-routing; babeld 1.12).
    pub const DIVERSITY: u8 = 2;
    /// Timestamp (RFC 9616 §3).
    pub const TIMESTAMP: u8 = 3;
    /// Full-path RTT in the Althea flavour (Althea's fork, unregistered).
    pub const ALTHEA_PATH_RTT: u8 = 45;
    /// Price in the standard flavour (ours, experimental non-mandatory range 112-126).
    pub const PRICE: u8 = 112;
    /// Full-path RTT in the standard flavour (ours, experimental non-mandatory range 112-126).
    pub const PATH_RTT: u8 = 113;
    /// Source Prefix (RFC 9079 §7.1), mandatory.
    pub const SOURCE_PREFIX: u8 = 128;
    /// Sub-TLVs with this bit set are mandatory (RFC 8966 §4.4).
    pub const MANDATORY_BIT: u8 = 0x80;
}

/// Address encodings (RFC 8966 §4.1.5, RFC 9229 §2).
pub mod ae {
    /// Wildcard, no address.
    pub const WILDCARD: u8 = 0;
    /// IPv4, compressible.
    pub const IPV4: u8 = 1;
    /// IPv6, compressible.
    pub const IPV6: u8 = 2;
    /// IPv6 link-local: 8 octets, fe80::/64 implied.
    pub const LINK_LOCAL: u8 = 3;
    /// IPv4 prefix whose next hop is IPv6 (RFC 9229), compressible with its own default prefix.
    pub const V4_VIA_V6: u8 = 4;
}
