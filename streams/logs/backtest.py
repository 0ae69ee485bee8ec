"""`livewatch backtest`: the worker's processing path over a recorded log, without Kafka.

Lines are routed to partitions exactly as Kafka's default partitioner places
room keys, and each partition's lines go through the same Pipeline the worker
runs, in file order. Alert transitions come out as JSON Lines (the contract in
docs/detectors.md), sorted by event time.

As in the live worker, where a silent partition's event time follows the wall
clock, a partition that has seen nothing for `idle_after_s` of the log's event
time moves on with the log's clock (see streams/logs/split.py): a room that goes
silent alone in its partition still ages, and fires. Results depend on the
file alone, not on how many lanes (processes sharing the partitions) run it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import multiprocessing
import os
import queue
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import IO, Any, Final

import msgspec

from detectors.alerts import Transition
from streams.core.config import EngineConfig
from streams.core.engine import Output, Pipeline
from streams.core.runtime import tune_gc
from streams.logs.split import LogSplitter, Parcel
from streams.settings import Settings


@dataclass
class BacktestResult(Output):
    lines: int = 0
    pipeline: Pipeline | None = None


def run_backtest(
    path: str | os.PathLike[str],
    settings: Settings,
    *,
    snapshot_every_s: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> BacktestResult:
    """Backtest a log; with `jobs` > 1, lanes of partitions run in that many processes
    while this one reads the log and hands each its parcels. `on_progress` gets
    the lines and the bytes of the file read so far."""
    config = dataclasses.replace(settings.engine_config(), snapshot_every_s=snapshot_every_s)
    splitter = LogSplitter(settings.partitions, config.max_clock_skew_ms, config.max_jump_ms)
    lanes = [range(j, settings.partitions, jobs) for j in range(min(jobs, settings.partitions))]
    if len(lanes) > 1:
        result = _run_lanes(str(path), settings, config, splitter, lanes, on_progress)
    else:
        lane = Lane(str(path), settings, config)
        for parcel in splitter.parcels(str(path)):
            lane.feed(parcel)
            if on_progress is not None:
                on_progress(parcel.lines_read, parcel.file_bytes_read)
        result = lane.finish()
    _sort(result)
    return result


class Lane:
    """Drives some partitions through the worker's Pipeline from their parcels."""

    def __init__(self, path: str, settings: Settings, config: EngineConfig) -> None:
        self.path = path
        self.idle_ms = int(settings.idle_after_s * 1000)
        self.pipeline = Pipeline(config)
        self.result = BacktestResult(pipeline=self.pipeline)

    def feed(self, parcel: Parcel) -> None:
        pipeline = self.pipeline
        self.result.lines = parcel.lines_read
        pipeline.reject(parcel.rejected)
        parts = {
            p: (part.lines(), part.numbers.tolist(), part.cuts) for p, part in parcel.parts.items()
        }
        for run in range(len(parcel.clock_moves) + 1):
            if run:
                self.result.extend(pipeline.drain())
                pipeline.advance_to(parcel.clock_moves[run - 1] * 1000 - self.idle_ms)
            for partition, (lines, numbers, cuts) in parts.items():
                start, stop = cuts[run], cuts[run + 1]
                if stop > start:
                    pipeline.process_lines(
                        partition, lines[start:stop], numbers[start:stop], self.path
                    )

    def finish(self) -> BacktestResult:
        self.pipeline.flush()
        self.result.extend(self.pipeline.drain())
        return self.result


_PARCELS_QUEUED: Final = 8
"""Parcels (chunks of the log) read ahead per lane: bounds memory when lanes lag."""
_PIPE_BYTES: Final = 1 << 20
"""A lane's parcel is about a megabyte: through the default 64 KiB pipe every 64 KiB
costs a switch between the processes (measured: 10-15% of the throughput)."""


def _run_lanes(
    path: str,
    settings: Settings,
    config: EngineConfig,
    splitter: LogSplitter,
    lanes: list[range],
    on_progress: Callable[[int, int], None] | None,
) -> BacktestResult:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["streams.logs.backtest"]
    )  # lanes start in a fraction of a second
    inboxes = [context.Queue(_PARCELS_QUEUED) for _ in lanes]
    for inbox in inboxes:
        _widen_pipe(inbox)
    outbox = context.Queue()
    workers = [
        context.Process(
            target=_lane_main, args=(path, settings, config, inbox, outbox), daemon=True
        )
        for inbox in inboxes
    ]
    # The fork server boots (a fraction of a second) while the first parcels are read.
    starter = _Starter(workers)
    parts: list[BacktestResult] = []
    try:
        sent = [0] * len(lanes)
        for parcel in splitter.parcels(path):
            for lane, (partitions, inbox, worker) in enumerate(
                zip(lanes, inboxes, workers, strict=True)
            ):
                part = parcel.only(partitions)
                sent[lane] += sum(len(p.numbers) for p in part.parts.values())
                _put(inbox, part, worker, starter)
            if on_progress is not None:
                on_progress(parcel.lines_read, parcel.file_bytes_read)
        _favour_the_busiest(inboxes, workers, sent)
        for inbox, worker in zip(inboxes, workers, strict=True):
            _put(inbox, None, worker, starter)
        parts = [_get(outbox, workers) for _ in workers]
    finally:
        starter.join()
        failed = len(parts) < len(workers)
        for worker in workers:
            if worker.pid is not None:
                if failed:  # the lanes wait for parcels that will not come
                    worker.kill()
                worker.join(timeout=5)
                if worker.is_alive():
                    worker.kill()
        if failed:
            for inbox in inboxes:  # parcels nobody will read must not hold up our exit
                inbox.cancel_join_thread()
    return _merge(parts, config)


def _favour_the_busiest(
    inboxes: Sequence[Queue[Any]], workers: Sequence[BaseProcess], sent: list[int]
) -> None:
    """The log is read; now the lane with the most left to do should have a core to itself,
    which a fair share among all lanes does not give it: the others lower their priority."""
    try:  # every lane got every parcel: parcels left x lines sent ranks the work left
        left = [inbox.qsize() * lines for inbox, lines in zip(inboxes, sent, strict=True)]
    except NotImplementedError:  # no qsize (macOS)
        return
    most = max(left)
    for worker, work in zip(workers, left, strict=True):
        if work < most and worker.pid is not None:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, worker.pid, 5)


class _Starter(threading.Thread):
    def __init__(self, workers: Sequence[BaseProcess]) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            for worker in self.workers:
                worker.start()
        except BaseException as exc:  # surfaces in `_put`
            self.error = exc


def _widen_pipe(inbox: Queue[Any]) -> None:
    # CPython's Queue keeps its pipe's writing end in `_writer`; Linux only. Without
    # it, only slower.
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(getattr(inbox, "_writer").fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # noqa: B009


def _lane_main(
    path: str, settings: Settings, config: EngineConfig, inbox: Queue[Any], outbox: Queue[Any]
) -> None:
    try:
        tune_gc()
        lane = Lane(path, settings, config)
        while (parcel := inbox.get()) is not None:
            lane.feed(parcel)
        outbox.put(lane.finish())
    except BaseException:
        outbox.put(_LaneFailed(traceback.format_exc()))


@dataclass
class _LaneFailed:
    traceback: str


def _put(inbox: Queue[Any], item: Parcel | None, worker: BaseProcess, starter: _Starter) -> None:
    while True:
        try:
            inbox.put(item, timeout=1)
            return
        except queue.Full:
            if starter.error is not None:
                raise RuntimeError("backtest lanes could not start") from starter.error
            if worker.exitcode is not None:
                raise RuntimeError(f"a backtest lane died (exit code {worker.exitcode})") from None


def _get(outbox: Queue[Any], workers: Sequence[BaseProcess]) -> BacktestResult:
    while True:
        try:
            part = outbox.get(timeout=1)
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers):
                raise RuntimeError("a backtest lane died before finishing") from None
            continue
        if isinstance(part, _LaneFailed):
            raise RuntimeError(f"a backtest lane failed:\n{part.traceback}")
        assert isinstance(part, BacktestResult)
        return part


def _merge(parts: list[BacktestResult], config: EngineConfig) -> BacktestResult:
    pipeline = Pipeline(config)
    merged = BacktestResult(lines=parts[0].lines, pipeline=pipeline)
    for part in parts:
        assert part.pipeline is not None
        pipeline.merge(part.pipeline)
        merged.extend(part)
    return merged


def _sort(result: BacktestResult) -> None:
    result.transitions.sort(key=lambda t: (t.ts, t.room_id, t.alert, t.region or ""))
    result.snapshots.sort(key=lambda s: (s["ts"], s["room_id"]))
    result.actions.sort(key=_action_order)


def _action_order(action: dict[str, Any]) -> tuple[int, str, str, str, str, str]:
    """Actions by event time, then room, kind, reason, viewer and fingerprint: the order
    does not depend on how partitions were shared among lanes."""
    return (
        action["ts"],
        action["room_id"],
        action["action"],
        str(action.get("reason")),
        str(action.get("user_id", action.get("user_ids"))),
        str(action.get("fingerprint")),
    )


def write_alerts(transitions: list[Transition], out: IO[bytes]) -> None:
    encoder = msgspec.json.Encoder()
    for transition in transitions:
        out.write(encoder.encode(transition) + b"\n")


def write_actions(actions: list[dict[str, Any]], out: IO[bytes]) -> None:
    """Actions as the worker sends them to `live.actions`, one JSON object a line."""
    encoder = msgspec.json.Encoder()
    for action in actions:
        out.write(encoder.encode(action) + b"\n")
