#!/usr/bin/env bash
# Starts the docker-compose.dev.yml topology as local processes: two API nodes and two workers
# against the local PostgreSQL, RabbitMQ and Redis, plus a local S3 server (moto) and the fake
# LLM of the SDK suites. Prints the endpoints; Ctrl-C stops everything and drops the database
# and queue it created.
#   cargo build --bin assistants && bash tests/topology/start.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../s3/moto.sh
source tests/s3/moto.sh assistants-topology
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
TOPOLOGY_BUCKET=assistants-topology python3 tests/topology/topology.py up
