from __future__ import annotations

import asyncio
import os
import uuid

import pytest

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
