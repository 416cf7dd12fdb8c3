#!/usr/bin/env bash
# Runs every check and test of the workspace, exactly as CI does (.ci/run calls this script).
# As root it first installs the reference peers and tools the tests use, from Debian's packages;
# without root, the tests that need root or network namespaces print why and skip.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(babeld bird2 tshark tcpdump iproute2 iputils-ping wireguard-go wireguard-tools iperf3 nftables chromium valgrind)
# As a user with sudo, run again as root (keeping the Rust toolchain on the PATH); a fresh
# Debian's root shell has no sudo and needs none. BABELD_RS_NO_SUDO=1 runs as the user.
if [ "$(id -u)" != 0 ] && [ -z "${BABELD_RS_NO_SUDO:-}" ] && command -v sudo >/dev/null; then
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME "$0" "$@"
fi
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "== not root: not installing ${packages[*]}; network-namespace tests will skip"
fi

# Settlement tests run a local EVM node and check the committed contract artifacts against a fresh
# compile: anvil and solc-js from the npm registry, into a git-ignored folder of the crate.
settlement_tools=settlement/.tools
if command -v npm >/dev/null && [ ! -x "$settlement_tools/node_modules/.bin/anvil" ]; then
  echo "== installing anvil and solc (npm) into $settlement_tools"
  npm install --silent --no-audit --no-fund --prefix "$settlement_tools" \
    @foundry-rs/anvil-linux-amd64@1.7.1 solc@0.8.37 >/dev/null
fi

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p daemon --features settlement --all-targets -- -D warnings
echo "== fuzz targets build"
cargo check --quiet --manifest-path fuzz/Cargo.toml
echo "== Debian package (cargo-deb; systemd unit, man pages from the command lines)"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo build --release -q -p daemon -p babelctl --bins
./target/release/babelctl man target/release/man
gzip -9nf target/release/man/babeld-rs.8 target/release/man/babelctl.1
rm -f target/debian/babeld-rs_*.deb
cargo deb -p daemon --no-build
ls -l target/debian/babeld-rs_*.deb
if [ "$(id -u)" = 0 ]; then
  # The package's daemon is run in a namespace by daemon/tests/ops_netns.rs.
  dpkg -i target/debian/babeld-rs_*.deb >/dev/null
fi
echo "== cargo test"
# The daemon's namespace tests run the release daemon and babelctl built and packaged above from
# this same tree: the binaries a router runs. A debug build of the daemon spends its time in
# unoptimised code, and the daemons of one test starve each other on 2 cores; a debug babelctl
# would be built again inside the tests (`test_support::workspace_bin`, with the features of
# that package alone). Without the variables (a plain `cargo test`) the tests run the debug
# builds, with their debug assertions and overflow checks; the engine's and simulator's tests
# run with them here too.
export BABELD_RS_BIN_BABELD_RS="$PWD/target/release/babeld-rs"
export BABELD_RS_BIN_BABELCTL="$PWD/target/release/babelctl"
# The tests of `cargo test --workspace`, built once, then run in two lanes at once: the
# namespace tests (`*_netns`, mostly waiting on the protocol's timers) and all the others (mostly
# CPU: the engine, the simulator, the crash tests), niced so that the daemons are served first.
# Both lanes select from the whole workspace, so they run the binaries built here; a lane per
# package would resolve other features and build again. The second lane's output is printed when
# both have ended; the doc tests run after. A failing test binary does not stop its lane, so
# one run shows every failure.
cargo test --workspace --no-run
other_tests=()
for f in */tests/*.rs; do
  name=$(basename "$f" .rs)
  case "$name" in *_netns) ;; *) other_tests+=(--test "$name") ;; esac
done
all=$(cargo test --workspace --no-run 2>&1 | grep -c '^  Executable ')
netns=$(cargo test --workspace --test '*_netns' --no-run 2>&1 | grep -c '^  Executable ')
rest=$(cargo test --workspace --lib --bins "${other_tests[@]}" --no-run 2>&1 | grep -c '^  Executable ')
if [ "$all" != $((netns + rest)) ]; then
  echo "== the two lanes select $netns + $rest test binaries of the workspace's $all"
  exit 1
fi
others_log=$(mktemp)
nice -n 10 cargo test --workspace --no-fail-fast --lib --bins "${other_tests[@]}" >"$others_log" 2>&1 &
others=$!
trap 'kill "$others" 2>/dev/null || true' EXIT
netns_rc=0
cargo test --workspace --no-fail-fast --test '*_netns' || netns_rc=$?
others_rc=0
wait "$others" || others_rc=$?
trap - EXIT
echo "== cargo test: the other tests (run beside the namespace tests)"
cat "$others_log"
rm -f "$others_log"
if [ "$netns_rc" != 0 ] || [ "$others_rc" != 0 ]; then
  echo "== cargo test failed: namespace tests exit code $netns_rc, the others' $others_rc"
  exit 1
fi
cargo test --workspace --doc
echo "== monitor bench, once in test mode (its checks: every route learned, a line per event)"
MONITOR_ROUTES=20000 MONITOR_ROUNDS=1 cargo test -p daemon --bench monitor
echo "== settlement in the daemon (feature settlement; anvil in a namespace)"
cargo test -p daemon --features settlement --test settlement_netns
echo "== the router build's symbol list covers the functions a router runs (scripts/symbol-order.sh --check)"
if [ "$(id -u)" = 0 ]; then
  scripts/symbol-order.sh --check
else
  echo "skipped: the check runs routers in network namespaces, which needs root"
fi
echo "== the demo, the README's first command (scripts/demo.sh: prices, verification, an exit with payments)"
if [ "$(id -u)" = 0 ]; then
  scripts/demo.sh
else
  echo "skipped: the demo runs routers in network namespaces, which needs root"
fi
echo "== 50 routers on one bridge (alone: it needs the machine to itself)"
# The release daemon built above (BABELD_RS_BIN_BABELD_RS): 50 optimised daemons fit a 2-core
# machine better than 50 debug ones.
cargo test -p daemon --test mesh_netns -- --ignored --nocapture
