"""`livewatch backtest`: the worker's processing path over a recorded log, without Kafka.

Lines are routed to partitions exactly as Kafka's default partitioner places
room keys, and each partition's lines go through the same Pipeline the worker
runs, in file order. Alert transitions come out as JSON Lines (the contract in
docs/detectors.md), sorted by event time.

As in the live worker, where a silent partition's event time follows the wall
clock, a partition that has seen nothing for `idle_after_s` of the log's event
time moves on with the log's clock: a room that goes silent alone in its
partition still ages, and fires. The check runs at fixed steps of event time,
so results depend on the file alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from detectors.alerts import Transition
from streams.decode import RawMessage
from streams.eventlog import read_lines, route
from streams.pipeline import Pipeline, partition_for
from streams.settings import Settings

CHUNK_LINES = 20_000
IDLE_CHECK_MS = 1_000


@dataclass
class BacktestResult:
    lines: int = 0
    transitions: list[Transition] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    pipeline: Pipeline | None = None


def run_backtest(
    path: str | os.PathLike[str],
    settings: Settings,
    *,
    snapshot_every_s: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    partitions = settings.partitions
    config = dataclasses.replace(settings.engine_config(), snapshot_every_s=snapshot_every_s)
    pipeline = Pipeline(config)
    result = BacktestResult(pipeline=pipeline)
    pending: dict[int, list[RawMessage]] = {}

    def process() -> None:
        for partition, messages in sorted(pending.items()):
            pipeline.process(partition, messages, check_key=False)
        pending.clear()
        _drain(pipeline, result)

    idle_ms = int(settings.idle_after_s * 1000)
    checked: int | None = None
    for number, line in read_lines(path):
        result.lines += 1
        routing = route(line)
        if routing is not None:
            step = routing.ts // IDLE_CHECK_MS
            if checked is None or step > checked:
                if checked is not None:
                    process()
                    _advance_idle(pipeline, step * IDLE_CHECK_MS - idle_ms)
                checked = step
        # Unroutable lines still go through the pipeline, to be rejected and counted.
        partition = partition_for(routing.room_id, partitions) if routing else 0
        pending.setdefault(partition, []).append(
            RawMessage(str(path), partition, number, None, line)
        )
        if result.lines % CHUNK_LINES == 0:
            process()
            if on_progress is not None:
                on_progress(result.lines)
    process()
    pipeline.flush()
    _drain(pipeline, result)
    result.transitions.sort(key=lambda t: (t.ts, t.room_id, t.alert, t.region or ""))
    result.snapshots.sort(key=lambda s: (s["ts"], s["room_id"]))
    return result


def _advance_idle(pipeline: Pipeline, until_ms: int) -> None:
    """Partitions whose clock is behind `until_ms` (nothing seen lately) move up to it."""
    for engine in pipeline.engines.values():
        clock = engine.event_clock
        if clock is not None and clock < until_ms:
            engine.advance_idle(until_ms - clock)


def _drain(pipeline: Pipeline, result: BacktestResult) -> None:
    for engine in pipeline.engines.values():
        transitions, actions = engine.watch.drain()
        result.transitions += transitions
        result.actions += actions
        result.snapshots += engine.snapshots
        engine.snapshots = []


def write_alerts(transitions: list[Transition], out: IO[bytes]) -> None:
    encoder = msgspec.json.Encoder()
    for transition in transitions:
        out.write(encoder.encode(transition) + b"\n")


@dataclass
class Score:
    """How the firing alerts of one type compare with the labelled incidents."""

    incidents: int = 0
    detected: int = 0
    alerts: int = 0
    false_alerts: int = 0
    delays_s: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.detected / self.incidents if self.incidents else None

    @property
    def precision(self) -> float | None:
        return (self.alerts - self.false_alerts) / self.alerts if self.alerts else None


def score(
    transitions: list[Transition], incidents: list[dict[str, Any]], grace_ms: int = 300_000
) -> dict[str, Score]:
    """Recall, precision and detection delay per alert type.

    An incident is detected by the first alert of its type and room firing in
    [start, end + grace]; an alert matching no incident is a false alert (an
    alert firing again for the same incident, e.g. escalating, is not).
    """
    scores: dict[str, Score] = {}
    firing = [t for t in transitions if t.state == "firing"]
    for incident in incidents:
        entry = scores.setdefault(incident["alert"], Score())
        entry.incidents += 1
        hits = [
            t.ts
            for t in firing
            if t.alert == incident["alert"]
            and t.room_id == incident["room_id"]
            and incident["start"] <= t.ts <= incident["end"] + grace_ms
        ]
        if hits:
            entry.detected += 1
            entry.delays_s.append((min(hits) - incident["start"]) / 1000)
    for t in firing:
        entry = scores.setdefault(t.alert, Score())
        entry.alerts += 1
        if not any(
            i["alert"] == t.alert
            and i["room_id"] == t.room_id
            and i["start"] <= t.ts <= i["end"] + grace_ms
            for i in incidents
        ):
            entry.false_alerts += 1
    return scores
