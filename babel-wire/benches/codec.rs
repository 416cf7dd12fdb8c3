//! Decode and encode throughput for packets full of Updates (messages/s and bytes/s).
//!
//! `cargo bench -p babel-wire --bench codec`
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};

use babel_wire::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Updates as an Althea mesh carries them: one /128 per router, whose low 64 bits are the
/// router-id (flag 0x40 saves the Router-Id TLV), with a price and a path RTT.
fn mesh_updates(n: u32) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let low = 0x0211_22ff_fe00_0000_u64 | u64::from(i);
            let addr =
                Ipv6Addr::from((0xfd00_u128 << 112) | (u128::from(i % 7) << 64) | u128::from(low));
            Message::Update(Update {
                prefix: Some(Prefix::new(IpAddr::V6(addr), 128).unwrap()),
                v4_via_v6: false,
                src_prefix: None,
                interval: 400,
                seqno: i as u16,
                metric: 96 + (i % 500) as u16,
                router_id: Some(RouterId(low.to_be_bytes())),
                next_hop: None,
                price: Some(1000 + i),
                path_rtt: Some(20_000 + i),
                diversity: None,
            })
        })
        .collect()
}

/// Updates for a block of /64s from one router: the compressible case.
fn block_updates(n: u32) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let addr = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) << 64));
            Message::Update(Update {
                prefix: Some(Prefix::new(IpAddr::V6(addr), 64).unwrap()),
                v4_via_v6: false,
                src_prefix: None,
                interval: 400,
                seqno: 7,
                metric: 256,
                router_id: Some(RouterId([2, 0, 0, 0xff, 0xfe, 0, 0, 1])),
                next_hop: None,
                price: None,
                path_rtt: None,
                diversity: None,
            })
        })
        .collect()
}

fn bench_case(c: &mut Criterion, name: &str, flavour: Flavour, msgs: &[Message]) {
    let opts = EncodeOptions {
        flavour,
        ..EncodeOptions::for_link_mtu(1500)
    };
    let packets = encode(msgs, &opts).unwrap();
    // One full packet (the first) is the unit of work.
    let first = &packets[0];
    let dopts = DecodeOptions { flavour };
    let in_first = decode(first, &dopts).unwrap().packet.messages;
    let n = in_first.len() as u64;

    let mut g = c.benchmark_group(format!("{name}/{} updates, {} bytes", n, first.len()));
    g.throughput(Throughput::Elements(n));
    g.bench_function("decode (messages)", |b| {
        b.iter(|| decode(black_box(first), &dopts).unwrap())
    });
    g.bench_function("encode (messages)", |b| {
        b.iter(|| encode(black_box(&in_first), &opts).unwrap())
    });
    g.throughput(Throughput::Bytes(first.len() as u64));
    g.bench_function("decode (bytes)", |b| {
        b.iter(|| decode(black_box(first), &dopts).unwrap())
    });
    g.bench_function("encode (bytes)", |b| {
        b.iter(|| encode(black_box(&in_first), &opts).unwrap())
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    bench_case(
        c,
        "standard mesh /128 + price",
        Flavour::Standard,
        &mesh_updates(200),
    );
    bench_case(
        c,
        "althea mesh /128 + price",
        Flavour::Althea,
        &mesh_updates(200),
    );
    bench_case(
        c,
        "standard /64 block",
        Flavour::Standard,
        &block_updates(400),
    );
}

criterion_group!(benches, codec);
criterion_main!(benches);
