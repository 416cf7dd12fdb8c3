//! The main loop: one task that owns the daemon's state and waits on every source of input
//! (see the diagram in `main.rs`), then carries out what the engine and the decisions asked.

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use babel_core::{Destination, Input};
use daemon::control::Banner;
use daemon::netio::BabelSocket;
use daemon::redistribute::{Announcements, Placements};
use daemon::state::Daemon;
use kernel_fib::{NetEvent, RTPROT_BABEL};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::control_socket::ControlServer;
use crate::kernel::{DumpRequest, KernelCmd};

use crate::effects::{
    apply_snapshot, ask_snapshot, execute, flush_outputs, persist_seqno, request_snapshot,
    snapshot_done,
};
use crate::metrics_http::{MetricsReply, next_metrics_request};
use crate::startup::Clock;

/// The signals the daemon acts on: SIGTERM and SIGINT stop it, SIGUSR1 logs its tables.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGUSR1);
    set
}

/// Blocks the handled signals in the calling thread and in every thread it starts afterwards,
/// so that they wait in the kernel for [`Signals`]: call first thing in `main`. Child processes
/// start with an empty mask (std's `Command` resets it).
pub fn block_signals() -> nix::Result<()> {
    handled_signals().thread_block()
}

/// The handled signals, read from a signalfd. tokio's signal handling would do as well but
/// keeps an entry for every signal number resident (about 24 KiB of an idle router's heap).
struct Signals(AsyncFd<SignalFd>);

impl Signals {
    fn open() -> std::io::Result<Signals> {
        let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
        let fd = SignalFd::with_flags(&handled_signals(), flags)?;
        // SAFETY: the `SignalFd` owns its descriptor and the AsyncFd takes ownership of it, so
        // the descriptor stays open and unchanged for the AsyncFd's whole lifetime, which is
        // what `register` requires (tokio deprecated the safe `AsyncFd::new` for that reason).
        #[allow(unsafe_code)]
        let fd =
            unsafe { AsyncFd::register(fd) }.map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Signals(fd))
    }

    /// The next handled signal.
    async fn recv(&self) -> std::io::Result<Signal> {
        loop {
            let mut ready = self.0.readable().await?;
            let read = ready.try_io(|fd| match fd.get_ref().read_signal() {
                Ok(Some(info)) => Ok(info.ssi_signo),
                Ok(None) => Err(std::io::ErrorKind::WouldBlock.into()),
                Err(e) => Err(e.into()),
            });
            match read {
                Ok(Ok(signo)) => {
                    if let Ok(Ok(s)) = i32::try_from(signo).map(Signal::try_from) {
                        return Ok(s);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }
}

/// Datagrams read from the Babel socket per wake-up at most.
const RECV_BATCH: usize = 64;

/// Everything the loop owns besides the daemon state.
pub struct Io {
    pub socket: BabelSocket,
    pub kernel: crate::kernel::RouteThread,
    /// Requests to the kernel dump thread; its snapshots arrive on `snapshots`.
    pub dumps: std_mpsc::Sender<DumpRequest>,
    pub snapshots: crate::kernel::Snapshots,
    /// A snapshot asked for and not yet answered, and the mesh events that wait for it
    /// ([`crate::mesh::after_sync`]).
    pub resync: daemon::resync::Resync<crate::mesh::MeshEvent>,
    pub group: Ipv6Addr,
    pub state_file: Option<PathBuf>,
    /// The seqno last written to the state file: no packet leaves with another one.
    pub persisted_seqno: u16,
    /// Each interface's last Hello seqno, kept for a restart after a crash.
    pub hellos: Option<daemon::statefile::HelloFile>,
    /// Packets waiting for their turn on a link.
    pub pacer: daemon::pacing::Pacer<babel_core::Transmit>,
    pub link_detect: bool,
    pub announced: Announcements,
    /// Table and preferred source each installed destination went in with.
    pub placements: Placements,
    pub mesh_events: Option<mpsc::UnboundedReceiver<crate::mesh::MeshEvent>>,
    /// `monitor` lines of the payment loop.
    pub pay_lines: Option<mpsc::UnboundedReceiver<String>>,
    /// Scrapes of the `metrics-port` HTTP endpoint, each waiting for a rendering.
    pub metrics_requests: Option<mpsc::UnboundedReceiver<MetricsReply>>,
    /// Installed routes' prices for the tunnels' metering, republished on route changes.
    pub prices: Arc<daemon::payments::PriceTable>,
    /// The exit role or client.
    pub exits: Option<crate::exit::Exits>,
    /// Route verification's socket, with `verify-enable`.
    pub verify: Option<crate::verify::VerifyIo>,
}

pub async fn main_loop(
    d: &mut Daemon,
    io: &mut Io,
    clock: &Clock,
    mut events: mpsc::UnboundedReceiver<NetEvent>,
    mut ctl: ControlServer,
    banner: Banner,
) -> anyhow::Result<()> {
    let signals = Signals::open()?;
    // One datagram's room; each received datagram is copied out at its own length.
    let mut scratch = Vec::new();
    let mut trim = daemon::allocator::Trim::default();
    let mut received = Vec::new();
    loop {
        let now = clock.now();
        let checked = crate::verify::poll(d, now, &mut io.verify);
        if let (false, Some(e)) = (checked.is_empty(), &io.exits) {
            crate::exit::publish_routes(d, now, e); // the exits' routes with their new checks
        }
        for line in checked {
            ctl.broadcast(format!("{line}\n").as_bytes());
        }
        flush_outputs(d, io, &mut ctl, now).await;
        let wake = d.engine.poll_timeout();
        let mut deadline = wake.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            |w| clock.deadline(w),
        );
        if let Some(v) = crate::verify::deadline(d, now, &io.verify) {
            deadline = deadline.min(clock.deadline(v));
        }
        if let Some(p) = io.pacer.next_due() {
            deadline = deadline.min(clock.deadline(p));
        }
        let sleep = tokio::time::sleep_until(deadline);
        tokio::select! {
            r = io.socket.recv_batch(&mut scratch, RECV_BATCH, &mut received) => {
                if let Err(e) = r {
                    tracing::warn!("receive: {e}");
                    continue;
                }
                let now = clock.now();
                for r in received.drain(..) {
                    let dst = if r.dst.is_multicast() { Destination::Multicast } else { Destination::Unicast(IpAddr::V6(r.dst)) };
                    let src = IpAddr::V6(*r.src.ip());
                    d.input(now, Input::Packet { ifindex: r.ifindex, src, dst, bytes: r.bytes });
                }
            }
            () = sleep => {
                let now = clock.now();
                trim.tick(clock::now());
                // Woken for the pacer only: the engine has nothing due.
                if wake.is_none_or(|w| w <= now) {
                    d.input(now, Input::Timeout);
                }
            }
            Some(e) = events.recv() => {
                // A burst of notifications becomes one re-read.
                let mut changed = daemon::resync::asks_reread(&e, RTPROT_BABEL);
                while let Ok(more) = events.try_recv() {
                    changed |= daemon::resync::asks_reread(&more, RTPROT_BABEL);
                }
                if changed {
                    request_snapshot(d, io);
                }
            }
            Some(snapshot) = io.snapshots.recv() => {
                match snapshot {
                    Ok(snapshot) => apply_snapshot(d, io, clock.now(), snapshot),
                    Err(e) => tracing::warn!("re-reading links: {e}"),
                }
                snapshot_done(d, io);
            }
            m = ctl.recv() => {
                let now = clock.now();
                ctl.handle(&mut d.at(now), m, &banner);
                crate::effects::choose_route_events(d, io, &ctl); // a monitor may have begun
                let actions = std::mem::take(&mut d.actions);
                execute(d, io, now, actions);
            }
            Some(reply) = next_metrics_request(&mut io.metrics_requests) => {
                let _ = reply.send(daemon::metrics::render(d, clock.now()));
            }
            Some(ev) = crate::mesh::next_event(&mut io.mesh_events) => {
                let line = crate::mesh::before_sync(d, &ev);
                // `after_sync` once the interfaces were re-read.
                if io.resync.after_change(ev) {
                    ask_snapshot(d, io);
                }
                if !line.is_empty() {
                    ctl.broadcast(format!("{line}\n").as_bytes());
                }
            }
            Some(got) = crate::verify::recv(&mut io.verify) => {
                for line in crate::verify::on_event(d, clock.now(), &mut io.verify, got) {
                    ctl.broadcast(format!("{line}\n").as_bytes());
                }
            }
            Some(line) = crate::mesh::next_event(&mut io.pay_lines) => {
                ctl.broadcast(format!("{line}\n").as_bytes());
            }
            s = signals.recv() => match s {
                Ok(Signal::SIGUSR1) => {
                    for line in d.dump_lines(clock.now()) {
                        tracing::warn!(target: "dump", "{line}");
                    }
                }
                Ok(_) => break, // SIGTERM, SIGINT
                Err(e) => {
                    // Without signals the daemon could not be stopped cleanly any more.
                    tracing::error!("reading signals: {e}; stopping");
                    break;
                }
            },
        }
    }
    shutdown(d, io, clock, &mut ctl).await;
    ctl.shutdown();
    Ok(())
}

/// SIGTERM/SIGINT: a wildcard retraction on every interface, then our kernel routes go.
async fn shutdown(d: &mut Daemon, io: &mut Io, clock: &Clock, ctl: &mut ControlServer) {
    let now = clock.now();
    d.input(now, Input::Shutdown);
    flush_outputs(d, io, ctl, now).await;
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
    if let Some(e) = &io.exits {
        crate::exit::stop(e);
    }
    crate::verify::shutdown(&mut io.verify);
}
