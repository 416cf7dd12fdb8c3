//! babeld's `in` and `out` filters (babeld.man, "Filtering rules") as a hook: the engine asks,
//! the embedder decides. The engine knows nothing of filter grammar; the daemon implements
//! [`RouteFilter`] from its configuration, firmware can implement it from anything else.

use std::fmt::Debug;
use std::net::IpAddr;

use babel_wire::{Prefix, RouterId};

/// A route as a filter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterRoute<'a> {
    /// Destination.
    pub prefix: Prefix,
    /// Source prefix (RFC 9079), if source-specific.
    pub src_prefix: Option<Prefix>,
    /// The originating router.
    pub router_id: RouterId,
    /// The neighbour it was learned from (`in` only).
    pub neighbour: Option<IpAddr>,
    /// The interface it arrives on (`in`) or is sent on (`out`).
    pub ifindex: u32,
    /// That interface's name.
    pub ifname: &'a str,
}

/// Decides the metric added to routes as they are received and sent. [`babel_wire::INFINITY`]
/// refuses: an update refused by `input` is ignored as if never received, a route refused by
/// `output` is not sent on that interface at all, not even as a retraction, as in babeld.
pub trait RouteFilter: Debug + Send + Sync {
    /// babeld `in`: metric added to a route received from a neighbour.
    fn input(&self, route: &FilterRoute<'_>) -> u16 {
        let _ = route;
        0
    }
    /// babeld `out`: metric added to a route announced on an interface.
    fn output(&self, route: &FilterRoute<'_>) -> u16 {
        let _ = route;
        0
    }
}

/// Adds a filter's metric, saturating at [`babel_wire::INFINITY`] (which is `u16::MAX`).
pub(crate) fn add_metric(metric: u16, add: u16) -> u16 {
    metric.saturating_add(add)
}
