from __future__ import annotations

import asyncio
import os

import pytest

from streams.kafka_local import LocalKafka, answers_metadata

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
