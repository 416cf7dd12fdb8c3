//! RFC 8967 / RFC 9467 at the engine level: two engines on one link exchanging real signed
//! packets through a lossless virtual wire, plus an attacker that replays and alters them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::IpAddr;
use std::time::Duration;

use babel_core::{
    Counters, Destination, Engine, EngineConfig, Instant, InterfaceConfig, InterfaceKind,
    MacAlgorithm, MacAuth, MacKey, RouteKey, Transmit,
};
use babel_wire::mac::{MacCheck, PseudoHeader, verify};
use babel_wire::{DecodeOptions, Message, RouterId, decode};
use test_support::engines::{EnginePair, Node};

const IF: u32 = 1;

fn addr(n: u8) -> IpAddr {
    format!("fe80::{n}").parse().unwrap()
}

fn key(alg: MacAlgorithm, secret: &[u8]) -> MacKey {
    MacKey::new(alg, secret).unwrap()
}

fn node(n: u8, auth: Option<MacAuth>, mtu: usize) -> Node {
    let now = Instant::from_secs(100);
    let mut c = EngineConfig::new(RouterId([2, 0, 0, 0, 0, 0, 0, n]));
    c.seed = u64::from(n);
    c.auth_entropy = [n; 32];
    let mut e = Engine::new(c, now).unwrap();
    let mut ic = InterfaceConfig::new("eth0", InterfaceKind::Wired, addr(n));
    ic.auth = auth;
    ic.mtu = mtu;
    ic.unicast_hello_interval = Some(Duration::from_secs(2));
    e.interface_up(now, IF, ic);
    e.announce(
        now,
        RouteKey::new(format!("2001:db8:{n}::/48").parse().unwrap()),
        0,
    )
    .unwrap();
    Node { e, addr: addr(n) }
}

fn auth(keys: Vec<MacKey>) -> Option<MacAuth> {
    Some(MacAuth::new(keys))
}

/// A lossless link between the two engines (`captured`: every transmit of `b`, the attacker's
/// capture).
type Link = EnginePair;

fn link(a: Node, b: Node) -> Link {
    EnginePair::new(a, b, IF, Instant::from_secs(100))
}

trait Routes {
    fn a_has_b_route(&self) -> bool;
    fn b_has_a_route(&self) -> bool;
}

impl Routes for Link {
    fn a_has_b_route(&self) -> bool {
        self.a
            .e
            .installed(&RouteKey::new("2001:db8:2::/48".parse().unwrap()))
            .is_some()
    }

    fn b_has_a_route(&self) -> bool {
        self.b
            .e
            .installed(&RouteKey::new("2001:db8:1::/48".parse().unwrap()))
            .is_some()
    }
}

fn signed_pair(alg: MacAlgorithm) -> Link {
    let k = key(alg, b"shared secret");
    link(
        node(1, auth(vec![k.clone()]), 1500),
        node(2, auth(vec![k]), 1500),
    )
}

fn established(alg: MacAlgorithm) -> Link {
    let mut l = signed_pair(alg);
    l.run(Duration::from_secs(30));
    assert!(l.a_has_b_route() && l.b_has_a_route(), "{alg}: no routes");
    l
}

#[test]
fn same_key_hmac_sha256_neighbours_exchange_routes_after_challenges() {
    let l = established(MacAlgorithm::HmacSha256);
    for c in [l.a.e.counters(), l.b.e.counters()] {
        assert!(c.auth_challenges_sent >= 1, "{c:?}");
        assert!(c.auth_challenges_answered >= 1, "{c:?}");
        assert!(c.auth_challenges_accepted >= 1, "{c:?}");
        assert_eq!(c.auth_bad_mac + c.auth_no_mac + c.auth_replayed, 0, "{c:?}");
    }
}

#[test]
fn same_key_blake2s128_neighbours_exchange_routes() {
    let l = established(MacAlgorithm::Blake2s128);
    assert_eq!(l.a.e.counters().auth_bad_mac, 0);
}

/// RFC 8967 §4.2: every packet carries a PC TLV at the end of the body and a MAC computed with
/// the pseudo-header from the sender's address to the packet's destination.
#[test]
fn sent_packets_are_signed_for_their_destination() {
    let k = key(MacAlgorithm::HmacSha256, b"shared secret");
    let l = established(MacAlgorithm::HmacSha256);
    let mut unicast = 0;
    let mut last_pc = None;
    for t in &l.captured {
        let d = decode(&t.bytes, &DecodeOptions::default()).unwrap();
        let Some(Message::Pc { pc, index }) = d.packet.messages.last() else {
            panic!("no PC at the end of the body");
        };
        assert_eq!(index.len(), 8);
        // One PC per interface, increasing by one per packet, unicast and multicast alike.
        if let Some(p) = last_pc {
            assert_eq!(*pc, p + 1);
        }
        last_pc = Some(*pc);
        let dst = match t.dst {
            Destination::Multicast => IpAddr::V6(babel_wire::MULTICAST_V6),
            Destination::Unicast(a) => {
                unicast += 1;
                a
            }
        };
        let ph = PseudoHeader::babeld(addr(2), dst, 6696);
        let covered = &t.bytes[..d.body_end];
        assert_eq!(
            verify(covered, &d.packet.macs, std::slice::from_ref(&k), &ph),
            MacCheck::Valid
        );
        // Not valid for another destination.
        let other = PseudoHeader::babeld(addr(2), addr(9), 6696);
        assert_eq!(
            verify(covered, &d.packet.macs, std::slice::from_ref(&k), &other),
            MacCheck::Invalid
        );
    }
    assert!(unicast > 0, "challenges and unicast Hellos go unicast");
}

#[test]
fn different_keys_accept_nothing() {
    let mut l = link(
        node(1, auth(vec![key(MacAlgorithm::HmacSha256, b"one")]), 1500),
        node(2, auth(vec![key(MacAlgorithm::HmacSha256, b"two")]), 1500),
    );
    l.run(Duration::from_secs(30));
    assert!(!l.a_has_b_route() && !l.b_has_a_route());
    assert!(l.a.e.neighbours(l.now).is_empty());
    for c in [l.a.e.counters(), l.b.e.counters()] {
        assert!(c.auth_bad_mac > 5, "{c:?}");
        assert_eq!(
            c.auth_challenges_sent, 0,
            "no challenge without a valid MAC"
        );
    }
}

/// A key in the set that matches is enough (any MAC, any key): rollover from one key to two.
#[test]
fn any_matching_key_accepts() {
    let old = key(MacAlgorithm::HmacSha256, b"old");
    let new = key(MacAlgorithm::Blake2s128, b"new");
    let mut l = link(
        node(1, auth(vec![old.clone(), new.clone()]), 1500),
        node(2, auth(vec![new]), 1500),
    );
    l.run(Duration::from_secs(30));
    assert!(l.a_has_b_route() && l.b_has_a_route());
}

fn counters_delta(before: Counters, after: Counters) -> (u64, u64, u64) {
    (
        after.auth_replayed - before.auth_replayed,
        after.auth_bad_mac - before.auth_bad_mac,
        after.auth_unknown_index - before.auth_unknown_index,
    )
}

#[test]
fn replayed_packets_are_dropped_and_altered_ones_are_bad_macs() {
    let mut l = established(MacAlgorithm::HmacSha256);
    let old: Vec<Transmit> = l
        .captured
        .iter()
        .filter(|t| t.dst == Destination::Multicast)
        .cloned()
        .collect();
    assert!(old.len() > 3);
    let before = l.a.e.counters();
    for t in &old {
        l.a.e
            .handle_packet(l.now, IF, l.b.addr, Destination::Multicast, &t.bytes);
    }
    let after = l.a.e.counters();
    assert_eq!(counters_delta(before, after), (old.len() as u64, 0, 0));
    // One altered byte in the body: the MAC no longer matches.
    let mut bad = old[0].bytes.to_vec();
    bad[5] ^= 0x40;
    l.a.e
        .handle_packet(l.now, IF, l.b.addr, Destination::Multicast, &bad);
    assert_eq!(counters_delta(after, l.a.e.counters()), (0, 1, 0));
    // The same bytes sent to another destination (unicast to us) do not verify either.
    l.a.e.handle_packet(
        l.now,
        IF,
        l.b.addr,
        Destination::Unicast(l.a.addr),
        &old[1].bytes,
    );
    assert_eq!(l.a.e.counters().auth_bad_mac, after.auth_bad_mac + 2);
    // Nothing replayed created anything: the link still works.
    l.run(Duration::from_secs(20));
    assert!(l.a_has_b_route());
}

/// RFC 9467: B's multicast packets held back (Wi-Fi power save) and delivered after its later
/// unicast packets are still accepted.
#[test]
fn multicast_delayed_behind_unicast_is_accepted() {
    let mut l = established(MacAlgorithm::Blake2s128);
    // Let B send for a while without delivering anything.
    let mut held = Vec::new();
    let end = l.now + Duration::from_secs(10);
    while let Some(t) = l.b.e.poll_timeout().filter(|t| *t <= end) {
        l.now = l.now.max(t);
        l.b.e.handle_timeout(l.now);
        while let Some(t) = l.b.e.poll_transmit() {
            held.push(t);
        }
    }
    let (uni, multi): (Vec<_>, Vec<_>) = held
        .into_iter()
        .partition(|t| t.dst != Destination::Multicast);
    assert!(!uni.is_empty() && !multi.is_empty());
    let before = l.a.e.counters();
    for t in uni.iter().chain(&multi) {
        l.a.e.handle_packet(l.now, IF, l.b.addr, t.dst, &t.bytes);
    }
    assert_eq!(counters_delta(before, l.a.e.counters()), (0, 0, 0));
    // But multicast packets reordered among themselves: the older one is dropped.
    let mut l = established(MacAlgorithm::Blake2s128);
    let mut multi = Vec::new();
    let end = l.now + Duration::from_secs(12);
    while let Some(t) = l.b.e.poll_timeout().filter(|t| *t <= end) {
        l.now = l.now.max(t);
        l.b.e.handle_timeout(l.now);
        while let Some(t) = l.b.e.poll_transmit() {
            if t.dst == Destination::Multicast {
                multi.push(t);
            }
        }
    }
    assert!(multi.len() >= 2);
    let before = l.a.e.counters();
    let (first, rest) = multi.split_first().unwrap();
    for t in rest.iter().chain(std::iter::once(first)) {
        l.a.e.handle_packet(l.now, IF, l.b.addr, t.dst, &t.bytes);
    }
    assert_eq!(counters_delta(before, l.a.e.counters()), (1, 0, 0));
}

#[test]
fn accept_bad_signatures_processes_unsigned_packets_and_counts_them() {
    let mut a_auth = MacAuth::new(vec![key(MacAlgorithm::HmacSha256, b"k")]);
    a_auth.accept_bad_signatures = true;
    let mut l = link(node(1, Some(a_auth), 1500), node(2, None, 1500));
    l.run(Duration::from_secs(30));
    // B has no key: it ignores our PC and MACs; A accepts B's unsigned packets.
    assert!(l.a_has_b_route() && l.b_has_a_route());
    let c = l.a.e.counters();
    assert!(c.auth_no_mac > 0 && c.auth_accepted_unsigned == c.auth_no_mac + c.auth_bad_mac);
    // Without the option the same setup learns nothing from B.
    let mut l = link(
        node(1, auth(vec![key(MacAlgorithm::HmacSha256, b"k")]), 1500),
        node(2, None, 1500),
    );
    l.run(Duration::from_secs(30));
    assert!(!l.a_has_b_route());
    assert_eq!(l.a.e.counters().auth_accepted_unsigned, 0);
    assert!(l.a.e.counters().auth_no_mac > 0);
}

/// Signed packets still fit the MTU: room for the PC and the MACs is kept while packing.
#[test]
fn signed_packets_fit_the_mtu() {
    let k1 = key(MacAlgorithm::HmacSha256, b"a");
    let k2 = key(MacAlgorithm::Blake2s128, b"b");
    let mut l = link(
        node(1, auth(vec![k1.clone(), k2.clone()]), 1280),
        node(2, auth(vec![k1, k2]), 1280),
    );
    for i in 0..400u16 {
        l.b.e
            .announce(
                l.now,
                RouteKey::new(format!("2001:db8:ff:{i:x}::/64").parse().unwrap()),
                0,
            )
            .unwrap();
    }
    l.run(Duration::from_secs(30));
    let longest = l.captured.iter().map(|t| t.bytes.len()).max().unwrap();
    assert!(longest <= 1280 - 48, "{longest}");
    assert!(longest > 1100, "packets are still filled: {longest}");
    let learned = (0..400u16)
        .filter(|i| {
            l.a.e
                .installed(&RouteKey::new(
                    format!("2001:db8:ff:{i:x}::/64").parse().unwrap(),
                ))
                .is_some()
        })
        .count();
    assert_eq!(learned, 400);
}

/// `dump counters` lists every counter: the list is kept in step with the struct.
#[test]
fn named_counters_cover_every_field() {
    let c = Counters::default();
    let fields = format!("{c:?}").matches(": ").count();
    assert_eq!(c.named().len(), fields);
    assert!(c.named().iter().any(|(n, _)| *n == "auth_replayed"));
}
