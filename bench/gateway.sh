#!/usr/bin/env bash
# Gateway overhead: the same load against the mock upstream directly and through Strata (`policy
# up`: resolver + gateway, a policy decision on every request), side by side. Loopback only,
# bounded durations, every process stopped by its id. Not run by CI.
#
#   bench/gateway.sh                 # ~6 minutes after the build (DUR=10s per run, 16 runs)
#   DUR=5s bench/gateway.sh          # shorter
#   OUT=docs/bench-gateway.md bench/gateway.sh
#   SPLIT=1 bench/gateway.sh         # `policy serve` + `policy gateway` as two processes: every
#                                    # decision is a Decide over loopback gRPC (both on GW_CPU)
#   SPLIT=1 INFLIGHT=2 bench/gateway.sh   # the gateway's resolver_calls_in_flight (default 4)
#   PROFILES="droid sdk" bench/gateway.sh   # body profiles (bench/bodies.py), default all four:
#                                    # tiny (90 bytes), droid (~41 KB, model first, as Droid sends),
#                                    # sdk (the same, model last), long (1 MB with a base64 image)
#   API=chat bench/gateway.sh        # messages (Anthropic, default) | responses | chat
#   POLICY=/path/to/other/release/policy bench/gateway.sh   # measure another build of Strata (for
#                                    # before/after pairs: run both back to back, same settings)
#
# With every profile, about 11 minutes after the build at DUR=10s (64 runs).
# Needs: cargo; oha (installed into bench/.tools from crates.io if not on PATH); taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

DUR=${DUR:-10s}
# the fixed rates; RATES="" runs the closed-loop loads alone
RATES=${RATES-"1000 5000"}
# the closed-loop concurrencies; LOADS="" runs the fixed rates alone
LOADS=${LOADS-"c1 c16"}
PROFILES=${PROFILES:-"droid sdk long tiny"}
API=${API:-messages}
case $API in
  messages) PATH_=/v1/messages MODEL=claude-sonnet-4-5 ;;
  responses) PATH_=/v1/responses MODEL=gpt-5-mini ;;
  chat) PATH_=/v1/chat/completions MODEL=gpt-5-mini ;;
  *) echo "API is messages, responses or chat, not $API" >&2; exit 2 ;;
esac
MOCK_PORT=${MOCK_PORT:-19100}
# the example bundle requires traffic to go through http://127.0.0.1:8787 (policy.json gateway)
GW_PORT=${GW_PORT:-8787}
RS_PORT=${RS_PORT:-15051}
# the gateway side (Strata) on core 0; the load generator and the mock upstream on core 1
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

echo "== build (release)" >&2
if [ -z "${POLICY:-}" ]; then
  cargo build --release --locked -q -p strata-cli
  POLICY=$root/target/release/policy
fi
cargo build --release --locked -q -p strata-gateway --example mock_upstream

if ! command -v oha >/dev/null 2>&1; then
  if [ ! -x bench/.tools/bin/oha ]; then
    echo "== installing oha into bench/.tools (a few minutes, once)" >&2
    cargo install -q --root bench/.tools oha --version 1.16.0 --locked
  fi
  export PATH="$root/bench/.tools/bin:$PATH"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "== mock upstream on 127.0.0.1:$MOCK_PORT (cpu $LOAD_CPU)" >&2
taskset -c "$LOAD_CPU" target/release/examples/mock_upstream "127.0.0.1:$MOCK_PORT" 2>"$work/mock.log" &
pids+=($!)

if [ -z "${SPLIT:-}" ]; then
  echo "== strata (policy up) on 127.0.0.1:$GW_PORT (cpu $GW_CPU)" >&2
  # the admin console on a free port (builds before it have no console)
  console=()
  "$POLICY" up --help 2>/dev/null | grep -q -- --console-listen && console=(--console-listen 127.0.0.1:0)
  ANTHROPIC_BASE_URL="http://127.0.0.1:$MOCK_PORT" OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT" \
  STRATA_CHAT_BASE_URL="http://127.0.0.1:$MOCK_PORT" \
  ANTHROPIC_API_KEY=sk-ant-bench-central-key OPENAI_API_KEY=sk-openai-bench-central-key \
  STRATA_LOG=warn \
    taskset -c "$GW_CPU" "$POLICY" up --data "$work/data" \
      --listen "127.0.0.1:$GW_PORT" --resolver-listen "127.0.0.1:$RS_PORT" "${console[@]}" \
      >"$work/up.out" 2>"$work/up.log" &
  strata=$!
  pids+=($strata)
  procs=("$strata")
  for _ in $(seq 1 100); do
    grep -q '^  strata_gw_' "$work/up.log" 2>/dev/null && break
    sleep 0.2
  done
  token=$(grep -m1 '^  strata_gw_' "$work/up.log" | tr -d ' ')
  [ -n "$token" ] || { cat "$work/up.log" >&2; echo "policy up printed no token" >&2; exit 1; }
else
  # the production shape: the resolver and the gateway as two processes, a Decide over gRPC for
  # every request (the gateway's decider batches concurrent ones into BatchDecide)
  echo "== strata split: policy serve on :$RS_PORT, policy gateway on :$GW_PORT (both cpu $GW_CPU)" >&2
  export STRATA_ADMIN_TOKEN=bench-admin-token STRATA_SERVICE_TOKEN=bench-service-token
  export STRATA_RESOLVER="http://127.0.0.1:$RS_PORT" STRATA_TOKEN=$STRATA_ADMIN_TOKEN
  export ANTHROPIC_API_KEY=sk-ant-bench-central-key OPENAI_API_KEY=sk-openai-bench-central-key STRATA_LOG=warn
  taskset -c "$GW_CPU" "$POLICY" serve --data "$work/data" --listen "127.0.0.1:$RS_PORT" \
    >"$work/resolver.out" 2>"$work/resolver.log" &
  resolver=$!
  pids+=($resolver)
  for _ in $(seq 1 100); do
    "$POLICY" revisions >/dev/null 2>&1 && break
    sleep 0.2
  done
  "$POLICY" publish org policies/examples/acme/org -m bench >/dev/null
  token=$("$POLICY" token create --user alice --group leads 2>/dev/null)
  cat >"$work/gateway.toml" <<TOML
listen = "127.0.0.1:$GW_PORT"
public_base_url = "http://127.0.0.1:8787"
resolver = "http://127.0.0.1:$RS_PORT"
resolver_calls_in_flight = ${INFLIGHT:-4}
[audit]
dir = "$work/audit"
retention_days = 1
[upstreams.anthropic]
base_url = "http://127.0.0.1:$MOCK_PORT"
key_env = "ANTHROPIC_API_KEY"
[upstreams.openai]
base_url = "http://127.0.0.1:$MOCK_PORT"
key_env = "OPENAI_API_KEY"
[upstreams.generic-chat-completion-api]
base_url = "http://127.0.0.1:$MOCK_PORT"
key_env = "OPENAI_API_KEY"
TOML
  taskset -c "$GW_CPU" "$POLICY" gateway --config "$work/gateway.toml" \
    >"$work/gateway.out" 2>"$work/gateway.log" &
  strata=$!
  pids+=($strata)
  procs=("$resolver" "$strata")
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW_PORT/readyz")" = 200 ] && break
    sleep 0.2
  done
fi

# the request bodies, one file per profile and mode
for profile in $PROFILES; do
  for mode in json sse; do
    python3 bench/bodies.py "$profile" "$API" "$mode" "$MODEL" "$work/body-$profile-$mode.json"
  done
done
if [ "$API" = messages ]; then
  auth=(-H "x-api-key: $token" -H 'anthropic-version: 2023-06-01')
else
  auth=(-H "authorization: Bearer $token")
fi

# a request that must succeed through both before measuring
for url in "http://127.0.0.1:$MOCK_PORT" "http://127.0.0.1:$GW_PORT"; do
  for profile in $PROFILES; do
    code=$(curl -s -o "$work/answer" -w '%{http_code}' "$url$PATH_" "${auth[@]}" \
      -H 'content-type: application/json' --data-binary "@$work/body-$profile-json.json")
    [ "$code" = 200 ] || { echo "$url ($profile) answered $code: $(head -c 300 "$work/answer")" >&2; exit 1; }
  done
done

# summed over Strata's processes (one with `policy up`, two with SPLIT=1)
cpu_ticks() { local t=0 p; for p in "${procs[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
hwm_kb() { local t=0 p; for p in "${procs[@]}"; do t=$((t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo "$t"; }
tck=$(getconf CLK_TCK)

results="$work/results.jsonl"
run() { # target profile mode load
  local target=$1 profile=$2 mode=$3 load=$4 url body args
  if [ "$target" = direct ]; then url="http://127.0.0.1:$MOCK_PORT$PATH_"; else url="http://127.0.0.1:$GW_PORT$PATH_"; fi
  body=$work/body-$profile-$mode.json
  case $load in
    c*) args=(-c "${load#c}") ;;
    r*) args=(-c 64 -q "${load#r}" --latency-correction) ;;
  esac
  local before after
  before=$(cpu_ticks)
  taskset -c "$LOAD_CPU" oha --no-tui --output-format json -z "$DUR" "${args[@]}" -m POST \
    "${auth[@]}" -H 'content-type: application/json' -D "$body" "$url" >"$work/oha.json"
  after=$(cpu_ticks)
  python3 - "$work/oha.json" "$target" "$mode" "$load" "$before" "$after" "$tck" "$(hwm_kb)" "$profile" "$(wc -c <"$body")" >>"$results" <<'EOF'
import json, sys
o = json.load(open(sys.argv[1]))
s = o["summary"]
codes = o.get("statusCodeDistribution", {})
print(json.dumps({
    "target": sys.argv[2], "mode": sys.argv[3], "load": sys.argv[4],
    "profile": sys.argv[9], "bytes": int(sys.argv[10]),
    "rps": s["requestsPerSec"], "ok": codes.get("200", 0), "total": sum(codes.values()),
    # requests still in flight when the run's time is up are aborted by oha: not errors
    "errors": sum(v for k, v in o.get("errorDistribution", {}).items() if "deadline" not in k),
    "p50": o["latencyPercentiles"]["p50"], "p90": o["latencyPercentiles"]["p90"],
    "p99": o["latencyPercentiles"]["p99"],
    "cpu_s": (int(sys.argv[6]) - int(sys.argv[5])) / int(sys.argv[7]),
    "hwm_mb": int(sys.argv[8]) / 1024,
}))
EOF
  echo "   $target $profile $mode $load: $(tail -1 "$results")" >&2
}

echo "== runs of $DUR each ($API; profiles: $PROFILES)" >&2
for profile in $PROFILES; do
  for mode in json sse; do
    for load in $LOADS $(for r in $RATES; do echo "r$r"; done); do
      run direct "$profile" "$mode" "$load"
      run strata "$profile" "$mode" "$load"
    done
  done
done

echo "bench/gateway.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$([ "$POLICY" != "$root/target/release/policy" ] && echo ", policy binary $POLICY"); API=$API ($PATH_, $MODEL); $([ -n "${SPLIT:-}" ] && echo 'SPLIT=1 (policy serve + policy gateway)' || echo 'policy up'); DUR=$DUR"
echo
python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["target"], r["profile"], r["mode"], r["load"]): r for r in rows}
ms = lambda s: f"{s*1000:.3f}"
print("| profile | mode | load | direct req/s | Strata req/s | direct p50 / p99 (ms) | Strata p50 / p90 / p99 (ms) | added p50 / p99 (ms) | Strata CPU per req | Strata peak RSS | non-200 |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for (t, profile, mode, load), s in by.items():
    if t != "strata":
        continue
    d = by[("direct", profile, mode, load)]
    size = f"{s['bytes'] / 1024:.0f} KB" if s["bytes"] >= 1024 else f"{s['bytes']} B"
    label = f"concurrency {load[1:]}" if load[0] == "c" else f"{load[1:]}/s fixed (c=64)"
    cpu = s["cpu_s"] / max(s["total"], 1) * 1e6
    bad = (s["total"] - s["ok"]) + s["errors"]
    print(f"| {profile} ({size}) | {mode} | {label} | {d['rps']:.0f} | {s['rps']:.0f} | {ms(d['p50'])} / {ms(d['p99'])} | "
          f"{ms(s['p50'])} / {ms(s['p90'])} / {ms(s['p99'])} | {ms(s['p50']-d['p50'])} / {ms(s['p99']-d['p99'])} | "
          f"{cpu:.0f} µs | {s['hwm_mb']:.1f} MB | {bad} |")
EOF
