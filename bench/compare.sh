#!/usr/bin/env bash
# Strata side by side with the gateways people run today (issue 5): LiteLLM proxy (PyPI
# `litellm[proxy]`), Portkey gateway (npm `@portkey-ai/gateway`) and crabllm (crates.io), each routing
# the same OpenAI Chat Completions request to the same mock upstream, driven by the same load
# generator (oha) at the same settings, one gateway at a time. Loopback only, bounded durations,
# every process stopped by its id. Not run by CI.
#
#   bench/compare.sh                               # about 8 minutes after the installs
#   DUR=5s bench/compare.sh                        # shorter
#   GATEWAYS="strata crabllm" bench/compare.sh     # a subset (direct always runs)
#   OUT=bench/results-compare.md bench/compare.sh  # also write the report to a file
#   GATEWAYS="strata crabllm crabllm strata" bench/compare.sh  # rounds, to see the run-to-run spread
#   PROFILES="droid sdk" bench/compare.sh          # body profiles (bench/bodies.py), default all four:
#       droid (~43 KB Chat Completions as Droid sends it: messages, then model), sdk (the same
#       content, model last), long (1 MB with a base64 image, model last), tiny (the 90-byte request)
#
# Every profile multiplies the run time: about 8 minutes per profile after the installs.
# Installs, once, into bench/.tools (ignored by git): a Python venv with litellm[proxy], an npm
# prefix with @portkey-ai/gateway, crabllm and oha from crates.io. A gateway that cannot be installed
# is skipped with a line saying why. Needs: cargo, python3 (venv), node + npm, taskset, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools=$root/bench/.tools

DUR=${DUR:-10s}
RATES=${RATES:-"1000 5000"}
PROFILES=${PROFILES:-"droid sdk long tiny"}
TTFB_N=${TTFB_N:-300}
GATEWAYS=${GATEWAYS:-"strata litellm portkey crabllm"}
OUT=${OUT:-}
# pinned versions (litellm 1.100.5: its [proxy] extra installs from PyPI here; the latest, 1.110.2,
# needs a `litellm-proxy` package that the registry does not serve)
LITELLM_VERSION=${LITELLM_VERSION:-1.100.5}
PORTKEY_VERSION=${PORTKEY_VERSION:-1.15.2}
# Portkey's own lockfile resolves @hono/node-server to 1.13.5; newer ones break its streaming
# answers ("TypeError: immutable", Portkey-AI/gateway#1389), so the install pins it the same way
HONO_NODE_SERVER_VERSION=${HONO_NODE_SERVER_VERSION:-1.13.5}
CRABLLM_VERSION=${CRABLLM_VERSION:-0.0.25}
OHA_VERSION=${OHA_VERSION:-1.16.0}
# ports: Strata must be on 8787 (the example bundle's policy.json requires that gateway URL); the
# rest avoid the ports bench/gateway.sh uses (19100, 15051) so both can be on one machine
GW_PORT=8787
RS_PORT=${RS_PORT:-15151}
MOCK_PORT=${MOCK_PORT:-19300}
LITELLM_PORT=${LITELLM_PORT:-19301}
PORTKEY_PORT=${PORTKEY_PORT:-19302}
CRABLLM_PORT=${CRABLLM_PORT:-19303}
PORT_WAIT=${PORT_WAIT:-600} # seconds to wait for 8787 to be free (another run may hold it)
# gateways on core 0; the load generator and the mock upstream on core 1
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

say() { echo "== $*" >&2; }
trap 'say "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
started_at=${COMPARE_T0:-$(date +%s)}
# ---------------------------------------------------------------------------------------------
# installs (each gateway that fails is dropped from the run, with the reason)
want=() skipped=()
skip() { skipped+=("$1: $2"); say "SKIP $1: $2"; }
if [ "${COMPARE_INNER:-0}" = 0 ]; then # (the outer part: installs and build, with the network)
mkdir -p "$tools/logs"

if ! command -v oha >/dev/null 2>&1; then
  if [ ! -x "$tools/bin/oha" ]; then
    say "installing oha $OHA_VERSION into bench/.tools (a few minutes, once)"
    cargo install -q --root "$tools" oha --version "$OHA_VERSION" --locked
  fi
  export PATH="$tools/bin:$PATH"
fi

install_litellm() {
  local py=$tools/venv/bin/python
  if [ -x "$py" ] && "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_VERSION')" 2>/dev/null \
    && "$py" -c 'import fastapi, uvicorn, backoff, orjson' 2>/dev/null; then
    return 0
  fi
  say "installing litellm[proxy]==$LITELLM_VERSION into bench/.tools/venv (a few minutes, once)"
  python3 -m venv "$tools/venv" >"$tools/logs/litellm-install.log" 2>&1 &&
    "$tools/venv/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION" >>"$tools/logs/litellm-install.log" 2>&1
}
install_portkey() {
  local dir=$tools/portkey
  command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are needed" >"$tools/logs/portkey-install.log"; return 1; }
  if [ -f "$dir/node_modules/@portkey-ai/gateway/package.json" ] &&
    grep -q "\"version\": \"$PORTKEY_VERSION\"" "$dir/node_modules/@portkey-ai/gateway/package.json" &&
    grep -q "\"version\": \"$HONO_NODE_SERVER_VERSION\"" "$dir/node_modules/@hono/node-server/package.json" 2>/dev/null; then
    return 0
  fi
  say "installing @portkey-ai/gateway@$PORTKEY_VERSION into bench/.tools/portkey (a minute, once)"
  mkdir -p "$dir"
  cat >"$dir/package.json" <<EOF
{
  "private": true,
  "dependencies": { "@portkey-ai/gateway": "$PORTKEY_VERSION" },
  "overrides": { "@hono/node-server": "$HONO_NODE_SERVER_VERSION" }
}
EOF
  (cd "$dir" && npm install --no-audit --no-fund) >"$tools/logs/portkey-install.log" 2>&1
}
install_crabllm() {
  if [ -x "$tools/bin/crabllm" ] && grep -q "crabllm $CRABLLM_VERSION " "$tools/.crates.toml" 2>/dev/null; then
    return 0
  fi
  say "installing crabllm $CRABLLM_VERSION into bench/.tools (5-15 minutes, once)"
  cargo install --root "$tools" crabllm --version "$CRABLLM_VERSION" --locked >"$tools/logs/crabllm-install.log" 2>&1
}

for g in $GATEWAYS; do
  case $g in
    strata) want+=(strata) ;;
    litellm | portkey | crabllm)
      if "install_$g"; then
        want+=("$g")
      else
        skip "$g" "install failed: $(grep -iE 'error|not found|no matching' "$tools/logs/$g-install.log" | head -3 | tr "\n" " " | cut -c1-200)"
      fi
      ;;
    *) skip "$g" "unknown gateway (strata, litellm, portkey, crabllm)" ;;
  esac
done

say "build (release)"
cargo build --release --locked -q -p strata-cli
cargo build --release --locked -q -p strata-gateway --example mock_upstream
fi # end of the outer part

# The runs go into a network namespace of their own (root and util-linux `unshare`): its loopback
# is private, so no port clashes with anything else on the machine (Strata must listen on 8787) and
# no traffic can leave it. NETNS=0, or no permission, runs in the shared one and waits for 8787.
if [ "${COMPARE_INNER:-0}" = 0 ] && [ "${NETNS:-1}" = 1 ] && command -v unshare >/dev/null && command -v ip >/dev/null &&
  unshare -n true 2>/dev/null; then
  say "runs in a private network namespace (unshare -n)"
  export COMPARE_INNER=1 COMPARE_T0=$started_at COMPARE_WANT="${want[*]}" COMPARE_SKIPPED="$(printf '%s\n' "${skipped[@]}")"
  exec unshare -n -- bash -c 'ip link set lo up && exec "$0"' "$root/bench/compare.sh"
fi
netns=shared
if [ "${COMPARE_INNER:-0}" = 1 ]; then
  netns=private
  read -r -a want <<<"${COMPARE_WANT:-}"
  skipped=()
  while IFS= read -r line; do [ -n "$line" ] && skipped+=("$line"); done <<<"${COMPARE_SKIPPED:-}"
fi
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
pids=() # process-group leaders: every process is started with setsid, so its pid is its group
stop_group() { # pid: TERM the group, then KILL what is left after 5 s
  local p=$1 i
  kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 -- "-$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local p
  for p in "${pids[@]}"; do stop_group "$p"; done
  # keep the processes' logs of the last run (not the data)
  rm -rf "$tools/logs/last-run" && mkdir -p "$tools/logs/last-run" && cp "$work"/*.log "$tools/logs/last-run/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # name cpu cmd...: start in its own session and process group, pinned to cpu
  local name=$1 cpu=$2
  shift 2
  setsid taskset -c "$cpu" "$@" >"$work/$name.out" 2>"$work/$name.log" </dev/null &
  started=$!
  pids+=("$started")
}
forget() { # pid
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}


# ---------------------------------------------------------------------------------------------
# the same request for every target: OpenAI Chat Completions, a model the example bundle lets
# alice (groups: leads) use through the gateway
MODEL=gpt-5-mini
for profile in $PROFILES; do
  for mode in json sse; do
    python3 bench/bodies.py "$profile" chat "$mode" "$MODEL" "$work/body-$profile-$mode.json"
  done
done
# readiness probes and the TTFB loop use the tiny bodies
json_body='{"model":"'$MODEL'","messages":[{"role":"user","content":"Say hello."}]}'
sse_body='{"model":"'$MODEL'","stream":true,"messages":[{"role":"user","content":"Say hello."}]}'
UPSTREAM_KEY=sk-bench-fake-upstream-key

say "mock upstream on 127.0.0.1:$MOCK_PORT (cpu $LOAD_CPU)"
start mock "$LOAD_CPU" target/release/examples/mock_upstream "127.0.0.1:$MOCK_PORT"
for _ in $(seq 1 50); do
  curl -s -o /dev/null "http://127.0.0.1:$MOCK_PORT/" && break
  sleep 0.1
done

cpu_ticks() { # pgid: utime+stime (+ reaped children) over every process of the group
  local p t=0 s
  for p in $(pgrep -g "$1" 2>/dev/null); do
    s=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + s))
  done
  echo "$t"
}
hwm_kb() { # pgid: peak RSS summed over the group's processes
  local p t=0 s
  for p in $(pgrep -g "$1" 2>/dev/null); do
    s=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
    t=$((t + ${s:-0}))
  done
  echo "$t"
}
nprocs() { local n; n=$(pgrep -g "$1" 2>/dev/null | wc -l) || true; echo "${n:-0}"; }
tck=$(getconf CLK_TCK)
results=$work/results.jsonl
ttfbs=$work/ttfb.jsonl
: >"$results"
: >"$ttfbs"

# per target: URL and headers (set by target_setup)
url='' hdrs=() pgid=''
target_setup() {
  case $1 in
    direct) url=http://127.0.0.1:$MOCK_PORT/v1/chat/completions hdrs=("authorization: Bearer $UPSTREAM_KEY") pgid='' ;;
    strata) url=http://127.0.0.1:$GW_PORT/v1/chat/completions hdrs=("authorization: Bearer $strata_token") ;;
    litellm) url=http://127.0.0.1:$LITELLM_PORT/v1/chat/completions hdrs=("authorization: Bearer sk-bench-litellm-master") ;;
    portkey) url=http://127.0.0.1:$PORTKEY_PORT/v1/chat/completions
      hdrs=("authorization: Bearer $UPSTREAM_KEY" "x-portkey-provider: openai" "x-portkey-custom-host: http://127.0.0.1:$MOCK_PORT/v1") ;;
    crabllm) url=http://127.0.0.1:$CRABLLM_PORT/v1/chat/completions hdrs=("authorization: Bearer sk-bench-crabllm") ;;
  esac
}

answers() { # body: 0 when the current target answers 200 with a body of the right shape
  local args=() h out
  for h in "${hdrs[@]}"; do args+=(-H "$h"); done
  out=$(curl -s -m 10 -w '\n%{http_code}' "$url" "${args[@]}" -H 'content-type: application/json' -d "$1" 2>/dev/null) || return 1
  [ "${out##*$'\n'}" = 200 ] || return 1
  case $1 in
    *'"stream":true'*) grep -q '^data: ' <<<"$out" ;;
    *) grep -q '"choices"' <<<"$out" ;;
  esac
}

wait_ready() { # name seconds: until the target answers both shapes with 200, or its process dies
  local name=$1 limit=$2 i
  for i in $(seq 1 $((limit * 4))); do
    if [ -n "$pgid" ] && ! kill -0 "$pgid" 2>/dev/null; then
      say "$name exited before answering; last lines of its log:"
      tail -n 15 "$work/$name.log" >&2
      return 1
    fi
    answers "$json_body" && answers "$sse_body" && return 0
    sleep 0.25
  done
  say "$name did not answer 200 within ${limit}s; last lines of its log:"
  tail -n 15 "$work/$name.log" >&2
  return 1
}

run() { # target profile mode load
  local target=$1 profile=$2 mode=$3 load=$4 body args=() h before=0 after=0 hwm=0 procs=0
  body=$work/body-$profile-$mode.json
  case $load in
    c*) args=(-c "${load#c}") ;;
    r*) args=(-c 64 -q "${load#r}" --latency-correction) ;;
  esac
  for h in "${hdrs[@]}"; do args+=(-H "$h"); done
  [ -n "$pgid" ] && before=$(cpu_ticks "$pgid")
  taskset -c "$LOAD_CPU" oha --no-tui --output-format json -z "$DUR" "${args[@]}" -m POST \
    -H 'content-type: application/json' -D "$body" "$url" >"$work/oha.json"
  if [ -n "$pgid" ]; then
    after=$(cpu_ticks "$pgid")
    hwm=$(hwm_kb "$pgid")
    procs=$(nprocs "$pgid")
    if ! kill -0 "$pgid" 2>/dev/null; then
      say "$target exited during the $profile $mode $load run; last lines of its log:"
      tail -n 20 "$work/${target%%#*}.log" >&2 || true
      died+=("$target ($profile $mode $load)")
    fi
  fi
  python3 - "$work/oha.json" "$target" "$mode" "$load" "$before" "$after" "$tck" "$hwm" "$procs" "$profile" "$(wc -c <"$body")" >>"$results" <<'EOF'
import json, sys
o = json.load(open(sys.argv[1]))
s = o["summary"]
codes = o.get("statusCodeDistribution", {})
errs = o.get("errorDistribution", {})
late = sum(v for k, v in errs.items() if "deadline" in k)
lp = o["latencyPercentiles"]
print(json.dumps({
    "target": sys.argv[2], "mode": sys.argv[3], "load": sys.argv[4],
    "profile": sys.argv[10], "bytes": int(sys.argv[11]),
    "rps": s["requestsPerSec"], "ok": codes.get("200", 0), "total": sum(codes.values()),
    "errors": sum(errs.values()) - late, "aborted_at_deadline": late,
    "p50": lp["p50"], "p90": lp["p90"], "p99": lp["p99"],
    "cpu_s": (int(sys.argv[6]) - int(sys.argv[5])) / int(sys.argv[7]),
    "hwm_mb": int(sys.argv[8]) / 1024, "procs": int(sys.argv[9]),
}))
EOF
  echo "   $target $profile $mode $load: $(tail -1 "$results")" >&2
}

ttfb() { # target
  local out
  out=$(taskset -c "$LOAD_CPU" python3 bench/ttfb.py "$url" "$sse_body" "$TTFB_N" "${hdrs[@]}") || out='{"error":"ttfb.py failed"}'
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["target"]=sys.argv[1]; print(json.dumps(d))' "$1" "$out" >>"$ttfbs"
  echo "   $1 ttfb: $out" >&2
}

died=() # gateways that exited while being measured
measure() { # target: every run, then the TTFB loop; stops early if the gateway's process is gone
  local profile mode load
  for profile in $PROFILES; do
    for mode in json sse; do
      for load in c1 c16 $(for r in $RATES; do echo "r$r"; done); do
        if [ -n "$pgid" ] && ! kill -0 "$pgid" 2>/dev/null; then return 0; fi
        run "$1" "$profile" "$mode" "$load"
      done
    done
  done
  if [ -n "$pgid" ] && ! kill -0 "$pgid" 2>/dev/null; then return 0; fi
  ttfb "$1"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
say "runs of $DUR each; load average at start: $load_at_start"
target_setup direct
say "direct (the mock upstream alone)"
measure direct

loads=() # the load average when each gateway started
declare -A rounds=() # a gateway named more than once in GATEWAYS runs again: "strata crabllm crabllm strata"
for g in "${want[@]}"; do
  pgid=''
  rounds[$g]=$((${rounds[$g]:-0} + 1))
  label=$g
  [ "${rounds[$g]}" -gt 1 ] && label="$g#${rounds[$g]}"
  case $g in
    strata)
      waited=0
      while ! port_free "$GW_PORT" && [ "$waited" -lt "$PORT_WAIT" ]; do
        [ "$waited" = 0 ] && say "127.0.0.1:$GW_PORT is in use (another run?); waiting up to ${PORT_WAIT}s"
        sleep 5
        waited=$((waited + 5))
      done
      if ! port_free "$GW_PORT"; then skip strata "127.0.0.1:$GW_PORT stayed in use for ${PORT_WAIT}s"; continue; fi
      say "strata (policy up: resolver + gateway, a policy decision on every request) on 127.0.0.1:$GW_PORT (cpu $GW_CPU)"
      ANTHROPIC_BASE_URL="http://127.0.0.1:$MOCK_PORT" OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT" \
      STRATA_CHAT_BASE_URL="http://127.0.0.1:$MOCK_PORT" \
      ANTHROPIC_API_KEY=$UPSTREAM_KEY OPENAI_API_KEY=$UPSTREAM_KEY STRATA_LOG=warn \
        start strata "$GW_CPU" target/release/policy up --data "$work/strata-data" \
          --listen "127.0.0.1:$GW_PORT" --resolver-listen "127.0.0.1:$RS_PORT" \
          --console-listen 127.0.0.1:0
      pgid=$started
      strata_token=''
      for _ in $(seq 1 150); do
        strata_token=$(grep -m1 '^  strata_gw_' "$work/strata.log" 2>/dev/null | tr -d ' ') || true
        [ -n "$strata_token" ] && break
        kill -0 "$pgid" 2>/dev/null || break
        sleep 0.2
      done
      if [ -z "$strata_token" ]; then
        tail -n 15 "$work/strata.log" >&2
        skip strata "policy up printed no gateway token"
        stop_group "$pgid"; forget "$pgid"; continue
      fi
      limit=30
      ;;
    litellm)
      cat >"$work/litellm.yaml" <<EOF
model_list:
  - model_name: $MODEL
    litellm_params:
      model: openai/$MODEL
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: $UPSTREAM_KEY
general_settings:
  master_key: sk-bench-litellm-master
EOF
      say "litellm $LITELLM_VERSION (1 worker) on 127.0.0.1:$LITELLM_PORT (cpu $GW_CPU)"
      LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
        start litellm "$GW_CPU" "$tools/venv/bin/litellm" --config "$work/litellm.yaml" \
          --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1
      pgid=$started
      limit=240
      ;;
    portkey)
      # Portkey's start script listens on every interface; a preload binds it to loopback
      cat >"$work/loopback.cjs" <<'EOF'
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  else if (args[0] && typeof args[0] === 'object' && args[0].port !== undefined && !args[0].host) args[0] = { ...args[0], host: '127.0.0.1' };
  return listen.apply(this, args);
};
EOF
      say "portkey $PORTKEY_VERSION (node $(node --version)) on 127.0.0.1:$PORTKEY_PORT (cpu $GW_CPU)"
      NODE_ENV=production start portkey "$GW_CPU" node -r "$work/loopback.cjs" \
        "$tools/portkey/node_modules/@portkey-ai/gateway/build/start-server.js" --port="$PORTKEY_PORT" --headless
      pgid=$started
      limit=60
      ;;
    crabllm)
      cat >"$work/crabllm.toml" <<EOF
listen = "127.0.0.1:$CRABLLM_PORT"
openapi = false

[[keys]]
name = "bench"
key = "sk-bench-crabllm"
models = ["*"]

[providers.mock]
kind = "openai"
api_key = "$UPSTREAM_KEY"
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
models = ["$MODEL"]
EOF
      say "crabllm $CRABLLM_VERSION on 127.0.0.1:$CRABLLM_PORT (cpu $GW_CPU)"
      RUST_LOG=warn start crabllm "$GW_CPU" "$tools/bin/crabllm" serve --config "$work/crabllm.toml"
      pgid=$started
      limit=30
      ;;
  esac
  target_setup "$g"
  if ! wait_ready "$g" "$limit"; then
    skip "$g" "did not answer 200 (see above)"
    stop_group "$pgid"; forget "$pgid"; continue
  fi
  loads+=("$label: $(cut -d' ' -f1-3 /proc/loadavg)")
  measure "$label"
  say "stopping $g (pid $pgid and its group)"
  stop_group "$pgid"
  forget "$pgid"
done

elapsed=$(($(date +%s) - started_at))

# ---------------------------------------------------------------------------------------------
report() {
  local commit
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  echo "# Gateways side by side (bench/compare.sh)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); Strata commit $commit; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  echo "- load average at the start of the run: $load_at_start (1, 5, 15 min); when each gateway started: ${loads[*]:-none}"
  echo "- run order: direct, ${want[*]} (GATEWAYS; DUR=$DUR, RATES=$RATES, TTFB_N=$TTFB_N)"
  echo "- network: $netns namespace (loopback only)"
  echo "- each run $DUR; gateways on core $GW_CPU, oha $(oha --version | awk '{print $2}') and the mock upstream on core $LOAD_CPU; whole script ${elapsed}s"
  echo "- versions: litellm[proxy] $LITELLM_VERSION (1 worker); @portkey-ai/gateway $PORTKEY_VERSION (node $(node --version 2>/dev/null || echo -)); crabllm $CRABLLM_VERSION; Strata \`policy up\` with the example bundle (policies/examples/acme), user alice (leads)"
  echo "- requests: \`POST /v1/chat/completions\`, model $MODEL, body profiles (bench/bodies.py): $(for p in $PROFILES; do printf '%s %s bytes; ' "$p" "$(wc -c <"$work/body-$p-json.json")"; done)SSE: the same with \`\"stream\":true\`"
  for s in "${skipped[@]}"; do echo "- skipped $s"; done
  for s in "${died[@]}"; do echo "- **exited while measured**: $s (its later runs are missing; its log is in bench/.tools/logs/last-run)"; done
  echo
  python3 - "$results" "$ttfbs" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tt = [json.loads(l) for l in open(sys.argv[2])]
by = {(r["target"], r["profile"], r["mode"], r["load"]): r for r in rows}
ms = lambda s: f"{s*1000:.3f}" if s is not None else "-"
base_names = {"direct": "direct (mock)", "strata": "Strata", "litellm": "LiteLLM", "portkey": "Portkey", "crabllm": "crabllm"}
class Names(dict):
    def __missing__(self, t):
        b, _, k = t.partition("#")
        return base_names[b] + (f" (round {k})" if k else "")
names = Names()
base = lambda t: t.partition("#")[0]
order = []
for r in rows:
    if r["target"] not in order:
        order.append(r["target"])
loads, profiles, sizes = [], [], {}
for r in rows:
    if r["load"] not in loads:
        loads.append(r["load"])
    if r["profile"] not in profiles:
        profiles.append(r["profile"])
    sizes.setdefault((r["profile"], r["mode"]), r["bytes"])
size = lambda p, m: (lambda b: f"{b / 1024:.0f} KB" if b >= 1024 else f"{b} B")(sizes[(p, m)])
label = lambda l: f"c={l[1:]}" if l[0] == "c" else f"{int(l[1:]):,}/s (c=64)"
print("| gateway | profile | mode | load | req/s | p50 / p90 / p99 (ms) | added p50 / p99 (ms) | CPU per req | peak RSS | non-200 |")
print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
for profile in profiles:
  for t in order:
    for mode in ("json", "sse"):
        for load in loads:
            s = by.get((t, profile, mode, load))
            if not s:
                continue
            d = by.get(("direct", profile, mode, load))
            if t == "direct":
                added, cpu, rss = "-", "-", "-"
            else:
                added = f"{ms(s['p50'] - d['p50'])} / {ms(s['p99'] - d['p99'])}" if d else "-"
                cpu = f"{s['cpu_s'] / max(s['total'], 1) * 1e6:.0f} µs"
                rss = f"{s['hwm_mb']:.1f} MB" + (f" ({s['procs']} procs)" if s["procs"] > 1 else "")
            bad = (s["total"] - s["ok"]) + s["errors"]
            print(f"| {names[t]} | {profile} ({size(profile, mode)}) | {mode} | {label(load)} | {s['rps']:,.0f} | {ms(s['p50'])} / {ms(s['p90'])} / {ms(s['p99'])} | "
                  f"{added} | {cpu} | {rss} | {bad} |")
print()
print("CPU per request: the gateway's CPU time (user + system, all its processes) over the run divided by the requests"
      " answered; peak RSS: VmHWM summed over the gateway's processes, after that run (it only grows over a gateway's runs)."
      " Fixed-rate runs use `--latency-correction` (latency counted from when the request was due)."
      " Requests still in flight when a run's time is up are aborted by oha and not counted.")
print()
if tt:
    dt = next((x for x in tt if x["target"] == "direct"), None)
    print("Time to first byte, streaming (SSE), one request at a time on a keep-alive connection (bench/ttfb.py;"
          " from the request sent to the first body bytes holding `data:`):")
    print()
    print("| gateway | requests | TTFB p50 / p90 / p99 (ms) | added TTFB p50 / p99 (ms) | whole answer p50 (ms) |")
    print("|---|---:|---:|---:|---:|")
    for x in tt:
        if "error" in x:
            print(f"| {names[x['target']]} | - | {x['error']} | - | - |")
            continue
        added = "-" if x["target"] == "direct" or not dt or "error" in dt else \
            f"{ms(x['ttfb_p50'] - dt['ttfb_p50'])} / {ms(x['ttfb_p99'] - dt['ttfb_p99'])}"
        print(f"| {names[x['target']]} | {x['n']} | {ms(x['ttfb_p50'])} / {ms(x['ttfb_p90'])} / {ms(x['ttfb_p99'])} | {added} | {ms(x['total_p50'])} |")
    print()
# ratios against Strata, same run (a gateway measured in several rounds: the mean of its rounds)
closed = [l for l in loads if l[0] == "c"]
def mean_rps(b, profile, mode, load):
    xs = [r["rps"] for r in rows if base(r["target"]) == b and r["profile"] == profile and r["mode"] == mode and r["load"] == load]
    return sum(xs) / len(xs) if xs else None
bases = []
for t in order:
    if base(t) not in bases:
        bases.append(base(t))
if "strata" in bases and any(b not in ("direct", "strata") for b in bases):
    multi = any("#" in t for t in order)
    print("Strata's throughput over each other gateway's, same mode and load (closed-loop runs"
          + ("; each gateway's mean over its rounds" if multi else "") + "):")
    print()
    for b in bases:
        if b in ("direct", "strata"):
            continue
        for profile in profiles:
            parts = []
            for mode in ("json", "sse"):
                for load in closed:
                    a, o = mean_rps("strata", profile, mode, load), mean_rps(b, profile, mode, load)
                    if a and o:
                        parts.append(f"{mode} {label(load)}: {a / o:.1f}×")
            print(f"- vs {base_names[b]}, {profile}: " + "; ".join(parts))
EOF
}

if [ -n "$OUT" ]; then
  report | tee "$OUT"
else
  report
fi
