"""Simulated nights: deterministic, valid, labelled, and dirty only when asked."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from pathlib import Path

import msgspec

from streams.core.decode import RawMessage, decode_messages
from streams.logs.files import read_lines
from streams.logs.simulate import SCENARIOS, T0, Room, Scenario, generate, labels, steady, write_log


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
    assert set(kinds) == {"join", "leave", "danmaku", "order", "stall", "latency"}
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
