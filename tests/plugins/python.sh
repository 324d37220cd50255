#!/usr/bin/env bash
# The Python plugin (plugins/python/text_stats, built with componentize-py from PyPI) end to end:
# it builds, passes `plugins check`, answers `plugins call`, and loads into a server from
# --plugins-dir. Usage: tests/plugins/python.sh  (ASSISTANTS_BIN: the server binary)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
bin="${ASSISTANTS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/assistants}"
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
export RUST_BACKTRACE=0 ASSISTANTS_LOG=warn
passed=0
failed=0
check() { # name, command...
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}

"$root/plugins/python/text_stats/build.sh" "$work/plugins" >/dev/null

check "plugins check accepts the component" \
  bash -c "'$bin' plugins check '$work/plugins/text_stats.wasm' | grep -q 'ok: text_stats is a valid component'"

out="$("$bin" plugins call "$work/plugins/text_stats.wasm" text_stats '{"text": "The cat sat. The cat ran! A dog barked?", "top": 2}' 2>&1)"
check "plugins call computes in the sandbox" \
  test "$out" = "9 words, 3 sentences, 39 characters. Most frequent: cat (2), the (2)"

err="$("$bin" plugins call "$work/plugins/text_stats.wasm" text_stats '{"text": 42}' 2>&1 || true)"
contains() { grep -qF -- "$2" <<<"$1"; }
check "bad arguments are a tool error" \
  contains "$err" "tool error: invalid arguments: 'text' must be a string"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --plugins-dir "$work/plugins" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 240); do curl -fsS "127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
check "the server lists the plugin" \
  bash -c "curl -fsS '127.0.0.1:$port/v1/plugins/text_stats' | grep -q '\"kind\":\"tool\"'"
check "assistants accept it as a tool type" \
  bash -c "curl -fsS '127.0.0.1:$port/v1/assistants' -H 'content-type: application/json' -d '{\"model\":\"m\",\"tools\":[{\"type\":\"text_stats\"}]}' | grep -q '\"type\":\"text_stats\"'"

echo "python plugin: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { tail -20 "$work/server.log"; exit 1; }
