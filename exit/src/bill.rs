//! Metering, bills and the service level that follows (network paper, "Exit nodes" and
//! "Metering overview"; `spec/exits.md`, "Bills").
//!
//! The exit meters each user's inner packets in its tunnel, both ways, and values them at once:
//! upload at the exit's fee, download at the fee plus the price of the exit's route back to the
//! user (the exit pays its neighbours that price for carrying the download). A bill states the
//! **cumulative** counts and amounts, so it is idempotent: losing one loses nothing (the next
//! states the same and more), receiving one twice changes nothing, and a user pays the
//! difference between the newest accepted bill and what its channel to the exit already carries.
//!
//! On the user's side, [`UserLedger::check`] verifies a bill against the user's own counters of
//! the same tunnel (cumulative counts, amounts over the interval since the previous bill it
//! accepted), within a
//! [`Tolerance`], and refuses an overcharge with a typed [`BillError`].

use payments::{Amount, Price, cost};

use crate::store::Totals;
use crate::wire::{Bill, ExitMessage, ExitWireError, kind, length_of};

/// Length of a signed bill.
const BILL_LEN: usize = match length_of(kind::BILL) {
    Some(n) => n,
    None => 0,
};

/// The service an exit gives a user, following what it owes (`payments::ServiceLevel` with one
/// more level). The names match `payments::ServiceLevel::name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserService {
    /// Owes at most the close threshold: full speed.
    Full,
    /// Owes more than the close threshold: both directions capped at the free tier.
    FreeTier,
    /// Owes more than the cut threshold: only traffic to the exit itself passes (payment and
    /// registration messages), nothing to or from the internet.
    Cut,
}

impl UserService {
    /// Name for logs and `show exits`.
    pub fn name(&self) -> &'static str {
        match self {
            UserService::Full => "full",
            UserService::FreeTier => "free-tier",
            UserService::Cut => "cut",
        }
    }
}

/// When an exit throttles and cuts a user, by what it owes (billed minus paid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceThresholds {
    /// Owing more than this: [`UserService::FreeTier`] (as `payments::Thresholds::close`).
    pub close: Amount,
    /// Owing more than this: [`UserService::Cut`]. Set it above `close` (equal: never
    /// throttled, cut at once).
    pub cut: Amount,
}

impl Default for ServiceThresholds {
    /// `close` as the payments crate's default; `cut` ten times that.
    fn default() -> ServiceThresholds {
        let close = payments::Thresholds::default().close;
        ServiceThresholds {
            close,
            cut: Amount(close.0.saturating_mul(10)),
        }
    }
}

impl ServiceThresholds {
    /// The service level of a user owing `owed`.
    pub fn service(&self, owed: Amount) -> UserService {
        if owed > self.cut {
            UserService::Cut
        } else if owed > self.close {
            UserService::FreeTier
        } else {
            UserService::Full
        }
    }
}

/// One user's account at the exit: the committed totals (its newest bill), the metering since,
/// and what its payment channel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Account {
    billed: Totals,
    pending: Totals,
    paid: Amount,
}

impl Account {
    /// An account restored from its committed totals.
    pub fn restore(billed: Totals) -> Account {
        Account {
            billed,
            pending: Totals::default(),
            paid: Amount::default(),
        }
    }

    /// Meters traffic: `upload` bytes from the user, `download` bytes to it, valued at `fee`
    /// and `fee + route_back_price` (saturating) wei per byte.
    pub fn meter(&mut self, upload: u64, download: u64, fee: Price, route_back_price: Price) {
        let p = &mut self.pending;
        p.upload_bytes = p.upload_bytes.saturating_add(upload);
        p.download_bytes = p.download_bytes.saturating_add(download);
        p.upload_amount = p.upload_amount.saturating_add(cost(upload, fee));
        p.download_amount = p
            .download_amount
            .saturating_add(cost(download, fee.saturating_add(route_back_price)));
    }

    /// The totals the next bill would state at `now_ms`: the committed ones if nothing was
    /// metered since (a resend), else committed plus pending with the next `seq`.
    pub fn next_totals(&self, now_ms: u64) -> Totals {
        let p = &self.pending;
        if p.upload_bytes == 0 && p.download_bytes == 0 {
            return self.billed;
        }
        let b = &self.billed;
        Totals {
            seq: b.seq.saturating_add(1),
            time_ms: now_ms.max(b.time_ms),
            upload_bytes: b.upload_bytes.saturating_add(p.upload_bytes),
            download_bytes: b.download_bytes.saturating_add(p.download_bytes),
            upload_amount: b.upload_amount.saturating_add(p.upload_amount),
            download_amount: b.download_amount.saturating_add(p.download_amount),
        }
    }

    /// Records that `totals` (from [`Account::next_totals`]) were committed durably: the
    /// pending metering they include is now billed.
    pub fn committed(&mut self, totals: Totals) {
        if totals.seq > self.billed.seq {
            self.billed = totals;
            self.pending = Totals::default();
        }
    }

    /// The newest committed totals.
    pub fn billed(&self) -> &Totals {
        &self.billed
    }

    /// Everything metered, committed or not: billed plus pending amounts.
    pub fn metered_amount(&self) -> Amount {
        let t = self.next_totals(0);
        t.upload_amount.saturating_add(t.download_amount)
    }

    /// Sets what the user's payment channel to the exit carries (cumulative; never decreases).
    pub fn set_paid(&mut self, cumulative: Amount) {
        self.paid = self.paid.max(cumulative);
    }

    /// What the user's channel carries.
    pub fn paid(&self) -> Amount {
        self.paid
    }

    /// What the user owes: everything metered minus what it paid.
    pub fn owed(&self) -> Amount {
        self.metered_amount()
            .checked_sub(self.paid)
            .unwrap_or_default()
    }
}

/// How far the exit's counts may exceed the user's own over one bill interval: `ppm`
/// millionths of the user's count plus `slack_bytes` (packets in flight when the two sides read
/// their counters, and packets lost between them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    /// Relative tolerance, millionths.
    pub ppm: u32,
    /// Absolute tolerance, bytes.
    pub slack_bytes: u64,
}

impl Default for Tolerance {
    /// 2 % and 256 KiB.
    fn default() -> Tolerance {
        Tolerance {
            ppm: 20_000,
            slack_bytes: 256 * 1024,
        }
    }
}

impl Tolerance {
    /// The largest count accepted against `own` bytes.
    pub fn allowance(&self, own: u64) -> u64 {
        let rel = u128::from(own) * u128::from(self.ppm) / 1_000_000;
        own.saturating_add(u64::try_from(rel).unwrap_or(u64::MAX))
            .saturating_add(self.slack_bytes)
    }
}

/// Which way traffic went, seen from the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Way {
    /// User to exit.
    Upload,
    /// Exit to user.
    Download,
}

/// Why a user refuses a bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BillError {
    /// Not an authentic bill.
    #[error("bill does not decode: {0}")]
    Wire(#[from] ExitWireError),
    /// An authentic message, but not a bill.
    #[error("not a bill")]
    NotABill,
    /// Signed by another exit, or for another user.
    #[error("bill from another exit or for another user")]
    WrongParty,
    /// Same sequence number as the accepted bill but other totals: the exit signed two
    /// different bills for one `seq`.
    #[error("two different bills with sequence number {0}")]
    Equivocation(u64),
    /// Older than the accepted bill.
    #[error("bill {got} is older than the accepted {accepted}")]
    Stale {
        /// The bill's seq.
        got: u64,
        /// The accepted bill's seq.
        accepted: u64,
    },
    /// A cumulative count or amount went down.
    #[error("cumulative totals went down")]
    Regressed,
    /// The exit counted more bytes than the user did, beyond the tolerance.
    #[error("{way:?}: billed {billed} bytes, counted {counted}")]
    Overcounted {
        /// Which way.
        way: Way,
        /// The bill's bytes since the anchor (the ledger's creation or its first bill after a
        /// restart).
        billed: u64,
        /// The user's own bytes since the anchor.
        counted: u64,
    },
    /// An amount exceeds the formula at the agreed fee and the largest accepted route price.
    #[error("{way:?}: billed {billed} for the interval, at most {allowed}")]
    Overcharged {
        /// Which way.
        way: Way,
        /// The bill's amount over the interval.
        billed: Amount,
        /// The most the formula allows.
        allowed: Amount,
    },
}

/// What [`UserLedger::check`] concluded about a bill it did not refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// A new bill, accepted: the user now owes up to `bill.amount()`.
    Accepted(Bill),
    /// The bill already accepted, received again: nothing changes.
    Duplicate,
}

/// The user's side of billing with one exit: the newest bill it accepted and its own tunnel
/// counters at that moment. The daemon persists it with [`UserLedger::encode`] after each
/// accepted bill (before paying for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserLedger {
    exit: [u8; 32],
    user: [u8; 32],
    fee: Price,
    accepted: Option<Bill>,
    accepted_signed: Option<[u8; BILL_LEN]>,
    own_upload: u64,
    own_download: u64,
    base_upload: u64,
    base_download: u64,
    anchor_upload: u64,
    anchor_download: u64,
    unverified: bool,
}

impl UserLedger {
    /// A ledger for bills from `exit` to `user`, at the `fee` the exit announced when it
    /// registered the user.
    pub fn new(exit: [u8; 32], user: [u8; 32], fee: Price) -> UserLedger {
        UserLedger {
            exit,
            user,
            fee,
            accepted: None,
            accepted_signed: None,
            own_upload: 0,
            own_download: 0,
            base_upload: 0,
            base_download: 0,
            anchor_upload: 0,
            anchor_download: 0,
            unverified: false,
        }
    }

    /// Counts the user's own traffic in the tunnel (inner packets): `upload` bytes sent to the
    /// exit, `download` bytes received from it.
    pub fn count(&mut self, upload: u64, download: u64) {
        self.own_upload = self.own_upload.saturating_add(upload);
        self.own_download = self.own_download.saturating_add(download);
    }

    /// The newest accepted bill.
    pub fn accepted(&self) -> Option<&Bill> {
        self.accepted.as_ref()
    }

    /// The newest accepted bill as signed by the exit (evidence in a dispute).
    pub fn accepted_signed(&self) -> Option<&[u8]> {
        self.accepted_signed.as_ref().map(|b| b.as_slice())
    }

    /// What the user owes in total (the accepted bill's amount); it pays this minus what its
    /// channel to the exit already carries.
    pub fn payable(&self) -> Amount {
        self.accepted.map(|b| b.amount()).unwrap_or_default()
    }

    /// What to pay now, given what the user's channel to the exit already carries
    /// (cumulative): the accepted bill's amount minus it, never negative.
    pub fn to_pay(&self, channel_paid: Amount) -> Amount {
        self.payable().checked_sub(channel_paid).unwrap_or_default()
    }

    /// Changes the fee (after a new registration announced another).
    pub fn set_fee(&mut self, fee: Price) {
        self.fee = fee;
    }

    /// Verifies a bill and, if it passes, accepts it.
    ///
    /// The exit's cumulative upload and download counts must be within `tolerance` of the
    /// user's own cumulative counts (since the ledger was created, or since the first bill after
    /// a restart, which anchors both): cumulative, because the user reads its counters after
    /// the bill arrived, a moment later than the exit read its own, so an interval comparison
    /// would shift bytes between intervals under load while a cumulative one never counts an
    /// honest exit short. Over the interval since the accepted bill, the upload amount must be
    /// at most upload × fee and the download amount at most download × (fee +
    /// `max_route_back_price`), where
    /// `max_route_back_price` is the most the user accepts for the route from the exit to it
    /// (the daemon's view of that route's price, with a margin, or a configured cap). The first
    /// bill after [`UserLedger::decode`] (a restart: counts since the accepted bill are lost) is
    /// checked against the formula only.
    pub fn check(
        &mut self,
        bytes: &[u8],
        tolerance: Tolerance,
        max_route_back_price: Price,
    ) -> Result<Checked, BillError> {
        let bill = match ExitMessage::decode(bytes)? {
            ExitMessage::Bill(b) => b,
            _ => return Err(BillError::NotABill),
        };
        if bill.exit != self.exit || bill.user != self.user {
            return Err(BillError::WrongParty);
        }
        let prev = self.accepted.map(|b| b.totals).unwrap_or_default();
        let new = bill.totals;
        if self.accepted.is_some() && new.seq == prev.seq {
            return if new == prev {
                Ok(Checked::Duplicate)
            } else {
                Err(BillError::Equivocation(new.seq))
            };
        }
        if new.seq < prev.seq {
            return Err(BillError::Stale {
                got: new.seq,
                accepted: prev.seq,
            });
        }
        let (Some(up), Some(down), Some(up_amount), Some(down_amount)) = (
            new.upload_bytes.checked_sub(prev.upload_bytes),
            new.download_bytes.checked_sub(prev.download_bytes),
            new.upload_amount.checked_sub(prev.upload_amount),
            new.download_amount.checked_sub(prev.download_amount),
        ) else {
            return Err(BillError::Regressed);
        };
        if !self.unverified {
            let own_up = self.own_upload.saturating_sub(self.base_upload);
            let own_down = self.own_download.saturating_sub(self.base_download);
            let billed_up = new.upload_bytes.saturating_sub(self.anchor_upload);
            let billed_down = new.download_bytes.saturating_sub(self.anchor_download);
            if billed_up > tolerance.allowance(own_up) {
                return Err(BillError::Overcounted {
                    way: Way::Upload,
                    billed: billed_up,
                    counted: own_up,
                });
            }
            if billed_down > tolerance.allowance(own_down) {
                return Err(BillError::Overcounted {
                    way: Way::Download,
                    billed: billed_down,
                    counted: own_down,
                });
            }
        }
        let allowed_up = cost(up, self.fee);
        if up_amount > allowed_up {
            return Err(BillError::Overcharged {
                way: Way::Upload,
                billed: up_amount,
                allowed: allowed_up,
            });
        }
        let allowed_down = cost(down, self.fee.saturating_add(max_route_back_price));
        if down_amount > allowed_down {
            return Err(BillError::Overcharged {
                way: Way::Download,
                billed: down_amount,
                allowed: allowed_down,
            });
        }
        self.accepted = Some(bill);
        self.accepted_signed = <[u8; BILL_LEN]>::try_from(bytes).ok();
        if self.unverified {
            // The first bill after a restart anchors the comparison: from here on, what the
            // exit bills beyond this bill's counts is compared with what we count beyond now.
            self.anchor_upload = new.upload_bytes;
            self.anchor_download = new.download_bytes;
            self.base_upload = self.own_upload;
            self.base_download = self.own_download;
            self.unverified = false;
        }
        Ok(Checked::Accepted(bill))
    }

    /// Length of [`UserLedger::encode`].
    pub const ENCODED_LEN: usize = 1 + 32 + 32 + 4 + 1 + BILL_LEN;

    /// The durable form: version (1), exit, user, fee, then a presence byte and the accepted
    /// bill's signed message as received (zeros when none), so that it is re-verified when read
    /// back.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(Self::ENCODED_LEN);
        o.push(1);
        o.extend_from_slice(&self.exit);
        o.extend_from_slice(&self.user);
        o.extend_from_slice(&self.fee.to_be_bytes());
        o.push(u8::from(self.accepted_signed.is_some()));
        o.extend_from_slice(&self.accepted_signed.unwrap_or([0; BILL_LEN]));
        o
    }

    /// Restores a ledger (re-verifying the stored bill). Counts since that bill were lost with
    /// the process, so the next bill is checked against the formula only.
    pub fn decode(b: &[u8]) -> Option<UserLedger> {
        if b.len() != Self::ENCODED_LEN || b.first() != Some(&1) {
            return None;
        }
        let exit = <[u8; 32]>::try_from(b.get(1..33)?).ok()?;
        let user = <[u8; 32]>::try_from(b.get(33..65)?).ok()?;
        let fee = u32::from_be_bytes(<[u8; 4]>::try_from(b.get(65..69)?).ok()?);
        let signed = b.get(70..)?;
        let accepted = match b.get(69)? {
            0 => None,
            1 => match ExitMessage::decode(signed).ok()? {
                ExitMessage::Bill(bill) if bill.exit == exit && bill.user == user => Some(bill),
                _ => return None,
            },
            _ => return None,
        };
        Some(UserLedger {
            exit,
            user,
            fee,
            accepted,
            accepted_signed: accepted.and_then(|_| <[u8; BILL_LEN]>::try_from(signed).ok()),
            own_upload: 0,
            own_download: 0,
            base_upload: 0,
            base_download: 0,
            anchor_upload: 0,
            anchor_download: 0,
            unverified: accepted.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    const FEE: Price = 1000;
    const MAX_BACK: Price = 500;

    fn exit_key() -> SigningKey {
        SigningKey::from_bytes(&[200; 32])
    }

    fn user() -> [u8; 32] {
        SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes()
    }

    /// One billing interval: bytes each way, the route-back price, and how many of the
    /// download bytes are still in flight towards the user when it checks the bill.
    fn interval() -> impl Strategy<Value = (u64, u64, Price, u64)> {
        (
            0u64..5_000_000,
            0u64..50_000_000,
            0..=MAX_BACK,
            0u64..100_000,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// An honest exit's bills always pass, and what the user owes is exactly the formula.
        #[test]
        fn honest_bills_always_pass_and_sum_to_the_formula(
            intervals in proptest::collection::vec(interval(), 1..12),
        ) {
            let exit = exit_key().verifying_key().to_bytes();
            let mut account = Account::default();
            let mut ledger = UserLedger::new(exit, user(), FEE);
            let tol = Tolerance::default();
            let mut formula = Amount(0);
            let mut in_flight = 0u64;
            for (i, (up, down, back, late)) in intervals.into_iter().enumerate() {
                // The exit meters each interval in a few pieces at the price of the moment.
                account.meter(up / 2, down / 3, FEE, back);
                account.meter(up - up / 2, down - down / 3, FEE, back);
                formula = formula
                    .saturating_add(cost(up, FEE))
                    .saturating_add(cost(down, FEE + back));
                // The user has received all but `late` bytes (which arrive next interval).
                let late = late.min(down);
                ledger.count(up, in_flight + down - late);
                in_flight = late;
                let totals = account.next_totals(i as u64);
                account.committed(totals);
                let signed = ExitMessage::Bill(totals.bill(exit, user())).sign(&exit_key());
                let r = ledger.check(&signed, tol, MAX_BACK);
                if totals.seq == 0 || (up == 0 && down == 0) {
                    prop_assert!(r.is_ok() || matches!(r, Err(BillError::Stale { .. })), "{r:?}");
                } else {
                    prop_assert!(matches!(r, Ok(Checked::Accepted(_))), "{r:?}");
                }
            }
            prop_assert_eq!(account.metered_amount(), formula);
            if account.billed().seq > 0 {
                prop_assert_eq!(ledger.payable(), formula);
            }
        }

        /// A bill inflated by more than the tolerance (bytes or price) is refused, and the user
        /// keeps owing only the last honest bill.
        #[test]
        fn inflated_bills_are_refused(
            (up, down, back, _) in interval(),
            inflate_bytes in any::<bool>(),
        ) {
            prop_assume!(up > 0 && down > 0);
            let exit = exit_key().verifying_key().to_bytes();
            let mut ledger = UserLedger::new(exit, user(), FEE);
            ledger.count(up, down);
            let tol = Tolerance::default();
            let mut b = Totals {
                seq: 1,
                time_ms: 1,
                upload_bytes: up,
                download_bytes: down,
                upload_amount: cost(up, FEE),
                download_amount: cost(down, FEE + back),
            };
            if inflate_bytes {
                b.download_bytes = tol.allowance(down) + 1;
                b.download_amount = cost(b.download_bytes, FEE + back);
            } else {
                b.download_amount = cost(down, FEE + MAX_BACK).saturating_add(Amount(1));
            }
            let signed = ExitMessage::Bill(b.bill(exit, user())).sign(&exit_key());
            let r = ledger.check(&signed, tol, MAX_BACK);
            let refused = matches!(
                r,
                Err(BillError::Overcounted { way: Way::Download, .. })
                    | Err(BillError::Overcharged { way: Way::Download, .. })
            );
            prop_assert!(refused, "{:?}", r);
            prop_assert_eq!(ledger.payable(), Amount(0));
        }
    }

    #[test]
    fn thresholds_give_the_three_levels() {
        let t = ServiceThresholds {
            close: Amount(10),
            cut: Amount(20),
        };
        assert_eq!(t.service(Amount(10)), UserService::Full);
        assert_eq!(t.service(Amount(11)), UserService::FreeTier);
        assert_eq!(t.service(Amount(20)), UserService::FreeTier);
        assert_eq!(t.service(Amount(21)), UserService::Cut);
        assert_eq!(
            UserService::FreeTier.name(),
            payments::ServiceLevel::FreeTier.name()
        );
        assert_eq!(
            UserService::Full.name(),
            payments::ServiceLevel::Full.name()
        );
    }
}
