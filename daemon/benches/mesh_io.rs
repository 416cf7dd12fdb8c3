//! One UDP socket per physical interface or one per neighbour, one TUN per neighbour or one for
//! all: what each costs with N neighbours (spec/discovery.md, "One socket per interface, one TUN
//! per neighbour"). The I/O structure of a `type mesh` driver without the cryptography, which
//! costs the same per packet whatever the structure (every packet is sealed or opened once):
//!
//! * `shared` (what the daemon does): one UDP socket for all neighbours, one TUN per neighbour;
//!   the main task owns the state, reads the socket itself and gets TUN packets from one reader
//!   task per TUN over a channel.
//! * `per-neighbour`: one UDP socket per neighbour, all on the same port (`SO_REUSEPORT`), each
//!   `connect`ed to its neighbour's endpoint so the kernel hands it that neighbour's datagrams,
//!   plus the unconnected one that hears handshakes from new neighbours; one reader task per
//!   socket and per TUN, into the main task.
//! * `single-tun`: one UDP socket and one TUN for everyone; the main task reads both and picks
//!   the neighbour of an outgoing packet by looking its destination up (what a shared TUN needs).
//!
//! Each (design, N) runs in a child process of its own, in a network namespace of its own, with
//! the neighbours on loopback: the file descriptors and resident memory it adds, the time to
//! bring the sockets and TUN interfaces up (interface up, MTU, an address and so a route), the
//! CPU of the driver thread over 2 s idle, and its CPU per packet while a generator sends a
//! fixed rate both ways (UDP datagrams from the neighbours into the TUNs, and packets routed
//! into the TUNs out to the neighbours).
//!
//! Needs root (a network namespace, TUN devices):
//! `cargo bench -p daemon --bench mesh_io` (N = 10 and 50) or `... --bench mesh_io -- 10 50 100`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tunnel::driver::TunDevice;

const DESIGNS: [&str; 3] = ["shared", "per-neighbour", "single-tun"];
/// Packets per second each way during the traffic phase (all neighbours together).
const RATE: u64 = 10_000;
const PACKET: usize = 1200;
const DAEMON_PORT: u16 = 7000;
const IDLE: Duration = Duration::from_secs(2);
const TRAFFIC: Duration = Duration::from_secs(3);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--one") {
        one(&args[1], args[2].parse().unwrap());
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        println!("SKIP mesh_io: needs root (network namespaces, TUN devices)");
        return;
    }
    let ns: Vec<usize> = {
        let v: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
        if v.is_empty() { vec![10, 50] } else { v }
    };
    let exe = std::env::current_exe().unwrap();
    println!(
        "{:<14} {:>4} {:>5} {:>9} {:>10} {:>10} {:>12} {:>10} {:>9} {:>8}",
        "design",
        "N",
        "fds",
        "rss-KiB",
        "bring-up",
        "idle-cpu",
        "cpu/packet",
        "delivered",
        "misrouted",
        "k-drops"
    );
    for n in ns {
        for d in DESIGNS {
            let out = std::process::Command::new(&exe)
                .args(["--one", d, &n.to_string()])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            match text.lines().find(|l| l.starts_with("RESULT ")) {
                Some(l) => println!("{}", &l[7..]),
                None => println!(
                    "{d} {n}: failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            }
        }
    }
    println!(
        "fds and rss: what the sockets and TUNs add; bring-up: creating them, interfaces up with an \
         address; idle-cpu: driver thread over {} s; cpu/packet: driver thread CPU per packet \
         forwarded at {RATE} packets/s each way ({PACKET}-byte payloads), no cryptography; \
         delivered: packets forwarded / packets the generator sent in the same time; k-drops: \
         packets the kernel dropped on the driver's side (its sockets' receive queues, its TUNs' \
         queues)",
        IDLE.as_secs()
    );
}

/// Counters the driver keeps and the parent reads.
#[derive(Default)]
struct Counters {
    /// Datagrams from neighbours written to a TUN.
    inbound: AtomicU64,
    /// TUN packets sent to a neighbour.
    outbound: AtomicU64,
    /// Datagrams that reached a socket other than their neighbour's, or no neighbour.
    misrouted: AtomicU64,
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Packets the kernel dropped on the driver's side in this namespace: datagrams for the
/// driver's port dropped by its sockets (`drops` of `/proc/net/udp6`) and packets routed into
/// its TUNs that their queues dropped (transmit `drop` of `/proc/net/dev`).
fn driver_drops() -> u64 {
    let port = format!(":{DAEMON_PORT:04X}");
    let udp: u64 = std::fs::read_to_string("/proc/self/net/udp6")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.get(1)?.ends_with(&port)).then(|| w.last()?.parse::<u64>().ok())?
        })
        .sum();
    let tun: u64 = std::fs::read_to_string("/proc/self/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let w: Vec<&str> = rest.split_whitespace().collect();
            // receive: bytes packets errs drop fifo frame compressed multicast; transmit:
            // bytes packets errs drop ...
            (name.trim().starts_with("mt")).then(|| w.get(11)?.parse::<u64>().ok())?
        })
        .sum();
    udp + tun
}

/// CPU time of one thread of this process, in nanoseconds.
fn thread_cpu_ns(tid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn peer_addr(i: usize) -> Ipv6Addr {
    // Inner addresses of neighbour i: fd00:<i+1>::/64 lies behind its tunnel.
    Ipv6Addr::new(0xfd00, i as u16 + 1, 0, 0, 0, 0, 0, 2)
}

/// An IPv6/UDP packet from neighbour `i`'s inner address to `dst` (which nothing routes, and
/// forwarding is off: the kernel drops it after reading it from the TUN).
fn inner_packet(i: usize) -> Vec<u8> {
    let mut p = vec![0u8; PACKET];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((PACKET - 40) as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..24].copy_from_slice(&peer_addr(i).octets());
    p[24..40].copy_from_slice(&Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1).octets());
    p[40..42].copy_from_slice(&9u16.to_be_bytes());
    p[42..44].copy_from_slice(&9u16.to_be_bytes());
    p[44..46].copy_from_slice(&((PACKET - 40) as u16).to_be_bytes());
    p
}

fn udp(port: u16, reuse: bool, connect: Option<SocketAddr>) -> std::net::UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_only_v6(true).unwrap();
    if reuse {
        s.set_reuse_port(true).unwrap();
    }
    // The daemon's buffers on the driver's sockets.
    if port == DAEMON_PORT {
        tunnel::driver::size_buffers(&s);
    }
    s.set_nonblocking(true).unwrap();
    s.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port).into())
        .unwrap();
    if let Some(to) = connect {
        s.connect(&to.into()).unwrap();
    }
    s.into()
}

/// One (design, N) in this process: prints `RESULT ...`.
fn one(design: &str, n: usize) {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let mut nl = kernel_fib::NetlinkFib::new().unwrap();
    nl.set_link_up(1, None).unwrap();
    // The neighbours: one socket each on loopback (their tunnel endpoints).
    let peers: Vec<std::net::UdpSocket> = (0..n).map(|_| udp(0, false, None)).collect();
    let endpoints: Vec<SocketAddr> = peers.iter().map(|p| p.local_addr().unwrap()).collect();
    let counters = Arc::new(Counters::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (d, eps, c, st) = (
        design.to_owned(),
        endpoints.clone(),
        counters.clone(),
        stop.clone(),
    );
    let driver = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(drive(&d, eps, c, st, ready_tx));
    });
    // (fds, rss, bring-up time, driver thread id)
    let (fds_before, rss_before) = ready_rx.recv().unwrap();
    let (fds_after, rss_after, bring_up, tid): (u64, u64, Duration, u64) = {
        let (f, r) = ready_rx.recv().unwrap();
        let (b, t) = ready_rx.recv().unwrap();
        (f, r, Duration::from_nanos(b), t)
    };
    let cpu0 = thread_cpu_ns(tid);
    std::thread::sleep(IDLE);
    let idle = thread_cpu_ns(tid) - cpu0;
    // Traffic: RATE datagrams a second from the neighbours to our port, and RATE packets a
    // second routed into the TUNs (to each neighbour's inner address), round robin.
    let gen_stop = Arc::new(AtomicBool::new(false));
    let gs = gen_stop.clone();
    let offered = Arc::new(AtomicU64::new(0));
    let off = offered.clone();
    let generator = std::thread::spawn(move || {
        let inner: Vec<Vec<u8>> = (0..n).map(inner_packet).collect();
        let to_tun = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let daemon = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), DAEMON_PORT);
        let payload = vec![0u8; PACKET - 48];
        let start = Instant::now();
        let mut sent = 0u64;
        while !gs.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * RATE as f64) as u64;
            while sent < due {
                let i = (sent % n as u64) as usize;
                let _ = peers[i].send_to(&inner[i], daemon);
                let _ = to_tun.send_to(&payload, SocketAddrV6::new(peer_addr(i), 9, 0, 0));
                sent += 1;
            }
            off.store(2 * sent, Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(500));
        }
        sent
    });
    // Let the traffic settle, then measure.
    std::thread::sleep(Duration::from_millis(500));
    let (drops1, offered1) = (driver_drops(), offered.load(Ordering::Relaxed));
    let (cpu1, in1, out1) = (
        thread_cpu_ns(tid),
        counters.inbound.load(Ordering::Relaxed),
        counters.outbound.load(Ordering::Relaxed),
    );
    std::thread::sleep(TRAFFIC);
    let (cpu2, in2, out2) = (
        thread_cpu_ns(tid),
        counters.inbound.load(Ordering::Relaxed),
        counters.outbound.load(Ordering::Relaxed),
    );
    let drops = driver_drops() - drops1;
    let offered = offered.load(Ordering::Relaxed) - offered1;
    gen_stop.store(true, Ordering::Relaxed);
    let sent = generator.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let _ = driver.join();
    let packets = (in2 - in1) + (out2 - out1);
    println!(
        "RESULT {:<14} {:>4} {:>5} {:>9} {:>8.1}ms {:>8.2}ms {:>10.2}µs {:>9.0}% {:>9} {:>8}",
        design,
        n,
        fds_after - fds_before,
        rss_after.saturating_sub(rss_before),
        bring_up.as_secs_f64() * 1e3,
        idle as f64 / 1e6,
        (cpu2 - cpu1) as f64 / 1e3 / packets.max(1) as f64,
        100.0 * packets as f64 / offered.max(1) as f64,
        counters.misrouted.load(Ordering::Relaxed),
        drops,
    );
    let _ = sent;
}

/// Inputs of the main task: a packet read by a reader task.
enum Input {
    /// From TUN `i` (or the single TUN, `i` unknown yet).
    Tun(usize, Vec<u8>),
    /// From neighbour socket `i`, sent from `from`.
    Udp(usize, SocketAddr, Vec<u8>),
}

async fn drive(
    design: &str,
    endpoints: Vec<SocketAddr>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<(u64, u64)>,
) {
    let n = endpoints.len();
    let tid: u64 = std::fs::read_link("/proc/thread-self")
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .parse()
        .unwrap();
    ready.send((fds() as u64, rss_kib())).unwrap();
    let start = Instant::now();
    let mut nl = kernel_fib::NetlinkFib::new().unwrap();
    let tuns_wanted = if design == "single-tun" { 1 } else { n };
    let mut tuns = Vec::new();
    for i in 0..tuns_wanted {
        let name = format!("mt{i}");
        let tun = Arc::new(TunDevice::open(&name).unwrap());
        let ix = nl
            .links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == name)
            .unwrap()
            .index;
        nl.set_link_up(ix, Some(1420)).unwrap();
        // The TUN's address brings the connected route that sends neighbour i's inner
        // addresses (all of fd00::/16 for the single TUN) into it.
        let (addr, len) = if design == "single-tun" {
            (Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1), 16)
        } else {
            (Ipv6Addr::new(0xfd00, i as u16 + 1, 0, 0, 0, 0, 0, 1), 64)
        };
        nl.add_address(ix, IpAddr::V6(addr), len).unwrap();
        tuns.push(tun);
    }
    let shared = UdpSocket::from_std(udp(DAEMON_PORT, design == "per-neighbour", None)).unwrap();
    let per: Vec<Arc<UdpSocket>> = if design == "per-neighbour" {
        endpoints
            .iter()
            .map(|e| Arc::new(UdpSocket::from_std(udp(DAEMON_PORT, true, Some(*e))).unwrap()))
            .collect()
    } else {
        Vec::new()
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
    let mut readers = Vec::new();
    if design != "single-tun" {
        for (i, t) in tuns.iter().enumerate() {
            let (t, tx) = (t.clone(), tx.clone());
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(len) = t.recv(&mut buf).await {
                    if tx.send(Input::Tun(i, buf[..len].to_vec())).is_err() {
                        break;
                    }
                }
            }));
        }
    }
    for (i, s) in per.iter().enumerate() {
        let (s, tx) = (s.clone(), tx.clone());
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((len, from)) = s.recv_from(&mut buf).await {
                if tx.send(Input::Udp(i, from, buf[..len].to_vec())).is_err() {
                    break;
                }
            }
        }));
    }
    let bring_up = start.elapsed();
    ready.send((fds() as u64, rss_kib())).unwrap();
    ready.send((bring_up.as_nanos() as u64, tid)).unwrap();
    // The main task: the state (which neighbour is where) and every send.
    let by_endpoint: HashMap<SocketAddr, usize> =
        endpoints.iter().enumerate().map(|(i, e)| (*e, i)).collect();
    let by_prefix: HashMap<u16, usize> = (0..n).map(|i| (i as u16 + 1, i)).collect();
    let mut ubuf = vec![0u8; 65536];
    let mut tbuf = vec![0u8; 65536];
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let single = tuns.first().filter(|_| design == "single-tun").cloned();
    loop {
        tokio::select! {
            r = shared.recv_from(&mut ubuf) => {
                let Ok((len, from)) = r else { continue };
                // With a socket per neighbour, this one should only hear new neighbours.
                match by_endpoint.get(&from).filter(|_| per.is_empty()) {
                    Some(&i) => {
                        let tun = if single.is_some() { &tuns[0] } else { &tuns[i] };
                        let _ = tun.send(&ubuf[..len]).await;
                        counters.inbound.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        counters.misrouted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            r = async { single.as_ref().unwrap().recv(&mut tbuf).await }, if single.is_some() => {
                let Ok(len) = r else { continue };
                // The neighbour of a packet on the shared TUN: its destination's /64.
                let p = &tbuf[..len];
                let prefix = u16::from_be_bytes([p[26], p[27]]);
                if let Some(&i) = by_prefix.get(&prefix) {
                    let _ = shared.send_to(p, endpoints[i]).await;
                    counters.outbound.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(input) = rx.recv() => match input {
                Input::Tun(i, p) => {
                    let _ = match per.get(i) {
                        Some(s) => s.send(&p).await,
                        None => shared.send_to(&p, endpoints[i]).await,
                    };
                    counters.outbound.fetch_add(1, Ordering::Relaxed);
                }
                Input::Udp(i, from, p) => {
                    if endpoints[i] == from {
                        let _ = tuns[i].send(&p).await;
                        counters.inbound.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.misrouted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
            _ = tick.tick() => {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
    }
    for r in readers {
        r.abort();
    }
}
