"""A python-socketio server that sends fixed EVENT texts as they are written below (unicode
escapes, big numbers, nesting, duplicate keys, and three invalid payloads), to every client once
it connects. bench/listen-compare.sh runs two sioagent builds' `listen` against it and compares
their output byte for byte.

    .venv/bin/python bench/listen_corpus_server.py PORT
"""
import asyncio, json, sys
import socketio
from aiohttp import web

CORPUS = [
    r'["batery",{"level":15,"seq":3}]',
    r'["e",{"s":"\u00e9\ud83d\ude00\n\"x\"\/\b\f\r\t\\","k":"\u0000","ctl":"\u001b[31m"}]',
    r'["e",{"big":123456789012345678901234567890,"small":-1.5e-300,"f":0.1,"e":1E+2,"neg":-0,"i":9007199254740993,"x":1.0}]',
    r'["e",{"a":{"b":{"c":[1,[2,[3,{"d":null}]]]}},"t":true,"f":false}]',
    r'["e",{"k":1,"k":2,"x":3,"k":4}]',
    r'["e",{"\u006b":1,"k":2},{"k":3}]',
    r'["e",{"é":1,"e\u0301":2}]',
    '["e",{"caf\u00e9":"\U0001F600","\u5927":["\U0010FFFF"]}]',
    r'[5,"x",[],{}]', r'[-2.5]', '["tab",\t{\r\n"a" :\n1 }\n]',
    r'["u\u2028\u2029",{"\ud834\udd1e":"\u200b\u202e"}]',
    r'["bad",1e999]', r'["bad","\ud800"]', r'["bad",[1,]]',
    r'["last"]',
]

class Raw:
    @staticmethod
    def dumps(data, *a, **k):
        if isinstance(data, list) and data and data[0] == "__raw__":
            return CORPUS[data[1]]
        return json.dumps(data, *a, **k)
    loads = staticmethod(json.loads)

sio = socketio.AsyncServer(async_mode="aiohttp", json=Raw)
app = web.Application()
sio.attach(app)

@sio.event
async def connect(sid, environ):
    async def go():
        await asyncio.sleep(0.5)
        for i in range(len(CORPUS)):
            await sio.emit("__raw__", i, to=sid)
    asyncio.ensure_future(go())

web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
