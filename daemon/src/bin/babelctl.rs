//! `babelctl`: tools for people who run babeld-rs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use daemon::ctl;

#[derive(Parser)]
#[command(
    name = "babelctl",
    version,
    about = "Tools for babeld-rs: decode captures, replay recordings, simulate meshes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Babel packets of a pcap/pcapng file (UDP 6696) or of a hex string.
    Decode(ctl::decode::DecodeArgs),
    /// Show a running daemon's interfaces, neighbours and routes (tables or JSON).
    Show(ctl::show::ShowArgs),
    /// Replay a `babeld-rs --record` file on a fresh engine: print its outputs, or `--check`
    /// them against the recording.
    Replay(ctl::replay::ReplayArgs),
    /// Run a deterministic simulation of a mesh of babel-core engines.
    Simulate(Box<ctl::simulate::SimulateArgs>),
    /// Print a new WireGuard-format private key (for `tunnel` statements).
    Genkey,
    /// Read a private key on stdin and print its public key.
    Pubkey,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => ctl::decode::run(&args, &mut std::io::stdout().lock()),
        Command::Show(args) => ctl::show::run(&args, &mut std::io::stdout().lock()),
        Command::Simulate(args) => ctl::simulate::run(&args),
        Command::Replay(args) => ctl::replay::run(&args, &mut std::io::stdout().lock()),
        Command::Genkey => ctl::keys::genkey(&mut std::io::stdout().lock()),
        Command::Pubkey => {
            ctl::keys::pubkey(&mut std::io::stdin().lock(), &mut std::io::stdout().lock())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `babelctl decode big.pcap | head` is fine: the reader went away.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("babelctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
