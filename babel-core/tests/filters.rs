//! The `in`/`out` filter hook (babeld's `input_filter` / `output_filter`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use babel_core::{
    FilterAnswer, FilterRoute, InterfaceConfig, InterfaceKind, RouteFilter, RouteKey,
};
use common::*;

/// Denies 10.1.0.0/16 on input, adds 50 to 10.2.0.0/16; on output denies 10.9.0.0/16 and adds
/// 7 to everything else that we originate.
#[derive(Debug)]
struct Rules;

impl RouteFilter for Rules {
    fn input(&self, r: &FilterRoute<'_>) -> FilterAnswer {
        assert_eq!(r.ifname, "eth0");
        assert_eq!(r.neighbour, Some(nb(1)));
        if r.prefix == pfx("10.1.0.0/16") {
            FilterAnswer::Deny
        } else if r.prefix == pfx("10.2.0.0/16") {
            FilterAnswer::AddMetric(50)
        } else {
            FilterAnswer::ALLOW
        }
    }
    fn output(&self, r: &FilterRoute<'_>) -> FilterAnswer {
        assert!(r.neighbour.is_none());
        if r.prefix == pfx("10.9.0.0/16") {
            FilterAnswer::Deny
        } else if r.router_id == rid(1) {
            FilterAnswer::AddMetric(7)
        } else {
            FilterAnswer::ALLOW
        }
    }
}

#[test]
fn in_filter_refuses_or_adds_metric() {
    let mut h = H::new();
    h.e.interface_up(
        h.now,
        2,
        InterfaceConfig::new("eth1", InterfaceKind::Wired, "fe80::2".parse().unwrap()),
    );
    h.e.set_route_filter(Some(Arc::new(Rules)));
    h.establish(nb(1));
    h.recv(
        nb(1),
        &[
            update("10.1.0.0/16", 9, 3, 100),
            update("10.2.0.0/16", 9, 3, 100),
            update("10.3.0.0/16", 9, 3, 100),
        ],
    );
    assert!(h.installed("10.1.0.0/16").is_none());
    assert_eq!(h.installed("10.2.0.0/16").unwrap().metric, 246);
    assert_eq!(h.installed("10.3.0.0/16").unwrap().metric, 196);
    assert_eq!(h.e.counters().filtered_in, 1);
    // The metric we re-announce (on eth1; split horizon keeps eth0 quiet) includes what the
    // filter added.
    h.advance(Duration::from_secs(3));
    let ups: Vec<_> = h
        .updates_by_iface()
        .into_iter()
        .filter(|(i, _)| *i == 2)
        .map(|(_, u)| u)
        .collect();
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("10.2.0.0/16")) && u.metric == 246),
        "{ups:?}"
    );
    assert!(!ups.iter().any(|u| u.prefix == Some(pfx("10.1.0.0/16"))));
}

#[test]
fn out_filter_keeps_routes_off_the_wire_or_adds_metric() {
    let mut h = H::new();
    h.e.set_route_filter(Some(Arc::new(Rules)));
    h.e.announce(h.now, RouteKey::new(pfx("10.9.0.0/16")), 0)
        .unwrap();
    h.e.announce(h.now, RouteKey::new(pfx("10.8.0.0/16")), 0)
        .unwrap();
    h.advance(Duration::from_secs(20));
    let ups = updates_in(&h.sent_messages());
    assert!(
        !ups.iter().any(|u| u.prefix == Some(pfx("10.9.0.0/16"))),
        "{ups:?}"
    );
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("10.8.0.0/16")) && u.metric == 7)
    );
    assert!(h.e.counters().filtered_out > 0);
    // Without the filter both go out with metric 0.
    h.e.set_route_filter(None);
    h.advance(Duration::from_secs(20));
    let ups = updates_in(&h.sent_messages());
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("10.9.0.0/16")) && u.metric == 0)
    );
    assert!(
        ups.iter()
            .any(|u| u.prefix == Some(pfx("10.8.0.0/16")) && u.metric == 0)
    );
}

/// babeld's `install` filter: refuses routes through neighbour 2 (matched on its next hop).
#[derive(Debug)]
struct NotVia2;

impl RouteFilter for NotVia2 {
    fn install(&self, r: &FilterRoute<'_>) -> bool {
        r.neighbour != Some(nb(2))
    }
}

/// A route the `install` filter refuses is selected by nobody: `installed no` in the views,
/// nothing for the kernel, a retraction on the wire (babeld's failed `install_route`).
#[test]
fn install_filter_refuses_additions() {
    let mut h = H::new();
    h.e.set_route_filter(Some(Arc::new(NotVia2)));
    h.establish(nb(2));
    h.kernel();
    h.sent();
    h.recv(nb(2), &[update("10.5.0.0/16", 9, 3, 100)]);
    assert!(h.installed("10.5.0.0/16").is_none());
    assert!(h.kernel().is_empty());
    let views = h.e.routes(h.now);
    let v = views
        .iter()
        .find(|r| r.prefix == pfx("10.5.0.0/16"))
        .unwrap();
    assert!(!v.installed && v.feasible);
    assert_eq!(h.e.installed_count(), 0);
    assert!(h.e.counters().filtered_install > 0);
    h.advance(Duration::from_millis(300));
    let ups = updates_in(&h.sent_messages());
    let mine: Vec<_> = ups
        .iter()
        .filter(|u| u.prefix == Some(pfx("10.5.0.0/16")))
        .collect();
    assert!(
        !mine.is_empty() && mine.iter().all(|u| u.metric == INFINITY_METRIC),
        "{ups:?}"
    );
    // Without the filter the same route is installed at its next update.
    h.e.set_route_filter(None);
    h.recv(nb(2), &[update("10.5.0.0/16", 9, 3, 100)]);
    assert_eq!(h.installed("10.5.0.0/16").unwrap().via, nb(2));
    assert_eq!(h.kernel().len(), 1);
}

/// babeld's `change_route` refuses only additions: an installed destination switches to a
/// better next hop the `install` filter would refuse (the kernel route is replaced).
#[test]
fn install_filter_never_refuses_a_switch() {
    let mut h = H::new();
    h.e.set_route_filter(Some(Arc::new(NotVia2)));
    h.establish(nb(1));
    h.establish(nb(2));
    h.recv(nb(1), &[update("10.6.0.0/16", 9, 3, 500)]);
    assert_eq!(h.installed("10.6.0.0/16").unwrap().via, nb(1));
    h.kernel();
    // A much better route via neighbour 2, fed until smoothing lets it win.
    for _ in 0..10 {
        for n in [nb(1), nb(2)] {
            let hello = h.hello(n);
            h.recv(n, &[hello, ihu(96)]);
        }
        h.recv(nb(1), &[update("10.6.0.0/16", 9, 3, 500)]);
        h.recv(nb(2), &[update("10.6.0.0/16", 9, 3, 0)]);
        h.advance(Duration::from_secs(2));
    }
    assert_eq!(h.installed("10.6.0.0/16").unwrap().via, nb(2));
    let k = h.kernel();
    assert!(
        k.iter()
            .any(|c| c.op == babel_core::RouteOp::Replace && c.next_hop == nb(2)),
        "{k:?}"
    );
    assert_eq!(h.e.counters().filtered_install, 0);
}

const INFINITY_METRIC: u16 = babel_wire::INFINITY;
