//! `babelctl`: tools for people who run babeld-rs.

use std::process::ExitCode;

use babelctl as ctl;
use clap::{Parser, Subcommand};

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
    /// Settlement on a chain: show channels (chain next to ledger), open, top up, close.
    Settlement(ctl::settle::SettleArgs),
    /// Print a new WireGuard-format private key (for `tunnel` and `mesh-private-key`
    /// statements); with `--ed25519`, a new signing key (for `pay-private-key` and
    /// `verify-private-key`).
    Genkey {
        /// An ed25519 seed, 64 hex digits, instead of a WireGuard key.
        #[arg(long)]
        ed25519: bool,
    },
    /// Read a private key on stdin and print its public key; with `--ed25519`, a signing key's
    /// (what `exit-server ... key`, `exit-allow` and `verify-key` take).
    Pubkey {
        /// The private key is an ed25519 seed, 64 hex digits.
        #[arg(long)]
        ed25519: bool,
    },
    /// Serve a local read-only web page about a running daemon (neighbours, routes, a graph).
    Web(ctl::web::WebArgs),
    /// Write the man pages of babeld-rs (8) and babelctl (1) into a directory.
    #[command(hide = true)]
    Man {
        /// Output directory.
        dir: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => ctl::decode::run(&args, &mut std::io::stdout().lock()),
        Command::Show(args) => ctl::show::run(&args, &mut std::io::stdout().lock()),
        Command::Simulate(args) => ctl::simulate::run(&args),
        Command::Replay(args) => ctl::replay::run(&args, &mut std::io::stdout().lock()),
        Command::Settlement(args) => ctl::settle::run(&args, &mut std::io::stdout().lock()),
        Command::Genkey { ed25519: false } => ctl::keys::genkey(&mut std::io::stdout().lock()),
        Command::Genkey { ed25519: true } => {
            ctl::keys::genkey_ed25519(&mut std::io::stdout().lock())
        }
        Command::Pubkey { ed25519: false } => {
            ctl::keys::pubkey(&mut std::io::stdin().lock(), &mut std::io::stdout().lock())
        }
        Command::Pubkey { ed25519: true } => {
            ctl::keys::pubkey_ed25519(&mut std::io::stdin().lock(), &mut std::io::stdout().lock())
        }
        Command::Web(args) => ctl::web::run(&args, &mut std::io::stdout().lock()),
        Command::Man { dir } => man_pages(&dir),
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

/// The man pages, generated from the command lines themselves (clap_mangen).
fn man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let daemon = daemon::cli::Cli::command()
        .about(
            "A Babel routing daemon (RFC 8966): babeld's command line, configuration and control \
         protocol, with Althea's dialect",
        )
        .after_long_help(format!(
            "{}\n\n{}\n\n{}",
            daemon::payments::CONFIG_HELP,
            daemon::exit::CONFIG_HELP,
            daemon::verification::CONFIG_HELP
        ));
    for (cmd, section, file) in [
        (daemon, "8", "babeld-rs.8"),
        (Cli::command(), "1", "babelctl.1"),
    ] {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .section(section)
            .render(&mut out)?;
        std::fs::write(dir.join(file), out)?;
    }
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
