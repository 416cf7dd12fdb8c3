//! Bench: one engine learns N routes (default 100,000) from one neighbour, as real encoded
//! packets, with and without a `monitor` client attached. With the client, the events of every
//! drain become their monitor lines and are written to a Unix socket, as `babeld-rs` does, and
//! a client thread reads every byte (the time includes reading the last line). The goal
//! (issue 10): the monitor costs at most 1.2× the time without it.
//!
//! `cargo bench -p daemon --bench monitor` (`MONITOR_ROUTES=N` to change N). After criterion's
//! report, the bench prints the ratio of the two medians it measured itself, then runs
//! `MONITOR_ROUNDS` (default 7) rounds of one pass without and one pass with the monitor,
//! interleaved so that the load of a shared machine falls on both alike, and prints the median
//! ratio of their wall times and of their CPU times (user + system, all threads of the process:
//! the client's reading included).
//!
//! The text of each drain is written to the socket at once (one write per packet), unless
//! `MONITOR_WRITE_BYTES=N`: then drains' text is gathered and written N bytes or more at a time,
//! as `babeld-rs`'s per-client writer gathers the chunks queued while its client is behind (up
//! to 64 KiB).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use babel_core::{Destination, Engine, EngineConfig, Instant, InterfaceConfig, InterfaceKind};
use babel_wire::{EncodeOptions, Hello, Ihu, Message, Prefix, RouterId, Update, encode};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use daemon::config::DaemonConfig;
use daemon::state::{Daemon, Iface, Settings};

const US: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const NB: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

fn routes() -> u32 {
    std::env::var("MONITOR_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// The packets of a full dump of `n` /64s from 64 routers.
fn dump(n: u32) -> Vec<bytes::Bytes> {
    let updates: Vec<Message> = (0..n)
        .map(|i| {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 0);
            Message::Update(Update {
                prefix: Some(Prefix::new(IpAddr::V6(addr), 64).unwrap()),
                v4_via_v6: false,
                src_prefix: None,
                interval: 1600,
                seqno: 7,
                metric: 96 + (i % 500) as u16,
                router_id: Some(RouterId([2, 0, 0, 0, 0, 0, 1, (i % 64) as u8])),
                next_hop: None,
                price: Some(100),
                path_rtt: None,
                diversity: None,
            })
        })
        .collect();
    encode(&updates, &EncodeOptions::default()).unwrap()
}

/// A daemon whose engine has one interface and one established neighbour.
fn daemon() -> Daemon {
    let now = Instant::from_secs(1);
    let mut cfg = EngineConfig::new(RouterId([2, 0, 0, 0, 0, 0, 0, 1]));
    cfg.seqno = Some(1);
    let mut e = Engine::new(cfg, now).unwrap();
    e.interface_up(
        now,
        1,
        InterfaceConfig::new("eth0", InterfaceKind::Wired, IpAddr::V6(US)),
    );
    let opts = EncodeOptions::default();
    for seq in 1..=2u16 {
        let msgs = vec![
            Message::Hello(Hello {
                unicast: false,
                seqno: seq,
                interval: 400,
                timestamp: None,
            }),
            Message::Ihu(Ihu {
                address: Some(IpAddr::V6(US)),
                rxcost: 96,
                interval: 1200,
                timestamp: None,
            }),
        ];
        for p in encode(&msgs, &opts).unwrap() {
            e.handle_packet(now, 1, IpAddr::V6(NB), Destination::Multicast, &p);
        }
    }
    while e.poll_event().is_some() {}
    while e.poll_transmit().is_some() {}
    let iface = Iface {
        name: "eth0".into(),
        ifindex: Some(1),
        link_local: Some(US),
        ipv4: None,
        mtu: 1500,
        wireless: false,
        point_to_point: false,
        link_up: true,
        running: true,
    };
    Daemon::new(
        babel_core::record::RecordingDriver::new(e),
        DaemonConfig::default(),
        vec![iface],
        Settings::babeld("bench".into()),
    )
}

/// A monitor client: a thread reading a socket to its end. Joining it gives the lines read.
fn client() -> (UnixStream, std::thread::JoinHandle<usize>) {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut lines = 0;
        loop {
            match theirs.read(&mut buf) {
                Ok(0) | Err(_) => return lines,
                Ok(n) => lines += buf[..n].iter().filter(|b| **b == b'\n').count(),
            }
        }
    });
    (ours, reader)
}

/// Feeds the dump, draining the engine's outputs after every packet as the daemon's loop does;
/// with `monitor`, the events of each drain become monitor lines a client reads. Returns the
/// number of lines the client read.
fn learn(d: &mut Daemon, packets: &[bytes::Bytes], monitor: bool) -> usize {
    let mut monitor = monitor.then(client);
    let mut text = String::new();
    let gather: usize = std::env::var("MONITOR_WRITE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for p in packets {
        // The instant `daemon()` set the neighbour up at.
        let now = Instant::from_secs(1);
        let input = babel_core::Input::Packet {
            ifindex: 1,
            src: IpAddr::V6(NB),
            dst: Destination::Multicast,
            bytes: p.to_vec(),
        };
        if d.engine.input(now, input).is_err() {
            continue;
        }
        let events = d.engine.drain().events;
        match &mut monitor {
            Some((socket, _)) => {
                d.write_monitor_lines(now, &events, &mut text);
                if text.len() >= gather {
                    socket.write_all(text.as_bytes()).unwrap();
                    text.clear();
                }
            }
            None => {
                for e in &events {
                    d.forget_monitored(e);
                }
            }
        }
    }
    match monitor {
        Some((mut socket, reader)) => {
            socket.write_all(text.as_bytes()).unwrap();
            drop(socket);
            reader.join().unwrap()
        }
        None => 0,
    }
}

fn bench(c: &mut Criterion) {
    let n = routes();
    let packets = dump(n);
    // Sanity: every route is learned and, with the monitor, the client read a line for each
    // (added, then installed: two).
    let mut d = daemon();
    let lines = learn(&mut d, &packets, true);
    assert_eq!(d.engine.route_count(), n as usize);
    assert!(
        lines >= 2 * n as usize,
        "{lines} monitor lines for {n} routes"
    );
    let mut g = c.benchmark_group(format!("learn {n} routes"));
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let mut medians = [Duration::ZERO; 2];
    for (i, monitor) in [false, true].into_iter().enumerate() {
        let name = if monitor {
            "with monitor"
        } else {
            "without monitor"
        };
        let mut times = Vec::new();
        g.bench_function(name, |b| {
            b.iter_batched(
                daemon,
                |mut d| {
                    let t = std::time::Instant::now();
                    learn(&mut d, &packets, monitor);
                    times.push(t.elapsed());
                    d
                },
                BatchSize::PerIteration,
            )
        });
        times.sort();
        medians[i] = times.get(times.len() / 2).copied().unwrap_or_default();
    }
    g.finish();
    println!(
        "learn {n} routes: without monitor {:?}, with monitor {:?}, ratio {:.2}",
        medians[0],
        medians[1],
        medians[1].as_secs_f64() / medians[0].as_secs_f64().max(1e-9)
    );
    interleaved(&packets, n);
}

/// CPU time (user + system) so far of the calling thread (`RUSAGE_THREAD`: the daemon's own
/// work) or of the whole process (`RUSAGE_SELF`: the client's reading too).
fn cpu_time(who: nix::sys::resource::UsageWho) -> Duration {
    let u = nix::sys::resource::getrusage(who).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::new(t.tv_sec() as u64, 0) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

/// Interleaved rounds: ratios of a pass with the monitor to the pass before it without, in wall
/// time, in the daemon thread's CPU time and in the process's; prints their medians. On a
/// loaded machine the wall time favours the pass with two threads (the scheduler shares the
/// cores per thread), so the CPU times are the fairer measure there.
fn interleaved(packets: &[bytes::Bytes], n: u32) {
    let rounds: usize = std::env::var("MONITOR_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    use nix::sys::resource::UsageWho::{RUSAGE_SELF, RUSAGE_THREAD};
    let mut ratios = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds {
        let mut pass = [[Duration::ZERO; 3]; 2];
        for (i, monitor) in [false, true].into_iter().enumerate() {
            let mut d = daemon();
            let start = (
                std::time::Instant::now(),
                cpu_time(RUSAGE_THREAD),
                cpu_time(RUSAGE_SELF),
            );
            learn(&mut d, packets, monitor);
            pass[i] = [
                start.0.elapsed(),
                cpu_time(RUSAGE_THREAD).saturating_sub(start.1),
                cpu_time(RUSAGE_SELF).saturating_sub(start.2),
            ];
            drop(d);
        }
        for (k, r) in ratios.iter_mut().enumerate() {
            r.push(pass[1][k].as_secs_f64() / pass[0][k].as_secs_f64().max(1e-9));
        }
    }
    let [mut wall, mut thread, mut cpu] = ratios;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!(
        "learn {n} routes, {rounds} interleaved rounds: median ratio with/without monitor: wall {:.2}, daemon thread CPU {:.2}, process CPU {:.2}",
        median(&mut wall),
        median(&mut thread),
        median(&mut cpu)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
