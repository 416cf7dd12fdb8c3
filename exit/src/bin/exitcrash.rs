//! `exitcrash`: an exit with its store in a `redb` file, registering and billing a fixed set of
//! test users as fast as it can, and printing every answer and bill the moment it exists (as
//! the daemon would send it). The crash test (`tests/crash.rs`) kills it with SIGKILL at random
//! instants and checks, after each kill, that everything printed is durable.
//!
//! ```text
//! exitcrash DB SEED
//! ```
//! Output lines: `G USER IPV4` (a Registered answer), `B USER SEQ UP DOWN AMOUNT` (a bill).
//! USER is the seed byte of the user's test key (32 copies of it).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::SystemTime;

use ed25519_dalek::SigningKey;
use exit::{Decision, ExitConfig, ExitServer, Ipv4Pool, Message, RedbStore, Registrar};

type Error = Box<dyn std::error::Error>;

/// Users are seeds 1..=USERS; the exit is seed 200.
pub const USERS: u8 = 40;

/// The configuration the test checks against.
fn config() -> ExitConfig {
    ExitConfig::new(
        Ipv4Pool {
            network: Ipv4Addr::new(172, 16, 0, 0),
            prefix_len: 24,
        },
        [0xee; 32],
        59999,
        10,
    )
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let db = PathBuf::from(args.next().ok_or("missing DB")?);
    let mut rng: u64 = args.next().ok_or("missing SEED")?.parse::<u64>()? | 1;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let exit_key = SigningKey::from_bytes(&[200; 32]);
    let store = RedbStore::open(&db)?;
    let mut server = ExitServer::open(config(), exit_key.clone(), store, SystemTime::now())?;
    let exit_pk = exit_key.verifying_key().to_bytes();
    let mut registrars: Vec<Registrar> = (0..USERS).map(|_| Registrar::new()).collect();
    loop {
        let u = 1 + u8::try_from(next() % u64::from(USERS))?;
        let user = SigningKey::from_bytes(&[u; 32]);
        let mesh = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(u));
        if next() % 3 == 0 {
            let reg = registrars.get_mut(usize::from(u - 1)).ok_or("registrar")?;
            let n16 = ((u128::from(next()) << 64) | u128::from(next())).to_be_bytes();
            let (req, _) = reg.request(&user, exit_pk, [u; 32], mesh, SystemTime::now(), n16);
            match server.register(SystemTime::now(), mesh, &req) {
                Ok(a) => {
                    if let Decision::Registered(r) = a.decision {
                        println!("G {u} {}", r.ipv4);
                    }
                }
                // A request timestamped before this process started (the floor): retried later.
                Err(exit::RegisterError::Replay) => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            let pk = user.verifying_key().to_bytes();
            if server
                .meter(&pk, next() % 100_000, next() % 1_000_000, 7)
                .is_some()
            {
                if let Some(bytes) = server.bill(SystemTime::now(), &pk)? {
                    if let Ok(Message::Bill(b)) = Message::decode(&bytes) {
                        println!(
                            "B {u} {} {} {} {}",
                            b.seq,
                            b.upload_bytes,
                            b.download_bytes,
                            b.amount().0
                        );
                    }
                }
            }
        }
    }
}
