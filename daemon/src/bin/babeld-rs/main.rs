//! `babeld-rs`: a Babel routing daemon with babeld's command line, configuration and control
//! protocol. The protocol logic is `babel-core`'s sans-IO engine; this binary owns the I/O:
//! the UDP socket, the kernel routes (on a thread of their own), kernel notifications, control
//! clients, signals and files.

mod control_socket;
mod kernel;
mod mesh;
mod pay;
mod run;
mod settle;
mod tunnels;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use daemon::cli::Cli;

fn main() -> ExitCode {
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
    match run::start(inv, cli.record) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("babeld-rs: {e:#}");
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}
