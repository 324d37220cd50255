#!/usr/bin/env bash
# Builds dates.wasm with componentize-js from npm (installed into a cached directory, so the
# repository holds no node_modules). Usage: plugins/js/dates/build.sh [OUT_DIR]
# → OUT_DIR/dates.{wasm,toml}
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
cache="${ASSISTANTS_CI_CACHE:-$HOME/.cache/assistants-ci}/componentize-js"
mkdir -p "$cache" "$out"
if ! cmp -s "$here/package.json" "$cache/package.json" || [ ! -x "$cache/node_modules/.bin/componentize-js" ]; then
  cp "$here/package.json" "$cache/package.json"
  (cd "$cache" && npm install --no-audit --no-fund --silent)
fi
# wasi:http is left out (`--disable http`): the plugin computes, it calls nothing.
"$cache/node_modules/.bin/componentize-js" "$here/dates.js" --wit "$here/../../../wit/v0.2.0" \
  --world-name tool-plugin --disable http fetch-event -o "$out/dates.wasm"
cp "$here/dates.toml" "$out/dates.toml"
echo "built $out/dates.wasm"
