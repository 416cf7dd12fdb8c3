//! All neighbours of one router: what the daemon holds. Per packet it meters and shapes
//! ([`Payments::packet`]); once per metering interval
//! ([`Payments::tick`]) it moves what was metered into each neighbour's ledger, commits it, pays
//! what is due, and sets every neighbour's service level and weight in the shaper, so shaping
//! follows payment within one interval.

use clock::Instant;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use crate::peer::{PaymentOutput, PaymentPeer, PaymentPeerConfig};
use crate::price::Price;
use crate::shaper::{Shaper, ShaperConfig, ShaperVerdict};
use crate::store::{Direction, Store, StoreError};
use crate::{Amount, ChannelId, Meter, Settlement};

/// One neighbour: its payments and its meter.
#[derive(Debug, Clone)]
pub struct Neighbour<D> {
    /// Ledger and channels.
    pub peer: PaymentPeer,
    /// Packets since the last tick.
    pub meter: Meter<D>,
    /// What it paid us per interval, smoothed over about four intervals.
    pub paid_per_interval: u128,
    /// The value of what it offered us per interval (forwarded, plus what our shaper dropped),
    /// smoothed alike.
    pub value_per_interval: u128,
    /// Value our shaper dropped since the last interval.
    shaped: Amount,
    paid_at_last_tick: Amount,
    metered_at_last_tick: Amount,
}

/// The shaper weight of a neighbour that pays exactly our price (and of one that sent nothing
/// yet): weights are per mille of the metered value.
pub const NEUTRAL_WEIGHT: u64 = 1000;

impl<D> Neighbour<D> {
    /// Its weight in the shaper: what it paid per unit of value it offered us, per mille,
    /// both smoothed over about four intervals (1000: it pays our price; 2000: twice it), at
    /// least 1. A weight proportional to the absolute amount paid would feed back on itself
    /// (a larger share means more bytes, so more paid, so a larger share); the per-byte bid does
    /// not, so two payers bidding 2:1 settle at 2:1 of a contended link. The value offered
    /// includes what our shaper dropped, because a payer pays by its own metering, before our
    /// shaper: weighing only what passed would inflate every contended payer's weight and
    /// flatten the ratio.
    pub fn weight(&self) -> u64 {
        if self.value_per_interval == 0 {
            return NEUTRAL_WEIGHT;
        }
        let w = self
            .paid_per_interval
            .saturating_mul(u128::from(NEUTRAL_WEIGHT))
            / self.value_per_interval;
        u64::try_from(w).unwrap_or(u64::MAX).clamp(1, 1_000_000)
    }
}

/// A neighbour's payments at a glance (the daemon's `dump` rows carry the same and more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Its key, hex.
    pub neighbour: String,
    /// It owes us.
    pub owed_in: Amount,
    /// We owe it.
    pub owed_out: Amount,
    /// Paid to us on its channel.
    pub paid_in: Amount,
    /// Paid by us on our channel.
    pub paid_out: Amount,
    /// Best nonce of its channel.
    pub nonce_in: u64,
    /// Newest nonce of ours.
    pub nonce_out: u64,
    /// `full` or `free-tier`.
    pub service: &'static str,
    /// Its weight in the shaper.
    pub weight: u64,
    /// Updates of its we refused.
    pub refused: u64,
}

/// Every neighbour's payments (module documentation).
#[derive(Debug)]
pub struct Payments<D> {
    key: SigningKey,
    cfg: PaymentPeerConfig,
    neighbours: BTreeMap<[u8; 32], Neighbour<D>>,
    shaper: Shaper<[u8; 32]>,
    max_destinations: usize,
    interval: Duration,
    next_tick: Instant,
    paying: bool,
}

fn hex(k: &[u8; 32]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

impl<D: Hash + Eq + Clone> Payments<D> {
    /// No neighbours yet. `interval` is the metering interval.
    pub fn new(
        key: SigningKey,
        cfg: PaymentPeerConfig,
        shaper: ShaperConfig,
        interval: Duration,
        now: Instant,
    ) -> Payments<D> {
        Payments {
            key,
            cfg,
            neighbours: BTreeMap::new(),
            shaper: Shaper::new(shaper, now),
            max_destinations: 4096,
            interval,
            next_tick: now + interval,
            paying: true,
        }
    }

    /// Adds a neighbour (restored from `store`), with off-chain channel ids unless given.
    pub fn add(
        &mut self,
        neighbour: [u8; 32],
        channels: Option<(ChannelId, ChannelId)>,
        store: &impl Store,
    ) -> Result<(), StoreError> {
        let me = self.key.verifying_key().to_bytes();
        let (out, inbound) = channels.unwrap_or((
            ChannelId::offchain(&me, &neighbour),
            ChannelId::offchain(&neighbour, &me),
        ));
        let mut peer =
            PaymentPeer::restore(self.key.clone(), neighbour, out, inbound, self.cfg, store)?;
        peer.set_paying(self.paying);
        let paid = peer.paid_in();
        let metered = peer.metered_in();
        self.neighbours.insert(
            neighbour,
            Neighbour {
                peer,
                meter: Meter::new(self.max_destinations),
                paid_per_interval: 0,
                value_per_interval: 0,
                shaped: Amount(0),
                paid_at_last_tick: paid,
                metered_at_last_tick: metered,
            },
        );
        Ok(())
    }

    /// A neighbour.
    pub fn neighbour(&self, key: &[u8; 32]) -> Option<&Neighbour<D>> {
        self.neighbours.get(key)
    }

    /// Our payment public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Adds value metered elsewhere (the daemon meters in the tunnels): `value_in` of service we
    /// gave `neighbour`, `value_out` of service it gave us. Committed at the next interval.
    pub fn meter(&mut self, neighbour: &[u8; 32], value_in: Amount, value_out: Amount) {
        if let Some(n) = self.neighbours.get_mut(neighbour) {
            n.peer.meter(value_in, value_out);
        }
    }

    /// Value of traffic from `neighbour` that a shaper elsewhere (the daemon's tunnels) dropped:
    /// not owed, counted in its weight.
    pub fn shaped(&mut self, neighbour: &[u8; 32], value: Amount) {
        if let Some(n) = self.neighbours.get_mut(neighbour) {
            n.shaped = n.shaped.saturating_add(value);
        }
    }

    /// Whether we pay our neighbours (see [`PaymentPeer::set_paying`]); also for neighbours added later.
    pub fn set_paying(&mut self, on: bool) {
        self.paying = on;
        for n in self.neighbours.values_mut() {
            n.peer.set_paying(on);
        }
    }

    /// Moves our channel to `neighbour` ([`PaymentPeer::move_out`]) and its channel to us
    /// ([`PaymentPeer::move_in`]) where given; true when something moved.
    pub fn move_channels(
        &mut self,
        neighbour: &[u8; 32],
        out: Option<ChannelId>,
        inbound: Option<ChannelId>,
        store: &mut impl Store,
    ) -> Result<bool, StoreError> {
        let Some(n) = self.neighbours.get_mut(neighbour) else {
            return Ok(false);
        };
        let mut moved = false;
        if let Some(c) = out {
            moved |= n.peer.move_out(c, store)?;
        }
        if let Some(c) = inbound {
            moved |= n.peer.move_in(c, store)?;
        }
        Ok(moved)
    }

    /// Every neighbour, in key order.
    pub fn neighbours(&self) -> impl Iterator<Item = (&[u8; 32], &Neighbour<D>)> {
        self.neighbours.iter()
    }

    /// The shaper.
    pub fn shaper(&self) -> &Shaper<[u8; 32]> {
        &self.shaper
    }

    /// One packet of `bytes` to or from `neighbour`, shaped, then metered if it passed:
    /// [`Direction::In`], the neighbour sent it for us to forward to `destination` and `price`
    /// is ours for it; [`Direction::Out`], we send it to `destination` through the neighbour
    /// and `price` is the neighbour's. Both directions are shaped. Packets of unknown
    /// neighbours pass unmetered.
    pub fn packet(
        &mut self,
        now: Instant,
        neighbour: &[u8; 32],
        direction: Direction,
        destination: &D,
        bytes: u32,
        price: Price,
    ) -> ShaperVerdict {
        let Some(n) = self.neighbours.get_mut(neighbour) else {
            return ShaperVerdict::Pass;
        };
        let v = self.shaper.admit(now, neighbour, bytes);
        match (v, direction) {
            (ShaperVerdict::Pass, Direction::In) => {
                n.meter.forwarded_for(destination, u64::from(bytes), price)
            }
            (ShaperVerdict::Pass, Direction::Out) => {
                n.meter.sent_through(destination, u64::from(bytes), price)
            }
            (ShaperVerdict::Drop, Direction::In) => n.meter.shaped_from(u64::from(bytes), price),
            (ShaperVerdict::Drop, Direction::Out) => {}
        }
        v
    }

    /// When [`Payments::tick`] is next due.
    pub fn next_tick(&self) -> Instant {
        self.next_tick
    }

    /// Timers of every neighbour, and at each metering interval: meter into the ledgers, commit,
    /// pay what is due, set levels and weights in the shaper. Returns per neighbour what to send
    /// and what happened.
    pub fn tick(
        &mut self,
        now: Instant,
        store: &mut impl Store,
    ) -> Result<Vec<([u8; 32], PaymentOutput)>, StoreError> {
        let interval = now >= self.next_tick;
        if interval {
            self.next_tick = now + self.interval;
        }
        let mut outs = Vec::new();
        for (key, n) in self.neighbours.iter_mut() {
            let mut out = PaymentOutput::default();
            if interval {
                let f = n.meter.take();
                n.peer.meter(f.value_in, f.value_out);
                let o = n.peer.commit_metering(store)?;
                out.events.extend(o.events);
                let paid = n.peer.paid_in();
                let delta = paid.checked_sub(n.paid_at_last_tick).unwrap_or_default().0;
                n.paid_at_last_tick = paid;
                let metered = n.peer.metered_in();
                let value = metered
                    .checked_sub(n.metered_at_last_tick)
                    .unwrap_or_default()
                    .saturating_add(f.shaped_in)
                    .saturating_add(std::mem::take(&mut n.shaped))
                    .0;
                n.metered_at_last_tick = metered;
                // Smoothed over about four intervals.
                n.paid_per_interval = n.paid_per_interval - n.paid_per_interval / 4 + delta / 4;
                n.value_per_interval = n.value_per_interval - n.value_per_interval / 4 + value / 4;
            }
            let o = n.peer.poll(now, store)?;
            out.send.extend(o.send);
            out.events.extend(o.events);
            if interval {
                let weight = n.weight();
                self.shaper.set(now, key, n.peer.service_level(), weight);
            }
            if !out.send.is_empty() || !out.events.is_empty() {
                outs.push((*key, out));
            }
        }
        Ok(outs)
    }

    /// A payment message from `neighbour`.
    pub fn handle(
        &mut self,
        now: Instant,
        neighbour: &[u8; 32],
        bytes: &[u8],
        settlement: &mut impl Settlement,
        store: &mut impl Store,
    ) -> Result<PaymentOutput, StoreError> {
        let Some(n) = self.neighbours.get_mut(neighbour) else {
            return Ok(PaymentOutput::default());
        };
        let out = n.peer.handle(now, bytes, settlement, store)?;
        if out
            .events
            .iter()
            .any(|e| matches!(e, crate::PaymentEvent::Service(_)))
        {
            let weight = n.weight();
            self.shaper
                .set(now, neighbour, n.peer.service_level(), weight);
        }
        Ok(out)
    }

    /// Every neighbour's view, in key order.
    pub fn views(&self) -> Vec<View> {
        self.neighbours
            .iter()
            .map(|(k, n)| {
                let p = &n.peer;
                View {
                    neighbour: hex(k),
                    owed_in: p.owed_in(),
                    owed_out: p.owed_out(),
                    paid_in: p.payee().paid(),
                    paid_out: p.payer().paid(),
                    nonce_in: p.payee().nonce(),
                    nonce_out: p.payer().nonce(),
                    service: p.service_level().name(),
                    weight: self.shaper.class(k).map(|c| c.weight).unwrap_or(1),
                    refused: p.refusals.total(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FixedDeposits, MemStore, ServiceLevel, Thresholds};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// B forwards for C; C pays, stops paying, pays again. B's shaper follows within one
    /// metering interval each time.
    #[test]
    fn service_follows_payment_within_one_interval() -> Result<(), StoreError> {
        let t0 = clock::now();
        let iv = Duration::from_secs(5);
        let cfg = PaymentPeerConfig {
            thresholds: Thresholds {
                pay: Amount(1_000),
                close: Amount(10_000),
                drift_ppm: 0,
            },
            ..PaymentPeerConfig::default()
        };
        let (kb, kc) = (key(2), key(3));
        let (pb, pc) = (kb.verifying_key().to_bytes(), kc.verifying_key().to_bytes());
        let (mut sb, mut sc) = (MemStore::default(), MemStore::default());
        let mut b: Payments<u8> = Payments::new(kb.clone(), cfg, ShaperConfig::default(), iv, t0);
        let mut c: Payments<u8> = Payments::new(kc, cfg, ShaperConfig::default(), iv, t0);
        b.add(pc, None, &sb)?;
        c.add(pb, None, &sc)?;
        let mut dep = FixedDeposits::default();
        dep.set(ChannelId::offchain(&pc, &pb), Amount(u128::MAX));
        let mut now = t0;
        let mut c_pays = true;
        let mut levels = Vec::new();
        let mut received = Vec::new();
        for interval in 1..=12u32 {
            // C sends 100 packets of 100 bytes through B at price 10 (1 000 wei per packet).
            for _ in 0..100 {
                now = now + iv / 200;
                c.packet(now, &pb, Direction::Out, &1, 100, 10);
                b.packet(now, &pc, Direction::In, &1, 100, 10);
            }
            now = t0 + iv * interval;
            if interval == 4 {
                c_pays = false;
            }
            if interval == 8 {
                c_pays = true;
            }
            let mut to_b: Vec<Vec<u8>> = c
                .tick(now, &mut sc)?
                .into_iter()
                .flat_map(|(_, o)| o.send)
                .collect();
            while c_pays && !to_b.is_empty() {
                let mut to_c = Vec::new();
                for m in to_b.drain(..) {
                    let r = b.handle(now, &pc, &m, &mut dep, &mut sb)?;
                    if r.events
                        .iter()
                        .any(|e| matches!(e, crate::PaymentEvent::PaymentReceived { .. }))
                    {
                        received.push(interval);
                    }
                    to_c.extend(r.send);
                }
                for m in to_c {
                    to_b.extend(c.handle(now, &pb, &m, &mut dep, &mut sc)?.send);
                }
            }
            b.tick(now, &mut sb)?;
            levels.push(b.shaper().class(&pc).map(|c| c.level));
        }
        let full = Some(ServiceLevel::Full);
        let free = Some(ServiceLevel::FreeTier);
        // 100 000 wei per interval unpaid passes the 10 000 close threshold at the first tick
        // without payment (interval 4).
        assert_eq!(
            levels.get(..7),
            Some(&[full, full, full, free, free, free, free][..])
        );
        // C's link works again from interval 8; its pending update is retransmitted when its
        // backoff (doubled at each unanswered try, at most 30 s) expires. The interval B
        // receives the payment, C is back at full service, and stays there.
        let back = received.iter().copied().find(|i| *i >= 8);
        assert!(back.is_some_and(|i| i <= 8 + 30 / 5), "{received:?}");
        let back = back.unwrap_or(0) as usize;
        assert!(
            levels
                .get(7..back - 1)
                .is_some_and(|l| l.iter().all(|l| *l == free))
        );
        assert!(
            levels
                .get(back - 1..)
                .is_some_and(|l| l.iter().all(|l| *l == full)),
            "{levels:?}"
        );
        let v = b.views();
        assert_eq!(v.len(), 1);
        assert!(
            v.first()
                .is_some_and(|v| v.service == "full" && v.nonce_in > 0)
        );
        assert_eq!(
            b.neighbour(&pc).map(|n| n.peer.payee().paid()),
            c.neighbour(&pb).map(|n| n.peer.payer().paid())
        );
        Ok(())
    }
}
