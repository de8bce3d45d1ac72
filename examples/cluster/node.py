"""One Socket.IO node of the example cluster: python-socketio behind nginx, sharing a Redis
manager with the other nodes, so that an emit on any node reaches clients on every node.

    python node.py --port 5001 --name node-a [--redis redis://127.0.0.1:6390/0]

Each node answers `alert` with `feedback` {"retorno": true, "node": NAME} and prints one line per
event, so you can see which node a device landed on. It prints "listening on" once Redis has its
subscription: from then on a broadcast reaches the node's clients.
"""

import argparse
import asyncio
import os
import sys

import redis.asyncio
import socketio
from aiohttp import web

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--name", required=True)
parser.add_argument("--redis", default="redis://127.0.0.1:6390/0")
args = parser.parse_args()

NAME = args.name
# The node's Redis connections carry its name, so that it can find its own subscription.
manager = socketio.AsyncRedisManager(args.redis, redis_options={"client_name": NAME})
sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
app = web.Application()
sio.attach(app)


def log(*parts):
    # One write per line: both nodes share run.sh's standard output, and print() with several
    # arguments may write them one by one, so two nodes starting together printed
    # "[node-a][node-b] listening on ..." (the failover test reads these lines).
    sys.stdout.write(" ".join([f"[{args.name}]", *map(str, parts)]) + "\n")
    sys.stdout.flush()


async def subscribe_before_serving(app):
    # python-socketio subscribes to Redis only when the node's first client connects, and a
    # broadcast published before Redis has the subscription never reaches that client (the
    # failover test broadcasts as soon as the agent is connected). Subscribe now, and serve once
    # Redis lists this node's subscription.
    sio.manager_initialized = True
    manager.initialize()
    probe = redis.asyncio.Redis.from_url(args.redis)
    try:
        for _ in range(300):  # 30 s
            try:
                clients = await probe.client_list(_type="pubsub")
                if any(c.get("name") == NAME and int(c.get("sub", 0)) > 0 for c in clients):
                    return
            except redis.RedisError:
                pass  # Redis is starting
            await asyncio.sleep(0.1)
        log("no Redis subscription after 30 s: broadcasts may miss this node's clients")
    finally:
        await probe.aclose()


app.on_startup.append(subscribe_before_serving)


@sio.event
async def connect(sid, environ, auth=None):
    log("connect", sid, environ.get("HTTP_X_DEVICE_ID", ""))


@sio.event
async def disconnect(sid, reason=None):
    log("disconnect", sid, reason)


@sio.on("*")
async def any_event(event, sid, *args):
    log("event", event, args)
    if event == "alert":
        await sio.emit("feedback", {"retorno": True, "node": NAME}, to=sid)
    return True


if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=args.port, print=lambda *_: log("listening on", args.port, "pid", os.getpid()))
