//! The kernel side: our routes and the dumps on threads of their own (netlink calls block),
//! and notifications from a watcher task on the main loop's runtime, talking to the main loop
//! over channels.

use clock::Instant;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::Duration;

use babel_core::{RouteChange, RouteOp};
use daemon::kernel_check::{CHECK_STEP, CheckRun, Stale};
use daemon::netlink_ops::NetlinkOp;
use kernel_fib::{
    AddressInfo, DumpFilter, Fib, FibChange, FibError, InstallOp, Installed, KernelRoute,
    KernelRouteKey, LinkInfo, NetEvent, NetlinkFib, SourceTables, Watcher,
};
use std::net::IpAddr;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// Parts of route changes (of at most [`kernel_fib::APPLY_BATCH`] each) the main loop may hand
/// to the route thread before it waits for the route thread to apply one: a burst that changes
/// a full table (a neighbour with every route goes away) is never copied whole into the
/// channel, only about 4,096 changes of it at a time.
pub const PARTS_AHEAD: usize = 4;

/// A route change as the route thread gets it: the engine's change, and the table and preferred
/// source the `install` filter chose.
pub type Placed = (RouteChange, Option<u32>, Option<IpAddr>);

/// babeld's default `kernel-check-interval`.
const DEFAULT_CHECK: Duration = Duration::from_secs(300);
/// How long routes left in the kernel by a previous run are kept while the table is relearned
/// (graceful restart). Neighbours resend their tables within a few Hello intervals of seeing us.
pub const RESTART_GRACE: Duration = Duration::from_secs(30);

/// How our routes look in the kernel.
#[derive(Clone, Copy, Debug)]
pub struct InstallPolicy {
    /// Route protocol (42).
    pub protocol: u8,
    /// Table (`export-table`, else main).
    pub table: u32,
    /// Metric (`kernel-priority`).
    pub metric: u32,
    /// `ipv6-subtrees false`: source-specific routes go to per-source tables selected by
    /// `from SRC` rules from this priority on (`first-rule-priority`). `None`: native IPv6
    /// subtrees (`RTA_SRC`), where the kernel needs nothing more (RFC 9079 §5.3 holds).
    pub rule_priority: Option<u32>,
}

/// Whether this kernel has IPv6 subtrees, decided as babeld does: Linux 3.11 or later.
pub fn kernel_has_ipv6_subtrees() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .is_ok_and(|r| daemon::state::kernel_at_least(&r, 3, 11))
}

/// A request to the kernel thread.
pub enum KernelCmd {
    /// Apply these routes (already filtered by `install` filters); the permit is one of the
    /// [`PARTS_AHEAD`], given back once they are applied.
    Apply(Vec<Placed>, OwnedSemaphorePermit),
    /// Remove every route of our protocol and answer.
    Flush(std_mpsc::Sender<usize>),
    /// Check the kernel this often (babeld's `kernel-check-interval`; zero: never).
    CheckInterval(Duration),
    /// A dump of the kernel's routes of our protocol, indexed by the dump thread, to check
    /// against.
    Present(CheckRun),
}

/// The kernel route thread's state.
struct Routes {
    fib: NetlinkFib,
    policy: InstallPolicy,
    /// What we installed (kernel-fib's bookkeeping and rule projection): a delete is only ever
    /// sent for these, and the periodic check puts them back when something removed them.
    installed: Installed,
    /// Routes a previous run left (graceful restart).
    stale: Stale,
    /// A kernel check in progress.
    check: Option<CheckRun>,
}

impl Routes {
    /// The engine's route changes as kernel routes of our protocol, in the table and with the
    /// preferred source the `install` filter chose.
    /// A full table arrives as one Apply; the routes are made as kernel-fib sends them, so no
    /// copy of every route is ever held at once (37 MB for 100,000 routes, docs/benchmarks.md).
    fn apply(&mut self, changes: &[Placed]) {
        let policy = self.policy;
        let updates = changes.iter().map(|(c, table, pref_src)| {
            let mut r = KernelRoute::unicast(c.prefix, Some(c.next_hop), Some(c.ifindex))
                .with_metric(policy.metric)
                .with_table(table.unwrap_or(policy.table))
                .with_protocol(policy.protocol);
            if let Some(s) = c.src_prefix {
                r = r.with_src(s);
            }
            if let Some(p) = pref_src {
                r = r.with_pref_src(*p);
            }
            let op = match c.op {
                RouteOp::Add | RouteOp::Replace => InstallOp::Install,
                RouteOp::Unreachable => InstallOp::Hold,
                RouteOp::Delete => InstallOp::Remove,
            };
            (op, r)
        });
        self.installed
            .apply(&mut self.fib, updates, &mut self.stale);
    }

    /// Removes our rules (at exit), and rules of our protocol in our priority range left by an
    /// earlier run.
    fn remove_rules(&mut self) -> usize {
        self.installed
            .remove_rules(&mut self.fib, self.policy.protocol)
    }

    fn run(&mut self, batch: &[FibChange]) {
        for (change, result) in batch.iter().zip(self.fib.apply(batch)) {
            if let Err(e) = result {
                tracing::warn!("kernel route {change:?}: {e}");
            }
        }
    }

    /// One step of babeld's kernel check (see `daemon::kernel_check`): puts back routes of
    /// ours the kernel lost, removes routes of our protocol we no longer own. Source-table
    /// projections (`ipv6-subtrees false`) are left as they are.
    fn check_step(&mut self) {
        let Some(run) = &mut self.check else {
            return;
        };
        let stale = &self.stale;
        let installed = &self.installed;
        let keep = |k: &KernelRouteKey| stale.contains(k) || installed.is_projected(k);
        let (changes, done) = run.step(installed.ours(), keep, CHECK_STEP);
        for (change, result) in changes.iter().zip(self.fib.apply(&changes)) {
            match (change, result) {
                (_, Ok(())) => {}
                // Deleted meanwhile by the engine's own change.
                (FibChange::Delete(_), Err(kernel_fib::FibError::NotFound)) => {}
                (_, Err(e)) => tracing::warn!("kernel check {change:?}: {e}"),
            }
        }
        if done {
            if run.reinstalled + run.removed > 0 {
                tracing::info!(
                    "kernel check: {} routes reinstalled, {} not ours removed",
                    run.reinstalled,
                    run.removed
                );
            }
            self.check = None;
        }
    }

    /// Removes the stale routes not relearned in time.
    fn expire_stale(&mut self, now: Instant) {
        let gone: Vec<FibChange> = self
            .stale
            .expire(now)
            .into_iter()
            .map(FibChange::Delete)
            .collect();
        if !gone.is_empty() {
            tracing::info!(
                "graceful restart: removing {} routes not relearned",
                gone.len()
            );
            self.run(&gone);
        }
    }
}

/// The main loop's end of the route thread: route changes with backpressure, other commands
/// as they come.
pub struct RouteThread {
    tx: std_mpsc::Sender<KernelCmd>,
    /// [`PARTS_AHEAD`] permits, one taken by each part of route changes not yet applied.
    parts: Arc<Semaphore>,
}

/// The route thread is gone.
#[derive(Debug)]
pub struct Gone;

impl RouteThread {
    /// Sends a command other than route changes.
    pub fn send(&self, cmd: KernelCmd) -> Result<(), Gone> {
        self.tx.send(cmd).map_err(|_| Gone)
    }

    /// Hands a part of route changes to the route thread, in order, first waiting while
    /// [`PARTS_AHEAD`] parts are still to be applied.
    pub async fn apply(&self, changes: Vec<Placed>) -> Result<(), Gone> {
        let permit = self.parts.clone().acquire_owned().await.map_err(|_| Gone)?;
        self.send(KernelCmd::Apply(changes, permit))
    }
}

/// The kernel threads' ends the main loop holds.
pub struct KernelThreads {
    /// Commands to the route thread.
    pub routes: RouteThread,
    /// Requests to the dump thread.
    pub dumps: std_mpsc::Sender<DumpRequest>,
    /// The dump thread's answers to [`DumpRequest::Snapshot`], in order.
    pub snapshots: Snapshots,
    /// The routes a crashed run left, for the engine to resume (when asked for).
    pub resume: Vec<babel_core::ResumeRoute>,
}

impl KernelThreads {
    /// The dump thread's end for link set-up.
    pub fn netlink(&self) -> Netlink {
        Netlink(self.dumps.clone())
    }
}

/// Starts the kernel threads. Routes of our protocol a previous run left are kept for
/// [`RESTART_GRACE`] while the table is relearned (graceful restart), then removed if not
/// relearned. The periodic check's dump runs on a thread of its own, so that a large table
/// never holds up route changes. With `resume_table`, the routes of ours left in that table are
/// also returned for the engine to resume ([`daemon::kernel_check::resume_routes`]).
pub fn spawn_fib(
    policy: InstallPolicy,
    resume_table: Option<u32>,
) -> anyhow::Result<KernelThreads> {
    let mut fib = NetlinkFib::new()?;
    let left = match fib.dump(&DumpFilter::protocol(policy.protocol)) {
        Ok(rs) => rs,
        Err(e) => {
            tracing::warn!("reading stale kernel routes: {e}");
            Vec::new()
        }
    };
    if !left.is_empty() {
        tracing::info!(
            "keeping {} kernel routes of protocol {} for up to {} s while they are relearned",
            left.len(),
            policy.protocol,
            RESTART_GRACE.as_secs()
        );
    }
    let resume =
        resume_table.map_or_else(Vec::new, |t| daemon::kernel_check::resume_routes(&left, t));
    let (tx, rx) = std_mpsc::channel::<KernelCmd>();
    let mut routes = Routes {
        fib,
        policy,
        installed: Installed::new(policy.rule_priority.map(|first| {
            SourceTables::new(
                first,
                kernel_fib::DEFAULT_FIRST_SOURCE_TABLE,
                kernel_fib::DEFAULT_MAX_SOURCE_TABLES,
                policy.protocol,
            )
        })),
        stale: Stale::new(left, clock::now(), RESTART_GRACE),
        check: None,
    };
    match routes.remove_rules() {
        0 => {}
        n => tracing::info!("removed {n} stale source-specific rules"),
    }
    let (dumps, snapshots) = spawn_dumper(policy.protocol, tx.clone())?;
    let dump = dumps.clone();
    thread::Builder::new()
        .name("kernel-routes".into())
        .spawn(move || {
            let mut interval = DEFAULT_CHECK;
            let mut next_check = clock::now() + interval;
            loop {
                // During a check, commands go first and the check advances between them.
                let cmd = if routes.check.is_some() {
                    match rx.try_recv() {
                        Ok(c) => Some(c),
                        Err(std_mpsc::TryRecvError::Empty) => None,
                        Err(std_mpsc::TryRecvError::Disconnected) => return,
                    }
                } else {
                    let wake = [
                        (!interval.is_zero()).then_some(next_check),
                        routes.stale.deadline(),
                    ]
                    .into_iter()
                    .flatten()
                    .min();
                    let r = match wake {
                        Some(w) => rx
                            .recv_timeout(w.saturating_since(clock::now()))
                            .map_err(|e| matches!(e, std_mpsc::RecvTimeoutError::Disconnected)),
                        None => rx.recv().map_err(|_| true),
                    };
                    match r {
                        Ok(c) => Some(c),
                        Err(true) => return,
                        Err(false) => None,
                    }
                };
                let Some(cmd) = cmd else {
                    let now = clock::now();
                    routes.expire_stale(now);
                    if routes.check.is_some() {
                        routes.check_step();
                    } else if !interval.is_zero() && now >= next_check {
                        next_check = now + interval;
                        let _ = dump.send(DumpRequest::Check);
                    }
                    continue;
                };
                match cmd {
                    KernelCmd::Apply(changes, permit) => {
                        routes.apply(&changes);
                        drop(changes);
                        drop(permit);
                    }
                    KernelCmd::CheckInterval(d) => {
                        interval = d;
                        next_check = clock::now() + d;
                    }
                    KernelCmd::Present(run) => routes.check = Some(run),
                    KernelCmd::Flush(reply) => {
                        let rules = routes.remove_rules();
                        if rules > 0 {
                            tracing::info!("removed {rules} source-specific rules");
                        }
                        let n = routes.fib.purge(policy.protocol).unwrap_or(0);
                        routes.installed.clear();
                        routes.check = None;
                        let _ = reply.send(n);
                    }
                }
            }
        })?;
    Ok(KernelThreads {
        routes: RouteThread {
            tx,
            parts: Arc::new(Semaphore::new(PARTS_AHEAD)),
        },
        dumps,
        snapshots,
        resume,
    })
}

/// A request to the dump thread.
pub enum DumpRequest {
    /// The kernel check's dump of our protocol's routes, for the route thread.
    Check,
    /// Links, addresses and the routes of these tables, for the main loop.
    Snapshot(Vec<u32>),
    /// The link of this name, if there is one (a mesh interface waiting for its link).
    Link(String, oneshot::Sender<Result<Option<LinkInfo>, FibError>>),
    /// Bring the link of this name up with this MTU and give it this address; answers its
    /// index (a tunnel's TUN device just opened).
    LinkUp {
        name: String,
        mtu: u32,
        address: (IpAddr, u8),
        reply: oneshot::Sender<anyhow::Result<u32>>,
    },
    /// Other parts' requests (route verification's probe rules and tables, the exit tunnel's
    /// link, addresses and routes), carried out in order; the failures go to `reply`.
    Ops(Vec<NetlinkOp>, OpsReply),
}

/// The failed requests of a [`DumpRequest::Ops`], each with its error.
pub type Failed = Vec<(NetlinkOp, FibError)>;

/// Where the failures of a [`DumpRequest::Ops`] go.
pub enum OpsReply {
    /// To a task that awaits them.
    Task(oneshot::Sender<Failed>),
    /// To a thread (or the end of the main loop) that blocks on them.
    Thread(std_mpsc::Sender<Failed>),
}

/// The dump thread's end for every other part that asks netlink something (tunnels, mesh
/// tunnels and the exit tunnel set up links; route verification installs its probe rules and
/// tables): they ask, and never hold a netlink socket of their own.
#[derive(Clone)]
pub struct Netlink(std_mpsc::Sender<DumpRequest>);

impl Netlink {
    fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> DumpRequest,
    ) -> anyhow::Result<oneshot::Receiver<T>> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(request(tx))
            .map_err(|_| anyhow::anyhow!("kernel dump thread is gone"))?;
        Ok(rx)
    }

    /// The link named `name`, if it exists.
    pub async fn link(&self, name: &str) -> anyhow::Result<Option<LinkInfo>> {
        let rx = self.ask(|tx| DumpRequest::Link(name.to_owned(), tx))?;
        Ok(rx.await??)
    }

    /// Carries out `ops` in order on the netlink thread and waits for them; an error names
    /// every request that failed.
    pub async fn run(&self, ops: Vec<NetlinkOp>) -> anyhow::Result<()> {
        failures(self.submit(ops)?.await?)
    }

    /// Hands `ops` to the netlink thread without waiting (the async main loop's requests):
    /// the failures arrive on the returned receiver once every request was carried out.
    pub fn submit(&self, ops: Vec<NetlinkOp>) -> anyhow::Result<oneshot::Receiver<Failed>> {
        self.ask(|tx| DumpRequest::Ops(ops, OpsReply::Task(tx)))
    }

    /// Carries out `ops` and blocks for at most `wait` (at shutdown, after the main loop).
    pub fn run_blocking(&self, ops: Vec<NetlinkOp>, wait: Duration) -> anyhow::Result<()> {
        let (tx, rx) = std_mpsc::channel();
        self.0
            .send(DumpRequest::Ops(ops, OpsReply::Thread(tx)))
            .map_err(|_| anyhow::anyhow!("kernel dump thread is gone"))?;
        failures(rx.recv_timeout(wait)?)
    }

    /// Brings `name` up with `mtu` and adds `address`/`len`; returns its index.
    pub async fn link_up(
        &self,
        name: &str,
        mtu: u32,
        address: IpAddr,
        len: u8,
    ) -> anyhow::Result<u32> {
        let rx = self.ask(|reply| DumpRequest::LinkUp {
            name: name.to_owned(),
            mtu,
            address: (address, len),
            reply,
        })?;
        rx.await?
    }
}

fn failures(failed: Failed) -> anyhow::Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    let said: Vec<String> = failed.iter().map(|(op, e)| format!("{op}: {e}")).collect();
    anyhow::bail!("{}", said.join("; "))
}

/// `LinkUp` on the dump thread's socket.
fn link_up(
    fib: &mut NetlinkFib,
    name: &str,
    mtu: u32,
    (address, len): (IpAddr, u8),
) -> anyhow::Result<u32> {
    let ix = fib
        .links()?
        .into_iter()
        .find(|l| l.name == name)
        .map(|l| l.index)
        .ok_or_else(|| anyhow::anyhow!("{name} did not appear"))?;
    fib.set_link_up(ix, Some(mtu))?;
    fib.add_address(ix, address, len)?;
    Ok(ix)
}

/// What the main loop re-reads from the kernel when it changed: links, addresses, and the
/// routes of the tables it redistributes from.
pub struct Snapshot {
    /// Every link.
    pub links: Vec<LinkInfo>,
    /// Every address.
    pub addrs: Vec<AddressInfo>,
    /// The routes of the tables asked for (a table that could not be read is left out).
    pub routes: Vec<KernelRoute>,
}

/// The routes of `tables`, in order, but for our own ([`kernel_fib::RTPROT_BABEL`], which
/// redistribution never announces): left out as the dump decodes them, since with a full
/// table they are nearly all of it and every change of a link would read them all (21 MB at
/// 100,000 routes). A table that cannot be read is logged and left out.
pub fn dump_tables(fib: &mut impl Fib, tables: &[u32]) -> Vec<KernelRoute> {
    let mut routes = Vec::new();
    for &t in tables {
        let filter = DumpFilter::all()
            .in_table(t)
            .without_protocol(kernel_fib::RTPROT_BABEL);
        match fib.dump(&filter) {
            // The first table's routes are taken as they are, not copied.
            Ok(rs) if routes.is_empty() => routes = rs,
            Ok(rs) => routes.extend(rs),
            Err(e) => tracing::warn!("reading table {t}: {e}"),
        }
    }
    routes
}

/// The dump thread's answers to [`DumpRequest::Snapshot`].
pub type Snapshots = mpsc::UnboundedReceiver<Result<Snapshot, FibError>>;

/// The dump thread, with its own netlink socket, so that neither the route thread nor the
/// main loop ever waits for a dump: the kernel check's dumps of the routes of `protocol`
/// (indexed, handed to the route thread as [`KernelCmd::Present`]), the main loop's
/// [`Snapshot`]s (sent on the returned receiver), and every other part's link, address, rule
/// and route requests ([`Netlink`]).
fn spawn_dumper(
    protocol: u8,
    to_routes: std_mpsc::Sender<KernelCmd>,
) -> anyhow::Result<(std_mpsc::Sender<DumpRequest>, Snapshots)> {
    let mut fib = NetlinkFib::new()?;
    let (tx, rx) = std_mpsc::channel::<DumpRequest>();
    let (snap_tx, snap_rx) = mpsc::unbounded_channel();
    thread::Builder::new()
        .name("kernel-dumps".into())
        .spawn(move || {
            while let Ok(request) = rx.recv() {
                match request {
                    DumpRequest::Check => match fib.dump(&DumpFilter::protocol(protocol)) {
                        Ok(rs) => {
                            if to_routes
                                .send(KernelCmd::Present(CheckRun::new(rs)))
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!("kernel check: {e}"),
                    },
                    DumpRequest::Link(name, reply) => {
                        let link = fib
                            .links()
                            .map(|ls| ls.into_iter().find(|l| l.name == name));
                        let _ = reply.send(link);
                    }
                    DumpRequest::LinkUp {
                        name,
                        mtu,
                        address,
                        reply,
                    } => {
                        let _ = reply.send(link_up(&mut fib, &name, mtu, address));
                    }
                    DumpRequest::Ops(ops, reply) => {
                        let failed = daemon::netlink_ops::run(&mut fib, &ops);
                        match reply {
                            OpsReply::Task(tx) => {
                                let _ = tx.send(failed);
                            }
                            OpsReply::Thread(tx) => {
                                let _ = tx.send(failed);
                            }
                        }
                    }
                    DumpRequest::Snapshot(tables) => {
                        let snapshot = fib.links().and_then(|links| {
                            let addrs = fib.addresses()?;
                            let routes = dump_tables(&mut fib, &tables);
                            Ok(Snapshot {
                                links,
                                addrs,
                                routes,
                            })
                        });
                        if snap_tx.send(snapshot).is_err() {
                            return;
                        }
                    }
                }
            }
        })?;
    Ok((tx, snap_rx))
}

/// The watcher's socket as tokio polls it.
struct Polled(Watcher);

impl std::os::fd::AsRawFd for Polled {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&self.0))
    }
}

/// Starts watching the kernel's notifications; events arrive on the returned channel (without
/// our own routes'). The watcher is a task of the main loop's runtime, not a thread: reading a
/// notification never blocks (the socket is polled for readability), and a thread of its own
/// cost about 10-16 kB of resident stack and thread state for a socket that is quiet when the
/// router is idle. Call inside the runtime.
pub fn spawn_watcher() -> anyhow::Result<mpsc::UnboundedReceiver<NetEvent>> {
    let w = Watcher::new(kernel_fib::Groups::all())?;
    // SAFETY: the watcher owns its socket and the AsyncFd takes ownership of the watcher, so
    // the descriptor stays open and the same for the AsyncFd's whole lifetime, which is what
    // `register_with_interest` requires.
    #[allow(unsafe_code)]
    let mut fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(Polled(w), tokio::io::Interest::READABLE)
    }
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let mut ready = match fd.readable_mut().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("kernel notifications: {e}");
                    let _ = tx.send(NetEvent::Overrun);
                    return;
                }
            };
            match ready.get_inner_mut().0.try_recv_waiting() {
                // Everything waiting was read: wait for the socket to be readable again.
                Ok(None) => ready.clear_ready(),
                Ok(Some(events)) => {
                    // Our own routes' notifications change nothing in the main loop; a full
                    // table would queue 100,000 of them (11 MB).
                    for e in events
                        .into_iter()
                        .filter(|e| daemon::resync::asks_reread(e, kernel_fib::RTPROT_BABEL))
                    {
                        if tx.send(e).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("kernel notifications: {e}");
                    ready.clear_ready();
                    if tx.send(NetEvent::Overrun).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The main loop hands at most `PARTS_AHEAD` parts to a route thread that has not applied
    /// them; the next one waits until the route thread applied one, and order is kept.
    #[tokio::test]
    async fn at_most_parts_ahead_wait_for_the_route_thread() {
        let (tx, rx) = std_mpsc::channel();
        let thread = RouteThread {
            tx,
            parts: Arc::new(Semaphore::new(PARTS_AHEAD)),
        };
        let part = |n: usize| {
            let c = RouteChange {
                op: RouteOp::Add,
                prefix: "2001:db8::/48".parse().unwrap(),
                src_prefix: None,
                next_hop: "fe80::1".parse().unwrap(),
                ifindex: u32::try_from(n).unwrap(),
                metric: babel_wire::Metric(96),
                router_id: babel_wire::RouterId([0, 0, 0, 0, 0, 0, 0, 1]),
                via: "fe80::1".parse().unwrap(),
            };
            vec![(c, None, None)]
        };
        for n in 0..PARTS_AHEAD {
            thread.apply(part(n)).await.unwrap();
        }
        let next = thread.apply(part(PARTS_AHEAD));
        tokio::pin!(next);
        let waited = tokio::time::timeout(Duration::from_millis(50), &mut next).await;
        assert!(waited.is_err(), "a fifth part went while four waited");
        // The route thread applies the first part (and drops its permit): the fifth goes.
        let Ok(KernelCmd::Apply(first, permit)) = rx.try_recv() else {
            panic!("no part");
        };
        assert_eq!(first[0].0.ifindex, 0);
        drop(permit);
        next.await.unwrap();
        let order: Vec<u32> = rx
            .try_iter()
            .filter_map(|c| match c {
                KernelCmd::Apply(p, _) => Some(p[0].0.ifindex),
                _ => None,
            })
            .collect();
        assert_eq!(order, vec![1, 2, 3, 4]);
        // The route thread gone: its parts' permits come back and `apply` fails, never waits.
        drop(rx);
        assert!(thread.apply(part(9)).await.is_err());
    }

    /// A snapshot's routes are those of the tables asked for, in order, without ours (which
    /// redistribution leaves out anyway).
    #[test]
    fn snapshot_routes_leave_ours_out() {
        use kernel_fib::{FibChange, MemoryFib, RTPROT_BABEL};
        let mut fib = MemoryFib::new();
        let route = |dst: &str, table: u32, protocol: u8| {
            let mut r =
                KernelRoute::unicast(dst.parse().unwrap(), None, Some(2)).with_protocol(protocol);
            r.table = table;
            // As the kernel keeps it (IPv6 metric 0 is 1024).
            r.metric = 1024;
            r
        };
        let theirs = [
            route("2001:db8:1::/48", kernel_fib::TABLE_MAIN, 3),
            route("2001:db8:3::/48", kernel_fib::TABLE_MAIN, 4),
            route("2001:db8:4::/48", 100, 3),
        ];
        let ours = [
            route("2001:db8:2::/48", kernel_fib::TABLE_MAIN, RTPROT_BABEL),
            route("2001:db8:5::/48", 100, RTPROT_BABEL),
        ];
        let other_table = route("2001:db8:6::/48", 200, 3);
        let changes: Vec<FibChange> = theirs
            .iter()
            .chain(&ours)
            .chain([&other_table])
            .cloned()
            .map(FibChange::Add)
            .collect();
        assert!(fib.apply(&changes).iter().all(Result::is_ok));
        let got = dump_tables(&mut fib, &[kernel_fib::TABLE_MAIN, 100]);
        assert_eq!(got, theirs.to_vec());
        let got = dump_tables(&mut fib, &[100]);
        assert_eq!(got, theirs[2..].to_vec());
    }
}
