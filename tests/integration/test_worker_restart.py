"""A worker killed between checkpoints resumes from the checkpoint table exactly.

The kill comes after the worker processed events its last checkpoint does not
cover (offsets are committed only as checkpoints cover them): the restarted
worker must resume from the checkpoint, process those events again and count
none twice; and it must not start over from an empty state.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.dev.demo import scrape, stop_process
from streams.kafka.client import client_options
from streams.kafka.partitioner import partition_for
from streams.logs.replay import replay
from streams.settings import Settings, env_name
from streams.worker.checkpoint import (
    Checkpoint,
    split_checkpoint,
)
from tests.conftest import RunningWorker
from tests.integration.workers import (
    checkpointed_offsets,
    events_counted,
    eventually,
    split_sample,
    until_same_as_offline,
)

pytestmark = pytest.mark.kafka

Offsets = dict[TopicPartition, int]


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
    await until_same_as_offline(restarted.metrics_url, everything, settings, within=60)
    health = scrape(restarted.metrics_url)
    restores = {
        dict(k)["result"]: v for k, v in health["livewatch_checkpoint_restores_total"].items()
    }
    partitions_with_data = {tp.partition for tp, end in ends_first.items() if end > 0}
    assert restores["restored"] == len(partitions_with_data)
    assert restores["failed"] == 0
    # It resumed from the checkpoint: only the second half was processed again.
    assert events_counted(restarted.metrics_url) == produced_second


class _Payload:
    """What a pickled checkpoint could do when read: leave a file behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))


async def write_pickled_checkpoints(settings: Settings, partitions: set[int], marker: Path) -> None:
    """Format 5 checkpoints (pickles, as before format 6) over the partitions' latest."""
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        for partition in partitions:
            blob = msgspec.msgpack.encode(
                Checkpoint(5, partition, {}, pickle.dumps(_Payload(marker)))
            )
            for key, value in split_checkpoint(partition, blob, 1_000):
                await producer.send_and_wait(
                    f"{settings.app_id}-checkpoints-changelog", value, key=key, partition=partition
                )
    finally:
        await producer.stop()


async def test_a_pickled_checkpoint_is_not_read_and_the_partition_starts_from_its_offsets(
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    """An upgrade that was not drained, or a forged checkpoint: logged, counted, never run."""
    first, second, _ = split_sample(tmp_path)
    env = {**isolated_env, env_name("idle_after_s"): "3600", env_name("checkpoint_interval_s"): "5"}
    worker = worker_factory(env)
    settings = worker.settings
    await replay(first, settings)
    ends_first, _ = await source_offsets(settings)

    async def first_half_committed() -> bool:
        return (await source_offsets(settings))[1] == ends_first

    await eventually(first_half_committed)
    stop_process(worker.process)
    partitions_with_data = {tp.partition for tp, end in ends_first.items() if end > 0}
    marker = tmp_path / "pickle-ran"
    await write_pickled_checkpoints(settings, partitions_with_data, marker)

    produced_second = (await replay(second, settings)).produced
    restarted = worker_factory(env)

    async def second_half_counted() -> bool:
        return events_counted(restarted.metrics_url) >= produced_second

    await eventually(second_half_counted, within=60)
    assert not marker.exists(), "a pickle in the checkpoint table was run"
    restores = {
        dict(k)["result"]: v
        for k, v in scrape(restarted.metrics_url)["livewatch_checkpoint_restores_total"].items()
    }
    assert restores["outdated"] == len(partitions_with_data)
    assert restores["restored"] == restores["failed"] == 0
    # From the committed offsets: the first half is not processed again.
    assert events_counted(restarted.metrics_url) == produced_second
    assert "drain before upgrading" in restarted.log.read_text(errors="replace")


async def test_a_partition_never_checkpointed_is_read_from_its_start_after_a_restart(
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    """A restart reads the checkpoint changelog back first, and a fetch meanwhile returns
    records of source partitions not active yet. They were dropped, and only partitions
    with a committed offset were sought back: a partition that never had a checkpoint
    (its events all came while no worker ran) lost every one of them."""
    first, _, _ = split_sample(tmp_path)
    env = {**isolated_env, env_name("group_session_timeout_s"): "6"}
    worker = worker_factory(env)
    settings = worker.settings
    await replay(first, settings)
    ends, _ = await source_offsets(settings)
    with_data = {tp.partition for tp, end in ends.items() if end}
    empty = sorted(set(range(settings.partitions)) - with_data)
    assert empty, "every partition has events: none is left never checkpointed"

    async def checkpointed() -> bool:
        covered = await checkpointed_offsets(settings)
        return all(covered.get(tp, 0) == end for tp, end in ends.items() if end)

    await eventually(checkpointed)
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait()

    room = next(
        f"late-room-{i}" for i in range(1000) if partition_for(f"late-room-{i}", 4) == empty[0]
    )
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        for i in range(50):
            event = {"type": "join", "room_id": room, "user_id": f"u{i}", "ts": 1764000000000 + i}
            await producer.send(
                settings.topic_for_type("join"), msgspec.json.encode(event), key=room.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()

    restarted = worker_factory(env)

    async def read() -> bool:
        return events_counted(restarted.metrics_url) == 50

    try:
        await eventually(read, within=30)
    finally:
        assert events_counted(restarted.metrics_url) == 50
