#!/usr/bin/env bash
# Resolver `Decide` over loopback gRPC against the shipped server (`policy serve`, sled): the
# throughput at saturation with h2load (nghttp2's HTTP/2 load generator: a lean C client, so the
# two cores go to the server rather than to the load), and a fixed rate (default 5,000/s, open
# loop, latency from each request's scheduled send time) with the tonic client of
# `crates/resolver/benches/decide_load.rs`. Loopback only, bounded durations, every process
# stopped by its id. Not run by CI.
#
#   bench/resolver.sh                  # ~4 minutes after the build
#   DUR=5 FIXED_ROUNDS=1 bench/resolver.sh
#   CONSOLE=on PLACEMENTS=pinned bench/resolver.sh   # the admin console listening too (issue 18)
#
# Needs: cargo, taskset, curl; h2load (Debian's nghttp2-client, installed with apt-get when
# missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10}                 # seconds per saturation point
FIXED_SECS=${FIXED_SECS:-10}   # seconds per fixed-rate run (after 1 s of warm-up)
FIXED_ROUNDS=${FIXED_ROUNDS:-3}
RATE=${RATE:-5000}
POINTS=${POINTS:-"1x1 4x16 8x64"}  # connections x streams in flight per connection
RS_PORT=${RS_PORT:-15071}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PLACEMENTS=${PLACEMENTS:-"both pinned"}
CONSOLE=${CONSOLE:-off}        # on: `policy serve --console-listen` (the console idle beside it)
CONSOLE_PORT=${CONSOLE_PORT:-15072}
target=${CARGO_TARGET_DIR:-target}

echo "== build (release)" >&2
cargo build --release --locked -q -p strata-cli
cargo build --release --locked -q -p strata-resolver --example decide_frame
client=$(cargo bench --locked -p strata-resolver --bench decide_load --no-run 2>&1 |
  sed -n 's/.*(\(.*decide_load-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$client" ] || { echo "cannot find the decide_load bench binary" >&2; exit 1; }

if ! command -v h2load >/dev/null 2>&1; then
  echo "== installing h2load (Debian nghttp2-client)" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q nghttp2-client >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q nghttp2-client >/dev/null; }
  fi
  command -v h2load >/dev/null 2>&1 || { echo "h2load is missing: install nghttp2-client" >&2; exit 1; }
fi

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# the decide_load client presents this service token
export STRATA_ADMIN_TOKEN=bench-admin-token STRATA_SERVICE_TOKEN=strata_svc_bench
export STRATA_RESOLVER="http://127.0.0.1:$RS_PORT" STRATA_TOKEN=bench-admin-token STRATA_LOG=warn
policy=$target/release/policy
console=()
[ "$CONSOLE" = on ] && console=(--console-listen "127.0.0.1:$CONSOLE_PORT")

start() { # placement: "both" (no pinning) or "pinned" (server on SERVER_CPU)
  rm -rf "$work/data"
  local pin=()
  [ "$1" = pinned ] && pin=(taskset -c "$SERVER_CPU")
  "${pin[@]}" "$policy" serve --data "$work/data" --listen "127.0.0.1:$RS_PORT" "${console[@]}" \
    >"$work/serve.out" 2>"$work/serve.log" &
  server=$!
  for _ in $(seq 1 100); do "$policy" revisions >/dev/null 2>&1 && break; sleep 0.2; done
  "$policy" publish org policies/examples/acme/org -m bench >/dev/null 2>&1
  "$policy" publish project --id web policies/examples/acme/project/.factory \
    --folder services/billing=policies/examples/acme/project/services/billing/.factory -m bench >/dev/null 2>&1
  token=$("$policy" token create --user alice --group leads 2>/dev/null)
  "$target/release/examples/decide_frame" "$token" >"$work/frame"
  # every h2load request is this one: check that it is answered with a decision
  curl -s --http2-prior-knowledge -o /dev/null -D "$work/headers" --data-binary @"$work/frame" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $STRATA_SERVICE_TOKEN" \
    "http://127.0.0.1:$RS_PORT/strata.v1.PolicyService/Decide"
  grep -q '^grpc-status: 0' "$work/headers" || { cat "$work/headers" "$work/serve.log" >&2; echo "Decide failed" >&2; exit 1; }
  if [ "$CONSOLE" = on ]; then # the console answers beside it
    curl -sf -o /dev/null "http://127.0.0.1:$CONSOLE_PORT/login" || { cat "$work/serve.log" >&2; echo "no console" >&2; exit 1; }
  fi
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
tck=$(getconf CLK_TCK)

sat="$work/saturation.md"
saturate() { # placement
  for point in $POINTS; do
    local c=${point%x*} m=${point#*x} pin=() before after
    [ "$1" = pinned ] && pin=(taskset -c "$LOAD_CPU")
    rm -f "$work/h2.log" # h2load appends to it
    before=$(cpu_ticks)
    "${pin[@]}" h2load -D "$DUR" -c "$c" -m "$m" --log-file="$work/h2.log" -d "$work/frame" \
      -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $STRATA_SERVICE_TOKEN" \
      "http://127.0.0.1:$RS_PORT/strata.v1.PolicyService/Decide" >"$work/h2.out" 2>&1
    after=$(cpu_ticks)
    python3 - "$work/h2.out" "$work/h2.log" "$1" "$c" "$m" "$((after - before))" "$tck" >>"$sat" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
rps = float(re.search(r"finished in [0-9.]+s, ([0-9.]+) req/s", out).group(1))
done = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
lat = sorted(int(l.split()[2]) for l in open(sys.argv[2]) if l.strip())
n = len(lat)
q = lambda p: lat[min(n - 1, int(n * p))] / 1000 if n else float("nan")
cpu = int(sys.argv[6]) / int(sys.argv[7])
ok = int(done.group(3))
place = "both cores (h2load shares them)" if sys.argv[3] == "both" else "core 0 (h2load on core 1)"
print(f"| {place} | {sys.argv[4]} × {sys.argv[5]} | {rps:,.0f} | {q(.5):.2f} | {q(.9):.2f} | {q(.99):.2f} | "
      f"{cpu * 1e6 / max(ok, 1):.0f} µs | {int(done.group(4)) + int(done.group(5))} |")
PY
    echo "   $(tail -1 "$sat")" >&2
  done
}

fixed="$work/fixed.md"
fixed_rate() { # placement
  local pin=() before after
  [ "$1" = pinned ] && pin=(taskset -c "$LOAD_CPU")
  for round in $(seq 1 "$FIXED_ROUNDS"); do
    before=$(cpu_ticks)
    DECIDE_LOAD_ONLY=fixed DECIDE_LOAD_RATE=$RATE DECIDE_LOAD_FIXED_SECS=$FIXED_SECS \
      "${pin[@]}" "$client" --client "127.0.0.1:$RS_PORT" "$token" "$1, round $round" >"$work/client.log" 2>&1 ||
      { cat "$work/client.log" >&2; exit 1; }
    grep -m1 '^|.*scheduled send' "$work/client.log" >>"$fixed" || { cat "$work/client.log" >&2; exit 1; }
    after=$(cpu_ticks)
    echo "   $(tail -1 "$fixed") server CPU $(( (after - before) * 1000000 / tck / (RATE * (FIXED_SECS + 1)) )) µs/decision" >&2
  done
}

for placement in $PLACEMENTS; do
  echo "== policy serve on $placement (console $CONSOLE)" >&2
  start "$placement"
  saturate "$placement"
  fixed_rate "$placement"
  stop
done

echo "### Saturation (h2load, $DUR s per point; the same Decide request, allowed, with the token identity)"
echo
echo "| server on | connections × streams | decisions/s | p50 (ms) | p90 (ms) | p99 (ms) | server CPU/decision | failed |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
cat "$sat"
echo
echo "### Fixed rate ($RATE/s open loop, $FIXED_SECS s after 1 s warm-up; the decide_load client, a mix of four requests)"
echo
echo "| server | client | target | achieved | latency from | answered | p50 | p90 | p99 | p99.9 | max | errors |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
cat "$fixed"
