"""State size of one room with 100k concurrent viewers (tracemalloc).

Each viewer joins, chats once, sends a latency sample and some stall; then
event time runs on for another minute so every window is populated.
Run: .venv/bin/python -m benchmarks.room_memory [viewers]
"""

from __future__ import annotations

import sys
import time
import tracemalloc

from streams.core.config import EngineConfig
from streams.core.engine import PartitionEngine
from streams.core.events import Danmaku, Event, Join, Latency, Stall
from streams.worker.checkpoint import take_checkpoint

T0 = 1_764_000_000_000


def main(viewers: int) -> None:
    events: list[Event] = []
    for i in range(viewers):
        ts = T0 + i * 120_000 // viewers  # all join within 2 minutes
        user = f"user-{i:08d}"
        events.append(Join("big-room", ts, user, "feed"))
        events.append(Danmaku("big-room", ts + 1, user, "扣1"))
        events.append(Latency("big-room", ts + 2, user, 300.0 + i % 500, region=f"r{i % 8}"))
        if i % 10 == 0:
            events.append(Stall("big-room", ts + 3, user, 800.0))
    # Events are built before measuring: only the engine's own state is counted.
    tracemalloc.start()
    engine = PartitionEngine(EngineConfig())
    for start in range(0, len(events), 10_000):
        engine.ingest(events[start : start + 10_000])
    engine.advance_idle(60_000)
    current, peak = tracemalloc.get_traced_memory()
    room = engine.rooms["big-room"]
    print(f"viewers online: {room.online}")
    print(f"room state: {current / 2**20:.1f} MiB ({current / viewers:.0f} bytes per viewer)")
    print(f"peak while ingesting: {peak / 2**20:.1f} MiB")
    tracemalloc.stop()
    started = time.perf_counter()
    blob = take_checkpoint(engine, 0, {})
    print(f"checkpoint: {len(blob) / 2**20:.1f} MiB in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
