"""The worker, fed through the real broker, exports exactly what the offline path computes."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from streams.dev.demo import NIGHT, SAMPLE, scrape
from streams.logs.replay import replay
from streams.settings import env_name
from tests.conftest import RunningWorker
from tests.integration.offline import (
    backtest_exposition,
    fetch,
    offline_exposition,
    pipeline_samples,
)
from tests.integration.workers import alert_transitions, eventually

pytestmark = pytest.mark.kafka

WATERMARK = "livewatch_partition_watermark_timestamp_seconds"


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


async def test_after_the_input_ends_the_worker_equals_the_backtest_of_the_night(
    isolated_env: dict[str, str], worker_factory: Callable[[dict[str, str]], RunningWorker]
) -> None:
    """Issue 16, 4b: once no source of a partition has held its watermark for
    `flush_idle_s`, the worker applies the last `allowed_lateness_ms` it held back, as
    the backtest does at the end of the log: the demo night's every exported series
    (room gauges and counters, events, late and invalid counts, alert counts) and every
    alert transition on the topic equal the backtest's. Replayed at full speed into an
    idle worker, so no event may go late at the start either."""
    env = {
        **isolated_env,
        env_name("idle_after_s"): "3600",  # no wall-clock drift: the result is exact
        env_name("flush_idle_s"): "5",
    }
    worker = worker_factory(env)
    settings = worker.settings
    backtest, transitions = await asyncio.to_thread(backtest_exposition, NIGHT, settings)
    expected = pipeline_samples(backtest)
    with_data = len([k for k in expected if k[0] == WATERMARK])  # the night fills 3 of 4
    held = pipeline_samples(
        offline_exposition(NIGHT, settings.partitions, settings.allowed_lateness_ms)
    )
    # The test can fail: without the flush the last window is missing from the rooms.
    online = "livewatch_room_online_viewers"
    assert {k: v for k, v in held.items() if k[0] == online} != {
        k: v for k, v in expected.items() if k[0] == online
    }

    stats = await replay(NIGHT, settings, speed=None)
    assert stats.skipped == 0 and stats.produced == 210_521  # 8 of them room events
    started = time.monotonic()

    def flushes() -> float:
        return scrape(worker.metrics_url)["livewatch_idle_flushes_total"][()]

    async def every_partition_flushed() -> bool:
        return await asyncio.to_thread(flushes) >= with_data

    await eventually(every_partition_flushed, within=120)
    print(f"flushed {time.monotonic() - started:.1f} s after the replay ended")
    scraped = pipeline_samples(await asyncio.to_thread(fetch, worker.metrics_url))
    assert scraped == expected
    assert await asyncio.to_thread(flushes) == with_data  # once each, at the end
    # Issue 18: room-beauty's promotion reviewed through the broker as by the backtest
    # (in `expected` with every other series; named here so it cannot go missing).
    review = {k: v for k, v in scraped.items() if k[0].startswith("livewatch_room_promotion_")}
    beauty = (("room", "room-beauty"),)
    assert review[("livewatch_room_promotion_active", beauty)] == 0
    assert review[("livewatch_room_promotion_end_timestamp_seconds", beauty)] == 1_764_000_330
    for name, labels in [
        ("livewatch_room_promotion_ebb_half_life_seconds", beauty),
        ("livewatch_room_promotion_floor_ratio", beauty),
        ("livewatch_room_promotion_retention_ratio", (("after", "10m"), *beauty)),
        ("livewatch_room_promotion_viewers", (("at", "peak"), *beauty)),
        ("livewatch_room_promotion_orders_per_viewer_hour", (("phase", "during"), *beauty)),
        ("livewatch_room_promotion_gmv_yuan", (("phase", "after"), *beauty)),
    ]:
        assert review[(name, labels)] == expected[(name, labels)] and review[(name, labels)] > 0
    # room-fashion's host ended its stream: no alert, and it is gone, as in the backtest.
    assert not any(t.room_id == "room-fashion" for t in transitions)
    assert ("livewatch_room_online_viewers", (("room", "room-fashion"),)) not in scraped

    # Whole transitions (state, times, severity, summary, details), one for one.
    wanted = sorted(msgspec.to_builtins(transitions), key=canonical)
    # 6 since 2026-12-07: a latency level that follows the burn is no second page.
    assert len(wanted) == 6 and len({canonical(t) for t in wanted}) == len(wanted)

    async def all_sent() -> bool:
        return len(await alert_transitions(settings)) >= len(wanted)

    await eventually(all_sent, within=30)
    await asyncio.sleep(2)  # anything more (it should not come) would arrive by now
    assert sorted(await alert_transitions(settings), key=canonical) == wanted


def canonical(transition: dict[str, Any]) -> str:
    return json.dumps(transition, sort_keys=True)
