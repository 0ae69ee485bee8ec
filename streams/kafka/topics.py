"""livewatch's topics: creating them and checking they are co-partitioned."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.kafka.client import client_options
from streams.settings import Settings


class TopicLayoutError(RuntimeError):
    pass


async def ensure_topics(settings: Settings) -> int:
    """Create missing topics; insist the source topics are co-partitioned.

    One room's events must land in the same partition number of every source
    topic, because one worker owns that partition number's state.
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
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics([_new_topic(settings, t) for t in missing])
        counts = await _partition_counts(admin, tuple(settings.source_topics.values()))
        if len(set(counts.values())) != 1 or 0 in counts.values():
            raise TopicLayoutError(
                "source topics must have the same number of partitions, found "
                + ", ".join(f"{t}={n}" for t, n in sorted(counts.items()))
            )
        return next(iter(counts.values()))
    finally:
        await admin.close()


def _new_topic(settings: Settings, topic: str) -> NewTopic:
    # The topics that carry user ids keep them only so long.
    retention = {
        settings.topic(settings.topic_deadletter): settings.deadletter_retention_ms,
        settings.topic(settings.topic_actions): settings.actions_retention_ms,
    }
    configs = {"retention.ms": str(retention[topic])} if topic in retention else {}
    return NewTopic(topic, settings.partitions, settings.replication_factor, topic_configs=configs)


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
