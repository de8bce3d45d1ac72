#!/usr/bin/env bash
# Compares what two sioagent builds print for the same events: `sioagent listen` of each against
# bench/listen_corpus_server.py (escapes, big numbers, nesting, duplicate keys, invalid payloads).
# Prints the output and exits non-zero when the two differ (standard output, and the warnings
# about malformed packets without their session id).
#   bench/listen-compare.sh OLD_BINARY NEW_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2
PY="${SIOAGENT_PYTHON:-$PWD/.venv/bin/python}"
work=$(mktemp -d)
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PY" bench/listen_corpus_server.py "$port" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
for which in old new; do
    binary=${!which}
    timeout 4 "$binary" listen "http://127.0.0.1:$port" --transport websocket > "$work/$which.out" 2> "$work/$which.err" || true
    grep malformed "$work/$which.err" | sed -e 's/^[^ ]* //' -e 's/eio.sid=[^ ]* //' > "$work/$which.warnings" || true
done
cat "$work/new.out"
echo "$(wc -l < "$work/new.out") events printed, $(wc -l < "$work/new.warnings") malformed packets"
cmp "$work/old.out" "$work/new.out" && cmp "$work/old.warnings" "$work/new.warnings" && echo "identical"
