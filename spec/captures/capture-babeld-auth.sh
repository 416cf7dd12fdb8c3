#!/usr/bin/env bash
# Captures Debian's babeld 1.12 with RFC 8967 MAC authentication: two babeld on one veth link,
# both with the same key, from start-up (challenges, Index/PC exchange) to a clean shutdown. Writes
# spec/captures/babeld-1.12-auth-<variant>.pcap. Variants: `hmac-sha256` and `blake2s128`. The
# keys are the ones spec/tests/auth_captures.rs uses to recompute every MAC.
# Needs root, babeld, tcpdump, iproute2. Usage: capture-babeld-auth.sh hmac-sha256|blake2s128 [s]
set -euo pipefail
variant=${1:?hmac-sha256 or blake2s128}
secs=${2:-8}
case "$variant" in
  hmac-sha256) key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f ;;
  blake2s128) key=f0e1d2c3b4a5968778695a4b3c2d1e0f ;;
  *) echo "unknown variant $variant" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
out="$here/babeld-1.12-auth-$variant.pcap"
tag="macap$$"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for n in a b; do ip netns del "$tag$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

for n in a b; do
  ip netns add "$tag$n"
  ip -n "$tag$n" link set lo up
  ip netns exec "$tag$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip link add ab0 netns "${tag}a" type veth peer name ba0 netns "${tag}b"
ip -n "${tag}a" link set ab0 up
ip -n "${tag}b" link set ba0 up
ip -n "${tag}a" addr add fd77::1/128 dev lo
ip -n "${tag}b" addr add fd77::2/128 dev lo

start_babeld() { # ns iface
  cat > "$work/$1.conf" <<CONF
key id k type $variant value $key
interface $2 key k
redistribute local ip fd77::/16 allow
redistribute local deny
CONF
  ip netns exec "$tag$1" babeld -I "$work/$1.pid" -S "$work/$1.state" -L "$work/$1.log" \
    -h 1 -H 1 -c "$work/$1.conf" "$2" &
  pids+=($!)
}

ip netns exec "${tag}b" tcpdump -q -i ba0 -w "$out" -U 'udp port 6696' 2>/dev/null &
tcpdump_pid=$!
pids+=($tcpdump_pid)
sleep 0.5
start_babeld a ab0
start_babeld b ba0
sleep "$secs"
kill -TERM "${pids[1]}"
sleep 1
kill -TERM "${pids[2]}"
sleep 1
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
# Both must have learned the other's route for the capture to be useful.
echo "wrote $out ($(stat -c %s "$out") bytes)"
