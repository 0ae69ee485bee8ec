"""Distinct users since live: exact while small, a bounded sketch beyond, stored as data."""

from __future__ import annotations

import random
import sys

import msgspec
import pytest

from streams.core.distinct import EXACT_LIMIT, DistinctCount
from streams.core.persist import Classes, StateFormatError, dump, load

CLASSES = Classes(DistinctCount)


def filled(count: int, prefix: str = "viewer-") -> DistinctCount:
    made = DistinctCount()
    for i in range(count):
        made.add(f"{prefix}{i}")
        made.add(f"{prefix}{i // 2}")  # seen again: counted once
    return made


def test_exact_up_to_the_limit() -> None:
    count = filled(EXACT_LIMIT)
    assert count.exact and len(count) == EXACT_LIMIT


@pytest.mark.parametrize("users", [EXACT_LIMIT + 1, 50_000, 400_000])
def test_beyond_the_limit_an_estimate_within_three_standard_errors(users: int) -> None:
    count = filled(users)
    assert not count.exact
    assert abs(len(count) - users) <= 3 * 0.0082 * users, len(count)


def test_the_estimate_does_not_depend_on_the_order_users_arrived_in() -> None:
    users = [f"viewer-{i}" for i in range(3 * EXACT_LIMIT)]
    forward, backward, shuffled = DistinctCount(), DistinctCount(), DistinctCount()
    for user in users:
        forward.add(user)
    for user in reversed(users):
        backward.add(user)
    for user in random.Random(3).sample(users, len(users)):
        shuffled.add(user)
    assert len(forward) == len(backward) == len(shuffled)


def test_memory_stops_growing_with_users() -> None:
    big = filled(400_000)
    assert big.ids is None and big.sketch is not None
    assert len(big.sketch.serialize_compact()) < 20_000
    # The exact form at the limit is what a count can cost at most.
    at_limit = filled(EXACT_LIMIT)
    assert at_limit.ids is not None and sys.getsizeof(at_limit.ids) < 1 << 20


def test_a_count_nobody_was_added_to_holds_no_set() -> None:
    empty = DistinctCount()
    assert empty.ids is None and empty.exact and len(empty) == 0
    empty.add("a")
    empty.add("a")
    assert len(empty) == 1


@pytest.mark.parametrize("users", [0, 7, EXACT_LIMIT + 500])
def test_stored_as_data_and_read_back_the_same(users: int) -> None:
    original = filled(users)
    loaded = load(dump(original, CLASSES), CLASSES, DistinctCount)
    assert len(loaded) == len(original) and loaded.exact == original.exact
    for more in (original, loaded):  # and they go on alike
        for i in range(5_000):
            more.add(f"later-{i}")
    assert len(loaded) == len(original)


@pytest.mark.parametrize(
    "node",
    [
        ["g", "DistinctCount", ["m", {"ids": ["m", {"a": 1}], "sketch": None}]],
        ["g", "DistinctCount", ["d", ["ids", "sketch"], [["S", ["a"]], b"\x00"]]],
        ["g", "DistinctCount", ["m", {"ids": None, "sketch": b"not a sketch"}]],
        ["g", "DistinctCount", ["d", ["ids", "sketch"], [["L", ["a"]], None]]],
        ["g", "Other", ["m", {}]],  # not an allowed class
    ],
)
def test_a_forged_state_is_refused(node: object) -> None:
    with pytest.raises(StateFormatError):
        load(msgspec.msgpack.encode(node), CLASSES, DistinctCount)
