//! Helpers shared by the codec's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

/// Bytes of a packet whose body is `body_hex` and trailer `trailer_hex` (whitespace ignored), with
/// the header's body length computed.
pub fn packet(body_hex: &str, trailer_hex: &str) -> Vec<u8> {
    let body = hex::decode(body_hex.split_whitespace().collect::<String>()).unwrap();
    let trailer = hex::decode(trailer_hex.split_whitespace().collect::<String>()).unwrap();
    let mut p = vec![42, 2];
    p.extend_from_slice(&(body.len() as u16).to_be_bytes());
    p.extend_from_slice(&body);
    p.extend_from_slice(&trailer);
    p
}
