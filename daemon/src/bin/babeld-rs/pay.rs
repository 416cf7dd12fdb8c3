//! The daemon's side of metering and payments (spec/payments.md): publishes the installed
//! routes' prices to the tunnels' [`daemon::payments::MeteringHook`]s after route changes, so
//! that no packet ever looks into the engine, and runs the payment loop: one
//! [`payments::Payments`] node over every mesh neighbour, fed by the tunnels' meters, talking to
//! each neighbour on a UDP port of its tunnel, committing to a `redb` ledger before anything is
//! sent or acknowledged, and telling the mesh drivers' shapers each neighbour's service level.
//!
//! The loop runs on a thread of its own: a ledger commit waits for the disk, and routing never
//! waits on payments.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use daemon::config::DaemonConfig;
use daemon::discovery::{MeshView, NeighbourState};
use daemon::payments::{
    MeterBoard, PAY_PORT, PayShared, PaymentRow, PriceTable, Prices, ServiceTable,
};
use daemon::state::Daemon;
use ed25519_dalek::SigningKey;
use payments::wire::{PaymentMessage, kind};
use payments::{
    Amount, PaymentEvent, PaymentPeerConfig, Payments, RedbStore, ServiceLevel, ShaperConfig,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Republishes the prices of the installed routes (not source-specific ones: the tunnels price
/// by destination only). Called once per batch of engine outputs that changed a route; the
/// table bumps its generation only when a price or a route really changed.
pub fn publish_prices(d: &Daemon, now: babel_core::Instant, table: &PriceTable) {
    let routes = d.engine.routes(now);
    table.publish(
        routes
            .into_iter()
            .filter(|r| r.installed && r.src_prefix.is_none())
            .map(|r| {
                (
                    r.prefix,
                    Prices {
                        ours: r.price,
                        theirs: r.received_price,
                    },
                )
            }),
    );
}

/// How often the loop wakes: timers, meters, shaping decisions.
const TICK: Duration = Duration::from_millis(200);
/// A neighbour whose key we have is re-sent ours this often (cheap; covers its restarts).
const HELLO_REFRESH: Duration = Duration::from_secs(10);

/// The payment key: `pay-private-key`, else the seed in `KEYFILE` (created on first start,
/// mode 0600, synced before use so a restart signs with the same key its ledger holds).
pub fn payment_key(config: &DaemonConfig, keyfile: &Path) -> anyhow::Result<SigningKey> {
    let hex_seed = match &config.pay.private_key {
        Some(k) => k.clone(),
        None => match std::fs::read_to_string(keyfile) {
            Ok(s) => s.trim().to_owned(),
            Err(_) => {
                let mut seed = [0u8; 32];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
                let text = hex::encode(seed);
                let tmp = keyfile.with_extension("key.tmp");
                {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&tmp)
                        .with_context(|| format!("creating {}", tmp.display()))?;
                    f.write_all(text.as_bytes())?;
                    f.sync_all()?;
                }
                std::fs::rename(&tmp, keyfile)?;
                text
            }
        },
    };
    let seed: [u8; 32] = hex::decode(&hex_seed)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .with_context(|| format!("payment key in {}: not 64 hex digits", keyfile.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Starts the payment loop when `pay-enable` is set and there are mesh interfaces. Returns the
/// receiver of its `monitor` lines.
pub fn start(
    config: &DaemonConfig,
    state_file: Option<&Path>,
    mesh: Vec<Arc<Mutex<MeshView>>>,
    board: MeterBoard,
    shared: Arc<PayShared>,
    levels: Arc<Mutex<ServiceTable>>,
) -> anyhow::Result<Option<mpsc::UnboundedReceiver<String>>> {
    let pay = &config.pay;
    if !pay.enable || mesh.is_empty() {
        return Ok(None);
    }
    let ledger = pay.ledger_path(state_file);
    let mut keyfile = ledger.clone().into_os_string();
    keyfile.push(".key");
    let key = payment_key(config, &PathBuf::from(keyfile))?;
    let store = RedbStore::open(&ledger)
        .map_err(|e| anyhow::anyhow!("payment ledger {}: {e}", ledger.display()))?;
    let port = pay.port.unwrap_or(PAY_PORT);
    let socket = bind(port).with_context(|| format!("payment socket on UDP port {port}"))?;
    shared.withhold.store(pay.withhold, Ordering::Relaxed);
    shared.running.store(true, Ordering::Relaxed);
    let cfg = PaymentPeerConfig {
        thresholds: pay.thresholds(),
        ..PaymentPeerConfig::default()
    };
    let interval = pay.interval();
    let deposits = crate::settle::Deposits::start(config, &key, &shared)?;
    let premium = u128::from(pay.premium_percent.unwrap_or(0));
    tracing::info!(
        "payments: key {}, ledger {}, UDP port {port}, interval {} s, pay at {} wei, cut off above {} wei",
        hex::encode(key.verifying_key().to_bytes()),
        ledger.display(),
        interval.as_secs(),
        cfg.thresholds.pay.0,
        cfg.thresholds.close.0
    );
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("payments".into())
        .spawn(move || {
            let ran = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(async move {
                        let socket = UdpSocket::from_std(socket)?;
                        let node = Payments::new(
                            key,
                            cfg,
                            ShaperConfig::default(),
                            interval,
                            clock::now(),
                        );
                        let mut l = Loop {
                            node,
                            store,
                            deposits,
                            premium,
                            port,
                            socket,
                            tunnels: HashMap::new(),
                            fed: HashMap::new(),
                            mesh,
                            board,
                            shared,
                            levels,
                            lines: tx,
                            paying: true,
                        };
                        l.run().await
                    })
                });
            if let Err(e) = ran {
                tracing::error!("payments stopped: {e:#}");
            }
        })?;
    Ok(Some(rx))
}

fn bind(port: u16) -> anyhow::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
    Ok(s.into())
}

/// One neighbour's tunnel as the loop knows it.
struct Tunnel {
    name: String,
    /// Its tunnel key (base64), as the mesh view and the meters name it.
    key: String,
    /// Its link-local address on the tunnel, with the tunnel's index as scope.
    addr: SocketAddrV6,
    /// Its payment key, once it said it.
    payment_key: Option<[u8; 32]>,
    /// It has our payment key.
    knows_us: bool,
    hello_at: Option<clock::Instant>,
}

struct Loop {
    node: Payments<IpAddr>,
    store: RedbStore,
    deposits: crate::settle::Deposits,
    premium: u128,
    port: u16,
    socket: UdpSocket,
    /// By tunnel interface index.
    tunnels: HashMap<u32, Tunnel>,
    /// Per neighbour tunnel key: the meter totals (in, out with the premium, shaped in)
    /// already fed.
    fed: HashMap<String, (u128, u128, u128)>,
    mesh: Vec<Arc<Mutex<MeshView>>>,
    board: MeterBoard,
    shared: Arc<PayShared>,
    levels: Arc<Mutex<ServiceTable>>,
    lines: mpsc::UnboundedSender<String>,
    paying: bool,
}

impl Loop {
    async fn run(&mut self) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let Ok((n, src)) = r else { continue };
                    let data = buf.get(..n).unwrap_or_default().to_vec();
                    self.datagram(src, &data).await?;
                }
                _ = tick.tick() => self.tick().await?,
            }
        }
    }

    /// Which tunnel a datagram came through: its source must be the neighbour's link-local
    /// address on that tunnel (the tunnel authenticated it); anything else is dropped.
    fn tunnel_of(&self, src: SocketAddr) -> Option<u32> {
        let SocketAddr::V6(a) = src else { return None };
        let t = self.tunnels.get(&a.scope_id())?;
        (t.addr.ip() == a.ip()).then_some(a.scope_id())
    }

    fn dropped(&self) {
        if let Ok(mut c) = self.shared.counters.lock() {
            c.dropped += 1;
        }
    }

    async fn datagram(&mut self, src: SocketAddr, data: &[u8]) -> anyhow::Result<()> {
        let Some(ix) = self.tunnel_of(src) else {
            tracing::debug!(%src, "payments: datagram not from a neighbour's tunnel, dropped");
            self.dropped();
            return Ok(());
        };
        if crate::settle::is_settlement(data) {
            if let Some(pk) = self.tunnels.get(&ix).and_then(|t| t.payment_key) {
                self.settlement_datagram(pk, data)?;
            }
            return Ok(());
        }
        if data.get(1) == Some(&kind::HELLO) {
            match PaymentMessage::decode(data) {
                Ok(PaymentMessage::Hello { key, known }) => self.hello(ix, key, known).await?,
                _ => self.dropped(),
            }
            return Ok(());
        }
        let Some(pk) = self.tunnels.get(&ix).and_then(|t| t.payment_key) else {
            // It talks before its Hello reached us: ask for it.
            self.send_hello(ix).await;
            return Ok(());
        };
        let out = self
            .node
            .handle(clock::now(), &pk, data, &mut self.deposits, &mut self.store);
        // A failed commit sent and acknowledged nothing: the message is as if lost, and the
        // neighbour retransmits it.
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                tracing::error!("payments: ledger commit failed, message dropped: {e}");
                return Ok(());
            }
        };
        self.deliver(&pk, out).await;
        self.publish();
        Ok(())
    }

    /// A neighbour's payment key: its channels are restored from the ledger (or opened).
    async fn hello(&mut self, ix: u32, key: [u8; 32], known: bool) -> anyhow::Result<()> {
        // One payment key, one tunnel: a neighbour that restarted with a new tunnel key (the
        // default mesh key is new at every start) says its payment key on its new tunnel while
        // the old one is still timing out; the newest claim wins and the old tunnel forgets it,
        // so meters and messages follow the live tunnel. (A neighbour claiming another's key
        // gains nothing: it cannot sign that key's updates, and what it is metered is what it
        // sent.)
        for (i, t) in self.tunnels.iter_mut() {
            if *i != ix && t.payment_key == Some(key) {
                tracing::warn!(
                    "payments: payment key {} moved from tunnel {} to tunnel index {ix}",
                    hex::encode(key),
                    t.name
                );
                t.payment_key = None;
            }
        }
        let Some(t) = self.tunnels.get_mut(&ix) else {
            return Ok(());
        };
        t.knows_us = known;
        let reply = !known;
        if t.payment_key != Some(key) {
            if let Some(old) = t.payment_key {
                tracing::warn!(
                    "payments: neighbour {} changed its payment key from {} to {}",
                    t.key,
                    hex::encode(old),
                    hex::encode(key)
                );
            }
            t.payment_key = Some(key);
            tracing::info!(
                "payments: neighbour {} (tunnel {}) pays with key {}",
                t.key,
                t.name,
                hex::encode(key)
            );
            let me = self.node.public_key();
            self.add(key, me);
        }
        if reply {
            self.send_hello(ix).await;
        }
        Ok(())
    }

    async fn send_hello(&mut self, ix: u32) {
        let Some(t) = self.tunnels.get_mut(&ix) else {
            return;
        };
        t.hello_at = Some(clock::now());
        let m = PaymentMessage::Hello {
            key: self.node.public_key(),
            known: t.payment_key.is_some(),
        }
        .encode();
        let to = t.addr;
        if let Err(e) = self.socket.send_to(&m, to).await {
            tracing::debug!(%to, "payments: hello: {e}");
        }
        if let Some(m) = self.deposits.hello()
            && let Err(e) = self.socket.send_to(&m, to).await
        {
            tracing::debug!(%to, "payments: settlement account: {e}");
        }
    }

    /// Adds a neighbour once its channels are known (at once off chain; on chain when its
    /// account arrived), handing the settlement layer the best update the ledger holds. A
    /// record that does not load (or verify) means no payments with it rather than payments
    /// from a state we cannot trust.
    fn add(&mut self, key: [u8; 32], me: [u8; 32]) {
        if self.node.neighbour(&key).is_some() {
            return;
        }
        let Some(channels) = self.deposits.channels(me, key) else {
            return;
        };
        if let Err(e) = self.node.add(key, channels, &self.store) {
            tracing::error!("payments: neighbour key {}: ledger: {e}", hex::encode(key));
            return;
        }
        let best = self
            .node
            .neighbour(&key)
            .and_then(|n| n.peer.payee().best().copied());
        if let Some(u) = best {
            payments::Settlement::offer(&mut self.deposits, &u);
        }
    }

    fn settlement_datagram(&mut self, pk: [u8; 32], data: &[u8]) -> anyhow::Result<()> {
        #[cfg(feature = "settlement")]
        if let crate::settle::Deposits::Chain(c) = &mut self.deposits {
            let best = self
                .node
                .neighbour(&pk)
                .and_then(|n| n.peer.payee().best().copied());
            if c.datagram(pk, data, best.as_ref()) {
                let me = self.node.public_key();
                self.add(pk, me);
            }
            return Ok(());
        }
        let _ = (pk, data);
        self.dropped();
        Ok(())
    }

    /// Operators' settlement requests and the `dump` lines.
    async fn settlement_tick(&mut self) {
        #[cfg(feature = "settlement")]
        if let crate::settle::Deposits::Chain(c) = &mut self.deposits {
            let requests: Vec<Vec<String>> = self
                .shared
                .settlement
                .lock()
                .map(|mut b| b.requests.drain(..).collect())
                .unwrap_or_default();
            let mut sends = Vec::new();
            for words in requests {
                match c.operator(&words, &self.node) {
                    Ok(Some(m)) => sends.push(m),
                    Ok(None) => {}
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            c.sync(&mut self.node, &mut self.store);
            let lines = c.lines(&self.node);
            if let Ok(mut b) = self.shared.settlement.lock() {
                b.lines = lines;
            }
            for (pk, m) in sends {
                let to = self
                    .tunnels
                    .values()
                    .find(|t| t.payment_key == Some(pk))
                    .map(|t| t.addr);
                if let Some(to) = to
                    && let Err(e) = self.socket.send_to(&m, to).await
                {
                    tracing::warn!(%to, "settlement: close: {e}");
                }
            }
        }
    }

    /// Sends what the node produced to the neighbour and reports what happened.
    async fn deliver(&mut self, pk: &[u8; 32], out: payments::PaymentOutput) {
        let Some((_, t)) = self
            .tunnels
            .iter()
            .find(|(_, t)| t.payment_key.as_ref() == Some(pk))
        else {
            return;
        };
        let (to, who) = (t.addr, t.key.clone());
        for m in &out.send {
            if let Err(e) = self.socket.send_to(m, to).await {
                tracing::debug!(%to, "payments: send: {e}");
            }
        }
        for e in out.events {
            if let PaymentEvent::PaymentSent { cumulative, .. } = e
                && let Some(n) = self.node.neighbour(pk)
            {
                self.deposits.signed(n.peer.payer().channel(), cumulative);
            }
            self.event(&who, e);
        }
    }

    fn event(&mut self, who: &str, e: PaymentEvent) {
        let mut counters = self.shared.counters.lock().ok();
        let line = match e {
            PaymentEvent::PaymentSent {
                nonce,
                cumulative,
                amount,
            } => {
                if let Some(c) = counters.as_mut() {
                    c.sent += 1;
                }
                tracing::info!("payments: paid {} wei to {who} (nonce {nonce})", amount.0);
                format!(
                    "payment sent neighbour {who} nonce {nonce} amount {} cumulative {}",
                    amount.0, cumulative.0
                )
            }
            PaymentEvent::PaymentReceived {
                nonce,
                cumulative,
                amount,
            } => {
                if let Some(c) = counters.as_mut() {
                    c.received += 1;
                }
                tracing::info!(
                    "payments: received {} wei from {who} (nonce {nonce})",
                    amount.0
                );
                format!(
                    "payment received neighbour {who} nonce {nonce} amount {} cumulative {}",
                    amount.0, cumulative.0
                )
            }
            PaymentEvent::PaymentRefused(r) => {
                if let Some(c) = counters.as_mut() {
                    c.refused += 1;
                }
                tracing::warn!("payments: refused an update from {who}: {}", r.name());
                format!("payment refused neighbour {who} reason {}", r.name())
            }
            PaymentEvent::RefusedByPeer { reason, at } => {
                let r = reason.map_or("unknown", |r| r.name());
                tracing::warn!("payments: {who} refused our update: {r}");
                format!(
                    "payment refused-by-peer neighbour {who} reason {r} nonce {}",
                    at.nonce
                )
            }
            PaymentEvent::Service(level) => {
                if level == ServiceLevel::FreeTier
                    && let Some(c) = counters.as_mut()
                {
                    c.cut_offs += 1;
                }
                tracing::warn!("payments: neighbour {who} now at service {}", level.name());
                match level {
                    ServiceLevel::FreeTier => {
                        format!("payment cut-off neighbour {who} service free-tier")
                    }
                    ServiceLevel::Full => format!("payment restored neighbour {who} service full"),
                }
            }
            PaymentEvent::Adopted { nonce } => {
                tracing::warn!("payments: adopted our own update {nonce} from {who}");
                return;
            }
            PaymentEvent::Malformed(e) => {
                tracing::debug!("payments: malformed message from {who}: {e}");
                if let Some(c) = counters.as_mut() {
                    c.dropped += 1;
                }
                return;
            }
            PaymentEvent::PaymentAcked { nonce } => {
                tracing::debug!("payments: {who} acknowledged {nonce}");
                return;
            }
        };
        let _ = self.lines.send(line);
    }

    /// Tunnels from the mesh views: one per neighbour whose tunnel is up.
    fn refresh_tunnels(&mut self) {
        let mut seen = HashMap::new();
        for v in &self.mesh {
            let Ok(v) = v.lock() else { continue };
            for n in &v.neighbours {
                if n.state != NeighbourState::Up {
                    continue;
                }
                let Some(name) = &n.tunnel else { continue };
                let Ok(ix) = nix::net::if_::if_nametoindex(name.as_str()) else {
                    continue;
                };
                let Ok(k) = n.public_key.parse::<tunnel::PublicKey>() else {
                    continue;
                };
                let ip = daemon::discovery::tunnel_link_local(&k);
                seen.insert(ix, (name.clone(), n.public_key.clone(), ip));
            }
        }
        self.tunnels.retain(|ix, t| {
            seen.get(ix)
                .is_some_and(|(name, key, _)| *name == t.name && *key == t.key)
        });
        for (ix, (name, key, ip)) in seen {
            self.tunnels.entry(ix).or_insert_with(|| Tunnel {
                name,
                key,
                addr: SocketAddrV6::new(ip, self.port, 0, ix),
                payment_key: None,
                knows_us: false,
                hello_at: None,
            });
        }
    }

    /// Feeds what the tunnels metered since the last time into the ledgers (in memory; the
    /// node commits at its interval). A neighbour whose payment key is not known yet keeps its
    /// meter until it is.
    fn feed_meters(&mut self) {
        let Ok(board) = self.board.lock() else { return };
        for t in self.tunnels.values() {
            let Some(pk) = t.payment_key else { continue };
            // Not added yet (its chain account is on its way): its meter waits.
            if self.node.neighbour(&pk).is_none() {
                continue;
            }
            let (mut vin, mut vout, mut shaped) = (0u128, 0u128, 0u128);
            for ((_, key), row) in board.iter() {
                if *key == t.key {
                    vin = vin.saturating_add(row.value_in);
                    vout = vout.saturating_add(row.value_out);
                    shaped = shaped.saturating_add(row.value_shaped_in);
                }
            }
            // The premium (`pay-premium`) raises what we pay; applied to the totals so that
            // rounding never accumulates.
            let vout = vout.saturating_mul(100 + self.premium) / 100;
            let last = self.fed.entry(t.key.clone()).or_insert((0, 0, 0));
            // A meter that went back (the tunnel was rebuilt and counts from 0) counts anew.
            let delta = |now: u128, before: u128| if now >= before { now - before } else { now };
            let (din, dout, dshaped) = (
                delta(vin, last.0),
                delta(vout, last.1),
                delta(shaped, last.2),
            );
            *last = (vin, vout, shaped);
            if din > 0 || dout > 0 {
                self.node.meter(&pk, Amount(din), Amount(dout));
            }
            if dshaped > 0 {
                self.node.shaped(&pk, Amount(dshaped));
            }
        }
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        let now = clock::now();
        self.refresh_tunnels();
        let due: Vec<u32> = self
            .tunnels
            .iter()
            .filter(|(_, t)| {
                let period = if t.payment_key.is_some() && t.knows_us {
                    HELLO_REFRESH
                } else {
                    Duration::from_secs(1)
                };
                t.hello_at.is_none_or(|h| now.saturating_since(h) >= period)
            })
            .map(|(ix, _)| *ix)
            .collect();
        for ix in due {
            self.send_hello(ix).await;
        }
        let paying = !self.shared.withhold.load(Ordering::Relaxed);
        if paying != self.paying {
            self.paying = paying;
            self.node.set_paying(paying);
            tracing::warn!(
                "payments: {}",
                if paying {
                    "paying neighbours again"
                } else {
                    "withholding payment from every neighbour (pay-withhold)"
                }
            );
        }
        self.feed_meters();
        self.settlement_tick().await;
        // A failed commit sent nothing; the next tick tries again.
        let outs = match self.node.tick(now, &mut self.store) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!("payments: ledger commit failed: {e}");
                Vec::new()
            }
        };
        for (pk, out) in outs {
            self.deliver(&pk, out).await;
        }
        self.publish();
        Ok(())
    }

    /// Rows for `dump`, levels for the shapers.
    fn publish(&mut self) {
        let mut rows = Vec::new();
        let mut levels = HashMap::new();
        for t in self.tunnels.values() {
            let n = t.payment_key.and_then(|k| self.node.neighbour(&k));
            let row = match n {
                Some(n) => {
                    let p = &n.peer;
                    levels.insert(t.key.clone(), (p.service_level(), n.weight()));
                    PaymentRow {
                        neighbour: t.key.clone(),
                        tunnel: t.name.clone(),
                        payment_key: t.payment_key.map(hex::encode),
                        owed_in: p.owed_in().0,
                        owed_out: p.owed_out().0,
                        paid_in: p.paid_in().0,
                        paid_out: p.paid_out().0,
                        nonce_in: p.payee().nonce(),
                        nonce_out: p.payer().nonce(),
                        service: p.service_level().name().to_owned(),
                        weight: n.weight(),
                        refused: p.refusals.total(),
                        paying: p.paying(),
                    }
                }
                None => PaymentRow {
                    neighbour: t.key.clone(),
                    tunnel: t.name.clone(),
                    service: ServiceLevel::Full.name().to_owned(),
                    weight: payments::node::NEUTRAL_WEIGHT,
                    paying: self.paying,
                    ..PaymentRow::default()
                },
            };
            rows.push(row);
        }
        rows.sort_by(|a, b| a.neighbour.cmp(&b.neighbour));
        if let Ok(mut r) = self.shared.rows.lock() {
            *r = rows;
        }
        if let Ok(mut l) = self.levels.lock()
            && l.levels != levels
        {
            l.levels = levels;
            l.generation += 1;
        }
    }
}
