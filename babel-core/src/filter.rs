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
    /// The neighbour it was learned from (`in`), or its next hop (`install`).
    pub neighbour: Option<IpAddr>,
    /// The interface it arrives on (`in`) or is sent on (`out`).
    pub ifindex: u32,
    /// That interface's name.
    pub ifname: &'a str,
}

/// A filter's answer for a route received (`in`) or sent (`out`) (babeld's filter actions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterAnswer {
    /// `deny`: an update refused by `in` is ignored as if never received; a route refused by
    /// `out` is not sent on that interface at all, not even as a retraction, as in babeld.
    Deny,
    /// `allow`, adding this to the route's metric (`metric N`; the sum saturates at
    /// [`babel_wire::INFINITY`]).
    AddMetric(u16),
}

impl FilterAnswer {
    /// Passes unchanged.
    pub const ALLOW: FilterAnswer = FilterAnswer::AddMetric(0);
}

/// Decides what happens to routes as they are received, sent and installed.
pub trait RouteFilter: Debug + Send + Sync {
    /// babeld `in`: a route received from a neighbour.
    fn input(&self, route: &FilterRoute<'_>) -> FilterAnswer {
        let _ = route;
        FilterAnswer::ALLOW
    }
    /// babeld `out`: a route announced on an interface.
    fn output(&self, route: &FilterRoute<'_>) -> FilterAnswer {
        let _ = route;
        FilterAnswer::ALLOW
    }
    /// babeld `install`: whether a selected route may be added to the kernel (`route` is the
    /// selected route; `neighbour` is its next hop). A refused route is not installed: `dump` shows
    /// it `installed no`, nothing goes to the kernel and nothing is advertised for it. As in babeld
    /// (`change_route`), only an addition can be refused: switching an installed destination to
    /// another next hop, or removing it, is never refused.
    fn install(&self, route: &FilterRoute<'_>) -> bool {
        let _ = route;
        true
    }
}
