#!/usr/bin/env bash
# Builds the edge worker into edge-worker/build/ with the pinned, locally installed tools
# (worker-build would otherwise download wasm-bindgen, wasm-opt and esbuild).
set -euo pipefail
source "$(dirname "$0")/lib/edge-toolchain.sh"
ensure_edge_toolchain
build_edge_worker
