#!/usr/bin/env bash
# Runs one browser test: tests/browser/TEST.test.mjs in Node, driving
# Debian's headless Chromium (/usr/bin/chromium, or $HANDOFF_CHROMIUM)
# through playwright-core. The npm dependencies (package.json, pinned) are
# installed into tests/browser/node_modules on first use and reused after,
# so a machine that has them needs no network.
# Usage: tests/browser/run.sh TEST [ARGS...]
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
test=${1:?usage: $0 TEST [ARGS...]}
shift

command -v node >/dev/null || {
    echo "run.sh: node is missing: run deploy/install.sh" >&2
    exit 1
}
chromium=${HANDOFF_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || {
    echo "run.sh: $chromium is missing: run deploy/install.sh" >&2
    exit 1
}

want=$(node -p "require('$dir/package.json').dependencies['playwright-core']")
installed() {
    node -p "require('$dir/node_modules/playwright-core/package.json').version" \
        2>/dev/null
}
if [ "$(installed)" != "$want" ]; then
    mkdir -p "$dir/node_modules"
    # Tests run in parallel under ctest: one install at a time.
    exec 9>"$dir/node_modules/.install-lock"
    flock 9
    if [ "$(installed)" != "$want" ]; then
        echo "run.sh: installing playwright-core $want" >&2
        (cd "$dir" && npm install --no-save --no-audit --no-fund \
            --prefer-offline --loglevel=error) >&2
    fi
    exec 9>&-
fi

export HANDOFF_CHROMIUM=$chromium
exec node "$dir/$test.test.mjs" "$@"
