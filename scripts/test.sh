#!/usr/bin/env bash
# Runs every check and test of the workspace, exactly as CI does (.ci/run calls this script).
# As root it first installs the reference peers and tools the tests use, from Debian's packages;
# without root, the tests that need root or network namespaces print why and skip.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(babeld bird2 tshark tcpdump iproute2 iputils-ping wireguard-go wireguard-tools iperf3 nftables)
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
echo "== fuzz targets build"
cargo check --quiet --manifest-path fuzz/Cargo.toml
echo "== cargo test"
cargo test --workspace
