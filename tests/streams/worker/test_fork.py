"""A forked child computes on the memory as it was when it forked; the parent goes on."""

from __future__ import annotations

import gc
import os
import signal
import socket
import time
from pathlib import Path

import msgspec
import pytest

from streams.core.engine import PartitionEngine
from streams.core.events import Join, Leave
from streams.worker import fork
from streams.worker.checkpoint import Snapshot, join_checkpoint, snapshot, take_checkpoint
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
