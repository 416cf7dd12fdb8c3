//! Noise-robust A/B comparison for busy machines: runs ours (each AEAD
//! provider) and boringtun in interleaved batches of encapsulate +
//! decapsulate and reports the best and median batch per implementation.
//!
//! `cargo bench -p tunnel --bench interleaved [-- ROUNDS]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use boringtun::noise::{Tunn, TunnResult};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tunnel::aead::AeadProvider;
use tunnel::noise::Identity;
use tunnel::{Now, Peer, PeerAction, PeerOptions, PrivateKey};

const BATCH: usize = 5_000;

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
    let sa = boringtun::x25519::StaticSecret::from(PrivateKey::generate(&mut rng).to_bytes());
    let sb = boringtun::x25519::StaticSecret::from(PrivateKey::generate(&mut rng).to_bytes());
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

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let now = Now::new(clock::now(), SystemTime::now());
    let providers: Vec<&'static dyn AeadProvider> =
        vec![&tunnel::aead::RING, &tunnel::aead::RUST_CRYPTO];
    println!(
        "{:<6} {:<16} {:>10} {:>10} {:>12}",
        "size", "impl", "best ns", "median ns", "best Gbit/s"
    );
    for size in [64usize, 512, 1420] {
        let pkt = ipv4(size);
        let mut ours: Vec<(&str, Peer, Peer, Vec<f64>)> = providers
            .iter()
            .map(|p| {
                let (a, b) = our_pair(*p, &now);
                (p.name(), a, b, vec![])
            })
            .collect();
        let (mut ba, mut bb) = bt_pair();
        let mut bt_times = vec![];
        let (mut wire, mut plain) = (vec![0u8; 2048], vec![0u8; 2048]);
        for _ in 0..rounds {
            for (_, a, b, times) in &mut ours {
                let t = Instant::now();
                for _ in 0..BATCH {
                    let Ok(PeerAction::SendToNetwork(d)) =
                        a.encapsulate(&now, black_box(&pkt), &mut wire)
                    else {
                        panic!()
                    };
                    let Ok(PeerAction::WriteToTunnel(o, _)) = b.decapsulate(&now, d, &mut plain)
                    else {
                        panic!()
                    };
                    black_box(o.len());
                }
                times.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
            }
            let t = Instant::now();
            for _ in 0..BATCH {
                let TunnResult::WriteToNetwork(d) = ba.encapsulate(black_box(&pkt), &mut wire)
                else {
                    panic!()
                };
                let TunnResult::WriteToTunnelV4(o, _) = bb.decapsulate(None, d, &mut plain) else {
                    panic!()
                };
                black_box(o.len());
            }
            bt_times.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
        }
        let mut rows: Vec<(String, Vec<f64>)> = ours
            .into_iter()
            .map(|(n, _, _, t)| (format!("ours_{n}"), t))
            .collect();
        rows.push(("boringtun".into(), bt_times));
        for (name, mut t) in rows {
            t.sort_by(|a, b| a.total_cmp(b));
            let best = t[0];
            let median = t[t.len() / 2];
            println!(
                "{size:<6} {name:<16} {best:>10.0} {median:>10.0} {:>12.2}",
                size as f64 * 8.0 / best
            );
        }
    }
}
