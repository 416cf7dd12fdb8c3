//! Hello and IHU sending (RFC 8966 §3.4.1-§3.4.2) with RFC 9616 timestamps.

use super::*;

impl Engine {
    /// RFC 8966 §3.4.1-§3.4.2: a multicast Hello, with IHUs for every neighbour every third Hello
    /// (babeld), and in between for neighbours whose rxcost changed since the last IHU or, on
    /// lossy (link-quality) links, whose rxcost is above nominal. With timestamps (RFC 9616) the
    /// IHUs echo the neighbour's last Hello timestamp and travel with our timestamped Hello. On a
    /// `unicast` interface the multicast Hello goes alone (babeld still sends it) and each
    /// neighbour's IHU travels with its unicast Hello ([`Engine::send_unicast_hello`]).
    pub(super) fn send_hello(&mut self, now: Instant, ifindex: u32) {
        let Some(i) = self.interfaces.get_mut(&ifindex) else {
            return;
        };
        i.hello_seqno = i.hello_seqno.wrapping_add(1);
        i.hello_count += 1;
        let all = i.ihu_asap || i.hello_count % 3 == 1;
        i.ihu_asap = false;
        let ts = i.cfg.timestamps.then(|| now.as_micros() as u32);
        let hello = Message::Hello(Hello {
            unicast: false,
            seqno: i.hello_seqno,
            interval: to_centis(i.cfg.hello_interval),
            timestamp: ts,
        });
        let cfg = i.cfg.clone();
        let mut msgs = vec![hello.clone()];
        let ids: Vec<u64> = self.neighbours_on(ifindex).map(|(_, id)| id).collect();
        let mut copies = Vec::new();
        for id in ids {
            self.refresh_neighbour(now, id);
            let Some(n) = self.neighbours.get(&id) else {
                continue;
            };
            let (addr, configured) = (n.address, n.configured);
            // A configured neighbour whose multicast Hellos we do not hear gets a unicast copy of
            // this Hello: babeld 1.12 flushes a neighbour whose multicast history is empty.
            let copy = configured && n.hello.reach & 0xF000 == 0;
            if cfg.unicast && !configured {
                continue;
            }
            let ihu = self.ihu_for(now, id, &cfg, all, ts.is_some());
            match (cfg.unicast, copy) {
                (false, _) => {
                    msgs.extend(ihu);
                    if copy {
                        copies.push((addr, vec![hello.clone()]));
                    }
                }
                (true, true) => {
                    copies.push((addr, [hello.clone()].into_iter().chain(ihu).collect()))
                }
                (true, false) => copies.extend(ihu.map(|m| (addr, vec![m]))),
            }
        }
        self.counters.hellos_sent += 1;
        self.counters.ihus_sent += (msgs.len() - 1) as u64;
        if ts.is_some() {
            self.send_timestamped(now, ifindex, msgs);
        } else {
            self.send_packed(ifindex, Destination::Multicast, msgs);
        }
        for (addr, msgs) in copies {
            self.counters.ihus_sent +=
                msgs.iter().filter(|m| matches!(m, Message::Ihu(_))).count() as u64;
            self.send_packed(ifindex, Destination::Unicast(addr), msgs);
        }
    }

    /// RFC 9616 §2.3: a timestamped IHU is only useful in a packet that also carries a
    /// timestamped Hello (the receiver takes t3 from it). `msgs` starts with our Hello; when the
    /// IHUs overflow into more packets, each further packet gets an unscheduled Hello (interval
    /// 0, next seqno, timestamp) first, as babeld's `send_ihu` does.
    pub(super) fn send_timestamped(&mut self, now: Instant, ifindex: u32, mut msgs: Vec<Message>) {
        loop {
            let before = self.transmits.len();
            self.send_packed(ifindex, Destination::Multicast, msgs.clone());
            let first = self.transmits.get(before).map_or(0, |t| t.messages);
            if self.transmits.len() <= before + 1 || first <= 1 || first >= msgs.len() {
                return;
            }
            // Take back the overflow packets and send their messages after a new Hello.
            for t in self.transmits.drain(before + 1..) {
                self.counters.packets_sent = self.counters.packets_sent.saturating_sub(1);
                self.counters.bytes_sent = self
                    .counters
                    .bytes_sent
                    .saturating_sub(t.bytes.len() as u64);
            }
            let Some(i) = self.interfaces.get_mut(&ifindex) else {
                return;
            };
            i.hello_seqno = i.hello_seqno.wrapping_add(1);
            let hello = Message::Hello(Hello {
                unicast: false,
                seqno: i.hello_seqno,
                interval: 0,
                timestamp: Some(now.as_micros() as u32),
            });
            self.counters.hellos_sent += 1;
            msgs = std::iter::once(hello)
                .chain(msgs.into_iter().skip(first))
                .collect();
        }
    }

    /// The IHU for neighbour `nid` (RFC 8966 §3.4.2) if one is due: with every third Hello (`all`),
    /// when its rxcost changed since the last one, or when it is lossy on a link-quality link;
    /// with `timestamped`, echoing its last Hello timestamp (RFC 9616 §3.2).
    pub(super) fn ihu_for(
        &mut self,
        now: Instant,
        nid: u64,
        cfg: &InterfaceConfig,
        all: bool,
        timestamped: bool,
    ) -> Option<Message> {
        let resumed = self
            .neighbours
            .get(&nid)
            .and_then(|n| self.interfaces.get(&n.ifindex))
            .and_then(|i| i.resumed);
        let n = self.neighbours.get_mut(&nid)?;
        let marginal = cfg.link_quality && n.rxcost > cfg.rxcost;
        if !(all || marginal || n.rxcost != n.rxcost_sent) {
            return None;
        }
        // Graceful restart (see `Engine::interface_up`): not yet heard enough is not "down".
        if n.rxcost == INFINITY
            && n.rxcost_sent == INFINITY
            && resumed.is_some_and(|t| now.saturating_since(t) < RESUME_QUIET)
        {
            return None;
        }
        n.rxcost_sent = n.rxcost;
        // babeld echoes the neighbour's last Hello timestamp while it is fresh enough, and
        // forgets it otherwise (or when we send no timestamps).
        let fresh = now.saturating_since(n.hello_ts_time) < crate::rtt::ECHO_VALIDITY;
        if !timestamped || !fresh {
            n.hello_ts = None;
        }
        let timestamp = match (timestamped, n.hello_ts) {
            (true, Some((origin, receive))) => Some(IhuTimestamp { origin, receive }),
            _ => None,
        };
        Some(Message::Ihu(Ihu {
            address: Some(n.address),
            rxcost: n.rxcost,
            interval: to_centis(cfg.hello_interval * 3),
            timestamp,
        }))
    }

    /// RFC 8966 §3.4.1: a scheduled unicast Hello to one neighbour, with the neighbour's own
    /// seqno. On a `unicast` interface it carries the neighbour's IHU (every third Hello, or as
    /// [`Engine::ihu_for`] says), so that IHU and Hello timestamps share a packet (RFC 9616).
    pub(super) fn send_unicast_hello(&mut self, now: Instant, nid: u64) {
        let Some(n) = self.neighbours.get_mut(&nid) else {
            return;
        };
        let Some(i) = self.interfaces.get(&n.ifindex).filter(|i| i.up) else {
            self.timers.stop(Timer::UnicastHello(nid));
            return;
        };
        let Some(iv) = i.cfg.unicast_hello_interval_for(n.configured) else {
            self.timers.stop(Timer::UnicastHello(nid));
            return;
        };
        n.uhello_seqno = n.uhello_seqno.wrapping_add(1);
        n.uhello_count = n.uhello_count.wrapping_add(1);
        self.timers.set(Timer::UnicastHello(nid), now + iv);
        let all = std::mem::take(&mut n.ihu_asap) || n.uhello_count % 3 == 1;
        let ts = i.cfg.timestamps.then(|| now.as_micros() as u32);
        let msg = Message::Hello(Hello {
            unicast: true,
            seqno: n.uhello_seqno,
            interval: to_centis(iv),
            timestamp: ts,
        });
        let (ifindex, addr) = (n.ifindex, n.address);
        let cfg = i.cfg.clone();
        let mut msgs = vec![msg];
        if cfg.unicast {
            self.refresh_neighbour(now, nid);
            if let Some(ihu) = self.ihu_for(now, nid, &cfg, all, ts.is_some()) {
                self.counters.ihus_sent += 1;
                msgs.push(ihu);
            }
        }
        self.counters.hellos_sent += 1;
        self.send_packed(ifindex, Destination::Unicast(addr), msgs);
    }

    /// Each interface's name and current multicast Hello seqno (the last one sent), for a driver
    /// that keeps them across a crash ([`crate::EngineConfig::resume_hellos`]).
    pub fn hello_seqnos(&self) -> impl Iterator<Item = (&str, u16)> + '_ {
        self.interfaces
            .values()
            .filter(|i| i.up)
            .map(|i| (i.cfg.name.as_str(), i.hello_seqno))
    }
}
