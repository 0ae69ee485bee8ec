"""Detectors through the offline driver: every injected incident, nothing else."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from detectors.alerts import Transition
from streams.kafka.partitioner import partition_for
from streams.logs.backtest import BacktestResult, _run_lanes, run_backtest
from streams.logs.scoring import score
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
from streams.logs.split import LogSplitter, Parcel, Part
from streams.settings import load_settings
from streams.worker.exporter import PipelineCollector
from tests.exposition import samples

CONTRACT = {"alert", "state", "room_id", "ts", "severity", "summary", "fingerprint", "details"}
LIMITS_S = {"traffic_cliff": 60, "spam_flood": 30, "latency_slo": 180, "stall_slo": 180}
CLI = [sys.executable, "-m", "streams.cli.main"]


def night(directory: Path, name: str, seed: int) -> Path:
    return _written(SCENARIOS[name], seed, directory / f"{name}-{seed}.jsonl.gz")


def _written(scenario: Scenario, seed: int, path: Path) -> Path:
    write_log(generate(scenario, seed), path)
    return path


@pytest.fixture(scope="module")
def mixed_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return night(tmp_path_factory.mktemp("mixed"), "mixed", 1)


@pytest.fixture(scope="module")
def mixed(mixed_log: Path) -> BacktestResult:
    return run_backtest(mixed_log, load_settings(environ={}))


def firing(result: BacktestResult, room: str) -> list[Transition]:
    return [t for t in result.transitions if t.state == "firing" and t.room_id == room]


def test_the_mixed_night_meets_the_quality_bar(mixed: BacktestResult) -> None:
    """Every incident found within its limit, nothing else, dirty input and all."""
    assert mixed.pipeline is not None and sum(mixed.pipeline.invalid_total.values()) > 0
    scores = score(mixed.transitions, labels(SCENARIOS["mixed"]))
    assert set(scores) == set(LIMITS_S)
    for alert, entry in scores.items():
        assert (entry.recall, entry.precision) == (1.0, 1.0), alert
        assert max(entry.delays_s) <= LIMITS_S[alert], (alert, entry.delays_s)


def test_alerts_carry_what_an_operator_acts_on(mixed: BacktestResult) -> None:
    feed_cut = firing(mixed, "room-feedcut")[0]
    assert any("'feed' collapsed" in hint for hint in feed_cut.details["hints"])
    outage = firing(mixed, "room-outage")
    assert not any("collapsed" in hint for t in outage for hint in t.details["hints"])
    assert any(t.details["silent"] for t in outage)  # the viewers all left: silence announced
    latency = firing(mixed, "room-latency")[0]
    assert latency.region == "cn-south"
    mute = [a for a in mixed.actions if a["room_id"] == "room-spam" and a["action"] == "mute"]
    assert mute and all(u.startswith("bot") for u in mute[0]["user_ids"])


@pytest.mark.parametrize("seed", [2, 3])
def test_a_normal_promotion_night_stays_quiet(tmp_path: Path, seed: int) -> None:
    """Ebbs after promotions, hype bursts, a steady room and a tiny room: no alert."""
    result = run_backtest(night(tmp_path, "promo-night", seed), load_settings(environ={}))
    assert [(t.room_id, t.alert, t.summary) for t in result.transitions] == []


def test_a_room_going_silent_alone_in_its_partition_still_fires(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    silent = "room-quiet-0"
    busy = next(
        f"room-busy-{i}"
        for i in range(100)
        if partition_for(f"room-busy-{i}", settings.partitions)
        != partition_for(silent, settings.partitions)
    )
    scenario = Scenario(
        "silent", 1100, (Room(silent, steady(2.0), silent_at=900), Room(busy, steady(2.0)))
    )
    result = run_backtest(_written(scenario, 1, tmp_path / "silent.jsonl"), settings)
    alerts = [t for t in result.transitions if t.state == "firing"]
    assert {t.room_id for t in alerts} == {silent}
    assert alerts[0].alert == "traffic_cliff" and alerts[0].ts - (T0 + 900_000) <= 60_000
    assert any(t.details["silent"] for t in alerts)


def test_the_promotion_ebb_is_measured_and_exported(tmp_path: Path) -> None:
    result = run_backtest(night(tmp_path, "promo-night", 1), load_settings(environ={}))
    assert result.pipeline is not None
    registry = CollectorRegistry()
    registry.register(PipelineCollector(result.pipeline))
    scraped = samples(generate_latest(registry).decode())
    half_lives = {
        dict(labels)["room"]: value
        for (name, labels), value in scraped.items()
        if name == "livewatch_room_ebb_half_life_seconds"
    }
    # room-beauty's arrivals ebb with a 5-minute half-life after its peak at 15 min,
    # room-snacks' with 7 minutes after 23 min; stays of ~4-5 minutes slow the audience's fall.
    assert set(half_lives) == {"room-beauty", "room-snacks"}
    assert 300 <= half_lives["room-beauty"] <= 1200
    progress = scraped[("livewatch_room_ebb_progress_ratio", (("room", "room-beauty"),))]
    assert 0.5 < progress <= 1  # 25 minutes into the ebb when the night ends
    # The review of the promotions their room events told of: measured from promo_end.
    review = {
        (name, labels): value
        for (name, labels), value in scraped.items()
        if name.startswith("livewatch_room_promotion_") and ("room", "room-beauty") in labels
    }
    beauty = (("room", "room-beauty"),)
    assert review[("livewatch_room_promotion_active", beauty)] == 0
    assert review[("livewatch_room_promotion_end_timestamp_seconds", beauty)] == T0 / 1000 + 900
    assert 300 <= review[("livewatch_room_promotion_ebb_half_life_seconds", beauty)] <= 1200
    viewers = {
        dict(labels)["at"]: value
        for (name, labels), value in review.items()
        if name == "livewatch_room_promotion_viewers"
    }
    assert viewers["before"] < viewers["start"] < viewers["end"] <= viewers["peak"]
    assert viewers["floor"] < viewers["peak"] / 4
    after_10m = (("after", "10m"), *beauty)
    assert 0 < review[("livewatch_room_promotion_retention_ratio", after_10m)] < 0.5
    # 25 minutes of the hour after: no 30 or 60 minute mark yet.
    assert ("livewatch_room_promotion_retention_ratio", (("after", "30m"), *beauty)) not in review
    during = (("phase", "during"), *beauty)
    assert review[("livewatch_room_promotion_orders", during)] > 0
    assert review[("livewatch_room_promotion_orders_per_viewer_hour", during)] > 0
    # No promotion events in the other rooms: inactive, nothing reviewed.
    phones = (("room", "room-phones"),)
    assert scraped[("livewatch_room_promotion_active", phones)] == 0
    assert ("livewatch_room_promotion_viewers", (("at", "start"), *phones)) not in scraped


def test_the_cli_writes_the_alert_contract_and_the_actions(
    mixed: BacktestResult, mixed_log: Path, tmp_path: Path
) -> None:
    out, actions_out = tmp_path / "alerts.jsonl", tmp_path / "actions.jsonl"
    done = subprocess.run(
        [*CLI, "backtest", str(mixed_log), "--alerts-out", str(out), "--actions-out",
         str(actions_out), "--jobs", "2"],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and all(set(line) >= CONTRACT for line in lines)
    assert {line["state"] for line in lines} <= {"firing", "resolved"}
    assert "spam_flood" in done.stdout
    # The actions the worker would send, one object a line, in event-time order: the
    # same from two lanes as from the one of the `mixed` fixture.
    actions = [json.loads(line) for line in actions_out.read_text().splitlines()]
    assert actions == mixed.actions
    assert {a["action"] for a in actions} == {"mute", "recall"}
    recall = next(a for a in actions if a["action"] == "recall")
    assert list(recall) == ["action", "room_id", "user_id", "ts", "reason", "fingerprint"]
    assert [a["ts"] for a in actions] == sorted(a["ts"] for a in actions)


def test_simulate_then_backtest_with_labels_from_the_command_line(tmp_path: Path) -> None:
    log, labels_file = tmp_path / "spam.jsonl.gz", tmp_path / "labels.json"
    subprocess.run(
        [*CLI, "simulate", "--scenario", "spam", "--seed", "3", "--out", str(log),
         "--labels-out", str(labels_file)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert json.loads(labels_file.read_text())["incidents"][0]["alert"] == "spam_flood"
    done = subprocess.run(
        [*CLI, "backtest", str(log), "--labels", str(labels_file)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    row = next(line for line in done.stdout.splitlines() if line.startswith("spam_flood "))
    assert row.split()[1:4] == ["1", "1.00", "1.00"]


def test_metric_snapshots_every_minute_of_event_time(tmp_path: Path) -> None:
    scenario = Scenario("two", 300, (Room("room-a", steady(1)), Room("room-b", steady(0.5))))
    log = _written(scenario, 1, tmp_path / "two.jsonl")
    out = tmp_path / "metrics.jsonl"
    subprocess.run(
        [*CLI, "backtest", str(log), "--metrics-out", str(out),
         "--set", "detectors.cliff.drop_warning=0.3"],
        check=True, capture_output=True,
    )  # fmt: skip
    snapshots = [json.loads(line) for line in out.read_text().splitlines()]
    stamps = sorted({s["ts"] for s in snapshots})
    assert stamps == [T0 + k * 60_000 for k in range(1, len(stamps) + 1)] and len(stamps) >= 4
    assert {s["room_id"] for s in snapshots} == {"room-a", "room-b"}
    last_a = [s for s in snapshots if s["room_id"] == "room-a"][-1]["metrics"]
    assert last_a["online_viewers_live"] > 0 and "entries_per_minute_1m" in last_a
    assert last_a["entries_per_minute_5m"] == pytest.approx(60, rel=0.25)


def test_metric_snapshots_carry_the_promotion_review(tmp_path: Path) -> None:
    scenario = Scenario("promo", 1200, (Room("room-p", promotion(1, 6, 200, 400, 200, 1.5)),))
    log = _written(scenario, 2, tmp_path / "promo.jsonl")
    out = tmp_path / "metrics.jsonl"
    subprocess.run(
        [*CLI, "backtest", str(log), "--metrics-out", str(out)], check=True, capture_output=True
    )
    snapshots = {s["ts"]: s["metrics"] for s in map(json.loads, out.read_text().splitlines())}
    assert snapshots[T0 + 180_000]["promotion_active"] == 0  # before its start
    assert snapshots[T0 + 180_000]["promotion_start_ts"] is None
    running = snapshots[T0 + 300_000]
    assert running["promotion_active"] == 1 and running["promotion_start_ts"] == T0 + 200_000
    assert running["promotion_viewers_end"] is None and running["promotion_orders_during"] >= 0
    after = snapshots[T0 + 1_080_000]  # 11 minutes after its end
    assert after["promotion_active"] == 0 and after["promotion_end_ts"] == T0 + 400_000
    assert 0 < after["promotion_retention_10m"] < 1 and after["promotion_retention_30m"] is None
    assert after["promotion_ebb_half_life_seconds"] > 0
    assert after["promotion_viewers_peak"] >= after["promotion_viewers_end"] > 0
    assert snapshots[T0 + 900_000]["promotion_retention_10m"] is None  # 8 minutes after


@pytest.mark.parametrize("jobs", [2, 4])
def test_lanes_share_the_partitions_and_change_nothing(
    mixed_log: Path, mixed: BacktestResult, jobs: int
) -> None:
    shared = run_backtest(mixed_log, load_settings(environ={}), jobs=jobs)
    assert shared.transitions == mixed.transitions
    assert shared.actions == mixed.actions
    assert shared.lines == mixed.lines
    assert shared.pipeline is not None and mixed.pipeline is not None
    assert shared.pipeline.events_total == mixed.pipeline.events_total
    assert shared.pipeline.invalid_total == mixed.pipeline.invalid_total
    assert shared.pipeline.late_total == mixed.pipeline.late_total
    assert sorted(shared.pipeline.engines) == sorted(mixed.pipeline.engines)


def test_one_absurd_timestamp_changes_nothing_else(
    mixed_log: Path, mixed: BacktestResult, tmp_path: Path
) -> None:
    """A line ten years ahead is rejected by its partition and does not drag the log's
    clock (which would age every room in every partition to death)."""
    lines = gzip.decompress(mixed_log.read_bytes()).splitlines()
    ahead = json.loads(lines[50_000])
    ahead["ts"] += 10 * 365 * 86_400_000
    lines.insert(50_001, json.dumps(ahead).encode())
    log = tmp_path / "absurd.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    result = run_backtest(log, load_settings(environ={}))
    assert result.transitions == mixed.transitions
    assert result.pipeline is not None and mixed.pipeline is not None
    assert result.pipeline.invalid_total - mixed.pipeline.invalid_total == {"ts_out_of_bounds": 1}


class _BrokenSplitter(LogSplitter):
    def parcels(self, path: str) -> Iterator[Parcel]:
        yield Parcel(1, 1, [], {0: Part(np.array([1]), b"{}", [0])})  # a run without its end


def test_a_failing_lane_is_reported_not_waited_for(mixed_log: Path) -> None:
    settings = load_settings(environ={})
    lanes = [range(0, 4, 2), range(1, 4, 2)]
    splitter = _BrokenSplitter(4, 0)
    with pytest.raises(RuntimeError, match=r"(?s)a backtest lane failed.*IndexError"):
        _run_lanes(str(mixed_log), settings, settings.engine_config(), splitter, lanes, None)


def test_a_log_cut_short_stops_the_lanes_with_a_clear_error(
    mixed_log: Path, tmp_path: Path
) -> None:
    """The lanes are stopped, not waited for, and nothing they leave holds up the exit."""
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(mixed_log.read_bytes()[: 3 << 20])
    started = time.monotonic()
    done = subprocess.run(
        [*CLI, "backtest", str(cut), "--jobs", "4"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "unreadable" in done.stderr
    assert time.monotonic() - started < 15  # waiting 5 s for each of 4 lanes would take 20


def test_one_line_leaping_ahead_changes_nothing(tmp_path: Path) -> None:
    """1,000 joins and one stamped 23 h ahead in the middle: the log's clock and the
    partition's stay put, nobody is late, no room goes silent; the leap is rejected."""
    lines = [
        json.dumps({"type": "join", "room_id": "r", "ts": T0 + i * 10, "user_id": f"u{i}"})
        for i in range(1_000)
    ]
    ahead = {"type": "join", "room_id": "r", "ts": T0 + 23 * 3_600_000, "user_id": "x"}
    lines.insert(500, json.dumps(ahead))
    log = tmp_path / "leap.jsonl"
    log.write_text("\n".join(lines) + "\n")
    result = run_backtest(log, load_settings(environ={}))
    assert result.pipeline is not None
    assert result.pipeline.late_total == 0
    assert result.pipeline.invalid_total["ts_out_of_bounds"] == 1
    assert result.pipeline.events_total["join"] == 1_000
    assert result.transitions == []


def test_ten_megabyte_lines_are_rejected_through_the_command_line(tmp_path: Path) -> None:
    """Three 10 MB lines (a text, a user id, a nested array) among 200 joins: each a
    reject with its reason in the summary, the joins all counted, no traceback."""
    joins = [
        json.dumps({"type": "join", "room_id": "r1", "ts": T0 + i, "user_id": f"u{i}"}).encode()
        for i in range(200)
    ]
    huge = 10 << 20
    bad = [
        json.dumps(
            {
                "type": "danmaku",
                "room_id": "r1",
                "ts": T0,
                "user_id": "u",
                "text": "刷" * (huge // 3),
            }
        ).encode(),
        json.dumps({"type": "join", "room_id": "r1", "ts": T0, "user_id": "u" * huge}).encode(),
        b"[" * huge,
    ]
    log = tmp_path / "huge.jsonl"
    log.write_bytes(b"\n".join(joins[:100] + bad + joins[100:]) + b"\n")
    done = subprocess.run([*CLI, "backtest", str(log)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "200 events" in done.stdout, done.stdout
    assert "3 invalid (2 invalid_field, 1 not_an_event)" in done.stdout, done.stdout


def _log_facts(log: Path) -> tuple[dict[str, str], dict[str, list[int]], dict[str, list[int]]]:
    """From a simulated log: each viewer's region, latency sample times, stall times."""
    regions: dict[str, str] = {}
    sampled: dict[str, list[int]] = {}
    stalls: dict[str, list[int]] = {}
    with gzip.open(log, "rt", encoding="utf-8") as lines:
        for line in lines:
            if '"latency"' not in line and '"stall"' not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the dirty night's malformed lines
            if event.get("type") == "latency":
                regions[event["user_id"]] = event["region"]
                sampled.setdefault(event["user_id"], []).append(event["ts"])
            elif event.get("type") == "stall":
                stalls.setdefault(event["user_id"], []).append(event["ts"])
    return regions, sampled, stalls


def _leaves(log: Path) -> list[tuple[str, str, int]]:
    with gzip.open(log, "rt", encoding="utf-8") as lines:
        found = [json.loads(line) for line in lines if line.startswith('{"type":"leave"')]
    return sorted({(e["room_id"], e["user_id"], e["ts"]) for e in found})


def test_recall_candidates_on_the_mixed_night(mixed: BacktestResult, mixed_log: Path) -> None:
    """Every viewer who left during the night's latency incident with their samples in its
    region, or during its stall storm's alert, is recalled once; the others are not; every
    `stalled_then_left` stalled within 60 s before leaving (checked against the log)."""
    regions, sampled, stalls = _log_facts(mixed_log)
    recalls = [a for a in mixed.actions if a["action"] == "recall"]
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for action in recalls:
        by_reason.setdefault(action["reason"], []).append(action)
    spans = {}
    for t in mixed.transitions:
        if t.alert in ("latency_slo", "stall_slo"):
            fired, _, _ = spans.get(t.alert, (t.ts, None, None))
            spans[t.alert] = (fired, t.ts if t.state == "resolved" else None, t.fingerprint)
    leaves = _leaves(mixed_log)

    def left_during(alert: str, room: str) -> set[tuple[str, int]]:
        fired, resolved, _ = spans[alert]
        return {(u, ts) for r, u, ts in leaves if r == room and fired <= ts <= resolved}

    fired = spans["latency_slo"][0]
    slow = {
        (u, ts)
        for u, ts in left_during("latency_slo", "room-latency")
        if regions.get(u) == "cn-south" and any(fired <= s <= ts for s in sampled.get(u, ()))
    }
    latency = by_reason["latency_incident"]
    assert {(a["user_id"], a["ts"]) for a in latency} == slow and len(latency) == len(slow) > 100
    assert {(a["room_id"], a["fingerprint"]) for a in latency} == {
        ("room-latency", spans["latency_slo"][2])
    }
    stall = by_reason["stall_incident"]
    assert {(a["user_id"], a["ts"]) for a in stall} == left_during("stall_slo", "room-stalls")
    assert {(a["room_id"], a["fingerprint"]) for a in stall} == {
        ("room-stalls", spans["stall_slo"][2])
    }
    then_left = by_reason["stalled_then_left"]
    assert all(a["fingerprint"] is None for a in then_left)
    assert all(any(0 <= a["ts"] - s <= 60_000 for s in stalls[a["user_id"]]) for a in then_left)
    storm = [a for a in then_left if a["room_id"] == "room-stalls"]
    assert len(storm) > len(then_left) / 4  # the storm's room: a fifth of the night's viewers
    keys = [(a["room_id"], a["user_id"], a["reason"], a["fingerprint"]) for a in recalls]
    assert len(keys) == len(set(keys))  # once per room, incident and viewer (one each here)
    assert mixed.pipeline is not None
    counted: Counter[str] = Counter()
    for engine in mixed.pipeline.engines.values():
        counted.update(engine.watch.recall.candidates)
        assert not engine.watch.recall.dropped
    assert counted == Counter(a["reason"] for a in recalls)
