//! `babelctl`: tools for people who run babeld-rs.

use clap::{Parser, Subcommand};
use daemon::ctl;

#[derive(Parser)]
#[command(name = "babelctl", version, about = "Tools for babeld-rs: decode captures, simulate meshes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Babel packets of a pcap/pcapng file (UDP 6696) or of a hex string.
    Decode(ctl::decode::DecodeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(args) => ctl::decode::run(&args, &mut std::io::stdout().lock()),
    }
}
