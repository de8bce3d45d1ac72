"""Agent benchmark: sioagent vs. a python-socketio AsyncClient doing the same job.

A python-socketio server emits N `batery` events ({"level": L, "seq": i}); the client under test
answers every one whose level is below 20 with `alert` [seq]. The server times each alert
against its event. Both clients run against the same server, interleaved, in one run.

Prints, per scenario (websocket/polling x paced/flood): events/s, p50/p99 event->alert latency,
client CPU seconds per 10k events, idle and peak RSS, and the ratios python/sioagent.

    .venv/bin/python bench/agent_bench.py [--events 20000] [--rate 1000] [--rounds 1]
        [--sioagent .build/release/sioagent] [--ack] [--clients sioagent,python] [--modes paced,flood]
        [--perf DIR] [--callgrind DIR] [--strace DIR] [--allocs] [--log] [--in-flight 1,32]

--ack asks both clients to emit with an acknowledgement (`ack: 5s`: sioagent spools each alert
and sends it once stored; the AsyncClient uses `call`). --perf DIR profiles each sioagent run
with `perf record -g` (cpu-clock, attached for the events only); --callgrind DIR runs sioagent
under callgrind with the counters zeroed before the events and dumped after them, and prints
instructions per event (use a low --rate: valgrind is ~50x slower). --strace DIR attaches
`strace -f -c` to each sioagent run for the events only (every thread) and prints the system
calls per event, by kind (strace slows the agent down: its CPU figures are not comparable then).
--allocs runs sioagent with bench/alloc_count.c preloaded (built with `cc` into a temporary
directory) and prints the allocations (malloc, calloc, realloc, aligned allocations; every thread)
and bytes asked for per event, counted from just before the events to just after them.
--threshold T makes sioagent's rule fire for one event in 40/T (the non-firing path: --threshold 1).
--in-flight N,M,... runs sioagent once per value of `spool.in_flight` (clients named
sioagent-ifN), interleaved with the others: with --ack, 1 is the one-at-a-time outbox of before
the window.
--log adds a `log` action to the rule (to a file in the work directory), so that each alert
also writes a line.

CPU and RSS are read from /proc of the client process; the figures are ratios measured in one
run on the same machine, not absolute targets.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import socketio
from aiohttp import web

from proc_stats import cpu_seconds, status_kb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

RULES = """\
rules:
  - id: battery-low
    on: batery
    when: payload.level < 20
    then:
      - emit: alert
        args: ["{{ payload.seq }}"]
"""
RULES_ACK = RULES + "        ack: 5s\n"
LOG_ACTION = """\
      - log: {path}
        message: "battery low: {{{{ payload.seq }}}}"
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class BenchServer:
    """The server side: emits the events, times the alerts."""

    def __init__(self):
        self.sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=10_000_000)
        self.app = web.Application()
        self.sio.attach(self.app)
        self.connected = asyncio.Event()
        self.sid = None
        self.sent = {}
        self.latencies = []
        self.expected = 0
        self.done = asyncio.Event()

        @self.sio.event
        async def connect(sid, environ, auth=None):
            self.sid = sid
            self.connected.set()

        @self.sio.event
        async def disconnect(sid, reason=None):
            if sid == self.sid:
                self.connected.clear()

        @self.sio.on("alert")
        async def alert(sid, seq, *rest):
            now = time.perf_counter()
            seq = int(seq)
            t = self.sent.pop(seq, None)
            if t is not None:
                self.latencies.append(now - t)
            if len(self.latencies) >= self.expected:
                self.done.set()
            return "ok"  # the acknowledgement, when the client asked for one

    async def start(self, port):
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()

    async def run(self, events, rate):
        """Emits `events` events (paced at `rate`/s, or as fast as possible when rate is 0)."""
        self.sent.clear()
        self.latencies = []
        self.done.clear()
        levels = [(i * 7) % 40 for i in range(events)]  # half of them below 20
        threshold = getattr(self, "threshold", 20)
        self.expected = sum(1 for level in levels if level < threshold)
        start = time.perf_counter()
        for i, level in enumerate(levels):
            if rate:
                target = start + i / rate
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if level < threshold:
                self.sent[i] = time.perf_counter()
            await self.sio.emit("batery", {"level": level, "seq": i}, to=self.sid)
            if not rate and i % 200 == 0:
                await asyncio.sleep(0)  # let the transport drain
        try:
            await asyncio.wait_for(self.done.wait(), timeout=120)
        except asyncio.TimeoutError:
            pass
        elapsed = time.perf_counter() - start
        return elapsed


def load():
    return os.getloadavg()[0]


async def measure(server, name, argv, transport, events, rate, perf=None, callgrind=None, strace=None, allocs=None):
    env = dict(os.environ)
    if allocs:
        library, counts = allocs
        env["LD_PRELOAD"] = library
        env["ALLOC_COUNT_FILE"] = counts
        if os.path.exists(counts):
            os.unlink(counts)
    if callgrind:
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind}", *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        await asyncio.wait_for(server.connected.wait(), timeout=120 if callgrind else 30)
        await asyncio.sleep(10 if callgrind else 1.5)  # settle (and finish the upgrade)
        idle = status_kb(proc.pid, "VmRSS")
        if callgrind:
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], stdout=subprocess.DEVNULL, check=True)
        recorder = None
        if perf:
            recorder = subprocess.Popen(
                ["perf", "record", "-q", "-e", "cpu-clock", "-g", "-p", str(proc.pid), "-o", perf],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(0.5)
        tracer = None
        if strace:
            tracer = subprocess.Popen(
                ["strace", "-f", "-c", "-U", "name,calls", "-o", strace, "-p", str(proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1)
        if allocs:
            await signal_counts(proc.pid, allocs[1], 1)
        load0 = load()
        cpu0 = cpu_seconds(proc.pid)
        elapsed = await server.run(events, rate)
        cpu = cpu_seconds(proc.pid) - cpu0
        allocated = None
        if allocs:
            lines = await signal_counts(proc.pid, allocs[1], 2)
            before, after = ([int(x) for x in line.split()] for line in lines[:2])
            allocated = {"allocations": (after[0] - before[0]) / events, "bytes": (after[2] - before[2]) / events}
        peak = status_kb(proc.pid, "VmHWM")
        instructions = None
        if recorder:
            recorder.send_signal(2)
            recorder.wait()
        syscalls = None
        if tracer:
            tracer.send_signal(2)
            tracer.wait()
            syscalls = strace_counts(strace)
        if callgrind:
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], stdout=subprocess.DEVNULL, check=True)
            await asyncio.sleep(1)
            instructions = callgrind_total(callgrind)
        lat = sorted(server.latencies)
        got = len(lat)
        return {
            "client": name,
            "transport": transport,
            "mode": f"{rate}/s" if rate else "flood",
            "events_per_s": events / elapsed,
            "alerts": f"{got}/{server.expected}",
            "p50_ms": statistics.median(lat) * 1000 if lat else float("nan"),
            "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000 if lat else float("nan"),
            "cpu_per_10k": cpu / events * 10_000,
            "idle_mb": idle / 1024,
            "peak_mb": peak / 1024,
            "load": (load0 + load()) / 2,
            "instructions_per_event": instructions / events if instructions else None,
            "syscalls_per_event": {k: v / events for k, v in syscalls.items()} if syscalls else None,
            "allocations_per_event": allocated,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.connected.clear()
        await asyncio.sleep(0.5)


async def signal_counts(pid, path, lines):
    """Asks the preloaded counting allocator for its counters (SIGUSR2); waits for line `lines`."""
    os.kill(pid, signal.SIGUSR2)
    for _ in range(200):
        if os.path.exists(path):
            with open(path) as f:
                got = f.read().splitlines()
            if len(got) >= lines:
                return got
        await asyncio.sleep(0.05)
    raise RuntimeError("the counting allocator did not answer (is LD_PRELOAD honoured?)")


def build_alloc_counter(folder):
    """Compiles bench/alloc_count.c into folder/alloc_count.so."""
    library = os.path.join(folder, "alloc_count.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", library, os.path.join(HERE, "alloc_count.c")], check=True)
    return library


def strace_counts(path):
    """Calls by system call name from `strace -c -U name,calls` output, with "total"."""
    counts = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
            elif len(parts) == 2 and parts[0].isdigit() and parts[1] == "total":
                counts["total"] = int(parts[0])
    if "total" not in counts:
        counts["total"] = sum(counts.values())
    return counts


def callgrind_total(prefix):
    """Ir of the newest dump callgrind_control -d wrote for `prefix` (prefix.N)."""
    folder, base = os.path.split(prefix)
    dumps = sorted(
        (f for f in os.listdir(folder or ".") if f.startswith(base + ".")),
        key=lambda f: os.path.getmtime(os.path.join(folder, f)))
    if not dumps:
        return None
    with open(os.path.join(folder, dumps[-1])) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    return None


async def listen_idle_rss(binary, url):
    proc = subprocess.Popen([binary, "listen", url, "--transport", "websocket"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.sleep(3)
    rss = status_kb(proc.pid, "VmRSS") / 1024
    proc.terminate()
    proc.wait()
    return rss


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sioagent", default=os.path.join(ROOT, ".build/release/sioagent"))
    parser.add_argument("--transports", default="websocket,polling")
    parser.add_argument("--metrics", action="store_true",
                        help="run sioagent with metrics on (listener + text file every 5 s)")
    parser.add_argument("--no-python", action="store_true", help="measure sioagent only")
    parser.add_argument("--ack", action="store_true", help="emit with an acknowledgement (ack: 5s)")
    parser.add_argument("--clients", default="sioagent,python")
    parser.add_argument("--modes", default="paced,flood")
    parser.add_argument("--perf", help="directory for perf record profiles of the sioagent runs")
    parser.add_argument("--callgrind", help="directory for callgrind profiles of the sioagent runs")
    parser.add_argument("--strace", help="directory for strace -f -c summaries of the sioagent runs")
    parser.add_argument("--allocs", action="store_true", help="count sioagent's allocations per event (bench/alloc_count.c)")
    parser.add_argument("--threshold", type=int, default=20,
                        help="sioagent's rule fires for level < THRESHOLD, 1-40 (levels are 0-39: 20 fires for half "
                             "the events, 1 for one in 40); the AsyncClient always uses 20, so use with --clients sioagent")
    parser.add_argument("--log", action="store_true", help="each alert also writes a log line (a log action)")
    parser.add_argument("--in-flight", help="comma-separated spool.in_flight values: one sioagent run per value")
    args = parser.parse_args()
    if not 1 <= args.threshold <= 40:
        parser.error("--threshold must be 1-40 (the run ends when every expected alert has arrived)")
    clients = args.clients.split(",")
    rates = [r for m, r in (("paced", args.rate), ("flood", 0)) if m in args.modes.split(",")]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = BenchServer()
    await server.start(port)
    work = tempfile.mkdtemp(prefix="sioagent-bench-")
    with open(os.path.join(work, "rules.yaml"), "w") as f:
        f.write((RULES_ACK if args.ack else RULES).replace("payload.level < 20", f"payload.level < {args.threshold}"))
        if args.log:
            f.write(LOG_ACTION.format(path=os.path.join(work, "alerts.log")))
    server.threshold = args.threshold
    library = build_alloc_counter(work) if args.allocs else None

    results = []
    for _ in range(args.rounds):
        for transport in args.transports.split(","):
            for rate in rates:
                agent = [
                    args.sioagent, "run", "--url", url, "--rules", os.path.join(work, "rules.yaml"),
                    "--log-level", "error",
                ]
                os.environ["SIOAGENT_SPOOL_DIR"] = os.path.join(work, "spool")
                if transport == "websocket":
                    cfg = os.path.join(work, "ws.yaml")
                    with open(cfg, "w") as f:
                        f.write(f"server: {{url: {url}, transports: [websocket]}}\nrules: rules.yaml\n")
                else:
                    cfg = os.path.join(work, "poll.yaml")
                    with open(cfg, "w") as f:
                        f.write(f"server: {{url: {url}, transports: [polling]}}\nrules: rules.yaml\n")
                if args.metrics:
                    with open(cfg, "a") as f:
                        f.write(f"metrics: {{listen: 127.0.0.1:{free_port()}, textfile: {os.path.join(work, 'sioagent.prom')}, interval: 5s}}\n")
                python = [sys.executable, os.path.join(HERE, "py_agent.py"), url, transport] + (["ack"] if args.ack else [])
                runs = []
                for window in (args.in_flight.split(",") if args.in_flight else [None]):
                    if window is None:
                        runs.append(("sioagent", agent + ["--config", cfg]))
                        continue
                    windowed = os.path.join(work, f"{transport}-if{window}.yaml")
                    with open(cfg) as f, open(windowed, "w") as g:
                        g.write(f.read() + f"spool: {{dir: {os.path.join(work, 'spool')}, in_flight: {int(window)}}}\n")
                    runs.append((f"sioagent-if{int(window)}", agent + ["--config", windowed]))
                runs.append(("python", python))
                for name, argv in runs:
                    if name.split("-if")[0] not in clients or (args.no_python and name == "python"):
                        continue
                    tag = f"{transport}-{'flood' if not rate else rate}{'-ack' if args.ack else ''}"
                    perf = os.path.join(os.path.abspath(args.perf), f"perf-{tag}.data") if args.perf and name == "sioagent" else None
                    cg = os.path.join(os.path.abspath(args.callgrind), f"callgrind-{tag}.out") if args.callgrind and name == "sioagent" else None
                    st = os.path.join(os.path.abspath(args.strace), f"strace-{tag}.txt") if args.strace and name == "sioagent" else None
                    al = (library, os.path.join(work, f"allocs-{tag}.txt")) if library and name == "sioagent" else None
                    r = await measure(server, name, argv, transport, args.events, rate, perf=perf, callgrind=cg, strace=st, allocs=al)
                    results.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)

    print()
    print(f"{args.events} events per run, {args.rounds} round(s), paced = {args.rate}/s, "
          f"{'emit with ack: 5s' if args.ack else 'emit without ack'}; load = 1-min load average during the run")
    header = f"{'transport':10} {'mode':8} {'client':14} {'events/s':>9} {'alerts':>13} {'p50 ms':>8} {'p99 ms':>8} {'CPU s/10k':>10} {'idle MB':>8} {'peak MB':>8} {'load':>5} {'instr/event':>11}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['transport']:10} {r['mode']:8} {r['client']:14} {r['events_per_s']:9.0f} {r['alerts']:>13} "
            f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['cpu_per_10k']:10.3f} {r['idle_mb']:8.1f} {r['peak_mb']:8.1f} {r['load']:5.1f} "
            f"{r['instructions_per_event'] or 0:11.0f}"
        )
    print()
    print("ratios (python / sioagent; higher is better for sioagent):")
    agents = sorted({r["client"] for r in results if r["client"] != "python"})
    for transport in args.transports.split(","):
        for mode, agent_name in ((m, c) for m in (f"{args.rate}/s", "flood") for c in agents):
            a = [r for r in results if r["client"] == agent_name and r["transport"] == transport and r["mode"] == mode]
            p = [r for r in results if r["client"] == "python" and r["transport"] == transport and r["mode"] == mode]
            if not a or not p:
                continue
            def avg(rs, k):
                return sum(r[k] for r in rs) / len(rs)
            print(
                f"  {transport:10} {mode:8} {agent_name:14} CPU/event {avg(p, 'cpu_per_10k') / max(avg(a, 'cpu_per_10k'), 1e-9):5.1f}x   "
                f"p99 {avg(p, 'p99_ms') / avg(a, 'p99_ms'):5.2f}x   idle RSS {avg(p, 'idle_mb') / avg(a, 'idle_mb'):4.1f}x"
            )
    traced = [r for r in results if r.get("syscalls_per_event")]
    if traced:
        print()
        print("system calls per event (strace -f -c over the events, every thread):")
        for r in traced:
            calls = r["syscalls_per_event"]
            kinds = sorted((k for k in calls if k != "total"), key=lambda k: -calls[k])
            print(f"  {r['transport']:10} {r['mode']:8} total {calls['total']:.3f}: "
                  + ", ".join(f"{k} {calls[k]:.3f}" for k in kinds if calls[k] >= 0.0005)
                  + f"; futex {calls.get('futex', 0):.3f}")
    counted = [r for r in results if r.get("allocations_per_event")]
    if counted:
        print()
        print("allocations per event (malloc and friends, every thread, over the events):")
        for r in counted:
            a = r["allocations_per_event"]
            print(f"  {r['transport']:10} {r['mode']:8} {a['allocations']:.2f} allocations, {a['bytes']:.0f} bytes")
    if os.path.exists(args.sioagent):
        print(f"sioagent binary: {os.path.getsize(args.sioagent) / 1e6:.1f} MB ({args.sioagent})")
        idle_run = [r["idle_mb"] for r in results if r["client"].startswith("sioagent")]
        if idle_run:
            print(f"idle RSS of `sioagent run` (after connecting): {statistics.median(idle_run):.1f} MB")
        print(f"idle RSS of `sioagent listen` (websocket): {await listen_idle_rss(args.sioagent, url):.1f} MB")
    await server.runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
