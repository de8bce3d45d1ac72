"""Resident memory of `sioagent run` while alerts wait in the spool, and after a restart that
finds them there (docs/benchmarks.md, "Memory with alerts waiting").

The real python-socketio peer (Tests/AgentTests/Peer/peer_server.py) holds its acks, so every
`ack:` alert waits. It emits N events of S bytes; one rule turns each into an alert. Reported:
VmRSS once all N are on disk, its peak (VmHWM) until then, and both again after a restart.

    .venv/bin/python bench/spool_memory.py --agent .build/release/sioagent [--count 2000] [--size 20000]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from proc_stats import status_kb  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spooled(spool):
    n = 0
    for name in os.listdir(spool) if os.path.isdir(spool) else []:
        if name.endswith(".alert"):
            with open(os.path.join(spool, name), "rb") as f:
                n += sum(1 for line in f if line.strip())
    return n


def wait(what, condition, timeout=300):
    print(f"waiting for {what}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", default=os.path.join(ROOT, ".build/release/sioagent"))
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--extra", default="", help="more lines for agent.yaml (e.g. spool budgets)")
    args = ap.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-u", os.path.join(ROOT, "Tests/AgentTests/Peer/peer_server.py"), "--port", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    state = {"port": None, "connects": 0, "events": 0}

    def read():
        for line in server.stdout:
            msg = json.loads(line)
            if msg["type"] == "ready":
                state["port"] = msg["port"]
            elif msg["type"] == "connect":
                state["connects"] += 1
            elif msg["type"] == "event":
                state["events"] += 1

    threading.Thread(target=read, daemon=True).start()
    wait("the server", lambda: state["port"])

    def command(obj):
        server.stdin.write(json.dumps(obj) + "\n")
        server.stdin.flush()

    work = tempfile.mkdtemp(prefix="spool-memory-")
    os.makedirs(work + "/rules")
    with open(work + "/agent.yaml", "w") as f:
        f.write(f"server: {{url: 'http://127.0.0.1:{state['port']}', transports: [websocket]}}\n"
                "rules: rules\nspool: {dir: spool}\nlog: {format: json, level: warning}\nshutdown: {timeout: 5s}\n"
                "reconnection: {delay: 200ms, max_delay: 1s}\n" + args.extra + "\n")
    with open(work + "/rules/main.yaml", "w") as f:
        f.write("rules:\n  - id: relay\n    on: big\n    then: [{emit: alert, data: '{{ payload }}', ack: 5m}]\n")
    spool = work + "/spool"
    log = open(work + "/agent.log", "w")

    def start():
        return subprocess.Popen([args.agent, "run", "--config", work + "/agent.yaml"], cwd=work, stderr=log)

    agent = start()
    wait("the agent to connect", lambda: state["connects"] == 1)
    command({"hold_acks": True})
    payload = "x" * args.size
    for _ in range(args.count):
        command({"emit": "big", "args": [payload]})
    wait("every alert on disk", lambda: spooled(spool) >= args.count)
    time.sleep(1)
    queued = (status_kb(agent.pid, "VmRSS"), status_kb(agent.pid, "VmHWM"))
    agent.send_signal(signal.SIGTERM)
    agent.wait(30)

    # Held acks: the first run had one alert on the wire; the restart sends it again.
    before = state["events"]
    agent = start()
    wait("the agent to connect again", lambda: state["connects"] == 2)
    # The first waiting alert goes out at once (its ack held): the spool has been loaded.
    wait("the first alert after the restart", lambda: state["events"] > before)
    time.sleep(1)
    restarted = (status_kb(agent.pid, "VmRSS"), status_kb(agent.pid, "VmHWM"))
    waiting = spooled(spool)
    agent.send_signal(signal.SIGTERM)
    agent.wait(30)
    server.terminate()
    mb = lambda kb: f"{kb / 1024:.1f} MB"  # noqa: E731
    print(f"{args.count} alerts of {args.size} B ({args.count * args.size / 1e6:.0f} MB) waiting")
    print(f"  while queued:  VmRSS {mb(queued[0])}, peak {mb(queued[1])}")
    print(f"  after restart: VmRSS {mb(restarted[0])}, peak {mb(restarted[1])} ({waiting} alerts on disk)")


if __name__ == "__main__":
    main()
