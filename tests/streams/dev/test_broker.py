from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.dev.broker import LocalKafka, _cluster_id, answers_metadata

pytestmark = pytest.mark.kafka


def test_the_session_broker_answers_metadata(kafka: LocalKafka) -> None:
    assert asyncio.run(answers_metadata(kafka.bootstrap))


def test_stop_leaves_no_jvm_behind() -> None:
    broker = LocalKafka(heap_mb=256).start()
    assert broker.process is not None
    pid = broker.process.pid
    workdir = broker.workdir
    broker.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists()
    assert not asyncio.run(answers_metadata(broker.bootstrap, timeout_ms=500))


def test_cluster_ids_never_read_as_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=bytes(16))])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(ids))
    assert _cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"  # the first, "-AAA...", was skipped


async def _produce_and_commit(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("kept", 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait("kept", b"%d" % i, partition=i % 2)
    finally:
        await producer.stop()
    # No auto-commit: stopping would commit the consumer's own position over the 3.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="g", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition("kept", 0)])
        await consumer.commit({TopicPartition("kept", 0): 3})
    finally:
        await consumer.stop()


async def _read_back(bootstrap: str) -> tuple[list[bytes], int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="g", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition("kept", 0), TopicPartition("kept", 1)]
        ends = await consumer.end_offsets(tps)
        committed = await consumer.committed(tps[0])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[bytes] = []
        while len(values) < sum(ends.values()):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                values += [r.value or b"" for r in records]
        return sorted(values), committed
    finally:
        await consumer.stop()


def test_a_restarted_broker_keeps_its_topics_messages_and_offsets() -> None:
    broker = LocalKafka(heap_mb=256).start()
    try:
        port = broker.port
        asyncio.run(_produce_and_commit(broker.bootstrap))
        broker.restart(down_for=1)
        assert broker.port == port
        values, committed = asyncio.run(_read_back(broker.bootstrap))
        assert values == sorted(b"%d" % i for i in range(10))
        assert committed == 3
    finally:
        broker.stop()
    assert not broker.workdir.exists()
