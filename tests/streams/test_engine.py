from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine import EngineConfig, PartitionEngine
from streams.events import Danmaku, Event, Join, Leave

T0 = 1_764_000_000_000
CONFIG = EngineConfig(allowed_lateness_ms=5_000, max_clock_skew_ms=3_600_000)


def online(engine: PartitionEngine) -> dict[str, set[str]]:
    return {room_id: set(room.online) for room_id, room in engine.rooms.items()}


def test_events_wait_for_the_watermark_then_apply_in_event_time_order() -> None:
    engine = PartitionEngine(CONFIG)
    # The leave (t+2s) arrives before the join (t+1s) it ends: reordered, no viewer.
    engine.ingest([Leave("r", T0 + 2_000, "a"), Join("r", T0 + 1_000, "a"), Join("r", T0, "b")])
    assert online(engine) == {}  # nothing is 5 s old yet
    engine.ingest([Danmaku("r", T0 + 6_500, "c", "hi")])
    assert engine.watermark == T0 + 1_500
    assert online(engine) == {"r": {"a", "b"}}  # a's leave (t+2s) is still pending
    engine.ingest([Danmaku("r", T0 + 8_000, "c", "hi")])
    assert online(engine) == {"r": {"b"}}
    assert engine.late == 0


def test_a_join_and_leave_out_of_order_within_the_lateness_bound() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0 + 3_000, "a"), Leave("r", T0 + 1_000, "a")])
    engine.flush()
    # In event time the leave came first (an earlier session), then the join.
    assert online(engine) == {"r": {"a"}}


def test_late_events_are_counted_and_applied_at_once() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0, "a"), Join("r", T0 + 20_000, "b")])
    engine.ingest([Leave("r", T0 + 1_000, "a")])  # 19 s behind the clock: late
    assert engine.late == 1
    assert online(engine) == {"r": set()}  # a left; b's join is still pending
    engine.flush()
    assert online(engine) == {"r": {"b"}}


def test_duplicates_do_not_inflate_viewers_and_unknown_leaves_are_harmless() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0, "a"), Join("r", T0, "a"), Leave("r", T0, "ghost")])
    engine.flush()
    assert online(engine) == {"r": {"a"}}
    assert engine.rooms["r"].peak_online == 1


def test_timestamps_far_from_the_clock_are_rejected_and_do_not_move_it() -> None:
    engine = PartitionEngine(CONFIG)
    events: list[Event] = [
        Join("r", T0, "a"),
        Join("r", T0 + 3_600_001, "future"),
        Join("r", T0 - 3_600_001, "past"),
        Join("r", T0 + 1, "b"),
    ]
    assert engine.ingest(events) == [1, 2]
    assert engine.event_clock == T0 + 1
    engine.flush()
    assert online(engine) == {"r": {"a", "b"}}


def test_the_wall_clock_admits_a_long_gap_in_live_mode() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0, "a")])
    later = T0 + 2 * 3_600_000
    assert engine.ingest([Join("r", later, "b")], now_ms=later) == []
    assert engine.event_clock == later


def test_idle_time_advances_the_watermark() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0, "a")])
    assert online(engine) == {}
    engine.advance_idle(5_000)
    assert online(engine) == {"r": {"a"}}


@st.composite
def arrivals(draw: st.DrawFn) -> list[Event]:
    """Joins and leaves of a few users, arriving up to 8 s out of order."""
    count = draw(st.integers(0, 60))
    events: list[Event] = []
    for i in range(count):
        ts = T0 + i * 1_000 + draw(st.integers(-8_000, 8_000))
        user = draw(st.sampled_from("abcde"))
        room = draw(st.sampled_from(["r1", "r2"]))
        kind = draw(st.sampled_from([Join, Leave, Danmaku]))
        events.append(kind(room, ts, user, "x") if kind is Danmaku else kind(room, ts, user))
    return events


@given(arrivals(), st.lists(st.integers(1, 10), min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_batch_boundaries_never_change_the_result(events: list[Event], sizes: list[int]) -> None:
    whole = PartitionEngine(CONFIG)
    whole.ingest(events)
    whole.flush()
    split = PartitionEngine(CONFIG)
    start, i = 0, 0
    while start < len(events):
        size = sizes[i % len(sizes)]
        split.ingest(events[start : start + size])
        start, i = start + size, i + 1
    split.flush()
    one_by_one = PartitionEngine(CONFIG)
    for event in events:
        one_by_one.ingest([event])
    one_by_one.flush()
    for engine in (split, one_by_one):
        assert online(engine) == online(whole)
        assert engine.late == whole.late
        assert {r: s.peak_online for r, s in engine.rooms.items()} == {
            r: s.peak_online for r, s in whole.rooms.items()
        }
