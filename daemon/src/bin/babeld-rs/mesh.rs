//! The driver of `type mesh` interfaces (spec/discovery.md): per physical interface, one
//! thread with a discovery socket, one tunnel UDP socket and one tunnel [`tunnel::Device`]
//! serving every neighbour, and one TUN interface per neighbour whose handshake completed. The
//! protocol decisions are `daemon::discovery`'s; this file only moves bytes and interfaces.
//! It also installs the nftables table that drops forwarding of packets that did not come
//! through a tunnel.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use daemon::config::{ConfiguredKind, DaemonConfig};
use daemon::discovery::{
    Announcement, Discovery, DiscoveryOutput, GROUP, MAX_NEIGHBOURS, MeshNeighbourView, MeshView,
    NeighbourState, PORT, tunnel_mtu,
};
use daemon::payments::{
    LinkShaper, MeterBoard, MeterRow, MeteringHook, Meters, PriceTable, Shaping,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tunnel::driver::TunDevice;
use tunnel::{DeviceAction, PeerId, PeerOptions, PublicKey};

/// The nftables table the daemon owns (family `inet`).
pub const NFT_TABLE: &str = "babeld_rs";

/// A neighbour's tunnel came up or went down (for the main loop: Babel interfaces, monitors).
#[derive(Debug)]
pub enum MeshEvent {
    /// A tunnel interface exists and has its link-local address.
    Up {
        /// Tunnel interface name.
        tunnel: String,
        /// Monitor line.
        line: String,
    },
    /// A tunnel interface was removed.
    Down {
        /// Tunnel interface name.
        tunnel: String,
        /// Monitor line.
        line: String,
    },
}

/// Running mesh interfaces.
pub struct Mesh {
    /// Their views, for `dump` and the control socket.
    pub views: Vec<Arc<Mutex<MeshView>>>,
    /// Tunnel events.
    pub events: mpsc::UnboundedReceiver<MeshEvent>,
}

/// Takes the `type mesh` interfaces out of `interfaces` (Babel does not run on them), starts
/// a driver on each and installs the forwarding filter. `None` when there are none.
pub fn start(
    config: &DaemonConfig,
    interfaces: &mut Vec<String>,
    prices: &Arc<PriceTable>,
    board: &MeterBoard,
    shaping: Option<&Shaping>,
    netlink: &crate::kernel::Netlink,
) -> anyhow::Result<Option<Mesh>> {
    let phys: Vec<String> = config
        .interfaces
        .iter()
        .filter(|(n, _)| config.interface_options(n).kind == Some(ConfiguredKind::Mesh))
        .map(|(n, _)| n.clone())
        .collect();
    if phys.is_empty() {
        return Ok(None);
    }
    interfaces.retain(|n| !phys.contains(n));
    let private = match &config.mesh.private_key {
        Some(k) => k
            .parse::<tunnel::PrivateKey>()
            .map_err(|_| anyhow::anyhow!("mesh-private-key: not a key"))?,
        None => tunnel::PrivateKey::generate(&mut rand_core::OsRng),
    };
    install_filter(&phys)?;
    let (tx, events) = mpsc::unbounded_channel();
    let mut views = Vec::new();
    for p in &phys {
        let m = Meters::default();
        let mut hook = MeteringHook::new(prices.clone(), m.clone());
        // Payments on: every packet of the link passes its shaper (spec/payments.md).
        let shaper = shaping.map(|s| (s.link(), s.clone()));
        if let Some((sh, _)) = &shaper {
            hook = hook.with_shaper(sh.clone());
        }
        let metering = (hook, m, board.clone(), shaper);
        let view = Arc::new(Mutex::new(MeshView {
            interface: p.clone(),
            public_key: private.public_key().to_base64(),
            policy: config.mesh.policy.clone(),
            ..Default::default()
        }));
        let (v, k, t, name, tx, nl) = (
            view.clone(),
            private.clone(),
            config.mesh.timers(),
            p.clone(),
            tx.clone(),
            netlink.clone(),
        );
        std::thread::Builder::new()
            .name(format!("mesh-{p}"))
            .spawn(move || {
                let ran = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
                    .and_then(|rt| rt.block_on(run(name.clone(), k, t, v, tx, nl, metering)));
                if let Err(e) = ran {
                    tracing::error!("mesh {name}: {e:#}");
                }
            })?;
        views.push(view);
    }
    tracing::info!(
        "mesh on {}: public key {}",
        phys.join(", "),
        private.public_key().to_base64()
    );
    Ok(Some(Mesh { views, events }))
}

/// Runs an `nft -f -` script (one transaction).
pub fn nft(script: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running nft (install nftables)")?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The name of the counter of packets dropped on `ifname` in `dir` (`in` or `out`).
pub fn counter_name(dir: &str, ifname: &str) -> String {
    let clean: String = ifname
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("mesh_{dir}_{clean}")
}

/// Our own table: in the forward hook, drop (and count) whatever arrived on a mesh interface
/// itself, and whatever would leave through one in the clear. Packets to and from the router
/// (discovery, tunnel UDP, neighbour discovery) are not forwarded and never see this chain.
fn install_filter(phys: &[String]) -> anyhow::Result<()> {
    let mut s = format!(
        "table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\ntable inet {NFT_TABLE} {{\n"
    );
    for p in phys {
        for dir in ["in", "out"] {
            s.push_str(&format!("  counter {} {{ }}\n", counter_name(dir, p)));
        }
    }
    s.push_str(
        "  chain forward {\n    type filter hook forward priority filter - 10; policy accept;\n",
    );
    for p in phys {
        s.push_str(&format!(
            "    iifname \"{p}\" counter name \"{}\" drop\n    oifname \"{p}\" counter name \"{}\" drop\n",
            counter_name("in", p),
            counter_name("out", p)
        ));
    }
    s.push_str("  }\n}\n");
    nft(&s).context("installing the mesh forwarding filter")
}

/// Removes our table (at exit).
pub fn remove_filter() {
    if let Err(e) = nft(&format!("delete table inet {NFT_TABLE}\n")) {
        tracing::warn!("removing nftables table {NFT_TABLE}: {e}");
    }
}

fn now() -> tunnel::Now {
    tunnel::Now::new(clock::now(), SystemTime::now())
}

fn udp(ifname: &str, port: u16, group: Option<(Ipv6Addr, u32)>) -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(ifname.as_bytes()))
        .with_context(|| format!("binding to {ifname}"))?;
    tunnel::driver::size_buffers(&s);
    if let Some((g, ix)) = group {
        s.join_multicast_v6(&g, ix)?;
        s.set_multicast_if_v6(ix)?;
        s.set_multicast_loop_v6(false)?;
        s.set_multicast_hops_v6(1)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
    Ok(UdpSocket::from_std(s.into())?)
}

struct Tunnel {
    name: String,
    tun: Arc<TunDevice>,
    reader: tokio::task::JoinHandle<()>,
}

struct Driver {
    phys: String,
    ifindex: u32,
    mtu: u32,
    our_key: PublicKey,
    device: tunnel::Device,
    discovery: Discovery,
    socket: UdpSocket,
    tunnels: HashMap<PeerId, Tunnel>,
    /// Authenticated packets and handshakes per peer when last looked at.
    seen: HashMap<PeerId, (u64, u64)>,
    /// Link set-up goes through the kernel dump thread.
    netlink: crate::kernel::Netlink,
    packets: mpsc::UnboundedSender<(PeerId, Vec<u8>)>,
    events: mpsc::UnboundedSender<MeshEvent>,
    view: Arc<Mutex<MeshView>>,
    out: Vec<u8>,
    /// What the device's metering hook counts, and where `dump` reads it.
    meters: Meters,
    board: MeterBoard,
    /// The link's shaper, the payment loop's levels, and their generation last applied.
    shaping: Option<(LinkShaper, Shaping, u64)>,
}

async fn run(
    phys: String,
    private: tunnel::PrivateKey,
    timers: daemon::discovery::Timers,
    view: Arc<Mutex<MeshView>>,
    events: mpsc::UnboundedSender<MeshEvent>,
    netlink: crate::kernel::Netlink,
    (hook, meters, board, shaping): (
        MeteringHook,
        Meters,
        MeterBoard,
        Option<(LinkShaper, Shaping)>,
    ),
) -> anyhow::Result<()> {
    // Wait for the physical interface to exist.
    let link = loop {
        if let Some(l) = netlink.link(&phys).await? {
            break l;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let ifindex = link.index;
    let mtu = tunnel_mtu(link.mtu.unwrap_or(1500));
    let announce_socket = udp(&phys, PORT, Some((GROUP, ifindex)))?;
    let socket = udp(&phys, 0, None)?;
    let port = socket.local_addr()?.port();
    let our_key = private.public_key();
    let mut device = tunnel::Device::new(private, &mut rand_core::OsRng);
    device.set_source_check(false);
    device.set_packet_hook(Some(Box::new(hook)));
    device.set_mtu(Some(mtu as usize));
    if let Ok(mut v) = view.lock() {
        v.port = port;
        v.tunnel_mtu = mtu;
    }
    let (packets, mut packets_rx) = mpsc::unbounded_channel();
    let mut d = Driver {
        phys: phys.clone(),
        ifindex,
        mtu,
        our_key,
        device,
        discovery: Discovery::new(our_key, timers, MAX_NEIGHBOURS),
        socket,
        tunnels: HashMap::new(),
        seen: HashMap::new(),
        netlink,
        packets,
        events,
        view: view.clone(),
        out: vec![0u8; 65536 + 64],
        meters,
        board,
        shaping: shaping.map(|(l, s)| (l, s, 0)),
    };
    tracing::info!("mesh {phys}: tunnel port {port}, tunnel MTU {mtu}");
    let mut seqno = 0u64;
    let group = SocketAddr::V6(SocketAddrV6::new(GROUP, PORT, 0, ifindex));
    let mut announce = tokio::time::interval(timers.announce);
    let mut tick = tokio::time::interval(tunnel::driver::TIMER_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_snapshot = clock::now();
    // No eager answer yet: the first newcomer is answered even right after start-up, when two
    // routers that start together each miss the other's first announcement.
    let mut last_eager = None;
    let mut generation = 0u64;
    let mut policy = view.lock().map(|v| v.policy.clone()).unwrap_or_default();
    let mut abuf = vec![0u8; 2048];
    let mut ubuf = vec![0u8; 65536];
    loop {
        tokio::select! {
            _ = announce.tick() => {
                seqno += 1;
                let a = Announcement { public_key: our_key, port, seqno }.encode();
                if let Err(e) = announce_socket.send_to(&a, group).await {
                    tracing::debug!("mesh {phys}: announcing: {e}");
                }
            }
            r = announce_socket.recv_from(&mut abuf) => {
                let Ok((n, SocketAddr::V6(src))) = r else { continue };
                let before = d.discovery.neighbours().count();
                let bytes = abuf.get(..n).unwrap_or_default();
                if let Err(e) = d.discovery.handle_announcement(clock::now(), src, bytes, &policy) {
                    tracing::debug!("mesh {phys}: announcement from {src} dropped: {e}");
                }
                // Someone new: answer with our own announcement at once (at most once a
                // second) rather than at the next interval, so it can start its handshake.
                let t = clock::now();
                if d.discovery.neighbours().count() > before
                    && last_eager.is_none_or(|e| t.saturating_since(e) >= Duration::from_secs(1))
                {
                    last_eager = Some(t);
                    seqno += 1;
                    let a = Announcement { public_key: our_key, port, seqno }.encode();
                    let _ = announce_socket.send_to(&a, group).await;
                }
                d.outputs().await;
            }
            r = d.socket.recv_from(&mut ubuf) => {
                let Ok((n, src)) = r else { continue };
                d.datagram(src, ubuf.get(..n).unwrap_or_default()).await;
            }
            Some((id, pkt)) = packets_rx.recv() => {
                d.outgoing(id, &pkt).await;
            }
            _ = tick.tick() => {
                let t = now();
                d.device.update_timers(&t);
                d.flush().await;
                d.liveness();
                d.discovery.handle_timeout(clock::now());
                d.apply_shaping();
                if let Ok(v) = view.lock() && v.policy_generation != generation {
                    generation = v.policy_generation;
                    policy = v.policy.clone();
                    d.discovery.set_policy(clock::now(), &policy);
                }
                d.outputs().await;
                if clock::now().saturating_since(last_snapshot) >= Duration::from_secs(1) {
                    last_snapshot = clock::now();
                    d.snapshot();
                }
            }
        }
    }
}

async fn send(socket: &UdpSocket, phys: &str, to: SocketAddr, data: &[u8]) {
    if let Err(e) = socket.send_to(data, to).await {
        tracing::debug!(%to, "mesh {phys}: udp send: {e}");
    }
}

impl Driver {
    /// Applies the payment loop's service levels to this link's shaper.
    fn apply_shaping(&mut self) {
        if let Some((shaper, shaping, seen)) = &mut self.shaping {
            let device = &self.device;
            shaping.apply(shaper, seen, |k| {
                k.parse::<PublicKey>().ok().and_then(|k| device.peer_id(&k))
            });
        }
    }

    async fn datagram(&mut self, src: SocketAddr, data: &[u8]) {
        let t = now();
        match self.device.handle_datagram(&t, src, data, &mut self.out) {
            Ok(DeviceAction::Send { to, data, .. }) => {
                send(&self.socket, &self.phys, to, data).await;
            }
            Ok(DeviceAction::WriteToTunnel { peer, packet }) => {
                if let Some(t) = self.tunnels.get(&peer) {
                    let _ = t.tun.send(packet).await;
                }
            }
            Ok(DeviceAction::None) => {}
            Err(e) => tracing::trace!(%src, "mesh {}: datagram dropped: {e}", self.phys),
        }
        self.flush().await;
        // A completed handshake brings the neighbour up without waiting for the next tick.
        self.liveness();
        self.outputs().await;
    }

    async fn outgoing(&mut self, id: PeerId, pkt: &[u8]) {
        let t = now();
        match self.device.encapsulate_to(&t, id, pkt, &mut self.out) {
            Ok(DeviceAction::Send { to, data, .. }) => {
                send(&self.socket, &self.phys, to, data).await;
            }
            Ok(_) => {}
            Err(e) => tracing::trace!("mesh {}: outgoing packet dropped: {e}", self.phys),
        }
        self.flush().await;
    }

    async fn flush(&mut self) {
        let t = now();
        while let Some((_, to, data)) = self.device.poll_transmit(&t, &mut self.out) {
            send(&self.socket, &self.phys, to, data).await;
        }
    }

    /// Tells discovery about peers whose tunnels received authenticated packets.
    fn liveness(&mut self) {
        let now = clock::now();
        let mut alive = Vec::new();
        for (id, p) in self.device.peers() {
            let s = p.stats();
            // Keepalives are authenticated too: a neighbour with nothing to send still proves
            // it is there (WireGuard's passive keepalive answers our data within 10 s).
            let cur = (s.rx_packets + s.rx_keepalives, s.handshakes_completed);
            if cur != (0, 0) && self.seen.get(&id) != Some(&cur) {
                self.seen.insert(id, cur);
                let ep = match p.endpoint() {
                    Some(SocketAddr::V6(a)) => Some(a),
                    _ => None,
                };
                alive.push((p.public_key(), ep));
            }
        }
        for (k, ep) in alive {
            self.discovery.authenticated(now, &k, ep);
        }
    }

    async fn outputs(&mut self) {
        while let Some(o) = self.discovery.poll_output() {
            match o {
                DiscoveryOutput::AddPeer { key, endpoint } => {
                    let opts = PeerOptions {
                        endpoint: Some(SocketAddr::V6(endpoint)),
                        ..Default::default()
                    };
                    // No allowed IPs: packets go to a peer by the TUN they were read from, and
                    // the source check is off (each peer has its own interface).
                    let id = self.device.add_peer(key, opts, &[]);
                    if let Some(p) = self.device.peer_mut(id) {
                        p.set_endpoint(Some(SocketAddr::V6(endpoint)));
                    }
                    tracing::info!("mesh {}: neighbour {key} at {endpoint}", self.phys);
                    self.initiate(id).await;
                }
                DiscoveryOutput::SetEndpoint { key, endpoint } => {
                    if let Some(id) = self.device.peer_id(&key) {
                        if let Some(p) = self.device.peer_mut(id) {
                            p.set_endpoint(Some(SocketAddr::V6(endpoint)));
                        }
                        tracing::info!("mesh {}: neighbour {key} moved to {endpoint}", self.phys);
                        self.initiate(id).await;
                    }
                }
                DiscoveryOutput::Probe { key, to } => {
                    let Some(id) = self.device.peer_id(&key) else {
                        continue;
                    };
                    let t = now();
                    // The initiation goes to `to`; the peer's endpoint is left alone; the
                    // device moves it only when the authenticated response comes back.
                    match self.device.initiate(&t, id, &mut self.out) {
                        Ok(DeviceAction::Send { data, .. }) => {
                            tracing::info!(
                                "mesh {}: neighbour {key} silent, asking at {to}",
                                self.phys
                            );
                            send(&self.socket, &self.phys, SocketAddr::V6(to), data).await;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!("mesh {}: probe: {e}", self.phys),
                    }
                }
                DiscoveryOutput::Initiate { key } => {
                    if let Some(id) = self.device.peer_id(&key) {
                        self.initiate(id).await;
                    }
                }
                DiscoveryOutput::TunnelUp { key } => {
                    if let Some((_, _, seen)) = &mut self.shaping {
                        *seen = 0;
                    }
                    if let Some(id) = self.device.peer_id(&key)
                        && let Err(e) = self.tunnel_up(id, &key).await
                    {
                        // The next authenticated packet tries again.
                        tracing::warn!("mesh {}: tunnel to {key}: {e:#}", self.phys);
                        self.discovery.tunnel_failed(&key);
                        self.seen.remove(&id);
                    }
                }
                DiscoveryOutput::Remove { key, reason } => {
                    let Some(id) = self.device.peer_id(&key) else {
                        continue;
                    };
                    let view = self.neighbour_view(id);
                    self.device.remove_peer(id);
                    if let Some((sh, _, seen)) = &mut self.shaping {
                        if let Ok(mut sh) = sh.lock() {
                            sh.remove(&id);
                        }
                        // A neighbour coming back gets its level again.
                        *seen = 0;
                    }
                    self.seen.remove(&id);
                    if let Some(t) = self.tunnels.remove(&id) {
                        // Wait until the reader task (which holds the TUN too) is gone, so the
                        // interface is gone and its name free when this function returns.
                        t.reader.abort();
                        let _ = t.reader.await;
                        drop(t.tun);
                        tracing::info!(
                            "mesh {}: tunnel {} to {key} removed ({reason})",
                            self.phys,
                            t.name
                        );
                        // Discovery may have forgotten the neighbour already (a timeout).
                        let line = view.map_or_else(
                            || {
                                format!(
                                    "flush mesh-neighbour {} if {} state down tunnel {}",
                                    key.to_base64(),
                                    self.phys,
                                    t.name
                                )
                            },
                            |v| v.line("flush", &self.phys),
                        );
                        let _ = self.events.send(MeshEvent::Down {
                            tunnel: t.name,
                            line,
                        });
                    } else {
                        tracing::info!("mesh {}: neighbour {key} forgotten ({reason})", self.phys);
                    }
                }
            }
        }
        self.snapshot();
    }

    async fn initiate(&mut self, id: PeerId) {
        let t = now();
        match self.device.initiate(&t, id, &mut self.out) {
            Ok(DeviceAction::Send { to, data, .. }) => {
                send(&self.socket, &self.phys, to, data).await;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("mesh {}: handshake: {e}", self.phys),
        }
    }

    fn tunnel_name(&self, key: &PublicKey) -> String {
        let k = key.as_bytes();
        format!(
            "m{}k{:02x}{:02x}{:02x}{:02x}",
            self.ifindex, k[0], k[1], k[2], k[3]
        )
    }

    async fn tunnel_up(&mut self, id: PeerId, key: &PublicKey) -> anyhow::Result<()> {
        let name = self.tunnel_name(key);
        let tun = Arc::new(TunDevice::open(&name).with_context(|| format!("opening {name}"))?);
        let ll = IpAddr::V6(daemon::discovery::tunnel_link_local(&self.our_key));
        self.netlink.link_up(&name, self.mtu, ll, 64).await?;
        let reader_tun = tun.clone();
        let tx = self.packets.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = reader_tun.recv(&mut buf).await {
                if tx
                    .send((id, buf.get(..n).unwrap_or_default().to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        });
        tracing::info!("mesh {}: tunnel {name} to {key} up", self.phys);
        self.tunnels.insert(
            id,
            Tunnel {
                name: name.clone(),
                tun,
                reader,
            },
        );
        let line = self
            .neighbour_view(id)
            .map_or_else(String::new, |v| v.line("add", &self.phys));
        let _ = self.events.send(MeshEvent::Up { tunnel: name, line });
        Ok(())
    }

    fn neighbour_view(&self, id: PeerId) -> Option<MeshNeighbourView> {
        let p = self.device.peer(id)?;
        let n = self.discovery.neighbour(&p.public_key())?;
        Some(view_of(
            n,
            Some(p),
            self.tunnels.get(&id).map(|t| t.name.clone()),
        ))
    }

    fn snapshot(&self) {
        let neighbours = self
            .discovery
            .neighbours()
            .map(|n| {
                let id = self.device.peer_id(&n.key);
                view_of(
                    n,
                    id.and_then(|id| self.device.peer(id)),
                    id.and_then(|id| self.tunnels.get(&id))
                        .map(|t| t.name.clone()),
                )
            })
            .collect();
        if let Ok(mut v) = self.view.lock() {
            v.neighbours = neighbours;
            v.counters = *self.discovery.counters();
            v.tunnel = self.device.stats().clone();
        }
        self.publish_meters();
    }

    /// Copies the meters' totals to the board `dump` reads.
    fn publish_meters(&self) {
        let Ok(meters) = self.meters.lock() else {
            return;
        };
        let rows: Vec<MeterRow> = meters
            .iter()
            .filter_map(|(id, m)| {
                let key = self.device.peer(*id)?.public_key().to_base64();
                let t = m.total();
                Some(MeterRow {
                    interface: self.phys.clone(),
                    neighbour: key,
                    tunnel: self.tunnels.get(id).map(|t| t.name.clone()),
                    bytes_in: t.bytes_in,
                    bytes_out: t.bytes_out,
                    value_in: t.value_in.0,
                    value_out: t.value_out.0,
                    value_shaped_in: t.shaped_in.0,
                })
            })
            .collect();
        drop(meters);
        if let Ok(mut b) = self.board.lock() {
            for r in rows {
                b.insert((r.interface.clone(), r.neighbour.clone()), r);
            }
        }
    }
}

fn view_of(
    n: &daemon::discovery::MeshNeighbour,
    p: Option<&tunnel::Peer>,
    tunnel: Option<String>,
) -> MeshNeighbourView {
    let s = p.map(|p| p.stats().clone()).unwrap_or_default();
    MeshNeighbourView {
        public_key: n.key.to_base64(),
        endpoint: SocketAddr::V6(n.endpoint).to_string(),
        state: if n.state == NeighbourState::Up && tunnel.is_none() {
            NeighbourState::Pending
        } else {
            n.state
        },
        tunnel,
        last_handshake_s: p
            .and_then(|p| p.last_handshake())
            .map(|t| clock::now().saturating_since(t).as_secs()),
        handshakes: s.handshakes_completed,
        rx_bytes: s.rx_bytes,
        tx_bytes: s.tx_bytes,
        rx_packets: s.rx_packets,
        tx_packets: s.tx_packets,
        replay_drops: s.replay_drops,
        decrypt_drops: s.decrypt_drops,
        handshake_drops: s.handshake_drops,
    }
}

/// The next tunnel event (or payment line), or never when there is none to wait for.
pub async fn next_event<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Before the interfaces are re-read: a new tunnel becomes a Babel interface of kind `tunnel`
/// (timestamps and RTT on, as babeld for tunnels). Returns the monitor line.
pub fn before_sync(d: &mut daemon::state::Daemon, ev: &MeshEvent) -> String {
    match ev {
        MeshEvent::Up { tunnel, line } => {
            let opts = daemon::config::InterfaceOptions {
                kind: Some(ConfiguredKind::Tunnel),
                ..Default::default()
            };
            d.config
                .apply(daemon::config::Statement::Interface(tunnel.clone(), opts));
            if !d.ifaces.iter().any(|i| i.name == *tunnel) {
                d.ifaces.push(daemon::state::Iface {
                    name: tunnel.clone(),
                    ifindex: None,
                    link_local: None,
                    ipv4: None,
                    mtu: 1500,
                    wireless: false,
                    point_to_point: true,
                    link_up: false,
                    running: false,
                });
            }
            line.clone()
        }
        MeshEvent::Down { line, .. } => line.clone(),
    }
}

/// After the interfaces were re-read (a removed tunnel is down in the engine by then): forget
/// it, so the interface list does not grow with every neighbour that ever came and went.
pub fn after_sync(d: &mut daemon::state::Daemon, ev: &MeshEvent) {
    if let MeshEvent::Down { tunnel, .. } = ev {
        d.ifaces.retain(|i| i.name != *tunnel || i.running);
        d.config.interfaces.retain(|(n, _)| n != tunnel);
    }
}
