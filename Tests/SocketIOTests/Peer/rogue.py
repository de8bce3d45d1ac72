"""A raw Engine.IO v4 / Socket.IO v5 server (aiohttp) that misbehaves on purpose.

Usage: rogue.py --mode MODE [--port N] [--ping-interval MS] [--ping-timeout MS]
Prints "READY <port>" on stdout once it accepts connections. GET /stats answers a JSON object of
counters (handshakes, connects, largest pong, largest Cookie header, ...), so a test can check
what the client did to the server.

Modes (what the server does once a client has opened a session):
  reject-after-handshake  answers 400 to every request after the polling handshake
  endless-body            answers the first poll with a body that never ends
  big-frame               sends one 2 MB WebSocket text frame (an EVENT "big")
  big-message             sends one 2 MB WebSocket message in 32 fragments (an EVENT "big")
  attachment-bomb         sends a BINARY_EVENT "bomb" whose 30,000 placeholders name one attachment
  attachment-total        sends a BINARY_EVENT "bomb" with two attachments of 700 kB each
  no-connect              never answers a namespace CONNECT
  early-flood             sends 5,000 events before the CONNECT reply
  cookie-flood            sets 200 new cookies (one of 8 kB) on every polling answer
  huge-ping               pings with a 500 kB payload
  kick-all                answers CONNECT, then disconnects the namespace at once
  no-read                 stops reading from the WebSocket after the CONNECT reply
  well-behaved            none of the above
In every mode but no-connect, a CONNECT is answered (after the misbehaviour, for early-flood),
and after each misbehaviour the server sends an EVENT "after" so tests can see the client lives.
"""
import argparse
import asyncio
import itertools
import json
import sys

from aiohttp import web, WSMsgType

parser = argparse.ArgumentParser()
parser.add_argument("--mode", required=True)
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--ping-interval", type=int, default=25000)
parser.add_argument("--ping-timeout", type=int, default=20000)
args = parser.parse_args()
MODE = args.mode

stats = {
    "handshakes": 0, "requests": 0, "connects": 0, "pongs": 0, "pong_max": 0,
    "cookie_max_count": 0, "cookie_max_len": 0, "cookie_header_max": 0,
    "body_bytes_sent": 0, "ws_closed_by_client": 0, "events": 0,
}
sessions = {}
counter = itertools.count(1)


def open_packet(sid, upgrades):
    return "0" + json.dumps({
        "sid": sid, "upgrades": upgrades, "pingInterval": args.ping_interval,
        "pingTimeout": args.ping_timeout, "maxPayload": 1000000,
    })


def note_cookies(request):
    header = request.headers.get("Cookie")
    if not header:
        return
    parts = [p for p in header.split("; ") if p]
    stats["cookie_max_count"] = max(stats["cookie_max_count"], len(parts))
    stats["cookie_header_max"] = max(stats["cookie_header_max"], len(header))
    for p in parts:
        stats["cookie_max_len"] = max(stats["cookie_max_len"], len(p))


def flood_cookies(response):
    n = next(counter)
    for i in range(200):
        response.headers.add("Set-Cookie", f"c{n}_{i}=v{i}; Path=/")
    response.headers.add("Set-Cookie", f"huge{n}=" + "h" * 8192)


def raw_frame(payload, opcode, fin):
    """One unmasked server-to-client WebSocket frame."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(n)
    elif n < 65536:
        head.append(126)
        head += n.to_bytes(2, "big")
    else:
        head.append(127)
        head += n.to_bytes(8, "big")
    return bytes(head) + payload


class Session:
    def __init__(self, sid):
        self.sid = sid
        self.queue = asyncio.Queue()
        self.connected = False

    def send(self, packet):
        self.queue.put_nowait(packet)


def connect_reply(session, send):
    """What the server sends for a CONNECT to `/` (a list of Engine.IO text packets or bytes)."""
    stats["connects"] += 1
    out = []
    if MODE == "no-connect":
        return out
    if MODE == "early-flood":
        out += ['42["early",%d]' % i for i in range(5000)]
    out.append('40{"sid":"ns-%d"}' % next(counter))
    if MODE == "kick-all":
        out.append("41")
        return out
    if MODE == "attachment-bomb":
        placeholders = ",".join(['{"_placeholder":true,"num":0}'] * 30000)
        out.append('451-["bomb",[%s]]' % placeholders)
        out.append(bytes(1000))
    elif MODE == "attachment-total":
        out.append('452-["bomb",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
        out.append(bytes(700_000))
        out.append(bytes(700_000))
    if MODE not in ("big-frame", "big-message"):
        out.append('42["after"]')
    return out


def handle_text(session, text, send):
    if text.startswith("3"):
        stats["pongs"] += 1
        stats["pong_max"] = max(stats["pong_max"], len(text) - 1)
    elif text.startswith("40"):
        for p in connect_reply(session, send):
            send(p)
    elif text.startswith("42"):
        stats["events"] += 1


async def polling(request):
    stats["requests"] += 1
    note_cookies(request)
    sid = request.query.get("sid")
    if sid is None:
        stats["handshakes"] += 1
        sid = "s%d" % next(counter)
        sessions[sid] = Session(sid)
        response = web.Response(text=open_packet(sid, []))
        if MODE == "cookie-flood":
            flood_cookies(response)
        return response
    session = sessions.get(sid)
    if MODE == "reject-after-handshake" or session is None:
        return web.Response(status=400, text='"Invalid session"' + " " * 100_000 + "END")
    if request.method == "POST":
        body = (await request.read()).decode()
        for record in body.split("\x1e"):
            handle_text(session, record, session.send)
        response = web.Response(text="ok")
        if MODE == "cookie-flood":
            flood_cookies(response)
        return response
    if MODE == "endless-body":
        response = web.StreamResponse()
        response.content_type = "text/plain"
        await response.prepare(request)
        chunk = b"4" + b"x" * 65535
        try:
            await response.write(chunk)
            while True:
                await response.write(b"y" * 65536)
                stats["body_bytes_sent"] += 65536
        except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
            pass
        return response
    try:
        first = await asyncio.wait_for(session.queue.get(), timeout=args.ping_interval / 1000)
    except asyncio.TimeoutError:
        first = "2"
    packets = [first]
    while not session.queue.empty():
        packets.append(session.queue.get_nowait())
    response = web.Response(text="\x1e".join(p if isinstance(p, str) else "b" for p in packets))
    if MODE == "cookie-flood":
        flood_cookies(response)
    return response


async def websocket(request):
    stats["requests"] += 1
    note_cookies(request)
    if request.query.get("sid") is not None:
        return web.Response(status=400, text='"no upgrades here"')
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    stats["handshakes"] += 1
    sid = "w%d" % next(counter)
    await ws.send_str(open_packet(sid, []))
    pending = []

    def send(p):
        pending.append(p)

    async def flush():
        while pending:
            p = pending.pop(0)
            if isinstance(p, bytes):
                await ws.send_bytes(p)
            else:
                await ws.send_str(p)

    async def pinger():
        while not ws.closed:
            await asyncio.sleep(args.ping_interval / 1000)
            if ws.closed:
                return
            if MODE == "huge-ping":
                await ws.send_str("2" + "p" * 500_000)
            else:
                await ws.send_str("2")

    ping_task = asyncio.create_task(pinger())
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            handle_text(None, msg.data, send)
            connected = msg.data.startswith("40")
            if connected and MODE in ("big-frame", "big-message"):
                await flush()
                big = '42["big","' + "x" * 2_000_000 + '"]'
                if MODE == "big-frame":
                    await ws.send_str(big)
                else:
                    data = big.encode()
                    size = len(data) // 32 + 1
                    pieces = [data[i:i + size] for i in range(0, len(data), size)]
                    for i, piece in enumerate(pieces):
                        request.transport.write(raw_frame(piece, 0x1 if i == 0 else 0x0, i == len(pieces) - 1))
                        await asyncio.sleep(0)
                send('42["after"]')
            await flush()
            if connected and MODE == "no-read":
                request.transport.pause_reading()
                await asyncio.sleep(3600)
    finally:
        ping_task.cancel()
        stats["ws_closed_by_client"] += 1
    return ws


async def get_stats(request):
    return web.json_response(stats)


async def main():
    app = web.Application()
    app.router.add_get("/stats", get_stats)

    async def route(request):
        if request.query.get("transport") == "websocket":
            return await websocket(request)
        return await polling(request)

    app.router.add_route("*", "/socket.io/", route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, reuse_address=True)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
