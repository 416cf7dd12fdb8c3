//! The exit role and the exit client (`daemon::exit` has the decisions): one thread runs the
//! user-to-exit tunnel (`tunnel` crate over the TUN `exit0`, its UDP outer packets routed by
//! Babel through the mesh tunnels), the registration socket and, on a user node, the choice of
//! exit; it installs the addresses, the default route (through the netlink thread,
//! `daemon::netlink_ops` decides the requests) and the nftables table, and removes the table at
//! exit.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ed25519_dalek::SigningKey;

use anyhow::Context;
use babel_wire::Prefix;
use daemon::config::DaemonConfig;
use daemon::exit::{
    AdmissionConfig, AdmittedLeases, DataPathLease, EXIT_TABLE, ExitRole, ExitRoutes, ExitRow,
    ExitView, Grant, RTPROT_EXIT, TUNNEL_IFNAME, USER_TABLE, UserPath,
};
use daemon::payments::PriceTable;
use tokio::sync::mpsc;

use crate::kernel::Netlink;
use crate::mesh::nft;

/// How often the client decides which exit to use.
const REFRESH: Duration = Duration::from_secs(1);
/// How often the tunnel's thread applies peer changes and copies its counters out.
const TURN: Duration = Duration::from_millis(500);
/// How often the exit commits and signs its users' bills.
const BILL_INTERVAL: Duration = Duration::from_secs(5);
/// How long the client waits for an exit's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// Keepalive of the user's tunnel peer (keeps the exit's endpoint for us fresh).
const KEEPALIVE: u16 = 5;

/// The running exit role or client.
pub struct Exits {
    /// Shown by `dump` and `show exits`.
    pub view: Arc<Mutex<ExitView>>,
    /// Babel's routes to the configured exits, published by the main loop.
    pub routes: Arc<ExitRoutes>,
    /// The exits' mesh addresses (what [`publish_routes`] looks for).
    watched: Vec<Ipv6Addr>,
    table: &'static str,
}

/// A change for the tunnel's thread.
enum Cmd {
    /// Add (or update) a peer.
    Peer {
        key: tunnel::PublicKey,
        endpoint: SocketAddr,
        allowed: Vec<Prefix>,
        keepalive: Option<u16>,
    },
    /// Remove every peer but this one (a user switching exits).
    Only(tunnel::PublicKey),
    /// A user's service level changed: what its tunnel peer forwards, both ways, and the
    /// exit's bill and payment service that passes whatever the policy.
    Policy(
        tunnel::PublicKey,
        tunnel::ForwardingPolicy,
        Option<tunnel::PolicyExempt>,
    ),
}

fn sysctl(path: &str, value: &str) {
    if let Err(e) = std::fs::write(path, value) {
        tracing::warn!("{path}: {e}");
    }
}

/// Starts the exit role or the exit client if the configuration has one; the tunnel's link,
/// addresses and routes are set through `netlink` (the netlink thread).
pub fn start(
    config: &DaemonConfig,
    state_file: Option<&Path>,
    prices: &Arc<PriceTable>,
    shared: &Arc<daemon::payments::PayShared>,
    netlink: &Netlink,
) -> anyhow::Result<Option<Exits>> {
    let x = &config.exit;
    let (key, port, table, watched) = match (&x.role, &x.client) {
        (Some(_), Some(_)) => anyhow::bail!("a node is an exit or uses one, not both"),
        (Some(r), None) => (&r.private_key, r.tunnel_port, EXIT_TABLE, Vec::new()),
        (None, Some(c)) => {
            if x.servers.is_empty() {
                anyhow::bail!("exit-client without any exit-server");
            }
            (
                &c.private_key,
                daemon::exit::TUNNEL_PORT,
                USER_TABLE,
                x.servers.iter().map(|s| s.address).collect(),
            )
        }
        (None, None) => return Ok(None),
    };
    let private: tunnel::PrivateKey = key
        .parse()
        .map_err(|_| anyhow::anyhow!("exit private key: not a key"))?;
    // The payment key is the identity that registers and signs (the key whose channel pays).
    let mut keyfile = config.pay.ledger_path(state_file).into_os_string();
    keyfile.push(".key");
    let pay_key = crate::pay::payment_key(config, &PathBuf::from(keyfile))?;
    let state_file = state_file.map(Path::to_path_buf);
    let mss = daemon::exit::mss_v4(daemon::discovery::tunnel_mtu(1500));
    let view = Arc::new(Mutex::new(ExitView {
        role: if x.role.is_some() { "exit" } else { "user" }.to_owned(),
        tunnel_key: private.public_key().to_base64(),
        mtu: daemon::exit::tunnel_if_mtu(),
        mss,
        // Known from the start, so route verification never probes an exit in the clear.
        exits: x
            .servers
            .iter()
            .map(|s| ExitRow {
                name: s.name.clone(),
                mesh_address: s.address.to_string(),
                state: "none".to_owned(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }));
    let routes = Arc::new(ExitRoutes::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    shared
        .withhold
        .store(config.pay.withhold, std::sync::atomic::Ordering::Relaxed);
    let ledger_base = config.pay.ledger_path(state_file.as_deref());
    let (config, v, r, p) = (config.clone(), view.clone(), routes.clone(), prices.clone());
    let shared = shared.clone();
    let netlink = netlink.clone();
    std::thread::Builder::new()
        .name("exit".to_owned())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let keys = (private, pay_key);
                let files = (state_file, shared, ledger_base);
                let shared = (v, r, p);
                if let Err(e) = run(config, keys, files, port, mss, shared, netlink, ready_tx).await
                {
                    tracing::error!("exit: {e:#}");
                }
            });
        })?;
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .context("exit thread did not start")?
        .map_err(|e| anyhow::anyhow!("exit tunnel: {e}"))?;
    Ok(Some(Exits {
        view,
        routes,
        watched,
        table,
    }))
}

/// Removes our nftables table (at exit; the TUN and its routes go with the process).
pub fn stop(e: &Exits) {
    if let Err(err) = nft(&format!("delete table inet {}\n", e.table)) {
        tracing::warn!("removing nftables table {}: {err}", e.table);
    }
}

/// Publishes Babel's routes to the exits' mesh addresses (after route changes), with the
/// last verification checks of them (`daemon::exit::routes_to_exits`).
pub fn publish_routes(d: &daemon::state::Daemon, now: babel_core::Instant, e: &Exits) {
    if e.watched.is_empty() {
        return;
    }
    let checks = d
        .verification
        .as_ref()
        .map(|v| v.route_rows())
        .unwrap_or_default();
    let routes = d.engine.routes(now);
    e.routes.publish(daemon::exit::routes_to_exits(
        &routes, &checks, now, &e.watched,
    ));
}

async fn ifindex(netlink: &Netlink, name: &str) -> anyhow::Result<u32> {
    netlink
        .link(name)
        .await?
        .map(|l| l.index)
        .with_context(|| format!("{name} did not appear"))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    config: DaemonConfig,
    (private, pay_key): (tunnel::PrivateKey, SigningKey),
    (state_file, shared, ledger_base): (Option<PathBuf>, Arc<daemon::payments::PayShared>, PathBuf),
    port: u16,
    mss: u32,
    (view, routes, prices): (Arc<Mutex<ExitView>>, Arc<ExitRoutes>, Arc<PriceTable>),
    netlink: Netlink,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> anyhow::Result<()> {
    let mtu = daemon::exit::tunnel_if_mtu();
    let opened = tunnel::driver::TunDevice::open(TUNNEL_IFNAME).and_then(|tun| {
        let socket = tunnel::driver::bind_udp(port)?;
        let mut device = tunnel::Device::new(private.clone(), &mut rand_core::OsRng);
        device.set_mtu(Some(mtu as usize));
        tunnel::driver::Driver::new(device, tun, socket)
    });
    let mut driver = match opened {
        Ok(d) => d,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return Ok(());
        }
    };
    let ix = ifindex(&netlink, TUNNEL_IFNAME).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
    let (meter_tx, meter_rx) = mpsc::unbounded_channel::<Metered>();
    if let Some(role) = &config.exit.role {
        let len = role.pool_v4.1;
        // The users' IPv6 prefixes are routed into the tunnel, which hands each packet to the
        // peer whose allowed IPs hold it (and drops what no peer holds).
        let v6 = role
            .gateway_v6()
            .zip(role.pool_v6_prefix())
            .map(|(a, pool)| (IpAddr::V6(a), pool));
        let gateway = (IpAddr::V4(role.gateway_v4()), len);
        netlink
            .run(daemon::netlink_ops::exit_tunnel(
                ix,
                mtu,
                gateway,
                v6,
                RTPROT_EXIT,
            ))
            .await
            .context("setting up the exit tunnel")?;
        sysctl("/proc/sys/net/ipv4/ip_forward", "1");
        sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
        nft(&daemon::exit::exit_ruleset(role, mss, &[])).context("installing the exit table")?;
        let _ = ready.send(Ok(()));
        let mut server = open_server(
            &config.exit,
            role,
            &private,
            &pay_key,
            state_file.as_deref(),
        )?;
        let deposit = config
            .pay
            .deposit
            .unwrap_or(daemon::payments::DEFAULT_DEPOSIT);
        let billing = crate::exitpay::ExitBilling::open(
            role,
            state_file.as_deref(),
            deposit,
            &pay_key,
            &mut server,
        )?;
        tokio::spawn(serve(
            role.clone(),
            server,
            tx.clone(),
            view.clone(),
            (meter_rx, prices, billing),
        ));
        tracing::info!(
            "exit: tunnel {TUNNEL_IFNAME} on UDP port {port}, key {}, pool {}/{len}",
            private.public_key().to_base64(),
            role.gateway_v4()
        );
    } else if let Some(c) = &config.exit.client {
        let up = daemon::netlink_ops::NetlinkOp::LinkUp {
            ifindex: ix,
            mtu: Some(mtu),
        };
        netlink
            .run(vec![up])
            .await
            .context("setting up the exit tunnel")?;
        sysctl("/proc/sys/net/ipv4/ip_forward", "1");
        sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
        nft(&daemon::exit::user_ruleset(&c.lan, mss))
            .context("installing the exit client table")?;
        let _ = ready.send(Ok(()));
        tokio::spawn(crate::exitpay::user(
            config.exit.clone(),
            pay_key.clone(),
            view.clone(),
            routes.clone(),
            shared,
            ledger_base,
        ));
        tokio::spawn(client(
            config.exit.clone(),
            pay_key,
            private.public_key(),
            tx.clone(),
            view.clone(),
            routes,
        ));
    }
    // What the tunnel interface carries for the current grant (a user node).
    let mut path = UserPath::default();
    // Whether the kernel took the last changes of `path`.
    let mut path_ok = false;
    let mut peers = std::collections::HashMap::new();
    let mut counted = daemon::exit::ExitMeter::default();
    loop {
        driver
            .run(tokio::time::sleep(TURN))
            .await
            .context("exit tunnel")?;
        let mut cmds: Vec<Cmd> = Vec::new();
        while let Ok(c) = rx.try_recv() {
            cmds.push(c);
        }
        for c in cmds {
            apply(&mut driver, &mut peers, c);
        }
        // A user node: the addresses and the default routes follow the grant, written only
        // when it changes.
        let grant = view.lock().ok().and_then(|v| v.grant.clone());
        if let Some(g) = grant {
            let next = UserPath::of(&g, ix);
            let changes = path.changes(&next);
            if !changes.is_empty() {
                // Only this thread waits (the exit's own), never the main loop.
                let ops = daemon::netlink_ops::user_path(ix, &changes);
                path_ok = match netlink.run(ops).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!("exit: tunnel path: {e}");
                        false
                    }
                };
            }
            // Route verification probes the exit inside the tunnel only once the kernel routes
            // the exit's address in it through the tunnel.
            if let Ok(mut v) = view.lock() {
                v.path_written = path_ok.then_some(g);
            }
            path = next;
        }
        snapshot(&driver, &view);
        if config.exit.role.is_some() {
            meter(&driver, &mut counted, &meter_tx);
        }
    }
}

/// Bytes a user's tunnel peer carried since the last turn: (tunnel key, from it, to it).
type Metered = (tunnel::PublicKey, u64, u64);

/// Sends each peer's new inner bytes to the registration task, which owns the accounts.
fn meter(
    driver: &tunnel::driver::Driver,
    counted: &mut daemon::exit::ExitMeter,
    out: &mpsc::UnboundedSender<Metered>,
) {
    let peers = driver.device().peers().map(|(_, p)| {
        let s = p.stats();
        (p.public_key(), s.rx_bytes, s.tx_bytes)
    });
    for m in counted.read(peers) {
        let _ = out.send(m);
    }
}

/// Applies a change to the tunnel's peers; `peers` remembers each one's allowed IPs.
fn apply(
    driver: &mut tunnel::driver::Driver,
    peers: &mut std::collections::HashMap<tunnel::PublicKey, Vec<Prefix>>,
    c: Cmd,
) {
    let dev = driver.device_mut();
    match c {
        Cmd::Peer {
            key,
            endpoint,
            allowed,
            keepalive,
        } => {
            if let Some(id) = dev.peer_id(&key) {
                // The allowed IPs may have changed (a new lease): start the peer afresh.
                if peers.get(&key) == Some(&allowed) {
                    if let Some(p) = dev.peer_mut(id) {
                        p.set_endpoint(Some(endpoint));
                    }
                    return;
                }
                dev.remove_peer(id);
            }
            let opts = tunnel::PeerOptions {
                endpoint: Some(endpoint),
                persistent_keepalive: keepalive,
                ..Default::default()
            };
            let id = dev.add_peer(key, opts, &allowed);
            peers.insert(key, allowed);
            if let Some(p) = dev.peer_mut(id) {
                p.set_endpoint(Some(endpoint));
            }
            tracing::info!("exit tunnel: peer {} at {endpoint}", key.to_base64());
        }
        Cmd::Policy(key, policy, exempt) => {
            if let Some(p) = dev.peer_id(&key).and_then(|id| dev.peer_mut(id)) {
                p.set_policy(policy);
                p.set_policy_exempt(exempt);
                tracing::info!("exit tunnel: peer {} policy {policy:?}", key.to_base64());
            }
        }
        Cmd::Only(key) => {
            let others: Vec<_> = dev
                .peers()
                .filter(|(_, p)| p.public_key() != key)
                .map(|(id, _)| id)
                .collect();
            for id in others {
                if let Some(p) = dev.remove_peer(id) {
                    peers.remove(&p.public_key());
                }
            }
        }
    }
}

fn snapshot(driver: &tunnel::driver::Driver, view: &Arc<Mutex<ExitView>>) {
    let now = clock::now();
    let Ok(mut v) = view.lock() else { return };
    v.snapshots += 1;
    for (_, p) in driver.device().peers() {
        let s = p.stats();
        let key = p.public_key().to_base64();
        if v.role == "exit" {
            if let Some(u) = v.users.iter_mut().find(|u| u.tunnel_key == key) {
                u.rx_bytes = s.rx_bytes;
                u.tx_bytes = s.tx_bytes;
                u.rx_packets = s.rx_packets;
                u.tx_packets = s.tx_packets;
                u.last_handshake_s = p
                    .last_handshake()
                    .map(|t| now.saturating_since(t).as_secs());
            }
        } else {
            v.rx_bytes = s.rx_bytes;
            v.tx_bytes = s.tx_bytes;
            v.rx_packets = s.rx_packets;
            v.tx_packets = s.tx_packets;
        }
    }
}

/// The exit's registration service over its durable store (next to the state file).
fn open_server(
    settings: &daemon::exit::ExitSettings,
    role: &ExitRole,
    private: &tunnel::PrivateKey,
    pay_key: &SigningKey,
    state_file: Option<&Path>,
) -> anyhow::Result<::exit::ExitServer<::exit::ExitRedbStore>> {
    let path = role.store_path(state_file, "exit.redb");
    let store = ::exit::ExitRedbStore::open(&path)
        .map_err(|e| anyhow::anyhow!("exit store {}: {e}", path.display()))?;
    let (network, prefix_len) = role.pool_v4;
    let mut cfg = ::exit::ExitConfig::new(
        ::exit::Ipv4Pool {
            network,
            prefix_len,
        },
        *private.public_key().as_bytes(),
        role.tunnel_port,
        u32::try_from(role.fee).unwrap_or(u32::MAX),
    );
    cfg.ipv6_pool = role.ipv6_pool();
    cfg.tunnel.ipv6 = role.gateway_v6();
    cfg.admission = match role.admission {
        AdmissionConfig::Open => ::exit::Admission::Open,
        AdmissionConfig::AllowList => {
            ::exit::Admission::AllowList(settings.allow.iter().copied().collect())
        }
    };
    cfg.free_tier_bps = role.free_tier.saturating_mul(8);
    if let Some(close) = role.close_threshold {
        cfg.thresholds = ::exit::ServiceThresholds {
            close: payments::Amount(close),
            cut: payments::Amount(close.saturating_mul(10)),
        };
    }
    cfg.tunnel.mtu = u16::try_from(daemon::exit::tunnel_if_mtu()).unwrap_or(1500);
    ::exit::ExitServer::open(cfg, pay_key.clone(), store, SystemTime::now())
        .map_err(|e| anyhow::anyhow!("exit store {}: {e}", path.display()))
}

/// Makes a user with a lease a peer of the exit tunnel and admits its address, unless it holds
/// that lease already (a refresh: the view only counts it). A failed admission is tried again
/// at the user's next refresh.
fn admit(
    u: &::exit::UserView,
    tx: &mpsc::UnboundedSender<Cmd>,
    view: &Arc<Mutex<ExitView>>,
    admitted: &mut AdmittedLeases,
) {
    let lease = DataPathLease::of(u);
    if !admitted.holds(&u.user, &lease) {
        let _ = tx.send(Cmd::Peer {
            key: lease.tunnel_key,
            endpoint: SocketAddr::new(IpAddr::V6(lease.mesh_address), lease.tunnel_port),
            allowed: lease.allowed_ips(),
            keepalive: None,
        });
        match nft(&daemon::exit::exit_admit(lease.ipv4, lease.ipv6_prefix)) {
            Ok(()) => admitted.record(u.user, &lease),
            Err(e) => tracing::warn!("exit: admitting {}: {e:#}", lease.ipv4),
        }
    }
    if let Ok(mut v) = view.lock() {
        v.admit(&u.user, &lease);
    }
}

/// The exit's registration socket: answers every authentic, fresh request (granted or refused
/// with the reason), admits granted users, counts and logs the rest.
async fn serve(
    role: ExitRole,
    mut server: ::exit::ExitServer<::exit::ExitRedbStore>,
    tx: mpsc::UnboundedSender<Cmd>,
    view: Arc<Mutex<ExitView>>,
    (mut meters, prices, billing): (
        mpsc::UnboundedReceiver<Metered>,
        Arc<PriceTable>,
        (crate::exitpay::ExitBilling, Vec<::exit::Transition>),
    ),
) {
    let (mut billing, restored) = billing;
    let mut admitted = AdmittedLeases::default();
    // Leases survive restarts: every user with one is a peer again before any request.
    for u in server.users() {
        admit(&u, &tx, &view, &mut admitted);
        if let Ok(mut v) = view.lock()
            && let Some(r) = v.users.last_mut()
        {
            r.registrations = 0;
        }
    }
    let socket = match tokio::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, role.port)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("exit: registration socket on UDP port {}: {e}", role.port);
            return;
        }
    };
    tracing::info!("exit: registration on UDP port {}", role.port);
    let mut buf = vec![0u8; 2048];
    for t in restored {
        set_service(&server, &t, (&tx, role.free_tier), billing.exempt);
    }
    let mut bill_tick = tokio::time::interval(BILL_INTERVAL);
    let mut pay_tick = tokio::time::interval(crate::exitpay::PAY_TICK);
    let mut pbuf = vec![0u8; 2048];
    loop {
        let r = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            Some((key, up, down)) = meters.recv() => {
                let c = (&view, &tx, role.free_tier);
                account(&mut server, c, &billing, &prices, key, up, down);
                continue;
            }
            _ = bill_tick.tick() => {
                bill_all(&mut server, &view, &mut billing);
                continue;
            }
            Ok((n, from)) = billing.socket.recv_from(&mut pbuf) => {
                let bytes = pbuf.get(..n).unwrap_or_default();
                if let Some(t) = billing.on_datagram(&mut server, from, bytes) {
                    set_service(&server, &t, (&tx, role.free_tier), billing.exempt);
                }
                if let Some(u) = server.users().into_iter().find(|u| IpAddr::V4(u.ipv4) == from.ip()) {
                    show_account(&view, &u, None, billing.stats(&u.user));
                }
                continue;
            }
            _ = pay_tick.tick() => {
                billing.poll(&server);
                continue;
            }
        };
        let Ok((n, src)) = r else {
            continue;
        };
        let IpAddr::V6(source) = src.ip() else {
            continue;
        };
        let bytes = buf.get(..n).unwrap_or_default();
        match server.register(SystemTime::now(), source, bytes) {
            Ok(answer) => {
                // The user is taken in (tunnel peer, address set, the view route verification
                // reads) before it is answered: our answer is the first packet we send it, so
                // verification never sees it used before it knows it as a tunnel end, and its
                // first handshake finds the peer (or soon will).
                match &answer.decision {
                    ::exit::Decision::Registered(r) => {
                        if let Some(u) = server.user(&r.user) {
                            tracing::info!(
                                "exit: {} registered at {source}: {}",
                                hex::encode(r.user),
                                u.ipv4
                            );
                            admit(&u, &tx, &view, &mut admitted);
                        }
                    }
                    ::exit::Decision::Refused(why) => {
                        tracing::info!("exit: request from {source} refused: {}", why.name());
                    }
                }
                if let Err(e) = socket.send_to(&answer.reply, src).await {
                    tracing::debug!("exit: answer to {src}: {e}");
                }
            }
            Err(e) => {
                tracing::info!("exit: request from {src} dropped: {e}");
                if let Ok(mut v) = view.lock() {
                    v.dropped += 1;
                }
            }
        }
    }
}

/// Meters one user's bytes at the exit's fee and, for the download, the price of the exit's
/// installed route back to the user (what the exit pays its neighbours for it).
fn account(
    server: &mut ::exit::ExitServer<::exit::ExitRedbStore>,
    (view, tx, free_tier): (&Arc<Mutex<ExitView>>, &mpsc::UnboundedSender<Cmd>, u64),
    billing: &crate::exitpay::ExitBilling,
    prices: &PriceTable,
    key: tunnel::PublicKey,
    up: u64,
    down: u64,
) {
    let Some(u) = server
        .users()
        .into_iter()
        .find(|u| u.lease.tunnel_key == *key.as_bytes())
    else {
        return;
    };
    let back = prices
        .lookup(IpAddr::V6(u.lease.mesh_address))
        .map_or(0, |p| p.theirs);
    if let Some(t) = server.meter_transition(&u.user, up, down, back) {
        set_service(server, &t, (tx, free_tier), billing.exempt);
    }
    if let Some(u) = server.user(&u.user) {
        show_account(view, &u, Some(back), billing.stats(&u.user));
    }
}

/// A user's service level changed (metering or a payment): throttling happens in the tunnel,
/// both directions, at the free tier; a cut user gets nothing through it. The exit's bill and
/// payment service is exempt either way, so throttling never blocks the payment that lifts it.
fn set_service(
    server: &::exit::ExitServer<::exit::ExitRedbStore>,
    t: &::exit::Transition,
    (tx, free_tier): (&mpsc::UnboundedSender<Cmd>, u64),
    exempt: tunnel::PolicyExempt,
) {
    let Some(u) = server.user(&t.user) else {
        return;
    };
    tracing::info!(
        "exit: user {} now {} (was {})",
        hex::encode(t.user),
        t.to.name(),
        t.from.name()
    );
    let policy = crate::exitpay::policy(t.to, free_tier);
    let key = tunnel::PublicKey(u.lease.tunnel_key);
    let _ = tx.send(Cmd::Policy(key, policy, Some(exempt)));
}

fn show_account(
    view: &Arc<Mutex<ExitView>>,
    u: &::exit::UserView,
    back: Option<u32>,
    (bill_seq, bills_sent, payments): (u64, u64, u64),
) {
    let Ok(mut v) = view.lock() else { return };
    let user = hex::encode(u.user);
    if let Some(r) = v.users.iter_mut().find(|r| r.user == user) {
        r.upload_bytes = u.upload_bytes;
        r.download_bytes = u.download_bytes;
        r.metered = u.metered.0.to_string();
        r.billed = u.billed.0.to_string();
        r.service = u.service.name().to_owned();
        r.paid = u.paid.0.to_string();
        r.owed = u.owed.0.to_string();
        r.bill_seq = bill_seq;
        r.bills_sent = bills_sent;
        r.payments = payments;
        if let Some(b) = back {
            r.route_back_price = b;
        }
    }
}

/// Commits and signs every user's bill (cumulative totals, durable before signed).
fn bill_all(
    server: &mut ::exit::ExitServer<::exit::ExitRedbStore>,
    view: &Arc<Mutex<ExitView>>,
    billing: &mut crate::exitpay::ExitBilling,
) {
    let now = SystemTime::now();
    for u in server.users() {
        match server.bill(now, &u.user) {
            Ok(Some(b)) => billing.send_bill(&u.user, u.ipv4, &b),
            Ok(None) => {}
            Err(e) => tracing::warn!("exit: bill for {}: {e}", hex::encode(u.user)),
        }
        if let Some(u) = server.user(&u.user) {
            show_account(view, &u, None, billing.stats(&u.user));
        }
    }
}

/// A user node: chooses an exit among the configured ones by Babel's routes to them,
/// registers with it (again every few seconds: the answer renews the lease and tells us if the
/// exit restarted with another tunnel key), and points the tunnel at it.
async fn client(
    settings: daemon::exit::ExitSettings,
    pay_key: SigningKey,
    tunnel_key: tunnel::PublicKey,
    tx: mpsc::UnboundedSender<Cmd>,
    view: Arc<Mutex<ExitView>>,
    routes: Arc<ExitRoutes>,
) {
    let Some(c) = settings.client.clone() else {
        return;
    };
    let socket = match tokio::net::UdpSocket::bind((c.address, 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("exit client: socket on {}: {e}", c.address);
            return;
        }
    };
    let mut choice = daemon::exit::ExitChoice::new(&c);
    let mut registrar = ::exit::Registrar::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok(d) = view
            .lock()
            .map(|mut v| choice.decide(clock::now(), &settings.servers, &routes, &mut v))
        else {
            return;
        };
        let (sel, chosen, due) = (d.selection, d.chosen, d.register);
        if sel.changed {
            tracing::info!(
                "exit client: exit {} ({})",
                chosen
                    .and_then(|i| settings.servers.get(i))
                    .map_or("none", |s| s.name.as_str()),
                sel.reason.name()
            );
        }
        if let (true, Some(i)) = (due, chosen)
            && let Some(s) = settings.servers.get(i)
        {
            let mut nonce = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
            let (request, pending) = registrar.request(
                &pay_key,
                s.key,
                *tunnel_key.as_bytes(),
                c.address,
                SystemTime::now(),
                nonce,
            );
            let to = SocketAddr::new(IpAddr::V6(s.address), s.port);
            if let Err(e) = socket.send_to(&request, to).await {
                tracing::debug!("exit client: request to {to}: {e}");
            }
            let answer = tokio::time::timeout(ANSWER_WAIT, async {
                loop {
                    let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                        continue;
                    };
                    if from != to {
                        continue;
                    }
                    match pending.answer(buf.get(..n).unwrap_or_default()) {
                        Ok(o) => return o,
                        Err(e) => tracing::info!("exit client: answer from {from} dropped: {e}"),
                    }
                }
            })
            .await;
            match answer {
                Ok(::exit::RegistrationOutcome::Registered(r)) => {
                    choice.answered(i, s.key, Some(r.fee), clock::now());
                    let exit_tunnel_key = tunnel::PublicKey(r.tunnel_key);
                    let grant = Grant {
                        tunnel_key: exit_tunnel_key,
                        mesh_address: s.address,
                        tunnel_port: r.tunnel_port,
                        ipv4: (r.ipv4, r.ipv4_prefix_len),
                        exit_ipv4: r.exit_ipv4,
                        ipv6_prefix: r.ipv6_prefix,
                        exit_ipv6: r.exit_ipv6,
                        fee: r.fee,
                    };
                    let _ = tx.send(Cmd::Only(exit_tunnel_key));
                    let _ = tx.send(Cmd::Peer {
                        key: exit_tunnel_key,
                        endpoint: SocketAddr::new(IpAddr::V6(s.address), r.tunnel_port),
                        allowed: daemon::exit::exit_allowed_ips(&grant),
                        keepalive: Some(KEEPALIVE),
                    });
                    if let Ok(mut v) = view.lock() {
                        if v.grant.as_ref() != Some(&grant) {
                            tracing::info!(
                                "exit client: registered with {} as {}/{}",
                                s.name,
                                r.ipv4,
                                r.ipv4_prefix_len
                            );
                        }
                        v.current = Some(s.name.clone());
                        v.ipv4 = Some(format!("{}/{}", r.ipv4, r.ipv4_prefix_len));
                        v.ipv6_prefix = r.ipv6_prefix.map(|(a, l)| format!("{a}/{l}"));
                        v.grant = Some(grant);
                        if let Some(e) = v.exits.get_mut(i) {
                            e.state = "registered".to_owned();
                        }
                    }
                }
                Ok(::exit::RegistrationOutcome::Refused(r)) => {
                    tracing::warn!("exit client: {} refused: {}", s.name, r.reason.name());
                    choice.answered(i, s.key, None, clock::now());
                    if let Ok(mut v) = view.lock()
                        && let Some(e) = v.exits.get_mut(i)
                    {
                        e.state = format!("refused: {}", r.reason.name());
                    }
                }
                Err(_) => tracing::debug!("exit client: no answer from {}", s.name),
            }
        }
        tokio::time::sleep(REFRESH).await;
    }
}
