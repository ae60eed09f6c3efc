#!/usr/bin/env bash
# Soak: the resolver (`policy serve`, sled) and the gateway (`policy gateway`) as separate
# processes in front of the mock upstream, a fixed request rate for a bounded time, and an org
# bundle published every few seconds, alternating between one that allows the requested model
# and one that bans it. Checks, for every response, that its decision matches the revision it
# names (200 only under the allowing revision, 403 `policy_denied` only under the banning one),
# that nothing else comes back, and samples RSS and open file descriptors of both servers.
# Loopback only, bounded, every process stopped by its id. Not run by CI.
#
#   bench/soak.sh                      # 10 minutes at 2,000 requests/s, a publish every 5 s
#   DURATION=180 bench/soak.sh         # 3 minutes
#   RATE=1000 PUBLISH_EVERY=2 bench/soak.sh
#   KEEP=/tmp/soak bench/soak.sh       # keep the samples (CSV), the summary and the logs there
#
# Needs: cargo, python3, taskset (util-linux). Exit 1 on any wrong decision or unexpected answer.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
RATE=${RATE:-2000}
PUBLISH_EVERY=${PUBLISH_EVERY:-5}
SAMPLE_EVERY=${SAMPLE_EVERY:-5}
MOCK_PORT=${MOCK_PORT:-19200}
# the example bundle requires traffic through http://127.0.0.1:8787 (policy.json gateway): the
# gateway names itself so (public_base_url) whatever port it listens on
GW_PORT=${GW_PORT:-19287}
RS_PORT=${RS_PORT:-19251}
# the servers on core 0, the load generator and the mock upstream on core 1
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

echo "== build (release)" >&2
cargo build --release --locked -q -p strata-cli
cargo build --release --locked -q -p strata-gateway --example mock_upstream --example soak_client
policy=target/release/policy

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP"
    cp "$work"/*.csv "$work"/*.json "$work"/*.log "$work"/published.txt "$KEEP"/ 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# two org bundles: the example, and the example with claude-sonnet-4-5 banned
cp -r policies/examples/acme/org "$work/allow"
cp -r policies/examples/acme/org "$work/deny"
python3 - "$work/deny/settings.json" <<'EOF'
import json, sys
p = sys.argv[1]
s = json.load(open(p))
s["modelPolicy"]["blockedModelIds"].append("claude-sonnet-4-5")
json.dump(s, open(p, "w"), indent=2)
EOF

export STRATA_ADMIN_TOKEN=soak-admin-token STRATA_SERVICE_TOKEN=soak-service-token
export STRATA_RESOLVER="http://127.0.0.1:$RS_PORT" STRATA_TOKEN=$STRATA_ADMIN_TOKEN
export ANTHROPIC_API_KEY=sk-ant-soak-central-key STRATA_LOG=warn

echo "== mock upstream on 127.0.0.1:$MOCK_PORT, resolver on :$RS_PORT" >&2
taskset -c "$LOAD_CPU" target/release/examples/mock_upstream "127.0.0.1:$MOCK_PORT" 2>"$work/mock.log" &
pids+=($!)
taskset -c "$SERVER_CPU" "$policy" serve --data "$work/data" --listen "127.0.0.1:$RS_PORT" \
  >"$work/resolver.out" 2>"$work/resolver.log" &
resolver=$!
pids+=($resolver)
for _ in $(seq 1 100); do
  "$policy" revisions >/dev/null 2>&1 && break
  sleep 0.2
done

publish() { # dir → its revision
  "$policy" publish org "$1" -m soak 2>>"$work/publish.log" | awk '{print $NF}' | tail -1
}
# an `unchanged: revision X is already active` line also ends with the revision
deny_rev=$(publish "$work/deny")
allow_rev=$(publish "$work/allow")
[ -n "$allow_rev" ] && [ -n "$deny_rev" ] && [ "$allow_rev" != "$deny_rev" ] || {
  cat "$work/publish.log" >&2
  echo "publishing the two bundles failed" >&2
  exit 1
}
echo "   allowing revision $allow_rev, banning revision $deny_rev" >&2
token=$("$policy" token create --user alice --group leads 2>/dev/null)

cat >"$work/gateway.toml" <<EOF
listen = "127.0.0.1:$GW_PORT"
public_base_url = "http://127.0.0.1:8787"
resolver = "http://127.0.0.1:$RS_PORT"
[audit]
dir = "$work/audit"
retention_days = 1
[upstreams.anthropic]
base_url = "http://127.0.0.1:$MOCK_PORT"
key_env = "ANTHROPIC_API_KEY"
EOF
echo "== gateway on 127.0.0.1:$GW_PORT" >&2
taskset -c "$SERVER_CPU" "$policy" gateway --config "$work/gateway.toml" \
  >"$work/gateway.out" 2>"$work/gateway.log" &
gateway=$!
pids+=($gateway)
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW_PORT/readyz")" = 200 ] && break
  sleep 0.2
done

# RSS (KiB) and open descriptors of both servers, every SAMPLE_EVERY seconds
samples="$work/samples.csv"
echo "t,gateway_rss_kib,gateway_fds,resolver_rss_kib,resolver_fds" >"$samples"
sample() {
  local line=$1 p
  for p in "$gateway" "$resolver"; do
    line="$line,$(awk '/VmRSS/ {print $2}' "/proc/$p/status"),$(ls "/proc/$p/fd" | wc -l)"
  done
  echo "$line" >>"$samples"
}
(
  t=0
  while [ "$t" -le "$DURATION" ]; do
    sample "$t"
    sleep "$SAMPLE_EVERY"
    t=$((t + SAMPLE_EVERY))
  done
) &
sampler=$!
pids+=($sampler)

# publishes: deny, allow, deny, ... every PUBLISH_EVERY seconds until the load ends
(
  n=0
  while true; do
    sleep "$PUBLISH_EVERY"
    if [ $((n % 2)) -eq 0 ]; then dir="$work/deny"; else dir="$work/allow"; fi
    publish "$dir" >>"$work/published.txt" || echo failed >>"$work/published.txt"
    n=$((n + 1))
  done
) &
publisher=$!
pids+=($publisher)

echo "== ${DURATION}s at $RATE requests/s, a publish every ${PUBLISH_EVERY}s" >&2
taskset -c "$LOAD_CPU" target/release/examples/soak_client "http://127.0.0.1:$GW_PORT" "$token" \
  "$RATE" "$DURATION" "$allow_rev" "$deny_rev" >"$work/summary.json"
kill "$publisher" 2>/dev/null || true
wait "$publisher" 2>/dev/null || true
sample end

python3 - "$work/summary.json" "$samples" "$work/published.txt" "$work/audit" <<'EOF'
import json, os, sys
s = json.load(open(sys.argv[1]))
rows = [l.strip().split(",") for l in open(sys.argv[2])][1:]
published = [l.strip() for l in open(sys.argv[3])] if os.path.exists(sys.argv[3]) else []
audit = sum(os.path.getsize(os.path.join(sys.argv[4], f)) for f in os.listdir(sys.argv[4]))
col = lambda i: [int(r[i]) for r in rows]
def span(i, unit=1):
    v = col(i)
    # after the first minute's warm-up (or the first sample on short runs)
    warm = [int(r[i]) for r in rows if r[0] != "end" and int(r[0]) >= 60] or v[1:] or v
    return f"{v[0]/unit:.0f} → {max(v)/unit:.0f} max → {v[-1]/unit:.0f} (after warm-up {min(warm)/unit:.0f}–{max(warm)/unit:.0f})"
print(f"| duration | {s['seconds']:.0f} s |")
print(f"| requests | {s['answered']} answered of {s['sent']} sent, {s['rate']:.0f}/s (target {s['target_rate']}) |")
print(f"| decisions | {s['allowed']} allowed, {s['denied']} denied |")
print(f"| wrong decisions | {s['wrong']} {s['wrong_kinds'] or ''} |")
print(f"| unexpected answers | {s['unexpected']} {s['unexpected_kinds'] or ''} |")
print(f"| latency | p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, p99.9 {s['p999_ms']:.2f} ms, max {s['max_ms']:.1f} ms |")
print(f"| publishes | {len(published)} ({sum(1 for p in published if p == 'failed')} failed) |")
print(f"| gateway RSS (MiB) | {span(1, 1024)} |")
print(f"| gateway open fds | {span(2)} |")
print(f"| resolver RSS (MiB) | {span(3, 1024)} |")
print(f"| resolver open fds | {span(4)} |")
print(f"| audit log written | {audit/1e6:.0f} MB |")
sys.exit(1 if s["wrong"] or s["unexpected"] else 0)
EOF
