from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.dev.broker import LocalKafka
from streams.kafka.topics import TopicLayoutError, ensure_topics
from streams.settings import load_settings

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
