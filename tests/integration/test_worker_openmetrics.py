"""A real worker's /metrics in the format its scraper asks for: OpenMetrics for
Prometheus (parsed by the OpenMetrics parser), the text format otherwise."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from streams.dev.demo import SAMPLE
from streams.logs.replay import replay
from tests.conftest import RunningWorker

pytestmark = pytest.mark.kafka
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def fetch(url: str, accept: str | None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


async def test_a_worker_serves_openmetrics_to_prometheus_and_text_to_others(
    isolated_env: dict[str, str], worker_factory: Callable[[dict[str, str]], RunningWorker]
) -> None:
    worker = worker_factory(isolated_env)
    await replay(SAMPLE, worker.settings, speed=None)
    for _ in range(120):
        content_type, text = await asyncio.to_thread(fetch, worker.metrics_url, PROMETHEUS_ACCEPT)
        if "livewatch_room_online_viewers{" in text:
            break
        await asyncio.sleep(0.5)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["livewatch_room_watch_seconds"] == "counter"
    assert families["livewatch_room_latency_seconds"] == "summary"
    assert families["livewatch_checkpoint_age_seconds"] == "gauge"
    content_type, text = await asyncio.to_thread(fetch, worker.metrics_url, None)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert "# EOF" not in text
