//! Neighbour discovery on `type mesh` interfaces (spec/discovery.md; the Althea network paper,
//! "Authentication": a router opens an authenticated tunnel with each neighbour it has a
//! physical link to, and forwards only what comes through one).
//!
//! Every router sends an [`Announcement`] (its tunnel public key and UDP port) by link-local
//! multicast; the endpoint is the announcement's source address. An announcement authenticates
//! nothing: it only tells us whom to try. A neighbour counts (its tunnel is created, Babel runs
//! over it) only once the WireGuard handshake with that key has completed, which proves the
//! other side holds the private key ("binding by the handshake"). Liveness comes from
//! authenticated tunnel traffic, never from announcements, so replaying or forging them cannot
//! keep a dead neighbour alive or take a live one down.
//!
//! This module is sans-IO: the caller passes `now`, received bytes and tunnel events, and drains
//! [`DiscoveryOutput`]s. The daemon's driver does the sockets, the tunnel device and the TUN interfaces.

use clock::Instant;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use serde::Serialize;
use tunnel::PublicKey;

use crate::config::ParseError;

/// The discovery group: `ff02::114`, IANA's link-local "any private experiment" group.
pub const GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x114);
/// The discovery UDP port (Babel's 6696 + 1).
pub const PORT: u16 = 6697;
/// First four bytes of every announcement.
pub const MAGIC: [u8; 4] = *b"BRSm";
/// The only version we send and accept.
pub const VERSION: u8 = 1;
/// Length of an announcement in bytes.
pub const ANNOUNCEMENT_LEN: usize = 48;
/// IPv6 (40) + UDP (8) + WireGuard transport header and tag (32): what one tunnel layer costs
/// when its outer packets are IPv6, the worst case (spec/discovery.md, "MTU").
pub const TUNNEL_OVERHEAD: u32 = 80;
/// The default MTU of `tunnel` lines: a tunnel inside a mesh tunnel on a 1500-byte link.
pub const INNER_TUNNEL_MTU: u32 = 1500 - 2 * TUNNEL_OVERHEAD;
/// Most neighbours (pending, up or refused) one mesh interface keeps.
pub const MAX_NEIGHBOURS: usize = 512;
/// The smallest MTU IPv6 allows on a link (RFC 8200 §5); a mesh tunnel never goes below it.
pub const MIN_MTU: u32 = 1280;

/// The MTU of a mesh tunnel on a physical interface of MTU `physical`: one layer of overhead
/// less, so a full-size tunnel packet leaves as one full-size frame.
pub fn tunnel_mtu(physical: u32) -> u32 {
    physical.saturating_sub(TUNNEL_OVERHEAD).max(MIN_MTU)
}

/// Why an announcement was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// Not exactly [`ANNOUNCEMENT_LEN`] bytes.
    #[error("announcement of {0} bytes (expected {ANNOUNCEMENT_LEN})")]
    Length(usize),
    /// Wrong magic.
    #[error("not an announcement (bad magic)")]
    Magic,
    /// A version we do not speak.
    #[error("announcement version {0}")]
    Version(u8),
    /// Reserved bytes not zero.
    #[error("reserved bytes set")]
    Reserved,
    /// Port 0.
    #[error("port 0")]
    Port,
    /// Not from an IPv6 link-local address.
    #[error("source {0} is not link-local")]
    Source(Ipv6Addr),
    /// Our own key (our own announcement looped back, or someone replaying it).
    #[error("our own key")]
    OwnKey,
    /// The key is all zeros (the X25519 low-order point a handshake can never complete with).
    #[error("zero key")]
    ZeroKey,
}

/// One announcement: a tunnel public key and the UDP port its tunnel listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The sender's tunnel public key.
    pub public_key: PublicKey,
    /// The sender's tunnel UDP port (the address is the announcement's source).
    pub port: u16,
    /// Counts the sender's announcements since it started; informational only (it is not
    /// authenticated, so nothing relies on it).
    pub seqno: u64,
}

impl Announcement {
    /// The 48 bytes on the wire (spec/discovery.md, "Byte layout").
    pub fn encode(&self) -> [u8; ANNOUNCEMENT_LEN] {
        let mut b = [0u8; ANNOUNCEMENT_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        // b[5] (flags) and b[6..8] (reserved) stay zero.
        b[8..10].copy_from_slice(&self.port.to_be_bytes());
        // The seqno's low 48 bits.
        let s = self.seqno.to_be_bytes();
        b[10..16].copy_from_slice(&s[2..8]);
        b[16..48].copy_from_slice(self.public_key.as_bytes());
        b
    }

    /// Parses an announcement; anything but exactly the layout is an error.
    pub fn decode(b: &[u8]) -> Result<Announcement, DiscoveryError> {
        let b: &[u8; ANNOUNCEMENT_LEN] =
            b.try_into().map_err(|_| DiscoveryError::Length(b.len()))?;
        let [
            m0,
            m1,
            m2,
            m3,
            version,
            flags,
            r0,
            r1,
            p0,
            p1,
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            key @ ..,
        ] = *b;
        if [m0, m1, m2, m3] != MAGIC {
            return Err(DiscoveryError::Magic);
        }
        if version != VERSION {
            return Err(DiscoveryError::Version(version));
        }
        if flags != 0 || r0 != 0 || r1 != 0 {
            return Err(DiscoveryError::Reserved);
        }
        let port = u16::from_be_bytes([p0, p1]);
        if port == 0 {
            return Err(DiscoveryError::Port);
        }
        let key: [u8; 32] = key;
        if key == [0; 32] {
            return Err(DiscoveryError::ZeroKey);
        }
        Ok(Announcement {
            public_key: PublicKey(key),
            port,
            seqno: u64::from_be_bytes([0, 0, s0, s1, s2, s3, s4, s5]),
        })
    }
}

/// Which neighbours get a tunnel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcceptMode {
    /// Anyone who completes the handshake (Althea's default).
    #[default]
    Open,
    /// Only keys on the allow-list.
    AllowList,
    /// Anyone but keys on the deny-list.
    DenyList,
}

/// The accept policy: a mode and two key lists, changeable at runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptPolicy {
    /// The mode.
    pub mode: AcceptMode,
    /// `mesh-allow` keys.
    pub allow: BTreeSet<PublicKey>,
    /// `mesh-deny` keys.
    pub deny: BTreeSet<PublicKey>,
}

impl AcceptPolicy {
    /// Whether a neighbour with this key may have a tunnel.
    pub fn accepts(&self, key: &PublicKey) -> bool {
        match self.mode {
            AcceptMode::Open => true,
            AcceptMode::AllowList => self.allow.contains(key),
            AcceptMode::DenyList => !self.deny.contains(key),
        }
    }
}

/// A `mesh-*` statement (configuration file, `-C`, or a read-write control client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeshStatement {
    /// `mesh-policy open|allow-list|deny-list`.
    Policy(AcceptMode),
    /// `mesh-allow KEY`: add to the allow-list.
    Allow(PublicKey),
    /// `mesh-deny KEY`: add to the deny-list.
    Deny(PublicKey),
    /// `mesh-unlist KEY`: remove from both lists.
    Unlist(PublicKey),
    /// `mesh-private-key KEY` (start-up only): the tunnel key; without it one is generated.
    PrivateKey(String),
    /// `mesh-timeout SECONDS` (start-up only): a tunnel silent this long is torn down.
    Timeout(u32),
    /// `mesh-announce-interval SECONDS` (start-up only).
    AnnounceInterval(u32),
}

impl MeshStatement {
    /// True for the statements a control client may send after start-up.
    pub fn runtime(&self) -> bool {
        matches!(
            self,
            MeshStatement::Policy(_)
                | MeshStatement::Allow(_)
                | MeshStatement::Deny(_)
                | MeshStatement::Unlist(_)
        )
    }

    /// Parses `keyword value`.
    pub fn parse(keyword: &str, value: Option<&str>) -> Result<MeshStatement, ParseError> {
        let v = value.ok_or_else(|| ParseError::Missing(keyword.to_owned()))?;
        let bad = |why| ParseError::BadValue {
            what: keyword.to_owned(),
            value: v.to_owned(),
            why,
        };
        let key = || v.parse::<PublicKey>().map_err(|_| bad("not a base64 key"));
        let secs = || match v.parse::<u32>() {
            Ok(n) if (1..=3600).contains(&n) => Ok(n),
            _ => Err(bad("expected 1 to 3600 seconds")),
        };
        Ok(match keyword {
            "mesh-policy" => MeshStatement::Policy(match v {
                "open" => AcceptMode::Open,
                "allow-list" => AcceptMode::AllowList,
                "deny-list" => AcceptMode::DenyList,
                _ => return Err(bad("expected open, allow-list or deny-list")),
            }),
            "mesh-allow" => MeshStatement::Allow(key()?),
            "mesh-deny" => MeshStatement::Deny(key()?),
            "mesh-unlist" => MeshStatement::Unlist(key()?),
            "mesh-private-key" => {
                v.parse::<tunnel::PrivateKey>()
                    .map_err(|_| bad("not a base64 key"))?;
                MeshStatement::PrivateKey(v.to_owned())
            }
            "mesh-timeout" => MeshStatement::Timeout(secs()?),
            "mesh-announce-interval" => MeshStatement::AnnounceInterval(secs()?),
            _ => return Err(ParseError::Unknown(keyword.to_owned())),
        })
    }
}

/// Mesh settings from the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeshSettings {
    /// The accept policy.
    pub policy: AcceptPolicy,
    /// `mesh-private-key`.
    pub private_key: Option<String>,
    /// `mesh-timeout`, seconds.
    pub timeout_s: Option<u32>,
    /// `mesh-announce-interval`, seconds.
    pub announce_interval_s: Option<u32>,
}

impl MeshSettings {
    /// Applies one statement.
    pub fn apply(&mut self, s: MeshStatement) {
        match s {
            MeshStatement::Policy(m) => self.policy.mode = m,
            MeshStatement::Allow(k) => {
                self.policy.deny.remove(&k);
                self.policy.allow.insert(k);
            }
            MeshStatement::Deny(k) => {
                self.policy.allow.remove(&k);
                self.policy.deny.insert(k);
            }
            MeshStatement::Unlist(k) => {
                self.policy.allow.remove(&k);
                self.policy.deny.remove(&k);
            }
            MeshStatement::PrivateKey(k) => self.private_key = Some(k),
            MeshStatement::Timeout(s) => self.timeout_s = Some(s),
            MeshStatement::AnnounceInterval(s) => self.announce_interval_s = Some(s),
        }
    }

    /// The timers these settings ask for.
    pub fn timers(&self) -> Timers {
        let d = Timers::default();
        Timers {
            dead: self
                .timeout_s
                .map_or(d.dead, |s| Duration::from_secs(u64::from(s))),
            announce: self
                .announce_interval_s
                .map_or(d.announce, |s| Duration::from_secs(u64::from(s))),
            ..d
        }
    }
}

/// Discovery's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// Announcement interval.
    pub announce: Duration,
    /// A tunnel with no authenticated packet for this long is torn down; a neighbour whose
    /// handshake never completes is forgotten this long after its last announcement.
    pub dead: Duration,
    /// A pending neighbour's handshake is retried this often while it is still announced.
    pub retry: Duration,
    /// A live tunnel's endpoint moves on an announcement only after this long without an
    /// authenticated packet (until then only the tunnel's own authenticated packets move it).
    pub stale: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            announce: Duration::from_secs(5),
            dead: Duration::from_secs(30),
            retry: Duration::from_secs(5),
            stale: Duration::from_secs(12),
        }
    }
}

/// Where a neighbour stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NeighbourState {
    /// Announced; handshake not completed yet.
    Pending,
    /// Handshake completed: it has a tunnel interface.
    Up,
    /// Announced, but the accept policy refuses it: no tunnel.
    Refused,
}

impl NeighbourState {
    /// The word in `dump` lines.
    pub fn word(self) -> &'static str {
        match self {
            NeighbourState::Pending => "pending",
            NeighbourState::Up => "up",
            NeighbourState::Refused => "refused",
        }
    }
}

/// A neighbour heard on a mesh interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshNeighbour {
    /// Its tunnel public key.
    pub key: PublicKey,
    /// Its tunnel endpoint (link-local address with scope, port).
    pub endpoint: SocketAddrV6,
    /// State.
    pub state: NeighbourState,
    /// When we last heard its announcement.
    pub last_announced: Instant,
    /// When its tunnel last received an authenticated packet.
    pub last_authenticated: Option<Instant>,
    /// When we last started a handshake with it.
    last_initiation: Instant,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryOutput {
    /// Add a tunnel peer with this endpoint and start a handshake.
    AddPeer {
        /// Its key.
        key: PublicKey,
        /// Its endpoint.
        endpoint: SocketAddrV6,
    },
    /// Move a peer's endpoint and start a handshake.
    SetEndpoint {
        /// Its key.
        key: PublicKey,
        /// The new endpoint.
        endpoint: SocketAddrV6,
    },
    /// Send a handshake initiation to `to` without moving the peer's endpoint: a silent up
    /// tunnel's key was announced from a new address. Only the answer, an authenticated
    /// handshake response, moves the endpoint there (WireGuard's roaming), so an announcement
    /// alone never redirects a tunnel.
    Probe {
        /// Its key.
        key: PublicKey,
        /// Where the announcement came from.
        to: SocketAddrV6,
    },
    /// Start a handshake again.
    Initiate {
        /// Its key.
        key: PublicKey,
    },
    /// The handshake completed: create the neighbour's tunnel interface.
    TunnelUp {
        /// Its key.
        key: PublicKey,
    },
    /// Remove the peer and, if it had one, its tunnel interface.
    Remove {
        /// Its key.
        key: PublicKey,
        /// Why (for logs and monitors).
        reason: &'static str,
    },
}

/// Discovery counters (shown by `dump json` and `babelctl show neighbours`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiscoveryCounters {
    /// Announcements received (valid or not).
    pub received: u64,
    /// Dropped: not an announcement (length, magic, version, reserved bits, port, zero key).
    pub malformed: u64,
    /// Dropped: not from a link-local address.
    pub bad_source: u64,
    /// Dropped: carried our own key.
    pub own_key: u64,
    /// Refused by the accept policy.
    pub refused: u64,
    /// Ignored: tried to move a live tunnel's endpoint.
    pub endpoint_ignored: u64,
    /// Announcements of a silent up tunnel's key from a new address, answered with a handshake
    /// initiation there (the endpoint moves only if that handshake completes).
    pub probes: u64,
    /// Dropped: the neighbour table was full.
    pub table_full: u64,
    /// Neighbours forgotten because their handshake never completed (forged or stale keys).
    pub never_authenticated: u64,
    /// Tunnels brought up.
    pub tunnels_up: u64,
    /// Tunnels torn down.
    pub tunnels_down: u64,
}

/// The neighbours of one mesh interface.
#[derive(Debug)]
pub struct Discovery {
    our_key: PublicKey,
    timers: Timers,
    max_neighbours: usize,
    neighbours: BTreeMap<PublicKey, MeshNeighbour>,
    counters: DiscoveryCounters,
    outputs: VecDeque<DiscoveryOutput>,
}

impl Discovery {
    /// Discovery for a router whose tunnel key is `our_key`, keeping at most `max_neighbours`.
    pub fn new(our_key: PublicKey, timers: Timers, max_neighbours: usize) -> Self {
        Discovery {
            our_key,
            timers,
            max_neighbours,
            neighbours: BTreeMap::new(),
            counters: DiscoveryCounters::default(),
            outputs: VecDeque::new(),
        }
    }

    /// The counters.
    pub fn counters(&self) -> &DiscoveryCounters {
        &self.counters
    }

    /// The neighbours, by key.
    pub fn neighbours(&self) -> impl Iterator<Item = &MeshNeighbour> {
        self.neighbours.values()
    }

    /// A neighbour.
    pub fn neighbour(&self, key: &PublicKey) -> Option<&MeshNeighbour> {
        self.neighbours.get(key)
    }

    /// Next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<DiscoveryOutput> {
        self.outputs.pop_front()
    }

    /// Handles one datagram received on the discovery socket from `src` (its scope id is the
    /// interface it arrived on).
    pub fn handle_announcement(
        &mut self,
        now: Instant,
        src: SocketAddrV6,
        bytes: &[u8],
        policy: &AcceptPolicy,
    ) -> Result<(), DiscoveryError> {
        self.counters.received += 1;
        let a = Announcement::decode(bytes).inspect_err(|_| self.counters.malformed += 1)?;
        if !babel_wire::is_link_local(&std::net::IpAddr::V6(*src.ip())) {
            self.counters.bad_source += 1;
            return Err(DiscoveryError::Source(*src.ip()));
        }
        if a.public_key == self.our_key {
            self.counters.own_key += 1;
            return Err(DiscoveryError::OwnKey);
        }
        let endpoint = SocketAddrV6::new(*src.ip(), a.port, 0, src.scope_id());
        let accepted = policy.accepts(&a.public_key);
        if !accepted {
            self.counters.refused += 1;
        }
        let timers = self.timers;
        let Some(n) = self.neighbours.get_mut(&a.public_key) else {
            if self.neighbours.len() >= self.max_neighbours {
                self.counters.table_full += 1;
                return Ok(());
            }
            let state = if accepted {
                self.outputs.push_back(DiscoveryOutput::AddPeer {
                    key: a.public_key,
                    endpoint,
                });
                NeighbourState::Pending
            } else {
                NeighbourState::Refused
            };
            self.neighbours.insert(
                a.public_key,
                MeshNeighbour {
                    key: a.public_key,
                    endpoint,
                    state,
                    last_announced: now,
                    last_authenticated: None,
                    last_initiation: now,
                },
            );
            return Ok(());
        };
        n.last_announced = now;
        match n.state {
            NeighbourState::Refused => n.endpoint = endpoint,
            NeighbourState::Pending if n.endpoint != endpoint => {
                n.endpoint = endpoint;
                n.last_initiation = now;
                self.outputs.push_back(DiscoveryOutput::SetEndpoint {
                    key: n.key,
                    endpoint,
                });
            }
            NeighbourState::Pending => {
                if now.saturating_since(n.last_initiation) >= timers.retry {
                    n.last_initiation = now;
                    self.outputs
                        .push_back(DiscoveryOutput::Initiate { key: n.key });
                }
            }
            NeighbourState::Up if n.endpoint != endpoint => {
                let fresh = n
                    .last_authenticated
                    .is_some_and(|t| now.saturating_since(t) < timers.stale);
                if fresh {
                    self.counters.endpoint_ignored += 1;
                } else if now.saturating_since(n.last_initiation) >= timers.retry {
                    // Silent for a while: perhaps it moved. Ask there; the endpoint stays
                    // until an authenticated answer comes from the new address.
                    n.last_initiation = now;
                    self.counters.probes += 1;
                    self.outputs.push_back(DiscoveryOutput::Probe {
                        key: n.key,
                        to: endpoint,
                    });
                }
            }
            NeighbourState::Up => {}
        }
        Ok(())
    }

    /// The tunnel with `key` received an authenticated packet (a completed handshake or data)
    /// from `from`. The first one brings the neighbour up.
    pub fn authenticated(&mut self, now: Instant, key: &PublicKey, from: Option<SocketAddrV6>) {
        let Some(n) = self.neighbours.get_mut(key) else {
            return;
        };
        if n.state == NeighbourState::Refused {
            return;
        }
        n.last_authenticated = Some(now);
        if let Some(ep) = from {
            n.endpoint = ep;
        }
        if n.state == NeighbourState::Pending {
            n.state = NeighbourState::Up;
            self.counters.tunnels_up += 1;
            self.outputs
                .push_back(DiscoveryOutput::TunnelUp { key: *key });
        }
    }

    /// The driver could not create the tunnel interface of an up neighbour: back to pending,
    /// so that its next authenticated packet tries again.
    pub fn tunnel_failed(&mut self, key: &PublicKey) {
        if let Some(n) = self.neighbours.get_mut(key)
            && n.state == NeighbourState::Up
        {
            n.state = NeighbourState::Pending;
            self.counters.tunnels_up = self.counters.tunnels_up.saturating_sub(1);
        }
    }

    /// Applies a new accept policy: refused neighbours lose their tunnel at once; newly
    /// accepted ones get a peer and a handshake.
    pub fn set_policy(&mut self, now: Instant, policy: &AcceptPolicy) {
        for n in self.neighbours.values_mut() {
            let ok = policy.accepts(&n.key);
            match (n.state, ok) {
                (NeighbourState::Refused, true) => {
                    n.state = NeighbourState::Pending;
                    n.last_initiation = now;
                    n.last_authenticated = None;
                    self.outputs.push_back(DiscoveryOutput::AddPeer {
                        key: n.key,
                        endpoint: n.endpoint,
                    });
                }
                (NeighbourState::Pending | NeighbourState::Up, false) => {
                    if n.state == NeighbourState::Up {
                        self.counters.tunnels_down += 1;
                    }
                    n.state = NeighbourState::Refused;
                    self.outputs.push_back(DiscoveryOutput::Remove {
                        key: n.key,
                        reason: "refused by policy",
                    });
                }
                _ => {}
            }
        }
    }

    /// Expires neighbours: a tunnel silent for [`Timers::dead`], or an announced neighbour
    /// whose handshake never completed and that stopped announcing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let dead = self.timers.dead;
        let mut gone = Vec::new();
        for n in self.neighbours.values() {
            let since = |t: Instant| now.saturating_since(t) > dead;
            let expired = match n.state {
                NeighbourState::Up => n.last_authenticated.is_none_or(since),
                NeighbourState::Pending | NeighbourState::Refused => since(n.last_announced),
            };
            if expired {
                gone.push((n.key, n.state));
            }
        }
        for (key, state) in gone {
            self.neighbours.remove(&key);
            match state {
                NeighbourState::Up => {
                    self.counters.tunnels_down += 1;
                    self.outputs.push_back(DiscoveryOutput::Remove {
                        key,
                        reason: "tunnel silent",
                    });
                }
                NeighbourState::Pending => {
                    self.counters.never_authenticated += 1;
                    self.outputs.push_back(DiscoveryOutput::Remove {
                        key,
                        reason: "handshake never completed",
                    });
                }
                NeighbourState::Refused => {}
            }
        }
    }

    /// When [`Discovery::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dead = self.timers.dead;
        self.neighbours
            .values()
            .map(|n| match n.state {
                NeighbourState::Up => n.last_authenticated.unwrap_or(n.last_announced) + dead,
                _ => n.last_announced + dead,
            })
            .min()
    }
}

/// One mesh interface as its driver last saw it (`dump`, `dump json`, `babelctl show`), and the
/// policy the control socket set for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MeshView {
    /// The physical interface.
    pub interface: String,
    /// Our tunnel public key.
    pub public_key: String,
    /// Our tunnel UDP port on it.
    pub port: u16,
    /// The MTU of its tunnels.
    pub tunnel_mtu: u32,
    /// Neighbours.
    pub neighbours: Vec<MeshNeighbourView>,
    /// Discovery counters.
    pub counters: DiscoveryCounters,
    /// The tunnel device's counters: datagrams dropped before a neighbour could be named
    /// (unknown receiver index, failed handshake authentication, bad mac1, malformed).
    pub tunnel: tunnel::DeviceStats,
    /// The accept policy to apply; the driver compares `policy_generation` with its own.
    #[serde(skip)]
    pub policy: AcceptPolicy,
    /// Bumped on every runtime policy change.
    #[serde(skip)]
    pub policy_generation: u64,
}

/// One neighbour of a mesh interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MeshNeighbourView {
    /// Its tunnel public key.
    pub public_key: String,
    /// Its endpoint.
    pub endpoint: String,
    /// `pending`, `up` or `refused`.
    pub state: NeighbourState,
    /// Its tunnel interface, once up.
    pub tunnel: Option<String>,
    /// Seconds since the last completed handshake.
    pub last_handshake_s: Option<u64>,
    /// Completed handshakes.
    pub handshakes: u64,
    /// Plaintext bytes received through its tunnel.
    pub rx_bytes: u64,
    /// Plaintext bytes sent through its tunnel.
    pub tx_bytes: u64,
    /// Data packets received.
    pub rx_packets: u64,
    /// Data packets sent.
    pub tx_packets: u64,
    /// Transport packets dropped as replays (or too old for the replay window).
    pub replay_drops: u64,
    /// Transport packets that failed authentication.
    pub decrypt_drops: u64,
    /// Handshake messages that failed authentication or were replayed.
    pub handshake_drops: u64,
}

impl MeshNeighbourView {
    /// Its `dump`/`monitor` line: `add mesh-neighbour KEY if IF endpoint EP state S ...`; `drops`
    /// counts the transport and handshake packets under its key that were dropped (replayed or
    /// failing authentication).
    pub fn line(&self, change: &str, interface: &str) -> String {
        let age = self
            .last_handshake_s
            .map_or_else(|| "-".to_owned(), |s| s.to_string());
        format!(
            "{change} mesh-neighbour {} if {interface} endpoint {} state {} tunnel {} handshake-age {age} handshakes {} rx {} tx {} drops {}",
            self.public_key,
            self.endpoint,
            self.state.word(),
            self.tunnel.as_deref().unwrap_or("-"),
            self.handshakes,
            self.rx_bytes,
            self.tx_bytes,
            self.replay_drops + self.decrypt_drops + self.handshake_drops,
        )
    }
}

/// The `dump` lines of every mesh interface's neighbours.
pub fn dump_lines(views: &[std::sync::Arc<std::sync::Mutex<MeshView>>]) -> Vec<String> {
    let mut out = Vec::new();
    for v in views {
        if let Ok(v) = v.lock() {
            out.extend(v.neighbours.iter().map(|n| n.line("add", &v.interface)));
        }
    }
    out
}

/// Our IPv6 link-local address on every tunnel interface, from our tunnel public key: fe80::/64
/// with the key's first eight bytes as the interface identifier. The same on all our tunnels
/// (Babel tells neighbours apart by interface), different from every neighbour's, and computable
/// by a neighbour from the key alone (payments address a neighbour by it).
pub fn tunnel_link_local(key: &PublicKey) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o[0] = 0xfe;
    o[1] = 0x80;
    if let (Some(id), Some(k)) = (o.get_mut(8..), key.as_bytes().get(..8)) {
        id.copy_from_slice(k);
    }
    Ipv6Addr::from(o)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        PublicKey([b; 32])
    }

    fn ll(n: u16, port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, n), port, 0, 7)
    }

    fn ann(k: u8, port: u16) -> [u8; ANNOUNCEMENT_LEN] {
        Announcement {
            public_key: key(k),
            port,
            seqno: 9,
        }
        .encode()
    }

    fn drain(d: &mut Discovery) -> Vec<DiscoveryOutput> {
        std::iter::from_fn(|| d.poll_output()).collect()
    }

    #[test]
    fn tunnel_link_local_is_fe80_with_the_key_prefix() {
        let a = PublicKey([7; 32]);
        let mut b_key = [7; 32];
        b_key[7] = 8;
        let b = PublicKey(b_key);
        let la = tunnel_link_local(&a);
        assert!(babel_wire::is_link_local(&std::net::IpAddr::V6(la)));
        assert_eq!(la, "fe80::707:707:707:707".parse::<Ipv6Addr>().unwrap());
        assert_ne!(la, tunnel_link_local(&b));
    }
    #[test]
    fn layout_round_trips_and_matches_the_spec() {
        let a = Announcement {
            public_key: key(0xab),
            port: 0x1234,
            seqno: 0x0102_0304_0506,
        };
        let b = a.encode();
        assert_eq!(&b[..4], b"BRSm");
        assert_eq!(b[4], 1);
        assert_eq!(&b[5..8], &[0, 0, 0]);
        assert_eq!(&b[8..10], &[0x12, 0x34]);
        assert_eq!(&b[10..16], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&b[16..], &[0xab; 32]);
        assert_eq!(Announcement::decode(&b), Ok(a));
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        let good = ann(1, 5000);
        assert_eq!(
            Announcement::decode(&good[..47]),
            Err(DiscoveryError::Length(47))
        );
        assert_eq!(Announcement::decode(&[]), Err(DiscoveryError::Length(0)));
        let mut b = good;
        b[0] = b'X';
        assert_eq!(Announcement::decode(&b), Err(DiscoveryError::Magic));
        let mut b = good;
        b[4] = 2;
        assert_eq!(Announcement::decode(&b), Err(DiscoveryError::Version(2)));
        let mut b = good;
        b[5] = 1;
        assert_eq!(Announcement::decode(&b), Err(DiscoveryError::Reserved));
        let mut b = good;
        b[8..10].copy_from_slice(&[0, 0]);
        assert_eq!(Announcement::decode(&b), Err(DiscoveryError::Port));
        assert_eq!(
            Announcement::decode(&ann(0, 5000)),
            Err(DiscoveryError::ZeroKey)
        );
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(Announcement::decode(&long), Err(DiscoveryError::Length(49)));
    }

    #[test]
    fn a_neighbour_comes_up_only_after_the_handshake_and_goes_after_silence() {
        let t0 = clock::now();
        let mut d = Discovery::new(key(9), Timers::default(), 8);
        let open = AcceptPolicy::default();
        d.handle_announcement(t0, ll(1, 4000), &ann(1, 4000), &open)
            .unwrap();
        assert_eq!(
            drain(&mut d),
            vec![DiscoveryOutput::AddPeer {
                key: key(1),
                endpoint: ll(1, 4000)
            }]
        );
        assert_eq!(d.neighbour(&key(1)).unwrap().state, NeighbourState::Pending);
        // Announcements alone never bring a tunnel up, and retry the handshake at most every
        // `retry`.
        d.handle_announcement(
            t0 + Duration::from_secs(1),
            ll(1, 4000),
            &ann(1, 4000),
            &open,
        )
        .unwrap();
        assert!(drain(&mut d).is_empty());
        d.handle_announcement(
            t0 + Duration::from_secs(6),
            ll(1, 4000),
            &ann(1, 4000),
            &open,
        )
        .unwrap();
        assert_eq!(
            drain(&mut d),
            vec![DiscoveryOutput::Initiate { key: key(1) }]
        );
        let t1 = t0 + Duration::from_secs(7);
        d.authenticated(t1, &key(1), None);
        assert_eq!(
            drain(&mut d),
            vec![DiscoveryOutput::TunnelUp { key: key(1) }]
        );
        assert_eq!(d.counters().tunnels_up, 1);
        // Announcements (replayable) do not keep it alive; authenticated traffic does.
        for s in 8..36 {
            d.handle_announcement(
                t0 + Duration::from_secs(s),
                ll(1, 4000),
                &ann(1, 4000),
                &open,
            )
            .unwrap();
        }
        d.handle_timeout(t1 + Duration::from_secs(30));
        assert!(drain(&mut d).is_empty());
        d.handle_timeout(t1 + Duration::from_secs(31));
        assert_eq!(
            drain(&mut d),
            vec![DiscoveryOutput::Remove {
                key: key(1),
                reason: "tunnel silent"
            }]
        );
        assert!(d.neighbour(&key(1)).is_none());
        assert_eq!(d.counters().tunnels_down, 1);
    }

    #[test]
    fn forged_and_reflected_announcements_change_nothing_that_matters() {
        let t0 = clock::now();
        let mut d = Discovery::new(key(9), Timers::default(), 3);
        let open = AcceptPolicy::default();
        // Our own key.
        assert_eq!(
            d.handle_announcement(t0, ll(5, 1), &ann(9, 1), &open),
            Err(DiscoveryError::OwnKey)
        );
        // Not link-local.
        let global = SocketAddrV6::new("2001:db8::1".parse().unwrap(), 1, 0, 7);
        assert!(
            d.handle_announcement(t0, global, &ann(2, 1), &open)
                .is_err()
        );
        assert_eq!(d.counters().own_key, 1);
        assert_eq!(d.counters().bad_source, 1);
        assert!(drain(&mut d).is_empty());
        // A live tunnel's endpoint does not move on an announcement.
        d.handle_announcement(t0, ll(1, 4000), &ann(1, 4000), &open)
            .unwrap();
        d.authenticated(t0, &key(1), None);
        drain(&mut d);
        d.handle_announcement(
            t0 + Duration::from_secs(1),
            ll(66, 6666),
            &ann(1, 6666),
            &open,
        )
        .unwrap();
        assert!(drain(&mut d).is_empty());
        assert_eq!(d.neighbour(&key(1)).unwrap().endpoint, ll(1, 4000));
        assert_eq!(d.counters().endpoint_ignored, 1);
        // Keys that never complete a handshake: bounded, then forgotten.
        for k in 2..9 {
            d.handle_announcement(t0, ll(u16::from(k), 1), &ann(k, 1), &open)
                .unwrap();
        }
        assert_eq!(d.neighbours().count(), 3);
        assert_eq!(d.counters().table_full, 5);
        drain(&mut d);
        d.authenticated(t0 + Duration::from_secs(20), &key(1), None);
        d.handle_timeout(t0 + Duration::from_secs(31));
        assert_eq!(d.counters().never_authenticated, 2);
        assert_eq!(d.neighbours().count(), 1);
    }

    #[test]
    fn a_tunnel_that_could_not_be_created_is_retried() {
        let t0 = clock::now();
        let mut d = Discovery::new(key(9), Timers::default(), 8);
        d.handle_announcement(t0, ll(1, 1), &ann(1, 1), &AcceptPolicy::default())
            .unwrap();
        d.authenticated(t0, &key(1), None);
        assert_eq!(
            drain(&mut d).last(),
            Some(&DiscoveryOutput::TunnelUp { key: key(1) })
        );
        d.tunnel_failed(&key(1));
        assert_eq!(d.neighbour(&key(1)).unwrap().state, NeighbourState::Pending);
        d.authenticated(t0, &key(1), None);
        assert_eq!(
            drain(&mut d),
            vec![DiscoveryOutput::TunnelUp { key: key(1) }]
        );
        assert_eq!(d.counters().tunnels_up, 1);
    }

    #[test]
    fn a_stale_tunnel_follows_a_new_address() {
        let t0 = clock::now();
        let mut d = Discovery::new(key(9), Timers::default(), 8);
        let open = AcceptPolicy::default();
        d.handle_announcement(t0, ll(1, 4000), &ann(1, 4000), &open)
            .unwrap();
        d.authenticated(t0, &key(1), None);
        drain(&mut d);
        let t = t0 + Duration::from_secs(13);
        d.handle_announcement(t, ll(2, 4001), &ann(1, 4001), &open)
            .unwrap();
        // A handshake is tried at the new address, but the endpoint stays where the last
        // authenticated packet came from until the handshake there completes.
        assert_eq!(
            drain(&mut d),
            vec![DiscoveryOutput::Probe {
                key: key(1),
                to: ll(2, 4001)
            }]
        );
        assert_eq!(d.neighbour(&key(1)).unwrap().endpoint, ll(1, 4000));
        assert_eq!(d.counters().probes, 1);
        // Repeated announcements do not probe more often than the retry timer.
        d.handle_announcement(t, ll(2, 4001), &ann(1, 4001), &open)
            .unwrap();
        assert!(drain(&mut d).is_empty());
        // The handshake completed from there: the tunnel follows.
        d.authenticated(t, &key(1), Some(ll(2, 4001)));
        assert_eq!(d.neighbour(&key(1)).unwrap().endpoint, ll(2, 4001));
    }

    #[test]
    fn policies_refuse_and_readmit_at_runtime() {
        let t0 = clock::now();
        let mut d = Discovery::new(key(9), Timers::default(), 8);
        let mut p = AcceptPolicy {
            mode: AcceptMode::AllowList,
            ..Default::default()
        };
        p.allow.insert(key(1));
        d.handle_announcement(t0, ll(1, 1), &ann(1, 1), &p).unwrap();
        d.handle_announcement(t0, ll(2, 1), &ann(2, 1), &p).unwrap();
        assert_eq!(drain(&mut d).len(), 1);
        assert_eq!(d.neighbour(&key(2)).unwrap().state, NeighbourState::Refused);
        assert_eq!(d.counters().refused, 1);
        d.authenticated(t0, &key(2), None);
        assert!(drain(&mut d).is_empty(), "a refused key never comes up");
        d.authenticated(t0, &key(1), None);
        drain(&mut d);
        // Deny-list denying 1: its tunnel goes; 2 is now admitted.
        let mut p = AcceptPolicy {
            mode: AcceptMode::DenyList,
            ..Default::default()
        };
        p.deny.insert(key(1));
        d.set_policy(t0, &p);
        let out = drain(&mut d);
        assert!(out.contains(&DiscoveryOutput::Remove {
            key: key(1),
            reason: "refused by policy"
        }));
        assert!(out.contains(&DiscoveryOutput::AddPeer {
            key: key(2),
            endpoint: ll(2, 1)
        }));
        assert!(p.accepts(&key(3)) && !p.accepts(&key(1)));
        assert!(AcceptPolicy::default().accepts(&key(1)));
    }

    #[test]
    fn statements_parse_and_apply() {
        let k = key(3).to_base64();
        let mut s = MeshSettings::default();
        for (w, v) in [
            ("mesh-policy", "allow-list"),
            ("mesh-allow", k.as_str()),
            ("mesh-timeout", "10"),
        ] {
            s.apply(MeshStatement::parse(w, Some(v)).unwrap());
        }
        assert_eq!(s.policy.mode, AcceptMode::AllowList);
        assert!(s.policy.allow.contains(&key(3)));
        assert_eq!(s.timers().dead, Duration::from_secs(10));
        s.apply(MeshStatement::parse("mesh-deny", Some(&k)).unwrap());
        assert!(!s.policy.allow.contains(&key(3)) && s.policy.deny.contains(&key(3)));
        assert!(MeshStatement::parse("mesh-policy", Some("maybe")).is_err());
        assert!(MeshStatement::parse("mesh-allow", Some("zz")).is_err());
        assert!(MeshStatement::parse("mesh-timeout", Some("0")).is_err());
        assert!(MeshStatement::parse("mesh-allow", None).is_err());
        assert!(!MeshStatement::Timeout(1).runtime());
    }

    #[test]
    fn mtu_is_one_layer_less() {
        assert_eq!(tunnel_mtu(1500), 1420);
        assert_eq!(tunnel_mtu(tunnel_mtu(1500)), 1340);
        assert_eq!(tunnel_mtu(1300), MIN_MTU);
    }
}
