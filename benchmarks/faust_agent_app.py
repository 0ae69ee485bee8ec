"""A plain faust-streaming agent draining pre-loaded topics, for benchmarks/peers.py.

One event at a time (`async for value in stream`), raw values decoded with msgspec
(one JSON event or a JSON array of them), a per-room count in a dict. Once
`--expected` events are counted it prints `RATE <events/s>` (first record received
to the last event counted) on stdout and exits. Fresh app id, so a fresh consumer
group reading from the earliest offset; web server off, in-memory tables.

Run: .venv/bin/python benchmarks/faust_agent_app.py --bootstrap HOST:PORT
     --expected N --partitions P --app-id ID TOPIC...
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections.abc import AsyncIterable
from typing import Any

import faust
import msgspec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--datadir", default=None)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()

    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=args.datadir,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=args.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    source = app.topic(*args.topics)
    expected: int = args.expected
    per_room: dict[str, int] = {}
    decode = msgspec.json.decode

    async def drain(stream: AsyncIterable[bytes]) -> None:
        counted, started = 0, 0.0
        async for value in stream:
            if not started:
                started = time.perf_counter()
            decoded: Any = decode(value)
            for event in decoded if isinstance(decoded, list) else (decoded,):
                room = event["room_id"]
                per_room[room] = per_room.get(room, 0) + 1
                counted += 1
            if counted >= expected:
                rate = counted / max(time.perf_counter() - started, 1e-9)
                print(f"RATE {rate}", flush=True)
                os.kill(os.getpid(), signal.SIGTERM)  # the worker shuts down cleanly
                return

    app.agent(source, name="drain")(drain)
    faust.Worker(
        app, loglevel="warning", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
