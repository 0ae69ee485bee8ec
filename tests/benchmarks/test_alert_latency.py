"""The event-to-alert benchmark's platform: valid events, and the incidents it says it injects."""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec

from benchmarks import alert_latency
from benchmarks.alert_latency import CLASSES, SLICE_S, TAIL_S, Platform, nearest_rank
from streams.core.decode import RawMessage, decode_messages
from streams.settings import load_settings

T0 = 1_764_000_000_000


def test_the_default_schedule_staggers_enough_incidents_after_the_warm_up() -> None:
    platform = Platform(10_000)
    incidents = platform.incidents
    assert len(incidents) >= 20
    assert Counter(i.alert for i in incidents) == dict.fromkeys(CLASSES, 8)
    starts = [i.at_s for i in incidents]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert starts[0] >= 240 and starts[-1] <= 600 - TAIL_S
    assert len({i.room for i in incidents}) == len(incidents)
    sizes = [len(platform.viewers[i.room]) for i in incidents]
    assert min(sizes) >= alert_latency.MIN_INCIDENT_VIEWERS
    assert all(i.region in alert_latency.REGIONS for i in incidents if i.alert == "latency_slo")
    # As many viewers as send a latency sample every 10 s at the rate.
    assert abs(sum(len(v) for v in platform.viewers) - 75_000) < 1_000


def test_every_event_is_valid_and_each_incident_sends_what_it_should() -> None:
    platform = Platform(1_000, rooms=50, incidents=3, duration_s=TAIL_S + 4, warmup_s=2)
    settings = load_settings(environ={})
    by_class = {i.alert: i for i in platform.incidents}
    cliff_room, spam_room = by_class["traffic_cliff"], by_class["spam_flood"]
    breach = by_class["latency_slo"]
    cliff_before = len(platform.viewers[cliff_room.room])
    messages: list[RawMessage] = []
    stamped: list[tuple[int, dict[str, Any]]] = []
    for k in range(int(40 / SLICE_S)):
        ts = T0 + k * 10
        for event in platform.events(k, ts):
            stamped.append((ts, event))
            topic = settings.topic_for_type(event["type"])
            value = msgspec.json.encode(event)
            messages.append(RawMessage(topic, 0, len(messages), event["room_id"].encode(), value))
    decoded = decode_messages(messages, check_key=True)
    assert decoded.rejected == [] and len(decoded.events) == len(messages)
    assert all(event["ts"] == ts for ts, event in stamped)
    assert {e["type"] for _, e in stamped} == {
        "join",
        "leave",
        "danmaku",
        "order",
        "stall",
        "latency",
    }
    background = sum(1 for _, e in stamped if not str(e["user_id"]).startswith("bot"))
    assert abs(background / 40 - 1_000) < 100  # the rate, plus the cliff's leaves
    for incident in platform.incidents:
        assert incident.start_ms == T0 + round(incident.at_s / SLICE_S) * 10

    # The cliff: 80% of the room leaves within 5 s, and sends nothing afterwards.
    start = cliff_room.start_ms
    assert start is not None
    in_room = [(ts, e) for ts, e in stamped if e["room_id"] == cliff_room.room_id]
    left = {
        e["user_id"] for ts, e in in_room if e["type"] == "leave" and start <= ts < start + 5_000
    }
    assert len(left) >= 0.75 * cliff_before
    assert not [e for ts, e in in_room if ts > start + 5_000 and e["user_id"] in left]

    # The flood: fresh accounts join, then post near-identical texts three times each.
    start = spam_room.start_ms
    assert start is not None
    bots = [(ts, e) for ts, e in stamped if str(e["user_id"]).startswith("bot")]
    assert all(e["room_id"] == spam_room.room_id and ts >= start for ts, e in bots)
    joined = {e["user_id"]: ts for ts, e in bots if e["type"] == "join"}
    said = Counter(e["user_id"] for ts, e in bots if e["type"] == "danmaku")
    assert len(joined) == alert_latency.BOTS and set(said.values()) == {alert_latency.BOT_MESSAGES}
    assert all(
        joined[e["user_id"]] < ts < joined[e["user_id"]] + 10_000
        for ts, e in bots
        if e["type"] == "danmaku"
    )

    # The breach: the region's samples in the room are all over the objective, others mostly not.
    start = breach.start_ms
    assert start is not None
    samples = [
        (e["region"], e["value_ms"])
        for ts, e in stamped
        if e["type"] == "latency" and e["room_id"] == breach.room_id and ts >= start
    ]
    bad = [v for region, v in samples if region == breach.region]
    good = [v for region, v in samples if region != breach.region]
    assert bad and min(bad) >= 800
    assert sum(v > 600 for v in good) < 0.05 * len(good)


def test_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank(values, 50) == 50 and nearest_rank(values, 99) == 99
    assert nearest_rank([3.0, 1.0, 2.0], 99) == 3.0
