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

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== fuzz targets build"
cargo check --quiet --manifest-path fuzz/Cargo.toml
echo "== cargo test"
cargo test --workspace
