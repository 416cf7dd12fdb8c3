//! Graceful restart: after a crash, the routes the previous run left in the kernel guide the
//! first selections ([`EngineConfig::resume_routes`]).
//!
//! A router that restarts has lost its source table, so RFC 8966 §3.5.1's feasibility condition
//! no longer protects it: a neighbour without split horizon (babeld's default on interfaces not
//! declared wired) sends back our own routes, through us, and the first of them to arrive
//! would be selected, a loop until the neighbour's real route is heard. babeld avoids this by a
//! wildcard retraction at start, which makes every neighbour drop the routes through us and
//! costs traffic; a resumed engine sends none ([`Engine::interface_up`]) and instead, for
//! [`RESUME_QUIET`], selects for a destination the previous run routed only the route through
//! the same next hop (the kernel still forwards that way), unless that route was retracted.
//! Once that route is selected, or the window ends, selection is the ordinary one.

use super::*;

/// The previous run's routes and how long they guide selection.
#[derive(Debug)]
pub(super) struct Resume {
    pub(super) until: Instant,
    /// Destination → (interface, next hop) of the previous run's route.
    routes: BTreeMap<RouteKey, (u32, IpAddr)>,
}

impl Resume {
    /// `None` without routes to resume.
    pub(super) fn new(now: Instant, routes: Vec<crate::config::ResumeRoute>) -> Option<Resume> {
        if routes.is_empty() {
            return None;
        }
        let routes = routes
            .into_iter()
            .map(|r| {
                let key = RouteKey {
                    prefix: r.prefix,
                    src_prefix: r.src_prefix,
                };
                (key, (r.ifindex, r.next_hop))
            })
            .collect();
        Some(Resume {
            until: now + RESUME_QUIET,
            routes,
        })
    }
}

impl Resume {
    /// True if `r` may not be selected for `key` yet: the previous run routed `key` through
    /// another next hop, whose route has not been retracted. The caller checks that the window
    /// is open; `next_hop` and `via` give a route's next-hop address and its neighbour's
    /// interface.
    pub(super) fn blocks(
        &self,
        key: &RouteKey,
        dest: &Dest,
        r: &Route,
        next_hop: impl Fn(crate::packed::Interned) -> IpAddr,
        via: impl Fn(u64) -> Option<(u32, IpAddr)>,
    ) -> bool {
        let Some(&(ifindex, prev)) = self.routes.get(key) else {
            return false;
        };
        let same = |x: &Route| {
            next_hop(x.next_hop) == prev && via(x.neigh()).is_some_and(|(i, _)| i == ifindex)
        };
        if same(r) {
            return false;
        }
        // The previous next hop withdrew it: nothing to wait for.
        !dest
            .routes()
            .iter()
            .any(|x| same(x) && x.refmetric == INFINITY)
    }
}

impl Engine {
    /// After a selection: once the previous run's route is back, `key` is an ordinary
    /// destination again.
    pub(super) fn resume_selected(&mut self, key: &RouteKey, installed: Option<&InstalledRoute>) {
        let Some(resume) = self.resume.as_mut() else {
            return;
        };
        if let (Some(&(ifindex, next_hop)), Some(i)) = (resume.routes.get(key), installed)
            && i.ifindex == ifindex
            && i.next_hop == next_hop
        {
            resume.routes.remove(key);
        }
    }

    /// At the end of the window, the destinations still guided are selected afresh. Returns
    /// when to look again while the window is open.
    pub(super) fn end_resume(&mut self, now: Instant) -> Option<Instant> {
        let until = self.resume.as_ref()?.until;
        if now < until {
            return Some(until);
        }
        let keys: Vec<RouteKey> = self
            .resume
            .take()
            .map(|r| r.routes.into_keys().collect())
            .unwrap_or_default();
        for k in keys {
            self.reselect(now, k);
        }
        None
    }
}
