#!/usr/bin/env bash
# Starts the example cluster on this machine: redis-server, two python-socketio nodes sharing it
# (AsyncRedisManager), and nginx in front of them. Ctrl-C (or SIGTERM) stops everything.
#
#   examples/cluster/run.sh            # nginx on 127.0.0.1:8080, nodes on 5001/5002, redis on 6390
#   PORT=9000 REDIS_PORT=6400 examples/cluster/run.sh
#
# Then, in another terminal:
#   sioagent run --config examples/cluster/agent.yaml
#   .venv/bin/python examples/cluster/broadcast.py batery 12
# Needs: nginx and redis-server (apt-get install nginx redis-server), and the venv
# (scripts/setup-venv: python-socketio, aiohttp, redis).
set -euo pipefail
cd "$(dirname "$0")"
PORT="${PORT:-8080}"
NODE_A="${NODE_A:-5001}"
NODE_B="${NODE_B:-5002}"
REDIS_PORT="${REDIS_PORT:-6390}"
PY="${SIOAGENT_PYTHON:-../../.venv/bin/python}"
DIR="$(mktemp -d -t sioagent-cluster.XXXXXX)"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
REDIS="$(command -v redis-server || echo /usr/bin/redis-server)"

pids=()
cleanup() {
    trap '' INT TERM
    trap - EXIT
    kill "${pids[@]}" 2>/dev/null || true
    # Up to 5 s for a clean stop, then SIGKILL.
    for _ in $(seq 50); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

"$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" >"$DIR/redis.log" 2>&1 &
pids+=($!)
redis_url="redis://127.0.0.1:$REDIS_PORT/0"
"$PY" node.py --port "$NODE_A" --name node-a --redis "$redis_url" &
pids+=($!)
"$PY" node.py --port "$NODE_B" --name node-b --redis "$redis_url" &
pids+=($!)
mkdir -p "$DIR/nginx"
sed -e "s|@PORT@|$PORT|g" -e "s|@NODE_A@|$NODE_A|g" -e "s|@NODE_B@|$NODE_B|g" -e "s|@DIR@|$DIR/nginx|g" \
    nginx.conf.template >"$DIR/nginx/nginx.conf"
"$NGINX" -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log" &
pids+=($!)

echo "cluster: http://127.0.0.1:$PORT (nodes $NODE_A, $NODE_B; redis $REDIS_PORT; files in $DIR)"
echo "broadcast with: $PY examples/cluster/broadcast.py --redis $redis_url batery 12"
# Runs until Ctrl-C: a node that dies (kill it to watch the agent move to the other one) does not
# stop the rest.
wait
