#!/usr/bin/env bash
# Build the adversarial sweep's bench binary (babel-sim, `--bench adversary`) for this machine
# with whole-program optimisation and profile-guided optimisation, and print its path.
#
#   scripts/adversary-pgo.sh              # then: ADV_RUNS=DIR ... "$(scripts/adversary-pgo.sh | tail -1)" 1000 50 200 wired 1
#
# Only the sweep's speed changes: a run gives the same `seed-N.json`, byte for byte, as the
# plain `cargo bench` binary (docs/verify.md, "Commands"). The training runs take the `ADV_*`
# knobs of the calling environment (but not `ADV_RUNS`: they keep nothing), so export the
# sweep's knobs first and the profile is the one the sweep will run.
#
# Needs `llvm-profdata` of the toolchain's LLVM: `rustup component add llvm-tools`.
# PGO_TARGET (default target/pgo) is the build directory; PGO_SEEDS (default "1 190 193") the
# training seeds, drawn at 50-200 nodes.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${PGO_TARGET:-target/pgo}
seeds=${PGO_SEEDS:-1 190 193}
profdata="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
    echo "adversary-pgo: no $profdata; run: rustup component add llvm-tools" >&2
    exit 1
fi

raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT

build() { # RUSTFLAGS -> the binary's path
    CARGO_TARGET_DIR="$target" CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
        RUSTFLAGS="-C target-cpu=native $1" \
        cargo bench -p babel-sim --bench adversary --no-run --message-format json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1
}

instrumented=$(build "-C profile-generate=$raw")
[ -x "$instrumented" ] || { echo "adversary-pgo: the instrumented build failed" >&2; exit 1; }
for s in $seeds; do
    echo "adversary-pgo: training on seed $s" >&2
    env -u ADV_RUNS ADV_FIRST="$s" "$instrumented" 1 50 200 wired 1 >/dev/null
done
"$profdata" merge -o "$raw/merged.profdata" "$raw"/*.profraw

optimised=$(build "-C profile-use=$raw/merged.profdata")
[ -x "$optimised" ] || { echo "adversary-pgo: the optimised build failed" >&2; exit 1; }
echo "$optimised"
