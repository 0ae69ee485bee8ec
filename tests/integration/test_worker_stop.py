"""A worker told to stop while the broker is gone exits within `stop_timeout_s`, and
loses nothing by it.

Faust flushes its producer on the way out, and the producer keeps an undelivered batch
for 20 minutes: with the broker unreachable, a SIGTERM held the worker that long (seen
on 2026-12-07, a benchmark's worker stuck in its stop for over 20 minutes). The worker
now leaves after `stop_timeout_s` with status 1, as a crash would. This test uses a
broker of its own (the session's must stay up): it is killed while the worker holds
state its last checkpoint does not cover, the worker is stopped, the broker comes
back with its data, and a new worker must resume exactly: its room metrics those of
the offline computation of everything produced, nothing lost or counted twice.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.dev.broker import LocalKafka
from streams.logs.replay import replay
from streams.settings import env_name
from tests.conftest import RunningWorker
from tests.integration.workers import (
    checkpointed_offsets,
    events_counted,
    eventually,
    split_sample,
    until_same_as_offline,
)

pytestmark = pytest.mark.kafka

STOP_TIMEOUT_S = 8


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    broker = LocalKafka(workdir=tmp_path / "kafka", heap_mb=512, partitions=4)
    with broker:
        yield broker


def test_a_worker_stopped_without_its_broker_exits_in_time_and_resumes_exactly(
    isolated_env: dict[str, str],
    own_kafka: LocalKafka,
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    first, second, everything = split_sample(tmp_path)
    env = {
        **isolated_env,
        env_name("bootstrap_servers"): own_kafka.bootstrap,
        env_name("idle_after_s"): "3600",  # no wall-clock drift: the result is exact
        env_name("checkpoint_interval_s"): "3600",  # only the first checkpoint is taken
        env_name("group_session_timeout_s"): "6",
        env_name("stop_timeout_s"): str(STOP_TIMEOUT_S),
    }
    worker = worker_factory(env)
    settings = worker.settings
    produced = asyncio.run(replay(first, settings)).produced

    async def checkpointed() -> bool:
        return bool(await checkpointed_offsets(settings))

    asyncio.run(eventually(checkpointed))
    produced += asyncio.run(replay(second, settings)).produced

    async def all_processed() -> bool:
        return events_counted(worker.metrics_url) == produced

    asyncio.run(eventually(all_processed, within=30))
    own_kafka.stop(keep_data=True, kill=True)

    asked = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    status = worker.process.wait(STOP_TIMEOUT_S + 60)
    took = time.monotonic() - asked
    assert status == 1, f"exit status {status} after {took:.0f} s"
    assert took < STOP_TIMEOUT_S + 30
    assert "the stop did not finish in 8 s" in worker.log.read_text(errors="replace")

    own_kafka.start()  # on this thread, which outlives it (the JVM dies with its starter)
    restarted = worker_factory(env)
    asyncio.run(until_same_as_offline(restarted.metrics_url, everything, settings, within=90))
