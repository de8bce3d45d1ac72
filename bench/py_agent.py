"""The python-socketio AsyncClient doing the agent's job in the benchmark:
on `batery` with payload.level < 20, emit `alert` [seq].

    python bench/py_agent.py URL websocket|polling [ack]

With `ack`, each alert is emitted with an acknowledgement and awaited (up to 5 s), like
sioagent's `ack: 5s`.
"""

import asyncio
import sys

import socketio


async def main():
    url, transport = sys.argv[1], sys.argv[2]
    ack = len(sys.argv) > 3 and sys.argv[3] == "ack"
    sio = socketio.AsyncClient(reconnection=True)

    @sio.on("batery")
    async def batery(payload):
        if isinstance(payload, dict) and isinstance(payload.get("level"), (int, float)) and payload["level"] < 20:
            if ack:
                await sio.call("alert", str(payload["seq"]), timeout=5)
            else:
                await sio.emit("alert", str(payload["seq"]))

    transports = ["websocket"] if transport == "websocket" else ["polling"]
    await sio.connect(url, transports=transports)
    await sio.wait()


if __name__ == "__main__":
    asyncio.run(main())
