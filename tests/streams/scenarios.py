"""Shared engine scenarios: per-source event streams and how Kafka may interleave them."""

from __future__ import annotations

import random

from hypothesis import strategies as st

from streams.core.config import EngineConfig
from streams.core.engine import PartitionEngine
from streams.core.events import (
    SOURCE_OF_TYPE,
    Danmaku,
    Event,
    Join,
    Latency,
    Leave,
    Order,
    RoomEvent,
    Stall,
    event_type,
)

T0 = 1_764_000_000_000
CONFIG = EngineConfig(allowed_lateness_ms=5_000, max_clock_skew_ms=3_600_000)
PHASES = ("live", "ended", "promo_start", "promo_end")


SOURCE_EVENTS = {
    "joins": lambda room, ts, user: Join(room, ts, user) if ts % 3 else Leave(room, ts, user),
    "danmaku": lambda room, ts, user: Danmaku(room, ts, user, "1"),
    "orders": lambda room, ts, user: Order(room, ts, user, f"o{ts}", 10.0),
    "stalls": lambda room, ts, user: Stall(room, ts, user, 500.0),
    "latency": lambda room, ts, user: Latency(room, ts, user, float(ts % 900)),
    # A sparse source: a stream starting, ending (and starting again), its promotions.
    "rooms": lambda room, ts, user: RoomEvent(
        room, ts, PHASES[ts % 4], promo_id=f"p-{user}" if ts % 4 > 1 else None
    ),
}


@st.composite
def source_streams(draw: st.DrawFn) -> dict[str, list[Event]]:
    """Per-source event sequences, each up to 8 s out of order (some late)."""
    streams: dict[str, list[Event]] = {}
    for source, make in SOURCE_EVENTS.items():
        count = draw(st.integers(0, 25))
        streams[source] = [
            make(
                draw(st.sampled_from(["r1", "r2"])),
                T0 + i * 1_500 + draw(st.integers(-8_000, 8_000)),
                draw(st.sampled_from("abcde")),
            )
            for i in range(count)
        ]
    return streams


def interleave(streams: dict[str, list[Event]], seed: int) -> list[Event]:
    """One arrival order keeping each source's own order, as Kafka does."""
    rng = random.Random(seed)
    queues = {s: list(events) for s, events in streams.items() if events}
    merged: list[Event] = []
    while queues:
        source = rng.choice(sorted(queues))
        merged.append(queues[source].pop(0))
        if not queues[source]:
            del queues[source]
    return merged


def run_live(arrivals: list[Event], batch_sizes: list[int]) -> PartitionEngine:
    """Feed like the worker draining a pre-loaded topic: lag known per source."""
    engine = PartitionEngine(CONFIG)
    start, i = 0, 0
    while start < len(arrivals):
        batch = arrivals[start : start + batch_sizes[i % len(batch_sizes)]]
        start, i = start + len(batch), i + 1
        remaining = {SOURCE_OF_TYPE[event_type(e)] for e in arrivals[start:]}
        engine.ingest(batch, lagging=remaining | {SOURCE_OF_TYPE[event_type(e)] for e in batch})
    engine.flush()
    return engine


def state(engine: PartitionEngine) -> object:
    engine.catch_up()
    return (
        engine.late,
        {
            room_id: (
                sorted((user, room.viewers.joined_at(user)) for user in room.viewers),
                room.totals_metrics(),
                room.metrics(60),
                room.metrics(300),
                (room.live_at, room.ended_at, list(room.promotions)),
            )
            for room_id, room in sorted(engine.rooms.items())
        },
    )
