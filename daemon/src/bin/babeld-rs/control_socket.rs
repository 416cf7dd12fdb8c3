//! The control sockets' I/O: one reader and one writer task per client, feeding the main loop
//! through a bounded queue. Every buffer is bounded (`daemon::clients`): the shared input queue
//! holds at most [`INPUT_QUEUE`] reads, a session keeps at most one line
//! (`daemon::control::MAX_LINE`), and replies waiting for a slow reader are capped by
//! [`OutputBudget`]; a client over its share is dropped, not buffered.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use daemon::clients::{ClientAdmission, ClientLimits, OutputBudget, Slots};
use daemon::config::LocalEndpoint;
use daemon::control::{Banner, Handler, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Reads waiting for the main loop, all clients together (each at most [`READ_SIZE`] bytes).
const INPUT_QUEUE: usize = 64;
/// One read from a client.
const READ_SIZE: usize = 4096;

/// The most a client's writer gathers from its queue into one write.
const WRITE_SIZE: usize = 64 * 1024;
/// How often idle clients are looked for.
const SWEEP: Duration = Duration::from_secs(5);

/// A message from a connection's tasks.
pub enum ClientMsg {
    Connected {
        id: u64,
        read_write: bool,
        out: Outbox,
        reader: AbortHandle,
        writer: AbortHandle,
    },
    Data {
        id: u64,
        bytes: Vec<u8>,
    },
    Closed {
        id: u64,
    },
}

/// The writer side of a client: chunks to write, and how many bytes wait in them.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

impl Outbox {
    fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn push(&self, bytes: Vec<u8>) {
        let n = bytes.len();
        self.queued.fetch_add(n, Ordering::Relaxed);
        if self.tx.send(bytes).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Asks the writer to close the connection once what is queued is written.
    fn close(&self) {
        let _ = self.tx.send(Vec::new());
    }
}

struct Client {
    session: Session,
    out: Outbox,
    reader: AbortHandle,
    writer: AbortHandle,
}

impl Client {
    /// Closes the connection at once, dropping what is queued.
    fn abort(&self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// Counters of the control sockets (logged; `dump counters` prints the engine's).
#[derive(Clone, Copy, Debug, Default)]
pub struct ControlStats {
    pub refused: u64,
    pub evicted: u64,
    pub timed_out: u64,
    pub slow_readers: u64,
}

/// The control sockets: listeners, clients, their limits.
pub struct ControlServer {
    rx: mpsc::Receiver<ClientMsg>,
    clients: HashMap<u64, Client>,
    slots: Slots,
    budget: OutputBudget,
    sweep: tokio::time::Interval,
    /// Unix socket files we created, removed at exit.
    paths: Vec<PathBuf>,
    pub stats: ControlStats,
}

/// What [`ControlServer::recv`] returns.
pub enum ControlEvent {
    Message(ClientMsg),
    Sweep,
}

impl ControlServer {
    /// Binds the control sockets: `(endpoint, read_write)`.
    pub async fn bind(
        endpoints: &[(LocalEndpoint, bool)],
        limits: ClientLimits,
    ) -> anyhow::Result<ControlServer> {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let mut paths = Vec::new();
        for (ep, rw) in endpoints {
            if let LocalEndpoint::Path(p) = ep {
                paths.push(p.clone());
            }
            listen(ep.clone(), *rw, tx.clone(), limits.write_timeout).await?;
        }
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(ControlServer {
            rx,
            clients: HashMap::new(),
            slots: Slots::new(limits),
            budget: OutputBudget::new(&limits),
            sweep,
            paths,
            stats: ControlStats::default(),
        })
    }

    /// The next message from a client, or a tick of the idle sweep.
    pub async fn recv(&mut self) -> ControlEvent {
        tokio::select! {
            Some(m) = self.rx.recv() => ControlEvent::Message(m),
            _ = self.sweep.tick() => ControlEvent::Sweep,
        }
    }

    /// True if some client receives `monitor` lines.
    pub fn monitoring(&self) -> bool {
        self.clients.values().any(|c| c.session.is_monitoring())
    }

    fn all_queued(&self) -> usize {
        self.clients.values().map(|c| c.out.queued()).sum()
    }

    /// Queues `bytes` for client `id`, or drops the client if it is too slow a reader.
    fn send(&mut self, id: u64, bytes: Vec<u8>) {
        self.send_within(id, bytes, false);
    }

    /// [`ControlServer::send`]; `monitor_lines` allows the larger share of monitor lines.
    fn send_within(&mut self, id: u64, bytes: Vec<u8>, monitor_lines: bool) {
        let all = self.all_queued();
        let Some(c) = self.clients.get(&id) else {
            return;
        };
        let queued = c.out.queued();
        let admitted = if monitor_lines {
            self.budget.admits_monitor_lines(queued, all, bytes.len())
        } else {
            self.budget.admits(queued, all, bytes.len())
        };
        if admitted {
            c.out.push(bytes);
        } else {
            tracing::warn!(
                "control client {id}: {} reply bytes not read, dropping it",
                c.out.queued()
            );
            self.stats.slow_readers += 1;
            self.drop_client(id);
        }
    }

    fn drop_client(&mut self, id: u64) {
        if let Some(c) = self.clients.remove(&id) {
            c.abort();
        }
        self.slots.remove(id);
    }

    /// Sends monitor lines to every monitoring client (the last one gets `text` itself, not a
    /// copy: usually there is one).
    pub fn broadcast(&mut self, text: impl Into<Vec<u8>>) {
        let ids: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| c.session.is_monitoring())
            .map(|(k, _)| *k)
            .collect();
        let Some((last, others)) = ids.split_last() else {
            return;
        };
        let text = text.into();
        for id in others {
            self.send_within(*id, text.clone(), true);
        }
        self.send_within(*last, text, true);
    }

    /// Handles one event: a connection, a command, a close, or the idle sweep.
    pub fn handle(&mut self, h: &mut dyn Handler, e: ControlEvent, banner: &Banner) {
        let now = clock::now();
        let m = match e {
            ControlEvent::Sweep => {
                for id in self.slots.expire(now) {
                    tracing::info!("control client {id}: idle, closing");
                    self.stats.timed_out += 1;
                    if let Some(c) = self.clients.remove(&id) {
                        c.abort();
                    }
                }
                return;
            }
            ControlEvent::Message(m) => m,
        };
        match m {
            ClientMsg::Connected {
                id,
                read_write,
                out,
                reader,
                writer,
            } => {
                let c = Client {
                    session: Session::new(read_write),
                    out,
                    reader,
                    writer,
                };
                match self.slots.admit(id, read_write, now) {
                    ClientAdmission::Refuse => {
                        self.stats.refused += 1;
                        tracing::warn!(
                            "control: {} clients connected, none idle; refusing one",
                            self.slots.len()
                        );
                        c.abort();
                        return;
                    }
                    ClientAdmission::Evict(old) => {
                        self.stats.evicted += 1;
                        tracing::info!("control client {old}: idle, replaced by {id}");
                        if let Some(o) = self.clients.remove(&old) {
                            o.abort();
                        }
                    }
                    ClientAdmission::Accept => {}
                }
                self.clients.insert(id, c);
                self.send(id, banner.text().into_bytes());
            }
            ClientMsg::Data { id, bytes } => {
                let Some(c) = self.clients.get_mut(&id) else {
                    return;
                };
                self.slots.touch(id, now);
                let room = self.budget.room(c.out.queued());
                let mut out = Vec::new();
                let outcome = c.session.input_bounded(&bytes, h, &mut out, room);
                if outcome.bad > 0 {
                    tracing::info!("control client {id}: {} bad commands", outcome.bad);
                }
                let monitoring = c.session.is_monitoring();
                let closed = c.session.is_closed();
                self.slots.set_monitoring(id, monitoring);
                if outcome.overflow {
                    tracing::warn!(
                        "control client {id}: sends commands without reading replies, dropping it"
                    );
                    self.stats.slow_readers += 1;
                    self.drop_client(id);
                    return;
                }
                if !out.is_empty() {
                    self.send(id, out);
                }
                if closed && let Some(c) = self.clients.remove(&id) {
                    // The writer closes after what is queued, within its write timeout.
                    c.out.close();
                    c.reader.abort();
                    self.slots.remove(id);
                }
            }
            ClientMsg::Closed { id } => {
                if let Some(c) = self.clients.remove(&id) {
                    c.out.close();
                }
                self.slots.remove(id);
            }
        }
    }

    /// Closes every client and removes the Unix socket files (clean exit).
    pub fn shutdown(&mut self) {
        for (_, c) in self.clients.drain() {
            c.abort();
        }
        for p in &self.paths {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("removing {}: {e}", p.display()),
            }
        }
    }
}

/// Accepts control clients on `::1` (TCP) or a Unix path.
async fn listen(
    ep: LocalEndpoint,
    read_write: bool,
    tx: mpsc::Sender<ClientMsg>,
    write_timeout: Duration,
) -> anyhow::Result<()> {
    match ep {
        LocalEndpoint::Port(port) => {
            let l = tokio::net::TcpListener::bind((Ipv6Addr::LOCALHOST, port))
                .await
                .with_context(|| format!("control port {port}"))?;
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    // Half-open connections (the peer vanished) are found by keepalives.
                    let ka = socket2::TcpKeepalive::new()
                        .with_time(Duration::from_secs(30))
                        .with_interval(Duration::from_secs(10))
                        .with_retries(3);
                    if let Err(e) = socket2::SockRef::from(&s).set_tcp_keepalive(&ka) {
                        tracing::debug!("control keepalive: {e}");
                    }
                    let (r, w) = s.into_split();
                    if !spawn_client(r, w, read_write, &tx, write_timeout).await {
                        return;
                    }
                }
            });
        }
        LocalEndpoint::Path(path) => {
            let _ = std::fs::remove_file(&path);
            let l = tokio::net::UnixListener::bind(&path)
                .with_context(|| format!("control socket {}", path.display()))?;
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    let (r, w) = s.into_split();
                    if !spawn_client(r, w, read_write, &tx, write_timeout).await {
                        return;
                    }
                }
            });
        }
    }
    Ok(())
}

/// Starts a client's tasks; false once the main loop is gone.
async fn spawn_client<R, W>(
    mut r: R,
    mut w: W,
    read_write: bool,
    tx: &mpsc::Sender<ClientMsg>,
    write_timeout: Duration,
) -> bool
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) as u64;
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let queued = Arc::new(AtomicUsize::new(0));
    let out = Outbox {
        tx: out_tx,
        queued: queued.clone(),
    };
    // Dropped when the writer ends, which ends the reader too.
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let _done = done_tx;
        while let Some(mut bytes) = out_rx.recv().await {
            if bytes.is_empty() {
                break;
            }
            // Chunks queued while the last write waited go out in one write (up to
            // `WRITE_SIZE`): a client behind costs few large writes, not one per drain.
            let mut close = false;
            while bytes.len() < WRITE_SIZE {
                match out_rx.try_recv() {
                    Ok(more) if more.is_empty() => {
                        close = true;
                        break;
                    }
                    Ok(more) => bytes.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            // A reader that stops reading (or a peer gone without a FIN) blocks this write.
            match tokio::time::timeout(write_timeout, w.write_all(&bytes)).await {
                Ok(Ok(())) => {
                    queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                }
                Ok(Err(_)) | Err(_) => break,
            }
            if close {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    let main = tx.clone();
    // The reader starts once `Connected` is queued, so no data arrives before it.
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        if go_rx.await.is_err() {
            return;
        }
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            let bytes = tokio::select! {
                r = r.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.get(..n).unwrap_or_default().to_vec(),
                },
                // The writer gave up (timeout, error, `quit`): so does the reader.
                _ = &mut done_rx => break,
            };
            // Bounded: a client sending faster than the loop executes waits here, and
            // stops reading; its bytes stay in the kernel's socket buffer.
            if main.send(ClientMsg::Data { id, bytes }).await.is_err() {
                break;
            }
        }
        let _ = main.send(ClientMsg::Closed { id }).await;
    });
    let connected = ClientMsg::Connected {
        id,
        read_write,
        out,
        reader: reader.abort_handle(),
        writer: writer.abort_handle(),
    };
    if tx.send(connected).await.is_err() {
        return false;
    }
    let _ = go_tx.send(());
    true
}
