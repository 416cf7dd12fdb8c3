#!/usr/bin/env bash
# iperf3 TCP throughput through a TUN-based WireGuard tunnel between two
# network namespaces joined by a veth pair: our `tunneld` on both ends vs
# Debian's `wireguard-go` on both ends, in the same run, interleaved
# (ours, [baseline,] wireguard-go, ours, ...) so that background load on a
# shared machine hits every implementation alike.
#
# Usage (root): scripts/bench-tunnel.sh [seconds]   (default 10)
# Needs: iproute2, iperf3, wireguard-go, wireguard-tools, python3.
# Env: ROUNDS=N         rounds of the interleaved comparison (default 3)
#      TUNNELD=path     release tunneld (built if unset)
#      TUNNELD_BASE=path an older tunneld build to measure alongside
#      CARGO_TARGET_DIR (default: the workspace's target/)
# Per run it prints throughput, TCP retransmits, the CPU time both tunnel
# processes used (user+system, from /proc) per gigabit carried, and data
# packets per second (throughput / MSS, one tunnel packet per TCP segment
# on the wire). Only the namespaces created here carry traffic; everything
# is removed on exit (trap), also on failure.
set -euo pipefail

DUR=${1:-10}
ROUNDS=${ROUNDS:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$HERE/target}
if [[ -z "${TUNNELD:-}" ]]; then
  (cd "$HERE" && CARGO_TARGET_DIR="$TARGET" cargo build --release -p tunnel --bin tunneld >&2)
  TUNNELD="$TARGET/release/tunneld"
fi
[[ $(id -u) == 0 ]] || { echo "bench-tunnel.sh: needs root" >&2; exit 1; }
for t in ip iperf3 wireguard-go wg python3; do
  command -v "$t" >/dev/null || { echo "bench-tunnel.sh: $t missing" >&2; exit 1; }
done
ID=$$
NA=ipfA$ID NB=ipfB$ID
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$NA" 2>/dev/null || true
  ip netns del "$NB" 2>/dev/null || true
  rm -f /var/run/wireguard/wga$ID.sock /var/run/wireguard/wgb$ID.sock
  rm -rf "$TMP"
}
trap cleanup EXIT

wait_for() { # timeout_s cmd...
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < end )) || return 1
    sleep 0.1
  done
}

ip netns add "$NA"; ip netns add "$NB"
ip link add va$ID netns "$NA" type veth peer name vb$ID netns "$NB"
for x in "$NA va$ID 192.168.238.1" "$NB vb$ID 192.168.238.2"; do
  set -- $x
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0
  ip -n "$1" link set lo up
  ip -n "$1" addr add "$3/24" dev "$2"
  ip -n "$1" link set "$2" up
done
wait_for 5 ip netns exec "$NA" ping -c1 -W1 192.168.238.2

SKA=$("$TUNNELD" genkey); PKA=$(echo "$SKA" | "$TUNNELD" pubkey)
SKB=$("$TUNNELD" genkey); PKB=$(echo "$SKB" | "$TUNNELD" pubkey)
echo "$SKA" >"$TMP/ka"; echo "$SKB" >"$TMP/kb"

cputime() { # pid... -> "user system" clock ticks, summed
  local u=0 s=0 f
  for p in "$@"; do
    f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
    u=$((u + ${f% *})); s=$((s + ${f#* }))
  done
  echo "$u $s"
}

measure() { # label pid_a pid_b
  local label=$1 pa=$2 pb=$3
  wait_for 10 ip netns exec "$NA" ping -c1 -W1 10.238.0.2 || { echo "$label: tunnel down" >&2; return 1; }
  ip netns exec "$NB" iperf3 -s -1 -B 10.238.0.2 >/dev/null 2>&1 &
  local srv=$!
  PIDS+=("$srv")
  wait_for 5 ip netns exec "$NB" sh -c "ss -ltn | grep -q 10.238.0.2:5201"
  local c0 c1; read -r -a c0 < <(cputime "$pa" "$pb")
  ip netns exec "$NA" iperf3 -c 10.238.0.2 -t "$DUR" -J >"$TMP/$label.json"
  read -r -a c1 < <(cputime "$pa" "$pb")
  wait "$srv" 2>/dev/null || true
  python3 - "$TMP/$label.json" "$label" "$((c1[0] - c0[0]))" "$((c1[1] - c0[1]))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
e = d["end"]
bps = e["sum_received"]["bits_per_second"]
secs = e["sum_received"]["seconds"]
r = e["sum_sent"].get("retransmits", "?")
mss = d["start"].get("tcp_mss_default") or 1368
hz = int(sys.argv[5])
user, system = int(sys.argv[3]) / hz, int(sys.argv[4]) / hz
cpu = user + system
gbits = bps * secs / 1e9
per_gbit = cpu / gbits if gbits else float("nan")
pps = bps / 8 / mss
print(f"{sys.argv[2]:<16} {bps/1e6:8.0f} Mbit/s  {pps/1e3:6.1f} kpps  "
      f"CPU {cpu:5.2f} s (user {user:4.2f}) = {100*cpu/secs:4.0f}% = {per_gbit:5.2f} CPU-s/Gbit  (retransmits {r})")
PY
}

cfg() { # sk peer_pk peer_ip port peer_port allowed
  printf '{"private_key":"%s","listen_port":%s,"peers":[{"public_key":"%s","endpoint":"%s:%s","allowed_ips":["%s"]}]}' \
    "$1" "$4" "$2" "$3" "$5" "$6"
}
cfg "$SKA" "$PKB" 192.168.238.2 51820 51821 10.238.0.2/32 >"$TMP/a.json"
cfg "$SKB" "$PKA" 192.168.238.1 51821 51820 10.238.0.1/32 >"$TMP/b.json"

run_tunneld() { # label binary
  local label=$1 bin=$2
  RUST_LOG=tunnel=info ip netns exec "$NA" "$bin" run --config "$TMP/a.json" --iface tna$ID --address 10.238.0.1/24 >/dev/null 2>"$TMP/$label-a.log" &
  local pa=$!; PIDS+=("$pa")
  RUST_LOG=tunnel=info ip netns exec "$NB" "$bin" run --config "$TMP/b.json" --iface tnb$ID --address 10.238.0.2/24 >/dev/null 2>"$TMP/$label-b.log" &
  local pb=$!; PIDS+=("$pb")
  wait_for 10 ip -n "$NA" link show tna$ID
  wait_for 10 ip -n "$NB" link show tnb$ID
  measure "$label" "$pa" "$pb" || true
  kill "$pa" "$pb"; wait "$pa" "$pb" 2>/dev/null || true
  wait_for 10 sh -c "! ip -n $NA link show tna$ID && ! ip -n $NB link show tnb$ID" || true
}

run_wireguard_go() {
  export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
  ip netns exec "$NA" wireguard-go -f wga$ID >/dev/null 2>&1 &
  local pa=$!; PIDS+=("$pa")
  ip netns exec "$NB" wireguard-go -f wgb$ID >/dev/null 2>&1 &
  local pb=$!; PIDS+=("$pb")
  wait_for 10 test -S /var/run/wireguard/wga$ID.sock
  wait_for 10 test -S /var/run/wireguard/wgb$ID.sock
  ip netns exec "$NA" wg set wga$ID listen-port 51820 private-key "$TMP/ka" peer "$PKB" endpoint 192.168.238.2:51821 allowed-ips 10.238.0.2/32
  ip netns exec "$NB" wg set wgb$ID listen-port 51821 private-key "$TMP/kb" peer "$PKA" endpoint 192.168.238.1:51820 allowed-ips 10.238.0.1/32
  ip -n "$NA" addr add 10.238.0.1/24 dev wga$ID; ip -n "$NA" link set wga$ID mtu 1420 up
  ip -n "$NB" addr add 10.238.0.2/24 dev wgb$ID; ip -n "$NB" link set wgb$ID mtu 1420 up
  measure wireguard-go "$pa" "$pb" || true
  kill "$pa" "$pb"; wait "$pa" "$pb" 2>/dev/null || true
  wait_for 10 sh -c "! test -S /var/run/wireguard/wga$ID.sock && ! test -S /var/run/wireguard/wgb$ID.sock" || true
}

echo "# $(date -u +%FT%TZ) $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), ${DUR}s per run, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
  echo "## round $r (load $(cut -d' ' -f1 /proc/loadavg))"
  run_tunneld ours "$TUNNELD"
  [[ -n "${TUNNELD_BASE:-}" ]] && run_tunneld baseline "$TUNNELD_BASE"
  run_wireguard_go
done
grep -h "tunnel I/O batching" "$TMP"/ours-a.log | sed 's/\x1b\[[0-9;]*m//g; s/^.*INFO/# ours:/' | head -1 || true
