#!/usr/bin/env bash
# Installs the Droid CLI pinned in tests/droid/package.json (with its package-lock.json) into
# target/droid/ and prints the path of the droid binary. Idempotent: nothing is fetched when
# target/droid/ already holds exactly these pins and the binary is there.
#
#   @factory/cli            the npm wrapper (a JS shim; its postinstall is not run)
#   @factory/cli-linux-x64  the binary itself, pinned separately (the wrapper's own optional
#                           dependencies, one binary per platform, are omitted)
#
# The tests find the binary through STRATA_DROID_BIN (else target/droid/...); see
# crates/cli/tests/support/droid.rs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
prefix="${STRATA_DROID_PREFIX:-$root/target/droid}"
bin="$prefix/node_modules/@factory/cli-linux-x64/bin/droid"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "tests/droid/install.sh: the pinned Droid binary is for linux-x64 only, not $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

if cmp -s "$here/package.json" "$prefix/pinned-package.json" \
  && cmp -s "$here/package-lock.json" "$prefix/pinned-package-lock.json" \
  && [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

rm -rf "$prefix"
mkdir -p "$prefix"
cp "$here/package.json" "$prefix/package.json"
[ -f "$here/package-lock.json" ] && cp "$here/package-lock.json" "$prefix/package-lock.json"
# --ignore-scripts: the wrapper's postinstall would only hard-link its shim to the binary (or
# download one); --omit=optional: the wrapper's per-platform binaries at 0.225.1
npm install --prefix "$prefix" --no-audit --no-fund --ignore-scripts --omit=optional \
  --no-update-notifier --loglevel=error >&2
if [ ! -f "$here/package-lock.json" ] && [ -f "$prefix/package-lock.json" ]; then
  # the first install writes the lock file the next ones are held to
  cp "$prefix/package-lock.json" "$here/package-lock.json"
fi
[ -x "$bin" ] || { echo "tests/droid/install.sh: no binary at $bin after npm install" >&2; exit 1; }
cp "$here/package.json" "$prefix/pinned-package.json"
cp "$here/package-lock.json" "$prefix/pinned-package-lock.json"
echo "$bin"
