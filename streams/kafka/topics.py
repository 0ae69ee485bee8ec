"""livewatch's topics: creating them and checking they are co-partitioned."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.core.events import SPARSE_SOURCES
from streams.kafka.client import client_options
from streams.settings import Settings


class TopicLayoutError(RuntimeError):
    pass


async def ensure_topics(settings: Settings) -> int:
    """Create missing topics; insist the source topics are co-partitioned.

    One room's events must land in the same partition number of every source
    topic, because one worker owns that partition number's state. A sparse source's
    topic (`live.rooms`) missing beside the other source topics, as when a deployment
    upgrades to room events, is created with their partition count, whatever
    `partitions` says.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        wanted = (
            *settings.source_topics.values(),
            settings.topic(settings.topic_deadletter),
            settings.topic(settings.topic_alerts),
            settings.topic(settings.topic_actions),
        )
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            sparse = await _sparse_partitions(admin, settings, existing)
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics([_new_topic(settings, t, sparse) for t in missing])
        counts = await _partition_counts(admin, tuple(settings.source_topics.values()))
        if len(set(counts.values())) != 1 or 0 in counts.values():
            raise TopicLayoutError(
                "source topics must have the same number of partitions, found "
                + ", ".join(f"{t}={n}" for t, n in sorted(counts.items()))
            )
        return next(iter(counts.values()))
    finally:
        await admin.close()


async def _sparse_partitions(
    admin: AIOKafkaAdminClient, settings: Settings, existing: set[str]
) -> dict[str, int]:
    """Missing sparse source topics -> the partition count of the other source topics,
    when those all exist and agree on one."""
    dense = [t for s, t in settings.source_topics.items() if s not in SPARSE_SOURCES]
    sparse = [t for s, t in settings.source_topics.items() if s in SPARSE_SOURCES]
    if not all(t in existing for t in dense) or all(t in existing for t in sparse):
        return {}
    counts = set((await _partition_counts(admin, tuple(dense))).values())
    if len(counts) != 1 or 0 in counts:
        return {}  # refused below, as before
    return dict.fromkeys((t for t in sparse if t not in existing), counts.pop())


def _new_topic(settings: Settings, topic: str, partitions: dict[str, int]) -> NewTopic:
    # The topics that carry user ids keep them only so long.
    retention = {
        settings.topic(settings.topic_deadletter): settings.deadletter_retention_ms,
        settings.topic(settings.topic_actions): settings.actions_retention_ms,
    }
    configs = {"retention.ms": str(retention[topic])} if topic in retention else {}
    count = partitions.get(topic, settings.partitions)
    return NewTopic(topic, count, settings.replication_factor, topic_configs=configs)


async def _partition_counts(
    admin: AIOKafkaAdminClient, topics: tuple[str, ...], wait_s: float = 30.0
) -> dict[str, int]:
    """Partition count per topic, waiting for just-created topics to show up."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        described = await admin.describe_topics(list(topics))
        counts = {d["topic"]: len(d["partitions"]) for d in described}
        if 0 not in counts.values() or asyncio.get_running_loop().time() > deadline:
            return counts
        await asyncio.sleep(0.2)
