#!/usr/bin/env bash
# Builds text_stats.wasm with componentize-py from PyPI (installed into a cached venv).
# Usage: plugins/python/text_stats/build.sh [OUT_DIR]   → OUT_DIR/text_stats.{wasm,toml}
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
cache="${ASSISTANTS_CI_CACHE:-$HOME/.cache/assistants-ci}"
venv="$cache/componentize-py"
version=0.25.1
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
mkdir -p "$out"
cd "$here"
"$venv/bin/componentize-py" -d "$here/../../../wit/v0.2.0" -w tool-plugin componentize app -o "$out/text_stats.wasm"
cp "$here/text_stats.toml" "$out/text_stats.toml"
echo "built $out/text_stats.wasm"
