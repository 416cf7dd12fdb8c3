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

/// Bytes a stored route costs the daemon, from the measurements above and, for the whole
/// daemon under a flood, `route_flood_netns`'s run inside a 128 MiB control group: about 1.6 KiB
/// a route at the caps, 3 KiB with a dump of the table served (`docs/reliability.md`).
pub const ROUTE_COST: u64 = 3 * 1024;
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

/// The memory this process may use: `MemTotal`, or less if one of its control groups (v1 or
/// v2, or an ancestor of one) has a lower memory limit, as a router run under a service
/// manager or in a container does.
pub fn available() -> Option<u64> {
    let total = mem_total();
    let cg = cgroup_limit();
    match (total, cg) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// The lowest memory limit on this process's control groups.
pub fn cgroup_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    limit_files(&cgroups, &mounts)
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|v| parse_limit(&v))
        .min()
}

/// A limit file's value; `max` (v2) and v1's huge "unlimited" mean none.
fn parse_limit(v: &str) -> Option<u64> {
    v.trim().parse::<u64>().ok().filter(|l| *l < 1 << 60)
}

/// The memory limit files of the control groups in `cgroups` (`/proc/self/cgroup`) and all
/// their ancestors, in the hierarchies `mounts` (`/proc/self/mountinfo`) shows: v2's
/// `memory.max`, v1's `memory.limit_in_bytes` where the `memory` controller is mounted.
fn limit_files(cgroups: &str, mounts: &str) -> Vec<std::path::PathBuf> {
    // (mount point, root of the mount inside its hierarchy, v2?)
    let mut hierarchies: Vec<(&str, &str, bool)> = Vec::new();
    for line in mounts.lines() {
        let Some((fields, tail)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = fields.split_whitespace().collect();
        let t: Vec<&str> = tail.split_whitespace().collect();
        let (Some(root), Some(point), Some(fstype)) = (f.get(3), f.get(4), t.first()) else {
            continue;
        };
        match *fstype {
            "cgroup2" => hierarchies.push((point, root, true)),
            "cgroup"
                if t.get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == "memory")) =>
            {
                hierarchies.push((point, root, false))
            }
            _ => {}
        }
    }
    let mut files = Vec::new();
    for line in cgroups.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let v2 = controllers.is_empty();
        if !v2 && !controllers.split(',').any(|c| c == "memory") {
            continue;
        }
        let name = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        for (point, root, _) in hierarchies.iter().filter(|h| h.2 == v2) {
            // The group's path below the mount's root (a container sees its own root as "/").
            let rel = path
                .strip_prefix(root)
                .unwrap_or(path)
                .trim_start_matches('/');
            let mut dir = std::path::Path::new(point).join(rel);
            loop {
                files.push(dir.join(name));
                if dir.as_os_str() == *point || !dir.pop() {
                    break;
                }
            }
        }
    }
    files
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
        // A 128 MiB router: 32 MiB for routes, 10,922 of them, 2,730 from one neighbour.
        let l = limits(Some(128 << 20), None, None);
        assert_eq!((l.max_routes, l.max_routes_per_neighbour), (10_922, 2_730));
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

    #[test]
    fn limit_files_cover_v1_v2_and_ancestors() {
        let mounts = "\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let cgroups = "4:memory:/a/b\n1:cpu:/x\n0::/svc\n";
        let got: Vec<String> = limit_files(cgroups, mounts)
            .into_iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "/sys/fs/cgroup/memory/a/b/memory.limit_in_bytes",
                "/sys/fs/cgroup/memory/a/memory.limit_in_bytes",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "/sys/fs/cgroup/unified/svc/memory.max",
                "/sys/fs/cgroup/unified/memory.max",
            ]
        );
        // A container whose mount's root is its own group.
        let mounts = "30 20 0:26 /docker/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let got = limit_files("0::/docker/c1/app\n", mounts);
        assert_eq!(
            got,
            [
                std::path::PathBuf::from("/sys/fs/cgroup/app/memory.max"),
                std::path::PathBuf::from("/sys/fs/cgroup/memory.max"),
            ]
        );
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("134217728\n"), Some(128 << 20));
    }
}
