"""The worker's rule for which sources hold a partition's watermark (`source_holds`),
which run ahead of it (`sources_ahead`, what flow control pauses), and its question
for where consumption stands (`assigned_position`)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from faust.types import TP

from streams.worker.app import assigned_position, source_holds, sources_ahead

NOW = 1_764_000_000.0
CAUGHT_UP: dict[str, Any] = {
    "highwater": 120,
    "position": 120,
    "answered": NOW - 0.5,
    "answered_since": NOW - 3.0,
    "recent_message": False,
    "woke": False,
}


@pytest.mark.parametrize("sparse", [False, True])
def test_any_source_holds_while_its_input_waits_or_nobody_knows(sparse: bool) -> None:
    assert not source_holds(sparse, **CAUGHT_UP)
    for waiting in (
        {"highwater": 121},  # a message in Kafka not processed yet
        {"highwater": None},  # not fetched yet
        {"position": None},
        {"answered": None},  # the broker never answered
        {"answered": NOW - 10.0},  # the broker is away: its silence is no news
    ):
        assert source_holds(sparse, **{**CAUGHT_UP, **waiting}), waiting


def test_a_sparse_source_caught_up_holds_nothing_however_recent_or_after_a_silence() -> None:
    """Room events: a dense source holds `source_hold_s` after its last message and after
    the partition's input resumes; the rooms source does not, since its clock is as old
    as its last room event (hours maybe) and the watermark would stop with it."""
    for recent in ({"recent_message": True}, {"woke": True}):
        assert source_holds(False, **{**CAUGHT_UP, **recent})
        assert not source_holds(True, **{**CAUGHT_UP, **recent})


def test_the_sources_ahead_are_those_past_the_slowest_one_holding_the_watermark() -> None:
    clocks = {"join": 5_000, "latency": 1_000, "danmaku": 3_000, "room": 500}
    # Latency holds the watermark at 1,000: joins and chat are ahead, the rooms source's
    # old clock is not (it holds nothing, caught up).
    assert sources_ahead(clocks, {"latency", "join"}) == {"join", "danmaku"}
    assert sources_ahead(clocks, {"danmaku"}) == {"join"}
    # Pausing every source the watermark waits for would stop it: the slowest runs.
    assert "latency" not in sources_ahead(clocks, set(clocks) - {"room"})
    # Nothing holds: the watermark follows the clock, nothing waits on a source.
    assert sources_ahead(clocks, set()) == set()
    # A source holding without a first event: everything else waits for it.
    assert sources_ahead(clocks, {"stall", "latency"}) == set(clocks)


def test_sources_within_the_margin_of_the_slowest_are_not_ahead() -> None:
    """What lies within the allowed lateness of the slowest source waits for the
    watermark however topics are read: pausing it saves nothing (a hot room holds its
    rate times the lateness) and throttles the worker."""
    clocks = {"join": 5_000, "latency": 1_000, "danmaku": 3_000}
    assert sources_ahead(clocks, {"latency"}, margin_ms=2_000) == {"join"}
    assert sources_ahead(clocks, {"latency"}, margin_ms=4_000) == set()
    # Without a first event of a holding source there is no margin to measure.
    assert sources_ahead(clocks, {"stall"}, margin_ms=4_000) == set(clocks)


async def test_a_partition_no_longer_assigned_has_no_position_instead_of_a_crash() -> None:
    """A rebalance can revoke a partition between the tick reading the assignment and
    asking its position: aiokafka raises IllegalStateError, which once crashed the
    worker's tick timer (`make soak`, failover). A real consumer, never started, has
    nothing assigned."""
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    try:
        with pytest.raises(IllegalStateError):
            await consumer.position(TopicPartition("live.stalls", 1))
        assert await assigned_position(consumer, TP("live.stalls", 1)) is None
    finally:
        await consumer.stop()
