#!/usr/bin/env bash
# Token decision cost at the edge: POST /verify with one-hop delegated tokens the release origin
# minted, first verification vs cached, next to the same decision by agent_id; release worker in
# workerd. Prints a markdown table. VOUCH_BENCH_TOKENS (4000), VOUCH_BENCH_SECONDS (4).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/edge-toolchain.sh
# Thousands of requests per second from one address: the edge's per-address rate limit is off.
export VOUCH_EDGE_RATE_LIMIT=0
ensure_edge_toolchain
echo "==> building the worker (release)" >&2
build_edge_worker
cargo bench --locked -p vouch-e2e --bench tokens
