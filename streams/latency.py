"""Partition-wide latency statistics: Prometheus-style histograms and per-region sketches."""

from __future__ import annotations

from itertools import chain
from typing import Final

import numpy as np
import numpy.typing as npt

from streams.events import Latency
from streams.rolling import WindowedSketch
from streams.room import WINDOWS, MetricsConfig
from streams.sketch import bucket_indexes

HISTOGRAM_BOUNDS_SECONDS: Final = (
    0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds; 0.6 s is the SLO line, so PromQL can compute the SLO ratio exactly."""
_BOUNDS: Final = np.array(HISTOGRAM_BOUNDS_SECONDS)
_BIN_AT: Final = 50_000
MAX_REGIONS: Final = 64
OTHER_REGION: Final = "other"
NO_REGION: Final = "unknown"


class LatencySamples:
    """Latency events of one room and second as value columns by (kind, region).

    Latency samples are most of the traffic, so the engine hands them over a
    second at a time instead of one call per event.
    """

    __slots__ = ("count", "values")

    def __init__(self) -> None:
        self.count = 0
        self.values: dict[tuple[str, str | None], list[float]] = {}
        """(kind, region as sent) -> values in ms, in application order."""

    def append(self, event: Latency) -> None:
        self.count += 1
        key = (event.kind, event.region)
        values = self.values.get(key)
        if values is None:
            self.values[key] = [event.value_ms]
        else:
            values.append(event.value_ms)

    def merge(self, other: LatencySamples) -> None:
        self.count += other.count
        for key, values in other.values.items():
            self.values.setdefault(key, []).extend(values)

    def e2e(self) -> npt.NDArray[np.float64]:
        """End-to-end values of every region."""
        chunks = [v for (kind, _), v in self.values.items() if kind == "e2e"]
        return np.fromiter(chain.from_iterable(chunks), dtype=np.float64)


class LatencyStats:
    def __init__(self, config: MetricsConfig) -> None:
        self.config = config
        self._histograms: dict[tuple[str, str], list[int]] = {}
        """(kind, region) -> per-bucket counts (not cumulative; last is +Inf)."""
        self._sums: dict[tuple[str, str], float] = {}
        self._unbinned: dict[tuple[str, str], list[float]] = {}
        """Values (ms) not yet in the histograms: binned in bulk when many or when read."""
        self.regions: dict[str, WindowedSketch] = {}
        """e2e latency per region over the sliding windows."""

    def region_of(self, region: str | None) -> str:
        # Region names come from producers: a bounded set, the rest pooled.
        region = region or NO_REGION
        if region in self.regions or len(self.regions) < MAX_REGIONS:
            return region
        return OTHER_REGION

    def add(self, second: int, samples: LatencySamples) -> None:
        for (kind, sent_region), values in samples.values.items():
            region = self.region_of(sent_region)
            unbinned = self._unbinned.setdefault((kind, region), [])
            unbinned += values
            if len(unbinned) >= _BIN_AT:
                self._bin((kind, region))
            if kind == "e2e":
                sketch = self.regions.get(region)
                if sketch is None:
                    sketch = self.regions[region] = WindowedSketch(WINDOWS, second)
                sketch.advance(second)
                sketch.add(second, bucket_indexes(values))

    def histograms(self) -> dict[tuple[str, str], tuple[list[int], float]]:
        """(kind, region) -> (per-bucket counts, sum of seconds), everything added so far."""
        for key in list(self._unbinned):
            self._bin(key)
        return {key: (counts, self._sums[key]) for key, counts in self._histograms.items()}

    def _bin(self, key: tuple[str, str]) -> None:
        values = self._unbinned.pop(key, [])
        counts = self._histograms.get(key)
        if counts is None:
            counts = self._histograms[key] = [0] * (len(HISTOGRAM_BOUNDS_SECONDS) + 1)
            self._sums[key] = 0.0
        seconds = np.asarray(values, dtype=np.float64) / 1000
        positions = np.searchsorted(_BOUNDS, seconds, side="left")
        added = np.bincount(positions, minlength=len(counts)).tolist()
        counts[:] = [old + new for old, new in zip(counts, added, strict=True)]
        total = self._sums[key]
        for value in seconds.tolist():  # in order, so float sums do not depend on batching
            total += value
        self._sums[key] = total

    def advance(self, second: int) -> None:
        for sketch in self.regions.values():
            sketch.advance(second)
