//! In-process encapsulate + decapsulate throughput, one core, no I/O:
//! ours (ring and RustCrypto AEAD providers) vs boringtun 0.7.1's `Tunn`,
//! for 64, 512 and 1420-byte IPv4 packets.
//!
//! `cargo bench -p tunnel --bench throughput`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

use boringtun::noise::{Tunn, TunnResult};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tunnel::aead::AeadProvider;
use tunnel::noise::Identity;
use tunnel::{Now, Peer, PeerAction, PeerOptions, PrivateKey};

const SIZES: [usize; 3] = [64, 512, 1420];

fn ipv4(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    p
}

fn our_pair(provider: &'static dyn AeadProvider, now: &Now) -> (Peer, Peer) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let ska = PrivateKey::generate(&mut rng);
    let skb = PrivateKey::generate(&mut rng);
    let (pka, pkb) = (ska.public_key(), skb.public_key());
    let mut a = Peer::new(
        Arc::new(Identity::new(ska)),
        pkb,
        PeerOptions::default(),
        provider,
        &mut rng,
    );
    let mut b = Peer::new(
        Arc::new(Identity::new(skb)),
        pka,
        PeerOptions::default(),
        provider,
        &mut rng,
    );
    let mut buf1 = vec![0u8; 2048];
    let mut buf2 = vec![0u8; 2048];
    let PeerAction::SendToNetwork(init) = a.initiate(now, &mut buf1).unwrap() else {
        panic!()
    };
    let PeerAction::SendToNetwork(resp) = b.decapsulate(now, init, &mut buf2).unwrap() else {
        panic!()
    };
    let PeerAction::SendToNetwork(ka) = a.decapsulate(now, resp, &mut buf1).unwrap() else {
        panic!()
    };
    assert_eq!(b.decapsulate(now, ka, &mut buf2).unwrap(), PeerAction::None);
    (a, b)
}

fn bt_pair() -> (Tunn, Tunn) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let ska = PrivateKey::generate(&mut rng);
    let skb = PrivateKey::generate(&mut rng);
    let sa = boringtun::x25519::StaticSecret::from(ska.to_bytes());
    let sb = boringtun::x25519::StaticSecret::from(skb.to_bytes());
    let pa = boringtun::x25519::PublicKey::from(&sa);
    let pb = boringtun::x25519::PublicKey::from(&sb);
    let mut a = Tunn::new(sa, pb, None, None, 1, None);
    let mut b = Tunn::new(sb, pa, None, None, 2, None);
    let mut buf1 = vec![0u8; 2048];
    let mut buf2 = vec![0u8; 2048];
    let TunnResult::WriteToNetwork(init) = a.format_handshake_initiation(&mut buf1, false) else {
        panic!()
    };
    let TunnResult::WriteToNetwork(resp) = b.decapsulate(None, init, &mut buf2) else {
        panic!()
    };
    let TunnResult::WriteToNetwork(ka) = a.decapsulate(None, resp, &mut buf1) else {
        panic!()
    };
    let _ = b.decapsulate(None, ka, &mut buf2);
    (a, b)
}

fn bench(c: &mut Criterion) {
    let now = Now::new(clock::now(), SystemTime::now());
    let mut providers: Vec<&'static dyn AeadProvider> =
        vec![&tunnel::aead::RING, &tunnel::aead::RUST_CRYPTO];
    providers.dedup_by_key(|p| p.name());
    for size in SIZES {
        let mut g = c.benchmark_group(format!("encap_decap_{size}B"));
        g.throughput(Throughput::Bytes(size as u64));
        let pkt = ipv4(size);
        for &p in &providers {
            let (mut a, mut b) = our_pair(p, &now);
            let mut wire = vec![0u8; 2048];
            let mut plain = vec![0u8; 2048];
            g.bench_function(format!("ours_{}", p.name()), |bch| {
                bch.iter(|| {
                    let Ok(PeerAction::SendToNetwork(d)) =
                        a.encapsulate(&now, black_box(&pkt), &mut wire)
                    else {
                        panic!("encapsulate")
                    };
                    let Ok(PeerAction::WriteToTunnel(out, _)) = b.decapsulate(&now, d, &mut plain)
                    else {
                        panic!("decapsulate")
                    };
                    black_box(out.len())
                })
            });
        }
        let (mut a, mut b) = bt_pair();
        let mut wire = vec![0u8; 2048];
        let mut plain = vec![0u8; 2048];
        g.bench_function("boringtun", |bch| {
            bch.iter(|| {
                let TunnResult::WriteToNetwork(d) = a.encapsulate(black_box(&pkt), &mut wire)
                else {
                    panic!("encapsulate")
                };
                let TunnResult::WriteToTunnelV4(out, _) = b.decapsulate(None, d, &mut plain) else {
                    panic!("decapsulate")
                };
                black_box(out.len())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
