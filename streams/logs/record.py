"""`livewatch record`: consume the live topics into an event log `replay` accepts.

One event per line, in the order consumed; a message holding a JSON array of
events becomes one line per element. Messages that are not valid UTF-8 are
skipped and counted (they would be dead letters for the worker anyway). The
file is flushed after every batch and closed on Ctrl-C, so it stays valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.core.decode import DECODE_ERRORS
from streams.kafka.client import client_options, start_clients
from streams.kafka.topics import ensure_topics
from streams.logs.files import Skips, create_log
from streams.settings import Settings

FETCH_ANSWERED_S = 5.0
"""A consumer whose fetches no partition answered for this long has lost its broker
(a caught-up fetch is answered every half second): that is no quiet for
`until_idle_s`."""


@dataclass
class RecordStats(Skips):
    lines: int = 0

    def skip(self, message: ConsumerRecord[bytes, bytes]) -> None:
        """A message that cannot be a line: `not_json` (empty) or `not_utf8`, as the
        worker would say."""
        reason = "not_json" if not message.value else "not_utf8"
        self.note(f"{message.topic}/{message.partition}@{message.offset}", reason)


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
    partitions = await ensure_topics(settings)  # as replay: the layout the worker creates
    # Partitions assigned, not a consumer group: no session to lose while the broker is
    # away, after which a rejoin would reset the positions to `auto_offset_reset`
    # (events recorded twice, or skipped). The positions stay here the whole run.
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await start_clients(consumer)
    consumer.assign(
        [TopicPartition(t, p) for t in settings.source_topics.values() for p in range(partitions)]
    )
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
                if not _fetching(consumer):  # starting, or the broker is away: not quiet
                    last = time.monotonic()
                chunk: list[bytes] = []
                for messages in batches.values():
                    for message in messages:
                        lines = message_lines(message.value)
                        if lines is None:
                            stats.skip(message)
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
        # aiokafka's stop() raises the CancelledError of a fetch it cancels while that
        # fetch waits to retry an unreachable broker (aio-libs/aiokafka#647); the file
        # is complete and closed by then.
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
    return stats


def _fetching(consumer: AIOKafkaConsumer) -> bool:
    """The broker answered a fetch of some partition lately: silence is quiet."""
    answered = [consumer.last_poll_timestamp(tp) or 0 for tp in consumer.assignment()]
    return max(answered, default=0) >= time.time() * 1000 - FETCH_ANSWERED_S * 1000
