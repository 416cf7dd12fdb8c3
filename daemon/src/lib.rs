//! babeld-rs: the router daemon.
//!
//! The protocol logic lives in the sans-IO crates (`babel-wire`, `babel-core`); this crate holds
//! the I/O and the daemon's command line. The operator tool `babelctl` is its own crate and uses
//! this library's control client and `show` formatting ([`ctl::show`]).

pub mod actions;
pub mod allocator;
pub mod cli;
pub mod clients;
pub mod config;
pub mod control;
pub mod ctl;
pub mod discovery;
pub mod exit;
pub mod fuzzing;
pub mod iface_sync;
pub mod kernel_check;
pub mod memcaps;
pub mod metrics;
pub mod monitor;
pub mod netio;
pub mod netlink_ops;
pub mod pacing;
pub mod payments;
pub mod pidfile;
pub mod record;
pub mod redistribute;
pub mod resync;
pub mod settle;
pub mod state;
pub mod statefile;
pub mod verification;
