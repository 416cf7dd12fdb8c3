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
cargo test --workspace
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
# The release daemon built above from this same tree: 50 optimised daemons fit a 2-core
# machine better than 50 debug ones.
MESH_BIN="$PWD/target/release/babeld-rs" cargo test -p daemon --test mesh_netns -- --ignored --nocapture
