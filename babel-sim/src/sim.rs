//! The simulator: N engines, a virtual clock, links with seeded loss and delay.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use babel_core::{
    Destination, Engine, EngineConfig, InstalledRoute, Instant, InterfaceConfig, InterfaceKind,
    Policy, Rng, RouteKey, RouteOp, Transmit,
};
use babel_wire::{Prefix, RouterId};
use bytes::Bytes;
use serde::Serialize;

use crate::topology::Topology;

/// Simulation parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random choice (loss, delay jitter, each engine's RNG).
    pub seed: u64,
    /// Extra loss probability on every link, parts per million.
    pub loss_ppm: u32,
    /// Default one-way delay.
    pub delay: Duration,
    /// Uniform extra delay jitter.
    pub delay_jitter: Duration,
    /// Interface kind of every node interface.
    pub kind: InterfaceKind,
    /// Hello interval (update interval = 4 ×).
    pub hello_interval: Duration,
    /// Selection policy of every node.
    pub policy: Policy,
    /// Fee of every node.
    pub fee: u32,
    /// Check for forwarding loops after every step.
    pub check_loops: bool,
    /// Emit engine events (off: faster).
    pub events: bool,
    /// Worker threads. 0 or 1: one event instant at a time, the loop check after every instant.
    /// 2 or more: windows as long as the shortest link delay, in which every node runs its own
    /// events on its own (nothing a node sends can arrive inside the window), the nodes spread
    /// over the threads; packets leave in (time, node) order at the window's end and the loop
    /// check runs once per window. The result does not depend on how many threads (2 or more).
    pub threads: usize,
    /// Which nodes announce their [`node_prefix`]: node `n` does when `n % announce_every == 0`
    /// (0 or 1: every node). A mesh where a few nodes (gateways) announce costs routes per node
    /// in proportion to them, not to the mesh.
    pub announce_every: usize,
    /// Every engine's [`EngineConfig::accuracy_last_resort`] (`None`: the engine's default).
    pub accuracy_last_resort: Option<bool>,
    /// Every engine's [`EngineConfig::accuracy_last_resort_penalty`] (`None`: the engine's
    /// default).
    pub accuracy_last_resort_penalty: Option<u16>,
    /// Every interface's split horizon (`None`: [`InterfaceConfig`]'s default for the kind).
    pub split_horizon: Option<bool>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            loss_ppm: 0,
            delay: Duration::from_millis(1),
            delay_jitter: Duration::from_millis(1),
            kind: InterfaceKind::Wired,
            hello_interval: Duration::from_secs(4),
            policy: Policy::Babeld,
            fee: 0,
            check_loops: true,
            events: false,
            threads: 1,
            announce_every: 1,
            accuracy_last_resort: None,
            accuracy_last_resort_penalty: None,
            split_horizon: None,
        }
    }
}

/// Something that happens to the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimEvent {
    /// The link between two nodes stops carrying packets (both interfaces stay up).
    LinkDown(usize, usize),
    /// The link carries packets again.
    LinkUp(usize, usize),
    /// New cost (rxcost at both ends).
    LinkCost(usize, usize, u16),
    /// The node stops (its engine is dropped).
    Crash(usize),
    /// The node starts again; with `keep_seqno` its seqno comes back from "disk" (babeld's state
    /// file), otherwise it is drawn at random, as babeld without a state file. The router-id stays.
    Restart {
        /// Node.
        node: usize,
        /// Restore the persisted seqno.
        keep_seqno: bool,
    },
    /// New fee on a node.
    Fee(usize, u32),
    /// New Althea metric factor on a node.
    MetricFactor(usize, u32),
    /// The node announces an extra prefix.
    Announce(usize, Prefix),
    /// The node withdraws a prefix.
    Withdraw(usize, Prefix),
}

impl SimEvent {
    /// Parses `KIND:ARGS`: `link-down:A-B`, `link-up:A-B`, `link-cost:A-B:C`, `crash:N`,
    /// `restart:N`, `restart-fresh:N`, `fee:N:F`, `metric-factor:N:F`, `announce:N:PREFIX`,
    /// `withdraw:N:PREFIX` (a prefix may itself contain colons).
    pub fn parse(s: &str) -> Option<SimEvent> {
        let (kind, rest) = s.split_once(':')?;
        let pair = |p: &str| -> Option<(usize, usize)> {
            let (a, b) = p.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        let node_and = |p: &str| -> Option<(usize, String)> {
            let (n, v) = p.split_once(':')?;
            Some((n.parse().ok()?, v.to_owned()))
        };
        Some(match kind {
            "link-down" => {
                let (a, b) = pair(rest)?;
                SimEvent::LinkDown(a, b)
            }
            "link-up" => {
                let (a, b) = pair(rest)?;
                SimEvent::LinkUp(a, b)
            }
            "link-cost" => {
                let (p, c) = rest.rsplit_once(':')?;
                let (a, b) = pair(p)?;
                SimEvent::LinkCost(a, b, c.parse().ok()?)
            }
            "crash" => SimEvent::Crash(rest.parse().ok()?),
            "restart" => SimEvent::Restart {
                node: rest.parse().ok()?,
                keep_seqno: true,
            },
            "restart-fresh" => SimEvent::Restart {
                node: rest.parse().ok()?,
                keep_seqno: false,
            },
            "fee" => {
                let (n, v) = node_and(rest)?;
                SimEvent::Fee(n, v.parse().ok()?)
            }
            "metric-factor" => {
                let (n, v) = node_and(rest)?;
                SimEvent::MetricFactor(n, v.parse().ok()?)
            }
            "announce" => {
                let (n, v) = node_and(rest)?;
                SimEvent::Announce(n, v.parse().ok()?)
            }
            "withdraw" => {
                let (n, v) = node_and(rest)?;
                SimEvent::Withdraw(n, v.parse().ok()?)
            }
            _ => return None,
        })
    }
}

struct Link {
    a: usize,
    b: usize,
    ifa: u32,
    ifb: u32,
    up: bool,
    cost: u16,
    loss_ppm: u32,
    delay: Option<Duration>,
    /// Last delivery time from a to b and from b to a: links are FIFO (jitter never reorders).
    last: [Instant; 2],
}

/// The ends of a link (fixed once the network is built): what a node's worker needs to find
/// the peer behind a next hop, without the link's changing state.
#[derive(Clone, Copy)]
struct LinkEnds {
    a: usize,
    b: usize,
    ifa: u32,
    ifb: u32,
}

struct Node {
    engine: Option<Engine>,
    router_id: RouterId,
    prefixes: BTreeSet<Prefix>,
    /// (ifindex, link index)
    ifaces: Vec<(u32, usize)>,
    /// The "disk": last seqno seen, restored on a restart with state.
    saved_seqno: u16,
    restarts: u64,
    fee: u32,
    policy: Policy,
    wake: Option<Instant>,
}

impl Node {
    /// What stands in a node's slot while its job runs on a worker thread (allocates nothing).
    fn vacant() -> Node {
        Node {
            engine: None,
            router_id: RouterId([0; 8]),
            prefixes: BTreeSet::new(),
            ifaces: Vec::new(),
            saved_seqno: 0,
            restarts: 0,
            fee: 0,
            policy: Policy::Babeld,
            wake: None,
        }
    }
}

/// A small multiplicative hash for the next-hop tables (SipHash was 5 % of a run; the keys are
/// our own prefixes, not input, so flooding is not a concern).
#[derive(Clone, Copy, Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        // The product's high bits depend on every input bit, its low bits (the bucket) on the
        // low input bits only: fold the high half down.
        self.0 ^ (self.0 >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        // Eight bytes per round: a prefix is hashed on every hop of every loop-check walk.
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(w.iter().fold(0, |a, &b| a << 8 | u64::from(b)));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            self.mix(rest.iter().fold(0, |a, &b| a << 8 | u64::from(b)));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    fn write_isize(&mut self, i: isize) {
        self.mix(i as u64);
    }
}

impl PrefixHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// Every node's kernel table as forwarding sees it: for each destination with a route (no source
/// prefix), the neighbour node its next hop is and the link to it, applied from the engines'
/// route changes as the daemon applies them to the kernel. The loop check follows these. Kept by
/// destination, one row of every node's next hop per prefix, so that a walk towards one
/// destination reads one small array instead of a hash table per node it passes (a cache miss
/// per hop, issue 18). Prefixes are only looked up, never iterated, so the hash order cannot
/// reach any result.
#[derive(Default)]
struct NextHops {
    /// Row of each prefix that had a route somewhere.
    ids: HashMap<Prefix, u32, BuildHasherDefault<PrefixHasher>>,
    /// By prefix row, by node: the next hop.
    rows: Vec<Vec<Hop>>,
    nodes: usize,
}

/// A next hop: the neighbour node and the link to it ([`Hop::NONE`]: no route).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Hop {
    peer: u32,
    link: u32,
}

impl Hop {
    const NONE: Hop = Hop {
        peer: u32::MAX,
        link: u32::MAX,
    };

    fn get(self) -> Option<(usize, usize)> {
        (self != Hop::NONE).then_some((self.peer as usize, self.link as usize))
    }
}

impl NextHops {
    fn new(nodes: usize) -> NextHops {
        NextHops {
            nodes,
            ..NextHops::default()
        }
    }

    /// The row of `prefix`, if any node ever had a route to it.
    fn row(&self, prefix: &Prefix) -> Option<u32> {
        self.ids.get(prefix).copied()
    }

    /// Node `n`'s next hop in row `id`.
    fn get(&self, id: u32, n: usize) -> Option<(usize, usize)> {
        self.rows.get(id as usize)?.get(n)?.get()
    }

    /// Node `n`'s next hop towards `prefix`.
    fn lookup(&self, n: usize, prefix: &Prefix) -> Option<(usize, usize)> {
        self.get(self.row(prefix)?, n)
    }

    /// Sets (or removes) node `n`'s next hop towards `prefix`.
    fn set(&mut self, n: usize, prefix: Prefix, hop: Option<(usize, usize)>) {
        let id = match (self.row(&prefix), hop) {
            (Some(id), _) => id,
            (None, None) => return,
            (None, Some(_)) => {
                let id = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
                self.ids.insert(prefix, id);
                self.rows.push(vec![Hop::NONE; self.nodes]);
                id
            }
        };
        let hop = hop.map_or(Hop::NONE, |(peer, link)| Hop {
            peer: u32::try_from(peer).unwrap_or(u32::MAX),
            link: u32::try_from(link).unwrap_or(u32::MAX),
        });
        if let Some(h) = self.rows.get_mut(id as usize).and_then(|r| r.get_mut(n)) {
            *h = hop;
        }
    }

    /// Node `n` has no route any more (it crashed or restarted).
    fn clear_node(&mut self, n: usize) {
        for r in &mut self.rows {
            if let Some(h) = r.get_mut(n) {
                *h = Hop::NONE;
            }
        }
    }
}

/// The loop check's walks ([`Sim::loop_from`]): the current path, and the nodes shown to reach
/// no cycle in the row being checked (those whose mark is `stamp`; a new row takes a new stamp, so
/// the marks are never cleared one by one).
#[derive(Default)]
struct Walks {
    path: Vec<u32>,
    clean: Vec<u32>,
    stamp: u32,
}

impl Walks {
    /// Starts the walks of another row of [`NextHops`] in a mesh of `nodes` nodes.
    fn next_row(&mut self, nodes: usize) {
        self.clean.resize(nodes, 0);
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.clean.fill(0);
            self.stamp = 1;
        }
    }
}

/// A node's next hop towards a destination: the neighbour node and the link to it, if any.
type NextHop = Option<(usize, usize)>;

/// What one node produced: its packets with their send times, the destinations whose kernel
/// route changed, and how many changes.
#[derive(Default)]
struct NodeOutput {
    /// Send time, pass (how many times the node already ran at that instant), packet.
    tx: Vec<(Instant, u32, Transmit)>,
    /// Each route change's destination, and for one without a source prefix the node's new
    /// next hop towards it (`Some(None)`: none), which [`Sim::absorb`] puts in [`NextHops`].
    changed: Vec<(Prefix, Option<NextHop>)>,
    route_changes: u64,
    last_change: Option<Instant>,
}

/// The peer and link at the other end of interface `ifindex` of node `n`, if `addr` is the
/// peer's address there.
fn peer_link(
    links: &[LinkEnds],
    ifaces: &[(u32, usize)],
    n: usize,
    ifindex: u32,
    addr: IpAddr,
) -> Option<(usize, usize)> {
    let &(_, li) = ifaces.iter().find(|(i, _)| *i == ifindex)?;
    let l = links.get(li)?;
    let (peer, pif) = if l.a == n { (l.b, l.ifb) } else { (l.a, l.ifa) };
    (node_address(peer, pif) == addr).then_some((peer, li))
}

/// Takes what node `n`'s engine produced at `now`: its packets and kernel changes (with the
/// next hops, for [`NextHops`]) into `out`, its next timer into `node.wake`. Touches this node
/// only.
fn take_output(
    n: usize,
    node: &mut Node,
    links: &[LinkEnds],
    now: Instant,
    pass: u32,
    out: &mut NodeOutput,
) {
    let Some(e) = node.engine.as_mut() else {
        node.wake = None;
        return;
    };
    while let Some(t) = e.poll_transmit() {
        out.tx.push((now, pass, t));
    }
    while let Some(c) = e.poll_route() {
        out.route_changes += 1;
        out.last_change = Some(now);
        let installed = matches!(c.op, RouteOp::Add | RouteOp::Replace);
        let peer = installed
            .then(|| peer_link(links, &node.ifaces, n, c.ifindex, c.next_hop))
            .flatten();
        // The simulator does not model babeld's unreachable routes: a held destination simply
        // has no route.
        out.changed
            .push((c.prefix, c.src_prefix.is_none().then_some(peer)));
    }
    while e.poll_event().is_some() {}
    node.saved_seqno = e.seqno();
    node.wake = e.poll_timeout();
}

/// One node's share of a window: the node itself (out of its slot while the job runs, so that a
/// worker thread can own it), its deliveries (in time order) and where it writes.
struct Job {
    n: usize,
    node: Node,
    deliveries: Vec<Delivery>,
    /// The node's timer before the window (to know whether the heap needs a new entry).
    before: Option<Instant>,
    out: NodeOutput,
    /// Latest instant it ran at.
    last: Instant,
}

impl Job {
    /// Runs the node's events before `end` in time order: at each instant its packets, then its
    /// timer, then its output, as [`Sim::step`] does.
    fn run(&mut self, links: &[LinkEnds], end: Instant) {
        let mut ds = std::mem::take(&mut self.deliveries).into_iter().peekable();
        // A timer due at once (a flush) runs the node again at the same instant: in
        // [`Sim::step`] that is the next step, after every other node's first one.
        let mut pass = 0;
        let mut ran_at = None;
        loop {
            let nd = ds.peek().map(|d| d.at);
            let nw = self.node.wake.filter(|w| *w < end);
            let t = match (nd, nw) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            }
            .max(self.last);
            self.last = t;
            if ran_at == Some(t) {
                pass += 1;
            } else {
                pass = 0;
            }
            ran_at = Some(t);
            let mut touched = false;
            while let Some(d) = ds.next_if(|d| d.at <= t) {
                if let Some(e) = self.node.engine.as_mut() {
                    e.handle_packet(t, d.ifindex, d.src, d.dst, &d.bytes);
                    touched = true;
                }
            }
            if self.node.wake.is_some_and(|w| w <= t) {
                self.node.wake = None;
                if let Some(e) = self.node.engine.as_mut() {
                    e.handle_timeout(t);
                    touched = true;
                }
            }
            if touched {
                take_output(self.n, &mut self.node, links, t, pass, &mut self.out);
            }
        }
    }
}

/// The worker threads of a threaded run and the calling thread share each window's jobs through
/// one queue: every thread takes the next job as soon as it finished its last, heaviest first,
/// so the threads end a window within about one job of each other whatever the jobs weigh, and a
/// worker that the machine's scheduler wakes late simply takes fewer.
struct Workers {
    pool: Arc<Pool>,
    /// Worker threads (besides the calling one).
    count: usize,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.pool.close();
    }
}

/// What the calling thread and the workers share.
struct Pool {
    state: std::sync::Mutex<PoolState>,
    /// Jobs were queued, or the run ends.
    work: std::sync::Condvar,
    /// The queue is empty and no worker runs a job.
    idle: std::sync::Condvar,
}

// Boxed jobs: a job (1.6 kB, most of it the node) moves through the queue and the sorts as a
// pointer, not by copy.
#[allow(clippy::vec_box)]
#[derive(Default)]
struct PoolState {
    /// The window's end (every queued job runs until it).
    end: Option<Instant>,
    /// Jobs not yet taken, the heaviest last (taken first).
    todo: Vec<Box<Job>>,
    /// Jobs the workers ran.
    done: Vec<Box<Job>>,
    /// Jobs a worker is running.
    running: usize,
    /// The workers' wall time running jobs, summed.
    busy: Duration,
    /// A job panicked on a worker: its payload, for the calling thread to resume.
    panicked: Option<Box<dyn std::any::Any + Send>>,
    /// The run ends: the workers return.
    closed: bool,
}

impl Pool {
    fn new() -> Pool {
        Pool {
            state: std::sync::Mutex::new(PoolState::default()),
            work: std::sync::Condvar::new(),
            idle: std::sync::Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A job's panic is caught before it can poison the lock; take the state anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker thread's loop: takes jobs until the run ends.
    fn serve(&self, ends: &[LinkEnds]) {
        let mut st = self.lock();
        loop {
            if st.closed {
                return;
            }
            let (Some(end), Some(mut job)) = (st.end, st.todo.pop()) else {
                st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            st.running += 1;
            drop(st);
            let t = std::time::Instant::now();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job.run(ends, end);
            }));
            let busy = t.elapsed();
            st = self.lock();
            st.busy += busy;
            st.running -= 1;
            match ran {
                Ok(()) => st.done.push(job),
                Err(p) => st.panicked = Some(p),
            }
            if st.running == 0 && st.todo.is_empty() {
                self.idle.notify_one();
            }
        }
    }

    /// Ends the run: the workers return once they see it.
    fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
    }
}

/// Destinations walked by a periodic full dump per unit of weight. A unit is 256 bytes received,
/// about 8 Updates; handling a received Update costs about twice as much as putting one
/// destination in a dump (perf on `random:300`: packet handling 56 %, the dumps' flushes 28 %,
/// for about as many messages), so 16 destinations dumped weigh one unit.
const DUMP_PER_WEIGHT: usize = 16;

impl Workers {
    /// Runs every job until `end`: the calling thread and the workers take them from one queue,
    /// heaviest first; the calling thread runs `side` first, once the workers have the jobs.
    /// Returns the jobs in the order they came (by node).
    #[allow(clippy::vec_box)] // Boxed jobs, as in `PoolState`.
    fn run(
        &self,
        mut jobs: Vec<Box<Job>>,
        ends: &[LinkEnds],
        end: Instant,
        times: &mut ThreadTimes,
        side: impl FnOnce(),
    ) -> Vec<Box<Job>> {
        let weight = |j: &Job| {
            1 + j.deliveries.iter().map(|d| d.bytes.len()).sum::<usize>() / 256
                + j.node
                    .engine
                    .as_ref()
                    .map_or(0, |e| e.full_dump_work(end) / DUMP_PER_WEIGHT)
        };
        times.windows += 1;
        // A window of one node runs here: nobody could take a share. Any other is shared, however
        // light: a worker that wakes too late to take a job costs the calling thread one wake-up,
        // while a light window run alone here was the largest part of this thread's excess (at
        // 300 nodes three quarters of the windows weighed under 16 and ran alone).
        if self.count == 0 || jobs.len() < 2 {
            let t = std::time::Instant::now();
            side();
            times.loop_check += t.elapsed();
            let t = std::time::Instant::now();
            jobs.iter_mut().for_each(|j| j.run(ends, end));
            let busy = t.elapsed();
            times.main_busy += busy;
            times.alone_busy += busy;
            return jobs;
        }
        times.shared_windows += 1;
        // Lightest first, so that popping takes the heaviest.
        // Boxed, a job moves as a pointer here and in the queue (a node is 1.5 kB).
        let mut todo = jobs;
        todo.sort_by_cached_key(|j| (weight(j), j.n));
        let mut mine = Vec::with_capacity(todo.len());
        {
            let mut st = self.pool.lock();
            st.end = Some(end);
            st.todo = todo;
        }
        self.pool.work.notify_all();
        let t = std::time::Instant::now();
        side();
        times.loop_check += t.elapsed();
        let t = std::time::Instant::now();
        loop {
            let Some(mut job) = self.pool.lock().todo.pop() else {
                break;
            };
            job.run(ends, end);
            mine.push(job);
        }
        times.main_busy += t.elapsed();
        let t = std::time::Instant::now();
        let mut st = self.pool.lock();
        while st.running > 0 {
            st = self.pool.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        times.main_wait += t.elapsed();
        if let Some(p) = st.panicked.take() {
            drop(st);
            std::panic::resume_unwind(p);
        }
        st.end = None;
        times.worker_busy += std::mem::take(&mut st.busy);
        times.worker_jobs += st.done.len() as u64;
        times.main_jobs += mine.len() as u64;
        mine.append(&mut st.done);
        drop(st);
        mine.sort_unstable_by_key(|j| j.n);
        mine
    }
}

struct Delivery {
    at: Instant,
    seq: u64,
    node: usize,
    ifindex: u32,
    src: IpAddr,
    dst: Destination,
    bytes: Bytes,
}

impl PartialEq for Delivery {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Delivery {}
impl PartialOrd for Delivery {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delivery {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A metric liar (adversarial simulation): every Update it sends for a prefix in `prefixes`
/// (all but its own if `None`) carries its metric divided by `divisor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lie {
    /// The advertised metric is divided by this.
    pub divisor: u16,
    /// The prefixes lied about (`None`: every prefix it does not originate).
    pub prefixes: Option<BTreeSet<Prefix>>,
    /// The prefixes it retracts whatever its route (an evasive liar that withdraws when asked).
    pub withheld: BTreeSet<Prefix>,
}

/// A link's state as the data plane sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// Carries packets.
    pub up: bool,
    /// Loss each way, parts per million (the link's and the simulation's).
    pub loss_ppm: u32,
    /// One-way delay before jitter.
    pub delay: Duration,
}

/// Counters of the whole run.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Packets handed to links.
    pub packets_sent: u64,
    /// Their bytes (Babel payload).
    pub bytes_sent: u64,
    /// TLV messages in them.
    pub messages_sent: u64,
    /// Packets lost on links (loss or link down).
    pub packets_lost: u64,
    /// Kernel route changes over all nodes.
    pub route_changes: u64,
    /// Forwarding loops detected (one per destination and step in which a cycle exists).
    pub loops: u64,
    /// Steps executed.
    pub steps: u64,
}

/// Where a threaded run's wall time went ([`SimConfig::threads`] ≥ 2), measured with the
/// monotonic clock: not part of the run's result (it depends on the machine), kept apart from
/// [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadTimes {
    /// Windows run.
    pub windows: u64,
    /// Of them, the windows shared with the worker threads.
    pub shared_windows: u64,
    /// The calling thread running nodes (its share of shared windows, and the windows it ran
    /// alone).
    pub main_busy: Duration,
    /// Of it, the windows too light to share, run on the calling thread alone.
    pub alone_busy: Duration,
    /// The calling thread checking the last window's changed next hops for loops (while the
    /// workers run the next window's nodes, when it is shared).
    pub loop_check: Duration,
    /// Jobs (a node's part of a window) the calling thread ran in shared windows.
    pub main_jobs: u64,
    /// Jobs the worker threads ran.
    pub worker_jobs: u64,
    /// The calling thread waiting for the workers after the queue emptied.
    pub main_wait: Duration,
    /// The worker threads running nodes, summed over the workers.
    pub worker_busy: Duration,
    /// The calling thread between windows' node runs: sending, next hops, the queues.
    pub serial: Duration,
    /// CPU time of the calling thread, as Linux counts it (`/proc/thread-self/schedstat`; zero
    /// elsewhere). Unlike the wall times above it does not count time lost to other processes:
    /// on idle cores a threaded run's wall time is at least this.
    pub main_cpu: Duration,
    /// CPU time of the worker threads, summed.
    pub worker_cpu: Duration,
}

/// The CPU time of the calling thread so far, where Linux tells it.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Distribution of installed routes per node.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct RoutesPerNode {
    /// Fewest.
    pub min: usize,
    /// Most.
    pub max: usize,
    /// Mean.
    pub mean: f64,
}

/// The JSON summary of a run (`babelctl simulate --json`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// Topology spec.
    pub topology: String,
    /// Seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Links.
    pub links: usize,
    /// Whether every node reached the best routes.
    pub converged: bool,
    /// Time from the start (or the last scenario event) to the last route change before
    /// convergence, milliseconds; `null` if it did not converge.
    pub convergence_time_ms: Option<u64>,
    /// Simulated time run, milliseconds.
    pub sim_time_ms: u64,
    /// Forwarding loops seen.
    pub loops: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Packets lost.
    pub packets_lost: u64,
    /// Kernel route changes.
    pub route_changes: u64,
    /// InstalledRoute routes per node.
    pub routes_per_node: RoutesPerNode,
    /// Why the final state is not the best, if it is not.
    pub not_best: Option<String>,
}

/// N engines on one virtual clock.
pub struct Sim {
    cfg: SimConfig,
    topo_name: String,
    now: Instant,
    rng: Rng,
    nodes: Vec<Node>,
    links: Vec<Link>,
    /// The links' ends, shared with the worker threads.
    ends: Arc<[LinkEnds]>,
    link_index: BTreeMap<(usize, usize), usize>,
    deliveries: BinaryHeap<Reverse<Delivery>>,
    wakeups: BinaryHeap<Reverse<(Instant, usize)>>,
    scheduled: BTreeMap<(Instant, u64), SimEvent>,
    seq: u64,
    stats: Stats,
    last_change: Instant,
    last_event: Instant,
    /// The live graph for the convergence check (None after a topology change).
    adjacency: Option<Vec<Vec<(usize, u32)>>>,
    /// Where [`Sim::check_best_resumed`] found the last violation, and that node's distances.
    check_cursor: usize,
    check_row: Option<(usize, Vec<u32>)>,
    /// Every node's next hop towards every destination.
    next_hops: NextHops,
    /// (row in [`NextHops`], node) pairs whose next hop changed in this step.
    changed: Vec<(u32, u32)>,
    /// The loop check's path and marks, kept between walks.
    walks: Walks,
    progress: bool,
    lies: BTreeMap<usize, Lie>,
    /// The shortest one-way link delay: nothing sent at `t` arrives before `t + lookahead`.
    lookahead: Duration,
    /// Where a threaded run's wall time went.
    thread_times: ThreadTimes,
}

/// The liar's rewrite of one of its packets (adversarial simulation).
fn tell_lie(bytes: &Bytes, lie: &Lie, own: &BTreeSet<Prefix>) -> Bytes {
    let Ok(mut d) = babel_wire::decode(bytes, &babel_wire::DecodeOptions::default()) else {
        return bytes.clone();
    };
    let mut changed = false;
    for m in &mut d.packet.messages {
        if let babel_wire::Message::Update(u) = m
            && let Some(p) = u.prefix
            && !own.contains(&p)
            && u.metric != babel_wire::INFINITY
        {
            if lie.withheld.contains(&p) {
                u.metric = babel_wire::INFINITY;
                changed = true;
            } else if lie.prefixes.as_ref().is_none_or(|s| s.contains(&p)) {
                u.metric = (u.metric / lie.divisor.max(1)).max(1);
                changed = true;
            }
        }
    }
    if !changed {
        return bytes.clone();
    }
    babel_wire::encode_packet(&d.packet, babel_wire::Flavour::Standard)
        .unwrap_or_else(|_| bytes.clone())
}

/// Node `n`'s address on interface `ifindex`.
pub fn node_address(n: usize, ifindex: u32) -> IpAddr {
    let id = u32::try_from(n + 1).unwrap_or(u32::MAX);
    IpAddr::V6(Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        0,
        (id >> 16) as u16,
        id as u16,
        ifindex as u16,
    ))
}

/// Node `n`'s router-id.
pub fn node_router_id(n: usize) -> RouterId {
    let id = u32::try_from(n + 1).unwrap_or(u32::MAX).to_be_bytes();
    let [a, b, c, d] = id;
    RouterId([0x02, 0, 0, 0, a, b, c, d])
}

/// Node `n`'s announced prefix (a /128 in fd00::/64).
pub fn node_prefix(n: usize) -> Prefix {
    let id = u32::try_from(n + 1).unwrap_or(u32::MAX);
    Prefix::host(IpAddr::V6(Ipv6Addr::new(
        0xfd00,
        0,
        0,
        0,
        0,
        0,
        (id >> 16) as u16,
        id as u16,
    )))
}

impl Sim {
    /// Builds the network; every node announces [`node_prefix`] and brings its interfaces up at
    /// time 0.
    pub fn new(topo: &Topology, cfg: SimConfig) -> Sim {
        let mut nodes: Vec<Node> = (0..topo.nodes)
            .map(|n| Node {
                engine: None,
                router_id: node_router_id(n),
                prefixes: if n.is_multiple_of(cfg.announce_every.max(1)) {
                    BTreeSet::from([node_prefix(n)])
                } else {
                    BTreeSet::new()
                },
                ifaces: Vec::new(),
                saved_seqno: 0,
                restarts: 0,
                fee: cfg.fee,
                policy: cfg.policy,
                wake: None,
            })
            .collect();
        let mut links = Vec::new();
        let mut link_index = BTreeMap::new();
        for l in &topo.links {
            if l.a == l.b
                || l.a >= topo.nodes
                || l.b >= topo.nodes
                || link_index.contains_key(&(l.a.min(l.b), l.a.max(l.b)))
            {
                continue;
            }
            let idx = links.len();
            let ifa = nodes.get(l.a).map_or(1, |n| n.ifaces.len() as u32 + 1);
            let ifb = nodes.get(l.b).map_or(1, |n| n.ifaces.len() as u32 + 1);
            if let Some(n) = nodes.get_mut(l.a) {
                n.ifaces.push((ifa, idx));
            }
            if let Some(n) = nodes.get_mut(l.b) {
                n.ifaces.push((ifb, idx));
            }
            links.push(Link {
                a: l.a,
                b: l.b,
                ifa,
                ifb,
                up: true,
                cost: l.cost,
                loss_ppm: l.loss_ppm,
                delay: l.delay_ms.map(Duration::from_millis),
                last: [Instant::ZERO; 2],
            });
            link_index.insert((l.a.min(l.b), l.a.max(l.b)), idx);
        }
        let lookahead = links
            .iter()
            .map(|l| l.delay.unwrap_or(cfg.delay))
            .min()
            .unwrap_or(cfg.delay);
        let ends = links
            .iter()
            .map(|l| LinkEnds {
                a: l.a,
                b: l.b,
                ifa: l.ifa,
                ifb: l.ifb,
            })
            .collect();
        let mut sim = Sim {
            ends,
            lookahead,
            thread_times: ThreadTimes::default(),
            rng: Rng::new(cfg.seed),
            cfg,
            topo_name: topo.name.clone(),
            now: Instant::ZERO,
            nodes,
            links,
            link_index,
            deliveries: BinaryHeap::new(),
            wakeups: BinaryHeap::new(),
            scheduled: BTreeMap::new(),
            seq: 0,
            stats: Stats::default(),
            last_change: Instant::ZERO,
            last_event: Instant::ZERO,
            adjacency: None,
            check_cursor: 0,
            check_row: None,
            next_hops: NextHops::new(topo.nodes),
            changed: Vec::new(),
            walks: Walks::default(),
            progress: false,
            lies: BTreeMap::new(),
        };
        for n in 0..sim.nodes.len() {
            sim.start_node(n, None);
        }
        sim
    }

    fn iface_config(&self, n: usize, ifindex: u32, cost: u16) -> InterfaceConfig {
        let mut c = InterfaceConfig::new(
            format!("sim{ifindex}"),
            self.cfg.kind,
            node_address(n, ifindex),
        )
        .with_hello_interval(self.cfg.hello_interval);
        c.rxcost = cost;
        if let Some(on) = self.cfg.split_horizon {
            c.split_horizon = on;
        }
        c
    }

    fn start_node(&mut self, n: usize, seqno: Option<u16>) {
        let now = self.now;
        let Some(node) = self.nodes.get(n) else {
            return;
        };
        let mut cfg = EngineConfig::new(node.router_id);
        cfg.seed = self.cfg.seed ^ ((n as u64 + 1) << 20) ^ (node.restarts << 48);
        cfg.seqno = seqno;
        cfg.fee = node.fee;
        cfg.policy = node.policy;
        cfg.events = self.cfg.events;
        if let Some(on) = self.cfg.accuracy_last_resort {
            cfg.accuracy_last_resort = on;
        }
        if let Some(p) = self.cfg.accuracy_last_resort_penalty {
            cfg.accuracy_last_resort_penalty = p;
        }
        let Ok(mut engine) = Engine::new(cfg, now) else {
            return;
        };
        let ifaces: Vec<(u32, u16)> = node
            .ifaces
            .iter()
            .map(|&(ifindex, l)| (ifindex, self.links.get(l).map_or(96, |l| l.cost)))
            .collect();
        for (ifindex, cost) in ifaces {
            engine.interface_up(now, ifindex, self.iface_config(n, ifindex, cost));
        }
        for p in &node.prefixes {
            let _ = engine.announce(now, RouteKey::new(*p), 0);
        }
        if let Some(node) = self.nodes.get_mut(n) {
            node.engine = Some(engine);
        }
        self.next_hops.clear_node(n);
        self.drain(n);
    }

    /// Print a progress line to stderr every 10 s of virtual time in
    /// [`Sim::run_until_converged`] (benchmarks).
    pub fn set_progress(&mut self, on: bool) {
        self.progress = on;
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Where a threaded run's wall time went so far ([`ThreadTimes`]).
    pub fn thread_times(&self) -> ThreadTimes {
        self.thread_times
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// A node's engine (None while crashed).
    pub fn engine(&self, n: usize) -> Option<&Engine> {
        self.nodes.get(n).and_then(|n| n.engine.as_ref())
    }

    /// The route node `n` uses for `prefix`.
    pub fn installed(&self, n: usize, prefix: Prefix) -> Option<InstalledRoute> {
        self.engine(n)
            .and_then(|e| e.installed(&RouteKey::new(prefix)))
    }

    /// The node that node `n` forwards to for `prefix` (from its kernel table, over a link that may be down).
    pub fn next_hop_node(&self, n: usize, prefix: Prefix) -> Option<usize> {
        self.next_hops.lookup(n, &prefix).map(|(p, _)| p)
    }

    /// The next node from `n` in row `id` of [`NextHops`], if the link to it carries packets.
    fn next_hop_up(&self, n: usize, id: u32) -> Option<usize> {
        let (p, li) = self.next_hops.get(id, n)?;
        self.links.get(li).is_some_and(|l| l.up).then_some(p)
    }

    /// The neighbour of `n` at interface `ifindex` with link-local address `addr`, if any.
    pub fn peer_node(&self, n: usize, ifindex: u32, addr: IpAddr) -> Option<usize> {
        self.peer_by_address(n, ifindex, addr)
    }

    /// How node `n` names its neighbour `peer`: its interface towards it and the peer's address.
    pub fn neighbour_of(&self, n: usize, peer: usize) -> Option<(u32, IpAddr)> {
        let l = self.links.get(self.link_of(n, peer)?)?;
        if l.a == n {
            Some((l.ifa, node_address(l.b, l.ifb)))
        } else {
            Some((l.ifb, node_address(l.a, l.ifa)))
        }
    }

    /// The data plane's view of the link between `a` and `b`.
    pub fn link_state(&self, a: usize, b: usize) -> Option<LinkState> {
        let l = self.links.get(self.link_of(a, b)?)?;
        Some(LinkState {
            up: l.up,
            loss_ppm: l.loss_ppm.saturating_add(self.cfg.loss_ppm),
            delay: l.delay.unwrap_or(self.cfg.delay),
        })
    }

    /// Neighbours of `n` (over links that exist, up or not).
    pub fn neighbours_of(&self, n: usize) -> Vec<usize> {
        let Some(node) = self.nodes.get(n) else {
            return Vec::new();
        };
        node.ifaces
            .iter()
            .filter_map(|&(_, li)| self.links.get(li))
            .map(|l| if l.a == n { l.b } else { l.a })
            .collect()
    }

    /// Runs `f` on node `n`'s engine at the current time, then sends what it produced.
    pub fn with_engine<R>(
        &mut self,
        n: usize,
        f: impl FnOnce(&mut Engine, Instant) -> R,
    ) -> Option<R> {
        let now = self.now;
        let r = f(self.nodes.get_mut(n)?.engine.as_mut()?, now);
        self.drain(n);
        Some(r)
    }

    /// Makes node `n` a metric liar (or honest again with `None`).
    pub fn set_lie(&mut self, n: usize, lie: Option<Lie>) {
        match lie {
            Some(l) => self.lies.insert(n, l),
            None => self.lies.remove(&n),
        };
    }

    /// When the last kernel route change happened.
    pub fn last_change(&self) -> Instant {
        self.last_change
    }

    /// Schedules an event.
    pub fn schedule(&mut self, at: Instant, ev: SimEvent) {
        self.seq += 1;
        self.scheduled.insert((at, self.seq), ev);
    }

    fn link_of(&self, a: usize, b: usize) -> Option<usize> {
        self.link_index.get(&(a.min(b), a.max(b))).copied()
    }

    /// Applies an event now.
    pub fn apply(&mut self, ev: SimEvent) {
        let now = self.now;
        self.last_event = now;
        self.adjacency = None;
        self.check_row = None;
        match ev {
            SimEvent::LinkDown(a, b) | SimEvent::LinkUp(a, b) => {
                let up = matches!(ev, SimEvent::LinkUp(..));
                if let Some(l) = self.link_of(a, b).and_then(|i| self.links.get_mut(i)) {
                    l.up = up;
                }
            }
            SimEvent::LinkCost(a, b, c) => {
                let Some(li) = self.link_of(a, b) else { return };
                let Some(l) = self.links.get_mut(li) else {
                    return;
                };
                l.cost = c;
                let ends = [(l.a, l.ifa), (l.b, l.ifb)];
                for (n, ifindex) in ends {
                    let cfg = self.iface_config(n, ifindex, c);
                    if let Some(e) = self.nodes.get_mut(n).and_then(|n| n.engine.as_mut()) {
                        e.interface_up(now, ifindex, cfg);
                    }
                    self.drain(n);
                }
            }
            SimEvent::Crash(n) => {
                if let Some(node) = self.nodes.get_mut(n) {
                    if let Some(e) = node.engine.take() {
                        node.saved_seqno = e.seqno();
                    }
                    node.wake = None;
                }
                self.next_hops.clear_node(n);
            }
            SimEvent::Restart { node, keep_seqno } => {
                let Some(nd) = self.nodes.get_mut(node) else {
                    return;
                };
                if let Some(e) = nd.engine.take() {
                    nd.saved_seqno = e.seqno();
                }
                nd.restarts += 1;
                let seqno = keep_seqno.then_some(nd.saved_seqno);
                self.start_node(node, seqno);
            }
            SimEvent::Fee(n, fee) => {
                if let Some(node) = self.nodes.get_mut(n) {
                    node.fee = fee;
                    if let Some(e) = node.engine.as_mut() {
                        e.set_fee(now, fee);
                    }
                }
                self.drain(n);
            }
            SimEvent::MetricFactor(n, f) => {
                if let Some(node) = self.nodes.get_mut(n) {
                    node.policy = Policy::Althea { metric_factor: f };
                    if let Some(e) = node.engine.as_mut() {
                        e.set_metric_factor(now, f);
                    }
                }
                self.drain(n);
            }
            SimEvent::Announce(n, p) => {
                if let Some(node) = self.nodes.get_mut(n) {
                    node.prefixes.insert(p);
                    if let Some(e) = node.engine.as_mut() {
                        let _ = e.announce(now, RouteKey::new(p), 0);
                    }
                }
                self.drain(n);
            }
            SimEvent::Withdraw(n, p) => {
                if let Some(node) = self.nodes.get_mut(n) {
                    node.prefixes.remove(&p);
                    if let Some(e) = node.engine.as_mut() {
                        e.withdraw(now, RouteKey::new(p));
                    }
                }
                self.drain(n);
            }
        }
    }

    /// Takes everything a node produced: packets onto links, kernel changes into the next-hop table.
    fn drain(&mut self, n: usize) {
        let now = self.now;
        let mut out = NodeOutput::default();
        let before;
        {
            let Some(node) = self.nodes.get_mut(n) else {
                return;
            };
            before = node.wake;
            take_output(n, node, &self.ends, now, 0, &mut out);
        }
        for (at, _, t) in std::mem::take(&mut out.tx) {
            self.send(n, at, t);
        }
        self.absorb(n, out);
        self.rearm(n, before);
    }

    /// Puts node `n`'s timer in the heap if it moved from `before`.
    fn rearm(&mut self, n: usize, before: Option<Instant>) {
        if let Some(node) = self.nodes.get(n)
            && node.wake != before
            && let Some(w) = node.wake
        {
            self.wakeups.push(Reverse((w, n)));
        }
    }

    /// Counts node `n`'s route changes, puts its new next hops into [`NextHops`] and notes its
    /// changed destinations for the loop check.
    fn absorb(&mut self, n: usize, out: NodeOutput) {
        self.stats.route_changes += out.route_changes;
        if let Some(t) = out.last_change {
            self.last_change = self.last_change.max(t);
        }
        for (p, hop) in out.changed {
            if let Some(hop) = hop {
                self.next_hops.set(n, p, hop);
            }
            // A destination no node ever had a route to has no row, and no loop.
            if let Some(id) = self.next_hops.row(&p) {
                self.changed
                    .push((id, u32::try_from(n).unwrap_or(u32::MAX)));
            }
        }
    }

    /// Hands one packet node `n` sent at `now` to its link: loss, delay with jitter (FIFO), and
    /// the delivery.
    fn send(&mut self, n: usize, now: Instant, mut t: Transmit) {
        if let (Some(lie), Some(node)) = (self.lies.get(&n), self.nodes.get(n)) {
            t.bytes = tell_lie(&t.bytes, lie, &node.prefixes);
        }
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += t.bytes.len() as u64;
        self.stats.messages_sent += t.messages as u64;
        let Some(&(_, li)) = self
            .nodes
            .get(n)
            .and_then(|nd| nd.ifaces.iter().find(|(i, _)| *i == t.ifindex))
        else {
            return;
        };
        let Some(l) = self.links.get(li) else {
            return;
        };
        let dir = usize::from(l.a != n);
        let (peer, peer_if) = if l.a == n { (l.b, l.ifb) } else { (l.a, l.ifa) };
        let lost = !l.up || {
            let loss = l.loss_ppm.saturating_add(self.cfg.loss_ppm);
            loss > 0 && self.rng.below(1_000_000) < u64::from(loss)
        };
        if let Destination::Unicast(a) = t.dst
            && a != node_address(peer, peer_if)
        {
            self.stats.packets_lost += 1;
            return;
        }
        if lost {
            self.stats.packets_lost += 1;
            return;
        }
        let base = l.delay.unwrap_or(self.cfg.delay);
        let jit = u64::try_from(self.cfg.delay_jitter.as_micros()).unwrap_or(0);
        let mut at = now + base + Duration::from_micros(self.rng.below(jit));
        if let Some(slot) = self.links.get_mut(li).and_then(|l| l.last.get_mut(dir)) {
            at = at.max(*slot + Duration::from_micros(1));
            *slot = at;
        }
        self.seq += 1;
        self.deliveries.push(Reverse(Delivery {
            at,
            seq: self.seq,
            node: peer,
            ifindex: peer_if,
            src: node_address(n, t.ifindex),
            dst: t.dst,
            bytes: t.bytes,
        }));
    }

    /// One window of [`SimConfig::threads`] ≥ 2: every event before the first of (next event +
    /// lookahead, a scheduled event, just after `limit`), each node on its own, the nodes shared
    /// with `workers`. Returns false if nothing was due by `limit`.
    fn window(&mut self, limit: Instant, workers: &Workers) -> bool {
        let Some(t0) = self.next_time() else {
            return false;
        };
        if t0 > limit {
            return false;
        }
        let sched = self.scheduled.first_key_value().map(|((at, _), _)| *at);
        if sched.is_some_and(|s| s <= t0) || self.lookahead.is_zero() {
            // The last window's loop check first: its next hops are about to move.
            self.check_changed_loops();
            return self.step(limit);
        }
        let mut end = (t0 + self.lookahead).min(limit + Duration::from_micros(1));
        if let Some(s) = sched {
            end = end.min(s);
        }
        self.now = t0;
        self.stats.steps += 1;
        let mut due = Vec::new();
        while self.deliveries.peek().is_some_and(|Reverse(d)| d.at < end) {
            if let Some(Reverse(d)) = self.deliveries.pop() {
                due.push(d);
            }
        }
        // Stable: each node's deliveries stay in (time, sequence) order.
        due.sort_by_key(|d| d.node);
        let mut active: Vec<usize> = due.iter().map(|d| d.node).collect();
        while let Some(Reverse((w, n))) = self.wakeups.peek().copied() {
            if w >= end {
                break;
            }
            self.wakeups.pop();
            if self.nodes.get(n).is_some_and(|nd| nd.wake == Some(w)) {
                active.push(n);
            }
        }
        active.sort_unstable();
        active.dedup();
        let mut jobs: Vec<Box<Job>> = Vec::with_capacity(active.len());
        let mut due = due.into_iter().peekable();
        for &n in &active {
            let mut deliveries = Vec::new();
            while let Some(d) = due.next_if(|d| d.node == n) {
                deliveries.push(d);
            }
            let Some(slot) = self.nodes.get_mut(n) else {
                continue;
            };
            // The node leaves its slot for the window (a worker may own it) and comes back below.
            let node = std::mem::replace(slot, Node::vacant());
            jobs.push(Box::new(Job {
                n,
                before: node.wake,
                node,
                deliveries,
                out: NodeOutput::default(),
                last: t0,
            }));
        }
        // The last window's loop check runs on this thread while the workers start on this
        // window's nodes: no job reads or writes the next hops or the links' state, so the check
        // sees them as that window left them and counts what it would have counted then.
        let ends = Arc::clone(&self.ends);
        let mut times = std::mem::take(&mut self.thread_times);
        let jobs = workers.run(jobs, &ends, end, &mut times, || self.check_changed_loops());
        self.thread_times = times;
        let mut tx = Vec::new();
        let mut outs = Vec::with_capacity(jobs.len());
        let mut last = t0;
        for j in jobs {
            last = last.max(j.last);
            let wake = (j.node.wake != j.before).then_some(j.node.wake).flatten();
            let mut out = j.out;
            tx.extend(
                std::mem::take(&mut out.tx)
                    .into_iter()
                    .map(|(at, pass, t)| (at, pass, j.n, t)),
            );
            if let Some(slot) = self.nodes.get_mut(j.n) {
                *slot = j.node;
            }
            outs.push((j.n, out, wake));
        }
        // The order [`Sim::step`] sends them in (instant, step at that instant, node), so the
        // seeded loss and jitter fall on the same packets; stable: a node's packets in one run
        // stay in the order it sent them.
        tx.sort_by_key(|(at, pass, n, _)| (*at, *pass, *n));
        for (at, _, n, t) in tx {
            self.send(n, at, t);
        }
        for (n, out, wake) in outs {
            self.absorb(n, out);
            if let Some(w) = wake {
                self.wakeups.push(Reverse((w, n)));
            }
        }
        self.now = last;
        // This window's loop check runs with the next window's nodes (or before the next step,
        // or at the end of [`Sim::run_until`]).
        true
    }

    fn peer_by_address(&self, n: usize, ifindex: u32, addr: IpAddr) -> Option<usize> {
        peer_link(&self.ends, &self.nodes.get(n)?.ifaces, n, ifindex, addr).map(|(p, _)| p)
    }

    /// The time of the next thing that will happen.
    fn next_time(&mut self) -> Option<Instant> {
        while let Some(Reverse((t, n))) = self.wakeups.peek().copied() {
            if self.nodes.get(n).is_some_and(|nd| nd.wake == Some(t)) {
                break;
            }
            self.wakeups.pop();
        }
        let mut t = self.wakeups.peek().map(|Reverse((t, _))| *t);
        if let Some(Reverse(d)) = self.deliveries.peek() {
            t = Some(t.map_or(d.at, |x| x.min(d.at)));
        }
        if let Some(((at, _), _)) = self.scheduled.first_key_value() {
            t = Some(t.map_or(*at, |x| x.min(*at)));
        }
        t
    }

    /// Executes everything due at the next instant, if it is not after `limit`. Returns false if
    /// nothing was due by then.
    pub fn step(&mut self, limit: Instant) -> bool {
        let Some(t) = self.next_time() else {
            return false;
        };
        if t > limit {
            return false;
        }
        self.now = t;
        self.stats.steps += 1;
        while let Some(entry) = self.scheduled.first_entry() {
            if entry.key().0 > t {
                break;
            }
            let ev = entry.remove();
            self.apply(ev);
        }
        let mut touched = BTreeSet::new();
        while self.deliveries.peek().is_some_and(|Reverse(d)| d.at <= t) {
            let Some(Reverse(d)) = self.deliveries.pop() else {
                break;
            };
            if let Some(e) = self.nodes.get_mut(d.node).and_then(|n| n.engine.as_mut()) {
                e.handle_packet(t, d.ifindex, d.src, d.dst, &d.bytes);
                touched.insert(d.node);
            }
        }
        while let Some(Reverse((w, n))) = self.wakeups.peek().copied() {
            if w > t {
                break;
            }
            self.wakeups.pop();
            if let Some(node) = self.nodes.get_mut(n)
                && node.wake == Some(w)
            {
                node.wake = None;
                if let Some(e) = node.engine.as_mut() {
                    e.handle_timeout(t);
                }
                touched.insert(n);
            }
        }
        for n in touched {
            self.drain(n);
        }
        self.check_changed_loops();
        true
    }

    /// Counts the destinations with a forwarding loop among those whose next hop changed since
    /// the last check.
    fn check_changed_loops(&mut self) {
        if self.cfg.check_loops && !self.changed.is_empty() {
            // A new cycle must go through a node whose next hop changed: walk from those only,
            // and count each destination with a cycle once (which node finds it first does not
            // matter: a walk reads the next hops only).
            let mut changed = std::mem::take(&mut self.changed);
            changed.sort_unstable();
            changed.dedup();
            let mut looped: Option<u32> = None;
            let mut row: Option<u32> = None;
            for &(id, n) in &changed {
                if row != Some(id) {
                    row = Some(id);
                    self.walks.next_row(self.nodes.len());
                }
                if looped != Some(id) && self.loop_from(id, n as usize) {
                    looped = Some(id);
                    self.stats.loops += 1;
                }
            }
            changed.clear();
            self.changed = changed;
        }
        self.changed.clear();
    }

    /// Whether following next hops of row `id` of [`NextHops`] from `start` comes back to a
    /// node already visited (over links that are up). A walk that reaches a node an earlier walk
    /// of the same row showed to end without a cycle stops there: from that node on it is the
    /// earlier walk (and it cannot come back into this walk's nodes, or the earlier one would
    /// have found that cycle). So the walks of one row cost about one pass over the nodes they
    /// reach, not a path per changed node.
    fn loop_from(&mut self, id: u32, start: usize) -> bool {
        let mut w = std::mem::take(&mut self.walks);
        w.path.clear();
        let mut cur = start;
        let looped = loop {
            if w.clean.get(cur) == Some(&w.stamp) {
                break false;
            }
            let c = u32::try_from(cur).unwrap_or(u32::MAX);
            // Paths are short (at most the mesh's diameter before a cycle shows): a vector scan.
            if w.path.contains(&c) {
                break true;
            }
            w.path.push(c);
            match self.next_hop_up(cur, id) {
                Some(next) => cur = next,
                None => break false,
            }
        };
        if !looped {
            for &p in &w.path {
                if let Some(m) = w.clean.get_mut(p as usize) {
                    *m = w.stamp;
                }
            }
        }
        self.walks = w;
        looped
    }

    /// Every node's next hop towards `prefix` (index = node).
    pub fn next_hops(&self, prefix: Prefix) -> Vec<Option<usize>> {
        (0..self.nodes.len())
            .map(|n| self.next_hop_node(n, prefix))
            .collect()
    }

    /// Whether the next hops towards `prefix` contain a cycle that packets would follow (every
    /// hop over a link that is up).
    pub fn has_loop(&self, prefix: Prefix) -> bool {
        let Some(id) = self.next_hops.row(&prefix) else {
            return false;
        };
        // 0 = unvisited, 1 = on the current path, 2 = done.
        let mut state = vec![0u8; self.nodes.len()];
        for start in 0..self.nodes.len() {
            let mut path = Vec::new();
            let mut cur = start;
            loop {
                match state.get(cur).copied() {
                    Some(0) => {}
                    Some(1) => return true,
                    _ => break,
                }
                if let Some(s) = state.get_mut(cur) {
                    *s = 1;
                }
                path.push(cur);
                // A packet only follows a next hop over a link that carries packets: a next hop
                // across a dead link (not yet noticed) is a black hole, not a loop.
                match self.next_hop_up(cur, id) {
                    Some(next) => cur = next,
                    None => break,
                }
            }
            for p in path {
                if let Some(s) = state.get_mut(p) {
                    *s = 2;
                }
            }
        }
        false
    }

    /// Runs until `t` (inclusive).
    pub fn run_until(&mut self, t: Instant) {
        if self.cfg.threads > 1 {
            // The worker threads live as long as this call (not one spawn per window): each waits
            // for its share of a window's nodes and sends them back once they ran.
            std::thread::scope(|s| {
                let pool = Arc::new(Pool::new());
                let mut handles = Vec::with_capacity(self.cfg.threads - 1);
                for _ in 1..self.cfg.threads {
                    let ends = Arc::clone(&self.ends);
                    let pool = Arc::clone(&pool);
                    handles.push(s.spawn(move || {
                        let cpu = thread_cpu();
                        pool.serve(&ends);
                        thread_cpu().saturating_sub(cpu)
                    }));
                }
                let workers = Workers {
                    pool: Arc::clone(&pool),
                    count: handles.len(),
                };
                let (start, cpu) = (std::time::Instant::now(), thread_cpu());
                let before = self.thread_times;
                while self.window(t, &workers) {}
                self.check_changed_loops();
                // The workers return once they see the pool closed (also if a window panics).
                drop(workers);
                let tt = &mut self.thread_times;
                let nodes = (tt.main_busy + tt.main_wait + tt.loop_check)
                    - (before.main_busy + before.main_wait + before.loop_check);
                tt.serial += start.elapsed().saturating_sub(nodes);
                tt.main_cpu += thread_cpu().saturating_sub(cpu);
                for h in handles {
                    tt.worker_cpu += h.join().unwrap_or_default();
                }
            });
        } else {
            while self.step(t) {}
        }
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// The live graph (links that are up between live nodes), built once per topology change.
    fn adjacency(&mut self) -> &[Vec<(usize, u32)>] {
        if self.adjacency.is_none() {
            let mut adj: Vec<Vec<(usize, u32)>> = vec![Vec::new(); self.nodes.len()];
            for l in &self.links {
                let alive = |x: usize| self.nodes.get(x).is_some_and(|nd| nd.engine.is_some());
                if l.up && alive(l.a) && alive(l.b) {
                    if let Some(v) = adj.get_mut(l.a) {
                        v.push((l.b, u32::from(l.cost)));
                    }
                    if let Some(v) = adj.get_mut(l.b) {
                        v.push((l.a, u32::from(l.cost)));
                    }
                }
            }
            self.adjacency = Some(adj);
        }
        self.adjacency.get_or_insert_with(Vec::new)
    }

    /// Shortest-path costs from `src` to every node over the live graph (Dijkstra; links cost
    /// the same both ways). One row at a time: the whole matrix is N² (400 MB at 10,000 nodes).
    pub fn distances_from(&mut self, src: usize) -> Vec<u32> {
        let n = self.nodes.len();
        let adj = self.adjacency();
        let mut dist = vec![u32::MAX; n];
        let mut heap = BinaryHeap::new();
        if let Some(d) = dist.get_mut(src) {
            *d = 0;
        }
        heap.push(Reverse((0u32, src)));
        while let Some(Reverse((d, u))) = heap.pop() {
            if dist.get(u).is_some_and(|&x| d > x) {
                continue;
            }
            for &(v, c) in adj.get(u).map(|v| v.as_slice()).unwrap_or_default() {
                let nd = d.saturating_add(c);
                if let Some(dv) = dist.get_mut(v)
                    && nd < *dv
                {
                    *dv = nd;
                    heap.push(Reverse((nd, v)));
                }
            }
        }
        dist
    }

    /// Every prefix announced by a live node, with the nodes announcing it.
    fn announced(&self) -> BTreeMap<Prefix, Vec<usize>> {
        let mut announced: BTreeMap<Prefix, Vec<usize>> = BTreeMap::new();
        for (d, node) in self.nodes.iter().enumerate() {
            if node.engine.is_some() {
                for p in &node.prefixes {
                    announced.entry(*p).or_default().push(d);
                }
            }
        }
        announced
    }

    /// Whether node `a` uses a best route to every live node's prefixes and none to unreachable
    /// ones; `dist` is [`Sim::distances_from`] `a`.
    fn check_node(
        &self,
        a: usize,
        dist: &[u32],
        announced: &BTreeMap<Prefix, Vec<usize>>,
    ) -> Result<(), String> {
        let Some(e) = self.engine(a) else {
            return Ok(());
        };
        // No route to something nobody reachable announces.
        for (k, _) in e.installed_routes() {
            let reachable = announced.get(&k.prefix).is_some_and(|origins| {
                origins
                    .iter()
                    .any(|d| dist.get(*d).is_some_and(|&x| x != u32::MAX))
            });
            if !reachable {
                return Err(format!(
                    "node {a} still routes to {} that nobody reachable announces",
                    k.prefix
                ));
            }
        }
        for (d, node) in self.nodes.iter().enumerate() {
            if d == a {
                continue;
            }
            let alive = node.engine.is_some();
            let want = dist.get(d).copied().unwrap_or(u32::MAX);
            for p in &node.prefixes {
                let got = e.installed(&RouteKey::new(*p));
                match (alive && want != u32::MAX, got) {
                    (false, None) => {}
                    (false, Some(_)) => {
                        return Err(format!("node {a} still routes to unreachable {p}"));
                    }
                    (true, None) => {
                        return Err(format!("node {a} has no route to {p} (node {d})"));
                    }
                    (true, Some(r)) => {
                        if u32::from(r.metric.0) != want {
                            return Err(format!(
                                "node {a} reaches {p} with metric {} instead of {want}",
                                r.metric
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks that every live node uses a best route (minimum total link cost) to every live
    /// node's prefixes, and has no route to unreachable ones. Returns the first violation.
    pub fn check_best(&mut self) -> Result<(), String> {
        let announced = self.announced();
        for a in 0..self.nodes.len() {
            if self.engine(a).is_none() {
                continue;
            }
            let dist = self.distances_from(a);
            self.check_node(a, &dist, &announced)?;
        }
        Ok(())
    }

    /// [`Sim::check_best`], resumed where the previous call found a violation: nodes that were
    /// not checked since are checked first, so a run that is far from converged costs one node
    /// per call instead of a scan of every node before it. True once every node passed in this
    /// one call (nothing ran in between), which is what [`Sim::check_best`] would say.
    fn check_best_resumed(&mut self) -> bool {
        let n = self.nodes.len();
        let announced = self.announced();
        for i in 0..n {
            let a = (self.check_cursor + i) % n;
            if self.engine(a).is_none() {
                continue;
            }
            let dist = match self.check_row.take() {
                Some((src, row)) if src == a => row,
                _ => self.distances_from(a),
            };
            let ok = self.check_node(a, &dist, &announced).is_ok();
            if !ok {
                self.check_cursor = a;
                self.check_row = Some((a, dist));
                return false;
            }
        }
        true
    }

    /// Runs until [`Sim::check_best`] holds (checked every second of virtual time) or `max`
    /// elapses. Returns the convergence time: from `since` (or the last event) to the last kernel
    /// route change.
    pub fn run_until_converged(&mut self, max: Duration) -> Option<Duration> {
        let start = self.now;
        let deadline = start + max;
        loop {
            if self.check_best_resumed() {
                let from = self.last_event.max(Instant::ZERO);
                return Some(self.last_change.max(from).saturating_since(from));
            }
            if self.now >= deadline {
                return None;
            }
            let next = (self.now + Duration::from_secs(1)).min(deadline);
            self.run_until(next);
            if self.progress && self.now.as_millis().is_multiple_of(10_000) {
                let best = self.check_best().err();
                eprintln!(
                    "t={}s packets={} route_changes={} loops={} {:?}",
                    self.now.as_millis() / 1000,
                    self.stats.packets_sent,
                    self.stats.route_changes,
                    self.stats.loops,
                    best
                );
            }
        }
    }

    /// InstalledRoute routes per node (live nodes).
    pub fn routes_per_node(&self) -> RoutesPerNode {
        let counts: Vec<usize> = self
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref())
            .map(|e| e.installed_count())
            .collect();
        if counts.is_empty() {
            return RoutesPerNode::default();
        }
        let sum: usize = counts.iter().sum();
        RoutesPerNode {
            min: counts.iter().copied().min().unwrap_or(0),
            max: counts.iter().copied().max().unwrap_or(0),
            mean: (sum as f64 / counts.len() as f64 * 1000.0).round() / 1000.0,
        }
    }

    /// The run's summary.
    pub fn summary(&mut self, seed: u64, convergence: Option<Duration>) -> Summary {
        let not_best = self.check_best().err();
        Summary {
            topology: self.topo_name.clone(),
            seed,
            nodes: self.nodes.len(),
            links: self.links.len(),
            converged: convergence.is_some(),
            convergence_time_ms: convergence
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            sim_time_ms: self.now.as_millis(),
            loops: self.stats.loops,
            packets_sent: self.stats.packets_sent,
            bytes_sent: self.stats.bytes_sent,
            messages_sent: self.stats.messages_sent,
            packets_lost: self.stats.packets_lost,
            route_changes: self.stats.route_changes,
            routes_per_node: self.routes_per_node(),
            not_best,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The threaded run checks a window's loops while the next window's nodes run: it gives
    /// the single-threaded run's counters through links cut and brought back on a lossy mesh
    /// (no loop there: the feasibility condition holds), and a cycle pending when a threaded run
    /// starts is counted once, before the nodes' first changes, not dropped.
    #[test]
    fn deferred_loop_check_counts_what_single_steps_count() {
        let run = |seed: u64, threads: usize| {
            let topo = Topology::parse("mesh:24", seed).unwrap_or_else(|e| panic!("{e}"));
            let mut sim = Sim::new(
                &topo,
                SimConfig {
                    seed,
                    loss_ppm: 30_000,
                    threads,
                    ..SimConfig::default()
                },
            );
            for (i, l) in topo.links.iter().take(6).enumerate() {
                let at = Instant::ZERO + Duration::from_secs(30 + 2 * i as u64);
                sim.schedule(at, SimEvent::LinkDown(l.a, l.b));
                sim.schedule(at + Duration::from_secs(7), SimEvent::LinkUp(l.a, l.b));
            }
            sim.run_for(Duration::from_secs(60));
            // Steps count instants in one mode and windows in the other.
            Stats {
                steps: 0,
                ..sim.stats()
            }
        };
        for seed in 1..=2 {
            assert_eq!(run(seed, 2), run(seed, 1), "seed {seed}");
        }
        let topo = Topology::parse("full:8", 1).unwrap_or_else(|e| panic!("{e}"));
        let mut sim = Sim::new(
            &topo,
            SimConfig {
                threads: 2,
                ..SimConfig::default()
            },
        );
        let prefix = node_prefix(1);
        for (n, peer) in [(2, 3), (3, 4), (4, 5), (5, 3)] {
            let link = sim.link_of(n, peer).unwrap_or_else(|| panic!("no link"));
            sim.next_hops.set(n, prefix, Some((peer, link)));
        }
        let id = sim
            .next_hops
            .row(&prefix)
            .unwrap_or_else(|| panic!("no row"));
        sim.changed.push((id, 2));
        sim.run_for(Duration::from_secs(5));
        assert_eq!(sim.stats().loops, 1);
        assert!(sim.changed.is_empty(), "a check left pending");
    }

    /// The loop check counts each row with a cycle once, whether the cycle is met from a changed
    /// node's own walk or after a walk already showed part of the row to be loop-free.
    #[test]
    fn loop_check_counts_each_row_with_a_cycle_once() {
        let topo = Topology::parse("full:8", 1).unwrap_or_else(|e| panic!("{e}"));
        let mut sim = Sim::new(&topo, SimConfig::default());
        // Per row: its prefix, (node, next hop) pairs, and whether it has a cycle.
        type Row = (Prefix, &'static [(usize, usize)], bool);
        let rows: [Row; 3] = [
            // A tree towards node 0: no cycle.
            (
                node_prefix(0),
                &[(1, 0), (2, 1), (3, 1), (4, 3), (5, 4), (6, 5), (7, 6)],
                false,
            ),
            // Tails from 0, 1, 2, 6 and 7 into the cycle 3 -> 4 -> 5 -> 3.
            (
                node_prefix(1),
                &[
                    (0, 1),
                    (1, 2),
                    (2, 3),
                    (3, 4),
                    (4, 5),
                    (5, 3),
                    (6, 0),
                    (7, 6),
                ],
                true,
            ),
            // 0, 1 and 2 end at a node without a route (shown loop-free first), then 3 <-> 4.
            (node_prefix(2), &[(0, 1), (2, 0), (3, 4), (4, 3)], true),
        ];
        for (prefix, hops, _) in rows {
            for &(n, peer) in hops {
                let link = sim.link_of(n, peer).unwrap_or_else(|| panic!("no link"));
                sim.next_hops.set(n, prefix, Some((peer, link)));
            }
            let id = sim
                .next_hops
                .row(&prefix)
                .unwrap_or_else(|| panic!("no row"));
            sim.changed.extend((0..8).map(|n| (id, n)));
        }
        sim.check_changed_loops();
        assert_eq!(sim.stats().loops, 2);
        for (prefix, _, looped) in rows {
            assert_eq!(sim.has_loop(prefix), looped);
        }
        // Again, every node changed in every row: the marks of the first check do not carry over.
        for (prefix, _, _) in rows {
            let id = sim
                .next_hops
                .row(&prefix)
                .unwrap_or_else(|| panic!("no row"));
            sim.changed.extend((0..8).rev().map(|n| (id, n)));
        }
        sim.check_changed_loops();
        assert_eq!(sim.stats().loops, 4);
    }
}
