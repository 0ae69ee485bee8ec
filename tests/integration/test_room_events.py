"""Room events through the real broker: a worker consumes `live.rooms` co-partitioned
with the other sources, a stream that ended does not page, a dead one still does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from streams.dev.demo import scrape
from streams.kafka.partitioner import partition_for
from streams.logs.backtest import run_backtest
from streams.logs.replay import replay
from streams.logs.simulate import T0, Room, Scenario, generate, steady, write_log
from streams.settings import env_name
from tests.conftest import RunningWorker
from tests.integration.workers import alert_transitions, eventually, topic_records

pytestmark = pytest.mark.kafka


def _same_partition(partitions: int) -> tuple[str, str, str]:
    """A room that ends, one that goes silent and a busy one, in one partition: the
    busy room's events carry its clock past the others' end."""
    target = partition_for("room-end-0", partitions)
    return tuple(  # type: ignore[return-value]
        next(
            f"room-{kind}-{i}"
            for i in range(100)
            if partition_for(f"room-{kind}-{i}", partitions) == target
        )
        for kind in ("end", "dead", "busy")
    )


async def test_a_worker_reads_live_rooms_and_an_ended_stream_does_not_page(
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    env = {**isolated_env, env_name("ended_grace_s"): "120"}
    worker = worker_factory(env)
    settings = worker.settings
    ended, dead, busy = _same_partition(settings.partitions)
    night = Scenario(
        "rooms",
        660,
        (
            Room(ended, steady(2.0), ends_at=360),  # ~600 viewers leave within a minute
            Room(dead, steady(2.0), silent_at=360),  # its ingest dies: no `ended`
            Room(busy, steady(1.0)),
        ),
    )
    lines = list(generate(night, 1))
    # A room event with a phase nobody knows: dead-lettered from `live.rooms`.
    bad = f'{{"type":"room","room_id":"{busy}","ts":{T0 + 100_000},"phase":"paused"}}'
    at = next(i for i, line in enumerate(lines) if json.loads(line)["ts"] >= T0 + 100_000)
    lines.insert(at, bad)
    log = tmp_path / "rooms.jsonl"
    write_log(iter(lines), log)
    room_lines = [line for line in lines if '"type":"room"' in line]
    assert len(room_lines) == 5  # three `live`, one `ended`, the bad one

    offline = run_backtest(log, settings)
    paged = [(t.alert, t.state, t.room_id) for t in offline.transitions]
    assert paged == [("traffic_cliff", "firing", dead)]  # the ended room says nothing

    stats = await replay(log, settings, speed=None)
    assert stats.skipped == 0 and stats.produced == len(lines)
    rooms_topic = settings.source_topics["rooms"]
    assert len(await topic_records(settings, rooms_topic)) == 5

    async def fired() -> bool:
        return any(a["room_id"] == dead for a in await alert_transitions(settings))

    await eventually(fired, within=60)

    async def grace_over() -> bool:
        # The ended room's series go `ended_grace_s` after its end; the others stay.
        online = scrape(worker.metrics_url).get("livewatch_room_online_viewers", {})
        rooms = {dict(labels)["room"] for labels in online}
        return busy in rooms and ended not in rooms

    await eventually(grace_over, within=30)

    # What the backtest found up to the end of the input, the worker sent; the ended
    # room nothing at all.
    cutoff = max(json.loads(line)["ts"] for line in lines) - settings.allowed_lateness_ms - 1_000
    alerts = await alert_transitions(settings)
    assert not [a for a in alerts if a["room_id"] == ended]
    expected = [msgspec.to_builtins(t) for t in offline.transitions if t.ts <= cutoff]
    assert [a for a in alerts if a["ts"] <= cutoff] == expected

    metrics = scrape(worker.metrics_url)
    assert metrics["livewatch_events_total"][(("type", "room"),)] == 4
    invalid = {dict(k)["reason"]: v for k, v in metrics["livewatch_events_invalid_total"].items()}
    assert {reason: n for reason, n in invalid.items() if n} == {"invalid_field": 1}
    assert sum(metrics["livewatch_events_late_total"].values()) == 0
    letters = [
        json.loads(value)
        for _, _, value in await topic_records(settings, settings.topic(settings.topic_deadletter))
    ]
    assert [(d["reason"], d["topic"]) for d in letters] == [("invalid_field", rooms_topic)]
    assert "$.phase" in letters[0]["detail"]
