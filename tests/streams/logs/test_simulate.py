"""Simulated nights: deterministic, valid, labelled, and dirty only when asked."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from pathlib import Path

import msgspec
import pytest

from streams.core.decode import RawMessage, decode_messages
from streams.core.events import RoomEvent
from streams.logs import simulate
from streams.logs.files import read_lines
from streams.logs.simulate import (
    SCENARIOS,
    T0,
    Room,
    Scenario,
    generate,
    labels,
    promotion,
    steady,
    write_log,
)


def small(dirty: bool = False) -> Scenario:
    return Scenario(
        "small",
        600,
        (
            Room("room-a", steady(1.0), outage=(300, 400), hype_at=(100,)),
            Room("room-b", steady(1.0), bot_flood=(200, 10), slow_region=("cn-south", 100, 200)),
        ),
        dirty=dirty,
    )


def decoded(lines: list[str]) -> tuple[int, Counter[str]]:
    messages = [RawMessage("f", 0, i, None, line.encode()) for i, line in enumerate(lines)]
    result = decode_messages(messages, check_key=False)
    return len(result.events), Counter(r.reason for r in result.rejected)


def test_a_seed_gives_the_same_night_and_another_seed_another() -> None:
    scenario = small()
    assert list(generate(scenario, 5)) == list(generate(scenario, 5))
    assert list(generate(scenario, 5)) != list(generate(scenario, 6))


def test_clean_nights_follow_the_contract_in_event_time_order() -> None:
    lines = list(generate(small(), 1))
    count, rejected = decoded(lines)
    assert count == len(lines) and not rejected
    stamps = [msgspec.json.decode(line)["ts"] for line in lines]
    assert stamps == sorted(stamps)
    kinds = Counter(msgspec.json.decode(line)["type"] for line in lines)
    assert set(kinds) == {"join", "leave", "danmaku", "order", "stall", "latency", "room"}
    outage = [
        e
        for e in map(msgspec.json.decode, lines)
        if e["room_id"] == "room-a"
        and e["type"] == "join"
        and T0 + 300_000 <= e["ts"] < T0 + 400_000
    ]
    assert outage == []  # nobody arrives during the outage


def test_dirty_nights_hold_malformed_duplicated_and_reordered_lines() -> None:
    lines = list(generate(small(dirty=True), 1))
    count, rejected = decoded(lines)
    assert rejected and count < len(lines)
    valid = [line for line in lines if line.startswith('{"type"') and line.endswith("}")]
    assert len(valid) > len(set(valid))  # duplicates
    in_file = [msgspec.json.decode(line)["ts"] for line in valid if '"ts":' in line]
    assert any(b < a for a, b in pairwise(in_file))  # out of order


def test_rooms_say_when_they_go_live_run_promotions_and_end() -> None:
    scenario = Scenario(
        "rooms",
        900,
        (
            Room("room-sale", promotion(1, 6, 120, 300, 200, 1.5)),
            Room("room-end", steady(2.0), ends_at=600),
            Room("room-dead", steady(1.0), silent_at=400),
            Room("room-late-sale", promotion(1, 4, 800, 1000, 200, 1)),  # peaks after the night
        ),
    )
    lines = list(generate(scenario, 1))
    messages = [RawMessage("f", 0, i, None, line.encode()) for i, line in enumerate(lines)]
    events = decode_messages(messages, check_key=False).events
    said = [(e.room_id, e.ts - T0, e.phase, e.promo_id) for e in events if isinstance(e, RoomEvent)]
    assert said == [
        ("room-sale", 0, "live", None),
        ("room-end", 0, "live", None),
        ("room-dead", 0, "live", None),
        ("room-late-sale", 0, "live", None),
        ("room-sale", 120_000, "promo_start", "room-sale-sale-1"),
        ("room-sale", 300_000, "promo_end", "room-sale-sale-1"),
        ("room-end", 600_000, "ended", None),
        ("room-late-sale", 800_000, "promo_start", "room-late-sale-sale-1"),
    ]
    # Each room's `live` comes before its viewers' first event.
    first = {}
    for position, event in enumerate(events):
        first.setdefault(event.room_id, position)
    assert all(isinstance(events[p], RoomEvent) for p in first.values())
    # After `ended` nobody arrives, and everyone present leaves within a minute.
    after = [e for e in events if e.room_id == "room-end" and e.ts >= T0 + 600_000]
    assert after and all(e.ts < T0 + 660_000 for e in after)
    assert {type(e).__name__ for e in after} >= {"Leave"}
    assert not any(type(e).__name__ == "Join" for e in after)
    assert [i for i in labels(scenario) if i["room_id"] == "room-end"] == []


def test_room_events_leave_the_viewers_events_as_they_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Room events draw nothing from the seed and stay out of a dirty night's disorder:
    without them, a night is the night generated before they existed."""
    for dirty in (False, True):
        lines = list(generate(small(dirty), 3))
        assert [line for line in lines if '"type":"room"' in line] == [
            f'{{"type":"room","room_id":"{room}","ts":{T0},"phase":"live"}}'
            for room in ("room-a", "room-b")
        ]
        with monkeypatch.context() as patched:
            patched.setattr(simulate, "_room_phases", lambda room, seconds: ([], []))
            without = list(generate(small(dirty), 3))
        assert [line for line in lines if '"type":"room"' not in line] == without
    promo = SCENARIOS["promo-night"]
    assert [r.room_id for r in promo.rooms if r.ends_at is not None] == ["room-fashion"]


def test_labels_list_every_injected_incident() -> None:
    assert {(i["alert"], i["room_id"]) for i in labels(small())} == {
        ("traffic_cliff", "room-a"),
        ("spam_flood", "room-b"),
        ("latency_slo", "room-b"),
    }
    outage = next(i for i in labels(small()) if i["alert"] == "traffic_cliff")
    assert (outage["start"], outage["end"]) == (T0 + 300_000, T0 + 400_000)
    assert labels(SCENARIOS["promo-night"]) == []


def test_written_logs_read_back_gzip_or_not(tmp_path: Path) -> None:
    for name in ("night.jsonl", "night.jsonl.gz"):
        count = write_log(generate(small(), 2), tmp_path / name)
        assert count == sum(1 for _ in read_lines(tmp_path / name))


def test_the_bundled_demo_night_is_the_demo_scenario() -> None:
    """`make demo` replays what `livewatch simulate --scenario demo --seed 1` writes."""
    import json

    from streams.dev.demo import NIGHT, NIGHT_LABELS

    bundled = [line.decode() for _, line in read_lines(NIGHT)]
    assert bundled == list(generate(SCENARIOS["demo"], 1))
    assert json.loads(NIGHT_LABELS.read_text())["incidents"] == labels(SCENARIOS["demo"])
    assert {i["alert"] for i in labels(SCENARIOS["demo"])} == {
        "traffic_cliff",
        "spam_flood",
        "latency_slo",
    }
