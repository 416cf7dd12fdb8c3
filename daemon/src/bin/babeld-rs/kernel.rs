//! The kernel side: our routes on a dedicated thread (netlink calls block), and notifications
//! from a watcher thread, both talking to the main loop over channels.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::Duration;

use babel_core::{RouteChange, RouteOp};
use kernel_fib::{
    Fib, FibChange, KernelRoute, NetEvent, NetlinkFib, RouteFilter, RouteKey, Watcher,
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
            match c.op {
                RouteOp::Add | RouteOp::Replace => {
                    self.ours.insert(r.key(), r.clone());
                    batch.push(FibChange::Replace(r));
                }
                RouteOp::Delete => {
                    if self.ours.remove(&r.key()).is_some() {
                        batch.push(FibChange::Delete(r));
                    }
                }
            }
        }
        self.run(&batch);
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
        let missing: Vec<FibChange> = self
            .ours
            .values()
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
    };
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
