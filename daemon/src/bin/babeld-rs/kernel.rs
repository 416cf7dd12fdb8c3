//! The kernel side: our routes on a dedicated thread (netlink calls block), and notifications
//! from a watcher thread, both talking to the main loop over channels.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::Duration;

use babel_core::{RouteChange, RouteOp};
use babel_wire::Prefix;
use kernel_fib::{
    Fib, FibChange, KernelRoute, KernelRule, NetEvent, NetlinkFib, RouteFilter, RouteKey,
    SourceTables, Watcher,
};
use tokio::sync::mpsc;

/// babeld's default `kernel-check-interval`.
const DEFAULT_CHECK: Duration = Duration::from_secs(300);

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
    projected: HashMap<RouteKey, KernelRoute>,
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
}

/// The kernel route thread's state.
struct Routes {
    fib: NetlinkFib,
    policy: InstallPolicy,
    /// What we installed: a delete is only ever sent for these, so that an IPv4 metric-0
    /// delete of a vanished route cannot take another route with it (kernel-fib's note); and
    /// what the periodic check puts back when something removed it.
    ours: HashMap<RouteKey, KernelRoute>,
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
                self.ours.insert(new.key(), new.clone());
                batch.push(FibChange::Replace(new));
            }
            for k in remove {
                if let Some(old) = self.ours.remove(&k) {
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
        let want: HashMap<RouteKey, KernelRoute> =
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

    /// babeld's kernel check: puts back any of our routes the kernel no longer has (someone ran
    /// `ip route flush`, an interface flapped).
    fn check(&mut self) {
        let present = match self.fib.dump(&RouteFilter::protocol(self.policy.protocol)) {
            Ok(rs) => rs,
            Err(e) => {
                tracing::warn!("kernel check: {e}");
                return;
            }
        };
        let projected = self.rule_mode.iter().flat_map(|m| m.projected.values());
        let missing: Vec<FibChange> = self
            .ours
            .values()
            .chain(projected)
            .filter(|r| !present.iter().any(|k| r.same_as_installed(k)))
            .map(|r| FibChange::Replace(r.clone()))
            .collect();
        if !missing.is_empty() {
            tracing::info!("kernel check: reinstalling {} routes", missing.len());
            self.run(&missing);
        }
    }
}

/// Starts the kernel thread; stale routes of our protocol are removed first.
pub fn spawn_fib(policy: InstallPolicy) -> anyhow::Result<std_mpsc::Sender<KernelCmd>> {
    let mut fib = NetlinkFib::new()?;
    match fib.purge(policy.protocol) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            "removed {n} stale kernel routes of protocol {}",
            policy.protocol
        ),
        Err(e) => tracing::warn!("could not remove stale kernel routes: {e}"),
    }
    let (tx, rx) = std_mpsc::channel::<KernelCmd>();
    let mut routes = Routes {
        fib,
        policy,
        ours: HashMap::new(),
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
    thread::Builder::new()
        .name("kernel-routes".into())
        .spawn(move || {
            let mut interval = DEFAULT_CHECK;
            loop {
                let cmd = if interval.is_zero() {
                    match rx.recv() {
                        Ok(c) => c,
                        Err(_) => return,
                    }
                } else {
                    match rx.recv_timeout(interval) {
                        Ok(c) => c,
                        Err(std_mpsc::RecvTimeoutError::Timeout) => {
                            routes.check();
                            continue;
                        }
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                };
                match cmd {
                    KernelCmd::Apply(changes) => routes.apply(&changes),
                    KernelCmd::CheckInterval(d) => interval = d,
                    KernelCmd::Flush(reply) => {
                        let rules = routes.remove_rules();
                        if rules > 0 {
                            tracing::info!("removed {rules} source-specific rules");
                        }
                        let n = routes.fib.purge(policy.protocol).unwrap_or(0);
                        routes.ours.clear();
                        let _ = reply.send(n);
                    }
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
