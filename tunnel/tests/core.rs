//! Protocol tests between two of our devices over a simulated network with
//! a virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use tunnel::{DeviceAction, DropReason, ForwardingPolicy, PeerOptions, PresharedKey, TunnelError};

const MS: Duration = Duration::from_millis(1);

fn established(seed: u64) -> Net {
    let mut n = pair(seed);
    n.send(Side::A, &ipv4(IP_A, IP_B, 100)).unwrap_or(());
    assert_eq!(n.tun_b.len(), 1, "queued packet delivered after handshake");
    n
}

#[test]
fn handshake_and_data_both_ways() {
    let mut n = established(1);
    assert_eq!(n.tun_b[0], ipv4(IP_A, IP_B, 100));
    for len in [0usize, 1, 15, 16, 17, 500, 1400] {
        n.send(Side::B, &ipv4(IP_B, IP_A, len)).unwrap();
        n.send(Side::A, &ipv4(IP_A, IP_B, len)).unwrap();
    }
    assert_eq!(n.tun_a.len(), 7);
    assert_eq!(n.tun_b.len(), 8);
    assert_eq!(n.tun_a[6], ipv4(IP_B, IP_A, 1400));
    let sa = n.a.peer(n.a_peer).unwrap().stats().clone();
    let sb = n.b.peer(n.b_peer).unwrap().stats().clone();
    assert_eq!(sa.tx_packets, 8);
    assert_eq!(sa.rx_packets, 7);
    assert_eq!(sb.rx_packets, 8);
    assert_eq!(sb.tx_bytes, sa.rx_bytes);
    assert_eq!(sa.handshakes_completed, 1);
    assert_eq!(sb.handshakes_completed, 1);
    assert!(n.errors.is_empty(), "{:?}", n.errors);
}

#[test]
fn responder_can_send_after_confirmation_and_either_side_initiates() {
    let mut n = pair(2);
    // B initiates this time.
    n.send(Side::B, &ipv4(IP_B, IP_A, 10)).unwrap();
    assert_eq!(n.tun_a.len(), 1);
    n.send(Side::A, &ipv4(IP_A, IP_B, 10)).unwrap();
    assert_eq!(n.tun_b.len(), 1);
}

#[test]
fn rekey_after_time_keeps_traffic_flowing() {
    let mut n = established(3);
    let hs0 =
        n.a.peer(n.a_peer)
            .unwrap()
            .stats()
            .handshake_initiations_sent;
    // Exchange traffic every 10 s for 6 minutes: A (the initiator) must
    // rekey after REKEY_AFTER_TIME, and no packet may be lost.
    for i in 0..36 {
        n.advance(Duration::from_secs(10), Duration::from_millis(250));
        n.send(Side::A, &ipv4(IP_A, IP_B, 64)).unwrap();
        n.send(Side::B, &ipv4(IP_B, IP_A, 64)).unwrap();
        assert_eq!(n.tun_b.len(), i + 2, "round {i}: {:?}", n.errors);
        assert_eq!(n.tun_a.len(), i + 1, "round {i}: {:?}", n.errors);
    }
    let sa = n.a.peer(n.a_peer).unwrap().stats().clone();
    assert!(sa.handshake_initiations_sent >= hs0 + 2, "{sa:?}");
    assert!(
        n.a.peer(n.a_peer)
            .unwrap()
            .current_key_age(n.now.instant)
            .unwrap()
            < Duration::from_secs(130)
    );
}

#[test]
fn previous_keypair_accepts_in_flight_packets() {
    let mut n = established(4);
    n.send(Side::B, &ipv4(IP_B, IP_A, 10)).unwrap();
    // Capture a packet sealed with the old keys.
    n.capture = Some(vec![]);
    n.send(Side::B, &ipv4(IP_B, IP_A, 20)).unwrap();
    let old = n.capture.take().unwrap();
    assert_eq!(old.len(), 1);
    // Rekey (time-driven), then deliver the old packet late.
    n.advance(Duration::from_secs(121), Duration::from_secs(1));
    n.send(Side::A, &ipv4(IP_A, IP_B, 10)).unwrap();
    n.advance(Duration::from_secs(1), MS * 100);
    n.send(Side::B, &ipv4(IP_B, IP_A, 30)).unwrap();
    assert!(n.a.peer(n.a_peer).unwrap().stats().handshakes_completed >= 2);
    let before = n.tun_a.len();
    let (to, src, d) = &old[0];
    n.deliver(*to, *src, d).unwrap();
    assert_eq!(n.tun_a.len(), before + 1);
    assert_eq!(n.tun_a.last().unwrap(), &ipv4(IP_B, IP_A, 20));
}

#[test]
fn replay_window() {
    let mut n = established(5);
    n.capture = Some(vec![]);
    for i in 0..9000 {
        n.send(Side::A, &ipv4(IP_A, IP_B, i % 50)).unwrap();
    }
    let c = n.capture.take().unwrap();
    assert_eq!(c.len(), 9000);
    let deliver = |n: &mut Net, i: usize| {
        let (to, src, d) = &c[i];
        n.deliver(*to, *src, d)
    };
    // Reordered within the window: accepted.
    for i in (0..100).rev() {
        deliver(&mut n, i).unwrap();
    }
    // Duplicate: dropped.
    assert_eq!(
        deliver(&mut n, 50),
        Err(TunnelError::Dropped(DropReason::Replay))
    );
    // Jump ahead, then a too-old counter.
    deliver(&mut n, 8999).unwrap();
    assert_eq!(
        deliver(&mut n, 100),
        Err(TunnelError::Dropped(DropReason::Replay))
    );
    // Still inside the window (8999 - 8128 = 871).
    deliver(&mut n, 900).unwrap();
    assert_eq!(
        deliver(&mut n, 900),
        Err(TunnelError::Dropped(DropReason::Replay))
    );
    let s = n.b.peer(n.b_peer).unwrap().stats();
    assert_eq!(s.replay_drops, 3);
    assert_eq!(n.tun_b.len(), 1 + 102);
}

#[test]
fn garbage_truncated_and_oversized_inputs_are_dropped() {
    let mut n = established(6);
    n.capture = Some(vec![]);
    n.send(Side::A, &ipv4(IP_A, IP_B, 100)).unwrap();
    let good = n.capture.take().unwrap().remove(0).2;
    let mut rng_state: u64 = 99;
    let mut rnd = || {
        rng_state = rng_state.wrapping_mul(6364136223846793005).wrapping_add(1);
        (rng_state >> 33) as u8
    };
    // Truncations of a valid data packet.
    for l in 0..good.len() {
        assert!(n.deliver(Side::B, ADDR_A, &good[..l]).is_err());
    }
    // Bit flips anywhere.
    for i in 0..good.len() {
        let mut g = good.clone();
        g[i] ^= 1 << (i % 8);
        assert!(n.deliver(Side::B, ADDR_A, &g).is_err(), "flip at {i}");
    }
    // Random garbage with every message type.
    for t in 0..=5u8 {
        for len in [0usize, 3, 4, 31, 32, 64, 92, 148, 200, 1500] {
            let mut g: Vec<u8> = (0..len).map(|_| rnd()).collect();
            if len >= 4 {
                g[0] = t;
                g[1..4].fill(0);
            }
            assert!(n.deliver(Side::B, ADDR_A, &g).is_err());
        }
    }
    // Oversized datagram.
    let mut big = vec![0u8; 70_000];
    big[0] = 4;
    assert!(n.deliver(Side::B, ADDR_A, &big).is_err());
    // Oversized plaintext.
    assert!(n.send(Side::A, &vec![0x45u8; 70_000]).is_err());
    // Output buffer too small is an error, not a panic.
    let now = n.now;
    let mut small = [0u8; 10];
    assert!(matches!(
        n.a.encapsulate(&now, &ipv4(IP_A, IP_B, 100), &mut small),
        Err(TunnelError::BufferTooSmall { .. })
    ));
    let st = n.b.stats();
    assert!(
        st.malformed > 0 && st.invalid_mac1 > 0 && st.unknown_index > 0,
        "{st:?}"
    );
    assert!(n.b.peer(n.b_peer).unwrap().stats().decrypt_drops > 0);
    // The tunnel still works.
    n.send(Side::A, &ipv4(IP_A, IP_B, 7)).unwrap();
    assert_eq!(n.tun_b.last().unwrap(), &ipv4(IP_A, IP_B, 7));
}

#[test]
fn cookie_reply_flow_under_load() {
    let mut n = pair(7);
    n.b.set_under_load(true);
    n.send(Side::A, &ipv4(IP_A, IP_B, 10)).unwrap();
    assert_eq!(n.b.stats().cookie_replies_sent, 1);
    assert_eq!(
        n.a.peer(n.a_peer).unwrap().stats().cookie_replies_received,
        1
    );
    assert!(n.tun_b.is_empty());
    // The retransmission after REKEY_TIMEOUT carries a valid mac2.
    n.advance(Duration::from_secs(6), MS * 250);
    assert_eq!(n.tun_b.len(), 1, "{:?} {:?}", n.errors, n.b.stats());
    assert_eq!(n.b.stats().cookie_replies_sent, 1);
    n.send(Side::B, &ipv4(IP_B, IP_A, 10)).unwrap();
    assert_eq!(n.tun_a.len(), 1);
}

#[test]
fn under_load_rate_limits_per_source() {
    let mut n = pair(8);
    n.b.set_under_load(true);
    n.send(Side::A, &ipv4(IP_A, IP_B, 10)).unwrap();
    n.advance(Duration::from_secs(6), MS * 250);
    assert_eq!(n.tun_b.len(), 1);
    // Re-sending one initiation with a valid mac2 from the same source
    // at the same instant: the first few reach the handshake code (and are
    // rejected as replays), then the per-source limiter (burst 5) kicks in.
    n.now = n.now.advance(Duration::from_secs(6));
    let now = n.now;
    let mut out = vec![0u8; 200];
    let init = match n.a.initiate(&now, n.a_peer, &mut out).unwrap() {
        DeviceAction::Send { data, .. } => data.to_vec(),
        other => panic!("{other:?}"),
    };
    let results: Vec<_> = (0..10).map(|_| n.deliver(Side::B, ADDR_A, &init)).collect();
    let limited = results
        .iter()
        .filter(|r| **r == Err(TunnelError::Dropped(DropReason::RateLimited)))
        .count();
    assert_eq!(limited, 5, "{results:?}");
    assert_eq!(n.b.stats().rate_limited, 5);
    // No cookie needed: mac2 was valid.
    assert_eq!(n.b.stats().cookie_replies_sent, 1);
}

#[test]
fn psk_mismatch_fails_and_match_succeeds() {
    let mut r = rng(50);
    let k1 = PresharedKey::generate(&mut r);
    let k2 = PresharedKey::generate(&mut r);
    let o = |k: &PresharedKey| PeerOptions {
        preshared_key: Some(k.clone()),
        ..Default::default()
    };
    let mut n = pair_with(9, o(&k1), o(&k2));
    let _ = n.send(Side::A, &ipv4(IP_A, IP_B, 10));
    assert!(n.tun_b.is_empty());
    assert!(n.a.peer(n.a_peer).unwrap().stats().handshake_drops >= 1);
    assert!(!n.a.peer(n.a_peer).unwrap().is_established(n.now.instant));
    let mut n = pair_with(9, o(&k1), o(&k1));
    n.send(Side::A, &ipv4(IP_A, IP_B, 10)).unwrap();
    assert_eq!(n.tun_b.len(), 1);
    // One side with a PSK, the other without: fails too.
    let mut n = pair_with(9, o(&k1), PeerOptions::default());
    let _ = n.send(Side::A, &ipv4(IP_A, IP_B, 10));
    assert!(n.tun_b.is_empty());
}

#[test]
fn replayed_initiation_is_rejected() {
    let mut n = pair(10);
    n.capture = Some(vec![]);
    let _ = n.send(Side::A, &ipv4(IP_A, IP_B, 10));
    let init = n.capture.take().unwrap().remove(0);
    n.deliver(init.0, init.1, &init.2).unwrap();
    n.now = n.now.advance(Duration::from_secs(1));
    assert_eq!(
        n.deliver(init.0, init.1, &init.2),
        Err(TunnelError::Dropped(DropReason::HandshakeReplay))
    );
}

#[test]
fn unknown_peer_initiation_is_dropped() {
    let mut n = pair(11);
    let mut m = pair(12); // different keys; B of `m` knows nobody from `n`
    m.capture = Some(vec![]);
    let _ = m.send(Side::A, &ipv4(IP_A, IP_B, 10));
    let init = m.capture.take().unwrap().remove(0);
    // mac1 is keyed with m.b's public key, so n.b rejects on mac1.
    assert_eq!(
        n.deliver(Side::B, ADDR_A, &init.2),
        Err(TunnelError::Dropped(DropReason::InvalidMac1))
    );
    assert_eq!(n.b.stats().invalid_mac1, 1);
}

#[test]
fn forwarding_policy_block_and_rate_limit() {
    let mut n = established(13);
    let id = n.a_peer;
    n.a.peer_mut(id)
        .unwrap()
        .set_policy(ForwardingPolicy::Block);
    assert_eq!(
        n.send(Side::A, &ipv4(IP_A, IP_B, 100)),
        Err(TunnelError::Dropped(DropReason::Policy))
    );
    n.send(Side::B, &ipv4(IP_B, IP_A, 100)).unwrap();
    assert!(n.tun_a.is_empty());
    let s = n.a.peer(id).unwrap().stats().clone();
    assert_eq!((s.tx_policy_drops, s.rx_policy_drops), (1, 1));
    // 1000 B/s, burst 1000: two 480-byte packets pass, the third not.
    n.a.peer_mut(id)
        .unwrap()
        .set_policy(ForwardingPolicy::RateLimit {
            bytes_per_sec: 1000,
            burst: 1000,
        });
    assert!(n.send(Side::A, &ipv4(IP_A, IP_B, 460)).is_ok());
    assert!(n.send(Side::A, &ipv4(IP_A, IP_B, 460)).is_ok());
    assert!(n.send(Side::A, &ipv4(IP_A, IP_B, 460)).is_err());
    n.advance(Duration::from_millis(500), MS * 100);
    assert!(n.send(Side::A, &ipv4(IP_A, IP_B, 460)).is_ok());
    assert_eq!(n.a.peer(id).unwrap().stats().tx_policy_drops, 2);
    // Keepalives are never blocked.
    n.a.peer_mut(id)
        .unwrap()
        .set_policy(ForwardingPolicy::Block);
    n.send(Side::B, &ipv4(IP_B, IP_A, 10)).unwrap_or(());
    let ka = n.a.peer(id).unwrap().stats().tx_keepalives;
    n.advance(Duration::from_secs(11), MS * 250);
    assert!(n.a.peer(id).unwrap().stats().tx_keepalives > ka);
}

#[test]
fn disallowed_inner_source_is_dropped() {
    let mut n = established(14);
    n.send(Side::B, &ipv4([10, 9, 9, 9], IP_A, 10))
        .unwrap_or(());
    // B routes by destination (10.0.0.1 is A), A rejects the source.
    assert!(n.tun_a.is_empty());
    assert!(
        n.errors
            .iter()
            .any(|(_, e)| *e == TunnelError::Dropped(DropReason::NotAllowedSource))
    );
    // No route for unknown destinations.
    assert_eq!(
        n.send(Side::A, &ipv4(IP_A, [10, 7, 7, 7], 10)),
        Err(TunnelError::Dropped(DropReason::NoRoute))
    );
}

#[test]
fn source_check_off_accepts_any_inner_source() {
    // One interface per peer (mesh neighbours): the interface, not the allowed IPs, tells
    // who sent a packet.
    let mut n = established(26);
    n.a.set_source_check(false);
    n.send(Side::B, &ipv4([10, 9, 9, 9], IP_A, 10))
        .unwrap_or(());
    assert_eq!(n.tun_a.len(), 1);
    assert_eq!(n.tun_a[0], ipv4([10, 9, 9, 9], IP_A, 10));
}

#[test]
fn keepalive_after_receiving_data() {
    let mut n = established(15);
    let ka = n.b.peer(n.b_peer).unwrap().stats().tx_keepalives;
    n.advance(Duration::from_secs(11), MS * 250);
    assert_eq!(n.b.peer(n.b_peer).unwrap().stats().tx_keepalives, ka + 1);
    // Quiet afterwards: no keepalive ping-pong.
    n.advance(Duration::from_secs(30), MS * 500);
    assert_eq!(n.b.peer(n.b_peer).unwrap().stats().tx_keepalives, ka + 1);
}

#[test]
fn persistent_keepalive() {
    let o = PeerOptions {
        persistent_keepalive: Some(5),
        ..Default::default()
    };
    let mut n = pair_with(16, o, PeerOptions::default());
    // No traffic at all: the persistent keepalive brings the tunnel up.
    n.advance(Duration::from_secs(30), MS * 250);
    assert!(n.a.peer(n.a_peer).unwrap().is_established(n.now.instant));
    assert!(n.a.peer(n.a_peer).unwrap().stats().tx_keepalives >= 4);
}

#[test]
fn handshake_retries_then_gives_up() {
    let mut n = pair(17);
    n.blackhole = Some(Side::B);
    let _ = n.send(Side::A, &ipv4(IP_A, IP_B, 10));
    n.advance(Duration::from_secs(120), MS * 250);
    let s = n.a.peer(n.a_peer).unwrap().stats().clone();
    // One initial attempt plus retries every ~5.0–5.33 s for 90 s.
    assert!((17..=20).contains(&s.handshake_initiations_sent), "{s:?}");
    assert!(!n.a.peer(n.a_peer).unwrap().handshake_in_progress());
    // Nothing more once given up.
    n.advance(Duration::from_secs(60), Duration::from_secs(1));
    assert_eq!(
        n.a.peer(n.a_peer)
            .unwrap()
            .stats()
            .handshake_initiations_sent,
        s.handshake_initiations_sent
    );
    // A new packet restarts the handshake; peer reachable again.
    n.blackhole = None;
    n.send(Side::A, &ipv4(IP_A, IP_B, 10)).unwrap_or(());
    assert_eq!(n.tun_b.len(), 1);
}

/// Both sides start a handshake and only B's arrives: once A, as responder, has B's first data
/// packet, A has a session and its own pending initiation is dropped, as wireguard-go drops it.
/// (A second handshake on top of the fresh one made the new session change under traffic.)
#[test]
fn a_confirmed_session_as_responder_ends_our_own_attempt() {
    let mut n = pair(21);
    n.blackhole = Some(Side::A);
    let _ = n.send(Side::A, &ipv4(IP_A, IP_B, 10));
    let sent = |n: &Net| {
        n.a.peer(n.a_peer)
            .unwrap()
            .stats()
            .handshake_initiations_sent
    };
    assert_eq!(sent(&n), 1);
    assert!(n.a.peer(n.a_peer).unwrap().handshake_in_progress());
    n.blackhole = None;
    n.send(Side::B, &ipv4(IP_B, IP_A, 10)).unwrap_or(());
    assert_eq!(n.tun_a.len(), 1, "B's packet confirmed the session at A");
    assert!(!n.a.peer(n.a_peer).unwrap().handshake_in_progress());
    // Past A's retransmission time: no second initiation, and traffic flows both ways.
    n.advance(Duration::from_secs(12), MS * 250);
    assert_eq!(sent(&n), 1);
    n.send(Side::A, &ipv4(IP_A, IP_B, 20)).unwrap();
    n.send(Side::B, &ipv4(IP_B, IP_A, 20)).unwrap();
    assert_eq!(n.tun_a.last(), Some(&ipv4(IP_B, IP_A, 20)));
    assert_eq!(n.tun_b.last(), Some(&ipv4(IP_A, IP_B, 20)));
    assert_eq!(n.b.peer(n.b_peer).unwrap().stats().handshakes_completed, 1);
}

/// Both sides start a handshake at the same instant (a mesh's discovery makes both neighbours
/// initiate on the same announcement round) and both handshakes complete, in every order of
/// arrival. Each side then sends on its own initiator session while its peer holds that session
/// as an unconfirmed responder one: both must stay receivable, so that traffic flows at once
/// both ways without waiting for a third handshake.
#[test]
fn crossed_initiations_give_a_working_session_in_every_order() {
    for order in 0..4u8 {
        let mut n = pair(40 + u64::from(order));
        n.capture = Some(vec![]);
        let _ = n.send(Side::A, &ipv4(IP_A, IP_B, 10));
        let _ = n.send(Side::B, &ipv4(IP_B, IP_A, 11));
        let inits = n.capture.replace(vec![]).unwrap();
        assert_eq!(inits.len(), 2, "one initiation each");
        // Deliver the two initiations in either order; each answers with a response.
        let first = usize::from(order & 1);
        for i in [first, 1 - first] {
            let (to, src, d) = &inits[i];
            n.deliver(*to, *src, d).unwrap();
        }
        let responses = n.capture.take().unwrap();
        assert_eq!(responses.len(), 2, "one response each");
        let first = usize::from(order >> 1);
        for i in [first, 1 - first] {
            let (to, src, d) = &responses[i];
            n.deliver(*to, *src, d).unwrap();
        }
        n.pump();
        let hs = |n: &Net| {
            (
                n.a.peer(n.a_peer)
                    .unwrap()
                    .stats()
                    .handshake_initiations_sent,
                n.b.peer(n.b_peer)
                    .unwrap()
                    .stats()
                    .handshake_initiations_sent,
            )
        };
        let before = hs(&n);
        assert_eq!(
            n.tun_b.first(),
            Some(&ipv4(IP_A, IP_B, 10)),
            "order {order}"
        );
        assert_eq!(
            n.tun_a.first(),
            Some(&ipv4(IP_B, IP_A, 11)),
            "order {order}"
        );
        for len in [20, 30] {
            n.send(Side::A, &ipv4(IP_A, IP_B, len)).unwrap();
            n.send(Side::B, &ipv4(IP_B, IP_A, len)).unwrap();
            assert_eq!(
                n.tun_b.last(),
                Some(&ipv4(IP_A, IP_B, len)),
                "order {order}"
            );
            assert_eq!(
                n.tun_a.last(),
                Some(&ipv4(IP_B, IP_A, len)),
                "order {order}"
            );
        }
        // Past the time a side waits for a reply to its data: still no new handshake.
        n.advance(Duration::from_secs(20), MS * 500);
        n.send(Side::A, &ipv4(IP_A, IP_B, 40)).unwrap();
        n.send(Side::B, &ipv4(IP_B, IP_A, 40)).unwrap();
        assert_eq!(n.tun_b.last(), Some(&ipv4(IP_A, IP_B, 40)), "order {order}");
        assert_eq!(n.tun_a.last(), Some(&ipv4(IP_B, IP_A, 40)), "order {order}");
        assert_eq!(hs(&n), before, "order {order}: no handshake was needed");
        assert!(n.errors.is_empty(), "order {order}: {:?}", n.errors);
    }
}

#[test]
fn keys_expire_after_reject_time_without_rekey() {
    let mut n = established(18);
    n.blackhole = Some(Side::B);
    n.advance(Duration::from_secs(181), Duration::from_secs(1));
    assert!(!n.a.peer(n.a_peer).unwrap().is_established(n.now.instant));
    assert!(!n.b.peer(n.b_peer).unwrap().is_established(n.now.instant));
    n.blackhole = None;
    n.send(Side::A, &ipv4(IP_A, IP_B, 10)).unwrap_or(());
    assert_eq!(n.tun_b.len(), 2);
}

#[test]
fn data_sent_without_reply_triggers_new_handshake() {
    let mut n = established(19);
    let hs =
        n.a.peer(n.a_peer)
            .unwrap()
            .stats()
            .handshake_initiations_sent;
    n.blackhole = Some(Side::B);
    n.advance(Duration::from_secs(2), Duration::from_secs(1));
    n.send(Side::A, &ipv4(IP_A, IP_B, 10)).unwrap();
    n.advance(Duration::from_secs(16), MS * 250);
    assert!(
        n.a.peer(n.a_peer)
            .unwrap()
            .stats()
            .handshake_initiations_sent
            > hs
    );
}

#[test]
fn roaming_updates_endpoint() {
    let mut n = established(20);
    n.capture = Some(vec![]);
    n.send(Side::A, &ipv4(IP_A, IP_B, 10)).unwrap();
    let (_, _, d) = n.capture.take().unwrap().remove(0);
    let new_addr: std::net::SocketAddr = "198.51.100.7:4444".parse().unwrap();
    n.deliver(Side::B, new_addr, &d).unwrap();
    assert_eq!(n.b.peer(n.b_peer).unwrap().endpoint(), Some(new_addr));
    let now = n.now;
    let mut out = vec![0u8; 2000];
    match n
        .b
        .encapsulate(&now, &ipv4(IP_B, IP_A, 10), &mut out)
        .unwrap()
    {
        DeviceAction::Send { to, .. } => assert_eq!(to, new_addr),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mutated_messages_never_panic_and_tunnel_survives() {
    let mut n = pair(21);
    n.b.set_under_load(true);
    n.capture = Some(vec![]);
    let _ = n.send(Side::A, &ipv4(IP_A, IP_B, 10));
    // Let the whole exchange run while recording every datagram.
    let mut all = vec![];
    for _ in 0..50 {
        let batch = n.capture.replace(vec![]).unwrap();
        for (to, src, d) in &batch {
            let _ = n.deliver(*to, *src, d);
        }
        all.extend(batch);
        n.advance(Duration::from_millis(500), Duration::from_millis(250));
    }
    n.capture = None;
    let kinds: std::collections::BTreeSet<u8> = all.iter().map(|m| m.2[0]).collect();
    assert!(
        kinds.contains(&1) && kinds.contains(&2) && kinds.contains(&3),
        "{kinds:?}"
    );
    let mut x: u64 = 7;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let (to, src, d) = &all[(rnd() as usize) % all.len()];
        let mut m = d.clone();
        match rnd() % 4 {
            0 => {
                let i = (rnd() as usize) % m.len();
                m[i] ^= 1 << (rnd() % 8);
            }
            1 => m.truncate((rnd() as usize) % m.len()),
            2 => m.extend((0..(rnd() % 40)).map(|_| rnd() as u8)),
            _ => {
                for _ in 0..4 {
                    let i = (rnd() as usize) % m.len();
                    m[i] = rnd() as u8;
                }
            }
        }
        let _ = n.deliver(*to, *src, &m);
    }
    n.b.set_under_load(false);
    n.pump();
    n.advance(Duration::from_secs(200), Duration::from_secs(1));
    let before = n.tun_b.len();
    n.send(Side::A, &ipv4(IP_A, IP_B, 33)).unwrap_or(());
    n.advance(Duration::from_secs(6), Duration::from_millis(250));
    assert!(n.tun_b.len() > before, "tunnel recovers: {:?}", n.b.stats());
}

#[test]
fn standalone_peers_point_to_point() {
    use std::sync::Arc;
    use tunnel::noise::Identity;
    use tunnel::{Peer, PeerAction, PrivateKey};
    let mut r = rng(22);
    let ska = PrivateKey::generate(&mut r);
    let skb = PrivateKey::generate(&mut r);
    let (pka, pkb) = (ska.public_key(), skb.public_key());
    for provider in [
        &tunnel::aead::RUST_CRYPTO as &'static dyn tunnel::aead::AeadProvider,
        tunnel::aead::default_provider(),
    ] {
        let mut a = Peer::new(
            Arc::new(Identity::new(ska.clone())),
            pkb,
            PeerOptions::default(),
            provider,
            &mut r,
        );
        let mut b = Peer::new(
            Arc::new(Identity::new(skb.clone())),
            pka,
            PeerOptions::default(),
            provider,
            &mut r,
        );
        let now = now0();
        let (mut b1, mut b2) = (vec![0u8; 2048], vec![0u8; 2048]);
        let pkt = ipv4(IP_A, IP_B, 300);
        // The first packet is queued; an initiation goes out instead.
        let PeerAction::SendToNetwork(init) = a.encapsulate(&now, &pkt, &mut b1).unwrap() else {
            panic!()
        };
        let PeerAction::SendToNetwork(resp) = b.decapsulate(&now, init, &mut b2).unwrap() else {
            panic!()
        };
        // Completing the handshake flushes the queued packet.
        let PeerAction::SendToNetwork(data) = a.decapsulate(&now, resp, &mut b1).unwrap() else {
            panic!()
        };
        let PeerAction::WriteToTunnel(got, src) = b.decapsulate(&now, data, &mut b2).unwrap()
        else {
            panic!()
        };
        assert_eq!(got, &pkt[..]);
        assert_eq!(src, std::net::IpAddr::from(IP_A));
        assert!(a.poll_transmit(&now, &mut b1).is_none());
        let back = ipv4(IP_B, IP_A, 5);
        let PeerAction::SendToNetwork(d) = b.encapsulate(&now, &back, &mut b2).unwrap() else {
            panic!()
        };
        let PeerAction::WriteToTunnel(got, _) = a.decapsulate(&now, d, &mut b1).unwrap() else {
            panic!()
        };
        assert_eq!(got, &back[..]);
    }
}

#[test]
fn load_is_detected_automatically() {
    let mut n = pair(23);
    n.b.set_load_threshold(2);
    // Three unanswerable initiations within a second (B never answers
    // because A's packets are captured and replayed as fresh ones).
    n.capture = Some(vec![]);
    let _ = n.send(Side::A, &ipv4(IP_A, IP_B, 10));
    let init = n.capture.take().unwrap().remove(0);
    for _ in 0..3 {
        let _ = n.deliver(Side::B, ADDR_A, &init.2);
    }
    assert_eq!(n.b.stats().cookie_replies_sent, 1, "{:?}", n.b.stats());
    // After UNDER_LOAD_DURATION without more handshakes the load is gone.
    n.inflight.clear();
    n.now = n.now.advance(Duration::from_secs(3));
    n.advance(Duration::from_secs(6), Duration::from_millis(250));
    assert_eq!(n.tun_b.len(), 1, "{:?} {:?}", n.errors, n.b.stats());
}

fn ipv6(src: u8, dst: u8, payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; 40 + payload];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8] = 0xfd;
    p[23] = src;
    p[24] = 0xfd;
    p[39] = dst;
    p
}

#[test]
fn ipv6_inner_packets_and_allowed_ips() {
    let mut r = rng(24);
    let ska = tunnel::PrivateKey::generate(&mut r);
    let skb = tunnel::PrivateKey::generate(&mut r);
    let mut a = tunnel::Device::new(ska.clone(), &mut r);
    let mut b = tunnel::Device::new(skb.clone(), &mut r);
    let pa = a.add_peer(
        skb.public_key(),
        PeerOptions {
            endpoint: Some(ADDR_B),
            ..Default::default()
        },
        &["fd00::2/128".parse().unwrap()],
    );
    b.add_peer(
        ska.public_key(),
        PeerOptions {
            endpoint: Some(ADDR_A),
            ..Default::default()
        },
        &["fd00::1/128".parse().unwrap()],
    );
    let now = now0();
    let (mut o1, mut o2, mut o3) = (vec![0u8; 4096], vec![0u8; 4096], vec![0u8; 4096]);
    let pkt = ipv6(1, 2, 1000);
    let DeviceAction::Send { data: init, .. } = a.encapsulate(&now, &pkt, &mut o1).unwrap() else {
        panic!()
    };
    let DeviceAction::Send { data: resp, .. } =
        b.handle_datagram(&now, ADDR_A, init, &mut o2).unwrap()
    else {
        panic!()
    };
    let DeviceAction::Send { data: d, .. } =
        a.handle_datagram(&now, ADDR_B, resp, &mut o3).unwrap()
    else {
        panic!()
    };
    let DeviceAction::WriteToTunnel { packet, .. } =
        b.handle_datagram(&now, ADDR_A, d, &mut o2).unwrap()
    else {
        panic!()
    };
    assert_eq!(packet, &pkt[..]);
    // Padding is stripped using the IPv6 payload length.
    assert_eq!(a.peer(pa).unwrap().stats().tx_bytes, 1040);
}

#[test]
fn padding_is_capped_at_mtu() {
    let mut n = established(25);
    n.a.set_mtu(Some(1420));
    n.capture = Some(vec![]);
    n.send(Side::A, &ipv4(IP_A, IP_B, 1400)).unwrap(); // 1420 bytes
    n.send(Side::A, &ipv4(IP_A, IP_B, 1379)).unwrap(); // 1399 -> 1408
    n.send(Side::A, &ipv4(IP_A, IP_B, 1390)).unwrap(); // 1410 -> 1420 (not 1424)
    let c = n.capture.take().unwrap();
    let lens: Vec<usize> = c.iter().map(|m| m.2.len()).collect();
    assert_eq!(lens, vec![1420 + 32, 1408 + 32, 1420 + 32]);
    for (to, src, d) in &c {
        n.deliver(*to, *src, d).unwrap();
    }
    assert_eq!(n.tun_b.last().unwrap(), &ipv4(IP_A, IP_B, 1390));
}

#[test]
fn poll_timeout_tracks_the_next_timer() {
    let mut n = pair(26);
    let t0 = n.now.instant;
    assert_eq!(n.a.poll_timeout(t0), None, "idle device has no timers");
    n.blackhole = Some(Side::B);
    let _ = n.send(Side::A, &ipv4(IP_A, IP_B, 10));
    // Handshake retransmission after REKEY_TIMEOUT + up to 333 ms jitter.
    let due = n.a.poll_timeout(t0).unwrap().saturating_since(t0);
    assert!(
        due >= Duration::from_secs(5) && due < Duration::from_millis(5334),
        "{due:?}"
    );
    n.blackhole = None;
    n.advance(Duration::from_secs(6), MS * 250);
    assert_eq!(n.tun_b.len(), 1);
    // B received data and has not replied: keepalive due 10 s after receipt.
    let now = n.now.instant;
    let due_b = n.b.poll_timeout(now).unwrap();
    assert!(
        due_b > now && due_b.saturating_since(now) <= Duration::from_secs(10),
        "{:?}",
        due_b.saturating_since(now)
    );
}

/// One call of the hook.
type Seen = (
    tunnel::hook::PacketDirection,
    tunnel::PeerId,
    std::net::IpAddr,
    usize,
);

/// Records every call and drops packets of one length.
struct Recorder {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    drop_len: usize,
}

impl tunnel::PacketHook for Recorder {
    fn packet(
        &mut self,
        direction: tunnel::hook::PacketDirection,
        peer: tunnel::PeerId,
        destination: std::net::IpAddr,
        len: usize,
    ) -> tunnel::PacketVerdict {
        self.seen
            .lock()
            .unwrap()
            .push((direction, peer, destination, len));
        if len == self.drop_len {
            tunnel::PacketVerdict::Drop
        } else {
            tunnel::PacketVerdict::Pass
        }
    }
}

#[test]
fn packet_hook_sees_every_inner_packet_and_can_drop() {
    use tunnel::hook::PacketDirection::{In, Out};
    let mut n = established(27);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    n.a.set_packet_hook(Some(Box::new(Recorder {
        seen: seen.clone(),
        drop_len: 31,
    })));
    let ip_a: std::net::IpAddr = std::net::Ipv4Addr::from(IP_A).into();
    let ip_b: std::net::IpAddr = std::net::Ipv4Addr::from(IP_B).into();
    n.send(Side::A, &ipv4(IP_A, IP_B, 100)).unwrap();
    n.send(Side::B, &ipv4(IP_B, IP_A, 50)).unwrap();
    // B sends one that A drops on the way in.
    n.send(Side::B, &ipv4(IP_B, IP_A, 11)).unwrap_or(());
    assert_eq!(
        n.tun_a.len(),
        1,
        "the packet dropped on the way in never reached A's TUN"
    );
    assert_eq!(
        n.send(Side::A, &ipv4(IP_A, IP_B, 11)),
        Err(TunnelError::Dropped(DropReason::Policy))
    );
    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            (Out, n.a_peer, ip_b, 120),
            (In, n.a_peer, ip_a, 70),
            (In, n.a_peer, ip_a, 31),
            (Out, n.a_peer, ip_b, 31),
        ]
    );
    assert_eq!(n.tun_b.len(), 2, "the dropped packet never reached B");
}
