"""Interop: messages librdkafka produces (Debian's `kcat`) with every compression codec.

For each codec (gzip, snappy, lz4, zstd) kcat writes valid events to the six
source topics of the real broker: keyed by room with headers, keyed without
headers (the latency topic), and some without a key or with an empty one. The
test first checks what kcat really wrote (the broker's log segments hold every
batch compressed with its codec; keys, headers and partitions as intended), then
starts a real worker on the topics: every keyed event is counted and reaches its
room's metrics, and every message without its room as key is a `key_mismatch`
dead letter (docs/events.md: the key is the room and is required).

kcat uses librdkafka's `murmur2_random` partitioner here: librdkafka's default
(`consistent_random`, CRC32) places a room in another partition than the Java and
aiokafka clients do (murmur2), which would split the room between two workers'
states and break what backtest assumes (streams.kafka.partitioner).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import struct
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from streams.core.events import EVENT_TYPES, SOURCE_OF_TYPE
from streams.core.room import CHANNELS
from streams.dev.broker import LocalKafka
from streams.dev.demo import scrape
from streams.kafka.partitioner import partition_for
from streams.kafka.topics import ensure_topics
from streams.settings import Settings, load_settings
from tests.conftest import RunningWorker

pytestmark = pytest.mark.kafka

# Kafka's codec ids: the low three bits of a v2 record batch's attributes.
CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
PHASE_MS = 15_000
"""Each codec's events have their own range of event time, in this order."""
USERS_PER_ROOM = 4
HEADERS = (("producer", "kcat"), ("trace-id", "4bf92f3577b34da6"))
HEADERLESS_SOURCES = {"latency"}
"""Sources whose messages kcat sends without headers (the others carry HEADERS and codec)."""
KEY_DELIMITER = "\t"  # JSON never holds a raw tab: it escapes the one in the text below


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        reason = "kcat (librdkafka's command-line client) is not installed: `make system-deps`"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run this test")
        pytest.skip(reason)
    version = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=30).stdout
    features = re.search(r"builtin\.features=(\S+)", version)
    missing = set(CODECS) - set(features.group(1).split(",") if features else ())
    assert not missing, f"this kcat's librdkafka lacks codecs {sorted(missing)}: {version}"
    return path


@dataclass(frozen=True)
class Message:
    """One line for kcat: a value (one event or an array), its key (None: no key)."""

    source: str
    codec: str
    key: str | None
    events: tuple[dict[str, Any], ...]
    batched: bool = False

    @property
    def value(self) -> str:
        body = list(self.events) if self.batched else self.events[0]
        return json.dumps(body, ensure_ascii=False)

    @property
    def line(self) -> str:
        return self.value if self.key is None else f"{self.key}{KEY_DELIMITER}{self.value}"

    @property
    def ts(self) -> int:
        return int(self.events[0]["ts"])


def pick_rooms(partitions: int, per_partition: int = 2) -> list[str]:
    """Rooms covering every partition: each partition's batch of each kcat run then
    holds several keyed messages (librdkafka sends a batch uncompressed when
    compressing does not make it smaller, as with a lone short message)."""
    rooms: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for i in range(1000):
        room = f"room-{i}"
        found = rooms[partition_for(room, partitions)]
        if len(found) < per_partition:
            found.append(room)
        if all(len(r) == per_partition for r in rooms.values()):
            return sorted(r for found in rooms.values() for r in found)
    raise AssertionError("no rooms for every partition")


def phase_messages(codec: str, base: int, rooms: list[str]) -> list[Message]:
    """One codec's messages: per room a room event (`live`: a repeat after the first
    codec's, which changes nothing), four joins, three danmaku, two orders, two
    stalls, two latency samples and one leave; per source one message without a key
    (and one join with an empty key), for a room, as a producer that forgot the key."""
    messages: list[Message] = []

    def add(source: str, key: str | None, *events: dict[str, Any]) -> None:
        messages.append(Message(source, codec, key, events, batched=len(events) > 1))

    for r, room in enumerate(rooms):
        users = [f"{codec}-{room}-u{i}" for i in range(USERS_PER_ROOM)]
        common = [{"room_id": room, "user_id": user} for user in users]
        channels = ("feed", "follow", "search", "ad")
        joins: list[dict[str, Any]] = [
            {"type": "join", "ts": base + r * 200 + i * 40, **common[i], "source": channels[i]}
            for i in range(USERS_PER_ROOM)
        ]
        chat: list[dict[str, Any]] = [
            {"type": "danmaku", "ts": base + 2_000 + r * 200 + i * 50, **common[i], "text": text}
            for i, text in enumerate(["扣1", "好看\t666", "上链接|多少钱"])
        ]
        orders = [
            {
                "type": "order",
                "ts": base + 4_000 + r * 200 + i * 50,
                **common[i + 1],
                "order_id": f"{codec}-{room}-o{i}",
                "amount": amount,
            }
            for i, amount in enumerate([19.5, 100.25])
        ]
        stalls = [
            {"type": "stall", "ts": base + 6_000 + r * 200 + i * 50, **common[i], "duration_ms": d}
            for i, d in enumerate([250, 750])
        ]
        latency = [
            {
                "type": "latency",
                "ts": base + 8_000 + r * 200 + i * 50,
                **common[i + 2],
                "value_ms": value,
                "region": "cn-east",
            }
            for i, value in enumerate([120.0, 480.0])
        ]
        leave = {"type": "leave", "ts": base + 10_000 + r * 200, **common[0]}
        add("rooms", room, {"type": "room", "ts": base + r * 200, "room_id": room, "phase": "live"})
        # Some rooms batch (a JSON array in one message), the others send one by one.
        if r % 2 == 0:
            add("joins", room, *joins[:2])
            add("joins", room, *joins[2:])
            add("danmaku", room, *chat)
        else:
            for event in [*joins, *chat]:
                add(SOURCE_OF_TYPE[event["type"]], room, event)
        for source, events in (("orders", orders), ("stalls", stalls), ("latency", latency)):
            for event in events:
                add(source, room, event)
        add("joins", room, leave)

    ghost = {"room_id": rooms[0], "user_id": f"{codec}-ghost"}
    keyless = {
        "joins": {"type": "join", "ts": base + 1_900, **ghost, "source": "ad"},
        "danmaku": {"type": "danmaku", "ts": base + 3_900, **ghost, "text": "no key"},
        "orders": {
            "type": "order",
            "ts": base + 5_900,
            **ghost,
            "order_id": f"{codec}-ghost",
            "amount": 1000,
        },
        "stalls": {"type": "stall", "ts": base + 7_900, **ghost, "duration_ms": 9_000},
        "latency": {"type": "latency", "ts": base + 9_900, **ghost, "value_ms": 5_000},
        "rooms": {"type": "room", "ts": base + 11_900, "room_id": rooms[0], "phase": "ended"},
    }
    for source, event in keyless.items():
        add(source, None, event)
    add("joins", "", {"type": "join", "ts": base + 1_950, **ghost, "user_id": f"{codec}-empty"})
    return sorted(messages, key=lambda m: m.ts)


async def run_kcat(kcat: str, settings: Settings, topic: str, messages: list[Message]) -> None:
    codec = messages[0].codec
    command = [
        kcat,
        "-P",
        "-b",
        settings.bootstrap_servers,
        "-t",
        topic,
        "-z",
        codec,
        "-K",
        r"\t",
        "-m",
        "15",
        # Java's (and aiokafka's) placement of keys; see the module's docstring.
        "-X",
        "topic.partitioner=murmur2_random",
        # All of a run's messages for a partition in one batch, compressed.
        "-X",
        "linger.ms=200",
        "-X",
        "message.timeout.ms=30000",
    ]
    if messages[0].source not in HEADERLESS_SOURCES:
        for name, value in (*HEADERS, ("codec", codec)):
            command += ["-H", f"{name}={value}"]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    data = "".join(f"{m.line}\n" for m in messages).encode()
    try:
        _, err = await asyncio.wait_for(process.communicate(data), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, f"kcat -z {codec} -t {topic} failed: {err.decode()}"


def batch_codecs(partition_dir: Path) -> dict[int, int]:
    """Offset -> the codec of its record batch, from the broker's log segments.

    A v2 batch header: baseOffset int64, batchLength int32, partitionLeaderEpoch
    int32, magic int8, crc int32, attributes int16 (the codec in its low three
    bits), lastOffsetDelta int32, ... 61 bytes in all, then the records.
    """
    codecs: dict[int, int] = {}
    for segment in sorted(partition_dir.glob("*.log")):
        data, position = segment.read_bytes(), 0
        while position + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, position)
            assert data[position + 16] == 2, f"{segment}: not a v2 record batch"
            attributes, last_delta = struct.unpack_from(">hi", data, position + 21)
            for offset in range(base, base + last_delta + 1):
                codecs[offset] = attributes & 0x07
            position += 12 + length
    return codecs


async def read_records(settings: Settings, topics: list[str], count: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + 30
        while len(records) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += batch
    finally:
        await consumer.stop()
    return records


def expected_metrics(events: list[dict[str, Any]]) -> dict[str, dict[tuple[str, ...], float]]:
    """What the worker must export once it applied `events`: the per-room series
    (as scrape() keys them, by their labels' values) and the events counter."""
    online: dict[str, set[str]] = {}
    peak: Counter[str] = Counter()
    want: dict[str, dict[tuple[str, ...], float]] = {}

    def add(name: str, labels: tuple[str, ...], value: float = 1) -> None:
        series = want.setdefault(name, {})
        series[labels] = series.get(labels, 0) + value

    for event in sorted(events, key=lambda e: e["ts"]):
        room, kind = event["room_id"], event["type"]
        add("livewatch_events_total", (kind,))
        if kind == "join":
            online.setdefault(room, set()).add(event["user_id"])
            peak[room] = max(peak[room], len(online[room]))
            add("livewatch_room_entries_total", (room,))
            add("livewatch_room_entries_by_source_total", (room, event["source"]))
        elif kind == "leave":
            online[room].discard(event["user_id"])
            add("livewatch_room_exits_total", (room,))
        elif kind == "danmaku":
            add("livewatch_room_danmaku_total", (room,))
        elif kind == "order":
            add("livewatch_room_orders_total", (room,))
            add("livewatch_room_gmv_yuan", (room, "live"), event["amount"])
        elif kind == "stall":
            add("livewatch_room_stalls_total", (room,))
            add("livewatch_room_stall_seconds_total", (room,), event["duration_ms"] / 1000)
        elif kind == "latency":
            add("livewatch_room_latency_samples_total", (room,))
    for room in online:  # every channel has its series, at zero until a join comes by it
        for channel in CHANNELS:
            want["livewatch_room_entries_by_source_total"].setdefault((room, channel), 0)
    want["livewatch_room_online_viewers"] = {(r,): len(users) for r, users in online.items()}
    want["livewatch_room_peak_online_viewers"] = {(r,): n for r, n in peak.items()}
    want["livewatch_online_viewers"] = {(): sum(len(u) for u in online.values())}
    want["livewatch_rooms"] = {(): len(online)}
    return want


def observed_metrics(url: str, names: list[str]) -> dict[str, dict[tuple[str, ...], float]]:
    """The series of `names` on the worker's /metrics, keyed by their labels' values
    (GMV since the room went live only, not over the sliding windows)."""
    samples = scrape(url)
    return {
        name: {
            tuple(value for _, value in labels): number
            for labels, number in samples.get(name, {}).items()
            if name != "livewatch_room_gmv_yuan" or ("window", "live") in labels
        }
        for name in names
    }


async def settled(
    worker: RunningWorker, want: dict[str, dict[tuple[str, ...], float]], within: float = 90
) -> dict[str, dict[tuple[str, ...], float]]:
    """The worker's series once they equal `want`, or as they are after `within` s."""
    deadline = time.monotonic() + within
    seen: dict[str, dict[tuple[str, ...], float]] = {}
    while True:
        code = worker.process.poll()
        # Without a codec's library aiokafka's fetcher raises UnsupportedCodecError.
        assert code is None, f"the worker exited with code {code} (its log follows)"
        with contextlib.suppress(OSError):  # it may just have died
            seen = observed_metrics(worker.metrics_url, list(want))
        if seen == want or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.5)


async def test_kcat_messages_in_every_codec_are_counted_and_keyless_ones_dead_lettered(
    kcat: str,
    kafka: LocalKafka,
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
) -> None:
    settings = load_settings(environ=isolated_env)
    assert await ensure_topics(settings) == settings.partitions
    rooms = pick_rooms(settings.partitions)
    start = (int(time.time()) - 90) * 1000
    messages = [
        m
        for phase, codec in enumerate(CODECS)
        for m in phase_messages(codec, start + phase * PHASE_MS, rooms)
    ]

    # Each topic gets the codecs' runs in turn (event time grows along each
    # topic-partition); the six topics are written at the same time.
    async def produce(source: str) -> None:
        for codec in CODECS:
            ours = [m for m in messages if m.source == source and m.codec == codec]
            await run_kcat(kcat, settings, settings.source_topics[source], ours)

    began = time.monotonic()
    await asyncio.gather(*(produce(source) for source in settings.source_topics))
    produced_in = time.monotonic() - began

    # What kcat wrote: every message, compressed with its run's codec, keyed (or not)
    # and with headers as asked, keyed ones where Java's partitioner puts them.
    topics = list(settings.source_topics.values())
    records = await read_records(settings, topics, len(messages))
    assert len(records) == len(messages), f"kcat wrote {len(records)} of {len(messages)}"
    by_value = {(settings.source_topics[m.source], m.value): m for m in messages}
    assert len(by_value) == len(messages)
    codec_at = {
        (topic, p): batch_codecs(kafka.workdir / "data" / f"{topic}-{p}")
        for topic in topics
        for p in range(settings.partitions)
    }
    placed: dict[tuple[str, int, int], Message] = {}
    for record in records:
        message = by_value[(record.topic, record.value.decode())]
        placed[(record.topic, record.partition, record.offset)] = message
        where = f"{record.topic}/{record.partition}@{record.offset}"
        assert codec_at[(record.topic, record.partition)][record.offset] == CODECS[message.codec], (
            f"{where} is not in a {message.codec} batch"
        )
        assert record.key == (message.key.encode() if message.key is not None else None), where
        if message.key:
            assert record.partition == partition_for(message.key, settings.partitions), where
        headers = (
            [] if message.source in HEADERLESS_SOURCES else [*HEADERS, ("codec", message.codec)]
        )
        assert list(record.headers) == [(n, v.encode()) for n, v in headers], where
    written = {(settings.source_topics[m.source], m.value) for m in placed.values()}
    assert written == set(by_value)  # each message once

    # A real worker reads it all: counted and in the rooms' metrics.
    worker = worker_factory(isolated_env)
    valid = [e for m in messages if m.key in rooms for e in m.events]
    want = expected_metrics(valid)
    assert set(want["livewatch_events_total"]) == {(t,) for t in EVENT_TYPES}
    assert await settled(worker, want) == want

    # Every message without its room as key: rejected as key_mismatch, dead-lettered.
    rejected = {where: m for where, m in placed.items() if m.key not in rooms}
    assert {m.key for m in rejected.values()} == {None, ""}
    invalid = {
        labels[0][1]: number
        for labels, number in scrape(worker.metrics_url)["livewatch_events_invalid_total"].items()
        if number
    }
    assert invalid == {"key_mismatch": len(rejected)}
    assert sum(scrape(worker.metrics_url)["livewatch_events_late_total"].values()) == 0
    deadletter = settings.topic(settings.topic_deadletter)
    letters = [
        json.loads(r.value) for r in await read_records(settings, [deadletter], len(rejected))
    ]
    assert len(letters) == len(rejected)
    for letter in letters:
        message = rejected.pop((letter["topic"], letter["partition"], letter["offset"]))
        assert letter["reason"] == "key_mismatch"
        key = message.key.encode() if message.key is not None else None
        assert letter["detail"].startswith(f"message key {key!r} is not the room_id")
        assert letter["key"] == message.key
        assert letter["index"] is None and letter["payload"] == message.value
    assert not rejected
    print(f"kcat produced {len(messages)} messages in {produced_in:.1f} s")
