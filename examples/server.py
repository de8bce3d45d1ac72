"""The demo server: the original notebook's peer, plus a simulated device.

A python-socketio server on port 3000 (or --port) that
- answers `alert` and `batery` with `feedback` {"retorno": true}, as the notebook's server did;
- simulates a device whose battery drains and recovers, emitting `batery` with the level to
  every connected client (--interval seconds between readings);
- prints every event it receives (the agent's alerts) with the time.

    .venv/bin/python examples/server.py [--port 3000] [--interval 0.5]
"""

import argparse
import asyncio
import time

import socketio
from aiohttp import web


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between battery readings")
    parser.add_argument("--low", type=int, default=5, help="lowest level of the drain cycle")
    parser.add_argument("--high", type=int, default=30, help="highest level of the drain cycle")
    args = parser.parse_args()

    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    app = web.Application()
    sio.attach(app)

    def stamp():
        return time.strftime("%H:%M:%S")

    @sio.event
    async def connect(sid, environ, auth=None):
        print(f"{stamp()} client connected: {sid}", flush=True)

    @sio.event
    async def disconnect(sid, reason=None):
        print(f"{stamp()} client disconnected: {sid} ({reason})", flush=True)

    @sio.on("*")
    async def any_event(event, sid, *data):
        print(f"{stamp()} received {event!r} from {sid}: {list(data)}", flush=True)
        if event in ("alert", "batery"):
            await sio.emit("feedback", {"retorno": True}, to=sid)
        return True  # acknowledges events sent with an ack request

    async def battery():
        level, step = args.high, -1
        while True:
            await asyncio.sleep(args.interval)
            await sio.emit("batery", level)
            print(f"{stamp()} battery reading: {level}%", flush=True)
            level += step * 3
            if level <= args.low:
                level, step = args.low, 1
            elif level >= args.high:
                level, step = args.high, -1

    async def start_battery(app):
        app["battery"] = asyncio.create_task(battery())

    app.on_startup.append(start_battery)
    print(f"{stamp()} demo server on http://{args.host}:{args.port}", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
