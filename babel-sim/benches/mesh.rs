//! Bench: wall time for the simulator to converge a random geometric mesh (default 1000 nodes).
//!
//! `cargo bench -p babel-sim --bench mesh [-- NODES [SEED [THREADS]]]`; `SIM_TOPOLOGY=mesh`
//! (default `random`) picks the topology kind (`KIND:NODES`), `SIM_ANNOUNCE_EVERY=K` makes
//! only every K-th node announce its prefix, `SIM_PROGRESS=1` prints progress, `SIM_SUMMARY=FILE`
//! writes the run's [`Sim::summary`] there as JSON (the same for any number of threads).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use babel_sim::{Sim, SimConfig, Topology};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let nodes = args.first().copied().unwrap_or(1000) as usize;
    let seed = args.get(1).copied().unwrap_or(1);
    let threads = args.get(2).copied().unwrap_or(1) as usize;
    let kind = std::env::var("SIM_TOPOLOGY").unwrap_or_else(|_| "random".into());
    let announce_every = std::env::var("SIM_ANNOUNCE_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let t0 = std::time::Instant::now();
    let topo = Topology::parse(&format!("{kind}:{nodes}"), seed).unwrap();
    let build = t0.elapsed();
    let mut degree = vec![0usize; nodes];
    for l in &topo.links {
        degree[l.a] += 1;
        degree[l.b] += 1;
    }
    let t1 = std::time::Instant::now();
    let mut sim = Sim::new(
        &topo,
        SimConfig {
            seed,
            threads,
            announce_every,
            ..SimConfig::default()
        },
    );
    sim.set_progress(std::env::var_os("SIM_PROGRESS").is_some());
    let conv = sim.run_until_converged(Duration::from_secs(900));
    let wall = t1.elapsed();
    let st = sim.stats();
    println!(
        "topology            {} seed {seed}: {} links, mean degree {:.1}, max degree {}",
        topo.name,
        topo.links.len(),
        2.0 * topo.links.len() as f64 / nodes as f64,
        degree.iter().max().unwrap()
    );
    println!("topology build      {build:?}");
    println!(
        "converged           {:?} (virtual), at virtual time {:?}",
        conv,
        sim.now().saturating_since(babel_core::Instant::ZERO)
    );
    println!("wall time           {wall:?} ({threads} threads)");
    println!(
        "announcing nodes    {}",
        nodes.div_ceil(announce_every.max(1) as usize)
    );
    if threads > 1 {
        let tt = sim.thread_times();
        println!(
            "threads             {} windows, {} shared; calling thread busy {:?} ({:?} alone, {} \
             jobs shared), loop check {:?}, waiting {:?}, serial {:?}; workers busy {:?} ({} jobs); CPU calling \
             thread {:?}, workers {:?}",
            tt.windows,
            tt.shared_windows,
            tt.main_busy,
            tt.alone_busy,
            tt.main_jobs,
            tt.loop_check,
            tt.main_wait,
            tt.serial,
            tt.worker_busy,
            tt.worker_jobs,
            tt.main_cpu,
            tt.worker_cpu
        );
    }
    println!("loops               {}", st.loops);
    println!(
        "packets / bytes     {} / {} ({} messages)",
        st.packets_sent, st.bytes_sent, st.messages_sent
    );
    println!("route changes       {}", st.route_changes);
    println!("steps               {}", st.steps);
    let r = sim.routes_per_node();
    println!(
        "routes per node     min {} max {} mean {}",
        r.min, r.max, r.mean
    );
    if conv.is_none() {
        println!("NOT converged: {:?}", sim.check_best());
    }
    if let Some(path) = std::env::var_os("SIM_SUMMARY") {
        let json = serde_json::to_string_pretty(&sim.summary(seed, conv)).unwrap();
        std::fs::write(path, json + "\n").unwrap();
    }
}
