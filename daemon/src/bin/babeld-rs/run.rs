//! Start-up and the main loop.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::Context;
use babel_core::{
    Destination, Engine, EngineConfig, Event, Input, Instant, Policy, RouteKey, is_martian,
};
use babel_wire::RouterId;
use daemon::cli::Invocation;
use daemon::clients::ClientLimits;
use daemon::config::FilterKind;
use daemon::control::{Banner, Dialect};
use daemon::netio::BabelSocket;
use daemon::redistribute::{Announcements, FilterSubject, announcements, verdict};
use daemon::state::{Daemon, Iface, Settings};
use kernel_fib::{
    AddressInfo, DumpFilter, Fib, LinkInfo, NetEvent, NetlinkFib, RTPROT_BABEL, RouteKind,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::control_socket::ControlServer;
use crate::kernel::{InstallPolicy, KernelCmd, spawn_fib, spawn_watcher};

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
        daemon::pidfile::write(p)?;
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

/// babeld's router-id from a MAC: EUI-64 with the universal/local bit flipped.
fn eui64(mac: &[u8]) -> Option<RouterId> {
    match mac {
        [a, b, c, d, e, f] if mac.iter().any(|x| *x != 0) => {
            Some(RouterId([a ^ 0x02, *b, *c, 0xff, 0xfe, *d, *e, *f]))
        }
        _ => None,
    }
}

/// 64 random bits from the operating system's generator (router-ids, the first seqno, the
/// engine's seed).
fn random_u64() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
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

/// Everything the loop owns besides the daemon state.
struct Io {
    socket: BabelSocket,
    kernel: std_mpsc::Sender<KernelCmd>,
    netlink: NetlinkFib,
    group: Ipv6Addr,
    state_file: Option<PathBuf>,
    /// The seqno last written to the state file: no packet leaves with another one.
    persisted_seqno: u16,
    /// Each interface's last Hello seqno, kept for a restart after a crash.
    hellos: Option<daemon::statefile::HelloFile>,
    /// Packets waiting for their turn on a link.
    pacer: daemon::pacing::Pacer<babel_core::Transmit>,
    link_detect: bool,
    announced: Announcements,
    /// Table and preferred source each installed destination went in with (the `install`
    /// filter's answer when it was added): a switch of next hop or a removal stays there, as in
    /// babeld, whose `change_route` takes them from the installed route.
    installed_in: HashMap<RouteKey, Placement>,
    mesh_events: Option<mpsc::UnboundedReceiver<crate::mesh::MeshEvent>>,
    /// `monitor` lines of the payment loop.
    pay_lines: Option<mpsc::UnboundedReceiver<String>>,
    /// Scrapes of the `metrics-port` HTTP endpoint, each waiting for a rendering.
    metrics_requests: Option<mpsc::UnboundedReceiver<MetricsReply>>,
    /// Installed routes' prices for the tunnels' metering, republished on route changes.
    prices: Arc<daemon::payments::PriceTable>,
    /// Route verification's socket, with `verify-enable`.
    verify: Option<crate::verify::VerifyIo>,
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
                kind: Some(daemon::config::ConfiguredKind::Tunnel),
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
    let prices = Arc::new(daemon::payments::PriceTable::default());
    let meter_board = daemon::payments::MeterBoard::default();
    let shaping = inv.config.pay.enable.then(|| daemon::payments::Shaping {
        config: inv.config.pay.shaper(),
        levels: Default::default(),
    });
    let mesh = crate::mesh::start(
        &inv.config,
        &mut inv.interfaces,
        &prices,
        &meter_board,
        shaping.as_ref(),
    )?;
    let links = netlink.links().context("reading links")?;
    let addrs = netlink.addresses().context("reading addresses")?;

    let state_file = match &g.state_file {
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_STATE_FILE)),
    };
    let saved = state_file
        .as_deref()
        .map(daemon::statefile::read)
        .unwrap_or_default();
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
    // RFC 8966 §3.5.1: the seqno we start with is on disk before any packet carries it.
    let seqno = daemon::statefile::next_seqno(&saved, (random_u64() & 0xffff) as u16);
    if let Some(p) = &state_file {
        persist_seqno(p, router_id, seqno);
    }
    ecfg.seqno = Some(seqno);
    // Graceful restart: continue the Hello seqnos of a run that crashed in this boot.
    let boot = daemon::statefile::boot_id();
    let hello_file = state_file.as_deref().map(daemon::statefile::hello_path);
    if let Some(p) = &hello_file {
        ecfg.resume_hellos = daemon::statefile::read_hellos(p, boot.as_deref());
        if !ecfg.resume_hellos.is_empty() {
            tracing::info!("resuming Hello seqnos {:?}", ecfg.resume_hellos);
            let table = g.export_table.unwrap_or(kernel_fib::TABLE_MAIN);
            ecfg.resume_routes = resume_routes(&mut netlink, table);
        }
    }
    let hellos = match (&hello_file, boot) {
        (Some(p), Some(b)) => daemon::statefile::HelloFile::open(p, b)
            .map_err(|e| tracing::warn!("{}: {e}", p.display()))
            .ok(),
        _ => None,
    };
    ecfg.seed = random_u64();
    ecfg.fee = g.fee.unwrap_or(0);
    ecfg.limits = daemon::memcaps::limits(
        daemon::memcaps::available(),
        g.max_routes,
        g.max_routes_per_neighbour,
    );
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
    if let Some(f) = daemon::redistribute::FilterRules::from_config(&inv.config.filters) {
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
    d.meters = meter_board;
    let mesh_events = mesh.map(|m| {
        d.mesh = m.views;
        m.events
    });
    let verify = crate::verify::start(&mut d, random_u64())?;
    let pay_lines = match &shaping {
        Some(s) => crate::pay::start(
            &inv.config,
            state_file.as_deref(),
            d.mesh.clone(),
            d.meters.clone(),
            d.payments.clone(),
            s.levels.clone(),
        )?,
        None => None,
    };

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
        "router-id {router_id}, receive buffer {} bytes, at most {} routes ({} per neighbour)",
        socket.recv_buffer(),
        d.engine.config().limits.max_routes,
        d.engine.config().limits.max_routes_per_neighbour
    );
    let mut io = Io {
        socket,
        kernel,
        netlink,
        group,
        state_file,
        persisted_seqno: seqno,
        hellos,
        pacer: daemon::pacing::Pacer::new(),
        link_detect: g.link_detect == Some(true),
        announced: Announcements::new(),
        installed_in: HashMap::new(),
        mesh_events,
        pay_lines,
        metrics_requests: None,
        prices,
        verify,
    };
    sync_interfaces(&mut d, &mut io, &links, &addrs);
    redistribute(&mut d, &mut io, &links, &addrs);

    let endpoints: Vec<_> = [(g.local_ro.clone(), false), (g.local_rw.clone(), true)]
        .into_iter()
        .filter_map(|(ep, rw)| ep.map(|ep| (ep, rw)))
        .collect();
    let ctl = ControlServer::bind(&endpoints, ClientLimits::default()).await?;
    if let Some(port) = g.metrics_port {
        let (tx, rx) = mpsc::unbounded_channel();
        serve_metrics(port, tx).await?;
        io.metrics_requests = Some(rx);
    }
    let banner = Banner {
        dialect,
        version: d.settings.version.clone(),
        host: hostname(),
        my_id: router_id,
    };
    main_loop(&mut d, &mut io, &clock, events, ctl, banner).await
}

/// The routes a crashed run of ours left in the kernel (graceful restart,
/// [`babel_core::EngineConfig::resume_routes`]): where it sent each destination.
/// Source-specific routes in the tables of the rule mode are left out (their source is in a
/// rule, not in the route).
fn resume_routes(netlink: &mut NetlinkFib, table: u32) -> Vec<babel_core::ResumeRoute> {
    match netlink.dump(&DumpFilter::protocol(RTPROT_BABEL)) {
        Ok(rs) => rs
            .into_iter()
            .filter(|r| r.kind == RouteKind::Unicast && r.table == table)
            .filter_map(|r| {
                Some(babel_core::ResumeRoute {
                    prefix: r.dst,
                    src_prefix: r.src,
                    ifindex: r.oif?,
                    next_hop: r.gateway?,
                })
            })
            .collect(),
        Err(e) => {
            tracing::warn!("reading the previous run's routes: {e}");
            Vec::new()
        }
    }
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
    mut ctl: ControlServer,
    banner: Banner,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut bufs = vec![Vec::new(); 64];
    let mut received = Vec::new();
    let mut resync = false;
    loop {
        d.now = clock.now();
        for line in crate::verify::poll(d, &mut io.verify) {
            ctl.broadcast(format!("{line}\n").as_bytes());
        }
        flush_outputs(d, io, &mut ctl).await;
        let wake = d.engine.poll_timeout();
        let mut deadline = wake.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            |w| clock.deadline(w),
        );
        if let Some(v) = crate::verify::deadline(d, &io.verify) {
            deadline = deadline.min(clock.deadline(v));
        }
        if let Some(p) = io.pacer.next_due() {
            deadline = deadline.min(tokio::time::Instant::from_std(p));
        }
        let sleep = tokio::time::sleep_until(deadline);
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
                // Woken for the pacer only: the engine has nothing due.
                if wake.is_none_or(|w| w <= d.now) {
                    d.input(Input::Timeout);
                }
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
            m = ctl.recv() => {
                d.now = clock.now();
                let before = d.settings.kernel_check_interval;
                ctl.handle(d, m, &banner);
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
            Some(reply) = next_metrics_request(&mut io.metrics_requests) => {
                d.now = clock.now();
                let _ = reply.send(daemon::metrics::render(d));
            }
            Some(ev) = crate::mesh::next_event(&mut io.mesh_events) => {
                d.now = clock.now();
                let line = crate::mesh::before_sync(d, &ev);
                if let (Ok(links), Ok(addrs)) = (io.netlink.links(), io.netlink.addresses()) {
                    sync_interfaces(d, io, &links, &addrs);
                }
                crate::mesh::after_sync(d, &ev);
                if !line.is_empty() {
                    ctl.broadcast(format!("{line}\n").as_bytes());
                }
            }
            Some(got) = crate::verify::recv(&mut io.verify) => {
                d.now = clock.now();
                for line in crate::verify::on_datagrams(d, &mut io.verify, got) {
                    ctl.broadcast(format!("{line}\n").as_bytes());
                }
            }
            Some(line) = crate::mesh::next_event(&mut io.pay_lines) => {
                ctl.broadcast(format!("{line}\n").as_bytes());
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
    shutdown(d, io, clock, &mut ctl).await;
    ctl.shutdown();
    Ok(())
}

/// SIGTERM/SIGINT: a wildcard retraction on every interface, then our kernel routes go.
async fn shutdown(d: &mut Daemon, io: &mut Io, clock: &Clock, ctl: &mut ControlServer) {
    d.now = clock.now();
    d.input(Input::Shutdown);
    flush_outputs(d, io, ctl).await;
    let (tx, rx) = std_mpsc::channel();
    if io.kernel.send(KernelCmd::Flush(tx)).is_ok() {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(n) => tracing::info!("removed {n} kernel routes"),
            Err(_) => tracing::warn!("kernel routes not removed in time"),
        }
    }
    if let Some(p) = &io.state_file {
        persist_seqno(p, d.engine.router_id(), d.engine.seqno());
    }
    if io.mesh_events.is_some() {
        crate::mesh::remove_filter();
    }
    crate::verify::shutdown(d, &mut io.verify);
}

/// Writes the state file durably, or says why it could not.
fn persist_seqno(p: &Path, id: RouterId, seqno: u16) {
    if let Err(e) = daemon::statefile::write(p, id, seqno) {
        tracing::warn!("state file {}: {e}", p.display());
    }
}

/// The link-local address an interface with a key signs from.
fn signing_address(d: &Daemon, ifindex: u32) -> Option<Ipv6Addr> {
    d.ifaces
        .iter()
        .find(|i| i.ifindex == Some(ifindex))
        .filter(|i| d.config.interface_options(&i.name).key.is_some())
        .and_then(|i| i.link_local)
}

/// Drains the engine: packets out, routes to the kernel, events to monitors and the state file.
async fn flush_outputs(d: &mut Daemon, io: &mut Io, ctl: &mut ControlServer) {
    // A new seqno reaches the disk before the first packet that carries it (RFC 8966 §3.5.1).
    let seqno = d.engine.seqno();
    if seqno != io.persisted_seqno {
        if let Some(p) = &io.state_file {
            persist_seqno(p, d.engine.router_id(), seqno);
        }
        io.persisted_seqno = seqno;
    }
    // Likewise each Hello seqno, for a restart after a crash (see `statefile::HelloFile`).
    if let Some(h) = &mut io.hellos
        && let Err(e) = h.update(d.engine.hello_seqnos())
    {
        tracing::debug!("Hello seqno file: {e}");
    }
    // Paced per interface (issue 11: a full table must not overflow a babeld neighbour's
    // socket); packets the pacer holds go out on later turns of the loop.
    let now = std::time::Instant::now();
    let mut ready = Vec::new();
    for (_, t) in io.pacer.due(now) {
        ready.push(t);
    }
    let out = d.engine.drain();
    for t in out.transmits {
        // Signed packets keep their order (the receiver refuses a packet counter that goes
        // back), so authenticated interfaces are not paced.
        let keyed = signing_address(d, t.ifindex).is_some();
        let (ix, len) = (t.ifindex, t.bytes.len());
        if keyed {
            ready.push(t);
        } else if let Some(t) = io.pacer.offer(ix, len, t, now) {
            ready.push(t);
        }
    }
    for t in ready {
        let dst = match t.dst {
            Destination::Multicast => io.group,
            Destination::Unicast(IpAddr::V6(a)) => a,
            Destination::Unicast(IpAddr::V4(_)) => continue,
        };
        // A signed packet's MAC covers its source address: send it from the link-local address
        // the engine signed with, not one the kernel might pick among several.
        let src = signing_address(d, t.ifindex).unwrap_or(Ipv6Addr::UNSPECIFIED);
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
                    let cand = FilterSubject {
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
    if !changes.is_empty() || out.events.iter().any(|e| matches!(e, Event::Route { .. })) {
        crate::pay::publish_prices(d, &io.prices);
    }
    if !changes.is_empty() && io.kernel.send(KernelCmd::Apply(changes)).is_err() {
        tracing::error!("kernel route thread is gone");
    }
    // Building a line means looking the object up; skip it when nobody listens. (Our seqno was
    // persisted above, before the packets went out; it has no line.)
    if ctl.monitoring() {
        let mut text = String::new();
        d.write_monitor_lines(&out.events, &mut text);
        if !text.is_empty() {
            ctl.broadcast(text.as_bytes());
        }
    } else {
        for e in &out.events {
            d.forget_monitored(e);
        }
    }
}

/// Where the main loop sends one rendering of the metrics.
type MetricsReply = tokio::sync::oneshot::Sender<String>;

/// The next scrape waiting for a rendering; never, without a `metrics-port`.
async fn next_metrics_request(
    rx: &mut Option<mpsc::UnboundedReceiver<MetricsReply>>,
) -> Option<MetricsReply> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Longest HTTP request head read from a metrics client.
const MAX_HTTP_HEAD: usize = 4096;

/// `metrics-port`: Prometheus metrics over HTTP/1.0 on `[::1]:PORT` (`GET /metrics`; local
/// only, like the control socket). Each scrape asks the main loop for a fresh rendering.
async fn serve_metrics(port: u16, tx: mpsc::UnboundedSender<MetricsReply>) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
                        if tx.send(rtx).is_err() {
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
                IpAddr::V6(v6)
                    if a.index == l.index
                        && babel_wire::is_link_local(&a.address)
                        && !a.is_tentative() =>
                {
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
                    io.pacer.forget(ix);
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
        .filter(|a| {
            let ipv6_link_local = a.address.is_ipv6() && babel_wire::is_link_local(&a.address);
            !ipv6_link_local && !a.is_tentative()
        })
        .map(|a| (names.get(&a.index).map(String::as_str), a.address))
        .collect();
    let mut tables = vec![kernel_fib::TABLE_MAIN];
    tables.extend(d.config.globals.import_tables.iter().copied());
    let mut routes = Vec::new();
    for t in tables {
        match io.netlink.dump(&DumpFilter::all().in_table(t)) {
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
