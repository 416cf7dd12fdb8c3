//! Start-up: logging, daemonising, the pid and state files, the router-id, the engine's
//! configuration, the kernel threads, tunnels, mesh and payments, and the first reading of the
//! kernel; then [`crate::run::main_loop`].

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use babel_core::{Engine, EngineConfig, Instant, Policy};
use babel_wire::RouterId;
use daemon::cli::Invocation;
use daemon::clients::ClientLimits;
use daemon::control::{Banner, Dialect};
use daemon::netio::BabelSocket;
use daemon::redistribute::{
    Announcements, FilterRules, Placements, TunnelEndpoint, redistributed_tables,
};
use daemon::state::{Daemon, Iface, Settings};
use kernel_fib::RTPROT_BABEL;
use tokio::sync::mpsc;

use crate::control_socket::ControlServer;
use crate::kernel::{DumpRequest, InstallPolicy, KernelCmd, spawn_fib, spawn_watcher};

use crate::effects::{apply_snapshot, persist_seqno};
use crate::logging::Lines;
use crate::metrics_http::serve_metrics;
use crate::run::Io;

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
    // The daemon's future (the whole main loop's state) on the heap: pinned on the stack, it
    // and the copies made while handing it to the runtime stay resident in the main stack.
    let result = rt.block_on(Box::pin(run(inv, record)));
    if let Some(p) = &pid_file {
        let _ = fs::remove_file(p);
    }
    result
}

fn init_logging(debug: u8, file: Option<&Path>) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref(), debug);
    // Our own subscriber, not `tracing_subscriber::fmt`: see `logging`.
    match file {
        Some(p) if !p.as_os_str().is_empty() => {
            let f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("log file {}", p.display()))?;
            Lines::new(f).with(filter).init();
        }
        _ => Lines::new(std::io::stderr()).with(filter).init(),
    }
    Ok(())
}

/// What is logged: `RUST_LOG`'s directives (`level` or `target=level`, comma-separated, a
/// target matching every target it begins), else, when `RUST_LOG` is unset, empty or not such
/// a list, the `-d` level (0 warn, 1 info, 2 debug, more trace).
///
/// `tracing_subscriber::filter::Targets`, not `EnvFilter`: `EnvFilter`'s span and field
/// directives (`target[span{field=value}]=level`) bring in the `regex` crates, about 140 KiB
/// of code and their Unicode tables, in a router whose code pages stay resident from
/// start-up (see docs/benchmarks.md, "Idle, seventh pass"); the daemon opens no spans.
fn log_filter(rust_log: Option<&str>, debug: u8) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    if let Some(t) = rust_log
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| s.parse::<Targets>().ok())
    {
        return t;
    }
    let level = match debug {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    Targets::new().with_default(level)
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

/// The engine's clock: the process's one reading of the OS clock ([`clock::now`]), shared with
/// the tunnel, payment and exit threads so their instants compare.
pub struct Clock;

impl Clock {
    /// Fixes the process's epoch at start-up.
    fn start() -> Clock {
        let _ = clock::now();
        Clock
    }

    pub fn now(&self) -> Instant {
        clock::now()
    }

    pub fn deadline(&self, at: Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(clock::to_std(at))
    }
}

async fn run(mut inv: Invocation, record: Option<PathBuf>) -> anyhow::Result<()> {
    let g = inv.config.globals.clone();
    let clock = Clock::start();
    let dialect = if g.althea_dialect() {
        Dialect::Althea
    } else {
        Dialect::Babel
    };
    tracing::info!("control and wire dialect: {dialect:?}");

    let state_file = match &g.state_file {
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_STATE_FILE)),
    };
    // Graceful restart: continue the Hello seqnos of a run that crashed in this boot, and the
    // routes it left in the kernel.
    let boot = daemon::statefile::boot_id();
    let hello_file = state_file.as_deref().map(daemon::statefile::hello_path);
    let resume_hellos = hello_file
        .as_deref()
        .map(|p| daemon::statefile::read_hellos(p, boot.as_deref()))
        .unwrap_or_default();
    let export_table = g.export_table.unwrap_or(kernel_fib::TABLE_MAIN);
    let events = spawn_watcher().context("kernel notifications")?;
    let kernel_threads = spawn_fib(
        install_policy(&g),
        (!resume_hellos.is_empty()).then_some(export_table),
    )
    .context("kernel routes")?;
    // Every other netlink request goes through the dump thread (see main.rs).
    let netlink = kernel_threads.netlink();
    // Tunnels first: each is a Babel interface of kind `tunnel` unless configured otherwise.
    let mut tunnel_states = Vec::new();
    for (name, opts, peers) in inv.config.tunnels.clone() {
        tunnel_states.push(crate::tunnels::start(&name, &opts, &peers, &netlink).await?);
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
        &netlink,
    )?;
    // The first reading of links, addresses and redistributed routes, from the dump thread
    // like every later one.
    let mut snapshots = kernel_threads.snapshots;
    kernel_threads
        .dumps
        .send(DumpRequest::Snapshot(redistributed_tables(
            &g.import_tables,
        )))
        .map_err(|_| anyhow::anyhow!("kernel dump thread is gone"))?;
    let snapshot = snapshots
        .recv()
        .await
        .context("kernel dump thread is gone")?
        .context("reading links and addresses")?;
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
                    snapshot
                        .links
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
    if !resume_hellos.is_empty() {
        tracing::info!("resuming Hello seqnos {resume_hellos:?}");
        ecfg.resume_hellos = resume_hellos;
        ecfg.resume_routes = kernel_threads.resume;
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
    if let Some(on) = inv.config.verify.last_resort() {
        ecfg.accuracy_last_resort = on;
    }
    if let Some(m) = inv.config.verify.last_resort_penalty() {
        ecfg.accuracy_last_resort_penalty = m;
    }
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
    let endpoints = TunnelEndpoint::from_config(&inv.config.tunnels);
    for e in &endpoints {
        tracing::info!(
            "tunnel {}: routes holding its endpoint {} are not accepted through it",
            e.ifname,
            e.endpoint
        );
    }
    if let Some(f) = FilterRules::new(&inv.config.filters, endpoints.clone()) {
        engine.set_route_filter(Some(std::sync::Arc::new(f)));
    }
    let engine = match &record {
        Some(p) => daemon::record::start(p, engine, start, ecfg, &inv.config.filters, &endpoints)?,
        None => babel_core::record::RecordingDriver::new(engine),
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
    let pay_shared = Arc::<daemon::payments::PayShared>::default();
    let exits = crate::exit::start(
        &inv.config,
        state_file.as_deref(),
        &prices,
        &pay_shared,
        &netlink,
    )?;
    let mut d = Daemon::new(engine, inv.config.clone(), ifaces, settings);
    d.payments = pay_shared;
    d.exits = exits.as_ref().map(|e| e.view.clone());
    d.check_keys()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    d.tunnels = tunnel_states;
    d.meters = meter_board;
    let mesh_events = mesh.map(|m| {
        d.mesh = m.views;
        m.events
    });
    let verify = crate::verify::start(&mut d, clock.now(), random_u64(), &netlink)?;
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

    let kernel = kernel_threads.routes;
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
    // Periodic dumps are made as the pacer sends them (`pacing::send_dumps`).
    d.engine.set_paced_dumps(true);
    let mut io = Io {
        socket,
        kernel,
        dumps: kernel_threads.dumps,
        snapshots,
        resync: Default::default(),
        group,
        state_file,
        persisted_seqno: seqno,
        hellos,
        pacer: daemon::pacing::Pacer::new(),
        link_detect: g.link_detect == Some(true),
        announced: Announcements::new(),
        placements: Placements::default(),
        mesh_events,
        pay_lines,
        metrics_requests: None,
        prices,
        exits,
        verify,
    };
    apply_snapshot(&mut d, &mut io, clock.now(), snapshot);

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
    release_dead_stack();
    crate::run::main_loop(&mut d, &mut io, &clock, events, ctl, banner).await
}

/// Stack below the caller's frame that is kept: the frames of the functions it calls next
/// (the system call's wrapper among them) and the x86-64 red zone are well inside it.
const STACK_MARGIN: usize = 4 * 1024;

/// Gives the main thread's stack pages below the current frame back to the kernel, once, at
/// the end of start-up: the frames start-up left there (the snapshot's application, the
/// engine's and the sockets' set-up) are dead, but a stack never shrinks, so without this
/// they stay resident for the daemon's whole life, as do the command line parser's (`main`). The main loop touches again only the depth
/// it needs. Does nothing when the stack cannot be found.
#[inline(never)]
fn release_dead_stack() {
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Some(low) = main_stack_start() else {
        return;
    };
    let Some(high) = sp.checked_sub(STACK_MARGIN).map(|a| a & !(4096 - 1)) else {
        return;
    };
    if !(low < high && high <= sp) {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: [low, high) is the part of this thread's own stack mapping that lies more than
    // STACK_MARGIN below the live frames; nothing refers to memory below the stack pointer (the
    // red zone is 128 bytes), so nothing live is there. MADV_DONTNEED on a private anonymous
    // mapping only drops its pages: a later touch finds zeroed pages, as a fresh stack would.
    // It runs once, in start-up, on the main thread, which is the thread whose stack it is.
    let done = unsafe { nix::libc::madvise(low as *mut _, high - low, nix::libc::MADV_DONTNEED) };
    if done != 0 {
        tracing::debug!(
            "releasing the start-up stack: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The lowest address of the main thread's stack mapping (`[stack]` in `/proc/self/maps`).
fn main_stack_start() -> Option<usize> {
    let maps = fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
    let (start, _) = line.split_once('-')?;
    usize::from_str_radix(start, 16).ok()
}

/// How our routes look in the kernel, from the configuration.
fn install_policy(g: &daemon::config::Globals) -> InstallPolicy {
    InstallPolicy {
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
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    /// `RUST_LOG` directives by target and a default level, as `EnvFilter` read them; the
    /// `-d` level when `RUST_LOG` is unset, empty or not a list of directives.
    #[test]
    fn log_filter_reads_rust_log_else_the_debug_level() {
        let f = log_filter(Some("babel_core=trace,warn"), 0);
        assert!(f.would_enable("babel_core::engine", &Level::TRACE));
        assert!(f.would_enable("babeld_rs::run", &Level::WARN));
        assert!(!f.would_enable("babeld_rs::run", &Level::INFO));

        let f = log_filter(Some("debug"), 0);
        assert!(f.would_enable("kernel_fib", &Level::DEBUG));
        assert!(!f.would_enable("kernel_fib", &Level::TRACE));

        for rust_log in [None, Some(""), Some("babel_core=loudly")] {
            let f = log_filter(rust_log, 1);
            assert!(f.would_enable("babeld_rs", &Level::INFO), "{rust_log:?}");
            assert!(!f.would_enable("babeld_rs", &Level::DEBUG), "{rust_log:?}");
        }
        let f = log_filter(None, 0);
        assert!(!f.would_enable("babeld_rs", &Level::INFO));
        assert!(log_filter(None, 3).would_enable("babeld_rs", &Level::TRACE));
    }
}
