//! Metering cost per packet, side by side in the same run: our tunnel's in-process encapsulate +
//! decapsulate of one IPv4 packet (ring AEAD), with and without metering it on both ends (the
//! sender meters it as sent through its neighbour, the receiver as forwarded for its neighbour,
//! each reading the destination from the inner header and passing the per-link shaper at a
//! contended capacity), plus the metering step alone. `now` advances synthetically: the tunnel's
//! driver already reads the clock once per packet and hands the same `now` to metering.
//!
//! `cargo bench -p payments --bench metering`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use clock::Instant;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use payments::{Meter, ServiceLevel, Shaper, ShaperConfig};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tunnel::noise::Identity;
use tunnel::{Now, Peer, PeerAction, PeerOptions, PrivateKey};

const SIZES: [usize; 2] = [64, 1420];

fn ipv4(len: usize, dst: u8) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 1, dst]);
    p
}

fn pair(now: &Now) -> (Peer, Peer) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let ska = PrivateKey::generate(&mut rng);
    let skb = PrivateKey::generate(&mut rng);
    let (pka, pkb) = (ska.public_key(), skb.public_key());
    let p = &tunnel::aead::RING;
    let mut a = Peer::new(
        Arc::new(Identity::new(ska)),
        pkb,
        PeerOptions::default(),
        p,
        &mut rng,
    );
    let mut b = Peer::new(
        Arc::new(Identity::new(skb)),
        pka,
        PeerOptions::default(),
        p,
        &mut rng,
    );
    let mut b1 = vec![0u8; 2048];
    let mut b2 = vec![0u8; 2048];
    let PeerAction::SendToNetwork(init) = a.initiate(now, &mut b1).unwrap() else {
        panic!()
    };
    let PeerAction::SendToNetwork(resp) = b.decapsulate(now, init, &mut b2).unwrap() else {
        panic!()
    };
    let PeerAction::SendToNetwork(ka) = a.decapsulate(now, resp, &mut b1).unwrap() else {
        panic!()
    };
    assert_eq!(b.decapsulate(now, ka, &mut b2).unwrap(), PeerAction::None);
    (a, b)
}

/// What a metering tunnel does per packet on one end: destination from the inner header, price
/// lookup, meter, shaper.
struct Metering {
    meter: Meter<Ipv4Addr>,
    prices: std::collections::HashMap<Ipv4Addr, u32>,
    shaper: Shaper<u32>,
}

impl Metering {
    fn new(t0: Instant) -> Metering {
        let mut shaper = Shaper::new(
            ShaperConfig {
                capacity: Some(u64::MAX / 4),
                ..ShaperConfig::default()
            },
            t0,
        );
        shaper.set(t0, &7, ServiceLevel::Full, 3);
        shaper.set(t0, &8, ServiceLevel::Full, 1);
        Metering {
            meter: Meter::new(4096),
            prices: (0..=255u8)
                .map(|i| (Ipv4Addr::new(10, 0, 1, i), 1000 + u32::from(i)))
                .collect(),
            shaper,
        }
    }

    fn packet(&mut self, now: Instant, pkt: &[u8], inbound: bool) -> bool {
        let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
        let price = self.prices.get(&dst).copied().unwrap_or(u32::MAX);
        if inbound {
            self.meter.forwarded_for(&dst, pkt.len() as u64, price);
        } else {
            self.meter.sent_through(&dst, pkt.len() as u64, price);
        }
        self.shaper.admit(now, &7, pkt.len() as u32) == payments::ShaperVerdict::Pass
    }
}

fn bench(c: &mut Criterion) {
    let t0 = clock::now();
    let now = Now::new(t0, SystemTime::now());
    for size in SIZES {
        let mut g = c.benchmark_group(format!("tunnel_{size}B"));
        g.throughput(Throughput::Bytes(size as u64));
        let pkts: Vec<Vec<u8>> = (0..64u8).map(|d| ipv4(size, d)).collect();
        let (mut a, mut b) = pair(&now);
        let mut wire = vec![0u8; 2048];
        let mut plain = vec![0u8; 2048];
        let mut i = 0usize;
        let mut k = 0u64;
        g.bench_function("metering_off", |bch| {
            bch.iter(|| {
                i = (i + 1) & 63;
                let Ok(PeerAction::SendToNetwork(d)) =
                    a.encapsulate(&now, black_box(&pkts[i]), &mut wire)
                else {
                    panic!()
                };
                let Ok(PeerAction::WriteToTunnel(out, _)) = b.decapsulate(&now, d, &mut plain)
                else {
                    panic!()
                };
                black_box(out.len())
            })
        });
        let (mut ma, mut mb) = (Metering::new(t0), Metering::new(t0));
        g.bench_function("metering_on", |bch| {
            bch.iter(|| {
                i = (i + 1) & 63;
                k += 1;
                let t = t0 + Duration::from_nanos(k * 500);
                let pkt = black_box(&pkts[i]);
                assert!(ma.packet(t, pkt, false));
                let Ok(PeerAction::SendToNetwork(d)) = a.encapsulate(&now, pkt, &mut wire) else {
                    panic!()
                };
                let Ok(PeerAction::WriteToTunnel(out, _)) = b.decapsulate(&now, d, &mut plain)
                else {
                    panic!()
                };
                assert!(mb.packet(t, out, true));
                black_box(out.len())
            })
        });
        let mut m = Metering::new(t0);
        g.bench_function("metering_alone", |bch| {
            bch.iter(|| {
                i = (i + 1) & 63;
                k += 1;
                black_box(m.packet(
                    t0 + Duration::from_nanos(k * 500),
                    black_box(&pkts[i]),
                    true,
                ))
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
