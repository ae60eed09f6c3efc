#!/usr/bin/env bash
# Issue #20, ten thousand projects: the shipped server (`policy serve`, release build) on sled
# (and on PostgreSQL when STRATA_TEST_PG is set or a local PostgreSQL can be started), driven over
# loopback gRPC by the client of `crates/resolver/benches/scale.rs`: the Acme example org, then
# PROJECTS generated projects published one at a time (most ban or add a model; every 10th
# defines an MCP server, every 25th ships a Cedar rule), at each checkpoint REPEAT more publishes
# of the last project and as many rollbacks, with the resolver's RSS; then TOKENS gateway
# tokens; then Decide for project 1 and the last project. Finally the resolver is stopped and
# started again on the same store (a replica starting cold): the time until it answers a Decide
# for the last project. Bounded counts, loopback only, every process stopped by its id.
# Not run by CI.
#
#   bench/scale.sh                                  # 10,000 projects, 100,000 tokens
#   PROJECTS=2000 TOKENS=10000 STORES=sled bench/scale.sh
#
# Needs: cargo; for PostgreSQL, /usr/lib/postgresql/*/bin (as in .ci/run) or STRATA_TEST_PG.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECTS=${PROJECTS:-10000}
TOKENS=${TOKENS:-100000}
REPEAT=${REPEAT:-20}
DECIDES=${DECIDES:-5000}
CHECKPOINTS=${CHECKPOINTS:-10,1000,2000,5000,10000}
STORES=${STORES:-"sled postgres"}
RS_PORT=${RS_PORT:-15081}

echo "== build (release)" >&2
cargo build --release --locked -q -p strata-cli
client=$(cargo bench --locked -p strata-resolver --bench scale --no-run 2>&1 |
  sed -n 's/.*(\(.*scale-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$client" ] || { echo "cannot find the scale bench binary" >&2; exit 1; }

work=$(mktemp -d)
server=
pg_stop=
pg_dir=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  [ -n "$pg_stop" ] && $pg_stop
  [ -n "$pg_dir" ] && rm -rf "$pg_dir"
  rm -rf "$work"
}
trap cleanup EXIT

export STRATA_ADMIN_TOKEN=bench-admin-token STRATA_SERVICE_TOKEN=strata_svc_bench STRATA_LOG=warn
export SCALE_PROJECTS=$PROJECTS SCALE_TOKENS=$TOKENS SCALE_REPEAT=$REPEAT SCALE_DECIDES=$DECIDES
export SCALE_CHECKPOINTS=$CHECKPOINTS
policy=target/release/policy
[ -n "${CARGO_TARGET_DIR:-}" ] && policy=$CARGO_TARGET_DIR/release/policy
last=$(printf 'team-%05d/repo' "$PROJECTS")

start() { # store arguments...
  "$policy" serve "$@" --listen "127.0.0.1:$RS_PORT" >>"$work/serve.out" 2>>"$work/serve.log" &
  server=$!
}
wait_ready() { # project: until a Decide there is answered; prints the seconds it took
  local t0=$1 project=$2
  for _ in $(seq 1 1200); do
    "$client" --probe "127.0.0.1:$RS_PORT" "$project" 2>/dev/null && break
    sleep 0.05
  done
  python3 -c "import time; print(f'{time.time() - $t0:.2f}')"
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=; }

start_pg() {
  if [ -n "${STRATA_TEST_PG:-}" ]; then
    pg_url="$STRATA_TEST_PG/strata_scale_$$"
    python3 - "$STRATA_TEST_PG" "strata_scale_$$" <<'PY' || return 1
import subprocess, sys
subprocess.run(["psql", sys.argv[1], "-qc", f"CREATE DATABASE {sys.argv[2]}"], check=True)
PY
    return 0
  fi
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$bin/initdb" ] || return 1
  # a directory of its own: initdb runs as postgres, which cannot enter $work (mode 700, root's)
  local dir as="" port
  dir=$(mktemp -d /tmp/strata-scale-pg.XXXXXX)
  pg_dir=$dir
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; as="runuser -u postgres --"; fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  $as "$bin/initdb" -D "$dir/data" -U strata --auth=trust -E UTF8 --no-sync >/dev/null
  $as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
  pg_stop="$as $bin/pg_ctl -D $dir/data -m immediate -w stop"
  pg_url="postgres://strata@127.0.0.1:$port/postgres"
}

report=${REPORT:-$work/report.md}
for store in $STORES; do
  case $store in
    sled) args=(--data "$work/data") ;;
    postgres)
      if ! start_pg; then echo "== no PostgreSQL: skipping it" >&2; continue; fi
      args=(--store "$pg_url") ;;
  esac
  echo "== $store: $PROJECTS projects, $TOKENS tokens" >&2
  { echo "## $store"; echo; } >>"$report"
  start "${args[@]}"
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$RS_PORT") 2>/dev/null && break; sleep 0.1; done
  "$client" "127.0.0.1:$RS_PORT" "$server" >>"$report"
  stop
  echo "== $store: a resolver starting cold on the store" >&2
  t0=$(python3 -c 'import time; print(time.time())')
  start "${args[@]}"
  secs=$(wait_ready "$t0" "$last")
  rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server/status")
  { echo; echo "Cold start on the $store store: serving $last after $secs s, RSS $rss MB"; echo; } >>"$report"
  stop
  [ -n "$pg_stop" ] && { $pg_stop; pg_stop=; }
done

echo "# bench/scale.sh: $PROJECTS projects, $TOKENS tokens, commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
cat "$report"
