//! Engine and interface configuration, with babeld 1.12's defaults.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use babel_wire::{Flavour, RouterId};
use price_metric::{Accumulation, Policy};

use crate::auth::MacAuth;

/// Kind of an interface (babeld's `type`): decides link-cost algorithm, split horizon, IHU
/// cadence and timestamps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum InterfaceKind {
    /// Wired: 2-out-of-3 with rxcost 96 (RFC 8966 A.2.1), split horizon, IHU every 3rd Hello.
    #[default]
    Wired,
    /// Wireless: babeld's ETX with nominal cost 256 (A.2.2), no split horizon, IHU with every Hello
    /// to lossy neighbours.
    Wireless,
    /// Tunnel (babeld `type tunnel`): 2-out-of-3 with rxcost 96 like wired, but no split horizon
    /// (babeld applies it to wired links only), RFC 9616 timestamps and an RTT penalty of up to 96.
    Tunnel,
}

/// Per-interface configuration (babeld's interface options).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct InterfaceConfig {
    /// Interface name, for views and logs.
    pub name: String,
    /// Kind.
    pub kind: InterfaceKind,
    /// Our link-local address on this interface (IHUs addressed to it apply to us).
    pub address: IpAddr,
    /// Multicast Hello interval (babeld `hello-interval`, 4 s).
    pub hello_interval: Duration,
    /// Periodic update interval (babeld `update-interval`, 4 × Hello = 16 s).
    pub update_interval: Duration,
    /// Nominal receive cost (babeld `rxcost`: 96 wired/tunnel, 256 wireless).
    pub rxcost: u16,
    /// Split horizon (RFC 8966 §3.7.4): on for wired, off for wireless and tunnel (babeld).
    pub split_horizon: bool,
    /// babeld `link-quality`: ETX (A.2.2) instead of 2-out-of-3 (A.2.1).
    pub link_quality: bool,
    /// RFC 9616 timestamps on Hellos and IHUs (babeld `enable-timestamps`).
    pub timestamps: bool,
    /// Largest RTT penalty added to the link cost (babeld `max-rtt-penalty`).
    pub max_rtt_penalty: u16,
    /// RTT under which no penalty applies (babeld `rtt-min`, 10 ms).
    pub rtt_min: Duration,
    /// RTT above which the full penalty applies (babeld `rtt-max`, 120 ms).
    pub rtt_max: Duration,
    /// Weight of a new RTT sample in the moving average, in 1/256 (babeld `rtt-decay`, 42;
    /// 1-256). RFC 9616 §3.1 suggests keeping 0.836 of the old value: (256 - 42) / 256.
    pub rtt_decay: u16,
    /// Send scheduled unicast Hellos to every neighbour at this interval, each neighbour with its
    /// own seqno (RFC 8966 §3.4.1).
    pub unicast_hello_interval: Option<Duration>,
    /// babeld `unicast`: every TLV that would go to the multicast group (Updates, IHUs, requests,
    /// wildcard retractions) goes instead as a copy to each neighbour on the interface; the
    /// multicast Hello still goes out, and each neighbour also gets unicast Hellos (at
    /// [`InterfaceConfig::unicast_hello_interval`], or the Hello interval) carrying its IHU.
    pub unicast: bool,
    /// Configured neighbours (our extension, for links that carry no multicast): each exists from
    /// the start, gets unicast Hellos, and is kept while nothing is heard from it. Link-local.
    pub neighbours: Vec<IpAddr>,
    /// Update layout on this link.
    pub flavour: Flavour,
    /// Our IPv4 address on the link, if it has one: IPv4 routes are then announced with AE 1
    /// and this next hop, as babeld does; without one they use AE 4 (RFC 9229, IPv4 via IPv6).
    pub ipv4: Option<std::net::Ipv4Addr>,
    /// RFC 9229: announce IPv4 routes with an IPv6 next hop (AE 4) on this link when it has no
    /// IPv4 address (babeld `v4-via-v6`, default on when the kernel can forward and originate
    /// ICMPv4 without an IPv4 address). Off, IPv4 routes are not announced on such a link at all.
    pub v4_via_v6: bool,
    /// Link MTU; packets are at most `mtu - 48` octets.
    pub mtu: usize,
    /// Put at most one sub-TLV per TLV (babeld < 1.12.2 peers).
    pub one_sub_tlv: bool,
    /// RFC 8967 MAC authentication (babeld `key` and `accept-bad-signatures`); `None` or no
    /// keys: packets are neither signed nor checked.
    pub auth: Option<MacAuth>,
}

impl InterfaceConfig {
    /// babeld's defaults for an interface of this kind.
    pub fn new(name: impl Into<String>, kind: InterfaceKind, address: IpAddr) -> InterfaceConfig {
        let wireless = kind == InterfaceKind::Wireless;
        let tunnel = kind == InterfaceKind::Tunnel;
        InterfaceConfig {
            name: name.into(),
            kind,
            address,
            hello_interval: Duration::from_secs(4),
            update_interval: Duration::from_secs(16),
            rxcost: if wireless { 256 } else { 96 },
            split_horizon: kind == InterfaceKind::Wired,
            link_quality: wireless,
            timestamps: tunnel,
            max_rtt_penalty: if tunnel { 96 } else { 0 },
            rtt_min: Duration::from_millis(10),
            rtt_max: Duration::from_millis(120),
            rtt_decay: 42,
            unicast_hello_interval: None,
            unicast: false,
            neighbours: Vec::new(),
            flavour: Flavour::Standard,
            ipv4: None,
            v4_via_v6: true,
            mtu: 1500,
            one_sub_tlv: false,
            auth: None,
        }
    }

    /// The interval of scheduled unicast Hellos (U flag, per-neighbour seqno; RFC 8966 §3.4.1) to
    /// a neighbour: the configured one, else the Hello interval for learned neighbours on
    /// `unicast` interfaces, else none. Configured neighbours get a unicast copy of the
    /// interface's Hello instead (see `spec/unicast.md`).
    pub fn unicast_hello_interval_for(&self, configured: bool) -> Option<Duration> {
        self.unicast_hello_interval
            .or((self.unicast && !configured).then_some(self.hello_interval))
    }

    /// Sets the Hello interval and the update interval to 4 × it (babeld's `-h`).
    pub fn with_hello_interval(mut self, hello: Duration) -> InterfaceConfig {
        self.hello_interval = hello;
        self.update_interval = hello * 4;
        self
    }
}

/// Bounds on what neighbours can make us store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Limits {
    /// Routes accepted from one neighbour; the excess is dropped and counted.
    pub max_routes_per_neighbour: usize,
    /// Routes accepted in total.
    pub max_routes: usize,
    /// Neighbours accepted per interface.
    pub max_neighbours_per_interface: usize,
    /// Entries in the pending seqno-request table.
    pub max_pending_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_routes_per_neighbour: 250_000,
            max_routes: 1_000_000,
            max_neighbours_per_interface: 1024,
            max_pending_requests: 16_384,
        }
    }
}

/// Engine configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EngineConfig {
    /// Our router-id (RFC 8966 §3.2.1); must be valid (not all 0 or all 1).
    pub router_id: RouterId,
    /// Initial own seqno, e.g. read from the state file; `None` draws it from the RNG, as babeld
    /// does without a state file.
    pub seqno: Option<u16>,
    /// Seed of the RNG used for jitter and the initial seqno.
    pub seed: u64,
    /// Our fee, added to every received price (Althea's `fee`).
    pub fee: u32,
    /// Route selection policy (with Althea's metric factor).
    pub policy: Policy,
    /// Price overflow rule (saturating by default; Althea's C code wraps).
    pub accumulation: Accumulation,
    /// Metric smoothing half-life (babeld `smoothing-half-life`, 4 s); zero disables smoothing.
    pub smoothing_half_life: Duration,
    /// Source-table garbage collection (babeld `SOURCE_GC_TIME`, 200 s).
    pub source_gc_time: Duration,
    /// Neighbour accuracy (per mille) below which all its routes become unselectable.
    pub accuracy_threshold: u16,
    /// A destination that only neighbours under [`EngineConfig::accuracy_threshold`] offer
    /// keeps a route through one of them, as a last resort: evicting a liar that is the only way
    /// to some routers does not cut them off (`spec/verify.md` §4.3; on by default). Off: their
    /// routes are never selected (and a configuration recorded before the option existed reads
    /// as off, as it ran).
    #[cfg_attr(feature = "serde", serde(default))]
    pub accuracy_last_resort: bool,
    /// What a route on the last resort ([`EngineConfig::accuracy_last_resort`]) adds to the
    /// metric we advertise for it (never reaching infinity), so that a router that reaches the
    /// destination through us, and has a way that avoids the evicted neighbour, takes that way
    /// (`spec/verify.md` §4.3). 0: advertised as any route.
    #[cfg_attr(feature = "serde", serde(default))]
    pub accuracy_last_resort_penalty: u16,
    /// Drop packets whose source is not IPv6 link-local (babeld does).
    pub require_link_local: bool,
    /// Emit [`crate::Event`]s (turn off in large simulations).
    pub events: bool,
    /// Storage bounds.
    pub limits: Limits,
    /// UDP port of the protocol (babeld `protocol-port`): both ports of the RFC 8967
    /// pseudo-header, as babeld computes it.
    pub protocol_port: u16,
    /// Multicast group (babeld `protocol-group`): the destination address in the pseudo-header
    /// of multicast packets.
    pub protocol_group: Ipv6Addr,
    /// Entropy for the RFC 8967 Indexes and nonces. Drivers that configure keys must fill it from
    /// the OS (a repeated Index after a restart would let old packets be replayed); when zero the
    /// Index is derived from [`EngineConfig::seed`] alone, which is only fit for tests.
    pub auth_entropy: [u8; 32],
    /// Graceful restart: the last multicast Hello seqno each interface sent before this process
    /// started, by interface name (the daemon keeps them across a crash). An interface found here
    /// continues from it, so neighbours see no reboot and keep their Hello history (RFC 8966
    /// A.1); see [`crate::Engine::interface_up`] for what else a resumed interface does.
    #[cfg_attr(feature = "serde", serde(default))]
    pub resume_hellos: std::collections::BTreeMap<String, u16>,
    /// Graceful restart: the routes the previous run left in the kernel (where its selection
    /// sent each destination). For [`crate::RESUME_QUIET`] after start a destination found here
    /// selects only the route through that same next hop, while it is not retracted (a
    /// neighbour's route through us, echoed back, would otherwise make a loop: our feasibility
    /// distances died with the previous run, RFC 8966 §3.5.1); see `engine/resume.rs`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub resume_routes: Vec<ResumeRoute>,
}

/// A route the previous run installed ([`EngineConfig::resume_routes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ResumeRoute {
    /// Destination.
    pub prefix: babel_wire::Prefix,
    /// Source prefix (RFC 9079).
    pub src_prefix: Option<babel_wire::Prefix>,
    /// Interface of the next hop.
    pub ifindex: u32,
    /// Next hop.
    pub next_hop: IpAddr,
}

impl EngineConfig {
    /// Defaults for a router with this id.
    pub fn new(router_id: RouterId) -> EngineConfig {
        EngineConfig {
            router_id,
            seqno: None,
            seed: 0,
            fee: 0,
            policy: Policy::Babeld,
            accumulation: Accumulation::Saturating,
            smoothing_half_life: Duration::from_secs(4),
            source_gc_time: Duration::from_secs(200),
            accuracy_threshold: 500,
            accuracy_last_resort: true,
            accuracy_last_resort_penalty: 0,
            require_link_local: true,
            events: true,
            limits: Limits::default(),
            protocol_port: babel_wire::PORT,
            protocol_group: babel_wire::MULTICAST_V6,
            auth_entropy: [0; 32],
            resume_hellos: std::collections::BTreeMap::new(),
            resume_routes: Vec::new(),
        }
    }

    /// Whether a neighbour of this `accuracy` (per mille) is evicted: under
    /// [`EngineConfig::accuracy_threshold`], its routes are not selected (but as the last
    /// resort).
    pub fn evicts(&self, accuracy: u16) -> bool {
        accuracy < self.accuracy_threshold
    }

    /// What a selected route through a neighbour of this `accuracy` adds to the metric we
    /// advertise: [`EngineConfig::accuracy_last_resort_penalty`] when the route can only be
    /// selected as the last resort, else 0.
    pub fn last_resort_penalty(&self, accuracy: u16) -> u16 {
        if self.accuracy_last_resort && self.evicts(accuracy) {
            self.accuracy_last_resort_penalty
        } else {
            0
        }
    }
}
