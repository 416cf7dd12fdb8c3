//! # babel-sim
//!
//! A deterministic network simulator for [`babel_core::Engine`]: N engines on one virtual clock,
//! exchanging real encoded packets over point-to-point links with seeded loss and delay.
//!
//! * Topologies ([`Topology`]): `line:N`, `ring:N`, `grid:WxH`, `full:N`, `random:N[:RADIUS]`
//!   (random geometric, mean degree about ln N), `mesh:N[:DEGREE]` (random geometric with a
//!   mean degree that does not grow with N, 6 by default) and `file:PATH` (format in
//!   [`topology`]).
//! * [`SimConfig::threads`] ≥ 2 runs the nodes of each lookahead window (the shortest link
//!   delay) on several threads; the run is the same whatever the number of threads.
//! * Events ([`SimEvent`]): link down/up, link cost change, node crash, restart with or without
//!   its persisted seqno, fee and metric-factor changes, prefix announce/withdraw.
//! * After every step, from every node whose next hop for a destination changed, the next hops
//!   are followed (over links that are up: a next hop across a dead link is a black hole, not a
//!   loop) and any cycle is counted ([`Stats::loops`]); [`Sim::check_best`] compares every
//!   installed route with the shortest path (Dijkstra over link costs).
//! * Convergence time: from the last event (or the start) to the last kernel route change, once
//!   [`Sim::check_best`] holds (checked every virtual second).
//! * Same seed ⇒ same run, byte for byte: all state is in ordered maps, all randomness comes from
//!   seeded generators, and time is virtual.
//!
//! [`run_scenario`] is what `babelctl simulate` calls.

pub mod adversary;
pub mod run_store;
pub mod sim;
pub mod topology;

use std::time::Duration;

pub use adversary::{AdversaryConfig, AdversaryRun, LiarOutcome, Role, Traffic, run_adversarial};
pub use run_store::{KeptRuns, RunStore, RunStoreError, SweepProgress};
pub use sim::{
    Lie, LinkState, RoutesPerNode, Sim, SimConfig, SimEvent, Stats, Summary, ThreadTimes,
    node_address, node_prefix, node_router_id,
};
pub use topology::{LinkSpec, Topology, TopologyError};

pub use babel_core::{InterfaceKind, Policy};

use babel_core::Instant;

/// A scenario: topology, parameters, timed events and how long to wait for convergence.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Topology spec (see [`Topology::parse`]).
    pub topology: String,
    /// Simulation parameters (seed included).
    pub config: SimConfig,
    /// Events at virtual times.
    pub events: Vec<(Duration, SimEvent)>,
    /// Longest time to wait for convergence after the last event (or the start).
    pub max_time: Duration,
}

/// Errors running a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Bad topology.
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

/// Runs a scenario: the events in order, then until every node has the best routes (or
/// `max_time` passes), and returns the summary.
pub fn run_scenario(s: &Scenario) -> Result<Summary, ScenarioError> {
    let topo = Topology::parse(&s.topology, s.config.seed)?;
    let mut sim = Sim::new(&topo, s.config.clone());
    let mut events = s.events.clone();
    events.sort_by_key(|(t, _)| *t);
    for (t, ev) in &events {
        sim.schedule(Instant::ZERO + *t, ev.clone());
    }
    if let Some((last, _)) = events.last() {
        sim.run_until(Instant::ZERO + *last);
    }
    let conv = sim.run_until_converged(s.max_time);
    Ok(sim.summary(s.config.seed, conv))
}
