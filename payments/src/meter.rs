//! Metering: per neighbour and per destination, the bytes each way and their value at the
//! route's price at the moment the packet passed (network paper, "Metering overview").
//!
//! One [`Meter`] per neighbour, fed by the tunnel for every inner packet:
//! * [`Meter::forwarded_for`]: the neighbour sent us a packet to forward; it owes our price for
//!   the destination, which is the rest of the path's price plus our fee (the price we
//!   advertise for it);
//! * [`Meter::sent_through`]: we sent a packet through the neighbour; we owe the price it
//!   advertises for the destination.

use std::collections::HashMap;
use std::hash::Hash;

use crate::Amount;
use crate::price::{Price, cost};

/// Bytes and value each way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Bytes the neighbour sent us to forward.
    pub bytes_in: u64,
    /// Bytes we sent through the neighbour.
    pub bytes_out: u64,
    /// Their value: the neighbour owes it.
    pub value_in: Amount,
    /// Their value: we owe it.
    pub value_out: Amount,
    /// Value of what the neighbour sent us that our shaper dropped: not owed (we did not
    /// forward it), but the neighbour paid for it by its own metering, so its payments are
    /// weighed against the traffic it offered (see [`crate::Neighbour::weight`]).
    pub shaped_in: Amount,
}

impl Flow {
    fn add_in(&mut self, bytes: u64, value: Amount) {
        self.bytes_in = self.bytes_in.saturating_add(bytes);
        self.value_in = self.value_in.saturating_add(value);
    }

    fn add_out(&mut self, bytes: u64, value: Amount) {
        self.bytes_out = self.bytes_out.saturating_add(bytes);
        self.value_out = self.value_out.saturating_add(value);
    }
}

/// One neighbour's meter. Per-destination rows are bounded: past `max_destinations`, new
/// destinations are counted in one `other` row, so a neighbour spraying addresses cannot grow
/// our memory.
#[derive(Debug, Clone)]
pub struct Meter<D> {
    destinations: HashMap<D, Flow>,
    other: Flow,
    total: Flow,
    pending: Flow,
    max_destinations: usize,
}

impl<D: Hash + Eq + Clone> Meter<D> {
    /// An empty meter keeping at most `max_destinations` rows.
    pub fn new(max_destinations: usize) -> Meter<D> {
        Meter {
            destinations: HashMap::new(),
            other: Flow::default(),
            total: Flow::default(),
            pending: Flow::default(),
            max_destinations,
        }
    }

    fn add(&mut self, destination: &D, f: impl Fn(&mut Flow)) {
        f(&mut self.total);
        f(&mut self.pending);
        if let Some(row) = self.destinations.get_mut(destination) {
            f(row);
        } else if self.destinations.len() >= self.max_destinations {
            f(&mut self.other);
        } else {
            f(self.destinations.entry(destination.clone()).or_default());
        }
    }

    /// The neighbour sent us `bytes` to forward to `destination`; `price` is ours for it.
    pub fn forwarded_for(&mut self, destination: &D, bytes: u64, price: Price) {
        let v = cost(bytes, price);
        self.add(destination, |f| f.add_in(bytes, v));
    }

    /// We sent `bytes` to `destination` through the neighbour; `price` is the neighbour's.
    pub fn sent_through(&mut self, destination: &D, bytes: u64, price: Price) {
        let v = cost(bytes, price);
        self.add(destination, |f| f.add_out(bytes, v));
    }

    /// The neighbour sent us `bytes` that the shaper dropped; `price` is
    /// ours for it. Counted in the totals only, never owed.
    pub fn shaped_from(&mut self, bytes: u64, price: Price) {
        let v = cost(bytes, price);
        self.total.shaped_in = self.total.shaped_in.saturating_add(v);
        self.pending.shaped_in = self.pending.shaped_in.saturating_add(v);
    }

    /// What was metered since the last call: hand it to [`crate::PaymentPeer::meter`] once per
    /// metering interval.
    pub fn take(&mut self) -> Flow {
        std::mem::take(&mut self.pending)
    }

    /// Everything metered since the meter was created.
    pub fn total(&self) -> Flow {
        self.total
    }

    /// The row of one destination (or `None` when it was counted in `other`).
    pub fn destination(&self, destination: &D) -> Option<Flow> {
        self.destinations.get(destination).copied()
    }

    /// Destinations past the bound, together.
    pub fn other(&self) -> Flow {
        self.other
    }

    /// All rows.
    pub fn rows(&self) -> impl Iterator<Item = (&D, &Flow)> {
        self.destinations.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prices_each_direction_at_the_given_price() {
        let mut m = Meter::new(8);
        m.forwarded_for(&"a", 1000, 7);
        m.sent_through(&"a", 10, 3);
        m.sent_through(&"b", 5, 2);
        assert_eq!(m.destination(&"a").map(|f| f.value_in), Some(Amount(7000)));
        assert_eq!(m.destination(&"a").map(|f| f.value_out), Some(Amount(30)));
        let t = m.take();
        assert_eq!((t.bytes_in, t.bytes_out), (1000, 15));
        assert_eq!(t.value_out, Amount(40));
        assert_eq!(m.take(), Flow::default());
        assert_eq!(m.total().value_in, Amount(7000));
    }

    proptest! {
        /// Rows (bounded, with `other`) always add up to the total, and pending flows taken
        /// along the way add up to it too: metering neither drops nor duplicates value.
        #[test]
        fn rows_and_takes_add_up_to_the_total(
            ops in proptest::collection::vec((0u8..20, any::<bool>(), 0u64..100_000, any::<u32>(), any::<bool>()), 0..200),
            max in 0usize..8,
        ) {
            let mut m = Meter::new(max);
            let mut taken = Amount(0);
            let mut taken_out = Amount(0);
            for (d, inbound, bytes, price, take) in ops {
                if inbound { m.forwarded_for(&d, bytes, price) } else { m.sent_through(&d, bytes, price) }
                if take { let f = m.take(); taken = taken.saturating_add(f.value_in); taken_out = taken_out.saturating_add(f.value_out); }
            }
            let f = m.take();
            taken = taken.saturating_add(f.value_in);
            taken_out = taken_out.saturating_add(f.value_out);
            let rows_in: u128 = m.rows().map(|(_, f)| f.value_in.0).sum::<u128>() + m.other().value_in.0;
            let rows_out: u128 = m.rows().map(|(_, f)| f.value_out.0).sum::<u128>() + m.other().value_out.0;
            prop_assert!(m.rows().count() <= max);
            prop_assert_eq!(rows_in, m.total().value_in.0);
            prop_assert_eq!(rows_out, m.total().value_out.0);
            prop_assert_eq!(taken, m.total().value_in);
            prop_assert_eq!(taken_out, m.total().value_out);
        }
    }
}
