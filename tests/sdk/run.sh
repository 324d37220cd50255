#!/usr/bin/env bash
# Official-SDK compatibility suites against a freshly started `assistants` server.
#
#   tests/sdk/run.sh                       # all four suites
#   tests/sdk/run.sh py126 node759         # a subset: py126 py357 node442 node759
#
# Environment:
#   ASSISTANTS_BIN        server binary (default ${CARGO_TARGET_DIR:-<repo>/target}/debug/assistants)
#   ASSISTANTS_CI_CACHE   where the SDK venvs / npm dirs live (default ~/.cache/assistants-ci)
#   ASSISTANTS_SDK_TEST_URL  run against an already running server (e.g. http://127.0.0.1:8000/v1)
#                         instead of starting one
#   ASSISTANTS_SDK_WEB_URL   with ASSISTANTS_SDK_TEST_URL only: an HTML page (a <title>, <p>
#                         paragraphs, a <script>) on a host that server grants web_retrieval; without
#                         it the web_retrieval tests skip. A server started here gets its own page
#                         (a static server on 127.0.0.1) and the grant, in a --config file.
#   ASSISTANTS_SDK_MCP_URL   with ASSISTANTS_SDK_TEST_URL only: an MCP server (the tests' fake one) that
#                         server grants the mcp plugin; without it the MCP tests skip. A server
#                         started here gets its own: FAKE_MCP_BIN (default: fake-mcp beside the
#                         server binary; `cargo build -p assistants-tests --bin fake-mcp`)
#   ASSISTANTS_CODE_INTERPRETER_DIR, ASSISTANTS_PLUGIN_CACHE_KEY_FILE
#                         a server started here reads them: the code_interpreter tests need the
#                         interpreter installed (`assistants code-interpreter install`) and fail
#                         with that hint otherwise
#   SDK_SUITE_TIMEOUT     wall-clock limit per suite in seconds (default 900)
#   SDK_TEST_TIMEOUT      limit per test in seconds, read by the suites (default 180)
#   PYTHON                interpreter used to create the venvs (default python3)
#
# The SDK environments are created on first use and reused afterwards; a pinned package is
# (re)installed only when it is missing or its version differs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${ASSISTANTS_CI_CACHE:-$HOME/.cache/assistants-ci}"
PYTHON="${PYTHON:-python3}"
SUITE_TIMEOUT="${SDK_SUITE_TIMEOUT:-900}"
export SDK_TEST_TIMEOUT="${SDK_TEST_TIMEOUT:-180}"

if [[ -n "${ASSISTANTS_BIN:-}" ]]; then
  BIN="$ASSISTANTS_BIN"
elif [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
  BIN="$CARGO_TARGET_DIR/debug/assistants"
else
  BIN="$REPO/target/debug/assistants"
fi

ALL_SUITES=(py126 py357 node442 node759)

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------
SUITES=()
for arg in "$@"; do
  case "$arg" in
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    all) SUITES+=("${ALL_SUITES[@]}") ;;
    py126|py357|node442|node759) SUITES+=("$arg") ;;
    *) die "unknown suite '$arg' (choose from: ${ALL_SUITES[*]} all)" ;;
  esac
done
[[ ${#SUITES[@]} -gt 0 ]] || SUITES=("${ALL_SUITES[@]}")

# ---------------------------------------------------------------------------------------------
# SDK environments
# ---------------------------------------------------------------------------------------------
py_pin() {  # suite -> openai version
  case "$1" in py126) echo 1.26.0 ;; py357) echo 3.57.0 ;; esac
}
node_pin() {
  case "$1" in node442) echo 4.42.0 ;; node759) echo 7.59.0 ;; esac
}

# Exit 0 when the venv already has exactly what the suite needs.
py_env_ok() {
  local venv="$1" openai_version="$2"
  [[ -x "$venv/bin/python" ]] || return 1
  "$venv/bin/python" - "$openai_version" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
want = sys.argv[1]
assert version("openai") == want
version("pytest")
if want == "1.26.0":
    major, minor = (int(x) for x in version("httpx").split(".")[:2])
    assert (major, minor) < (0, 28), "openai 1.26.0 needs httpx<0.28"
import openai, pytest  # noqa: F401  (imports must work, not just metadata)
EOF
}

ensure_py_env() {
  local suite="$1" openai_version venv
  openai_version="$(py_pin "$suite")"
  venv="$CACHE/$suite"
  if py_env_ok "$venv" "$openai_version"; then
    echo "$suite: reusing $venv (openai $openai_version)"
    return 0
  fi
  echo "$suite: installing openai==$openai_version into $venv"
  if [[ ! -x "$venv/bin/python" ]]; then
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
  fi
  local pkgs=("openai==$openai_version" pytest)
  [[ "$openai_version" == 1.26.0 ]] && pkgs+=("httpx<0.28")
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pkgs[@]}"
  py_env_ok "$venv" "$openai_version" || die "$suite: venv at $venv is still not usable after install"
}

node_env_ok() {
  local dir="$1" openai_version="$2"
  [[ -f "$dir/node_modules/openai/package.json" ]] || return 1
  [[ "$(node -p "require(process.argv[1]).version" "$dir/node_modules/openai/package.json" 2>/dev/null)" == "$openai_version" ]]
}

ensure_node_env() {
  local suite="$1" openai_version dir
  openai_version="$(node_pin "$suite")"
  dir="$CACHE/$suite"
  if node_env_ok "$dir" "$openai_version"; then
    echo "$suite: reusing $dir (openai $openai_version)"
    return 0
  fi
  echo "$suite: installing openai@$openai_version into $dir"
  mkdir -p "$dir"
  [[ -f "$dir/package.json" ]] || printf '{ "name": "assistants-sdk-%s", "private": true }\n' "$suite" >"$dir/package.json"
  # openai 7.x declares engines.node >=22; it is only a warning, the suite is what decides.
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "openai@$openai_version")
  node_env_ok "$dir" "$openai_version" || die "$suite: $dir still lacks openai@$openai_version after install"
}

need_py=0; need_node=0
for s in "${SUITES[@]}"; do
  case "$s" in py*) need_py=1 ;; node*) need_node=1 ;; esac
done
if [[ $need_py == 1 ]]; then command -v "$PYTHON" >/dev/null || die "$PYTHON not found"; fi
if [[ $need_node == 1 ]]; then
  command -v node >/dev/null || die "node not found"
  command -v npm >/dev/null || die "npm not found"
fi

log "SDK environments in $CACHE"
mkdir -p "$CACHE"
for s in "${SUITES[@]}"; do
  case "$s" in
    py*) ensure_py_env "$s" ;;
    node*) ensure_node_env "$s" ;;
  esac
done

# ---------------------------------------------------------------------------------------------
# server
# ---------------------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/assistants-sdk.XXXXXX")"
SERVER_LOG="$TMP/server.log"
SERVER_PID=""
LLM_PID=""
WEB_PID=""
MCP_PID=""
KEEP_TMP=0

cleanup() {
  local rc=$?
  [[ -n "$LLM_PID" ]] && kill "$LLM_PID" 2>/dev/null || true
  [[ -n "$WEB_PID" ]] && kill "$WEB_PID" 2>/dev/null || true
  [[ -n "$MCP_PID" ]] && kill "$MCP_PID" 2>/dev/null || true
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 || $KEEP_TMP == 1 ]]; then
    echo "run.sh: kept $TMP (server log: $SERVER_LOG)" >&2
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

print_server_log() {
  if [[ -f "$SERVER_LOG" ]]; then
    echo "---- last 80 lines of $SERVER_LOG ----"
    tail -n 80 "$SERVER_LOG" || true
    echo "---- end of server log ----"
  fi
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

if [[ -n "${ASSISTANTS_SDK_TEST_URL:-}" ]]; then
  BASE_URL="${ASSISTANTS_SDK_TEST_URL%/}"
  log "using the already running server at $BASE_URL"
  HEALTH_URL="${BASE_URL%/v1}/healthz"
else
  [[ -x "$BIN" ]] || die "server binary not found at $BIN (build it with 'cargo build' or set ASSISTANTS_BIN)"
  # Runs call a deterministic fake upstream (tests/sdk/fake_llm.py), never a real model.
  LLM_PORT="$(free_port)"
  "$PYTHON" "$HERE/fake_llm.py" "$LLM_PORT" >"$TMP/fake_llm.log" 2>&1 &
  LLM_PID=$!
  # A static page for the built-in web_retrieval tool, on a host granted in the config file; the
  # suites read ASSISTANTS_SDK_WEB_URL (title, paragraphs and script text come from the page).
  mkdir -p "$TMP/web"
  cat >"$TMP/web/page.html" <<'HTML'
<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>Glimmerfrost Almanac</title>
<script>var leaked = "SCRIPT-TEXT-MUST-NOT-APPEAR";</script>
</head>
<body>
<h1>Glimmerfrost Almanac</h1>
<p>The glimmerfrost tortoise basks on the basalt cliffs of Skerry Nine.</p>
<p>Its shell glows a faint blue in winter and it eats salted lichen.</p>
</body>
</html>
HTML
  WEB_PORT="$(free_port)"
  # HTTP/1.1 with Content-Length, so the client closes the connection: `python -m http.server`
  # (HTTP/1.0) closes it right after answering, and a web_fetch once saw that close as a reset.
  "$PYTHON" - "$TMP/web" "$WEB_PORT" >"$TMP/web.log" 2>&1 <<'PY' &
import functools
import http.server
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"


handler = functools.partial(Handler, directory=sys.argv[1])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), handler).serve_forever()
PY
  WEB_PID=$!
  export ASSISTANTS_SDK_WEB_URL="http://127.0.0.1:$WEB_PORT/page.html"
  # A fake MCP server (rmcp, streamable HTTP) for the `mcp` tool, granted below.
  FAKE_MCP_BIN="${FAKE_MCP_BIN:-$(dirname "$BIN")/fake-mcp}"
  [[ -x "$FAKE_MCP_BIN" ]] || die "fake MCP server not found at $FAKE_MCP_BIN (build it with 'cargo build -p assistants-tests --bin fake-mcp' or set FAKE_MCP_BIN)"
  "$FAKE_MCP_BIN" >"$TMP/mcp.out" 2>"$TMP/mcp.log" &
  MCP_PID=$!
  for _ in $(seq 1 100); do
    grep -q '^FAKE_MCP_URL=' "$TMP/mcp.out" 2>/dev/null && break
    kill -0 "$MCP_PID" 2>/dev/null || { cat "$TMP/mcp.log" >&2; die "the fake MCP server exited"; }
    sleep 0.1
  done
  ASSISTANTS_SDK_MCP_URL="$(sed -n 's/^FAKE_MCP_URL=//p' "$TMP/mcp.out")"
  [[ -n "$ASSISTANTS_SDK_MCP_URL" ]] || die "the fake MCP server did not say where it listens"
  export ASSISTANTS_SDK_MCP_URL
  MCP_HOST="${ASSISTANTS_SDK_MCP_URL#http://}"
  MCP_HOST="${MCP_HOST%%/*}"
  cat >"$TMP/config.toml" <<TOML
[plugins.grants.web_retrieval]
hosts = ["127.0.0.1:$WEB_PORT"]
allow_private_addresses = true

[plugins.grants.mcp]
hosts = ["$MCP_HOST"]
allow_private_addresses = true

# The crawl test crawls the same page into a vector store.
[plugins.grants.crawler]
hosts = ["127.0.0.1:$WEB_PORT"]
allow_private_addresses = true

[crawl]
delay_ms = 0
TOML
  PORT="$(free_port)"
  BASE_URL="http://127.0.0.1:$PORT/v1"
  HEALTH_URL="http://127.0.0.1:$PORT/healthz"
  mkdir -p "$TMP/data"
  log "starting $BIN on 127.0.0.1:$PORT (data dir $TMP/data, log $SERVER_LOG)"
  "$BIN" --config "$TMP/config.toml" serve --listen "127.0.0.1:$PORT" --data-dir "$TMP/data" \
    --llm-base-url "http://127.0.0.1:$LLM_PORT/v1" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
fi

http_ok() {
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
  else
    "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
  fi
}
healthy() {
  http_ok "$HEALTH_URL" || return 1
  # The page web_retrieval reads must be up too (when this script serves it).
  [[ -z "$WEB_PID" ]] || http_ok "$ASSISTANTS_SDK_WEB_URL"
}

deadline=$((SECONDS + 30))
until healthy; do
  if [[ -n "$SERVER_PID" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "run.sh: the server exited before becoming healthy" >&2
    print_server_log
    exit 1
  fi
  if [[ -n "$WEB_PID" ]] && ! kill -0 "$WEB_PID" 2>/dev/null; then
    echo "run.sh: the test web server exited:" >&2
    cat "$TMP/web.log" >&2 || true
    exit 1
  fi
  if (( SECONDS >= deadline )); then
    echo "run.sh: $HEALTH_URL${WEB_PID:+ or $ASSISTANTS_SDK_WEB_URL} not healthy after 30 s" >&2
    print_server_log
    exit 1
  fi
  sleep 0.2
done
echo "server healthy at $HEALTH_URL"
if [[ -n "${ASSISTANTS_SDK_WEB_URL:-}" ]]; then
  echo "web_retrieval test page: $ASSISTANTS_SDK_WEB_URL"
else
  echo "ASSISTANTS_SDK_WEB_URL not set: the web_retrieval tests will skip"
fi

# ---------------------------------------------------------------------------------------------
# suites
# ---------------------------------------------------------------------------------------------
run_py() {
  local suite="$1"
  ASSISTANTS_BASE_URL="$BASE_URL" PYTHONDONTWRITEBYTECODE=1 \
    timeout -k 10 "$SUITE_TIMEOUT" \
    "$CACHE/$suite/bin/python" -m pytest -p no:cacheprovider -v -rs --tb=short --color=no \
    "$HERE/python/test_sdk.py"
}

run_node() {
  local suite="$1"
  local work="$TMP/$suite"
  # ESM resolves 'openai' from the test file's own directory: give it the suite's node_modules.
  mkdir -p "$work"
  cp "$HERE/node/test.mjs" "$work/test.mjs"
  ln -sfn "$CACHE/$suite/node_modules" "$work/node_modules"
  (cd "$work" && ASSISTANTS_BASE_URL="$BASE_URL" \
    timeout -k 10 "$SUITE_TIMEOUT" node --test --test-reporter=spec test.mjs)
}

declare -A RESULT=()
failed=0
for s in "${SUITES[@]}"; do
  case "$s" in
    py*) label="$s: python openai==$(py_pin "$s")" ;;
    node*) label="$s: node openai@$(node_pin "$s")" ;;
  esac
  log "suite $label"
  set +e
  case "$s" in
    py*) run_py "$s" ;;
    node*) run_node "$s" ;;
  esac
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    RESULT[$s]="ok"
  else
    [[ $rc -eq 124 || $rc -eq 137 ]] && RESULT[$s]="FAILED (timed out after ${SUITE_TIMEOUT}s)" || RESULT[$s]="FAILED (exit $rc)"
    failed=$((failed + 1))
  fi
  echo "<== suite $s: ${RESULT[$s]}"
done

log "summary"
for s in "${SUITES[@]}"; do
  printf '  %-8s %s\n' "$s" "${RESULT[$s]}"
done
if [[ $failed -gt 0 ]]; then
  if [[ -n "$SERVER_PID" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "run.sh: the server died during the run" >&2
  fi
  print_server_log
  exit 1
fi
echo "all ${#SUITES[@]} SDK suite(s) passed"
