"""Recorded event logs: JSON Lines, one event per line, optionally gzip-compressed."""

from __future__ import annotations

import gzip
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, NamedTuple, cast

import msgspec

from streams.core.decode import DECODE_ERRORS
from streams.core.events import EventTime

_GZIP_MAGIC = b"\x1f\x8b"


SHOWN_SKIPS: Final = 20
"""Skipped inputs `replay` and `record` report one by one; the rest are counted by reason."""


@dataclass
class Skips:
    """What `replay` or `record` could not pass on: counted by reason, the first named."""

    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    """Skipped inputs by reason (the decoder's reasons, docs/events.md)."""
    shown: list[str] = field(default_factory=list)
    """The first SHOWN_SKIPS skipped inputs, as `place: reason[: detail]`."""

    def note(self, place: str, reason: str, detail: str | None = None) -> None:
        self.skipped += 1
        self.reasons[reason] += 1
        if len(self.shown) < SHOWN_SKIPS:
            self.shown.append(f"{place}: {reason}" + (f": {detail}" if detail else ""))

    def by_reason(self) -> str:
        """` (3 not_json, 1 not_utf8)`, or nothing when nothing was skipped."""
        said = ", ".join(f"{n} {reason}" for reason, n in self.reasons.most_common())
        return f" ({said})" if said else ""


class EventLogError(OSError):
    pass


def open_log(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a log for reading; gzip is recognised by its magic bytes, not its name."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise EventLogError(f"cannot read event log {path}: {exc.strerror}") from None
    if handle.read(2) == _GZIP_MAGIC:
        handle.close()
        return cast(IO[bytes], gzip.open(path, "rb"))
    handle.seek(0)
    return handle


@contextmanager
def create_log(path: str | os.PathLike[str], compresslevel: int = 9) -> Iterator[IO[bytes]]:
    """Open a log for writing: gzip when the name ends in .gz, as `open_log` reads it back."""
    path = Path(path)
    try:
        raw = path.open("wb")
    except OSError as exc:
        raise EventLogError(f"cannot write event log {path}: {exc.strerror}") from None
    with raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel) as zipped:
                yield cast(IO[bytes], zipped)
        else:
            yield raw


def read_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, line) for every non-blank line."""
    with open_log(path) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                line = line.strip()
                if line:
                    yield number, line
        except (OSError, EOFError) as exc:  # truncated or corrupt gzip
            raise EventLogError(f"event log {path} is unreadable: {exc}") from None


class Chunk(NamedTuple):
    first: int
    """Number of the first line."""
    lines: list[bytes]
    file_bytes_read: int
    """How far into the file (compressed, for gzip) reading has come: for progress."""


def read_chunks(path: str | os.PathLike[str], size: int = 1 << 22) -> Iterator[Chunk]:
    """The log's lines in chunks of about `size` bytes.

    Blank lines are kept so numbers stay exact. One `splitlines` per chunk
    instead of a Python step per line: this is what backtest reads through.
    """
    with open_log(path) as handle:
        raw = handle.fileobj if isinstance(handle, gzip.GzipFile) else handle
        number, carry = 1, b""
        try:
            while block := handle.read(size):
                block = carry + block
                cut = block.rfind(b"\n") + 1
                carry = block[cut:]
                if cut:
                    lines = block[:cut].splitlines()
                    yield Chunk(number, lines, raw.tell())
                    number += len(lines)
        except (OSError, EOFError) as exc:  # truncated or corrupt gzip
            raise EventLogError(f"event log {path} is unreadable: {exc}") from None
        if carry:
            yield Chunk(number, [carry], raw.tell())


def estimated_lines(path: str | os.PathLike[str]) -> int:
    """About how many lines a log holds, from its size (simulated nights: ~125 bytes
    a line, ~16 gzipped)."""
    with open_log(path) as handle:
        gzipped = isinstance(handle, gzip.GzipFile)
    return os.path.getsize(path) // (16 if gzipped else 125)


class Routing(msgspec.Struct):
    """The fields needed to route a line; full validation is the pipeline's job."""

    type: str
    room_id: str
    ts: EventTime
    """Bounded as in the contract: a huge number makes the line unroutable (it is
    then decoded in full and rejected), not an overflow in the splitter's arrays."""


_routing_decoder = msgspec.json.Decoder(Routing)


def route(line: bytes) -> Routing | None:
    """Where a log line goes, or None when it is not even shaped like an event."""
    try:
        return _routing_decoder.decode(line)
    except DECODE_ERRORS:
        return None


def route_lines(lines: list[bytes], block: int = 64) -> list[Routing | None]:
    """`route` for every line: blocks of lines in one C-level map, a block with
    an unroutable line line by line."""
    routes: list[Routing | None] = []
    decode = _routing_decoder.decode
    for start in range(0, len(lines), block):
        part = lines[start : start + block]
        try:
            routes += list(map(decode, part))
        except DECODE_ERRORS:
            routes += map(route, part)
    return routes
