//! Registration through the public API, as the daemon drives it: a user's [`Registrar`] talks to
//! an [`ExitServer`]; sticky addresses across restarts of either side (a real `redb` file
//! reopened), replays, forgeries, policy refusals, pool exhaustion and a failing store.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use exit::{
    Admission, Decision, ExitConfig, ExitMemStore, ExitRedbStore, ExitRefusal, ExitServer,
    ExitStore, ExitWireError, Ipv4Pool, Ipv6Pool, RegisterError, Registrar, RegistrationOutcome,
};

const EXIT_SEED: u8 = 200;

fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn exit_pk() -> [u8; 32] {
    key(EXIT_SEED).verifying_key().to_bytes()
}

fn mesh(seed: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(seed))
}

fn config(prefix_len: u8) -> ExitConfig {
    let mut c = ExitConfig::new(
        Ipv4Pool {
            network: Ipv4Addr::new(172, 16, 0, 0),
            prefix_len,
        },
        [0xee; 32],
        59999,
        10,
    );
    c.ipv6_pool = Some(Ipv6Pool {
        prefix: Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0),
        prefix_len: 48,
        user_prefix_len: 60,
    });
    c.tunnel.ipv6 = Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
    c
}

fn open<S: ExitStore>(cfg: ExitConfig, store: S, now: SystemTime) -> ExitServer<S> {
    match ExitServer::open(cfg, key(EXIT_SEED), store, now) {
        Ok(s) => s,
        Err(e) => panic!("open: {e}"),
    }
}

/// Registers user `seed` at `now` through a fresh registrar; returns the outcome.
fn register<S: ExitStore>(
    exit: &mut ExitServer<S>,
    reg: &mut Registrar,
    seed: u8,
    now: SystemTime,
) -> Result<RegistrationOutcome, String> {
    let (req, pending) = reg.request(
        &key(seed),
        exit_pk(),
        [seed; 32],
        mesh(seed),
        now,
        [seed; 16],
    );
    let answer = exit
        .register(now, mesh(seed), &req)
        .map_err(|e| e.to_string())?;
    pending.answer(&answer.reply).map_err(|e| e.to_string())
}

fn address(o: &Result<RegistrationOutcome, String>) -> Option<(Ipv4Addr, Option<(Ipv6Addr, u8)>)> {
    match o {
        Ok(RegistrationOutcome::Registered(r)) => Some((r.ipv4, r.ipv6_prefix)),
        _ => None,
    }
}

fn db_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("exit-{name}-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn a_grant_carries_the_tunnel_parameters() {
    let mut e = open(config(24), ExitMemStore::default(), t(0));
    let mut reg = Registrar::new();
    let Ok(RegistrationOutcome::Registered(r)) = register(&mut e, &mut reg, 1, t(1)) else {
        panic!("not registered");
    };
    assert_eq!(r.ipv4, Ipv4Addr::new(172, 16, 0, 2));
    assert_eq!(r.ipv4_prefix_len, 24);
    assert_eq!(r.exit_ipv4, Ipv4Addr::new(172, 16, 0, 1));
    assert_eq!(
        r.ipv6_prefix,
        Some((
            "2001:db8:100::".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
            60
        ))
    );
    assert_eq!(
        r.exit_ipv6,
        Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1))
    );
    assert_eq!(r.tunnel_key, [0xee; 32]);
    assert_eq!(r.tunnel_port, 59999);
    assert_eq!(r.mtu, 1340);
    assert_eq!(r.fee, 10);
    assert_eq!(r.free_tier_bps, 1_000_000);
    let second = register(&mut e, &mut reg, 2, t(2));
    assert_eq!(
        address(&second).map(|a| a.0),
        Some(Ipv4Addr::new(172, 16, 0, 3))
    );
    assert_eq!(e.counters().registered, 2);
    let users = e.users();
    assert_eq!(users.len(), 2);
}

#[test]
fn same_key_same_address_across_restarts_of_both_sides() {
    let path = db_path("sticky");
    let mut first = Vec::new();
    {
        let store = ExitRedbStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut e = open(config(24), store, t(0));
        let mut reg = Registrar::new();
        for seed in [5u8, 3, 9, 1] {
            first.push(address(&register(&mut e, &mut reg, seed, t(10))));
        }
        // Twice in a row: the same.
        assert_eq!(
            address(&register(&mut e, &mut reg, 3, t(11))),
            first.get(1).copied().flatten()
        );
    }
    // The exit restarts (the store is reopened from the file); the users restart too (fresh
    // registrars) and register in another order.
    let store = ExitRedbStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut e = open(config(24), store, t(100));
    for (i, (seed, was)) in [(1u8, 3), (9, 2), (3, 1), (5, 0)].into_iter().enumerate() {
        let mut reg = Registrar::new();
        let got = address(&register(&mut e, &mut reg, seed, t(101 + i as u64)));
        let want = first.get(was).copied().flatten();
        assert!(want.is_some());
        assert_eq!(got, want, "user {seed}");
    }
    // A new user after the restart does not take anybody's address.
    let mut reg = Registrar::new();
    let new = address(&register(&mut e, &mut reg, 7, t(200)));
    assert!(new.is_some());
    assert!(!first.contains(&new));
    drop(e);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_lease_is_durable_before_the_answer_exists() {
    let store = ExitMemStore {
        fail: true,
        ..ExitMemStore::default()
    };
    let mut e = open(config(24), store, t(0));
    let mut reg = Registrar::new();
    let (req, _) = reg.request(&key(1), exit_pk(), [1; 32], mesh(1), t(1), [1; 16]);
    assert!(matches!(
        e.register(t(1), mesh(1), &req),
        Err(RegisterError::Store(_))
    ));
    assert!(e.users().is_empty(), "nothing granted without a commit");
    assert_eq!(e.counters().store_failures, 1);
}

#[test]
fn replays_and_forgeries_get_no_answer() {
    let mut e = open(config(24), ExitMemStore::default(), t(0));
    let mut reg = Registrar::new();
    let (req, _) = reg.request(&key(1), exit_pk(), [1; 32], mesh(1), t(1), [1; 16]);
    assert!(e.register(t(1), mesh(1), &req).is_ok());
    // The same bytes again, later: a replay.
    assert!(matches!(
        e.register(t(2), mesh(1), &req),
        Err(RegisterError::Replay)
    ));
    // A request signed by another key than the one it names.
    let mut forged = Registrar::new()
        .request(&key(66), exit_pk(), [1; 32], mesh(1), t(3), [2; 16])
        .0;
    let user1 = key(1).verifying_key().to_bytes();
    forged.splice(2..34, user1);
    assert!(matches!(
        e.register(t(3), mesh(1), &forged),
        Err(RegisterError::Wire(ExitWireError::Signature))
    ));
    // For another exit.
    let (other, _) = reg.request(&key(1), [9; 32], [1; 32], mesh(1), t(4), [3; 16]);
    assert!(matches!(
        e.register(t(4), mesh(1), &other),
        Err(RegisterError::WrongExit)
    ));
    // From another source than the mesh address it claims.
    let (req2, _) = reg.request(&key(1), exit_pk(), [1; 32], mesh(1), t(5), [4; 16]);
    assert!(matches!(
        e.register(t(5), mesh(2), &req2),
        Err(RegisterError::Source { .. })
    ));
    // Garbage.
    assert!(matches!(
        e.register(t(6), mesh(1), &[1, 2, 3]),
        Err(RegisterError::Wire(_))
    ));
    let c = e.counters();
    assert_eq!((c.replays, c.malformed, c.misdirected), (1, 2, 2));
    // After a restart of the exit, a request signed before the restart is refused even though
    // the per-key memory is gone.
    let (old, _) = reg.request(&key(1), exit_pk(), [1; 32], mesh(1), t(7), [5; 16]);
    let mut e = open(config(24), e.store().clone(), t(8));
    assert!(matches!(
        e.register(t(9), mesh(1), &old),
        Err(RegisterError::Replay)
    ));
    let (fresh, _) = reg.request(&key(1), exit_pk(), [1; 32], mesh(1), t(10), [6; 16]);
    assert!(e.register(t(10), mesh(1), &fresh).is_ok());
}

#[test]
fn an_old_answer_is_not_taken_for_a_new_one() {
    let mut e = open(config(24), ExitMemStore::default(), t(0));
    let mut reg = Registrar::new();
    let (req, _) = reg.request(&key(1), exit_pk(), [1; 32], mesh(1), t(1), [1; 16]);
    let old = e
        .register(t(1), mesh(1), &req)
        .map(|a| a.reply)
        .unwrap_or_default();
    let (_, pending) = reg.request(&key(1), exit_pk(), [1; 32], mesh(1), t(2), [2; 16]);
    assert_eq!(pending.answer(&old), Err(exit::AnswerError::OtherRequest));
}

#[test]
fn policy_and_clock_refusals_are_signed_with_a_reason() {
    let mut cfg = config(24);
    cfg.admission = Admission::AllowList(BTreeSet::from([key(1).verifying_key().to_bytes()]));
    let mut e = open(cfg, ExitMemStore::default(), t(0));
    let mut reg = Registrar::new();
    assert!(address(&register(&mut e, &mut reg, 1, t(1))).is_some());
    match register(&mut e, &mut reg, 2, t(2)) {
        Ok(RegistrationOutcome::Refused(r)) => assert_eq!(r.reason, ExitRefusal::NotAllowed),
        other => panic!("{other:?}"),
    }
    // A user whose clock is 10 minutes behind.
    let (req, pending) = reg.request(&key(1), exit_pk(), [1; 32], mesh(1), t(3), [9; 16]);
    let a = e.register(t(603), mesh(1), &req);
    assert!(matches!(
        a.as_ref().map(|a| a.decision),
        Ok(Decision::Refused(ExitRefusal::ClockSkew))
    ));
    match a.map(|a| pending.answer(&a.reply)) {
        Ok(Ok(RegistrationOutcome::Refused(r))) => {
            assert_eq!(r.reason, ExitRefusal::ClockSkew);
            assert_eq!(r.exit_time_ms, exit::unix_ms(t(603)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn exhaustion_is_refused_and_expired_leases_are_reclaimed_only_then() {
    // A /29: 5 user addresses.
    let mut cfg = config(29);
    cfg.lease = Duration::from_secs(3600);
    let mut e = open(cfg, ExitMemStore::default(), t(0));
    let mut reg = Registrar::new();
    let mut got = Vec::new();
    for seed in 1..=5u8 {
        got.push(address(&register(
            &mut e,
            &mut reg,
            seed,
            t(u64::from(seed)),
        )));
    }
    assert!(got.iter().all(Option::is_some));
    match register(&mut e, &mut reg, 6, t(10)) {
        Ok(RegistrationOutcome::Refused(r)) => assert_eq!(r.reason, ExitRefusal::PoolExhausted),
        other => panic!("{other:?}"),
    }
    // User 1 renews; an hour later the others have expired, user 1 has not.
    assert_eq!(
        address(&register(&mut e, &mut reg, 1, t(1000))),
        got.first().copied().flatten()
    );
    let six = address(&register(&mut e, &mut reg, 6, t(3603)));
    assert_eq!(
        six,
        got.get(1).copied().flatten(),
        "user 2's lease expired first"
    );
    assert_eq!(
        address(&register(&mut e, &mut reg, 1, t(3604))),
        got.first().copied().flatten()
    );
}

#[test]
fn renewals_are_written_sparingly_and_key_changes_at_once() {
    let mut e = open(config(24), ExitMemStore::default(), t(0));
    let mut reg = Registrar::new();
    let user = key(1).verifying_key().to_bytes();
    let send = |e: &mut ExitServer<ExitMemStore>, reg: &mut Registrar, tk: u8, at: u64| {
        let (req, p) = reg.request(&key(1), exit_pk(), [tk; 32], mesh(1), t(at), [tk; 16]);
        let a = e
            .register(t(at), mesh(1), &req)
            .map(|a| a.reply)
            .unwrap_or_default();
        assert!(matches!(
            p.answer(&a),
            Ok(RegistrationOutcome::Registered(_))
        ));
    };
    send(&mut e, &mut reg, 1, 1);
    assert_eq!(e.store().commits, 1);
    // Re-registering every minute for an hour: no write (the lease is 30 days; 1/30 is a day).
    for i in 1..60 {
        send(&mut e, &mut reg, 1, 1 + 60 * i);
    }
    assert_eq!(e.store().commits, 1);
    // A new tunnel key is written before the answer, and the daemon sees it.
    send(&mut e, &mut reg, 2, 4000);
    assert_eq!(e.store().commits, 2);
    assert_eq!(e.user(&user).map(|u| u.lease.tunnel_key), Some([2; 32]));
    assert_eq!(
        e.store().stored.leases.get(&user).map(|l| l.tunnel_key),
        Some([2; 32])
    );
    // A day later, the renewal is written.
    send(&mut e, &mut reg, 2, 4000 + 86_400);
    assert_eq!(e.store().commits, 3);
    assert_eq!(
        e.store().stored.leases.get(&user).map(|l| l.renewed_ms),
        Some(exit::unix_ms(t(4000 + 86_400)))
    );
}
