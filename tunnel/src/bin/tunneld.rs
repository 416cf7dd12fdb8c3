//! `tunneld`: a minimal standalone tunnel daemon over the `tunnel` crate's
//! driver, used by the netns interop test and the iperf script.
//!
//! ```text
//! tunneld run --config FILE.json --iface NAME [--address CIDR]... [--mtu N] [--no-offload]
//! tunneld genkey            # prints a base64 private key
//! tunneld pubkey            # reads a private key on stdin, prints the public key
//! ```
//! The config file is a JSON [`tunnel::TunnelConfig`]. `--no-offload`
//! opens the TUN without the virtio-net header (one packet per read and
//! write), the path taken when the kernel refuses offloads.

use std::io::{self, Read, Write};
use std::process::{Command, ExitCode};

use tunnel::driver::{Driver, TunDevice, bind_udp, device_from_config};
use tunnel::{TunnelConfig, generate_keypair, keys::public_key_from_base64};

fn usage() -> ExitCode {
    eprintln!(
        "usage: tunneld run --config FILE --iface NAME [--address CIDR]... [--mtu N] [--no-offload]\n       tunneld genkey | pubkey"
    );
    ExitCode::from(2)
}

fn ip(args: &[&str]) -> io::Result<()> {
    let st = Command::new("ip").args(args).status()?;
    if st.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("ip {args:?} failed: {st}")))
    }
}

struct RunArgs {
    config: String,
    iface: String,
    addresses: Vec<String>,
    mtu: u32,
    offload: bool,
}

fn parse_run(args: &[String]) -> Option<RunArgs> {
    let mut config = None;
    let mut iface = None;
    let mut addresses = vec![];
    let mut mtu = 1420;
    let mut offload = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => config = Some(it.next()?.clone()),
            "--iface" => iface = Some(it.next()?.clone()),
            "--address" => addresses.push(it.next()?.clone()),
            "--mtu" => mtu = it.next()?.parse().ok()?,
            "--no-offload" => offload = false,
            _ => return None,
        }
    }
    Some(RunArgs {
        config: config?,
        iface: iface?,
        addresses,
        mtu,
        offload,
    })
}

async fn run(a: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(&a.config)?;
    let cfg: TunnelConfig = serde_json::from_str(&text)?;
    let mut device = device_from_config(&cfg);
    device.set_mtu(Some(a.mtu as usize));
    let tun = if a.offload {
        TunDevice::open_offload(&a.iface)?
    } else {
        TunDevice::open(&a.iface)?
    };
    let name = tun.name().to_owned();
    let tso = tun.tso();
    ip(&["link", "set", "dev", &name, "mtu", &a.mtu.to_string(), "up"])?;
    for addr in &a.addresses {
        ip(&["addr", "add", addr, "dev", &name])?;
    }
    let socket = bind_udp(cfg.listen_port.unwrap_or(0))?;
    let mut driver = Driver::new(device, tun, socket)?;
    println!(
        "ready iface={} udp={} tso={}",
        name,
        driver.local_addr()?,
        tso
    );
    io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    driver.run(shutdown).await?;
    for (id, p) in driver.device().peers() {
        eprintln!("peer {:?} {}: {:?}", id, p.public_key(), p.stats());
    }
    eprintln!("device: {:?}", driver.device().stats());
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("genkey") => {
            let (sk, _) = generate_keypair(&mut rand_core::OsRng);
            println!("{}", sk.to_base64());
            ExitCode::SUCCESS
        }
        Some("pubkey") => {
            let mut s = String::new();
            if io::stdin().read_to_string(&mut s).is_err() {
                return ExitCode::FAILURE;
            }
            match public_key_from_base64(&s) {
                Ok(p) => {
                    println!("{p}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tunneld: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("run") => {
            let Some(a) = parse_run(args.get(1..).unwrap_or(&[])) else {
                return usage();
            };
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("tunneld: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(a)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tunneld: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}
