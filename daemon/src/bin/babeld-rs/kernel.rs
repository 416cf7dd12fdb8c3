//! The kernel side: our routes on a dedicated thread (netlink calls block), and notifications
//! from a watcher thread, both talking to the main loop over channels.

use std::collections::HashSet;
use std::sync::mpsc as std_mpsc;
use std::thread;

use babel_core::{RouteChange, RouteOp};
use kernel_fib::{Fib, FibChange, KernelRoute, NetEvent, NetlinkFib, RouteKey, Watcher};
use tokio::sync::mpsc;

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
    thread::Builder::new()
        .name("kernel-routes".into())
        .spawn(move || {
            // What we installed: a delete is only ever sent for these, so that an IPv4 metric-0
            // delete of a vanished route cannot take another route with it (kernel-fib's note).
            let mut ours: HashSet<RouteKey> = HashSet::new();
            for cmd in rx {
                match cmd {
                    KernelCmd::Apply(changes) => {
                        let mut batch = Vec::with_capacity(changes.len());
                        for (c, table, pref_src) in &changes {
                            let mut r =
                                KernelRoute::unicast(c.prefix, Some(c.next_hop), Some(c.ifindex))
                                    .with_metric(policy.metric)
                                    .with_table(table.unwrap_or(policy.table))
                                    .with_protocol(policy.protocol);
                            if let Some(s) = c.src_prefix {
                                r = r.with_src(s);
                            }
                            if let Some(p) = pref_src {
                                r = r.with_pref_src(*p);
                            }
                            match c.op {
                                RouteOp::Add | RouteOp::Replace => {
                                    ours.insert(r.key());
                                    batch.push(FibChange::Replace(r));
                                }
                                RouteOp::Delete => {
                                    if ours.remove(&r.key()) {
                                        batch.push(FibChange::Delete(r));
                                    }
                                }
                            }
                        }
                        for (change, result) in batch.iter().zip(fib.apply(&batch)) {
                            if let Err(e) = result {
                                tracing::warn!("kernel route {change:?}: {e}");
                            }
                        }
                    }
                    KernelCmd::Flush(reply) => {
                        let n = fib.purge(policy.protocol).unwrap_or(0);
                        ours.clear();
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
