//! ICMPv6 Time Exceeded quoting one of our Remote Hellos (`spec/verify.md` §3.4, §4.2.1, §9.6):
//! the parser of what the binary's raw ICMPv6 socket reads. Every byte of it comes from the
//! network (anybody can send us an ICMPv6 message), so it is bounds-checked throughout, returns a
//! typed error for anything that is not what we sent, and never panics.
//!
//! Layout (RFC 4443 §3.3): type 3, code 0, checksum, 4 unused octets, then as much of the packet
//! that ran out of hop limit as fits: its IPv6 header (RFC 8200 §3), here a UDP header (RFC 768)
//! directly behind it, and the Babel packet (RFC 8966 §4.2) holding the Remote Hello.

use std::net::Ipv6Addr;

use babel_wire::RemoteHello;

/// ICMPv6 type of Time Exceeded (RFC 4443 §3.3).
pub const ICMP6_TIME_EXCEEDED: u8 = 3;
/// Its code "hop limit exceeded in transit".
const CODE_HOP_LIMIT: u8 = 0;
/// IPv6 next header of UDP.
const NEXT_HEADER_UDP: u8 = 17;
/// ICMPv6 header (type, code, checksum) and the unused word before the quote.
const ICMP_HEADER: usize = 8;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;

/// Why an ICMPv6 message is not a Time Exceeded quoting a Remote Hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceParseError {
    /// Another ICMPv6 type or code (the socket's filter lets only type 3 through).
    #[error("not an ICMPv6 Time Exceeded in transit")]
    NotTimeExceeded,
    /// Shorter than the headers it must quote.
    #[error("truncated")]
    Truncated,
    /// The quoted packet is not IPv6 carrying UDP directly.
    #[error("the quoted packet is not IPv6/UDP")]
    NotUdp,
    /// The quoted packet went to another UDP port than the verification port: not ours.
    #[error("the quoted packet is not for the verification port")]
    NotOurs,
    /// The UDP payload quoted is not a Babel packet holding a whole Remote Hello.
    #[error("no Remote Hello quoted")]
    NoRemoteHello,
}

/// What a Time Exceeded says about the packet that ran out of hop limit.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotedRemoteHello {
    /// Its IPv6 source (ours, if we sent it).
    pub src: Ipv6Addr,
    /// Its IPv6 destination (the probe address of the prefix under test).
    pub dst: Ipv6Addr,
    /// The hop limit it arrived with at the router that dropped it.
    pub hop_limit: u8,
    /// UDP source port (which of our sockets sent it).
    pub src_port: u16,
    /// UDP destination port (`verify-port`).
    pub dst_port: u16,
    /// The Remote Hello.
    pub hello: RemoteHello,
}

/// Parses an ICMPv6 message as a raw ICMPv6 socket reads it (ICMPv6 header first, no IPv6
/// header) as a Time Exceeded quoting a Remote Hello to UDP port `port`. The checksum was
/// checked by the kernel.
pub fn parse_time_exceeded(icmp: &[u8], port: u16) -> Result<QuotedRemoteHello, TraceParseError> {
    let (&[kind, code], _) = icmp
        .split_first_chunk::<2>()
        .ok_or(TraceParseError::Truncated)?;
    if kind != ICMP6_TIME_EXCEEDED || code != CODE_HOP_LIMIT {
        return Err(TraceParseError::NotTimeExceeded);
    }
    let quoted = icmp.get(ICMP_HEADER..).ok_or(TraceParseError::Truncated)?;
    let (ip, rest) = quoted
        .split_first_chunk::<IPV6_HEADER>()
        .ok_or(TraceParseError::Truncated)?;
    let [vtf, _, _, _, _, _, next_header, hop_limit, addrs @ ..] = *ip;
    if vtf >> 4 != 6 || next_header != NEXT_HEADER_UDP {
        return Err(TraceParseError::NotUdp);
    }
    let (src, dst) = addrs.split_at(16);
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(src).map_err(|_| TraceParseError::Truncated)?);
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(dst).map_err(|_| TraceParseError::Truncated)?);
    let (udp, payload) = rest
        .split_first_chunk::<UDP_HEADER>()
        .ok_or(TraceParseError::Truncated)?;
    let [sp0, sp1, dp0, dp1, ..] = *udp;
    if u16::from_be_bytes([dp0, dp1]) != port {
        return Err(TraceParseError::NotOurs);
    }
    let hello = super::tlvs(payload)
        .and_then(|ts| {
            ts.into_iter()
                .filter(|t| t.first() == Some(&super::TLV_REMOTE_HELLO))
                .find_map(super::decode_remote_hello)
        })
        .ok_or(TraceParseError::NoRemoteHello)?;
    Ok(QuotedRemoteHello {
        src,
        dst,
        hop_limit,
        src_port: u16::from_be_bytes([sp0, sp1]),
        dst_port: u16::from_be_bytes([dp0, dp1]),
        hello,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use babel_wire::{Message, Packet, Prefix, RouterId};
    use proptest::prelude::*;

    fn hello() -> RemoteHello {
        RemoteHello {
            seqno: 40,
            interval: 25,
            origin: RouterId([1; 8]),
            via: RouterId([2; 8]),
            prefix: "fd77::4/128".parse::<Prefix>().unwrap(),
            timestamp: Some(123_456),
        }
    }

    /// The Time Exceeded a Linux router sends for our hop-limited Remote Hello.
    fn time_exceeded(hello: &RemoteHello, hop_limit: u8) -> Vec<u8> {
        let babel = babel_wire::encode_packet(
            &Packet {
                messages: vec![Message::RemoteHello(hello.clone())],
                macs: Vec::new(),
            },
            babel_wire::Flavour::Standard,
        )
        .unwrap();
        let mut m = vec![3, 0, 0xab, 0xcd, 0, 0, 0, 0];
        let plen = u16::try_from(UDP_HEADER + babel.len()).unwrap();
        m.extend_from_slice(&[0x60, 0, 0, 0]);
        m.extend_from_slice(&plen.to_be_bytes());
        m.extend_from_slice(&[17, hop_limit]);
        m.extend_from_slice(&"fd77::1".parse::<Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&"fd77::4".parse::<Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&40000u16.to_be_bytes());
        m.extend_from_slice(&6699u16.to_be_bytes());
        m.extend_from_slice(&plen.to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&babel);
        m
    }

    #[test]
    fn a_time_exceeded_quoting_a_remote_hello_parses() {
        let q = parse_time_exceeded(&time_exceeded(&hello(), 1), 6699).unwrap();
        assert_eq!(q.hello, hello());
        assert_eq!(q.hop_limit, 1);
        assert_eq!(q.src, "fd77::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(q.dst, "fd77::4".parse::<Ipv6Addr>().unwrap());
        assert_eq!((q.src_port, q.dst_port), (40000, 6699));
    }

    #[test]
    fn other_messages_and_truncated_quotes_are_refused() {
        let good = time_exceeded(&hello(), 1);
        // Every truncation of a good message is refused, never a panic.
        for n in 0..good.len() {
            assert!(parse_time_exceeded(&good[..n], 6699).is_err(), "{n}");
        }
        let mut other = good.clone();
        other[0] = 1; // Destination Unreachable
        assert_eq!(
            parse_time_exceeded(&other, 6699),
            Err(TraceParseError::NotTimeExceeded)
        );
        let mut reassembly = good.clone();
        reassembly[1] = 1; // fragment reassembly time exceeded
        assert_eq!(
            parse_time_exceeded(&reassembly, 6699),
            Err(TraceParseError::NotTimeExceeded)
        );
        let mut tcp = good.clone();
        tcp[ICMP_HEADER + 6] = 6;
        assert_eq!(
            parse_time_exceeded(&tcp, 6699),
            Err(TraceParseError::NotUdp)
        );
        let mut v4 = good.clone();
        v4[ICMP_HEADER] = 0x45;
        assert_eq!(parse_time_exceeded(&v4, 6699), Err(TraceParseError::NotUdp));
        assert_eq!(
            parse_time_exceeded(&good, 33434),
            Err(TraceParseError::NotOurs)
        );
        let mut not_babel = good;
        not_babel[ICMP_HEADER + IPV6_HEADER + UDP_HEADER] = 43;
        assert_eq!(
            parse_time_exceeded(&not_babel, 6699),
            Err(TraceParseError::NoRemoteHello)
        );
    }

    proptest! {
        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_time_exceeded(&b, 6699);
        }

        /// A good message with arbitrary bytes flipped never panics either (and the quoted
        /// Remote Hello, when it still parses, is whatever the bytes say).
        #[test]
        fn mutated_messages_never_panic(
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..8),
            cut in 0usize..200,
        ) {
            let mut m = time_exceeded(&hello(), 1);
            for (i, b) in flips {
                if let Some(x) = m.get_mut(i) {
                    *x = b;
                }
            }
            m.truncate(cut.max(1));
            let _ = parse_time_exceeded(&m, 6699);
        }
    }
}
