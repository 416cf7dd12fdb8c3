//! Unicast operation: `unicast` interfaces (babeld's option), unicast Hellos (RFC 8966 §3.4.1),
//! IHUs to unicast-only neighbours (§3.4.2), updates and requests sent unicast (§4, §3.7, §3.8),
//! configured neighbours (our `neighbour` option) and neighbours learned from unicast traffic.
//! Each test name starts with the section it checks; `spec/unicast.md` describes the behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use babel_core::{Destination, Engine, Instant, InterfaceConfig, InterfaceKind, RouteKey};
use babel_wire::{Hello, Ihu, IhuTimestamp, Message};
use common::*;

/// A harness whose interface 1 is `unicast`, with `neighbours` configured.
fn unicast_h(kind: InterfaceKind, neighbours: &[IpAddr]) -> H {
    let now = Instant::from_secs(1000);
    let mut e = Engine::new(config(), now).unwrap();
    let mut c = InterfaceConfig::new("wg0", kind, us());
    c.unicast = true;
    c.neighbours = neighbours.to_vec();
    e.interface_up(now, IF, c);
    H {
        e,
        now,
        hello_seq: Default::default(),
    }
}

fn uhello(seqno: u16, interval: u16) -> Message {
    Message::Hello(Hello {
        unicast: true,
        seqno,
        interval,
        timestamp: None,
    })
}

/// Makes `from` a neighbour through unicast only: two unicast Hellos and an IHU.
fn establish_unicast(h: &mut H, from: IpAddr) {
    h.recv_to(from, Destination::Unicast(us()), &[uhello(7, 400)]);
    h.recv_to(from, Destination::Unicast(us()), &[uhello(8, 400), ihu(96)]);
}

fn hellos(msgs: &[Message]) -> Vec<&Hello> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Hello(x) => Some(x),
            _ => None,
        })
        .collect()
}

fn has_ihu(msgs: &[Message]) -> bool {
    msgs.iter().any(|m| matches!(m, Message::Ihu(_)))
}

fn has_update(msgs: &[Message]) -> bool {
    msgs.iter().any(|m| matches!(m, Message::Update(_)))
}

#[test]
fn s3_4_1_unicast_interface_sends_unicast_hellos_with_the_neighbours_own_seqno() {
    let mut h = unicast_h(InterfaceKind::Wired, &[]);
    let a = nb(1);
    establish_unicast(&mut h, a);
    h.sent();
    h.advance(Duration::from_secs(17));
    let sent = h.sent();
    // The interface's multicast Hello still goes out, alone (babeld sends it too).
    let multicast: Vec<&Vec<Message>> = sent
        .iter()
        .filter(|(d, _)| *d == Destination::Multicast)
        .map(|(_, m)| m)
        .collect();
    assert!(multicast.len() >= 4, "{sent:?}");
    for m in &multicast {
        assert!(
            m.iter()
                .all(|x| matches!(x, Message::Hello(h) if !h.unicast)),
            "only multicast Hellos go to the group: {m:?}"
        );
    }
    // a gets scheduled unicast Hellos (U flag) with consecutive seqnos of its own.
    let to_a: Vec<Hello> = sent
        .iter()
        .filter(|(d, _)| *d == Destination::Unicast(a))
        .flat_map(|(_, m)| hellos(m).into_iter().cloned())
        .collect();
    assert!(to_a.len() >= 4, "{sent:?}");
    for w in to_a.windows(2) {
        assert!(w[0].unicast && w[1].unicast);
        assert_eq!(w[1].seqno, w[0].seqno.wrapping_add(1));
        assert_eq!(w[1].interval, 400);
    }
    let mseq: Vec<u16> = multicast
        .iter()
        .flat_map(|m| hellos(m).into_iter().map(|x| x.seqno))
        .collect();
    assert!(
        !to_a.iter().all(|x| mseq.contains(&x.seqno)),
        "the unicast seqno is not the interface's: {mseq:?} {to_a:?}"
    );
}

#[test]
fn s3_4_2_ihus_to_a_unicast_only_neighbour_ride_on_its_unicast_hellos() {
    let mut h = unicast_h(InterfaceKind::Tunnel, &[]);
    let a = nb(1);
    // a's Hellos carry timestamps: our IHU must echo them, in the packet of our own Hello.
    for s in 1..=2u16 {
        let m = Message::Hello(Hello {
            unicast: true,
            seqno: s,
            interval: 400,
            timestamp: Some(1000 * u32::from(s)),
        });
        h.recv_to(a, Destination::Unicast(us()), &[m]);
    }
    h.advance(Duration::from_secs(13));
    let sent = h.sent();
    let mut ihus = 0;
    for (d, m) in &sent {
        if has_ihu(m) {
            assert_eq!(
                *d,
                Destination::Unicast(a),
                "IHUs never go multicast: {m:?}"
            );
            let hs = hellos(m);
            assert!(
                hs.len() == 1 && hs[0].unicast && hs[0].timestamp.is_some(),
                "{m:?}"
            );
            for x in m {
                if let Message::Ihu(Ihu {
                    address, timestamp, ..
                }) = x
                {
                    assert_eq!(*address, Some(a));
                    assert!(matches!(timestamp, Some(IhuTimestamp { origin: 2000, .. })));
                }
            }
            ihus += 1;
        }
    }
    // A new neighbour gets one at once, then every third Hello: at least 2 in 13 s.
    assert!(ihus >= 2, "{sent:?}");
}

#[test]
fn s4_s3_7_updates_go_as_a_copy_to_each_neighbour_on_a_unicast_interface() {
    let mut h = unicast_h(InterfaceKind::Wired, &[]);
    let (a, b) = (nb(1), nb(2));
    establish_unicast(&mut h, a);
    establish_unicast(&mut h, b);
    h.sent();
    h.e.announce(h.now, key("2001:db8:7::/48"), 0).unwrap();
    h.recv_to(
        a,
        Destination::Unicast(us()),
        &[update("2001:db8:a::/48", 9, 1, 100)],
    );
    assert!(h.installed("2001:db8:a::/48").is_some());
    h.advance(Duration::from_secs(3));
    let sent = h.sent();
    assert!(
        sent.iter()
            .all(|(d, m)| *d != Destination::Multicast || !has_update(m)),
        "no Update goes to the group"
    );
    let prefixes_to = |who: IpAddr| -> Vec<String> {
        sent.iter()
            .filter(|(d, _)| *d == Destination::Unicast(who))
            .flat_map(|(_, m)| m.iter())
            .filter_map(|m| match m {
                Message::Update(u) if u.metric < INFINITY_M => u.prefix.map(|p| p.to_string()),
                _ => None,
            })
            .collect()
    };
    for who in [a, b] {
        assert!(
            prefixes_to(who).contains(&"2001:db8:7::/48".to_owned()),
            "{who}: {:?}",
            prefixes_to(who)
        );
        // Split horizon as babeld: per interface, so the route learned from a goes to neither
        // neighbour on it (wired).
        assert!(
            !prefixes_to(who).contains(&"2001:db8:a::/48".to_owned()),
            "{sent:?}"
        );
    }
}

#[test]
fn s3_7_4_tunnel_kind_has_no_split_horizon_so_unicast_copies_go_to_every_neighbour() {
    let mut h = unicast_h(InterfaceKind::Tunnel, &[]);
    let (a, b) = (nb(1), nb(2));
    establish_unicast(&mut h, a);
    establish_unicast(&mut h, b);
    h.recv_to(
        a,
        Destination::Unicast(us()),
        &[update("2001:db8:a::/48", 9, 1, 100)],
    );
    assert!(h.installed("2001:db8:a::/48").is_some());
    h.sent();
    h.advance(Duration::from_secs(3));
    let to_b = h
        .sent()
        .into_iter()
        .filter(|(d, _)| *d == Destination::Unicast(b))
        .flat_map(|(_, m)| m)
        .any(|m| matches!(m, Message::Update(u) if u.prefix == Some(pfx("2001:db8:a::/48"))));
    assert!(to_b, "b (a neighbour a cannot hear) learns a's route");
}

#[test]
fn s3_8_start_up_retraction_and_wildcard_request_go_unicast_to_configured_neighbours() {
    let a = nb(1);
    let mut h = unicast_h(InterfaceKind::Wired, &[a]);
    let sent = h.sent();
    let to_a: Vec<&Message> = sent
        .iter()
        .filter(|(d, _)| *d == Destination::Unicast(a))
        .flat_map(|(_, m)| m.iter())
        .collect();
    assert!(
        to_a.iter()
            .any(|m| matches!(m, Message::RouteRequest(r) if r.prefix.is_none())),
        "{sent:?}"
    );
    assert!(
        to_a.iter()
            .any(|m| matches!(m, Message::Update(u) if u.prefix.is_none())),
        "{sent:?}"
    );
    assert!(
        sent.iter().all(|(d, _)| *d != Destination::Multicast),
        "{sent:?}"
    );
    // A seqno request for a route we lost goes to a (unicast), not to the group.
    h.recv_to(a, Destination::Unicast(us()), &[uhello(1, 400)]);
    h.recv_to(a, Destination::Unicast(us()), &[uhello(2, 400), ihu(96)]);
    h.recv_to(
        a,
        Destination::Unicast(us()),
        &[update("2001:db8:a::/48", 9, 5, 100)],
    );
    h.sent();
    // An unfeasible update from a second neighbour triggers a seqno request.
    let b = nb(2);
    h.recv_to(b, Destination::Unicast(us()), &[uhello(1, 400)]);
    h.recv_to(b, Destination::Unicast(us()), &[uhello(2, 400), ihu(96)]);
    h.recv_to(
        a,
        Destination::Unicast(us()),
        &[update("2001:db8:a::/48", 9, 5, INFINITY_M)],
    );
    h.advance(Duration::from_millis(500));
    let sent = h.sent();
    assert!(
        sent.iter().all(|(d, m)| *d != Destination::Multicast
            || m.iter().all(|x| matches!(x, Message::Hello(_)))),
        "only Hellos go to the group: {sent:?}"
    );
}

const INFINITY_M: u16 = babel_wire::INFINITY;

#[test]
fn configured_neighbour_exists_from_start_gets_hello_copies_and_is_kept_while_silent() {
    let a = nb(1);
    let mut h = unicast_h(InterfaceKind::Wired, &[a]);
    let n = h.e.neighbours(h.now);
    assert_eq!(n.len(), 1, "there before anything is heard");
    assert_eq!((n[0].address, n[0].reach, n[0].ureach), (a, 0, 0));
    h.sent();
    h.advance(Duration::from_secs(400));
    assert_eq!(h.e.neighbours(h.now).len(), 1, "never flushed for silence");
    let sent = h.sent();
    let group: Vec<u16> = sent
        .iter()
        .filter(|(d, _)| *d == Destination::Multicast)
        .flat_map(|(_, m)| hellos(m).into_iter().map(|x| x.seqno))
        .collect();
    let copies: Vec<Hello> = sent
        .iter()
        .filter(|(d, _)| *d == Destination::Unicast(a))
        .flat_map(|(_, m)| hellos(m).into_iter().cloned())
        .collect();
    // Each interface Hello (U clear, interface seqno) is copied to it by unicast: babeld 1.12
    // keeps a neighbour only while its multicast history is not empty.
    assert!(copies.len() >= 95, "{}", copies.len());
    assert!(
        copies
            .iter()
            .all(|x| !x.unicast && group.contains(&x.seqno))
    );
    // Removing it from the configuration makes it an ordinary neighbour that expires.
    let c = InterfaceConfig {
        unicast: true,
        ..InterfaceConfig::new("wg0", InterfaceKind::Wired, us())
    };
    h.e.set_interface_config(h.now, IF, c).unwrap();
    h.advance(Duration::from_secs(20));
    assert!(h.e.neighbours(h.now).is_empty());
}

#[test]
fn configured_neighbour_heard_on_multicast_gets_no_hello_copy() {
    let a = nb(1);
    let mut h = unicast_h(InterfaceKind::Wired, &[a]);
    for _ in 0..4 {
        let m = h.hello(a);
        h.recv(a, &[m]);
    }
    h.recv(a, &[ihu(96)]);
    h.sent();
    h.advance(Duration::from_secs(3));
    let sent = h.sent();
    assert!(
        sent.iter()
            .filter(|(d, _)| *d == Destination::Unicast(a))
            .all(|(_, m)| hellos(m).is_empty()),
        "{sent:?}"
    );
}

#[test]
fn s3_2_4_neighbour_learned_from_unicast_traffic_alone_gets_routes_selected() {
    let mut h = unicast_h(InterfaceKind::Wired, &[]);
    let a = nb(1);
    // The first packet is an Update: the neighbour is created, and gets unicast Hellos at once.
    h.recv_to(
        a,
        Destination::Unicast(us()),
        &[update("2001:db8:a::/48", 9, 1, 100)],
    );
    assert_eq!(h.e.neighbours(h.now).len(), 1);
    h.advance(Duration::from_millis(300));
    let sent = h.sent();
    assert!(
        sent.iter()
            .any(|(d, m)| *d == Destination::Unicast(a) && hellos(m).iter().any(|x| x.unicast)),
        "{sent:?}"
    );
    establish_unicast(&mut h, a);
    h.recv_to(
        a,
        Destination::Unicast(us()),
        &[update("2001:db8:a::/48", 9, 2, 100)],
    );
    assert_eq!(h.installed("2001:db8:a::/48").unwrap().metric, 196);
    // And it stays while its unicast Hellos keep coming.
    for s in 9..60u16 {
        h.advance(Duration::from_secs(4));
        h.recv_to(a, Destination::Unicast(us()), &[uhello(s, 400), ihu(96)]);
    }
    assert_eq!(h.e.neighbours(h.now)[0].cost, 96);
}

#[test]
fn s3_4_1_unscheduled_unicast_hellos_keep_a_neighbour_alive() {
    // babeld with `unicast true` and timestamps sends only unscheduled unicast Hellos (interval
    // 0) with its IHUs; they do not move the history's clock, but the neighbour is heard.
    let mut h = unicast_h(InterfaceKind::Tunnel, &[]);
    let a = nb(1);
    for s in 1..120u16 {
        h.recv_to(a, Destination::Unicast(us()), &[uhello(s, 0), ihu(96)]);
        h.advance(Duration::from_secs(4));
    }
    let n = &h.e.neighbours(h.now)[0];
    assert_eq!((n.rxcost.0, n.cost.0), (96, 96), "{n:?}");
    // Silent for 190 s: the unicast history is stale, the link goes down.
    h.advance(Duration::from_secs(190));
    assert!(
        h.e.neighbours(h.now)
            .first()
            .is_none_or(|n| n.rxcost == INFINITY_M)
    );
}

#[test]
fn tunnel_kind_defaults_match_babeld() {
    let c = InterfaceConfig::new("wg0", InterfaceKind::Tunnel, us());
    assert!(
        c.timestamps,
        "enable-timestamps defaults to true on tunnels"
    );
    assert_eq!(c.max_rtt_penalty, 96);
    assert_eq!(c.rxcost, 96);
    assert!(!c.link_quality);
    assert!(
        !c.split_horizon,
        "babeld does split horizon on wired links only"
    );
    assert_eq!(c.hello_interval, Duration::from_secs(4));
    assert!(!c.unicast && c.neighbours.is_empty());
    let w = InterfaceConfig::new("eth0", InterfaceKind::Wired, us());
    assert!(w.split_horizon && !w.timestamps && w.max_rtt_penalty == 0);
    let _ = RouteKey::new(pfx("2001:db8::/32"));
}
