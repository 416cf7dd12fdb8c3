//! RFC 8967 MACs, pure: the pseudo-header, HMAC-SHA256 and keyed BLAKE2s-128, signing a packet
//! (a PC TLV at the end of the body, MAC TLVs in the trailer) and checking one. No state, no
//! clock, no randomness: the Index, the PC and the pseudo-header's addresses come from the caller
//! (`babel-core`'s `auth` module keeps them). `spec/auth.md` describes the bytes.
//!
//! Computed as babeld 1.12 computes them (`hmac.c`), which is RFC 8967 §4.1 with one choice of
//! its own: both port fields of the pseudo-header carry the *configured protocol port*, not the
//! ports the datagram actually used (they are the same unless a peer sends from another port).

use std::fmt;
use std::net::IpAddr;

use blake2::Blake2sMac;
use blake2::digest::consts::U16;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{HEADER_LEN, tlv};

/// Longest MAC we produce (HMAC-SHA256).
pub const MAX_MAC_LEN: usize = 32;
/// Octets of the Index we send in PC TLVs (babeld: 8).
pub const INDEX_LEN: usize = 8;
/// Octets of a PC TLV with an [`INDEX_LEN`]-octet Index: type, length, PC, Index.
pub const PC_TLV_LEN: usize = 2 + 4 + INDEX_LEN;
/// Octets of the pseudo-header (RFC 8967 §4.1).
pub const PSEUDO_HEADER_LEN: usize = 36;

/// A MAC algorithm of RFC 8967 §4.1 (babeld's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum MacAlgorithm {
    /// HMAC-SHA256 (RFC 2104 with SHA-256), 32-octet MAC; keys of 1 to 64 octets (babeld pads
    /// shorter keys with zeros to 64, which is what HMAC does anyway).
    HmacSha256,
    /// Keyed BLAKE2s with a 16-octet output (RFC 7693), keys of 1 to 32 octets.
    Blake2s128,
}

impl MacAlgorithm {
    /// Length of the MAC this algorithm produces.
    pub fn mac_len(self) -> usize {
        match self {
            MacAlgorithm::HmacSha256 => 32,
            MacAlgorithm::Blake2s128 => 16,
        }
    }

    /// Longest key babeld accepts for it.
    pub fn max_key_len(self) -> usize {
        match self {
            MacAlgorithm::HmacSha256 => 64,
            MacAlgorithm::Blake2s128 => 32,
        }
    }
}

impl fmt::Display for MacAlgorithm {
    /// babeld's name (`hmac-sha256`, `blake2s128`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MacAlgorithm::HmacSha256 => "hmac-sha256",
            MacAlgorithm::Blake2s128 => "blake2s128",
        })
    }
}

/// A key that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {algorithm} key must have 1 to {max} octets, got {len}")]
pub struct KeyLengthError {
    /// The algorithm.
    pub algorithm: MacAlgorithm,
    /// Its longest key.
    pub max: usize,
    /// The length given.
    pub len: usize,
}

/// A shared secret and its algorithm. `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey {
    algorithm: MacAlgorithm,
    secret: Vec<u8>,
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MacKey")
            .field("algorithm", &self.algorithm)
            .field("len", &self.secret.len())
            .finish_non_exhaustive()
    }
}

impl MacKey {
    /// A key, checked against babeld's lengths (1..=64 for HMAC-SHA256, 1..=32 for BLAKE2s).
    pub fn new(algorithm: MacAlgorithm, secret: &[u8]) -> Result<MacKey, KeyLengthError> {
        let max = algorithm.max_key_len();
        if secret.is_empty() || secret.len() > max {
            return Err(KeyLengthError {
                algorithm,
                max,
                len: secret.len(),
            });
        }
        Ok(MacKey {
            algorithm,
            secret: secret.to_vec(),
        })
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> MacAlgorithm {
        self.algorithm
    }

    /// RFC 8967 §4.1: the MAC of the pseudo-header followed by `covered` (the packet header and
    /// body, without the trailer). Returns the MAC in a buffer and its length.
    pub fn compute(&self, pseudo: &PseudoHeader, covered: &[u8]) -> ([u8; MAX_MAC_LEN], usize) {
        let mut out = [0u8; MAX_MAC_LEN];
        match self.algorithm {
            MacAlgorithm::HmacSha256 => {
                // new_from_slice accepts any length; ours are 1..=64 so no key hashing happens.
                if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.secret) {
                    m.update(&pseudo.0);
                    m.update(covered);
                    out.copy_from_slice(&m.finalize().into_bytes());
                }
                (out, 32)
            }
            MacAlgorithm::Blake2s128 => {
                if let Ok(mut m) = Blake2sMac::<U16>::new_from_slice(&self.secret) {
                    m.update(&pseudo.0);
                    m.update(covered);
                    let mac = m.finalize().into_bytes();
                    if let Some(dst) = out.get_mut(..16) {
                        dst.copy_from_slice(&mac);
                    }
                }
                (out, 16)
            }
        }
    }

    /// True if `mac` is this key's MAC of the packet (constant-time comparison).
    pub fn verify(&self, pseudo: &PseudoHeader, covered: &[u8], mac: &[u8]) -> bool {
        let (ours, len) = self.compute(pseudo, covered);
        let ours = ours.get(..len).unwrap_or_default();
        ours.len() == mac.len() && bool::from(ours.ct_eq(mac))
    }
}

/// JSON form `{"algorithm": "hmac-sha256", "secret": "<hex>"}`: a record of engine inputs must
/// carry the key to replay authenticated packets, so such records are secrets too.
#[cfg(feature = "serde")]
impl serde::Serialize for MacKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("MacKey", 2)?;
        st.serialize_field("algorithm", &self.algorithm)?;
        let hex: String = self.secret.iter().map(|b| format!("{b:02x}")).collect();
        st.serialize_field("secret", &hex)?;
        st.end()
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for MacKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            algorithm: MacAlgorithm,
            secret: String,
        }
        let r = Raw::deserialize(d)?;
        let secret = crate::types::parse_hex(&r.secret).map_err(serde::de::Error::custom)?;
        MacKey::new(r.algorithm, &secret).map_err(serde::de::Error::custom)
    }
}

/// The RFC 8967 §4.1 pseudo-header: source address (16), source port (2), destination address
/// (16), destination port (2); IPv4 addresses as IPv4-mapped IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PseudoHeader(pub [u8; PSEUDO_HEADER_LEN]);

impl PseudoHeader {
    /// The pseudo-header of a datagram from `src`:`src_port` to `dst`:`dst_port`.
    pub fn new(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> PseudoHeader {
        let mut b = [0u8; PSEUDO_HEADER_LEN];
        let (s, d) = (v6_octets(src), v6_octets(dst));
        for (slot, byte) in b.iter_mut().zip(
            s.iter()
                .chain(&src_port.to_be_bytes())
                .chain(&d)
                .chain(&dst_port.to_be_bytes()),
        ) {
            *slot = *byte;
        }
        PseudoHeader(b)
    }

    /// babeld's pseudo-header: the protocol port for both ports.
    pub fn babeld(src: IpAddr, dst: IpAddr, port: u16) -> PseudoHeader {
        PseudoHeader::new(src, port, dst, port)
    }
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Why a packet could not be signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Not a packet with a whole body and nothing after it.
    #[error("not an unsigned Babel packet")]
    NotAPacket,
    /// The PC TLV would make the body longer than 65535 octets.
    #[error("body too long for a PC TLV")]
    TooLong,
    /// Index longer than 32 octets (RFC 8967 §4.2).
    #[error("PC index longer than 32 octets")]
    IndexTooLong,
}

/// Octets a signed packet needs beyond its messages: the PC TLV (in the body) and one MAC TLV
/// per key (the trailer). Reserve it when packing messages so signed packets fit the MTU.
pub fn overhead(keys: &[MacKey]) -> usize {
    PC_TLV_LEN
        + keys
            .iter()
            .map(|k| 2 + k.algorithm.mac_len())
            .sum::<usize>()
}

/// RFC 8967 §4.2: signs an unsigned packet (header and body, no trailer, as
/// [`crate::PacketBuilder::finish`] makes it). A PC TLV with `pc` and `index` is appended to the
/// body, the body length is rewritten, and one MAC TLV per key is appended as the trailer, each
/// computed over `pseudo` and the new header and body.
pub fn sign(
    unsigned: &[u8],
    pc: u32,
    index: &[u8],
    keys: &[MacKey],
    pseudo: &PseudoHeader,
) -> Result<Vec<u8>, SignError> {
    let body_len = match unsigned {
        [crate::MAGIC, crate::VERSION, hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => return Err(SignError::NotAPacket),
    };
    if unsigned.len() != HEADER_LEN + body_len {
        return Err(SignError::NotAPacket);
    }
    if index.len() > 32 {
        return Err(SignError::IndexTooLong);
    }
    let pc_len = 6 + index.len();
    let new_body = u16::try_from(body_len + pc_len).map_err(|_| SignError::TooLong)?;
    let mut out = Vec::with_capacity(unsigned.len() + pc_len + overhead(keys));
    out.extend_from_slice(unsigned);
    if let Some(len) = out.get_mut(2..4) {
        len.copy_from_slice(&new_body.to_be_bytes());
    }
    out.push(tlv::PC);
    out.push(u8::try_from(4 + index.len()).map_err(|_| SignError::IndexTooLong)?);
    out.extend_from_slice(&pc.to_be_bytes());
    out.extend_from_slice(index);
    let covered_len = out.len();
    for k in keys {
        let (mac, len) = k.compute(pseudo, out.get(..covered_len).unwrap_or_default());
        out.push(tlv::MAC);
        out.push(u8::try_from(len).unwrap_or(u8::MAX));
        out.extend_from_slice(mac.get(..len).unwrap_or_default());
    }
    Ok(out)
}

/// Result of checking a packet's MACs (RFC 8967 §4.3, first step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacCheck {
    /// Some MAC TLV of the trailer is the MAC of one of the keys.
    Valid,
    /// The trailer has no MAC TLV.
    Missing,
    /// It has MAC TLVs but none matches any key.
    Invalid,
}

/// RFC 8967 §4.3: a packet is accepted if any MAC TLV of its trailer (`macs`, as
/// [`crate::Decoded`] lists them) matches the MAC computed with any of `keys` over `pseudo` and
/// `covered` (`&datagram[..body_end]`).
pub fn verify(
    covered: &[u8],
    macs: &[Vec<u8>],
    keys: &[MacKey],
    pseudo: &PseudoHeader,
) -> MacCheck {
    if macs.is_empty() {
        return MacCheck::Missing;
    }
    // At most one computation per key, whatever the number of MAC TLVs.
    for k in keys {
        let (ours, len) = k.compute(pseudo, covered);
        let ours = ours.get(..len).unwrap_or_default();
        if macs
            .iter()
            .any(|m| m.len() == ours.len() && bool::from(ours.ct_eq(m)))
        {
            return MacCheck::Valid;
        }
    }
    MacCheck::Invalid
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::{DecodeOptions, Message, decode};

    fn ll(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// babeld `tests/hmac_test.c`, vector 1: pseudo-header + header + 34-octet body (wildcard
    /// retraction, Hello, PC), HMAC-SHA256 with the 64-octet key 36 10 11 12 c0 ff ee 00....
    #[test]
    fn babeld_hmac_test_vector_1_hmac_sha256() {
        let src: [u8; 16] = [
            254, 128, 0, 0, 0, 0, 0, 0, 2, 22, 62, 255, 254, 197, 225, 239,
        ];
        let dst: [u8; 16] = [255, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 6];
        let header = [42u8, 2, 0, 34];
        let body = [
            8u8, 10, 0, 0, 0, 0, 255, 255, 105, 131, 255, 255, 4, 6, 0, 0, 138, 241, 0, 10, 17, 12,
            0, 0, 0, 13, 111, 180, 121, 202, 112, 51, 238, 237,
        ];
        let mut key = [0u8; 64];
        key[..7].copy_from_slice(&[54, 16, 17, 18, 192, 255, 238]);
        let expected = [
            12u8, 124, 238, 71, 58, 55, 173, 152, 18, 174, 138, 113, 75, 180, 31, 220, 144, 195,
            126, 213, 130, 199, 97, 20, 69, 93, 210, 180, 41, 147, 141, 49,
        ];
        let ph = PseudoHeader::babeld(IpAddr::from(src), IpAddr::from(dst), crate::PORT);
        let mut covered = header.to_vec();
        covered.extend_from_slice(&body);
        let k = MacKey::new(MacAlgorithm::HmacSha256, &key).unwrap();
        let (mac, len) = k.compute(&ph, &covered);
        assert_eq!(&mac[..len], &expected);
        // babeld pads a short key with zeros to 64 octets: the 7-octet key gives the same MAC.
        let short = MacKey::new(MacAlgorithm::HmacSha256, &key[..7]).unwrap();
        assert_eq!(&short.compute(&ph, &covered).0[..32], &expected);
        // The body decodes as the reference describes it.
        let d = decode(&covered, &DecodeOptions::default()).unwrap();
        assert!(matches!(
            d.packet.messages.last(),
            Some(Message::Pc { pc: 13, index }) if index.len() == 8
        ));
    }

    /// babeld `tests/hmac_test.c`, vector 2: Hello + PC from fe80::216:3eff:fe00:0, BLAKE2s-128
    /// with a 32-octet key (the test's buffer is 32 octets; the MAC is its first 16).
    #[test]
    fn babeld_hmac_test_vector_2_blake2s128() {
        let src: [u8; 16] = [254, 128, 0, 0, 0, 0, 0, 0, 2, 22, 62, 255, 254, 0, 0, 0];
        let dst: [u8; 16] = [255, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 6];
        let mut covered = vec![42u8, 2, 0, 22];
        covered.extend_from_slice(&[
            4, 6, 0, 0, 47, 84, 1, 144, 17, 12, 0, 0, 0, 14, 57, 72, 181, 138, 248, 108, 171, 133,
        ]);
        let key = [
            184u8, 17, 96, 231, 142, 203, 75, 118, 42, 213, 55, 90, 176, 66, 15, 104, 19, 214, 60,
            175, 10, 203, 125, 180, 142, 232, 123, 168, 191, 50, 173, 44,
        ];
        let expected = [
            237u8, 164, 28, 31, 153, 50, 126, 166, 67, 195, 21, 19, 123, 77, 57, 46,
        ];
        let ph = PseudoHeader::babeld(IpAddr::from(src), IpAddr::from(dst), 6696);
        let k = MacKey::new(MacAlgorithm::Blake2s128, &key).unwrap();
        let (mac, len) = k.compute(&ph, &covered);
        assert_eq!(len, 16);
        assert_eq!(&mac[..16], &expected);
    }

    #[test]
    fn pseudo_header_layout_and_v4_mapping() {
        let ph = PseudoHeader::new(ll("fe80::1"), 1, ll("ff02::1:6"), 0x1a28);
        assert_eq!(&ph.0[..2], &[0xfe, 0x80]);
        assert_eq!(ph.0[15], 1);
        assert_eq!(&ph.0[16..18], &[0, 1]);
        assert_eq!(&ph.0[18..20], &[0xff, 0x02]);
        assert_eq!(&ph.0[34..36], &[0x1a, 0x28]);
        let v4 = PseudoHeader::new(ll("192.0.2.1"), 6696, ll("224.0.0.111"), 6696);
        assert_eq!(
            &v4.0[..16],
            &ll("::ffff:192.0.2.1")
                .to_string()
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(&v4.0[10..16], &[0xff, 0xff, 192, 0, 2, 1]);
    }

    fn unsigned() -> Vec<u8> {
        vec![42, 2, 0, 8, 4, 6, 0, 0, 0, 7, 1, 144]
    }

    #[test]
    fn sign_appends_pc_to_body_and_macs_to_trailer() {
        let keys = [
            MacKey::new(MacAlgorithm::HmacSha256, b"secret").unwrap(),
            MacKey::new(MacAlgorithm::Blake2s128, b"other").unwrap(),
        ];
        let ph = PseudoHeader::babeld(ll("fe80::1"), ll("ff02::1:6"), 6696);
        let index = [1, 2, 3, 4, 5, 6, 7, 8];
        let signed = sign(&unsigned(), 42, &index, &keys, &ph).unwrap();
        assert_eq!(signed.len(), unsigned().len() + overhead(&keys));
        let d = decode(&signed, &DecodeOptions::default()).unwrap();
        assert_eq!(d.body_end, 12 + PC_TLV_LEN);
        assert_eq!(
            d.packet.messages.last(),
            Some(&Message::Pc {
                pc: 42,
                index: index.to_vec()
            })
        );
        assert_eq!(d.packet.macs.len(), 2);
        assert_eq!(d.packet.macs[0].len(), 32);
        assert_eq!(d.packet.macs[1].len(), 16);
        let covered = &signed[..d.body_end];
        assert_eq!(verify(covered, &d.packet.macs, &keys, &ph), MacCheck::Valid);
        // Either key alone accepts (any MAC, any key).
        assert_eq!(
            verify(covered, &d.packet.macs, &keys[1..], &ph),
            MacCheck::Valid
        );
        // Another destination (pseudo-header) or another key does not.
        let other = PseudoHeader::babeld(ll("fe80::1"), ll("fe80::2"), 6696);
        assert_eq!(
            verify(covered, &d.packet.macs, &keys, &other),
            MacCheck::Invalid
        );
        let wrong = [MacKey::new(MacAlgorithm::HmacSha256, b"secreT").unwrap()];
        assert_eq!(
            verify(covered, &d.packet.macs, &wrong, &ph),
            MacCheck::Invalid
        );
        assert_eq!(verify(covered, &[], &keys, &ph), MacCheck::Missing);
        // Every altered byte of the covered part is caught.
        for i in 0..covered.len() {
            let mut bad = covered.to_vec();
            bad[i] ^= 0x01;
            assert_eq!(
                verify(&bad, &d.packet.macs, &keys, &ph),
                MacCheck::Invalid,
                "byte {i}"
            );
        }
    }

    #[test]
    fn sign_refuses_non_packets_and_bad_indexes() {
        let ph = PseudoHeader::babeld(ll("fe80::1"), ll("ff02::1:6"), 6696);
        let k = [MacKey::new(MacAlgorithm::Blake2s128, b"k").unwrap()];
        assert_eq!(sign(&[1, 2], 0, &[], &k, &ph), Err(SignError::NotAPacket));
        let mut trailing = unsigned();
        trailing.push(0);
        assert_eq!(sign(&trailing, 0, &[], &k, &ph), Err(SignError::NotAPacket));
        assert_eq!(
            sign(&unsigned(), 0, &[0; 33], &k, &ph),
            Err(SignError::IndexTooLong)
        );
    }

    #[test]
    fn key_lengths_follow_babeld() {
        assert!(MacKey::new(MacAlgorithm::HmacSha256, &[0; 64]).is_ok());
        assert!(MacKey::new(MacAlgorithm::HmacSha256, &[0; 65]).is_err());
        assert!(MacKey::new(MacAlgorithm::Blake2s128, &[0; 32]).is_ok());
        assert!(MacKey::new(MacAlgorithm::Blake2s128, &[0; 33]).is_err());
        assert!(MacKey::new(MacAlgorithm::Blake2s128, &[]).is_err());
        let k = MacKey::new(MacAlgorithm::HmacSha256, b"topsecret").unwrap();
        assert!(!format!("{k:?}").contains("topsecret"));
    }
}
