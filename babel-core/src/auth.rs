//! RFC 8967 packet authentication with RFC 9467's relaxed PC check, sans IO: our Packet Counter
//! and Index per interface, each neighbour's Index and last PCs (one for multicast, one for
//! unicast), and the challenge (nonce) exchange. The MACs themselves are computed by
//! [`babel_wire::mac`]; [`crate::Engine`] calls [`Auth::preparse`] for every packet whose MAC
//! is valid and [`Auth::next_pc`] for every packet it signs. `spec/auth.md` has the rules and
//! where babeld 1.12 differs from the RFCs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use babel_wire::Message;
use babel_wire::mac::{INDEX_LEN, MacKey};
use blake2::Blake2sMac;
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac as _};
use tracing::debug;

use crate::output::Counters;
use crate::time::Instant;

/// Octets of the nonces we send in Challenge Requests (babeld: 8).
pub const NONCE_LEN: usize = 8;
/// At most one Challenge Request, and one Challenge Reply, per neighbour per this interval
/// (RFC 8967 §4.3 rate limiting; babeld: 300 ms).
pub const CHALLENGE_RATE_LIMIT: Duration = Duration::from_millis(300);
/// A nonce we sent is answered in time if the reply arrives within this (babeld: 30 s).
pub const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Authentication of one interface (babeld's interface options `key` and
/// `accept-bad-signatures`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MacAuth {
    /// Keys: every packet we send carries one MAC per key; a packet is accepted if any of its
    /// MACs matches any key (RFC 8967 §4.1, §4.3). babeld has one key per interface.
    pub keys: Vec<MacKey>,
    /// Process packets without a valid MAC anyway (counted), for migrating a network to
    /// authentication (babeld `accept-bad-signatures`). Their PC and challenge TLVs are ignored.
    pub accept_bad_signatures: bool,
}

impl MacAuth {
    /// Authentication with these keys, bad signatures refused.
    pub fn new(keys: Vec<MacKey>) -> MacAuth {
        MacAuth {
            keys,
            accept_bad_signatures: false,
        }
    }
}

/// A keyed-BLAKE2s counter-mode generator for Indexes and nonces. Seeded by the driver with OS
/// entropy ([`crate::EngineConfig::auth_entropy`]) so that they do not repeat across restarts: a
/// repeated Index would let old packets be replayed, a repeated nonce old replies.
#[derive(Clone)]
struct AuthRng {
    key: [u8; 32],
    counter: u64,
}

impl std::fmt::Debug for AuthRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthRng")
    }
}

impl AuthRng {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            self.counter = self.counter.wrapping_add(1);
            let block = match <Blake2sMac<U32> as KeyInit>::new_from_slice(&self.key) {
                Ok(mut m) => {
                    m.update(&self.counter.to_le_bytes());
                    m.finalize().into_bytes()
                }
                Err(_) => Default::default(),
            };
            for (o, b) in chunk.iter_mut().zip(block.iter()) {
                *o = *b;
            }
        }
    }
}

/// Our Packet Counter on one interface (RFC 8967 §4.2).
#[derive(Clone, Debug)]
struct OurPc {
    pc: u32,
    index: [u8; INDEX_LEN],
}

/// What we know of a neighbour's authentication (RFC 8967 §3.3, RFC 9467 §3.1).
#[derive(Clone, Debug, Default)]
struct NeighAuth {
    /// The Index it was last accepted with; `None` until a challenge succeeds.
    index: Option<Vec<u8>>,
    /// Last PC accepted in a packet sent to the multicast group.
    pc_multicast: u32,
    /// Last PC accepted in a packet sent to us (unicast).
    pc_unicast: u32,
    /// The nonce of our outstanding Challenge Request and its deadline.
    nonce: Option<([u8; NONCE_LEN], Instant)>,
    /// No Challenge Request to it before this.
    next_request: Option<Instant>,
    /// No Challenge Reply to it before this.
    next_reply: Option<Instant>,
}

/// The authentication state of an engine.
#[derive(Debug)]
pub(crate) struct Auth {
    rng: AuthRng,
    ours: BTreeMap<u32, OurPc>,
    neighbours: BTreeMap<(u32, IpAddr), NeighAuth>,
}

/// Outcome of [`Auth::preparse`].
#[derive(Debug, Default)]
pub(crate) struct Preparsed {
    /// Process the packet's other TLVs.
    pub accept: bool,
    /// Challenge Requests and Replies to send unicast to the sender.
    pub replies: Vec<Message>,
}

impl Auth {
    pub(crate) fn new(entropy: [u8; 32], seed: u64) -> Auth {
        // Tests and simulations leave the entropy at zero: the seed then keeps runs reproducible.
        let mut key = entropy;
        for (k, s) in key.iter_mut().zip(seed.to_le_bytes()) {
            *k ^= s;
        }
        Auth {
            rng: AuthRng { key, counter: 0 },
            ours: BTreeMap::new(),
            neighbours: BTreeMap::new(),
        }
    }

    /// RFC 8967 §4.2: the PC and Index for the next packet sent on `ifindex`. The PC increases
    /// by one per packet (unicast and multicast share it); a new random Index is drawn at the
    /// first packet and whenever the PC wraps to 0, as babeld does.
    pub(crate) fn next_pc(&mut self, ifindex: u32) -> (u32, [u8; INDEX_LEN]) {
        let rng = &mut self.rng;
        let ours = self.ours.entry(ifindex).or_insert_with(|| OurPc {
            pc: 0,
            index: [0; INDEX_LEN],
        });
        if ours.pc == 0 {
            rng.fill(&mut ours.index);
        }
        let out = (ours.pc, ours.index);
        ours.pc = ours.pc.wrapping_add(1);
        out
    }

    /// Forgets a neighbour (it was flushed): its next packet is challenged again.
    pub(crate) fn forget(&mut self, ifindex: u32, address: IpAddr) {
        self.neighbours.remove(&(ifindex, address));
    }

    /// The state of a neighbour, created if there is room (`limit` per interface); entries
    /// never accepted whose challenge expired make room first.
    fn entry(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: IpAddr,
        limit: usize,
    ) -> Option<&mut NeighAuth> {
        if !self.neighbours.contains_key(&(ifindex, src)) {
            let count = |m: &BTreeMap<(u32, IpAddr), NeighAuth>| {
                m.keys().filter(|(ix, _)| *ix == ifindex).count()
            };
            if count(&self.neighbours) >= limit {
                self.neighbours.retain(|(ix, _), n| {
                    *ix != ifindex
                        || n.index.is_some()
                        || n.nonce.is_some_and(|(_, deadline)| now <= deadline)
                });
                if count(&self.neighbours) >= limit {
                    return None;
                }
            }
        }
        Some(self.neighbours.entry((ifindex, src)).or_default())
    }

    /// RFC 8967 §4.3 steps after a valid MAC, with RFC 9467 §3.1's separate PCs: the packet's
    /// Challenge Requests are answered (unicast, rate limited; ignored if it was multicast), a
    /// Challenge Reply echoing our live nonce makes its Index and PC accepted; then the packet is
    /// processed only if it has a PC TLV (the first one counts) whose Index is the neighbour's and
    /// whose PC is larger than the last one accepted for packets sent the same way (multicast or
    /// unicast). An unknown Index triggers a Challenge Request with a fresh nonce.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn preparse(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: IpAddr,
        multicast: bool,
        msgs: &[Message],
        limit: usize,
        c: &mut Counters,
    ) -> Preparsed {
        let mut out = Preparsed::default();
        let mut pc_tlv: Option<(u32, &[u8])> = None;
        let mut request: Option<&[u8]> = None;
        let mut challenge_ok = false;
        let mut challenge = false;
        for m in msgs {
            match m {
                Message::Pc { pc, index } if pc_tlv.is_none() => pc_tlv = Some((*pc, index)),
                Message::ChallengeRequest { nonce } => {
                    if multicast {
                        c.auth_challenge_requests_ignored += 1;
                        debug!(ifindex, %src, "ignoring a challenge request sent to multicast");
                    } else {
                        request = Some(nonce);
                    }
                }
                Message::ChallengeReply { nonce } => {
                    let Some(n) = self.entry(now, ifindex, src, limit) else {
                        continue;
                    };
                    match n.nonce {
                        Some((ours, deadline)) if now <= deadline && ours[..] == nonce[..] => {
                            n.nonce = None;
                            challenge_ok = true;
                        }
                        _ => {
                            c.auth_challenge_replies_rejected += 1;
                            debug!(ifindex, %src, "challenge reply with a wrong or expired nonce");
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(n) = self.entry(now, ifindex, src, limit) else {
            c.neighbours_over_limit += 1;
            debug!(ifindex, %src, "dropping packet: too many authenticated neighbours");
            return out;
        };
        match pc_tlv {
            None => {
                c.auth_no_pc += 1;
                debug!(ifindex, %src, "dropping packet: valid MAC but no PC TLV");
            }
            Some((pc, index)) if challenge_ok => {
                c.auth_challenges_accepted += 1;
                debug!(ifindex, %src, pc, "challenge succeeded: index accepted");
                n.index = Some(index.to_vec());
                n.pc_multicast = pc;
                n.pc_unicast = pc;
                out.accept = true;
            }
            Some((pc, index)) if n.index.as_deref() != Some(index) => {
                c.auth_unknown_index += 1;
                debug!(ifindex, %src, pc, "dropping packet: unknown index, challenging");
                if n.next_request.is_none_or(|t| now >= t) {
                    n.next_request = Some(now + CHALLENGE_RATE_LIMIT);
                    challenge = true;
                }
            }
            Some((pc, _)) => {
                let last = if multicast {
                    &mut n.pc_multicast
                } else {
                    &mut n.pc_unicast
                };
                if pc <= *last {
                    c.auth_replayed += 1;
                    debug!(ifindex, %src, pc, last = *last, multicast,
                        "dropping packet: PC not larger than the last one (replay or reordering)");
                } else {
                    *last = pc;
                    out.accept = true;
                }
            }
        }
        if challenge {
            let mut nonce = [0u8; NONCE_LEN];
            self.rng.fill(&mut nonce);
            if let Some(n) = self.neighbours.get_mut(&(ifindex, src)) {
                n.nonce = Some((nonce, now + CHALLENGE_TIMEOUT));
                c.auth_challenges_sent += 1;
                out.replies.push(Message::ChallengeRequest {
                    nonce: nonce.to_vec(),
                });
            }
        }
        if let Some(nonce) = request
            && let Some(n) = self.neighbours.get_mut(&(ifindex, src))
        {
            if n.next_reply.is_none_or(|t| now >= t) {
                n.next_reply = Some(now + CHALLENGE_RATE_LIMIT);
                c.auth_challenges_answered += 1;
                out.replies.push(Message::ChallengeReply {
                    nonce: nonce.to_vec(),
                });
            } else {
                debug!(ifindex, %src, "challenge request not answered: rate limited");
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn src() -> IpAddr {
        "fe80::2".parse().unwrap()
    }

    fn pc(pc: u32, index: &[u8]) -> Message {
        Message::Pc {
            pc,
            index: index.to_vec(),
        }
    }

    fn t(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    /// Challenges the neighbour and answers with the nonce: its index is then known.
    fn establish(a: &mut Auth, c: &mut Counters, index: &[u8], at: u32) {
        let p = a.preparse(t(0), 1, src(), true, &[pc(at, index)], 16, c);
        assert!(!p.accept);
        let Some(Message::ChallengeRequest { nonce }) = p.replies.first() else {
            panic!("no challenge: {:?}", p.replies);
        };
        let reply = Message::ChallengeReply {
            nonce: nonce.clone(),
        };
        let p = a.preparse(t(10), 1, src(), false, &[reply, pc(at + 1, index)], 16, c);
        assert!(p.accept);
    }

    #[test]
    fn our_pc_increases_and_index_is_stable_until_wrap() {
        let mut a = Auth::new([7; 32], 0);
        let (p0, i0) = a.next_pc(1);
        let (p1, i1) = a.next_pc(1);
        assert_eq!((p0, p1), (0, 1));
        assert_eq!(i0, i1);
        assert_ne!(i0, [0; INDEX_LEN]);
        // Another interface has its own counter and index.
        let (q0, j0) = a.next_pc(2);
        assert_eq!(q0, 0);
        assert_ne!(i0, j0);
        // Wrapping draws a new index.
        a.ours.get_mut(&1).unwrap().pc = u32::MAX;
        let (pm, im) = a.next_pc(1);
        assert_eq!((pm, im), (u32::MAX, i0));
        let (pw, iw) = a.next_pc(1);
        assert_eq!(pw, 0);
        assert_ne!(iw, i0);
        // Other entropy, other index.
        assert_ne!(Auth::new([8; 32], 0).next_pc(1).1, i0);
    }

    #[test]
    fn unknown_index_is_challenged_rate_limited_and_dropped() {
        let mut a = Auth::new([1; 32], 0);
        let mut c = Counters::default();
        let p = a.preparse(t(0), 1, src(), true, &[pc(5, &[1; 8])], 16, &mut c);
        assert!(!p.accept);
        assert!(
            matches!(&p.replies[..], [Message::ChallengeRequest { nonce }] if nonce.len() == NONCE_LEN)
        );
        // 100 ms later: dropped, no new challenge (300 ms rate limit).
        let p = a.preparse(t(100), 1, src(), true, &[pc(6, &[1; 8])], 16, &mut c);
        assert!(!p.accept && p.replies.is_empty());
        // 400 ms: a new challenge with a fresh nonce.
        let p = a.preparse(t(400), 1, src(), true, &[pc(7, &[1; 8])], 16, &mut c);
        assert!(matches!(&p.replies[..], [Message::ChallengeRequest { .. }]));
        assert_eq!(c.auth_unknown_index, 3);
        assert_eq!(c.auth_challenges_sent, 2);
    }

    #[test]
    fn challenge_reply_accepts_index_and_pc_then_pcs_must_increase() {
        let mut a = Auth::new([1; 32], 0);
        let mut c = Counters::default();
        establish(&mut a, &mut c, &[9; 8], 100);
        assert_eq!(c.auth_challenges_accepted, 1);
        // Both counters start at the PC of the packet that carried the reply (101).
        fn a_pc(p: u32) -> Vec<Message> {
            vec![pc(p, &[9; 8])]
        }
        assert!(
            !a.preparse(t(20), 1, src(), true, &a_pc(101), 16, &mut c)
                .accept
        );
        assert!(
            !a.preparse(t(20), 1, src(), false, &a_pc(100), 16, &mut c)
                .accept
        );
        assert!(
            a.preparse(t(20), 1, src(), true, &a_pc(102), 16, &mut c)
                .accept
        );
        assert_eq!(c.auth_replayed, 2);
        // A replayed packet (same PC) is dropped.
        assert!(
            !a.preparse(t(30), 1, src(), true, &a_pc(102), 16, &mut c)
                .accept
        );
        assert_eq!(c.auth_replayed, 3);
        // A new index (the neighbour restarted) is challenged again.
        let p = a.preparse(t(1000), 1, src(), true, &[pc(0, &[3; 8])], 16, &mut c);
        assert!(!p.accept && !p.replies.is_empty());
    }

    /// RFC 9467 §3.1: multicast packets delayed behind unicast ones (Wi-Fi power save) are still
    /// accepted, because each kind has its own last PC; reordering within a kind is not.
    #[test]
    fn separate_pcs_for_multicast_and_unicast() {
        let mut a = Auth::new([1; 32], 0);
        let mut c = Counters::default();
        establish(&mut a, &mut c, &[9; 8], 10);
        let ix = [9u8; 8];
        // The sender sent multicast 12, 13, unicast 14, 15, multicast 16; unicast overtakes.
        assert!(
            a.preparse(t(50), 1, src(), false, &[pc(14, &ix)], 16, &mut c)
                .accept
        );
        assert!(
            a.preparse(t(51), 1, src(), false, &[pc(15, &ix)], 16, &mut c)
                .accept
        );
        assert!(
            a.preparse(t(52), 1, src(), true, &[pc(12, &ix)], 16, &mut c)
                .accept
        );
        assert!(
            a.preparse(t(53), 1, src(), true, &[pc(16, &ix)], 16, &mut c)
                .accept
        );
        // 13 arrives after 16 on multicast: reordered within the kind, dropped.
        assert!(
            !a.preparse(t(54), 1, src(), true, &[pc(13, &ix)], 16, &mut c)
                .accept
        );
        assert_eq!(c.auth_replayed, 1);
    }

    #[test]
    fn wrong_or_expired_nonce_is_not_a_success() {
        let mut a = Auth::new([1; 32], 0);
        let mut c = Counters::default();
        let p = a.preparse(t(0), 1, src(), true, &[pc(1, &[2; 8])], 16, &mut c);
        let Some(Message::ChallengeRequest { nonce }) = p.replies.first().cloned() else {
            panic!()
        };
        let mut wrong = nonce.clone();
        wrong[0] ^= 1;
        let r = |n: &Vec<u8>| Message::ChallengeReply { nonce: n.clone() };
        assert!(
            !a.preparse(
                t(5),
                1,
                src(),
                false,
                &[r(&wrong), pc(2, &[2; 8])],
                16,
                &mut c
            )
            .accept
        );
        // The right nonce, after 30 s, is too late.
        let late = t(0) + CHALLENGE_TIMEOUT + Duration::from_millis(1);
        assert!(
            !a.preparse(
                late,
                1,
                src(),
                false,
                &[r(&nonce), pc(3, &[2; 8])],
                16,
                &mut c
            )
            .accept
        );
        assert_eq!(c.auth_challenge_replies_rejected, 2);
        assert_eq!(c.auth_challenges_accepted, 0);
    }

    #[test]
    fn challenge_requests_answered_unicast_only_and_rate_limited() {
        let mut a = Auth::new([1; 32], 0);
        let mut c = Counters::default();
        let req = Message::ChallengeRequest { nonce: vec![4; 10] };
        // To multicast: ignored (and the unknown index is challenged).
        let p = a.preparse(
            t(0),
            1,
            src(),
            true,
            &[req.clone(), pc(1, &[2; 8])],
            16,
            &mut c,
        );
        assert!(
            !p.replies
                .iter()
                .any(|m| matches!(m, Message::ChallengeReply { .. }))
        );
        assert_eq!(c.auth_challenge_requests_ignored, 1);
        // Unicast: answered even though the packet itself is dropped (unknown index).
        let p = a.preparse(
            t(10),
            1,
            src(),
            false,
            &[req.clone(), pc(2, &[2; 8])],
            16,
            &mut c,
        );
        assert!(!p.accept);
        assert!(
            p.replies
                .contains(&Message::ChallengeReply { nonce: vec![4; 10] })
        );
        // Again within 300 ms: not answered.
        let p = a.preparse(
            t(100),
            1,
            src(),
            false,
            &[req.clone(), pc(3, &[2; 8])],
            16,
            &mut c,
        );
        assert!(
            !p.replies
                .iter()
                .any(|m| matches!(m, Message::ChallengeReply { .. }))
        );
        let p = a.preparse(t(400), 1, src(), false, &[req, pc(4, &[2; 8])], 16, &mut c);
        assert!(
            p.replies
                .iter()
                .any(|m| matches!(m, Message::ChallengeReply { .. }))
        );
        assert_eq!(c.auth_challenges_answered, 2);
    }

    #[test]
    fn no_pc_is_dropped_and_state_is_bounded() {
        let mut a = Auth::new([1; 32], 0);
        let mut c = Counters::default();
        let hello = Message::Pad1;
        assert!(
            !a.preparse(t(0), 1, src(), true, &[hello], 16, &mut c)
                .accept
        );
        assert_eq!(c.auth_no_pc, 1);
        for i in 0..10u16 {
            let s = IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 100 + i));
            a.preparse(t(0), 1, s, true, &[pc(1, &[2; 8])], 4, &mut c);
        }
        assert_eq!(a.neighbours.len(), 4);
        assert!(c.neighbours_over_limit > 0);
    }
}
