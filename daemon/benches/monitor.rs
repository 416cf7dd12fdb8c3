//! Bench: one engine learns N routes (default 100,000) from one neighbour, as real encoded
//! packets, with and without a `monitor` client attached. With the client, the events of every
//! drain become their monitor lines and are written to a Unix socket, as `babeld-rs` does, and
//! a client thread reads every byte (the time includes reading the last line). The goal
//! (issue 10): the monitor costs at most 1.2× the time without it.
//!
//! The pass without a monitor does what `babeld-rs` does without one: the engine queues no route
//! events (`choose_route_events`: nothing reads them) and the drained events go through
//! `forget_monitored`. The passes with one ask for every route event, as the daemon does while
//! a client monitors, and write each drain's lines in a fresh buffer, as the daemon's main loop
//! hands them to the client's writer. Two ways of writing, both measured:
//! - per drain: one `write` per drain (the daemon when its client keeps up and the writer runs
//!   between two drains; the most system calls);
//! - gathered: the drains' chunks are queued and joined into writes of up to 64 KiB, as the
//!   daemon's per-client writer joins what was queued while the main loop was busy with a
//!   burst (the fewest system calls).
//!
//! `cargo bench -p daemon --bench monitor` (`MONITOR_ROUTES=N` to change N). After criterion's
//! report (without monitor and with it, gathered), the bench runs `MONITOR_ROUNDS` (default 7)
//! rounds of one pass without the monitor and one pass with it in each way, interleaved so that
//! the load of a shared machine falls on all alike, and prints for each way the median ratio
//! with/without of the wall time, the daemon thread's CPU time (user + system) and the whole
//! process's CPU time (the client's reading included). `MONITOR_PASSES=without,drain,gather`
//! runs only those passes (for a profiler) and prints their median CPU times.
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

/// How a pass writes monitor lines, if it has a monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// No client monitors.
    Without,
    /// A client monitors; one write per drain.
    PerDrain,
    /// A client monitors; chunks joined into writes of up to [`WRITE_SIZE`].
    Gathered,
}

impl Pass {
    const ALL: [Pass; 3] = [Pass::Without, Pass::PerDrain, Pass::Gathered];

    fn name(self) -> &'static str {
        match self {
            Pass::Without => "without",
            Pass::PerDrain => "drain",
            Pass::Gathered => "gather",
        }
    }
}

/// The most `babeld-rs`'s per-client writer joins into one write.
const WRITE_SIZE: usize = 64 * 1024;

/// Feeds the dump, draining the engine's outputs after every packet as the daemon's loop does;
/// with a monitor, the events of each drain become monitor lines a client reads. Returns the
/// number of lines the client read.
fn learn(d: &mut Daemon, packets: &[bytes::Bytes], pass: Pass) -> usize {
    let mut monitor = (pass != Pass::Without).then(client);
    // As `choose_route_events` asks: every route event while a client monitors; else only what
    // the monitor's memory needs (nothing, here).
    let events = match pass {
        Pass::Without => d.unmonitored_route_events(),
        Pass::PerDrain | Pass::Gathered => babel_core::RouteEvents::All,
    };
    d.engine.set_route_events(events);
    // The writer's queue (gathered): chunks and their bytes.
    let mut queue: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut queued = 0;
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
                // As `flush_outputs`: a fresh buffer per drain, handed to the writer.
                let mut text = String::new();
                d.write_monitor_lines(now, &events, &mut text);
                if text.is_empty() {
                    continue;
                }
                if pass == Pass::PerDrain {
                    socket.write_all(text.as_bytes()).unwrap();
                } else {
                    queued += text.len();
                    queue.push_back(text.into_bytes());
                    if queued >= WRITE_SIZE {
                        write_gathered(socket, &mut queue);
                        queued = 0;
                    }
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
            write_gathered(&mut socket, &mut queue);
            drop(socket);
            reader.join().unwrap()
        }
        None => 0,
    }
}

/// Writes the queued chunks as `babeld-rs`'s client writer does: the first chunk grows by the
/// next ones up to [`WRITE_SIZE`], then one `write_all`.
fn write_gathered(socket: &mut UnixStream, queue: &mut std::collections::VecDeque<Vec<u8>>) {
    while let Some(mut bytes) = queue.pop_front() {
        while bytes.len() < WRITE_SIZE {
            match queue.pop_front() {
                Some(more) => bytes.extend_from_slice(&more),
                None => break,
            }
        }
        socket.write_all(&bytes).unwrap();
    }
}

fn passes() -> Vec<Pass> {
    match std::env::var("MONITOR_PASSES") {
        Ok(v) => Pass::ALL
            .into_iter()
            .filter(|p| v.split(',').any(|w| w == p.name()))
            .collect(),
        Err(_) => Pass::ALL.to_vec(),
    }
}

fn bench(c: &mut Criterion) {
    let n = routes();
    let packets = dump(n);
    // Sanity: every route is learned and, with the monitor, the client read a line for each
    // (added, then installed: two), however the lines are written.
    for pass in [Pass::PerDrain, Pass::Gathered] {
        let mut d = daemon();
        let lines = learn(&mut d, &packets, pass);
        assert_eq!(d.engine.route_count(), n as usize);
        assert!(
            lines >= 2 * n as usize,
            "{lines} monitor lines for {n} routes ({pass:?})"
        );
    }
    let mut g = c.benchmark_group(format!("learn {n} routes"));
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for pass in [Pass::Without, Pass::Gathered] {
        let name = if pass == Pass::Without {
            "without monitor"
        } else {
            "with monitor"
        };
        g.bench_function(name, |b| {
            b.iter_batched(
                daemon,
                |mut d| {
                    learn(&mut d, &packets, pass);
                    d
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
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

/// Interleaved rounds: ratios of each pass with the monitor to the pass without it in the same
/// round, in wall time, in the daemon thread's CPU time and in the process's; prints their
/// medians. On a loaded machine the wall time favours the passes with two threads (the
/// scheduler shares the cores per thread), so the CPU times are the fairer measure there.
fn interleaved(packets: &[bytes::Bytes], n: u32) {
    let rounds: usize = std::env::var("MONITOR_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    use nix::sys::resource::UsageWho::{RUSAGE_SELF, RUSAGE_THREAD};
    let passes = passes();
    // Per pass: per round, [wall, thread CPU, process CPU].
    let mut times: Vec<Vec<[Duration; 3]>> = vec![Vec::new(); passes.len()];
    for _ in 0..rounds {
        for (i, &pass) in passes.iter().enumerate() {
            let mut d = daemon();
            let start = (
                std::time::Instant::now(),
                cpu_time(RUSAGE_THREAD),
                cpu_time(RUSAGE_SELF),
            );
            learn(&mut d, packets, pass);
            times[i].push([
                start.0.elapsed(),
                cpu_time(RUSAGE_THREAD).saturating_sub(start.1),
                cpu_time(RUSAGE_SELF).saturating_sub(start.2),
            ]);
            drop(d);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    for (i, pass) in passes.iter().enumerate() {
        let m = |k: usize| median(times[i].iter().map(|t| t[k].as_secs_f64()).collect());
        println!(
            "learn {n} routes, pass {:<7} ({rounds} rounds): median wall {:.3} s, daemon thread CPU {:.3} s, process CPU {:.3} s",
            pass.name(),
            m(0),
            m(1),
            m(2)
        );
    }
    let Some(base) = passes.iter().position(|p| *p == Pass::Without) else {
        return;
    };
    for (i, pass) in passes.iter().enumerate() {
        if *pass == Pass::Without {
            continue;
        }
        let ratio = |k: usize| {
            median(
                times[i]
                    .iter()
                    .zip(&times[base])
                    .map(|(w, wo)| w[k].as_secs_f64() / wo[k].as_secs_f64().max(1e-9))
                    .collect(),
            )
        };
        println!(
            "learn {n} routes, {rounds} interleaved rounds, monitor written {}: median ratio with/without monitor: wall {:.2}, daemon thread CPU {:.2}, process CPU {:.2}",
            if *pass == Pass::PerDrain {
                "per drain"
            } else {
                "gathered (64 KiB writes)"
            },
            ratio(0),
            ratio(1),
            ratio(2)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
