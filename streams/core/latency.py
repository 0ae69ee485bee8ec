"""Partition-wide latency statistics: Prometheus-style histograms and per-region sketches."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import Final

import numpy as np

from streams.core.config import MetricsConfig
from streams.core.events import Latency
from streams.core.rolling import WINDOWS, WindowedSketch

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
    """Latency events of one room and second, grouped into value columns on demand.

    Latency samples are most of the traffic, so the engine only collects them
    while the second is open and hands them over per room when it closes.
    """

    __slots__ = ("_values", "events")

    def __init__(self) -> None:
        self.events: list[Latency] = []
        self._values: dict[tuple[str, str | None], list[float]] | None = None

    @property
    def values(self) -> dict[tuple[str, str | None], list[float]]:
        """(kind, region as sent) -> values in ms, in application order."""
        if self._values is None:
            grouped: dict[tuple[str, str | None], list[float]] = {}
            for event in self.events:
                key = (event.kind, event.region)
                values = grouped.get(key)
                if values is None:
                    grouped[key] = [event.value_ms]
                else:
                    values.append(event.value_ms)
            self._values = grouped
        return self._values

    def e2e(self) -> list[float]:
        """End-to-end values of every region."""
        chunks = [v for (kind, _), v in self.values.items() if kind == "e2e"]
        return chunks[0] if len(chunks) == 1 else list(chain.from_iterable(chunks))


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

    def add(self, second: int, rooms: Iterable[LatencySamples]) -> None:
        """The samples of `second` of every room of the partition."""
        merged: dict[tuple[str, str | None], list[float]] = {}
        for samples in rooms:
            for key, values in samples.values.items():
                merged.setdefault(key, []).extend(values)
        for (kind, sent_region), values in merged.items():
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
                sketch.add(second, values)

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
