//! `babel-settle`: the operator's tool for the escrow — deploy it, open, top up, close, finalize
//! and show channels on chain, with the `settlement` statements of the router's configuration.
//!
//! ```text
//! babel-settle deploy --rpc-url URL --key-file FILE
//! babel-settle --config FILE open --payee ADDR --payer-key HEX --payee-key HEX [--salt HEX] [--deposit WEI]
//! babel-settle --config FILE top-up ID [--amount WEI]
//! babel-settle --config FILE close ID          # payer: start a unilateral close
//! babel-settle --config FILE finalize ID       # anyone, after the challenge period
//! babel-settle --config FILE payee-close ID    # payee: close at once
//! babel-settle --config FILE redeem HEX        # present a signed update (216 bytes, hex)
//! babel-settle --config FILE show ID...
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use payments::{Amount, ChannelId, SignedUpdate};
use settlement::{EscrowClient, SettlementConfig, read_key_file};

#[derive(Parser, Debug)]
#[command(
    name = "babel-settle",
    about = "Escrow of babeld-rs payment channels on an EVM chain"
)]
struct Cli {
    /// File with `settlement` statements (the router's configuration, or a part of it).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Deploys the escrow contract; prints its address.
    Deploy {
        #[arg(long)]
        rpc_url: String,
        #[arg(long)]
        key_file: PathBuf,
    },
    /// Opens a channel from our account (payer) with the configured or given deposit.
    Open {
        #[arg(long)]
        payee: String,
        #[arg(long)]
        payer_key: String,
        #[arg(long)]
        payee_key: String,
        #[arg(long)]
        salt: Option<String>,
        #[arg(long)]
        deposit: Option<u128>,
    },
    /// Adds to a channel's deposit (the configured top-up step unless given).
    TopUp {
        id: String,
        #[arg(long)]
        amount: Option<u128>,
    },
    /// Starts a unilateral close (payer).
    Close { id: String },
    /// Ends a unilateral close after its challenge period.
    Finalize { id: String },
    /// Closes at once (payee).
    PayeeClose { id: String },
    /// Presents a signed update (216 bytes in hex).
    Redeem { update: String },
    /// Shows channels as the chain has them.
    Show { ids: Vec<String> },
}

fn bytes32(s: &str, what: &str) -> Result<[u8; 32]> {
    let v = hex::decode(s.trim_start_matches("0x")).with_context(|| format!("{what}: not hex"))?;
    v.try_into().map_err(|_| anyhow!("{what}: not 32 bytes"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("babel-settle: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("babel-settle: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Deploy { rpc_url, key_file } = &cli.command {
        let key = read_key_file(key_file)?;
        let (client, tx) = EscrowClient::deploy(rpc_url, key).await?;
        println!("contract {} gas {}", client.address(), tx.gas_used);
        return Ok(());
    }
    let Some(path) = cli.config else {
        bail!("--config is required for this command");
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let config = SettlementConfig::parse(&text).with_context(|| format!("{}", path.display()))?;
    let key = read_key_file(&config.key_file)?;
    let client = EscrowClient::connect(&config.rpc_url, key, config.contract)?;
    let chain_id = client.chain_id().await?;
    if chain_id != config.chain_id {
        bail!(
            "the node reports chain id {chain_id}, the configuration says {}",
            config.chain_id
        );
    }
    match cli.command {
        // Handled above, before the configuration is needed.
        Command::Deploy { .. } => {}
        Command::Open {
            payee,
            payer_key,
            payee_key,
            salt,
            deposit,
        } => {
            let payee = payee.parse().context("payee: not an address")?;
            let salt = match salt {
                Some(s) => bytes32(&s, "salt")?,
                None => {
                    let mut s = [0u8; 32];
                    getrandom_salt(&mut s)?;
                    s
                }
            };
            let deposit = Amount(deposit.unwrap_or(config.deposit.0));
            let (id, tx) = client
                .open(
                    payee,
                    bytes32(&payer_key, "payer key")?,
                    bytes32(&payee_key, "payee key")?,
                    salt,
                    config.challenge_period,
                    deposit,
                )
                .await?;
            println!(
                "channel {} deposit {} gas {}",
                hex::encode(id.0),
                deposit.0,
                tx.gas_used
            );
        }
        Command::TopUp { id, amount } => {
            let amount = Amount(amount.unwrap_or(config.top_up_step.0));
            let tx = client
                .top_up(&ChannelId(bytes32(&id, "id")?), amount)
                .await?;
            println!("topped up {} gas {}", amount.0, tx.gas_used);
        }
        Command::Close { id } => {
            let tx = client
                .start_close(&ChannelId(bytes32(&id, "id")?), None)
                .await?;
            println!("closing gas {}", tx.gas_used);
        }
        Command::Finalize { id } => {
            let tx = client.finalize(&ChannelId(bytes32(&id, "id")?)).await?;
            println!("closed gas {}", tx.gas_used);
        }
        Command::PayeeClose { id } => {
            let tx = client
                .close_by_payee(&ChannelId(bytes32(&id, "id")?))
                .await?;
            println!("closed gas {}", tx.gas_used);
        }
        Command::Redeem { update } => {
            let bytes = hex::decode(update.trim()).context("update: not hex")?;
            let update = SignedUpdate::from_bytes(&bytes)?;
            let tx = client.redeem(&update).await?;
            println!(
                "redeemed nonce {} cumulative {} gas {}",
                update.update.nonce, update.update.cumulative.0, tx.gas_used
            );
        }
        Command::Show { ids } => {
            let now = client.chain_time().await?;
            for id in ids {
                let id = ChannelId(bytes32(&id, "id")?);
                match client.channel(&id).await? {
                    None => println!("channel {} unknown", hex::encode(id.0)),
                    Some(c) => {
                        let state = match (c.closed, c.closing_at) {
                            (true, _) => "closed".to_string(),
                            (false, Some(t)) if t > now => format!("closing in {}s", t - now),
                            (false, Some(_)) => "closing, challenge over".to_string(),
                            (false, None) => "open".to_string(),
                        };
                        println!(
                            "channel {} state {state} deposit {} paid {} best {} nonce {} payer {} payee {} challenge-period {}",
                            hex::encode(id.0),
                            c.deposit.0,
                            c.paid.0,
                            c.best.0,
                            c.best_nonce,
                            c.payer,
                            c.payee,
                            c.challenge_period
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// A random salt, so that a new channel between the same parties gets a new id.
fn getrandom_salt(out: &mut [u8; 32]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(out))
        .context("reading /dev/urandom")
}
