#!/usr/bin/env bash
# Captures Babel traffic of Debian's babeld 1.12 on a three-node line (a - b - c) in network
# namespaces, and writes it to spec/captures/babeld-1.12-<variant>.pcap. Variants: `plain` and
# `timestamps` (enable-timestamps on every interface). Needs root, babeld, tcpdump, iproute2.
# Usage: capture-babeld.sh plain|timestamps [seconds]
set -euo pipefail
variant=${1:?plain or timestamps}
secs=${2:-14}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/babeld-1.12-$variant.pcap"
tag="bwcap$$"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for n in a b c; do ip netns del "$tag$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

for n in a b c; do
  ip netns add "$tag$n"
  ip -n "$tag$n" link set lo up
done
# a:ab0 <-> b:ba0, b:bc0 <-> c:cb0
ip link add ab0 netns "${tag}a" type veth peer name ba0 netns "${tag}b"
ip link add bc0 netns "${tag}b" type veth peer name cb0 netns "${tag}c"
for pair in a:ab0 b:ba0 b:bc0 c:cb0; do
  ns=$tag${pair%%:*}; dev=${pair#*:}
  ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.accept_dad=0" 2>/dev/null || true
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  ip -n "$ns" link set "$dev" up
done
# Each node owns a /32 and a /128 (on lo), and a shorter prefix of each family routed to an ifb
# device (this kernel has no dummy driver). In the `plain` variant the links also carry IPv4
# addresses, so babeld sends IPv4 routes with AE 1 and an IPv4 next hop; without them it uses
# AE 4 (RFC 9229, IPv4 via IPv6).
i=0
for n in a b c; do
  i=$((i + 1)); ns=$tag$n
  ip -n "$ns" addr add "10.77.0.$i/32" dev lo
  ip -n "$ns" addr add "fd77::$i/128" dev lo
  ip -n "$ns" link add bh0 type ifb
  ip -n "$ns" link set bh0 up
  ip -n "$ns" route add "10.78.$i.0/24" dev bh0 proto static
  ip -n "$ns" route add "fd78:0:$i::/48" dev bh0 proto static
done
if [ "$variant" = plain ]; then
  ip -n "${tag}a" addr add 10.99.1.1/24 dev ab0
  ip -n "${tag}b" addr add 10.99.1.2/24 dev ba0
  ip -n "${tag}b" addr add 10.99.2.2/24 dev bc0
  ip -n "${tag}c" addr add 10.99.2.3/24 dev cb0
fi

ts=""
[ "$variant" = timestamps ] && ts="default enable-timestamps true"
start_babeld() { # ns ifaces...
  local n=$1; shift
  cat > "$work/$n.conf" <<CONF
$ts
redistribute local ip 10.77.0.0/16 allow
redistribute local ip fd77::/16 allow
redistribute ip 10.78.0.0/16 le 24 allow
redistribute ip fd78::/16 le 48 allow
redistribute local deny
CONF
  ip netns exec "$tag$n" babeld -I "$work/$n.pid" -S "$work/$n.state" -L "$work/$n.log" \
    -h 1 -H 1 -c "$work/$n.conf" "$@" &
  pids+=($!)
}

ip netns exec "${tag}b" tcpdump -q -i ba0 -w "$out" -U 'udp port 6696' 2>/dev/null &
tcpdump_pid=$!
pids+=($tcpdump_pid)
sleep 0.5
start_babeld a ab0
start_babeld b ba0 bc0
start_babeld c cb0
sleep "$secs"
# A clean shutdown of a sends its wildcard retraction; c's shutdown is seen through b.
kill -TERM "${pids[1]}" "${pids[3]}"
sleep 2
kill -TERM "${pids[2]}"
sleep 1
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
echo "wrote $out ($(stat -c %s "$out") bytes)"
