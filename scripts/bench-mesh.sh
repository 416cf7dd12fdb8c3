#!/usr/bin/env bash
# Benchmark: N babeld-rs routers (default 50) on one bridge with only `interface mn0 type mesh`,
# each a neighbour of every other (N-1 tunnels each). Prints the time until every tunnel is up,
# the time until every router has a route through a tunnel to every other router, the CPU
# each daemon used to get there, the CPU of all daemons in steady state, and resident memory.
# Needs root (network namespaces), nftables and /dev/net/tun. CI runs the same test with 6.
#   scripts/bench-mesh.sh [N]            release build
#   PROFILE=dev scripts/bench-mesh.sh N  debug build (what `cargo test` uses)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-50}"
profile="${PROFILE:-release}"
MESH_NEIGHBOURS="$n" cargo test --profile "$profile" -p daemon --test mesh_netns \
  many_neighbours_on_one_bridge -- --nocapture 2>&1 | grep -E '^MESH|test result|panicked'
