#!/usr/bin/env bash
# /playground in a real browser: Debian's chromium (installed here if missing), driven by
# playwright-core from npm (cached; it downloads no browser), against the server binary with a
# key and the deterministic fake upstream (tests/sdk/fake_llm.py). Screenshots go to
# PLAYGROUND_SHOTS (default: playground-screenshots beside the binary).
# Usage: tests/playground/run.sh  (ASSISTANTS_BIN: the binary)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
here="$root/tests/playground"
shots="${PLAYGROUND_SHOTS:-$(dirname "$bin")/playground-screenshots}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
modules="$cache/playground-tests"
mkdir -p "$modules"
# package.json is copied as installed.json once the install succeeded: a failed one is
# tried again on the next run.
if ! cmp -s "$here/package.json" "$modules/installed.json"; then
  cp "$here/package.json" "$modules/package.json"
  (cd "$modules" && npm install --no-audit --no-fund --silent)
  cp "$here/package.json" "$modules/installed.json"
fi
ln -sfn "$modules/node_modules" "$work/node_modules"
cp "$here/e2e.mjs" "$work/e2e.mjs"

llm_port=$(free_port) port=$(free_port)
while [ "$port" = "$llm_port" ]; do port=$(free_port); done
# Slow enough that a streamed answer is on the page before its run ends.
FAKE_LLM_CHUNK_DELAY_MS=40 python3 "$root/tests/sdk/fake_llm.py" "$llm_port" >"$work/llm.log" 2>&1 &
background
key="$("$bin" keys --data-dir "$work/data" create --project playground 2>/dev/null | tail -1)"
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
  --llm-base-url "http://127.0.0.1:$llm_port/v1" >"$work/server.log" 2>&1 &
background
wait_http "127.0.0.1:$port/healthz" || { tail -20 "$work/server.log"; exit 1; }
CHROMIUM="$chromium" node "$work/e2e.mjs" "http://127.0.0.1:$port" "$key" "$shots" \
  || { echo "-- server log"; tail -40 "$work/server.log"; echo "screenshots: $shots"; exit 1; }
echo "screenshots: $shots"
