#!/usr/bin/env bash
# Fuzzes the origin and the edge against their own OpenAPI documents (/openapi.json) with
# schemathesis: every answer must be no 5xx, a status and content type the document lists, and
# a body its schema accepts, and input the document forbids must be refused. Starts its own
# origin (SQLite in a temporary directory) and local edge on free ports, seeds an org, a token
# and an active agent for the fuzzer to find, and stops them when done. Then generates TypeScript
# types from both documents (openapi-typescript) and type-checks a client written against them
# (scripts/openapi/check.ts) with tsc: proof that generators can use the documents.
#   scripts/schemathesis.sh [SECONDS]   # the time budget of each run (default 60)
# Needs the built worker and origin (scripts/test.sh builds them first).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/edge-toolchain.sh
source scripts/lib/python-env.sh

BUDGET="${1:-60}"
TARGET_DIR="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)"
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection

ensure_edge_toolchain
ensure_python_env
SCHEMATHESIS=("$VOUCH_PYTHON" -m schemathesis.cli)

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$VOUCH_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
secret() { printf '%s%s\n' "$1" "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"; }

EDGE_PORT="$(free_port)"
KV_API_PORT="$(free_port)"
ORIGIN_PORT="$(free_port)"
ADMIN="$(secret vk_admin_)"
EDGE_SECRET="$(secret edge_)"
KV_TOKEN="$(secret kv_)"
ORIGIN="http://127.0.0.1:$ORIGIN_PORT"
EDGE="http://127.0.0.1:$EDGE_PORT"

# Rate limits off (origin) and far away (edge): the fuzzer is to reach the handlers. A 429 is
# documented all the same.
VOUCH_EDGE_RATE_LIMIT=1000000 \
VOUCH_EDGE_PORT="$EDGE_PORT" VOUCH_KV_API_PORT="$KV_API_PORT" VOUCH_EDGE_PERSIST="$WORK/edge" \
  VOUCH_KV_API_TOKEN="$KV_TOKEN" VOUCH_EDGE_SECRET="$EDGE_SECRET" \
  "$VOUCH_NODE" scripts/edge/serve.mjs > "$WORK/edge.ready" 2> "$WORK/edge.log" &
PIDS+=($!)
for _ in $(seq 1 300); do
  [ -s "$WORK/edge.ready" ] && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$WORK/edge.log" >&2; echo "the local edge did not start" >&2; exit 1; }
  sleep 0.1
done
KV_API_BASE="$(sed -n 's/.*"kv_api_base":"\([^"]*\)".*/\1/p' "$WORK/edge.ready" | head -n 1)"

(cd "$WORK" && VOUCH_RATE_TOKEN_PER_CREDENTIAL=0 VOUCH_RATE_TOKEN_PER_ADDRESS=0 \
  VOUCH_RATE_ADMIN_PER_CREDENTIAL=0 VOUCH_RATE_ADMIN_PER_ADDRESS=0 DATABASE_URL="sqlite://$WORK/vouch.db" VOUCH_ADMIN_TOKEN="$ADMIN" RUST_LOG=warn \
  VOUCH_KV_API_TOKEN="$KV_TOKEN" VOUCH_KV_API_BASE="$KV_API_BASE" VOUCH_KV_ACCOUNT_ID=local \
  VOUCH_KV_NAMESPACE_ID=vouch-local VOUCH_EDGE_URL="$EDGE" VOUCH_EDGE_SECRET="$EDGE_SECRET" \
  exec "$TARGET_DIR/debug/vouch-origin" serve --listen "127.0.0.1:$ORIGIN_PORT") > "$WORK/origin.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do
  curl -fsS "$ORIGIN/readyz" >/dev/null 2>&1 && break
  kill -0 "${PIDS[1]}" 2>/dev/null || { cat "$WORK/origin.log" >&2; echo "the origin did not start" >&2; exit 1; }
  sleep 0.1
done

# Something for the fuzzer to find: an org, an owner token, an active agent.
api() { curl -fsS -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' "$@"; }
ORG="$(api -X POST "$ORIGIN/v1/orgs" -d '{"name":"Fuzz Corp","slug":"fuzz"}' | sed -n 's/.*"org_id":"\([^"]*\)".*/\1/p')"
api -X POST "$ORIGIN/v1/orgs/$ORG/tokens" -d '{"role":"owner","name":"fuzz"}' > /dev/null
api -X POST "$ORIGIN/v1/agents" -d "{\"org_id\":\"$ORG\",\"name\":\"Fuzz Bot\",\"status\":\"active\",
  \"owner\":{\"display_name\":\"Fuzz Team\",\"contact\":\"fuzz@example.com\"},
  \"capabilities\":[{\"id\":\"payments.refund\",\"params\":{\"max_amount\":100,\"currency\":\"USD\"}}],
  \"regions\":[\"US-CA\"]}" > /dev/null
# The edge answers 503 until the origin has seeded its status journal.
for _ in $(seq 1 300); do
  curl -fsS "$EDGE/openapi.json" >/dev/null 2>&1 &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$EDGE/verify?agent_id=ap_00000000000000000000000000000000")" != 503 ] && break
  sleep 0.1
done

run() {
  local name="$1" url="$2"; shift 2
  echo "==> schemathesis against the $name ($url/openapi.json, ${BUDGET}s)"
  # From the temporary directory: schemathesis keeps a cache in the working directory.
  (cd "$WORK" && "${SCHEMATHESIS[@]}" run "$url/openapi.json" --url "$url" --checks "$CHECKS" \
    --max-time "$BUDGET" --workers 1 --seed 1 --no-color --generation-database none \
    --suppress-health-check all --request-timeout 10 "$@")
}
status=0
run origin "$ORIGIN" -H "Authorization: Bearer $ADMIN" --exclude-path /metrics --exclude-path /v1/events/stream || status=1
run edge "$EDGE" || status=1
if [ "$status" != 0 ]; then
  echo "--- origin log (tail)"; tail -n 20 "$WORK/origin.log"
  exit "$status"
fi

echo "==> a generated client compiles against both documents (openapi-typescript, tsc --noEmit)"
ensure_npm_tree "$VOUCH_REPO/scripts/openapi"
tools="$VOUCH_REPO/scripts/openapi/node_modules"
mkdir -p "$WORK/ts/generated"
cp scripts/openapi/check.ts "$WORK/ts/"
for part in origin edge; do
  url="$ORIGIN"; [ "$part" = edge ] && url="$EDGE"
  curl -fsS "$url/openapi.json" > "$WORK/$part.json"
  "$VOUCH_NODE" "$tools/openapi-typescript/bin/cli.js" "$WORK/$part.json" \
    -o "$WORK/ts/generated/$part.ts" --silent
done
"$VOUCH_NODE" "$tools/typescript/bin/tsc" --noEmit --strict --target es2022 --module esnext \
  --moduleResolution bundler "$WORK/ts/check.ts"
echo "types generated from both documents type-check"
