#!/usr/bin/env bash
# Propagation benchmark: PUT …/status returned → the local edge refuses, over
# VOUCH_BENCH_CHANGES (default 200) suspensions, with the release origin, its KV publisher,
# the KV REST-shaped endpoint and the release worker in workerd, first normally, then with every
# KV write failing (the status journal alone). VOUCH_JOURNAL_REFRESH_MS (default 500, the
# deployed default) is how often the worker's isolates pull the journal. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/edge-toolchain.sh
# Thousands of requests per second from one address: the edge's per-address rate limit is off.
export VOUCH_EDGE_RATE_LIMIT=0
ensure_edge_toolchain
echo "==> building the worker (release)" >&2
build_edge_worker
VOUCH_JOURNAL_REFRESH_MS="${VOUCH_JOURNAL_REFRESH_MS:-500}" cargo bench --locked -p vouch-e2e --bench propagation
