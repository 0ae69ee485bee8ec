"""A worker process on the real broker: exact viewers, counters and dead letters."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.core.events import EVENT_TYPES
from streams.dev.demo import scrape
from streams.kafka.partitioner import partition_for
from streams.settings import Settings
from tests.conftest import RunningWorker
from tests.integration.offline import fetch

pytestmark = pytest.mark.kafka

ROOMS = [f"room-{i}" for i in range(7)]


def generate_valid_events(start_ms: int, count: int, seed: int) -> list[dict[str, Any]]:
    """Joins, leaves and other events with strictly increasing event time."""
    rng = random.Random(seed)
    online: dict[str, set[str]] = {room: set() for room in ROOMS}
    events: list[dict[str, Any]] = []
    for i in range(count):
        room = rng.choice(ROOMS)
        ts = start_ms + i * 50
        present = sorted(online[room])
        roll = rng.random()
        if roll < 0.45 or not present:
            user = f"u{rng.randrange(60)}"  # re-joins of present users are duplicates
            online[room].add(user)
            events.append(
                {
                    "type": "join",
                    "room_id": room,
                    "ts": ts,
                    "user_id": user,
                    "source": rng.choice(["feed", "ad", "follow"]),
                }
            )
        elif roll < 0.65:
            user = rng.choice(present)
            online[room].discard(user)
            events.append({"type": "leave", "room_id": room, "ts": ts, "user_id": user})
        elif roll < 0.8:
            events.append(
                {
                    "type": "danmaku",
                    "room_id": room,
                    "ts": ts,
                    "user_id": rng.choice(present),
                    "text": "扣1",
                }
            )
        elif roll < 0.87:
            events.append(
                {
                    "type": "order",
                    "room_id": room,
                    "ts": ts,
                    "user_id": rng.choice(present),
                    "order_id": f"o{i}",
                    "amount": 29.9,
                }
            )
        elif roll < 0.92:
            events.append(
                {
                    "type": "stall",
                    "room_id": room,
                    "ts": ts,
                    "user_id": rng.choice(present),
                    "duration_ms": 800,
                }
            )
        else:
            events.append(
                {
                    "type": "latency",
                    "room_id": room,
                    "ts": ts,
                    "user_id": rng.choice(present),
                    "value_ms": 320.5,
                    "region": "cn-east",
                }
            )
    return events


def expected_viewers(events: list[dict[str, Any]]) -> dict[str, int]:
    online: dict[str, set[str]] = {}
    for event in sorted(events, key=lambda e: e["ts"]):
        if event["type"] == "join":
            online.setdefault(event["room_id"], set()).add(event["user_id"])
        elif event["type"] == "leave":
            online.get(event["room_id"], set()).discard(event["user_id"])
    return {room: len(users) for room, users in online.items()}


def as_messages(
    events: list[dict[str, Any]], settings: Settings, seed: int
) -> list[tuple[str, str, bytes]]:
    """(topic, room, value): runs of one room's same-topic events become JSON arrays."""
    rng = random.Random(seed)
    messages: list[tuple[str, str, bytes]] = []
    i = 0
    while i < len(events):
        topic = settings.topic_for_type(events[i]["type"])
        room = events[i]["room_id"]
        run = [events[i]]
        i += 1
        while (
            i < len(events)
            and len(run) < rng.randint(1, 6)
            and events[i]["room_id"] == room
            and settings.topic_for_type(events[i]["type"]) == topic
        ):
            run.append(events[i])
            i += 1
        value = run[0] if len(run) == 1 and rng.random() < 0.7 else run
        messages.append((topic, room, json.dumps(value, ensure_ascii=False).encode()))
    return messages


async def wait_until(check: Callable[[], bool], within: float = 90) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.5)


def metric(url: str, name: str) -> dict[str, float]:
    """One metric's samples keyed by the value of its single label ('' if none)."""
    series = scrape(url).get(name, {})
    return {(labels[0][1] if labels else ""): value for labels, value in series.items()}


async def test_worker_counts_viewers_and_dead_letters_invalid_input(
    isolated_env: dict[str, str], worker_factory: Callable[[dict[str, str]], RunningWorker]
) -> None:
    worker = worker_factory(isolated_env)
    settings, url = worker.settings, worker.metrics_url
    start = int(time.time() * 1000) - 600_000
    events = generate_valid_events(start, 400, seed=11)
    messages = as_messages(events, settings, seed=12)
    assert any(value.startswith(b"[") for _, _, value in messages)

    t = start + 1_000
    good_order = {
        "type": "order",
        "room_id": "room-0",
        "ts": t,
        "user_id": "u1",
        "order_id": "ok",
        "amount": 5,
    }
    bad_order = {**good_order, "order_id": "neg", "amount": -5}
    invalid = [  # (topic, key, value, reason, index in batch)
        (settings.topic(settings.topic_danmaku), b"room-0", b"{not json", "not_json", None),
        (settings.topic(settings.topic_joins), b"room-1", b"\xff\xfe{}", "not_utf8", None),
        (
            settings.topic(settings.topic_orders),
            b"room-0",
            json.dumps([good_order, bad_order]).encode(),
            "invalid_field",
            1,
        ),
        (
            settings.topic(settings.topic_joins),
            b"room-2",
            json.dumps({"type": "teleport", "room_id": "room-2", "ts": t, "user_id": "u"}).encode(),
            "unknown_type",
            None,
        ),
        (
            settings.topic(settings.topic_stalls),
            b"room-3",
            json.dumps({"type": "stall", "room_id": "room-3", "ts": t, "user_id": "u"}).encode(),
            "missing_field",
            None,
        ),
        (
            settings.topic(settings.topic_latency),
            b"room-4",
            b'{"type":"latency","room_id":"room-4","ts":%d,"user_id":"u","value_ms":NaN}' % t,
            "not_json",
            None,
        ),
        (
            settings.topic(settings.topic_joins),
            b"x" * 129,
            json.dumps({"type": "join", "room_id": "x" * 129, "ts": t, "user_id": "u"}).encode(),
            "invalid_field",
            None,
        ),
        (
            settings.topic(settings.topic_joins),
            b"room-5",
            json.dumps({"type": "join", "room_id": "room-6", "ts": t, "user_id": "u"}).encode(),
            "key_mismatch",
            None,
        ),
        # Nested past msgspec's recursion limit: once a poison pill that crashed the agent.
        (settings.topic(settings.topic_danmaku), b"room-0", b"[" * 50_000, "not_an_event", None),
        (
            settings.topic(settings.topic_joins),
            b"room-1",
            b'{"type":"join","room_id":"room-1","ts":%d,"user_id":"u","x":%s%s}'
            % (t, b"[" * 20_000, b"]" * 20_000),
            "too_deep",
            None,
        ),
    ]
    absurd = (
        settings.topic(settings.topic_danmaku),
        b"room-1",
        json.dumps(
            {
                "type": "danmaku",
                "room_id": "room-1",
                "ts": start - 3 * 86_400_000,
                "user_id": "u",
                "text": "old",
            }
        ).encode(),
        "ts_out_of_bounds",
        None,
    )

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    located: list[tuple[str, int, int, str, int | None]] = []
    try:
        for topic, room, value in messages:
            await producer.send(topic, value, key=room.encode())
        for topic, key, value, reason, index in invalid:
            meta = await producer.send_and_wait(topic, value, key=key)
            # The offline drivers place rooms exactly where Kafka does.
            assert meta.partition == partition_for(key.decode(), settings.partitions)
            located.append((topic, meta.partition, meta.offset, reason, index))
        await producer.flush()

        want_types = Counter(e["type"] for e in events) + Counter({"order": 1})
        want_viewers = expected_viewers(events)

        def caught_up() -> bool:
            totals = metric(url, "livewatch_events_total")
            viewers = metric(url, "livewatch_room_online_viewers")
            return totals == {k: float(want_types[k]) for k in totals} and viewers == {
                room: float(n) for room, n in want_viewers.items()
            }

        await wait_until(caught_up)
        status = json.loads(await asyncio.to_thread(fetch, url.replace("/metrics", "/status")))
        assert status["events"] == sum(want_types.values())
        assert status["rooms"] == len(want_viewers) and status["partitions"] == [0, 1, 2, 3]
        # The clock exists now, so a timestamp three days old is judged against it.
        topic, key, value, reason, index = absurd
        meta = await producer.send_and_wait(topic, value, key=key)
        located.append((topic, meta.partition, meta.offset, reason, index))
        await wait_until(
            lambda: metric(url, "livewatch_events_invalid_total")["ts_out_of_bounds"] == 1
        )
    finally:
        await producer.stop()

    invalid_counts = metric(url, "livewatch_events_invalid_total")
    assert {k: v for k, v in invalid_counts.items() if v} == {
        reason: float(n) for reason, n in Counter(loc[3] for loc in located).items()
    }
    assert metric(url, "livewatch_events_total") == {
        k: float(want_types[k])
        for k in EVENT_TYPES  # no room events sent: room is 0
    }
    assert metric(url, "livewatch_online_viewers")[""] == sum(want_viewers.values())

    letters = await read_topic(settings, settings.topic(settings.topic_deadletter), len(located))
    found = sorted(
        (d["topic"], d["partition"], d["offset"], d["reason"], d["index"]) for d in letters
    )
    assert found == sorted(located)
    by_place = {(d["topic"], d["partition"], d["offset"], d["index"]): d for d in letters}
    for (topic, partition, offset, _, index), (_, key, value, _, _) in zip(
        located, [*invalid, absurd], strict=False
    ):
        letter = by_place[(topic, partition, offset, index)]
        assert letter["detail"]
        assert letter["key"] == key.decode()
        if (
            index is None
            and not letter["payload_truncated"]
            and letter["payload_encoding"] == "utf-8"
        ):
            assert letter["payload"] == value.decode()  # the whole message, as sent
    assert by_place[(*located[1][:3], None)]["payload_encoding"] == "base64"
    batch_element = by_place[(*located[2][:3], 1)]
    assert json.loads(batch_element["payload"])["order_id"] == "neg"


async def read_topic(
    settings: Settings, topic: str, count: int, within: float = 30
) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + within
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                records += [json.loads(m.value) for m in messages]
    finally:
        await consumer.stop()
    return records
