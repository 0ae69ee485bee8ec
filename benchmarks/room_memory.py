"""State size of one room with 100k concurrent viewers, and of many small rooms (tracemalloc).

Big room: each viewer joins, chats once, sends a latency sample and some stall;
then event time runs on for another minute so every window is populated.
Small rooms: 5,000 rooms with one `join` each (what a flood of junk room ids
leaves), and 5,000 rooms of 5 viewers who send a latency sample a minute for ten
minutes of event time, measured as they are (quiet rooms ticked lazily) and with
every room ticked every second (`watch_from_online=0`), in the same run.
Run: .venv/bin/python -m benchmarks.room_memory [viewers]
"""

from __future__ import annotations

import sys
import time
import tracemalloc

from detectors.config import DetectorConfig, DetectorSettings
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


def small_rooms(rooms: int = 5_000) -> None:
    one_join = [Join(f"junk-{i}", T0 + i, "u", "feed") for i in range(rooms)]
    small: list[Event] = [Join(f"small-{i}", T0 + i, f"v{v}", "feed") for v in range(5)
                          for i in range(rooms)]  # fmt: skip
    for minute in range(10):
        small += [
            Latency(f"small-{i}", T0 + minute * 60_000 + i * 5 + v, f"v{v}", 300.0)
            for i in range(rooms)
            for v in range(5)
        ]
    small.sort(key=lambda e: e.ts)
    print(f"\n{rooms:,} rooms each:")
    for label, events, idle_ms in (
        ("one join, 60 s later", one_join, 60_000),
        ("5 viewers, a latency sample a minute, 10 min", small, 1_000),
    ):
        for ticked in (False, True):
            watch_from = 0 if ticked else DetectorConfig().watch_from_online
            config = EngineConfig(
                max_rooms=rooms,
                detectors=DetectorSettings(DetectorConfig(watch_from_online=watch_from)),
            )
            tracemalloc.start()
            started = time.perf_counter()
            engine = PartitionEngine(config)
            for start in range(0, len(events), 10_000):
                engine.ingest(events[start : start + 10_000])
            engine.advance_idle(idle_ms)
            engine.catch_up()
            elapsed = time.perf_counter() - started
            current, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            how = "every room ticked every second" if ticked else "quiet rooms ticked lazily"
            print(
                f"  {label}: {how}: {current / len(engine.rooms):,.0f} bytes per room, "
                f"{elapsed:.1f} s ({len(events) / elapsed:,.0f} events/s)"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    small_rooms()
