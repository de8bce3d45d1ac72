#!/usr/bin/env bash
# Builds the release binaries (static Swift runtime, as deployed) and runs the client benchmark
# (bench/run.py) against python-socketio.
# Options are passed to bench/run.py (--events N, --rate R, --rounds K, --transports websocket,polling).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib -Xswiftc -Xclang-linker -Xswiftc -no-pie --product sio-bench-client
scripts/build-release
PY="${SIOAGENT_PYTHON:-$PWD/.venv/bin/python}"
exec "$PY" bench/run.py "$@"
