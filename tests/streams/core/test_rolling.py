from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.rolling import LastSeen, SecondRing, WindowedSketch
from streams.core.sketch import LatencySketch

START = 1_000


@given(st.lists(st.tuples(st.integers(0, 40), st.floats(-5, 5, allow_nan=False)), max_size=80))
@settings(max_examples=200, deadline=None)
def test_ring_windows_equal_brute_force_sums(adds: list[tuple[int, float]]) -> None:
    ring = SecondRing(1, 10, START)
    kept: list[tuple[int, float]] = []
    for offset, value in sorted(adds, key=lambda a: a[0]):
        second = START + offset
        ring.advance(second)
        ring.add(0, second, value)
        kept.append((second, value))
        for window in (1, 3, 10):
            expected = sum(v for s, v in kept if second - window < s <= second)
            assert np.isclose(ring.window(0, window), expected)


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from("abcdef")), max_size=120))
@settings(max_examples=200, deadline=None)
def test_last_seen_counts_each_user_once_per_window(steps: list[tuple[int, str]]) -> None:
    seen = LastSeen(20, START)
    second = START
    history: list[tuple[int, str]] = []
    for gap, user in steps:
        second += gap
        seen.advance(second)
        seen.touch(user, second)
        history.append((second, user))
        for window in (1, 5, 20):
            expected = {u for s, u in history if second - window < s <= second}
            assert seen.distinct(window) == len(expected)


@given(st.lists(st.tuples(st.integers(0, 30), st.floats(1, 5000, allow_nan=False)), max_size=80))
@settings(max_examples=100, deadline=None)
def test_windowed_sketch_holds_exactly_the_samples_in_each_window(
    samples: list[tuple[int, float]],
) -> None:
    windowed = WindowedSketch((5, 20), START)
    kept: list[tuple[int, float]] = []
    second = START
    for gap, value in samples:
        second += gap
        windowed.advance(second)
        windowed.add(second, [value])
        kept.append((second, value))
        for window in (5, 20):
            expected = LatencySketch()
            expected.add([v for s, v in kept if second - window < s <= second])
            assert np.array_equal(windowed.sketch(window).counts, expected.counts)
