#!/usr/bin/env bash
# MCP both ways with the official Python SDK (`mcp` from PyPI, in a cached venv):
# - /mcp driven by the SDK's client against the server binary, open (no key yet), then keyed;
# - the server's own MCP client (the `mcp` tool of assistants and responses) against a server
#   built with the SDK's FastMCP, the model being tests/sdk/fake_llm.py.
# Usage: tests/mcp/run.sh  (ASSISTANTS_BIN: the binary)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
here="$root/tests/mcp"
venv="$cache/mcp-client"
version=1.26.0
if ! "$venv/bin/python" -c "import mcp, importlib.metadata as m; assert m.version('mcp') == '$version'" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$version"
fi
port=$(free_port) remote_port=$(free_port) llm_port=$(free_port)
"$venv/bin/python" "$here/fastmcp_server.py" "$remote_port" >"$work/fastmcp.log" 2>&1 &
background
remote=$!
python3 "$root/tests/sdk/fake_llm.py" "$llm_port" >"$work/llm.log" 2>&1 &
background
cat >"$work/config.toml" <<TOML
[plugins.grants.mcp]
hosts = ["127.0.0.1:$remote_port"]
allow_private_addresses = true
TOML
"$bin" --config "$work/config.toml" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
  --llm-base-url "http://127.0.0.1:$llm_port/v1" >"$work/server.log" 2>&1 &
background
wait_http "127.0.0.1:$port/healthz" || { tail -20 "$work/server.log"; exit 1; }
echo "-- open (no key exists)"
"$venv/bin/python" "$here/client.py" "http://127.0.0.1:$port/mcp"
key="$("$bin" keys --data-dir "$work/data" create --project mcp-test 2>/dev/null | tail -1)"
[ -n "$key" ] || { echo "FAIL no key was created"; exit 1; }
sleep 1.5 # the server notices that keys exist within a second
echo "-- keyed"
"$venv/bin/python" "$here/client.py" "http://127.0.0.1:$port/mcp" "$key"
echo "-- our MCP client against a FastMCP server (assistants and responses)"
for _ in $(seq 1 100); do
  curl -s -o /dev/null "127.0.0.1:$remote_port/mcp" && break
  kill -0 "$remote" 2>/dev/null || { cat "$work/fastmcp.log"; exit 1; }
  sleep 0.2
done
"$venv/bin/python" "$here/remote.py" "http://127.0.0.1:$port/v1" "$key" "http://127.0.0.1:$remote_port/mcp" \
  || { echo "-- server log"; tail -50 "$work/server.log"; echo "-- FastMCP log"; tail -30 "$work/fastmcp.log"; exit 1; }
