//! Typed decode and encode errors: what was wrong and where.

/// A packet that cannot be decoded at all (RFC 8966 §4.2: such packets are silently dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer than the four header octets.
    #[error("packet of {0} bytes is shorter than the 4-byte header")]
    TooShort(usize),
    /// The first octet is not 42.
    #[error("bad magic {0}, expected 42")]
    BadMagic(u8),
    /// The second octet is not 2.
    #[error("unsupported Babel version {0}, expected 2")]
    BadVersion(u8),
    /// The header's body length runs past the end of the datagram.
    #[error("body length {declared} exceeds the {available} bytes after the header")]
    BodyTooLong {
        /// Body length from the header.
        declared: usize,
        /// Bytes actually present after the header.
        available: usize,
    },
}

/// Where a TLV was found and why it was not used. The TLV is ignored; the rest of the packet is
/// still decoded (except after [`TlvErrorKind::Truncated`], where framing is lost).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLV type {tlv_type} at offset {offset}: {kind}")]
pub struct TlvError {
    /// Offset of the TLV's type octet from the start of the packet.
    pub offset: usize,
    /// The TLV's type.
    pub tlv_type: u8,
    /// What was wrong.
    pub kind: TlvErrorKind,
}

/// Why a TLV was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlvErrorKind {
    /// The TLV's length runs past the end of the body (or trailer); decoding stops there.
    #[error("length {len} runs past the end ({available} bytes left)")]
    Truncated {
        /// Declared length.
        len: usize,
        /// Bytes available after the length octet.
        available: usize,
    },
    /// The body is shorter than the TLV's fixed part.
    #[error("body of {len} bytes is shorter than the minimum {min}")]
    TooShort {
        /// Body length.
        len: usize,
        /// Minimum.
        min: usize,
    },
    /// The body is longer than this TLV allows (PC, Challenge).
    #[error("body of {len} bytes is longer than the maximum {max}")]
    TooLong {
        /// Body length.
        len: usize,
        /// Maximum.
        max: usize,
    },
    /// A TLV type we do not know (RFC 8966 §4.3: skipped).
    #[error("unknown TLV type")]
    UnknownType,
    /// A TLV that may not appear where it was found (MAC in the body, non-MAC in the trailer).
    #[error("not allowed here")]
    Misplaced,
    /// An address encoding we do not know (RFC 8966 §4.1.5: the TLV is ignored).
    #[error("unknown address encoding {0}")]
    UnknownAe(u8),
    /// An address encoding that this TLV does not allow.
    #[error("address encoding {0} is not allowed in this TLV")]
    BadAe(u8),
    /// A prefix length too long for the address encoding, or a non-zero wildcard length.
    #[error("prefix length {plen} is invalid for address encoding {ae}")]
    BadPlen {
        /// Address encoding.
        ae: u8,
        /// Prefix length.
        plen: u8,
    },
    /// Omitted octets with no default prefix, or more than the address holds.
    #[error("{omitted} omitted octets are invalid for address encoding {ae}")]
    BadOmitted {
        /// Address encoding.
        ae: u8,
        /// Omitted field.
        omitted: u8,
    },
    /// The address or prefix runs past the end of the TLV.
    #[error("address needs {needed} bytes, {available} available")]
    AddressTruncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// A sub-TLV runs past the end of its TLV.
    #[error("sub-TLV type {subtype} runs past the end of the TLV")]
    SubTlvTruncated {
        /// Sub-TLV type.
        subtype: u8,
    },
    /// A known sub-TLV with an invalid body.
    #[error("sub-TLV type {subtype} has an invalid body of {len} bytes")]
    BadSubTlv {
        /// Sub-TLV type.
        subtype: u8,
        /// Its body length.
        len: usize,
    },
    /// A mandatory sub-TLV (type >= 128) we do not understand (RFC 8966 §4.4).
    #[error("unknown mandatory sub-TLV type {0}")]
    UnknownMandatorySubTlv(u8),
    /// A second Source Prefix sub-TLV, or one on a wildcard (RFC 9079 §7).
    #[error("misplaced or repeated source prefix")]
    BadSourcePrefix,
    /// A field whose value the RFC forbids (the string says which).
    #[error("invalid value: {0}")]
    BadValue(&'static str),
    /// A finite Update with no router-id in the parser state (RFC 8966 §4.6.9).
    #[error("finite update without a router-id")]
    MissingRouterId,
}

/// An error encoding a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message alone does not fit in an empty packet of the configured size.
    #[error("message needs {needed} bytes, more than the packet limit of {limit}")]
    TooLarge {
        /// Packet bytes needed.
        needed: usize,
        /// Configured maximum packet length.
        limit: usize,
    },
    /// A TLV or sub-TLV body longer than 255 octets.
    #[error("TLV body of {0} bytes exceeds 255")]
    TlvTooLong(usize),
    /// A field combination that cannot be encoded (the string says which).
    #[error("cannot encode: {0}")]
    Invalid(&'static str),
}

/// Why [`crate::PacketBuilder::push`] did not add a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The packet is full, or the message needs parser state this packet cannot give it (a
    /// Next Hop or Router-Id cannot be unset): finish this packet and push to a new one.
    #[error("packet full")]
    Full,
    /// The message cannot be encoded at all.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}
