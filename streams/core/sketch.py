"""A DDSketch-style quantile sketch: log-spaced buckets with bounded relative error.

Values fall into buckets whose bounds grow by `gamma = (1 + a) / (1 - a)`; a
bucket's representative value is within relative error `a` of every value in it
(Masson, Rim, Lee: "DDSketch", VLDB 2019). Fixed index range, so sketches merge
by adding arrays and memory is constant. Pure numpy, no I/O.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

RELATIVE_ACCURACY: Final = 0.01
GAMMA: Final = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA: Final = math.log(GAMMA)
MIN_VALUE: Final = 0.1
"""Smaller values (milliseconds) share the lowest bucket."""
MAX_VALUE: Final = 3_600_000.0
"""Larger values (one hour, in milliseconds) share the highest bucket."""
_MIN_INDEX: Final = math.ceil(math.log(MIN_VALUE) / _LOG_GAMMA)
_MAX_INDEX: Final = math.ceil(math.log(MAX_VALUE) / _LOG_GAMMA)
BUCKETS: Final = _MAX_INDEX - _MIN_INDEX + 1


def bucket_indexes(values: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Array positions of the buckets holding `values` (ms, non-negative)."""
    # maximum/minimum, not np.clip: same result, a fraction of the call overhead.
    clipped = np.minimum(np.maximum(np.asarray(values, dtype=np.float64), MIN_VALUE), MAX_VALUE)
    return np.ceil(np.log(clipped) / _LOG_GAMMA).astype(np.intp) - _MIN_INDEX


def _representatives() -> npt.NDArray[np.float64]:
    index = np.arange(_MIN_INDEX, _MAX_INDEX + 1, dtype=np.float64)
    # Bucket i holds (gamma^(i-1), gamma^i]; this value is within `a` of both ends.
    return np.asarray(2 * GAMMA**index / (GAMMA + 1), dtype=np.float64)


REPRESENTATIVES: Final = _representatives()


class LatencySketch:
    __slots__ = ("counts",)

    def __init__(self, counts: npt.NDArray[np.int64] | None = None) -> None:
        self.counts = np.zeros(BUCKETS, dtype=np.int64) if counts is None else counts

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def add(self, values: npt.ArrayLike) -> None:
        np.add.at(self.counts, bucket_indexes(values), 1)

    def merge(self, other: LatencySketch) -> None:
        self.counts += other.counts

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0..1) within 1% relative error; None when empty.

        The sample of rank round(q * (n - 1)), as numpy's method="nearest".
        """
        total = int(self.counts.sum())
        if total == 0:
            return None
        rank = round(q * (total - 1))
        position = int(np.searchsorted(np.cumsum(self.counts), rank, side="right"))
        return float(REPRESENTATIVES[min(position, BUCKETS - 1)])
