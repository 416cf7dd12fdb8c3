//! RFC 9229 (IPv4 routes with an IPv6 next hop), one test per rule, driven through the public
//! API with real encoded packets. The AE 4 encoding itself (its own compression state, refusal
//! in IHU and Next Hop) is tested in babel-wire; here is what the engine does with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use babel_core::{InterfaceConfig, InterfaceKind, RouteKey, RouteOp};
use babel_wire::{INFINITY, Message};
use common::*;

fn via(m: Message) -> Message {
    match m {
        Message::Update(mut u) => {
            u.v4_via_v6 = true;
            Message::Update(u)
        }
        Message::RouteRequest(mut r) => {
            r.v4_via_v6 = true;
            Message::RouteRequest(r)
        }
        Message::SeqnoRequest(mut s) => {
            s.v4_via_v6 = true;
            Message::SeqnoRequest(s)
        }
        m => m,
    }
}

/// §2.1: an AE 4 update is an IPv4 route whose next hop is the IPv6 next hop, here the
/// packet's source (no Next Hop TLV); the kernel gets an IPv4 route with an IPv6 gateway.
#[test]
fn s2_1_ae4_update_installs_ipv4_route_via_ipv6_next_hop() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[via(update("10.1.0.0/16", 9, 3, 100))]);
    let k = h.kernel();
    let add = k
        .iter()
        .find(|c| c.prefix == pfx("10.1.0.0/16"))
        .expect("installed");
    assert_eq!(add.op, RouteOp::Add);
    assert!(add.next_hop.is_ipv6(), "{add:?}");
    assert_eq!(add.next_hop, nb(1));
}

/// §2.1: the same IPv4 prefix announced with AE 1 and with AE 4 is one destination: the AE 4
/// announcement updates the route learned with AE 1 instead of creating a second one.
#[test]
fn s2_1_ae1_and_ae4_name_the_same_destination() {
    let mut h = H::new();
    h.establish(nb(1));
    let mut ae1 = update("10.1.0.0/16", 9, 3, 300);
    if let Message::Update(u) = &mut ae1 {
        u.next_hop = Some("192.0.2.1".parse().unwrap());
    }
    h.recv(nb(1), &[ae1]);
    assert_eq!(
        h.installed("10.1.0.0/16").unwrap().next_hop,
        "192.0.2.1".parse::<IpAddr>().unwrap()
    );
    h.recv(nb(1), &[via(update("10.1.0.0/16", 9, 4, 100))]);
    let i = h.installed("10.1.0.0/16").unwrap();
    assert_eq!(i.next_hop, nb(1));
    assert_eq!(h.e.route_count(), 1);
}

/// §2.1: a retraction sent with AE 4 retracts the IPv4 route (held unreachable, as babeld).
#[test]
fn s2_1_ae4_retraction_retracts_the_ipv4_route() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[via(update("10.1.0.0/16", 9, 3, 100))]);
    assert!(h.installed("10.1.0.0/16").is_some());
    h.kernel();
    h.recv(nb(1), &[via(update("10.1.0.0/16", 9, 3, INFINITY))]);
    assert!(h.installed("10.1.0.0/16").is_none());
    assert!(
        h.kernel()
            .iter()
            .any(|c| c.op == RouteOp::Unreachable && c.prefix == pfx("10.1.0.0/16"))
    );
}

/// §2.2 (as babeld): a Route Request for an IPv4 prefix encoded with AE 4 is answered like one
/// with AE 1; on a link without IPv4 address the answer is itself AE 4.
#[test]
fn s2_2_ae4_route_request_is_answered() {
    let mut h = H::new();
    h.e.announce(h.now, RouteKey::new(pfx("10.9.0.0/16")), 0)
        .unwrap();
    h.establish(nb(1));
    h.advance(Duration::from_secs(20));
    h.sent();
    h.recv(nb(1), &[via(route_request(Some("10.9.0.0/16")))]);
    h.advance(Duration::from_millis(600));
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("10.9.0.0/16")) && u.v4_via_v6 && u.metric == 0),
        "{ups:?}"
    );
}

/// §2.2: a Seqno Request for our own IPv4 prefix with AE 4 makes us raise our seqno.
#[test]
fn s2_2_ae4_seqno_request_for_our_prefix_bumps_seqno() {
    let mut h = H::new();
    h.e.announce(h.now, RouteKey::new(pfx("10.9.0.0/16")), 0)
        .unwrap();
    h.establish(nb(1));
    h.advance(Duration::from_secs(20));
    h.sent();
    let before = h.e.seqno();
    h.recv(
        nb(1),
        &[via(seqno_request(
            "10.9.0.0/16",
            1,
            before.wrapping_add(1),
            4,
        ))],
    );
    h.advance(Duration::from_millis(600));
    assert_eq!(h.e.seqno(), before.wrapping_add(1));
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("10.9.0.0/16")) && u.seqno == before.wrapping_add(1)),
        "{ups:?}"
    );
}

/// §2 leaves sending AE 4 optional (babeld's `v4-via-v6 false`): on a link without an IPv4
/// address nothing IPv4 is announced, not even with AE 1, while IPv6 routes still are; on a
/// link with an IPv4 address the option does not matter (AE 1).
#[test]
fn s2_v4_via_v6_off_announces_no_ipv4_on_links_without_ipv4() {
    let mut h = H::new();
    let mut off = InterfaceConfig::new("eth1", InterfaceKind::Wired, "fe80::2".parse().unwrap());
    off.v4_via_v6 = false;
    h.e.interface_up(h.now, 2, off);
    let mut off_v4 = InterfaceConfig::new("eth2", InterfaceKind::Wired, "fe80::3".parse().unwrap());
    off_v4.v4_via_v6 = false;
    off_v4.ipv4 = Some("192.0.2.7".parse().unwrap());
    h.e.interface_up(h.now, 3, off_v4);
    h.sent();
    h.e.announce(h.now, RouteKey::new(pfx("10.9.0.0/16")), 0)
        .unwrap();
    h.e.announce(h.now, RouteKey::new(pfx("2001:db8:9::/48")), 0)
        .unwrap();
    h.advance(Duration::from_secs(20));
    let sent = h.updates_by_iface();
    let on = |ifindex: u32, p: &str| {
        sent.iter()
            .filter(|(i, u)| *i == ifindex && u.prefix == Some(pfx(p)))
            .map(|(_, u)| u.clone())
            .collect::<Vec<_>>()
    };
    assert!(on(2, "10.9.0.0/16").is_empty(), "{sent:?}");
    assert!(!on(2, "2001:db8:9::/48").is_empty(), "{sent:?}");
    let ae1 = on(3, "10.9.0.0/16");
    assert!(!ae1.is_empty(), "{sent:?}");
    assert!(ae1.iter().all(|u| !u.v4_via_v6), "{ae1:?}");
    // The default interface (v4-via-v6 on, no IPv4 address) uses AE 4.
    assert!(on(IF, "10.9.0.0/16").iter().all(|u| u.v4_via_v6));
    assert!(!on(IF, "10.9.0.0/16").is_empty());
}
