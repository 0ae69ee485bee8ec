"""A second worker joining takes over partitions with their checkpointed rooms.

Worker A processes the first half of the demo night alone. Worker B joins: the
group rebalances, A checkpoints what it gives up and B restores it. Then the
second half arrives, split between them. Every room must end up exactly as one
worker that saw the whole night computes it offline, each on one worker only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.dev.broker import free_port
from streams.dev.demo import scrape
from streams.logs.replay import replay
from streams.settings import env_name
from tests.conftest import RunningWorker
from tests.exposition import Samples
from tests.integration.offline import fetch, offline_exposition, room_state_samples
from tests.integration.workers import events_counted, eventually, split_sample

pytestmark = pytest.mark.kafka

RESTORES = "livewatch_checkpoint_restores_total"


def rooms_only(samples: Samples) -> Samples:
    """Series of rooms (partition-wide ones, like region histograms, are split between
    workers by partition and are compared elsewhere)."""
    return {key: value for key, value in samples.items() if any(k == "room" for k, _ in key[1])}


async def test_a_joining_worker_takes_over_partitions_with_their_rooms(
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    first, second, everything = split_sample(tmp_path)
    env = {
        **isolated_env,
        env_name("idle_after_s"): "3600",  # no wall-clock drift: the result is exact
        env_name("group_session_timeout_s"): "6",
    }
    a = worker_factory(env)
    settings = a.settings
    produced_first = (await replay(first, settings)).produced

    async def a_caught_up() -> bool:
        return events_counted(a.metrics_url) == produced_first

    await eventually(a_caught_up)

    b = worker_factory({**env, env_name("metrics_port"): str(free_port())})

    async def split_between_them() -> bool:
        mine, theirs = a.status()["partitions"], b.status()["partitions"]
        assert isinstance(mine, list) and isinstance(theirs, list)
        return bool(mine) and bool(theirs) and sorted(mine + theirs) == [0, 1, 2, 3]

    await eventually(split_between_them)
    await replay(second, settings)

    expected = rooms_only(
        room_state_samples(
            offline_exposition(everything, settings.partitions, settings.allowed_lateness_ms)
        )
    )

    async def scraped() -> tuple[Samples, Samples]:
        texts = await asyncio.gather(
            asyncio.to_thread(fetch, a.metrics_url), asyncio.to_thread(fetch, b.metrics_url)
        )
        return rooms_only(room_state_samples(texts[0])), rooms_only(room_state_samples(texts[1]))

    async def same_as_offline() -> bool:
        on_a, on_b = await scraped()
        return {**on_a, **on_b} == expected

    try:
        await eventually(same_as_offline, within=90)
    finally:
        on_a, on_b = await scraped()
        assert {**on_a, **on_b} == expected
    assert on_a and on_b, "both workers hold rooms"
    assert not on_a.keys() & on_b.keys(), "a room lives on one worker only"
    restores = {dict(k)["result"]: v for k, v in scrape(b.metrics_url)[RESTORES].items()}
    assert restores["restored"] >= 1, "B resumed rooms from A's checkpoints"
    assert restores["failed"] == 0
