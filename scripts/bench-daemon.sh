#!/usr/bin/env bash
# Daemon benchmarks, babeld-rs and Debian's babeld side by side in the same run, in network
# namespaces, with the machine's default sysctls (net.core.rmem_max untouched).
#
#   full-table  N routes (default 100000) announced by one node and learned by a neighbour: time
#               until all are in the receiver's kernel, the receiver's CPU seconds and peak RSS.
#               The sender is babeld-rs in every run; only the receiver changes (babeld-rs,
#               Debian's babeld, and BIRD 2 when installed). Memory: peak RSS (VmHWM) while
#               learning and re-advertising, steady RSS (VmRSS) and private anonymous memory
#               (RssAnon) 10 s after the last route is in. RECEIVERS="rs bd bird" picks the
#               receivers. HEAPTRACK=1 runs the babeld-rs
#               receiver under heaptrack and keeps the profile in /tmp.
#   line        cold start of a 10-node line until every node has a route to every other, then
#               reconvergence after the middle link is cut (routes across the cut withdrawn).
#   size        the stripped, size-optimised babeld-rs binary next to Debian's babeld.
#
# Usage: sudo scripts/bench-daemon.sh [full-table [N]] [line] [size]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench: needs root"; exit 1; }
command -v babeld >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq babeld >/dev/null; }
# BIN=path/to/babeld-rs measures a binary built elsewhere (e.g. main, for a before/after).
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p daemon
  BIN=$PWD/target/release/babeld-rs
fi
tag="bench$$"
work=$(mktemp -d)
pids=()
nss=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in "${nss[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

mkns() {
  local ns=$tag$1
  ip netns add "$ns"; nss+=("$ns")
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1
}
link() {
  ip link add "$1$2" netns "$tag$1" type veth peer name "$2$1" netns "$tag$2"
  ip -n "$tag$1" link set "$1$2" up; ip -n "$tag$2" link set "$2$1" up
}
# start KIND NODE CONF IFACES...: runs babeld-rs (rs) or babeld (bd); echoes its pid. Called as
# $(start ...), it runs in a subshell: the caller must add the pid to `pids` itself.
start() {
  local kind=$1 n=$2 conf=$3; shift 3
  local prog=$BIN; [ "$kind" = bd ] && prog=babeld
  local wrap=()
  if [ "$kind" = rsh ]; then wrap=(heaptrack -o "/tmp/babeld-rs-heap.$$"); fi
  if [ "$kind" = bird ]; then
    printf 'router id 10.0.0.2;\nprotocol device {}\nprotocol kernel { ipv6 { export all; }; }\nprotocol babel { interface "*" { type wired; }; ipv6 { import all; export none; }; }\n' > "$work/bird.conf"
    ip netns exec "$tag$n" bird -f -c "$work/bird.conf" -s "$work/$n.bird.ctl" >/dev/null 2>&1 &
    pids+=($!)
    echo $!
    return
  fi
  ip netns exec "$tag$n" "${wrap[@]}" "$prog" -I "$work/$n.pid" -S "$work/$n.state" -L "$work/$n.log" -h 1 -H 1 \
    -c "$conf" "$@" >/dev/null 2>&1 &
  pids+=($!)
  echo $!
}
count6() { ip -n "$tag$1" -6 route show proto "${2:-42}" 2>/dev/null | grep -vc '^unreachable' || true; }
cpu_s() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; }
rss_mb() { awk -v k="${2:-VmHWM}:" '$1 == k {printf "%.1f", $2/1024}' "/proc/$1/status"; }
# The pid of the routing daemon itself under `ip netns exec` (and heaptrack's wrapper).
daemon_pid() {
  local p=$1 c
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    case $(cat "/proc/$p/comm" 2>/dev/null) in babeld-rs|babeld|bird) echo "$p"; return ;; esac
    c=$(cat "/proc/$p/task/$p/children" 2>/dev/null | awk '{print $1}')
    [ -n "$c" ] || { echo "$p"; return; }
    p=$c
  done
  echo "$p"
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b-a}'; }

full_table() {
  local n=${1:-100000} kind
  echo "== full table: $n IPv6 /128 routes from one babeld-rs sender to a receiver"
  echo "receiver   routes-in-kernel   time-s   cpu-s   peak-rss-MiB   steady-rss-MiB   steady-anon-MiB   udp6-rcvbuf-errors"
  local kinds=(rs bd)
  command -v bird >/dev/null && kinds+=(bird)
  # RECEIVERS="rs" (or "rs bd", ...) measures only those receivers.
  if [ -n "${RECEIVERS:-}" ]; then read -r -a kinds <<< "$RECEIVERS"; fi
  [ -n "${HEAPTRACK:-}" ] && kinds=(rsh)
  for kind in "${kinds[@]}"; do
    mkns s$kind; mkns r$kind; link s$kind r$kind
    ip -n "${tag}s$kind" link add bh0 type ifb; ip -n "${tag}s$kind" link set bh0 up
    # n routes fd55:i/128 on the sender, redistributed.
    awk -v n="$n" 'BEGIN {for (i = 1; i <= n; i++) printf "route add fd55::%x:%x/128 dev bh0 proto static\n", int(i/65536), i%65536}' \
      > "$work/routes"
    ip -n "${tag}s$kind" -batch "$work/routes"
    printf 'redistribute ip fd55::/16 eq 128 allow\nredistribute local deny\n' > "$work/s.conf"
    printf 'redistribute local deny\n' > "$work/r.conf"
    start rs "s$kind" "$work/s.conf" "s${kind}r$kind" >/dev/null
    local t0; t0=$(now)
    local rpid; rpid=$(start "$kind" "r$kind" "$work/r.conf" "r${kind}s$kind")
    # start ran in a subshell: record the receiver here so cleanup stops it.
    pids+=("$rpid")
    local proto=42; [ "$kind" = bird ] && proto=bird
    local got=0 limit=300
    while :; do
      got=$(count6 "r$kind" "$proto")
      [ "$got" -ge "$n" ] && break
      if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN {exit !(b-a > l)}'; then break; fi
      sleep 0.5
    done
    local t; t=$(elapsed "$t0")
    local errs; errs=$(ip netns exec "${tag}r$kind" awk '/Udp6RcvbufErrors/ {print $2}' /proc/net/snmp6)
    local dpid; dpid=$(daemon_pid "$rpid")
    sleep 10
    local name=babeld-rs; [ "$kind" = bd ] && name="babeld 1.12"; [ "$kind" = bird ] && name="BIRD 2"
    [ "$kind" = rsh ] && name="(heaptrack)"
    printf '%-10s %-18s %-8s %-7s %-14s %-16s %-17s %s\n' "$name" "$got/$n" "$t" "$(cpu_s "$dpid")" \
      "$(rss_mb "$dpid")" "$(rss_mb "$dpid" VmRSS)" "$(rss_mb "$dpid" RssAnon)" "$errs"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    ip netns del "${tag}s$kind"; ip netns del "${tag}r$kind"
  done
}

line() {
  local i kind
  echo "== 10-node line, hello 1 s: cold start and reconvergence after cutting the middle link"
  echo "daemon      cold-start-s   reconvergence-s"
  for kind in rs bd; do
    local names=()
    for i in 0 1 2 3 4 5 6 7 8 9; do
      mkns "$kind$i"; names+=("$kind$i")
      ip -n "$tag$kind$i" addr add "fd56::$i/128" dev lo
    done
    for i in 0 1 2 3 4 5 6 7 8; do link "$kind$i" "$kind$((i + 1))"; done
    printf 'redistribute local ip fd56::/16 allow\nredistribute local deny\n' > "$work/l.conf"
    local t0; t0=$(now)
    for i in 0 1 2 3 4 5 6 7 8 9; do
      local ifs; ifs=$(ip -n "$tag$kind$i" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^lo$' | tr '\n' ' ')
      # shellcheck disable=SC2086
      start "$kind" "$kind$i" "$work/l.conf" $ifs >/dev/null
    done
    until [ "$(for i in 0 1 2 3 4 5 6 7 8 9; do count6 "$kind$i"; done | awk '{s+=$1} END {print s}')" -ge 90 ]; do
      sleep 0.2
      if awk -v a="$t0" -v b="$(now)" 'BEGIN {exit !(b-a > 300)}'; then echo "no convergence"; break; fi
    done
    local cold; cold=$(elapsed "$t0")
    local t1; t1=$(now)
    ip -n "$tag${kind}4" link set "${kind}4${kind}5" down
    # Converged again when nodes 0-4 have routes only to 0-4 and 5-9 only to 5-9.
    until [ "$(for i in 0 1 2 3 4 5 6 7 8 9; do count6 "$kind$i"; done | awk '{s+=$1} END {print s}')" -le 40 ]; do
      sleep 0.2
      if awk -v a="$t1" -v b="$(now)" 'BEGIN {exit !(b-a > 300)}'; then echo "no reconvergence"; break; fi
    done
    local re; re=$(elapsed "$t1")
    local name=babeld-rs; [ "$kind" = bd ] && name="babeld 1.12"
    printf '%-11s %-14s %s\n' "$name" "$cold" "$re"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    for n in "${names[@]}"; do ip netns del "$tag$n"; done
  done
}

size() {
  echo "== binary size"
  cargo build --profile small -q -p daemon
  printf 'babeld-rs (profile small, stripped): %s bytes\n' "$(stat -c %s target/small/babeld-rs)"
  printf 'babelctl  (profile small, stripped): %s bytes\n' "$(stat -c %s target/small/babelctl)"
  printf 'babeld 1.12 (Debian, stripped):      %s bytes\n' "$(stat -c %s "$(command -v babeld)")"
}

what=("$@"); [ ${#what[@]} -gt 0 ] || what=(full-table line size)
i=0
while [ $i -lt ${#what[@]} ]; do
  case ${what[$i]} in
    full-table)
      n=100000
      if [ $((i + 1)) -lt ${#what[@]} ] && [[ ${what[$((i + 1))]} =~ ^[0-9]+$ ]]; then n=${what[$((i + 1))]}; i=$((i + 1)); fi
      full_table "$n" ;;
    line) line ;;
    size) size ;;
    *) echo "unknown benchmark ${what[$i]}"; exit 1 ;;
  esac
  i=$((i + 1))
done
