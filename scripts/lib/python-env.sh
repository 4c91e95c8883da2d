# Sourced by scripts that run Python test tools (independent verifiers, schemathesis, SDK tests).
# Creates, once, a virtualenv in the per-user cache keyed by the pinned requirements, so a fresh
# clone reuses it and a change to the pins builds a new one beside the old.
#   ensure_python_env             # the test tools: exports VOUCH_PYTHON (the venv's python)
#   ensure_python_env plotting    # the benchmarks' plots (scripts/python/plotting.txt)

VOUCH_REPO="${VOUCH_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
VOUCH_CACHE="${VOUCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vouch}"

ensure_python_env() {
  local requirements="$VOUCH_REPO/scripts/python/${1:-requirements}.txt"
  local key
  key="$(sha256sum "$requirements" | cut -c1-16)"
  local venv="$VOUCH_CACHE/python-$key"
  mkdir -p "$VOUCH_CACHE"
  exec {_vouch_py_lock}>"$VOUCH_CACHE/.python.lock"
  flock "$_vouch_py_lock"
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    echo "==> installing the pinned Python test tools into $venv (once)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 &&
      "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2 &&
      touch "$venv/.complete" || { rm -rf "$venv"; flock -u "$_vouch_py_lock"; return 1; }
  fi
  flock -u "$_vouch_py_lock"
  VOUCH_PYTHON="$venv/bin/python"
  export VOUCH_PYTHON
}
