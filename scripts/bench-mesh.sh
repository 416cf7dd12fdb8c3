#!/usr/bin/env bash
# Benchmark: N babeld-rs routers (default 50) on one bridge with only `interface mn0 type mesh`,
# each a neighbour of every other (N-1 tunnels each). Prints the time until every tunnel is up,
# the time until every router has a route through a tunnel to every other router, the CPU
# each daemon used to get there, the CPU of all daemons in steady state, and resident memory.
# Needs root (network namespaces), nftables and /dev/net/tun. CI runs the same test
# (daemon/tests/mesh_netns.rs, many_neighbours_on_one_bridge) with 50 and the release daemon.
# The test raises the host's neighbour-table limits (about 3*N^2 entries are needed, and they
# exist only in the initial namespace) and restores them when it ends.
#   scripts/bench-mesh.sh [N]            release build
#   PROFILE=dev scripts/bench-mesh.sh N  debug build
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-50}"
profile="${PROFILE:-release}"
MESH_NEIGHBOURS="$n" cargo test --profile "$profile" -p daemon --test mesh_netns \
  many_neighbours_on_one_bridge -- --nocapture 2>&1 | grep -E -A3 '^MESH|test result|panicked'
