# What the suites' shell scripts share (tests/plugins/*.sh, tests/mcp/run.sh). Source it from
# a script under tests/<dir>/ after `set -euo pipefail`; it sets:
#   root, bin (ASSISTANTS_BIN, else the debug binary of CARGO_TARGET_DIR or target/),
#   cache (ASSISTANTS_CI_CACHE: venvs and npm packages kept across runs), work (a temporary
#   directory, removed at exit), and quiet server logs;
#   background NAME...: remember the last background job's pid, killed at exit;
#   check NAME COMMAND...: run a check, print `ok`/`FAIL`, count it (passed, failed);
#   contains TEXT PART; free_port; wait_http URL (up to two minutes).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${ASSISTANTS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/assistants}"
[ -x "$bin" ] || { echo "no server binary at $bin: cargo build --bin assistants, or set ASSISTANTS_BIN" >&2; exit 2; }
cache="${ASSISTANTS_CI_CACHE:-$HOME/.cache/assistants-ci}"
work="$(mktemp -d)"
background_pids=()
cleanup() {
  local pid
  for pid in "${background_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
background() { background_pids+=("$!"); }
export RUST_BACKTRACE=0 ASSISTANTS_LOG=warn
passed=0
failed=0
check() { # name, command...
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}
contains() { grep -qF -- "$2" <<<"$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  local _
  for _ in $(seq 1 240); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}
