"""Alerts from a worker fed through Kafka equal the offline backtest's, one for one."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from streams.kafka.client import client_options
from streams.logs.backtest import run_backtest
from streams.logs.replay import replay
from streams.logs.simulate import SCENARIOS, Scenario, generate, write_log
from streams.settings import Settings, env_name
from tests.conftest import RunningWorker

pytestmark = pytest.mark.kafka


async def read_json(
    settings: Settings, topic: str, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, **client_options(settings), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 120
        while not until(records) and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += [json.loads(m.value) for m in batch]
    finally:
        await consumer.stop()
    return records


def key(t: dict[str, Any]) -> tuple[str, str, str, str | None, int, str]:
    return (t["alert"], t["state"], t["room_id"], t["region"], t["ts"], t["severity"])


async def test_worker_alerts_match_the_backtest(
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    mixed = {room.room_id: room for room in SCENARIOS["mixed"].rooms}
    rooms = tuple(mixed[r] for r in ("room-outage", "room-spam", "room-latency", "room-tiny"))
    log = tmp_path / "night.jsonl"
    write_log(generate(Scenario("some", 1900, rooms), 1), log)
    env = {**isolated_env, env_name("idle_after_s"): "3600"}
    worker = worker_factory(env)
    settings = worker.settings
    offline = run_backtest(log, settings)
    # At the end of the input the backtest flushes, while the live worker keeps the
    # last `allowed_lateness_ms` pending: up to there every transition must match.
    last_ts = max(json.loads(line)["ts"] for line in log.read_text().splitlines())
    cutoff = last_ts - settings.allowed_lateness_ms - 1_000
    expected = sorted(key(msgspec.to_builtins(t)) for t in offline.transitions if t.ts <= cutoff)
    assert {k[1] for k in expected} == {"firing", "resolved"} and len(expected) >= 6

    stats = await replay(log, settings, speed=None)
    assert stats.skipped == 0

    def all_arrived(records: list[dict[str, Any]]) -> bool:
        return len([r for r in records if r["ts"] <= cutoff]) >= len(expected)

    alerts = await read_json(settings, settings.topic(settings.topic_alerts), all_arrived)
    await asyncio.sleep(3)  # anything more (it should not come) would arrive by now
    alerts = await read_json(settings, settings.topic(settings.topic_alerts), all_arrived)
    assert sorted(key(a) for a in alerts if a["ts"] <= cutoff) == expected

    def muted(records: list[dict[str, Any]]) -> bool:
        return any(r["action"] == "mute" for r in records)

    # The actions topic carries recall candidates too (tests/integration/test_recall_*).
    actions = await read_json(settings, settings.topic(settings.topic_actions), muted)
    mutes = [a for a in actions if a["action"] == "mute"]
    assert mutes and mutes[0]["room_id"] == "room-spam"
