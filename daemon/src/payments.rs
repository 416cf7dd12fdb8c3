//! Metering of the mesh tunnels (spec/payments.md, "Metering"): the [`tunnel::PacketHook`] that
//! prices every inner packet with the route's price at that moment and feeds one
//! [`payments::Meter`] per neighbour.
//!
//! Prices come from the engine's route table, but never per packet: the daemon publishes the
//! installed routes' prices into a [`PriceTable`] whenever routes change, and each tunnel's
//! [`MeteringHook`] caches the price per destination address until the table's generation moves.
//!
//! Which price applies (network paper, "Metering overview"):
//! * a packet a neighbour sent us to forward ([`tunnel::hook::Direction::In`]) costs it our price
//!   for the destination, the rest of the path's price plus our fee ([`Prices::ours`]);
//! * a packet we send through a neighbour ([`tunnel::hook::Direction::Out`]) costs us the price
//!   the neighbour advertised for the destination ([`Prices::theirs`]).
//!
//! A destination without a route (our own addresses, Babel's link-local traffic) is counted in
//! bytes at price 0.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use babel_wire::Prefix;
use payments::{Meter, Price};
use tunnel::PeerId;
use tunnel::hook::{Direction, PacketHook, Verdict};

/// The two prices of one destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prices {
    /// What we advertise: the received price plus our fee (a neighbour forwarding through us
    /// pays this).
    pub ours: Price,
    /// What the neighbour we route through advertised (we pay this).
    pub theirs: Price,
}

/// The installed routes' prices, published by the daemon on route changes and read by every
/// tunnel's hook. Lookups are longest-prefix over a list sorted by decreasing prefix length;
/// the hooks cache their results, so this runs once per destination and route change.
#[derive(Debug, Default)]
pub struct PriceTable {
    generation: AtomicU64,
    routes: RwLock<Vec<(Prefix, Prices)>>,
}

impl PriceTable {
    /// Replaces the table (call after every batch of route changes).
    pub fn publish(&self, routes: impl IntoIterator<Item = (Prefix, Prices)>) {
        let mut v: Vec<(Prefix, Prices)> = routes.into_iter().collect();
        v.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        if let Ok(mut r) = self.routes.write() {
            if *r == v {
                return;
            }
            *r = v;
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Increases whenever the table changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The prices of the most specific route covering `destination`.
    pub fn lookup(&self, destination: IpAddr) -> Option<Prices> {
        let host = Prefix::host(destination);
        let r = self.routes.read().ok()?;
        r.iter().find(|(p, _)| p.contains(&host)).map(|(_, x)| *x)
    }
}

/// Most destinations a hook caches before it starts over (bounded memory against a
/// neighbour spraying addresses).
pub const MAX_CACHED: usize = 4096;
/// Most destination rows per neighbour meter (the rest are counted together).
pub const MAX_DESTINATIONS: usize = 256;

/// The meters of one tunnel device, per peer; shared between the tunnel thread (writes) and
/// the daemon (reads and takes).
pub type Meters = Arc<Mutex<HashMap<PeerId, Meter<IpAddr>>>>;

/// One neighbour's meter as `dump` and `dump json` show it: totals since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MeterRow {
    /// The mesh interface.
    pub interface: String,
    /// The neighbour's public key (base64).
    pub neighbour: String,
    /// Its tunnel interface, while up.
    pub tunnel: Option<String>,
    /// Bytes the neighbour sent us to forward.
    pub bytes_in: u64,
    /// Bytes we sent through the neighbour.
    pub bytes_out: u64,
    /// Their value at the prices of the moment (wei): the neighbour owes it.
    pub value_in: u128,
    /// Their value (wei): we owe it.
    pub value_out: u128,
}

impl MeterRow {
    /// The `dump` line.
    pub fn line(&self) -> String {
        format!(
            "add meter {} interface {} tunnel {} bytes-in {} bytes-out {} value-in {} value-out {}",
            self.neighbour,
            self.interface,
            self.tunnel.as_deref().unwrap_or("-"),
            self.bytes_in,
            self.bytes_out,
            self.value_in,
            self.value_out
        )
    }
}

/// Every mesh neighbour's [`MeterRow`], keyed by (interface, neighbour), refreshed by the mesh
/// drivers once a second.
pub type MeterBoard = Arc<Mutex<BTreeMap<(String, String), MeterRow>>>;

/// The `dump` lines of a board.
pub fn dump_lines(board: &MeterBoard) -> Vec<String> {
    board
        .lock()
        .map(|b| b.values().map(MeterRow::line).collect())
        .unwrap_or_default()
}

/// The `dump json` rows of a board.
pub fn rows(board: &MeterBoard) -> Vec<MeterRow> {
    board
        .lock()
        .map(|b| b.values().cloned().collect())
        .unwrap_or_default()
}

/// The [`PacketHook`] that meters: prices each packet and adds it to its peer's meter.
#[derive(Debug)]
pub struct MeteringHook {
    table: Arc<PriceTable>,
    seen_generation: u64,
    cache: HashMap<IpAddr, Prices>,
    meters: Meters,
}

impl MeteringHook {
    /// A hook reading prices from `table` and counting into `meters`.
    pub fn new(table: Arc<PriceTable>, meters: Meters) -> Self {
        MeteringHook {
            seen_generation: table.generation(),
            table,
            cache: HashMap::new(),
            meters,
        }
    }

    /// The prices of `destination`, from the cache unless the table changed.
    fn prices(&mut self, destination: IpAddr) -> Prices {
        let g = self.table.generation();
        if g != self.seen_generation || self.cache.len() >= MAX_CACHED {
            self.cache.clear();
            self.seen_generation = g;
        }
        if let Some(p) = self.cache.get(&destination) {
            return *p;
        }
        let p = self.table.lookup(destination).unwrap_or_default();
        self.cache.insert(destination, p);
        p
    }
}

impl PacketHook for MeteringHook {
    fn packet(
        &mut self,
        direction: Direction,
        peer: PeerId,
        destination: IpAddr,
        len: usize,
    ) -> Verdict {
        let prices = self.prices(destination);
        let bytes = len as u64;
        if let Ok(mut m) = self.meters.lock() {
            let meter = m
                .entry(peer)
                .or_insert_with(|| Meter::new(MAX_DESTINATIONS));
            match direction {
                Direction::In => meter.forwarded_for(&destination, bytes, prices.ours),
                Direction::Out => meter.sent_through(&destination, bytes, prices.theirs),
            }
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use payments::Amount;

    fn prefix(s: &str, len: u8) -> Prefix {
        Prefix::new(s.parse().unwrap(), len).unwrap()
    }

    #[test]
    fn prices_by_longest_prefix_and_direction() {
        let table = Arc::new(PriceTable::default());
        table.publish([
            (prefix("10.0.0.0", 8), Prices { ours: 5, theirs: 3 }),
            (prefix("10.1.0.0", 16), Prices { ours: 9, theirs: 7 }),
        ]);
        let meters = Meters::default();
        let mut h = MeteringHook::new(table, meters.clone());
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        let b: IpAddr = "10.2.0.1".parse().unwrap();
        let local: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(h.packet(Direction::In, PeerId(1), a, 100), Verdict::Pass);
        assert_eq!(h.packet(Direction::Out, PeerId(1), b, 10), Verdict::Pass);
        assert_eq!(
            h.packet(Direction::Out, PeerId(2), local, 1000),
            Verdict::Pass
        );
        let m = meters.lock().unwrap();
        let t1 = m[&PeerId(1)].total();
        assert_eq!((t1.bytes_in, t1.value_in), (100, Amount(900)));
        assert_eq!((t1.bytes_out, t1.value_out), (10, Amount(30)));
        let t2 = m[&PeerId(2)].total();
        assert_eq!((t2.bytes_out, t2.value_out), (1000, Amount(0)));
    }

    #[test]
    fn a_route_change_reaches_the_cache() {
        let table = Arc::new(PriceTable::default());
        table.publish([(prefix("10.0.0.0", 8), Prices { ours: 1, theirs: 1 })]);
        let meters = Meters::default();
        let mut h = MeteringHook::new(table.clone(), meters.clone());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let _ = h.packet(Direction::In, PeerId(0), a, 10);
        let g = table.generation();
        // Publishing the same table is no change.
        table.publish([(prefix("10.0.0.0", 8), Prices { ours: 1, theirs: 1 })]);
        assert_eq!(table.generation(), g);
        table.publish([(prefix("10.0.0.0", 8), Prices { ours: 4, theirs: 1 })]);
        let _ = h.packet(Direction::In, PeerId(0), a, 10);
        let t = meters.lock().unwrap()[&PeerId(0)].total();
        assert_eq!(t.value_in, Amount(10 + 40));
    }

    #[test]
    fn dump_line() {
        let board = MeterBoard::default();
        board.lock().unwrap().insert(
            ("eth0".into(), "K".into()),
            MeterRow {
                interface: "eth0".into(),
                neighbour: "K".into(),
                tunnel: Some("mt0".into()),
                bytes_in: 1,
                bytes_out: 2,
                value_in: 3,
                value_out: 4,
            },
        );
        assert_eq!(
            dump_lines(&board),
            vec![
                "add meter K interface eth0 tunnel mt0 bytes-in 1 bytes-out 2 value-in 3 value-out 4"
            ]
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let table = Arc::new(PriceTable::default());
        let mut h = MeteringHook::new(table, Meters::default());
        for i in 0..(MAX_CACHED as u32 * 2) {
            let _ = h.packet(Direction::In, PeerId(0), IpAddr::from(i.to_be_bytes()), 1);
            assert!(h.cache.len() <= MAX_CACHED);
        }
    }
}
