//! Default route limits from the memory a route costs and the machine's memory (issue 11
//! point 7), so that a flood of routes stops at the limits long before a small router runs out.
//!
//! A route stored costs about [`ROUTE_COST`] bytes in the daemon: 750 bytes in the engine after
//! re-advertising (`docs/benchmarks-core.md`, `cargo bench -p babel-core --bench absorb`), plus
//! the kernel thread's record of the installed route and allocator slack; issue 11 measured
//! 878 MB for 1,000,000 routes in the running daemon. Routes may take [`MEMORY_SHARE`] of the
//! machine's memory; one neighbour a quarter of that (babeld-rs's ratio before: 250,000 of
//! 1,000,000). `max-routes` and `max-routes-per-neighbour` override either.

use babel_core::Limits;

/// Bytes a stored route costs the daemon, rounded up from the measurements above.
pub const ROUTE_COST: u64 = 1024;
/// Share of the machine's memory routes may take: one quarter.
pub const MEMORY_SHARE: (u64, u64) = (1, 4);
/// Never fewer routes than this, however small the machine.
pub const MIN_ROUTES: usize = 1000;
/// Never more than this (the engine's own default).
pub const MAX_ROUTES: usize = 1_000_000;

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn mem_total() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = s
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The memory this process may use: `MemTotal`, or less if its control group (v1 or v2) is
/// limited.
pub fn available() -> Option<u64> {
    let total = mem_total();
    let cg = cgroup_limit();
    match (total, cg) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

fn cgroup_limit() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    s.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let file = match controllers {
                "" => format!("/sys/fs/cgroup{path}/memory.max"),
                c if c.split(',').any(|c| c == "memory") => {
                    format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
                }
                _ => return None,
            };
            // "max" (v2) or a huge number (v1) mean no limit.
            std::fs::read_to_string(file)
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .filter(|l| *l < 1 << 60)
        .min()
}

/// The route limits for a machine with `mem` bytes (engine defaults when unknown), with the
/// configured overrides.
pub fn limits(mem: Option<u64>, max_routes: Option<u32>, per_neighbour: Option<u32>) -> Limits {
    let mut l = Limits::default();
    if let Some(mem) = mem {
        let budget = mem / MEMORY_SHARE.1 * MEMORY_SHARE.0;
        let routes = usize::try_from(budget / ROUTE_COST).unwrap_or(usize::MAX);
        l.max_routes = routes.clamp(MIN_ROUTES, MAX_ROUTES);
        l.max_routes_per_neighbour = (l.max_routes / 4).max(MIN_ROUTES);
    }
    if let Some(n) = max_routes {
        l.max_routes = n as usize;
    }
    if let Some(n) = per_neighbour {
        l.max_routes_per_neighbour = n as usize;
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_memory() {
        // A 128 MiB router: 32 MiB for routes, 32,768 of them, 8,192 from one neighbour.
        let l = limits(Some(128 << 20), None, None);
        assert_eq!((l.max_routes, l.max_routes_per_neighbour), (32_768, 8_192));
        // This 24 GiB machine: the engine's maxima.
        let l = limits(Some(24 << 30), None, None);
        assert_eq!(
            (l.max_routes, l.max_routes_per_neighbour),
            (1_000_000, 250_000)
        );
        // Tiny or unknown.
        let l = limits(Some(1 << 20), None, None);
        assert_eq!((l.max_routes, l.max_routes_per_neighbour), (1000, 1000));
        assert_eq!(limits(None, None, None), Limits::default());
        // Configured.
        let l = limits(Some(128 << 20), Some(5000), Some(100));
        assert_eq!((l.max_routes, l.max_routes_per_neighbour), (5000, 100));
    }
}
