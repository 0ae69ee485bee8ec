from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.sketch import GAMMA, MAX_VALUE, MIN_VALUE, LatencySketch, bucket_indexes

QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)


def assert_within_one_percent(values: np.ndarray, sketch: LatencySketch) -> None:
    for q in QUANTILES:
        exact = float(np.quantile(values, q, method="nearest"))
        estimate = sketch.quantile(q)
        assert estimate is not None
        assert abs(estimate - exact) <= 0.01 * exact, (q, exact, estimate)


@given(
    st.lists(st.floats(MIN_VALUE, MAX_VALUE, allow_nan=False), min_size=1, max_size=400),
)
@settings(max_examples=300, deadline=None)
def test_quantiles_are_within_one_percent_of_numpy(values: list[float]) -> None:
    array = np.array(values)
    sketch = LatencySketch()
    sketch.add(array)
    assert sketch.count == len(values)
    assert_within_one_percent(array, sketch)


def test_realistic_latency_distributions() -> None:
    rng = np.random.default_rng(3)
    for values in (
        rng.lognormal(np.log(350), 0.6, 100_000),
        rng.exponential(120, 50_000) + 20,
        np.concatenate([rng.normal(300, 30, 9_000), rng.normal(2500, 400, 1_000)]).clip(1),
    ):
        sketch = LatencySketch()
        sketch.add(values)
        assert_within_one_percent(values, sketch)


@given(st.lists(st.floats(MIN_VALUE, 10_000, allow_nan=False), min_size=1, max_size=200), st.data())
@settings(max_examples=100, deadline=None)
def test_merging_equals_sketching_everything_at_once(
    values: list[float], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(values)))
    left, right, whole = LatencySketch(), LatencySketch(), LatencySketch()
    left.add(values[:cut])
    right.add(values[cut:])
    whole.add(values)
    left.merge(right)
    assert np.array_equal(left.counts, whole.counts)


def test_bucketing_follows_the_log_gamma_bounds_and_clips() -> None:
    values = [0.0, 0.05, 0.1, 1.0, 599.9, 600.0, 600.1, 3_600_000.0, 1e9]

    def reference(value: float) -> int:  # bucket i holds (gamma^(i-1), gamma^i]
        clipped = min(max(value, MIN_VALUE), MAX_VALUE)
        lowest = math.ceil(math.log(MIN_VALUE) / math.log(GAMMA))
        return math.ceil(math.log(clipped) / math.log(GAMMA)) - lowest

    assert [reference(v) for v in values] == list(bucket_indexes(values))
    assert LatencySketch().quantile(0.5) is None
