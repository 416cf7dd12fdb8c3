//! Hostile input: random bytes and random well-formed messages never panic the engine, and what
//! it stores stays within its limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use babel_core::{Destination, InterfaceKind, Limits};
use babel_wire::{Hello, Ihu, Message, Prefix, RouteRequest, RouterId, SeqnoRequest, Update};
use common::*;
use proptest::prelude::*;

fn prefix() -> impl Strategy<Value = Prefix> {
    prop_oneof![
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, l)| Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), l).unwrap()),
        (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Prefix::new(IpAddr::V4(a.into()), l).unwrap()),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<bool>(), any::<u16>(), any::<u16>()).prop_map(|(unicast, seqno, interval)| {
            Message::Hello(Hello {
                unicast,
                seqno,
                interval,
                timestamp: None,
            })
        }),
        (any::<u16>(), 1u16..).prop_map(|(rxcost, interval)| Message::Ihu(Ihu {
            address: None,
            rxcost,
            interval,
            timestamp: None
        })),
        (
            prefix(),
            1u16..,
            any::<u16>(),
            any::<u16>(),
            1u8..=20,
            any::<u32>()
        )
            .prop_map(
                |(p, interval, seqno, metric, rid, price)| Message::Update(Update {
                    prefix: Some(p),
                    v4_via_v6: p.is_ipv4(),
                    src_prefix: None,
                    interval,
                    seqno,
                    metric,
                    router_id: Some(RouterId([2, 0, 0, 0, 0, 0, 0, rid])),
                    next_hop: None,
                    price: Some(price),
                    path_rtt: None,
                    diversity: None,
                })
            ),
        prop::option::of(prefix()).prop_map(|p| Message::RouteRequest(RouteRequest {
            prefix: p,
            v4_via_v6: p.is_some_and(|p| p.is_ipv4()),
            src_prefix: None
        })),
        (prefix(), any::<u16>(), 1u8.., 1u8..=20).prop_map(|(p, seqno, hop_count, rid)| {
            Message::SeqnoRequest(SeqnoRequest {
                prefix: p,
                v4_via_v6: p.is_ipv4(),
                src_prefix: None,
                seqno,
                hop_count,
                router_id: RouterId([2, 0, 0, 0, 0, 0, 0, rid]),
            })
        }),
        (any::<u16>(), 1u16..).prop_map(|(opaque, interval)| Message::AckReq { opaque, interval }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
        let mut h = H::new();
        for (i, p) in packets.iter().enumerate() {
            let mut p = p.clone();
            if i % 2 == 0 && p.len() >= 4 {
                // Make half of them pass the header check.
                p[0] = 42;
                p[1] = 2;
                let len = (p.len() - 4) as u16;
                p[2..4].copy_from_slice(&len.to_be_bytes());
            }
            h.e.handle_packet(h.now, IF, nb((i % 4) as u8), Destination::Multicast, &p);
            h.advance(Duration::from_millis(300));
        }
        h.sent();
    }

    #[test]
    fn random_messages_never_panic_and_stay_bounded(
        batches in proptest::collection::vec((0u8..4, proptest::collection::vec(message(), 1..30)), 1..30)
    ) {
        let mut cfg = config();
        cfg.limits = Limits { max_routes_per_neighbour: 40, max_routes: 100, max_neighbours_per_interface: 3, max_pending_requests: 20 };
        let mut h = H::with(cfg, InterfaceKind::Wired);
        for (from, msgs) in &batches {
            h.recv(nb(*from), msgs);
            h.advance(Duration::from_millis(700));
            prop_assert!(h.e.route_count() <= 100);
            prop_assert!(h.e.neighbours(h.now).len() <= 3);
            for r in h.e.routes(h.now) {
                prop_assert!(!babel_core::is_martian(&r.prefix));
            }
        }
        h.sent();
        h.kernel();
        h.events();
    }
}
