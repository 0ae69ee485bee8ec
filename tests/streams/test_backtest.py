"""Detectors through the offline driver: every injected incident, nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from detectors.alerts import Transition
from streams.backtest import run_backtest, score
from streams.exporter import PipelineCollector
from streams.pipeline import partition_for
from streams.settings import load_settings
from streams.simulate import SCENARIOS, Scenario, generate, labels, steady, write_log
from streams.simulate import Room as SimRoom
from tests.exposition import samples
from tests.fixtures.nights import T0, Room, promo_night, simulate, write

CONTRACT = {"alert", "state", "room_id", "ts", "severity", "summary", "fingerprint", "details"}


SEEDS = (7, 11, 23)


def night(directory: Path, seed: int) -> Path:
    rooms, _ = promo_night()
    return write(simulate(rooms, 1500, seed=seed), directory / f"night-{seed}.jsonl")


@pytest.fixture(scope="module", params=SEEDS)
def night_log(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    return night(tmp_path_factory.mktemp("night"), request.param)


@pytest.fixture(scope="module")
def one_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return night(tmp_path_factory.mktemp("night"), SEEDS[0])


def test_each_incident_is_detected_in_time_and_nothing_else_fires(night_log: Path) -> None:
    """Recall 1 and precision 1 within the delay limits: the detectors' quality bar."""
    _, incidents = promo_night()
    result = run_backtest(night_log, load_settings(environ={}))
    firing = [t for t in result.transitions if t.state == "firing"]
    by_room = {t.room_id for t in firing}
    assert by_room == set(incidents), [(t.room_id, t.alert, t.summary) for t in firing]
    limits = {
        "traffic_cliff": 60_000,
        "spam_flood": 30_000,
        "latency_slo": 180_000,
        "stall_slo": 180_000,
    }
    for room, (alert, start) in incidents.items():
        first = min((t for t in firing if t.room_id == room), key=lambda t: t.ts)
        assert {t.alert for t in firing if t.room_id == room} == {alert}
        assert 0 <= first.ts - start <= limits[alert], (room, (first.ts - start) / 1000)
    latency = next(t for t in firing if t.alert == "latency_slo")
    assert latency.region == "cn-south"
    feed_cut = next(t for t in firing if t.room_id == "room-feedcut")
    assert any("'feed' collapsed" in hint for hint in feed_cut.details["hints"])
    outage = next(t for t in firing if t.room_id == "room-outage")
    assert not any("collapsed" in hint for hint in outage.details["hints"])
    mute = [a for a in result.actions if a["room_id"] == "room-spam"]
    assert mute and all(u.startswith("bot") for u in mute[0]["user_ids"])


def test_a_room_going_silent_alone_in_its_partition_still_fires(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    silent, busy = (
        "room-quiet-0",
        next(
            f"room-busy-{i}"
            for i in range(100)
            if partition_for(f"room-busy-{i}", settings.partitions)
            != partition_for("room-quiet-0", settings.partitions)
        ),
    )
    rooms = [Room(silent, lambda s: 2.0, silent_at=900), Room(busy, lambda s: 2.0)]
    log = write(simulate(rooms, 1100), tmp_path / "silent.jsonl")
    result = run_backtest(log, settings)
    firing = [t for t in result.transitions if t.state == "firing"]
    assert {t.room_id for t in firing} == {silent}
    first = firing[0]
    assert first.alert == "traffic_cliff" and first.ts - (T0 + 900_000) <= 60_000
    assert any(t.details["silent"] for t in firing)


def test_the_promotion_ebb_is_measured_and_exported(one_night: Path) -> None:
    result = run_backtest(one_night, load_settings(environ={}))
    assert result.pipeline is not None
    registry = CollectorRegistry()
    registry.register(PipelineCollector(result.pipeline))
    scraped = samples(generate_latest(registry).decode())
    half_lives = {
        dict(labels)["room"]: value
        for (name, labels), value in scraped.items()
        if name == "livewatch_room_ebb_half_life_seconds"
    }
    # Arrivals fall with a 4-minute half-life after the peak; viewers staying ~4 minutes
    # slow the fall of the audience itself somewhat.
    assert set(half_lives) == {"room-promo"}
    assert 240 <= half_lives["room-promo"] <= 900
    progress = scraped[("livewatch_room_ebb_progress_ratio", (("room", "room-promo"),))]
    assert 0.2 < progress < 1  # about one half-life into the ebb when the log ends


def test_the_cli_writes_the_alert_contract(one_night: Path, tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "backtest", str(one_night), "--alerts-out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and all(set(line) >= CONTRACT for line in lines)
    assert {line["state"] for line in lines} <= {"firing", "resolved"}
    assert "spam_flood" in done.stdout


LIMITS_S = {"traffic_cliff": 60, "spam_flood": 30, "latency_slo": 180, "stall_slo": 180}


def test_the_mixed_simulated_night_meets_the_quality_bar(tmp_path: Path) -> None:
    """Every incident found within its limit, nothing else, dirty input and all."""
    scenario = SCENARIOS["mixed"]
    log = tmp_path / "mixed.jsonl.gz"
    write_log(generate(scenario, 1), log)
    result = run_backtest(log, load_settings(environ={}))
    assert result.pipeline is not None and sum(result.pipeline.invalid_total.values()) > 0
    scores = score(result.transitions, labels(scenario))
    assert set(scores) == set(LIMITS_S)
    for alert, entry in scores.items():
        assert (entry.recall, entry.precision) == (1.0, 1.0), alert
        assert max(entry.delays_s) <= LIMITS_S[alert], (alert, entry.delays_s)


def test_score_counts_misses_false_alerts_and_delays() -> None:
    def firing(alert: str, room: str, ts: int) -> Transition:
        return Transition(alert, "firing", room, ts, "warning", "", "f", {}, None, ts, "")

    incidents = [
        {"alert": "spam_flood", "room_id": "a", "start": 1_000, "end": 5_000},
        {"alert": "spam_flood", "room_id": "b", "start": 1_000, "end": 5_000},
    ]
    transitions = [
        firing("spam_flood", "a", 4_000),
        firing("spam_flood", "a", 6_000),  # the same incident again: not false
        firing("spam_flood", "c", 2_000),  # no incident there
        firing("traffic_cliff", "a", 2_000),
    ]
    scores = score(transitions, incidents, grace_ms=10_000)
    spam = scores["spam_flood"]
    assert (spam.incidents, spam.detected, spam.recall, spam.delays_s) == (2, 1, 0.5, [3.0])
    assert (spam.alerts, spam.false_alerts) == (3, 1)
    assert scores["traffic_cliff"].precision == 0.0 and scores["traffic_cliff"].recall is None


def test_simulate_then_backtest_with_labels_from_the_command_line(tmp_path: Path) -> None:
    log, labels_file = tmp_path / "spam.jsonl.gz", tmp_path / "labels.json"
    cli = [sys.executable, "-m", "streams.cli"]
    subprocess.run(
        [*cli, "simulate", "--scenario", "spam", "--seed", "3", "--out", str(log),
         "--labels-out", str(labels_file)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert json.loads(labels_file.read_text())["incidents"][0]["alert"] == "spam_flood"
    done = subprocess.run(
        [*cli, "backtest", str(log), "--labels", str(labels_file)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    row = next(line for line in done.stdout.splitlines() if line.startswith("spam_flood "))
    assert row.split()[1:4] == ["1", "1.00", "1.00"]


def test_metric_snapshots_every_minute_of_event_time(tmp_path: Path) -> None:
    scenario = Scenario("two", 300, (SimRoom("room-a", steady(1)), SimRoom("room-b", steady(0.5))))
    log = tmp_path / "two.jsonl"
    write_log(generate(scenario, 1), log)
    out = tmp_path / "metrics.jsonl"
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "backtest", str(log), "--metrics-out", str(out),
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
