//! Packets in and out: dispatch of received TLVs, packing (RFC 8966 §4.5) and signing
//! (RFC 8967).

use super::*;

impl Engine {
    /// A UDP payload arrived on `ifindex` from `src` (sent to `dst`). It is decoded with the
    /// interface's flavour and each message is processed (RFC 8966 §4, §3).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: IpAddr,
        dst: Destination,
        bytes: &[u8],
    ) {
        self.counters.packets_received += 1;
        self.counters.bytes_received += bytes.len() as u64;
        let Some(iface) = self.interfaces.get(&ifindex).filter(|i| i.up) else {
            self.counters.packets_refused += 1;
            return;
        };
        if src == iface.cfg.address
            || (self.cfg.require_link_local && !(src.is_ipv6() && is_link_local(&src)))
        {
            self.counters.packets_refused += 1;
            return;
        }
        let our_addr = iface.cfg.address;
        let decoded = match decode(
            bytes,
            &DecodeOptions {
                flavour: iface.cfg.flavour,
            },
        ) {
            Ok(d) => d,
            Err(e) => {
                self.counters.packets_malformed += 1;
                debug!(ifindex, %src, error = %e, "dropping undecodable packet");
                return;
            }
        };
        self.counters.tlv_errors += decoded.errors.len() as u64;
        if !self.authenticate(now, ifindex, src, dst, bytes, &decoded) {
            return;
        }
        let Some(nid) = self.neighbour_for(now, ifindex, src) else {
            return;
        };
        // RFC 9616: the transmit timestamp of the (last) timestamped Hello in this packet, and
        // the timestamps of the (last) IHU for us that carries some; the sample is taken once
        // the whole packet is parsed, as babeld does.
        let hello_ts = decoded.packet.messages.iter().rev().find_map(|m| match m {
            Message::Hello(h) => h.timestamp,
            _ => None,
        });
        let mut ihu_ts = None;
        let mut link_changed = false;
        for msg in decoded.packet.messages {
            match msg {
                Message::Hello(h) => {
                    if h.unicast && dst == Destination::Multicast {
                        self.counters.rfc_violations += 1;
                        continue;
                    }
                    self.handle_hello(now, nid, ifindex, &h);
                    link_changed = true;
                }
                Message::Ihu(i) => {
                    if i.interval == 0 {
                        self.counters.rfc_violations += 1;
                        continue;
                    }
                    if i.address.is_none_or(|a| a == our_addr) {
                        ihu_ts = i.timestamp.or(ihu_ts);
                        link_changed |= self.handle_ihu(now, nid, &i);
                    }
                }
                Message::Update(u) => {
                    if link_changed {
                        link_changed = false;
                        self.refresh_neighbour(now, nid);
                    }
                    self.handle_update(now, nid, ifindex, src, u);
                }
                Message::RouteRequest(r) => self.handle_route_request(now, ifindex, &r),
                Message::SeqnoRequest(s) => self.handle_seqno_request(now, nid, ifindex, &s),
                Message::AckReq { opaque, interval } => {
                    if interval == 0 {
                        self.counters.rfc_violations += 1;
                        continue;
                    }
                    // RFC 8966 §3.3: answer with a unicast Acknowledgment.
                    self.counters.acks_sent += 1;
                    self.queue(ifindex, Destination::Unicast(src), Message::Ack { opaque });
                }
                _ => {}
            }
        }
        if let (Some(ts), Some(t3)) = (ihu_ts, hello_ts) {
            link_changed |= self.rtt_sample(now, nid, ifindex, ts, t3);
        }
        if link_changed {
            self.refresh_neighbour(now, nid);
        }
    }

    /// The destination address of a packet, as the pseudo-header has it (RFC 8967 §4.1).
    pub(super) fn dst_address(&self, dst: Destination) -> IpAddr {
        match dst {
            Destination::Multicast => IpAddr::V6(self.cfg.protocol_group),
            Destination::Unicast(a) => a,
        }
    }

    /// RFC 8967 §4.3 on an interface with keys: true if the packet's TLVs are to be processed.
    /// The MAC is checked with the pseudo-header of the datagram as received (the sender's
    /// address, the address it was sent to, the protocol port), then the PC and challenges
    /// ([`Auth::preparse`]); Challenge Requests and Replies it calls for are queued unicast.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: IpAddr,
        dst: Destination,
        bytes: &[u8],
        decoded: &babel_wire::Decoded,
    ) -> bool {
        let Some(auth) = self
            .interfaces
            .get(&ifindex)
            .and_then(|i| i.cfg.auth.as_ref())
            .filter(|a| !a.keys.is_empty())
        else {
            return true;
        };
        let pseudo = PseudoHeader::babeld(src, self.dst_address(dst), self.cfg.protocol_port);
        let covered = bytes.get(..decoded.body_end).unwrap_or_default();
        match mac::verify(covered, &decoded.packet.macs, &auth.keys, &pseudo) {
            MacCheck::Valid => {}
            check => {
                let accept_bad = auth.accept_bad_signatures;
                if check == MacCheck::Missing {
                    self.counters.auth_no_mac += 1;
                } else {
                    self.counters.auth_bad_mac += 1;
                }
                if accept_bad {
                    self.counters.auth_accepted_unsigned += 1;
                    debug!(ifindex, %src, ?check, "processing packet without a valid MAC (accept-bad-signatures)");
                } else {
                    debug!(ifindex, %src, ?check, "dropping packet without a valid MAC");
                }
                return accept_bad;
            }
        }
        let limit = self.cfg.limits.max_neighbours_per_interface;
        let p = self.auth.preparse(
            now,
            ifindex,
            src,
            dst == Destination::Multicast,
            &decoded.packet.messages,
            limit,
            &mut self.counters,
        );
        for m in p.replies {
            self.queue(ifindex, Destination::Unicast(src), m);
        }
        p.accept
    }

    /// Sends messages to `dst`; on a `unicast` interface what would go to the multicast group
    /// goes instead as one copy to each neighbour on it (babeld's `unicast`: RFC 8966 §4 allows
    /// any TLV but Hellos to be sent unicast, and Hellos are handled by the callers).
    pub(super) fn send(&mut self, ifindex: u32, dst: Destination, msgs: Vec<Message>) {
        let Some(i) = self.interfaces.get(&ifindex) else {
            return;
        };
        if dst == Destination::Multicast && i.cfg.unicast {
            let addrs: Vec<IpAddr> = self.neighbours_on(ifindex).map(|(a, _)| a).collect();
            for a in addrs {
                self.send_packed(ifindex, Destination::Unicast(a), msgs.clone());
            }
            return;
        }
        self.send_packed(ifindex, dst, msgs);
    }

    /// Packs messages into as few packets as the interface allows and queues them.
    pub(super) fn send_packed(&mut self, ifindex: u32, dst: Destination, msgs: Vec<Message>) {
        let Some(mut p) = self.packer(ifindex, dst) else {
            return;
        };
        for m in &msgs {
            self.pack(&mut p, m);
        }
        self.finish_packing(p);
    }

    /// A [`Packer`] for `dst` on `ifindex`, with the interface's encoding options.
    pub(super) fn packer(&self, ifindex: u32, dst: Destination) -> Option<Packer> {
        let i = self.interfaces.get(&ifindex)?;
        let opts = EncodeOptions {
            flavour: i.cfg.flavour,
            max_packet_len: i.cfg.mtu.saturating_sub(48).max(64),
            // RFC 8967 §4.2: room for the PC TLV and the MACs, so signed packets fit the MTU.
            trailer_room: i.cfg.auth.as_ref().map_or(0, |a| {
                if a.keys.is_empty() {
                    0
                } else {
                    mac::overhead(&a.keys)
                }
            }),
            one_sub_tlv: i.cfg.one_sub_tlv,
        };
        Some(Packer {
            ifindex,
            dst,
            opts,
            b: PacketBuilder::new(opts),
            count: 0,
        })
    }

    /// Adds a message to the packet being filled; a full packet is queued first.
    pub(super) fn pack(&mut self, p: &mut Packer, m: &Message) {
        match p.b.push(m) {
            Ok(()) => p.count += 1,
            Err(PushError::Full) => {
                let full = std::mem::replace(&mut p.b, PacketBuilder::new(p.opts));
                self.emit(p.ifindex, p.dst, full, p.count);
                p.count = 0;
                match p.b.push(m) {
                    Ok(()) => p.count += 1,
                    Err(e) => warn!(error = %e, "cannot encode message"),
                }
            }
            Err(e) => warn!(error = %e, "cannot encode message"),
        }
    }

    /// Queues the last packet of a [`Packer`] (none if it is empty).
    pub(super) fn finish_packing(&mut self, p: Packer) {
        self.emit(p.ifindex, p.dst, p.b, p.count);
    }

    pub(super) fn emit(
        &mut self,
        ifindex: u32,
        dst: Destination,
        b: PacketBuilder,
        messages: usize,
    ) {
        if b.is_empty() {
            return;
        }
        let mut bytes = b.finish();
        match self.sign(ifindex, dst, &bytes) {
            Ok(Some(signed)) => bytes = signed,
            Ok(None) => {}
            Err(()) => return,
        }
        self.counters.packets_sent += 1;
        self.counters.bytes_sent += bytes.len() as u64;
        self.transmits.push_back(Transmit {
            ifindex,
            dst,
            bytes,
            messages,
        });
    }

    /// RFC 8967 §4.2: on an interface with keys, the packet gets our next PC and Index and one MAC
    /// per key, computed with the pseudo-header from our link-local address to the destination
    /// (the multicast group or the neighbour) on the protocol port. `Ok(None)`: no keys, sent
    /// unsigned; `Err`: not sent.
    pub(super) fn sign(
        &mut self,
        ifindex: u32,
        dst: Destination,
        unsigned: &[u8],
    ) -> Result<Option<bytes::Bytes>, ()> {
        let Some(i) = self.interfaces.get(&ifindex) else {
            return Ok(None);
        };
        let Some(auth) = i.cfg.auth.as_ref().filter(|a| !a.keys.is_empty()) else {
            return Ok(None);
        };
        let pseudo =
            PseudoHeader::babeld(i.cfg.address, self.dst_address(dst), self.cfg.protocol_port);
        let keys = auth.keys.clone();
        let (pc, index) = self.auth.next_pc(ifindex);
        match mac::sign(unsigned, pc, &index, &keys, &pseudo) {
            Ok(v) => Ok(Some(bytes::Bytes::from(v))),
            Err(e) => {
                warn!(ifindex, error = %e, "cannot sign packet, not sent");
                Err(())
            }
        }
    }
}

/// Messages for one destination packed into packets as they come ([`Engine::pack`]): the
/// same packets as [`Engine::send_packed`] makes of the same messages in one vector, without
/// holding them all first (a periodic dump of 100,000 routes is 100,000 Updates).
pub(super) struct Packer {
    ifindex: u32,
    dst: Destination,
    opts: EncodeOptions,
    b: PacketBuilder,
    count: usize,
}
