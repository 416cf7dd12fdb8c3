//! Metering of the mesh tunnels (spec/payments.md, "Metering"): the [`tunnel::PacketHook`] that
//! prices every inner packet with the route's price at that moment and feeds one
//! [`payments::Meter`] per neighbour.
//!
//! Prices come from the engine's route table, but never per packet: the daemon publishes the
//! installed routes' prices into a [`PriceTable`] whenever routes change, and each tunnel's
//! [`MeteringHook`] caches the price per destination address until the table's generation moves.
//!
//! Which price applies (network paper, "Metering overview"):
//! * a packet a neighbour sent us to forward ([`tunnel::hook::PacketDirection::In`]) costs it our price
//!   for the destination, the rest of the path's price plus our fee ([`Prices::ours`]);
//! * a packet we send through a neighbour ([`tunnel::hook::PacketDirection::Out`]) costs us the price
//!   the neighbour advertised for the destination ([`Prices::theirs`]).
//!
//! A destination without a route (our own addresses, Babel's link-local traffic) is counted in
//! bytes at price 0.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use babel_wire::Prefix;
use payments::{Amount, Meter, Price, ServiceLevel, Shaper};
use tunnel::PeerId;
use tunnel::hook::{PacketDirection, PacketHook, PacketVerdict};

use crate::config::ParseError;

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
    /// Value (wei) of what the neighbour sent that our shaper dropped (not owed; weighs its
    /// payments).
    pub value_shaped_in: u128,
}

impl MeterRow {
    /// The `dump` line.
    pub fn line(&self) -> String {
        format!(
            "add meter {} interface {} tunnel {} bytes-in {} bytes-out {} value-in {} value-out {} shaped-in {}",
            self.neighbour,
            self.interface,
            self.tunnel.as_deref().unwrap_or("-"),
            self.bytes_in,
            self.bytes_out,
            self.value_in,
            self.value_out,
            self.value_shaped_in
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

/// One mesh link's shaper (spec/payments.md, "Service follows payment"), shared between the
/// tunnel's hook (which admits every packet) and the mesh driver (which sets each neighbour's
/// level and weight from the payment loop's [`ServiceTable`]).
pub type LinkShaper = Arc<Mutex<Shaper<PeerId>>>;

/// The [`PacketHook`] that meters: prices each packet and adds it to its peer's meter; with a
/// shaper, it first asks the shaper and drops what is over the neighbour's rate (both
/// directions), metering only what passed.
#[derive(Debug)]
pub struct MeteringHook {
    table: Arc<PriceTable>,
    seen_generation: u64,
    cache: HashMap<IpAddr, Prices>,
    meters: Meters,
    shaper: Option<LinkShaper>,
}

/// Traffic between the two routers of a tunnel (Babel, payment messages: link-local and
/// multicast destinations) is never shaped: a neighbour on the free tier must still route and
/// pay its way back.
fn control_traffic(destination: IpAddr) -> bool {
    destination.is_multicast() || babel_wire::is_link_local(&destination)
}

impl MeteringHook {
    /// A hook reading prices from `table` and counting into `meters`.
    pub fn new(table: Arc<PriceTable>, meters: Meters) -> Self {
        MeteringHook {
            seen_generation: table.generation(),
            table,
            cache: HashMap::new(),
            meters,
            shaper: None,
        }
    }

    /// Shapes every packet with `shaper` before metering it.
    pub fn with_shaper(mut self, shaper: LinkShaper) -> Self {
        self.shaper = Some(shaper);
        self
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
        direction: PacketDirection,
        peer: PeerId,
        destination: IpAddr,
        len: usize,
    ) -> PacketVerdict {
        let dropped = self.shaper.as_ref().is_some_and(|sh| {
            !control_traffic(destination)
                && sh.lock().is_ok_and(|mut sh| {
                    sh.admit(clock::now(), &peer, u32::try_from(len).unwrap_or(u32::MAX))
                        == payments::ShaperVerdict::Drop
                })
        });
        let prices = self.prices(destination);
        let bytes = len as u64;
        if dropped {
            // Not owed; weighs the neighbour's payments (what it offered, as it pays).
            if direction == PacketDirection::In
                && let Ok(mut m) = self.meters.lock()
            {
                m.entry(peer)
                    .or_insert_with(|| Meter::new(MAX_DESTINATIONS))
                    .shaped_from(bytes, prices.ours);
            }
            return PacketVerdict::Drop;
        }
        if let Ok(mut m) = self.meters.lock() {
            let meter = m
                .entry(peer)
                .or_insert_with(|| Meter::new(MAX_DESTINATIONS));
            match direction {
                PacketDirection::In => meter.forwarded_for(&destination, bytes, prices.ours),
                PacketDirection::Out => meter.sent_through(&destination, bytes, prices.theirs),
            }
        }
        PacketVerdict::Pass
    }
}

/// The `pay-*` configuration statements, for the man page (spec/payments.md, "Configuration").
pub const CONFIG_HELP: &str =
    "Payments between mesh neighbours (configuration file statements, spec/payments.md):
  pay-enable BOOL            run the payment loop and the shapers on the mesh tunnels (false)
  pay-threshold WEI          pay a neighbour when we owe it more than this (3*10^17)
  pay-close-threshold WEI    cut a neighbour owing more to the free tier (10 * pay-threshold)
  pay-free-tier KBIT/S       the free tier's rate (1000)
  pay-link-capacity KBIT/S   each mesh link's capacity, shared by payment when set (none)
  pay-deposit WEI            deposit accepted on each neighbour's channel to us (10^21)
  pay-ledger PATH            the redb ledger (the state file's path + .payments.redb)
  pay-private-key HEX        ed25519 payment key seed, 64 hex digits (generated, in LEDGER.key)
  pay-interval SECONDS       the metering interval (5)
  pay-port PORT              UDP port of payment messages on the tunnels (6698)
  pay-premium PERCENT        pay this much above the metered price (0)
  pay-withhold BOOL          sign no new payments; also at runtime (false)";

/// Default UDP port of payment messages, on the tunnels' link-local addresses (Babel is 6696,
/// mesh discovery 6697).
pub const PAY_PORT: u16 = 6698;

/// `pay-*` statements (spec/payments.md, "Configuration").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayStatement {
    /// `pay-enable BOOL`: run the payment loop on the mesh tunnels.
    Enable(bool),
    /// `pay-threshold WEI`.
    Threshold(u128),
    /// `pay-close-threshold WEI`.
    CloseThreshold(u128),
    /// `pay-free-tier KBIT/S`.
    FreeTier(u64),
    /// `pay-link-capacity KBIT/S` (0: none).
    LinkCapacity(u64),
    /// `pay-deposit WEI`.
    Deposit(u128),
    /// `pay-ledger PATH`.
    Ledger(PathBuf),
    /// `pay-private-key HEX`.
    PrivateKey(String),
    /// `pay-interval SECONDS`.
    Interval(u32),
    /// `pay-port PORT`.
    Port(u16),
    /// `pay-premium PERCENT`.
    Premium(u32),
    /// `pay-withhold BOOL` (runtime too).
    Withhold(bool),
}

impl PayStatement {
    /// Parses `keyword value`.
    pub fn parse(keyword: &str, value: Option<&str>) -> Result<PayStatement, ParseError> {
        let v = value.ok_or_else(|| ParseError::Missing(keyword.to_owned()))?;
        let bad = |why| ParseError::BadValue {
            what: keyword.to_owned(),
            value: v.to_owned(),
            why,
        };
        let wei = || {
            v.parse::<u128>()
                .map_err(|_| bad("expected an amount in wei"))
        };
        let kbit = || {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n <= 100_000_000)
                .ok_or_else(|| bad("expected kbit/s, at most 100000000"))
        };
        let flag = || match v {
            "true" | "yes" => Ok(true),
            "false" | "no" => Ok(false),
            _ => Err(bad("expected true or false")),
        };
        Ok(match keyword {
            "pay-enable" => PayStatement::Enable(flag()?),
            "pay-withhold" => PayStatement::Withhold(flag()?),
            "pay-threshold" => PayStatement::Threshold(wei()?),
            "pay-close-threshold" => PayStatement::CloseThreshold(wei()?),
            "pay-deposit" => PayStatement::Deposit(wei()?),
            "pay-free-tier" => PayStatement::FreeTier(kbit()?),
            "pay-link-capacity" => PayStatement::LinkCapacity(kbit()?),
            "pay-ledger" => PayStatement::Ledger(PathBuf::from(v)),
            "pay-private-key" => {
                let ok = v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
                if !ok {
                    return Err(bad("expected 64 hex digits (an ed25519 seed)"));
                }
                PayStatement::PrivateKey(v.to_owned())
            }
            "pay-interval" => PayStatement::Interval(
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=3600).contains(n))
                    .ok_or_else(|| bad("expected 1 to 3600 seconds"))?,
            ),
            "pay-port" => PayStatement::Port(
                v.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("expected a UDP port"))?,
            ),
            "pay-premium" => PayStatement::Premium(
                v.parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 10_000)
                    .ok_or_else(|| bad("expected 0 to 10000 percent"))?,
            ),
            _ => return Err(ParseError::Unknown(keyword.to_owned())),
        })
    }

    /// Whether it may be sent at runtime.
    pub fn runtime(&self) -> bool {
        matches!(self, PayStatement::Withhold(_))
    }
}

/// The `pay-*` settings; `None` is the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaySettings {
    /// `pay-enable`.
    pub enable: bool,
    /// `pay-threshold`.
    pub threshold: Option<u128>,
    /// `pay-close-threshold`.
    pub close_threshold: Option<u128>,
    /// `pay-free-tier`, kbit/s.
    pub free_tier_kbit: Option<u64>,
    /// `pay-link-capacity`, kbit/s.
    pub link_capacity_kbit: Option<u64>,
    /// `pay-deposit`.
    pub deposit: Option<u128>,
    /// `pay-ledger`.
    pub ledger: Option<PathBuf>,
    /// `pay-private-key` (hex seed).
    pub private_key: Option<String>,
    /// `pay-interval`, seconds.
    pub interval_s: Option<u32>,
    /// `pay-port`.
    pub port: Option<u16>,
    /// `pay-premium`, percent.
    pub premium_percent: Option<u32>,
    /// `pay-withhold`.
    pub withhold: bool,
}

/// Default deposit accepted on a neighbour's channel without a settlement layer: 1000 * 10^18
/// wei.
pub const DEFAULT_DEPOSIT: u128 = 1_000 * 1_000_000_000_000_000_000;
/// Default metering interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

impl PaySettings {
    /// Applies one statement.
    pub fn apply(&mut self, s: PayStatement) {
        match s {
            PayStatement::Enable(b) => self.enable = b,
            PayStatement::Threshold(w) => self.threshold = Some(w),
            PayStatement::CloseThreshold(w) => self.close_threshold = Some(w),
            PayStatement::FreeTier(k) => self.free_tier_kbit = Some(k),
            PayStatement::LinkCapacity(k) => self.link_capacity_kbit = Some(k),
            PayStatement::Deposit(w) => self.deposit = Some(w),
            PayStatement::Ledger(p) => self.ledger = Some(p),
            PayStatement::PrivateKey(k) => self.private_key = Some(k),
            PayStatement::Interval(s) => self.interval_s = Some(s),
            PayStatement::Port(p) => self.port = Some(p),
            PayStatement::Premium(p) => self.premium_percent = Some(p),
            PayStatement::Withhold(b) => self.withhold = b,
        }
    }

    /// Thresholds: the configured ones over rita's defaults; a close threshold not given is ten
    /// times the pay threshold.
    pub fn thresholds(&self) -> payments::Thresholds {
        let d = payments::Thresholds::default();
        let pay = self.threshold.map_or(d.pay, Amount);
        let close = self
            .close_threshold
            .map_or_else(|| Amount(pay.0.saturating_mul(10)), Amount);
        payments::Thresholds { pay, close, ..d }
    }

    /// The shaper of each mesh link.
    pub fn shaper(&self) -> payments::ShaperConfig {
        let d = payments::ShaperConfig::default();
        payments::ShaperConfig {
            capacity: self
                .link_capacity_kbit
                .filter(|k| *k > 0)
                .map(|k| k * 1000 / 8),
            free_tier: self.free_tier_kbit.map_or(d.free_tier, |k| k * 1000 / 8),
            ..d
        }
    }

    /// The metering interval.
    pub fn interval(&self) -> Duration {
        self.interval_s
            .map_or(DEFAULT_INTERVAL, |s| Duration::from_secs(u64::from(s)))
    }

    /// The ledger's path: `pay-ledger`, else next to the state file.
    pub fn ledger_path(&self, state_file: Option<&std::path::Path>) -> PathBuf {
        if let Some(p) = &self.ledger {
            return p.clone();
        }
        let base = state_file
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("/var/lib/babel-state"), PathBuf::from);
        let mut s = base.into_os_string();
        s.push(".payments.redb");
        PathBuf::from(s)
    }
}

/// Service levels the payment loop decided, per neighbour tunnel key (base64), read by the mesh
/// drivers at every timer tick and applied to their [`LinkShaper`]s.
#[derive(Debug, Default)]
pub struct ServiceTable {
    /// Increases at every change.
    pub generation: u64,
    /// Level and weight per neighbour.
    pub levels: HashMap<String, (ServiceLevel, u64)>,
}

/// The shaping the payment loop asks of the mesh drivers: each link's shaper settings and the
/// levels it decided.
#[derive(Debug, Clone)]
pub struct Shaping {
    /// Per mesh link.
    pub config: payments::ShaperConfig,
    /// Written by the payment loop.
    pub levels: Arc<Mutex<ServiceTable>>,
}

impl Shaping {
    /// A new link shaper.
    pub fn link(&self) -> LinkShaper {
        Arc::new(Mutex::new(Shaper::new(self.config, clock::now())))
    }

    /// Applies the levels to `shaper` when they changed since `seen` (a mesh driver calls this
    /// at every timer tick, so shaping follows a decision within a tick). `peer_of` maps a
    /// neighbour's tunnel key (base64) to its peer on this link.
    pub fn apply(
        &self,
        shaper: &LinkShaper,
        seen: &mut u64,
        peer_of: impl Fn(&str) -> Option<PeerId>,
    ) {
        let Ok(t) = self.levels.lock() else { return };
        if t.generation == *seen {
            return;
        }
        *seen = t.generation;
        let Ok(mut sh) = shaper.lock() else { return };
        let now = clock::now();
        for (key, (level, weight)) in &t.levels {
            if let Some(id) = peer_of(key) {
                let changed = sh.class(&id).is_none_or(|c| c.level != *level);
                sh.set(now, &id, *level, *weight);
                if changed {
                    tracing::info!("shaping: neighbour {key} at {}", level.name());
                }
            }
        }
    }
}

/// A neighbour's payments, as `dump`, `dump json` and `babelctl show payments` show them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PaymentRow {
    /// Its tunnel key (base64).
    pub neighbour: String,
    /// Its tunnel interface.
    pub tunnel: String,
    /// Its payment key (hex), once learnt.
    pub payment_key: Option<String>,
    /// It owes us (wei).
    pub owed_in: u128,
    /// We owe it (wei).
    pub owed_out: u128,
    /// Paid to us on all its channels (their cumulative amounts summed, wei).
    pub paid_in: u128,
    /// Paid by us on all our channels (their cumulative amounts summed, wei).
    pub paid_out: u128,
    /// Best nonce on its channel.
    pub nonce_in: u64,
    /// Newest nonce on ours.
    pub nonce_out: u64,
    /// `full` or `free-tier`.
    pub service: String,
    /// Its shaper weight (1000: pays our price).
    pub weight: u64,
    /// Its updates we refused.
    pub refused: u64,
    /// Whether we pay it (`pay-withhold` off).
    pub paying: bool,
}

impl PaymentRow {
    /// The `dump` line.
    pub fn line(&self) -> String {
        format!(
            "add payment {} tunnel {} key {} owed-in {} owed-out {} paid-in {} paid-out {} nonce-in {} nonce-out {} service {} weight {} refused {} paying {}",
            self.neighbour,
            self.tunnel,
            self.payment_key.as_deref().unwrap_or("-"),
            self.owed_in,
            self.owed_out,
            self.paid_in,
            self.paid_out,
            self.nonce_in,
            self.nonce_out,
            self.service,
            self.weight,
            self.refused,
            if self.paying { "yes" } else { "no" }
        )
    }
}

/// Counters of the payment loop, for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PayCounters {
    /// Payments we signed and sent.
    pub sent: u64,
    /// Payments we accepted.
    pub received: u64,
    /// Updates we refused.
    pub refused: u64,
    /// Neighbours cut to the free tier.
    pub cut_offs: u64,
    /// Datagrams that did not come through a tunnel or did not parse.
    pub dropped: u64,
}

/// What the payment loop shares with the rest of the daemon.
#[derive(Debug, Default)]
pub struct PayShared {
    /// One row per neighbour.
    pub rows: Mutex<Vec<PaymentRow>>,
    /// Counters.
    pub counters: Mutex<PayCounters>,
    /// `pay-withhold`, set at runtime by the control socket.
    pub withhold: AtomicBool,
    /// Whether the loop runs.
    pub running: AtomicBool,
    /// Settlement requests and `dump` lines (spec/settlement.md).
    pub settlement: Mutex<crate::settle::SettleBoard>,
}

impl PayShared {
    /// The `dump` lines.
    pub fn dump_lines(&self) -> Vec<String> {
        self.rows
            .lock()
            .map(|r| r.iter().map(PaymentRow::line).collect())
            .unwrap_or_default()
    }

    /// The `dump json` rows.
    pub fn rows(&self) -> Vec<PaymentRow> {
        self.rows.lock().map(|r| r.clone()).unwrap_or_default()
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
        assert_eq!(
            h.packet(PacketDirection::In, PeerId(1), a, 100),
            PacketVerdict::Pass
        );
        assert_eq!(
            h.packet(PacketDirection::Out, PeerId(1), b, 10),
            PacketVerdict::Pass
        );
        assert_eq!(
            h.packet(PacketDirection::Out, PeerId(2), local, 1000),
            PacketVerdict::Pass
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
        let _ = h.packet(PacketDirection::In, PeerId(0), a, 10);
        let g = table.generation();
        // Publishing the same table is no change.
        table.publish([(prefix("10.0.0.0", 8), Prices { ours: 1, theirs: 1 })]);
        assert_eq!(table.generation(), g);
        table.publish([(prefix("10.0.0.0", 8), Prices { ours: 4, theirs: 1 })]);
        let _ = h.packet(PacketDirection::In, PeerId(0), a, 10);
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
                value_shaped_in: 5,
            },
        );
        assert_eq!(
            dump_lines(&board),
            vec![
                "add meter K interface eth0 tunnel mt0 bytes-in 1 bytes-out 2 value-in 3 value-out 4 shaped-in 5"
            ]
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let table = Arc::new(PriceTable::default());
        let mut h = MeteringHook::new(table, Meters::default());
        for i in 0..(MAX_CACHED as u32 * 2) {
            let _ = h.packet(
                PacketDirection::In,
                PeerId(0),
                IpAddr::from(i.to_be_bytes()),
                1,
            );
            assert!(h.cache.len() <= MAX_CACHED);
        }
    }

    #[test]
    fn the_shaper_drops_in_the_hook_and_dropped_traffic_is_not_owed() {
        let table = Arc::new(PriceTable::default());
        table.publish([(prefix("10.0.0.0", 8), Prices { ours: 2, theirs: 1 })]);
        let settings = PaySettings {
            free_tier_kbit: Some(80),
            ..PaySettings::default()
        };
        let shaping = Shaping {
            config: settings.shaper(),
            levels: Default::default(),
        };
        let shaper = shaping.link();
        let meters = Meters::default();
        let mut h = MeteringHook::new(table, meters.clone()).with_shaper(shaper.clone());
        let key = "k".to_string();
        shaping
            .levels
            .lock()
            .unwrap()
            .levels
            .insert(key.clone(), (ServiceLevel::FreeTier, 1000));
        shaping.levels.lock().unwrap().generation = 1;
        let mut seen = 0;
        shaping.apply(&shaper, &mut seen, |k| (k == "k").then_some(PeerId(7)));
        assert_eq!(seen, 1);
        let dst: IpAddr = "10.1.1.1".parse().unwrap();
        let ll: IpAddr = "fe80::1".parse().unwrap();
        let (mut pass, mut drop) = (0u64, 0u64);
        // 100 packets of 1000 bytes at once: the free tier's bucket (10 000 B/s, at most 2048
        // bytes deep) lets a few through.
        for _ in 0..100 {
            match h.packet(PacketDirection::In, PeerId(7), dst, 1000) {
                PacketVerdict::Pass => pass += 1,
                PacketVerdict::Drop => drop += 1,
            }
            // Babel and payments between the two routers are never shaped.
            assert_eq!(
                h.packet(PacketDirection::In, PeerId(7), ll, 1000),
                PacketVerdict::Pass
            );
        }
        assert!(pass <= 3 && drop == 100 - pass, "{pass} {drop}");
        let t = meters.lock().unwrap()[&PeerId(7)].total();
        assert_eq!(t.bytes_in, pass * 1000 + 100 * 1000);
        assert_eq!(t.value_in, Amount(u128::from(pass) * 2000));
        assert_eq!(t.shaped_in, Amount(u128::from(drop) * 2000));
    }

    #[test]
    fn pay_statements_parse_and_refuse_bad_values() {
        let ok = |k: &str, v: &str| PayStatement::parse(k, Some(v)).unwrap();
        let mut s = PaySettings::default();
        s.apply(ok("pay-enable", "true"));
        s.apply(ok(
            "pay-threshold",
            "340282366920938463463374607431768211455",
        ));
        s.apply(ok("pay-free-tier", "2000"));
        s.apply(ok("pay-link-capacity", "8000"));
        s.apply(ok("pay-interval", "2"));
        assert!(s.enable);
        assert_eq!(s.thresholds().pay, Amount(u128::MAX));
        // The close threshold defaults to ten times the pay threshold, saturating.
        assert_eq!(s.thresholds().close, Amount(u128::MAX));
        assert_eq!(s.shaper().free_tier, 250_000);
        assert_eq!(s.shaper().capacity, Some(1_000_000));
        assert_eq!(s.interval(), Duration::from_secs(2));
        assert_eq!(
            s.ledger_path(Some(std::path::Path::new("/x/state"))),
            PathBuf::from("/x/state.payments.redb")
        );
        for (k, v) in [
            ("pay-threshold", "-1"),
            ("pay-threshold", "1.5"),
            ("pay-private-key", "abc"),
            ("pay-interval", "0"),
            ("pay-port", "0"),
            ("pay-enable", "maybe"),
            ("pay-bogus", "1"),
        ] {
            assert!(PayStatement::parse(k, Some(v)).is_err(), "{k} {v}");
        }
        assert!(PayStatement::parse("pay-deposit", None).is_err());
        // Every statement the man page lists is one the parser knows.
        let listed: Vec<&str> = CONFIG_HELP
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.starts_with("pay-"))
            .collect();
        assert_eq!(listed.len(), 12);
        for k in listed {
            assert!(
                !matches!(
                    PayStatement::parse(k, Some("x")),
                    Err(ParseError::Unknown(_))
                ),
                "{k}"
            );
        }
        assert!(ok("pay-withhold", "yes").runtime());
        assert!(!ok("pay-threshold", "1").runtime());
    }
}
