//! Views for babeld's `dump`: interfaces, neighbours, xroutes, routes and counters.

use super::*;

impl Engine {
    /// Our router-id.
    pub fn router_id(&self) -> RouterId {
        self.cfg.router_id
    }

    /// Our current seqno (RFC 8966 §3.2.2).
    pub fn seqno(&self) -> u16 {
        self.seqno
    }

    /// Our fee.
    pub fn fee(&self) -> u32 {
        self.cfg.fee
    }

    /// The selection policy.
    pub fn policy(&self) -> Policy {
        self.cfg.policy
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Number of learned route entries (all neighbours).
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// Number of destinations with an installed route.
    pub fn installed_count(&self) -> usize {
        self.routes.installed_len()
    }

    /// The installed route of a destination.
    pub fn installed(&self, key: &RouteKey) -> Option<InstalledRoute> {
        self.routes.get(key).and_then(|d| self.installed_of(d))
    }

    /// Iterates installed routes, in key order. Keys and routes are given by value: the table
    /// keeps neither in this form (issue 18).
    pub fn installed_routes(&self) -> impl Iterator<Item = (RouteKey, InstalledRoute)> + '_ {
        self.routes
            .iter()
            .filter_map(|(k, d)| self.installed_of(d).map(|i| (k, i)))
    }

    /// Interfaces.
    pub fn interfaces(&self) -> Vec<InterfaceView> {
        self.interfaces
            .iter()
            .map(|(&ifindex, i)| InterfaceView {
                ifindex,
                name: i.cfg.name.clone(),
                kind: i.cfg.kind,
                up: i.up,
                address: i.cfg.address,
                hello_seqno: Seqno(i.hello_seqno),
                hello_interval: i.cfg.hello_interval,
                update_interval: i.cfg.update_interval,
            })
            .collect()
    }

    /// Neighbours.
    pub fn neighbours(&self, now: Instant) -> Vec<NeighbourView> {
        self.neighbours
            .values()
            .map(|n| {
                let rttcost = self
                    .interfaces
                    .get(&n.ifindex)
                    .map_or(0, |i| n.rttcost(now, &i.cfg));
                NeighbourView {
                    ifindex: n.ifindex,
                    address: n.address,
                    reach: n.hello.reach,
                    ureach: n.uhello.reach,
                    rxcost: Metric(n.rxcost),
                    txcost: Metric(n.effective_txcost(now)),
                    rtt: n.valid_rtt(now),
                    rttcost: Metric(rttcost),
                    cost: Metric(n.cost),
                    accuracy: n.accuracy,
                    blocked: self.cfg.evicts(n.accuracy),
                }
            })
            .collect()
    }

    /// Local routes we announce.
    pub fn xroutes(&self) -> Vec<XrouteView> {
        self.xroutes
            .iter()
            .map(|(k, x)| XrouteView {
                prefix: k.prefix,
                src_prefix: k.src_prefix,
                metric: Metric(x.metric),
            })
            .collect()
    }

    /// Learned routes.
    pub fn routes(&self, now: Instant) -> Vec<RouteView> {
        let mut out = Vec::with_capacity(self.routes.len());
        for (k, d) in self.routes.iter() {
            let selected = d.selected();
            out.extend(
                d.routes()
                    .iter()
                    .map(|r| self.route_view(now, &k, selected == Some(r.neigh()), r)),
            );
        }
        out
    }

    /// The route to `key` learned from `via` on `ifindex`, as [`Engine::routes`] shows it: one
    /// lookup (O(log n)). ([`Event::Route`] already carries its route.)
    pub fn route(
        &self,
        now: Instant,
        key: &RouteKey,
        ifindex: u32,
        via: IpAddr,
    ) -> Option<RouteView> {
        let d = self.routes.get(key)?;
        let r = d.route(*self.neigh_index.get(&(ifindex, via))?)?;
        Some(self.route_view(now, key, d.selected() == Some(r.neigh()), r))
    }

    /// What [`Engine::routes`] shows of `r`, `installed` when it is the destination's selected
    /// route (a held route, selected but lost, shows as installed, as in babeld).
    pub(super) fn route_view(
        &self,
        now: Instant,
        k: &RouteKey,
        installed: bool,
        r: &Route,
    ) -> RouteView {
        // A route's neighbour is known while the route is in the table (and while a flushed
        // route's event is made); the unspecified address is never shown.
        let (ifindex, via) = self
            .route_via(r.neigh())
            .unwrap_or((0, IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)));
        RouteView {
            prefix: k.prefix,
            src_prefix: k.src_prefix,
            installed,
            feasible: self.sources.is_feasible(
                now,
                k,
                r.router_id,
                Seqno(r.seqno),
                Metric(r.refmetric),
            ),
            router_id: r.router_id,
            metric: Metric(self.route_metric(r)),
            smoothed_metric: Metric(r.smoothed),
            refmetric: Metric(r.refmetric),
            verified_metric: r
                .verified()
                .filter(|(_, t)| now < *t)
                .map(|(m, _)| Metric(m)),
            price: r.price,
            received_price: shown_price(r.price, self.cfg.fee, self.cfg.accumulation),
            fee: self.cfg.fee,
            seqno: Seqno(r.seqno),
            age: now.saturating_since(r.time.get()),
            via,
            next_hop: self.routes.next_hop(r.next_hop),
            ifindex,
            full_path_rtt: r.path_rtt,
        }
    }
}

/// The kind of link cost computation an interface of this kind uses, for dumps.
pub fn link_cost_algorithm(kind: InterfaceKind) -> &'static str {
    match kind {
        InterfaceKind::Wired | InterfaceKind::Tunnel => "2-out-of-3",
        InterfaceKind::Wireless => "etx",
    }
}
