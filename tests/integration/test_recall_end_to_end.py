"""Recall candidates through the real broker: a worker fed a night with a latency and a
stall incident sends to `live.actions` exactly the recall actions `livewatch backtest
--actions-out` writes for the same night."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.logs.replay import replay
from streams.logs.simulate import SCENARIOS, Scenario, generate, write_log
from streams.settings import env_name
from tests.conftest import RunningWorker
from tests.integration.test_alerts_end_to_end import read_json

pytestmark = pytest.mark.kafka

CLI = [sys.executable, "-m", "streams.cli.main"]


def canonical(action: dict[str, Any]) -> str:
    return json.dumps(action, sort_keys=True, ensure_ascii=False)


async def test_worker_recall_actions_match_backtest_actions_out(
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    mixed = {room.room_id: room for room in SCENARIOS["mixed"].rooms}
    # A regional latency incident (cn-south, 1200-1700 s), a stall storm (1400-1800 s),
    # a steady room: both alerts fire and resolve before the night ends.
    rooms = tuple(mixed[r] for r in ("room-latency", "room-stalls", "room-phones"))
    log = tmp_path / "night.jsonl"
    write_log(generate(Scenario("recall", 1950, rooms), 1), log)
    env = {
        **isolated_env,
        env_name("idle_after_s"): "3600",  # no wall-clock drift: the result is exact
        env_name("flush_idle_s"): "5",  # at the end of input, applied as backtest does
    }
    worker = worker_factory(env)
    settings = worker.settings

    actions_out = tmp_path / "actions.jsonl"
    await asyncio.to_thread(
        subprocess.run,
        [*CLI, "backtest", str(log), "--actions-out", str(actions_out)],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    offline = [json.loads(line) for line in actions_out.read_text().splitlines()]
    expected = sorted(canonical(a) for a in offline if a["action"] == "recall")
    reasons = Counter(a["reason"] for a in offline if a["action"] == "recall")
    assert reasons["latency_incident"] > 50 and reasons["stall_incident"] > 50, reasons
    assert reasons["stalled_then_left"] > 50, reasons

    stats = await replay(log, settings, speed=None)
    assert stats.skipped == 0
    topic = settings.topic(settings.topic_actions)

    def all_arrived(records: list[dict[str, Any]]) -> bool:
        return len([r for r in records if r["action"] == "recall"]) >= len(expected)

    sent = await read_json(settings, topic, all_arrived)
    await asyncio.sleep(3)  # anything more (it should not come) would arrive by now
    sent = await read_json(settings, topic, all_arrived)
    got = sorted(canonical(a) for a in sent if a["action"] == "recall")
    missing = Counter(expected) - Counter(got)
    extra = Counter(got) - Counter(expected)
    assert got == expected, (
        f"{len(got)} on live.actions, {len(expected)} from backtest; "
        f"missing {list(missing)[:5]}, extra {list(extra)[:5]}"
    )
    print(f"recall actions on live.actions = backtest --actions-out: {dict(reasons)}")
