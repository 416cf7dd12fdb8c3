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
use kernel_fib::{AddressInfo, LinkInfo, NetEvent, RTPROT_BABEL};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::control_socket::ControlServer;
use crate::kernel::{DumpRequest, KernelCmd};

use crate::effects::{
    apply_snapshot, execute, flush_outputs, persist_seqno, request_snapshot, snapshot_done,
};
use crate::metrics_http::{MetricsReply, next_metrics_request};
use crate::startup::Clock;

/// Everything the loop owns besides the daemon state.
pub struct Io {
    pub socket: BabelSocket,
    pub kernel: std_mpsc::Sender<KernelCmd>,
    /// Requests to the kernel dump thread; its snapshots arrive on `snapshots`.
    pub dumps: std_mpsc::Sender<DumpRequest>,
    pub snapshots: crate::kernel::Snapshots,
    /// Links and addresses as last read, for the interfaces a control client names.
    pub links: Vec<LinkInfo>,
    pub addrs: Vec<AddressInfo>,
    /// A snapshot asked for and not yet answered, and what waits for it.
    pub resync: Resync,
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

/// Re-reading the kernel, one snapshot at a time: a change noticed while a snapshot is on its
/// way asks for another once it is in.
#[derive(Default)]
pub struct Resync {
    /// A snapshot was asked for.
    pub pending: bool,
    /// Another one is needed after it.
    pub again: bool,
    /// Mesh events to finish once the pending snapshot is in ([`crate::mesh::after_sync`]).
    pub after: Vec<crate::mesh::MeshEvent>,
    /// Mesh events to finish after the next one.
    pub after_next: Vec<crate::mesh::MeshEvent>,
}

pub async fn main_loop(
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
    let mut trim = daemon::allocator::Trim::default();
    let mut received = Vec::new();
    let mut resync = false;
    loop {
        d.now = clock.now();
        let checked = crate::verify::poll(d, &mut io.verify);
        if let (false, Some(e)) = (checked.is_empty(), &io.exits) {
            crate::exit::publish_routes(d, e); // the exits' routes with their new checks
        }
        for line in checked {
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
                trim.tick(std::time::Instant::now());
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
                    request_snapshot(d, io);
                }
            }
            Some(snapshot) = io.snapshots.recv() => {
                d.now = clock.now();
                match snapshot {
                    Ok(snapshot) => apply_snapshot(d, io, snapshot),
                    Err(e) => tracing::warn!("re-reading links: {e}"),
                }
                snapshot_done(d, io);
            }
            m = ctl.recv() => {
                d.now = clock.now();
                ctl.handle(d, m, &banner);
                let actions = std::mem::take(&mut d.actions);
                execute(d, io, actions);
            }
            Some(reply) = next_metrics_request(&mut io.metrics_requests) => {
                d.now = clock.now();
                let _ = reply.send(daemon::metrics::render(d));
            }
            Some(ev) = crate::mesh::next_event(&mut io.mesh_events) => {
                d.now = clock.now();
                let line = crate::mesh::before_sync(d, &ev);
                // `after_sync` once the interfaces were re-read.
                if io.resync.pending {
                    io.resync.after_next.push(ev);
                } else {
                    io.resync.after.push(ev);
                }
                request_snapshot(d, io);
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
    if let Some(e) = &io.exits {
        crate::exit::stop(e);
    }
    crate::verify::shutdown(d, &mut io.verify);
}
