"""The legacy peer: a real python-socketio 4.6.1 / python-engineio 3.14.2 server (Socket.IO v2,
Engine.IO 3), run from the second venv (.venv-eio3, Tests/requirements-eio3.txt) on eventlet: the asyncio
server of 4.6.1 cannot emit on Python 3.11 (it passes coroutines to asyncio.wait).

Usage: legacy_server.py [--port N] [--ping-interval S] [--ping-timeout S]
Prints "READY <port>" on stdout once it accepts connections.

Namespaces: "/" (connected implicitly by the server; refused when the query has deny=1), "/admin" (requires token=secret in the
query of the Engine.IO URL, the only place a v2 client can put auth), "/early" (emits "early" with
the query it saw from its connect handler).
Events (every namespace): alert/batery -> emit feedback {"retorno": true}; echo -> ack with the
arguments; echo_event -> emit "echoed" with the arguments; ask -> server calls "question" on the
client with an ack and emits "answer" with the reply; kick -> namespace DISCONNECT; close_engine
-> Engine.IO close; record -> remembered; records -> ack with what was recorded; transport -> ack
with the current transport name; query -> ack with the query of the Engine.IO URL; versions -> ack
with how many handshakes asked for each EIO value; pings -> ack with how many Engine.IO pings the
session received; stall -> never answers. Each `record` is also
printed on stdout as a JSON line. python-socketio 4.x has no catch-all handler, so each event is
registered by name.
"""
import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

import engineio.packet  # noqa: E402
import engineio.socket  # noqa: E402
import socketio  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--ping-interval", type=float, default=25)
parser.add_argument("--ping-timeout", type=float, default=60)
args = parser.parse_args()

debug = "SIO_DEBUG" in __import__("os").environ
sio = socketio.Server(
    async_mode="eventlet",
    ping_interval=args.ping_interval,
    ping_timeout=args.ping_timeout,
    cors_allowed_origins="*",
    logger=debug,
    engineio_logger=debug,
)
records = []
queries = {}
versions = {}
# Engine.IO pings received, by session (in Engine.IO 3 the client pings).
pings = {}
_receive = engineio.socket.Socket.receive


def counting_receive(self, pkt):
    if pkt.packet_type == engineio.packet.PING:
        pings[self.sid] = pings.get(self.sid, 0) + 1
    return _receive(self, pkt)


engineio.socket.Socket.receive = counting_receive


def app(environ, start_response):
    # Counts the EIO values of handshakes (requests without a sid), refused ones included.
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "sid" not in query:
        eio = query.get("EIO", [""])[0]
        versions[eio] = versions.get(eio, 0) + 1
    return wsgi_app(environ, start_response)


wsgi_app = socketio.WSGIApp(sio)


def query_of(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()
            if k not in ("EIO", "transport", "t", "sid", "b64")}


def register(ns):
    def on(name):
        def wrap(handler):
            sio.on(name, handler, namespace=ns)
            return handler
        return wrap

    @on("alert")
    def alert(sid, *data):
        sio.emit("feedback", {"retorno": True}, room=sid, namespace=ns)

    @on("batery")
    def batery(sid, *data):
        sio.emit("feedback", {"retorno": True}, room=sid, namespace=ns)

    @on("echo")
    def echo(sid, *data):
        return data if len(data) != 1 else data[0]

    @on("echo_event")
    def echo_event(sid, *data):
        sio.emit("echoed", list(data), room=sid, namespace=ns)

    @on("ask")
    def ask(sid, *data):
        reply = sio.call("question", data[0] if data else None, sid=sid, namespace=ns, timeout=10)
        sio.emit("answer", reply, room=sid, namespace=ns)

    @on("kick")
    def kick(sid, *data):
        sio.disconnect(sid, namespace=ns)

    @on("close_engine")
    def close_engine(sid, *data):
        sio.eio.disconnect(sid)

    @on("record")
    def record(sid, *data):
        records.append(data[0] if data else None)
        # For tests that read the server's output (the agent's end-to-end tests).
        print(json.dumps({"type": "event", "event": "record", "namespace": ns, "args": list(data)}), flush=True)

    @on("records")
    def records_(sid, *data):
        return list(records)

    @on("transport")
    def transport(sid, *data):
        return sio.transport(sid)

    @on("query")
    def query(sid, *data):
        return queries.get(sid, {})

    @on("versions")
    def versions_(sid, *data):
        return dict(versions)

    @on("pings")
    def pings_(sid, *data):
        # python-socketio 4 names a client by its Engine.IO session.
        return pings.get(sid, 0)

    @on("stall")
    def stall(sid, *data):
        eventlet.sleep(3600)


for ns in ("/", "/admin", "/early"):
    register(ns)


@sio.on("connect")
def root_connect(sid, environ):
    if query_of(environ).get("deny"):
        # python-socketio 4.x refuses `/` at the Engine.IO handshake: HTTP 401 with this as body.
        raise socketio.exceptions.ConnectionRefusedError("Go away", {"code": 7})
    queries[sid] = query_of(environ)


@sio.on("connect", namespace="/admin")
def admin_connect(sid, environ):
    if query_of(environ).get("token") != "secret":
        raise socketio.exceptions.ConnectionRefusedError("Not authorized")


@sio.on("connect", namespace="/early")
def early_connect(sid, environ):
    sio.emit("early", {"query": query_of(environ)}, room=sid, namespace="/early")


def main():
    listener = eventlet.listen(("127.0.0.1", args.port))
    print(f"READY {listener.getsockname()[1]}", flush=True)
    eventlet.wsgi.server(listener, app, log_output=debug, log=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
