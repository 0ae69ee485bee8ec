"""The worker, fed through the real broker, exports exactly what the offline path computes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest

from streams.dev.demo import SAMPLE
from streams.logs.replay import replay
from streams.settings import env_name
from tests.conftest import RunningWorker
from tests.integration.offline import fetch, offline_exposition, pipeline_samples

pytestmark = pytest.mark.kafka


async def test_scraped_metrics_equal_the_offline_computation(
    isolated_env: dict[str, str], worker_factory: Callable[[dict[str, str]], RunningWorker]
) -> None:
    env = {**isolated_env, env_name("idle_after_s"): "3600"}  # no wall-clock drift
    worker = worker_factory(env)
    stats = await replay(SAMPLE, worker.settings, speed=None)
    assert stats.skipped == 0

    expected = pipeline_samples(
        offline_exposition(SAMPLE, worker.settings.partitions, worker.settings.allowed_lateness_ms)
    )
    deadline = time.monotonic() + 120
    while True:
        scraped_text = await asyncio.to_thread(fetch, worker.metrics_url)
        scraped = pipeline_samples(scraped_text)
        if scraped == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert scraped == expected
    assert any(name == "livewatch_room_retention_ratio" for name, _ in scraped)
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
