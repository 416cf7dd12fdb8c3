//! The kernel side: our routes on a dedicated thread (netlink calls block), and notifications
//! from a watcher thread, both talking to the main loop over channels.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::{Duration, Instant};

use babel_core::{RouteChange, RouteOp};
use babel_wire::Prefix;
use daemon::kernel_check::{CHECK_STEP, CheckRun, Stale};
use kernel_fib::{
    DumpFilter, Fib, FibChange, KernelRoute, KernelRouteKey, KernelRule, NetEvent, NetlinkFib,
    SourceTables, Watcher,
};
use tokio::sync::mpsc;

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

/// The rule projection's state (`ipv6-subtrees false`).
struct RuleMode {
    tables: SourceTables,
    /// Every route we would install natively, by (destination, source): the projection is
    /// recomputed from these.
    logical: BTreeMap<(Prefix, Option<Prefix>), KernelRoute>,
    /// Routes of the source tables now in the kernel.
    projected: HashMap<KernelRouteKey, KernelRoute>,
    /// Our rules now in the kernel.
    rules: Vec<KernelRule>,
}

/// A request to the kernel thread.
pub enum KernelCmd {
    /// Apply these routes (already filtered by `install` filters).
    Apply(Vec<(RouteChange, Option<u32>, Option<std::net::IpAddr>)>),
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
    /// What we installed: a delete is only ever sent for these, so that an IPv4 metric-0
    /// delete of a vanished route cannot take another route with it (kernel-fib's note); and
    /// what the periodic check puts back when something removed it. Ordered, so that a
    /// check can resume where it stopped.
    ours: BTreeMap<KernelRouteKey, KernelRoute>,
    /// Routes a previous run left (graceful restart).
    stale: Stale,
    /// A kernel check in progress.
    check: Option<CheckRun>,
    /// `Some` when source-specific routes are projected on rules.
    rule_mode: Option<RuleMode>,
}

impl Routes {
    fn apply(&mut self, changes: &[(RouteChange, Option<u32>, Option<std::net::IpAddr>)]) {
        let mut batch = Vec::with_capacity(changes.len());
        for (c, table, pref_src) in changes {
            let mut r = KernelRoute::unicast(c.prefix, Some(c.next_hop), Some(c.ifindex))
                .with_metric(self.policy.metric)
                .with_table(table.unwrap_or(self.policy.table))
                .with_protocol(self.policy.protocol);
            if let Some(s) = c.src_prefix {
                r = r.with_src(s);
            }
            if let Some(p) = pref_src {
                r = r.with_pref_src(*p);
            }
            // RFC 9079 for IPv6 only: babeld ≥ 1.10 installs no IPv4 source-specific route
            // (ENOSYS), and neither do we.
            if r.src.is_some() && r.is_ipv4() {
                tracing::warn!(
                    "not installing {} from {:?}: source-specific routing is IPv6 only",
                    r.dst,
                    r.src
                );
                continue;
            }
            if let Some(m) = &mut self.rule_mode {
                let k = (r.dst, r.src);
                match c.op {
                    RouteOp::Add | RouteOp::Replace => {
                        m.logical.insert(k, r.clone());
                    }
                    // Held source-specific destinations are not projected on rules.
                    RouteOp::Delete | RouteOp::Unreachable => {
                        m.logical.remove(&k);
                    }
                }
                if r.src.is_some() {
                    continue;
                }
            }
            // A held destination (babeld): an `unreachable` route of metric 4294967295 in the
            // same table, beside which the unicast route is never kept. New routes go in before
            // old ones go out, so traffic never falls to a less specific route in between.
            let mut held = KernelRoute::unreachable(r.dst)
                .with_table(r.table)
                .with_protocol(r.protocol);
            if let Some(s) = r.src {
                held = held.with_src(s);
            }
            let (install, remove) = match c.op {
                RouteOp::Add | RouteOp::Replace => (Some(r.clone()), vec![held.key()]),
                RouteOp::Unreachable => (Some(held), vec![r.key()]),
                RouteOp::Delete => (None, vec![r.key(), held.key()]),
            };
            if let Some(new) = install {
                // A route a previous run left is replaced in place: no gap.
                self.stale.relearned(&new.key());
                self.ours.insert(new.key(), new.clone());
                batch.push(FibChange::Replace(new));
            }
            for k in remove {
                if let Some(old) = self.ours.remove(&k) {
                    batch.push(FibChange::Delete(old));
                } else if let Some(old) = self.stale.take(&k) {
                    batch.push(FibChange::Delete(old));
                }
            }
        }
        self.run(&batch);
        self.reproject();
    }

    /// `ipv6-subtrees false`: brings the source tables and rules in line with the routes
    /// (kernel-fib's [`SourceTables`]). New routes and rules go in before old ones go out.
    fn reproject(&mut self) {
        let Some(m) = &mut self.rule_mode else {
            return;
        };
        if m.projected.is_empty()
            && m.rules.is_empty()
            && !m.logical.keys().any(|(_, s)| s.is_some())
        {
            return;
        }
        let p = m.tables.project(m.logical.values());
        if p.dropped > 0 {
            tracing::warn!(
                "{} source-specific routes not installed (too many source prefixes)",
                p.dropped
            );
        }
        let want: HashMap<KernelRouteKey, KernelRoute> =
            p.routes.into_iter().map(|r| (r.key(), r)).collect();
        let adds: Vec<FibChange> = want
            .iter()
            .filter(|(k, r)| m.projected.get(k) != Some(r))
            .map(|(_, r)| FibChange::Replace(r.clone()))
            .collect();
        let dels: Vec<FibChange> = m
            .projected
            .iter()
            .filter(|(k, _)| !want.contains_key(k))
            .map(|(_, r)| FibChange::Delete(r.clone()))
            .collect();
        let new_rules: Vec<KernelRule> = p
            .rules
            .iter()
            .filter(|r| !m.rules.contains(r))
            .copied()
            .collect();
        let old_rules: Vec<KernelRule> = m
            .rules
            .iter()
            .filter(|r| !p.rules.contains(r))
            .copied()
            .collect();
        for change in &adds {
            if let FibChange::Replace(r) = change {
                self.stale.relearned(&r.key());
            }
        }
        m.projected = want;
        m.rules = p.rules;
        for (change, result) in adds.iter().zip(self.fib.apply(&adds)) {
            if let Err(e) = result {
                tracing::warn!("source table route {change:?}: {e}");
            }
        }
        for rule in &new_rules {
            match self.fib.add_rule(rule) {
                Ok(()) | Err(kernel_fib::FibError::Exists) => {}
                Err(e) => tracing::warn!("rule {rule}: {e}"),
            }
        }
        for rule in &old_rules {
            if let Err(e) = self.fib.delete_rule(rule) {
                tracing::warn!("deleting rule {rule}: {e}");
            }
        }
        for (change, result) in dels.iter().zip(self.fib.apply(&dels)) {
            if let Err(e) = result {
                tracing::warn!("source table route {change:?}: {e}");
            }
        }
    }

    /// Removes our rules (at exit), and rules of our protocol in our priority range left by an
    /// earlier run.
    fn remove_rules(&mut self) -> usize {
        let Some(m) = &mut self.rule_mode else {
            return 0;
        };
        let range = m.tables.priorities();
        let protocol = self.policy.protocol;
        let mut stale: Vec<KernelRule> = match self.fib.rules() {
            Ok(rs) => rs
                .into_iter()
                .filter(|r| r.protocol == protocol && range.contains(&r.priority))
                .collect(),
            Err(e) => {
                tracing::warn!("reading rules: {e}");
                Vec::new()
            }
        };
        stale.append(&mut m.rules);
        stale.sort();
        stale.dedup();
        let mut n = 0;
        for r in &stale {
            match self.fib.delete_rule(r) {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!("deleting rule {r}: {e}"),
            }
        }
        m.projected.clear();
        m.logical.clear();
        n
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
        let projected = self.rule_mode.as_ref().map(|m| &m.projected);
        let keep =
            |k: &KernelRouteKey| stale.contains(k) || projected.is_some_and(|p| p.contains_key(k));
        let (changes, done) = run.step(&self.ours, keep, CHECK_STEP);
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

/// Starts the kernel thread. Routes of our protocol a previous run left are kept for
/// [`RESTART_GRACE`] while the table is relearned (graceful restart), then removed if not
/// relearned. The periodic check's dump runs on a thread of its own, so that a large table
/// never holds up route changes.
pub fn spawn_fib(policy: InstallPolicy) -> anyhow::Result<std_mpsc::Sender<KernelCmd>> {
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
    let (tx, rx) = std_mpsc::channel::<KernelCmd>();
    let mut routes = Routes {
        fib,
        policy,
        ours: BTreeMap::new(),
        stale: Stale::new(left, Instant::now(), RESTART_GRACE),
        check: None,
        rule_mode: policy.rule_priority.map(|first| RuleMode {
            tables: SourceTables::new(
                first,
                kernel_fib::DEFAULT_FIRST_SOURCE_TABLE,
                kernel_fib::DEFAULT_MAX_SOURCE_TABLES,
                policy.protocol,
            ),
            logical: BTreeMap::new(),
            projected: HashMap::new(),
            rules: Vec::new(),
        }),
    };
    match routes.remove_rules() {
        0 => {}
        n => tracing::info!("removed {n} stale source-specific rules"),
    }
    let dump = spawn_dumper(policy.protocol, tx.clone())?;
    thread::Builder::new()
        .name("kernel-routes".into())
        .spawn(move || {
            let mut interval = DEFAULT_CHECK;
            let mut next_check = Instant::now() + interval;
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
                            .recv_timeout(w.saturating_duration_since(Instant::now()))
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
                    let now = Instant::now();
                    routes.expire_stale(now);
                    if routes.check.is_some() {
                        routes.check_step();
                    } else if !interval.is_zero() && now >= next_check {
                        next_check = now + interval;
                        let _ = dump.send(());
                    }
                    continue;
                };
                match cmd {
                    KernelCmd::Apply(changes) => routes.apply(&changes),
                    KernelCmd::CheckInterval(d) => {
                        interval = d;
                        next_check = Instant::now() + d;
                    }
                    KernelCmd::Present(run) => routes.check = Some(run),
                    KernelCmd::Flush(reply) => {
                        let rules = routes.remove_rules();
                        if rules > 0 {
                            tracing::info!("removed {rules} source-specific rules");
                        }
                        let n = routes.fib.purge(policy.protocol).unwrap_or(0);
                        routes.ours.clear();
                        routes.check = None;
                        let _ = reply.send(n);
                    }
                }
            }
        })?;
    Ok(tx)
}

/// The kernel check's dump, on its own thread and netlink socket: each request dumps the
/// routes of `protocol`, indexes them, and hands them to the route thread as
/// [`KernelCmd::Present`].
fn spawn_dumper(
    protocol: u8,
    to_routes: std_mpsc::Sender<KernelCmd>,
) -> anyhow::Result<std_mpsc::Sender<()>> {
    let mut fib = NetlinkFib::new()?;
    let (tx, rx) = std_mpsc::channel::<()>();
    thread::Builder::new()
        .name("kernel-check".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                match fib.dump(&DumpFilter::protocol(protocol)) {
                    Ok(rs) => {
                        if to_routes
                            .send(KernelCmd::Present(CheckRun::new(rs)))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!("kernel check: {e}"),
                }
            }
        })?;
    Ok(tx)
}

/// Starts the watcher thread; events arrive on the returned channel.
pub fn spawn_watcher() -> anyhow::Result<mpsc::UnboundedReceiver<NetEvent>> {
    let mut w = Watcher::new(kernel_fib::Groups::all())?;
    let (tx, rx) = mpsc::unbounded_channel();
    thread::Builder::new()
        .name("kernel-events".into())
        .spawn(move || {
            loop {
                match w.recv() {
                    Ok(events) => {
                        for e in events {
                            if tx.send(e).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!("kernel notifications: {e}");
                        if tx.send(NetEvent::Overrun).is_err() {
                            return;
                        }
                    }
                }
            }
        })?;
    Ok(rx)
}
