#!/usr/bin/env bash
# The main job: demo meshes in network namespaces that show what babeld-rs does, in three acts
# (all three by default; name some to run only those: scripts/demo.sh prices verify exit).
#
#   prices  Four babeld-rs routers with different fees in a ring (r1 - r2 - r3 - r4 - r1) and
#           Debian's babeld (bd) hanging off r3. Each announces 10.66.0.N/32 and fd66::N/128.
#           It waits for convergence, prints each router's table with prices (babelctl show)
#           and pings across the mesh.
#   verify  a - l - d and a - h - d, where l lies: it announces d at metric 1, as if d were its
#           neighbour at no cost, and so wins a's traffic to d. a verifies its routes with
#           Remote Hellos that d answers with signed Remote IHUs: it measures two hops where l
#           claims less than one, corrects the route, evicts l, and its pings move to h.
#   exit    A user node reaches the "internet" (documentation addresses) through a paid,
#           encrypted tunnel to an exit: exit - relay - user - LAN host, every mesh link a
#           tunnel set up by the routers themselves, the user paying the relay for forwarding
#           and the exit billing the user.
#
# Everything it makes (namespaces, daemons, files) is removed at the end, also on failure.
# Needs root (namespaces); installs babeld, nftables and ping from Debian if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# As a user, run again through sudo (keeping the Rust toolchain on the PATH); a fresh Debian's
# root shell has no sudo and needs none.
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "demo: needs root for network namespaces"; exit 1; }
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME "$0" "$@"
fi
acts=("$@"); [ ${#acts[@]} -gt 0 ] || acts=(prices verify exit)
for a in "${acts[@]}"; do
  case $a in prices|verify|exit) ;; *) echo "demo: unknown act $a (prices, verify, exit)"; exit 2 ;; esac
done
if ! command -v babeld >/dev/null || ! command -v ping >/dev/null || ! command -v nft >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends babeld iputils-ping nftables >/dev/null
fi
echo "== building babeld-rs and babelctl (release)"
cargo build --release -q -p daemon -p babelctl
BIN=$PWD/target/release
tag="demo$$"
work=$(mktemp -d)
pids=()
made=()
cleanup() {
  # Every process in the demo's namespaces (daemons, pings), then the namespaces themselves.
  for n in "${made[@]}"; do ip netns pids "$tag$n" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in "${made[@]}"; do ip netns pids "$tag$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true; done
  for n in "${made[@]}"; do ip netns del "$tag$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# mkns NAME N: a namespace with forwarding on, DAD off, 10.X.0.N and fdX::N on lo (X: 66 for the
# price ring, 77 for the other acts).
mkns() {
  local ns=$tag$1
  ip netns add "$ns"
  made+=("$1")
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1
  if [ -n "${2:-}" ]; then
    ip -n "$ns" addr add "10.${3:-77}.0.$2/32" dev lo
    ip -n "$ns" addr add "fd${3:-77}::$2/128" dev lo
  fi
}
# link a b: a veth named a-b in a, b-a in b
link() {
  ip link add "$1-$2" netns "$tag$1" type veth peer name "$2-$1" netns "$tag$2"
  ip -n "$tag$1" link set "$1-$2" up
  ip -n "$tag$2" link set "$2-$1" up
}
ifaces() { ip -n "$tag$1" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^lo$' | tr '\n' ' '; }
in_ns() { local n=$1; shift; ip netns exec "$tag$n" "$@"; }
# start NAME CONF-TEXT [IFACES...]: babeld-rs in NAME, Hellos every second, control port 33123.
start() {
  local n=$1 conf=$2; shift 2
  printf '%s\n' "$conf" > "$work/$n.conf"
  ip netns exec "$tag$n" "$BIN/babeld-rs" -I "" -S "$work/$n.state" -L "$work/$n.log" -h 1 -H 1 \
    -G 33123 -c "$work/$n.conf" "$@" &
  pids+=($!)
}
show() { in_ns "$1" "$BIN/babelctl" show -s 33123 "${@:2}"; }
# wait_until SECONDS WHAT COMMAND...: polls COMMAND every half second; fails the demo after SECONDS.
# A COMMAND reads a command's whole output before grep -q looks at it: with pipefail, `cmd |
# grep -q` fails whenever grep exits on its match before cmd has written the rest (cmd dies of
# SIGPIPE), which a busy machine makes likely.
wait_until() {
  local limit=$1 what=$2 t0; t0=$(date +%s); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $(( $(date +%s) - t0 )) -gt "$limit" ]; then
      echo "demo: $what: not within $limit s"
      for l in "$work"/*.log; do [ -f "$l" ] && { echo "--- $l"; tail -n 15 "$l"; }; done
      exit 1
    fi
    sleep 0.5
  done
  echo "$what after $(( $(date +%s) - t0 )) s"
}
act_prices() {
  echo; echo "######## prices: a ring of four babeld-rs routers with fees, and Debian's babeld"
  declare -A num=([r1]=1 [r2]=2 [r3]=3 [r4]=4 [bd]=5) fee=([r1]=0 [r2]=5 [r3]=7 [r4]=10)
  for n in r1 r2 r3 r4 bd; do mkns "$n" "${num[$n]}" 66; done
  link r1 r2; link r2 r3; link r3 r4; link r4 r1; link r3 bd
  local filters="redistribute local ip 10.66.0.0/16 allow
redistribute local ip fd66::/16 allow
redistribute local deny"
  # A `fee` alone would make babeld-rs speak Althea's dialect (prices in the Update body, as
  # Althea's fork does), which Debian's babeld cannot read: the standard dialect carries the
  # price in a sub-TLV that babeld skips.
  for n in r1 r2 r3 r4; do
    # shellcheck disable=SC2046
    start "$n" "$filters
althea-compatible false
fee ${fee[$n]}" $(ifaces "$n")
  done
  printf '%s\n' "$filters" > "$work/bd.conf"
  # shellcheck disable=SC2046
  ip netns exec "${tag}bd" babeld -I "$work/bd.pid" -S "$work/bd.state" -L "$work/bd.log" -h 1 -H 1 \
    -G 33123 -c "$work/bd.conf" $(ifaces bd) &
  pids+=($!)
  converged() {
    local n m v4 v6
    for n in r1 r2 r3 r4 bd; do
      v4=$(ip -n "$tag$n" route show proto 42) && v6=$(ip -n "$tag$n" -6 route show proto 42) || return 1
      for m in 1 2 3 4 5; do
        [ "$m" = "${num[$n]}" ] && continue
        grep -q "^10.66.0.$m " <<< "$v4" && grep -q "^fd66::$m " <<< "$v6" || return 1
      done
    done
  }
  echo "== waiting for every router to have a route to every other (IPv4 and IPv6)"
  wait_until 120 "converged" converged
  for n in r1 r2 r3 r4; do
    echo; echo "== $n (fee ${fee[$n]}): babelctl show routes"
    show "$n" routes
  done
  echo; echo "== bd (Debian babeld 1.12): babelctl show routes"
  show bd routes
  echo; echo "== ping across the mesh"
  for pair in "r1 5" "bd 1" "r2 4" "r4 2"; do
    set -- $pair
    in_ns "$1" ping -c 1 -W 2 "10.66.0.$2" | grep -E "bytes from" | sed "s/^/$1: /"
    in_ns "$1" ping -6 -c 1 -W 2 "fd66::$2" | grep -E "bytes from" | sed "s/^/$1: /"
  done
}

act_verify() {
  echo; echo "######## verify: a router that lies about its route is measured, corrected and evicted"
  mkns a 1; mkns l 2; mkns h 3; mkns d 4
  link a l; link a h; link l d; link h d
  local filters="redistribute local ip fd77::/16 allow
redistribute local deny"
  # d answers Remote Hellos for its address with Remote IHUs signed by its key.
  local d_seed; d_seed=$("$BIN/babelctl" genkey --ed25519)
  start d "$filters
verify-enable true
verify-private-key $d_seed" d-l d-h
  # h is an honest router of the verified mesh: asked to justify its claim (a audits the
  # passing claims of neighbours whose next hop it cannot see), it relays the request to d,
  # which signs what it offers.
  start h "$filters
verify-enable true" h-a h-d
  # The lie: a kernel route to d over l's link, announced at metric 1 (l forwards, but claims d
  # is next to it at no cost: a sees d at 96 + 1 through l, 96 + 96 through h).
  local d_ll
  d_ll=$(ip -n "${tag}d" -6 -o addr show dev d-l scope link | awk '{print $4}' | cut -d/ -f1)
  ip -n "${tag}l" -6 route replace fd77::4/128 via "$d_ll" dev l-d
  start l "redistribute ip fd77::4/128 metric 1 allow
$filters" l-a l-d
  local key; key=$(echo "$d_seed" | "$BIN/babelctl" pubkey --ed25519)
  # a verifies, with d's key bound to d's address; short cycles for a demo (a session of 10
  # Remote Hellos every 200 ms, a cycle every 4 s).
  start a "$filters
verify-enable true
verify-key fd77::4/128 $key
verify-cycle 4
verify-probes 10
verify-probe-interval 200" a-l a-h
  via() { local r; r=$(ip -n "${tag}a" -6 route show fd77::4 proto 42) && grep -q "dev $1" <<< "$r"; }
  echo "== a chooses the liar's route to d (metric 97 through l, against 192 through h)"
  wait_until 120 "a routes to d through l" via a-l
  show a routes | grep -E '^(PREFIX|fd77::4/128)' || true
  # Traffic to d: verification checks the destinations a uses (counted by the kernel).
  ip netns exec "${tag}a" ping -6 -q -i 0.5 fd77::4 >/dev/null 2>&1 &
  pids+=($!)
  evicted() { local v; v=$(show a verify) && awk '!/^fd77/ && / a-l / && /true/ {f = 1} END {exit !f}' <<< "$v"; }
  echo; echo "== a measures both routes; the one through l costs two hops, not the 97 l claims"
  wait_until 240 "l evicted by a" evicted
  wait_until 60 "a routes to d through h" via a-h
  echo; echo "== a: babelctl show verify (neighbours' accuracy, each route's measured cost)"
  show a verify
  echo; echo "== a: babelctl show routes"
  show a routes | grep -E '^(PREFIX|fd77::4/128)' || true
  echo; echo "== ping d from a, now through h"
  in_ns a ping -6 -c 1 -W 2 fd77::4 | grep -E "bytes from" | sed "s/^/a: /"
}

act_exit() {
  echo; echo "######## exit: a user reaches the internet through a paid, encrypted tunnel to an exit"
  # The internet: a server on documentation addresses, the exit's uplink beside it.
  mkns inet; mkns exit 1; mkns relay 2; mkns user 3; mkns lan
  ip link add inet-x netns "${tag}inet" type veth peer name up0 netns "${tag}exit"
  ip -n "${tag}inet" link set inet-x up; ip -n "${tag}exit" link set up0 up
  ip -n "${tag}inet" addr add 198.51.100.1/24 dev inet-x
  ip -n "${tag}exit" addr add 198.51.100.2/24 dev up0
  ip -n "${tag}exit" route add default via 198.51.100.1
  link exit relay; link relay user
  ip link add lan0 netns "${tag}user" type veth peer name eth0 netns "${tag}lan"
  ip -n "${tag}user" link set lan0 up; ip -n "${tag}lan" link set eth0 up
  ip -n "${tag}user" addr add 192.168.50.1/24 dev lan0
  ip -n "${tag}lan" addr add 192.168.50.2/24 dev eth0
  ip -n "${tag}lan" route add default via 192.168.50.1
  local filters="redistribute local ip 10.77.0.0/16 allow
redistribute local ip fd77::/16 allow
redistribute local deny"
  local pay="pay-enable true
pay-threshold 100000
pay-interval 2"
  mkdir -p "$work/exit-store"
  local exit_seed; exit_seed=$("$BIN/babelctl" genkey --ed25519)
  # Every mesh interface is `type mesh`: the routers find each other, set up a tunnel to each
  # neighbour by themselves, and run Babel (and forward) only through those tunnels.
  start exit "$filters
fee 2
$pay
pay-private-key $exit_seed
interface exit-relay type mesh
exit interface up0 private-key $("$BIN/babelctl" genkey) pool-v4 10.99.0.0/24 fee 3 state-dir $work/exit-store"
  start relay "$filters
fee 4
$pay
interface relay-exit type mesh
interface relay-user type mesh"
  # The user knows its exit by the exit's payment key (its identity in registration and bills).
  local exit_key; exit_key=$(echo "$exit_seed" | "$BIN/babelctl" pubkey --ed25519)
  start user "$filters
fee 1
$pay
pay-private-key $("$BIN/babelctl" genkey --ed25519)
interface user-relay type mesh
exit-client private-key $("$BIN/babelctl" genkey) address fd77::3 lan lan0
exit-server east key $exit_key address fd77::1"
  echo "== the routers tunnel to their neighbours, learn routes, the user registers with the exit"
  wait_until 180 "the LAN host reaches the server (198.51.100.1)" in_ns lan ping -c 1 -W 1 198.51.100.1
  echo; echo "== relay: babelctl show neighbours (a tunnel to each neighbour, set up by itself)"
  show relay neighbours
  echo; echo "== user: babelctl show exits"
  show user exits
  echo; echo "== the LAN host sends traffic to the server through the exit"
  in_ns lan ping -c 50 -i 0.1 -s 1200 -q 198.51.100.1 | tail -n 2
  # PAID-OUT, the sixth column of `show payments`, above zero.
  paid() { show user payments | awk '$1 != "NEIGHBOUR" && $6 ~ /^[1-9]/ { p = 1 } END { exit !p }'; }
  wait_until 60 "the user has paid the relay" paid
  echo; echo "== user: babelctl show payments (what it owes and paid its neighbour for forwarding)"
  show user payments
  echo; echo "== relay: babelctl show payments (paid by both neighbours, each for its own traffic)"
  show relay payments
  echo; echo "== exit: babelctl show exits (the user's registration and bill)"
  show exit exits
}

for a in "${acts[@]}"; do "act_$a"; done
echo; echo "== done; tearing down"
