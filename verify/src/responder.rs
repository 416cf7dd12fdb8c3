//! The destination's side of a check (`spec/verify.md` §3): the [`Responder`] counts the
//! Remote Hellos of each session and answers with signed Remote IHUs.

use std::collections::BTreeMap;
use std::time::Duration;

use babel_core::Instant;
use babel_wire::{IhuTimestamp, Prefix, RemoteHello, RemoteIhu, RouterId};
use ed25519_dalek::SigningKey;

use crate::auth::{Report, encode_signed_ihu};
use crate::probe::HOP_LIMIT;

/// The destination's side (§3): counts Remote Hellos per (verifier, via, prefix) and answers
/// with signed Remote IHUs. Bounded to `max_sessions` (least recently heard forgotten first).
#[derive(Clone, Debug)]
pub struct Responder {
    key: SigningKey,
    counter: u64,
    sessions: BTreeMap<(RouterId, RouterId, Prefix), Heard>,
    max_sessions: usize,
    /// Remote Hellos refused (prefix not ours, interval 0, hop limit above ours).
    pub refused: u64,
}

#[derive(Clone, Copy, Debug)]
struct Heard {
    highest: u16,
    bitmap: u64,
    hops: u8,
    ts: Option<(u32, Instant)>,
    last: Instant,
    /// Heard something not yet answered.
    dirty: bool,
    last_answer: Option<Instant>,
    /// When the next Remote Hello is due (its interval), with a margin.
    quiet_after: Instant,
}

/// How often a destination answers one session at most (§2.4).
pub const REMOTE_IHU_INTERVAL: Duration = Duration::from_secs(1);

impl Responder {
    /// A responder signing with `key`. `counter_start` must exceed every counter this key ever
    /// signed (the daemon uses the wall clock in microseconds, §3.3).
    pub fn new(key: SigningKey, counter_start: u64, max_sessions: usize) -> Responder {
        Responder {
            key,
            counter: counter_start,
            sessions: BTreeMap::new(),
            max_sessions: max_sessions.max(1),
            refused: 0,
        }
    }

    /// The public key (to bind to our prefixes, §3.2).
    pub fn public_key(&self) -> [u8; 32] {
        *self.key.verifying_key().as_bytes()
    }

    /// §4.2.5: our Signed Claim (229) answering a neighbour's Claim Request: the `metric` we
    /// offer for the request's destination (our selected route's, 0 for a prefix we announce,
    /// `INFINITY` for none), signed for `owner`, one of our prefixes bound to our key.
    pub fn sign_claim(&self, r: &crate::ClaimRequest, metric: u16, owner: &Prefix) -> Vec<u8> {
        crate::encode_signed_claim(r, metric, owner, &self.key)
    }

    /// A Remote Hello for one of our prefixes arrived with IPv6 hop limit `hop_limit`.
    pub fn handle_remote_hello(
        &mut self,
        now: Instant,
        h: &RemoteHello,
        hop_limit: u8,
        ours: bool,
    ) -> bool {
        if !ours || h.interval == 0 || hop_limit > HOP_LIMIT || hop_limit == 0 {
            self.refused += 1;
            return false;
        }
        let hops = HOP_LIMIT - hop_limit + 1;
        let key = (h.origin, h.via, h.prefix);
        crate::bounded::make_room(&mut self.sessions, self.max_sessions, &key, |v| v.last);
        let e = self.sessions.entry(key).or_insert(Heard {
            highest: h.seqno,
            bitmap: 0,
            hops,
            ts: None,
            last: now,
            dirty: false,
            last_answer: None,
            quiet_after: now,
        });
        // §1.1: the fewest hops of the session. A new session starts when the Remote Hellos had
        // paused (the last one is more than 1.5 intervals old).
        if now > e.quiet_after {
            e.hops = hops;
        }
        e.hops = e.hops.min(hops);
        e.dirty = true;
        let iv = babel_core::from_centis(h.interval);
        e.quiet_after = now + iv + iv / 2;
        let ahead = h.seqno.wrapping_sub(e.highest);
        if ahead != 0 && ahead < 0x8000 {
            e.bitmap = if ahead >= 64 { 0 } else { e.bitmap << ahead };
            e.highest = h.seqno;
            e.bitmap |= 1;
        } else {
            let back = e.highest.wrapping_sub(h.seqno);
            if back < 64 {
                e.bitmap |= 1u64 << back;
            }
        }
        e.last = now;
        e.ts = h.timestamp.map(|t| (t, now));
        true
    }

    /// The signed Remote IHU TLV answering `origin` about `prefix` through `via`, if heard.
    pub fn answer(
        &mut self,
        now: Instant,
        origin: RouterId,
        via: RouterId,
        prefix: Prefix,
    ) -> Option<Vec<u8>> {
        let e = *self.sessions.get(&(origin, via, prefix))?;
        self.counter += 1;
        let ihu = RemoteIhu {
            rxcost: u16::from(e.hops).saturating_mul(96),
            interval: 100,
            origin,
            via,
            prefix,
            timestamp: e.ts.map(|(t, at)| IhuTimestamp {
                origin: t,
                receive: at.as_micros() as u32,
            }),
        };
        let _ = now;
        encode_signed_ihu(
            &ihu,
            &Report {
                counter: self.counter,
                hops: e.hops,
                highest_seqno: e.highest,
                bitmap: e.bitmap,
            },
            &self.key,
        )
    }

    /// The Remote IHUs due now (§2.4): per session heard since its last answer, one per
    /// [`REMOTE_IHU_INTERVAL`], and one as soon as the Remote Hellos stop (the next one is 1.5
    /// intervals late). Each is `(origin, via, prefix, TLV)`; the driver sends the TLV to the
    /// origin's address.
    pub fn poll_answers(&mut self, now: Instant) -> Vec<(RouterId, RouterId, Prefix, Vec<u8>)> {
        let due: Vec<(RouterId, RouterId, Prefix)> = self
            .sessions
            .iter()
            .filter(|(_, e)| {
                e.dirty
                    && (e.last_answer.is_none_or(|t| now >= t + REMOTE_IHU_INTERVAL)
                        || now >= e.quiet_after)
            })
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for (o, v, p) in due {
            if let Some(t) = self.answer(now, o, v, p) {
                if let Some(e) = self.sessions.get_mut(&(o, v, p)) {
                    e.dirty = false;
                    e.last_answer = Some(now);
                }
                out.push((o, v, p, t));
            }
        }
        out
    }

    /// When [`Responder::poll_answers`] has something next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter(|e| e.dirty)
            .map(|e| {
                e.last_answer
                    .map_or(e.last, |t| t + REMOTE_IHU_INTERVAL)
                    .min(e.quiet_after)
            })
            .min()
    }

    /// Sessions remembered.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The sessions remembered, against their bound.
    pub fn table_size(&self) -> crate::TableSize {
        crate::TableSize {
            name: "responder sessions",
            len: self.sessions.len(),
            max: self.max_sessions,
        }
    }
}
