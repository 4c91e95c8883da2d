#!/usr/bin/env bash
# The TypeScript SDK's tests (node:test) against the real thing: a local edge (the built worker
# in workerd, scripts/edge/serve.mjs) and an origin (`vouch-origin serve` on SQLite in a
# temporary directory) on free ports, wired as scripts/dev.sh wires them, stopped when done.
# Compiles the SDK and its tests with tsc first.
#   sdk/typescript/test/run.sh [TEST FILE…]     # default: every build/test/*.test.js
# Needs the built worker and origin (scripts/test.sh builds them first; CARGO_TARGET_DIR as
# there). The offline-verification benchmark (build/test/bench.js, docs/benchmarks.md) is
# compiled with the tests but run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
SDK="$PWD"
REPO="$(cd ../.. && pwd)"
source "$REPO/scripts/lib/edge-toolchain.sh"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$REPO/$TARGET_DIR" ;; esac
ORIGIN_BIN="$TARGET_DIR/debug/vouch-origin"
[ -x "$ORIGIN_BIN" ] || { echo "no $ORIGIN_BIN: build it first (cargo build -p vouch-origin)" >&2; exit 1; }
[ -f "$REPO/edge-worker/build/index.js" ] || { echo "no edge-worker/build: build the worker first (scripts/test.sh does)" >&2; exit 1; }

ensure_edge_toolchain
ensure_npm_tree "$SDK"

echo "==> tsc (the SDK, then its tests)"
rm -rf dist build
"$VOUCH_NODE" node_modules/typescript/bin/tsc -p tsconfig.json
"$VOUCH_NODE" node_modules/typescript/bin/tsc -p tsconfig.test.json

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$VOUCH_NODE" -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }
secret() { printf '%s%s\n' "$1" "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"; }

ORIGIN_PORT="$(free_port)"
ADMIN="$(secret vk_admin_)"
EDGE_SECRET="$(secret edge_)"
KV_TOKEN="$(secret kv_)"
ORIGIN="http://127.0.0.1:$ORIGIN_PORT"

echo "==> starting the local edge and the origin"
VOUCH_EDGE_PORT=0 VOUCH_KV_API_PORT=0 VOUCH_KV_API_TOKEN="$KV_TOKEN" VOUCH_EDGE_SECRET="$EDGE_SECRET" \
  VOUCH_JOURNAL_REFRESH_MS=250 \
  "$VOUCH_NODE" "$REPO/scripts/edge/serve.mjs" > "$WORK/edge.ready" 2> "$WORK/edge.log" &
PIDS+=($!)
for _ in $(seq 1 600); do
  [ -s "$WORK/edge.ready" ] && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$WORK/edge.log" >&2; echo "the local edge did not start" >&2; exit 1; }
  sleep 0.1
done
EDGE="$(sed -n 's/.*"edge":"\([^"]*\)".*/\1/p' "$WORK/edge.ready" | head -n 1)"
KV_API_BASE="$(sed -n 's/.*"kv_api_base":"\([^"]*\)".*/\1/p' "$WORK/edge.ready" | head -n 1)"
[ -n "$EDGE" ] && [ -n "$KV_API_BASE" ] || { cat "$WORK/edge.ready" "$WORK/edge.log" >&2; echo "the local edge's ready line is not what this script reads" >&2; exit 1; }

# Webhooks to the tests' own loopback receivers are allowed (development setting).
(cd "$WORK" && DATABASE_URL="sqlite://$WORK/vouch.db" VOUCH_ADMIN_TOKEN="$ADMIN" RUST_LOG=warn \
  VOUCH_KV_API_TOKEN="$KV_TOKEN" VOUCH_KV_API_BASE="$KV_API_BASE" VOUCH_KV_ACCOUNT_ID=local \
  VOUCH_KV_NAMESPACE_ID=vouch-local VOUCH_EDGE_URL="$EDGE" VOUCH_EDGE_SECRET="$EDGE_SECRET" \
  VOUCH_WEBHOOK_ALLOW_PRIVATE=true \
  exec "$ORIGIN_BIN" serve --listen "127.0.0.1:$ORIGIN_PORT") > "$WORK/origin.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  curl -fsS "$ORIGIN/readyz" >/dev/null 2>&1 && break
  kill -0 "${PIDS[1]}" 2>/dev/null || { cat "$WORK/origin.log" >&2; echo "the origin did not start" >&2; exit 1; }
  sleep 0.1
done
# The edge answers 503 until the origin has seeded its status journal.
for _ in $(seq 1 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$EDGE/verify?agent_id=ap_00000000000000000000000000000000")" = 404 ] && break
  sleep 0.1
done

echo "==> node --test (origin $ORIGIN, edge $EDGE)"
if [ "$#" -gt 0 ]; then TESTS=("$@"); else TESTS=(build/test/*.test.js); fi
status=0
VOUCH_TEST_ORIGIN="$ORIGIN" VOUCH_TEST_EDGE="$EDGE" VOUCH_TEST_ADMIN="$ADMIN" \
  "$VOUCH_NODE" --test --test-reporter=spec "${TESTS[@]}" || status=$?
if [ "$status" != 0 ]; then
  echo "--- origin log (tail)"; tail -n 30 "$WORK/origin.log"
  echo "--- edge log (tail)"; tail -n 30 "$WORK/edge.log"
fi
exit "$status"
