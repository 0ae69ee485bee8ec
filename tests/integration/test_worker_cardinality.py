"""A flood of junk room ids through the real broker: the worker's rooms, memory and
series stay bounded, every refused event is dead-lettered, the real room is unaffected."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from streams.dev.demo import scrape
from streams.kafka.topics import ensure_topics
from streams.settings import Settings, env_name, load_settings
from tests.conftest import RunningWorker
from tests.integration.test_worker_end_to_end import read_topic
from tests.integration.workers import eventually, peak_rss_mib

JUNK_ROOMS = int(os.environ.get("LIVEWATCH_SOAK_JUNK_ROOMS", "60000"))
"""Distinct junk room ids sent to the worker; `make soak` sends a million."""
MAX_ROOMS = 500
REAL_VIEWERS = 40


def _join(room: str, ts: int, user: str) -> bytes:
    return json.dumps({"type": "join", "room_id": room, "ts": ts, "user_id": user}).encode()


async def _produce(settings: Settings, messages: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=20,
        max_batch_size=1 << 20,
        enable_idempotence=True,  # retries neither duplicate nor reorder
    )
    await producer.start()
    try:
        topic = settings.topic_for_type("join")
        for start in range(0, len(messages), 5_000):
            sent = [
                await producer.send(topic, value, key=room.encode())
                for room, value in messages[start : start + 5_000]
            ]
            for future in sent:
                await future
    finally:
        await producer.stop()


def _scrape_lines(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.read().decode().count("\n"))


@pytest.mark.timeout(int(300 + JUNK_ROOMS / 500))  # a million: about 25 min of budget
async def test_a_flood_of_room_ids_keeps_the_worker_bounded(
    isolated_env: dict[str, str], worker_factory: Callable[[dict[str, str]], RunningWorker]
) -> None:
    env = {**isolated_env, env_name("max_rooms"): str(MAX_ROOMS)}
    settings = load_settings(environ=env)
    start = int(time.time() * 1000) - 60_000
    real = [("real-room", _join("real-room", start + i, f"v{i}")) for i in range(REAL_VIEWERS)]
    # Spread over 7 s of event time whatever their number, so the real room's later
    # joins (at +9 s) come after all of them.
    junk = [
        (f"junk-{i}", _join(f"junk-{i}", start + 1_000 + i * 7_000 // JUNK_ROOMS, "u"))
        for i in range(JUNK_ROOMS)
    ]
    later = [("real-room", _join("real-room", start + 9_000, f"w{i}")) for i in range(10)]
    # Written before the worker starts: it drains a backlog, so event time follows the
    # events (a worker idle between a slow producer's bursts lets it follow the wall clock).
    assert await ensure_topics(settings) == 4
    await _produce(settings, real + junk + later)
    total = len(real) + len(junk) + len(later)
    worker = worker_factory(env)
    url = worker.metrics_url

    def handled() -> float:
        samples = scrape(url)
        return sum(samples.get("livewatch_events_total", {}).values()) + sum(
            samples.get("livewatch_events_invalid_total", {}).values()
        )

    async def all_handled() -> bool:
        # Every message taken, and applied: the last partition's events wait for its
        # sources to go quiet before the watermark passes them.
        watermarks = scrape(url).get("livewatch_partition_watermark_timestamp_seconds", {})
        applied = len(watermarks) == 4 and min(watermarks.values()) * 1000 >= start + 9_000
        return handled() >= total and applied

    await eventually(all_handled, within=max(120, JUNK_ROOMS / 1_000))
    samples = scrape(url)
    rooms = samples["livewatch_rooms"][()]
    refused = samples["livewatch_events_invalid_total"][(("reason", "room_budget"),)]
    # Every partition full of live rooms (each junk room has its viewer online): the
    # rest refused, nothing evicted (there was nothing empty to evict).
    assert rooms == 4 * MAX_ROOMS
    assert refused == JUNK_ROOMS - (rooms - 1)
    assert samples["livewatch_rooms_evicted_total"][()] == 0
    assert samples["livewatch_events_late_total"][()] == 0
    # The real room, known before the flood, got every one of its viewers.
    online = samples["livewatch_room_online_viewers"]
    assert online[(("room", "real-room"),)] == REAL_VIEWERS + 10
    # Per-room series only for the top rooms: the scrape stays small.
    lines = _scrape_lines(url)
    assert lines < 15_000, lines  # ~40 series for each of the top_rooms (200), and the rest
    peak = peak_rss_mib(worker.process.pid)
    assert peak < 400, f"worker peak RSS {peak:.0f} MiB"
    # Each refused event is a dead letter with its reason.
    letters = await read_topic(
        settings,
        settings.topic(settings.topic_deadletter),
        int(refused),
        within=max(30, refused / 5_000),
    )
    assert len(letters) == refused
    assert {letter["reason"] for letter in letters} == {"room_budget"}
    assert all(letter["key"].startswith("junk-") for letter in letters)
    print(f"rooms {rooms:.0f}, refused {refused:.0f}, scrape {lines} lines, peak {peak:.0f} MiB")
