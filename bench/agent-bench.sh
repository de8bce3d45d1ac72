#!/usr/bin/env bash
# Builds sioagent for release (static Swift runtime, as deployed) and runs the agent benchmark
# (bench/agent_bench.py): sioagent with the battery rule vs. a python-socketio AsyncClient.
# Options are passed to bench/agent_bench.py (--events N, --rate R, --rounds K, --transports ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-release
# The size figures of docs/benchmarks.md (idle RSS is printed by the benchmark itself).
echo "sioagent: $(stat -c %s .build/release/sioagent) bytes stripped, $(stat -c %s .build/release/sioagent.debug) bytes with symbols (sioagent.debug)"
PY="${SIOAGENT_PYTHON:-$PWD/.venv/bin/python}"
exec "$PY" bench/agent_bench.py "$@"
