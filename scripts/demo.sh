#!/usr/bin/env bash
# The main job: a demo mesh in network namespaces. Four babeld-rs routers with different fees in
# a ring (r1 - r2 - r3 - r4 - r1) and Debian's babeld (bd) hanging off r3. Each announces
# 10.66.0.N/32 and fd66::N/128. It waits for convergence, prints each router's table with
# prices (babelctl show), pings across the mesh, and removes everything it made.
# Needs root (namespaces); installs babeld from Debian if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# As a user, run again through sudo (keeping the Rust toolchain on the PATH); a fresh Debian's
# root shell has no sudo and needs none.
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "demo: needs root for network namespaces"; exit 1; }
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME "$0" "$@"
fi
if ! command -v babeld >/dev/null || ! command -v ping >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends babeld iputils-ping >/dev/null
fi
echo "== building babeld-rs and babelctl (release)"
cargo build --release -q -p daemon -p babelctl
BIN=$PWD/target/release
tag="demo$$"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in r1 r2 r3 r4 bd; do ip netns del "$tag$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

declare -A num=([r1]=1 [r2]=2 [r3]=3 [r4]=4 [bd]=5) fee=([r1]=0 [r2]=5 [r3]=7 [r4]=10)
for n in r1 r2 r3 r4 bd; do
  ns=$tag$n
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1
  ip -n "$ns" addr add "10.66.0.${num[$n]}/32" dev lo
  ip -n "$ns" addr add "fd66::${num[$n]}/128" dev lo
done
link() { # a b: veth named a-b in a, b-a in b
  ip link add "$1-$2" netns "$tag$1" type veth peer name "$2-$1" netns "$tag$2"
  ip -n "$tag$1" link set "$1-$2" up
  ip -n "$tag$2" link set "$2-$1" up
}
link r1 r2; link r2 r3; link r3 r4; link r4 r1; link r3 bd
ifaces() { ip -n "$tag$1" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^lo$' | tr '\n' ' '; }

filters="redistribute local ip 10.66.0.0/16 allow
redistribute local ip fd66::/16 allow
redistribute local deny"
for n in r1 r2 r3 r4; do
  printf '%s\nfee %s\n' "$filters" "${fee[$n]}" > "$work/$n.conf"
  # shellcheck disable=SC2046
  ip netns exec "$tag$n" "$BIN/babeld-rs" -I "" -S "$work/$n.state" -L "$work/$n.log" -h 1 -H 1 \
    -G 33123 -c "$work/$n.conf" $(ifaces "$n") &
  pids+=($!)
done
printf '%s\n' "$filters" > "$work/bd.conf"
ip netns exec "${tag}bd" babeld -I "$work/bd.pid" -S "$work/bd.state" -L "$work/bd.log" -h 1 -H 1 \
  -G 33123 -c "$work/bd.conf" $(ifaces bd) &
pids+=($!)

echo "== waiting for every router to have a route to every other (IPv4 and IPv6)"
start=$(date +%s)
converged() {
  for n in r1 r2 r3 r4 bd; do
    for m in 1 2 3 4 5; do
      [ "$m" = "${num[$n]}" ] && continue
      ip -n "$tag$n" route show proto 42 | grep -q "^10.66.0.$m " || return 1
      ip -n "$tag$n" -6 route show proto 42 | grep -q "^fd66::$m " || return 1
    done
  done
}
until converged; do
  if [ $(( $(date +%s) - start )) -gt 120 ]; then echo "demo: no convergence in 120 s"; exit 1; fi
  sleep 0.5
done
echo "converged in $(( $(date +%s) - start )) s"

for n in r1 r2 r3 r4; do
  echo; echo "== $n (fee ${fee[$n]}): babelctl show routes"
  ip netns exec "$tag$n" "$BIN/babelctl" show -s 33123 routes
done
echo; echo "== bd (Debian babeld 1.12): babelctl show routes"
ip netns exec "${tag}bd" "$BIN/babelctl" show -s 33123 routes

echo; echo "== ping across the mesh"
for pair in "r1 5" "bd 1" "r2 4" "r4 2"; do
  set -- $pair
  ip netns exec "$tag$1" ping -c 1 -W 2 "10.66.0.$2" | grep -E "bytes from" | sed "s/^/$1: /"
  ip netns exec "$tag$1" ping -6 -c 1 -W 2 "fd66::$2" | grep -E "bytes from" | sed "s/^/$1: /"
done
echo; echo "== done; tearing down"
