from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.dev.broker import LocalKafka
from streams.kafka.topics import TopicLayoutError, ensure_topics
from streams.settings import Settings, load_settings

pytestmark = pytest.mark.kafka


def test_missing_topics_are_created_co_partitioned(kafka: LocalKafka) -> None:
    prefix = f"k{uuid.uuid4().hex[:6]}."
    settings = load_settings(
        environ={},
        overrides={"bootstrap_servers": kafka.bootstrap, "topic_prefix": prefix, "partitions": 3},
    )
    assert asyncio.run(ensure_topics(settings)) == 3
    assert asyncio.run(ensure_topics(settings)) == 3  # idempotent


def test_topics_with_different_partition_counts_are_refused(kafka: LocalKafka) -> None:
    prefix = f"k{uuid.uuid4().hex[:6]}."
    settings = load_settings(
        environ={}, overrides={"bootstrap_servers": kafka.bootstrap, "topic_prefix": prefix}
    )

    async def create_mismatched() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(settings.source_topics["danmaku"], 2, 1)])
        finally:
            await admin.close()

    asyncio.run(create_mismatched())
    with pytest.raises(TopicLayoutError, match="same number of partitions"):
        asyncio.run(ensure_topics(settings))


def test_a_deployment_before_room_events_gets_live_rooms_as_partitioned_as_the_rest(
    kafka: LocalKafka,
) -> None:
    """Five source topics of 3 partitions made before `live.rooms` existed, `partitions`
    left at its default (4): the rooms topic follows the existing ones, the worker starts."""
    prefix = f"k{uuid.uuid4().hex[:6]}."
    settings = load_settings(
        environ={}, overrides={"bootstrap_servers": kafka.bootstrap, "topic_prefix": prefix}
    )
    rooms = settings.source_topics["rooms"]
    older = [t for t in settings.source_topics.values() if t != rooms]

    async def create_older() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(t, 3, 1) for t in older])
        finally:
            await admin.close()
        # Long made, in a real upgrade: visible to every client before the worker starts.
        for _ in range(100):
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
            await admin.start()
            try:
                if set(older) <= set(await admin.list_topics()):
                    return
            finally:
                await admin.close()
            await asyncio.sleep(0.1)

    asyncio.run(create_older())
    assert settings.partitions == 4
    assert asyncio.run(ensure_topics(settings)) == 3


def test_topics_that_carry_user_ids_are_created_with_their_retention(kafka: LocalKafka) -> None:
    prefix = f"k{uuid.uuid4().hex[:6]}."
    settings = load_settings(
        environ={"LIVEWATCH_ACTIONS_RETENTION_MS": "3600000"},
        overrides={"bootstrap_servers": kafka.bootstrap, "topic_prefix": prefix},
    )
    asyncio.run(ensure_topics(settings))
    retention = asyncio.run(retention_ms(kafka.bootstrap, settings))
    assert retention == {
        settings.topic(settings.topic_deadletter): "604800000",
        settings.topic(settings.topic_actions): "3600000",
        settings.topic(settings.topic_alerts): "604800000",  # the broker's default: a week
    }


async def retention_ms(bootstrap: str, settings: Settings) -> dict[str, str]:
    topics = [settings.topic(t) for t in ("live.deadletter", "live.actions", "live.alerts")]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        )
    finally:
        await admin.close()
    found: dict[str, str] = {}
    for response in responses:
        for _, _, _, name, entries in response.resources:
            for key, value, *_ in entries:
                if key == "retention.ms":
                    found[name] = value
    return found
