#!/usr/bin/env bash
# Plugin authoring end to end: `assistants plugins new` in Rust, Python and JavaScript gives a
# project that builds, passes `plugins check` and its own fixtures (`plugins test`) and answers
# `plugins call`, as generated; `plugins call --config` calls a plugin with an operator's grant
# (the built-in weather plugin, against an API stub on 127.0.0.1, its key injected host-side).
# Usage: tests/plugins/authoring.sh  (ASSISTANTS_BIN: the binary)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

# The toolchains, cached across runs: the Rust template's dependencies build into a target
# directory of their own, the Python venv and npm packages are the examples' (same pins).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/plugin-templates"
export COMPONENTIZE_PY_VENV="$cache/componentize-py"
mkdir -p "$cache/componentize-js-template"

for lang in rust python js; do
  name="words-$lang"
  check "$lang: plugins new creates the project" \
    bash -c "'$bin' plugins new '$name' --lang $lang --dir '$work' >/dev/null"
  project="$work/$name"
  if [ "$lang" = js ]; then
    # The npm packages of the template, installed once into the cache.
    if ! cmp -s "$project/package.json" "$cache/componentize-js-template/template.json"; then
      (cd "$cache/componentize-js-template" && cp "$project/package.json" package.json \
        && npm install --no-audit --no-fund --silent && cp package.json template.json)
    fi
    ln -s "$cache/componentize-js-template/node_modules" "$project/node_modules"
  fi
  check "$lang: the project builds as generated" \
    bash -c "'$project/build.sh' >'$work/$lang-build.log' 2>&1 || { tail -30 '$work/$lang-build.log'; exit 1; }"
  check "$lang: plugins check accepts it" \
    bash -c "'$bin' plugins check '$project/$name.wasm' | grep -q 'ok: $name is a valid component'"
  check "$lang: its fixtures pass" \
    bash -c "cd '$project' && '$bin' plugins test '$name.wasm' fixtures.toml"
  out="$("$bin" plugins call "$project/$name.wasm" "words_$lang" '{"text": "one two three"}' 2>&1 || true)"
  check "$lang: plugins call answers" test "$out" = "3 words"
done

# A fixture that does not hold makes `plugins test` fail and say why.
printf '[[case]]\nname = "wrong on purpose"\ntool = "words_rust"\nargs = { text = "a b" }\nexpect = "3 words"\n' >"$work/wrong.toml"
out="$("$bin" plugins test "$work/words-rust/words-rust.wasm" "$work/wrong.toml" 2>&1 || echo "exit $?")"
check "a failing fixture fails the run and says why" \
  bash -c "grep -qF 'FAIL wrong on purpose: expected \"3 words\", got \"2 words\"' <<<'$out' && grep -qF 'exit 1' <<<'$out'"

# `plugins call --config`: the operator's grant, with config values and a secret.
port=$(free_port)
python3 - "$port" >"$work/stub.log" 2>&1 <<'PY' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.headers.get("authorization") == "Bearer k-123"
        body = json.dumps({"city": "Oslo", "temperature_c": -3.5, "conditions": "snow", "wind_kph": 8} if ok else {"error": "no key"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
background
for _ in $(seq 1 50); do curl -s "127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
cat >"$work/operator.toml" <<TOML
[plugins.grants.weather]
hosts = ["127.0.0.1:$port"]
allow_private_addresses = true
config = { base_url = "http://127.0.0.1:$port", api_key = "k-123" }
secret_hosts = { api_key = ["127.0.0.1:$port"] }
TOML
out="$("$bin" --config "$work/operator.toml" plugins call weather current_weather '{"city": "Oslo"}' 2>&1 || true)"
check "plugins call --config calls with the operator's grant and secret" \
  test "$out" = "Oslo: -3.5 °C, snow, wind 8 km/h"
out="$("$bin" plugins call "$work/words-rust/words-rust.wasm" words_rust '{"text": 1}' 2>&1 || true)"
check "a call's bad arguments are a tool error" contains "$out" "tool error: invalid arguments:"

echo "plugin authoring: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
