#!/usr/bin/env bash
# Regenerates tests/droid/model-ids-<version>.txt: Droid's catalogue of model ids, one a line,
# sorted, taken from the JavaScript compiled into the droid binary. The catalogue is the one enum
# that holds the CLAUDE_* and GPT_* constants, compiled as
#   ((t)=>{t.CLAUDE_SONNET_3_5="claude-3-5-sonnet-20241022";...;t.FACTORY_ROUTER="auto";...})(rr||={})
# and Droid's org-settings schema keeps only the ids in `new Set(Object.values(rr))` in
# modelPolicy.allowedModelIds / blockedModelIds / requireExplicitOptInModelIds (anything else is
# dropped silently), so this list is exactly what an org document may name there.
#
#   tests/droid/extract-model-ids.sh [BINARY]          write the file
#   tests/droid/extract-model-ids.sh --check [BINARY]  fail when the file differs from the binary
#
# BINARY defaults to $STRATA_DROID_BIN, else the one tests/droid/install.sh installs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
bin="${1:-${STRATA_DROID_BIN:-$here/../../target/droid/node_modules/@factory/cli-linux-x64/bin/droid}}"
[ -f "$bin" ] || { echo "no droid binary at $bin (run tests/droid/install.sh)" >&2; exit 1; }

pkg="$(dirname "$(dirname "$bin")")/package.json"
if [ -f "$pkg" ]; then
  version="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg" | head -n 1)"
else
  version="$("$bin" --version | head -n 1)"
fi
[ -n "$version" ] || { echo "cannot tell the version of $bin" >&2; exit 1; }

enum="$(LC_ALL=C grep -aoE '\(\([A-Za-z_$][A-Za-z0-9_$]*\)=>\{([A-Za-z_$][A-Za-z0-9_$]*\.[A-Z][A-Z0-9_]*="[^"]*";?)+\}\)' "$bin" \
  | grep -F '.CLAUDE_' | grep -F '.GPT_' | sort -u)"
count="$(printf '%s\n' "$enum" | grep -c . || true)"
if [ "$count" -ne 1 ]; then
  echo "expected one model-id enum in $bin, found $count: the binary's layout changed" >&2
  exit 1
fi
ids="$(printf '%s\n' "$enum" | grep -oE '\.[A-Z][A-Z0-9_]*="[^"]*"' | sed -E 's/^[^=]*="(.*)"$/\1/' | LC_ALL=C sort -u)"

out="$here/model-ids-$version.txt"
if [ "$check" -eq 1 ]; then
  if ! printf '%s\n' "$ids" | diff -u "$out" - ; then
    echo "$out does not match $bin: regenerate it with tests/droid/extract-model-ids.sh" >&2
    exit 1
  fi
  echo "$out matches $bin ($(printf '%s\n' "$ids" | wc -l) ids)"
else
  printf '%s\n' "$ids" > "$out"
  echo "wrote $(printf '%s\n' "$ids" | wc -l) ids to $out" >&2
fi
