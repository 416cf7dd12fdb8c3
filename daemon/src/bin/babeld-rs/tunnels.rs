//! The daemon's WireGuard-compatible tunnels (`tunnel` and `tunnel-peer` statements): each runs
//! the `tunnel` crate's driver on a thread of its own, and becomes a Babel interface of kind
//! `tunnel`. Its counters are snapshotted every second for `dump json` and `babelctl show`.

use std::net::IpAddr;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use daemon::config::{TunnelOptions, TunnelPeer};
use daemon::state::{TunnelPeerState, TunnelState};

/// Default MTU of a tunnel interface: two layers of tunnel below a 1500-byte link, so that
/// it fits inside a mesh tunnel (1420) without fragmenting (spec/discovery.md, "MTU").
const DEFAULT_MTU: u32 = daemon::discovery::INNER_TUNNEL_MTU;

/// Starts a tunnel, brings its interface up with a link-local address derived from our public
/// key (TUN devices get none by themselves, and Babel needs one), and returns its shared state.
pub async fn start(
    name: &str,
    opts: &TunnelOptions,
    peers: &[TunnelPeer],
    netlink: &crate::kernel::Netlink,
) -> anyhow::Result<Arc<Mutex<TunnelState>>> {
    let private: tunnel::PrivateKey = opts
        .private_key
        .parse()
        .map_err(|_| anyhow::anyhow!("tunnel {name}: bad private key"))?;
    let public = private.public_key();
    let cfg = tunnel::TunnelConfig {
        private_key: private,
        listen_port: opts.listen_port,
        peers: peers
            .iter()
            .map(|p| tunnel::PeerConfig {
                public_key: p.public_key,
                preshared_key: p.preshared_key.clone(),
                endpoint: p.endpoint,
                allowed_ips: p.allowed_ips.clone(),
                persistent_keepalive: p.persistent_keepalive,
                policy: p.policy,
            })
            .collect(),
    };
    let state = Arc::new(Mutex::new(TunnelState {
        name: name.to_owned(),
        public_key: public.to_base64(),
        listen_port: opts.listen_port.unwrap_or(0),
        peers: Vec::new(),
        pending: Vec::new(),
    }));
    let mtu = opts.mtu.unwrap_or(DEFAULT_MTU);
    let (ready_tx, ready_rx) = std_mpsc::channel::<Result<u16, String>>();
    let shared = state.clone();
    let ifname = name.to_owned();
    std::thread::Builder::new()
        .name(format!("tunnel-{name}"))
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
                let opened = tunnel::driver::TunDevice::open_offload(&ifname).and_then(|tun| {
                    let socket = tunnel::driver::bind_udp(cfg.listen_port.unwrap_or(0))?;
                    let mut device = tunnel::driver::device_from_config(&cfg);
                    // Padding never takes a packet past the interface MTU.
                    device.set_mtu(Some(mtu as usize));
                    tunnel::driver::Driver::new(device, tun, socket)
                });
                let mut driver = match opened {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let port = driver.local_addr().map(|a| a.port()).unwrap_or(0);
                let _ = ready_tx.send(Ok(port));
                loop {
                    if let Err(e) = driver.run(tokio::time::sleep(Duration::from_secs(1))).await {
                        tracing::error!("tunnel {ifname}: {e}");
                        return;
                    }
                    snapshot(&mut driver, &shared);
                }
            });
        })?;
    let port = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .context("tunnel thread did not start")?
        .map_err(|e| anyhow::anyhow!("tunnel {name}: {e}"))?;
    if let Ok(mut s) = state.lock() {
        s.listen_port = port;
    }
    let ll = IpAddr::V6(daemon::discovery::tunnel_link_local(&public));
    netlink
        .link_up(name, mtu, ll, 64)
        .await
        .with_context(|| format!("tunnel {name}"))?;
    tracing::info!(
        "tunnel {name} up on UDP port {port}, public key {}",
        public.to_base64()
    );
    Ok(state)
}

/// Applies pending policy changes, then copies the counters out.
fn snapshot(driver: &mut tunnel::driver::Driver, shared: &Arc<Mutex<TunnelState>>) {
    let pending = shared
        .lock()
        .map(|mut s| std::mem::take(&mut s.pending))
        .unwrap_or_default();
    for (key, policy) in pending {
        let dev = driver.device_mut();
        match dev.peer_id(&key).and_then(|id| dev.peer_mut(id)) {
            Some(p) => {
                p.set_policy(policy);
                tracing::info!("tunnel peer {}: policy {policy:?}", key.to_base64());
            }
            None => tracing::warn!("tunnel policy for unknown peer {}", key.to_base64()),
        }
    }
    let now = clock::now();
    let peers = driver
        .device()
        .peers()
        .map(|(_, p)| {
            let s = p.stats();
            TunnelPeerState {
                public_key: p.public_key().to_base64(),
                endpoint: p.endpoint().map(|e| e.to_string()),
                rx_bytes: s.rx_bytes,
                tx_bytes: s.tx_bytes,
                rx_packets: s.rx_packets,
                tx_packets: s.tx_packets,
                handshakes: s.handshakes_completed,
                last_handshake_s: p
                    .last_handshake()
                    .map(|t| now.saturating_since(t).as_secs()),
                policy: format!("{:?}", p.policy()),
            }
        })
        .collect();
    if let Ok(mut s) = shared.lock() {
        s.peers = peers;
    }
}
