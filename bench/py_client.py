"""python-socketio AsyncClient doing what sio-bench-client does: ready, tick -> tock, exit on done."""
import asyncio
import sys

import socketio


async def main(url, transport):
    sio = socketio.AsyncClient()
    done = asyncio.Event()

    @sio.on("tick")
    async def tick(data):
        await sio.emit("tock", data)

    @sio.on("done")
    async def on_done(*_):
        done.set()

    transports = ["polling", "websocket"] if transport == "auto" else [transport]
    await sio.connect(url, transports=transports)
    await sio.emit("ready")
    await done.wait()
    await sio.disconnect()


asyncio.run(main(sys.argv[1], sys.argv[2]))
