//! `paychan`: one end of a payment channel over real UDP, with its ledger in a `redb` file.
//!
//! The crash test (`tests/crash.rs`) runs a payer and a payee as two processes and kills them
//! with SIGKILL at random instants; the same loop (a `PaymentPeer`, a `RedbStore`, a socket) is what the
//! daemon drives per neighbour.
//!
//! ```text
//! paychan payer --db FILE --me SEED --peer SEED --listen ADDR --to ADDR --total WEI --rate WEI_PER_MS
//! paychan payee --db FILE --me SEED --peer SEED --listen ADDR --to ADDR
//! paychan bench-commit --db FILE --count N
//! ```
//! SEED is one byte: the ed25519 key is 32 copies of it (test keys only).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use payments::{
    Amount, ChannelId, ChannelUpdate, FixedDeposits, PaymentPeer, PaymentPeerConfig, Record,
    RedbStore, Store, Thresholds,
};

type Error = Box<dyn std::error::Error>;

fn args() -> Result<(String, HashMap<String, String>), Error> {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().ok_or("missing command")?;
    let mut map = HashMap::new();
    while let Some(k) = it.next() {
        let k = k
            .strip_prefix("--")
            .ok_or("options start with --")?
            .to_string();
        map.insert(k, it.next().ok_or("option without value")?);
    }
    Ok((cmd, map))
}

fn get<T: std::str::FromStr>(m: &HashMap<String, String>, k: &str) -> Result<T, Error> {
    m.get(k)
        .ok_or(format!("missing --{k}"))?
        .parse()
        .map_err(|_| format!("bad --{k}").into())
}

fn main() -> Result<(), Error> {
    let (cmd, opts) = args()?;
    if cmd == "bench-commit" {
        return bench_commit(&get::<PathBuf>(&opts, "db")?, get(&opts, "count")?);
    }
    let me = SigningKey::from_bytes(&[get::<u8>(&opts, "me")?; 32]);
    let them = SigningKey::from_bytes(&[get::<u8>(&opts, "peer")?; 32])
        .verifying_key()
        .to_bytes();
    let mine = me.verifying_key().to_bytes();
    let mut store = RedbStore::open(&get::<PathBuf>(&opts, "db")?)?;
    let cfg = PaymentPeerConfig {
        thresholds: Thresholds {
            pay: Amount(0),
            close: Amount(u128::MAX),
            drift_ppm: 0,
        },
        retry: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
    };
    let out_channel = ChannelId::offchain(&mine, &them);
    let in_channel = ChannelId::offchain(&them, &mine);
    let mut peer = PaymentPeer::restore(me, them, out_channel, in_channel, cfg, &store)?;
    let mut deposits = FixedDeposits::default();
    deposits.set(in_channel, Amount(u128::MAX));
    let sock = UdpSocket::bind(get::<SocketAddr>(&opts, "listen")?)?;
    sock.set_read_timeout(Some(Duration::from_millis(1)))?;
    let to: SocketAddr = get(&opts, "to")?;
    let payer = cmd == "payer";
    let total = if payer {
        Amount(get(&opts, "total")?)
    } else {
        Amount(0)
    };
    let rate: u128 = if payer { get(&opts, "rate")? } else { 0 };
    let mut last = clock::now();
    let mut buf = [0u8; 1500];
    loop {
        let now = clock::now();
        if payer {
            // Service received at `rate` wei per millisecond until `total`.
            let ms = now.saturating_since(last).as_millis();
            if ms > 0 {
                last = now;
                let left = total.checked_sub(peer.metered_out()).unwrap_or_default();
                peer.meter(Amount(0), Amount(left.0.min(ms * rate)));
            }
            if peer.payer().paid() == total && !peer.payer().in_flight() {
                println!("done nonce {} paid {}", peer.payer().nonce(), total);
                return Ok(());
            }
        }
        for m in peer.poll(now, &mut store)?.send {
            sock.send_to(&m, to)?;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if from == to => {
                let out = peer.handle(
                    clock::now(),
                    buf.get(..n).unwrap_or_default(),
                    &mut deposits,
                    &mut store,
                )?;
                for m in out.send {
                    sock.send_to(&m, to)?;
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Commits `count` payments (one signed update each, as the payer does) and prints the latency
/// of each durable commit: min, median, p99, max and the mean.
fn bench_commit(db: &std::path::Path, count: u32) -> Result<(), Error> {
    let mut store = RedbStore::open(db)?;
    let key = SigningKey::from_bytes(&[1; 32]);
    let payer = key.verifying_key().to_bytes();
    let payee = [2; 32];
    let mut times = Vec::new();
    for n in 1..=u64::from(count) {
        let u = ChannelUpdate {
            channel: ChannelId::offchain(&payer, &payee),
            payer,
            payee,
            nonce: n,
            cumulative: Amount(u128::from(n) * 1000),
        }
        .sign(&key);
        let r = Record {
            metered_out: Amount(u128::from(n) * 1000),
            out: Some(u),
            ..Record::default()
        };
        let t = std::time::Instant::now();
        store.commit(&payee, &r)?;
        times.push(t.elapsed());
    }
    times.sort();
    let at = |q: usize| times.get((times.len() * q / 100).min(times.len().saturating_sub(1)));
    let mean = times.iter().sum::<Duration>() / count.max(1);
    println!(
        "commits {count}: min {:?} p50 {:?} p99 {:?} max {:?} mean {mean:?}",
        times.first(),
        at(50),
        at(99),
        times.last()
    );
    Ok(())
}
