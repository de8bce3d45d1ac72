"""Client benchmark: one python-socketio server (in this process) emits N `tick` events to a client
that answers each with a `tock`; runs our Swift client and python-socketio's AsyncClient against the
same server, interleaved, paced (--rate events/s) and flood, over WebSocket and polling.

Measures per run: events/s (ticks answered per second), tick->tock latency p50/p99 (server clock),
client CPU seconds per 10k events (utime+stime from /proc during the ticks), idle RSS (after
connecting, before the ticks) and peak RSS (VmHWM). Also the idle RSS of `sioagent listen`.
"""
import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

import socketio
from aiohttp import web

from proc_stats import cpu_seconds, status_kb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

parser = argparse.ArgumentParser()
parser.add_argument("--events", type=int, default=5000)
parser.add_argument("--rate", type=int, default=1000)
parser.add_argument("--rounds", type=int, default=1)
parser.add_argument("--transports", default="websocket,polling")
parser.add_argument("--swift-bin", default=os.path.join(ROOT, ".build/release/sio-bench-client"))
parser.add_argument("--sioagent", default=os.path.join(ROOT, ".build/release/sioagent"))
args = parser.parse_args()

sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=25, ping_timeout=20)
app = web.Application()
sio.attach(app)
state = {}


@sio.on("ready")
async def ready(sid):
    state["sid"] = sid
    state["ready"].set()


@sio.on("tock")
async def tock(sid, data):
    i = data["i"]
    state["lat"][i] = time.perf_counter() - state["sent"][i]
    state["received"] += 1
    if state["received"] == state["n"]:
        state["last"] = time.perf_counter()
        state["all"].set()


async def run_one(kind, transport, rate, n, port):
    state.update(ready=asyncio.Event(), all=asyncio.Event(), sent=[0.0] * n, lat=[None] * n, received=0, n=n)
    url = f"http://127.0.0.1:{port}"
    if kind == "swift":
        cmd = [args.swift_bin, url, transport]
    else:
        cmd = [sys.executable, os.path.join(ROOT, "bench/py_client.py"), url, transport]
    proc = subprocess.Popen(cmd)
    try:
        await asyncio.wait_for(state["ready"].wait(), 30)
        await asyncio.sleep(1.0)
        idle_rss = status_kb(proc.pid, "VmRSS") / 1024
        cpu0 = cpu_seconds(proc.pid)
        sid = state["sid"]
        start = time.perf_counter()
        for i in range(n):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            state["sent"][i] = time.perf_counter()
            await sio.emit("tick", {"i": i}, to=sid)
        try:
            await asyncio.wait_for(state["all"].wait(), 60)
        except asyncio.TimeoutError:
            print(f"  {kind} {transport} rate={rate}: only {state['received']}/{n} answers after 60 s", file=sys.stderr)
            state["last"] = time.perf_counter()
        cpu1 = cpu_seconds(proc.pid)
        peak_rss = status_kb(proc.pid, "VmHWM") / 1024
        await sio.emit("done", to=sid)
        lat = sorted(x for x in state["lat"] if x is not None)
        return {
            "eps": state["received"] / (state["last"] - start),
            "lost": n - state["received"],
            "p50": lat[len(lat) // 2] * 1000,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
            "cpu10k": (cpu1 - cpu0) / max(state["received"], 1) * 10000,
            "idle": idle_rss,
            "peak": peak_rss,
        }
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def listen_idle_rss(port):
    proc = subprocess.Popen([args.sioagent, "listen", f"http://127.0.0.1:{port}", "--transport", "websocket"],
                            stdout=subprocess.DEVNULL)
    await asyncio.sleep(3)
    rss = status_kb(proc.pid, "VmRSS") / 1024
    proc.terminate()
    proc.wait()
    return rss


async def main():
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    results = {}
    for transport in args.transports.split(","):
        for workload, rate in (("paced", args.rate), ("flood", 0)):
            for _ in range(args.rounds):
                for kind in ("swift", "python"):  # interleaved
                    print(f"  running {kind} {transport} {workload}", file=sys.stderr, flush=True)
                    r = await run_one(kind, transport, rate, args.events, port)
                    results.setdefault((transport, workload, kind), []).append(r)
    print(f"{args.events} events per run, {args.rounds} round(s), paced = {args.rate}/s; "
          "server: python-socketio 5.18.1 (aiohttp) in the same process as this script")
    header = f"{'transport':<10}{'load':<7}{'client':<8}{'events/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'CPU s/10k':>10}{'idle MB':>9}{'peak MB':>9}{'lost':>6}"
    print(header)
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    for (transport, workload, kind), rs in results.items():
        print(f"{transport:<10}{workload:<7}{kind:<8}{med(rs, 'eps'):>9.0f}{med(rs, 'p50'):>8.2f}{med(rs, 'p99'):>8.2f}"
              f"{med(rs, 'cpu10k'):>10.3f}{med(rs, 'idle'):>9.1f}{med(rs, 'peak'):>9.1f}{max(r['lost'] for r in rs):>6}")
    print("lost = answers that never reached the server (python-socketio's client POSTs more than 16 packets,\n"
          "which python-engineio drops); a run waits at most 60 s for its answers")
    print("ratios (python / swift): CPU per event, p99, idle RSS")
    for transport in args.transports.split(","):
        for workload in ("paced", "flood"):
            s = results[(transport, workload, "swift")]
            p = results[(transport, workload, "python")]
            print(f"  {transport:<10}{workload:<7} CPU x{med(p, 'cpu10k') / max(med(s, 'cpu10k'), 1e-9):.1f}"
                  f"  p99 x{med(p, 'p99') / max(med(s, 'p99'), 1e-9):.2f}  idle RSS x{med(p, 'idle') / med(s, 'idle'):.1f}")
    print(f"load (1-min average) at the end: {os.getloadavg()[0]:.1f}")
    for binary in (args.swift_bin, args.sioagent):
        if os.path.exists(binary):
            print(f"binary: {os.path.getsize(binary) / 1e6:.1f} MB ({binary})")
    if os.path.exists(args.sioagent):
        print(f"idle RSS of `sioagent listen` (websocket): {await listen_idle_rss(port):.1f} MB")
    await runner.cleanup()


asyncio.run(main())
