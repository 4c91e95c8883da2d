#!/usr/bin/env bash
# Origin benchmark (DESIGN §4): registrations/s and passport reads/s with p50/p99, first on a
# fresh SQLite file, then on a fresh PostgreSQL database when one is reachable. A benchmark, not
# a test: it prints a markdown table and fails only when it cannot run.
#
# Environment:
#   VOUCH_BENCH_CONCURRENCY     concurrency levels, comma-separated (default 1,8,32)
#   VOUCH_BENCH_DURATION_SECS   seconds per (operation, concurrency) run (default 5)
#   VOUCH_BENCH_POSTGRES_URL    server to create a scratch database on
#                               (default postgres://postgres@127.0.0.1:5432/test; skipped if unreachable)
#   CARGO_TARGET_DIR            honoured when locating the binaries
#   VOUCH_BENCH_BIN_DIR         run these prebuilt vouch-origin and vouch-bench instead of building
#                               (e.g. another commit's build, to compare in one session)
#   VOUCH_BENCH_LABEL_SUFFIX    appended to the row labels (e.g. " before")
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

concurrency="${VOUCH_BENCH_CONCURRENCY:-1,8,32}"
duration="${VOUCH_BENCH_DURATION_SECS:-5}"
pg_url="${VOUCH_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
pg_db="vouch_bench_$$"
bin="${VOUCH_BENCH_BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}"
suffix="${VOUCH_BENCH_LABEL_SUFFIX:-}"

workdir="$(mktemp -d "${TMPDIR:-/tmp}/vouch-bench.XXXXXX")"
server_pid=""
pg_created=""

stop_server() {
  if [[ -n "$server_pid" ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

cleanup() {
  local status=$?
  stop_server
  if [[ -n "$pg_created" ]]; then
    psql "$pg_url" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 ||
      echo "warning: could not drop database $pg_db" >&2
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z "${VOUCH_BENCH_BIN_DIR:-}" ]]; then
  echo "building (release)..." >&2
  cargo build --release -p vouch-origin --bin vouch-origin --bin vouch-bench
fi

# A fresh platform admin token: the `vk_admin_` prefix the origin expects, then 64 hex characters.
token="vk_admin_$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"

# Starts the origin on DATABASE_URL=$2 on a free loopback port (the kernel picks it: port 0),
# waits for /readyz and sets $origin_url.
start_server() {
  local label="$1" database_url="$2" log="$workdir/$1.log" addr=""
  # One token from one address at thousands of requests per second: the rate limits are raised
  # far above that (still checked on every request, so their cost is in the figures).
  DATABASE_URL="$database_url" VOUCH_ADMIN_TOKEN="$token" \
    VOUCH_RATE_ADMIN_PER_CREDENTIAL=1000000 VOUCH_RATE_ADMIN_PER_ADDRESS=1000000 \
    VOUCH_RATE_TOKEN_PER_CREDENTIAL=1000000 VOUCH_RATE_TOKEN_PER_ADDRESS=1000000 \
    "$bin/vouch-origin" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do
    addr="$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$log" | head -n 1)"
    [[ -n "$addr" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "vouch-origin ($label) exited early:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  if [[ -z "$addr" ]]; then
    echo "vouch-origin ($label) did not report its address:" >&2
    cat "$log" >&2
    return 1
  fi
  origin_url="http://$addr"
  for _ in $(seq 1 300); do
    if curl -fsS "$origin_url/readyz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "vouch-origin ($label) never became ready at $origin_url:" >&2
  cat "$log" >&2
  return 1
}

# Runs one backend: start, bench, stop. The rows go to $workdir/$label.md.
run_backend() {
  local label="$1" database_url="$2"
  echo "== $label ==" >&2
  start_server "$label" "$database_url"
  VOUCH_ADMIN_TOKEN="$token" "$bin/vouch-bench" \
    --url "$origin_url" \
    --concurrency "$concurrency" \
    --duration-secs "$duration" \
    --label "$label$suffix" \
    --no-header >"$workdir/$label.md"
  stop_server
  cat "$workdir/$label.md" >&2
}

labels=()

run_backend sqlite "sqlite://$workdir/bench.db"
labels+=(sqlite)

if psql "$pg_url" -qXAt -c 'SELECT 1' >/dev/null 2>&1; then
  psql "$pg_url" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $pg_db" >/dev/null
  pg_created=1
  # The same server and credentials, the scratch database as path (query string kept).
  base="${pg_url%%\?*}"
  query=""
  [[ "$pg_url" == *\?* ]] && query="?${pg_url#*\?}"
  rest="${base#*://}"
  if [[ "$rest" == */* ]]; then
    base="${base%/*}"
  fi
  run_backend postgres "$base/$pg_db$query"
  labels+=(postgres)
  psql "$pg_url" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null
  pg_created=""
else
  echo "PostgreSQL not reachable at $pg_url: skipping the postgres run" >&2
fi

echo
echo "Origin benchmark: $(nproc) cores, $(rustc --version), ${duration} s per run, concurrency $concurrency, binaries from $bin, load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| label | operation | concurrency | requests ok | errors | requests/s | p50 ms | p99 ms | max ms |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for label in "${labels[@]}"; do
  cat "$workdir/$label.md"
done
