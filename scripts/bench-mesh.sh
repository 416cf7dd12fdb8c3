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
# All namespaces share the host's neighbour table: N routers need about 3*N^2 entries (N-1
# neighbours on the bridge and N-1 tunnel next hops each, both families). Below that the kernel
# logs "neighbor table overflow", packets are dropped and tunnels flap.
limit=$(cat /proc/sys/net/ipv6/neigh/default/gc_thresh3)
if [ "$limit" -lt $((3 * n * n)) ]; then
  echo "warning: net.ipv6.neigh.default.gc_thresh3 is $limit, below 3*N^2 = $((3 * n * n)); expect losses" >&2
fi
profile="${PROFILE:-release}"
MESH_NEIGHBOURS="$n" cargo test --profile "$profile" -p daemon --test mesh_netns \
  many_neighbours_on_one_bridge -- --nocapture 2>&1 | grep -E -A3 '^MESH|test result|panicked'
