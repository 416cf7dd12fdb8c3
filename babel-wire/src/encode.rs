//! Packet encoding: packing messages under a size limit, with the compression of RFC 8966 §4.5
//! (default prefix, Router-Id and Next Hop TLVs only when they change).

use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::decode::router_id_from_prefix;
use crate::error::{EncodeError, PushError};
use crate::types::{Flavour, IhuTimestamp, Message, Packet, Prefix, RouterId, Update};
use crate::{HEADER_LEN, MAGIC, VERSION, ae, subtlv, tlv};

/// How to encode packets for an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Update layout and price encoding.
    pub flavour: Flavour,
    /// Largest UDP payload to produce, header and trailer included.
    pub max_packet_len: usize,
    /// Octets kept free at the end of every packet for a trailer (RFC 8967 MACs).
    pub trailer_room: usize,
    /// Put at most one sub-TLV in a TLV: babeld before 1.12.2 (Debian's 1.12.1) misreads every
    /// sub-TLV after the first. Mandatory ones are kept first; the rest are dropped and counted.
    pub one_sub_tlv: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions::for_link_mtu(1500)
    }
}

impl EncodeOptions {
    /// Options for a link of this MTU: the packet must fit with IPv6 and UDP headers (48 octets).
    pub fn for_link_mtu(mtu: usize) -> Self {
        EncodeOptions {
            flavour: Flavour::Standard,
            max_packet_len: mtu.saturating_sub(48).max(HEADER_LEN + 1),
            trailer_room: 0,
            one_sub_tlv: false,
        }
    }
}

/// Compression state of the packet being built: mirrors the decoder's parser state.
#[derive(Clone, Default)]
struct EncState {
    default_v6: Option<[u8; 16]>,
    router_id: Option<RouterId>,
    next_hop_v4: Option<IpAddr>,
    next_hop_v6: Option<IpAddr>,
}

/// Builds one packet message by message.
pub struct PacketBuilder {
    opts: EncodeOptions,
    buf: BytesMut,
    state: EncState,
    dropped_sub_tlvs: usize,
}

impl PacketBuilder {
    /// An empty packet.
    pub fn new(opts: EncodeOptions) -> Self {
        let mut buf = BytesMut::with_capacity(opts.max_packet_len.min(65_535));
        buf.put_u8(MAGIC);
        buf.put_u8(VERSION);
        buf.put_u16(0);
        PacketBuilder {
            opts,
            buf,
            state: EncState::default(),
            dropped_sub_tlvs: 0,
        }
    }

    /// True if no message has been added.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == HEADER_LEN
    }

    /// Bytes used so far (header and body).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Sub-TLVs left out because of [`EncodeOptions::one_sub_tlv`].
    pub fn dropped_sub_tlvs(&self) -> usize {
        self.dropped_sub_tlvs
    }

    fn limit(&self) -> usize {
        self.opts
            .max_packet_len
            .saturating_sub(self.opts.trailer_room)
            .min(HEADER_LEN + 65_535)
    }

    /// Adds one message, or leaves the packet unchanged and says why not.
    pub fn push(&mut self, msg: &Message) -> Result<(), PushError> {
        self.push_all(std::slice::from_ref(msg))
    }

    /// Adds all of `msgs` to this packet or none of them: a timestamped Hello and the IHUs that
    /// answer with timestamps must travel together (RFC 9616 §3.1).
    pub fn push_all(&mut self, msgs: &[Message]) -> Result<(), PushError> {
        let mark = self.buf.len();
        let saved = self.state.clone();
        let dropped = self.dropped_sub_tlvs;
        let mut result = Ok(());
        for m in msgs {
            result = self.emit(m);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() && self.buf.len() > self.limit() {
            let needed = self.buf.len() - mark + HEADER_LEN;
            result = Err(if mark == HEADER_LEN {
                PushError::Encode(EncodeError::TooLarge {
                    needed,
                    limit: self.limit(),
                })
            } else {
                PushError::Full
            });
        }
        if result.is_err() {
            self.buf.truncate(mark);
            self.state = saved;
            self.dropped_sub_tlvs = dropped;
        }
        result
    }

    /// Writes the body length and returns the packet.
    pub fn finish(self) -> Bytes {
        self.finish_with_macs(&[])
    }

    /// Like [`PacketBuilder::finish`], appending MAC TLVs as the trailer.
    pub fn finish_with_macs(mut self, macs: &[Vec<u8>]) -> Bytes {
        let body_len = u16::try_from(self.buf.len() - HEADER_LEN).unwrap_or(u16::MAX);
        if let Some(len) = self.buf.get_mut(2..4) {
            len.copy_from_slice(&body_len.to_be_bytes());
        }
        for mac in macs {
            self.buf.put_u8(tlv::MAC);
            self.buf.put_u8(u8::try_from(mac.len()).unwrap_or(u8::MAX));
            self.buf.put_slice(mac.get(..255).unwrap_or(mac));
        }
        // The buffer was reserved for a full packet. A packet far shorter than that (a few
        // triggered Updates, a Hello) may wait in a send queue for a while: it keeps only its
        // own bytes, not a whole MTU each.
        if self.buf.len() < self.buf.capacity() / 2 {
            return Bytes::copy_from_slice(&self.buf);
        }
        self.buf.freeze()
    }

    fn emit(&mut self, msg: &Message) -> Result<(), PushError> {
        match msg {
            Message::Pad1 => self.buf.put_u8(tlv::PAD1),
            Message::PadN { len } => {
                self.buf.put_u8(tlv::PADN);
                self.buf.put_u8(*len);
                self.buf.put_bytes(0, usize::from(*len));
            }
            Message::AckReq { opaque, interval } => {
                let mut b = TlvBody::new();
                b.bytes.put_u16(0);
                b.bytes.put_u16(*opaque);
                b.bytes.put_u16(*interval);
                self.put_tlv(tlv::ACK_REQ, b)?;
            }
            Message::Ack { opaque } => {
                let mut b = TlvBody::new();
                b.bytes.put_u16(*opaque);
                self.put_tlv(tlv::ACK, b)?;
            }
            Message::Hello(h) => {
                let mut b = TlvBody::new();
                b.bytes.put_u16(if h.unicast { 0x8000 } else { 0 });
                b.bytes.put_u16(h.seqno);
                b.bytes.put_u16(h.interval);
                if let Some(ts) = h.timestamp {
                    b.sub(subtlv::TIMESTAMP, &ts.to_be_bytes())?;
                }
                self.put_tlv(tlv::HELLO, b)?;
            }
            Message::Ihu(i) => {
                let mut b = TlvBody::new();
                let (ae_, addr) = full_address(i.address)?;
                b.bytes.put_u8(ae_);
                b.bytes.put_u8(0);
                b.bytes.put_u16(i.rxcost);
                b.bytes.put_u16(i.interval);
                b.bytes.put_slice(&addr);
                if let Some(ts) = i.timestamp {
                    b.sub(subtlv::TIMESTAMP, &ihu_ts(ts))?;
                }
                self.put_tlv(tlv::IHU, b)?;
            }
            Message::Update(u) => self.update(u)?,
            Message::RouteRequest(r) => {
                let mut b = TlvBody::new();
                match r.prefix {
                    None => {
                        if r.src_prefix.is_some() || r.v4_via_v6 {
                            return Err(invalid("a wildcard request has no source or AE 4").into());
                        }
                        b.bytes.put_u8(ae::WILDCARD);
                        b.bytes.put_u8(0);
                    }
                    Some(p) => {
                        b.bytes.put_u8(prefix_ae(&p, r.v4_via_v6)?);
                        b.bytes.put_u8(p.len());
                        b.bytes.put_slice(&prefix_bytes(&p));
                    }
                }
                self.put_src_prefix(&mut b, r.prefix.as_ref(), r.src_prefix.as_ref())?;
                self.put_tlv(tlv::ROUTE_REQUEST, b)?;
            }
            Message::SeqnoRequest(s) => {
                if s.hop_count == 0 {
                    return Err(invalid("seqno request hop count must not be 0").into());
                }
                let mut b = TlvBody::new();
                b.bytes.put_u8(prefix_ae(&s.prefix, s.v4_via_v6)?);
                b.bytes.put_u8(s.prefix.len());
                b.bytes.put_u16(s.seqno);
                b.bytes.put_u8(s.hop_count);
                b.bytes.put_u8(0);
                b.bytes.put_slice(&s.router_id.0);
                b.bytes.put_slice(&prefix_bytes(&s.prefix));
                self.put_src_prefix(&mut b, Some(&s.prefix), s.src_prefix.as_ref())?;
                self.put_tlv(tlv::SEQNO_REQUEST, b)?;
            }
            Message::Pc { pc, index } => {
                if index.len() > 32 {
                    return Err(invalid("PC index longer than 32 octets").into());
                }
                let mut b = TlvBody::new();
                b.bytes.put_u32(*pc);
                b.bytes.put_slice(index);
                self.put_tlv(tlv::PC, b)?;
            }
            Message::ChallengeRequest { nonce } | Message::ChallengeReply { nonce } => {
                if nonce.len() > 192 {
                    return Err(invalid("challenge nonce longer than 192 octets").into());
                }
                let ty = if matches!(msg, Message::ChallengeRequest { .. }) {
                    tlv::CHALLENGE_REQUEST
                } else {
                    tlv::CHALLENGE_REPLY
                };
                let mut b = TlvBody::new();
                b.bytes.put_slice(nonce);
                self.put_tlv(ty, b)?;
            }
            Message::RemoteHello(r) => {
                let mut b = remote_fixed(&r.prefix, r.seqno, r.interval, r.origin, r.via)?;
                if let Some(ts) = r.timestamp {
                    b.sub(subtlv::TIMESTAMP, &ts.to_be_bytes())?;
                }
                self.put_tlv(tlv::REMOTE_HELLO, b)?;
            }
            Message::RemoteIhu(r) => {
                let mut b = remote_fixed(&r.prefix, r.rxcost, r.interval, r.origin, r.via)?;
                if let Some(ts) = r.timestamp {
                    b.sub(subtlv::TIMESTAMP, &ihu_ts(ts))?;
                }
                self.put_tlv(tlv::REMOTE_IHU, b)?;
            }
        }
        Ok(())
    }

    fn put_tlv(&mut self, ty: u8, body: TlvBody) -> Result<(), EncodeError> {
        let len = u8::try_from(body.bytes.len())
            .map_err(|_| EncodeError::TlvTooLong(body.bytes.len()))?;
        self.buf.put_u8(ty);
        self.buf.put_u8(len);
        self.buf.put_slice(&body.bytes);
        Ok(())
    }

    /// Adds a Source Prefix sub-TLV (RFC 9079 §7.1), which must come first.
    fn put_src_prefix(
        &mut self,
        b: &mut TlvBody,
        prefix: Option<&Prefix>,
        src: Option<&Prefix>,
    ) -> Result<(), EncodeError> {
        let Some(src) = src else { return Ok(()) };
        match prefix {
            Some(p) if p.is_ipv4() == src.is_ipv4() && src.len() != 0 => {}
            _ => {
                return Err(invalid(
                    "source prefix must be non-zero and of the prefix's family",
                ));
            }
        }
        let bytes = prefix_bytes(src);
        let mut body = Vec::with_capacity(1 + bytes.len());
        body.push(src.len());
        body.extend_from_slice(&bytes);
        b.sub(subtlv::SOURCE_PREFIX, &body)
    }

    /// Update (RFC 8966 §4.6.9), preceded by Router-Id and Next Hop TLVs when they change.
    fn update(&mut self, u: &Update) -> Result<(), PushError> {
        let ae_ = match u.prefix {
            None if u.v4_via_v6 || u.src_prefix.is_some() => {
                return Err(invalid("a wildcard update has no source or AE 4").into());
            }
            None if u.next_hop.is_some() => {
                return Err(invalid("a wildcard update has no next hop").into());
            }
            None => ae::WILDCARD,
            Some(p) => prefix_ae(&p, u.v4_via_v6)?,
        };
        if u.metric != crate::INFINITY && u.router_id.is_none() {
            return Err(invalid("a finite update needs a router-id").into());
        }
        self.put_next_hop(ae_, u.next_hop)?;
        let mut flags = 0u8;
        if u.router_id != self.state.router_id {
            let Some(id) = u.router_id else {
                // The router-id of a packet cannot be unset: this retraction needs a new packet.
                return Err(PushError::Full);
            };
            match u.prefix {
                Some(p) if ae_ != ae::WILDCARD && router_id_embedded(&p, id) => flags |= 0x40,
                _ => {
                    let mut b = TlvBody::new();
                    b.bytes.put_u16(0);
                    b.bytes.put_slice(&id.0);
                    self.put_tlv(tlv::ROUTER_ID, b)?;
                }
            }
            self.state.router_id = Some(id);
        }
        let mut b = TlvBody::new();
        let (omitted, carried) = match u.prefix {
            Some(p) => self.compress(ae_, &p, &mut flags),
            None => (0, Vec::new()),
        };
        b.bytes.put_u8(ae_);
        b.bytes.put_u8(flags);
        b.bytes.put_u8(u.prefix.map_or(0, |p| p.len()));
        b.bytes.put_u8(omitted);
        b.bytes.put_u16(u.interval);
        b.bytes.put_u16(u.seqno);
        b.bytes.put_u16(u.metric);
        if self.opts.flavour == Flavour::Althea {
            b.bytes.put_u32(u.price.unwrap_or(0));
        }
        b.bytes.put_slice(&carried);
        self.put_src_prefix(&mut b, u.prefix.as_ref(), u.src_prefix.as_ref())?;
        let one = self.opts.one_sub_tlv;
        let mut optional: Vec<(u8, Vec<u8>)> = Vec::new();
        match self.opts.flavour {
            Flavour::Standard => {
                if let Some(p) = u.price {
                    optional.push((subtlv::PRICE, p.to_be_bytes().to_vec()));
                }
                if let Some(r) = u.path_rtt {
                    optional.push((subtlv::PATH_RTT, r.to_be_bytes().to_vec()));
                }
            }
            Flavour::Althea => {
                if let Some(r) = u.path_rtt {
                    optional.push((subtlv::ALTHEA_PATH_RTT, r.to_be_bytes().to_vec()));
                }
            }
        }
        if let Some(d) = &u.diversity {
            optional.push((subtlv::DIVERSITY, d.clone()));
        }
        for (ty, body) in optional {
            if one && b.subs > 0 {
                self.dropped_sub_tlvs += 1;
            } else {
                b.sub(ty, &body)?;
            }
        }
        self.put_tlv(tlv::UPDATE, b)?;
        Ok(())
    }

    /// Emits a Next Hop TLV if the update's next hop differs from the packet's current one.
    fn put_next_hop(&mut self, ae_: u8, nh: Option<IpAddr>) -> Result<(), PushError> {
        let slot = match ae_ {
            ae::WILDCARD => return Ok(()),
            ae::IPV4 => &mut self.state.next_hop_v4,
            _ => &mut self.state.next_hop_v6,
        };
        if *slot == nh {
            return Ok(());
        }
        let Some(addr) = nh else {
            // A Next Hop cannot be unset within a packet.
            return Err(PushError::Full);
        };
        if addr.is_ipv4() != (ae_ == ae::IPV4) {
            return Err(invalid("next hop family does not match the prefix encoding").into());
        }
        *slot = Some(addr);
        let (nae, bytes) = full_address(Some(addr))?;
        let mut b = TlvBody::new();
        b.bytes.put_u8(nae);
        b.bytes.put_u8(0);
        b.bytes.put_slice(&bytes);
        self.put_tlv(tlv::NEXT_HOP, b)?;
        Ok(())
    }

    /// Prefix compression (RFC 8966 §4.5), with babeld's choices so that our packets are byte
    /// for byte what babeld would send: only IPv6 prefixes are compressed; the octets shared with
    /// the default prefix are omitted, at most ⌊plen/8⌋ of them; a prefix becomes the new default
    /// (flag 0x80) when there is none yet or when it is at least /48 long. IPv4 and AE 4 prefixes
    /// are sent whole.
    fn compress(&mut self, ae_: u8, p: &Prefix, flags: &mut u8) -> (u8, Vec<u8>) {
        let (octets, _) = p.octets();
        let pb = usize::from(p.len()).div_ceil(8);
        if ae_ != ae::IPV6 {
            return (0, octets.get(..pb).unwrap_or_default().to_vec());
        }
        let default = &mut self.state.default_v6;
        let omitted = default.map_or(0, |d| {
            let max = usize::from(p.len()) / 8;
            d.iter()
                .zip(octets.iter())
                .take(max)
                .take_while(|(a, b)| a == b)
                .count()
        });
        if default.is_none() || p.len() >= 48 {
            *flags |= 0x80;
            *default = Some(octets);
        }
        let carried = octets.get(omitted..pb).unwrap_or_default().to_vec();
        (u8::try_from(omitted).unwrap_or(0), carried)
    }
}

/// A TLV body under construction, counting its sub-TLVs.
struct TlvBody {
    bytes: Vec<u8>,
    subs: usize,
}

impl TlvBody {
    fn new() -> Self {
        TlvBody {
            bytes: Vec::with_capacity(32),
            subs: 0,
        }
    }

    fn sub(&mut self, ty: u8, body: &[u8]) -> Result<(), EncodeError> {
        let len = u8::try_from(body.len()).map_err(|_| EncodeError::TlvTooLong(body.len()))?;
        self.bytes.push(ty);
        self.bytes.push(len);
        self.bytes.extend_from_slice(body);
        self.subs += 1;
        Ok(())
    }
}

fn invalid(what: &'static str) -> EncodeError {
    EncodeError::Invalid(what)
}

fn ihu_ts(ts: IhuTimestamp) -> [u8; 8] {
    let mut o = [0u8; 8];
    o[..4].copy_from_slice(&ts.origin.to_be_bytes());
    o[4..].copy_from_slice(&ts.receive.to_be_bytes());
    o
}

/// The AE and bytes of a full address (IHU, Next Hop): link-local IPv6 uses AE 3.
fn full_address(addr: Option<IpAddr>) -> Result<(u8, Vec<u8>), EncodeError> {
    Ok(match addr {
        None => (ae::WILDCARD, Vec::new()),
        Some(IpAddr::V4(a)) => (ae::IPV4, a.octets().to_vec()),
        Some(IpAddr::V6(a)) => {
            let o = a.octets();
            if o[..8] == [0xfe, 0x80, 0, 0, 0, 0, 0, 0] {
                (ae::LINK_LOCAL, o[8..].to_vec())
            } else {
                (ae::IPV6, o.to_vec())
            }
        }
    })
}

/// The AE for a prefix: 1 or 4 for IPv4, 2 for IPv6.
fn prefix_ae(p: &Prefix, v4_via_v6: bool) -> Result<u8, EncodeError> {
    match (p.is_ipv4(), v4_via_v6) {
        (true, false) => Ok(ae::IPV4),
        (true, true) => Ok(ae::V4_VIA_V6),
        (false, false) => Ok(ae::IPV6),
        (false, true) => Err(invalid("AE 4 carries only IPv4 prefixes")),
    }
}

fn router_id_embedded(p: &Prefix, id: RouterId) -> bool {
    let full = if p.is_ipv4() { 32 } else { 128 };
    p.len() == full && router_id_from_prefix(p) == id
}

fn remote_fixed(
    prefix: &Prefix,
    word: u16,
    interval: u16,
    origin: RouterId,
    via: RouterId,
) -> Result<TlvBody, EncodeError> {
    let mut b = TlvBody::new();
    b.bytes.put_u8(prefix_ae(prefix, false)?);
    b.bytes.put_u8(prefix.len());
    b.bytes.put_u16(word);
    b.bytes.put_u16(interval);
    b.bytes.put_slice(&origin.0);
    b.bytes.put_slice(&via.0);
    b.bytes.extend_from_slice(&prefix_bytes(prefix));
    Ok(b)
}

/// The ⌈plen/8⌉ leading octets of a prefix (no compression).
fn prefix_bytes(p: &Prefix) -> Vec<u8> {
    let (o, _) = p.octets();
    o.get(..usize::from(p.len()).div_ceil(8))
        .unwrap_or_default()
        .to_vec()
}

/// Encodes messages into as many packets as needed, each within `opts.max_packet_len`.
pub fn encode(msgs: &[Message], opts: &EncodeOptions) -> Result<Vec<Bytes>, EncodeError> {
    let mut out = Vec::new();
    let mut builder = PacketBuilder::new(*opts);
    for m in msgs {
        match builder.push(m) {
            Ok(()) => {}
            Err(PushError::Full) => {
                out.push(std::mem::replace(&mut builder, PacketBuilder::new(*opts)).finish());
                match builder.push(m) {
                    Ok(()) => {}
                    Err(PushError::Encode(e)) => return Err(e),
                    Err(PushError::Full) => {
                        return Err(invalid("message does not fit an empty packet"));
                    }
                }
            }
            Err(PushError::Encode(e)) => return Err(e),
        }
    }
    if !builder.is_empty() || out.is_empty() {
        out.push(builder.finish());
    }
    Ok(out)
}

/// Encodes one packet exactly (all messages and MACs), with no size limit but the format's.
pub fn encode_packet(p: &Packet, flavour: Flavour) -> Result<Bytes, EncodeError> {
    let opts = EncodeOptions {
        flavour,
        max_packet_len: HEADER_LEN + 65_535,
        trailer_room: 0,
        one_sub_tlv: false,
    };
    let mut b = PacketBuilder::new(opts);
    for m in &p.messages {
        match b.push(m) {
            Ok(()) => {}
            Err(PushError::Encode(e)) => return Err(e),
            Err(PushError::Full) => return Err(invalid("messages need more than one packet")),
        }
    }
    Ok(b.finish_with_macs(&p.macs))
}
