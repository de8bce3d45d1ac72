#!/usr/bin/env bash
# Builds the release binaries (static Swift runtime, as deployed) and runs the client benchmark
# (bench/run.py) against python-socketio.
# Options are passed to bench/run.py (--events N, --rate R, --rounds K, --transports websocket,polling).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib -Xswiftc -Xclang-linker -Xswiftc -no-pie --product sio-bench-client
scripts/build-release
# The size figures of docs/benchmarks.md (idle RSS is printed by the benchmark itself).
echo "sioagent: $(stat -c %s .build/release/sioagent) bytes stripped, $(stat -c %s .build/release/sioagent.debug) bytes with symbols (sioagent.debug)"
echo "sio-bench-client: $(stat -c %s .build/release/sio-bench-client) bytes (not stripped)"
PY="${SIOAGENT_PYTHON:-$PWD/.venv/bin/python}"
exec "$PY" bench/run.py "$@"
