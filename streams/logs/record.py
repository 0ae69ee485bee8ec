"""`livewatch record`: consume the live topics into an event log `replay` accepts.

One event per line, in the order consumed; a message holding a JSON array of
events becomes one line per element. Messages that are not valid UTF-8 are
skipped and counted (they would be dead letters for the worker anyway). The
file is flushed after every batch and closed on Ctrl-C, so it stays valid.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass

import msgspec
from aiokafka import AIOKafkaConsumer

from streams.core.decode import DECODE_ERRORS
from streams.kafka.client import client_options
from streams.logs.files import create_log
from streams.settings import Settings


@dataclass
class RecordStats:
    lines: int = 0
    skipped: int = 0


def message_lines(value: bytes | None) -> list[bytes] | None:
    """The log lines of one message, or None when it cannot be recorded."""
    if not value:
        return None
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = value.strip()
    if stripped.startswith(b"["):
        try:
            elements = msgspec.json.decode(stripped)
        except DECODE_ERRORS:
            return [b" ".join(stripped.splitlines())]
        if isinstance(elements, list):
            return [msgspec.json.encode(e) for e in elements]
    return [b" ".join(stripped.splitlines())]  # a line must stay one line


async def record(
    path: str | os.PathLike[str],
    settings: Settings,
    *,
    duration_s: float | None = None,
    until_idle_s: float | None = None,
    from_beginning: bool = False,
) -> RecordStats:
    stats = RecordStats()
    consumer = AIOKafkaConsumer(
        *settings.source_topics.values(),
        **client_options(settings),
        group_id=f"livewatch-record-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    started = last = time.monotonic()
    try:
        with create_log(path) as handle:
            while True:
                now = time.monotonic()
                if duration_s is not None and now - started >= duration_s:
                    break
                if until_idle_s is not None and now - last >= until_idle_s:
                    break
                batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
                if not consumer.assignment():  # still joining: idle time starts later
                    last = time.monotonic()
                chunk: list[bytes] = []
                for messages in batches.values():
                    for message in messages:
                        lines = message_lines(message.value)
                        if lines is None:
                            stats.skipped += 1
                        else:
                            chunk += lines
                if chunk:
                    last = time.monotonic()
                    handle.write(b"\n".join(chunk) + b"\n")
                    handle.flush()
                    stats.lines += len(chunk)
    except asyncio.CancelledError:  # Ctrl-C: the with-blocks have closed the file
        pass
    finally:
        await consumer.stop()
    return stats
