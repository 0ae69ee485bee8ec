"""A forked child computes on the memory as it was when it forked; the parent goes on."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from faust.types import TP

from streams.core.engine import PartitionEngine
from streams.core.events import Join, Leave
from streams.settings import load_settings
from streams.worker import fork
from streams.worker.app import Worker
from streams.worker.checkpoint import (
    Snapshot,
    head_key,
    join_checkpoint,
    snapshot,
    split_checkpoint,
    take_checkpoint,
)
from tests.streams.scenarios import CONFIG, T0

pytestmark = pytest.mark.skipif(not fork.AVAILABLE, reason="no fork() here")


def finished(child: fork.Child[fork.T], timeout: float = 30.0) -> fork.T:
    deadline = time.monotonic() + timeout
    while (result := child.result()) is None:
        assert time.monotonic() < deadline, "the child did not finish"
        time.sleep(0.01)
    return result


def busy_engine(viewers: int) -> PartitionEngine:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0 + i * 20, f"u{i}") for i in range(viewers)])
    return engine


def test_the_child_checkpoints_the_state_as_it_was_when_it_forked() -> None:
    engine = busy_engine(5_000)
    expected = take_checkpoint(engine, 1, {"live.joins": 5_000})
    child = fork.spawn(lambda: snapshot(engine, 1, {"live.joins": 5_000}, 7), Snapshot)
    # The parent carries on at once: none of this is in the child's checkpoint.
    engine.ingest([Leave("r", T0 + 200_000 + i * 20, f"u{i}") for i in range(1_000)])
    taken = finished(child)
    assert taken.size == len(expected)
    assert join_checkpoint(1, dict(taken.records).get) == (7, expected)
    assert take_checkpoint(engine, 1, {"live.joins": 5_000}) != expected
    assert child.peak_rss > 0


class Inherited(msgspec.Struct):
    descriptors: list[int]
    gc_enabled: bool
    sigterm_default: bool


def test_the_child_keeps_no_descriptor_loop_signal_or_collector_of_the_parent() -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:

        def inspect() -> Inherited:
            return Inherited(
                sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
                gc.isenabled(),
                signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
            )

        seen = finished(fork.spawn(inspect, Inherited))
    finally:
        signal.signal(signal.SIGTERM, previous)
        listening.close()
    # Standard streams, the result file and the descriptor listdir opens.
    assert listening.fileno() not in seen.descriptors
    assert len([fd for fd in seen.descriptors if fd > 2]) <= 2
    assert not seen.gc_enabled and seen.sigterm_default
    assert gc.isenabled()  # the parent's collector untouched


def test_a_failing_child_reports_its_error_and_no_result(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def fail() -> Inherited:
        raise RuntimeError("cannot encode this")

    child = fork.spawn(fail, Inherited)
    with pytest.raises(fork.ChildFailed, match="exited with 1"):
        finished(child)
    assert "RuntimeError: cannot encode this" in capfd.readouterr().err


def test_a_child_killed_by_a_signal_is_a_failure() -> None:
    child = fork.spawn(lambda: time.sleep(60), type(None))
    os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(fork.ChildFailed, match="exited with -9"):
        finished(child)


def test_a_stopped_child_is_reaped_and_leaves_no_file(tmp_path: Path) -> None:
    child = fork.spawn(lambda: time.sleep(60), type(None), directory=str(tmp_path))
    assert child.result() is None  # still at work
    child.kill()
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)  # reaped: no zombie left
    assert list(tmp_path.iterdir()) == []  # the result file was never linked


Sent = list[tuple[int, bytes, bytes]]
"""Checkpoint records handed to the producer: (partition, key, value)."""


def unstarted_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: object
) -> tuple[Worker, Sent]:
    """A worker not started, its checkpoint records captured where the producer takes them."""
    settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path), **overrides})
    worker = Worker(settings, partitions=1)
    sent: Sent = []
    monkeypatch.setattr(worker.checkpoints, "send_changelog", lambda *record: sent.append(record))
    worker.pipeline.adopt(0, busy_engine(5_000))
    partition = worker.partition(0)
    partition.positions = {"live.joins": 5_000}
    partition.dirty = True
    return worker, sent


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Worker, Sent]]:
    found = unstarted_worker(tmp_path, monkeypatch)
    yield found
    found[0].stop_snapshot()


async def checkpoint_sent(worker: Worker, now: float) -> dict[TP, int]:
    deadline = time.monotonic() + 30
    while not (covered := worker.checkpoint(now)):
        assert worker.snapshot is not None, "no child at work"
        assert time.monotonic() < deadline, "the child did not finish"
        await asyncio.sleep(0.01)
    return covered


async def test_a_tick_forks_its_checkpoint_and_a_later_tick_sends_it(
    worker: tuple[Worker, Sent],
) -> None:
    worker_, sent = worker
    engine, partition = worker_.pipeline.engine(0), worker_.partitions[0]
    expected = split_checkpoint(0, take_checkpoint(engine, 0, {"live.joins": 5_000}), 0)
    assert worker_.checkpoint(100.0) == {}  # forked: nothing sent yet
    # Processing goes on meanwhile: the checkpoint covers what was there at the fork.
    engine.ingest([Leave("r", T0 + 200_000 + i * 20, f"u{i}") for i in range(1_000)])
    partition.positions["live.joins"] = 6_000
    partition.dirty = True
    assert await checkpoint_sent(worker_, 101.0) == {TP("live.joins", 0): 5_000}
    assert sent == [(0, key, value) for key, value in expected]
    assert partition.checkpoint_seq == 1 and partition.checkpointed_at == 100.0
    assert partition.dirty  # what came after the fork is still to be saved


async def test_after_a_failed_child_the_next_checkpoint_is_taken_in_the_worker(
    worker: tuple[Worker, Sent],
) -> None:
    worker_, sent = worker
    assert worker_.checkpoint(100.0) == {}
    assert worker_.snapshot is not None
    os.kill(worker_.snapshot.child.pid, signal.SIGKILL)  # the OOM killer, say
    while worker_.snapshot is not None:
        assert worker_.checkpoint(101.0) == {}
        await asyncio.sleep(0.01)
    assert worker_.health.checkpoint_children_failed == 1 and not sent
    assert worker_.partitions[0].dirty  # unsaved still
    # The next one is taken in the worker, at once.
    assert worker_.checkpoint(102.0) == {TP("live.joins", 0): 5_000}
    assert worker_.snapshot is None and sent and worker_.partitions[0].checkpoint_seq == 1


async def test_a_forced_checkpoint_stops_the_child_and_is_taken_at_once(
    worker: tuple[Worker, Sent],
) -> None:
    worker_, sent = worker
    assert worker_.checkpoint(100.0) == {}
    child = worker_.snapshot.child if worker_.snapshot else None
    assert child is not None
    assert worker_.checkpoint(100.5, force=True) == {TP("live.joins", 0): 5_000}
    assert worker_.snapshot is None and child.done
    assert [key for _, key, _ in sent][-1] == head_key(0)
    assert worker_.health.checkpoint_children_failed == 0


async def test_without_checkpoint_fork_the_worker_takes_its_checkpoints_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, sent = unstarted_worker(tmp_path, monkeypatch, checkpoint_fork=False)
    assert worker.checkpoint(100.0) == {TP("live.joins", 0): 5_000}
    assert worker.snapshot is None and [key for _, key, _ in sent][-1] == head_key(0)
