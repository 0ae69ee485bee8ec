"""Flow control: a backlog read faster from one topic than another does not pile up in
the worker's memory, and pausing changes no result.

The log holds an hour of one partition's worth of rooms: latency samples five times
as dense as joins and leaves, one event per message. Replayed before the worker
starts, the joins topic covers the hour in a fifth of the messages the latency topic
needs, so the joins run ahead in event time and wait for the latency samples'
watermark. With `max_held_events` the worker pauses the topic running ahead and what
waits stays near the bound; without it (the control, `max_held_events` 0) the joins
pile up. Both end with every series equal to the backtest of the log: nothing late,
nothing lost, nothing twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.dev.demo import scrape
from streams.logs.replay import replay
from streams.settings import env_name, load_settings
from tests.conftest import RunningWorker
from tests.integration.offline import backtest_exposition, fetch, pipeline_samples
from tests.integration.workers import eventually

pytestmark = pytest.mark.kafka

T0 = 1_764_000_000_000
ROOMS = 8
SECONDS = 3_600
BOUND = 1_000
WORKER_HEALTH = (
    "livewatch_held",
    "livewatch_source",
    "livewatch_consumer_lag",
    "livewatch_partition_watermark",
    "livewatch_idle",
)
BATCH = 100
"""Messages per fetch (one event each here). The bound is soft: a pause takes effect
after the fetch that crossed it, and a fetch may be under way meanwhile."""
WITHIN_LATENESS = ROOMS * 7
"""Events of one second of every room (the allowed lateness is 1 s here): sources within
the lateness of the slowest are not paused (docs/events.md, "Flow control"), so what
they bring may come on top of the bound."""


def night(path: Path) -> int:
    """Every room: a viewer joins each second and leaves 30 s later; five latency
    samples a second. Returns the number of events."""
    count = 0
    with path.open("w") as log:
        for second in range(SECONDS):
            ts = T0 + second * 1_000
            for room in range(ROOMS):
                room_id = f"room-{room}"
                events: list[dict[str, object]] = [{"type": "join", "user_id": f"u{second}"}]
                if second >= 30:
                    events.append({"type": "leave", "user_id": f"u{second - 30}"})
                events += [
                    {"type": "latency", "user_id": f"u{second - k}", "value_ms": 200 + k}
                    for k in range(5)
                ]
                for offset, event in enumerate(events):
                    event.update(room_id=room_id, ts=ts + offset * 10)
                    log.write(json.dumps(event) + "\n")
                    count += 1
    return count


@pytest.mark.timeout(300)
@pytest.mark.parametrize("bound", [BOUND, 0], ids=["paced", "unpaced"])
async def test_a_topic_running_ahead_is_paused_and_the_result_is_the_backtests(
    bound: int,
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    env = {
        **isolated_env,
        env_name("idle_after_s"): "3600",  # event time only: the result is exact
        env_name("flush_idle_s"): "5",
        env_name("batch_max_messages"): str(BATCH),
        env_name("max_held_events"): str(bound),
    }
    log = tmp_path / "night.jsonl"
    events = night(log)
    # The backlog is in Kafka before the worker starts: it reads as fast as it fetches.
    settings = load_settings(environ=env)
    stats = await replay(log, settings, speed=None)
    assert stats.produced == events
    backtest, _ = await asyncio.to_thread(backtest_exposition, log, settings)
    expected = pipeline_samples(backtest)
    worker = worker_factory(env)

    async def flushed() -> bool:
        return pipeline_samples(await asyncio.to_thread(fetch, worker.metrics_url)) == expected

    try:
        await eventually(flushed, within=180)
    finally:
        health = await asyncio.to_thread(scrape, worker.metrics_url)
        print({k: v for k, v in health.items() if k.startswith(WORKER_HEALTH)})
        print(await asyncio.to_thread(worker.status))
    status = await asyncio.to_thread(worker.status)
    health = await asyncio.to_thread(scrape, worker.metrics_url)
    pauses = health["livewatch_source_pauses_total"][()]
    print(f"max_held_events {bound}: held at most {status['held_peak']:,}, {pauses:.0f} pauses")
    assert status["events"] == events and status["late"] == 0
    assert status["held"] == 0  # flushed at the end of input
    if bound:
        assert pauses > 0
        assert status["held_peak"] <= bound + 2 * BATCH + WITHIN_LATENESS
    else:
        # The control: the same backlog unpaced piles up, so the bound above is no accident.
        assert pauses == 0
        assert status["held_peak"] > 5 * BOUND
