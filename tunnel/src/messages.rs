//! WireGuard message codec (borrowed, zero-copy views).
//!
//! Parsing checks the exact length and the reserved bytes; after a
//! successful [`TunnelMessage::parse`] no accessor can panic.

use crate::error::DropReason;

/// Handshake initiation, type 1.
pub const TYPE_INITIATION: u8 = 1;
/// Handshake response, type 2.
pub const TYPE_RESPONSE: u8 = 2;
/// Cookie reply, type 3.
pub const TYPE_COOKIE_REPLY: u8 = 3;
/// Transport data, type 4.
pub const TYPE_DATA: u8 = 4;

/// Initiation length.
pub const INITIATION_LEN: usize = 148;
/// Response length.
pub const RESPONSE_LEN: usize = 92;
/// Cookie reply length.
pub const COOKIE_REPLY_LEN: usize = 64;
/// Transport header (type, receiver, counter).
pub const DATA_HEADER_LEN: usize = 16;
/// Smallest transport message (a keepalive: header + tag).
pub const DATA_MIN_LEN: usize = DATA_HEADER_LEN + 16;
/// Largest datagram we accept (UDP payload maximum).
pub const MAX_DATAGRAM: usize = 65535;

/// Offset of mac1 in an initiation.
pub const INIT_MAC1: usize = 116;
/// Offset of mac2 in an initiation.
pub const INIT_MAC2: usize = 132;
/// Offset of mac1 in a response.
pub const RESP_MAC1: usize = 60;
/// Offset of mac2 in a response.
pub const RESP_MAC2: usize = 76;

fn arr<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    // Callers only pass offsets inside a buffer whose exact length was
    // checked at parse time; an out-of-range request (a bug) yields zeros.
    let mut out = [0u8; N];
    if let Some(s) = b.get(at..at.saturating_add(N)) {
        out.copy_from_slice(s);
    }
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(arr::<4>(b, at))
}

/// A parsed handshake initiation.
#[derive(Debug, Clone, Copy)]
pub struct Initiation<'a>(pub &'a [u8; INITIATION_LEN]);

impl<'a> Initiation<'a> {
    /// Sender index.
    pub fn sender(&self) -> u32 {
        u32_at(self.0, 4)
    }
    /// Unencrypted ephemeral public key.
    pub fn ephemeral(&self) -> [u8; 32] {
        arr(self.0, 8)
    }
    /// Encrypted static key (32 + 16).
    pub fn encrypted_static(&self) -> [u8; 48] {
        arr(self.0, 40)
    }
    /// Encrypted timestamp (12 + 16).
    pub fn encrypted_timestamp(&self) -> [u8; 28] {
        arr(self.0, 88)
    }
    /// mac1.
    pub fn mac1(&self) -> [u8; 16] {
        arr(self.0, INIT_MAC1)
    }
    /// mac2.
    pub fn mac2(&self) -> [u8; 16] {
        arr(self.0, INIT_MAC2)
    }
}

/// A parsed handshake response.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a>(pub &'a [u8; RESPONSE_LEN]);

impl<'a> Response<'a> {
    /// Sender index.
    pub fn sender(&self) -> u32 {
        u32_at(self.0, 4)
    }
    /// Receiver index (the initiator's sender index).
    pub fn receiver(&self) -> u32 {
        u32_at(self.0, 8)
    }
    /// Unencrypted ephemeral public key.
    pub fn ephemeral(&self) -> [u8; 32] {
        arr(self.0, 12)
    }
    /// Encrypted empty payload (tag only).
    pub fn encrypted_nothing(&self) -> [u8; 16] {
        arr(self.0, 44)
    }
    /// mac1.
    pub fn mac1(&self) -> [u8; 16] {
        arr(self.0, RESP_MAC1)
    }
    /// mac2.
    pub fn mac2(&self) -> [u8; 16] {
        arr(self.0, RESP_MAC2)
    }
}

/// A parsed cookie reply.
#[derive(Debug, Clone, Copy)]
pub struct CookieReply<'a>(pub &'a [u8; COOKIE_REPLY_LEN]);

impl<'a> CookieReply<'a> {
    /// Receiver index.
    pub fn receiver(&self) -> u32 {
        u32_at(self.0, 4)
    }
    /// XChaCha20 nonce.
    pub fn nonce(&self) -> [u8; 24] {
        arr(self.0, 8)
    }
    /// Encrypted cookie (16 + 16).
    pub fn encrypted_cookie(&self) -> [u8; 32] {
        arr(self.0, 32)
    }
}

/// A parsed transport data message.
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    /// Receiver index.
    pub receiver: u32,
    /// Nonce counter.
    pub counter: u64,
    /// Ciphertext (without the tag).
    pub ciphertext: &'a [u8],
    /// Poly1305 tag.
    pub tag: [u8; 16],
}

/// Any WireGuard message.
#[derive(Debug, Clone, Copy)]
pub enum TunnelMessage<'a> {
    /// Type 1.
    Initiation(Initiation<'a>),
    /// Type 2.
    Response(Response<'a>),
    /// Type 3.
    CookieReply(CookieReply<'a>),
    /// Type 4.
    Data(Data<'a>),
}

impl<'a> TunnelMessage<'a> {
    /// Parses a datagram. Never panics.
    pub fn parse(b: &'a [u8]) -> Result<Self, DropReason> {
        let Some(&[t, r0, r1, r2]) = b.first_chunk::<4>() else {
            return Err(DropReason::Malformed);
        };
        if (r0, r1, r2) != (0, 0, 0) {
            return Err(DropReason::Malformed);
        }
        match t {
            TYPE_INITIATION => b
                .try_into()
                .map(|a| TunnelMessage::Initiation(Initiation(a)))
                .map_err(|_| DropReason::Malformed),
            TYPE_RESPONSE => b
                .try_into()
                .map(|a| TunnelMessage::Response(Response(a)))
                .map_err(|_| DropReason::Malformed),
            TYPE_COOKIE_REPLY => b
                .try_into()
                .map(|a| TunnelMessage::CookieReply(CookieReply(a)))
                .map_err(|_| DropReason::Malformed),
            TYPE_DATA => {
                if b.len() < DATA_MIN_LEN || b.len() > MAX_DATAGRAM {
                    return Err(DropReason::Malformed);
                }
                let (body, tag) = b.split_at(b.len() - 16);
                let ciphertext = body.get(DATA_HEADER_LEN..).ok_or(DropReason::Malformed)?;
                let tag: [u8; 16] = tag.try_into().map_err(|_| DropReason::Malformed)?;
                Ok(TunnelMessage::Data(Data {
                    receiver: u32_at(b, 4),
                    counter: u64::from_le_bytes(arr::<8>(b, 8)),
                    ciphertext,
                    tag,
                }))
            }
            _ => Err(DropReason::Malformed),
        }
    }
}

/// Writes a message header (type + 3 reserved zero bytes).
pub(crate) fn put_header(out: &mut [u8], t: u8) {
    if let Some(h) = out.get_mut(..4) {
        h.copy_from_slice(&[t, 0, 0, 0]);
    }
}

/// Copies `src` into `out` at `at` if it fits.
pub(crate) fn put(out: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = out.get_mut(at..at + src.len()) {
        d.copy_from_slice(src);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_garbage() {
        assert!(TunnelMessage::parse(&[]).is_err());
        assert!(TunnelMessage::parse(&[1]).is_err());
        assert!(TunnelMessage::parse(&[1, 0, 0, 0]).is_err());
        assert!(TunnelMessage::parse(&[9, 0, 0, 0]).is_err());
        let mut init = [0u8; INITIATION_LEN];
        init[0] = 1;
        assert!(matches!(
            TunnelMessage::parse(&init),
            Ok(TunnelMessage::Initiation(_))
        ));
        init[1] = 1;
        assert!(TunnelMessage::parse(&init).is_err());
        assert!(TunnelMessage::parse(&init[..147]).is_err());
        let mut big = vec![0u8; 149];
        big[0] = 1;
        assert!(TunnelMessage::parse(&big).is_err());
        let mut d = [0u8; 31];
        d[0] = 4;
        assert!(TunnelMessage::parse(&d).is_err());
        let mut d = [0u8; 32];
        d[0] = 4;
        d[8] = 5;
        match TunnelMessage::parse(&d).unwrap() {
            TunnelMessage::Data(m) => {
                assert_eq!(m.counter, 5);
                assert!(m.ciphertext.is_empty());
            }
            _ => panic!(),
        }
        let huge = vec![4u8; MAX_DATAGRAM + 1];
        assert!(TunnelMessage::parse(&huge).is_err());
        // Every prefix of every type must parse or fail, never panic.
        for t in 0..6u8 {
            let mut b = [0u8; 200];
            b[0] = t;
            for n in 0..b.len() {
                let _ = TunnelMessage::parse(&b[..n]);
            }
        }
    }
}
