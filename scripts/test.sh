#!/usr/bin/env bash
# Runs every test Vouch has: formatting, lints (native and wasm32), the worker build and a
# `wrangler deploy --dry-run`, unit tests, the origin's HTTP suite against SQLite (always) and
# PostgreSQL (when VOUCH_TEST_POSTGRES_URL is set, e.g. postgres://postgres@127.0.0.1:5432/test;
# each test gets a fresh database, dropped after), and the end-to-end tests of the origin with
# the built worker in real workerd and the admin console in a real browser (headless chromium),
# then the TypeScript SDK's tests (sdk/typescript, node:test against a real origin and local
# edge) and schemathesis against both servers' OpenAPI documents.
# The first run installs the pinned edge tools into ~/.cache/vouch (a few minutes, once).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/edge-toolchain.sh
source scripts/lib/python-env.sh

step() { printf '\n==> %s\n' "$*"; }

step "toolchain (wasm32 target, worker-build, wasm-bindgen, Node 22, workerd, chromium, Playwright, Python test tools)"
ensure_edge_toolchain
ensure_browser_toolchain
# The pinned Python test tools (VOUCH_PYTHON): the A2A SDK and the JWS library that check agent
# cards end to end (tests/edge/a2a.rs), and schemathesis.
ensure_python_env

step "cargo fmt --check"
cargo fmt --all -- --check
# The fuzz crate is a workspace of its own (shared/fuzz), so `--all` does not reach it.
cargo fmt --manifest-path shared/fuzz/Cargo.toml --all -- --check

step "cargo clippy (native and wasm32; warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p vouch-edge -p vouch-core --target wasm32-unknown-unknown --locked -- -D warnings
cargo clippy --manifest-path shared/fuzz/Cargo.toml --all-targets --locked -- -D warnings

step "edge worker build and wrangler deploy --dry-run"
build_edge_worker
DRY_RUN_OUT="$(mktemp -d)"
trap 'rm -rf "$DRY_RUN_OUT"' EXIT
"$VOUCH_NODE" scripts/edge/node_modules/wrangler/bin/wrangler.js deploy --dry-run --outdir "$DRY_RUN_OUT" \
  > "$DRY_RUN_OUT/wrangler.log" 2>&1 || { cat "$DRY_RUN_OUT/wrangler.log"; exit 1; }
grep -E "Total Upload|--dry-run: exiting now" "$DRY_RUN_OUT/wrangler.log" || true

step "tests"
if [ -z "${VOUCH_TEST_POSTGRES_URL:-}" ]; then
  if [ "${VOUCH_REQUIRE_POSTGRES:-}" = 1 ]; then
    echo "VOUCH_REQUIRE_POSTGRES=1 but VOUCH_TEST_POSTGRES_URL is not set" >&2
    exit 1
  fi
  echo "note: VOUCH_TEST_POSTGRES_URL is not set, so the PostgreSQL half of the suite is skipped"
fi
# The console's browser test (tests/edge/console_browser.rs) runs with the end-to-end tests;
# its screenshots land in tests/browser-artifacts/ (git-ignored).
VOUCH_REQUIRE_EDGE=1 VOUCH_REQUIRE_BROWSER=1 cargo test --workspace --locked

step "TypeScript SDK: node:test against a real origin and local edge (sdk/typescript)"
# Uses the vouch-origin the cargo tests just built and the worker built above.
sdk/typescript/test/run.sh

step "OpenAPI: schemathesis against the origin and the edge (60 s each), generated types type-check"
scripts/schemathesis.sh 60

step "fuzz targets of the core (20 s each, from the committed corpus)"
scripts/fuzz.sh 20
