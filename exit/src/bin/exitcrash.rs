//! `exitcrash`: an exit with its store in a `redb` file, registering and billing a fixed set of
//! test users as fast as it can, and printing every answer and bill the moment it exists (as
//! the daemon would send it). The crash test (`tests/crash.rs`) kills it with SIGKILL at random
//! instants and checks, after each kill, that everything printed is durable.
//!
//! ```text
//! exitcrash DB
//! ```
//! Output lines: `G USER SLOT IPV4` (a Registered answer), `B USER SEQ UP DOWN AMOUNT` (a
//! bill). USER is the seed byte of the user's test key (32 copies of it).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::SystemTime;

use ed25519_dalek::SigningKey;
use exit::{
    Bill, Decision, ExitConfig, ExitMessage, ExitRedbStore, ExitServer, Ipv4Pool, Registrar,
};

type Error = Box<dyn std::error::Error>;

/// Users are seeds 1..=USERS; the exit is seed 200.
const USERS: u64 = 40;

fn main() -> Result<(), Error> {
    let db = PathBuf::from(std::env::args().nth(1).ok_or("missing DB")?);
    let exit_key = SigningKey::from_bytes(&[200; 32]);
    let cfg = ExitConfig::new(
        Ipv4Pool {
            network: Ipv4Addr::new(172, 16, 0, 0),
            prefix_len: 24,
        },
        [0xee; 32],
        59999,
        10,
    );
    let mut server = ExitServer::open(
        cfg,
        exit_key.clone(),
        ExitRedbStore::open(&db)?,
        SystemTime::now(),
    )?;
    let exit_pk = exit_key.verifying_key().to_bytes();
    let mut registrars: Vec<Registrar> = (0..USERS).map(|_| Registrar::new()).collect();
    let pid = u128::from(std::process::id());
    // A walk over users and operations starting where the process id says, so runs cover
    // different users; a user registers first, then is mostly metered and billed.
    for i in u64::from(std::process::id()).. {
        let u = 1 + u8::try_from(i.wrapping_mul(7) % USERS)?;
        let user = SigningKey::from_bytes(&[u; 32]);
        let mesh = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(u));
        let leased = server.user(&user.verifying_key().to_bytes()).is_some();
        if !leased || i % 5 == 0 {
            let reg = registrars.get_mut(usize::from(u - 1)).ok_or("registrar")?;
            let nonce = ((pid << 64) | u128::from(i)).to_be_bytes();
            let (req, _) = reg.request(&user, exit_pk, [u; 32], mesh, SystemTime::now(), nonce);
            match server.register(SystemTime::now(), mesh, &req) {
                Ok(a) => {
                    if let Decision::Registered(r) = a.decision {
                        let pk = user.verifying_key().to_bytes();
                        let slot = server.user(&pk).map(|v| v.lease.slot).ok_or("no lease")?;
                        println!("G {u} {slot} {}", r.ipv4);
                    }
                }
                // Timestamped at or before this process's start (the replay floor): next time.
                Err(exit::RegisterError::Replay) => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            let pk = user.verifying_key().to_bytes();
            let (up, down) = (
                i.wrapping_mul(7919) % 100_000,
                i.wrapping_mul(104_729) % 1_000_000,
            );
            if server.meter(&pk, up, down, 7).is_some() {
                if let Some(bytes) = server.bill(SystemTime::now(), &pk)? {
                    if let Ok(ExitMessage::Bill(Bill { totals: b, .. })) =
                        ExitMessage::decode(&bytes)
                    {
                        let amount = b.amount().0;
                        println!(
                            "B {u} {} {} {} {amount}",
                            b.seq, b.upload_bytes, b.download_bytes
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
