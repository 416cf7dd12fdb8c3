//! Crash safety by killing: a payer and a payee process (`paychan`) exchange a stream of payments
//! over real UDP on loopback while one of them is killed with SIGKILL at 100 random instants and
//! restarted. At the end no payment is lost or counted twice and both ledgers agree.
//!
//! `PAYCHAN_SEED=N` replays a run; `PAYCHAN_KILLS=N` changes the number of kills.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use payments::store::Direction;
use payments::{Amount, RedbStore, Store};
use rand_core::{OsRng, RngCore};

const TOTAL: u128 = 20_000_000;
const RATE_PER_MS: u128 = 1_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

struct Node {
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) {
        self.child = Command::new(env!("CARGO_BIN_EXE_paychan"))
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .ok();
        assert!(self.child.is_some(), "spawn paychan");
    }

    /// SIGKILL and reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pk(seed: u8) -> [u8; 32] {
    SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_bytes()
}

#[test]
fn payments_survive_sigkill_at_random_instants() {
    let seed = std::env::var("PAYCHAN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| OsRng.next_u64() | 1);
    let kills: u32 = std::env::var("PAYCHAN_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    println!("PAYCHAN_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = std::env::temp_dir().join(format!("paychan-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(std::fs::create_dir_all(&dir).is_ok());
    let (pa, pb) = (free_port(), free_port());
    let db = |n: &str| dir.join(n).display().to_string();
    let common = |role: &str, me: u8, peer: u8, listen: u16, to: u16, file: &str| {
        let mut v: Vec<String> = [
            role,
            "--db",
            &db(file),
            "--me",
            &me.to_string(),
            "--peer",
            &peer.to_string(),
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--to",
            &format!("127.0.0.1:{to}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if role == "payer" {
            v.extend(
                [
                    "--total",
                    &TOTAL.to_string(),
                    "--rate",
                    &RATE_PER_MS.to_string(),
                ]
                .iter()
                .map(|s| s.to_string()),
            );
        }
        v
    };
    let mut payer = Node {
        args: common("payer", 1, 2, pa, pb, "payer.redb"),
        child: None,
    };
    let mut payee = Node {
        args: common("payee", 2, 1, pb, pa, "payee.redb"),
        child: None,
    };
    payee.start();
    payer.start();
    let (mut killed_payer, mut killed_payee) = (0, 0);
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 150));
        if rng.next() % 2 == 0 {
            payer.kill();
            killed_payer += 1;
            payer.start();
        } else {
            payee.kill();
            killed_payee += 1;
            payee.start();
        }
    }
    // Let the payer finish: it exits once everything is paid and acknowledged.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(c) = payer.child.as_mut() {
            if let Ok(Some(s)) = c.try_wait() {
                break Some(s);
            }
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    payee.kill();
    assert!(
        status.is_some_and(|s| s.success()),
        "payer did not finish: {status:?}"
    );
    payer.child = None;
    println!("killed payer {killed_payer} times, payee {killed_payee} times");
    check(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

fn check(dir: &Path) {
    let open = |f: &str| -> RedbStore {
        let p: PathBuf = dir.join(f);
        match RedbStore::open(&p) {
            Ok(s) => s,
            Err(e) => panic!("open {f}: {e}"),
        }
    };
    let (a, b) = (pk(1), pk(2));
    let payer = open("payer.redb");
    let payee = open("payee.redb");
    let pr = payer.load(&b).ok().flatten().unwrap_or_default();
    let er = payee.load(&a).ok().flatten().unwrap_or_default();
    // Both ledgers agree, on the same signed update, and it is the whole amount.
    assert_eq!(pr.metered_out, Amount(TOTAL));
    assert_eq!(pr.out.map(|u| u.update.cumulative), Some(Amount(TOTAL)));
    assert_eq!(
        er.inbound, pr.out,
        "payee holds exactly the payer's newest update"
    );
    let signed = payer.journal(&b, Direction::Out).unwrap_or_default();
    let accepted = payee.journal(&a, Direction::In).unwrap_or_default();
    // The payer's nonces are 1, 2, 3... with strictly increasing cumulative amounts: no nonce
    // was ever signed twice with different amounts that both left.
    for (i, u) in signed.iter().enumerate() {
        assert_eq!(u.update.nonce, i as u64 + 1);
    }
    assert!(
        signed
            .windows(2)
            .all(|w| w.first().map(|x| x.update.cumulative) < w.get(1).map(|x| x.update.cumulative))
    );
    // Every update the payee accepted is exactly one the payer committed (none counted twice,
    // none invented), and the amounts it credited add up to the total (none lost).
    let mut credited = 0u128;
    let mut prev = 0u128;
    for u in &accepted {
        let n = usize::try_from(u.update.nonce).unwrap_or(usize::MAX);
        assert_eq!(signed.get(n.wrapping_sub(1)), Some(u), "nonce {n}");
        credited += u.update.cumulative.0 - prev;
        prev = u.update.cumulative.0;
    }
    assert_eq!(credited, TOTAL);
    println!(
        "payments signed {}, accepted {}, total {TOTAL} wei",
        signed.len(),
        accepted.len()
    );
}
