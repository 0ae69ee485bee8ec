"""The worker, fed through the real broker, exports exactly what the offline path computes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.decode import RawMessage
from streams.demo import SAMPLE
from streams.engine import EngineConfig
from streams.eventlog import read_lines
from streams.exporter import PipelineCollector
from streams.pipeline import Pipeline, partition_for
from streams.replay import replay
from streams.settings import env_name
from tests.conftest import RunningWorker
from tests.exposition import Samples
from tests.exposition import samples as parse

pytestmark = pytest.mark.kafka


def offline_exposition(partitions: int, lateness_ms: int) -> str:
    """The sample through the pipeline without Kafka, partitioned as Kafka does."""
    import msgspec

    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=lateness_ms))
    by_partition: dict[int, list[RawMessage]] = {}
    for number, line in read_lines(SAMPLE):
        room = msgspec.json.decode(line)["room_id"]
        partition = partition_for(room, partitions)
        by_partition.setdefault(partition, []).append(
            RawMessage("file", partition, number, None, line)
        )
    for partition, messages in by_partition.items():
        pipeline.process(partition, messages, check_key=False)
        # The worker, once every source is caught up, holds the watermark at clock - lateness.
        pipeline.engine(partition).settle(())
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline))
    return generate_latest(registry).decode()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def samples(text: str) -> Samples:
    return {key: value for key, value in parse(text).items() if key[0].startswith("livewatch_")}


async def test_scraped_metrics_equal_the_offline_computation(
    isolated_env: dict[str, str], worker_factory: Callable[[dict[str, str]], RunningWorker]
) -> None:
    env = {**isolated_env, env_name("idle_after_s"): "3600"}  # no wall-clock drift
    worker = worker_factory(env)
    stats = await replay(SAMPLE, worker.settings, speed=None)
    assert stats.skipped == 0

    expected = samples(
        offline_exposition(worker.settings.partitions, worker.settings.allowed_lateness_ms)
    )
    deadline = time.monotonic() + 120
    while True:
        scraped_text = await asyncio.to_thread(fetch, worker.metrics_url)
        scraped = samples(scraped_text)
        if scraped == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert scraped == expected
    assert any(name == "livewatch_room_retention_1m" for name, _ in scraped)
    assert any(
        name == "livewatch_latency_seconds_bucket" and ("le", "0.6") in labels
        for name, labels in scraped
    )

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (make test installs Debian's prometheus)")
    lint = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=scraped_text,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
