"""The real python-socketio peer for the interoperability tests.

Usage: server.py [--port N] [--ping-interval S] [--ping-timeout S] [--tls CERT KEY [--tls-max 1.1]]
Prints "READY <port>" on stdout once it accepts connections.

Namespaces: "/" (open), "/admin" (auth {"token": "secret"} required), "/early" (emits "early"
from its connect handler, which python sends before the CONNECT reply).
Events (every namespace): alert/batery -> emit feedback {"retorno": true}; echo -> ack with the
arguments; echo_event -> emit "echoed" with the arguments; ask -> server calls "question" on the
client with an ack and emits "answer" with the reply; kick -> namespace DISCONNECT; close_engine ->
Engine.IO close; record -> remembered; records -> ack with what was recorded; cookies -> ack with
the Cookie headers seen; transport -> ack with the current transport name;
stall -> never answers.
"""
import argparse
import asyncio
import ssl
import sys

import socketio
from aiohttp import web

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--ping-interval", type=float, default=25)
parser.add_argument("--ping-timeout", type=float, default=20)
parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
# The newest TLS version the server offers (e.g. 1.1, to test a version the client refuses).
parser.add_argument("--tls-max", default=None)
args = parser.parse_args()

sio = socketio.AsyncServer(
    async_mode="aiohttp",
    ping_interval=args.ping_interval,
    ping_timeout=args.ping_timeout,
    cors_allowed_origins="*",
    logger="SIO_DEBUG" in __import__("os").environ,
    engineio_logger="SIO_DEBUG" in __import__("os").environ,
)
records = []
cookies_seen = []


@web.middleware
async def cookie_middleware(request, handler):
    cookies_seen.append({
        "transport": request.query.get("transport"),
        "sid": request.query.get("sid") is not None,
        "cookie": request.headers.get("Cookie"),
        "x-test": request.headers.get("X-Test"),
        "query": request.query.get("q"),
    })
    response = await handler(request)
    if "sid" not in request.query and request.query.get("transport") == "polling" and not response.prepared:
        response.set_cookie("sticky", "node-7")
    return response


app = web.Application(middlewares=[cookie_middleware])
sio.attach(app)


async def common(ns, event, sid, *data):
    if event in ("alert", "batery"):
        await sio.emit("feedback", {"retorno": True}, to=sid, namespace=ns)
    elif event == "echo":
        return data if len(data) != 1 else data[0]
    elif event == "echo_event":
        await sio.emit("echoed", list(data), to=sid, namespace=ns)
    elif event == "ask":
        reply = await sio.call("question", data[0] if data else None, to=sid, namespace=ns, timeout=10)
        await sio.emit("answer", reply, to=sid, namespace=ns)
    elif event == "kick":
        await sio.disconnect(sid, namespace=ns)
    elif event == "close_engine":
        await sio.eio.disconnect(sio.manager.eio_sid_from_sid(sid, ns))
    elif event == "record":
        records.append(data[0] if data else None)
    elif event == "records":
        return list(records)
    elif event == "cookies":
        return cookies_seen
    elif event == "transport":
        return sio.transport(sid, namespace=ns)
    elif event == "record_stall":
        records.append(data[0] if data else None)
        await asyncio.sleep(3600)
    elif event == "stall":
        await asyncio.sleep(3600)
    elif event == "emit_count":
        n = int(data[0])
        for i in range(n):
            await sio.emit("tick", {"i": i}, to=sid, namespace=ns)
    return None


def register(ns):
    @sio.on("*", namespace=ns)
    async def any_event(event, sid, *data):
        return await common(ns, event, sid, *data)


for ns in ("/", "/admin", "/early"):
    register(ns)


@sio.on("connect", namespace="/admin")
async def admin_connect(sid, environ, auth):
    if not isinstance(auth, dict) or auth.get("token") != "secret":
        raise socketio.exceptions.ConnectionRefusedError("Not authorized", {"reason": "bad token"})


@sio.on("connect", namespace="/early")
async def early_connect(sid, environ, auth):
    await sio.emit("early", {"auth": auth}, to=sid, namespace="/early")


async def main():
    runner = web.AppRunner(app)
    await runner.setup()
    context = None
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls[0], args.tls[1])
        if args.tls_max == "1.1":
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
    site = web.TCPSite(runner, "127.0.0.1", args.port, ssl_context=context, reuse_address=True)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
