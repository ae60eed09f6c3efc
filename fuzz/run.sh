#!/usr/bin/env bash
# Run every fuzz target (or those named) for a bounded time each, from the committed seed corpora,
# and print executions and crashes per target. Not run by CI.
#
#   fuzz/run.sh                 # 60 s per target (12 targets: ~12 min after the build)
#   fuzz/run.sh 10              # 10 s per target
#   fuzz/run.sh 300 cedar bundle  # only the named targets
#
# Needs: cargo (cargo-fuzz is installed from crates.io when missing), a C++ compiler (libFuzzer is
# built from source by libfuzzer-sys). cargo-fuzz is made for nightly: a nightly toolchain is
# used when rustup has one, otherwise the stable one with RUSTC_BOOTSTRAP=1.
# SANITIZER=address runs under ASan (slower; the workspace forbids unsafe code, so the default is
# `none`: libFuzzer's coverage-guided search, panics and integer overflow checks, no ASan).
#
# New inputs go to fuzz/target/corpus/<target> (ignored by git); the committed seeds in
# fuzz/corpus/<target> are only read. A crash leaves its input in fuzz/artifacts/<target>/ and
# the script exits 1 after all targets ran; reproduce with
#   cd fuzz && cargo +nightly fuzz run -O -a --sanitizer none <target> artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")"
fuzz_dir=$(pwd)

SECS=${1:-60}
shift || true
SANITIZER=${SANITIZER:-none}
CARGO_FUZZ_VERSION=${CARGO_FUZZ_VERSION:-0.13.2}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io (a few minutes, once)" >&2
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  echo "== no nightly toolchain: stable with RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
fi
fuzz() { cargo "${toolchain[@]}" fuzz "$@"; }
files_in() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(fuzz list)
fi

echo "== build (${toolchain[*]:-stable} release, debug assertions, sanitizer $SANITIZER)" >&2
fuzz build -O -a --sanitizer "$SANITIZER" >&2

logs="$fuzz_dir/target/fuzz-logs"
mkdir -p "$logs"
failed=0
rows=()
for t in "${targets[@]}"; do
  work="$fuzz_dir/target/corpus/$t"
  mkdir -p "$work" "corpus/$t"
  before=$(files_in "artifacts/$t")
  echo "== $t: ${SECS}s" >&2
  status=0
  fuzz run -O -a --sanitizer "$SANITIZER" "$t" "$work" "corpus/$t" -- \
    -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$logs/$t.log" 2>&1 || status=$?
  execs=$(awk -F: '/stat::number_of_executed_units/ {gsub(/ /, "", $NF); print $NF}' "$logs/$t.log" | tail -1 || true)
  rate=$(awk -F: '/stat::average_exec_per_sec/ {gsub(/ /, "", $NF); print $NF}' "$logs/$t.log" | tail -1 || true)
  cov=$(grep -oE 'cov: [0-9]+' "$logs/$t.log" | tail -1 | awk '{print $2}' || true)
  corpus=$(files_in "$work")
  after=$(files_in "artifacts/$t")
  crashes=$((after - before))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    # libFuzzer stopped without writing an input (e.g. a build problem): show why
    tail -20 "$logs/$t.log" >&2
    crashes="?"
  fi
  [ "$status" -eq 0 ] || failed=1
  rows+=("| $t | ${execs:-?} | ${rate:-?} | ${cov:-?} | $corpus | $crashes |")
  echo "   $t: ${execs:-?} executions, ${rate:-?}/s, $crashes crashes (log: $logs/$t.log)" >&2
done

echo
echo "| target | executions | per second | coverage (edges) | corpus | crashes |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
if [ "$failed" -ne 0 ]; then
  echo "crashes: see fuzz/artifacts/ and $logs/" >&2
fi
exit "$failed"
