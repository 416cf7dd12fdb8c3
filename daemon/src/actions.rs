//! The daemon's side effects, as decided by its sans-IO parts: one queue that the binary's
//! main loop drains and carries out (see `src/bin/babeld-rs/main.rs` for who does what).
//!
//! Decisions ([`crate::iface_sync`], [`crate::redistribute::redistribution`], the control
//! protocol's runtime statements) return or queue [`Action`]s; only the loop touches sockets
//! and the kernel threads.

use std::time::Duration;

use babel_core::Input;

/// One side effect to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Join the Babel multicast group on this interface, then start it in the engine with its
    /// configuration (RFC 8966 §3.2: an interface takes part once it has a link-local
    /// address). If the join fails the interface is marked not running and tried again at the
    /// next synchronisation.
    StartInterface {
        /// Kernel index.
        ifindex: u32,
    },
    /// Give a running interface its new configuration (link-local address, MTU or IPv4
    /// address changed).
    ReconfigureInterface {
        /// Kernel index.
        ifindex: u32,
    },
    /// Stop the interface in the engine, leave the multicast group and drop the packets
    /// waiting to be paced on it.
    StopInterface {
        /// Kernel index.
        ifindex: u32,
    },
    /// Leave the multicast group on an interface already stopped in the engine (a control
    /// client flushed it).
    LeaveGroup {
        /// Kernel index.
        ifindex: u32,
    },
    /// An input for the engine: a redistributed route to announce (RFC 8966 §3.7) or to
    /// withdraw.
    Engine(Input),
    /// Check the kernel's routes this often (babeld's `kernel-check-interval`; zero: never).
    KernelCheck(Duration),
    /// Bring the interfaces in line with the last known links and addresses again (the
    /// configuration named new interfaces).
    SyncInterfaces,
}
