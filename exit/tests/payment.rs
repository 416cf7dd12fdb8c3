//! Bills and payments between a user and its exit through the public API, sans-IO: the user
//! checks each bill against its own counters and pays it through a `payments` channel, the exit
//! credits the payment; a user who stops paying is throttled and restored when it pays again;
//! forged, replayed and inflated bills are refused and counted; both sides restart from their
//! stores with nothing lost or doubled.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::{key, pk, t};

use clock::Instant;
use std::net::Ipv6Addr;
use std::time::Duration;

use exit::{
    Checked, ExitMemStore, ExitMessage, ExitPayments, ExitServer, Frame, FrameError, Registrar,
    Tolerance, Transition, UserLedger, UserPayments, UserService,
};
use payments::Amount;

const FEE: u32 = 10;
const BACK: u32 = 5;
const TOL: Tolerance = Tolerance {
    ppm: 20_000,
    slack_bytes: 1000,
};

fn exit_server() -> ExitServer<exit::ExitMemStore> {
    let c = common::config(FEE, 100_000_000);
    let mut e = ExitServer::open(c, key(200), ExitMemStore::default(), t(0)).unwrap();
    let mesh = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    let (req, _) = Registrar::new().request(&key(1), pk(200), [1; 32], mesh, t(1), [1; 16]);
    assert!(e.register(t(1), mesh, &req).is_ok());
    e
}

/// The two ends, as the daemon wires them: datagrams through [`Frame`], channel messages both
/// ways until quiet.
struct Pair {
    exit: ExitServer<exit::ExitMemStore>,
    exit_pay: ExitPayments<payments::MemStore>,
    user: UserPayments<payments::MemStore>,
    /// The user's tunnel counters (sent, received), cumulative.
    tunnel: (u64, u64),
    now: Instant,
    transitions: Vec<Transition>,
}

impl Pair {
    fn new() -> Pair {
        let ledger = UserLedger::new(pk(200), pk(1), FEE);
        Pair {
            exit: exit_server(),
            exit_pay: ExitPayments::new(key(200), payments::MemStore::default(), Amount(1 << 100)),
            user: UserPayments::open(key(1), pk(200), ledger, payments::MemStore::default())
                .unwrap(),
            tunnel: (0, 0),
            now: clock::now(),
            transitions: Vec::new(),
        }
    }

    /// Traffic both ways, as both ends count it.
    fn traffic(&mut self, up: u64, down: u64) {
        self.tunnel.0 += up;
        self.tunnel.1 += down;
        if let Some(tr) = self.exit.meter_transition(&pk(1), up, down, BACK) {
            self.transitions.push(tr);
        }
    }

    /// Delivers channel messages user -> exit -> user ... until nothing more is sent.
    fn exchange(&mut self, mut to_exit: Vec<Vec<u8>>) {
        for _ in 0..10 {
            let mut to_user = Vec::new();
            for m in to_exit.drain(..) {
                let dgram = Frame::Channel(&m).encode();
                let Ok(Frame::Channel(body)) = Frame::decode(&dgram) else {
                    panic!("frame")
                };
                let (out, paid) = self.exit_pay.handle(self.now, &pk(1), body).unwrap();
                if let Some(tr) = self.exit.credit(&pk(1), paid) {
                    self.transitions.push(tr);
                }
                to_user.extend(out.send);
            }
            for m in to_user {
                to_exit.extend(self.user.handle(self.now, &m).unwrap().send);
            }
            if to_exit.is_empty() {
                return;
            }
        }
    }

    /// One bill interval: the exit bills, the user checks it and, if accepted, pays.
    fn bill(&mut self, at: u64) -> Result<Checked, exit::BillError> {
        let b = self.exit.bill(t(at), &pk(1)).unwrap().unwrap();
        self.deliver_bill(&b)
    }

    fn deliver_bill(&mut self, b: &[u8]) -> Result<Checked, exit::BillError> {
        let dgram = Frame::Bill(b).encode();
        let Ok(Frame::Bill(body)) = Frame::decode(&dgram) else {
            panic!("frame")
        };
        let billing = self.user.billing_mut();
        billing.tunnel_counters(self.tunnel.0, self.tunnel.1);
        let r = billing.on_bill(body, TOL, BACK);
        if matches!(r, Ok(Checked::Accepted(_))) {
            let out = self.user.bill_accepted(self.now).unwrap();
            self.exchange(out.send);
        }
        r
    }

    fn service(&self) -> UserService {
        self.exit.service(&pk(1)).unwrap()
    }
}

#[test]
fn frames_are_typed_and_bounded() {
    assert_eq!(Frame::decode(&[]), Err(FrameError::Empty));
    assert_eq!(Frame::decode(&[9, 1]), Err(FrameError::Kind(9)));
    assert_eq!(Frame::decode(&[1; 600]), Err(FrameError::TooLong(600)));
    assert_eq!(Frame::decode(&[2, 7]), Ok(Frame::Channel(&[7])));
}

#[test]
fn a_paying_user_stays_at_full_speed_and_the_exit_credits_every_bill() {
    let mut p = Pair::new();
    let mut formula = 0u128;
    for i in 0..5u64 {
        // 930,000 wei an interval: under the close threshold, since each bill is paid.
        p.traffic(3_000, 60_000);
        formula += 3_000 * u128::from(FEE) + 60_000 * u128::from(FEE + BACK);
        assert!(matches!(p.bill(10 + i), Ok(Checked::Accepted(_))));
        // Paid exactly the bill, acknowledged, credited.
        assert_eq!(p.user.paid(), Amount(formula));
        assert!(p.user.acked());
        assert_eq!(p.exit.user(&pk(1)).unwrap().paid, Amount(formula));
        assert_eq!(p.exit.user(&pk(1)).unwrap().owed, Amount(0));
        assert_eq!(p.service(), UserService::Full);
    }
    assert!(p.transitions.is_empty(), "{:?}", p.transitions);
    assert_eq!(p.user.billing().counters.accepted, 5);
    assert_eq!(p.user.counters().sent, 5);
}

#[test]
fn a_user_who_stops_paying_is_throttled_and_paying_again_restores_it() {
    let mut p = Pair::new();
    p.traffic(10_000, 10_000);
    assert!(p.bill(10).is_ok());
    assert_eq!(p.service(), UserService::Full);
    p.user.set_paying(false);
    let paid = p.user.paid();
    // 125,000 wei per round: the close threshold (1,000,000) is passed on the 9th.
    let mut throttled_at = None;
    for i in 0..10u64 {
        p.traffic(5_000, 5_000);
        if throttled_at.is_none() && p.service() == UserService::FreeTier {
            throttled_at = Some(i);
        }
        assert!(matches!(p.bill(20 + i), Ok(Checked::Accepted(_))));
    }
    // Throttled as soon as the debt passed the threshold: in the metering that passed it.
    assert_eq!(throttled_at, Some(8));
    assert_eq!(
        p.transitions,
        vec![Transition {
            user: pk(1),
            from: UserService::Full,
            to: UserService::FreeTier
        }]
    );
    assert_eq!(p.user.paid(), paid, "nothing paid while withholding");
    // Paying again: the next poll pays every accepted bill; the exit credits it and restores
    // full speed at once.
    p.user.set_paying(true);
    let out = p.user.poll(p.now + Duration::from_secs(1)).unwrap();
    p.exchange(out.send);
    assert_eq!(p.service(), UserService::Full);
    assert_eq!(p.exit.user(&pk(1)).unwrap().owed, Amount(0));
    assert_eq!(
        p.transitions.last(),
        Some(&Transition {
            user: pk(1),
            from: UserService::FreeTier,
            to: UserService::Full
        })
    );
}

#[test]
fn forged_replayed_and_inflated_bills_are_refused_counted_and_not_paid() {
    let mut p = Pair::new();
    p.traffic(1000, 2000);
    let first = p.exit.bill(t(10), &pk(1)).unwrap().unwrap();
    assert!(matches!(p.deliver_bill(&first), Ok(Checked::Accepted(_))));
    let paid = p.user.paid();
    p.traffic(1000, 2000);
    let second = p.exit.bill(t(11), &pk(1)).unwrap().unwrap();
    // Forged: another key signs the exit's bill; garbled: a flipped byte.
    let Ok(ExitMessage::Bill(mut b)) = ExitMessage::decode(&second) else {
        panic!()
    };
    assert!(
        p.deliver_bill(&ExitMessage::Bill(b).sign(&key(66)))
            .is_err()
    );
    let mut garbled = second.clone();
    garbled[40] ^= 1;
    assert!(p.deliver_bill(&garbled).is_err());
    // Replayed: the first bill again is a duplicate (nothing changes), an older one refused.
    assert!(matches!(p.deliver_bill(&first), Ok(Checked::Duplicate)));
    assert!(matches!(p.deliver_bill(&second), Ok(Checked::Accepted(_))));
    assert!(p.deliver_bill(&first).is_err());
    // Inflated: the exit signs more download than went through the tunnel.
    p.traffic(1000, 2000);
    let Ok(ExitMessage::Bill(third)) =
        ExitMessage::decode(&p.exit.bill(t(12), &pk(1)).unwrap().unwrap())
    else {
        panic!()
    };
    b = third;
    b.totals.download_bytes += 50_000;
    b.totals.download_amount = b
        .totals
        .download_amount
        .saturating_add(Amount(50_000 * u128::from(FEE + BACK)));
    let r = p.deliver_bill(&ExitMessage::Bill(b).sign(&key(200)));
    assert!(r.is_err(), "{r:?}");
    assert!(p.user.billing().last().starts_with("refused"));
    let c = p.user.billing().counters;
    assert_eq!(
        (
            c.accepted,
            c.duplicates,
            c.forged,
            c.replayed,
            c.overcharged
        ),
        (2, 1, 2, 1, 1)
    );
    // Paid the two accepted bills, nothing for the refused ones.
    assert!(p.user.paid() > paid);
    assert_eq!(p.user.paid(), p.user.billed());
}

#[test]
fn both_ends_restart_from_their_stores_without_losing_or_doubling_a_payment() {
    let mut p = Pair::new();
    p.traffic(40_000, 40_000);
    assert!(p.bill(10).is_ok());
    let paid = p.user.paid();
    assert!(paid.0 > 0);
    // The user's process dies after its update was committed: it restarts from its store and
    // its persisted ledger and pays nothing twice.
    let ledger = UserLedger::decode(&p.user.billing().ledger().encode()).unwrap();
    let store = p.user.store().clone();
    p.user = UserPayments::open(key(1), pk(200), ledger, store).unwrap();
    assert_eq!(p.user.paid(), paid);
    let out = p.user.bill_accepted(p.now).unwrap();
    assert!(
        out.events
            .iter()
            .all(|e| !matches!(e, payments::PaymentEvent::PaymentSent { .. })),
        "{:?}",
        out.events
    );
    // The exit restarts: what the channel carries comes back from its store.
    let store = p.exit_pay.store().clone();
    let mut again = ExitPayments::new(key(200), store, Amount(1 << 100));
    assert_eq!(again.paid(&pk(1)).unwrap(), paid);
}
