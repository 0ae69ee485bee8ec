"""Produce a recorded event log into the live topics, keyed by room, paced by event time."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer

from streams.core.decode import decode_log_lines
from streams.core.events import EVENT_TYPES, SOURCE_OF_TYPE, SPARSE_SOURCES
from streams.kafka.client import producer_options
from streams.kafka.topics import ensure_topics
from streams.logs.files import Routing, Skips, open_log, read_lines, route
from streams.settings import Settings


@dataclass
class ReplayStats(Skips):
    produced: int = 0

    def skip(self, path: str, number: int, line: bytes) -> None:
        """A line that cannot be produced: not shaped like an event of a known type."""
        rejected = decode_log_lines([line], [number], path).rejected
        if rejected:
            reason, detail = rejected[0].reason, rejected[0].detail
        elif line.strip():
            reason, detail = "not_an_event", "a JSON array: replay sends one event per line"
        else:
            reason, detail = "blank", "an empty line"
        self.note(f"{path}:{number}", reason, detail)


async def replay(
    path: str | os.PathLike[str],
    settings: Settings,
    *,
    speed: float | None = None,
    rebase_to_ms: int | None = None,
    on_progress: Callable[[ReplayStats], None] | None = None,
) -> ReplayStats:
    """Produce every routable line; `speed` None means as fast as possible.

    `rebase_to_ms` re-stamps event times so the log's first event happens at that
    moment (e.g. now, so a recorded night drives a live dashboard); the gaps stay.
    """
    stats = ReplayStats()
    open_log(path).close()  # an unreadable file fails before any connection is made
    await ensure_topics(settings)  # a fresh cluster: the same layout the worker creates
    producer = AIOKafkaProducer(**producer_options(settings), linger_ms=20)
    await producer.start()
    try:
        first_ts: int | None = None
        started = time.monotonic()
        pending: list[asyncio.Future[Any]] = []
        for number, line in read_lines(path):
            routing = route(line)
            if routing is None or routing.type not in EVENT_TYPES:
                stats.skip(str(path), number, line)
                continue
            first_ts = routing.ts if first_ts is None else first_ts
            if rebase_to_ms is not None:
                line = _restamp(line, routing.ts + rebase_to_ms - first_ts)
            if speed is not None:
                delay = started + (routing.ts - first_ts) / 1000 / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if on_progress is not None:
                        on_progress(stats)
            await _send(producer, settings.topic_for_type(routing.type), routing, line, pending)
            stats.produced += 1
            if on_progress is not None and stats.produced % 5_000 == 0:
                on_progress(stats)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    if on_progress is not None:
        on_progress(stats)
    return stats


async def _send(
    producer: AIOKafkaProducer,
    topic: str,
    routing: Routing,
    line: bytes,
    pending: list[asyncio.Future[Any]],
) -> None:
    """Send one line; its acknowledgement joins `pending`, awaited 10,000 at a time.

    A sparse source's event (a room's `promo_end`, say) is awaited at once: in Kafka
    before any line after it is sent. The worker's watermark does not wait for a sparse
    topic that looks caught up (streams.worker.app `source_holds`), and the producer
    batches per partition: the lone room event would otherwise sit out its linger while
    full batches of later seconds went ahead, and at full speed the worker could read
    those seconds, past the allowed lateness, before it (the event is then late:
    dropped and counted)."""
    sent = await producer.send(topic, line, key=routing.room_id.encode())
    if SOURCE_OF_TYPE[routing.type] in SPARSE_SOURCES:
        await sent
        return
    pending.append(sent)
    if len(pending) >= 10_000:
        await asyncio.gather(*pending)
        pending.clear()


def _restamp(line: bytes, ts: int) -> bytes:
    event = msgspec.json.decode(line)
    event["ts"] = ts
    return msgspec.json.encode(event)
