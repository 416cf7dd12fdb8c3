//! Shared helpers for the tunnel tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tunnel::{Device, DeviceAction, Now, PeerId, PeerOptions, PrivateKey, TunnelError};

/// A minimal IPv4 packet with a correct header length field.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], payload: usize) -> Vec<u8> {
    let total = 20 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn now0() -> Now {
    Now::new(clock::now(), SystemTime::now())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

pub const ADDR_A: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 1001);
pub const ADDR_B: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 1002);
pub const IP_A: [u8; 4] = [10, 0, 0, 1];
pub const IP_B: [u8; 4] = [10, 0, 0, 2];

/// Two devices joined by a simulated lossless network with a virtual clock.
pub struct Net {
    pub a: Device,
    pub b: Device,
    pub a_peer: PeerId,
    pub b_peer: PeerId,
    pub now: Now,
    pub inflight: VecDeque<(Side, SocketAddr, Vec<u8>)>,
    pub tun_a: Vec<Vec<u8>>,
    pub tun_b: Vec<Vec<u8>>,
    pub errors: Vec<(Side, TunnelError)>,
    /// When set, datagrams are captured here instead of being delivered.
    pub capture: Option<Vec<(Side, SocketAddr, Vec<u8>)>>,
    /// Drop everything sent by this side.
    pub blackhole: Option<Side>,
}

pub fn pair_with(seed: u64, opts_a: PeerOptions, opts_b: PeerOptions) -> Net {
    let mut r = rng(seed);
    let ska = PrivateKey::generate(&mut r);
    let skb = PrivateKey::generate(&mut r);
    let pka = ska.public_key();
    let pkb = skb.public_key();
    let mut a = Device::new(ska, &mut r);
    let mut b = Device::new(skb, &mut r);
    let a_peer = a.add_peer(
        pkb,
        PeerOptions {
            endpoint: Some(ADDR_B),
            ..opts_a
        },
        &["10.0.0.2/32".parse().unwrap()],
    );
    let b_peer = b.add_peer(
        pka,
        PeerOptions {
            endpoint: Some(ADDR_A),
            ..opts_b
        },
        &["10.0.0.1/32".parse().unwrap()],
    );
    Net {
        a,
        b,
        a_peer,
        b_peer,
        now: now0(),
        inflight: VecDeque::new(),
        tun_a: vec![],
        tun_b: vec![],
        errors: vec![],
        capture: None,
        blackhole: None,
    }
}

pub fn pair(seed: u64) -> Net {
    pair_with(seed, PeerOptions::default(), PeerOptions::default())
}

impl Net {
    fn dev(&mut self, s: Side) -> &mut Device {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn emit(&mut self, from: Side, data: &[u8]) {
        if self.blackhole == Some(from) {
            return;
        }
        let src = if from == Side::A { ADDR_A } else { ADDR_B };
        let to = if from == Side::A { Side::B } else { Side::A };
        match &mut self.capture {
            Some(c) => c.push((to, src, data.to_vec())),
            None => self.inflight.push_back((to, src, data.to_vec())),
        }
    }

    fn handle(&mut self, from: Side, r: Result<DeviceAction<'_>, TunnelError>) -> Option<Vec<u8>> {
        match r {
            Ok(DeviceAction::None) => None,
            Ok(DeviceAction::Send { data, .. }) => Some(data.to_vec()),
            Ok(DeviceAction::WriteToTunnel { packet, .. }) => {
                let p = packet.to_vec();
                match from {
                    Side::A => self.tun_a.push(p),
                    Side::B => self.tun_b.push(p),
                }
                None
            }
            Err(e) => {
                self.errors.push((from, e));
                None
            }
        }
    }

    /// Sends an IP packet from `side`'s TUN.
    pub fn send(&mut self, side: Side, pkt: &[u8]) -> Result<(), TunnelError> {
        let now = self.now;
        let mut out = vec![0u8; 65600];
        let r = self.dev(side).encapsulate(&now, pkt, &mut out);
        let res = match &r {
            Err(e) => Err(e.clone()),
            Ok(_) => Ok(()),
        };
        if let Some(d) = self.handle(side, r) {
            self.emit(side, &d);
        }
        self.pump();
        res
    }

    /// Delivers one datagram to `to` (from the other side's address).
    pub fn deliver(&mut self, to: Side, src: SocketAddr, d: &[u8]) -> Result<(), TunnelError> {
        let now = self.now;
        let mut out = vec![0u8; 65600];
        let r = self.dev(to).handle_datagram(&now, src, d, &mut out);
        let res = match &r {
            Err(e) => Err(e.clone()),
            Ok(_) => Ok(()),
        };
        if let Some(reply) = self.handle(to, r) {
            self.emit(to, &reply);
        }
        res
    }

    /// Moves datagrams until the network is quiet (bounded).
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let now = self.now;
            let mut out = vec![0u8; 65600];
            let mut progressed = false;
            for s in [Side::A, Side::B] {
                while let Some((_, _, d)) = self.dev(s).poll_transmit(&now, &mut out) {
                    let d = d.to_vec();
                    self.emit(s, &d);
                    progressed = true;
                }
            }
            if let Some((to, src, d)) = self.inflight.pop_front() {
                let _ = self.deliver(to, src, &d);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
        panic!("network never went quiet (livelock)");
    }

    /// Advances virtual time in steps, running timers.
    pub fn advance(&mut self, total: Duration, step: Duration) {
        let mut t = Duration::ZERO;
        while t < total {
            self.now = self.now.advance(step);
            t += step;
            let now = self.now;
            self.a.update_timers(&now);
            self.b.update_timers(&now);
            self.pump();
        }
    }
}
