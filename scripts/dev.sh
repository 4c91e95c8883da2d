#!/usr/bin/env bash
# Starts Vouch locally: the origin on embedded SQLite (.dev/vouch.db), in the foreground.
# Prints the URL and the platform admin token; Ctrl-C stops it.
# Ports: VOUCH_ORIGIN_PORT (default 8080). The local edge joins in the edge release.
set -euo pipefail
cd "$(dirname "$0")/.."

ORIGIN_PORT="${VOUCH_ORIGIN_PORT:-8080}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
mkdir -p .dev

# A stable local admin token, generated once (git-ignored), unless the caller brings one.
if [ -z "${VOUCH_ADMIN_TOKEN:-}" ]; then
  if [ ! -s .dev/admin-token ]; then
    (umask 077; printf 'vk_admin_%s\n' "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')" > .dev/admin-token)
  fi
  VOUCH_ADMIN_TOKEN="$(cat .dev/admin-token)"
fi
export VOUCH_ADMIN_TOKEN
export DATABASE_URL="${DATABASE_URL:-sqlite://.dev/vouch.db}"

echo "==> building the origin and the CLI"
cargo build --locked -p vouch-origin --bin vouch-origin --bin vouch

"$TARGET_DIR/debug/vouch-origin" serve --listen "127.0.0.1:${ORIGIN_PORT}" &
ORIGIN_PID=$!
trap 'kill "$ORIGIN_PID" 2>/dev/null || true; wait "$ORIGIN_PID" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:${ORIGIN_PORT}/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$ORIGIN_PID" 2>/dev/null; then echo "the origin did not start" >&2; exit 1; fi
  sleep 0.1
done

cat <<BANNER

  Vouch is running.
    origin:       http://127.0.0.1:${ORIGIN_PORT}   (API docs: /openapi.json)
    database:     ${DATABASE_URL}
    admin token:  ${VOUCH_ADMIN_TOKEN}

  In another shell:
    export VOUCH_URL=http://127.0.0.1:${ORIGIN_PORT} VOUCH_TOKEN=${VOUCH_ADMIN_TOKEN}
    ${TARGET_DIR}/debug/vouch orgs create --name "Acme" --slug acme

  Ctrl-C stops everything.
BANNER
wait "$ORIGIN_PID"
