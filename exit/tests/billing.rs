//! Bills through the public API: the formula, commit-before-sign, a crash in the middle of a bill
//! (a failing commit, and a real `redb` file reopened), the user's checks and refusals, and the
//! service level following what is owed and paid.

mod common;

use common::{key, pk, t};

use std::net::Ipv6Addr;

use exit::{
    BillError, Checked, ExitConfig, ExitMemStore, ExitMessage, ExitRedbStore, ExitServer,
    ExitStore, Registrar, Tolerance, Totals, UserLedger, UserService, Way,
};
use payments::{Amount, cost};

const FEE: u32 = 10;
const ROUTE_BACK: u32 = 7;

fn mesh() -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)
}

fn config() -> ExitConfig {
    common::config(FEE, 5_000_000)
}

/// An exit with user 1 registered.
fn exit_with_user<S: ExitStore>(store: S) -> ExitServer<S> {
    let mut e = ExitServer::open(config(), key(200), store, t(0)).unwrap_or_else(|e| panic!("{e}"));
    let (req, _) = Registrar::new().request(&key(1), pk(200), [1; 32], mesh(), t(1), [1; 16]);
    assert!(e.register(t(1), mesh(), &req).is_ok());
    e
}

fn bill_of(bytes: &[u8]) -> Totals {
    match ExitMessage::decode(bytes) {
        Ok(ExitMessage::Bill(b)) => b.totals,
        other => panic!("{other:?}"),
    }
}

fn bill(e: &mut ExitServer<impl ExitStore>, at: u64) -> Vec<u8> {
    match e.bill(t(at), &pk(1)) {
        Ok(Some(b)) => b,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_bill_is_the_formula_and_cumulative() {
    let mut e = exit_with_user(ExitMemStore::default());
    assert_eq!(
        e.bill(t(2), &pk(1)).ok(),
        Some(None),
        "nothing metered, no bill"
    );
    assert_eq!(
        e.meter(&pk(1), 1000, 50_000, ROUTE_BACK),
        Some(UserService::Full)
    );
    // The route back changes price between two packets: each is valued at its own price.
    e.meter(&pk(1), 0, 10_000, ROUTE_BACK + 3);
    let b1 = bill_of(&bill(&mut e, 3));
    assert_eq!(
        (b1.seq, b1.upload_bytes, b1.download_bytes),
        (1, 1000, 60_000)
    );
    assert_eq!(b1.upload_amount, cost(1000, FEE));
    assert_eq!(
        b1.download_amount,
        cost(50_000, FEE + ROUTE_BACK).saturating_add(cost(10_000, FEE + ROUTE_BACK + 3))
    );
    assert_eq!(b1.amount(), Amount(10_000 + 850_000 + 200_000));
    // Nothing new: the same bill again (same seq, same totals).
    assert_eq!(bill_of(&bill(&mut e, 4)), b1);
    e.meter(&pk(1), 500, 0, ROUTE_BACK);
    let b2 = bill_of(&bill(&mut e, 5));
    assert_eq!(
        (b2.seq, b2.upload_bytes, b2.download_bytes),
        (2, 1500, 60_000)
    );
    assert_eq!(b2.amount(), b1.amount().saturating_add(cost(500, FEE)));
    // An unknown key is not metered.
    assert_eq!(e.meter(&pk(9), 1, 1, 0), None);
}

#[test]
fn a_failed_commit_produces_no_bill_and_loses_nothing() {
    let mut e = exit_with_user(ExitMemStore::default());
    e.meter(&pk(1), 1000, 1000, ROUTE_BACK);
    let b1 = bill_of(&bill(&mut e, 2));
    e.meter(&pk(1), 2000, 0, ROUTE_BACK);
    // The store fails in the middle of the next bill: no bill, and the metering stays pending.
    let mut failing = e.store().clone();
    failing.fail = true;
    let mut broken =
        ExitServer::open(config(), key(200), failing, t(3)).unwrap_or_else(|e| panic!("{e}"));
    broken.meter(&pk(1), 2000, 0, ROUTE_BACK);
    assert!(broken.bill(t(4), &pk(1)).is_err());
    assert_eq!(broken.user(&pk(1)).map(|u| u.billed), Some(b1.amount()));
    assert_eq!(broken.user(&pk(1)).map(|u| u.upload_bytes), Some(3000));
    // The original exit commits it: seq 2 covers everything once.
    let b2 = bill_of(&bill(&mut e, 5));
    assert_eq!((b2.seq, b2.upload_bytes), (2, 3000));
}

#[test]
fn a_restarted_exit_resends_the_committed_bill_and_continues_from_it() {
    let path = std::env::temp_dir().join(format!("exit-bill-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let b1 = {
        let store = ExitRedbStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut e = exit_with_user(store);
        e.meter(&pk(1), 4000, 9000, ROUTE_BACK);
        let b = bill(&mut e, 2);
        // Metered after the bill and never committed: lost with the process (the exit's loss,
        // never the user's), never billed twice.
        e.meter(&pk(1), 1, 1, ROUTE_BACK);
        b
    };
    let store = ExitRedbStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut e =
        ExitServer::open(config(), key(200), store, t(10)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bill(&mut e, 11), b1, "the same signed bill, byte for byte");
    e.meter(&pk(1), 100, 0, ROUTE_BACK);
    let b2 = bill_of(&bill(&mut e, 12));
    assert_eq!(
        (b2.seq, b2.upload_bytes, b2.download_bytes),
        (2, 4100, 9000)
    );
    drop(e);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_user_accepts_honest_bills_and_refuses_overcharges_with_a_reason() {
    let tol = Tolerance {
        ppm: 10_000,
        slack_bytes: 1000,
    };
    let mut e = exit_with_user(ExitMemStore::default());
    let mut ledger = UserLedger::new(pk(200), pk(1), FEE);
    // Honest: the user counted the same traffic (a little less download: in flight).
    e.meter(&pk(1), 100_000, 200_000, ROUTE_BACK);
    ledger.count(100_000, 199_500);
    let b1 = bill(&mut e, 2);
    assert!(matches!(
        ledger.check(&b1, tol, ROUTE_BACK),
        Ok(Checked::Accepted(_))
    ));
    assert_eq!(ledger.payable(), bill_of(&b1).amount());
    assert_eq!(ledger.check(&b1, tol, ROUTE_BACK), Ok(Checked::Duplicate));
    // Paying is the difference with what the channel already carries, once.
    let total = bill_of(&b1).amount();
    assert_eq!(ledger.to_pay(Amount(0)), total);
    assert_eq!(ledger.to_pay(Amount(total.0 - 5)), Amount(5));
    assert_eq!(ledger.to_pay(total), Amount(0));
    assert_eq!(ledger.to_pay(Amount(total.0 + 1)), Amount(0));
    // The route back got dearer than the user accepts.
    e.meter(&pk(1), 0, 10_000, ROUTE_BACK + 5);
    ledger.count(0, 10_000);
    let b2 = bill(&mut e, 3);
    assert!(matches!(
        ledger.check(&b2, tol, ROUTE_BACK),
        Err(BillError::Overcharged {
            way: Way::Download,
            ..
        })
    ));
    assert_eq!(
        ledger.payable(),
        bill_of(&b1).amount(),
        "a refused bill changes nothing"
    );
    // With a higher accepted price it passes.
    assert!(matches!(
        ledger.check(&b2, tol, ROUTE_BACK + 5),
        Ok(Checked::Accepted(_))
    ));
    // The exit claims more upload than the user sent, beyond the tolerance (cumulative
    // counts: 150,000 billed against 140,000 counted).
    e.meter(&pk(1), 50_000, 0, ROUTE_BACK);
    ledger.count(40_000, 0);
    assert!(matches!(
        ledger.check(&bill(&mut e, 4), tol, ROUTE_BACK),
        Err(BillError::Overcounted {
            way: Way::Upload,
            billed: 150_000,
            counted: 140_000
        })
    ));
    // Within tolerance: 1 % + 1000 bytes of 40 000 is 41 400.
    assert_eq!(tol.allowance(40_000), 41_400);
}

/// Bills signed by the exit's key but with made-up totals.
fn forge(t: Totals) -> Vec<u8> {
    ExitMessage::Bill(t.bill(pk(200), pk(1))).sign(&key(200))
}

#[test]
fn dishonest_bill_sequences_are_refused() {
    let tol = Tolerance::default();
    let mut ledger = UserLedger::new(pk(200), pk(1), FEE);
    ledger.count(1000, 1000);
    let b1 = Totals {
        seq: 5,
        time_ms: 1,
        upload_bytes: 1000,
        download_bytes: 1000,
        upload_amount: cost(1000, FEE),
        download_amount: cost(1000, FEE),
    };
    assert!(matches!(
        ledger.check(&forge(b1), tol, 0),
        Ok(Checked::Accepted(_))
    ));
    // Same seq, other totals.
    let other = Totals {
        upload_bytes: 999,
        ..b1
    };
    assert_eq!(
        ledger.check(&forge(other), tol, 0),
        Err(BillError::Equivocation(5))
    );
    // Older seq.
    assert!(matches!(
        ledger.check(&forge(Totals { seq: 4, ..b1 }), tol, 0),
        Err(BillError::Stale {
            got: 4,
            accepted: 5
        })
    ));
    // Totals going down.
    assert_eq!(
        ledger.check(
            &forge(Totals {
                seq: 6,
                upload_bytes: 10,
                ..b1
            }),
            tol,
            0
        ),
        Err(BillError::Regressed)
    );
    // Upload priced above the fee.
    assert!(matches!(
        ledger.check(
            &forge(Totals {
                seq: 6,
                upload_amount: Amount(b1.upload_amount.0 + 1),
                ..b1
            }),
            tol,
            0
        ),
        Err(BillError::Overcharged {
            way: Way::Upload,
            ..
        })
    ));
    // Another exit's signature, or for another user.
    let foreign = ExitMessage::Bill(b1.bill(pk(201), pk(1))).sign(&key(201));
    assert_eq!(ledger.check(&foreign, tol, 0), Err(BillError::WrongParty));
    let other_user = ExitMessage::Bill(b1.bill(pk(200), pk(2))).sign(&key(200));
    assert_eq!(
        ledger.check(&other_user, tol, 0),
        Err(BillError::WrongParty)
    );
    // Not signed by the key it names.
    let mut tampered = forge(Totals { seq: 7, ..b1 });
    if let Some(b) = tampered.get_mut(80) {
        *b ^= 1;
    }
    assert!(matches!(
        ledger.check(&tampered, tol, 0),
        Err(BillError::Wire(_))
    ));
}

#[test]
fn the_user_ledger_survives_a_restart_and_then_checks_the_formula_only() {
    let tol = Tolerance::default();
    let mut e = exit_with_user(ExitMemStore::default());
    let mut ledger = UserLedger::new(pk(200), pk(1), FEE);
    e.meter(&pk(1), 1000, 1000, ROUTE_BACK);
    ledger.count(1000, 1000);
    let b1 = bill(&mut e, 2);
    assert!(ledger.check(&b1, tol, ROUTE_BACK).is_ok());
    let saved = ledger.encode();
    assert_eq!(ledger.accepted_signed(), Some(b1.as_slice()));
    assert_eq!(saved.len(), UserLedger::ENCODED_LEN);
    let mut restored = UserLedger::decode(&saved).unwrap_or_else(|| panic!("decode"));
    assert_eq!(restored.payable(), ledger.payable());
    // Counts since the accepted bill died with the process: the next bill is checked against
    // the formula only, and a duplicate is still a duplicate.
    assert_eq!(restored.check(&b1, tol, ROUTE_BACK), Ok(Checked::Duplicate));
    e.meter(&pk(1), 10_000_000, 0, ROUTE_BACK);
    assert!(matches!(
        restored.check(&bill(&mut e, 3), tol, ROUTE_BACK),
        Ok(Checked::Accepted(_))
    ));
    // After that one, counts are checked again.
    e.meter(&pk(1), 10_000_000, 0, ROUTE_BACK);
    assert!(matches!(
        restored.check(&bill(&mut e, 4), tol, ROUTE_BACK),
        Err(BillError::Overcounted { .. })
    ));
    // Corrupt records do not decode.
    let mut bad = saved.clone();
    if let Some(b) = bad.get_mut(100) {
        *b ^= 1;
    }
    assert!(UserLedger::decode(&bad).is_none());
    assert!(UserLedger::decode(saved.get(..10).unwrap_or_default()).is_none());
}

#[test]
fn service_follows_owed_and_paid_both_ways() {
    let mut e = exit_with_user(ExitMemStore::default());
    // close 1 000 000, cut 5 000 000 wei; upload costs 10 wei/byte.
    assert_eq!(e.meter(&pk(1), 100_000, 0, 0), Some(UserService::Full)); // owes 1 000 000
    assert_eq!(e.meter(&pk(1), 1, 0, 0), Some(UserService::FreeTier));
    assert_eq!(e.meter(&pk(1), 400_000, 0, 0), Some(UserService::Cut)); // owes 5 000 010
    let owed = e.user(&pk(1)).map(|u| u.owed);
    assert_eq!(owed, Some(Amount(5_000_010)));
    // A payment that brings the debt under the cut threshold: free tier; all of it: full.
    assert_eq!(e.paid(&pk(1), Amount(10)), Some(UserService::FreeTier));
    assert_eq!(e.paid(&pk(1), Amount(5_000_010)), Some(UserService::Full));
    // A stale (lower) cumulative payment does not undo it.
    assert_eq!(e.paid(&pk(1), Amount(0)), Some(UserService::Full));
    assert_eq!(e.service(&pk(1)), Some(UserService::Full));
    assert_eq!(
        e.paid(&pk(9), Amount(1)),
        None,
        "an unknown key gets no account"
    );
    let u = e.user(&pk(1)).unwrap_or_else(|| panic!("user"));
    assert_eq!(
        (u.paid, u.owed, u.service.name()),
        (Amount(5_000_010), Amount(0), "full")
    );
}
