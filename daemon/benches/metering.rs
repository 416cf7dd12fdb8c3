//! Cost of metering per packet: two in-process tunnel devices (no I/O), every packet
//! encapsulated by one and decapsulated by the other, with the daemon's `MeteringHook` on both
//! sides versus no hook, and with the hook plus the payment shaper (`pay-enable`: every packet
//! asks its link's shaper, full service, no capacity) in the same run. 1420 and 64-byte IPv4 packets to 64 destinations
//! (each a route with a price in the table).
//!
//! `cargo bench -p daemon --bench metering`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use babel_wire::Prefix;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use daemon::payments::{MeteringHook, Meters, PriceTable, Prices};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tunnel::{Device, DeviceAction, Now, PeerId, PeerOptions, PrivateKey};

const ADDR_A: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 1001);
const ADDR_B: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 1002);
const DESTINATIONS: u8 = 64;

fn ipv4(len: usize, dst: u8) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 1, dst, 1]);
    p
}

/// Two devices with an established session; `a`'s peer id for `b`.
fn pair(now: &Now) -> (Device, Device, PeerId) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let ska = PrivateKey::generate(&mut rng);
    let skb = PrivateKey::generate(&mut rng);
    let (pka, pkb) = (ska.public_key(), skb.public_key());
    let mut a = Device::new(ska, &mut rng);
    let mut b = Device::new(skb, &mut rng);
    a.set_source_check(false);
    b.set_source_check(false);
    let ab = a.add_peer(
        pkb,
        PeerOptions {
            endpoint: Some(ADDR_B),
            ..Default::default()
        },
        &[],
    );
    b.add_peer(
        pka,
        PeerOptions {
            endpoint: Some(ADDR_A),
            ..Default::default()
        },
        &[],
    );
    let mut o1 = vec![0u8; 4096];
    let mut o2 = vec![0u8; 4096];
    let DeviceAction::Send { data, .. } = a.initiate(now, ab, &mut o1).unwrap() else {
        panic!("no initiation")
    };
    let DeviceAction::Send { data, .. } = b.handle_datagram(now, ADDR_A, data, &mut o2).unwrap()
    else {
        panic!("no response")
    };
    let _ = a.handle_datagram(now, ADDR_B, data, &mut o1).unwrap();
    while a.poll_transmit(now, &mut o1).is_some() {}
    (a, b, ab)
}

fn table() -> Arc<PriceTable> {
    let t = Arc::new(PriceTable::default());
    t.publish((0..DESTINATIONS).map(|d| {
        (
            Prefix::new(IpAddr::V4(Ipv4Addr::new(10, 1, d, 0)), 24).unwrap(),
            Prices {
                ours: 1000 + u32::from(d),
                theirs: 900,
            },
        )
    }));
    t
}

fn bench(c: &mut Criterion) {
    let now = Now::new(clock::now(), SystemTime::now());
    let mut g = c.benchmark_group("tunnel_round_trip");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    for len in [64usize, 1420] {
        let packets: Vec<Vec<u8>> = (0..DESTINATIONS).map(|d| ipv4(len, d)).collect();
        g.throughput(Throughput::Bytes(len as u64));
        for mode in ["plain", "metered", "shaped"] {
            let (mut a, mut b, ab) = pair(&now);
            if mode != "plain" {
                let t = table();
                let hook = || {
                    let h = MeteringHook::new(t.clone(), Meters::default());
                    if mode == "shaped" {
                        h.with_shaper(Arc::new(std::sync::Mutex::new(payments::Shaper::new(
                            payments::ShaperConfig::default(),
                            clock::now(),
                        ))))
                    } else {
                        h
                    }
                };
                a.set_packet_hook(Some(Box::new(hook())));
                b.set_packet_hook(Some(Box::new(hook())));
            }
            let mut o1 = vec![0u8; 4096];
            let mut o2 = vec![0u8; 4096];
            let mut i = 0usize;
            let name = format!("{len}B/{mode}");
            g.bench_function(name, |bch| {
                bch.iter(|| {
                    i = i.wrapping_add(1);
                    let pkt = &packets[i % packets.len()];
                    let DeviceAction::Send { data, .. } =
                        a.encapsulate_to(&now, ab, pkt, &mut o1).unwrap()
                    else {
                        panic!("not sent")
                    };
                    let r = b.handle_datagram(&now, ADDR_A, data, &mut o2).unwrap();
                    black_box(matches!(r, DeviceAction::WriteToTunnel { .. }));
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
