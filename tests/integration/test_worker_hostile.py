"""Hostile messages by the ten thousand through the real topics, among valid events.

Every hostile message is a dead letter with its reason and counted; the worker never
stops; the valid events mixed in give exactly the room metrics the offline pipeline
computes from them alone; the worker's memory stays under a documented bound
(docs/reliability.md). The suite sends 20,000; `make soak` sends 100,000
(LIVEWATCH_SOAK_HOSTILE).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streams.core.decode import INVALID_REASONS
from streams.dev.demo import scrape
from streams.kafka.topics import ensure_topics
from streams.settings import Settings, env_name, load_settings
from tests.conftest import RunningWorker
from tests.integration.offline import fetch, offline_exposition, room_state_samples
from tests.integration.test_worker_end_to_end import generate_valid_events, read_topic
from tests.integration.workers import eventually, peak_rss_mib

pytestmark = pytest.mark.kafka

HOSTILE = int(os.environ.get("LIVEWATCH_SOAK_HOSTILE", "20000"))
VALID = 3_000
PEAK_RSS_MIB = 600
"""The bound docs/reliability.md gives for this attack."""


def _event(kind: str, room: str, ts: Any, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "room_id": room, "ts": ts, "user_id": "u", **fields}


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def hostile_message(i: int, room: str, now_ms: int) -> tuple[str, bytes | None, bytes, str]:
    """(event type whose topic carries it, key, value, expected reason): the i-th attack."""
    key = room.encode()
    past = now_ms - 60_000
    attacks: list[tuple[str, bytes | None, bytes, str]] = [
        ("join", key, b"[" * 100_000, "not_an_event"),
        ("join", key, b'{"type":"join","x":' + b"[" * 5_000 + b"]" * 5_000 + b"}", "too_deep"),
        ("danmaku", key, _json(_event("danmaku", room, past, text="扣1"))[:40], "not_json"),
        (
            "order",
            key,
            _json(_event("order", room, str(past), order_id="o", amount=5)),
            "invalid_field",
        ),
        (
            "latency",
            key,
            b'{"type":"latency","room_id":"%s","ts":%d,"user_id":"u","value_ms":NaN}' % (key, past),
            "not_json",
        ),
        (
            "latency",
            key,
            b'{"type":"latency","room_id":"%s","ts":%d,"user_id":"u","value_ms":Infinity}'
            % (key, past),
            "not_json",
        ),
        (
            "join",
            key,
            b'{"type":"join","room_id":"%s","ts":99999999999999999999999,"user_id":"u"}' % key,
            "invalid_field",
        ),
        (
            "order",
            key,
            _json(_event("order", room, past, order_id="o", amount=-5)),
            "invalid_field",
        ),
        ("stall", key, _json(_event("stall", room, past, duration_ms=1e12)), "invalid_field"),
        ("join", key, _json(_event("join", room, now_ms + 86_400_000)), "ts_out_of_bounds"),
        ("join", key, _json(_event("join", room, 1)), "invalid_field"),  # before 2000
        ("join", key, b'{"type":"join","room_id":"\xff\xfe","ts":1,"user_id":"u"}', "not_utf8"),
        ("join", key, _json(_event("teleport", room, past)), "unknown_type"),
        ("join", key, _json("扣1"), "not_an_event"),
        ("join", key, b"", "not_json"),
        ("join", b"", _json(_event("join", room, past)), "key_mismatch"),
        ("join", None, _json(_event("join", room, past)), "key_mismatch"),
        (
            "join",
            key,
            _json({**_event("join", room, past), "user_id": "u" * 100_000}),
            "invalid_field",
        ),
        ("stall", key, _json({"type": "stall", "room_id": room, "ts": past}), "missing_field"),
    ]
    if i % 5_000 == 4_999:  # up to the broker's limit (message.max.bytes, 1 MiB)
        text = "刷" * 330_000
        return ("danmaku", key, _json(_event("danmaku", room, past, text=text)), "invalid_field")
    return attacks[i % len(attacks)]


async def _produce(settings: Settings, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=20,
        max_batch_size=1 << 20,
        max_request_size=1_048_000,
        enable_idempotence=True,  # retries neither duplicate nor reorder
    )
    await producer.start()
    try:
        for start in range(0, len(messages), 2_000):
            sent = [
                await producer.send(settings.topic_for_type(kind), value, key=key)
                for kind, key, value in messages[start : start + 2_000]
            ]
            for future in sent:
                await future
    finally:
        await producer.stop()


@pytest.mark.timeout(int(300 + HOSTILE / 100))  # 100,000 in make soak: 20 min of budget
async def test_hostile_messages_are_dead_letters_and_valid_ones_count_exactly(
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    env = {**isolated_env, env_name("idle_after_s"): "3600"}
    settings = load_settings(environ=env)
    now_ms = int(time.time() * 1000)
    valid = generate_valid_events(now_ms - 300_000, VALID, seed=5)
    log = tmp_path / "valid.jsonl"
    log.write_bytes(b"".join(_json(event) + b"\n" for event in valid))
    rng = random.Random(6)
    rooms = sorted({event["room_id"] for event in valid})
    hostile = [hostile_message(i, rng.choice(rooms), now_ms) for i in range(HOSTILE)]
    # Valid events in event-time order, the attacks scattered between them after the
    # first hundred (a partition's first event sets its clock, which judges the rest).
    slots = list(range(100)) + sorted(rng.sample(range(100, HOSTILE + VALID), VALID - 100))
    messages: list[tuple[str, bytes | None, bytes]] = []
    attacks = iter(hostile)
    events = iter(valid)
    taken = 0
    for position in range(HOSTILE + VALID):
        if taken < VALID and slots[taken] == position:
            event = next(events)
            messages.append((event["type"], event["room_id"].encode(), _json(event)))
            taken += 1
        else:
            kind, key, value, _ = next(attacks)
            messages.append((kind, key, value))
    assert await ensure_topics(settings) == 4
    started = time.monotonic()
    await _produce(settings, messages)
    produced_s = time.monotonic() - started
    worker = worker_factory(env)
    url = worker.metrics_url

    def invalid() -> Counter[str]:
        series = scrape(url).get("livewatch_events_invalid_total", {})
        return Counter({dict(k)["reason"]: int(v) for k, v in series.items() if v})

    def valid_counted() -> int:
        return int(sum(scrape(url).get("livewatch_events_total", {}).values()))

    async def all_taken() -> bool:
        return sum(invalid().values()) >= HOSTILE and valid_counted() >= VALID

    started = time.monotonic()
    try:
        await eventually(all_taken, within=max(240, HOSTILE / 200))
    finally:
        print(f"invalid {dict(invalid())}, valid {valid_counted()}")
    processed_s = time.monotonic() - started
    assert worker.process.poll() is None, "the worker is still running"
    assert invalid() == Counter(reason for *_, reason in hostile)
    assert valid_counted() == VALID
    expected = room_state_samples(
        offline_exposition(log, settings.partitions, settings.allowed_lateness_ms)
    )

    async def rooms_equal_offline() -> bool:
        return room_state_samples(await asyncio.to_thread(fetch, url)) == expected

    await eventually(rooms_equal_offline, within=30)
    letters = await read_topic(
        settings, settings.topic(settings.topic_deadletter), HOSTILE, within=max(30, HOSTILE / 500)
    )
    assert len(letters) == HOSTILE
    assert Counter(letter["reason"] for letter in letters) == invalid()
    assert all(letter["reason"] in INVALID_REASONS and letter["detail"] for letter in letters)
    peak = peak_rss_mib(worker.process.pid)
    print(
        f"{HOSTILE} hostile + {VALID} valid messages: produced in {produced_s:.1f} s, "
        f"processed in {processed_s:.1f} s, worker peak RSS {peak:.0f} MiB"
    )
    assert peak < PEAK_RSS_MIB, f"worker peak RSS {peak:.0f} MiB"
