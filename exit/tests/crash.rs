//! Crash safety by killing: `exitcrash` (an exit on a real `redb` file registering and billing 40
//! users) is killed with SIGKILL at random instants and restarted. After every kill, everything
//! it ever printed (an answer or a bill, printed the moment it existed, as the daemon sends it)
//! must be durable: every user keeps the address it was ever given, every bill's totals are on
//! disk (or superseded by later ones), and no two different bills ever carry one sequence number.
//!
//! `EXITCRASH_SEED=N` replays a run; `EXITCRASH_KILLS=N` changes the number of kills.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ed25519_dalek::SigningKey;
use exit::{ExitRedbStore, ExitStore};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// `(seq, up, down, amount)` of a bill.
type BillLine = (u64, u64, u64, u128);

#[derive(Default)]
struct Seen {
    addresses: HashMap<u8, (u32, Ipv4Addr)>,
    bills: HashMap<(u8, u64), BillLine>,
    newest: HashMap<u8, BillLine>,
    grants: u64,
}

impl Seen {
    /// Takes the complete lines one run printed; checks them against each other and history.
    fn take(&mut self, out: &[u8]) {
        for line in out.split_inclusive(|&b| b == b'\n') {
            let Some(line) = line.strip_suffix(b"\n") else {
                continue; // cut by the kill: never complete, never sent
            };
            let line = String::from_utf8_lossy(line);
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["G", u, slot, ip] => {
                    let parsed = (u.parse::<u8>(), slot.parse::<u32>(), ip.parse::<Ipv4Addr>());
                    let (Ok(u), Ok(slot), Ok(ip)) = parsed else {
                        panic!("bad line {line}");
                    };
                    self.grants += 1;
                    let first = *self.addresses.entry(u).or_insert((slot, ip));
                    assert_eq!(first, (slot, ip), "user {u} got another address");
                }
                ["B", u, seq, up, down, amount] => {
                    let parsed = (
                        u.parse::<u8>(),
                        seq.parse::<u64>(),
                        up.parse::<u64>(),
                        down.parse::<u64>(),
                        amount.parse::<u128>(),
                    );
                    let (Ok(u), Ok(seq), Ok(up), Ok(down), Ok(amount)) = parsed else {
                        panic!("bad line {line}");
                    };
                    let b = (seq, up, down, amount);
                    let first = *self.bills.entry((u, seq)).or_insert(b);
                    assert_eq!(first, b, "two different bills {seq} for user {u}");
                    let newest = self.newest.entry(u).or_insert(b);
                    assert!(
                        b.0 >= newest.0 && b.1 >= newest.1 && b.2 >= newest.2 && b.3 >= newest.3,
                        "user {u}: bill {b:?} after {newest:?}"
                    );
                    *newest = b;
                }
                _ => panic!("bad line {line}"),
            }
        }
    }

    /// Everything printed is in the store.
    fn check_durable(&self, db: &std::path::Path) {
        let stored = ExitRedbStore::open(db)
            .and_then(|s| s.load())
            .unwrap_or_else(|e| panic!("reopen: {e}"));
        let pk = |u: u8| SigningKey::from_bytes(&[u; 32]).verifying_key().to_bytes();
        for (u, (slot, _)) in &self.addresses {
            let lease = stored.leases.get(&pk(*u)).map(|l| l.slot);
            assert_eq!(lease, Some(*slot), "user {u}'s lease");
        }
        for (u, b) in &self.newest {
            let t = stored
                .totals
                .get(&pk(*u))
                .unwrap_or_else(|| panic!("user {u}: printed bill {b:?} not on disk"));
            let amount = t.upload_amount.0 + t.download_amount.0;
            assert!(
                t.seq >= b.0 && t.upload_bytes >= b.1 && t.download_bytes >= b.2 && amount >= b.3,
                "user {u}: printed bill {b:?} not durable: {t:?}"
            );
            if t.seq == b.0 {
                assert_eq!((t.upload_bytes, t.download_bytes, amount), (b.1, b.2, b.3));
            }
        }
    }
}

#[test]
fn leases_and_bills_survive_sigkill_at_random_instants() {
    let seed = std::env::var("EXITCRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let kills: u32 = std::env::var("EXITCRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    println!("EXITCRASH_SEED={seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let db = std::env::temp_dir().join(format!("exitcrash-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let mut seen = Seen::default();
    let mut lines_per_run = Vec::new();
    for _ in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_exitcrash"))
            .arg(&db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn exitcrash: {e}"));
        let stdout = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(s) = stdout {
                let mut r = BufReader::new(s);
                while let Ok(n) = r.read_until(b'\n', &mut out) {
                    if n == 0 {
                        break;
                    }
                }
            }
            out
        });
        // Let it work for a random while, then SIGKILL it in the middle of whatever it does.
        let until = Instant::now() + Duration::from_millis(50 + rng.next_u64() % 550);
        while Instant::now() < until {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("exitcrash exited by itself: {status}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        let out = reader.join().unwrap_or_default();
        lines_per_run.push(out.iter().filter(|&&b| b == b'\n').count());
        seen.take(&out);
        seen.check_durable(&db);
    }
    println!(
        "{kills} kills; lines per run {lines_per_run:?}; {} grants, {} distinct bills, {} users",
        seen.grants,
        seen.bills.len(),
        seen.addresses.len()
    );
    assert!(
        seen.grants > 0 && seen.bills.len() > 10,
        "the exit did some work"
    );
    let _ = std::fs::remove_file(&db);
}
