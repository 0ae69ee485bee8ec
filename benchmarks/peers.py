"""Peer consumers draining the same pre-loaded topics as livewatch's worker.

Each peer starts from the earliest offset with a fresh consumer group (or none), on
topics filled before it starts, and returns events/s: from the moment its first
record is received to the moment `expected` events (not messages: a message holds
one JSON event or a JSON array of them) have been decoded.

- `bare_aiokafka`: AIOKafkaConsumer.getmany + livewatch's msgspec decoder.
- `bare_confluent`: confluent-kafka Consumer.consume + livewatch's msgspec decoder.
- `quix_stateless`: a Quix Streams 3.x Application counting events.
- `quix_windowed`: the same, plus a 1 s tumbling window mean per room, in event time.
- `faust_agent`: a plain faust-streaming agent, one event at a time, in a subprocess
  (benchmarks/faust_agent_app.py).

The Quix peers run in-process: `Application.stop()` from the counting step ends
`Application.run()` cleanly. benchmarks/throughput.py runs them beside livewatch's
worker (they need the `bench` extra: pip install -e '.[bench]').
"""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer, KafkaException  # type: ignore[import-untyped]
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import TimestampType
from quixstreams.models.serializers import SerializationContext
from quixstreams.models.serializers.json import JSONDeserializer

from streams.core.decode import RawMessage, decode_messages

FAUST_SCRIPT = Path(__file__).with_name("faust_agent_app.py")
T0 = 1_764_000_000_000


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class _Meter:
    """Events counted from the first record received to the `expected`-th event."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.counted = 0
        self.started: float | None = None
        self.finished: float | None = None
        self.at_finish = 0

    def received(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def add(self, events: int) -> bool:
        """Count `events`; True once `expected` are counted."""
        self.counted += events
        if self.counted >= self.expected and self.finished is None:
            self.finished = time.perf_counter()
            self.at_finish = self.counted
        return self.finished is not None

    def rate(self) -> float:
        if self.started is None or self.finished is None:
            raise RuntimeError(f"counted {self.counted} of {self.expected} events")
        return self.at_finish / max(self.finished - self.started, 1e-9)


# --- bare consumers with livewatch's decoder -------------------------------------------


async def bare_aiokafka(bootstrap: str, topics: list[str], expected: int) -> float:
    """AIOKafkaConsumer.getmany(max_records=5000), one decode_messages call per partition
    batch. No consumer group."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    meter = _Meter(expected)
    try:
        done = False
        while not done:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if batch:
                meter.received()
            for tp, records in batch.items():
                out = decode_messages(
                    [RawMessage(tp.topic, tp.partition, r.offset, r.key, r.value) for r in records]
                )
                done = meter.add(len(out.events))
        return meter.rate()
    finally:
        await consumer.stop()


def bare_confluent(bootstrap: str, topics: list[str], expected: int) -> float:
    """confluent-kafka Consumer.consume(num_messages=10000, timeout=1), one
    decode_messages call per partition within each consumed batch. Fresh group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": _unique("peers-confluent"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    meter = _Meter(expected)
    try:
        done = False
        while not done:
            records = consumer.consume(num_messages=10000, timeout=1)
            if not records:
                continue
            meter.received()
            partitions: dict[tuple[str, int], list[RawMessage]] = {}
            for record in records:
                if (error := record.error()) is not None:
                    raise KafkaException(error)
                topic, partition = record.topic() or "", record.partition() or 0
                raw = RawMessage(
                    topic, partition, record.offset() or 0, record.key(), record.value()
                )
                partitions.setdefault((topic, partition), []).append(raw)
            for batch in partitions.values():
                done = meter.add(len(decode_messages(batch).events))
        return meter.rate()
    finally:
        consumer.close()


# --- Quix Streams ------------------------------------------------------------------------


class _EventsDeserializer(JSONDeserializer):
    """JSON values, one row per event: an array message is split into its events
    (each then gets its own timestamp from the extractor), an object is one event."""

    @property
    def split_values(self) -> bool:
        return True

    def __call__(self, value: bytes, ctx: SerializationContext) -> list[Any]:
        decoded = super().__call__(value, ctx)
        return decoded if isinstance(decoded, list) else [decoded]


def _event_time(value: Any, headers: Any, timestamp: int, timestamp_type: TimestampType) -> int:
    """Event time: the event's own `ts` (epoch ms), not the Kafka timestamp."""
    return int(value["ts"])


def _measure(event: Any) -> float:
    """What the window averages: `value_ms` of latency events, else 1.0."""
    return float(event["value_ms"]) if event["type"] == "latency" else 1.0


def _quiet_late(*args: Any, **kwargs: Any) -> bool:
    return False  # late events are dropped by the window without a log line each


def _run_quix(bootstrap: str, topics: list[str], expected: int, *, windowed: bool) -> float:
    meter = _Meter(expected)
    with tempfile.TemporaryDirectory(prefix="peers-quix-") as state_dir:
        app = Application(
            broker_address=bootstrap,
            consumer_group=_unique("peers-quix"),
            auto_offset_reset="earliest",
            state_dir=state_dir,
            loglevel="WARNING",
        )

        def count(event: Any) -> None:
            meter.received()
            if meter.add(1):
                app.stop()

        extractor = _event_time if windowed else None
        frames = [
            app.dataframe(
                app.topic(
                    topic, value_deserializer=_EventsDeserializer(), timestamp_extractor=extractor
                )
            )
            for topic in topics
        ]
        if windowed:
            # One frame over all topics, so a room's window sees all its event types;
            # Quix then aligns the topics' partitions by timestamp.
            sdf = functools.reduce(StreamingDataFrame.concat, frames)
            sdf = sdf.apply(_measure).update(count)
            sdf = sdf.tumbling_window(1000, on_late=_quiet_late).mean().final()
        else:
            for frame in frames:
                frame.update(count)
        app.run()
    return meter.rate()


def quix_stateless(bootstrap: str, topics: list[str], expected: int) -> float:
    """A Quix Streams Application, one frame per topic, counting events (JSON values,
    array messages split into one row per event by the deserializer). In-process."""
    return _run_quix(bootstrap, topics, expected, windowed=False)


def quix_windowed(bootstrap: str, topics: list[str], expected: int) -> float:
    """`quix_stateless` over one concatenated frame, plus a 1 s tumbling window mean
    per room (the message key) of `value_ms` for latency events, else 1.0:
    `.tumbling_window(1000).mean().final()`. Event time is the event's `ts` field, via
    the topic's timestamp extractor (applied per event of an array). Counts events
    entering the window step. State in RocksDB in a temp dir, with Quix's default
    changelog topics. In-process."""
    return _run_quix(bootstrap, topics, expected, windowed=True)


# --- faust-streaming ----------------------------------------------------------------------


def faust_agent(
    bootstrap: str, topics: list[str], expected: int, partitions: int, timeout: float = 900.0
) -> float:
    """A plain faust-streaming agent (`async for value in stream`, raw values, msgspec
    decoding, a per-room count) in a subprocess: benchmarks/faust_agent_app.py, which
    prints `RATE <events/s>` once `expected` events are counted."""
    with tempfile.TemporaryDirectory(prefix="peers-faust-") as workdir:
        log_path = Path(workdir) / "faust.log"
        command = [
            sys.executable,
            str(FAUST_SCRIPT),
            "--bootstrap",
            bootstrap,
            "--expected",
            str(expected),
            "--partitions",
            str(partitions),
            "--app-id",
            _unique("peers-faust"),
            "--datadir",
            str(Path(workdir) / "data"),
            *topics,
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True
            )
            try:
                stdout, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise
        # The worker's terminal spinner may write escape codes on the same line.
        if found := re.search(r"RATE ([0-9.eE+-]+)", stdout):
            return float(found.group(1))
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the faust agent exited {process.returncode} without a rate:\n{tail}")


# --- the peers, by the names the table prints ------------------------------------------


def peers(partitions: int) -> dict[str, Callable[[str, list[str], int], float]]:
    return {
        "bare aiokafka + msgspec": lambda b, t, n: asyncio.run(bare_aiokafka(b, t, n)),
        "bare confluent-kafka + msgspec": bare_confluent,
        "quix streams, stateless": quix_stateless,
        "quix streams, 1 s window mean": quix_windowed,
        "faust agent, per event": functools.partial(faust_agent, partitions=partitions),
    }
