//! In-process interoperability with boringtun 0.7.1's `Tunn` (an
//! independent WireGuard implementation). boringtun reads its clock
//! through `mock_instant` (dev-dependency feature), which we advance in
//! lock-step with our virtual clock, so no real sleeps are needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Tunn, TunnResult};
use common::*;
use mock_instant::MockClock;
use tunnel::{Device, DeviceAction, Now, PeerId, PeerOptions, PresharedKey, PrivateKey};

enum To {
    Ours,
    Bt,
}

struct Interop {
    ours: Device,
    peer: PeerId,
    bt: Tunn,
    now: Now,
    inflight: VecDeque<(To, Vec<u8>)>,
    tun_ours: Vec<Vec<u8>>,
    tun_bt: Vec<Vec<u8>>,
    bt_errors: Vec<String>,
    our_errors: Vec<String>,
    /// Datagrams sent by each side (for inspection).
    sent_by_bt: Vec<Vec<u8>>,
}

fn setup(seed: u64, psk: bool, bt_limiter_limit: Option<u64>) -> Interop {
    let mut r = rng(seed);
    let ours_sk = PrivateKey::generate(&mut r);
    let bt_sk = PrivateKey::generate(&mut r);
    let psk_v = psk.then(|| PresharedKey::generate(&mut r));
    let mut ours = Device::new(ours_sk.clone(), &mut r);
    let peer = ours.add_peer(
        bt_sk.public_key(),
        PeerOptions {
            endpoint: Some(ADDR_B),
            preshared_key: psk_v.clone(),
            ..Default::default()
        },
        &["10.0.0.2/32".parse().unwrap()],
    );
    let bt_secret = boringtun::x25519::StaticSecret::from(bt_sk.to_bytes());
    let bt_public = boringtun::x25519::PublicKey::from(&bt_secret);
    let limiter = bt_limiter_limit.map(|l| Arc::new(RateLimiter::new(&bt_public, l)));
    let bt = Tunn::new(
        bt_secret,
        boringtun::x25519::PublicKey::from(ours_sk.public_key().0),
        psk_v.map(|k| k.0),
        None,
        42,
        limiter,
    );
    Interop {
        ours,
        peer,
        bt,
        now: now0(),
        inflight: VecDeque::new(),
        tun_ours: vec![],
        tun_bt: vec![],
        bt_errors: vec![],
        our_errors: vec![],
        sent_by_bt: vec![],
    }
}

impl Interop {
    fn bt_result(&mut self, r: TunnResult<'_>) -> bool {
        match r {
            TunnResult::Done => false,
            TunnResult::Err(e) => {
                self.bt_errors.push(format!("{e:?}"));
                false
            }
            TunnResult::WriteToNetwork(p) => {
                self.sent_by_bt.push(p.to_vec());
                self.inflight.push_back((To::Ours, p.to_vec()));
                true
            }
            TunnResult::WriteToTunnelV4(p, _) | TunnResult::WriteToTunnelV6(p, _) => {
                self.tun_bt.push(p.to_vec());
                false
            }
        }
    }

    fn ours_result(&mut self, r: Result<DeviceAction<'_>, tunnel::TunnelError>) {
        match r {
            Ok(DeviceAction::None) => {}
            Ok(DeviceAction::Send { data, to, .. }) => {
                assert_eq!(to, ADDR_B);
                self.inflight.push_back((To::Bt, data.to_vec()));
            }
            Ok(DeviceAction::WriteToTunnel { packet, .. }) => self.tun_ours.push(packet.to_vec()),
            Err(e) => self.our_errors.push(format!("{e:?}")),
        }
    }

    fn pump(&mut self) {
        let mut buf = vec![0u8; 65600];
        for _ in 0..10_000 {
            let now = self.now;
            while let Some((_, _, d)) = self.ours.poll_transmit(&now, &mut buf) {
                self.inflight.push_back((To::Bt, d.to_vec()));
            }
            let Some((to, d)) = self.inflight.pop_front() else {
                return;
            };
            match to {
                To::Bt => {
                    let r = self.bt.decapsulate(Some(ADDR_A.ip()), &d, &mut buf);
                    let mut again = self.bt_result(r);
                    // Flush boringtun's queue.
                    while again {
                        let r = self.bt.decapsulate(None, &[], &mut buf);
                        again = self.bt_result(r);
                    }
                }
                To::Ours => {
                    let r = self.ours.handle_datagram(&now, ADDR_B, &d, &mut buf);
                    self.ours_result(r);
                }
            }
        }
        panic!("livelock");
    }

    fn ours_send(&mut self, pkt: &[u8]) {
        let now = self.now;
        let mut buf = vec![0u8; 65600];
        let r = self.ours.encapsulate(&now, pkt, &mut buf);
        self.ours_result(r);
        self.pump();
    }

    fn bt_send(&mut self, pkt: &[u8]) {
        let mut buf = vec![0u8; 65600];
        let r = self.bt.encapsulate(pkt, &mut buf);
        self.bt_result(r);
        self.pump();
    }

    fn advance(&mut self, total: Duration, step: Duration) {
        let mut t = Duration::ZERO;
        let mut buf = vec![0u8; 65600];
        while t < total {
            t += step;
            MockClock::advance(step);
            self.now = self.now.advance(step);
            let now = self.now;
            self.ours.update_timers(&now);
            let r = self.bt.update_timers(&mut buf);
            self.bt_result(r);
            self.pump();
        }
    }

    fn our_stats(&self) -> tunnel::PeerStats {
        self.ours.peer(self.peer).unwrap().stats().clone()
    }
}

fn data_both_ways(x: &mut Interop, rounds: usize) {
    for i in 0..rounds {
        let a = ipv4(IP_A, IP_B, 17 + i * 37 % 1400);
        let b = ipv4(IP_B, IP_A, 1 + i * 53 % 1400);
        x.ours_send(&a);
        x.bt_send(&b);
        assert_eq!(
            x.tun_bt.last(),
            Some(&a),
            "ours -> boringtun, round {i}: {:?}",
            x.bt_errors
        );
        assert_eq!(
            x.tun_ours.last(),
            Some(&b),
            "boringtun -> ours, round {i}: {:?}",
            x.our_errors
        );
    }
}

#[test]
fn ours_initiates_handshake_and_data_both_ways() {
    let mut x = setup(100, false, None);
    x.ours_send(&ipv4(IP_A, IP_B, 100));
    assert_eq!(x.tun_bt.len(), 1, "{:?} {:?}", x.bt_errors, x.our_errors);
    data_both_ways(&mut x, 20);
    assert_eq!(x.our_stats().handshakes_completed, 1);
    assert!(x.our_errors.is_empty(), "{:?}", x.our_errors);
}

#[test]
fn boringtun_initiates_handshake_and_data_both_ways_with_psk() {
    let mut x = setup(101, true, None);
    x.bt_send(&ipv4(IP_B, IP_A, 100));
    assert_eq!(x.tun_ours.len(), 1, "{:?} {:?}", x.bt_errors, x.our_errors);
    data_both_ways(&mut x, 20);
    assert!(x.our_errors.is_empty(), "{:?}", x.our_errors);
}

#[test]
fn psk_mismatch_with_boringtun_fails() {
    let mut x = setup(102, true, None);
    // Replace boringtun with one that has a different PSK.
    let mut r = rng(999);
    let bt_sk = PrivateKey::generate(&mut r);
    let ours_sk = PrivateKey::generate(&mut r);
    let mut ours = Device::new(ours_sk.clone(), &mut r);
    x.peer = ours.add_peer(
        bt_sk.public_key(),
        PeerOptions {
            endpoint: Some(ADDR_B),
            preshared_key: Some(PresharedKey([1; 32])),
            ..Default::default()
        },
        &["10.0.0.2/32".parse().unwrap()],
    );
    x.ours = ours;
    x.bt = Tunn::new(
        boringtun::x25519::StaticSecret::from(bt_sk.to_bytes()),
        boringtun::x25519::PublicKey::from(ours_sk.public_key().0),
        Some([2; 32]),
        None,
        7,
        None,
    );
    x.ours_send(&ipv4(IP_A, IP_B, 10));
    assert!(x.tun_bt.is_empty());
    assert!(x.our_stats().handshake_drops >= 1);
}

#[test]
fn rekey_initiated_by_ours_with_boringtun() {
    let mut x = setup(103, false, None);
    x.ours_send(&ipv4(IP_A, IP_B, 10));
    x.bt_send(&ipv4(IP_B, IP_A, 10));
    for _ in 0..14 {
        x.advance(Duration::from_secs(10), Duration::from_millis(500));
        data_both_ways(&mut x, 1);
    }
    let s = x.our_stats();
    assert!(s.handshakes_completed >= 2, "{s:?}");
    assert!(s.handshake_initiations_sent >= 2, "{s:?}");
    assert!(
        x.ours
            .peer(x.peer)
            .unwrap()
            .current_key_age(x.now.instant)
            .unwrap()
            < Duration::from_secs(120)
    );
}

#[test]
fn rekey_initiated_by_boringtun() {
    let mut x = setup(104, false, None);
    x.bt_send(&ipv4(IP_B, IP_A, 10));
    x.ours_send(&ipv4(IP_A, IP_B, 10));
    for _ in 0..14 {
        x.advance(Duration::from_secs(10), Duration::from_millis(500));
        data_both_ways(&mut x, 1);
    }
    let s = x.our_stats();
    assert!(s.handshakes_completed >= 2, "{s:?}");
    assert_eq!(
        s.handshake_initiations_sent, 0,
        "boringtun should drive the rekey: {s:?}"
    );
}

#[test]
fn cookie_exchange_boringtun_under_load() {
    // limit 0: boringtun treats every handshake message as under load.
    let mut x = setup(105, false, Some(0));
    x.ours_send(&ipv4(IP_A, IP_B, 10));
    assert!(x.tun_bt.is_empty());
    assert!(
        x.sent_by_bt.iter().any(|m| m.len() == 64 && m[0] == 3),
        "cookie reply expected"
    );
    assert_eq!(x.our_stats().cookie_replies_received, 1);
    // Our retransmission after REKEY_TIMEOUT carries mac2.
    x.advance(Duration::from_secs(6), Duration::from_millis(250));
    assert_eq!(x.tun_bt.len(), 1, "{:?} {:?}", x.bt_errors, x.our_errors);
    data_both_ways(&mut x, 3);
}

#[test]
fn cookie_exchange_ours_under_load() {
    let mut x = setup(106, false, None);
    x.ours.set_under_load(true);
    x.bt_send(&ipv4(IP_B, IP_A, 10));
    assert!(x.tun_ours.is_empty());
    assert_eq!(x.ours.stats().cookie_replies_sent, 1);
    // boringtun retransmits with mac2 after REKEY_TIMEOUT.
    x.advance(Duration::from_secs(6), Duration::from_millis(250));
    assert_eq!(
        x.ours.stats().cookie_replies_sent,
        1,
        "mac2 must be accepted"
    );
    assert_eq!(x.our_stats().handshakes_completed, 1);
    data_both_ways(&mut x, 3);
}

#[test]
fn keepalives_interoperate() {
    let mut x = setup(107, false, None);
    let now = x.now;
    let mut buf = vec![0u8; 256];
    let r = x.ours.initiate(&now, x.peer, &mut buf);
    x.ours_result(r);
    x.pump();
    assert_eq!(
        x.our_stats().tx_keepalives,
        1,
        "keepalive confirms the handshake"
    );
    // boringtun's timers compare instants strictly; let mock time move.
    x.advance(Duration::from_millis(100), Duration::from_millis(100));
    x.ours_send(&ipv4(IP_A, IP_B, 10));
    let ka = x.our_stats().rx_keepalives;
    // boringtun received data and sends nothing back: after
    // KEEPALIVE_TIMEOUT it sends a keepalive, which we accept.
    x.advance(Duration::from_secs(12), Duration::from_millis(250));
    assert!(x.our_stats().rx_keepalives > ka, "{:?}", x.our_stats());
    assert!(x.our_errors.is_empty(), "{:?}", x.our_errors);
}
