#!/usr/bin/env bash
# Runs every test Vouch has: formatting, lints, the core's wasm build, unit tests and the
# HTTP-level suite against SQLite (always) and PostgreSQL (when VOUCH_TEST_POSTGRES_URL is set,
# e.g. postgres://postgres@127.0.0.1:5432/test; each test gets a fresh database, dropped after).
# Installs what it needs (the wasm32 target) on first run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: wasm32-unknown-unknown target"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "core builds for wasm32-unknown-unknown"
cargo build -p vouch-core --target wasm32-unknown-unknown --locked

step "tests"
if [ -z "${VOUCH_TEST_POSTGRES_URL:-}" ]; then
  echo "note: VOUCH_TEST_POSTGRES_URL is not set, so the PostgreSQL half of the suite is skipped"
fi
cargo test --workspace --locked
