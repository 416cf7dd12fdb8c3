//! `babelctl settlement`: a running daemon's channels on the chain next to its ledger, and the
//! operator's requests (open, top up, close, finalize), over the control socket. Requests need
//! a read-write socket (`-G`); the daemon carries them out on its settlement worker, so that a
//! slow or unreachable chain never holds the socket (spec/settlement.md, "In the daemon").

use std::io::Write;

use anyhow::bail;

use daemon::ctl::show::Conversation;

/// Arguments of `babelctl settlement`.
#[derive(clap::Args, Debug, Clone)]
pub struct SettleArgs {
    /// The daemon's control socket: a TCP port on ::1, or a Unix socket path.
    #[arg(short = 's', long, default_value = "33123")]
    pub socket: String,
    /// `show`; `open NEIGHBOUR`; `top-up NEIGHBOUR WEI`; `close NEIGHBOUR` (cooperative);
    /// `close NEIGHBOUR unilateral [UPDATE-HEX]`; `finalize NEIGHBOUR`. NEIGHBOUR is its
    /// payment key (hex, as `babelctl show payments` prints it).
    #[arg(num_args = 1.., default_value = "show")]
    pub words: Vec<String>,
}

/// Runs the command.
pub fn run(args: &SettleArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut c = Conversation::connect(&args.socket)?;
    if args.words.first().map(String::as_str) == Some("show") {
        let (text, end) = c.command("dump")?;
        if end != "ok" {
            bail!("dump: {end}");
        }
        let mut any = false;
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("add settlement") {
                writeln!(out, "settlement{rest}")?;
                any = true;
            }
        }
        if !any {
            writeln!(out, "no settlement (not configured, or not built in)")?;
        }
        return Ok(());
    }
    let line = format!("settlement {}", args.words.join(" "));
    let (text, end) = c.command(&line)?;
    write!(out, "{text}")?;
    if end != "ok" {
        bail!("{line}: {end}");
    }
    writeln!(out, "queued: {line}")?;
    Ok(())
}
