//! Packet decoding (RFC 8966 §4.2-§4.7) with the parser state of §4.5.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16, be_u32};

use crate::error::{PacketError, TlvError, TlvErrorKind};
use crate::types::{
    Flavour, Hello, Ihu, IhuTimestamp, Message, Packet, Prefix, RemoteHello, RemoteIhu,
    RouteRequest, RouterId, SeqnoRequest, Update,
};
use crate::{HEADER_LEN, MAGIC, VERSION, ae, subtlv, tlv};

/// Most channels accepted in a Diversity sub-TLV.
pub const MAX_DIVERSITY: usize = 32;

/// How to read a packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The Update layout spoken on the interface the packet came from.
    pub flavour: Flavour,
}

/// A decoded packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Messages and MACs.
    pub packet: Packet,
    /// End of the header and body: a MAC (RFC 8967 §4.1) covers `&datagram[..body_end]`.
    pub body_end: usize,
    /// TLVs that were ignored, with where and why.
    pub errors: Vec<TlvError>,
}

/// Decodes one UDP payload. Errors in single TLVs do not fail the packet: they are listed in
/// [`Decoded::errors`] and the TLV is skipped (RFC 8966 §4.3, §4.4).
pub fn decode(datagram: &[u8], opts: &DecodeOptions) -> Result<Decoded, PacketError> {
    let (magic, version, body_len) = match datagram {
        [m, v, hi, lo, ..] => (*m, *v, usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => return Err(PacketError::TooShort(datagram.len())),
    };
    if magic != MAGIC {
        return Err(PacketError::BadMagic(magic));
    }
    if version != VERSION {
        return Err(PacketError::BadVersion(version));
    }
    let rest = datagram.get(HEADER_LEN..).unwrap_or_default();
    if body_len > rest.len() {
        return Err(PacketError::BodyTooLong {
            declared: body_len,
            available: rest.len(),
        });
    }
    let (body, trailer) = rest.split_at(body_len);
    let mut out = Decoded {
        body_end: HEADER_LEN + body_len,
        ..Decoded::default()
    };
    let mut state = ParserState::default();
    for item in Tlvs::new(body, HEADER_LEN) {
        match item {
            Ok(raw) => match state.message(&raw, opts.flavour) {
                Ok(Some(m)) => out.packet.messages.push(m),
                Ok(None) => {}
                Err(kind) => out.errors.push(raw.error(kind)),
            },
            Err(e) => out.errors.push(e),
        }
    }
    for item in Tlvs::new(trailer, out.body_end) {
        match item {
            Ok(raw) => match raw.ty {
                tlv::PAD1 | tlv::PADN => {}
                tlv::MAC => out.packet.macs.push(raw.body.to_vec()),
                _ => out.errors.push(raw.error(TlvErrorKind::Misplaced)),
            },
            Err(e) => out.errors.push(e),
        }
    }
    Ok(out)
}

/// One TLV as framed on the wire.
struct RawTlv<'a> {
    offset: usize,
    ty: u8,
    body: &'a [u8],
}

impl RawTlv<'_> {
    fn error(&self, kind: TlvErrorKind) -> TlvError {
        TlvError {
            offset: self.offset,
            tlv_type: self.ty,
            kind,
        }
    }
}

/// Iterator over the TLVs of a body or trailer (RFC 8966 §4.3); stops after a truncated TLV.
struct Tlvs<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Tlvs<'a> {
    fn new(bytes: &'a [u8], offset: usize) -> Self {
        Tlvs {
            rest: bytes,
            offset,
        }
    }
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Result<RawTlv<'a>, TlvError>;
    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.offset;
        match self.rest {
            [] => None,
            [tlv::PAD1, rest @ ..] => {
                self.rest = rest;
                self.offset += 1;
                Some(Ok(RawTlv {
                    offset,
                    ty: tlv::PAD1,
                    body: &[],
                }))
            }
            [ty, len, rest @ ..] if usize::from(*len) <= rest.len() => {
                let (body, rest) = rest.split_at(usize::from(*len));
                self.rest = rest;
                self.offset += 2 + body.len();
                Some(Ok(RawTlv {
                    offset,
                    ty: *ty,
                    body,
                }))
            }
            [ty, rest @ ..] => {
                let len = rest.first().map_or(0, |l| usize::from(*l));
                let available = rest.len().saturating_sub(1);
                self.rest = &[];
                Some(Err(TlvError {
                    offset,
                    tlv_type: *ty,
                    kind: TlvErrorKind::Truncated { len, available },
                }))
            }
        }
    }
}

/// One sub-TLV (RFC 8966 §4.4).
struct SubTlv<'a> {
    ty: u8,
    body: &'a [u8],
}

/// Splits the sub-TLV area after a TLV's fixed part; padding is dropped.
fn sub_tlvs(mut bytes: &[u8]) -> Result<Vec<SubTlv<'_>>, TlvErrorKind> {
    let mut out = Vec::new();
    loop {
        match bytes {
            [] => return Ok(out),
            [subtlv::PAD1, rest @ ..] => bytes = rest,
            [ty, len, rest @ ..] if usize::from(*len) <= rest.len() => {
                let (body, rest) = rest.split_at(usize::from(*len));
                if *ty != subtlv::PADN {
                    out.push(SubTlv { ty: *ty, body });
                }
                bytes = rest;
            }
            [ty, ..] => return Err(TlvErrorKind::SubTlvTruncated { subtype: *ty }),
        }
    }
}

/// The per-packet parser state of RFC 8966 §4.5.
#[derive(Default)]
struct ParserState {
    /// Default prefixes for AE 1, AE 2 and AE 4 (RFC 9229 §4: AE 4 has its own).
    default_v4: Option<[u8; 16]>,
    default_v6: Option<[u8; 16]>,
    default_v4_via_v6: Option<[u8; 16]>,
    router_id: Option<RouterId>,
    next_hop_v4: Option<IpAddr>,
    next_hop_v6: Option<IpAddr>,
}

type Res<'a, T> = IResult<&'a [u8], T, nom::error::Error<&'a [u8]>>;

/// Reads a fixed part with nom, mapping "not enough bytes" to [`TlvErrorKind::TooShort`].
fn fixed<'a, T>(
    body: &'a [u8],
    min: usize,
    mut p: impl Parser<&'a [u8], Output = T, Error = nom::error::Error<&'a [u8]>>,
) -> Result<(&'a [u8], T), TlvErrorKind> {
    let r: Res<'a, T> = p.parse(body);
    r.map_err(|_| TlvErrorKind::TooShort {
        len: body.len(),
        min,
    })
}

fn router_id(i: &[u8]) -> Res<'_, RouterId> {
    let (i, b) = take(8usize).parse(i)?;
    let mut id = [0u8; 8];
    id.copy_from_slice(b);
    Ok((i, RouterId(id)))
}

/// Bytes an address of this AE occupies in IHU and Next Hop (no compression there).
fn full_address(ae_: u8, bytes: &[u8]) -> Result<(Option<IpAddr>, usize), TlvErrorKind> {
    let need = match ae_ {
        ae::WILDCARD => return Ok((None, 0)),
        ae::IPV4 => 4,
        ae::IPV6 => 16,
        ae::LINK_LOCAL => 8,
        ae::V4_VIA_V6 => return Err(TlvErrorKind::BadAe(ae_)),
        other => return Err(TlvErrorKind::UnknownAe(other)),
    };
    let b = bytes.get(..need).ok_or(TlvErrorKind::AddressTruncated {
        needed: need,
        available: bytes.len(),
    })?;
    let addr = match (ae_, b) {
        (ae::IPV4, [a, b, c, d]) => IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
        (ae::IPV6, _) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => {
            let mut o = [0u8; 16];
            o[0] = 0xfe;
            o[1] = 0x80;
            o[8..].copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(o))
        }
    };
    Ok((Some(addr), need))
}

/// Octets of a full address for a prefix AE, and whether the AE is IPv4.
fn ae_width(ae_: u8) -> Result<(usize, bool), TlvErrorKind> {
    match ae_ {
        ae::IPV4 | ae::V4_VIA_V6 => Ok((4, true)),
        ae::IPV6 | ae::LINK_LOCAL => Ok((16, false)),
        other => Err(TlvErrorKind::UnknownAe(other)),
    }
}

/// Builds a prefix from `octets` (already assembled to full width) and a length.
fn make_prefix(octets: [u8; 16], is_v4: bool, plen: u8, ae_: u8) -> Result<Prefix, TlvErrorKind> {
    let addr = if is_v4 {
        IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    Prefix::new(addr, plen).map_err(|_| TlvErrorKind::BadPlen { ae: ae_, plen })
}

/// Reads a prefix with no compression (Route Request, Seqno Request, Source Prefix, ours):
/// ⌈plen/8⌉ octets, or for AE 3 the octets after the implied fe80::/64. Returns bytes used.
fn plain_prefix(ae_: u8, plen: u8, bytes: &[u8]) -> Result<(Prefix, usize), TlvErrorKind> {
    let (width, is_v4) = ae_width(ae_)?;
    if usize::from(plen) > width * 8 {
        return Err(TlvErrorKind::BadPlen { ae: ae_, plen });
    }
    let pb = usize::from(plen).div_ceil(8);
    let mut octets = [0u8; 16];
    let (start, carried) = if ae_ == ae::LINK_LOCAL {
        octets[0] = 0xfe;
        octets[1] = 0x80;
        (8, pb.saturating_sub(8))
    } else {
        (0, pb)
    };
    let src = bytes.get(..carried).ok_or(TlvErrorKind::AddressTruncated {
        needed: carried,
        available: bytes.len(),
    })?;
    if let Some(dst) = octets.get_mut(start..start + carried) {
        dst.copy_from_slice(src);
    }
    Ok((make_prefix(octets, is_v4, plen, ae_)?, carried))
}

/// Reads a Source Prefix sub-TLV body (RFC 9079 §7.1) for a TLV of address encoding `ae_`.
fn source_prefix(ae_: u8, body: &[u8]) -> Result<Prefix, TlvErrorKind> {
    let bad = TlvErrorKind::BadSubTlv {
        subtype: subtlv::SOURCE_PREFIX,
        len: body.len(),
    };
    let (plen, rest) = body.split_first().ok_or(bad.clone())?;
    // Source plen 0 is the ordinary route and must not be sent (RFC 9079 §7.1).
    if *plen == 0 || ae_ == ae::WILDCARD {
        return Err(bad);
    }
    // The source prefix uses the TLV's family, never the link-local shorthand.
    let src_ae = if ae_ == ae::LINK_LOCAL { ae::IPV6 } else { ae_ };
    let (p, used) = plain_prefix(src_ae, *plen, rest).map_err(|_| bad.clone())?;
    if used != rest.len() {
        return Err(bad);
    }
    Ok(p)
}

fn u32_body(s: &SubTlv<'_>) -> Result<u32, TlvErrorKind> {
    match s.body {
        [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(TlvErrorKind::BadSubTlv {
            subtype: s.ty,
            len: s.body.len(),
        }),
    }
}

/// The sub-TLVs understood in Updates, Route Requests and Seqno Requests.
#[derive(Default)]
struct RouteSubTlvs {
    src_prefix: Option<Prefix>,
    price: Option<u32>,
    path_rtt: Option<u32>,
    diversity: Option<Vec<u8>>,
}

/// Interprets sub-TLVs of prefix-carrying TLVs. `update` enables the Update-only ones.
fn route_sub_tlvs(
    ae_: u8,
    area: &[u8],
    update: bool,
    flavour: Flavour,
) -> Result<RouteSubTlvs, TlvErrorKind> {
    let mut out = RouteSubTlvs::default();
    for s in sub_tlvs(area)? {
        match (s.ty, update, flavour) {
            (subtlv::SOURCE_PREFIX, _, _) => {
                if out.src_prefix.is_some() {
                    return Err(TlvErrorKind::BadSourcePrefix);
                }
                out.src_prefix = Some(source_prefix(ae_, s.body)?);
            }
            (subtlv::DIVERSITY, true, _) => {
                // Far more channels than any radio has; the bound keeps a re-encoded TLV
                // under 255 octets whatever else it carries.
                if s.body.len() > MAX_DIVERSITY {
                    return Err(TlvErrorKind::BadSubTlv {
                        subtype: s.ty,
                        len: s.body.len(),
                    });
                }
                out.diversity = Some(s.body.to_vec())
            }
            (subtlv::PRICE, true, Flavour::Standard) => out.price = Some(u32_body(&s)?),
            (subtlv::PATH_RTT, true, Flavour::Standard)
            | (subtlv::ALTHEA_PATH_RTT, true, Flavour::Althea) => {
                out.path_rtt = Some(u32_body(&s)?)
            }
            (t, _, _) if t & subtlv::MANDATORY_BIT != 0 => {
                return Err(TlvErrorKind::UnknownMandatorySubTlv(t));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Interprets the Timestamp sub-TLV (RFC 9616 §3) of a Hello-like or IHU-like TLV: 4 or 8
/// octets. Unknown non-mandatory sub-TLVs are skipped; unknown mandatory ones void the TLV.
fn timestamp_sub_tlv(area: &[u8], want: usize) -> Result<Option<&[u8]>, TlvErrorKind> {
    let mut ts = None;
    for s in sub_tlvs(area)? {
        match s.ty {
            subtlv::TIMESTAMP if s.body.len() == want => ts = Some(s.body),
            subtlv::TIMESTAMP => {
                return Err(TlvErrorKind::BadSubTlv {
                    subtype: s.ty,
                    len: s.body.len(),
                });
            }
            t if t & subtlv::MANDATORY_BIT != 0 => {
                return Err(TlvErrorKind::UnknownMandatorySubTlv(t));
            }
            _ => {}
        }
    }
    Ok(ts)
}

fn be32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

fn ihu_timestamp(b: Option<&[u8]>) -> Option<IhuTimestamp> {
    b.map(|b| IhuTimestamp {
        origin: be32(b),
        receive: be32(b.get(4..).unwrap_or_default()),
    })
}

impl ParserState {
    /// Turns one TLV into a message, updating the parser state. `Ok(None)` for TLVs that only
    /// carry state (Router-Id, Next Hop).
    fn message(
        &mut self,
        raw: &RawTlv<'_>,
        flavour: Flavour,
    ) -> Result<Option<Message>, TlvErrorKind> {
        let b = raw.body;
        let m = match raw.ty {
            tlv::PAD1 => Message::Pad1,
            tlv::PADN => Message::PadN {
                len: u8::try_from(b.len()).unwrap_or(u8::MAX),
            },
            tlv::ACK_REQ => {
                let (_, (_, opaque, interval)) = fixed(b, 6, (be_u16, be_u16, be_u16))?;
                Message::AckReq { opaque, interval }
            }
            tlv::ACK => {
                let (_, opaque) = fixed(b, 2, be_u16)?;
                Message::Ack { opaque }
            }
            tlv::HELLO => {
                let (area, (flags, seqno, interval)) = fixed(b, 6, (be_u16, be_u16, be_u16))?;
                let timestamp = timestamp_sub_tlv(area, 4)?.map(be32);
                Message::Hello(Hello {
                    unicast: flags & 0x8000 != 0,
                    seqno,
                    interval,
                    timestamp,
                })
            }
            tlv::IHU => {
                let (rest, (ae_, _, rxcost, interval)) =
                    fixed(b, 6, (be_u8, be_u8, be_u16, be_u16))?;
                let (address, used) = full_address(ae_, rest)?;
                let ts = timestamp_sub_tlv(rest.get(used..).unwrap_or_default(), 8)?;
                Message::Ihu(Ihu {
                    address,
                    rxcost,
                    interval,
                    timestamp: ihu_timestamp(ts),
                })
            }
            tlv::ROUTER_ID => {
                let (area, (_, id)) = fixed(b, 10, (be_u16, router_id))?;
                sub_tlvs_only_padding(area)?;
                self.router_id = Some(id);
                return Ok(None);
            }
            tlv::NEXT_HOP => {
                let (rest, (ae_, _)) = fixed(b, 2, (be_u8, be_u8))?;
                if ae_ == ae::WILDCARD {
                    return Err(TlvErrorKind::BadAe(ae_));
                }
                let (addr, used) = full_address(ae_, rest)?;
                sub_tlvs_only_padding(rest.get(used..).unwrap_or_default())?;
                if ae_ == ae::IPV4 {
                    self.next_hop_v4 = addr;
                } else {
                    self.next_hop_v6 = addr;
                }
                return Ok(None);
            }
            tlv::UPDATE => return self.update(b, flavour).map(|u| u.map(Message::Update)),
            tlv::ROUTE_REQUEST => {
                let (rest, (ae_, plen)) = fixed(b, 2, (be_u8, be_u8))?;
                let (prefix, used) = if ae_ == ae::WILDCARD {
                    if plen != 0 {
                        return Err(TlvErrorKind::BadPlen { ae: ae_, plen });
                    }
                    (None, 0)
                } else {
                    let (p, used) = plain_prefix(ae_, plen, rest)?;
                    (Some(p), used)
                };
                let subs =
                    route_sub_tlvs(ae_, rest.get(used..).unwrap_or_default(), false, flavour)?;
                Message::RouteRequest(RouteRequest {
                    prefix,
                    v4_via_v6: ae_ == ae::V4_VIA_V6,
                    src_prefix: subs.src_prefix,
                })
            }
            tlv::SEQNO_REQUEST => {
                let (rest, (ae_, plen, seqno, hop_count, _, router_id)) =
                    fixed(b, 14, (be_u8, be_u8, be_u16, be_u8, be_u8, router_id))?;
                if ae_ == ae::WILDCARD {
                    return Err(TlvErrorKind::BadAe(ae_));
                }
                if hop_count == 0 {
                    return Err(TlvErrorKind::BadValue("seqno request hop count 0"));
                }
                let (prefix, used) = plain_prefix(ae_, plen, rest)?;
                let subs =
                    route_sub_tlvs(ae_, rest.get(used..).unwrap_or_default(), false, flavour)?;
                Message::SeqnoRequest(SeqnoRequest {
                    prefix,
                    v4_via_v6: ae_ == ae::V4_VIA_V6,
                    src_prefix: subs.src_prefix,
                    seqno,
                    hop_count,
                    router_id,
                })
            }
            tlv::MAC => return Err(TlvErrorKind::Misplaced),
            tlv::PC => {
                let (index, pc) = fixed(b, 4, be_u32)?;
                if index.len() > 32 {
                    return Err(TlvErrorKind::TooLong {
                        len: b.len(),
                        max: 36,
                    });
                }
                Message::Pc {
                    pc,
                    index: index.to_vec(),
                }
            }
            tlv::CHALLENGE_REQUEST | tlv::CHALLENGE_REPLY => {
                if b.len() > 192 {
                    return Err(TlvErrorKind::TooLong {
                        len: b.len(),
                        max: 192,
                    });
                }
                let nonce = b.to_vec();
                if raw.ty == tlv::CHALLENGE_REQUEST {
                    Message::ChallengeRequest { nonce }
                } else {
                    Message::ChallengeReply { nonce }
                }
            }
            tlv::REMOTE_HELLO | tlv::REMOTE_IHU => return self.remote(raw).map(Some),
            _ => return Err(TlvErrorKind::UnknownType),
        };
        Ok(Some(m))
    }

    /// Update (RFC 8966 §4.6.9), Althea's layout when `flavour` says so. Parser state (default
    /// prefix, router-id) is updated even when the TLV is then ignored for an unknown mandatory
    /// sub-TLV (RFC 8966 §4.4).
    fn update(&mut self, b: &[u8], flavour: Flavour) -> Result<Option<Update>, TlvErrorKind> {
        let (mut rest, (ae_, flags, plen, omitted, interval, seqno, metric)) =
            fixed(b, 10, (be_u8, be_u8, be_u8, be_u8, be_u16, be_u16, be_u16))?;
        let mut price = None;
        if flavour == Flavour::Althea {
            // Althea's fork sends AE 0 wildcard retractions without the price field; a missing
            // price reads as 0, which is what we send in its place (spec/wire.md §4.2).
            if ae_ != ae::WILDCARD || rest.len() >= 4 {
                let (r, p) = fixed(rest, 4, be_u32).map_err(|_| TlvErrorKind::TooShort {
                    len: b.len(),
                    min: 14,
                })?;
                rest = r;
                price = Some(p);
            } else {
                price = Some(0);
            }
        }
        let (prefix, used) = self.update_prefix(ae_, flags, plen, omitted, rest)?;
        let area = rest.get(used..).unwrap_or_default();
        if let (Some(p), true) = (prefix, flags & 0x40 != 0) {
            self.router_id = Some(router_id_from_prefix(&p));
        }
        let subs = route_sub_tlvs(ae_, area, true, flavour)?;
        if ae_ == ae::WILDCARD && subs.src_prefix.is_some() {
            return Err(TlvErrorKind::BadSourcePrefix);
        }
        if metric != crate::INFINITY && self.router_id.is_none() {
            return Err(TlvErrorKind::MissingRouterId);
        }
        let next_hop = match ae_ {
            ae::WILDCARD => None,
            ae::IPV4 => self.next_hop_v4,
            _ => self.next_hop_v6,
        };
        Ok(Some(Update {
            prefix,
            v4_via_v6: ae_ == ae::V4_VIA_V6,
            src_prefix: subs.src_prefix,
            interval,
            seqno,
            metric,
            router_id: self.router_id,
            next_hop,
            price: subs.price.or(price),
            path_rtt: subs.path_rtt,
            diversity: subs.diversity,
        }))
    }

    /// The Update's prefix, expanded from the default prefix of its AE (RFC 8966 §4.5), and the
    /// number of prefix octets it consumed. Sets the default prefix when flag 0x80 is present.
    fn update_prefix(
        &mut self,
        ae_: u8,
        flags: u8,
        plen: u8,
        omitted: u8,
        bytes: &[u8],
    ) -> Result<(Option<Prefix>, usize), TlvErrorKind> {
        if ae_ == ae::WILDCARD {
            if plen != 0 || omitted != 0 {
                return Err(TlvErrorKind::BadPlen { ae: ae_, plen });
            }
            return Ok((None, 0));
        }
        if ae_ == ae::LINK_LOCAL {
            if omitted != 0 {
                return Err(TlvErrorKind::BadOmitted { ae: ae_, omitted });
            }
            return plain_prefix(ae_, plen, bytes).map(|(p, n)| (Some(p), n));
        }
        let (width, is_v4) = ae_width(ae_)?;
        if usize::from(plen) > width * 8 {
            return Err(TlvErrorKind::BadPlen { ae: ae_, plen });
        }
        let omitted_n = usize::from(omitted);
        let default = match ae_ {
            ae::IPV4 => &mut self.default_v4,
            ae::IPV6 => &mut self.default_v6,
            _ => &mut self.default_v4_via_v6,
        };
        let mut octets = [0u8; 16];
        if omitted_n > 0 {
            let dp = default
                .as_ref()
                .ok_or(TlvErrorKind::BadOmitted { ae: ae_, omitted })?;
            if omitted_n > width {
                return Err(TlvErrorKind::BadOmitted { ae: ae_, omitted });
            }
            if let (Some(dst), Some(src)) = (octets.get_mut(..omitted_n), dp.get(..omitted_n)) {
                dst.copy_from_slice(src);
            }
        }
        let pb = usize::from(plen).div_ceil(8);
        let carried = pb.saturating_sub(omitted_n);
        let src = bytes.get(..carried).ok_or(TlvErrorKind::AddressTruncated {
            needed: carried,
            available: bytes.len(),
        })?;
        if let Some(dst) = octets.get_mut(omitted_n..omitted_n + carried) {
            dst.copy_from_slice(src);
        }
        let prefix = make_prefix(octets, is_v4, plen, ae_)?;
        if flags & 0x80 != 0 {
            *default = Some(prefix.octets().0);
        }
        Ok((Some(prefix), carried))
    }

    /// Remote Hello (224) and Remote IHU (225), our verification TLVs (`spec/wire.md`).
    fn remote(&mut self, raw: &RawTlv<'_>) -> Result<Message, TlvErrorKind> {
        let (rest, (ae_, plen, word, interval, origin, via)) = fixed(
            raw.body,
            22,
            (be_u8, be_u8, be_u16, be_u16, router_id, router_id),
        )?;
        if !matches!(ae_, ae::IPV4 | ae::IPV6) {
            return Err(TlvErrorKind::BadAe(ae_));
        }
        let (prefix, used) = plain_prefix(ae_, plen, rest)?;
        let area = rest.get(used..).unwrap_or_default();
        if raw.ty == tlv::REMOTE_HELLO {
            let timestamp = timestamp_sub_tlv(area, 4)?.map(be32);
            Ok(Message::RemoteHello(RemoteHello {
                seqno: word,
                interval,
                origin,
                via,
                prefix,
                timestamp,
            }))
        } else {
            let timestamp = ihu_timestamp(timestamp_sub_tlv(area, 8)?);
            Ok(Message::RemoteIhu(RemoteIhu {
                rxcost: word,
                interval,
                origin,
                via,
                prefix,
                timestamp,
            }))
        }
    }
}

/// Router-Id and Next Hop define no sub-TLVs: only a mandatory one voids them.
fn sub_tlvs_only_padding(area: &[u8]) -> Result<(), TlvErrorKind> {
    for s in sub_tlvs(area)? {
        if s.ty & subtlv::MANDATORY_BIT != 0 {
            return Err(TlvErrorKind::UnknownMandatorySubTlv(s.ty));
        }
    }
    Ok(())
}

/// RFC 8966 §4.6.9, flag 0x40: the router-id is the low 64 bits of an IPv6 prefix, or an IPv4
/// address preceded by four zero octets.
pub(crate) fn router_id_from_prefix(p: &Prefix) -> RouterId {
    let (o, width) = p.octets();
    let mut id = [0u8; 8];
    if width == 4 {
        id[4..].copy_from_slice(&o[..4]);
    } else {
        id.copy_from_slice(&o[8..]);
    }
    RouterId(id)
}
