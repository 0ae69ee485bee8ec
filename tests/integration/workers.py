"""What the worker tests on the broker share: the demo night in halves, waiting for a
condition, a worker's events counter, a topic's records."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.config import EngineConfig
from streams.dev.demo import SAMPLE, scrape
from streams.kafka.client import client_options
from streams.logs.files import read_lines
from streams.settings import Settings
from streams.worker.checkpoint import join_checkpoint, restore_checkpoint
from tests.exposition import Samples
from tests.integration.offline import fetch, offline_exposition, room_state_samples


def split_sample(directory: Path) -> tuple[Path, Path, Path]:
    """The demo night's first half, second half and whole, as logs in `directory`."""
    lines = [line for _, line in read_lines(SAMPLE)]
    half = len(lines) // 2
    paths = (directory / "first.jsonl", directory / "second.jsonl", directory / "all.jsonl")
    for path, part in zip(paths, (lines[:half], lines[half:], lines), strict=True):
        path.write_bytes(b"\n".join(part) + b"\n")
    return paths


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 90, poll: float = 0.2
) -> float:
    """Wait until `check` holds; return the monotonic time it first did."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(poll)
    return time.monotonic()


async def until_same_as_offline(
    url: str, log: str | os.PathLike[str], settings: Settings, within: float
) -> None:
    """Wait until the worker at `url` exports the room state the offline computation of
    `log` gives; then assert it, so a worker that never gets there shows the difference."""
    expected = room_state_samples(
        offline_exposition(log, settings.partitions, settings.allowed_lateness_ms)
    )

    async def scraped() -> Samples:
        return room_state_samples(await asyncio.to_thread(fetch, url))

    async def same() -> bool:
        return await scraped() == expected

    try:
        await eventually(same, within=within)
    finally:
        assert await scraped() == expected


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def events_counted(url: str) -> int:
    return int(sum(scrape(url).get("livewatch_events_total", {}).values()))


async def topic_records(settings: Settings, topic: str) -> list[tuple[int, int, bytes]]:
    """Every record of `topic` (created with `settings.partitions`, as livewatch creates
    its topics) up to its end offsets now: (partition, offset, value)."""
    return [(p, o, value or b"") for p, o, _, value in await _keyed_records(settings, topic)]


async def _keyed_records(
    settings: Settings, topic: str
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[int, int, bytes | None, bytes | None]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                records += [(tp.partition, r.offset, r.key, r.value) for r in batch]
    finally:
        await consumer.stop()
    return records


async def alert_transitions(settings: Settings) -> list[dict[str, Any]]:
    """The transitions on the alerts topic, in each partition's order."""
    records = await topic_records(settings, settings.topic(settings.topic_alerts))
    return [json.loads(value) for _, _, value in sorted(records)]


async def checkpointed_offsets(settings: Settings) -> dict[TopicPartition, int]:
    """What the latest complete checkpoint of each partition covers, per source partition."""
    topic = f"{settings.app_id}-checkpoints-changelog"
    latest: dict[bytes, bytes] = {}
    for _, _, key, value in await _keyed_records(settings, topic):
        if key and value:
            latest[key] = value
    covered: dict[TopicPartition, int] = {}
    for partition in range(settings.partitions):
        try:
            _, blob = join_checkpoint(partition, latest.get)
        except KeyError:
            continue
        _, checkpoint = restore_checkpoint(blob, EngineConfig())
        covered.update({TopicPartition(t, partition): o for t, o in checkpoint.offsets.items()})
    return covered
