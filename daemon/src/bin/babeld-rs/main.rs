//! `babeld-rs`: a Babel routing daemon with babeld's command line, configuration and control
//! protocol. The protocol logic is `babel-core`'s sans-IO engine and the daemon's decisions are
//! sans-IO functions of the `daemon` library; this binary owns the I/O: the UDP socket, the
//! kernel (on threads of their own), control clients, signals and files.
//!
//! Tasks and threads, and what flows between them:
//!
//! ```text
//!                   control clients                  metrics scrapes
//!              (a tokio task per client)         (a tokio task per scrape)
//!         lines, statements |  ^ replies,                |  ^ one rendering
//!                           v  | monitor lines           v  |
//!                    +------------------------------------------------+
//!    Babel socket    |        main loop (run.rs, current thread)      |
//!    packets ------> |  engine (babel-core, sans-IO)                   |
//!    <------ packets |  decisions (daemon::iface_sync, redistribution,|
//!                    |  Placements) -> daemon::actions::Action queue  |
//!                    +------------------------------------------------+
//!         Apply, Flush, |        | DumpRequest   ^ Snapshot  ^ NetEvent  ^ MeshEvent  ^ payment
//!         CheckInterval v        v               |           |           |            | lines
//!           +---------------+  +--------------+  |    +----------------+ +---------+ +----------+
//!           | kernel-routes |  | kernel-dumps |--+    | kernel-events  | | mesh-*  | | payments |
//!           | writes routes |<-| check dumps, |       | notifications  | | threads | | thread   |
//!           | and rules     |  | snapshots    |       | (Watcher)      | +---------+ +----------+
//!           +---------------+  +--------------+       +----------------+   tunnel-* threads share
//!              Present (a kernel check's dump)                               state with the loop
//! ```
//!
//! * The main loop ([`run::main_loop`]) is the only owner of the daemon's state. It never waits
//!   for the kernel: route changes go to `kernel-routes` and re-readings of links, addresses
//!   and routes are asked of `kernel-dumps`, whose [`kernel::Snapshot`] arrives as one more
//!   input. A control client's message reads nothing from the kernel: the interfaces it names
//!   are matched against the last snapshot.
//! * Side effects of the decisions leave through one queue of [`daemon::actions::Action`]s
//!   ([`effects::execute`]); the engine's outputs through [`effects::flush_outputs`].
//! * `kernel-routes` keeps the routes we installed and only deletes those
//!   ([`kernel_fib::Installed`]); `kernel-dumps` does the periodic kernel check's dumps and the
//!   snapshots on its own netlink socket; `kernel-events` turns netlink notifications into
//!   [`kernel_fib::NetEvent`]s.
//! * `mesh-*` (one per `type mesh` interface) discover neighbours and run their tunnels;
//!   `tunnel-*` run `tunnel` statements; `payments` runs the payment loop. They share views
//!   with the loop behind mutexes and send it events and monitor lines.
//!
//! Start-up is [`startup::start`].

mod control_socket;
mod effects;
mod exit;
mod exitpay;
mod kernel;
mod mesh;
mod metrics_http;
mod pay;
mod run;
mod settle;
mod startup;
mod tunnels;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use daemon::cli::Cli;

fn main() -> ExitCode {
    daemon::allocator::tune();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if cli.version {
        println!("babeld-rs-{}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let inv = match cli.load() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("babeld-rs: {e}");
            return ExitCode::from(1);
        }
    };
    match startup::start(inv, cli.record) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("babeld-rs: {e:#}");
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}
