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
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from detectors.alerts import Transition
from streams.decode import Decoded, decode_log_lines
from streams.eventlog import read_chunks
from streams.pipeline import Pipeline, partition_for
from streams.settings import Settings

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
    jobs: int = 1,
) -> BacktestResult:
    """Backtest a log; `jobs` processes share the partitions (each reads the whole log)."""
    jobs = max(1, min(jobs, settings.partitions))
    if jobs == 1:
        return _run(path, settings, snapshot_every_s, on_progress, range(settings.partitions))
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    progress = context.Array("q", jobs)
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_share_progress, initargs=(progress,)
    ) as pool:
        futures = [
            pool.submit(_run_job, path, settings, snapshot_every_s, jobs, job)
            for job in range(jobs)
        ]
        while not all(f.done() for f in futures):
            wait(futures, timeout=0.25)
            if on_progress is not None:
                on_progress(min(progress[:]))
        parts = [f.result() for f in futures]
    return _merge(parts, settings, snapshot_every_s)


_progress: Any = None
"""In a job process: lines read so far by each job (shared memory)."""


def _share_progress(progress: Any) -> None:
    global _progress
    _progress = progress


def _run_job(
    path: str | os.PathLike[str],
    settings: Settings,
    snapshot_every_s: int | None,
    jobs: int,
    job: int,
) -> BacktestResult:
    def report(lines: int) -> None:
        _progress[job] = lines

    owned = range(job, settings.partitions, jobs)
    return _run(path, settings, snapshot_every_s, report, owned)


def _merge(
    parts: list[BacktestResult], settings: Settings, snapshot_every_s: int | None
) -> BacktestResult:
    config = dataclasses.replace(settings.engine_config(), snapshot_every_s=snapshot_every_s)
    pipeline = Pipeline(config)
    merged = BacktestResult(lines=parts[0].lines, pipeline=pipeline)
    for part in parts:
        assert part.pipeline is not None
        pipeline.engines.update(part.pipeline.engines)
        pipeline.events_total.update(part.pipeline.events_total)
        pipeline.invalid_total.update(part.pipeline.invalid_total)
        pipeline.late_total += part.pipeline.late_total
        merged.transitions += part.transitions
        merged.actions += part.actions
        merged.snapshots += part.snapshots
    _sort(merged)
    return merged


def _run(
    path: str | os.PathLike[str],
    settings: Settings,
    snapshot_every_s: int | None,
    on_progress: Callable[[int], None] | None,
    owned: range,
) -> BacktestResult:
    """Drive the partitions in `owned`; lines of the others are read and passed over."""
    partitions = settings.partitions
    config = dataclasses.replace(settings.engine_config(), snapshot_every_s=snapshot_every_s)
    pipeline = Pipeline(config)
    result = BacktestResult(pipeline=pipeline)
    pending = [Decoded(log=str(path)) for _ in range(partitions)]
    partition_of: dict[str, int] = {}

    def process() -> None:
        for partition, decoded in enumerate(pending):
            if decoded.events:
                pipeline.ingest(partition, decoded)
                pending[partition] = Decoded(log=str(path))
        _drain(pipeline, result)

    idle_ms = int(settings.idle_after_s * 1000)
    next_check: int | None = None
    for first_number, lines in read_chunks(path):
        decoded = decode_log_lines(lines, first_number, str(path))
        result.lines += len(lines)
        if decoded.rejected and 0 in owned:  # unroutable: partition 0 counts them
            pipeline.ingest(0, Decoded(rejected=decoded.rejected, log=decoded.log))
        for event, origin in zip(decoded.events, decoded.origins, strict=True):
            if next_check is None or event.ts >= next_check:
                if next_check is not None:
                    process()
                    _advance_idle(pipeline, event.ts // IDLE_CHECK_MS * IDLE_CHECK_MS - idle_ms)
                next_check = (event.ts // IDLE_CHECK_MS + 1) * IDLE_CHECK_MS
            partition = partition_of.get(event.room_id)
            if partition is None:
                partition = partition_for(event.room_id, partitions)
                partition = partition_of[event.room_id] = partition if partition in owned else -1
            if partition >= 0:
                into = pending[partition]
                into.events.append(event)
                into.origins.append(origin)
        if on_progress is not None:
            on_progress(result.lines)
    process()
    pipeline.flush()
    _drain(pipeline, result)
    _sort(result)
    return result


def _sort(result: BacktestResult) -> None:
    result.transitions.sort(key=lambda t: (t.ts, t.room_id, t.alert, t.region or ""))
    result.snapshots.sort(key=lambda s: (s["ts"], s["room_id"]))


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
