//! Unit tests per RFC 9616 section (Delay-Based Metric Extension), with babeld 1.12's choices
//! where the RFC leaves room (see `spec/rtt.md`), driven through the public API with real
//! encoded packets. Sections: §2 RTT sampling (2.1 algorithm, 2.3 operation, 2.4 wraparound),
//! §3 route selection (3.1 smoothing, 3.2 cost), §5 packet format (5.1 Hello, 5.2 IHU).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use babel_core::{Engine, Instant, InterfaceConfig, InterfaceKind, rtt};
use babel_wire::{
    DecodeOptions, EncodeOptions, Flavour, Hello, Ihu, IhuTimestamp, Message, decode, encode,
};
use common::*;

/// A harness whose interface has this configuration.
fn with_ifc(cfg: InterfaceConfig) -> H {
    let now = Instant::from_secs(1000);
    let mut e = Engine::new(config(), now).unwrap();
    e.interface_up(now, IF, cfg);
    let mut h = H {
        e,
        now,
        hello_seq: Default::default(),
    };
    h.sent();
    h
}

fn tunnel() -> InterfaceConfig {
    InterfaceConfig::new("tun0", InterfaceKind::Tunnel, us())
}

fn ts_hello(h: &mut H, from: IpAddr, ts: u32) -> Message {
    match h.hello(from) {
        Message::Hello(x) => Message::Hello(Hello {
            timestamp: Some(ts),
            ..x
        }),
        _ => unreachable!(),
    }
}

fn ts_ihu(origin: u32, receive: u32) -> Message {
    Message::Ihu(Ihu {
        address: Some(us()),
        rxcost: 96,
        interval: 1200,
        timestamp: Some(IhuTimestamp { origin, receive }),
    })
}

fn micros(i: Instant) -> u32 {
    i.as_micros() as u32
}

/// Runs the timers in 10 ms steps until we send a Hello; returns its transmit timestamp.
fn our_next_hello(h: &mut H) -> u32 {
    for _ in 0..1000 {
        h.advance(Duration::from_millis(10));
        let ts = h.sent_messages().iter().rev().find_map(|m| match m {
            Message::Hello(x) => x.timestamp,
            _ => None,
        });
        if let Some(ts) = ts {
            return ts;
        }
    }
    panic!("no timestamped Hello");
}

/// Makes `from` answer our next Hello so that exactly `rtt` is measured: the reply (a
/// timestamped Hello and an IHU echoing our timestamp) arrives `rtt` after the neighbour says
/// it stopped holding our Hello. Its clock is offset from ours by an arbitrary 123 s.
fn feed_sample(h: &mut H, from: IpAddr, rtt: Duration) {
    let t1 = our_next_hello(h);
    let hold = micros(h.now).wrapping_sub(t1);
    h.advance(rtt);
    let t2 = t1.wrapping_add(123_000_000);
    let t3 = t2.wrapping_add(hold);
    let hello = ts_hello(h, from, t3);
    h.recv(from, &[hello, ts_ihu(t1, t2)]);
}

fn rtt_us(h: &H) -> Option<u64> {
    h.e.neighbours(h.now)[0]
        .rtt
        .map(|d| u64::try_from(d.as_micros()).unwrap())
}

#[test]
fn rfc9616_s5_1_hellos_carry_our_clock_on_tunnels_and_with_enable_timestamps() {
    let mut t = with_ifc(tunnel());
    let ts = our_next_hello(&mut t);
    // Our clock in µs modulo 2^32, taken when the Hello was built (within the 10 ms step).
    assert!(micros(t.now).wrapping_sub(ts) <= 10_000, "{ts}");
    let mut w = H::new();
    w.advance(Duration::from_secs(5));
    let hellos: Vec<_> = w
        .sent_messages()
        .into_iter()
        .filter_map(|m| match m {
            Message::Hello(x) => Some(x),
            _ => None,
        })
        .collect();
    assert!(!hellos.is_empty() && hellos.iter().all(|x| x.timestamp.is_none()));
    let mut cfg = InterfaceConfig::new("eth0", InterfaceKind::Wired, us());
    cfg.timestamps = true;
    let mut e = with_ifc(cfg);
    our_next_hello(&mut e);
}

#[test]
fn rfc9616_s5_2_s2_3_ihus_echo_the_hello_and_travel_with_our_timestamped_hello() {
    let mut h = with_ifc(tunnel());
    let a = nb(1);
    let hello = ts_hello(&mut h, a, 777_000);
    h.recv(a, &[hello]);
    let received_at = micros(h.now);
    let hello = ts_hello(&mut h, a, 778_000);
    h.recv(a, &[hello]);
    let received_at_2 = micros(h.now);
    assert_eq!(received_at, received_at_2);
    h.advance(Duration::from_secs(13));
    let mut echoed = 0;
    for (_, msgs) in h.sent() {
        let has_ts_hello = msgs
            .iter()
            .any(|m| matches!(m, Message::Hello(x) if x.timestamp.is_some()));
        for m in &msgs {
            if let Message::Ihu(i) = m
                && let Some(ts) = i.timestamp
            {
                assert!(
                    has_ts_hello,
                    "timestamped IHU without a timestamped Hello: {msgs:?}"
                );
                // origin = the neighbour's last Hello timestamp, receive = our clock then.
                assert_eq!(
                    ts,
                    IhuTimestamp {
                        origin: 778_000,
                        receive: received_at_2
                    }
                );
                echoed += 1;
            }
        }
    }
    assert!(echoed > 0);
    // Without timestamps on our side, IHUs carry none.
    let mut w = H::new();
    let hello = ts_hello(&mut w, a, 5);
    w.recv(a, &[hello]);
    w.advance(Duration::from_secs(13));
    assert!(
        w.sent_messages()
            .iter()
            .all(|m| !matches!(m, Message::Ihu(i) if i.timestamp.is_some()))
    );
}

/// When the IHUs overflow the Hello's packet, every further packet starts with an unscheduled
/// timestamped Hello (babeld's `send_ihu`), so each IHU timestamp has a t3 next to it.
#[test]
fn rfc9616_s2_3_every_packet_with_timestamped_ihus_has_a_timestamped_hello() {
    let mut cfg = tunnel();
    cfg.mtu = 300;
    let mut h = with_ifc(cfg);
    for n in 1..=30u8 {
        let hello = ts_hello(&mut h, nb(n), 1000 + u32::from(n));
        h.recv(nb(n), &[hello]);
    }
    h.advance(Duration::from_secs(13));
    let mut packets_with_ihus = 0;
    let mut ihus = 0;
    for (_, msgs) in h.sent() {
        let n = msgs
            .iter()
            .filter(|m| matches!(m, Message::Ihu(i) if i.timestamp.is_some()))
            .count();
        if n == 0 {
            continue;
        }
        packets_with_ihus += 1;
        ihus += n;
        assert!(
            matches!(msgs.first(), Some(Message::Hello(x)) if x.timestamp.is_some()),
            "{msgs:?}"
        );
    }
    assert!(packets_with_ihus >= 3, "{packets_with_ihus}");
    assert!(ihus >= 30, "{ihus}");
}

#[test]
fn rfc9616_s2_1_s2_4_sample_is_mills_formula_modulo_2_32_and_bad_samples_are_discarded() {
    // (t4 - t1) - (t3 - t2): 55 ms out and back, 5 ms held by the neighbour.
    assert_eq!(
        rtt::sample(1_000_000, 7_000, 12_000, 1_055_000),
        Some(50_000)
    );
    // §2.4: both clocks wrap.
    let t1 = u32::MAX - 10_000;
    let t2 = u32::MAX - 1;
    assert_eq!(
        rtt::sample(t1, t2, t2.wrapping_add(5_000), t1.wrapping_add(55_000)),
        Some(50_000)
    );
    // babeld: a negative waiting time (as a signed 32-bit difference) discards the sample...
    assert_eq!(rtt::sample(1_000_000, 7_000, 6_000, 1_055_000), None);
    assert_eq!(rtt::sample(1_000_000, 7_000, 12_000, 999_000), None);
    // ...so does one over 10 minutes; exactly 600 s is still accepted.
    let max = rtt::MAX_WAITING_US;
    assert_eq!(rtt::sample(1, 1, 1, 1 + max + 1), None);
    assert_eq!(rtt::sample(1, 1, 1 + max + 1, 1 + max + 2), None);
    assert_eq!(rtt::sample(1, 1, 1, 1 + max), Some(max));
    // A zero origin or receive timestamp means "none" to babeld.
    assert_eq!(rtt::sample(0, 7_000, 12_000, 1_055_000), None);
    assert_eq!(rtt::sample(1_000_000, 0, 12_000, 1_055_000), None);
    // The neighbour held it longer than the round trip took (clock rate skew): 0, not negative.
    assert_eq!(rtt::sample(1_000_000, 7_000, 100_000, 1_055_000), Some(0));
}

#[test]
fn rfc9616_s2_3_a_discarded_sample_leaves_the_rtt_alone() {
    let mut h = with_ifc(tunnel());
    let a = nb(1);
    let hello = ts_hello(&mut h, a, 1);
    h.recv(a, &[hello]);
    // The neighbour claims it held our Hello for 20 minutes: discarded.
    let t1 = our_next_hello(&mut h);
    h.advance(Duration::from_millis(50));
    let hello = ts_hello(&mut h, a, 2_000_000_000);
    h.recv(a, &[hello, ts_ihu(t1, 2_000_000_000 - 1_200_000_000)]);
    assert_eq!(rtt_us(&h), None);
    // An IHU timestamp without a timestamped Hello in the same packet gives no sample.
    let t1 = our_next_hello(&mut h);
    h.advance(Duration::from_millis(50));
    let hello = h.hello(a);
    h.recv(a, &[hello, ts_ihu(t1, 5)]);
    assert_eq!(rtt_us(&h), None);
    // An IHU for someone else neither.
    let t1 = our_next_hello(&mut h);
    h.advance(Duration::from_millis(50));
    let hello = ts_hello(&mut h, a, 10);
    let other = Message::Ihu(Ihu {
        address: Some(nb(9)),
        rxcost: 96,
        interval: 1200,
        timestamp: Some(IhuTimestamp {
            origin: t1,
            receive: 10,
        }),
    });
    h.recv(a, &[hello, other]);
    assert_eq!(rtt_us(&h), None);
}

#[test]
fn rfc9616_s3_1_smoothing_doubles_the_first_sample_and_rounds_towards_the_sample() {
    // babeld: a new neighbour starts at twice its first sample ("conservative").
    assert_eq!(rtt::smooth(None, 30_000, 42), 60_000);
    // (42 × 50 000 + 214 × 60 000) / 256 = 58 359.375: down, towards the lower sample.
    assert_eq!(rtt::smooth(Some(60_000), 50_000, 42), 58_359);
    // (42 × 70 000 + 214 × 60 000) / 256 = 61 640.625: up, towards the higher sample.
    assert_eq!(rtt::smooth(Some(60_000), 70_000, 42), 61_641);
    // rtt-decay 256 keeps only the sample; 1 almost only the old value.
    assert_eq!(rtt::smooth(Some(60_000), 10_000, 256), 10_000);
    assert_eq!(rtt::smooth(Some(60_000), 10_000, 1), 59_804);
    // Through the engine, with the interface's rtt-decay.
    let mut cfg = tunnel();
    cfg.rtt_decay = 128;
    let mut h = with_ifc(cfg);
    let a = nb(1);
    let hello = ts_hello(&mut h, a, 1);
    h.recv(a, &[hello]);
    feed_sample(&mut h, a, Duration::from_millis(40));
    assert_eq!(rtt_us(&h), Some(80_000));
    feed_sample(&mut h, a, Duration::from_millis(20));
    assert_eq!(rtt_us(&h), Some(50_000));
}

#[test]
fn rfc9616_s3_2_cost_is_linear_between_rtt_min_and_rtt_max() {
    let mut c = tunnel();
    c.max_rtt_penalty = 220;
    assert_eq!(rtt::cost(5_000, &c), 0);
    assert_eq!(rtt::cost(10_000, &c), 0);
    assert_eq!(rtt::cost(65_000, &c), 110);
    assert_eq!(rtt::cost(65_499, &c), 110);
    assert_eq!(rtt::cost(120_000, &c), 220);
    assert_eq!(rtt::cost(5_000_000, &c), 220);
    c.max_rtt_penalty = 0;
    assert_eq!(rtt::cost(5_000_000, &c), 0);
    // In the link cost: 96 + rttcost (babeld adds it after the 2-out-of-3 / ETX cost).
    let mut h = with_ifc(tunnel());
    let a = nb(1);
    h.establish(a);
    assert_eq!(h.e.neighbours(h.now)[0].cost, 96);
    feed_sample(&mut h, a, Duration::from_millis(32));
    // First sample doubled: 64 ms → 96 × 54 / 110 = 47.
    let n = &h.e.neighbours(h.now)[0];
    assert_eq!(n.rtt, Some(Duration::from_millis(64)));
    assert_eq!((n.rttcost.0, n.cost.0), (47, 96 + 47));
}

#[test]
fn rfc9616_s3_rtt_expires_180_s_after_its_last_sample() {
    let mut h = with_ifc(tunnel());
    let a = nb(1);
    h.establish(a);
    feed_sample(&mut h, a, Duration::from_millis(200));
    let sampled = h.now;
    assert_eq!(h.e.neighbours(h.now)[0].rttcost, 96);
    // Keep the neighbour alive with Hellos and IHUs that carry no timestamps.
    while h.now.saturating_since(sampled) < Duration::from_secs(176) {
        let hello = h.hello(a);
        h.recv(a, &[hello, ihu(96)]);
        h.advance(Duration::from_secs(4));
    }
    let until = (sampled + Duration::from_secs(180)).saturating_since(h.now);
    h.advance(until - Duration::from_millis(1));
    let n = &h.e.neighbours(h.now)[0];
    assert!(n.rtt.is_some() && n.rttcost == 96, "{n:?}");
    h.advance(Duration::from_millis(1));
    let hello = h.hello(a);
    h.recv(a, &[hello, ihu(96)]);
    let n = &h.e.neighbours(h.now)[0];
    assert_eq!((n.rtt, n.rttcost.0, n.cost.0), (None, 0, 96), "{n:?}");
    // The next sample starts over (doubled), not averaged with the expired value.
    feed_sample(&mut h, a, Duration::from_millis(20));
    assert_eq!(rtt_us(&h), Some(40_000));
}

/// Althea's full-path RTT (sub-TLV 45): a route's value is what the Update carried plus our
/// RTT to the neighbour it came from; 0 when that neighbour has no RTT. It is re-advertised as
/// stored, and a 0 is not advertised.
#[test]
fn althea_sub_tlv_45_adds_the_neighbour_rtt_hop_by_hop() {
    let althea_enc = EncodeOptions {
        flavour: Flavour::Althea,
        ..EncodeOptions::default()
    };
    let mut cfg = tunnel();
    cfg.flavour = Flavour::Althea;
    cfg.split_horizon = false;
    let mut h = with_ifc(cfg);
    let recv = |h: &mut H, from: IpAddr, msgs: &[Message]| {
        for p in encode(msgs, &althea_enc).unwrap() {
            h.e.handle_packet(h.now, IF, from, babel_core::Destination::Multicast, &p);
        }
    };
    let (a, b) = (nb(1), nb(2));
    for n in [a, b] {
        let h1 = h.hello(n);
        recv(&mut h, n, &[h1]);
        let h2 = h.hello(n);
        recv(&mut h, n, &[h2, ihu(96)]);
    }
    // a: RTT 20 ms (doubled first sample: 40 ms). b: no timestamps, no RTT.
    let t1 = our_next_hello(&mut h);
    let hold = micros(h.now).wrapping_sub(t1);
    h.advance(Duration::from_millis(20));
    let hello = ts_hello(&mut h, a, 5_000 + hold);
    recv(&mut h, a, &[hello, ts_ihu(t1, 5_000)]);
    let path = |prefix: &str, rtt: u32| match priced(prefix, 7, 1, 100, 0) {
        Message::Update(mut u) => {
            u.path_rtt = Some(rtt);
            Message::Update(u)
        }
        _ => unreachable!(),
    };
    recv(&mut h, a, &[path("fd00:7::/64", 33_000)]);
    recv(&mut h, b, &[path("fd00:8::/64", 33_000)]);
    let routes = h.e.routes(h.now);
    let rtt_of = |p: &str| {
        routes
            .iter()
            .find(|r| r.prefix == pfx(p))
            .map(|r| r.full_path_rtt)
            .unwrap()
    };
    assert_eq!(rtt_of("fd00:7::/64"), 33_000 + 40_000);
    assert_eq!(rtt_of("fd00:8::/64"), 0);
    // Re-advertised as stored (sub-TLV 45 in the Althea layout); a 0 is not sent at all.
    h.sent();
    let mut sent = std::collections::HashMap::new();
    for _ in 0..10 {
        for n in [a, b] {
            let hello = h.hello(n);
            recv(&mut h, n, &[hello, ihu(96)]);
        }
        h.advance(Duration::from_secs(2));
        collect(&mut h, &mut sent);
    }
    assert_eq!(
        sent.get(&pfx("fd00:7::/64")),
        Some(&Some(73_000)),
        "{sent:?}"
    );
    assert_eq!(sent.get(&pfx("fd00:8::/64")), Some(&None), "{sent:?}");
}

fn collect(h: &mut H, sent: &mut std::collections::HashMap<babel_wire::Prefix, Option<u32>>) {
    while let Some(t) = h.e.poll_transmit() {
        let d = decode(
            &t.bytes,
            &DecodeOptions {
                flavour: Flavour::Althea,
            },
        )
        .unwrap();
        for m in d.packet.messages {
            if let Message::Update(u) = m
                && let Some(p) = u.prefix
            {
                sent.insert(p, u.path_rtt);
            }
        }
    }
}
