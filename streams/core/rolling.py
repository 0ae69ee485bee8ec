"""Per-second event-time rings: the sliding-window building blocks. Pure numpy.

A ring holds the last `size` seconds of a few counters. Seconds are absolute
(epoch seconds); advancing the ring zeroes the slots that fall out, so a window
sum over the last N seconds is one numpy sum, whatever happened before.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from functools import cache
from itertools import repeat
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
    event costs more than the event's other work. A ring starts sparse, two flat
    arrays of the (second, field) pairs that hold values, 16 bytes each, and becomes
    numpy slots only when more than `dense_after` pairs do: a room that saw one join
    keeps a few hundred bytes per ring instead of up to 24 KB, and a quiet room's
    latency counts of a few dozen seconds are not two rows of 2.4 KB. Dense, it holds a
    row of `size` slots only for the fields that hold values (`rows`), and drops a row
    once its field has held nothing for `size` seconds: a busy room's ring carries the
    fields it sees, not nine rows of which seven are zeros (100,000 small rooms on a
    worker, benchmarks.many_rooms).
    """

    __slots__ = (
        "dense_after", "fields", "head", "keys", "newest", "pruned_at", "rows", "size", "slots",
        "values",
    )  # fmt: skip

    def __init__(self, fields: int, size: int, start_second: int, *, dense_after: int = 96) -> None:
        self.fields = fields
        self.size = size
        self.dense_after = dense_after
        self.slots: npt.NDArray[np.float64] | None = None
        """The dense ring (a row per field in `rows`), once the sparse one holds more
        than `dense_after` pairs."""
        self.rows: tuple[int, ...] = _no_rows(fields)
        """Field -> its row of `slots`, -1 when it has none (it holds nothing); one
        tuple shared by every ring with no rows yet."""
        self.keys = array("q")
        """While the ring is sparse: second * fields + field of each pair holding a
        value, in order."""
        self.values = array("d")
        """The value of each pair in `keys`."""
        self.newest: list[float] | None = None
        """Unfolded additions to the head second, if any."""
        self.head = start_second
        """The newest second the ring covers."""
        self.pruned_at = start_second
        """When the dense ring last dropped the rows of fields holding nothing."""

    def _fold(self) -> None:
        if self.newest is not None:
            self._store(self.head, self.newest)
            self.newest = None

    def _store(self, second: int, values: list[float]) -> None:
        """Add one value per field to `second`, which the ring covers."""
        if self.slots is None:
            base = second * self.fields
            for field, value in enumerate(values):
                if value:
                    self._pair(base + field, value)
            if len(self.keys) > self.dense_after:
                self._densify()
            return
        position = second % self.size
        for field, value in enumerate(values):
            if value:
                self._row(field)[position] += value

    def _pair(self, key: int, value: float) -> None:
        """Add to a sparse (second, field) pair; most come after every pair held."""
        keys = self.keys
        if not keys or key > keys[-1]:
            keys.append(key)
            self.values.append(value)
            return
        at = bisect_left(keys, key)
        if keys[at] == key:
            self.values[at] += value
        else:
            keys.insert(at, key)
            self.values.insert(at, value)

    def _row(self, field: int) -> npt.NDArray[np.float64]:
        """The dense row of `field`, made when it has none."""
        row = self.rows[field]
        if row < 0:
            empty = np.zeros((1, self.size), dtype=np.float64)
            slots = empty if self.slots is None else np.concatenate((self.slots, empty))
            row = len(slots) - 1
            self.rows = (*self.rows[:field], row, *self.rows[field + 1 :])
            self.slots = slots
        assert self.slots is not None
        kept: npt.NDArray[np.float64] = self.slots[row]
        return kept

    def _densify(self) -> None:
        self.slots = np.zeros((0, self.size), dtype=np.float64)
        keys, values = self.keys, self.values
        self.keys, self.values = array("q"), array("d")
        for key, value in zip(keys, values, strict=True):
            second, field = divmod(key, self.fields)
            if value and self.covers(second):
                self._row(field)[second % self.size] += value

    def _prune(self) -> None:
        """Drop the rows of fields that hold nothing now: looked at once per `size`
        seconds the ring moves on, so a field written less often loses its row."""
        assert self.slots is not None
        self.pruned_at = self.head
        held: npt.NDArray[np.bool_] = np.any(self.slots, axis=1)
        if held.all():
            return
        self.slots = self.slots[held]
        renumbered = np.cumsum(held) - 1
        self.rows = tuple(
            -1 if row < 0 or not held[row] else int(renumbered[row]) for row in self.rows
        )

    def advance(self, second: int) -> None:
        """Make `second` the newest slot; slots of seconds now out of range are cleared."""
        if second <= self.head:
            return
        self._fold()
        gap = second - self.head
        slots = self.slots
        if slots is None:
            gone = bisect_left(self.keys, (second - self.size + 1) * self.fields)
            if gone:
                del self.keys[:gone], self.values[:gone]
        elif gap >= self.size:
            slots[:] = 0.0
        elif gap == 1:
            slots[:, second % self.size] = 0.0
        else:  # one or two slices: a quiet room's catch-up spans many seconds
            start, stop = (self.head + 1) % self.size, second % self.size + 1
            if start < stop:
                slots[:, start:stop] = 0.0
            else:
                slots[:, start:] = 0.0
                slots[:, :stop] = 0.0
        self.head = second
        if slots is not None and second - self.pruned_at >= self.size:
            self._prune()

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
        row = self._row(field)
        start, stop = first % self.size, last % self.size + 1
        if start < stop:
            row[start:stop] += value
        else:
            row[start:] += value
            row[:stop] += value

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
        if not value:
            return True
        if self.slots is not None:
            self._row(field)[second % self.size] += value
        else:
            self._pair(second * self.fields + field, value)
            if len(self.keys) > self.dense_after:
                self._densify()
        return True

    def at(self, field: int, second: int) -> float:
        """The value of one second still in the ring (0 otherwise)."""
        self._fold()
        if not self.covers(second):
            return 0.0
        if self.slots is not None:
            row = self.rows[field]
            return 0.0 if row < 0 else float(self.slots[row, second % self.size])
        key = second * self.fields + field
        at = bisect_left(self.keys, key)
        return self.values[at] if at < len(self.keys) and self.keys[at] == key else 0.0

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
            keys, fields = self.keys, self.fields
            start = bisect_left(keys, first * fields)
            stop = bisect_left(keys, (last + 1) * fields, start)
            if fields == 1:
                return float(sum(self.values[start:stop]))
            values = self.values
            return float(sum(values[i] for i in range(start, stop) if keys[i] % fields == field))
        row = self.rows[field]
        if row < 0:
            return 0.0
        start, stop = first % self.size, last % self.size + 1
        if start < stop:
            return float(self.slots[row, start:stop].sum())
        return float(self.slots[row, start:].sum() + self.slots[row, :stop].sum())


@cache
def _no_rows(fields: int) -> tuple[int, ...]:
    return (-1,) * fields


class LevelRing:
    """A level per second (viewers online) over the last `size` seconds, held as spans.

    Seconds are closed in order, and in a room of a few viewers the level holds for
    minutes: one span (first second, last second, level) says what a `SecondRing` row
    says in `size` slots, 2.4 KB for the five-minute window, which every small room
    filled as it was ticked (100,000 small rooms on a worker, benchmarks.many_rooms).
    A level that changes nearly every second (a room of thousands) moves to a ring row
    once it takes more than `MAX_SPANS` spans: sums then stay one numpy sum.
    """

    MAX_SPANS: Final = 64

    __slots__ = ("dense", "firsts", "head", "lasts", "levels", "size")

    def __init__(self, size: int, start_second: int) -> None:
        self.size = size
        self.head = start_second
        """The newest second the ring covers."""
        self.firsts = array("q")
        """Each span's first second, oldest span first; spans do not overlap."""
        self.lasts = array("q")
        """Each span's last second."""
        self.levels = array("d")
        """Each span's level, held every second of it."""
        self.dense: SecondRing | None = None
        """The ring row the spans moved to, once there were too many."""

    def add(self, first: int, last: int, level: float) -> None:
        """Seconds `first` to `last` held `level` (added to what they held: a room adds
        each second once, in order, which spans hold without a row)."""
        self.advance(last)
        if self.dense is not None:
            self.dense.fill(0, first, last, level)
            return
        first = max(first, self.head - self.size + 1)
        if first > last:
            return
        lasts = self.lasts
        if lasts and first <= lasts[-1]:
            # Not how a room closes its seconds; a row adds whatever the order.
            self._densify()
            self.add(first, last, level)
            return
        if lasts and lasts[-1] == first - 1 and self.levels[-1] == level:
            lasts[-1] = last
            return
        self.firsts.append(first)
        lasts.append(last)
        self.levels.append(level)
        if len(lasts) > self.MAX_SPANS:
            self._densify()

    def _densify(self) -> None:
        dense = SecondRing(1, self.size, self.head, dense_after=0)
        for first, last, level in zip(self.firsts, self.lasts, self.levels, strict=True):
            dense.fill(0, first, last, level)
        self.dense = dense
        self.firsts, self.lasts, self.levels = array("q"), array("q"), array("d")

    def advance(self, second: int) -> None:
        """Make `second` the newest second; spans wholly before the ring are dropped."""
        if second <= self.head:
            return
        self.head = second
        if self.dense is not None:
            self.dense.advance(second)
            return
        gone = bisect_right(self.lasts, second - self.size)
        if gone:
            del self.firsts[:gone], self.lasts[:gone], self.levels[:gone]

    def at(self, second: int) -> float:
        """The level of one second still in the ring (0 otherwise)."""
        if self.dense is not None:
            return self.dense.at(0, second)
        if not self.head - self.size < second <= self.head:
            return 0.0
        span = bisect_left(self.lasts, second)
        if span < len(self.lasts) and self.firsts[span] <= second:
            return self.levels[span]
        return 0.0

    def window(self, seconds: int) -> float:
        """Sum over the newest `seconds` seconds (head included)."""
        return self.window_ending(seconds, self.head)

    def window_ending(self, seconds: int, last: int) -> float:
        """Sum over the `seconds` seconds ending at `last` (inclusive)."""
        if self.dense is not None:
            return self.dense.window_ending(0, seconds, last)
        first = max(last - seconds + 1, self.head - self.size + 1)
        last = min(last, self.head)
        total = 0.0
        if last < first:
            return total
        firsts, lasts, levels = self.firsts, self.lasts, self.levels
        for span in range(bisect_left(lasts, first), len(lasts)):
            if firsts[span] > last:
                break
            total += (min(lasts[span], last) - max(firsts[span], first) + 1) * levels[span]
        return total


class LastSeen:
    """Distinct users active within a sliding window, exact.

    Each user counts in the second of their latest activity; a user's earlier
    second is uncounted when they are active again, so a window sum counts each
    user once. Users older than the ring are forgotten (bounded memory). The ring
    and the map are made when someone is first seen: a room keeps four of these
    (departed viewers, chatters, buyers, stalled viewers), and most small rooms see
    no chat, no order and no stall.
    """

    __slots__ = ("head", "pruned_at", "ring", "seen", "size")

    def __init__(self, size: int, start_second: int) -> None:
        self.size = size
        self.head = start_second
        """The newest second the window covers, while nobody was seen."""
        self.ring: SecondRing | None = None
        self.seen: dict[str, int] | None = None
        self.pruned_at = start_second

    def touch(self, user: str, second: int) -> None:
        ring, seen = self.ring, self.seen
        if ring is None or seen is None:
            ring = self.ring = SecondRing(1, self.size, self.head)
            seen = self.seen = {}
        previous = seen.get(user)
        if previous is not None:
            if previous >= second:
                return
            ring.add(0, previous, -1.0)
        if ring.add(0, second, 1.0):
            seen[user] = second

    def forget(self, user: str) -> None:
        second = None if self.seen is None else self.seen.pop(user, None)
        if second is not None and self.ring is not None:
            self.ring.add(0, second, -1.0)

    def advance(self, second: int) -> None:
        if self.ring is None or self.seen is None:
            self.head = max(self.head, second)
            return
        self.ring.advance(second)
        if second - self.pruned_at >= self.size:
            horizon = second - self.size
            self.seen = {u: s for u, s in self.seen.items() if s > horizon}
            self.pruned_at = second

    def distinct(self, seconds: int) -> int:
        return 0 if self.ring is None else round(self.ring.window(0, seconds))


class WindowedSketch:
    """Latency samples over sliding windows; a window's sketch is built when read.

    Samples arrive all the time and are read rarely (a scrape, a snapshot), so they
    are kept as they came (ms) until they leave the longest window, and a read
    buckets the seconds it covers in one go. A few samples at once (most rooms send a
    handful a second) go into two flat arrays, the second and the value, 16 bytes a
    sample: 100,000 small rooms on a worker had kept each `add` as the list it came
    in, with a dict entry for its second, some 200 bytes a sample. Many samples at
    once (`BUCKET_AT`) are kept by second as their sketch buckets, two bytes each: the
    sketch is the same (buckets are fixed). A 1M-viewer room's five minutes of samples
    are 30 million, held in the room and again in its regions: most of its checkpoint
    (636 MB after 7 minutes, benchmarks.hot_room). A second holding more bucket
    positions than `COUNT_AT` keeps their counts per bucket instead (one
    `COUNTS_DTYPE` array of `BUCKETS`, 3.5 KB): a busy room's memory then stops
    growing with its audience, and a read adds 300 arrays rather than bucketing
    millions of positions.
    """

    __slots__ = ("by_second", "few_seconds", "few_values", "head", "windows")

    def __init__(self, windows: tuple[int, ...], start_second: int) -> None:
        self.windows = windows
        self.few_seconds = array("q")
        """The second of each sample added a few at a time, in order (`few_values`)."""
        self.few_values = array("d")
        """Samples (ms) added fewer than `BUCKET_AT` at a time, in second order."""
        self.by_second: dict[int, list[npt.NDArray[Any]]] = {}
        """Second -> samples added `BUCKET_AT` or more at a time: their sketch buckets
        (`BUCKET_DTYPE`), and from `COUNT_AT` in the second one array of counts per
        bucket (`COUNTS_DTYPE`)."""
        self.head = start_second

    def add(self, second: int, values_ms: Sequence[float]) -> None:
        """Count samples (ms) at `second`, moving up to it."""
        if second > self.head:
            self.advance(second)
        if second <= self.head - max(self.windows) or not len(values_ms):
            return
        if len(values_ms) < BUCKET_AT:
            self._add_few(second, values_ms)
            return
        held = self.by_second.setdefault(second, [])
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

    def _add_few(self, second: int, values_ms: Sequence[float]) -> None:
        seconds, values = self.few_seconds, self.few_values
        if not seconds or seconds[-1] <= second:
            seconds.extend(repeat(second, len(values_ms)))
            values.extend(values_ms)
            return
        at = bisect_right(seconds, second)  # a second behind the newest: kept in order
        seconds[at:at] = array("q", repeat(second, len(values_ms)))
        values[at:at] = array("d", values_ms)

    def advance(self, second: int) -> None:
        if second <= self.head:
            return
        longest = max(self.windows)
        after, until = self.head - longest, second - longest
        if self.by_second:
            if until - after > len(self.by_second):
                gone = [kept for kept in self.by_second if after < kept <= until]
            else:
                gone = [kept for kept in range(after + 1, until + 1) if kept in self.by_second]
            for kept in gone:
                del self.by_second[kept]
        seconds = self.few_seconds
        if seconds and seconds[0] <= until:
            cut = bisect_right(seconds, until)
            del seconds[:cut]
            del self.few_values[:cut]
        self.head = second

    def sketch(self, window: int) -> LatencySketch:
        """The samples of the newest `window` seconds."""
        bucketed: list[npt.NDArray[np.integer[Any]]] = []
        counted: list[npt.NDArray[np.integer[Any]]] = []
        for second, held in self.by_second.items():
            if second > self.head - window:
                for kept in held:
                    (counted if _is_counts(kept) else bucketed).append(kept)
        first = bisect_right(self.few_seconds, self.head - window)
        if first < len(self.few_values):
            bucketed.append(bucket_indexes(self.few_values[first:]))
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
