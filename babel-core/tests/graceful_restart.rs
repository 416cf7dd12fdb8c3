//! Issue 11 point 4: a router restarted after a crash keeps its neighbours routing through it.
//! A resumed engine ([`babel_core::EngineConfig::resume_hellos`], `resume_routes`) continues its Hello
//! seqnos, sends no wildcard retraction, tells no neighbour that the link is down before it could
//! hear it twice, and selects the previous run's next hop rather than a route echoed back through
//! itself. A fresh engine does none of this (babeld's behaviour).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use babel_core::{Engine, Instant, InterfaceConfig, InterfaceKind, RESUME_QUIET, ResumeRoute};
use babel_wire::Message;
use common::*;

/// The engine's first packets on coming up.
fn start(cfg: babel_core::EngineConfig) -> (H, Vec<Message>) {
    let now = Instant::from_secs(1000);
    let mut e = Engine::new(cfg, now).unwrap();
    e.interface_up(
        now,
        IF,
        InterfaceConfig::new("eth0", InterfaceKind::Wired, us()),
    );
    let mut h = H {
        e,
        now,
        hello_seq: Default::default(),
    };
    // Up to the first Hello (sent within 100 ms).
    h.advance(Duration::from_millis(200));
    let msgs = h.sent_messages();
    h.kernel();
    h.events();
    (h, msgs)
}

fn hello_seqnos(msgs: &[Message]) -> Vec<u16> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Hello(h) => Some(h.seqno),
            _ => None,
        })
        .collect()
}

fn wildcard_retraction(msgs: &[Message]) -> bool {
    msgs.iter()
        .any(|m| matches!(m, Message::Update(u) if u.prefix.is_none() && u.metric == u16::MAX))
}

fn infinite_ihu(msgs: &[Message]) -> bool {
    msgs.iter()
        .any(|m| matches!(m, Message::Ihu(i) if i.rxcost == u16::MAX))
}

#[test]
fn a_resumed_interface_continues_its_hello_seqnos_without_a_retraction() {
    let (_, fresh) = start(config());
    assert!(wildcard_retraction(&fresh), "babeld's start: {fresh:?}");

    let mut cfg = config();
    cfg.resume_hellos.insert("eth0".into(), 65535);
    let (mut h, resumed) = start(cfg);
    assert!(!wildcard_retraction(&resumed), "{resumed:?}");
    assert_eq!(
        hello_seqnos(&resumed),
        [0],
        "modulo 2^16, one after the last"
    );
    // Still asks for the neighbours' tables.
    assert!(
        resumed
            .iter()
            .any(|m| matches!(m, Message::RouteRequest(r) if r.prefix.is_none()))
    );
    h.advance(Duration::from_secs(4));
    assert_eq!(hello_seqnos(&h.sent_messages()), [1]);
}

#[test]
fn no_infinite_ihu_to_a_neighbour_not_yet_heard_twice_after_a_resumed_start() {
    // Fresh: a neighbour heard once gets an IHU saying "I do not hear you" (babeld does too).
    let (mut h, _) = start(config());
    let m = h.hello(nb(1));
    h.recv(nb(1), &[m]);
    h.advance(Duration::from_secs(1));
    assert!(infinite_ihu(&h.sent_messages()));

    let mut cfg = config();
    cfg.resume_hellos.insert("eth0".into(), 7);
    let (mut h, _) = start(cfg);
    let m = h.hello(nb(1));
    h.recv(nb(1), &[m]);
    h.advance(Duration::from_secs(1));
    let msgs = h.sent_messages();
    assert!(!infinite_ihu(&msgs), "{msgs:?}");
    // Heard twice: the IHU with the real cost goes out.
    let m = h.hello(nb(1));
    h.recv(nb(1), &[m]);
    h.advance(Duration::from_secs(4));
    let msgs = h.sent_messages();
    assert!(
        msgs.iter()
            .any(|m| matches!(m, Message::Ihu(i) if i.rxcost == 96)),
        "{msgs:?}"
    );
    // A neighbour lost after that is told so, as usual; and after the quiet window new ones are
    // too.
    h.advance(RESUME_QUIET);
    let m = h.hello(nb(2));
    h.recv(nb(2), &[m]);
    h.advance(Duration::from_secs(1));
    assert!(infinite_ihu(&h.sent_messages()));
}

/// A — us — C on one link without split horizon: C's route to A goes through us and comes back.
/// After a resumed start whose kernel routes sent A's prefix to A, C's echo is not selected
/// even when it arrives first; A's own route is. Without the resumed routes it would be (the
/// loop the wildcard retraction of a fresh start avoids by emptying the neighbours' tables).
#[test]
fn the_previous_next_hop_wins_over_a_route_echoed_back_through_us() {
    for resumed in [false, true] {
        let mut cfg = config();
        cfg.resume_hellos.insert("eth0".into(), 7);
        if resumed {
            cfg.resume_routes.push(ResumeRoute {
                prefix: pfx("2001:db8:a::/48"),
                src_prefix: None,
                ifindex: IF,
                next_hop: nb(1),
            });
        }
        let (mut h, _) = start(cfg);
        // C is up first and echoes A's prefix (metric 192: C → us → A).
        h.establish(nb(3));
        h.recv(nb(3), &[update("2001:db8:a::/48", 10, 5, 192)]);
        let echoed = h.installed("2001:db8:a::/48").map(|i| i.next_hop);
        if !resumed {
            assert_eq!(
                echoed,
                Some(nb(3)),
                "the loop a fresh start without retraction makes"
            );
            continue;
        }
        assert_eq!(echoed, None, "selected the echo through us");
        // A comes up with its own route: that one is selected.
        h.establish(nb(1));
        h.recv(nb(1), &[update("2001:db8:a::/48", 10, 5, 0)]);
        assert_eq!(
            h.installed("2001:db8:a::/48").map(|i| i.next_hop),
            Some(nb(1))
        );
    }
}

/// A destination the previous next hop never announces again is routed as usual when the window
/// ends; one it announced and then retracts, at once.
#[test]
fn the_guide_gives_way_to_a_retraction_and_to_time() {
    let guided = |h: &mut H| {
        h.establish(nb(3));
        h.recv(nb(3), &[update("2001:db8:b::/48", 11, 5, 100)]);
    };
    let mut cfg = config();
    cfg.resume_hellos.insert("eth0".into(), 7);
    cfg.resume_routes.push(ResumeRoute {
        prefix: pfx("2001:db8:b::/48"),
        src_prefix: None,
        ifindex: IF,
        next_hop: nb(1),
    });
    let (mut h, _) = start(cfg.clone());
    guided(&mut h);
    assert_eq!(h.installed("2001:db8:b::/48"), None);
    // C keeps talking; nothing else happens but time.
    for _ in 0..(RESUME_QUIET.as_secs() / 4 + 1) {
        let m = h.hello(nb(3));
        h.recv(nb(3), &[m, ihu(96)]);
        assert_eq!(h.installed("2001:db8:b::/48"), None);
        h.advance(Duration::from_secs(4));
    }
    assert_eq!(
        h.installed("2001:db8:b::/48").map(|i| i.next_hop),
        Some(nb(3)),
        "still guided after the window"
    );

    let (mut h, _) = start(cfg);
    guided(&mut h);
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:b::/48", 11, 5, 50)]);
    assert_eq!(
        h.installed("2001:db8:b::/48").map(|i| i.next_hop),
        Some(nb(1))
    );
    h.recv(nb(1), &[update("2001:db8:b::/48", 11, 5, u16::MAX)]);
    assert_eq!(
        h.installed("2001:db8:b::/48").map(|i| i.next_hop),
        Some(nb(3)),
        "the previous next hop retracted it"
    );
}
