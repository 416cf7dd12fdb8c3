//! `babelctl`, the operator tool of babeld-rs: its subcommands.
//!
//! A crate of its own so that the router (`babeld-rs`, crate `daemon`) does not link what only
//! the tool needs (the simulator, the pcap reader, the man page writer). The control protocol
//! client and the `show` formatting live in the daemon's library (`daemon::ctl::show`), which
//! both use.

pub mod capture;
pub mod decode;
pub mod keys;
pub mod replay;
pub mod settle;
pub mod simulate;
pub mod web;

pub use daemon::ctl::show;
