//! TUN offloads with the virtio-net header: splitting the large TCP/UDP
//! segments the kernel hands us (TSO/USO) into MTU-sized IP packets, and
//! coalescing received TCP segments of one flow into one large segment for
//! a single TUN write (the receive-side counterpart, like the kernel's GRO).
//!
//! With `IFF_VNET_HDR` every read from and write to the TUN fd starts with
//! a 10-byte `struct virtio_net_hdr` (legacy layout, host byte order, as
//! `drivers/net/tun.c` uses without `TUNSETVNETLE/BE`). The offload types
//! are the Linux kernel's `VIRTIO_NET_HDR_GSO_*` values.
//!
//! Everything here is plain byte manipulation on buffers: no I/O, no
//! `unsafe`. Input is treated as untrusted: malformed packets are rejected
//! with `None`/`false`, never a panic.

/// Size of the legacy `struct virtio_net_hdr`.
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum is partial (the
/// pseudo-header sum only) and must be completed from `csum_start`.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4` (USO).
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN` flag bit on `gso_type`.
const GSO_ECN: u8 = 0x80;

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Most segments merged into one coalesced TUN write.
const MAX_COALESCE: usize = 64;

/// The legacy virtio-net header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `F_NEEDS_CSUM` or 0.
    pub flags: u8,
    /// `GSO_*`, possibly with the ECN bit.
    pub gso_type: u8,
    /// Length of the IP + L4 headers.
    pub hdr_len: u16,
    /// Payload bytes per segment (MSS for TCP).
    pub gso_size: u16,
    /// Offset of the L4 header (start of the checksummed range).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the header at the start of `b`.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let h: [u8; VNET_HDR_LEN] = b.get(..VNET_HDR_LEN)?.try_into().ok()?;
        let [flags, gso_type, h0, h1, s0, s1, c0, c1, o0, o1] = h;
        Some(VnetHdr {
            flags,
            gso_type,
            hdr_len: u16::from_ne_bytes([h0, h1]),
            gso_size: u16::from_ne_bytes([s0, s1]),
            csum_start: u16::from_ne_bytes([c0, c1]),
            csum_offset: u16::from_ne_bytes([o0, o1]),
        })
    }

    /// Writes the header into the first [`VNET_HDR_LEN`] bytes of `b`.
    pub fn write(&self, b: &mut [u8]) {
        let [h0, h1] = self.hdr_len.to_ne_bytes();
        let [s0, s1] = self.gso_size.to_ne_bytes();
        let [c0, c1] = self.csum_start.to_ne_bytes();
        let [o0, o1] = self.csum_offset.to_ne_bytes();
        if let Some(h) = b.get_mut(..VNET_HDR_LEN) {
            h.copy_from_slice(&[self.flags, self.gso_type, h0, h1, s0, s1, c0, c1, o0, o1]);
        }
    }
}

/// Adds `data` as big-endian 16-bit words to `acc` (RFC 1071 sum, not yet
/// folded). An odd trailing byte is padded with zero.
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let (quads, rest) = data.as_chunks::<8>();
    for &[a, b, c, d, e, f, g, h] in quads {
        // Four 16-bit words at once; the u64 accumulator cannot overflow
        // for packets below 2^40 bytes.
        acc += u64::from(u16::from_be_bytes([a, b]))
            + u64::from(u16::from_be_bytes([c, d]))
            + u64::from(u16::from_be_bytes([e, f]))
            + u64::from(u16::from_be_bytes([g, h]));
    }
    let (words, odd) = rest.as_chunks::<2>();
    for w in words {
        acc += u64::from(u16::from_be_bytes(*w));
    }
    if let [b] = odd {
        acc += u64::from(u16::from_be_bytes([*b, 0]));
    }
    acc
}

/// Folds a sum to 16 bits (one's complement addition of the carries).
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Copies `bytes` into `p` at `at`; `None` if it does not fit.
fn put(p: &mut [u8], at: usize, bytes: &[u8]) -> Option<()> {
    p.get_mut(at..at.checked_add(bytes.len())?)?
        .copy_from_slice(bytes);
    Some(())
}

/// IP layer facts needed to rewrite a packet.
#[derive(Debug, Clone, Copy)]
struct Ip {
    v6: bool,
    /// IP header length.
    len: usize,
    /// L4 protocol.
    proto: u8,
}

fn parse_ip(p: &[u8]) -> Option<Ip> {
    match p.first()? >> 4 {
        4 => {
            let len = usize::from(p.first()? & 0x0f) * 4;
            (len >= 20 && p.len() >= len).then_some(Ip {
                v6: false,
                len,
                proto: *p.get(9)?,
            })
        }
        6 => (p.len() >= 40).then_some(Ip {
            v6: true,
            len: 40,
            proto: *p.get(6)?,
        }),
        _ => None,
    }
}

/// Pseudo-header sum (RFC 793 / RFC 8200 section 8.1) for an L4 segment
/// of `l4_len` bytes.
fn pseudo_sum(p: &[u8], ip: Ip, l4_len: usize) -> Option<u64> {
    let addrs = if ip.v6 { p.get(8..40)? } else { p.get(12..20)? };
    Some(sum16(addrs, u64::from(ip.proto) + l4_len as u64))
}

/// Fills in the L4 checksum of a complete packet from scratch.
fn fill_l4_checksum(p: &mut [u8], ip: Ip, csum_field: usize) -> Option<()> {
    let l4_len = p.len().checked_sub(ip.len)?;
    let field = ip.len + csum_field;
    p.get_mut(field..field + 2)?.copy_from_slice(&[0, 0]);
    let acc = sum16(p.get(ip.len..)?, pseudo_sum(p, ip, l4_len)?);
    let mut c = !fold(acc);
    if c == 0 && ip.proto == PROTO_UDP {
        c = 0xffff; // a zero UDP checksum means "none"
    }
    p.get_mut(field..field + 2)?
        .copy_from_slice(&c.to_be_bytes());
    Some(())
}

fn fill_ipv4_checksum(p: &mut [u8], ihl: usize) -> Option<()> {
    p.get_mut(10..12)?.copy_from_slice(&[0, 0]);
    let c = !fold(sum16(p.get(..ihl)?, 0));
    p.get_mut(10..12)?.copy_from_slice(&c.to_be_bytes());
    Some(())
}

/// Sets the IP length fields for a packet of `p.len()` bytes.
fn set_ip_len(p: &mut [u8], ip: Ip) -> Option<()> {
    if ip.v6 {
        let pl = u16::try_from(p.len().checked_sub(40)?).ok()?;
        p.get_mut(4..6)?.copy_from_slice(&pl.to_be_bytes());
    } else {
        let tl = u16::try_from(p.len()).ok()?;
        p.get_mut(2..4)?.copy_from_slice(&tl.to_be_bytes());
    }
    Some(())
}

/// Completes a partial checksum (`F_NEEDS_CSUM`, `CHECKSUM_PARTIAL` in the
/// kernel): sums from `csum_start` to the end, the field already holding
/// the pseudo-header sum.
fn complete_partial(p: &mut [u8], h: &VnetHdr) -> Option<()> {
    let start = usize::from(h.csum_start);
    let field = start.checked_add(usize::from(h.csum_offset))?;
    p.get(field..field + 2)?;
    let mut c = !fold(sum16(p.get(start..)?, 0));
    if c == 0 {
        c = 0xffff;
    }
    p.get_mut(field..field + 2)?
        .copy_from_slice(&c.to_be_bytes());
    Some(())
}

/// Splits one TUN read (virtio-net header + packet) into the IP packets it
/// stands for and calls `emit` with each, checksums complete. `scratch`
/// must hold one segment (MTU bytes); `frame` is modified in place.
/// Returns the number of packets emitted, or `None` for a malformed frame
/// (nothing is emitted then, or only the packets before the fault).
pub fn split(frame: &mut [u8], scratch: &mut [u8], mut emit: impl FnMut(&[u8])) -> Option<usize> {
    let h = VnetHdr::parse(frame)?;
    let pkt = frame.get_mut(VNET_HDR_LEN..)?;
    match h.gso_type & !GSO_ECN {
        GSO_NONE => {
            if h.flags & F_NEEDS_CSUM != 0 {
                complete_partial(pkt, &h)?;
            }
            emit(pkt);
            Some(1)
        }
        t @ (GSO_TCPV4 | GSO_TCPV6 | GSO_UDP_L4) => {
            let ip = parse_ip(pkt)?;
            let tcp = t != GSO_UDP_L4;
            if ip.proto != if tcp { PROTO_TCP } else { PROTO_UDP } {
                return None;
            }
            let l4 = if tcp {
                usize::from(pkt.get(ip.len + 12)? >> 4) * 4
            } else {
                8
            };
            let hlen = ip.len + l4;
            let mss = usize::from(h.gso_size);
            if mss == 0 || (tcp && l4 < 20) || pkt.len() <= hlen {
                return None;
            }
            let seq0 = if tcp {
                u32::from_be_bytes(pkt.get(ip.len + 4..ip.len + 8)?.try_into().ok()?)
            } else {
                0
            };
            let id0 = if ip.v6 {
                0
            } else {
                u16::from_be_bytes([*pkt.get(4)?, *pkt.get(5)?])
            };
            let (headers, payload) = pkt.split_at(hlen);
            let chunks = payload.len().div_ceil(mss);
            for (i, chunk) in payload.chunks(mss).enumerate() {
                let seg = scratch.get_mut(..hlen + chunk.len())?;
                put(seg, 0, headers)?;
                put(seg, hlen, chunk)?;
                set_ip_len(seg, ip)?;
                if !ip.v6 {
                    let id = id0.wrapping_add(i as u16);
                    put(seg, 4, &id.to_be_bytes())?;
                    fill_ipv4_checksum(seg, ip.len)?;
                }
                let last = i + 1 == chunks;
                if tcp {
                    let seq = seq0.wrapping_add((i * mss) as u32);
                    put(seg, ip.len + 4, &seq.to_be_bytes())?;
                    let flags = seg.get_mut(ip.len + 13)?;
                    if !last {
                        *flags &= !0x09; // FIN and PSH only on the last segment
                    }
                    if i > 0 {
                        *flags &= !0x80; // CWR only on the first
                    }
                    fill_l4_checksum(seg, ip, 16)?;
                } else {
                    let ul = u16::try_from(8 + chunk.len()).ok()?;
                    put(seg, ip.len + 4, &ul.to_be_bytes())?;
                    fill_l4_checksum(seg, ip, 6)?;
                }
                emit(seg);
            }
            Some(chunks)
        }
        _ => None,
    }
}

/// Whether a complete packet's TCP checksum is valid.
fn tcp_checksum_ok(p: &[u8], ip: Ip) -> bool {
    let Some(l4) = p.get(ip.len..) else {
        return false;
    };
    match pseudo_sum(p, ip, l4.len()) {
        Some(ps) => fold(sum16(l4, ps)) == 0xffff,
        None => false,
    }
}

/// A TCP segment that may be merged with others of its flow.
#[derive(Debug, Clone, Copy)]
struct TcpSeg {
    ip: Ip,
    /// IP + TCP header length.
    hlen: usize,
    seq: u32,
    flags: u8,
}

fn parse_tcp(p: &[u8]) -> Option<TcpSeg> {
    let ip = parse_ip(p)?;
    if ip.proto != PROTO_TCP {
        return None;
    }
    if !ip.v6 {
        // No options, no fragments (DF allowed), total length = packet.
        let frag = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]);
        let tl = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
        if ip.len != 20 || frag & 0x3fff != 0 || tl != p.len() {
            return None;
        }
    } else {
        let pl = usize::from(u16::from_be_bytes([*p.get(4)?, *p.get(5)?]));
        if pl + 40 != p.len() {
            return None;
        }
    }
    let l4 = usize::from(p.get(ip.len + 12)? >> 4) * 4;
    let hlen = ip.len + l4;
    if l4 < 20 || p.len() < hlen {
        return None;
    }
    Some(TcpSeg {
        ip,
        hlen,
        seq: u32::from_be_bytes(p.get(ip.len + 4..ip.len + 8)?.try_into().ok()?),
        flags: *p.get(ip.len + 13)?,
    })
}

/// Merges consecutive in-order TCP segments of one flow (same addresses,
/// ports, ACK, window, options, TTL and TOS; only ACK/PSH set; checksums
/// verified) into one large segment written to the TUN with a GSO
/// virtio-net header, so the kernel's stack handles one packet instead of
/// dozens. Anything else is written alone.
#[derive(Debug)]
pub struct Coalescer {
    /// virtio-net header space + the merged packet.
    buf: Vec<u8>,
    len: usize,
    /// `Some` while a mergeable TCP batch is open.
    open: Option<Batch>,
    /// Whether anything (mergeable or not) is pending in `buf`.
    pending: bool,
}

#[derive(Debug, Clone, Copy)]
struct Batch {
    seg: TcpSeg,
    mss: usize,
    next_seq: u32,
    count: usize,
    /// A short or PSH segment ended the batch: nothing may follow.
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer {
            buf: vec![0; VNET_HDR_LEN + 65535],
            len: 0,
            open: None,
            pending: false,
        }
    }
}

impl Coalescer {
    /// Adds `pkt` to the open batch; `false` means the caller must write
    /// out [`Coalescer::finish`] first and then [`Coalescer::start`] it.
    pub fn append(&mut self, pkt: &[u8]) -> bool {
        let Some(b) = self.open.as_mut() else {
            return !self.pending && self.start_inner(pkt);
        };
        if b.closed || b.count >= MAX_COALESCE {
            return false;
        }
        let Some(s) = parse_tcp(pkt) else {
            return false;
        };
        let Some(head) = self.buf.get(VNET_HDR_LEN..VNET_HDR_LEN + b.seg.hlen) else {
            return false;
        };
        let payload = pkt.len() - s.hlen;
        if s.ip.v6 != b.seg.ip.v6
            || s.hlen != b.seg.hlen
            || s.seq != b.next_seq
            || s.flags & !0x08 != 0x10
            || payload == 0
            || payload > b.mss
            || self.len + payload > self.buf.len()
            || self.len - VNET_HDR_LEN + payload > 65535
        {
            return false;
        }
        // Same flow and same header fields a merge must keep: addresses,
        // ports, ACK number, window, options; TOS/TTL (v4) or traffic
        // class/flow label/hop limit (v6).
        let t = s.ip.len;
        let ip_same = if s.ip.v6 {
            pkt.get(..4) == head.get(..4) && pkt.get(7..40) == head.get(7..40)
        } else {
            pkt.get(1..2) == head.get(1..2)
                && pkt.get(8..10) == head.get(8..10)
                && pkt.get(12..20) == head.get(12..20)
        };
        // Ports; ACK; window; urgent pointer and options (not the
        // sequence number, flags or checksum).
        let same = ip_same
            && pkt.get(t..t + 4) == head.get(t..t + 4)
            && pkt.get(t + 8..t + 12) == head.get(t + 8..t + 12)
            && pkt.get(t + 14..t + 16) == head.get(t + 14..t + 16)
            && pkt.get(t + 18..s.hlen) == head.get(t + 18..s.hlen);
        if !same || !tcp_checksum_ok(pkt, s.ip) {
            return false;
        }
        let Some(data) = pkt.get(s.hlen..) else {
            return false;
        };
        if put(&mut self.buf, self.len, data).is_none() {
            return false;
        }
        self.len += payload;
        b.next_seq = b.next_seq.wrapping_add(payload as u32);
        b.count += 1;
        if s.flags & 0x08 != 0 {
            // Carry PSH on the merged header; nothing may follow it.
            if let Some(f) = self.buf.get_mut(VNET_HDR_LEN + s.ip.len + 13) {
                *f |= 0x08;
            }
            b.closed = true;
        }
        if payload < b.mss {
            b.closed = true;
        }
        true
    }

    /// Starts a new pending frame with `pkt` (after [`Coalescer::finish`]).
    pub fn start(&mut self, pkt: &[u8]) {
        if !self.start_inner(pkt) {
            // Not mergeable: written alone, unchanged.
            // Longer than any IP packet: cut (the kernel drops it).
            let n = pkt.len().min(self.buf.len() - VNET_HDR_LEN);
            VnetHdr::default().write(&mut self.buf);
            let _ = put(&mut self.buf, VNET_HDR_LEN, pkt.get(..n).unwrap_or(&[]));
            self.len = VNET_HDR_LEN + n;
            self.open = None;
            self.pending = true;
        }
    }

    fn start_inner(&mut self, pkt: &[u8]) -> bool {
        let Some(s) = parse_tcp(pkt) else {
            return false;
        };
        let payload = pkt.len() - s.hlen;
        if s.flags & !0x08 != 0x10 || payload == 0 || !tcp_checksum_ok(pkt, s.ip) {
            return false;
        }
        let Some(dst) = self.buf.get_mut(VNET_HDR_LEN..VNET_HDR_LEN + pkt.len()) else {
            return false;
        };
        dst.copy_from_slice(pkt);
        self.len = VNET_HDR_LEN + pkt.len();
        self.open = Some(Batch {
            seg: s,
            mss: payload,
            next_seq: s.seq.wrapping_add(payload as u32),
            count: 1,
            closed: s.flags & 0x08 != 0,
        });
        self.pending = true;
        true
    }

    /// Closes the pending frame and returns it (virtio-net header +
    /// packet) for one TUN write, or `None` if nothing is pending.
    pub fn finish(&mut self) -> Option<&[u8]> {
        if !self.pending {
            return None;
        }
        self.pending = false;
        let open = self.open.take();
        let mut hdr = VnetHdr::default();
        if let Some(b) = open.filter(|b| b.count > 1) {
            let ip = b.seg.ip;
            let pkt = self.buf.get_mut(VNET_HDR_LEN..self.len)?;
            set_ip_len(pkt, ip)?;
            if !ip.v6 {
                fill_ipv4_checksum(pkt, ip.len)?;
            }
            // The kernel completes the checksum from the pseudo-header sum
            // (CHECKSUM_PARTIAL), as for a segment built by its own GRO.
            let l4_len = pkt.len() - ip.len;
            let partial = fold(pseudo_sum(pkt, ip, l4_len)?);
            put(pkt, ip.len + 16, &partial.to_be_bytes())?;
            hdr = VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: if ip.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                hdr_len: b.seg.hlen as u16,
                gso_size: b.mss as u16,
                csum_start: ip.len as u16,
                csum_offset: 16,
            };
        }
        hdr.write(&mut self.buf);
        self.buf.get(..self.len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// An IPv4 TCP packet 10.0.0.1:1000 -> 10.0.0.2:2000 with timestamps.
    fn tcp4(seq: u32, payload: &[u8], flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 32];
        p[0] = 0x45;
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = PROTO_TCP;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..22].copy_from_slice(&1000u16.to_be_bytes());
        p[22..24].copy_from_slice(&2000u16.to_be_bytes());
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[28..32].copy_from_slice(&77u32.to_be_bytes());
        p[32] = 8 << 4;
        p[33] = flags;
        p[34..36].copy_from_slice(&500u16.to_be_bytes());
        p[40..52].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        p.extend_from_slice(payload);
        let ip = parse_ip(&p).unwrap();
        set_ip_len(&mut p, ip).unwrap();
        fill_ipv4_checksum(&mut p, 20).unwrap();
        fill_l4_checksum(&mut p, ip, 16).unwrap();
        p
    }

    fn tcp6(seq: u32, payload: &[u8], flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40 + 20];
        p[0] = 0x60;
        p[6] = PROTO_TCP;
        p[7] = 64;
        p[8..24].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p[24..40].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p[44..48].copy_from_slice(&seq.to_be_bytes());
        p[52] = 5 << 4;
        p[53] = flags;
        p.extend_from_slice(payload);
        let ip = parse_ip(&p).unwrap();
        set_ip_len(&mut p, ip).unwrap();
        fill_l4_checksum(&mut p, ip, 16).unwrap();
        p
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// Builds what the kernel hands a TSO-enabled TUN reader: one large
    /// segment with a partial checksum.
    fn tso_frame(
        pkt: &[u8],
        ip: Ip,
        hlen: usize,
        mss: u16,
        gso_type: u8,
        csum_off: u16,
    ) -> Vec<u8> {
        let mut p = pkt.to_vec();
        let l4_len = p.len() - ip.len;
        let partial = fold(pseudo_sum(&p, ip, l4_len).unwrap());
        let f = ip.len + usize::from(csum_off);
        p[f..f + 2].copy_from_slice(&partial.to_be_bytes());
        let mut frame = vec![0u8; VNET_HDR_LEN];
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type,
            hdr_len: hlen as u16,
            gso_size: mss,
            csum_start: ip.len as u16,
            csum_offset: csum_off,
        }
        .write(&mut frame);
        frame.extend_from_slice(&p);
        frame
    }

    fn checksums_ok(p: &[u8]) -> bool {
        let ip = parse_ip(p).unwrap();
        let ip_ok = ip.v6 || fold(sum16(&p[..ip.len], 0)) == 0xffff;
        let l4 = &p[ip.len..];
        ip_ok && fold(sum16(l4, pseudo_sum(p, ip, l4.len()).unwrap())) == 0xffff
    }

    #[test]
    fn tso4_split_gives_mtu_segments_with_valid_checksums() {
        let payload = data(5000);
        let big = tcp4(1000, &payload, 0x18); // ACK|PSH
        let ip = parse_ip(&big).unwrap();
        let mut frame = tso_frame(&big, ip, 52, 1368, GSO_TCPV4, 16);
        let mut scratch = vec![0u8; 1500];
        let mut segs = vec![];
        let n = split(&mut frame, &mut scratch, |s| segs.push(s.to_vec())).unwrap();
        assert_eq!(n, 4);
        let mut joined = vec![];
        for (i, s) in segs.iter().enumerate() {
            assert!(checksums_ok(s), "segment {i}");
            let t = parse_tcp(s).unwrap();
            assert_eq!(t.seq, 1000 + (i as u32) * 1368);
            assert_eq!(t.flags & 0x08 != 0, i == 3, "PSH only on the last");
            assert_eq!(u16::from_be_bytes([s[4], s[5]]), i as u16);
            joined.extend_from_slice(&s[52..]);
        }
        assert_eq!(segs[0].len(), 52 + 1368);
        assert_eq!(joined, payload);
    }

    #[test]
    fn uso6_split_sets_udp_lengths_and_checksums() {
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[6] = PROTO_UDP;
        p[7] = 64;
        p[23] = 1;
        p[39] = 2;
        p.extend_from_slice(&data(3000));
        let ip = parse_ip(&p).unwrap();
        set_ip_len(&mut p, ip).unwrap();
        let mut frame = tso_frame(&p, ip, 48, 1200, GSO_UDP_L4, 6);
        let mut scratch = vec![0u8; 1500];
        let mut segs = vec![];
        assert_eq!(
            split(&mut frame, &mut scratch, |s| segs.push(s.to_vec())),
            Some(3)
        );
        for s in &segs {
            assert!(checksums_ok(s));
            assert_eq!(
                usize::from(u16::from_be_bytes([s[44], s[45]])),
                s.len() - 40
            );
        }
        assert_eq!(segs[2].len(), 48 + 600);
    }

    #[test]
    fn partial_checksum_is_completed() {
        let pkt = tcp4(5, &data(100), 0x18);
        let ip = parse_ip(&pkt).unwrap();
        let mut frame = tso_frame(&pkt, ip, 52, 0, GSO_NONE, 16);
        let mut scratch = vec![0u8; 1500];
        let mut out = vec![];
        assert_eq!(
            split(&mut frame, &mut scratch, |s| out = s.to_vec()),
            Some(1)
        );
        assert_eq!(out, pkt);
    }

    #[test]
    fn malformed_frames_are_rejected_without_panic() {
        let mut scratch = vec![0u8; 1500];
        for len in 0..80 {
            let mut f = vec![0xffu8; len];
            let _ = split(&mut f, &mut scratch, |_| {});
            let mut f = vec![0u8; len];
            if len > 1 {
                f[1] = GSO_TCPV4;
            }
            let _ = split(&mut f, &mut scratch, |_| {});
        }
        // gso_size 0 is refused.
        let pkt = tcp4(1, &data(3000), 0x10);
        let ip = parse_ip(&pkt).unwrap();
        let mut f = tso_frame(&pkt, ip, 52, 0, GSO_TCPV4, 16);
        assert_eq!(split(&mut f, &mut scratch, |_| {}), None);
    }

    /// Coalescing then splitting gives back the original packets.
    fn roundtrip(pkts: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut c = Coalescer::default();
        let mut frames = vec![];
        for p in pkts {
            if !c.append(p) {
                frames.extend(c.finish().map(<[u8]>::to_vec));
                c.start(p);
            }
        }
        frames.extend(c.finish().map(<[u8]>::to_vec));
        let mut scratch = vec![0u8; 1600];
        let mut out = vec![];
        for mut f in frames {
            split(&mut f, &mut scratch, |s| out.push(s.to_vec())).unwrap();
        }
        out
    }

    /// A packet with its IPv4 identification and header checksum zeroed:
    /// splitting numbers the segments' IDs afresh, as the kernel does.
    fn norm(pkts: &[Vec<u8>]) -> Vec<Vec<u8>> {
        pkts.iter()
            .map(|p| {
                let mut p = p.clone();
                if p.len() >= 20 && p[0] >> 4 == 4 {
                    p[4..6].fill(0);
                    p[10..12].fill(0);
                }
                p
            })
            .collect()
    }

    #[test]
    fn coalesce_merges_one_flow_and_keeps_the_rest() {
        let mss = 1368;
        let mut pkts: Vec<Vec<u8>> = (0..5)
            .map(|i| tcp4(100 + i * mss as u32, &data(mss), 0x10))
            .collect();
        pkts.push(tcp4(100 + 5 * mss as u32, &data(10), 0x18));
        let mut c = Coalescer::default();
        for p in &pkts {
            assert!(c.append(p));
        }
        let f = c.finish().unwrap().to_vec();
        let h = VnetHdr::parse(&f).unwrap();
        assert_eq!(h.gso_type, GSO_TCPV4);
        assert_eq!(usize::from(h.gso_size), mss);
        assert_eq!(f.len(), VNET_HDR_LEN + 52 + 5 * mss + 10);
        assert!(norm(&roundtrip(&pkts)) == norm(&pkts));

        // A gap in sequence, a SYN, another flow and a bad checksum break
        // the batch, and every packet still comes out unchanged.
        let mut bad = tcp4(100 + 2 * mss as u32, &data(mss), 0x10);
        bad[60] ^= 1;
        let mixed = vec![
            tcp4(100, &data(mss), 0x10),
            tcp4(100 + 2 * mss as u32, &data(mss), 0x10),
            tcp4(7, &[], 0x02),
            tcp6(1, &data(mss), 0x10),
            tcp6(1 + mss as u32, &data(mss), 0x10),
            bad,
            vec![0x45, 0, 0],
        ];
        assert!(norm(&roundtrip(&mixed)) == norm(&mixed));
    }
}
