#!/usr/bin/env bash
# Daemon benchmarks, babeld-rs and Debian's babeld side by side in the same run, in network
# namespaces, with the machine's default sysctls (net.core.rmem_max untouched).
#
#   full-table  N routes (default 100000) announced by one node and learned by a neighbour: time
#               until all are in the receiver's kernel, the receiver's CPU seconds and peak RSS.
#               The sender is babeld-rs in every run; only the receiver changes (babeld-rs,
#               Debian's babeld, and BIRD 2 when installed). Memory: peak RSS (VmHWM) while
#               learning and re-advertising, steady RSS (VmRSS) and private anonymous memory
#               (RssAnon) 10 s after the last route is in (SMAPS=DIR keeps the receiver's
#               smaps then). RECEIVERS="rs bd bird" picks the
#               receivers. HEAPTRACK=1 runs the babeld-rs
#               receiver under heaptrack and keeps the profile in /tmp. MONITOR=1: a babeld-rs
#               receiver has a `monitor` client on its control socket (`-g`) from its start to
#               its end, reading every line (counted, to show it was attached and kept up);
#               MONITOR=both: ROUNDS (default 3) interleaved pairs of runs without and with the
#               client, for babeld-rs (or RECEIVERS, e.g. "old rs" with OLD_BIN for a
#               before/after). The time is then taken to 0.1 s.
#   line        cold start of a 10-node line until every node has a route to every other, then
#               reconvergence after the middle link is cut (routes across the cut withdrawn).
#   size        the stripped, size-optimised babeld-rs binary next to Debian's babeld.
#   pacing      a Debian babeld neighbour with default socket buffers learns a 10,000-route table
#               (proto static, redistributed), sent by babeld-rs (paced) and then by babeld: the
#               time until babeld has installed all of it, from the sender's start and again
#               from its restart (daemon/tests/pacing_netns.rs, the ignored test).
#   idle        ring of 4 (babeld-rs, babeld, BIRD 2 one after the other, Hello 4 s): once every
#               node routes to the three others, IDLE seconds (default 30) idle, then each
#               node's RSS (VmRSS), private anonymous memory (RssAnon) and threads; for node 0
#               of each daemon also its memory by mapping (each file's text, read-only and
#               writable parts, heap, stack, thread stacks, other anonymous memory) with what it
#               touched in the idle period's second half (SMAPS=DIR keeps node 0's smaps).
#               Measure the router build: BIN=target/small/babeld-rs after `cargo router`
#               (profile small, static-pie glibc; .cargo/config.toml).
#   reroute     ring of 4 (babeld-rs, babeld, BIRD 2 one after the other), Hello every HELLO s
#               (default 1), link detection on in all three (babeld -l; BIRD's `check link` is
#               on by default): node 0 pings node 1 every 10 ms over their direct link, then
#               the link fails. CUT=down (default): `ip link set down` on node 0's end (node 1
#               sees its carrier go). CUT=silent: both ends drop every packet on the link with
#               nftables, carriers stay up, only Hellos can tell. Reported: pings lost and the
#               longest gap between two replies (the reroute time). LOSS=P (percent, with
#               CUT=none) instead makes the link lossy for 60 s and counts node 0's changes of
#               kernel route for node 1 (`ip monitor route` lines: flaps). COSTLOG=DIR keeps,
#               for each daemon, node 0's view once a second during the lossy minute
#               (DIR/KIND.cost: its neighbour on the lossy link with reach, rxcost, txcost and
#               cost, and its routes to node 1; babeld-rs and babeld through `-g 33123`, BIRD
#               through birdc). LINK=tap makes the link between nodes 0 and 1 two TAP devices
#               joined by test-support's delaying forwarder (`tap-link`, DELAY ms one way,
#               default 10) instead of a veth pair; with it, CUT=down reaches node 0 only (a
#               TAP device has no peer whose carrier goes). CUT=blip: a silent cut of BLIP s
#               (default 4 Hello intervals), then the link is repaired; reported are when node
#               0 routes node 1 round the ring, and how long after the repair it comes back to
#               the direct link (route-selection hysteresis).
#
# Usage: sudo scripts/bench-daemon.sh [full-table [N]] [line] [size] [reroute] [idle] [pacing]
#        (default: full-table line size)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench: needs root"; exit 1; }
command -v babeld >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq babeld >/dev/null; }
# BIN=path/to/babeld-rs measures a binary built elsewhere (e.g. main, for a before/after).
# OLD_BIN=path/to/babeld-rs with receiver or daemon kind "old" (RECEIVERS="old rs bd bird",
# DAEMONS="old rs bd bird") measures a second babeld-rs binary in the same run.
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
# tap_link A B: like `link`, with two TAP devices joined by test-support's delaying forwarder
# (DELAY ms one way); the forwarder is in `pids`, and its devices go when it is stopped.
tap_link() {
  [ -x "${TAP_LINK:-}" ] || { cargo build -q -p test-support --bin tap-link; TAP_LINK=$PWD/target/debug/tap-link; }
  "$TAP_LINK" "$tag$1" "$1$2" "$tag$2" "$2$1" "${DELAY:-10}" &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q ',UP' <<< "$(ip -n "$tag$1" link show "$1$2" 2>/dev/null)" &&
      grep -q ',UP' <<< "$(ip -n "$tag$2" link show "$2$1" 2>/dev/null)" && return
    sleep 0.1
  done
  echo "tap-link: no TAP devices $1$2/$2$1"; exit 1
}
# start KIND NODE CONF IFACES...: runs babeld-rs (rs) or babeld (bd); echoes its pid. Called as
# $(start ...), it runs in a subshell: the caller must add the pid to `pids` itself.
start() {
  local kind=$1 n=$2 conf=$3; shift 3
  local prog=$BIN; [ "$kind" = bd ] && prog=babeld; [ "$kind" = old ] && prog=$OLD_BIN
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
  # With MONITOR, each entry is KIND:MON (MON 1: a monitor client is attached).
  local runs=() r
  case ${MONITOR:-0} in
    0) runs=("${kinds[@]}") ;;
    1) for kind in "${kinds[@]}"; do runs+=("$kind:1"); done ;;
    both)
      [ -n "${RECEIVERS:-}" ] || kinds=(rs)
      for ((r = 0; r < ${ROUNDS:-3}; r++)); do
        for kind in "${kinds[@]}"; do [ "$kind" = bird ] || runs+=("$kind:0" "$kind:1"); done
      done ;;
    *) echo "MONITOR=0, 1 or both"; exit 1 ;;
  esac
  [ "${MONITOR:-0}" = 0 ] || echo "(monitor: the monitor column is the lines a monitor client read, when it connected, and whether the receiver dropped it as a slow reader)"
  for run in "${runs[@]}"; do
    local kind=${run%%:*} mon=0
    [ "$run" != "$kind" ] && mon=${run#*:}
    mkns s$kind; mkns r$kind; link s$kind r$kind
    ip -n "${tag}s$kind" link add bh0 type ifb; ip -n "${tag}s$kind" link set bh0 up
    # n routes fd55:i/128 on the sender, redistributed.
    awk -v n="$n" 'BEGIN {for (i = 1; i <= n; i++) printf "route add fd55::%x:%x/128 dev bh0 proto static\n", int(i/65536), i%65536}' \
      > "$work/routes"
    ip -n "${tag}s$kind" -batch "$work/routes"
    printf 'redistribute ip fd55::/16 eq 128 allow\nredistribute local deny\n' > "$work/s.conf"
    printf 'redistribute local deny\n' > "$work/r.conf"
    rm -f "$work/s$kind.pid"
    start rs "s$kind" "$work/s.conf" "s${kind}r$kind" >/dev/null
    local t0; t0=$(now)
    # A fresh log per run (the slow-reader count below reads it), and no pid file of an
    # earlier run (its pid may be another process's by now: the daemon would refuse to start).
    rm -f "$work/r$kind.log" "$work/r$kind.pid"
    local ctl=() mpid=""
    [ "$kind" = bird ] && mon=0
    [ "$mon" = 1 ] && ctl=(-g 33123)
    local rpid; rpid=$(start "$kind" "r$kind" "$work/r.conf" "${ctl[@]}" "r${kind}s$kind")
    # start ran in a subshell: record the receiver here so cleanup stops it.
    pids+=("$rpid")
    if [ "$mon" = 1 ]; then
      # The client connects as soon as the socket listens (the neighbour takes a Hello
      # interval to come up, so no route is learned before it) and reads until the daemon
      # goes, as fast as `wc -l` reads (babeld-rs drops a client that leaves 1 MiB unread);
      # it writes how many lines it read.
      rm -f "$work/mon.count" "$work/mon.count.t"
      ip netns exec "${tag}r$kind" bash -c 'for _ in $(seq 1000); do exec 3<>/dev/tcp/::1/33123 && break; sleep 0.02; done 2>/dev/null
        date +%s.%N > "$0.t"; printf "monitor\n" >&3; wc -l <&3 > "$0.tmp"; mv "$0.tmp" "$0"' \
        "$work/mon.count" &
      mpid=$!
    fi
    local proto=42; [ "$kind" = bird ] && proto=bird
    local got=0 limit=300 last
    last=$(printf 'fd55::%x:%x' $((n / 65536)) $((n % 65536)))
    while :; do
      # With MONITOR, a cheap look-up of the last route announced comes first, then the count
      # (listing 100,000 routes takes CPU from the daemon).
      if [ "${MONITOR:-0}" = 0 ] || grep -q "dev r${kind}s$kind" <<< "$(ip -n "${tag}r$kind" -6 route get "$last" 2>/dev/null)"; then
        got=$(count6 "r$kind" "$proto")
        [ "$got" -ge "$n" ] && break
      fi
      if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN {exit !(b-a > l)}'; then break; fi
      if [ "${MONITOR:-0}" = 0 ]; then sleep 0.5; else sleep 0.1; fi
    done
    local t; t=$(elapsed "$t0")
    local errs; errs=$(ip netns exec "${tag}r$kind" awk '/Udp6RcvbufErrors/ {print $2}' /proc/net/snmp6)
    local dpid; dpid=$(daemon_pid "$rpid")
    sleep 10
    local name=babeld-rs; [ "$kind" = bd ] && name="babeld 1.12"; [ "$kind" = bird ] && name="BIRD 2"
    [ "$kind" = rsh ] && name="(heaptrack)"; [ "$kind" = old ] && name="OLD_BIN"
    local cpu; cpu=$(cpu_s "$dpid")
    local mem=("$(rss_mb "$dpid")" "$(rss_mb "$dpid" VmRSS)" "$(rss_mb "$dpid" RssAnon)")
    # SMAPS=DIR keeps the receiver's smaps at steady (DIR/full-KIND.smaps, .status).
    [ -n "${SMAPS:-}" ] && { mkdir -p "$SMAPS"; cp "/proc/$dpid/smaps" "$SMAPS/full-$kind.smaps"; cp "/proc/$dpid/status" "$SMAPS/full-$kind.status"
      # glibc's own account of its heap (in use, free, kept), read after the figures above.
      command -v gdb >/dev/null && [ "$kind" != bird ] && gdb -p "$dpid" -batch -ex 'set $f = (void *) fopen("'"$SMAPS/full-$kind.malloc.xml"'", "w")' \
        -ex 'call (int) malloc_info(0, $f)' -ex 'call (int) fclose($f)' >/dev/null 2>&1 || true; }
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    # The client ends when the daemon closes its socket.
    [ -z "$mpid" ] || wait "$mpid" 2>/dev/null || true
    local monitor=""
    if [ "${MONITOR:-0}" != 0 ]; then
      monitor="monitor -"
      if [ "$mon" = 1 ]; then
        # Lines read (a route learned is two: added, then installed); when it connected;
        # whether babeld-rs dropped it as a slow reader (its queue limit).
        monitor="monitor $(cat "$work/mon.count" 2>/dev/null || echo none) attached-after-s"
        monitor+=" $(awk -v a="$t0" '{printf "%.2f", $1 - a}' "$work/mon.count.t" 2>/dev/null || echo -)"
        monitor+=" dropped-as-slow $(grep -c 'reply bytes not read' "$work/r$kind.log" || true)"
      fi
    fi
    printf '%-10s %-18s %-8s %-7s %-14s %-16s %-17s %s %s\n' "$name" "$got/$n" "$t" "$cpu" \
      "${mem[0]}" "${mem[1]}" "${mem[2]}" "$errs" "$monitor"
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

# ring_kinds: the daemons a ring benchmark compares, in the caller's `kinds`: babeld-rs, babeld
# and BIRD 2 when installed, or DAEMONS.
ring_kinds() {
  kinds=(rs bd)
  command -v bird >/dev/null && kinds+=(bird)
  if [ -n "${DAEMONS:-}" ]; then read -r -a kinds <<< "$DAEMONS"; fi
}

# ring_up KIND HELLO [FLAGS...]: four namespaces ${tag}K0-K3 (K: KIND's first two letters) in a
# ring, each announcing fd57::N/128 from lo, running babeld-rs (rs), OLD_BIN (old), babeld (bd) or
# BIRD 2 (bird) with Hello every HELLO s (FLAGS go to babeld-rs and babeld). The daemons' pids,
# node by node, are in ring_pids.
ring_up() {
  local kind=$1 hello=$2 i; shift 2
  local k=${kind:0:2}
  ring_pids=()
  for i in 0 1 2 3; do
    mkns "$k$i"
    ip -n "$tag$k$i" addr add "fd57::$((i + 1))/128" dev lo
  done
  if [ "${LINK:-veth}" = tap ]; then tap_link "${k}0" "${k}1"; else link "${k}0" "${k}1"; fi
  link "${k}1" "${k}2"; link "${k}2" "${k}3"; link "${k}3" "${k}0"
  printf 'redistribute local ip fd57::/16 allow\nredistribute local deny\n' > "$work/ring.conf"
  for i in 0 1 2 3; do
    local ifs; ifs=$(ip -n "$tag$k$i" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^lo$' | tr '\n' ' ')
    if [ "$kind" = bird ]; then
      cat > "$work/$k$i.bird.conf" <<BIRD
router id 10.0.0.$((i + 1));
protocol device { }
protocol direct { ipv6; interface "lo"; }
protocol kernel { ipv6 { export where source = RTS_BABEL; }; }
protocol babel {
  interface "${k}*" { type wired; hello interval $hello s; update interval $((hello * 4)) s; };
  ipv6 { import all; export where net ~ [ fd57::/16+ ]; };
}
BIRD
        ip netns exec "$tag$k$i" bird -f -c "$work/$k$i.bird.conf" -s "$work/$k$i.bird.ctl" >/dev/null 2>&1 &
        pids+=($!)
      else
        local prog=$BIN; [ "$kind" = bd ] && prog=babeld; [ "$kind" = old ] && prog=$OLD_BIN
        # shellcheck disable=SC2086
        ip netns exec "$tag$k$i" "$prog" -I "$work/$k$i.pid" -S "$work/$k$i.state" -L "$work/$k$i.log" \
          -h "$hello" -H "$hello" "$@" -c "$work/ring.conf" $ifs >/dev/null 2>&1 &
        pids+=($!)
      fi
      ring_pids+=($!)
    done
}

reroute() {
  local kind i hello=${HELLO:-1} cut=${CUT:-down}
  local via="veth"; [ "${LINK:-veth}" = tap ] && via="TAP link, ${DELAY:-10} ms one way"
  echo "== ring of 4, hello ${hello} s, link detection on; node 0 pings node 1 every 10 ms over a $via; cut: $cut ${LOSS:+(loss $LOSS %)}"
  if [ "$cut" = none ]; then
    echo "daemon        loss-%   pings-lost/sent   kernel-route-changes-for-node-1-at-node-0   route-taken"
  elif [ "$cut" = blip ]; then
    echo "daemon        on-the-ring-after-cut-s   back-on-the-direct-link-after-repair-s"
  else
    echo "daemon        pings-lost/sent   longest-gap-ms (reroute time)"
  fi
  local kinds; ring_kinds
  for kind in "${kinds[@]}"; do
    local k=${kind:0:2}
    ring_up "$kind" "$hello" -l ${COSTLOG:+-g 33123}
    local proto=42; [ "$kind" = bird ] && proto=bird
    local t0; t0=$(now)
    # Every node routes to the three others, and node 0 reaches node 1 over their direct link.
    until [ "$(for i in 0 1 2 3; do count6 "$k$i" "$proto"; done | awk '{s+=$1} END {print s}')" -ge 12 ] &&
      grep -q "dev ${k}0${k}1" <<< "$(ip -n "$tag${k}0" -6 route show fd57::2)"; do
      sleep 0.2
      if awk -v a="$t0" -v b="$(now)" 'BEGIN {exit !(b-a > 300)}'; then echo "$kind: no convergence"; break; fi
    done
    # Let the alternative routes settle (one update interval).
    sleep $((hello * 4 + 1))
    local log=$work/$k.ping
    if [ "$cut" = none ]; then
      local n0=$tag${k}0 n1=$tag${k}1
      for ns in "$n0" "$n1"; do
        local dev; [ "$ns" = "$n0" ] && dev=${k}0${k}1 || dev=${k}1${k}0
        ip netns exec "$ns" nft -f - <<NFT
table inet lossy {
  chain pre { type filter hook prerouting priority -300; iifname "$dev" numgen random mod 100 < ${LOSS:-10} drop; }
}
NFT
      done
      ip -n "$n0" monitor route > "$work/$k.mon" 2>/dev/null &
      local mon=$!
      pids+=("$mon")
      if [ -n "${COSTLOG:-}" ]; then
        mkdir -p "$COSTLOG"
        # Node 0's neighbour on the lossy link and its routes to node 1, once a second.
        while :; do
          echo "== $(now)"
          if [ "$kind" = bird ]; then
            birdc -s "$work/${k}0.bird.ctl" show babel neighbors 2>/dev/null | grep "${k}0${k}1"
            birdc -s "$work/${k}0.bird.ctl" show route all fd57::2/128 2>/dev/null | grep -E 'via|unreachable|Babel.metric'
          else
            ip netns exec "$n0" timeout 1 bash -c 'exec 3<>/dev/tcp/::1/33123; printf "dump\nquit\n" >&3; cat <&3' 2>/dev/null |
              grep -E "neighbour.* if ${k}0${k}1 |prefix fd57::2/128"
          fi
          sleep 1
        done > "$COSTLOG/$kind.cost" 2>&1 &
        pids+=($!)
      fi
      ip netns exec "$n0" ping -6 -n -q -i 0.01 -w 60 fd57::2 > "$log" 2>&1 || true
      kill "$mon" 2>/dev/null || true
      [ -z "${COSTLOG:-}" ] || cp "$work/$k.mon" "$COSTLOG/$kind.mon"
      local flaps; flaps=$(grep -c 'fd57::2' "$work/$k.mon" || true)
      # The way the route went, whatever the daemon's way of replacing a route (one line, or
      # several with an `unreachable` hold between): direct, hold, ring.
      local path; path=$(grep 'fd57::2' "$work/$k.mon" | awk -v d="${k}0${k}1" -v r="${k}0${k}3" '
        /^Deleted/ {next}
        {w = /^unreachable/ ? "hold" : ($0 ~ "dev " d " " ? "direct" : ($0 ~ "dev " r " " ? "ring" : "other"))
         if (w != last) {p = p ">" w; last = w}}
        END {print "direct" p}')
      local sent recv; sent=$(awk '/transmitted/ {print $1}' "$log"); recv=$(awk '/transmitted/ {print $4}' "$log")
      local name=babeld-rs; [ "$kind" = bd ] && name="babeld 1.12"; [ "$kind" = bird ] && name="BIRD 2"
      [ "$kind" = old ] && name=OLD_BIN
      printf '%-13s %-8s %-17s %-43s %s\n' "$name" "${LOSS:-10}" "$((sent - recv))/$sent" "$flaps" "$path"
    elif [ "$cut" = blip ]; then
      # A silent cut of BLIP s, then the link works again: when does node 0 route node 1 round
      # the ring, and when back over the repaired link (the hysteresis of route selection)?
      local n0=$tag${k}0 blip=${BLIP:-$((hello * 4))} tcut trep ring=- back=-
      local dev0=${k}0${k}1 dev1=${k}1${k}0
      tcut=$(now)
      ip netns exec "$n0" nft -f - <<NFT
table inet cut {
  chain pre { type filter hook prerouting priority -300; iifname "$dev0" drop; }
  chain post { type filter hook postrouting priority -300; oifname "$dev0" drop; }
}
NFT
      ip netns exec "$tag${k}1" nft -f - <<NFT
table inet cut {
  chain pre { type filter hook prerouting priority -300; iifname "$dev1" drop; }
  chain post { type filter hook postrouting priority -300; oifname "$dev1" drop; }
}
NFT
      while awk -v a="$tcut" -v b="$(now)" -v l="$((blip > 60 ? blip : 60))" 'BEGIN {exit !(b-a < l)}'; do
        if [ "$ring" = - ] && grep -q "dev ${k}0${k}3" <<< "$(ip -n "$n0" -6 route show fd57::2)"; then ring=$(elapsed "$tcut"); fi
        if awk -v a="$tcut" -v b="$(now)" -v l="$blip" 'BEGIN {exit !(b-a >= l)}' && [ "$ring" != - ]; then break; fi
        sleep 0.2
      done
      ip netns exec "$n0" nft delete table inet cut; ip netns exec "$tag${k}1" nft delete table inet cut
      trep=$(now)
      while awk -v a="$trep" -v b="$(now)" 'BEGIN {exit !(b-a < 120)}'; do
        if grep -q "dev $dev0" <<< "$(ip -n "$n0" -6 route show fd57::2)"; then back=$(elapsed "$trep"); break; fi
        sleep 0.2
      done
      [ "$back" = - ] && back="still on the ring after 120"
      local name=babeld-rs; [ "$kind" = bd ] && name="babeld 1.12"; [ "$kind" = bird ] && name="BIRD 2"
      [ "$kind" = old ] && name=OLD_BIN
      printf '%-13s %-25s %s\n' "$name" "$ring" "$back"
    else
      local secs=$((hello * 5 + 8)); [ "$cut" = silent ] && secs=$((hello * 10 + 8))
      ip netns exec "$tag${k}0" ping -6 -n -D -i 0.01 -w "$secs" fd57::2 > "$log" 2>&1 &
      local ping=$!
      sleep 2
      local tcut; tcut=$(now)
      if [ "$cut" = down ]; then
        ip -n "$tag${k}0" link set "${k}0${k}1" down
      else
        for i in 0 1; do
          local dev; [ "$i" = 0 ] && dev=${k}0${k}1 || dev=${k}1${k}0
          ip netns exec "$tag$k$i" nft -f - <<NFT
table inet cut {
  chain pre { type filter hook prerouting priority -300; iifname "$dev" drop; }
  chain post { type filter hook postrouting priority -300; oifname "$dev" drop; }
}
NFT
        done
      fi
      wait "$ping" || true
      local sent recv; sent=$(awk '/transmitted/ {print $1}' "$log"); recv=$(awk '/transmitted/ {print $4}' "$log")
      # The longest time between two consecutive replies after the cut.
      # No reply in the last second: traffic never came back within the run.
      local gap; gap=$(awk -v c="$tcut" -v e="$(now)" -F'[][]' '/bytes from/ {t = $2 + 0; if (p != "" && t > c - 1 && t - p > g) g = t - p; p = t}
        END {if (p < e - 1.5) printf "no recovery in %.0f s", e - c; else printf "%.0f", g * 1000}' "$log")
      local name=babeld-rs; [ "$kind" = bd ] && name="babeld 1.12"; [ "$kind" = bird ] && name="BIRD 2"
      [ "$kind" = old ] && name=OLD_BIN
      printf '%-13s %-17s %s\n' "$name" "$((sent - recv))/$sent" "$gap"
    fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    for i in 0 1 2 3; do ip netns del "$tag$k$i"; done
  done
}

idle() {
  local kind i idle=${IDLE:-30}
  echo "== ring of 4, Hello 4 s, ${idle} s idle after convergence: memory of each node (kB)"
  echo "daemon        node   rss-kB   private-anon-kB   threads"
  local kinds; ring_kinds
  for kind in "${kinds[@]}"; do
    local k=${kind:0:2}
    ring_up "$kind" 4
    local proto=42; [ "$kind" = bird ] && proto=bird
    local t0; t0=$(now)
    until [ "$(for i in 0 1 2 3; do count6 "$k$i" "$proto"; done | awk '{s+=$1} END {print s}')" -ge 12 ]; do
      sleep 0.5
      if awk -v a="$t0" -v b="$(now)" 'BEGIN {exit !(b-a > 300)}'; then echo "$kind: no convergence"; break; fi
    done
    # Half-way, node 0's referenced bits are cleared: what it touches in the second half is
    # its idle working set (the last column of the table by mapping).
    sleep "$((idle / 2))"
    echo 1 > "/proc/$(daemon_pid "${ring_pids[0]}")/clear_refs"
    sleep "$((idle - idle / 2))"
    local name=babeld-rs; [ "$kind" = bd ] && name="babeld 1.12"; [ "$kind" = bird ] && name="BIRD 2"
    [ "$kind" = old ] && name=OLD_BIN
    for i in 0 1 2 3; do
      local p; p=$(daemon_pid "${ring_pids[$i]}")
      printf '%-13s %-6s %-8s %-17s %s\n' "$name" "$i" "$(awk '$1 == "VmRSS:" {print $2}' "/proc/$p/status")" \
        "$(awk '$1 == "RssAnon:" {print $2}' "/proc/$p/status")" "$(awk '$1 == "Threads:" {print $2}' "/proc/$p/status")"
    done
    # Node 0 by mapping (every daemon): resident kB (Rss), private dirty, anonymous, referenced
    # in the idle period's second half, per file
    # and permission (r-x: text, r--: read-only data and relocated data once made read-only,
    # rw-: data), [heap] (the main thread's arena), [stack], thread stacks (anonymous mappings
    # of a thread stack's size) and other anonymous memory (glibc's other arenas, large
    # allocations, the relocated data's bss tail). SMAPS=DIR keeps node 0's smaps in DIR.
    local p0; p0=$(daemon_pid "${ring_pids[0]}")
    [ -n "${SMAPS:-}" ] && { mkdir -p "$SMAPS"; cp "/proc/$p0/smaps" "$SMAPS/$kind.smaps"; cp "/proc/$p0/smaps_rollup" "$SMAPS/$kind.smaps_rollup"; }
    echo "$name node 0, kB by mapping: rss private-dirty anonymous referenced-in-2nd-half"
    awk '/^[0-9a-f]+-[0-9a-f]+ / {perm = substr($2, 1, 3); name = ($6 == "" ? "anon" : $6); n = split(name, parts, "/"); name = parts[n]}
         $1 == "Size:" {size = $2}
         $1 == "Rss:" {rss = $2}
         $1 == "Private_Dirty:" {dirty = $2}
         $1 == "Referenced:" {refd = $2}
         $1 == "Anonymous:" {
           what = name " " perm
           if (name == "anon") what = (size == 2048 || size == 2052 || size == 8192 || size <= 512 && size % 64 == 0 && size >= 64) ? "thread stack (" size " kB)" : "other anonymous"
           if (rss > 0) {r[what] += rss; d[what] += dirty; a[what] += $2; f[what] += refd}
         }
         END {for (w in r) printf "  %-40s %6d %6d %6d %6d\n", w, r[w], d[w], a[w], f[w]}' "/proc/$p0/smaps" | sort
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    for i in 0 1 2 3; do ip netns del "$tag$k$i"; done
  done
}

pacing() {
  echo "== pacing a full table to a babeld neighbour (babeld-rs, then babeld)"
  cargo test --release -q -p daemon --test pacing_netns -- --ignored --nocapture pacing_side_by_side_with_babeld 2>&1 | grep '^PACING'
}

size() {
  echo "== binary size"
  cargo build --profile small -q -p daemon -p babelctl
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
    reroute) reroute ;;
    idle) idle ;;
    pacing) pacing ;;
    *) echo "unknown benchmark ${what[$i]}"; exit 1 ;;
  esac
  i=$((i + 1))
done
