//! Bills and payments inside the exit tunnel, the I/O around `exit::payment` (the decisions):
//! on the exit, one UDP socket at its tunnel address sends each user its signed bill and
//! receives the user's payment-channel messages; on a user node, one socket receives the
//! current exit's bills, checks them against the tunnel's counters, persists the accepted one
//! and pays it. Both ledgers are `redb` files committed before anything is sent or
//! acknowledged.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use daemon::exit::{ExitRole, ExitRoutes, ExitSettings, ExitView, UserBillRow};
use daemon::payments::PayShared;
use ed25519_dalek::SigningKey;
use exit::{
    Checked, ExitPayments, ExitRedbStore, ExitServer, Frame, PAY_PORT, Transition, UserLedger,
    UserPayments, UserService,
};
use payments::Amount;

/// How often channel timers run (retransmissions, reestablish).
pub const PAY_TICK: Duration = Duration::from_millis(500);

fn udp(addr: SocketAddr) -> anyhow::Result<tokio::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(addr).with_context(|| format!("UDP {addr}"))?;
    s.set_nonblocking(true)?;
    Ok(tokio::net::UdpSocket::from_std(s)?)
}

/// The tunnel policy a service level gives, both ways, with the bill and payment service
/// exempt (`exempt`: the exit's end of it).
pub fn policy(service: UserService, free_tier: u64) -> tunnel::ForwardingPolicy {
    match service {
        UserService::Full => tunnel::ForwardingPolicy::Allow,
        UserService::FreeTier => tunnel::ForwardingPolicy::RateLimit {
            bytes_per_sec: free_tier,
            burst: free_tier,
        },
        UserService::Cut => tunnel::ForwardingPolicy::Block,
    }
}

/// The exit's bill and payment service.
pub struct ExitBilling {
    /// The socket at the exit's tunnel address.
    pub socket: tokio::net::UdpSocket,
    pay: ExitPayments<payments::RedbStore>,
    /// The exit's end of the service, exempt from users' policies.
    pub exempt: tunnel::PolicyExempt,
    bills_sent: HashMap<[u8; 32], (u64, u64)>,
    received: HashMap<[u8; 32], u64>,
}

impl ExitBilling {
    /// Opens the channel ledger next to the exit's store and the socket at `gateway`; restores
    /// what every user's channel carries and credits it. Returns the users whose service level
    /// is not full after that (their tunnel policy is set at once).
    pub fn open(
        role: &ExitRole,
        state_file: Option<&Path>,
        deposit: u128,
        key: &SigningKey,
        server: &mut ExitServer<ExitRedbStore>,
    ) -> anyhow::Result<(ExitBilling, Vec<Transition>)> {
        let path = role.store_path(state_file, "exit-pay.redb");
        let store = payments::RedbStore::open(&path)
            .map_err(|e| anyhow::anyhow!("exit payment ledger {}: {e}", path.display()))?;
        let mut pay = ExitPayments::new(key.clone(), store, Amount(deposit));
        let mut restored = Vec::new();
        for u in server.users() {
            let paid = pay
                .paid(&u.user)
                .map_err(|e| anyhow::anyhow!("exit payment ledger: {e}"))?;
            server.credit(&u.user, paid);
            if let Some(s) = server.service(&u.user)
                && s != UserService::Full
            {
                restored.push(Transition {
                    user: u.user,
                    from: UserService::Full,
                    to: s,
                });
            }
        }
        let gateway = role.gateway_v4();
        let socket = udp(SocketAddr::new(IpAddr::V4(gateway), PAY_PORT))?;
        tracing::info!(
            "exit: bills and payments on {gateway} UDP port {PAY_PORT}, ledger {}",
            path.display()
        );
        let exempt = tunnel::PolicyExempt {
            address: IpAddr::V4(gateway),
            udp_port: PAY_PORT,
        };
        let billing = ExitBilling {
            socket,
            pay,
            exempt,
            bills_sent: HashMap::new(),
            received: HashMap::new(),
        };
        Ok((billing, restored))
    }

    fn send(&self, to: Ipv4Addr, frame: Frame<'_>) {
        let to = SocketAddr::new(IpAddr::V4(to), PAY_PORT);
        if let Err(e) = self.socket.try_send_to(&frame.encode(), to) {
            tracing::debug!("exit: to {to}: {e}");
        }
    }

    /// Sends `user` at `ipv4` its signed bill (committed before it was signed).
    pub fn send_bill(&mut self, user: &[u8; 32], ipv4: Ipv4Addr, bill: &[u8]) {
        self.send(ipv4, Frame::Bill(bill));
        let seq = match exit::ExitMessage::decode(bill) {
            Ok(exit::ExitMessage::Bill(b)) => b.totals.seq,
            _ => 0,
        };
        let e = self.bills_sent.entry(*user).or_default();
        *e = (seq, e.1 + 1);
    }

    /// (newest bill seq, bills sent, payments accepted) of `user`.
    pub fn stats(&self, user: &[u8; 32]) -> (u64, u64, u64) {
        let (seq, n) = self.bills_sent.get(user).copied().unwrap_or_default();
        (seq, n, self.received.get(user).copied().unwrap_or(0))
    }

    /// A datagram from `from` at the exit's tunnel address: a user's channel message (the
    /// source address, which the tunnel authenticated, says which user). Credits what it
    /// paid; returns the service change.
    pub fn on_datagram(
        &mut self,
        server: &mut ExitServer<ExitRedbStore>,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Option<Transition> {
        let IpAddr::V4(src) = from.ip() else {
            return None;
        };
        let Some(u) = server.users().into_iter().find(|u| u.ipv4 == src) else {
            tracing::debug!("exit: payment datagram from {src}, not a user");
            return None;
        };
        let body = match Frame::decode(bytes) {
            Ok(Frame::Channel(b)) => b,
            Ok(Frame::Bill(_)) | Err(_) => {
                tracing::debug!("exit: datagram from user {src} dropped: not a channel message");
                return None;
            }
        };
        let (out, paid) = match self.pay.handle(clock::now(), &u.user, body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("exit: payment ledger: {e}");
                return None;
            }
        };
        for ev in &out.events {
            match ev {
                payments::PaymentEvent::PaymentReceived {
                    nonce,
                    cumulative,
                    amount,
                } => {
                    *self.received.entry(u.user).or_default() += 1;
                    tracing::info!(
                        "exit: user {} paid {} wei (nonce {nonce}, cumulative {})",
                        hex::encode(u.user),
                        amount.0,
                        cumulative.0
                    );
                }
                payments::PaymentEvent::PaymentRefused(r) => {
                    tracing::info!(
                        "exit: payment from {} refused: {}",
                        hex::encode(u.user),
                        r.name()
                    );
                }
                _ => {}
            }
        }
        for m in &out.send {
            self.send(u.ipv4, Frame::Channel(m));
        }
        server.credit(&u.user, paid)
    }

    /// Channel timers (the exit's reestablish and answers).
    pub fn poll(&mut self, server: &ExitServer<ExitRedbStore>) {
        for (user, out) in self.pay.poll(clock::now()) {
            if let Some(u) = server.user(&user) {
                for m in &out.send {
                    self.send(u.ipv4, Frame::Channel(m));
                }
            }
        }
    }
}

/// The user's end with one exit.
struct Current {
    name: String,
    exit_ipv4: Ipv4Addr,
    pay: UserPayments<payments::RedbStore>,
    ledger_file: PathBuf,
}

fn ledger_file(base: &Path, exit: &[u8; 32]) -> PathBuf {
    let mut p = base.as_os_str().to_owned();
    p.push(format!(
        ".exit-{}.bill",
        hex::encode(exit.get(..8).unwrap_or_default())
    ));
    PathBuf::from(p)
}

/// Writes `bytes` to `path` durably: a temporary file synced, renamed over, the directory
/// synced.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A user node's bill checking and payments with its current exit (the exit `view` shows as
/// current, at the tunnel address it granted). `ledger_base` names the files: the channel
/// ledger `BASE.exit-pay.redb` and one accepted-bill file per exit.
pub async fn user(
    settings: ExitSettings,
    pay_key: SigningKey,
    view: Arc<Mutex<ExitView>>,
    routes: Arc<ExitRoutes>,
    shared: Arc<PayShared>,
    ledger_base: PathBuf,
) {
    let Some(client) = settings.client.clone() else {
        return;
    };
    let socket = match udp(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PAY_PORT)) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("exit client: bill and payment socket: {e:#}");
            return;
        }
    };
    let mut store_path = ledger_base.clone().into_os_string();
    store_path.push(".exit-pay.redb");
    let mut store = match payments::RedbStore::open(Path::new(&store_path)) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("exit client: payment ledger {store_path:?}: {e}");
            return;
        }
    };
    let me = pay_key.verifying_key().to_bytes();
    let mut current: Option<Current> = None;
    let mut pending: Option<(Vec<u8>, u64)> = None;
    let mut buf = vec![0u8; 2048];
    let mut tick = tokio::time::interval(PAY_TICK);
    loop {
        let mut received: Option<(Vec<u8>, SocketAddr)> = None;
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    received = Some((buf.get(..n).unwrap_or_default().to_vec(), from));
                }
            }
            _ = tick.tick() => {}
        }
        let (name, exit_ipv4, fee, snapshots, sent, got) = {
            let Ok(v) = view.lock() else { return };
            (
                v.current.clone(),
                v.grant.as_ref().map(|g| g.exit_ipv4),
                v.grant.as_ref().map_or(0, |g| g.fee),
                v.snapshots,
                v.tx_bytes,
                v.rx_bytes,
            )
        };
        // Follow the current exit: its channel on the same ledger, its accepted bill from
        // its file.
        let wanted = name
            .as_ref()
            .and_then(|n| settings.servers.iter().find(|s| &s.name == n))
            .zip(exit_ipv4);
        let same = match (&current, wanted) {
            (Some(c), Some((s, a))) => c.name == s.name && c.exit_ipv4 == a,
            (None, None) => true,
            _ => false,
        };
        if !same {
            if let Some(c) = current.take() {
                store = Some(c.pay.into_store());
            }
            pending = None;
            if let (Some((s, a)), Some(st)) = (wanted, store.take()) {
                let file = ledger_file(&ledger_base, &s.key);
                let ledger = std::fs::read(&file)
                    .ok()
                    .and_then(|b| UserLedger::decode(&b))
                    .unwrap_or_else(|| UserLedger::new(s.key, me, fee));
                match UserPayments::open(pay_key.clone(), s.key, ledger, st) {
                    Ok(pay) => {
                        tracing::info!("exit client: paying {} through its tunnel at {a}", s.name);
                        current = Some(Current {
                            name: s.name.clone(),
                            exit_ipv4: a,
                            pay,
                            ledger_file: file,
                        });
                    }
                    Err(e) => {
                        tracing::error!("exit client: payment ledger: {e}");
                        return;
                    }
                }
            }
        }
        let Some(c) = current.as_mut() else { continue };
        let to = SocketAddr::new(IpAddr::V4(c.exit_ipv4), PAY_PORT);
        let mut send: Vec<Vec<u8>> = Vec::new();
        let now = clock::now();
        let paying = !shared.withhold.load(Ordering::Relaxed);
        if paying != c.pay.paying() {
            c.pay.set_paying(paying);
            tracing::info!(
                "exit client: {} {}",
                if paying {
                    "paying again"
                } else {
                    "withholding payment from"
                },
                c.name
            );
        }
        if let Some((bytes, from)) = received
            && from.ip() == IpAddr::V4(c.exit_ipv4)
        {
            match Frame::decode(&bytes) {
                // Checked once the tunnel's counters were copied after it arrived.
                Ok(Frame::Bill(b)) => pending = Some((b.to_vec(), snapshots)),
                Ok(Frame::Channel(m)) => match c.pay.handle(now, m) {
                    Ok(out) => send.extend(out.send),
                    Err(e) => tracing::warn!("exit client: payment ledger: {e}"),
                },
                Err(e) => tracing::debug!("exit client: datagram from {from} dropped: {e}"),
            }
        }
        if let Some((bill, at)) = pending.take_if(|(_, at)| snapshots >= at.saturating_add(2)) {
            let _ = at;
            let billing = c.pay.billing_mut();
            billing.set_fee(fee);
            billing.tunnel_counters(sent, got);
            let max_back = client.max_route_price.unwrap_or_else(|| {
                settings
                    .servers
                    .iter()
                    .find(|s| s.name == c.name)
                    .and_then(|s| routes.get(s.address))
                    .map_or(0, |r| r.price.saturating_mul(2))
            });
            match billing.on_bill(&bill, client.tolerance, max_back) {
                Ok(Checked::Accepted(b)) => {
                    // Durable before we pay for it.
                    let bytes = c.pay.billing().ledger().encode();
                    match write_durably(&c.ledger_file, &bytes) {
                        Ok(()) => match c.pay.bill_accepted(now) {
                            Ok(out) => send.extend(out.send),
                            Err(e) => tracing::warn!("exit client: payment ledger: {e}"),
                        },
                        Err(e) => tracing::warn!(
                            "exit client: bill {} not persisted ({}): {e}",
                            b.totals.seq,
                            c.ledger_file.display()
                        ),
                    }
                }
                Ok(Checked::Duplicate) => {}
                Err(e) => tracing::warn!("exit client: bill from {} refused: {e}", c.name),
            }
        }
        match c.pay.poll(now) {
            Ok(out) => send.extend(out.send),
            Err(e) => tracing::warn!("exit client: payment ledger: {e}"),
        }
        for m in &send {
            if let Err(e) = socket.try_send_to(&Frame::Channel(m).encode(), to) {
                tracing::debug!("exit client: to {to}: {e}");
            }
        }
        show(&view, c);
    }
}

fn show(view: &Arc<Mutex<ExitView>>, c: &Current) {
    let b = c.pay.billing();
    let k = b.counters;
    let row = UserBillRow {
        exit: c.name.clone(),
        seq: b.ledger().accepted().map_or(0, |x| x.totals.seq),
        billed: c.pay.billed().0.to_string(),
        paid: c.pay.paid().0.to_string(),
        acked: c.pay.acked(),
        paying: c.pay.paying(),
        check: b.last().to_owned(),
        accepted: k.accepted,
        duplicates: k.duplicates,
        overcharged: k.overcharged,
        replayed: k.replayed,
        forged: k.forged,
        payments_sent: c.pay.counters().sent,
        retries: c.pay.counters().retries,
    };
    if let Ok(mut v) = view.lock() {
        v.bill = Some(row);
    }
}
