#!/usr/bin/env bash
# Starts a local S3-compatible server (moto, from PyPI) on 127.0.0.1 and creates a bucket.
# Usage: source tests/s3/moto.sh BUCKET   → exports AWS_* and MOTO_PID, MOTO_PORT.
# The venv is cached under ${ASSISTANTS_CI_CACHE:-~/.cache/assistants-ci}/moto.
set -euo pipefail
bucket="${1:?bucket name}"
cache="${ASSISTANTS_CI_CACHE:-$HOME/.cache/assistants-ci}"
venv="$cache/moto"
if ! "$venv/bin/python" -c "import moto.server" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==5.*"
fi
MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" > "${TMPDIR:-/tmp}/moto-$MOTO_PORT.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$MOTO_PORT/" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS -X PUT "http://127.0.0.1:$MOTO_PORT/$bucket" >/dev/null
export MOTO_PID MOTO_PORT
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
