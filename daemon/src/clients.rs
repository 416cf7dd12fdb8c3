//! Who may hold a control connection, for how long, and how much of our memory it may take.
//!
//! The control socket is reachable by every local user when it is a TCP port (`-G PORT`), so a
//! client is untrusted input like a packet: [`Slots`] decides admission (a share reserved for
//! read-write clients, the longest-idle client evicted when the table is full, idle clients
//! timed out) and [`OutputBudget`] bounds the replies waiting for slow readers. Both are sans-IO:
//! the daemon's socket driver passes the time and the queue sizes in.

use clock::Instant;
use std::collections::HashMap;
use std::time::Duration;

/// Bounds of the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Connections held at once, read-only and read-write together.
    pub max_clients: usize,
    /// Of those, slots only read-write clients may take.
    pub reserved_read_write: usize,
    /// A client that sends no command for this long (and is not monitoring) is closed.
    pub idle_timeout: Duration,
    /// A client whose replies cannot be written for this long (it stopped reading, or the
    /// connection is half-open) is closed.
    pub write_timeout: Duration,
    /// When the table is full, a new client evicts the longest-idle one if that one has been
    /// idle at least this long.
    pub evict_after: Duration,
    /// Reply bytes a client may have waiting when it sends another command (one reply can
    /// be larger: a full `dump`).
    pub max_queued_per_client: usize,
    /// Monitor lines a monitoring client may have waiting before the next ones drop it. A
    /// full table learned at once is about 200 bytes of lines per route (20 MB for 100,000),
    /// produced a batch of packets at a time: a client reading as fast as it can is still
    /// several MiB behind between two turns of its writer. A client that stops reading is
    /// closed by `write_timeout`; `max_queued_total` bounds all clients together.
    pub max_queued_monitor: usize,
    /// Reply bytes waiting for all clients together before a new reply drops its client (a
    /// reply larger than this is still accepted when nothing else is waiting).
    pub max_queued_total: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            // Above the 128 connections Althea's fork allows.
            max_clients: 256,
            reserved_read_write: 32,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            evict_after: Duration::from_secs(1),
            max_queued_per_client: 1 << 20,
            max_queued_monitor: 16 << 20,
            max_queued_total: 64 << 20,
        }
    }
}

/// Whether a new connection may stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAdmission {
    /// There is a free slot.
    Accept,
    /// Accepted in place of this client, which must be closed.
    Evict(u64),
    /// No slot: close the new connection.
    Refuse,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    read_write: bool,
    monitoring: bool,
    last_command: Instant,
}

/// The connected clients' slots.
#[derive(Debug)]
pub struct Slots {
    limits: ClientLimits,
    slots: HashMap<u64, Slot>,
}

impl Slots {
    /// An empty table.
    pub fn new(limits: ClientLimits) -> Self {
        Slots {
            limits,
            slots: HashMap::new(),
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> &ClientLimits {
        &self.limits
    }

    /// Clients connected.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn read_only(&self) -> usize {
        self.slots.values().filter(|s| !s.read_write).count()
    }

    /// Admits client `id`. A read-only client may not take the last `reserved_read_write`
    /// slots; when its share (or the whole table) is full, the longest-idle client it may
    /// replace is evicted: a non-monitoring one before a monitoring one, and a read-only one
    /// before a read-write one for a read-write newcomer. Clients busy within `evict_after`
    /// are never evicted, so held-open connections cannot lock others out, and a burst of
    /// new connections cannot take the slots of clients at work.
    pub fn admit(&mut self, id: u64, read_write: bool, now: Instant) -> ClientAdmission {
        let l = self.limits;
        let ro_share = l.max_clients.saturating_sub(l.reserved_read_write);
        let full = self.slots.len() >= l.max_clients;
        let ro_full = !read_write && self.read_only() >= ro_share;
        let mut admission = ClientAdmission::Accept;
        if full || ro_full {
            // A read-only newcomer may only replace a read-only client: it must not free a
            // reserved slot for itself by evicting a read-write client.
            let victim = self
                .slots
                .iter()
                .filter(|(_, s)| read_write || !s.read_write)
                .filter(|(_, s)| now.saturating_since(s.last_command) >= l.evict_after)
                .min_by_key(|(k, s)| (s.monitoring, s.read_write, s.last_command, **k))
                .map(|(k, _)| *k);
            match victim {
                Some(v) => {
                    self.slots.remove(&v);
                    admission = ClientAdmission::Evict(v);
                }
                None => return ClientAdmission::Refuse,
            }
        }
        self.slots.insert(
            id,
            Slot {
                read_write,
                monitoring: false,
                last_command: now,
            },
        );
        admission
    }

    /// Client `id` sent a command (or any bytes): it is not idle.
    pub fn touch(&mut self, id: u64, now: Instant) {
        if let Some(s) = self.slots.get_mut(&id) {
            s.last_command = now;
        }
    }

    /// Whether client `id` receives `monitor` lines (a monitor is never idle).
    pub fn set_monitoring(&mut self, id: u64, monitoring: bool) {
        if let Some(s) = self.slots.get_mut(&id) {
            s.monitoring = monitoring;
        }
    }

    /// Forgets client `id`.
    pub fn remove(&mut self, id: u64) {
        self.slots.remove(&id);
    }

    /// Removes and returns the clients idle longer than `idle_timeout` (monitors excepted).
    pub fn expire(&mut self, now: Instant) -> Vec<u64> {
        let t = self.limits.idle_timeout;
        let gone: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.monitoring && now.saturating_since(s.last_command) > t)
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            self.slots.remove(k);
        }
        gone
    }
}

/// The reply bytes waiting to be written, per client and in total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputBudget {
    /// See [`ClientLimits::max_queued_per_client`].
    pub per_client: usize,
    /// See [`ClientLimits::max_queued_monitor`].
    pub per_monitor: usize,
    /// See [`ClientLimits::max_queued_total`].
    pub total: usize,
}

impl OutputBudget {
    /// From the limits.
    pub fn new(l: &ClientLimits) -> Self {
        OutputBudget {
            per_client: l.max_queued_per_client,
            per_monitor: l.max_queued_monitor,
            total: l.max_queued_total,
        }
    }

    /// How many reply bytes a client with `queued` bytes waiting may still be given before its
    /// next command drops it ([`crate::control::Session::input_bounded`]'s `room`).
    pub fn room(&self, queued: usize) -> usize {
        self.per_client.saturating_sub(queued)
    }

    /// Whether `len` more bytes may be queued for a client that has `queued` waiting, when all
    /// clients together have `all_queued` waiting. A reply is refused when its client already
    /// has more than its share waiting, or when it would take the total over its bound while
    /// other replies wait; a single reply alone (a big `dump`) always fits.
    pub fn admits(&self, queued: usize, all_queued: usize, len: usize) -> bool {
        self.admits_within(self.per_client, queued, all_queued, len)
    }

    /// [`OutputBudget::admits`] for monitor lines: a monitoring client may have up to
    /// `per_monitor` bytes waiting, under the same total.
    pub fn admits_monitor_lines(&self, queued: usize, all_queued: usize, len: usize) -> bool {
        self.admits_within(self.per_monitor, queued, all_queued, len)
    }

    /// A client with more than `share` waiting gets nothing more; the total binds while
    /// others wait.
    fn admits_within(&self, share: usize, queued: usize, all_queued: usize, len: usize) -> bool {
        queued <= share && (all_queued == 0 || all_queued.saturating_add(len) <= self.total)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn limits(max: usize, reserved: usize) -> ClientLimits {
        ClientLimits {
            max_clients: max,
            reserved_read_write: reserved,
            ..ClientLimits::default()
        }
    }

    #[test]
    fn read_only_clients_leave_the_reserved_share() {
        let t0 = clock::now();
        let mut s = Slots::new(limits(4, 2));
        assert_eq!(s.admit(1, false, t0), ClientAdmission::Accept);
        assert_eq!(s.admit(2, false, t0), ClientAdmission::Accept);
        // The read-only share is full, and nobody has been idle yet.
        assert_eq!(s.admit(3, false, t0), ClientAdmission::Refuse);
        assert_eq!(s.admit(4, true, t0), ClientAdmission::Accept);
        assert_eq!(s.admit(5, true, t0), ClientAdmission::Accept);
        assert_eq!(s.len(), 4);
        assert_eq!(s.admit(6, true, t0), ClientAdmission::Refuse);
    }

    #[test]
    fn held_connections_are_evicted_longest_idle_first() {
        let t0 = clock::now();
        let mut s = Slots::new(limits(3, 1));
        s.admit(1, false, t0);
        s.admit(2, false, t0 + Duration::from_secs(1));
        s.admit(3, true, t0);
        let later = t0 + Duration::from_secs(10);
        s.touch(1, t0 + Duration::from_millis(9_900));
        // Client 1 just spoke; client 2 has held its slot for 9 s without a word.
        assert_eq!(s.admit(4, false, later), ClientAdmission::Evict(2));
        // A read-only newcomer never takes a read-write client's slot, even an idle one, and
        // client 1 and 4 are busy.
        assert_eq!(s.admit(5, false, later), ClientAdmission::Refuse);
        // A read-write newcomer evicts a read-only client before a read-write one.
        let much_later = later + Duration::from_secs(5);
        assert_eq!(s.admit(6, true, much_later), ClientAdmission::Evict(1));
    }

    #[test]
    fn monitors_are_evicted_last_and_never_expire() {
        let t0 = clock::now();
        let mut s = Slots::new(limits(2, 0));
        s.admit(1, false, t0);
        s.set_monitoring(1, true);
        s.admit(2, false, t0 + Duration::from_secs(1));
        let t = t0 + Duration::from_secs(5);
        assert_eq!(s.admit(3, false, t), ClientAdmission::Evict(2));
        let expired = s.expire(t0 + Duration::from_secs(3600));
        assert_eq!(expired, vec![3]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn idle_clients_time_out() {
        let t0 = clock::now();
        let mut s = Slots::new(ClientLimits::default());
        s.admit(1, false, t0);
        s.admit(2, true, t0);
        s.touch(2, t0 + Duration::from_secs(50));
        assert!(s.expire(t0 + Duration::from_secs(60)).is_empty());
        assert_eq!(s.expire(t0 + Duration::from_secs(61)), vec![1]);
        assert_eq!(s.expire(t0 + Duration::from_secs(111)), vec![2]);
        assert!(s.is_empty());
    }

    #[test]
    fn output_budget() {
        let b = OutputBudget {
            per_client: 100,
            per_monitor: 500,
            total: 1000,
        };
        // A reply larger than everything is accepted alone.
        assert!(b.admits(0, 0, 5000));
        // Not while others wait.
        assert!(!b.admits(0, 10, 5000));
        assert!(b.admits(0, 10, 990));
        // A client with more than its share waiting gets nothing more.
        assert!(!b.admits(101, 101, 1));
        assert_eq!(b.room(40), 60);
        assert_eq!(b.room(400), 0);
    }

    #[test]
    fn a_monitor_may_fall_further_behind_under_the_same_total() {
        let b = OutputBudget {
            per_client: 100,
            per_monitor: 500,
            total: 1000,
        };
        // More than a reply's share waiting: monitor lines still go, replies do not.
        assert!(b.admits_monitor_lines(400, 400, 50));
        assert!(!b.admits(400, 400, 50));
        // Past the monitor's share, or the total while others wait: dropped.
        assert!(!b.admits_monitor_lines(501, 501, 1));
        assert!(!b.admits_monitor_lines(400, 980, 50));
        assert!(b.admits_monitor_lines(0, 0, 5000));
    }
}
