#!/usr/bin/env bash
# Serving Droid's org level: `GET /api/organization/managed-settings` (the document rendered for
# the caller, cached per revision and person at the resolver) through `policy up`, at c=1 and
# c=16, p50/p99 from oha. Loopback only, bounded. Not run by CI.
#
#   bench/org-settings.sh            # DUR=10s per run
#
# Needs: a release build (bench/gateway.sh makes one) and oha (bench/.tools, installed by
# bench/gateway.sh, or on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10s}
GW_PORT=${GW_PORT:-8787}
RS_PORT=${RS_PORT:-15052}
export PATH="$(pwd)/bench/.tools/bin:$PATH"
cargo build --release --locked -q -p strata-cli
work=$(mktemp -d)
STRATA_LOG=warn ANTHROPIC_API_KEY=sk-ant-bench taskset -c 0 target/release/policy up --data "$work/data" \
  --listen "127.0.0.1:$GW_PORT" --resolver-listen "127.0.0.1:$RS_PORT" --console-listen 127.0.0.1:0 >"$work/up.out" 2>"$work/up.log" &
up=$!
trap 'kill $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q '^  strata_gw_' "$work/up.log" 2>/dev/null && break; sleep 0.2; done
token=$(grep -m1 '^  strata_gw_' "$work/up.log" | tr -d ' ')
url="http://127.0.0.1:$GW_PORT/api/organization/managed-settings"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $token" "$url")" = 200 ]
echo "| load | req/s | p50 (ms) | p99 (ms) | bytes |"
echo "|---|---:|---:|---:|---:|"
for c in 1 16; do
  taskset -c 1 oha --no-tui --output-format json -z "$DUR" -c "$c" -H "authorization: Bearer $token" "$url" \
    >"$work/oha.json"
  python3 - "$work/oha.json" "$c" "$(curl -s -H "authorization: Bearer $token" "$url" | wc -c)" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
p = o["latencyPercentiles"]
print(f"| c={sys.argv[2]} | {o['summary']['requestsPerSec']:.0f} | {p['p50']*1000:.3f} | {p['p99']*1000:.3f} | {sys.argv[3]} |")
PY
done
