#!/usr/bin/env bash
# Regenerates packaging/router/symbol-order.txt, the order in which `cargo router` (the router
# build: profile small, static-pie glibc; .cargo/config.toml) lays out the binary's functions.
#
# Why: the kernel maps a binary's text by 64 KiB blocks around each page fault (fault-around),
# so a function that runs once at start-up keeps its whole block resident. With the functions
# in the compiler's order, start-up touches nearly every block of the ~3 MB text and all of it
# stays resident. Laid out with the functions a router runs packed together, the rest is never
# faulted in. See docs/benchmarks.md, "Idle, eighth pass".
#
# How: the router build, with its symbols kept (`-C strip=none`), runs under valgrind's
# callgrind, which lists every function executed (not a sample), in the daemon bench's ring of 4
# (start-up, convergence, IDLE s idle, default 30) and in a full-table exchange of ROUTES routes
# (default 2000; ROUTES=0 skips it): sender and receiver. Generating (not --check) also runs the
# bench's reroute (a ring of 4 whose link goes down; REROUTE=0 skips it): a retraction, seqno
# requests, a route held and released. An idle ring runs these too when a Hello comes late (a
# slow or loaded machine), and --check, which runs only the idle ring and the full table, would
# otherwise find them missing on one run in a few. The list holds every function that ran
# in any of these daemons, most instructions first, then those of the list before that this build
# still has (the union over runs). `cargo router` links through
# packaging/router/link.sh, which maps the names onto each build's and leaves out those it cannot
# find: a stale list costs memory, never the build.
#
# The list names the functions of the build it was made from; packaging/router/link.sh maps the
# names onto each later build's (LLVM's copy numbers and the mangling's hashes change), but a
# function new since then is not in it and lands among the cold text. With --check, nothing is
# written: the functions that ran and that the committed list does not cover are printed, and
# the script fails when more than MAX_MISSING of them (default 3) are the workspace's own, or
# more than MAX_MISSING_ALL (default 10) in all. A few functions run in some runs and not in
# others, nearly all of them std's or a dependency's (a channel's waker unregistered when a wait
# races, a vector growing at another moment); each costs at most one 64 KiB block. A change to
# our code that makes a router run new functions shows as our own functions missing. CI runs
# it, so such a change regenerates the list in the same change.
#
# Usage: sudo scripts/symbol-order.sh [--check]   (needs valgrind, babeld; a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
check=
[ "${1:-}" != --check ] || check=1
[ "$(id -u)" = 0 ] || { echo "symbol-order: needs root (the bench's network namespaces)"; exit 1; }
command -v valgrind >/dev/null || { echo "symbol-order: needs valgrind"; exit 1; }
out=packaging/router/symbol-order.txt
work=$(mktemp -d)
# KEEP=1 keeps the profiles and the lists (the path is printed at the end).
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT

cargo router -C strip=none
cp target/small/babeld-rs "$work/babeld-rs"
# The bench starts "$BIN": a wrapper that runs the binary under callgrind, one profile per
# process. Mangled names (--demangle=no): the linker's ordering file takes symbol names.
cat > "$work/wrap" <<EOF
#!/bin/sh
exec valgrind -q --tool=callgrind --demangle=no \
  --callgrind-out-file=$work/cg.%p $work/babeld-rs "\$@"
EOF
chmod +x "$work/wrap"
what=(idle)
[ "${ROUTES:-2000}" = 0 ] || what+=(full-table "${ROUTES:-2000}")
[ -n "$check" ] || [ "${REROUTE:-1}" = 0 ] || what+=(reroute)
BIN=$work/wrap DAEMONS=rs RECEIVERS=rs IDLE=${IDLE:-30} scripts/bench-daemon.sh "${what[@]}"
# The bench stops the daemons with SIGTERM; callgrind writes its profile as they exit.
for _ in $(seq 60); do pgrep -f "$work/babeld-rs" >/dev/null || break; sleep 1; done
ls "$work"/cg.* >/dev/null

# Each profile: "fn=(id) name" introduces a function, "fn=(id)" repeats it; the cost lines
# after it (position and instructions) are its own cost; "cfn=(id) name" (a callee) can be the
# first to name an id. Sum each function's instructions over
# every profile, keep the names the binary defines, most instructions first.
nm --defined-only "$work/babeld-rs" | awk '$2 ~ /^[tTwWi]$/ {print $3}' | sort -u > "$work/defined"
awk '
  FNR == 1 { npos = 1 }
  /^positions:/ { npos = NF - 1; next }
  function fname(s) {
    if (match(s, /^\([0-9]+\) /)) { name[FILENAME, substr(s, 1, RLENGTH - 1)] = substr(s, RLENGTH + 1); return substr(s, RLENGTH + 1) }
    if (match(s, /^\([0-9]+\)$/)) return name[FILENAME, s]
    return s
  }
  /^fn=/ { cur = fname(substr($0, 4)); next }
  /^cfn=/ { fname(substr($0, 5)); next }
  /^(cfi|cfl|calls|fl|fi|fe|ob|cob)=/ { if ($0 ~ /^calls=/) skip = 1; next }
  /^[0-9+-]/ { if (skip) { skip = 0; next } if (cur != "") cost[cur] += $(npos + 1); next }
  END { for (f in cost) printf "%d %s\n", cost[f], f }
' "$work"/cg.* | sort -k1,1nr -k2 | awk '{print $2}' > "$work/ran"
# Callgrind marks a recursive call's cycle with 'N (name'2): the name is the same. Start-up code
# callgrind names otherwise ("(below main)") or sees only in part, and every IFUNC resolver (a
# static glibc runs them all before main, each from its function's object), follow the list.
{
  sed "s/'[0-9]*\$//" "$work/ran"
  echo _start; echo __libc_start_main; echo __libc_start_call_main; echo _dl_relocate_static_pie
  nm --defined-only "$work/babeld-rs" | awk '$2 == "i" {print $3}'
  # A resolver picks a string function's variant for the CPU it runs on, and valgrind's CPU is
  # not the router's: every variant of a family the list has (__memmove_avx_unaligned_erms:
  # __memmove_evex_unaligned_erms, __memmove_sse2_unaligned, ...).
  sed -nE 's/^(__[a-z]+)_(avx|evex|sse|ssse|erms).*$/\1/p' "$work/ran" | sort -u > "$work/families"
  grep -E '^__[a-z]+_(avx|evex|sse|ssse|erms)' "$work/defined" | grep -F -f <(sed 's/$/_/' "$work/families") || true
} | awk '!seen[$0]++' | grep -Fxf "$work/defined" > "$work/order" || true
n=$(wc -l < "$work/order")
[ "$n" -gt 100 ] || { echo "symbol-order: only $n functions found, keeping $out"; exit 1; }
if [ -n "$check" ]; then
  packaging/router/link.sh --resolve "$work/babeld-rs" "$out" > "$work/listed"
  grep -Fxvf "$work/listed" "$work/order" > "$work/missing" || true
  missing=$(wc -l < "$work/missing")
  # The workspace's own: its crates as a mangled path's first part (_ZN10babel_core...) or as
  # the type of a trait impl (_ZN63_$LT$babel_core..engine..RouteKey$u20$as$u20$...).
  crates='clock|babel_wire|babel_core|kernel_fib|price_metric|payments|settlement|verify|tunnel|exit|daemon|babeld_rs'
  ours=$(grep -cE "(_ZN[0-9]+|\\\$LT\\\$)($crates)([0-9]|\\.\\.)" "$work/missing" || true)
  echo "symbol-order: $n functions ran; $(wc -l < "$work/listed") listed in $out; $missing ran and are not listed ($ours of them the workspace's own)"
  sed 's/^/  not listed: /' "$work/missing"
  if [ "$ours" -gt "${MAX_MISSING:-3}" ] || [ "$missing" -gt "${MAX_MISSING_ALL:-10}" ]; then
    echo "symbol-order: $out is stale: run \`sudo scripts/symbol-order.sh\` and commit the list"
    exit 1
  fi
  exit 0
fi
# A few functions run in some runs and not in others (a vector growing at another moment): the
# functions of the list before that this build still has are kept, after this run's, so the list
# is the union of the runs it was made from.
if [ -f "$out" ]; then
  packaging/router/link.sh --resolve "$work/babeld-rs" "$out" | grep -Fxvf "$work/order" >> "$work/order" || true
  n=$(wc -l < "$work/order")
fi
mkdir -p "$(dirname "$out")"
{
  echo "# Functions a router runs (start-up, ring of 4 idle, full-table exchange, reroute), most instructions"
  echo "# first: the link order of \`cargo router\`. Generated by scripts/symbol-order.sh; do not edit."
  cat "$work/order"
} > "$out"
# Cargo does not see the list (a linker argument): the binary's main file is touched so the next
# `cargo router` links again. A list changed by git needs the same (or `cargo clean -p daemon`).
touch daemon/src/bin/babeld-rs/main.rs
echo "symbol-order: $n functions written to $out; \`cargo router\` links with it"
[ -z "${KEEP:-}" ] || echo "symbol-order: profiles and lists kept in $work"
