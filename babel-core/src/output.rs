//! What the engine asks its driver to do, and what it tells observers.

use std::net::IpAddr;
use std::time::Duration;

use babel_wire::{Metric, Prefix, RouterId, Seqno};
use bytes::Bytes;

use crate::config::InterfaceKind;

/// Where a packet goes on its interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Destination {
    /// To ff02::1:6 port 6696 (RFC 8966 §4).
    Multicast,
    /// To one neighbour's address.
    Unicast(IpAddr),
}

/// One UDP payload to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Outgoing interface.
    pub ifindex: u32,
    /// Destination.
    pub dst: Destination,
    /// The encoded Babel packet.
    pub bytes: Bytes,
    /// Number of TLV messages in it (before Router-Id / Next Hop compression TLVs).
    pub messages: usize,
}

/// Kernel operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum RouteOp {
    /// Install a route that was not installed.
    Add,
    /// Replace the installed route (new next hop or interface); use NLM_F_REPLACE.
    Replace,
    /// Remove the installed route (or the `unreachable` route of a held destination).
    Delete,
    /// Hold the destination, as babeld does: its selected route became unreachable (retracted,
    /// expired, or its neighbour lost) and no other route is selectable, so the kernel's route
    /// is replaced by an `unreachable` one (babeld: metric 4294967295), which keeps traffic from
    /// leaking to a less specific route. It stays until a route is selected again (`Add`) or
    /// the held route leaves the table (`Delete`, whose `next_hop`, `ifindex`, `router_id` and
    /// `via` are then unspecified: `::`, 0, all zeros).
    Unreachable,
}

/// A change to apply to the kernel's forwarding table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RouteChange {
    /// What to do.
    pub op: RouteOp,
    /// Destination.
    pub prefix: Prefix,
    /// Source prefix (RFC 9079), if source-specific.
    pub src_prefix: Option<Prefix>,
    /// Next hop (for `Delete`: the one being removed).
    pub next_hop: IpAddr,
    /// Outgoing interface.
    pub ifindex: u32,
    /// Babel metric of the route.
    pub metric: Metric,
    /// The route's originator.
    pub router_id: RouterId,
    /// The neighbour it was learned from.
    pub via: IpAddr,
}

/// Kind of change, as in babeld's monitor lines (`add`, `change`, `flush`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum ChangeKind {
    /// New object.
    Add,
    /// Changed object.
    Change,
    /// Removed object.
    Flush,
}

/// An event for observers (babeld's `monitor` stream). A route event carries the route as it
/// is at that change, so a consumer prints it without looking anything up; interface,
/// neighbour and xroute details are in the views.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "kebab-case"))]
pub enum Event {
    /// An interface went up, down, or was reconfigured.
    Interface {
        /// Kind of change.
        kind: ChangeKind,
        /// The interface.
        ifindex: u32,
    },
    /// A neighbour appeared, changed its cost or reachability, or was flushed.
    Neighbour {
        /// Kind of change.
        kind: ChangeKind,
        /// Its interface.
        ifindex: u32,
        /// Its address.
        address: IpAddr,
    },
    /// A route entry appeared, changed (metric, seqno, price, selection), or was flushed.
    ///
    /// The route is shown as [`crate::Engine::routes`] would show it right after the change,
    /// as babeld notifies its monitors: a new route is `installed: false` until selection
    /// installs it (a `Change` follows), and a route that leaves the table is shown out of the
    /// kernel (`installed: false`) with its last fields.
    Route {
        /// Kind of change.
        kind: ChangeKind,
        /// The route (its `via` is the neighbour it was learned from).
        route: RouteView,
    },
    /// A local (exported) route was announced or withdrawn.
    Xroute {
        /// Kind of change.
        kind: ChangeKind,
        /// Destination.
        prefix: Prefix,
        /// Source prefix.
        src_prefix: Option<Prefix>,
    },
    /// Our seqno changed: persist it (babeld's state file) so a restart does not reuse it.
    SeqnoChanged {
        /// The new seqno.
        seqno: Seqno,
    },
}

/// Counters of what was received, sent and refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Counters {
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Packets that could not be decoded at all (bad header).
    pub packets_malformed: u64,
    /// Packets from a non link-local source, to an unknown or down interface, or from ourselves.
    pub packets_refused: u64,
    /// TLVs the decoder ignored (RFC 8966 §4.3-§4.5).
    pub tlv_errors: u64,
    /// Messages that decode but violate the RFC (zero intervals, zero hop count, finite
    /// wildcard updates, reserved router-ids...), dropped.
    pub rfc_violations: u64,
    /// Updates for martian prefixes (RFC 8966 Appendix C / babeld `martian_prefix`), dropped.
    pub martians: u64,
    /// Updates refused by the `in` filter ([`crate::RouteFilter::input`]).
    pub filtered_in: u64,
    /// Updates not sent on an interface because of the `out` filter.
    pub filtered_out: u64,
    /// Kernel additions the `install` filter refused (each time selection tried one).
    pub filtered_install: u64,
    /// New routes dropped because a route limit was reached.
    pub routes_over_limit: u64,
    /// Neighbours not created because the per-interface limit was reached.
    pub neighbours_over_limit: u64,
    /// Seqno requests dropped because the pending table was full.
    pub requests_over_limit: u64,
    /// Route switches the hysteresis delays that were not given a deadline because
    /// [`crate::engine`]'s table of them was full: each waits for its destination's next Update.
    pub switch_timers_over_limit: u64,
    pub updates_received: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub updates_sent: u64,
    pub hellos_sent: u64,
    pub ihus_sent: u64,
    pub route_requests_sent: u64,
    pub route_requests_received: u64,
    pub seqno_requests_sent: u64,
    pub seqno_requests_received: u64,
    pub seqno_requests_forwarded: u64,
    pub acks_sent: u64,
    /// RFC 8967 §4.3: packets without a MAC TLV on an interface with keys.
    pub auth_no_mac: u64,
    /// Packets whose MACs match none of the interface's keys.
    pub auth_bad_mac: u64,
    /// Packets without a valid MAC processed anyway (`accept-bad-signatures`).
    pub auth_accepted_unsigned: u64,
    /// Packets with a valid MAC but no PC TLV, dropped.
    pub auth_no_pc: u64,
    /// Packets with a valid MAC whose Index is not the sender's known one, dropped (a Challenge
    /// Request follows, rate limited).
    pub auth_unknown_index: u64,
    /// Packets with a valid MAC and known Index whose PC is not larger than the last one
    /// accepted for the same kind (multicast or unicast, RFC 9467): replays, dropped.
    pub auth_replayed: u64,
    /// Challenge Requests sent.
    pub auth_challenges_sent: u64,
    /// Challenge Requests answered with a Challenge Reply.
    pub auth_challenges_answered: u64,
    /// Challenge Replies that matched our nonce in time (the sender's Index and PC accepted).
    pub auth_challenges_accepted: u64,
    /// Challenge Replies with a wrong or expired nonce.
    pub auth_challenge_replies_rejected: u64,
    /// Challenge Requests received on multicast, ignored (RFC 8967 §4.3).
    pub auth_challenge_requests_ignored: u64,
}

impl Counters {
    /// Every counter with its field name, in declaration order (for the control socket's
    /// `dump counters`).
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        macro_rules! named {
            ($($f:ident),* $(,)?) => { vec![$((stringify!($f), self.$f)),*] };
        }
        named!(
            packets_received,
            bytes_received,
            packets_malformed,
            packets_refused,
            tlv_errors,
            rfc_violations,
            martians,
            filtered_in,
            filtered_out,
            filtered_install,
            routes_over_limit,
            neighbours_over_limit,
            requests_over_limit,
            switch_timers_over_limit,
            updates_received,
            packets_sent,
            bytes_sent,
            updates_sent,
            hellos_sent,
            ihus_sent,
            route_requests_sent,
            route_requests_received,
            seqno_requests_sent,
            seqno_requests_received,
            seqno_requests_forwarded,
            acks_sent,
            auth_no_mac,
            auth_bad_mac,
            auth_accepted_unsigned,
            auth_no_pc,
            auth_unknown_index,
            auth_replayed,
            auth_challenges_sent,
            auth_challenges_answered,
            auth_challenges_accepted,
            auth_challenge_replies_rejected,
            auth_challenge_requests_ignored,
        )
    }
}

/// An interface, for babeld's `dump` (`add interface ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceView {
    /// Index.
    pub ifindex: u32,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: InterfaceKind,
    /// Up?
    pub up: bool,
    /// Our link-local address.
    pub address: IpAddr,
    /// Current multicast Hello seqno.
    pub hello_seqno: Seqno,
    /// Hello interval.
    pub hello_interval: Duration,
    /// Update interval.
    pub update_interval: Duration,
}

/// A neighbour (`add neighbour ... reach ureach rxcost txcost rtt rttcost cost`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NeighbourView {
    /// Interface.
    pub ifindex: u32,
    /// Link-local address.
    pub address: IpAddr,
    /// Multicast Hello history (most recent in the top bit).
    pub reach: u16,
    /// Unicast Hello history.
    pub ureach: u16,
    /// Our receive cost, as sent in IHUs.
    pub rxcost: Metric,
    /// Its receive cost from its IHUs (infinity once expired).
    pub txcost: Metric,
    /// Smoothed RTT (RFC 9616), if measured recently.
    pub rtt: Option<Duration>,
    /// RTT penalty added to the cost.
    pub rttcost: Metric,
    /// Link cost (RFC 8966 §3.4.3).
    pub cost: Metric,
    /// Accuracy score (per mille) set through [`crate::Engine::set_neighbour_accuracy`].
    pub accuracy: u16,
    /// True when the accuracy is under the threshold: its routes are not selected.
    pub blocked: bool,
}

/// A local route we announce (`add xroute ... prefix from metric`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct XrouteView {
    /// Destination.
    pub prefix: Prefix,
    /// Source prefix.
    pub src_prefix: Option<Prefix>,
    /// Metric announced.
    pub metric: Metric,
}

/// A learned route (`add route ... installed id metric price fee refmetric full-path-rtt ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RouteView {
    /// Destination.
    pub prefix: Prefix,
    /// Source prefix.
    pub src_prefix: Option<Prefix>,
    /// Selected and in the kernel.
    pub installed: bool,
    /// Feasible (RFC 8966 §3.5.1).
    pub feasible: bool,
    /// Originator.
    pub router_id: RouterId,
    /// Metric: refmetric + link cost (what we would advertise).
    pub metric: Metric,
    /// Smoothed metric (RFC 8966 A.3).
    pub smoothed_metric: Metric,
    /// Metric advertised by the neighbour.
    pub refmetric: Metric,
    /// Verified metric override in force, if any.
    pub verified_metric: Option<Metric>,
    /// Total price: received price + our fee (what we advertise).
    pub price: u32,
    /// Price as received (Althea's dump prints this as `price`).
    pub received_price: u32,
    /// Our current fee.
    pub fee: u32,
    /// Seqno.
    pub seqno: Seqno,
    /// Time since the last update for this route.
    pub age: Duration,
    /// The neighbour it was learned from.
    pub via: IpAddr,
    /// Next hop (the neighbour, unless a Next Hop TLV said otherwise).
    pub next_hop: IpAddr,
    /// Interface.
    pub ifindex: u32,
    /// Althea full-path RTT in microseconds (received + link RTT; 0 if unknown).
    pub full_path_rtt: u32,
}
