"""A worker killed between checkpoints resumes from the checkpoint table exactly.

The kill comes after the worker processed events its last checkpoint does not
cover (offsets are committed only as checkpoints cover them): the restarted
worker must resume from the checkpoint, process those events again and count
none twice; and it must not start over from an empty state.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.config import EngineConfig
from streams.dev.demo import scrape
from streams.kafka.client import client_options
from streams.logs.replay import replay
from streams.settings import Settings, env_name
from streams.worker.checkpoint import join_checkpoint, restore_checkpoint
from tests.conftest import RunningWorker
from tests.integration.offline import fetch, offline_exposition, room_state_samples
from tests.integration.workers import events_counted, eventually, split_sample

pytestmark = pytest.mark.kafka

Offsets = dict[TopicPartition, int]


async def checkpointed_offsets(settings: Settings) -> Offsets:
    """What the changelog topic's latest complete checkpoints cover, per source partition."""
    topic = f"{settings.app_id}-checkpoints-changelog"
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        latest: dict[bytes, bytes] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                latest.update((r.key, r.value) for r in records if r.key and r.value)
    finally:
        await consumer.stop()
    covered: Offsets = {}
    for partition in range(settings.partitions):
        try:
            _, blob = join_checkpoint(partition, latest.get)
        except KeyError:
            continue
        _, checkpoint = restore_checkpoint(blob, EngineConfig())
        covered.update({TopicPartition(t, partition): o for t, o in checkpoint.offsets.items()})
    return covered


async def source_offsets(settings: Settings) -> tuple[Offsets, Offsets]:
    """(end offsets, consumer group's committed offsets) of every source partition."""
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=settings.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p)
            for t in settings.source_topics.values()
            for p in range(settings.partitions)
        ]
        ends = await consumer.end_offsets(tps)
        committed = {tp: (await consumer.committed(tp)) or 0 for tp in tps}
    finally:
        await consumer.stop()
    return ends, committed


async def test_a_killed_worker_resumes_from_its_checkpoint_exactly(
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    first, second, everything = split_sample(tmp_path)
    env = {
        **isolated_env,
        env_name("idle_after_s"): "3600",  # no wall-clock drift: the result is exact
        env_name("checkpoint_interval_s"): "20",
        env_name("group_session_timeout_s"): "6",  # the group drops the killed member sooner
    }
    worker = worker_factory(env)
    settings = worker.settings

    produced_first = (await replay(first, settings)).produced
    ends_first, _ = await source_offsets(settings)

    async def first_half_checkpointed() -> bool:
        covered = await checkpointed_offsets(settings)
        return all(covered.get(tp, 0) == end for tp, end in ends_first.items())

    await eventually(first_half_checkpointed)
    assert events_counted(worker.metrics_url) == produced_first

    async def first_half_committed() -> bool:
        # Offsets are committed as checkpoints cover them: the group's lag is honest.
        return (await source_offsets(settings))[1] == ends_first

    await eventually(first_half_committed, within=15)

    produced_second = (await replay(second, settings)).produced

    async def second_half_processed() -> bool:
        return events_counted(worker.metrics_url) == produced_first + produced_second

    await eventually(second_half_processed, within=15)
    covered = await checkpointed_offsets(settings)
    assert all(covered.get(tp, 0) == end for tp, end in ends_first.items()), (
        "a checkpoint was taken after the second half: the kill would not test the rewind"
    )
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait()

    restarted = worker_factory(env)
    expected = room_state_samples(
        offline_exposition(everything, settings.partitions, settings.allowed_lateness_ms)
    )

    async def same_as_offline() -> bool:
        return room_state_samples(await asyncio.to_thread(fetch, restarted.metrics_url)) == expected

    try:
        await eventually(same_as_offline, within=60)
    finally:
        scraped = room_state_samples(await asyncio.to_thread(fetch, restarted.metrics_url))
        assert scraped == expected
    health = scrape(restarted.metrics_url)
    restores = {
        dict(k)["result"]: v for k, v in health["livewatch_checkpoint_restores_total"].items()
    }
    partitions_with_data = {tp.partition for tp, end in ends_first.items() if end > 0}
    assert restores["restored"] == len(partitions_with_data)
    assert restores["failed"] == 0
    # It resumed from the checkpoint: only the second half was processed again.
    assert events_counted(restarted.metrics_url) == produced_second
