"""Emits one event to every client of the cluster, whichever node it is connected to, through the
Redis manager (write-only: this process serves no clients).

    python broadcast.py batery 12 [--redis redis://127.0.0.1:6390/0] [--namespace /]
"""

import argparse
import asyncio
import json

import socketio


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("event")
    parser.add_argument("payload", help="JSON")
    parser.add_argument("--redis", default="redis://127.0.0.1:6390/0")
    parser.add_argument("--namespace", default="/")
    args = parser.parse_args()
    manager = socketio.AsyncRedisManager(args.redis, write_only=True)
    await manager.emit(args.event, json.loads(args.payload), namespace=args.namespace)
    # The publish is done once emit returns; give the connection a moment to close cleanly.
    await asyncio.sleep(0.1)


asyncio.run(main())
