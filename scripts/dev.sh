#!/usr/bin/env bash
# Starts Vouch locally, in the foreground:
#   - the local edge: the worker built from edge-worker/ running in the real Workers runtime
#     (workerd, via Miniflare) with a KV namespace, and an endpoint shaped like the Cloudflare KV
#     REST API that writes into it;
#   - the origin on embedded SQLite (.dev/vouch.db), publishing to that endpoint exactly as it
#     would to Cloudflare, and appending status changes to the edge's status journal (a Durable
#     Object in the same workerd) through the worker's POST /internal/journal.
# Prints the URLs and the platform admin token; Ctrl-C stops everything.
# Ports: VOUCH_ORIGIN_PORT (8080), VOUCH_EDGE_PORT (8787), VOUCH_KV_API_PORT (8788).
# The first run installs the pinned edge tools into ~/.cache/vouch (a few minutes, once).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/edge-toolchain.sh

ORIGIN_PORT="${VOUCH_ORIGIN_PORT:-8080}"
EDGE_PORT="${VOUCH_EDGE_PORT:-8787}"
KV_API_PORT="${VOUCH_KV_API_PORT:-8788}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
mkdir -p .dev

secret() { printf '%s%s\n' "$1" "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"; }
# Stable local secrets, generated once (git-ignored), unless the caller brings its own.
[ -s .dev/admin-token ] || (umask 077; secret vk_admin_ > .dev/admin-token)
[ -s .dev/kv-token ] || (umask 077; secret kv_ > .dev/kv-token)
[ -s .dev/edge-secret ] || (umask 077; secret edge_ > .dev/edge-secret)
export VOUCH_ADMIN_TOKEN="${VOUCH_ADMIN_TOKEN:-$(cat .dev/admin-token)}"
export VOUCH_KV_API_TOKEN="$(cat .dev/kv-token)"
# The secret of the edge's POST /internal/journal, shared by the local edge and the origin.
export VOUCH_EDGE_SECRET="${VOUCH_EDGE_SECRET:-$(cat .dev/edge-secret)}"
export DATABASE_URL="${DATABASE_URL:-sqlite://.dev/vouch.db}"

ensure_edge_toolchain
echo "==> building the edge worker"
build_edge_worker
echo "==> building the origin and the CLI"
cargo build --locked -p vouch-origin --bin vouch-origin -p vouch-cli --bin vouch
# The edge's decision key (SPEC §12), an Ed25519 private JWK kept across runs (git-ignored), so
# receipts signed yesterday still verify today; deployed, it is the secret VOUCH_DECISION_KEY.
[ -s .dev/decision-key.jwk ] || (umask 077; "${CARGO_TARGET_DIR:-target}/debug/vouch" decision-key > .dev/decision-key.jwk)
export VOUCH_DECISION_KEY="${VOUCH_DECISION_KEY:-$(cat .dev/decision-key.jwk)}"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

EDGE_LOG=.dev/edge.ready
rm -f "$EDGE_LOG"
VOUCH_EDGE_PORT="$EDGE_PORT" VOUCH_KV_API_PORT="$KV_API_PORT" VOUCH_EDGE_PERSIST=.dev/edge-kv \
  "$VOUCH_NODE" scripts/edge/serve.mjs > "$EDGE_LOG" &
PIDS+=($!)
for _ in $(seq 1 300); do
  [ -s "$EDGE_LOG" ] && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { echo "the local edge did not start" >&2; exit 1; }
  sleep 0.1
done
KV_API_BASE="$(sed -n 's/.*"kv_api_base":"\([^"]*\)".*/\1/p' "$EDGE_LOG" | head -n 1)"

VOUCH_KV_API_BASE="$KV_API_BASE" VOUCH_KV_ACCOUNT_ID=local VOUCH_KV_NAMESPACE_ID=vouch-local \
  VOUCH_EDGE_URL="${VOUCH_EDGE_URL:-http://127.0.0.1:${EDGE_PORT}}" \
  "$TARGET_DIR/debug/vouch-origin" serve --listen "127.0.0.1:${ORIGIN_PORT}" &
PIDS+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:${ORIGIN_PORT}/readyz" >/dev/null 2>&1 && break
  kill -0 "${PIDS[1]}" 2>/dev/null || { echo "the origin did not start" >&2; exit 1; }
  sleep 0.1
done

cat <<BANNER

  Vouch is running.
    console:      http://127.0.0.1:${ORIGIN_PORT}/console   (sign in with the admin token below)
    origin:       http://127.0.0.1:${ORIGIN_PORT}   (admin API; docs at /openapi.json)
    edge:         http://127.0.0.1:${EDGE_PORT}   (GET/POST /verify, /verify/batch, /.well-known/jwks.json; public pages at /agents/<id>)
    journal:      on (suspend with ?wait=propagated to see propagated_at)
    KV API:       ${KV_API_BASE}   (Cloudflare KV REST shape; the origin publishes here)
    database:     ${DATABASE_URL}
    admin token:  ${VOUCH_ADMIN_TOKEN}
    master key:   .dev/vouch-master.key (development only: set VOUCH_MASTER_KEY in production)

  In another shell:
    export VOUCH_URL=http://127.0.0.1:${ORIGIN_PORT} VOUCH_TOKEN=${VOUCH_ADMIN_TOKEN}
    ${TARGET_DIR}/debug/vouch orgs create --name "Acme" --slug acme
    curl -s "http://127.0.0.1:${EDGE_PORT}/verify?agent_id=ap_…"
    ${TARGET_DIR}/debug/vouch token --agent ap_… --api-key vk_agent_…   # an ES256 token for POST /verify

  Ctrl-C stops everything.
BANNER
wait -n "${PIDS[@]}"
