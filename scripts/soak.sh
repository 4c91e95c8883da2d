#!/usr/bin/env bash
# Soak benchmark: VOUCH_SOAK_SECONDS (default 600) of mixed load — GET /verify, decisions that
# commit to the daily caps, registrations, status flips timed until the edge shows them, token
# exchanges — against the release origin (its own process, SQLite) and the release worker in
# workerd, sampling the resident memory of both every 10 s. Prints a markdown table and the
# verdict (0 errors, memory flat: the last minute within 10 % of the second, propagation p99
# ≤ 1 s every minute); writes target/soak/soak.csv and plots it to docs/soak.png.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/edge-toolchain.sh
source scripts/lib/python-env.sh
ensure_edge_toolchain
ensure_python_env plotting
echo "==> building the worker and the origin (release)" >&2
build_edge_worker
cargo build --release --locked -p vouch-origin --bin vouch-origin
out="${VOUCH_SOAK_OUT:-${CARGO_TARGET_DIR:-target}/soak}"
status=0
VOUCH_SOAK_OUT="$out" cargo bench --locked -p vouch-e2e --bench soak || status=$?
"$VOUCH_PYTHON" scripts/plot-soak.py "$out/soak.csv" docs/soak.png
exit "$status"
