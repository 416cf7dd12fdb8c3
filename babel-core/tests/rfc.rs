//! Unit tests per RFC 8966 section (and babeld behaviour), driven through the public API with
//! real encoded packets. Each test name starts with the section it checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use babel_core::{
    CORRECTION_CEILING, Destination, EngineConfig, Event, InterfaceKind, Limits, Policy, RouteKey,
    RouteOp, SEQNO_REQUEST_HOP_COUNT,
};
use babel_wire::{INFINITY, Message, SeqnoRequest, Update};
use common::*;

#[test]
fn s3_1_s3_4_1_hellos_every_4s_with_increasing_seqno() {
    let mut h = H::new();
    h.advance(Duration::from_secs(17));
    let hellos: Vec<(u16, u16)> = h
        .sent_messages()
        .into_iter()
        .filter_map(|m| match m {
            Message::Hello(x) => Some((x.seqno, x.interval)),
            _ => None,
        })
        .collect();
    assert!((4..=5).contains(&hellos.len()), "{hellos:?}");
    for w in hellos.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1));
        assert_eq!(w[1].1, 400);
    }
}

#[test]
fn a2_1_two_out_of_three_needs_two_hellos_and_an_ihu() {
    let mut h = H::new();
    let a = nb(1);
    let h1 = h.hello(a);
    h.recv(a, &[h1]);
    assert_eq!(
        h.e.neighbours(h.now)[0].rxcost,
        INFINITY,
        "one Hello is not enough"
    );
    let h2 = h.hello(a);
    h.recv(a, &[h2]);
    let n = &h.e.neighbours(h.now)[0];
    assert_eq!(n.rxcost, 96);
    assert_eq!(n.cost, INFINITY, "no IHU yet: txcost infinite");
    h.recv(a, &[ihu(96)]);
    assert_eq!(h.e.neighbours(h.now)[0].cost, 96);
}

#[test]
fn a1_missed_hellos_make_the_link_fail_and_the_neighbour_flush() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8::/64", 9, 1, 100)]);
    assert!(h.installed("2001:db8::/64").is_some());
    h.kernel();
    // 1.7 intervals: one miss (2-out-of-3 still up); two misses: down.
    h.advance(Duration::from_secs(7));
    assert_eq!(h.e.neighbours(h.now)[0].rxcost, 96);
    h.advance(Duration::from_secs(5));
    assert_eq!(h.e.neighbours(h.now)[0].rxcost, INFINITY);
    assert!(h.installed("2001:db8::/64").is_none());
    // babeld holds the lost destination: an unreachable kernel route, shown installed with an
    // infinite metric, until the neighbour (and so the route) is flushed.
    assert!(h.kernel().iter().any(|c| c.op == RouteOp::Unreachable));
    let r = &h.e.routes(h.now)[0];
    assert!(r.installed && r.metric == INFINITY, "{r:?}");
    h.advance(Duration::from_secs(300));
    assert!(h.e.neighbours(h.now).is_empty(), "flushed");
    assert!(h.e.routes(h.now).is_empty());
    assert!(h.kernel().iter().any(|c| c.op == RouteOp::Delete));
}

#[test]
fn a1_neighbour_reboot_resets_the_history() {
    let mut h = H::new();
    h.establish(nb(1));
    for _ in 0..10 {
        let m = h.hello(nb(1));
        h.recv(nb(1), &[m]);
    }
    h.hello_seq.insert(nb(1), 0);
    let m = h.hello(nb(1));
    h.recv(nb(1), &[m]);
    assert_eq!(
        h.e.neighbours(h.now)[0].reach,
        0x8000,
        "seqno jumped back: history restarted"
    );
}

#[test]
fn s3_4_1_unicast_hellos_have_their_own_history() {
    let mut h = H::new();
    let a = nb(1);
    for s in 1..=3 {
        let m = Message::Hello(babel_wire::Hello {
            unicast: true,
            seqno: 500 + s,
            interval: 400,
            timestamp: None,
        });
        h.recv_to(a, Destination::Unicast(us()), &[m]);
    }
    let n = &h.e.neighbours(h.now)[0];
    assert_eq!(n.ureach, 0xE000);
    assert_eq!(n.reach, 0);
    assert_eq!(n.rxcost, 96, "2-out-of-3 also over the unicast history");
    // A unicast Hello received on multicast violates the RFC.
    let m = Message::Hello(babel_wire::Hello {
        unicast: true,
        seqno: 504,
        interval: 400,
        timestamp: None,
    });
    h.recv(a, &[m]);
    assert_eq!(dropped(&h), 1, "dropped by the decoder or the engine");
}

#[test]
fn a2_2_etx_on_wireless_links() {
    let mut h = H::with(config(), InterfaceKind::Wireless);
    h.establish(nb(1));
    // Two Hellos received out of two: weighted reach 0x4000 → 256 * 32768 / (0x4000+1) = 511.
    let n = &h.e.neighbours(h.now)[0];
    assert_eq!(n.rxcost, 511, "{n:?}");
    for _ in 0..16 {
        let m = h.hello(nb(1));
        h.recv(nb(1), &[m]);
    }
    let n = &h.e.neighbours(h.now)[0];
    assert_eq!(n.rxcost, 256, "{n:?}");
    // cost = max(tx,256)*max(rx,256)/256 with txcost 96 → 256.
    assert_eq!(n.cost, 256);
}

#[test]
fn s3_4_2_ihus_every_third_hello_and_txcost_expiry() {
    let mut h = H::new();
    h.establish(nb(1));
    h.sent();
    // Keep the neighbour alive with Hellos but no IHUs.
    let mut ihus = 0;
    let mut hellos = 0;
    for _ in 0..12 {
        h.advance(Duration::from_secs(4));
        let m = h.hello(nb(1));
        h.recv(nb(1), &[m]);
        for m in h.sent_messages() {
            match m {
                Message::Ihu(i) => {
                    ihus += 1;
                    assert_eq!(i.interval, 1200, "advertised IHU interval = 3 × Hello");
                    assert_eq!(i.address, Some(nb(1)));
                }
                Message::Hello(_) => hellos += 1,
                _ => {}
            }
        }
    }
    assert!(
        ihus * 3 <= hellos + 3 && ihus * 3 >= hellos - 3,
        "{ihus} IHUs for {hellos} Hellos"
    );
    // No IHU for 48 s (4 advertised IHU intervals) but Hellos keep arriving: babeld keeps the
    // txcost (an IHU or two were probably lost) until 10 intervals have passed.
    assert_eq!(h.e.neighbours(h.now)[0].txcost, 96);
    for _ in 0..18 {
        h.advance(Duration::from_secs(4));
        let m = h.hello(nb(1));
        h.recv(nb(1), &[m]);
        h.sent();
    }
    // 120 s = 10 × 12 s without an IHU: txcost expired.
    assert_eq!(h.e.neighbours(h.now)[0].txcost, INFINITY);
    assert_eq!(h.e.neighbours(h.now)[0].cost, INFINITY);
}

#[test]
fn s3_4_2_ihu_for_someone_else_is_ignored() {
    let mut h = H::new();
    let a = nb(1);
    let (h1, h2) = (h.hello(a), h.hello(a));
    h.recv(a, &[h1]);
    h.recv(a, &[h2]);
    let other = Message::Ihu(babel_wire::Ihu {
        address: Some(nb(7)),
        rxcost: 96,
        interval: 1200,
        timestamp: None,
    });
    h.recv(a, &[other]);
    assert_eq!(h.e.neighbours(h.now)[0].txcost, INFINITY);
    // An IHU with interval 0 violates §4.6.6.
    let bad = Message::Ihu(babel_wire::Ihu {
        address: None,
        rxcost: 96,
        interval: 0,
        timestamp: None,
    });
    h.recv(a, &[bad]);
    assert_eq!(dropped(&h), 1, "dropped by the decoder or the engine");
}

#[test]
fn s3_5_3_route_acquisition_installs_and_metric_adds_link_cost() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 200)]);
    let i = h.installed("2001:db8:1::/48").unwrap();
    assert_eq!(i.metric, 296);
    assert_eq!(i.next_hop, nb(1));
    assert_eq!(i.router_id, rid(9));
    let k = h.kernel();
    assert_eq!(k.len(), 1);
    assert_eq!(k[0].op, RouteOp::Add);
    assert_eq!(k[0].ifindex, IF);
    // Update from a neighbour with infinite cost is stored but not selectable.
    h.recv(nb(2), &[update("2001:db8:2::/48", 9, 7, 200)]);
    assert!(h.installed("2001:db8:2::/48").is_none());
}

#[test]
fn s3_5_3_route_expiry_and_s3_8_2_3_refresh_request() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 200)]);
    h.sent();
    // Keep the link up (Hellos + IHUs) but send no more updates.
    let mut requested = false;
    for _ in 0..20 {
        h.advance(Duration::from_secs(3));
        let m = h.hello(nb(1));
        h.recv(nb(1), &[m, ihu(96)]);
        for (dst, msgs) in h.sent() {
            for m in msgs {
                if let Message::RouteRequest(r) = m
                    && r.prefix.is_some()
                {
                    assert_eq!(dst, Destination::Unicast(nb(1)));
                    requested = true;
                }
            }
        }
    }
    assert!(
        requested,
        "a unicast route request before expiry (§3.8.2.3)"
    );
    assert!(
        h.installed("2001:db8:1::/48").is_none(),
        "expired after 3.5 × 16 s"
    );
    let routes = h.e.routes(h.now);
    assert!(routes.is_empty() || routes[0].refmetric == INFINITY);
    h.advance(Duration::from_secs(60));
    assert!(h.e.routes(h.now).is_empty(), "flushed after the hold time");
}

#[test]
fn s3_5_4_retraction_holds_the_destination_and_is_propagated_urgently() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 200)]);
    h.advance(Duration::from_secs(3));
    h.sent();
    h.kernel();
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, INFINITY)]);
    assert!(h.installed("2001:db8:1::/48").is_none());
    // Held as babeld holds it: an unreachable kernel route, `installed yes metric 65535`.
    assert_eq!(h.kernel()[0].op, RouteOp::Unreachable);
    let r = &h.e.routes(h.now)[0];
    assert!(r.installed && r.metric == INFINITY, "{r:?}");
    h.advance(Duration::from_millis(250));
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("2001:db8:1::/48")) && u.metric == INFINITY)
    );
    // A route again ends the hold with an ordinary install (the kernel replaces the
    // unreachable route).
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 200)]);
    assert!(h.installed("2001:db8:1::/48").is_some());
    assert_eq!(h.kernel()[0].op, RouteOp::Add);
}

/// Two neighbours; nb(1)'s route to 2001:db8:1::/48 was installed, then retracted: held.
fn held_by_two_neighbours() -> H {
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 200)]);
    h.kernel();
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, INFINITY)]);
    assert_eq!(h.kernel()[0].op, RouteOp::Unreachable);
    h
}

#[test]
fn held_destination_leaves_the_kernel_with_its_route_after_the_hold_time() {
    let mut h = held_by_two_neighbours();
    // Neighbours stay up; the retracted route is removed after babeld's hold time (6 update
    // intervals of 16 s), and its unreachable kernel route with it.
    for _ in 0..30 {
        h.advance(Duration::from_secs(4));
        let (h1, h2) = (h.hello(nb(1)), h.hello(nb(2)));
        h.recv(nb(1), &[h1, ihu(96)]);
        h.recv(nb(2), &[h2, ihu(96)]);
    }
    assert!(h.e.routes(h.now).is_empty());
    let k = h.kernel();
    assert_eq!(k.len(), 1, "{k:?}");
    assert_eq!(k[0].op, RouteOp::Delete);
    assert_eq!(k[0].prefix, pfx("2001:db8:1::/48"));
}

#[test]
fn held_destination_is_replaced_by_another_neighbours_route() {
    let mut h = held_by_two_neighbours();
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 8, 300)]);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(2));
    assert_eq!(h.kernel()[0].op, RouteOp::Add);
    let shown: Vec<_> =
        h.e.routes(h.now)
            .into_iter()
            .filter(|r| r.installed)
            .map(|r| r.via)
            .collect();
    assert_eq!(shown, vec![nb(2)], "only the new route shows installed");
}

#[test]
fn fee_unchanged_costs_nothing_and_a_change_adds_no_packet() {
    let mut cfg = config();
    cfg.fee = 5;
    let mut h = H::with(cfg, InterfaceKind::Wired);
    h.establish(nb(1));
    h.recv(nb(1), &[priced("2001:db8:1::/48", 9, 7, 100, 7)]);
    h.advance(Duration::from_secs(3));
    h.sent();
    let before = h.e.poll_timeout();
    let sent = h.e.counters().updates_sent;
    // rita repeats `fee` every 60 s: the same fee is a no-op.
    h.e.set_fee(h.now, 5);
    assert_eq!(h.e.poll_timeout(), before, "no timer armed");
    // A new fee is recomputed at once but, as in Althea's fork, sends nothing by itself.
    h.e.set_fee(h.now, 6);
    assert_eq!(h.e.routes(h.now)[0].price, 13);
    assert_eq!(h.e.poll_timeout(), before, "no timer armed");
    assert!(h.e.poll_transmit().is_none());
    assert_eq!(h.e.counters().updates_sent, sent);
}

#[test]
fn s4_6_9_wildcard_retraction_retracts_everything_from_the_neighbour() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(
        nb(1),
        &[
            update("2001:db8:1::/48", 9, 7, 200),
            update("2001:db8:2::/48", 9, 7, 200),
        ],
    );
    assert!(h.installed("2001:db8:2::/48").is_some());
    let wild = Message::Update(Update {
        prefix: None,
        v4_via_v6: false,
        src_prefix: None,
        interval: 1600,
        seqno: 0,
        metric: INFINITY,
        router_id: None,
        next_hop: None,
        price: None,
        path_rtt: None,
        diversity: None,
    });
    h.recv(nb(1), &[wild]);
    assert!(h.installed("2001:db8:1::/48").is_none());
    assert!(h.installed("2001:db8:2::/48").is_none());
}

/// nb(1) and nb(2) on IF; 2001:db8:1::/48 learned from nb(1) (router 9, seqno 7, metric
/// 100) and advertised on the second interface (split horizon keeps it off IF), so that the
/// feasibility distance (7, 196) exists.
fn advertised_through_nb1() -> H {
    let mut h = H::new();
    second_interface(&mut h);
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    h.advance(Duration::from_secs(3));
    h.sent();
    h
}

#[test]
fn s3_5_1_unfeasible_update_is_not_selected_and_triggers_a_seqno_request() {
    let mut h = advertised_through_nb1();
    // Lose the route; a worse one with the same seqno is unfeasible.
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, INFINITY)]);
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 7, 300)]);
    assert!(
        h.installed("2001:db8:1::/48").is_none(),
        "unfeasible: (7, 300) vs FD (7, 196)"
    );
    let reqs: Vec<Message> = h
        .sent_messages()
        .into_iter()
        .filter(|m| matches!(m, Message::SeqnoRequest(_)))
        .collect();
    assert!(!reqs.is_empty());
    if let Message::SeqnoRequest(s) = &reqs[0] {
        assert_eq!(s.seqno, 8, "FD seqno + 1");
        assert_eq!(s.hop_count, SEQNO_REQUEST_HOP_COUNT);
        assert_eq!(s.router_id, rid(9));
    }
    // The source answers with seqno 8: feasible, selected.
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 8, 300)]);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().metric, 396);
}

#[test]
fn s3_6_selection_lowest_metric_with_hysteresis() {
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 300)]);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(1));
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 7, 100)]);
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().via,
        nb(2),
        "strictly better: switch"
    );
    assert_eq!(h.kernel().last().unwrap().op, RouteOp::Replace);
    // Equal metric never causes a switch (smoothed metrics not strictly smaller).
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(2));
}

#[test]
fn a3_smoothing_delays_a_switch_after_the_current_route_improves() {
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 1000)]);
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 7, 2000)]);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(1));
    // nb(1) gets worse (feasible: newer seqno), nb(2) is now better but its smoothed metric is
    // still higher than nb(1)'s, which remembers 1096: no immediate switch.
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 8, 3000)]);
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 8, 2000)]);
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().via,
        nb(1),
        "hysteresis"
    );
    for _ in 0..5 {
        h.advance(Duration::from_secs(4));
        let (a, b) = (h.hello(nb(1)), h.hello(nb(2)));
        h.recv(nb(1), &[a, ihu(96)]);
        h.recv(nb(2), &[b, ihu(96)]);
    }
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 8, 3000)]);
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 8, 2000)]);
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().via,
        nb(2),
        "after smoothing"
    );
}

#[test]
fn a3_a_route_whose_link_failed_and_came_back_waits_for_its_smoothed_metric() {
    // A lossy wired link: the 2-out-of-3 rule makes nb(1)'s link infinite now and then (here
    // its IHU says so). The route through nb(1) is then left for the one through nb(2) at once;
    // when the link comes back its smoothed metric starts from infinity, as babeld's does, so
    // the traffic does not go straight back onto the link that just failed (issue 18: on the
    // lossy ring this flapped twice a minute).
    let p = "2001:db8:1::/48";
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    let tick = |h: &mut H, rx1: u16| {
        h.advance(Duration::from_secs(4));
        let (a, b) = (h.hello(nb(1)), h.hello(nb(2)));
        h.recv(nb(1), &[a, ihu(rx1), update(p, 9, 7, 100)]);
        h.recv(nb(2), &[b, ihu(96), update(p, 9, 7, 150)]);
    };
    tick(&mut h, 96);
    assert_eq!(h.installed(p).unwrap().via, nb(1), "196 against 246");
    tick(&mut h, INFINITY);
    assert_eq!(
        h.installed(p).unwrap().via,
        nb(2),
        "link lost: moved at once"
    );
    // Back at 196 against 246: its smoothed metric falls from infinity, halving its distance
    // every 4 s (the half-life), and is under 246 only after about 41 s.
    let mut moved_back = None;
    for step in 1..=15 {
        tick(&mut h, 96);
        if h.installed(p).unwrap().via == nb(1) {
            moved_back = Some(step * 4);
            break;
        }
    }
    assert!(
        moved_back.is_some_and(|secs| secs > 36),
        "moved back after {moved_back:?} s"
    );
}

#[test]
fn a3_a_route_learned_before_its_link_came_up_is_taken_at_its_metric() {
    // nb(1)'s Update arrives with its first Hello, before any IHU: its link cost, and so the
    // route's metric, is infinite. When the IHU comes the route is new in all but name (it
    // never had a usable metric), so it is selected at once on its metric, 196 against 246,
    // instead of waiting some 40 s for a smoothed metric falling from infinity. (On a 1,000-node
    // start-up, waits like this one, chained hop after hop, were half the time to converge.)
    let p = "2001:db8:1::/48";
    let mut h = H::new();
    h.establish(nb(2));
    h.advance(Duration::from_secs(1));
    let b = h.hello(nb(2));
    h.recv(nb(2), &[b, ihu(96), update(p, 9, 7, 150)]);
    let a = h.hello(nb(1));
    h.recv(nb(1), &[a, update(p, 9, 7, 100)]);
    assert_eq!(
        h.installed(p).unwrap().via,
        nb(2),
        "nb(1) has not heard us: its route is unusable"
    );
    h.advance(Duration::from_secs(4));
    let a = h.hello(nb(1));
    h.recv(nb(1), &[a, ihu(96), update(p, 9, 7, 100)]);
    assert_eq!(
        h.installed(p).unwrap().via,
        nb(1),
        "the link came up for the first time: its route is taken on its metric"
    );
}

#[test]
fn a3_a_switch_the_hysteresis_delays_happens_when_the_smoothed_metrics_cross() {
    // nb(1)'s route (196) is selected over nb(2)'s (246). nb(1)'s link cost rises to 296: its
    // route is 396 now and nb(2)'s is better, but the selected route's smoothed metric climbs
    // from 196 with the 4 s half-life (linearly within a half-life: 396 - 200 * (1 - t/8)) and
    // passes 246 at t = 2 s. The switch happens then, with no Update in between; before, it
    // waited for the destination's next Update.
    let p = "2001:db8:1::/48";
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    h.advance(Duration::from_secs(1));
    let (a, b) = (h.hello(nb(1)), h.hello(nb(2)));
    h.recv(nb(1), &[a, ihu(96), update(p, 9, 7, 100)]);
    h.recv(nb(2), &[b, ihu(96), update(p, 9, 7, 150)]);
    assert_eq!(h.installed(p).unwrap().via, nb(1), "196 against 246");
    h.recv(nb(1), &[ihu(296)]);
    let changed = h.now;
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.installed(p).unwrap().metric,
        babel_wire::Metric(396),
        "the link cost rose"
    );
    assert_eq!(
        h.installed(p).unwrap().via,
        nb(1),
        "smoothed: 196 against 246"
    );
    h.advance(Duration::from_millis(1900));
    assert_eq!(
        h.installed(p).unwrap().via,
        nb(1),
        "smoothed: 243 against 246"
    );
    assert!(
        h.e.poll_timeout()
            .is_some_and(|t| t.saturating_since(changed) <= Duration::from_millis(2001)),
        "the next deadline is the crossing"
    );
    h.advance(Duration::from_millis(200));
    assert_eq!(
        h.installed(p).unwrap().via,
        nb(2),
        "the smoothed metrics crossed at 2 s"
    );
}

#[test]
fn s3_7_1_periodic_full_dump_with_own_prefix_and_price_0() {
    let mut h = H::new();
    h.e.announce(h.now, key("2001:db8:ff::/48"), 0).unwrap();
    h.advance(Duration::from_secs(21));
    let ups = updates_in(&h.sent_messages());
    let own: Vec<&Update> = ups
        .iter()
        .filter(|u| u.prefix == Some(pfx("2001:db8:ff::/48")))
        .collect();
    assert!(own.len() >= 2, "triggered + periodic: {own:?}");
    assert!(own.iter().all(|u| u.metric == 0
        && u.price == Some(0)
        && u.seqno == 100
        && u.router_id == Some(rid(1))));
    assert!(own.iter().all(|u| u.interval == 1600));
}

#[test]
fn s3_7_4_split_horizon_on_wired_not_on_wireless() {
    for (kind, expect) in [
        (InterfaceKind::Wired, false),
        (InterfaceKind::Wireless, true),
    ] {
        let mut h = H::with(config(), kind);
        h.establish(nb(1));
        h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
        h.advance(Duration::from_secs(40));
        let ups = updates_in(&h.sent_messages());
        let echoed = ups
            .iter()
            .any(|u| u.prefix == Some(pfx("2001:db8:1::/48")) && u.metric < INFINITY);
        assert_eq!(echoed, expect, "{kind:?}");
    }
}

/// RFC 8966 §3.7.4 says what split horizon keeps off an interface, not what the neighbours
/// there hold from before. When the selected route moves onto a split-horizon interface, the
/// update buffered for it there is a retraction, once: the neighbours drop the route we
/// advertised to them, instead of keeping a stale claim until it expires. Later triggered
/// updates and dumps send nothing there, as before.
#[test]
fn s3_7_4_a_route_moving_onto_a_split_horizon_interface_is_retracted_there_once() {
    const IF2: u32 = 2;
    let p = "2001:db8:1::/48";
    let mut h = H::new();
    let c_addr = "fe80::2".parse().unwrap();
    let c = babel_core::InterfaceConfig::new("eth1", InterfaceKind::Wired, c_addr);
    h.e.interface_up(h.now, IF2, c);
    let recv2 = |h: &mut H, msgs: &[Message]| {
        let opts = babel_wire::EncodeOptions::default();
        for pk in babel_wire::encode(msgs, &opts).unwrap() {
            h.e.handle_packet(h.now, IF2, nb(2), Destination::Multicast, &pk);
        }
    };
    h.establish(nb(1));
    let (h1, h2) = (h.hello(nb(2)), h.hello(nb(2)));
    recv2(&mut h, &[h1]);
    let ihu2 = Message::Ihu(babel_wire::Ihu {
        address: Some(c_addr),
        rxcost: 96,
        interval: 1200,
        timestamp: None,
    });
    recv2(&mut h, &[h2, ihu2]);
    let for_p = |ups: &[(u32, Update)], ifindex: u32| -> Vec<u16> {
        ups.iter()
            .filter(|(i, u)| *i == ifindex && u.prefix == Some(pfx(p)))
            .map(|(_, u)| u.metric)
            .collect()
    };

    h.recv(nb(1), &[update(p, 9, 7, 300)]);
    h.advance(Duration::from_secs(3));
    assert_eq!(h.installed(p).unwrap().via, nb(1));
    let ups = h.updates_by_iface();
    assert_eq!(for_p(&ups, IF2), vec![396], "{ups:?}");
    assert!(for_p(&ups, IF).is_empty(), "split horizon on eth0: {ups:?}");

    recv2(&mut h, &[update(p, 9, 7, 100)]);
    h.advance(Duration::from_secs(3));
    assert_eq!(
        h.installed(p).unwrap().via,
        nb(2),
        "the route moved to eth1"
    );
    let ups = h.updates_by_iface();
    assert_eq!(
        for_p(&ups, IF2),
        vec![INFINITY],
        "retracted once on eth1: {ups:?}"
    );
    assert!(
        !for_p(&ups, IF).is_empty() && for_p(&ups, IF).iter().all(|m| *m == 196),
        "advertised on eth0 now: {ups:?}"
    );

    // A new seqno through the same neighbour: a triggered update, nothing on eth1.
    recv2(&mut h, &[update(p, 9, 8, 100)]);
    h.advance(Duration::from_secs(3));
    assert_eq!(h.installed(p).unwrap().seqno, babel_wire::Seqno(8));
    let ups = h.updates_by_iface();
    assert!(!for_p(&ups, IF).is_empty(), "{ups:?}");
    assert!(for_p(&ups, IF2).is_empty(), "{ups:?}");
}

/// Verification's readvertise (`spec/verify.md` §4.2.5, step 2): our Update for a destination
/// sent on one interface now, a retraction where split horizon keeps the selected route off
/// it or we have no route; on another interface, the route as advertised there.
#[test]
fn readvertise_retracts_under_split_horizon_and_advertises_elsewhere() {
    const IF2: u32 = 2;
    let p = "2001:db8:1::/48";
    let none = "2001:db8:2::/48";
    let mut h = H::new();
    let c_addr = "fe80::2".parse().unwrap();
    let c = babel_core::InterfaceConfig::new("eth1", InterfaceKind::Wired, c_addr);
    h.e.interface_up(h.now, IF2, c);
    h.establish(nb(1));
    h.recv(nb(1), &[update(p, 9, 7, 300)]);
    h.advance(Duration::from_secs(3));
    assert_eq!(h.installed(p).unwrap().via, nb(1));
    h.updates_by_iface();
    let for_on = |ups: &[(u32, Update)], prefix: &str, ifindex: u32| -> Vec<u16> {
        ups.iter()
            .filter(|(i, u)| *i == ifindex && u.prefix == Some(pfx(prefix)))
            .map(|(_, u)| u.metric)
            .collect()
    };
    for (ifindex, prefix, expect) in [(IF, p, INFINITY), (IF2, p, 396), (IF, none, INFINITY)] {
        h.e.handle_input(
            h.now,
            babel_core::Input::Readvertise {
                ifindex,
                prefix: pfx(prefix),
                src_prefix: None,
            },
        )
        .unwrap();
        h.advance(Duration::from_secs(3));
        let ups = h.updates_by_iface();
        assert_eq!(for_on(&ups, prefix, ifindex), vec![expect], "{ups:?}");
    }
    // An interface that is not up: nothing.
    h.e.readvertise(h.now, 99, key(p));
    h.advance(Duration::from_secs(3));
    assert!(for_on(&h.updates_by_iface(), p, 99).is_empty());
}

#[test]
fn s3_8_1_1_route_requests_wildcard_and_specific() {
    let mut h = H::new();
    h.e.announce(h.now, key("2001:db8:ff::/48"), 0).unwrap();
    h.establish(nb(1));
    h.advance(Duration::from_secs(5));
    h.sent();
    h.recv(
        nb(1),
        &[
            route_request(Some("2001:db8:ff::/48")),
            route_request(Some("2001:db8:77::/48")),
        ],
    );
    h.advance(Duration::from_secs(3));
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("2001:db8:ff::/48")) && u.metric == 0)
    );
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("2001:db8:77::/48")) && u.metric == INFINITY),
        "unknown prefix: retraction"
    );
    h.recv(nb(1), &[route_request(None)]);
    h.advance(Duration::from_millis(300));
    assert!(
        !updates_in(&h.sent_messages()).is_empty(),
        "wildcard: full dump"
    );
}

#[test]
fn s3_8_1_2_seqno_request_for_own_prefix_bumps_seqno_and_persists() {
    let mut h = H::new();
    h.e.announce(h.now, key("2001:db8:ff::/48"), 0).unwrap();
    h.establish(nb(1));
    h.events();
    h.recv(nb(1), &[seqno_request("2001:db8:ff::/48", 1, 105, 10)]);
    assert_eq!(h.e.seqno(), 105);
    assert!(h.events().contains(&Event::SeqnoChanged {
        seqno: babel_wire::Seqno(105)
    }));
    h.advance(Duration::from_millis(250));
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.seqno == 105 && u.prefix == Some(pfx("2001:db8:ff::/48")))
    );
    // Hopelessly far ahead (> 100): ignored (babeld).
    h.recv(
        nb(1),
        &[seqno_request("2001:db8:ff::/48", 1, 105 + 200, 10)],
    );
    assert_eq!(h.e.seqno(), 105);
    // Hop count 0 violates §4.6.11 (the encoder refuses it: patch the byte).
    let mut p = babel_wire::encode(
        &[seqno_request("2001:db8:ff::/48", 1, 106, 1)],
        &Default::default(),
    )
    .unwrap()[0]
        .to_vec();
    p[10] = 0;
    h.e.handle_packet(h.now, IF, nb(1), Destination::Multicast, &p);
    assert_eq!(h.e.seqno(), 105);
    assert_eq!(dropped(&h), 1, "dropped by the decoder or the engine");
}

/// The seqno requests sent since the last look, with where each went.
fn sent_seqno_requests(h: &mut H) -> Vec<(Destination, SeqnoRequest)> {
    h.sent()
        .into_iter()
        .flat_map(|(d, m)| m.into_iter().map(move |m| (d, m)))
        .filter_map(|(d, m)| match m {
            Message::SeqnoRequest(s) => Some((d, s)),
            _ => None,
        })
        .collect()
}

#[test]
fn s3_8_1_2_seqno_request_from_the_successor_goes_to_another_route_s_next_hop() {
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    // A worse (unfeasible) route through nb(2).
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 7, 400)]);
    h.advance(Duration::from_millis(250));
    h.sent();
    // The successor itself asks (it lost its route through us, say): the request goes to
    // nb(2), the next hop of the other route, with the hop count decremented; not dropped.
    h.recv(nb(1), &[seqno_request("2001:db8:1::/48", 9, 8, 5)]);
    let fwd = sent_seqno_requests(&mut h);
    assert_eq!(fwd.len(), 1, "{fwd:?}");
    assert_eq!(fwd[0].0, Destination::Unicast(nb(2)));
    assert_eq!(fwd[0].1.hop_count, 4);
}

#[test]
fn s3_8_1_2_seqno_request_forwarded_to_successor_with_hop_count_decremented() {
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    h.sent();
    // Satisfiable (seqno 7 ≥ 6): answered by an update, not forwarded.
    h.recv(nb(2), &[seqno_request("2001:db8:1::/48", 9, 6, 5)]);
    h.advance(Duration::from_millis(250));
    let sent = h.sent();
    assert!(
        sent.iter()
            .all(|(_, m)| !m.iter().any(|m| matches!(m, Message::SeqnoRequest(_))))
    );
    // Newer seqno wanted: forwarded to nb(1) only, hop count 4.
    h.recv(nb(2), &[seqno_request("2001:db8:1::/48", 9, 8, 5)]);
    let fwd = sent_seqno_requests(&mut h);
    assert_eq!(fwd.len(), 1, "{fwd:?}");
    assert_eq!(fwd[0].0, Destination::Unicast(nb(1)));
    assert_eq!(fwd[0].1.hop_count, 4);
    // Duplicate suppressed (§3.8.2).
    h.recv(nb(2), &[seqno_request("2001:db8:1::/48", 9, 8, 5)]);
    assert!(h.sent().is_empty());
    // Never forwarded back to the successor that asked.
    h.recv(nb(1), &[seqno_request("2001:db8:1::/48", 9, 20, 5)]);
    assert!(
        h.sent()
            .iter()
            .all(|(d, _)| *d != Destination::Unicast(nb(1)))
    );
    // Resent after 2 s, then 4 s (§3.8.2: doubling).
    h.recv(nb(2), &[seqno_request("2001:db8:1::/48", 9, 30, 5)]);
    h.sent();
    let count = |h: &mut H| {
        h.sent_messages()
            .iter()
            .filter(|m| matches!(m, Message::SeqnoRequest(_)))
            .count()
    };
    h.advance(Duration::from_millis(2100));
    assert_eq!(count(&mut h), 1);
    h.advance(Duration::from_millis(2000));
    assert_eq!(count(&mut h), 0);
    h.advance(Duration::from_millis(2100));
    assert_eq!(count(&mut h), 1);
}

#[test]
fn s3_3_acknowledgment_requests_are_answered_unicast() {
    let mut h = H::new();
    h.recv(
        nb(1),
        &[Message::AckReq {
            opaque: 0xBEEF,
            interval: 100,
        }],
    );
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, Destination::Unicast(nb(1)));
    assert_eq!(sent[0].1, vec![Message::Ack { opaque: 0xBEEF }]);
    h.recv(
        nb(1),
        &[Message::AckReq {
            opaque: 1,
            interval: 0,
        }],
    );
    assert!(h.sent().is_empty());
    assert_eq!(dropped(&h), 1, "dropped by the decoder or the engine");
}

#[test]
fn appendix_c_martian_prefixes_are_refused_and_counted() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(
        nb(1),
        &[
            update("ff02::/16", 9, 1, 10),
            update("fe80::/64", 9, 1, 10),
            update("::1/128", 9, 1, 10),
            update("127.0.0.0/8", 9, 1, 10),
            update("224.0.0.0/4", 9, 1, 10),
        ],
    );
    assert_eq!(h.e.counters().martians, 5);
    assert!(h.e.routes(h.now).is_empty());
    assert!(h.e.announce(h.now, key("fe80::/64"), 0).is_err());
}

#[test]
fn s4_bad_input_is_dropped_and_counted() {
    let mut h = H::new();
    h.e.handle_packet(
        h.now,
        IF,
        nb(1),
        Destination::Multicast,
        b"\x2a\x02\x00\xffgarbage",
    );
    h.e.handle_packet(h.now, IF, nb(1), Destination::Multicast, b"xx");
    assert_eq!(h.e.counters().packets_malformed, 2);
    // Not link-local: refused (babeld).
    h.e.handle_packet(
        h.now,
        IF,
        "2001:db8::1".parse().unwrap(),
        Destination::Multicast,
        b"\x2a\x02\x00\x00",
    );
    // Unknown interface.
    h.e.handle_packet(
        h.now,
        99,
        nb(1),
        Destination::Multicast,
        b"\x2a\x02\x00\x00",
    );
    assert_eq!(h.e.counters().packets_refused, 2);
    // Zero update interval, reserved router-id.
    h.establish(nb(1));
    let mut z = update("2001:db8:1::/48", 9, 1, 10);
    if let Message::Update(u) = &mut z {
        u.interval = 0;
    }
    h.recv(nb(1), &[z]);
    assert_eq!(dropped(&h), 1, "dropped by the decoder or the engine");
    assert!(h.e.routes(h.now).is_empty());
}

#[test]
fn limits_excess_routes_are_dropped_counted_and_memory_bounded() {
    let mut cfg = config();
    cfg.limits = Limits {
        max_routes_per_neighbour: 10,
        max_routes: 15,
        ..Limits::default()
    };
    let mut h = H::with(cfg, InterfaceKind::Wired);
    h.establish(nb(1));
    h.establish(nb(2));
    let ups: Vec<Message> = (0..30)
        .map(|i| update(&format!("2001:db8:{i:x}::/48"), 9, 1, 10))
        .collect();
    h.recv(nb(1), &ups);
    assert_eq!(h.e.route_count(), 10);
    assert_eq!(h.e.counters().routes_over_limit, 20);
    h.recv(nb(2), &ups);
    assert_eq!(h.e.route_count(), 15, "total limit");
    assert_eq!(h.e.counters().routes_over_limit, 45);
    // Refreshing known routes is still fine.
    h.recv(nb(1), &ups[..10]);
    assert_eq!(h.e.counters().routes_over_limit, 45);
    assert_eq!(h.e.route_count(), 15);
}

#[test]
fn price_is_received_price_plus_fee_and_follows_fee_changes() {
    let mut cfg = config();
    cfg.fee = 5;
    let mut h = H::with(cfg, InterfaceKind::Wired);
    second_interface(&mut h);
    h.establish(nb(1));
    h.recv(nb(1), &[priced("2001:db8:1::/48", 9, 7, 100, 7)]);
    let r = &h.e.routes(h.now)[0];
    assert_eq!((r.price, r.received_price, r.fee), (12, 7, 5));
    h.advance(Duration::from_secs(3));
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("2001:db8:1::/48")) && u.price == Some(12))
    );
    h.e.set_fee(h.now, 50);
    assert_eq!(h.e.routes(h.now)[0].price, 57);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().price, 57);
    // Saturating, not wrapping.
    h.recv(nb(1), &[priced("2001:db8:1::/48", 9, 7, 100, u32::MAX - 1)]);
    assert_eq!(h.e.routes(h.now)[0].price, u32::MAX);
}

#[test]
fn policy_althea_picks_by_price_and_metric_factor_moves_it() {
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    // Path via nb(1): metric 296, price 1000. Via nb(2): metric 896, price 100.
    h.recv(nb(1), &[priced("2001:db8:1::/48", 9, 7, 200, 1000)]);
    h.recv(nb(2), &[priced("2001:db8:1::/48", 9, 7, 800, 100)]);
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().via,
        nb(1),
        "babeld ignores price"
    );
    h.e.set_metric_factor(h.now, 500);
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().via,
        nb(2),
        "price matters more"
    );
    h.e.set_metric_factor(h.now, 4000);
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().via,
        nb(1),
        "quality matters more"
    );
    h.e.set_policy(h.now, Policy::Paper { n_milli: 1000 });
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().via,
        nb(2),
        "296+1000 > 896+100"
    );
}

#[test]
fn verification_verified_metric_overrides_selection_until_expiry() {
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 7, 300)]);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(1));
    let until = h.now + Duration::from_secs(30);
    h.e.set_verified_metric(h.now, key("2001:db8:1::/48"), IF, nb(1), 5000, until)
        .unwrap();
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().via,
        nb(2),
        "verified metric is worse"
    );
    assert_eq!(
        h.e.routes(h.now)
            .iter()
            .find(|r| r.via == nb(1))
            .unwrap()
            .verified_metric,
        Some(babel_wire::Metric(5000))
    );
    // Keep both alive; after expiry the advertised metric is used again.
    for _ in 0..12 {
        h.advance(Duration::from_secs(4));
        let (a, b) = (h.hello(nb(1)), h.hello(nb(2)));
        h.recv(nb(1), &[a, ihu(96), update("2001:db8:1::/48", 9, 7, 100)]);
        h.recv(nb(2), &[b, ihu(96), update("2001:db8:1::/48", 9, 7, 300)]);
    }
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(1));
    assert!(
        h.e.set_verified_metric(h.now, key("2001:db8:9::/48"), IF, nb(1), 1, until)
            .is_err()
    );
}

/// A verified cost only ever makes a route worse (`spec/verify.md` §5.1): once the neighbour's
/// claim rises above the cost measured at the check, selection follows the claim, as the
/// advertisement does.
#[test]
fn verification_verified_metric_never_makes_a_route_look_better_than_its_claim() {
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 7, 300)]);
    let until = h.now + Duration::from_secs(120);
    // Checked at 196, measured 350: still under the 396 through 2, so it stays selected.
    h.e.set_verified_metric(h.now, key("2001:db8:1::/48"), IF, nb(1), 350, until)
        .unwrap();
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(1));
    // Its claim rises to 900 (metric 996): the verified 350 must not hide it.
    for _ in 0..6 {
        h.advance(Duration::from_secs(4));
        let (a, b) = (h.hello(nb(1)), h.hello(nb(2)));
        h.recv(nb(1), &[a, ihu(96), update("2001:db8:1::/48", 9, 7, 900)]);
        h.recv(nb(2), &[b, ihu(96), update("2001:db8:1::/48", 9, 7, 300)]);
    }
    assert!(h.now < until, "the correction is still in force");
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().via,
        nb(2),
        "selection saw the verified 350 instead of the claim of 996"
    );
}

#[test]
fn verification_inaccurate_neighbour_routes_leave_the_kernel_until_it_recovers() {
    // Without the last resort: nothing else offers these destinations, and still they go.
    let mut cfg = common::config();
    cfg.accuracy_last_resort = false;
    let mut h = H::with(cfg, InterfaceKind::Wired);
    h.establish(nb(1));
    h.recv(
        nb(1),
        &[
            update("2001:db8:1::/48", 9, 7, 100),
            update("2001:db8:2::/48", 9, 7, 100),
        ],
    );
    h.kernel();
    h.e.set_neighbour_accuracy(h.now, IF, nb(1), 300).unwrap();
    assert!(h.installed("2001:db8:1::/48").is_none());
    assert!(h.installed("2001:db8:2::/48").is_none());
    let k = h.kernel();
    assert_eq!(k.iter().filter(|c| c.op == RouteOp::Delete).count(), 2);
    assert!(h.e.neighbours(h.now)[0].blocked);
    h.e.set_neighbour_accuracy(h.now, IF, nb(1), 900).unwrap();
    assert!(h.installed("2001:db8:1::/48").is_some());
    assert_eq!(
        h.kernel().iter().filter(|c| c.op == RouteOp::Add).count(),
        2
    );
}

/// `spec/verify.md` §4.3: an evicted neighbour's routes leave selection wherever another
/// neighbour offers the destination, and serve as a last resort where none does, so that
/// evicting the only way to some routers does not cut them off.
#[test]
fn verification_evicted_neighbour_serves_only_as_a_last_resort() {
    let mut h = H::new();
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(
        nb(1),
        &[
            update("2001:db8:1::/48", 9, 7, 100),
            update("2001:db8:2::/48", 8, 7, 100),
        ],
    );
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 7, 300)]);
    h.kernel();
    h.e.set_neighbour_accuracy(h.now, IF, nb(1), 300).unwrap();
    // 1 is evicted: the worse route through 2 replaces it; nothing else reaches 2::/48.
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(2));
    assert_eq!(h.installed("2001:db8:2::/48").unwrap().via, nb(1));
    assert!(h.e.neighbours(h.now).iter().any(|n| n.blocked));
    // Once 2 offers 2::/48 as well, even at a far worse metric, the evicted route goes.
    h.recv(nb(2), &[update("2001:db8:2::/48", 8, 7, 2000)]);
    assert_eq!(h.installed("2001:db8:2::/48").unwrap().via, nb(2));
    // And when 2 retracts 1::/48, the evicted neighbour's route is the last one left.
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 7, 0xFFFF)]);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(1));
    // Readmitted, it competes on its metric again.
    h.e.set_neighbour_accuracy(h.now, IF, nb(1), 900).unwrap();
    assert_eq!(h.installed("2001:db8:2::/48").unwrap().via, nb(1));
}

/// `spec/verify.md` §4.3 with RFC 8966 §3.8.2.2: a liar's low claim set the feasibility
/// distance, so once it is evicted the honest route left is unfeasible. The evicted route stays
/// as the last resort, and the honest neighbour is asked for a newer seqno, however much worse
/// its metric; the answer moves the route off the evicted neighbour.
#[test]
fn verification_last_resort_asks_for_the_honest_routes_seqno() {
    let mut h = advertised_through_nb1();
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 7, 300)]);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(1));
    // Worse on its metric and the neighbour in good standing: nobody asks for it yet.
    assert!(sent_seqno_requests(&mut h).is_empty());
    h.e.set_neighbour_accuracy(h.now, IF, nb(1), 300).unwrap();
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().via,
        nb(1),
        "unfeasible (7, 300) against (7, 196): the evicted route is the last resort"
    );
    let reqs = sent_seqno_requests(&mut h);
    assert!(
        reqs.iter().any(|(d, r)| *d == Destination::Unicast(nb(2))
            && r.router_id == rid(9)
            && r.seqno == 8),
        "{reqs:?}"
    );
    h.recv(nb(2), &[update("2001:db8:1::/48", 9, 8, 300)]);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(2));
}

/// What we advertised last for 2001:db8:1::/48 on the second interface, within a periodic
/// update's interval (with neighbour 1's Hellos and IHU kept coming).
fn advertised_on_second_interface(h: &mut H) -> Option<u16> {
    h.advance(Duration::from_secs(5));
    h.establish(nb(1));
    h.updates_by_iface()
        .iter()
        .filter(|(i, u)| *i == 2 && u.prefix == Some(pfx("2001:db8:1::/48")))
        .map(|(_, u)| u.metric)
        .next_back()
}

/// `spec/verify.md` §4.3: a route kept as the last resort is advertised with the penalty
/// added, so that a router with a way around the evicted neighbour takes it; readmitted, the
/// neighbour's route is advertised as before.
#[test]
fn verification_last_resort_route_is_advertised_with_its_penalty() {
    let mut c = config();
    c.accuracy_last_resort_penalty = 0x4000;
    let mut h = H::with(c, InterfaceKind::Wired);
    second_interface(&mut h);
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    let advertised = advertised_on_second_interface;
    assert_eq!(advertised(&mut h), Some(196));
    h.e.set_neighbour_accuracy(h.now, IF, nb(1), 300).unwrap();
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(1));
    assert_eq!(advertised(&mut h), Some(196 + 0x4000), "a triggered update");
    // The penalty stops at the ceiling, so that the routers behind us still have a route...
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 8, 50_000)]);
    assert_eq!(advertised(&mut h), Some(CORRECTION_CEILING));
    // ... and adds nothing to a claim above it, advertised at its own metric.
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 9, 0xFF00)]);
    assert_eq!(advertised(&mut h), Some(0xFF00 + 96));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 10, 100)]);
    h.e.set_neighbour_accuracy(h.now, IF, nb(1), 900).unwrap();
    assert_eq!(advertised(&mut h), Some(196));
}

/// `spec/verify.md` §5.2: a corrected route is advertised at no less than its verified cost,
/// but never above [`CORRECTION_CEILING`]. A black hole is corrected to nearly infinity; the
/// verifier still forwards over the route where it has no other, and the routers behind it,
/// adding their links, must not lose the destination: they get the worst finite metric.
#[test]
fn verification_a_route_corrected_to_nearly_infinity_stays_a_route_behind_us() {
    let mut h = H::new();
    second_interface(&mut h);
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    let advertised = advertised_on_second_interface;
    assert_eq!(advertised(&mut h), Some(196));
    let until = h.now + Duration::from_secs(120);
    // Measured 1,000: advertised at the cost measured.
    h.e.set_verified_metric(h.now, key("2001:db8:1::/48"), IF, nb(1), 1000, until)
        .unwrap();
    assert_eq!(advertised(&mut h), Some(1000), "a triggered update");
    // A black hole: still our only route, so still installed, and advertised at the ceiling.
    h.e.set_verified_metric(
        h.now,
        key("2001:db8:1::/48"),
        IF,
        nb(1),
        INFINITY - 1,
        until,
    )
    .unwrap();
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().via, nb(1));
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().metric.0,
        CORRECTION_CEILING
    );
    assert_eq!(advertised(&mut h), Some(CORRECTION_CEILING));
    assert!(CORRECTION_CEILING.saturating_add(1024) < INFINITY);
    // A claim that rises above the ceiling is the route's own metric, advertised as it is.
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 9, 0xFF00)]);
    assert_eq!(advertised(&mut h), Some(0xFF00 + 96));
}

#[test]
fn s3_2_2_seqno_random_without_state_and_kept_with_it() {
    let mut c = EngineConfig::new(rid(1));
    c.seed = 42;
    let a = babel_core::Engine::new(c.clone(), babel_core::Instant::ZERO)
        .unwrap()
        .seqno();
    let b = babel_core::Engine::new(c.clone(), babel_core::Instant::ZERO)
        .unwrap()
        .seqno();
    assert_eq!(a, b, "deterministic for a seed");
    c.seqno = Some(4242);
    assert_eq!(
        babel_core::Engine::new(c, babel_core::Instant::ZERO)
            .unwrap()
            .seqno(),
        4242
    );
    let bad = EngineConfig::new(babel_wire::RouterId([0; 8]));
    assert!(babel_core::Engine::new(bad, babel_core::Instant::ZERO).is_err());
}

#[test]
fn own_router_id_echoes_are_ignored() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 1, 7, 100)]);
    assert!(h.e.routes(h.now).is_empty());
}

#[test]
fn interface_down_flushes_neighbours_and_routes() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    h.kernel();
    h.e.interface_down(h.now, IF);
    assert!(h.e.neighbours(h.now).is_empty());
    assert!(h.installed("2001:db8:1::/48").is_none());
    assert_eq!(h.kernel()[0].op, RouteOp::Delete);
    assert!(!h.e.interfaces()[0].up);
}

#[test]
fn shutdown_sends_wildcard_retraction_and_deletes_routes() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    h.kernel();
    h.sent();
    h.e.shutdown(h.now);
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.prefix.is_none() && u.metric == INFINITY)
    );
    assert_eq!(h.kernel()[0].op, RouteOp::Delete);
}

#[test]
fn tunnel_rtt_from_timestamps_adds_a_penalty() {
    let mut h = H::with(config(), InterfaceKind::Tunnel);
    let a = nb(1);
    for i in 0..3u16 {
        let m = Message::Hello(babel_wire::Hello {
            unicast: false,
            seqno: i + 1,
            interval: 400,
            timestamp: Some(1_000_000 * u32::from(i)),
        });
        h.recv(a, &[m]);
    }
    h.advance(Duration::from_secs(5));
    // Find our last Hello timestamp and the IHU echoing the neighbour's.
    let msgs = h.sent_messages();
    let our_ts = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Hello(x) => x.timestamp,
            _ => None,
        })
        .next_back()
        .unwrap();
    // The neighbour answers 60 ms after our Hello left, having held it 0 ms: RTT 60 ms.
    h.advance(Duration::from_millis(60));
    let reply = vec![
        Message::Hello(babel_wire::Hello {
            unicast: false,
            seqno: 4,
            interval: 400,
            timestamp: Some(5_000_000),
        }),
        Message::Ihu(babel_wire::Ihu {
            address: Some(us()),
            rxcost: 96,
            interval: 1200,
            timestamp: Some(babel_wire::IhuTimestamp {
                origin: our_ts,
                receive: 5_000_000,
            }),
        }),
    ];
    h.recv(a, &reply);
    let n = &h.e.neighbours(h.now)[0];
    let rtt = n.rtt.unwrap();
    assert!(rtt >= Duration::from_millis(50), "{rtt:?}");
    assert!(n.rttcost > 0 && n.rttcost <= 96, "{n:?}");
    assert_eq!(n.cost.0, 96 + n.rttcost.0);
}

#[test]
fn events_for_monitor() {
    let mut h = H::new();
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Neighbour {
            kind: babel_core::ChangeKind::Add,
            ..
        }
    )));
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Route {
            kind: babel_core::ChangeKind::Add,
            ..
        }
    )));
    let _ = RouteKey::new(pfx("2001:db8:1::/48"));
}

/// A host that reads no route events turns them off; kernel changes and the other events
/// are unchanged, and `Flushes` keeps only the routes that leave the table.
#[test]
fn route_events_can_be_limited() {
    let is_route = |e: &Event| matches!(e, Event::Route { .. });
    let mut h = H::new();
    h.e.set_route_events(babel_core::RouteEvents::Off);
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    assert_eq!(h.kernel().len(), 1, "the route is installed as before");
    let ev = h.events();
    assert!(
        ev.iter().any(|e| matches!(e, Event::Neighbour { .. })),
        "{ev:?}"
    );
    assert!(!ev.iter().any(is_route), "{ev:?}");

    h.e.set_route_events(babel_core::RouteEvents::Flushes);
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 8, 200)]);
    h.recv(nb(1), &[update("2001:db8:2::/48", 9, 8, 100)]);
    assert!(
        !h.events().iter().any(is_route),
        "changes and additions are not shown"
    );
    h.e.interface_down(h.now, IF);
    let flushed: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Route { kind, route } => Some((kind, route.prefix)),
            _ => None,
        })
        .collect();
    assert_eq!(
        flushed,
        vec![
            (babel_core::ChangeKind::Flush, pfx("2001:db8:1::/48")),
            (babel_core::ChangeKind::Flush, pfx("2001:db8:2::/48")),
        ]
    );

    let mut all = H::new();
    all.establish(nb(1));
    all.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    assert!(all.events().iter().any(is_route), "on by default");
}

fn second_interface(h: &mut H) {
    let addr = "fe80::2".parse().unwrap();
    h.e.interface_up(
        h.now,
        2,
        babel_core::InterfaceConfig::new("eth1", InterfaceKind::Wired, addr),
    );
    h.sent();
}

#[test]
fn rfc9229_ipv4_prefix_via_ipv6_next_hop() {
    let mut h = H::new();
    second_interface(&mut h);
    h.establish(nb(1));
    let mut m = update("10.1.0.0/16", 9, 3, 100);
    if let Message::Update(u) = &mut m {
        u.v4_via_v6 = true;
    }
    h.recv(nb(1), &[m]);
    let i = h.installed("10.1.0.0/16").unwrap();
    assert_eq!(i.next_hop, nb(1));
    h.advance(Duration::from_secs(3));
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("10.1.0.0/16")) && u.v4_via_v6 && u.metric == 196)
    );
}

/// babeld's choice, which BIRD 2.0 and FRR need: on a link with an IPv4 address an IPv4 route
/// goes out with AE 1 and that address as next hop (RFC 8966 §4.6.8); without one, AE 4.
#[test]
fn s4_6_8_ipv4_routes_use_ae1_on_links_with_ipv4() {
    let mut h = H::new();
    let mut c =
        babel_core::InterfaceConfig::new("eth1", InterfaceKind::Wired, "fe80::2".parse().unwrap());
    c.ipv4 = Some("192.0.2.7".parse().unwrap());
    h.e.interface_up(h.now, 2, c);
    h.sent();
    h.establish(nb(1));
    // An AE 1 update from a babeld with an IPv4 next hop is installed via that next hop.
    let mut m = update("10.1.0.0/16", 9, 3, 100);
    if let Message::Update(u) = &mut m {
        u.next_hop = Some("192.0.2.1".parse().unwrap());
    }
    h.recv(nb(1), &[m]);
    assert_eq!(
        h.installed("10.1.0.0/16").unwrap().next_hop,
        "192.0.2.1".parse::<std::net::IpAddr>().unwrap()
    );
    h.advance(Duration::from_secs(3));
    let sent = h.updates_by_iface();
    let v4: Vec<&Update> = sent
        .iter()
        .filter(|(i, u)| *i == 2 && u.prefix == Some(pfx("10.1.0.0/16")))
        .map(|(_, u)| u)
        .collect();
    assert!(!v4.is_empty(), "{sent:?}");
    assert!(
        v4.iter()
            .all(|u| !u.v4_via_v6 && u.next_hop == Some("192.0.2.7".parse().unwrap())),
        "{v4:?}"
    );
    // On eth0, which has no IPv4 address, the same route goes out with AE 4 (split horizon aside,
    // eth0 is where it came from, so look at a fresh prefix announced locally).
    h.e.announce(h.now, RouteKey::new(pfx("10.9.0.0/16")), 0)
        .unwrap();
    h.advance(Duration::from_secs(3));
    let on0 = h.updates_by_iface();
    assert!(
        on0.iter().any(|(i, u)| *i == IF
            && u.prefix == Some(pfx("10.9.0.0/16"))
            && u.v4_via_v6
            && u.next_hop.is_none()),
        "{on0:?}"
    );
}

#[test]
fn rfc9079_source_specific_routes_are_separate_destinations() {
    let mut h = H::new();
    h.establish(nb(1));
    let mut m = update("2001:db8:1::/48", 9, 3, 100);
    if let Message::Update(u) = &mut m {
        u.src_prefix = Some(pfx("2001:db8:aaaa::/48"));
    }
    h.recv(nb(1), &[m, update("2001:db8:1::/48", 9, 3, 300)]);
    let ss = RouteKey {
        prefix: pfx("2001:db8:1::/48"),
        src_prefix: Some(pfx("2001:db8:aaaa::/48")),
    };
    assert_eq!(h.e.installed(&ss).unwrap().metric, 196);
    assert_eq!(h.installed("2001:db8:1::/48").unwrap().metric, 396);
    let k = h.kernel();
    assert_eq!(k.len(), 2);
    assert!(
        k.iter()
            .any(|c| c.src_prefix == Some(pfx("2001:db8:aaaa::/48")))
    );
}

#[test]
fn interface_reconfiguration_changes_link_cost() {
    let mut h = H::new();
    h.establish(nb(1));
    let mut c = babel_core::InterfaceConfig::new("eth0", InterfaceKind::Wired, us());
    c.rxcost = 300;
    h.e.set_interface_config(h.now, IF, c).unwrap();
    assert_eq!(h.e.neighbours(h.now)[0].rxcost, 300);
    assert!(
        h.e.set_interface_config(
            h.now,
            42,
            babel_core::InterfaceConfig::new("x", InterfaceKind::Wired, us())
        )
        .is_err()
    );
}

/// Messages refused either by the codec (TLV errors) or by the engine (RFC violations): which
/// layer catches a given violation may move, the message must be dropped and counted either way.
fn dropped(h: &H) -> u64 {
    let c = h.e.counters();
    c.rfc_violations + c.tlv_errors
}

#[test]
fn s3_4_1_unicast_hellos_are_sent_with_their_own_seqno() {
    let mut h = H::new();
    let mut c = babel_core::InterfaceConfig::new("eth0", InterfaceKind::Wired, us());
    c.unicast_hello_interval = Some(Duration::from_secs(2));
    h.e.set_interface_config(h.now, IF, c).unwrap();
    h.establish(nb(1));
    h.advance(Duration::from_secs(7));
    let uni: Vec<(Destination, u16)> = h
        .sent()
        .into_iter()
        .flat_map(|(d, m)| m.into_iter().map(move |m| (d, m)))
        .filter_map(|(d, m)| match m {
            Message::Hello(x) if x.unicast => Some((d, x.seqno)),
            _ => None,
        })
        .collect();
    assert!(uni.len() >= 2, "{uni:?}");
    assert!(uni.iter().all(|(d, _)| *d == Destination::Unicast(nb(1))));
    assert_eq!(uni[1].1, uni[0].1.wrapping_add(1));
}

#[test]
fn s3_2_5_source_table_is_garbage_collected_after_200s() {
    let mut h = H::new();
    second_interface(&mut h);
    h.establish(nb(1));
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 100)]);
    h.advance(Duration::from_secs(3));
    // Now FD = (7, 196). Retract and offer a worse route with the same seqno: unfeasible.
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, INFINITY)]);
    h.recv(nb(1), &[update("2001:db8:1::/48", 9, 7, 500)]);
    assert!(h.installed("2001:db8:1::/48").is_none());
    // Keep the neighbour and the (unfeasible) route alive until the source entry is collected.
    for _ in 0..55 {
        h.advance(Duration::from_secs(4));
        let m = h.hello(nb(1));
        h.recv(nb(1), &[m, ihu(96), update("2001:db8:1::/48", 9, 7, 500)]);
    }
    assert_eq!(
        h.installed("2001:db8:1::/48").unwrap().metric,
        596,
        "feasible again after GC"
    );
}

#[test]
fn s3_7_2_urgent_updates_are_repeated() {
    let mut h = H::new();
    h.e.announce(h.now, key("2001:db8:ff::/48"), 0).unwrap();
    h.advance(Duration::from_secs(3));
    h.sent();
    h.e.withdraw(h.now, key("2001:db8:ff::/48"));
    let mut retractions = 0;
    for _ in 0..10 {
        h.advance(Duration::from_millis(500));
        retractions += updates_in(&h.sent_messages())
            .iter()
            .filter(|u| u.prefix == Some(pfx("2001:db8:ff::/48")) && u.metric == INFINITY)
            .count();
    }
    assert_eq!(retractions, 3, "sent, then repeated twice");
}

#[test]
fn s4_5_updates_are_packed_with_compression() {
    let mut h = H::new();
    for i in 0..300u32 {
        h.e.announce(h.now, key(&format!("2001:db8:{:x}::/48", i)), 0)
            .unwrap();
    }
    h.advance(Duration::from_secs(3));
    let mut packets = 0;
    let mut updates = 0;
    while let Some(t) = h.e.poll_transmit() {
        assert!(t.bytes.len() <= 1452);
        let d = babel_wire::decode(&t.bytes, &Default::default()).unwrap();
        let n = updates_in(&d.packet.messages).len();
        if n > 0 {
            packets += 1;
            updates += n;
        }
    }
    assert!(updates >= 300);
    assert!(packets <= 6, "{updates} updates in {packets} packets");
}

#[test]
fn s3_8_2_1_mass_loss_requests_are_packed_and_bounded() {
    let mut cfg = config();
    cfg.limits.max_pending_requests = 300;
    let mut h = H::with(cfg, InterfaceKind::Wired);
    second_interface(&mut h);
    h.establish(nb(1));
    let ups: Vec<Message> = (0..500)
        .map(|i| update(&format!("2001:db8:{i:x}::/48"), 9, 1, 10))
        .collect();
    h.recv(nb(1), &ups);
    h.advance(Duration::from_secs(3));
    h.sent();
    // The neighbour goes silent: every route is lost and starvation requests go out.
    h.advance(Duration::from_secs(12));
    let mut packets = 0;
    let mut requests = 0;
    for (_, msgs) in h.sent() {
        let n = msgs
            .iter()
            .filter(|m| matches!(m, Message::SeqnoRequest(_)))
            .count();
        if n > 0 {
            packets += 1;
            requests += n;
        }
    }
    // One per pending entry on both interfaces, plus the first resend 2 s later.
    assert_eq!(requests, 2 * 2 * 300);
    assert!(packets <= 40, "{requests} requests in {packets} packets");
    assert_eq!(h.e.counters().requests_over_limit, 200);
}
