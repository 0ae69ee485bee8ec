"""Work done beside the event loop, not in its way: a forked child computes, the parent reads.

Taking a checkpoint walks and encodes a partition's whole state
(streams.worker.checkpoint): 0.2-0.4 s for a busy partition of the throughput
workload, seconds for a million-viewer room. On the thread that processes events
that is a pause every alert waiting for it inherits (docs/performance.md, session 16:
what was left of the alert delay's p99). The state must be read as it is at one
offset, so it cannot be walked piecewise between batches; a copy would cost as much
as the walk. `fork()` gives the copy for free: the child sees the parent's memory as
it was when it forked, copy-on-write, computes from it, writes the result to an
unlinked temporary file and exits, while the parent goes on processing. Redis takes
its snapshots this way (BGSAVE, https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/).

The child runs no event loop and touches nothing but what `work` reads and its file.
First it disables the garbage collector (a collection would write to every object
and so copy every page of the parent's heap), restores default handling of the
signals the parent's loop catches (the loop's wakeup descriptor must not hear the
child's signals, and SIGTERM must end it) and closes every inherited descriptor but
its file and the standard ones (an orphaned child holding the parent's listening
socket would keep a restarted worker off its port). It offers itself to the
out-of-memory killer first (`oom_score_adj` 1000): its work can be redone. It
leaves by `os._exit`: no parent cleanup and no buffered parent output runs twice.

The child's own memory is what it writes to: the pages of objects it reads (their
reference counts change) and what it allocates. Its peak is measured when it is
reaped (`Child.peak_rss`).
"""

from __future__ import annotations

import gc
import mmap
import os
import signal
import tempfile
import traceback
from collections.abc import Callable
from contextlib import suppress
from typing import IO, Final, Generic, NoReturn, TypeVar

import msgspec

T = TypeVar("T")

AVAILABLE: Final = hasattr(os, "fork")
"""Only POSIX systems fork; elsewhere the caller does the work itself."""
CAUGHT_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""Signals an asyncio worker installs handlers for: the child takes the defaults."""


class ChildFailed(RuntimeError):
    """The child ended without a result: its error is on standard error."""


class Child(Generic[T]):
    """A forked child computing one result of type `T`."""

    def __init__(self, pid: int, file: IO[bytes], kind: type[T]):
        self.pid = pid
        self.file = file
        self.kind = kind
        self.peak_rss = 0
        """The child's peak resident memory in bytes, once reaped (pages it shares too)."""
        self.done = False

    def result(self) -> T | None:
        """The result once the child has exited, None while it runs.

        Raises ChildFailed when it exited without one (an error, a signal).
        """
        if self.done:
            raise ChildFailed("result already taken")
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        self.done = True
        self.peak_rss = usage.ru_maxrss * 1024  # kilobytes on Linux
        try:
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                raise ChildFailed(f"child {self.pid} exited with {code}")
            size = os.fstat(self.file.fileno()).st_size
            if size == 0:
                raise ChildFailed(f"child {self.pid} wrote nothing")
            # Decoded from a map of the file, not a copy of it: a result runs to
            # hundreds of MB for a big room.
            with mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                try:
                    return msgspec.msgpack.decode(data, type=self.kind)
                except msgspec.DecodeError as exc:
                    raise ChildFailed(f"child {self.pid}: unreadable result: {exc}") from None
        finally:
            self.file.close()

    def kill(self) -> None:
        """Stop the child and reap it; its result is dropped."""
        if self.done:
            return
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self.done = True
        self.file.close()


def spawn(work: Callable[[], T], kind: type[T], directory: str | None = None) -> Child[T]:
    """Run `work` in a forked child on the memory as it is now; `kind` is its result's type."""
    if directory is not None:
        os.makedirs(directory, exist_ok=True)
    file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - the Child closes it
    try:
        pid = os.fork()
    except OSError:
        file.close()
        raise
    if pid == 0:
        _run(work, file.fileno())
    return Child(pid, file, kind)


def _run(work: Callable[[], object], fd: int) -> NoReturn:
    code = 1
    try:
        _isolate(fd)
        encoded = msgspec.msgpack.encode(work())
        with open(fd, "wb", closefd=False) as out:
            out.write(encoded)
        code = 0
    except BaseException:  # reported; the child never returns into the parent's code
        with suppress(OSError):
            os.write(2, traceback.format_exc().encode(errors="replace"))
    finally:
        os._exit(code)


def _isolate(fd: int) -> None:
    gc.disable()
    # Should memory run out (a container's limit covers both), the kernel kills the
    # child, whose work can be redone, rather than the parent.
    with suppress(OSError), open("/proc/self/oom_score_adj", "w") as adj:
        adj.write("1000")
    with suppress(ValueError):  # only the main thread has a wakeup descriptor
        signal.set_wakeup_fd(-1)
    for caught in CAUGHT_SIGNALS:
        with suppress(ValueError):
            signal.signal(caught, signal.SIG_DFL)
    os.closerange(3, fd)
    os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
