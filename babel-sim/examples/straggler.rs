//! Follows a route that is not yet the best one, hop by hop towards its origin, at chosen
//! instants of a simulated run: each router on the way, its distance to the origin over the
//! mesh, and every route it holds to the origin's prefix (`*` selected, `!` unfeasible) with its
//! metric, smoothed metric (RFC 8966 A.3), seqno, neighbour and age. The mesh bench with
//! `SIM_PROGRESS=1` names a wrong route every 10 s of virtual time: the routes worth following.
//!
//! `cargo run --release -p babel-sim --example straggler -- TOPOLOGY SEED NODE ORIGIN MS[,MS...]`,
//! for example `-- random:300 1 0 1 5000,40000` (node 0's route to node 1's prefix at 5 s and
//! at 40 s of virtual time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::IpAddr;
use std::time::Duration;

use babel_core::Instant;
use babel_sim::{Sim, SimConfig, Topology, node_address, node_prefix};

/// The node whose link-local address is `via` (the inverse of [`node_address`]).
fn node_of(via: IpAddr, nodes: usize) -> Option<usize> {
    (0..nodes).find(|&n| node_address(n, 0) == with_ifindex(via, 0))
}

fn with_ifindex(a: IpAddr, ifindex: u16) -> IpAddr {
    match a {
        IpAddr::V6(v6) => {
            let mut s = v6.segments();
            s[7] = ifindex;
            IpAddr::V6(s.into())
        }
        v4 => v4,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 5 {
        eprintln!("usage: straggler TOPOLOGY SEED NODE ORIGIN MS[,MS...]");
        std::process::exit(2);
    }
    let seed: u64 = args[1].parse().expect("SEED");
    let topo = Topology::parse(&args[0], seed).expect("TOPOLOGY");
    let start: usize = args[2].parse().expect("NODE");
    let origin: usize = args[3].parse().expect("ORIGIN");
    let prefix = node_prefix(origin);
    let mut sim = Sim::new(
        &topo,
        SimConfig {
            seed,
            ..SimConfig::default()
        },
    );
    for ms in args[4].split(',') {
        let ms: u64 = ms.parse().expect("MS");
        sim.run_until(Instant::ZERO + Duration::from_millis(ms));
        let now = sim.now();
        let dist = sim.distances_from(origin);
        println!("t = {ms} ms, {prefix}");
        let mut n = start;
        // A selected route's chain is loop-free once converged, but not always before: stop
        // after as many hops as there are nodes.
        for _ in 0..topo.nodes {
            let Some(e) = sim.engine(n) else { break };
            let mut routes: Vec<_> = e
                .routes(now)
                .into_iter()
                .filter(|r| r.prefix == prefix)
                .collect();
            routes.sort_by_key(|r| r.metric.0);
            print!("  node {n} (distance {}):", dist[n]);
            let mut next = None;
            for r in &routes {
                let via = node_of(r.via, topo.nodes);
                if r.installed {
                    next = via;
                }
                print!(
                    " [{}{}m={} sm={} seq={} via={} age={:.1}]",
                    if r.installed { "*" } else { "" },
                    if r.feasible { "" } else { "!" },
                    r.metric.0,
                    r.smoothed_metric.0,
                    r.seqno.0,
                    via.map_or("?".into(), |v| v.to_string()),
                    r.age.as_secs_f64()
                );
            }
            println!();
            match next {
                Some(v) => n = v,
                None => break,
            }
        }
    }
}
