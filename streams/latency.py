"""Partition-wide latency statistics: Prometheus-style histograms and per-region sketches."""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

from streams.events import Latency
from streams.rolling import WindowedSketch
from streams.room import WINDOWS, MetricsConfig
from streams.sketch import bucket_index

HISTOGRAM_BOUNDS_SECONDS: Final = (
    0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds; 0.6 s is the SLO line, so PromQL can compute the SLO ratio exactly."""
MAX_REGIONS: Final = 64
OTHER_REGION: Final = "other"
NO_REGION: Final = "unknown"


class LatencyStats:
    def __init__(self, config: MetricsConfig) -> None:
        self.config = config
        self.histograms: dict[tuple[str, str], list[int]] = {}
        """(kind, region) -> per-bucket counts (not cumulative; last is +Inf)."""
        self.sums: dict[tuple[str, str], float] = {}
        self.regions: dict[str, WindowedSketch] = {}
        """e2e latency per region over the sliding windows."""
        self.head: int | None = None

    def region_of(self, event: Latency) -> str:
        # Region names come from producers: a bounded set, the rest pooled.
        region = event.region or NO_REGION
        if region in self.regions or len(self.regions) < MAX_REGIONS:
            return region
        return OTHER_REGION

    def add(self, event: Latency) -> None:
        region = self.region_of(event)
        key = (event.kind, region)
        counts = self.histograms.get(key)
        if counts is None:
            counts = self.histograms[key] = [0] * (len(HISTOGRAM_BOUNDS_SECONDS) + 1)
            self.sums[key] = 0.0
        seconds = event.value_ms / 1000
        counts[bisect_left(HISTOGRAM_BOUNDS_SECONDS, seconds)] += 1
        self.sums[key] += seconds
        if event.kind == "e2e":
            second = event.ts // 1000
            sketch = self.regions.get(region)
            if sketch is None:
                sketch = self.regions[region] = WindowedSketch(WINDOWS, second)
            sketch.advance(second)
            sketch.add(second, bucket_index(event.value_ms))

    def advance(self, second: int) -> None:
        for sketch in self.regions.values():
            sketch.advance(second)
