#!/usr/bin/env bash
# Stripped size of the router (`babeld-rs`, `cargo build --profile small`) without and with the
# settlement crate linked in. The daemon does not depend on this crate yet, so the "with" build
# is a throw-away copy of the tree whose daemon starts a ChainSettlement when
# BABELD_RS_SETTLEMENT_RPC is set (so that link-time optimisation cannot drop it).
# Usage: settlement/measure-size.sh [work-dir]   (takes a while: two LTO builds)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/settlement-size.XXXXXX)}
export CARGO_TARGET_DIR="$work/target"
rm -rf "$work/src" && mkdir -p "$work/src"
git archive HEAD | tar -x -C "$work/src"
(cd "$work/src" && cargo build --quiet --profile small -p daemon --bin babeld-rs)
without=$(stat -c %s "$CARGO_TARGET_DIR/small/babeld-rs")
cp "$CARGO_TARGET_DIR/small/babeld-rs" "$work/babeld-rs.without"
cd "$work/src"
sed -i 's|^\[dependencies\]$|[dependencies]\nsettlement = { path = "../settlement" }|' daemon/Cargo.toml
python3 - <<'PY'
p = "daemon/src/bin/babeld-rs/main.rs"
s = open(p).read()
s = s.replace("fn main() -> ExitCode {\n", """fn main() -> ExitCode {
    if let Ok(url) = std::env::var("BABELD_RS_SETTLEMENT_RPC") {
        let config = settlement::ChainConfig {
            rpc_url: url,
            chain_id: 31337,
            contract: Default::default(),
            key: match std::env::var("BABELD_RS_SETTLEMENT_KEY").unwrap_or_default().parse() {
                Ok(k) => k,
                Err(_) => return ExitCode::from(2),
            },
            channel_key: [0; 32],
            policy: Default::default(),
            poll_interval: std::time::Duration::from_secs(5),
            top_up: Default::default(),
        };
        let _settlement = settlement::ChainSettlement::start(config);
    }
""", 1)
open(p, "w").write(s)
PY
cargo build --quiet --profile small -p daemon --bin babeld-rs
with=$(stat -c %s "$CARGO_TARGET_DIR/small/babeld-rs")
echo "babeld-rs --profile small, stripped: without settlement $without bytes, with settlement $with bytes (+$((with - without)))"
