//! `babeld-rs`: a Babel routing daemon with babeld's command line, configuration and control
//! protocol. The protocol logic is `babel-core`'s sans-IO engine and the daemon's decisions are
//! sans-IO functions of the `daemon` library; this binary owns the I/O: the UDP socket, the
//! kernel (on threads of their own, and a watcher task), control clients, signals and files.
//!
//! Tasks and threads, and what flows between them:
//!
//! ```text
//!                   control clients                  metrics scrapes
//!              (a tokio task per client)         (a tokio task per scrape)
//!         lines, statements |  ^ replies,                |  ^ one rendering
//!                           v  | monitor lines           v  |
//!                    +------------------------------------------------+  used set   +-------------+
//!    Babel socket    |  main loop (run.rs, current thread): reads the |<------------| verify-used |
//!    packets ------> |  clock once per input and passes `now` down    |------------>| runs `nft`  |
//!    <------ packets |  engine (babel-core, sans-IO)                  |  read it    +-------------+
//!    verify socket <>|  decisions (daemon::iface_sync, resync,        |
//!                    |  redistribution, Placements) -> Action queue   |
//!                    +------------------------------------------------+
//!         Apply, Flush, |        | DumpRequest,  ^ Snapshot  ^ NetEvent  ^ MeshEvent  ^ payment
//!         CheckInterval v        v probe Ops     |           |           |            | lines
//!           +---------------+  +---------------+ |    +----------------+ +---------+ +----------+
//!           | kernel-routes |  | kernel-dumps  |-+    | kernel-events  | | mesh-*, | | payments |
//!           | writes routes |<-| dumps, snap-  |      | notifications  | | tunnel-*| | thread   |
//!           | and rules     |  | shots, links, |      | (Watcher)      | | threads,| +----------+
//!           +---------------+  | addresses,    |      +----------------+ | exit    |
//!                              | rules, routes |                         +---------+
//!                              +---------------+                              |
//!              Present (a check's dump) ^  Link, LinkUp, Ops (set-up, awaited)|
//!                                       +-------------------------------------+
//! ```
//!
//! * The main loop ([`run::main_loop`]) is the only owner of the daemon's state. It never waits
//!   for the kernel: route changes go to `kernel-routes` and re-readings of links, addresses
//!   and routes are asked of `kernel-dumps` when [`daemon::resync`] says so; the
//!   [`kernel::Snapshot`] arrives as one more input. A control client's message reads nothing
//!   from the kernel: the interfaces it names are matched against the last snapshot.
//! * Time is a parameter: the loop reads the clock once per input and passes `now` down
//!   ([`daemon::state::Daemon::input`], `dump_lines`, `Daemon::at` for a control client); the
//!   daemon's state keeps no clock.
//! * Side effects of the decisions leave through one queue of [`daemon::actions::Action`]s
//!   ([`effects::execute`]); the engine's outputs through [`effects::flush_outputs`].
//! * `kernel-routes` keeps the routes we installed and only deletes those
//!   ([`kernel_fib::Installed`]); `kernel-events`, a task on the main loop's runtime (not a
//!   thread: [`kernel::spawn_watcher`]), turns netlink notifications into
//!   [`kernel_fib::NetEvent`]s. `kernel-dumps` does every other netlink request: the kernel
//!   check's dumps, the snapshots (the first one at start-up too), the link set-up of tunnels,
//!   mesh tunnels and the exit tunnel, and route verification's probe rules and tables
//!   ([`kernel::Netlink`], [`daemon::netlink_ops`]), so a large dump never holds up a route.
//! * `verify-used` runs `nft` to read the used destinations for route verification, so the
//!   loop never waits for a subprocess.
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
mod logging;
mod mesh;
mod metrics_http;
mod pay;
mod run;
mod settle;
mod startup;
mod tunnels;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use daemon::cli::{Cli, Invocation};

fn main() -> ExitCode {
    daemon::allocator::tune();
    // Before any thread starts, so that every thread inherits the mask.
    if let Err(e) = run::block_signals() {
        eprintln!("babeld-rs: blocking signals: {e}");
        return ExitCode::from(1);
    }
    // clap's parsing of the command line takes about 90 KiB of stack; start-up gives those
    // pages back to the kernel before the main loop starts (`startup::release_dead_stack`). A
    // thread of its own would do as well, but glibc keeps the top of an ended thread's stack
    // (about 16 kB resident) for the next thread.
    let (inv, record) = match parse() {
        Ok(run) => run,
        Err(code) => return code,
    };
    match startup::start(inv, record) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("babeld-rs: {e:#}");
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// The command line and the configuration files it names, or the exit code when there is
/// nothing to run (`--help`, `-V`, an error, which it printed).
fn parse() -> Result<(Invocation, Option<PathBuf>), ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Err(if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
    };
    if cli.version {
        println!("babeld-rs-{}", env!("CARGO_PKG_VERSION"));
        return Err(ExitCode::SUCCESS);
    }
    match cli.load() {
        Ok(inv) => Ok((inv, cli.record)),
        Err(e) => {
            eprintln!("babeld-rs: {e}");
            Err(ExitCode::from(1))
        }
    }
}
