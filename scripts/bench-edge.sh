#!/usr/bin/env bash
# Edge benchmark (DESIGN §4), a benchmark and not a test: the release worker in workerd, load
# from wrk on the same machine, each figure next to a constant-response worker served by the
# same workerd in the same run:
#   - GET /verify warm (KV hit, per-isolate cache) vs the constant worker: requests/s, p50, p99
#   - the 304 path (If-None-Match) likewise
#   - POST /verify (a policy decision) likewise: a refund under a daily cap, which reads the
#     agent's daily-caps ledger (SPEC §11), and the same refund for an agent without a daily cap
#     (decision_uncapped), so the difference is what the ledger read adds
# The runs are interleaved over VOUCH_BENCH_ROUNDS rounds (default 3) and each figure is the
# median over rounds, so a noisy moment on a shared machine moves every column alike.
# Environment: VOUCH_BENCH_DURATION (seconds per run, default 5), VOUCH_BENCH_CONNECTIONS (16),
# VOUCH_BENCH_BASELINE (a git revision: its worker is built too and served by a second workerd
# without Durable Objects, and its warm GET /verify runs interleaved with ours, so the table
# also shows what the changes since then cost — e.g. the status journal check),
# VOUCH_BENCH_RATE_LIMITED=1 (a third workerd with the per-address rate limit on but far above
# the load, 10^9 per 10 s: its warm GET /verify runs interleaved too, as verify_200_limited, so the
# table shows what counting every request costs), VOUCH_BENCH_SIGNING=1 (two more workerd, alike
# but for signing: one signs decisions as deployed, one has it off through the benchmark-only
# test control VOUCH_DECISION_SIGNING=off; their POST /verify runs interleaved as decision_signed
# and decision_unsigned, so the table shows what signing every decision costs, SPEC §12).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/edge-toolchain.sh

duration="${VOUCH_BENCH_DURATION:-5}"
connections="${VOUCH_BENCH_CONNECTIONS:-16}"
rounds="${VOUCH_BENCH_ROUNDS:-3}"
if ! command -v wrk >/dev/null; then
  echo "==> installing wrk (Debian package)" >&2
  apt-get install -y -qq wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
fi
ensure_edge_toolchain
echo "==> building the worker (release)" >&2
build_edge_worker

work="$(mktemp -d)"
edge_pid=""
trap 'cleanup' EXIT

baseline="${VOUCH_BENCH_BASELINE:-}"
base_pid=""
limited_pid=""
if [ -n "$baseline" ]; then
  echo "==> building the worker of $baseline (release) for comparison" >&2
  git worktree add -f --detach "$work/baseline" "$baseline" >/dev/null 2>&1
  ln -s "$PWD/scripts/edge/node_modules" "$work/baseline/scripts/edge/node_modules"
  (cd "$work/baseline" && bash scripts/build-edge.sh >/dev/null)
fi
cleanup() {
  set +e
  [ -n "$edge_pid" ] && kill -TERM "$edge_pid" 2>/dev/null && wait "$edge_pid" 2>/dev/null
  [ -n "$base_pid" ] && kill -TERM "$base_pid" 2>/dev/null && wait "$base_pid" 2>/dev/null
  [ -n "$limited_pid" ] && kill -TERM "$limited_pid" 2>/dev/null && wait "$limited_pid" 2>/dev/null
  [ -n "$signed_pid" ] && kill -TERM "$signed_pid" 2>/dev/null && wait "$signed_pid" 2>/dev/null
  [ -n "$unsigned_pid" ] && kill -TERM "$unsigned_pid" 2>/dev/null && wait "$unsigned_pid" 2>/dev/null
  [ -n "$baseline" ] && git worktree remove --force "$work/baseline" 2>/dev/null
  rm -rf "$work"
}

# start_edge NAME [ENV…]: a local edge; sets NAME_url, NAME_kv and NAME_pid.
start_edge() {
  local name="$1"
  shift
  # The per-address rate limit is off: wrk sends thousands of requests per second from one
  # address (the limiter's own cost is measured apart, docs/benchmarks.md).
  env VOUCH_EDGE_RATE_LIMIT=0 "$@" VOUCH_EDGE_PORT=0 VOUCH_KV_API_PORT=0 VOUCH_KV_API_TOKEN=bench \
    "$VOUCH_NODE" scripts/edge/serve.mjs > "$work/$name.ready" 2> "$work/$name.log" &
  printf -v "${name}_pid" '%s' "$!"
  for _ in $(seq 1 300); do [ -s "$work/$name.ready" ] && break; sleep 0.1; done
  printf -v "${name}_url" '%s' "$(sed -n 's/.*"edge":"\([^"]*\)".*/\1/p' "$work/$name.ready")"
  printf -v "${name}_kv" '%s' "$(sed -n 's/.*"kv_api_base":"\([^"]*\)".*/\1/p' "$work/$name.ready")"
}
start_edge main VOUCH_EDGE_CONSTANT=1 VOUCH_EDGE_SECRET=bench-secret
edge_pid="$main_pid" edge="$main_url" kv="$main_kv"
# No origin here: seed the status journal as the origin would (the edge answers 503 until then).
seed_journal() {
  local epoch
  epoch="$(curl -fsS -H "authorization: Bearer bench-secret" "$1/internal/journal" | sed -n 's/.*"epoch":\([0-9]*\).*/\1/p')"
  curl -fsS -X POST -H "authorization: Bearer bench-secret" -H "content-type: application/json" \
    "$1/internal/journal" -d "{\"epoch\":$epoch,\"seed\":true}" >/dev/null
}
seed_journal "$edge"
if [ "${VOUCH_BENCH_RATE_LIMITED:-}" = 1 ]; then
  start_edge limited VOUCH_EDGE_RATE_LIMIT=1000000000 VOUCH_EDGE_SECRET=bench-secret
  seed_journal "$limited_url"
fi
signed_pid=""
unsigned_pid=""
if [ "${VOUCH_BENCH_SIGNING:-}" = 1 ]; then
  start_edge signed VOUCH_EDGE_TEST_CONTROLS=1 VOUCH_EDGE_SECRET=bench-secret
  start_edge unsigned VOUCH_EDGE_TEST_CONTROLS=1 VOUCH_DECISION_SIGNING=off VOUCH_EDGE_SECRET=bench-secret
  seed_journal "$signed_url"
  seed_journal "$unsigned_url"
fi
if [ -n "$baseline" ]; then
  start_edge base VOUCH_EDGE_OBJECTS=0 VOUCH_EDGE_SCRIPT="$work/baseline/edge-worker/build/index.js"
fi

agent=ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70
# The same passport without its daily cap: its refund decisions have no ledger to read.
uncapped=ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f7f
for target in "$kv" ${base_kv:+"$base_kv"} ${limited_kv:+"$limited_kv"} ${signed_kv:+"$signed_kv"} ${unsigned_kv:+"$unsigned_kv"}; do
for id in "$agent" "$uncapped"; do
  if [ "$id" = "$agent" ]; then cap='"refund_usd_daily_cap":1000,'; else cap=''; fi
curl -fsS -X PUT -H "authorization: Bearer bench" "$target/accounts/local/storage/kv/namespaces/vouch-local/values/passport:$id" \
  --data-binary @- >/dev/null <<JSON
{"agent_id":"$id","org_id":"org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71","status":"active","name":"Acme Support Bot",
 "owner_display":"Acme Support Team","contact":"security@acme.com","role":"Tier-2 Support",
 "capabilities":[{"id":"payments.refund","params":{"max_amount":100,"currency":"USD"}},{"id":"data.export","params":{"max_rows":1000}}],
 "limits":{"refund_usd_max_per_tx":100,$cap"max_export_rows":1000,"allow_pii":false},
 "regions":["US-NY","US-CA"],"assurance_level":"L2","tier":"standard","require_act_as":false,"public_jwk":null,
 "status_reason":null,"suspended_at":null,"revoked_at":null,"version":7,"updated_at":"2026-11-22T00:00:00.000Z"}
JSON
done
done
etag="$(curl -fsS -o /dev/null -D - "$edge/verify?agent_id=$agent" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')"

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"agent_id":"$agent","capability":"payments.refund","context":{"amount":50,"currency":"USD","region":"US-CA"}}'
LUA
sed "s/$agent/$uncapped/" "$work/post.lua" > "$work/post_uncapped.lua"

# run LABEL wrk-args… → "LABEL req/s p50 p99"
run() {
  local label="$1"
  shift
  wrk -t2 -c"$connections" -d"${duration}s" --latency "$@" > "$work/out" 2>&1
  local rps p50 p99 non2xx
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$work/out")"
  p50="$(awk '$1 == "50%" {print $2}' "$work/out")"
  p99="$(awk '$1 == "99%" {print $2}' "$work/out")"
  non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$work/out")"
  printf '%s %s %s %s %s\n' "$label" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

for _ in $(seq 1 "$rounds"); do
  run constant -H "Host: constant.bench" "$edge/"
  run verify_200 "$edge/verify?agent_id=$agent"
  [ -n "$baseline" ] && run baseline_200 "$base_url/verify?agent_id=$agent"
  [ -n "$limited_pid" ] && run verify_200_limited "$limited_url/verify?agent_id=$agent"
  run verify_304 -H "If-None-Match: $etag" "$edge/verify?agent_id=$agent"
  [ -n "$signed_pid" ] && run decision_signed -s "$work/post.lua" "$signed_url/verify"
  [ -n "$unsigned_pid" ] && run decision_unsigned -s "$work/post.lua" "$unsigned_url/verify"
  run decision -s "$work/post.lua" "$edge/verify"
  run decision_uncapped -s "$work/post_uncapped.lua" "$edge/verify"
done > "$work/results"

# Median per label of requests/s, p50 and p99 (wrk prints latencies with units: normalise to ms).
awk -v c="$connections" -v d="$duration" -v r="$rounds" '
  function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((n + 1) / 2)]
  }
  { rps[$1] = rps[$1] " " $2; p50[$1] = p50[$1] " " ms($3); p99[$1] = p99[$1] " " ms($4); bad[$1] += $5 }
  END {
    base = median(rps["constant"])
    printf "| run (wrk, 2 threads, %d connections, %d s × %d rounds, medians) | requests/s | p50 (ms) | p99 (ms) | non-2xx/3xx | ratio to constant |\n", c, d, r
    print  "|---|---|---|---|---|---|"
    n = split("constant verify_200 baseline_200 verify_200_limited verify_304 decision decision_uncapped decision_signed decision_unsigned", order, " ")
    for (i = 1; i <= n; i++) {
      k = order[i]
      if (!(k in rps)) continue
      printf "| %s | %.0f | %.2f | %.2f | %d | %.2f× |\n", k, median(rps[k]), median(p50[k]), median(p99[k]), bad[k], median(rps[k]) / base
    }
    if ("baseline_200" in rps)
      printf "\nverify_200 / baseline_200 (this build against the baseline build): %.3f\n", median(rps["verify_200"]) / median(rps["baseline_200"])
    if ("decision_unsigned" in rps)
      printf "\ndecision_signed / decision_unsigned (signing every decision, SPEC §12): %.3f\n", median(rps["decision_signed"]) / median(rps["decision_unsigned"])
    if ("decision_uncapped" in rps)
      printf "\nthe daily-caps ledger read of an ask under a cap (decision - decision_uncapped): p50 +%.2f ms, p99 +%.2f ms, requests/s %.3f×\n", median(p50["decision"]) - median(p50["decision_uncapped"]), median(p99["decision"]) - median(p99["decision_uncapped"]), median(rps["decision"]) / median(rps["decision_uncapped"])
    if ("verify_200_limited" in rps)
      printf "\nverify_200_limited / verify_200 (the rate limit counting every request): %.3f\n", median(rps["verify_200_limited"]) / median(rps["verify_200"])
  }' "$work/results"
