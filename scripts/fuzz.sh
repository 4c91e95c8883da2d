#!/usr/bin/env bash
# Builds the fuzz targets of vouch-core (shared/fuzz, cargo-fuzz + libFuzzer) and runs each for
# the given number of seconds (default 20), from the committed corpus in shared/fuzz/corpus/.
#   scripts/fuzz.sh [seconds] [target…]
# New inputs go to a scratch corpus per target under the build cache, never into the committed
# one; a crash (or a failed property) stops the script with the input's path and how to re-run it.
# The first run installs the pinned cargo-fuzz into ~/.cache/vouch (about a minute, once).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/edge-toolchain.sh

CARGO_FUZZ_VERSION="0.13.2"
SECONDS_PER_TARGET="${1:-20}"
shift || true

# cargo-fuzz, pinned, in the per-user cache beside the edge tools.
mkdir -p "$VOUCH_CACHE"
exec {fuzz_lock}>"$VOUCH_CACHE/.install.lock"
flock "$fuzz_lock"
CARGO_FUZZ="$(_ensure_cargo_tool cargo-fuzz "$CARGO_FUZZ_VERSION" cargo-fuzz --locked)"
flock -u "$fuzz_lock"
export PATH="$(dirname "$CARGO_FUZZ"):$PATH"

# The instrumented build keeps to its own folder of the cached target dir, so it never
# invalidates the workspace's builds. libFuzzer needs -Z flags: this stable toolchain allows
# them with RUSTC_BOOTSTRAP. No sanitizer: the core and its callers forbid unsafe code, and the
# properties are what the targets check.
FUZZ_TARGET_DIR="${CARGO_TARGET_DIR:-$VOUCH_REPO/target}/fuzz"
WORK="${VOUCH_FUZZ_WORK:-$FUZZ_TARGET_DIR/work}"
export RUSTC_BOOTSTRAP=1
fuzz() { (cd shared && cargo fuzz "$@"); }

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(fuzz list)
fi

echo "==> building ${#targets[@]} fuzz targets"
fuzz build --sanitizer none --target-dir "$FUZZ_TARGET_DIR"

for target in "${targets[@]}"; do
  corpus="$WORK/corpus/$target"
  artifacts="$WORK/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  echo "==> $target: ${SECONDS_PER_TARGET} s"
  # The token target's ECDSA inputs cost ~1 ms, its others tens of microseconds: give the fast
  # ones more of the time. VOUCH_FUZZ_RUNS stops after that many inputs instead (with 0 s).
  extra=()
  [ "$target" = token ] && extra+=(-entropic_scale_per_exec_time=1)
  [ -n "${VOUCH_FUZZ_RUNS:-}" ] && extra+=(-runs="$VOUCH_FUZZ_RUNS")
  if ! fuzz run --sanitizer none --target-dir "$FUZZ_TARGET_DIR" "$target" \
      "$corpus" "$VOUCH_REPO/shared/fuzz/corpus/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" "${extra[@]}" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" > "$WORK/$target.log" 2>&1; then
    grep -E "panicked|assertion|SUMMARY|Test unit written" -A3 "$WORK/$target.log" | head -40 || true
    echo "fuzz target $target failed; full log: $WORK/$target.log" >&2
    echo "re-run the input: (cd shared && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none $target <file>)" >&2
    exit 1
  fi
  grep -E "DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" \
    "$WORK/$target.log" | tr -s ' \n' ' '
  echo
done
