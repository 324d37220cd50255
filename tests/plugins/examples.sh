#!/usr/bin/env bash
# The plugins written in other languages than Rust, end to end: plugins/python/text_stats
# (componentize-py from PyPI) and plugins/js/dates (componentize-js from npm) each build, pass
# `plugins check`, pass their fixtures (`plugins test`), answer `plugins call`, and load into a
# server from --plugins-dir. Usage: tests/plugins/examples.sh  (ASSISTANTS_BIN: the binary)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

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

port=$(free_port)
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --plugins-dir "$work/plugins" >"$work/server.log" 2>&1 &
background
wait_http "127.0.0.1:$port/healthz" || true
for id in text_stats dates; do
  check "$id: the server lists the plugin" \
    bash -c "curl -fsS '127.0.0.1:$port/v1/plugins/$id' | grep -q '\"kind\":\"tool\"'"
  check "$id: assistants accept it as a tool type" \
    bash -c "curl -fsS '127.0.0.1:$port/v1/assistants' -H 'content-type: application/json' -d '{\"model\":\"m\",\"tools\":[{\"type\":\"$id\"}]}' | grep -q '\"type\":\"$id\"'"
done

echo "plugins in Python and JavaScript: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { tail -20 "$work/server.log"; exit 1; }
