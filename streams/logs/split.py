"""An event log split into per-partition parcels, and the log's clock, for backtest.

Backtest runs partitions in parallel lanes; the log is read once. The reader
only decodes what routing needs (room_id and ts, see `files.route_lines`);
each lane fully decodes its own lines. Lines that do not route are decoded in
full here: their rejects travel to the lane of partition 0, their events (a
line holding an array) are re-encoded one per line and routed.

The log's clock is the newest second of a valid event read so far. When it
moves, every lane first ingests what came before and then lets partitions idle
for `idle_after_s` move on with it, as a live worker's silent partitions follow
the wall clock. A line moves the clock only if it holds a valid event (checked
by a full decode, about once per second of log) whose second is newer, not
more than `max_clock_skew_ms` ahead, and not more than `max_jump_ms` ahead unless
the next line leaps too: one absurd timestamp must not age every room. Everything
here is vectorized over a chunk: no Python step per line besides the decoding.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, cast

import msgspec
import numpy as np
import numpy.typing as npt

from streams.core.decode import Rejected, decode_log_lines, is_event
from streams.core.events import event_type
from streams.kafka.partitioner import partition_for
from streams.logs.files import Routing, read_chunks, route_lines

_ts: Final = operator.attrgetter("ts")
_room_id: Final = operator.attrgetter("room_id")


@dataclass(slots=True)
class Part:
    """A partition's lines of one chunk of the log, cut into runs at the clock's moves."""

    numbers: npt.NDArray[np.int64]
    text: bytes
    """The lines, joined by newlines: one object to pass to another process."""
    cuts: list[int]
    """Run k is lines[cuts[k] : cuts[k + 1]]; one run more than the parcel has moves."""

    def lines(self) -> list[bytes]:
        return self.text.split(b"\n")


@dataclass(slots=True)
class Parcel:
    lines_read: int = 0
    """Lines of the log read up to the end of this parcel."""
    file_bytes_read: int = 0
    clock_moves: list[int] = field(default_factory=list)
    """Run k > 0 starts with the log's clock moving to second clock_moves[k - 1]."""
    parts: dict[int, Part] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    """Lines that hold no routable event: counted by whoever drives partition 0."""

    def only(self, partitions: Sequence[int]) -> Parcel:
        """What a lane driving `partitions` needs of this parcel."""
        return Parcel(
            self.lines_read,
            self.file_bytes_read,
            self.clock_moves,
            {p: part for p, part in self.parts.items() if p in partitions},
            self.rejected if 0 in partitions else [],
        )


class LogSplitter:
    def __init__(self, partitions: int, max_clock_skew_ms: int, max_jump_ms: int = 300_000) -> None:
        self.max_clock_skew_s = max_clock_skew_ms // 1000
        self.max_jump_s = max_jump_ms // 1000
        self.newest: int | None = None
        """The log's clock: the newest second of a valid event so far."""
        self._partition_of = _PartitionOf(partitions)

    def parcels(self, path: str) -> Iterator[Parcel]:
        for first, lines, file_bytes_read in read_chunks(path):
            parcel = self.split(lines, range(first, first + len(lines)), path)
            parcel.lines_read, parcel.file_bytes_read = first + len(lines) - 1, file_bytes_read
            yield parcel

    def split(self, lines: list[bytes], numbers: Sequence[int], log: str) -> Parcel:
        parcel = Parcel()
        found = route_lines(lines)
        checked: npt.NDArray[np.bool_] | None = None
        if None in found:
            lines, numbers, routes, checked = self._unroutable(lines, numbers, found, log, parcel)
        else:
            routes = cast(list[Routing], found)
        count = len(routes)
        if not count:
            return parcel
        seconds = np.fromiter(map(_ts, routes), np.int64, count) // 1000
        moves = self._clock_moves(seconds, lines, checked)
        parcel.clock_moves = seconds[moves].tolist()
        owners = np.fromiter(
            map(self._partition_of.__getitem__, map(_room_id, routes)), np.int64, count
        )
        line_array = np.fromiter(lines, object, count)
        number_array = np.fromiter(numbers, np.int64, count)
        bounds = [0, *moves, count]
        for partition in np.unique(owners).tolist():
            positions = np.flatnonzero(owners == partition)
            parcel.parts[partition] = Part(
                number_array[positions],
                b"\n".join(line_array[positions].tolist()),
                np.searchsorted(positions, bounds).tolist(),
            )
        return parcel

    def _unroutable(
        self,
        lines: list[bytes],
        numbers: Sequence[int],
        routes: list[Routing | None],
        log: str,
        parcel: Parcel,
    ) -> tuple[list[bytes], list[int], list[Routing], npt.NDArray[np.bool_]]:
        """Decode the lines that did not route in full: rejects go into the parcel,
        events become lines of their own. Also says which lines are known valid."""
        kept_lines: list[bytes] = []
        kept_numbers: list[int] = []
        kept_routes: list[Routing] = []
        checked: list[bool] = []
        start = 0
        bad = _positions_of_none(routes)
        for index in [*bad, len(routes)]:
            kept_lines += lines[start:index]
            kept_numbers += numbers[start:index]
            kept_routes += routes[start:index]  # type: ignore[arg-type]  # no None before index
            checked += [False] * (index - start)
            if index == len(routes):
                break
            decoded = decode_log_lines([lines[index]], [numbers[index]], log)
            parcel.rejected += decoded.rejected
            for event in decoded.events:
                kept_lines.append(msgspec.json.encode(event))
                kept_numbers.append(numbers[index])
                kept_routes.append(Routing(event_type(event), event.room_id, event.ts))
                checked.append(True)
            start = index + 1
        return kept_lines, kept_numbers, kept_routes, np.array(checked, dtype=bool)

    def _clock_moves(
        self,
        seconds: npt.NDArray[np.int64],
        lines: list[bytes],
        checked: npt.NDArray[np.bool_] | None,
    ) -> list[int]:
        """Positions of the lines that move the log's clock (see the module doc)."""
        moving = seconds.copy()  # a line found invalid or too far ahead gets -1: it cannot
        valid: set[int] = set()

        def is_valid(position: int) -> bool:
            if position not in valid:
                if not ((checked is not None and checked[position]) or is_event(lines[position])):
                    return False
                valid.add(position)
            return True

        first = 0
        if self.newest is None:  # the log's first valid line sets the clock
            while first < len(moving) and not is_valid(first):
                first += 1
            if first == len(moving):
                return []
            self.newest = int(moving[first])
            first += 1
        while True:
            before = np.empty_like(moving[first:])  # the clock before each line
            if not len(before):
                return []
            before[0] = self.newest
            before[1:] = moving[first:-1]
            np.maximum.accumulate(before, out=before)
            ahead = moving[first:] - before
            moves = (np.flatnonzero(ahead > 0) + first).tolist()
            invalid = [m for m in moves if not is_valid(m)]
            if invalid:
                moving[invalid] = -1
                continue
            too_far = np.flatnonzero(ahead > self.max_clock_skew_s)
            if len(too_far):  # the first one only: it may have held others back
                moving[too_far[0] + first] = -1
                continue
            unconfirmed = self._unconfirmed_leap(moving[first:], before, ahead)
            if unconfirmed is not None:
                moving[unconfirmed + first] = -1
                continue
            self.newest = max(self.newest, int(moving[first:].max()))
            return moves

    def _unconfirmed_leap(
        self,
        moving: npt.NDArray[np.int64],
        before: npt.NDArray[np.int64],
        ahead: npt.NDArray[np.int64],
    ) -> int | None:
        """The first line leaping more than `max_jump_ms` ahead of the clock whose next
        line does not leap too, as the engine judges a leap (a chunk's last line leaps
        with the next chunk, if at all)."""
        for leap in np.flatnonzero(ahead > self.max_jump_s).tolist():
            following = leap + 1
            if following >= len(moving) or moving[following] - before[leap] <= self.max_jump_s:
                return int(leap)
        return None


class _PartitionOf(dict[str, int]):
    """Room -> partition, computed once per room."""

    def __init__(self, partitions: int) -> None:
        super().__init__()
        self.partitions = partitions

    def __missing__(self, room_id: str) -> int:
        self[room_id] = partition = partition_for(room_id, self.partitions)
        return partition


def _positions_of_none(items: list[Routing | None]) -> list[int]:
    positions: list[int] = []
    with contextlib.suppress(ValueError):  # a C-level scan for each
        while True:
            positions.append(items.index(None, positions[-1] + 1 if positions else 0))
    return positions
