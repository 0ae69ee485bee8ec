from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.persist import dump, load
from streams.core.rolling import (
    BUCKET_AT,
    COUNT_AT,
    COUNTS_DTYPE,
    LastSeen,
    LevelRing,
    SecondRing,
    WindowedSketch,
)
from streams.core.sketch import BUCKETS, LatencySketch
from streams.worker.checkpoint import STATE_CLASSES

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


ring_steps = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 25), st.just(0), st.just(0)),
        st.tuples(st.just("add"), st.integers(-30, 2), st.integers(0, 2), st.integers(-5, 5)),
        st.tuples(st.just("at"), st.integers(-30, 2), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("window"), st.integers(-30, 0), st.integers(0, 2), st.integers(1, 30)),
    ),
    max_size=120,
)


@given(ring_steps)
@settings(max_examples=300, deadline=None)
def test_a_sparse_ring_reads_as_a_dense_one(steps: list[tuple[str, int, int, int]]) -> None:
    """A ring that stays sparse, one dense from the start and one that turns dense
    on the way give the same answers (whole numbers: sums are exact)."""
    rings = [SecondRing(3, 20, START, dense_after=n) for n in (0, 4, 10**9)]
    for op, offset, field, number in steps:
        head = rings[0].head
        answers = []
        for ring in rings:
            if op == "advance":
                ring.advance(head + offset)
            elif op == "add":
                answers.append(ring.add(field, head + offset, float(number)))
            elif op == "at":
                answers.append(ring.at(field, head + offset))
            else:
                answers.append(ring.window_ending(field, number, head + offset))
        assert len(set(answers)) <= 1, (op, answers)
    assert rings[2].slots is None and len(rings[0].keys) == 0


def test_a_ring_turns_dense_once_enough_pairs_hold_values() -> None:
    ring = SecondRing(2, 300, START, dense_after=3)
    for second in range(START + 1, START + 4):
        ring.advance(second)
        ring.add(1, second, 2.0)
    ring.advance(START + 4)  # folds the third second: three sparse seconds
    assert ring.slots is None and len(ring.keys) == 3  # three (second, field) pairs
    ring.add(0, START + 4, 1.0)
    ring.advance(START + 5)  # a fourth second: dense
    assert ring.slots is not None and len(ring.keys) == 0
    assert ring.window(1, 300) == 6.0 and ring.at(0, START + 4) == 1.0


level_steps = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 25), st.just(0)),
        st.tuples(st.just("hold"), st.integers(-2, 3), st.integers(1, 12)),
        st.tuples(st.just("at"), st.integers(-30, 0), st.just(0)),
        st.tuples(st.just("window"), st.integers(-30, 0), st.integers(1, 30)),
    ),
    max_size=200,
)


@given(level_steps, st.sampled_from((0, 1, 2)))
@settings(max_examples=300, deadline=None)
def test_a_level_held_as_spans_reads_as_a_ring_row(
    steps: list[tuple[str, int, int]], levels: int
) -> None:
    """Spans of a level, moved to a ring row past MAX_SPANS or when a second is added
    out of order, read as the row a dense ring keeps when every second is added to it
    (whole numbers: sums are exact)."""
    spans = LevelRing(20, START)
    row = SecondRing(1, 20, START, dense_after=0)
    closed = START
    for op, offset, number in steps:
        head = spans.head
        if op == "advance":
            spans.advance(head + offset)
            row.advance(head + offset)
        elif op == "hold":  # `number` seconds after a gap of `offset` (< 0: again)
            first, last = closed + 1 + offset, closed + offset + number
            level = float(number % (levels + 1) + 1)
            spans.add(first, last, level)
            row.advance(last)
            row.fill(0, first, last, level)
            closed = max(closed, last)
        elif op == "at":
            assert spans.at(head + offset) == row.at(0, head + offset)
        else:
            assert spans.window_ending(number, head + offset) == row.window_ending(
                0, number, head + offset
            )
        assert spans.head == row.head
    assert spans.window(20) == row.window(0, 20)


def test_a_level_that_holds_is_one_span_and_one_that_keeps_changing_moves_to_a_row() -> None:
    level = LevelRing(300, START)
    for second in range(START + 1, START + 601):  # ten minutes of five viewers
        level.add(second, second, 5.0)
    assert len(level.lasts) == 1 and level.dense is None
    assert level.window(300) == 1500.0 and level.at(START + 600) == 5.0
    for second in range(START + 601, START + 601 + LevelRing.MAX_SPANS):
        level.add(second, second, float(second % 2))
    assert level.dense is not None and len(level.lasts) == 0
    assert level.window(300) == 5.0 * (300 - 64) + 32
    restored = load(dump(level, STATE_CLASSES), STATE_CLASSES, LevelRing)
    assert restored.window(300) == level.window(300)
    spans = LevelRing(300, START)
    spans.add(START + 5, START + 9, 1.0)
    spans.add(START + 9, START + 9, 2.0)  # a second again: not how rooms add, still summed
    assert spans.dense is not None and spans.at(START + 9) == 3.0 and spans.window(300) == 7.0


def test_an_untouched_last_seen_holds_no_ring_until_someone_is_seen() -> None:
    seen = LastSeen(20, START)
    seen.advance(START + 50)
    assert seen.ring is None and seen.distinct(20) == 0
    seen.touch("a", START + 50)
    seen.forget("b")
    assert seen.ring is not None and seen.ring.head == START + 50 and seen.distinct(1) == 1


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


@given(
    st.lists(
        st.tuples(st.integers(0, 8), st.lists(st.floats(0, 4e6, allow_nan=False), max_size=200)),
        max_size=30,
    )
)
@settings(max_examples=60, deadline=None)
def test_many_samples_at_once_are_kept_as_buckets_and_sketch_the_same(
    batches: list[tuple[int, list[float]]],
) -> None:
    """From BUCKET_AT samples an `add` keeps bucket positions (2 bytes a sample, not a
    list's 32): a window's sketch is the same as with every sample kept as given, and
    survives a checkpoint."""
    windowed = WindowedSketch((5, 20), START)
    kept: list[tuple[int, float]] = []
    second = START
    for gap, values in batches:
        second += gap
        windowed.add(second, values)
        kept += [(second, v) for v in values]
    restored = load(dump(windowed, STATE_CLASSES), STATE_CLASSES, WindowedSketch)
    for window in (5, 20):
        expected = LatencySketch()
        expected.add([v for s, v in kept if second - window < s <= second])
        assert np.array_equal(windowed.sketch(window).counts, expected.counts)
        assert np.array_equal(restored.sketch(window).counts, expected.counts)
    big = [v for _, values in batches for v in values if len(values) >= BUCKET_AT]
    held = [a for seconds in windowed.by_second.values() for a in seconds]
    assert all(a.nbytes in (2 * len(a), 4 * BUCKETS) for a in held)
    assert big or not held


def test_a_second_of_many_samples_keeps_one_count_per_bucket() -> None:
    """Past COUNT_AT bucket positions in one second, the second keeps one array of counts
    per bucket, whatever more it is given: the same sketches, a checkpoint included,
    and memory that no longer grows with the samples."""
    rng = np.random.default_rng(3)
    windowed = WindowedSketch((5, 20), START)
    kept: list[tuple[int, float]] = []
    sizes = [BUCKET_AT, 3, COUNT_AT, 500, 10, 5_000, BUCKET_AT]
    for second in (START, START + 1, START + 9):
        for size in sizes:
            values = list(rng.lognormal(5.7, 1.0, size))
            windowed.add(second, values)
            kept += [(second, v) for v in values]
    restored = load(dump(windowed, STATE_CLASSES), STATE_CLASSES, WindowedSketch)
    for window in (1, 5, 20):
        expected = LatencySketch()
        expected.add([v for s, v in kept if START + 9 - window < s <= START + 9])
        assert np.array_equal(windowed.sketch(window).counts, expected.counts)
        assert np.array_equal(restored.sketch(window).counts, expected.counts)
    for held in windowed.by_second.values():
        assert [a.dtype for a in held] == [np.dtype(COUNTS_DTYPE)]
    # The adds of a few samples (3 and 10 a second) are kept flat, as given.
    assert [windowed.few_seconds.count(s) for s in (START, START + 1, START + 9)] == [13] * 3


@given(st.lists(st.tuples(st.integers(-25, 3), st.integers(1, 4)), max_size=60))
@settings(max_examples=100, deadline=None)
def test_a_few_samples_added_out_of_order_keep_the_same_windows(
    adds: list[tuple[int, int]],
) -> None:
    """Samples of a second behind the newest (a room caught up late) are kept in second
    order, so the oldest leave first and every window holds exactly its own."""
    windowed = WindowedSketch((5, 20), START)
    kept: list[tuple[int, float]] = []
    for offset, count in adds:
        second = windowed.head + offset
        values = [100.0 * count + i for i in range(count)]
        windowed.add(second, values)
        if second > windowed.head - 20:
            kept += [(second, v) for v in values]
    assert list(windowed.few_seconds) == sorted(windowed.few_seconds)
    restored = load(dump(windowed, STATE_CLASSES), STATE_CLASSES, WindowedSketch)
    head = windowed.head
    for window in (1, 5, 20):
        expected = LatencySketch()
        expected.add([v for s, v in kept if head - window < s <= head])
        assert np.array_equal(windowed.sketch(window).counts, expected.counts)
        assert np.array_equal(restored.sketch(window).counts, expected.counts)
