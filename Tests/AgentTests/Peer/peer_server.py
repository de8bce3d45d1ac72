"""A real python-socketio server driven by the agent's end-to-end tests.

Prints one JSON object a line on stdout:
  {"type": "ready", "port": N}
  {"type": "connect", "sid": ..., "namespace": ..., "auth": ...}
  {"type": "disconnect", "sid": ..., "namespace": ...}
  {"type": "event", "namespace": ..., "event": ..., "args": [...]}
  {"type": "ack", "id": ..., "args": [...]}          (the answer to an emit_ack command)
Reads one JSON command a line on stdin:
  {"emit": "batery", "args": [15], "namespace": "/"}
  {"emit_ack": "ask", "args": [...], "id": "x", "namespace": "/"}   (asks the client for an ack)
  {"disconnect_all": true}
  {"hold_acks": true}      (from now on, events asking for an ack get it only after release_acks)
  {"release_acks": true}   (acknowledges the held events, and every later one at once)
Events the client sends with an ack request are acknowledged with true (the python-socketio
server answers an ack request with the handler's return value).
With --ack-delay S each event waits a random 0..S seconds before its handler returns (python-socketio
runs handlers concurrently, so acks come back out of order), and its line carries "pending": the
handlers running when it arrived, itself included.
With --feedback it also answers `alert` and `batery` with `feedback` {"retorno": true}, as the
original notebook's server did (scripts/test-package runs the seed flow with it).
"""

import argparse
import asyncio
import json
import random
import socket
import sys

import socketio
from aiohttp import web


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--namespaces", default="/")
    parser.add_argument("--ping-interval", type=float, default=25)
    parser.add_argument("--ping-timeout", type=float, default=20)
    parser.add_argument("--feedback", action="store_true", help="answer alert and batery with feedback {retorno: true}")
    # Namespaces (comma-separated) whose connection is refused with --refuse-message.
    parser.add_argument("--refuse", default="")
    parser.add_argument("--refuse-message", default="refused")
    parser.add_argument("--ack-delay", type=float, default=0)
    args = parser.parse_args()

    port = args.port
    if port == 0:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()

    sio = socketio.AsyncServer(
        async_mode="aiohttp", ping_interval=args.ping_interval, ping_timeout=args.ping_timeout
    )
    app = web.Application()
    sio.attach(app)
    namespaces = args.namespaces.split(",")
    refused = [ns for ns in args.refuse.split(",") if ns]
    for ns in refused:
        if ns not in namespaces:
            namespaces.append(ns)
    acks = {"released": asyncio.Event(), "pending": 0}
    acks["released"].set()

    for ns in namespaces:
        def make(ns):
            async def on_connect(sid, environ, auth=None):
                if ns in refused:
                    out({"type": "refused", "sid": sid, "namespace": ns})
                    raise socketio.exceptions.ConnectionRefusedError(args.refuse_message)
                out({"type": "connect", "sid": sid, "namespace": ns, "auth": auth})

            async def on_disconnect(sid, reason=None):
                out({"type": "disconnect", "sid": sid, "namespace": ns})

            async def on_any(event, sid, *data):
                if args.ack_delay > 0:
                    acks["pending"] += 1
                    out({"type": "event", "namespace": ns, "event": event, "args": list(data), "pending": acks["pending"]})
                    try:
                        await asyncio.sleep(random.uniform(0, args.ack_delay))
                    finally:
                        acks["pending"] -= 1
                    return True
                out({"type": "event", "namespace": ns, "event": event, "args": list(data)})
                if args.feedback and event in ("alert", "batery"):
                    await sio.emit("feedback", {"retorno": True}, to=sid, namespace=ns)
                if not acks["released"].is_set():
                    out({"type": "ack_held", "namespace": ns, "event": event})
                    await acks["released"].wait()
                return True

            sio.on("connect", on_connect, namespace=ns)
            sio.on("disconnect", on_disconnect, namespace=ns)
            sio.on("*", on_any, namespace=ns)

        make(ns)

    async def commands():
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=16 * 1024 * 1024)  # lines carry payloads over 64 KiB
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            cmd = json.loads(line)
            ns = cmd.get("namespace", "/")
            if "emit" in cmd:
                await sio.emit(cmd["emit"], tuple(cmd.get("args", [])) if len(cmd.get("args", [])) != 1 else cmd["args"][0], namespace=ns)
            elif "emit_ack" in cmd:
                async def ask(cmd=cmd, ns=ns):
                    for sid in list(sio.manager.get_participants(ns, None)):
                        try:
                            answer = await sio.call(cmd["emit_ack"], cmd.get("args", [None])[0], to=sid[0], namespace=ns, timeout=10)
                        except Exception as e:  # noqa: BLE001
                            answer = {"error": str(e)}
                        out({"type": "ack", "id": cmd.get("id"), "args": list(answer) if isinstance(answer, tuple) else [answer]})
                asyncio.create_task(ask())
            elif cmd.get("hold_acks"):
                acks["released"].clear()
            elif cmd.get("release_acks"):
                acks["released"].set()
            elif cmd.get("disconnect_all"):
                for sid in list(sio.manager.get_participants(ns, None)):
                    await sio.disconnect(sid[0], namespace=ns)

    async def start(app):
        app["commands"] = asyncio.create_task(commands())

    async def ready(app):
        out({"type": "ready", "port": port})

    app.on_startup.append(start)
    app.on_startup.append(ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


if __name__ == "__main__":
    main()
