//! Linux driver: one TUN interface, one tokio UDP socket, one [`Device`]
//! with many peers. Packets read from the TUN are routed by destination
//! through the allowed-IPs table; datagrams are dispatched by the device;
//! timers run every 250 ms.
//!
//! System calls are batched so that the cost per packet is the crypto, not
//! the kernel crossings (each feature is detected at start, logged, and
//! falls back to one packet per call when missing):
//! - TUN with the virtio-net header and TSO/USO ([`TunDevice::open_offload`]):
//!   one read returns up to 64 KiB of one TCP/UDP flow, split here into MTU
//!   packets ([`offload::split`]); received TCP segments of one flow are
//!   coalesced into one write ([`offload::Coalescer`]).
//! - UDP through `quinn-udp`: runs of equal-sized datagrams to one peer go
//!   out in one `sendmsg` with `UDP_SEGMENT` (GSO); receives use
//!   `recvmmsg` with `UDP_GRO`, so one call returns many datagrams.
//!
//! The driver is the only place that reads clocks: it builds a [`Now`]
//! from `clock::now()` and `SystemTime::now()` and passes it into the
//! sans-IO core.

pub mod offload;
mod tun;

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

pub use self::tun::TunDevice;
use crate::config::TunnelConfig;
use crate::device::{Device, DeviceAction};
use crate::time::Now;

/// TUN reads handled per wake-up before re-polling every source (each
/// read may carry up to 64 KiB with TSO).
const TUN_READS_PER_WAKE: usize = 8;
/// `recvmmsg` calls per wake-up.
const UDP_RECVS_PER_WAKE: usize = 4;
/// Receive buffers per `recvmmsg` call, each large enough for a GRO batch.
const RX_BATCH: usize = 8;
const RX_BUF: usize = 65536;
/// Most datagrams in one GSO send (the kernel's limit is 64 or more).
const MAX_GSO_SEGMENTS: usize = 64;
/// Most bytes in one GSO send (UDP payload limit, with a margin).
const MAX_GSO_BYTES: usize = 65000;
/// Space for encrypted datagrams queued between sends: several TSO reads.
const TX_QUEUE_BYTES: usize = 512 * 1024;
/// Queue space kept free before another TUN read: what one 64 KiB read
/// becomes at Linux's smallest MSS (88 bytes: about 750 datagrams of
/// 180 bytes), so a legal read never overflows the queue.
const TX_ROOM_PER_READ: usize = 160 * 1024;
/// Room one encrypted datagram needs beyond its plaintext (header, tag,
/// padding), or a handshake message.
const TX_SLACK: usize = 256;

/// Interval at which [`Device::update_timers`] runs.
pub const TIMER_INTERVAL: Duration = Duration::from_millis(250);

fn now() -> Now {
    Now::new(clock::now(), SystemTime::now())
}

/// Builds a [`Device`] from an [`TunnelConfig`], seeding its RNG from
/// the operating system.
pub fn device_from_config(cfg: &TunnelConfig) -> Device {
    let mut dev = Device::new(cfg.private_key.clone(), &mut rand_core::OsRng);
    for p in &cfg.peers {
        dev.add_peer(p.public_key, p.options(), &p.allowed_ips);
    }
    dev
}

/// Socket buffer size requested for the UDP socket; bursts of full-size
/// packets overflow the 208 KiB default.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Gives a tunnel's UDP socket [`SOCKET_BUFFER`] both ways. Past
/// `net.core.{r,w}mem_max` (208 KiB on a stock kernel) when privileged
/// (`SO_RCVBUFFORCE` needs `CAP_NET_ADMIN`, which a router has), as
/// wireguard-go does: with the capped buffer a reader that falls behind for a
/// few milliseconds under a full-rate download loses packets that the sender
/// has already counted (and an exit has billed). Best effort: a smaller
/// buffer still works.
pub fn size_buffers(s: &socket2::Socket) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(s, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    }
    if setsockopt(s, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    }
}

fn make_udp(v6: bool, port: u16) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if v6 {
        s.set_only_v6(false)?;
    }
    size_buffers(&s);
    s.set_nonblocking(true)?;
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4([0, 0, 0, 0].into())
    };
    s.bind(&SocketAddr::new(ip, port).into())?;
    Ok(s.into())
}

/// Binds a dual-stack UDP socket on `port` (0: any) with large buffers,
/// falling back to IPv4-only when IPv6 is unavailable. Must be called
/// inside a tokio runtime.
pub fn bind_udp(port: u16) -> io::Result<UdpSocket> {
    let std = make_udp(true, port).or_else(|_| make_udp(false, port))?;
    UdpSocket::from_std(std)
}

/// Maps an IPv4 destination to v4-mapped IPv6 when the socket is IPv6.
fn dest_for(socket_v6: bool, to: SocketAddr) -> SocketAddr {
    match (socket_v6, to.ip()) {
        (true, IpAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), to.port()),
        _ => to,
    }
}

/// Restores the kernel's default path-MTU behaviour (`*_PMTUDISC_WANT`:
/// fragment locally above the path MTU, and IPv6 datagrams may be
/// fragmented) that `quinn-udp` replaces with "probe" and "don't
/// fragment" (refuse datagrams above the interface MTU), so tunnels nested
/// in tunnels keep working as before.
fn restore_pmtu_default(socket: &UdpSocket, v6: bool) {
    let fd = socket.as_raw_fd();
    let mut opts = vec![(
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_WANT,
    )];
    if v6 {
        opts.push((
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_WANT,
        ));
        // quinn-udp also sets "don't fragment" on IPv6; a tunnel nested in another (an exit
        // tunnel carried by a mesh tunnel) sends full-size datagrams that must be fragmented.
        opts.push((libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 0));
    }
    for (level, name, value) in opts {
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a
        // pointer to a live local `c_int`; the fd is the open socket that
        // `socket` owns for the whole call. Neither socket2 nor quinn-udp
        // exposes these options.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&raw const value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(level, name, error = %io::Error::last_os_error(), "setsockopt failed");
        }
    }
}

/// The UDP side: a tokio socket driven through `quinn-udp` for GSO sends
/// and `recvmmsg`/GRO receives.
struct Udp {
    socket: UdpSocket,
    state: UdpSocketState,
    v6: bool,
}

impl Udp {
    fn new(socket: UdpSocket) -> io::Result<Self> {
        let v6 = socket.local_addr()?.is_ipv6();
        let state = UdpSocketState::new((&socket).into())?;
        restore_pmtu_default(&socket, v6);
        Ok(Udp { socket, state, v6 })
    }

    fn max_segments(&self) -> usize {
        self.state.max_gso_segments().clamp(1, MAX_GSO_SEGMENTS)
    }

    /// Sends `contents` to `to`: one datagram, or with `segment` a GSO
    /// train of `segment`-byte datagrams (the last may be shorter).
    async fn send(&self, to: SocketAddr, contents: &[u8], segment: Option<usize>) {
        let t = Transmit {
            destination: dest_for(self.v6, to),
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        let r = self
            .socket
            .async_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), &t)
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(%to, error = %e, "udp send failed");
        }
    }
}

/// Encrypted datagrams waiting to be sent, packed back to back so that a
/// run of equal-sized datagrams to one destination goes out as one GSO
/// send.
struct TxQueue {
    buf: Vec<u8>,
    len: usize,
    /// (destination, offset in `buf`, length), in send order.
    items: Vec<(SocketAddr, usize, usize)>,
    /// Datagrams dropped because the queue was full.
    overflows: u64,
}

impl TxQueue {
    fn new() -> Self {
        TxQueue {
            buf: vec![0; TX_QUEUE_BYTES],
            len: 0,
            items: Vec::with_capacity(256),
            overflows: 0,
        }
    }

    fn has_room(&self, plaintext: usize) -> bool {
        self.len + plaintext + TX_SLACK <= self.buf.len()
    }

    /// Lets `write` produce one datagram into the free space and queues
    /// it. `write` returns the destination and where the datagram lies in
    /// the slice it was given (see [`span`]).
    fn push_with<F>(&mut self, plaintext: usize, write: F)
    where
        F: FnOnce(&mut [u8]) -> Option<(SocketAddr, usize, usize)>,
    {
        if !self.has_room(plaintext) {
            self.overflows += 1;
            tracing::debug!(
                overflows = self.overflows,
                "tx queue full, datagram dropped"
            );
            return;
        }
        let len = self.len;
        let Some(room) = self.buf.get_mut(len..) else {
            return;
        };
        let cap = room.len();
        let Some((to, off, n)) = write(room) else {
            return;
        };
        if off.checked_add(n).is_none_or(|end| end > cap) {
            return;
        }
        if off != 0 {
            self.buf.copy_within(len + off..len + off + n, len);
        }
        self.items.push((to, len, n));
        self.len += n;
    }

    /// Sends everything queued, as GSO trains where possible.
    async fn flush(&mut self, udp: &Udp) {
        let max = udp.max_segments();
        let mut i = 0;
        while let Some(&(to, start, size)) = self.items.get(i) {
            let mut end = start + size;
            let mut j = i + 1;
            while let Some(&(to2, s2, n2)) = self.items.get(j) {
                if j - i >= max
                    || to2 != to
                    || s2 != end
                    || n2 > size
                    || end + n2 - start > MAX_GSO_BYTES
                {
                    break;
                }
                end += n2;
                j += 1;
                if n2 < size {
                    break; // a shorter datagram ends a train
                }
            }
            let segment = (j - i > 1).then_some(size);
            if let Some(contents) = self.buf.get(start..end) {
                udp.send(to, contents, segment).await;
            }
            i = j;
        }
        self.items.clear();
        self.len = 0;
    }
}

/// Where `data` lies in a buffer starting at address `base`: (offset,
/// length). An outside slice yields an offset past the buffer, which
/// [`TxQueue::push_with`] rejects.
fn span(base: usize, data: &[u8]) -> (usize, usize) {
    ((data.as_ptr() as usize).wrapping_sub(base), data.len())
}

/// The running tunnel.
pub struct Driver {
    device: Device,
    tun: TunDevice,
    udp: Udp,
    tx: TxQueue,
    gro: offload::Coalescer,
}

impl Driver {
    /// Wraps an opened TUN device and a bound socket. Open the TUN with
    /// [`TunDevice::open_offload`] for segmentation offloads.
    pub fn new(device: Device, tun: TunDevice, socket: UdpSocket) -> io::Result<Self> {
        let udp = Udp::new(socket)?;
        tracing::info!(
            tun = tun.name(),
            vnet_hdr = tun.vnet_hdr(),
            tso = tun.tso(),
            uso = tun.uso(),
            udp_gso_segments = udp.state.max_gso_segments(),
            udp_gro_segments = udp.state.gro_segments(),
            "tunnel I/O batching"
        );
        Ok(Driver {
            device,
            tun,
            udp,
            tx: TxQueue::new(),
            gro: offload::Coalescer::default(),
        })
    }

    /// The device (counters, peers).
    pub fn device(&self) -> &Device {
        &self.device
    }
    /// The device, mutably (policy changes between runs).
    pub fn device_mut(&mut self) -> &mut Device {
        &mut self.device
    }
    /// Local UDP address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.socket.local_addr()
    }

    /// Encrypts one TUN read (a plain packet, or a virtio-net frame that
    /// may hold many) into the send queue.
    fn encrypt_read(&mut self, frame: &mut [u8], scratch: &mut [u8]) {
        let t = now();
        let Driver { device, tx, .. } = self;
        let mut one = |pkt: &[u8]| {
            tx.push_with(pkt.len(), |room| {
                let base = room.as_ptr() as usize;
                match device.encapsulate(&t, pkt, room) {
                    Ok(DeviceAction::Send { to, data, .. }) => {
                        let (off, n) = span(base, data);
                        Some((to, off, n))
                    }
                    Ok(_) => None,
                    Err(e) => {
                        tracing::trace!(error = %e, "outgoing packet dropped");
                        None
                    }
                }
            });
        };
        if self.tun.vnet_hdr() {
            if offload::split(frame, scratch, &mut one).is_none() {
                tracing::debug!(len = frame.len(), "malformed frame from tun dropped");
            }
        } else {
            one(frame);
        }
    }

    /// Queues what the peers want to send (handshakes, keepalives, queued
    /// packets) and sends the queue.
    async fn flush(&mut self) {
        let n = now();
        let Driver { device, tx, .. } = self;
        loop {
            let mut more = false;
            tx.push_with(0, |room| {
                let base = room.as_ptr() as usize;
                let (_, to, data) = device.poll_transmit(&n, room)?;
                more = true;
                let (off, len) = span(base, data);
                Some((to, off, len))
            });
            if !more || !tx.has_room(0) {
                break;
            }
        }
        self.tx.flush(&self.udp).await;
    }

    /// Writes one decrypted packet to the TUN, through the coalescer when
    /// the TUN takes virtio-net frames.
    async fn write_tun(tun: &TunDevice, gro: &mut offload::Coalescer, packet: &[u8]) {
        if !tun.vnet_hdr() {
            if let Err(e) = tun.send(packet).await {
                tracing::debug!(error = %e, "tun write failed");
            }
            return;
        }
        if gro.append(packet) {
            return;
        }
        Self::flush_tun(tun, gro).await;
        gro.start(packet);
    }

    async fn flush_tun(tun: &TunDevice, gro: &mut offload::Coalescer) {
        if let Some(frame) = gro.finish()
            && let Err(e) = tun.send(frame).await
        {
            tracing::debug!(error = %e, "tun write failed");
        }
    }

    /// Handles every datagram one `recvmmsg` returned.
    async fn on_datagrams(&mut self, rx: &[u8], meta: &[RecvMeta], out: &mut [u8]) {
        let t = now();
        let Driver {
            device,
            tun,
            tx,
            gro,
            ..
        } = self;
        for (m, buf) in meta.iter().zip(rx.chunks(RX_BUF)) {
            let src = SocketAddr::new(m.addr.ip().to_canonical(), m.addr.port());
            let data = buf.get(..m.len).unwrap_or(&[]);
            let stride = if m.stride == 0 {
                m.len.max(1)
            } else {
                m.stride
            };
            for dgram in data.chunks(stride) {
                match device.handle_datagram(&t, src, dgram, out) {
                    Ok(DeviceAction::Send { to, data, .. }) => {
                        tx.push_with(data.len(), |room| {
                            room.get_mut(..data.len())?.copy_from_slice(data);
                            Some((to, 0, data.len()))
                        });
                    }
                    Ok(DeviceAction::WriteToTunnel { packet, .. }) => {
                        Self::write_tun(tun, gro, packet).await;
                    }
                    Ok(DeviceAction::None) => {}
                    Err(e) => tracing::trace!(%src, error = %e, "datagram dropped"),
                }
            }
        }
    }

    /// Runs until `shutdown` completes or an I/O error on the TUN device.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let mut tun_buf = vec![0u8; offload::VNET_HDR_LEN + 65536];
        let mut scratch = vec![0u8; 65536];
        let mut rx = vec![0u8; RX_BATCH * RX_BUF];
        let mut meta = [RecvMeta::default(); RX_BATCH];
        let mut out = vec![0u8; 65536 + 64];
        let mut timer = tokio::time::interval(TIMER_INTERVAL);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = self.tun.recv(&mut tun_buf) => {
                    // Encrypt whatever is already queued (up to a budget),
                    // then send it in as few calls as possible.
                    let mut next = Some(r?);
                    let mut budget = TUN_READS_PER_WAKE;
                    while let Some(n) = next {
                        if let Some(frame) = tun_buf.get_mut(..n) {
                            self.encrypt_read(frame, &mut scratch);
                        }
                        budget -= 1;
                        next = if budget == 0 || !self.tx.has_room(TX_ROOM_PER_READ) {
                            None
                        } else {
                            self.tun.try_recv(&mut tun_buf).ok()
                        };
                    }
                    self.flush().await;
                }
                r = self.udp.socket.readable() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "udp readiness failed");
                        continue;
                    }
                    for _ in 0..UDP_RECVS_PER_WAKE {
                        let got = {
                            let mut chunks = rx.chunks_mut(RX_BUF);
                            let mut bufs: [IoSliceMut<'_>; RX_BATCH] = std::array::from_fn(|_| {
                                IoSliceMut::new(chunks.next().unwrap_or_default())
                            });
                            let udp = &self.udp;
                            udp.socket.try_io(Interest::READABLE, || {
                                udp.state.recv((&udp.socket).into(), &mut bufs, &mut meta)
                            })
                        };
                        match got {
                            Ok(n) => {
                                let metas = meta.get(..n).unwrap_or(&[]);
                                self.on_datagrams(&rx, metas, &mut out).await;
                            }
                            Err(e) => {
                                if e.kind() != io::ErrorKind::WouldBlock {
                                    tracing::debug!(error = %e, "udp recv failed");
                                }
                                break;
                            }
                        }
                    }
                    Self::flush_tun(&self.tun, &mut self.gro).await;
                    self.flush().await;
                }
                _ = timer.tick() => {
                    let t = now();
                    self.device.update_timers(&t);
                    self.flush().await;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// As root the buffers are forced past `net.core.{r,w}mem_max`, whatever the machine's
    /// sysctls (the kernel reports twice what was set); without the privilege they are what
    /// the caps allow, which this test cannot tell from a failure.
    #[test]
    fn buffers_are_forced_past_the_caps_when_privileged() {
        if !nix::unistd::Uid::effective().is_root() {
            println!("skipped: forcing socket buffers needs root (CAP_NET_ADMIN)");
            return;
        }
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        size_buffers(&s);
        assert!(s.recv_buffer_size().unwrap() >= SOCKET_BUFFER);
        assert!(s.send_buffer_size().unwrap() >= SOCKET_BUFFER);
    }
}
