"""Per-second event-time rings: the sliding-window building blocks. Pure numpy.

A ring holds the last `size` seconds of a few counters. Seconds are absolute
(epoch seconds); advancing the ring zeroes the slots that fall out, so a window
sum over the last N seconds is one numpy sum, whatever happened before.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from streams.sketch import LatencySketch


class SecondRing:
    __slots__ = ("head", "size", "slots")

    def __init__(self, fields: int, size: int, start_second: int) -> None:
        self.size = size
        self.slots: npt.NDArray[np.float64] = np.zeros((fields, size), dtype=np.float64)
        self.head = start_second
        """The newest second the ring covers."""

    def advance(self, second: int) -> None:
        """Make `second` the newest slot; slots of seconds now out of range are cleared."""
        if second <= self.head:
            return
        gap = second - self.head
        if gap >= self.size:
            self.slots[:] = 0.0
        else:
            positions = np.arange(self.head + 1, second + 1) % self.size
            self.slots[:, positions] = 0.0
        self.head = second

    def covers(self, second: int) -> bool:
        return self.head - self.size < second <= self.head

    def add(self, field: int, second: int, value: float = 1.0) -> bool:
        """Add to a second still in the ring; False (nothing added) when it is not."""
        if not self.covers(second):
            return False
        self.slots[field, second % self.size] += value
        return True

    def at(self, field: int, second: int) -> float:
        """The value of one second still in the ring (0 otherwise)."""
        return float(self.slots[field, second % self.size]) if self.covers(second) else 0.0

    def window(self, field: int, seconds: int) -> float:
        """Sum of `field` over the newest `seconds` seconds (head included)."""
        return self.window_ending(field, seconds, self.head)

    def window_ending(self, field: int, seconds: int, last: int) -> float:
        """Sum over the `seconds` seconds ending at `last` (inclusive)."""
        first = max(last - seconds + 1, self.head - self.size + 1)
        if last < first:
            return 0.0
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
    """Latency sketches over sliding windows, kept up to date incrementally.

    Samples are remembered per second (bucket -> count) until they leave the
    longest window, then subtracted; a quantile query reads a dense array.
    """

    __slots__ = ("by_second", "head", "sketches", "windows")

    def __init__(self, windows: tuple[int, ...], start_second: int) -> None:
        self.windows = windows
        self.sketches = {w: LatencySketch() for w in windows}
        self.by_second: dict[int, dict[int, int]] = {}
        self.head = start_second

    def add(self, second: int, bucket: int) -> None:
        """Count one sample of bucket `bucket` (see sketch.bucket_index) at `second`."""
        if second <= self.head - max(self.windows) or second > self.head:
            return
        counts = self.by_second.setdefault(second, {})
        counts[bucket] = counts.get(bucket, 0) + 1
        for window, sketch in self.sketches.items():
            if second > self.head - window:
                sketch.counts[bucket] += 1

    def advance(self, second: int) -> None:
        if second <= self.head:
            return
        for window, sketch in self.sketches.items():
            leaving_after, leaving_until = self.head - window, second - window
            for kept, counts in self.by_second.items():
                if leaving_after < kept <= leaving_until:
                    for bucket, count in counts.items():
                        sketch.counts[bucket] -= count
        oldest_kept = second - max(self.windows)
        for gone in [kept for kept in self.by_second if kept <= oldest_kept]:
            del self.by_second[gone]
        self.head = second
