//! The I/O of route verification (`daemon::verification` decides; spec/verify.md, "The
//! daemon"): one UDP socket on `verify-port` that reads the hop limit of what arrives and marks
//! each Remote Hello with its neighbour's firewall mark, the policy rules and routes that send a
//! marked probe through the neighbour under test (handed to the netlink thread,
//! `daemon::netlink_ops::probe`), and the nftables set in which the kernel records the
//! destinations of our and forwarded traffic (what is "used"), read by `nft` on a worker thread
//! of its own so that the main loop never waits for the subprocess. For attribution by the next
//! hop (`spec/verify.md` §4.2.1) a second UDP socket sends each session's trace with hop limit
//! [`verify::TRACE_HOP_LIMIT`], and a raw ICMPv6 socket that lets only Time Exceeded through
//! reads what comes back (parsed and matched by `daemon::verification::trace`); the same socket
//! shows the Remote Hellos that loop (§3.4).

use std::collections::{BTreeSet, VecDeque};
use std::io::IoSliceMut;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use babel_core::Instant;
use daemon::state::Daemon;
use daemon::verification::{Datagram, MAX_DATAGRAM, ProbeRoute, Verification, VerificationOutputs};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, setsockopt, sockopt};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::kernel::{Failed, Netlink};

/// Our nftables table (family `inet`) holding the set of used destinations.
const NFT_TABLE: &str = "babeld_rs_verify";
/// How often the used set is read.
const USED_EVERY: Duration = Duration::from_secs(2);
/// How long the timers wait for a reading of the used set in progress (they run with the
/// last one after that: a stuck `nft` never stops verification).
const USED_WAIT: Duration = Duration::from_secs(1);
/// How long the clean-up at exit waits for the netlink thread.
const CLEANUP_WAIT: Duration = Duration::from_secs(10);

/// The socket and what was installed.
pub struct VerifyIo {
    socket: UdpSocket,
    port: u16,
    /// Sends traces (hop limit [`verify::TRACE_HOP_LIMIT`] and deeper, set per datagram) from its own port; `None` if the
    /// ICMPv6 socket could not be opened.
    trace: Option<UdpSocket>,
    /// The trace socket's port (what a trace's Time Exceeded quotes).
    trace_port: u16,
    /// The raw ICMPv6 socket (Time Exceeded only).
    icmp: Option<UdpSocket>,
    /// The probe rules installed (mark, table).
    rules: BTreeSet<(u32, u32)>,
    /// Where the probe rules and routes go (the netlink thread).
    netlink: Netlink,
    next_used: Instant,
    /// Asks the `nft` worker for a reading of the used set.
    read_used: std_mpsc::Sender<()>,
    /// Its readings.
    used: mpsc::UnboundedReceiver<Vec<Ipv6Addr>>,
    /// When the reading in progress was asked for.
    reading: Option<Instant>,
    /// Probe datagrams waiting for their rules and routes: each batch goes once the netlink
    /// thread has carried out its requests (and every earlier one: it works in order).
    waiting: VecDeque<(oneshot::Receiver<Failed>, Vec<Datagram>)>,
}

/// A received datagram: source, hop limit, bytes.
pub type ReceivedDatagram = ((Ipv6Addr, u32), u8, Vec<u8>);

/// `ICMP6_FILTER` (`<netinet/icmp6.h>`, Linux): the ICMPv6 types a raw socket blocks, one bit
/// each in eight 32-bit words.
const ICMP6_FILTER: nix::libc::c_int = 1;

#[allow(unsafe_code)]
mod icmp_filter {
    // nix's macro writes the setsockopt(2) call (the only unsafe here) for a plain array
    // passed by pointer and size; it needs `libc` in scope.
    use nix::libc;

    /// `ICMP6_FILTER` on a raw ICMPv6 socket.
    #[derive(Clone, Copy, Debug)]
    pub struct Icmp6Filter;

    nix::setsockopt_impl!(
        Icmp6Filter,
        libc::IPPROTO_ICMPV6,
        super::ICMP6_FILTER,
        [u32; 8],
        nix::sys::socket::sockopt::SetStruct<'_, [u32; 8]>
    );
}

/// A raw ICMPv6 socket that receives only Time Exceeded (type 3): the kernel hands a raw
/// socket every ICMPv6 message for us, and the filter keeps Neighbour Discovery and the rest
/// out. Needs `CAP_NET_RAW`. Driven as a tokio `UdpSocket`: a raw socket is a datagram socket,
/// and only readiness and `recvfrom(2)` are used.
fn open_icmp() -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    s.set_nonblocking(true)?;
    // A set bit blocks the type (Linux's ICMP6_FILTER_SETBLOCKALL, then SETPASS for 3).
    let mut f = [u32::MAX; 8];
    let t = daemon::verification::trace::ICMP6_TIME_EXCEEDED;
    if let Some(w) = f.get_mut(usize::from(t >> 5)) {
        *w &= !(1u32 << (t & 31));
    }
    setsockopt(&s, icmp_filter::Icmp6Filter, &f)?;
    // The interface each message arrived on (§4.2.1: a next hop through us is believed only
    // from a Time Exceeded that arrived on the link to it).
    setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// The trace socket: hop limit [`verify::TRACE_HOP_LIMIT`] unless a datagram sets its own, an ephemeral
/// port of its own. Returns it and its port.
fn open_trace() -> anyhow::Result<(UdpSocket, u16)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_unicast_hops_v6(u32::from(verify::TRACE_HOP_LIMIT))?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0).into())?;
    let port = s
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .context("trace socket without a port")?;
    Ok((UdpSocket::from_std(s.into())?, port))
}

/// The nftables table of used destinations (§2.1): what we send and what we forward, to
/// addresses that are not link-local, multicast or loopback. Our own Remote Hellos never count;
/// those we forward for others count only with `relayed_probes_used`.
fn used_set(port: u16, relayed_probes_used: bool) -> String {
    let fwd = if relayed_probes_used {
        "    meta nfproto ipv6 ip6 daddr != { fe80::/10, ff00::/8 } update @used { ip6 daddr }\n"
            .to_owned()
    } else {
        format!(
            "    meta nfproto ipv6 udp dport != {port} ip6 daddr != {{ fe80::/10, ff00::/8 }} update @used {{ ip6 daddr }}\n    meta nfproto ipv6 meta l4proto != udp ip6 daddr != {{ fe80::/10, ff00::/8 }} update @used {{ ip6 daddr }}\n"
        )
    };
    format!(
        "table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\ntable inet {NFT_TABLE} {{\n  set used {{ type ipv6_addr; size 4096; flags dynamic,timeout; timeout 60s; }}\n  chain used_out {{ type filter hook output priority filter; policy accept;\n    meta nfproto ipv6 udp dport != {port} ip6 daddr != {{ fe80::/10, ff00::/8, ::1 }} update @used {{ ip6 daddr }}\n    meta nfproto ipv6 meta l4proto != udp ip6 daddr != {{ fe80::/10, ff00::/8, ::1 }} update @used {{ ip6 daddr }}\n  }}\n  chain used_fwd {{ type filter hook forward priority filter; policy accept;\n{fwd}  }}\n}}\n"
    )
}

/// With `verify-enable`: builds the verification into `d`, opens the socket and installs the
/// used-destination set. `None` otherwise.
pub fn start(
    d: &mut Daemon,
    now: Instant,
    seed: u64,
    netlink: &Netlink,
) -> anyhow::Result<Option<VerifyIo>> {
    let s = d.config.verify.clone();
    if !s.enable {
        return Ok(None);
    }
    let key = match &s.private_key {
        Some(h) => {
            let b: [u8; 32] = hex::decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("verify-private-key: not 64 hex digits")?;
            verify::SigningKey::from_bytes(&b)
        }
        None => {
            let mut b = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
            verify::SigningKey::from_bytes(&b)
        }
    };
    // §3.3: a restart never reuses a counter.
    let counter = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX));
    let mut v = Verification::new(s, d.engine.router_id(), key, counter, seed, now);
    let port = v.port();
    // §4.2.1 and §3.4 need the ICMPv6 Time Exceeded of our Remote Hellos; without the raw
    // socket (no CAP_NET_RAW) verification runs on, without attribution or loop evidence.
    let (trace, trace_port, icmp) = match open_icmp().and_then(|i| Ok((open_trace()?, i))) {
        Ok(((t, tp), i)) => (Some(t), tp, Some(i)),
        Err(e) => {
            tracing::warn!(
                "verification: no raw ICMPv6 socket ({e:#}): running without attribution by the next hop"
            );
            v.trace_unavailable();
            (None, 0, None)
        }
    };
    tracing::info!(
        "verification on UDP port {port}, public key {}",
        v.public_key_hex()
    );
    let socket = open(port).with_context(|| format!("verification socket, port {port}"))?;
    crate::mesh::nft(&used_set(
        port,
        d.config.verify.config().schedule.relayed_probes_used,
    ))
    .context("installing the used-destination set")?;
    let (read_used, used) = spawn_used_reader()?;
    d.verification = Some(v);
    Ok(Some(VerifyIo {
        socket,
        port,
        trace,
        trace_port,
        icmp,
        rules: BTreeSet::new(),
        netlink: netlink.clone(),
        next_used: now,
        read_used,
        used,
        reading: None,
        waiting: VecDeque::new(),
    }))
}

/// The `nft` worker: reads the used set when asked, until the asking end goes.
fn spawn_used_reader()
-> anyhow::Result<(std_mpsc::Sender<()>, mpsc::UnboundedReceiver<Vec<Ipv6Addr>>)> {
    let (ask, asked) = std_mpsc::channel::<()>();
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("verify-used".into())
        .spawn(move || {
            while asked.recv().is_ok() {
                if tx.send(read_used()).is_err() {
                    return;
                }
            }
        })?;
    Ok((ask, rx))
}

fn open(port: u16) -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_unicast_hops_v6(u32::from(verify::HOP_LIMIT))?;
    s.set_nonblocking(true)?;
    setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)?;
    s.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port).into())?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// When the verification's timers are due next.
pub fn deadline(d: &Daemon, now: Instant, io: &Option<VerifyIo>) -> Option<Instant> {
    let v = d.verification.as_ref()?;
    let io = io.as_ref()?;
    let next = match io.reading {
        // The reading wakes the loop when it arrives; the timers wait for it at most so long.
        Some(asked) if now < asked + USED_WAIT => asked + USED_WAIT,
        // A reading that never came back: the timers only.
        Some(_) => v.poll_timeout(),
        None => v.poll_timeout().min(io.next_used),
    };
    // Never in the past: a timer that did not move must not spin the loop.
    Some(next.max(now + Duration::from_millis(5)))
}

/// A reading of the used set arrived: the verification learns it (the timers run on the
/// loop's next turn, [`poll`]).
fn on_used(d: &mut Daemon, now: Instant, io: &mut Option<VerifyIo>, used: &[Ipv6Addr]) {
    if let Some(io) = io.as_mut() {
        io.reading = None;
    }
    if let Some(v) = d.verification.as_mut() {
        v.mark_used(now, used);
    }
}

/// The datagrams waiting on the socket, or a reading of the used set (never, without
/// verification).
pub async fn recv(io: &mut Option<VerifyIo>) -> Option<Event> {
    let Some(io) = io else {
        return std::future::pending().await;
    };
    let installed = async {
        match io.waiting.front_mut() {
            Some((rx, _)) => rx.await,
            None => std::future::pending().await,
        }
    };
    let icmp = async {
        match &io.icmp {
            Some(a) => a.readable().await.is_ok(),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = io.socket.readable() => {
            if r.is_err() {
                return Some(Event::Datagrams(Vec::new()));
            }
        }
        ok = icmp => {
            return Some(Event::Icmp(if ok { recv_icmp(io) } else { Vec::new() }));
        }
        Some(used) = io.used.recv() => return Some(Event::Used(used)),
        done = installed => return Some(Event::Installed(done.ok())),
    }
    let fd = io.socket.as_raw_fd();
    let mut out = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while out.len() < 64 {
        let mut cmsg = nix::cmsg_space!(nix::libc::c_int);
        let mut iov = [IoSliceMut::new(buf.as_mut_slice())];
        let Ok(msg) = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
        else {
            break;
        };
        let len = msg.bytes;
        // The scope id names the interface of a link-local source (a Check Failed's, §2.5).
        let src = msg.address.map(|a| {
            let a = SocketAddrV6::from(a);
            (*a.ip(), a.scope_id())
        });
        let mut hops = None;
        if let Ok(cs) = msg.cmsgs() {
            for c in cs {
                if let ControlMessageOwned::Ipv6HopLimit(h) = c {
                    hops = u8::try_from(h).ok();
                }
            }
        }
        if let (Some(src), Some(h), Some(b)) = (src, hops, buf.get(..len)) {
            out.push((src, h, b.to_vec()));
        }
    }
    // A readiness with nothing to read: clear it, or the loop spins.
    if out.is_empty() {
        let mut b = [0u8; 1];
        let _ = io.socket.try_recv(&mut b);
    }
    Some(Event::Datagrams(out))
}

/// The ICMPv6 messages waiting on the raw socket (at most 64): source, the interface it
/// arrived on (`IPV6_PKTINFO`), bytes from the ICMPv6 header.
fn recv_icmp(io: &VerifyIo) -> Vec<(Ipv6Addr, Option<u32>, Vec<u8>)> {
    let Some(icmp) = &io.icmp else {
        return Vec::new();
    };
    let fd = icmp.as_raw_fd();
    let mut out = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // `try_io` clears the readiness when the socket runs dry.
    while out.len() < 64 {
        let got = icmp.try_io(tokio::io::Interest::READABLE, || {
            let mut cmsg = nix::cmsg_space!(nix::libc::in6_pktinfo);
            let mut iov = [IoSliceMut::new(buf.as_mut_slice())];
            let msg = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
                .map_err(std::io::Error::from)?;
            let src = msg.address.map(|a| *SocketAddrV6::from(a).ip());
            let mut arrived_on = None;
            if let Ok(cs) = msg.cmsgs() {
                for c in cs {
                    if let ControlMessageOwned::Ipv6PacketInfo(i) = c {
                        arrived_on = Some(i.ipi6_ifindex);
                    }
                }
            }
            Ok((src, arrived_on, msg.bytes))
        });
        let Ok((src, arrived_on, len)) = got else {
            break;
        };
        if let (Some(src), Some(b)) = (src, buf.get(..len)) {
            out.push((src, arrived_on, b.to_vec()));
        }
    }
    out
}

/// What [`recv`] got.
pub enum Event {
    /// ICMPv6 Time Exceeded on the raw socket: source, the interface it arrived on, message.
    Icmp(Vec<(Ipv6Addr, Option<u32>, Vec<u8>)>),
    /// Datagrams on the socket.
    Datagrams(Vec<ReceivedDatagram>),
    /// A reading of the used set, from the `nft` worker.
    Used(Vec<Ipv6Addr>),
    /// The netlink thread carried out the oldest waiting batch of probe requests, with these
    /// failures (`None`: the thread is gone).
    Installed(Option<Failed>),
}

/// Hands what arrived to the verification; returns `monitor` lines.
pub fn on_event(
    d: &mut Daemon,
    now: Instant,
    io: &mut Option<VerifyIo>,
    event: Event,
) -> Vec<String> {
    match event {
        Event::Datagrams(got) => on_datagrams(d, now, io, got),
        Event::Icmp(got) => {
            let Some(trace_port) = io.as_ref().map(|io| io.trace_port) else {
                return Vec::new();
            };
            if got.is_empty() {
                return Vec::new();
            }
            let routes = d.engine.routes(now);
            if let Some(v) = d.verification.as_mut() {
                for (src, arrived_on, bytes) in got {
                    v.on_time_exceeded(now, src, arrived_on, &bytes, trace_port, &routes);
                }
            }
            Vec::new()
        }
        Event::Used(used) => {
            on_used(d, now, io, &used);
            Vec::new()
        }
        Event::Installed(failed) => {
            if let Some(io) = io.as_mut() {
                for (op, e) in failed.unwrap_or_default() {
                    tracing::warn!("verification: {op}: {e}");
                }
                // Sent even if a request failed, as before: the probe then goes unanswered.
                if let Some((_, datagrams)) = io.waiting.pop_front() {
                    for g in &datagrams {
                        send(io, g);
                    }
                }
            }
            Vec::new()
        }
    }
}

/// Datagrams arrived: hands them to the verification; returns `monitor` lines.
fn on_datagrams(
    d: &mut Daemon,
    now: Instant,
    io: &mut Option<VerifyIo>,
    got: Vec<ReceivedDatagram>,
) -> Vec<String> {
    let (Some(v), Some(io)) = (d.verification.as_mut(), io.as_mut()) else {
        return Vec::new();
    };
    let ours = d.engine.xroutes();
    let neighbours: Vec<verify::NeighbourId> = d
        .engine
        .neighbours(now)
        .into_iter()
        .map(|n| verify::NeighbourId {
            ifindex: n.ifindex,
            address: n.address,
        })
        .collect();
    let mut outs = Vec::new();
    for (src, hops, bytes) in got {
        outs.push(v.on_datagram_from(
            now,
            src,
            hops,
            &bytes,
            &ours,
            &neighbours,
            Some(&daemon::verification::EngineRoutes(&d.engine, now)),
        ));
    }
    outs.into_iter()
        .flat_map(|o| apply(d, now, io, o))
        .collect()
}

/// Runs the timers if due (reading the used set first); returns `monitor` lines.
pub fn poll(d: &mut Daemon, now: Instant, io: &mut Option<VerifyIo>) -> Vec<String> {
    let Some(io) = io.as_mut() else {
        return Vec::new();
    };
    if io.next_used <= now && io.reading.is_none() {
        io.next_used = now + USED_EVERY;
        if io.read_used.send(()).is_ok() {
            io.reading = Some(now);
        }
    }
    let due = d
        .verification
        .as_ref()
        .is_some_and(|v| v.poll_timeout() <= now);
    // The timers see the used set read before them, as long as the reading is quick.
    let waiting = io.reading.is_some_and(|asked| now < asked + USED_WAIT);
    if !due || waiting {
        return Vec::new();
    }
    daemon::exit::sync_stealth(d);
    let routes = d.engine.routes(now);
    let threshold = d.engine.config().accuracy_threshold;
    let Some(v) = d.verification.as_mut() else {
        return Vec::new();
    };
    let out = v.on_timer(now, &routes, threshold);
    apply(d, now, io, out)
}

fn apply(d: &mut Daemon, now: Instant, io: &mut VerifyIo, out: VerificationOutputs) -> Vec<String> {
    let ops: Vec<_> = out.routes.iter().flat_map(|r| install(io, r)).collect();
    hand_over(io, ops, out.datagrams);
    for i in out.inputs {
        d.input(now, i);
    }
    out.lines
}

/// §2.3: `fwmark M lookup T`, and in T the destination via the neighbour under test.
fn install(io: &mut VerifyIo, r: &ProbeRoute) -> Vec<daemon::netlink_ops::NetlinkOp> {
    let new_rule = io.rules.insert((r.mark, r.table));
    daemon::netlink_ops::probe(r, new_rule)
}

/// Sends `datagrams` once their probe rules and routes (`ops`) are in the kernel: the
/// requests go to the netlink thread and the loop goes on; the datagrams wait for its answer
/// (and behind any batch still waiting). With nothing to install and nothing waiting, they go
/// at once.
fn hand_over(
    io: &mut VerifyIo,
    ops: Vec<daemon::netlink_ops::NetlinkOp>,
    datagrams: Vec<Datagram>,
) {
    if ops.is_empty() {
        match io.waiting.back_mut() {
            Some((_, queued)) => queued.extend(datagrams),
            None => datagrams.iter().for_each(|g| send(io, g)),
        }
        return;
    }
    match io.netlink.submit(ops) {
        Ok(rx) => io.waiting.push_back((rx, datagrams)),
        Err(e) => {
            tracing::warn!("verification: {e}");
            datagrams.iter().for_each(|g| send(io, g));
        }
    }
}

fn send(io: &VerifyIo, g: &Datagram) {
    let socket = if g.trace {
        match &io.trace {
            Some(t) => t,
            None => return,
        }
    } else {
        &io.socket
    };
    if let Err(e) = setsockopt(socket, sockopt::Mark, &g.mark) {
        tracing::debug!("verification: SO_MARK {}: {e}", g.mark);
        return;
    }
    // A trace's own hop limit (§4.2.1: one trace per depth, all from the trace socket).
    if g.trace
        && let Err(e) = setsockopt(socket, sockopt::Ipv6Ttl, &i32::from(g.hop_limit))
    {
        tracing::debug!("verification: IPV6_UNICAST_HOPS {}: {e}", g.hop_limit);
        return;
    }
    // A Check Failed's own hop limit (§2.5), the socket's set back after it.
    let own_hops = !g.trace && g.hop_limit != 0;
    if own_hops && let Err(e) = setsockopt(socket, sockopt::Ipv6Ttl, &i32::from(g.hop_limit)) {
        tracing::debug!("verification: IPV6_UNICAST_HOPS {}: {e}", g.hop_limit);
        return;
    }
    let to = SocketAddr::V6(SocketAddrV6::new(g.dst, io.port, 0, g.scope));
    if let Err(e) = socket.try_send_to(&g.bytes, to) {
        tracing::debug!("verification: send to {to}: {e}");
    }
    if own_hops && let Err(e) = setsockopt(socket, sockopt::Ipv6Ttl, &i32::from(verify::HOP_LIMIT))
    {
        tracing::warn!(
            "verification: IPV6_UNICAST_HOPS back to {}: {e}",
            verify::HOP_LIMIT
        );
    }
}

/// The addresses in the used set (`nft -j list set`), at most 4096.
fn read_used() -> Vec<Ipv6Addr> {
    let out = match std::process::Command::new("nft")
        .args(["-j", "list", "set", "inet", NFT_TABLE, "used"])
        .output()
    {
        Ok(o) if o.status.success() => o.stdout,
        _ => return Vec::new(),
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    collect(&v, &mut found, 0);
    found
}

fn collect(v: &serde_json::Value, out: &mut Vec<Ipv6Addr>, depth: u32) {
    if depth > 16 || out.len() >= 4096 {
        return;
    }
    match v {
        serde_json::Value::String(s) => {
            if let Ok(a) = s.parse::<Ipv6Addr>() {
                out.push(a);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out, depth + 1)),
        serde_json::Value::Object(m) => {
            // Skip the set's own declaration (`type ipv6_addr`); take its elements.
            for (k, x) in m {
                if k != "type" && k != "name" && k != "table" && k != "family" {
                    collect(x, out, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// At exit: our rules and tables go (waiting for the netlink thread: the loop is over), and
/// the nftables table.
pub fn shutdown(io: &mut Option<VerifyIo>) {
    let Some(io) = io.as_mut() else {
        return;
    };
    let ops = daemon::netlink_ops::probe_cleanup(std::mem::take(&mut io.rules));
    if let Err(e) = io.netlink.run_blocking(ops, CLEANUP_WAIT) {
        tracing::warn!("verification: removing the probe rules and tables: {e}");
    }
    if let Err(e) = crate::mesh::nft(&format!("delete table inet {NFT_TABLE}\n")) {
        tracing::warn!("removing nftables table {NFT_TABLE}: {e}");
    }
}
