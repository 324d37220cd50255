#!/usr/bin/env bash
# The plugins written in other languages than Rust, end to end: plugins/python/text_stats
# (componentize-py from PyPI) and plugins/js/dates (componentize-js from npm) each build, pass
# `plugins check`, pass their fixtures (`plugins test`), answer `plugins call`, and load into a
# server from --plugins-dir. Usage: tests/plugins/examples.sh  (ASSISTANTS_BIN: the binary)
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
contains() { grep -qF -- "$2" <<<"$1"; }

"$root/plugins/python/text_stats/build.sh" "$work/plugins" >/dev/null
"$root/plugins/js/dates/build.sh" "$work/plugins" >/dev/null

for id in text_stats dates; do
  check "$id: plugins check accepts the component" \
    bash -c "'$bin' plugins check '$work/plugins/$id.wasm' | grep -q 'ok: $id is a valid component'"
done
check "text_stats: its fixtures pass" \
  "$bin" plugins test "$work/plugins/text_stats.wasm" "$root/plugins/python/text_stats/fixtures.toml"
check "dates: its fixtures pass" \
  "$bin" plugins test "$work/plugins/dates.wasm" "$root/plugins/js/dates/fixtures.toml"

out="$("$bin" plugins call "$work/plugins/text_stats.wasm" text_stats '{"text": "The cat sat. The cat ran! A dog barked?", "top": 2}' 2>&1)"
check "text_stats: plugins call computes in the sandbox" \
  test "$out" = "9 words, 3 sentences, 39 characters. Most frequent: cat (2), the (2)"
err="$("$bin" plugins call "$work/plugins/text_stats.wasm" text_stats '{"text": 42}' 2>&1 || true)"
check "text_stats: bad arguments are a tool error" \
  contains "$err" "tool error: invalid arguments: 'text' must be a string"
out="$("$bin" plugins call "$work/plugins/dates.wasm" add_days '{"date": "2024-02-28", "days": 1}' 2>&1)"
check "dates: plugins call computes in the sandbox" test "$out" = "2024-02-29 (Thursday)"
err="$("$bin" plugins call "$work/plugins/dates.wasm" weekday '{"date": "2023-02-29"}' 2>&1 || true)"
check "dates: a thrown error is a tool error" \
  contains "$err" "tool error: invalid arguments: 'date' is not a date that exists: 2023-02-29"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --plugins-dir "$work/plugins" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 240); do curl -fsS "127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
for id in text_stats dates; do
  check "$id: the server lists the plugin" \
    bash -c "curl -fsS '127.0.0.1:$port/v1/plugins/$id' | grep -q '\"kind\":\"tool\"'"
  check "$id: assistants accept it as a tool type" \
    bash -c "curl -fsS '127.0.0.1:$port/v1/assistants' -H 'content-type: application/json' -d '{\"model\":\"m\",\"tools\":[{\"type\":\"$id\"}]}' | grep -q '\"type\":\"$id\"'"
done

echo "plugins in Python and JavaScript: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { tail -20 "$work/server.log"; exit 1; }
