"""Per-second event-time rings: the sliding-window building blocks. Pure numpy.

A ring holds the last `size` seconds of a few counters. Seconds are absolute
(epoch seconds); advancing the ring zeroes the slots that fall out, so a window
sum over the last N seconds is one numpy sum, whatever happened before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, TypeGuard

import numpy as np
import numpy.typing as npt

from streams.core.sketch import BUCKETS, LatencySketch, bucket_indexes

WINDOWS: Final = (60, 300)
"""The sliding windows of room and region metrics, seconds."""
BUCKET_AT: Final = 64
"""`WindowedSketch` keeps this many samples added at once as sketch buckets."""
BUCKET_DTYPE: Final = np.uint16
"""Sketch bucket positions as `WindowedSketch` keeps them (`BUCKETS` is under 65,536)."""
COUNTS_DTYPE: Final = np.uint32
"""A second's counts per sketch bucket as `WindowedSketch` keeps them."""
COUNT_AT: Final = 2 * BUCKETS
"""More bucket positions than this in one second take more bytes than their counts."""


class SecondRing:
    """Per-second counters of the last `size` seconds.

    The newest second is summed in a plain list and folded in when the ring moves
    on or is read: events land in the newest second, and a numpy scalar update per
    event costs more than the event's other work. A ring starts sparse, a dict of
    the few seconds that hold values, and becomes numpy slots (fields x size) only
    when more than `dense_after` seconds do: a room that saw one join keeps a few
    hundred bytes per ring instead of up to 24 KB.
    """

    __slots__ = ("dense_after", "fields", "head", "newest", "size", "slots", "sparse")

    def __init__(self, fields: int, size: int, start_second: int, *, dense_after: int = 16) -> None:
        self.fields = fields
        self.size = size
        self.dense_after = dense_after
        self.slots: npt.NDArray[np.float64] | None = None
        """The dense ring, once the sparse one holds more than `dense_after` seconds."""
        self.sparse: dict[int, list[float]] = {}
        """Second -> its values, while the ring is sparse."""
        self.newest: list[float] | None = None
        """Unfolded additions to the head second, if any."""
        self.head = start_second
        """The newest second the ring covers."""

    def _fold(self) -> None:
        if self.newest is not None:
            self._store(self.head, self.newest)
            self.newest = None

    def _store(self, second: int, values: list[float]) -> None:
        """Add one value per field to `second`, which the ring covers."""
        if self.slots is None:
            kept = self.sparse.get(second)
            if kept is not None:
                for field, value in enumerate(values):
                    kept[field] += value
                return
            if len(self.sparse) < self.dense_after:
                self.sparse[second] = list(values)
                return
            self._densify()
        assert self.slots is not None
        self.slots[:, second % self.size] += values

    def _densify(self) -> None:
        self.slots = np.zeros((self.fields, self.size), dtype=np.float64)
        for second, values in self.sparse.items():
            self.slots[:, second % self.size] += values
        self.sparse = {}

    def advance(self, second: int) -> None:
        """Make `second` the newest slot; slots of seconds now out of range are cleared."""
        if second <= self.head:
            return
        self._fold()
        gap = second - self.head
        if self.slots is None:
            horizon = second - self.size
            if self.sparse and min(self.sparse) <= horizon:
                self.sparse = {s: v for s, v in self.sparse.items() if s > horizon}
        elif gap >= self.size:
            self.slots[:] = 0.0
        elif gap == 1:
            self.slots[:, second % self.size] = 0.0
        else:  # one or two slices: a quiet room's catch-up spans many seconds
            start, stop = (self.head + 1) % self.size, second % self.size + 1
            if start < stop:
                self.slots[:, start:stop] = 0.0
            else:
                self.slots[:, start:] = 0.0
                self.slots[:, :stop] = 0.0
        self.head = second

    def fill(self, field: int, first: int, last: int, value: float) -> None:
        """Add `value` to every second from `first` to `last`, which the ring ends with."""
        first = max(first, self.head - self.size + 1)
        if last - first < self.dense_after // 2:
            for second in range(first, last + 1):
                self.add(field, second, value)
            return
        self._fold()
        if self.slots is None:
            self._densify()
        assert self.slots is not None
        start, stop = first % self.size, last % self.size + 1
        if start < stop:
            self.slots[field, start:stop] += value
        else:
            self.slots[field, start:] += value
            self.slots[field, :stop] += value

    def covers(self, second: int) -> bool:
        return self.head - self.size < second <= self.head

    def add(self, field: int, second: int, value: float = 1.0) -> bool:
        """Add to a second still in the ring, moving the ring up to a newer one; False
        (nothing added) when it has left the ring."""
        if second > self.head:
            self.advance(second)
        if second == self.head:
            newest = self.newest
            if newest is None:
                newest = self.newest = [0.0] * self.fields
            newest[field] += value
            return True
        if not self.covers(second):
            return False
        if self.slots is not None:
            self.slots[field, second % self.size] += value
        else:
            values = [0.0] * self.fields
            values[field] = value
            self._store(second, values)
        return True

    def at(self, field: int, second: int) -> float:
        """The value of one second still in the ring (0 otherwise)."""
        self._fold()
        if not self.covers(second):
            return 0.0
        if self.slots is not None:
            return float(self.slots[field, second % self.size])
        kept = self.sparse.get(second)
        return kept[field] if kept is not None else 0.0

    def window(self, field: int, seconds: int) -> float:
        """Sum of `field` over the newest `seconds` seconds (head included)."""
        return self.window_ending(field, seconds, self.head)

    def window_ending(self, field: int, seconds: int, last: int) -> float:
        """Sum over the `seconds` seconds ending at `last` (inclusive); seconds after
        the ring's head hold nothing yet (a ring moves up when added to)."""
        self._fold()
        first = max(last - seconds + 1, self.head - self.size + 1)
        last = min(last, self.head)
        if last < first:
            return 0.0
        if self.slots is None:
            return float(sum(v[field] for s, v in self.sparse.items() if first <= s <= last))
        positions = np.arange(first, last + 1) % self.size
        return float(self.slots[field, positions].sum())


class LastSeen:
    """Distinct users active within a sliding window, exact.

    Each user counts in the second of their latest activity; a user's earlier
    second is uncounted when they are active again, so a window sum counts each
    user once. Users older than the ring are forgotten (bounded memory).
    """

    __slots__ = ("pruned_at", "ring", "seen")

    def __init__(self, size: int, start_second: int) -> None:
        self.ring = SecondRing(1, size, start_second)
        self.seen: dict[str, int] = {}
        self.pruned_at = start_second

    def touch(self, user: str, second: int) -> None:
        previous = self.seen.get(user)
        if previous is not None:
            if previous >= second:
                return
            self.ring.add(0, previous, -1.0)
        if self.ring.add(0, second, 1.0):
            self.seen[user] = second

    def forget(self, user: str) -> None:
        second = self.seen.pop(user, None)
        if second is not None:
            self.ring.add(0, second, -1.0)

    def advance(self, second: int) -> None:
        self.ring.advance(second)
        if second - self.pruned_at >= self.ring.size:
            horizon = second - self.ring.size
            self.seen = {u: s for u, s in self.seen.items() if s > horizon}
            self.pruned_at = second

    def distinct(self, seconds: int) -> int:
        return round(self.ring.window(0, seconds))


class WindowedSketch:
    """Latency samples over sliding windows; a window's sketch is built when read.

    Samples arrive all the time and are read rarely (a scrape, a snapshot), so a
    second's samples are kept as they came (ms) until they leave the longest
    window, and a read buckets the seconds it covers in one go. Many samples at once
    (`BUCKET_AT`) are kept as their sketch buckets instead, two bytes each: the sketch
    is the same (buckets are fixed), and a list of floats costs 32 bytes a sample. A
    1M-viewer room's five minutes of samples are 30 million, held in the room and again
    in its regions: most of its checkpoint (636 MB after 7 minutes, benchmarks.hot_room).
    A second holding more bucket positions than `COUNT_AT` keeps their counts per bucket
    instead (one `COUNTS_DTYPE` array of `BUCKETS`, 3.5 KB): a busy room's memory then
    stops growing with its audience, and a read adds 300 arrays rather than bucketing
    millions of positions.
    """

    __slots__ = ("by_second", "head", "windows")

    def __init__(self, windows: tuple[int, ...], start_second: int) -> None:
        self.windows = windows
        self.by_second: dict[int, list[Sequence[float] | npt.NDArray[Any]]] = {}
        """Second -> the values added in it, one sequence per `add`, kept as given:
        most rooms add a handful of samples a second, for which a numpy array costs
        more to build (and to checkpoint) than the list it comes from. From
        `BUCKET_AT` samples on, their sketch buckets (`BUCKET_DTYPE`), and from
        `COUNT_AT` in the second one array of counts per bucket (`COUNTS_DTYPE`)."""
        self.head = start_second

    def add(self, second: int, values_ms: Sequence[float]) -> None:
        """Count samples (ms) at `second`, moving up to it; `values_ms` is kept, not copied."""
        if second > self.head:
            self.advance(second)
        if second <= self.head - max(self.windows) or not len(values_ms):
            return
        held = self.by_second.setdefault(second, [])
        if len(values_ms) < BUCKET_AT:
            held.append(values_ms)
            return
        indexes = bucket_indexes(values_ms)
        counts = next((kept for kept in held if _is_counts(kept)), None)
        if counts is not None:
            counts += np.bincount(indexes, minlength=BUCKETS).astype(COUNTS_DTYPE)
            return
        positions = [kept for kept in held if _is_positions(kept)]
        if len(indexes) + sum(len(kept) for kept in positions) <= COUNT_AT:
            held.append(indexes.astype(BUCKET_DTYPE))
            return
        every = np.concatenate([indexes, *positions])
        held[:] = [kept for kept in held if not _is_positions(kept)]
        held.append(np.bincount(every, minlength=BUCKETS).astype(COUNTS_DTYPE))

    def advance(self, second: int) -> None:
        if second <= self.head:
            return
        longest = max(self.windows)
        after, until = self.head - longest, second - longest
        if until - after > len(self.by_second):
            gone = [kept for kept in self.by_second if after < kept <= until]
        else:
            gone = [kept for kept in range(after + 1, until + 1) if kept in self.by_second]
        for kept in gone:
            del self.by_second[kept]
        self.head = second

    def sketch(self, window: int) -> LatencySketch:
        """The samples of the newest `window` seconds."""
        raw: list[Sequence[float]] = []
        bucketed: list[npt.NDArray[np.integer[Any]]] = []
        counted: list[npt.NDArray[np.integer[Any]]] = []
        for second, held in self.by_second.items():
            if second > self.head - window:
                for values in held:
                    if _is_positions(values):
                        bucketed.append(values)
                    elif _is_counts(values):
                        counted.append(values)
                    else:
                        raw.append(values)  # type: ignore[arg-type]  # floats, as given
        if raw:
            bucketed.append(bucket_indexes(np.concatenate(raw, dtype=np.float64)))
        counts = np.zeros(BUCKETS, dtype=np.int64)
        if bucketed:
            counts += np.bincount(np.concatenate(bucketed), minlength=BUCKETS)
        if counted:
            counts += np.sum(counted, axis=0, dtype=np.int64)
        return LatencySketch(counts)


def _is_positions(kept: object) -> TypeGuard[npt.NDArray[Any]]:
    return isinstance(kept, np.ndarray) and kept.dtype == BUCKET_DTYPE


def _is_counts(kept: object) -> TypeGuard[npt.NDArray[Any]]:
    return isinstance(kept, np.ndarray) and kept.dtype == COUNTS_DTYPE
