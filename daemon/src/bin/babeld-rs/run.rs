//! Start-up and the main loop.

use std::collections::HashMap;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use babel_core::{
    Config as EngineConfig, Destination, Engine, Event, Input, Instant, Policy, RouteKey,
    is_martian,
};
use babel_wire::RouterId;
use daemon::cli::Invocation;
use daemon::config::{FilterKind, LocalEndpoint};
use daemon::control::{Banner, Dialect, Session};
use daemon::netio::BabelSocket;
use daemon::redistribute::{Announcements, Candidate, announcements, verdict};
use daemon::state::{Daemon, Iface, Settings};
use kernel_fib::{
    AddressInfo, Fib, LinkInfo, NetEvent, NetlinkFib, RTPROT_BABEL, RouteFilter, RouteKind,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::kernel::{InstallPolicy, KernelCmd, spawn_fib, spawn_watcher};

/// More than rita's 128 concurrent connections; beyond it new clients are closed at once.
const MAX_CLIENTS: usize = 256;
/// babeld's default state file.
const DEFAULT_STATE_FILE: &str = "/var/lib/babel-state";
/// babeld's default pid file.
const DEFAULT_PID_FILE: &str = "/var/run/babeld.pid";

/// Reads the configuration's files, daemonises, and runs until SIGTERM or SIGINT.
pub fn start(inv: Invocation, record: Option<PathBuf>) -> anyhow::Result<()> {
    let g = &inv.config.globals;
    init_logging(g.debug.unwrap_or(0), g.log_file.as_deref())?;
    if g.daemonise == Some(true) {
        nix::unistd::daemon(false, false).context("daemonising")?;
    }
    let pid_file = match &g.pid_file {
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_PID_FILE)),
    };
    if let Some(p) = &pid_file {
        write_pid_file(p)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run(inv, record));
    if let Some(p) = &pid_file {
        let _ = fs::remove_file(p);
    }
    result
}

fn init_logging(debug: u8, file: Option<&Path>) -> anyhow::Result<()> {
    let level = match debug {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match file {
        Some(p) if !p.as_os_str().is_empty() => {
            let f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("log file {}", p.display()))?;
            b.with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init();
        }
        _ => b.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// Creates the pid file, refusing to run twice (as babeld), but replacing a stale one.
fn write_pid_file(p: &Path) -> anyhow::Result<()> {
    if let Ok(old) = fs::read_to_string(p)
        && let Ok(pid) = old.trim().parse::<i32>()
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
    {
        bail!("{} exists and process {pid} is running", p.display());
    }
    let mut f = fs::File::create(p).with_context(|| format!("pid file {}", p.display()))?;
    writeln!(f, "{}", std::process::id())?;
    Ok(())
}

/// The state file: our seqno and router-id across restarts (RFC 8966 §3.2.2).
#[derive(Default)]
struct State {
    seqno: Option<u16>,
    router_id: Option<RouterId>,
}

fn read_state(p: &Path) -> State {
    let mut s = State::default();
    let Ok(text) = fs::read_to_string(p) else {
        return s;
    };
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match (w.next(), w.next()) {
            (Some("seqno"), Some(v)) => s.seqno = v.parse().ok(),
            (Some("router-id"), Some(v)) => s.router_id = v.parse().ok(),
            // babeld's own state file holds just the seqno.
            (Some(v), None) => s.seqno = v.parse().ok(),
            _ => {}
        }
    }
    s
}

fn write_state(p: &Path, id: RouterId, seqno: u16) {
    let tmp = p.with_extension("tmp");
    let ok = fs::write(&tmp, format!("router-id {id}\nseqno {seqno}\n"))
        .and_then(|()| fs::rename(&tmp, p));
    if let Err(e) = ok {
        tracing::warn!("state file {}: {e}", p.display());
    }
}

/// babeld's router-id from a MAC: EUI-64 with the universal/local bit flipped.
fn eui64(mac: &[u8]) -> Option<RouterId> {
    match mac {
        [a, b, c, d, e, f] if mac.iter().any(|x| *x != 0) => {
            Some(RouterId([a ^ 0x02, *b, *c, 0xff, 0xfe, *d, *e, *f]))
        }
        _ => None,
    }
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

fn random_id() -> RouterId {
    loop {
        let id = RouterId(random_u64().to_be_bytes());
        if id.is_valid() {
            return id;
        }
    }
}

/// Time since start-up as the engine's clock.
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn deadline(&self, at: Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.0 + Duration::from_micros(at.as_micros()))
    }
}

/// A message from a control connection task.
enum ClientMsg {
    Connected {
        id: u64,
        read_write: bool,
        tx: mpsc::UnboundedSender<Vec<u8>>,
    },
    Data {
        id: u64,
        bytes: Vec<u8>,
    },
    Closed {
        id: u64,
    },
    /// A scrape of the `metrics-port` HTTP endpoint.
    Metrics(tokio::sync::oneshot::Sender<String>),
}

struct Client {
    session: Session,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// Everything the loop owns besides the daemon state.
struct Io {
    socket: BabelSocket,
    kernel: std_mpsc::Sender<KernelCmd>,
    netlink: NetlinkFib,
    group: Ipv6Addr,
    state_file: Option<PathBuf>,
    link_detect: bool,
    announced: Announcements,
    /// Table and preferred source each installed destination went in with (the `install`
    /// filter's answer when it was added): a switch of next hop or a removal stays there, as in
    /// babeld, whose `change_route` takes them from the installed route.
    installed_in: HashMap<RouteKey, Placement>,
    mesh_events: Option<mpsc::UnboundedReceiver<crate::mesh::MeshEvent>>,
}

/// Where a route goes in the kernel: table and preferred source (from the `install` filter).
type Placement = (Option<u32>, Option<IpAddr>);

async fn run(mut inv: Invocation, record: Option<PathBuf>) -> anyhow::Result<()> {
    let g = inv.config.globals.clone();
    let clock = Clock(std::time::Instant::now());
    let dialect = if g.althea_dialect() {
        Dialect::Althea
    } else {
        Dialect::Babel
    };
    tracing::info!("control and wire dialect: {dialect:?}");

    let mut netlink = NetlinkFib::new().context("netlink")?;
    let events = spawn_watcher().context("kernel notifications")?;
    // Tunnels first: each is a Babel interface of kind `tunnel` unless configured otherwise.
    let mut tunnel_states = Vec::new();
    for (name, opts, peers) in inv.config.tunnels.clone() {
        tunnel_states.push(crate::tunnels::start(&name, &opts, &peers, &mut netlink)?);
        if inv.config.interface_options(&name).kind.is_none() {
            let tunnel_kind = daemon::config::InterfaceOptions {
                kind: Some(daemon::config::InterfaceType::Tunnel),
                ..Default::default()
            };
            inv.config.apply(daemon::config::Statement::Interface(
                name.clone(),
                tunnel_kind,
            ));
        }
        if !inv.interfaces.contains(&name) {
            inv.interfaces.push(name);
        }
    }
    // `type mesh` interfaces run no Babel themselves, only their tunnels (spec/discovery.md).
    let mesh = crate::mesh::start(&inv.config, &mut inv.interfaces)?;
    let links = netlink.links().context("reading links")?;
    let addrs = netlink.addresses().context("reading addresses")?;

    let state_file = match &g.state_file {
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_STATE_FILE)),
    };
    let saved = state_file.as_deref().map(read_state).unwrap_or_default();
    let router_id = if let Some(id) = g.router_id {
        id
    } else if g.random_id == Some(true) {
        random_id()
    } else {
        saved
            .router_id
            .or_else(|| {
                inv.interfaces.iter().find_map(|n| {
                    links
                        .iter()
                        .find(|l| l.name == *n)
                        .and_then(|l| eui64(&l.hw_addr))
                })
            })
            .unwrap_or_else(random_id)
    };
    let mut ecfg = EngineConfig::new(router_id);
    ecfg.seqno = saved.seqno.map(|s| s.wrapping_add(1));
    ecfg.seed = random_u64();
    ecfg.fee = g.fee.unwrap_or(0);
    ecfg.policy = match dialect {
        Dialect::Althea => Policy::Althea {
            metric_factor: g.metric_factor.unwrap_or(1900),
        },
        Dialect::Babel => Policy::Babeld,
    };
    if let Some(h) = g.smoothing_half_life {
        ecfg.smoothing_half_life = Duration::from_secs(u64::from(h));
    }
    // RFC 8967: the pseudo-header's port and multicast address, and OS entropy for the Indexes
    // and nonces.
    ecfg.protocol_port = g.protocol_port.unwrap_or(babel_wire::PORT);
    ecfg.protocol_group = g.protocol_group.unwrap_or(babel_wire::MULTICAST_V6);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut ecfg.auth_entropy);
    let start = clock.now();
    let mut engine =
        Engine::new(ecfg.clone(), start).map_err(|e| anyhow::anyhow!("engine: {e}"))?;
    if let Some(f) = daemon::redistribute::RouteFilters::from_config(&inv.config.filters) {
        engine.set_route_filter(Some(std::sync::Arc::new(f)));
    }
    let engine = match &record {
        Some(p) => daemon::record::start(p, engine, start, ecfg, &inv.config.filters)?,
        None => babel_core::record::Driver::new(engine),
    };

    let ifaces: Vec<Iface> = inv
        .interfaces
        .iter()
        .map(|name| Iface {
            name: name.clone(),
            ifindex: None,
            link_local: None,
            ipv4: None,
            mtu: 1500,
            wireless: Path::new("/sys/class/net")
                .join(name)
                .join("wireless")
                .exists(),
            point_to_point: false,
            link_up: false,
            running: false,
        })
        .collect();
    let settings = Settings {
        dialect,
        hello_wireless_ms: inv.hello_wireless_ms,
        hello_wired_ms: inv.hello_wired_ms,
        all_wireless: inv.all_wireless,
        no_split_horizon: inv.no_split_horizon,
        kernel_check_interval: g.kernel_check_interval,
        version: format!("babeld-rs-{}", env!("CARGO_PKG_VERSION")),
        kernel_safe_v4_via_v6: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .is_ok_and(|r| daemon::state::kernel_at_least(&r, 5, 13)),
    };
    let mut d = Daemon::new(engine, inv.config.clone(), ifaces, settings, clock.now());
    d.check_keys()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    d.tunnels = tunnel_states;
    let mesh_events = mesh.map(|m| {
        d.mesh = m.views;
        m.events
    });

    let policy = InstallPolicy {
        protocol: RTPROT_BABEL,
        table: g.export_table.unwrap_or(kernel_fib::TABLE_MAIN),
        metric: g.kernel_priority.unwrap_or(0),
        // babeld: ipv6-subtrees defaults to whether the kernel has them (Linux >= 3.11).
        rule_priority: if g
            .ipv6_subtrees
            .unwrap_or_else(crate::kernel::kernel_has_ipv6_subtrees)
        {
            None
        } else {
            Some(
                g.first_rule_priority
                    .unwrap_or(kernel_fib::DEFAULT_FIRST_RULE_PRIORITY),
            )
        },
    };
    let kernel = spawn_fib(policy).context("kernel routes")?;
    if let Some(secs) = g.kernel_check_interval {
        let _ = kernel.send(KernelCmd::CheckInterval(Duration::from_secs(u64::from(
            secs,
        ))));
    }
    let group = g.protocol_group.unwrap_or(babel_wire::MULTICAST_V6);
    let socket = BabelSocket::open(g.protocol_port.unwrap_or(babel_wire::PORT), group)
        .context("Babel socket")?;
    tracing::info!(
        "router-id {router_id}, receive buffer {} bytes",
        socket.recv_buffer()
    );
    let mut io = Io {
        socket,
        kernel,
        netlink,
        group,
        state_file,
        link_detect: g.link_detect == Some(true),
        announced: Announcements::new(),
        installed_in: HashMap::new(),
        mesh_events,
    };
    sync_interfaces(&mut d, &mut io, &links, &addrs);
    redistribute(&mut d, &mut io, &links, &addrs);

    let (client_tx, client_rx) = mpsc::unbounded_channel();
    let clients_open = Arc::new(AtomicUsize::new(0));
    for (ep, rw) in [(g.local_ro.clone(), false), (g.local_rw.clone(), true)] {
        if let Some(ep) = ep {
            listen(ep, rw, client_tx.clone(), clients_open.clone()).await?;
        }
    }
    if let Some(port) = g.metrics_port {
        serve_metrics(port, client_tx.clone()).await?;
    }
    drop(client_tx);
    let banner = Banner {
        dialect,
        version: d.settings.version.clone(),
        host: hostname(),
        my_id: router_id,
    };
    main_loop(&mut d, &mut io, &clock, events, client_rx, banner).await
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

async fn main_loop(
    d: &mut Daemon,
    io: &mut Io,
    clock: &Clock,
    mut events: mpsc::UnboundedReceiver<NetEvent>,
    mut clients_rx: mpsc::UnboundedReceiver<ClientMsg>,
    banner: Banner,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut clients: HashMap<u64, Client> = HashMap::new();
    let mut bufs = vec![Vec::new(); 64];
    let mut received = Vec::new();
    let mut resync = false;
    loop {
        d.now = clock.now();
        flush_outputs(d, io, &mut clients).await;
        let wake = d.engine.poll_timeout();
        let sleep = tokio::time::sleep_until(wake.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            |w| clock.deadline(w),
        ));
        tokio::select! {
            r = io.socket.recv_batch(&mut bufs, &mut received) => {
                if let Err(e) = r {
                    tracing::warn!("receive: {e}");
                    continue;
                }
                d.now = clock.now();
                for (r, buf) in received.iter().zip(&bufs) {
                    let dst = if r.dst.is_multicast() { Destination::Multicast } else { Destination::Unicast(IpAddr::V6(r.dst)) };
                    let src = IpAddr::V6(*r.src.ip());
                    d.input(Input::Packet { ifindex: r.ifindex, src, dst, bytes: buf.clone() });
                }
            }
            () = sleep => {
                d.now = clock.now();
                d.input(Input::Timeout);
            }
            Some(e) = events.recv() => {
                d.now = clock.now();
                if matches!(e, NetEvent::Overrun) || matches!(e, NetEvent::LinkChanged(_) | NetEvent::LinkRemoved(_) | NetEvent::AddressAdded(_) | NetEvent::AddressRemoved(_) | NetEvent::RouteAdded(_) | NetEvent::RouteRemoved(_)) {
                    resync = !matches!(&e, NetEvent::RouteAdded(r) | NetEvent::RouteRemoved(r) if r.protocol == RTPROT_BABEL);
                }
                // Coalesce a burst of notifications into one re-read.
                while let Ok(more) = events.try_recv() {
                    resync |= !matches!(&more, NetEvent::RouteAdded(r) | NetEvent::RouteRemoved(r) if r.protocol == RTPROT_BABEL);
                }
                if resync {
                    resync = false;
                    match (io.netlink.links(), io.netlink.addresses()) {
                        (Ok(links), Ok(addrs)) => {
                            sync_interfaces(d, io, &links, &addrs);
                            redistribute(d, io, &links, &addrs);
                        }
                        (Err(e), _) | (_, Err(e)) => tracing::warn!("re-reading links: {e}"),
                    }
                }
            }
            Some(m) = clients_rx.recv() => {
                d.now = clock.now();
                let before = d.settings.kernel_check_interval;
                client_message(d, &mut clients, m, &banner);
                if d.settings.kernel_check_interval != before
                    && let Some(secs) = d.settings.kernel_check_interval
                {
                    let _ = io.kernel.send(KernelCmd::CheckInterval(Duration::from_secs(u64::from(secs))));
                }
                // Interfaces flushed by a client leave the multicast group.
                for ix in std::mem::take(&mut d.flushed) {
                    io.socket.leave(ix);
                }
                // New `interface` statements may name interfaces that already exist.
                if let (Ok(links), Ok(addrs)) = (io.netlink.links(), io.netlink.addresses()) {
                    sync_interfaces(d, io, &links, &addrs);
                }
            }
            Some(ev) = crate::mesh::next_event(&mut io.mesh_events) => {
                d.now = clock.now();
                let line = crate::mesh::before_sync(d, &ev);
                if let (Ok(links), Ok(addrs)) = (io.netlink.links(), io.netlink.addresses()) {
                    sync_interfaces(d, io, &links, &addrs);
                }
                crate::mesh::after_sync(d, &ev);
                for c in clients.values().filter(|c| c.session.is_monitoring() && !line.is_empty()) {
                    let _ = c.tx.send(format!("{line}\n").into_bytes());
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => {
                d.now = clock.now();
                for line in d.dump_lines() {
                    tracing::warn!(target: "dump", "{line}");
                }
            }
        }
    }
    shutdown(d, io, clock, &mut clients).await;
    Ok(())
}

/// SIGTERM/SIGINT: a wildcard retraction on every interface, then our kernel routes go.
async fn shutdown(d: &mut Daemon, io: &mut Io, clock: &Clock, clients: &mut HashMap<u64, Client>) {
    d.now = clock.now();
    d.input(Input::Shutdown);
    flush_outputs(d, io, clients).await;
    let (tx, rx) = std_mpsc::channel();
    if io.kernel.send(KernelCmd::Flush(tx)).is_ok() {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(n) => tracing::info!("removed {n} kernel routes"),
            Err(_) => tracing::warn!("kernel routes not removed in time"),
        }
    }
    if let Some(p) = &io.state_file {
        write_state(p, d.engine.router_id(), d.engine.seqno());
    }
    if io.mesh_events.is_some() {
        crate::mesh::remove_filter();
    }
}

/// Drains the engine: packets out, routes to the kernel, events to monitors and the state file.
async fn flush_outputs(d: &mut Daemon, io: &mut Io, clients: &mut HashMap<u64, Client>) {
    let out = d.engine.drain();
    for t in out.transmits {
        let dst = match t.dst {
            Destination::Multicast => io.group,
            Destination::Unicast(IpAddr::V6(a)) => a,
            Destination::Unicast(IpAddr::V4(_)) => continue,
        };
        // A signed packet's MAC covers its source address: send it from the link-local address
        // the engine signed with, not one the kernel might pick among several.
        let src = d
            .ifaces
            .iter()
            .find(|i| i.ifindex == Some(t.ifindex))
            .filter(|i| d.config.interface_options(&i.name).key.is_some())
            .and_then(|i| i.link_local)
            .unwrap_or(Ipv6Addr::UNSPECIFIED);
        if let Err(e) = io.socket.send_from(&t.bytes, src, dst, t.ifindex).await {
            tracing::debug!("send on {}: {e}", d.ifname(t.ifindex));
        }
    }
    // The engine already applied the `install` filter's allow/deny (a refused route is not
    // installed); here it chooses the table and preferred source of an added route.
    let mut changes = Vec::new();
    for c in out.routes {
        let key = RouteKey {
            prefix: c.prefix,
            src_prefix: c.src_prefix,
        };
        let (table, pref_src) = match c.op {
            // The end of a hold is a switch for babeld (`ROUTE_MODIFY`): the route goes where
            // the held destination's unreachable route is.
            babel_core::RouteOp::Add => match io.installed_in.get(&key) {
                Some(placed) => *placed,
                None => {
                    let ifname = d.ifname(c.ifindex);
                    let cand = Candidate {
                        prefix: c.prefix,
                        src_prefix: c.src_prefix,
                        ifname: Some(&ifname),
                        proto: Some(RTPROT_BABEL),
                        neighbour: Some(c.next_hop),
                        router_id: Some(c.router_id),
                    };
                    let v = verdict(&d.config.filters, FilterKind::Install, &cand, true);
                    io.installed_in.insert(key, (v.table, v.pref_src));
                    (v.table, v.pref_src)
                }
            },
            babel_core::RouteOp::Replace | babel_core::RouteOp::Unreachable => {
                io.installed_in.get(&key).copied().unwrap_or_default()
            }
            babel_core::RouteOp::Delete => io.installed_in.remove(&key).unwrap_or_default(),
        };
        changes.push((c, table, pref_src));
    }
    if !changes.is_empty() && io.kernel.send(KernelCmd::Apply(changes)).is_err() {
        tracing::error!("kernel route thread is gone");
    }
    let monitoring = clients.values().any(|c| c.session.is_monitoring());
    for e in out.events {
        if let Event::SeqnoChanged { seqno } = e {
            if let Some(p) = &io.state_file {
                write_state(p, d.engine.router_id(), seqno);
            }
            continue;
        }
        // Building a line means looking the object up; skip it when nobody listens.
        if !monitoring {
            d.forget_monitored(&e);
            continue;
        }
        let lines = d.monitor_lines(&e);
        if lines.is_empty() {
            continue;
        }
        let mut text = Vec::new();
        for l in lines {
            text.extend_from_slice(l.as_bytes());
            text.push(b'\n');
        }
        for c in clients.values().filter(|c| c.session.is_monitoring()) {
            let _ = c.tx.send(text.clone());
        }
    }
}

fn client_message(
    d: &mut Daemon,
    clients: &mut HashMap<u64, Client>,
    m: ClientMsg,
    banner: &Banner,
) {
    match m {
        ClientMsg::Connected { id, read_write, tx } => {
            let _ = tx.send(banner.text().into_bytes());
            clients.insert(
                id,
                Client {
                    session: Session::new(read_write),
                    tx,
                },
            );
        }
        ClientMsg::Data { id, bytes } => {
            let Some(c) = clients.get_mut(&id) else {
                return;
            };
            let mut out = Vec::new();
            let outcome = c.session.input(&bytes, d, &mut out);
            if outcome.bad > 0 {
                tracing::info!("control client {id}: {} bad commands", outcome.bad);
            }
            if !out.is_empty() {
                let _ = c.tx.send(out);
            }
            if c.session.is_closed() {
                // An empty message asks the writer to close.
                let _ = c.tx.send(Vec::new());
                clients.remove(&id);
            }
        }
        ClientMsg::Closed { id } => {
            clients.remove(&id);
        }
        ClientMsg::Metrics(reply) => {
            let _ = reply.send(daemon::metrics::render(d));
        }
    }
}

/// Longest HTTP request head read from a metrics client.
const MAX_HTTP_HEAD: usize = 4096;

/// `metrics-port`: Prometheus metrics over HTTP/1.0 on `[::1]:PORT` (`GET /metrics`; local
/// only, like the control socket). Each scrape asks the main loop for a fresh rendering.
async fn serve_metrics(port: u16, tx: mpsc::UnboundedSender<ClientMsg>) -> anyhow::Result<()> {
    let l = tokio::net::TcpListener::bind((Ipv6Addr::LOCALHOST, port))
        .await
        .with_context(|| format!("metrics port {port}"))?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HTTP_HEAD {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                        }
                    }
                })
                .await;
                if read.is_err() {
                    return;
                }
                let (status, body) =
                    if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics\r") {
                        let (rtx, rrx) = tokio::sync::oneshot::channel();
                        if tx.send(ClientMsg::Metrics(rtx)).is_err() {
                            return;
                        }
                        match rrx.await {
                            Ok(body) => ("200 OK", body),
                            Err(_) => return,
                        }
                    } else {
                        ("404 Not Found", "try /metrics\n".to_owned())
                    };
                let reply = format!(
                    "HTTP/1.0 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(())
}

/// Accepts control clients on `::1` (TCP) or a Unix path.
async fn listen(
    ep: LocalEndpoint,
    read_write: bool,
    tx: mpsc::UnboundedSender<ClientMsg>,
    open: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    match ep {
        LocalEndpoint::Port(port) => {
            let l = tokio::net::TcpListener::bind((Ipv6Addr::LOCALHOST, port))
                .await
                .with_context(|| format!("control port {port}"))?;
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    let (r, w) = s.into_split();
                    spawn_client(r, w, read_write, &tx, &open);
                }
            });
        }
        LocalEndpoint::Path(path) => {
            let _ = fs::remove_file(&path);
            let l = tokio::net::UnixListener::bind(&path)
                .with_context(|| format!("control socket {}", path.display()))?;
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    let (r, w) = s.into_split();
                    spawn_client(r, w, read_write, &tx, &open);
                }
            });
        }
    }
    Ok(())
}

fn spawn_client<R, W>(
    mut r: R,
    mut w: W,
    read_write: bool,
    tx: &mpsc::UnboundedSender<ClientMsg>,
    open: &Arc<AtomicUsize>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) as u64;
    if open.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
        open.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!("control: more than {MAX_CLIENTS} clients, refusing one");
        return;
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    if tx
        .send(ClientMsg::Connected {
            id,
            read_write,
            tx: out_tx,
        })
        .is_err()
    {
        open.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if bytes.is_empty() || w.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    let tx = tx.clone();
    let open = open.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send(ClientMsg::Data {
                            id,
                            bytes: buf.get(..n).unwrap_or_default().to_vec(),
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            }
            if writer.is_finished() {
                break;
            }
        }
        let _ = tx.send(ClientMsg::Closed { id });
        open.fetch_sub(1, Ordering::SeqCst);
    });
}

/// `IFF_POINTOPOINT` (linux/if.h): TUN devices, WireGuard, GRE and other point-to-point links.
const IFF_POINTOPOINT: u32 = 0x10;

/// Brings configured interfaces up or down in the engine to match the kernel.
fn sync_interfaces(d: &mut Daemon, io: &mut Io, links: &[LinkInfo], addrs: &[AddressInfo]) {
    for i in 0..d.ifaces.len() {
        let Some(iface) = d.ifaces.get(i).cloned() else {
            continue;
        };
        let link = links.iter().find(|l| l.name == iface.name);
        let ll = link.and_then(|l| {
            addrs.iter().find_map(|a| match a.address {
                IpAddr::V6(v6) if a.index == l.index && a.is_link_local() && !a.is_tentative() => {
                    Some(v6)
                }
                _ => None,
            })
        });
        let ipv4 = link.and_then(|l| {
            addrs.iter().find_map(|a| match a.address {
                IpAddr::V4(v4) if a.index == l.index => Some(v4),
                _ => None,
            })
        });
        let up = link.is_some_and(|l| l.is_up() && (!io.link_detect || l.is_running()));
        let mut next = Iface {
            ifindex: link.map(|l| l.index),
            link_local: ll,
            ipv4,
            mtu: link.and_then(|l| l.mtu).map_or(1500, |m| m as usize),
            point_to_point: link.is_some_and(|l| l.flags & IFF_POINTOPOINT != 0),
            link_up: up,
            ..iface.clone()
        };
        let should_run = up && ll.is_some();
        match (iface.running, should_run, next.ifindex, ll) {
            (false, true, Some(ix), Some(ll)) => {
                if let Err(e) = io.socket.join(ix) {
                    tracing::warn!("joining {} on {}: {e}", io.group, iface.name);
                    continue;
                }
                let cfg = d.interface_config(&next, ll);
                d.input(Input::InterfaceUp {
                    ifindex: ix,
                    config: cfg,
                });
                next.running = true;
                tracing::info!("interface {} up (index {ix}, {ll})", iface.name);
            }
            (true, false, _, _) => {
                if let Some(ix) = iface.ifindex {
                    d.input(Input::InterfaceDown { ifindex: ix });
                    io.socket.leave(ix);
                }
                next.running = false;
                tracing::info!("interface {} down", iface.name);
            }
            (true, true, Some(ix), Some(ll))
                if iface.link_local != Some(ll)
                    || iface.mtu != next.mtu
                    || iface.ipv4 != next.ipv4 =>
            {
                let cfg = d.interface_config(&next, ll);
                d.input(Input::InterfaceUp {
                    ifindex: ix,
                    config: cfg,
                });
            }
            _ => {}
        }
        if let Some(slot) = d.ifaces.get_mut(i) {
            *slot = next;
        }
    }
}

/// Announces what the `redistribute` filters allow, and withdraws what they no longer do.
fn redistribute(d: &mut Daemon, io: &mut Io, links: &[LinkInfo], addrs: &[AddressInfo]) {
    let name = |ix: u32| links.iter().find(|l| l.index == ix).map(|l| l.name.clone());
    let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
    let locals: Vec<(Option<&str>, IpAddr)> = addrs
        .iter()
        .filter(|a| !a.is_link_local() && !a.is_tentative())
        .map(|a| (names.get(&a.index).map(String::as_str), a.address))
        .collect();
    let mut tables = vec![kernel_fib::TABLE_MAIN];
    tables.extend(d.config.globals.import_tables.iter().copied());
    let mut routes = Vec::new();
    for t in tables {
        match io.netlink.dump(&RouteFilter::all().in_table(t)) {
            Ok(rs) => routes.extend(
                rs.into_iter()
                    .filter(|r| r.protocol != RTPROT_BABEL && r.kind == RouteKind::Unicast),
            ),
            Err(e) => tracing::warn!("reading table {t}: {e}"),
        }
    }
    let route_names: Vec<Option<String>> = routes.iter().map(|r| r.oif.and_then(name)).collect();
    let wanted = announcements(
        &d.config.filters,
        locals.iter().map(|(n, a)| (*n, *a)),
        routes
            .iter()
            .zip(&route_names)
            .map(|(r, n)| (r.dst, r.src, n.as_deref(), r.protocol)),
    );
    let wanted: Announcements = wanted
        .into_iter()
        .filter(|((p, _), _)| !is_martian(p) && !babel_wire::is_link_local(&p.addr()))
        .collect();
    for (k, _) in io.announced.iter().filter(|(k, _)| !wanted.contains_key(k)) {
        d.input(Input::Withdraw {
            prefix: k.0,
            src_prefix: k.1,
        });
    }
    for ((prefix, src), metric) in &wanted {
        if io.announced.get(&(*prefix, *src)) != Some(metric)
            && let Err(e) = d.engine.input(
                d.now,
                Input::Announce {
                    prefix: *prefix,
                    src_prefix: *src,
                    metric: *metric,
                },
            )
        {
            tracing::debug!("not announcing {prefix}: {e}");
        }
    }
    io.announced = wanted;
}
