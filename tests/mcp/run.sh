#!/usr/bin/env bash
# /mcp with a real MCP client: the official Python SDK (`mcp` from PyPI, in a cached venv)
# against the server binary, open (no key yet) and then keyed.
# Usage: tests/mcp/run.sh  (ASSISTANTS_BIN: the binary)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
bin="${ASSISTANTS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/assistants}"
cache="${ASSISTANTS_CI_CACHE:-$HOME/.cache/assistants-ci}"
venv="$cache/mcp-client"
version=1.26.0
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
export RUST_BACKTRACE=0 ASSISTANTS_LOG=warn
if ! "$venv/bin/python" -c "import mcp, importlib.metadata as m; assert m.version('mcp') == '$version'" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$version"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 240); do curl -fsS "127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
echo "-- open (no key exists)"
"$venv/bin/python" "$here/client.py" "http://127.0.0.1:$port/mcp"
key="$("$bin" keys --data-dir "$work/data" create --project mcp-test 2>/dev/null | tail -1)"
[ -n "$key" ] || { echo "FAIL no key was created"; exit 1; }
sleep 1.5 # the server notices that keys exist within a second
echo "-- keyed"
"$venv/bin/python" "$here/client.py" "http://127.0.0.1:$port/mcp" "$key"
