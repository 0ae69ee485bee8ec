from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.alerts import AlertKey, Finding
from detectors.config import DetectorConfig, DetectorSettings
from streams.core.config import EngineConfig, MetricsConfig
from streams.core.decode import ROOM_BUDGET, TS_OUT_OF_BOUNDS, RawMessage, decode_log_lines
from streams.core.engine import ENDED_QUIET_S, PartitionEngine, Pipeline
from streams.core.events import Danmaku, Event, Join, Latency, Leave, RoomEvent, Stall
from streams.core.room import MAX_PROMOTIONS, Promotion
from streams.logs.simulate import Room, Scenario, generate, steady
from tests.streams.scenarios import (
    CONFIG,
    SOURCE_EVENTS,
    T0,
    interleave,
    run_live,
    source_streams,
    state,
)


def online(engine: PartitionEngine) -> dict[str, set[str]]:
    return {room_id: set(room.viewers) for room_id, room in engine.rooms.items()}


def test_events_wait_for_the_slowest_source_then_apply_in_event_time_order() -> None:
    engine = PartitionEngine(CONFIG)
    # The leave (t+2s) arrives before the join (t+1s) it ends: reordered.
    engine.ingest([Leave("r", T0 + 2_000, "a"), Join("r", T0 + 1_000, "a"), Join("r", T0, "b")])
    assert online(engine) == {}  # nothing is 5 s old yet
    engine.ingest([Join("r", T0 + 6_500, "c")])
    assert engine.watermark == T0 + 1_500
    assert online(engine) == {"r": {"a", "b"}}  # a's leave (t+2s) is still pending
    # Chat far ahead does not move the watermark past the joins source.
    engine.ingest([Danmaku("r", T0 + 60_000, "b", "hi")])
    assert engine.watermark == T0 + 1_500
    engine.ingest([Join("r", T0 + 8_000, "d")])
    assert online(engine) == {"r": {"b"}}
    assert engine.late == 0


def test_held_counts_what_waits_for_the_watermark_latency_samples_included() -> None:
    engine = PartitionEngine(CONFIG)
    assert engine.held() == 0
    engine.ingest(
        [Join("r", T0, "a"), Latency("r", T0 + 100, "a", 250.0), Join("r", T0 + 1_000, "b")]
    )
    assert engine.held() == 3  # nothing is 5 s old yet
    # Chat a minute ahead moves no watermark past the joins: it waits too.
    engine.ingest([Danmaku("r", T0 + 60_000, "b", "hi")], lagging={"joins"})
    assert engine.held() == 4
    engine.flush()
    assert engine.held() == 0


def test_a_join_and_leave_out_of_order_within_the_lateness_bound() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0 + 3_000, "a"), Leave("r", T0 + 1_000, "a")])
    engine.flush()
    # In event time the leave came first (of an earlier session), then the join.
    assert online(engine) == {"r": {"a"}}


def test_late_events_are_counted_and_dropped() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0, "a"), Join("r", T0 + 20_000, "b")])
    engine.ingest([Leave("r", T0 + 1_000, "a")])  # 19 s behind its source: late
    assert engine.late == 1
    engine.flush()
    assert online(engine) == {"r": {"a", "b"}}


def test_duplicates_do_not_inflate_viewers_and_unknown_leaves_are_harmless() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0, "a"), Join("r", T0, "a"), Leave("r", T0, "ghost")])
    engine.flush()
    assert online(engine) == {"r": {"a"}}
    room = engine.rooms["r"]
    assert room.peak_online == 1 and room.totals_metrics()["entries"] == 1


def test_timestamps_far_from_the_clock_are_rejected_and_do_not_move_it() -> None:
    engine = PartitionEngine(CONFIG)
    events: list[Event] = [
        Join("r", T0, "a"),
        Join("r", T0 + 3_600_001, "future"),
        Join("r", T0 - 3_600_001, "past"),
        Join("r", T0 + 1, "b"),
    ]
    assert engine.ingest(events) == [(1, TS_OUT_OF_BOUNDS), (2, TS_OUT_OF_BOUNDS)]
    assert engine.event_clock == T0 + 1
    engine.flush()
    assert online(engine) == {"r": {"a", "b"}}


def test_an_event_is_too_old_against_its_own_sources_newest_not_another_sources() -> None:
    """A backlog read faster from one topic than another: `make soak`'s 36-night burst
    brought the rooms topic's two days in one fetch, and 426,052 joins, samples and
    chat of the slower topics, a day behind the partition's clock but in order in
    their own, were rejected as out of bounds."""
    engine = PartitionEngine(CONFIG)  # max_clock_skew_ms: an hour
    live = {"joins", "rooms"}
    later = T0 + 3 * 3_600_000
    rooms = [RoomEvent("r", later, "live"), RoomEvent("r", later + 60_000, "promo_start")]
    assert engine.ingest([Join("r", T0, "a"), *rooms], now_ms=later, lagging=live) == []
    assert engine.event_clock == later + 60_000
    assert engine.ingest([Join("r", T0 + 1_000, "b")], now_ms=later, lagging=live) == []
    # Still judged against its own source: two hours behind the joins' newest is absurd.
    old = Join("r", T0 + 1_000 - 2 * 3_600_000, "c")
    assert engine.ingest([old], now_ms=later, lagging=live) == [(0, TS_OUT_OF_BOUNDS)]
    assert engine.held() == 4 and engine.late == 0  # both joins wait for the watermark
    # A topic's first event when the rooms topic alone has run ahead: nothing dense to
    # judge it by (the burst's first fetch brought two days of room events first).
    fresh = PartitionEngine(CONFIG)
    assert fresh.ingest(rooms, now_ms=later, lagging=live) == []
    assert fresh.ingest([Join("r", T0, "a")], now_ms=later, lagging=live) == []
    # Once a dense topic has events, another topic's first is judged against them.
    stale = Danmaku("r", T0 - 2 * 3_600_000, "a", "hi")
    assert fresh.ingest([stale], now_ms=later, lagging=live) == [(0, TS_OUT_OF_BOUNDS)]


def test_the_wall_clock_admits_a_long_gap_in_live_mode() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0, "a")])
    later = T0 + 2 * 3_600_000
    assert engine.ingest([Join("r", later, "b")], now_ms=later) == []
    assert engine.event_clock == later


def test_in_live_mode_an_event_far_ahead_of_the_wall_clock_is_rejected() -> None:
    """One join stamped 23 hours ahead used to move the clock: every join after it
    was late, the room emptied and a "room went silent" cliff fired."""
    engine = PartitionEngine(CONFIG)
    now = T0 + 10_000
    joins = [Join("r", T0 + i * 10, f"u{i}") for i in range(1_000)]
    joins.insert(500, Join("r", T0 + 23 * 3_600_000, "ahead"))
    assert engine.ingest(joins, now_ms=now) == [(500, TS_OUT_OF_BOUNDS)]
    assert engine.event_clock == T0 + 999 * 10 and engine.late == 0
    # The first event of a partition is judged too: it would set the clock.
    fresh = PartitionEngine(CONFIG)
    first = Join("r", now + CONFIG.max_future_ms + 1, "x")
    assert fresh.ingest([first, Join("r", T0, "a")], now_ms=now) == [(0, TS_OUT_OF_BOUNDS)]
    assert fresh.event_clock == T0
    # Within the tolerance, a producer's clock slightly ahead is fine.
    assert fresh.ingest([Join("r", now + CONFIG.max_future_ms, "y")], now_ms=now) == []


def test_idle_time_advances_the_watermark_and_ticks_rooms() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0, "a")])
    assert online(engine) == {}
    engine.advance_idle(5_000)
    assert online(engine) == {"r": {"a"}}
    engine.advance_idle(10_000)
    assert engine.closed_second == (T0 + 10_000) // 1000 - 1
    engine.catch_up()  # a quiet room is ticked when read
    assert engine.rooms["r"].head == (T0 + 10_000) // 1000 - 1


def test_in_live_mode_only_lagging_sources_hold_the_watermark() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0, "a")], lagging={"joins", "danmaku"})
    assert engine.watermark is None  # chat has input we have not seen yet
    engine.ingest([Danmaku("r", T0 + 30_000, "a", "hi")], lagging={"joins", "danmaku"})
    assert engine.watermark == T0 - 5_000
    engine.ingest([], lagging={"danmaku"})
    engine.ingest([Danmaku("r", T0 + 31_000, "a", "hi")], lagging={"danmaku"})
    assert engine.watermark == T0 + 26_000


def test_a_silent_source_stops_holding_the_watermark_offline() -> None:
    engine = PartitionEngine(EngineConfig(allowed_lateness_ms=5_000, source_idle_ms=60_000))
    engine.ingest([Stall("r", T0, "a", 100.0)])
    engine.ingest([Danmaku("r", T0 + 30_000, "a", "x")])
    assert engine.watermark == T0 - 5_000
    engine.ingest([Danmaku("r", T0 + 61_000, "a", "x")])
    assert engine.watermark == T0 + 56_000


@given(source_streams(), st.integers(0, 2**16), st.lists(st.integers(1, 12), min_size=1))
@settings(max_examples=200, deadline=None)
def test_topic_interleaving_and_batch_boundaries_never_change_the_result(
    streams: dict[str, list[Event]], seed: int, sizes: list[int]
) -> None:
    first = run_live(interleave(streams, seed), [1000])
    second = run_live(interleave(streams, seed + 1), sizes)
    assert state(second) == state(first)


@given(source_streams(), st.lists(st.integers(1, 10), min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_offline_batch_boundaries_never_change_the_result(
    streams: dict[str, list[Event]], sizes: list[int]
) -> None:
    events = interleave(streams, 0)
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
    assert state(split) == state(whole)


def test_region_latency_windows_empty_out_after_the_last_room_is_gone() -> None:
    from streams.core.events import Latency

    engine = PartitionEngine(
        EngineConfig(allowed_lateness_ms=0, metrics=MetricsConfig(room_idle_s=10))
    )
    engine.ingest([Latency("r", T0, "a", 300.0, region="east"), Leave("r", T0 + 1_000, "a")])
    engine.advance_idle(2_000)
    assert engine.latency.regions["east"].sketch(60).count == 1
    engine.advance_idle(600_000)  # the room goes after 10 s; ten minutes pass
    assert engine.rooms == {}
    assert engine.latency.regions["east"].sketch(60).count == 0
    assert engine.latency.regions["east"].sketch(300).count == 0


# The pipeline: the one processing path over the partitions' engines.


def test_out_of_bounds_events_are_rejected_with_their_origin_and_not_counted_as_valid() -> None:
    pipeline = Pipeline(EngineConfig(max_clock_skew_ms=60_000))
    batch = [
        {"type": "join", "room_id": "r", "ts": T0, "user_id": "a"},
        {"type": "join", "room_id": "r", "ts": T0 - 120_000, "user_id": "b"},
    ]
    message = RawMessage("live.joins", 2, 40, b"r", json.dumps(batch).encode())
    rejected = pipeline.process(2, [message])
    assert [(r.reason, r.index, r.message.offset) for r in rejected] == [(TS_OUT_OF_BOUNDS, 1, 40)]
    assert json.loads(rejected[0].payload or b"")["user_id"] == "b"
    assert pipeline.events_total["join"] == 1
    assert pipeline.invalid_total[TS_OUT_OF_BOUNDS] == 1


def test_a_reject_ahead_of_the_wall_clock_says_so() -> None:
    pipeline = Pipeline(EngineConfig(max_future_ms=60_000))
    ahead = {"type": "join", "room_id": "r", "ts": T0 + 3_600_000, "user_id": "a"}
    message = RawMessage("live.joins", 0, 7, b"r", json.dumps(ahead).encode())
    [rejected] = pipeline.process(0, [message], now_ms=T0)
    assert rejected.reason == TS_OUT_OF_BOUNDS and "ahead of the wall clock" in rejected.detail
    assert pipeline.events_total["join"] == 0


def test_late_counts_survive_a_revoked_partition() -> None:
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=1_000))
    events = [
        {"type": "join", "room_id": "r", "ts": T0 + 10_000, "user_id": "a"},
        {"type": "leave", "room_id": "r", "ts": T0, "user_id": "a"},
    ]
    pipeline.process(
        0, [RawMessage("t", 0, i, b"r", json.dumps(e).encode()) for i, e in enumerate(events)]
    )
    assert pipeline.late_total == 1
    pipeline.revoke(0)
    assert pipeline.late_total == 1 and pipeline.engines == {}


def _flood(count: int) -> list[dict[str, object]]:
    """Fresh accounts advertising a contact id: a spam flood by itself (detectors/spam.py)."""
    events: list[dict[str, object]] = []
    for i in range(count):
        user = f"bot{i}"
        events.append({"type": "join", "room_id": "r", "ts": T0 + i * 1_000, "user_id": user})
        text = f"加微信 wx{i:04d}abc 领福利"
        events.append(
            {"type": "danmaku", "room_id": "r", "ts": T0 + i * 1_000 + 500, "user_id": user,
             "text": text}
        )  # fmt: skip
    return events


def test_drain_hands_over_transitions_actions_and_snapshots_once() -> None:
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=0, snapshot_every_s=10))
    lines = [json.dumps(e).encode() for e in _flood(30)]
    pipeline.process_lines(0, lines, range(1, len(lines) + 1), "night.jsonl")
    pipeline.flush()
    out = pipeline.drain()
    assert [(t.alert, t.state) for t in out.transitions][:1] == [("spam_flood", "firing")]
    assert out.actions and out.actions[0]["action"] == "mute"
    assert out.snapshots and all(s["ts"] % 10_000 == 0 for s in out.snapshots)
    again = pipeline.drain()
    assert (again.transitions, again.actions, again.snapshots) == ([], [], [])


def test_messages_and_log_lines_take_the_same_path() -> None:
    events = _flood(30)
    from_kafka, from_log = Pipeline(EngineConfig()), Pipeline(EngineConfig())
    messages = [RawMessage("t", 0, i, b"r", json.dumps(e).encode()) for i, e in enumerate(events)]
    from_kafka.process(0, messages)
    lines = [json.dumps(e).encode() for e in events]
    from_log.process_lines(0, lines, range(len(lines)), "night.jsonl")
    for pipeline in (from_kafka, from_log):
        pipeline.flush()
    assert from_kafka.drain() == from_log.drain()
    assert from_kafka.events_total == from_log.events_total == {"join": 30, "danmaku": 30}


def test_silent_partitions_move_up_to_the_log_clock() -> None:
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=0))
    join = {"type": "join", "room_id": "r", "ts": T0, "user_id": "a"}
    pipeline.process(0, [RawMessage("t", 0, 0, b"r", json.dumps(join).encode())])
    pipeline.advance_to(T0 + 60_000)
    assert pipeline.engines[0].event_clock == T0 + 60_000
    assert pipeline.watermarks() == {0: T0 + 60_000}
    pipeline.advance_to(T0 + 1_000)  # never backwards
    assert pipeline.engines[0].event_clock == T0 + 60_000


def test_flushing_one_partition_applies_its_last_window_and_later_input_goes_on() -> None:
    """The worker's end-of-input flush (`flush_idle_s`): one partition, the others keep
    their pending window; input that resumes is applied when newer than the flushed
    events and late when not."""
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=5_000))

    def joins(partition: int, *stamps: tuple[int, str]) -> None:
        messages = [
            RawMessage("joins", partition, i, f"r{partition}".encode(), json.dumps(e).encode())
            for i, e in enumerate(
                {"type": "join", "room_id": f"r{partition}", "ts": ts, "user_id": user}
                for ts, user in stamps
            )
        ]
        pipeline.process(partition, messages, lagging=())

    for partition in (0, 1):
        joins(partition, (T0, "a"), (T0 + 3_000, "b"))
    assert [online(pipeline.engines[p]) for p in (0, 1)] == [{}, {}]  # both held back

    pipeline.flush([0])
    assert online(pipeline.engines[0]) == {"r0": {"a", "b"}}
    assert online(pipeline.engines[1]) == {}  # not flushed: still waiting
    assert pipeline.watermarks()[0] == T0 + 3_000
    pipeline.flush([0])  # a second flush with nothing new changes nothing
    assert pipeline.watermarks()[0] == T0 + 3_000

    joins(0, (T0 + 2_000, "late"), (T0 + 9_000, "c"))  # input resumes after the flush
    assert pipeline.late_total == 1  # not newer than the flushed join of b
    pipeline.flush([0])
    assert online(pipeline.engines[0]) == {"r0": {"a", "b", "c"}}
    assert pipeline.events_total == {"join": 6}


def test_merged_pipelines_keep_every_partition_and_count() -> None:
    config = EngineConfig()
    lanes = [Pipeline(config), Pipeline(config)]
    for partition, (lane, key) in enumerate(zip(lanes, (b"r0", None), strict=True)):
        join = {"type": "join", "room_id": f"r{partition}", "ts": T0, "user_id": "a"}
        lane.process(partition, [RawMessage("t", partition, 0, key, json.dumps(join).encode())])
    merged = Pipeline(config)
    for lane in lanes:
        merged.merge(lane)
    assert sorted(merged.engines) == [0, 1]
    assert merged.events_total == {"join": 1}
    assert merged.invalid_total == {"key_mismatch": 1}


def _with_watch_from(online: int, **metrics: int) -> EngineConfig:
    detectors = DetectorSettings(DetectorConfig(watch_from_online=online))
    return EngineConfig(
        max_clock_skew_ms=3_600_000,
        metrics=MetricsConfig(**metrics),
        detectors=detectors,
        snapshot_every_s=7,
    )


@st.composite
def sparse_rooms(draw: st.DrawFn) -> list[Event]:
    """A few rooms' joins, leaves, orders, stalls and latency samples with long silences
    between them (longer than sessions last and than rooms stay), in event-time order."""
    events: list[Event] = []
    ts = T0
    for _ in range(draw(st.integers(1, 40))):
        ts += draw(st.sampled_from([0, 300, 1_000, 4_000, 19_000, 26_000, 61_000]))
        room = draw(st.sampled_from(["r1", "r2", "r3"]))
        user = draw(st.sampled_from("abcdefg"))
        make = draw(st.sampled_from(["joins", "orders", "stalls", "latency", "rooms"]))
        event = SOURCE_EVENTS[make](room, ts, user)
        events.append(event)
    return events


@given(sparse_rooms())
@settings(max_examples=150, deadline=None)
def test_quiet_rooms_caught_up_lazily_equal_rooms_ticked_every_second(
    events: list[Event],
) -> None:
    """A room below `watch_from_online` is not ticked every second: it is caught up at
    its next event, session expiry, end of life or read. The result must be exactly
    that of ticking it every second (here: every room watched from 0 viewers)."""
    timing = {"session_timeout_s": 20, "room_idle_s": 30, "expiry_scan_every_s": 5}
    engines = [PartitionEngine(_with_watch_from(n, **timing)) for n in (0, 10**9)]
    for engine in engines:
        engine.ingest(events)
        engine.advance_idle(90_000)
        engine.flush()
    ticked, quiet = engines
    assert quiet.watch.rooms == {} and quiet._ticking == {}  # really all quiet
    assert state(quiet) == state(ticked)
    assert [_room_part(s) for s in quiet.snapshots] == [_room_part(s) for s in ticked.snapshots]
    assert quiet.rooms.keys() == ticked.rooms.keys()


def _room_part(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without the detectors' ebb figures (only watched rooms have them)."""
    metrics = {k: v for k, v in snapshot["metrics"].items() if not k.startswith("ebb_")}
    return {**snapshot, "metrics": metrics}


def test_the_room_budget_evicts_empty_rooms_and_refuses_new_ones_while_all_are_live() -> None:
    config = EngineConfig(
        max_clock_skew_ms=3_600_000,
        max_rooms=10,
    )
    engine = PartitionEngine(config)
    # Ten rooms: one keeps its viewer, nine are left empty by a leave.
    events: list[Event] = [Join(f"r{i}", T0 + i, "a") for i in range(10)]
    events += [Leave(f"r{i}", T0 + 100 + i, "a") for i in range(1, 10)]
    assert engine.ingest(events) == []
    engine.advance_idle(10_000)
    # Three new rooms: the least recently active empty room (r1, a tenth of ten) goes
    # for the first; the second and third each evict the next oldest.
    later = T0 + 20_000
    new = [Join(f"n{i}", later + i, "b") for i in range(3)]
    assert engine.ingest(new) == []
    engine.advance_idle(10_000)
    assert sorted(engine.rooms) == ["n0", "n1", "n2", "r0", "r4", "r5", "r6", "r7", "r8", "r9"]
    assert engine.evicted == 3
    # Refill with live rooms only: r0 and the new ones have viewers online, the rest
    # empty; once the empty ones are gone, a new room is refused, with its reason.
    fill = [Join(f"m{i}", later + 30_000 + i, "c") for i in range(6)]
    assert engine.ingest(fill) == []
    refused = engine.ingest([Join("late-comer", later + 31_000, "d")])
    assert refused == [(0, ROOM_BUDGET)]
    assert "late-comer" not in engine.rooms and engine.evicted == 9
    assert all(room.online for room in engine.rooms.values())
    # Sessions end as event time passes (5 min): rooms empty, new ones get in again.
    engine.advance_idle(400_000)
    assert engine.ingest([Join("late-comer", later + 450_000, "d")]) == []
    assert engine.evicted == 10


def test_a_room_with_an_open_alert_is_never_evicted() -> None:
    engine = PartitionEngine(EngineConfig(max_clock_skew_ms=3_600_000, max_rooms=2))
    engine.ingest([Join("outage", T0, "a"), Leave("outage", T0 + 1, "a"), Join("x", T0, "b")])
    engine.advance_idle(10_000)
    finding = Finding("critical", "room went silent", {})
    engine.watch.tracker.update(T0 + 10_000, {AlertKey("traffic_cliff", "outage"): finding})
    assert engine.ingest([Join("junk", T0 + 11_000, "j")]) == [(0, ROOM_BUDGET)]
    assert sorted(engine.rooms) == ["outage", "x"]


def test_one_event_leaping_ahead_moves_nothing_and_is_taken_out_at_the_end() -> None:
    """A join stamped 23 h ahead among 1,000 (within the 24 h skew bound): it used to
    move the clock, the 499 joins after it were late and the room "went silent"."""
    joins: list[Event] = [Join("r", T0 + i * 10, f"u{i}") for i in range(1_000)]
    joins.insert(500, Join("r", T0 + 23 * 3_600_000, "ahead"))
    for cut in (None, 500, 501):  # batch boundaries change nothing
        engine = PartitionEngine(EngineConfig())
        batches = [joins] if cut is None else [joins[:cut], joins[cut:]]
        for batch in batches:
            assert engine.ingest(batch) == []
        engine.flush()
        assert engine.late == 0 and engine.event_clock == T0 + 999 * 10
        assert [e.user_id for e in engine.unconfirmed] == ["ahead"]
        assert online(engine)["r"] == {f"u{i}" for i in range(1_000)}


def test_a_leap_the_next_event_confirms_moves_the_clock() -> None:
    """A log resuming after a pause longer than `max_jump_ms`: both nights count."""
    nights = [Join("r", T0 + night * 7_200_000 + i * 1_000, f"n{night}-{i}") for night in (0, 1)
              for i in range(100)]  # fmt: skip
    engine = PartitionEngine(EngineConfig())
    engine.ingest(nights)
    engine.flush()
    assert engine.late == 0 and engine.unconfirmed == []
    assert engine.event_clock == nights[-1].ts
    assert online(engine)["r"] == {f"n1-{i}" for i in range(100)}  # night 0 timed out


def test_live_a_replayed_leap_waits_but_recent_traffic_after_a_pause_does_not() -> None:
    replay_now = T0 + 48 * 3_600_000  # a replay of a night two days old
    joins: list[Event] = [Join("r", T0 + i * 10, f"u{i}") for i in range(1_000)]
    joins.insert(500, Join("r", T0 + 23 * 3_600_000, "ahead"))
    engine = PartitionEngine(CONFIG)
    engine.ingest(joins, now_ms=replay_now, lagging={"joins"})
    assert engine.event_clock == T0 + 999 * 10 and engine.late == 0
    # Traffic resuming now, after hours of silence, moves the clock at once.
    engine.ingest([Join("r", replay_now, "back")], now_ms=replay_now, lagging={"joins"})
    assert engine.event_clock == replay_now


# Room events: a sparse source, and what a stream's end means.


def _night(*rooms: Room, seconds: int, drop: str = "") -> list[Event]:
    """A simulated night's events in file order, without the lines holding `drop`."""
    lines = [line.encode() for line in generate(Scenario("t", seconds, rooms), 1)]
    lines = [line for line in lines if not drop or drop.encode() not in line]
    decoded = decode_log_lines(lines, range(len(lines)), "t")
    assert decoded.rejected == []
    return decoded.events


def _played(events: list[Event], config: EngineConfig = CONFIG) -> PartitionEngine:
    engine = PartitionEngine(config)
    engine.ingest(events)
    return engine


def _transitions(engine: PartitionEngine) -> list[tuple[str, str, str, int, object]]:
    transitions, _ = engine.watch.drain()
    return [
        (t.room_id, t.alert, t.state, t.ts, t.details.get("resolve_reason")) for t in transitions
    ]


ENDING = Room("room-end", steady(2.0), ends_at=900)
"""Ends its stream 15 minutes in; its ~600 viewers leave within a minute."""
ENDED_AT = T0 + 900_000


def test_a_stream_that_ended_does_not_page_as_its_viewers_leave() -> None:
    without_end = _played(_night(ENDING, seconds=1200, drop='"phase":"ended"'))
    without_end.advance_idle(60_000)
    paged = _transitions(without_end)
    # Without its `ended` the same night is a cliff, then a silence: the old behaviour.
    assert [(a, s) for _, a, s, _, _ in paged][:1] == [("traffic_cliff", "firing")]
    assert ENDED_AT < paged[0][3] <= ENDED_AT + 60_000

    engine = _played(_night(ENDING, seconds=1200))
    engine.advance_idle(60_000)
    assert _transitions(engine) == []
    room = engine.rooms["room-end"]
    assert room.ended_at == ENDED_AT and room.live_at == T0
    assert room.online == 0 and room.totals_metrics()["exits"] > 500  # they left after it
    assert "room-end" not in engine.watch.rooms and "room-end" not in engine._ticking


def test_an_open_cliff_resolves_with_stream_ended() -> None:
    """A room whose ingest died pages (a silence); the platform then says the stream
    ended: the alert resolves, saying why, at the `ended` event's time."""
    engine = _played(_night(Room("room-end", steady(2.0), silent_at=900), seconds=1200))
    engine.advance_idle(90_000)
    fired = _transitions(engine)
    assert {(a, s) for _, a, s, _, _ in fired} == {("traffic_cliff", "firing")}
    assert engine.watch.tracker.firing()
    ended = T0 + 1_000_000
    engine.ingest([RoomEvent("room-end", ended, "ended")])
    engine.advance_idle(10_000)
    transitions, _ = engine.watch.drain()
    assert [(t.alert, t.state, t.ts) for t in transitions] == [("traffic_cliff", "resolved", ended)]
    assert transitions[0].details["resolve_reason"] == "stream_ended"
    assert transitions[0].details["duration_s"] == (ended - transitions[0].started_at) / 1000
    assert engine.watch.tracker.active == {}
    engine.advance_idle(600_000)  # nothing fires again, until the room is gone
    assert _transitions(engine) == []


def test_an_ended_room_goes_after_the_grace_period_whoever_is_still_online() -> None:
    config = EngineConfig(
        max_clock_skew_ms=3_600_000, metrics=MetricsConfig(ended_grace_s=120, room_idle_s=900)
    )
    stay = [Join("room-end", T0 + i, f"u{i}") for i in range(20)]  # they never leave
    engine = _played([*stay, RoomEvent("room-end", T0 + 10_000, "ended")], config)
    engine.advance_idle(125_000)  # closed up to the second before the grace is over
    assert engine.closed_second == (T0 + 10_000) // 1000 + 120 - 1
    engine.catch_up()
    assert engine.rooms["room-end"].online == 20
    engine.advance_idle(1_000)
    assert "room-end" not in engine.rooms
    # Later events of the room start a new room, which knows nothing of the end.
    engine.ingest([Join("room-end", T0 + 140_000, "late")])
    engine.advance_idle(6_000)
    assert engine.rooms["room-end"].ended_at is None


def test_a_live_after_ended_starts_a_new_broadcast_of_the_room() -> None:
    engine = _played(_night(ENDING, seconds=1000))
    engine.advance_idle(30_000)
    before = engine.rooms["room-end"]
    assert before.ended_at == ENDED_AT and before.totals_metrics()["entries"] > 1000
    again = T0 + 1_000_000
    engine.ingest([RoomEvent("room-end", again, "live"), Join("room-end", again + 10, "new")])
    engine.advance_idle(10_000)
    room = engine.rooms["room-end"]
    assert room is not before  # a fresh state: the old broadcast's series are gone
    assert (room.live_at, room.ended_at, room.online) == (again, None, 1)
    assert room.totals_metrics()["entries"] == 1
    # Enough viewers: watched again, with a traffic baseline of its own.
    engine.ingest([Join("room-end", again + 11_000 + i, f"v{i}") for i in range(20)])
    engine.advance_idle(10_000)
    watch = engine.watch.rooms["room-end"]
    assert watch.traffic is not None and watch.traffic.cliff.steps <= 3
    assert _transitions(engine) == []


def test_a_second_ended_or_live_changes_nothing() -> None:
    ended = RoomEvent("r", T0 + 1_000, "ended")
    engine = _played(
        [RoomEvent("r", T0, "live"), ended, ended, RoomEvent("r", T0 + 2_000, "ended")]
    )
    engine.flush()
    assert (engine.rooms["r"].live_at, engine.rooms["r"].ended_at) == (T0, T0 + 1_000)


def test_promotions_are_recorded_at_event_time() -> None:
    viewers = [Join("r", T0 + i * 100, f"u{i}") for i in range(30)]
    events: list[Event] = [
        RoomEvent("r", T0, "live"),
        *viewers,
        RoomEvent("r", T0 + 1_500, "promo_start", "sale-1"),
        RoomEvent("r", T0 + 1_600, "promo_start", "sale-1"),  # a repeat
        RoomEvent("r", T0 + 4_000, "promo_end", "sale-1"),
        RoomEvent("r", T0 + 4_100, "promo_end", "sale-1"),  # a repeat
        RoomEvent("r", T0 + 5_000, "promo_start"),
        RoomEvent("r", T0 + 6_000, "promo_end"),
        RoomEvent("r", T0 + 7_000, "promo_end", "before-us"),  # its start was never seen
    ]
    engine = _played(events)
    engine.flush()
    kept = [
        Promotion(p.promo_id, p.started_at, p.online_at_start, p.ended_at, p.online_at_end)
        for p in engine.rooms["r"].promotions
    ]  # their reviews: tests/streams/core/test_review.py
    assert kept == [
        Promotion("sale-1", T0 + 1_500, 16, T0 + 4_000, 30),  # u15 joined in that ms
        Promotion(None, T0 + 5_000, 30, T0 + 6_000, 30),
        Promotion("before-us", None, None, T0 + 7_000, 30),
    ]
    many = [RoomEvent("r", T0 + i, "promo_start", f"p{i}") for i in range(100)]
    engine = _played(many)
    engine.flush()
    assert len(engine.rooms["r"].promotions) == MAX_PROMOTIONS  # bounded, the latest kept
    assert engine.rooms["r"].promotions[-1].promo_id == "p99"


def test_an_idle_rooms_source_never_holds_the_watermark_offline() -> None:
    joins: list[Event] = [Join("r", T0 + i * 1_000, f"u{i}") for i in range(1, 31)]
    engine = _played([RoomEvent("r", T0, "live"), *joins])
    assert engine.watermark == T0 + 30_000 - 5_000  # the joins' clock alone
    # A dense source as quiet holds it until it falls `source_idle_ms` behind.
    held = _played([Stall("r", T0, "a", 100.0), *joins])
    assert held.watermark == T0 - 5_000
    # Nor does a rooms source an hour behind; its events are applied in order.
    later = T0 + 3_600_000
    engine.ingest([Join("r", later + i * 1_000, f"v{i}") for i in range(20)])
    assert engine.watermark == later + 19_000 - 5_000
    engine.ingest([RoomEvent("r", later + 20_000, "promo_start", "p")])
    engine.ingest([Join("r", later + 21_000 + i * 1_000, f"w{i}") for i in range(10)])
    assert engine.watermark == later + 30_000 - 5_000 and engine.late == 0
    [promotion] = engine.rooms["r"].promotions
    assert (promotion.started_at, promotion.online_at_start) == (later + 20_000, 20)


def test_a_room_event_behind_the_watermark_is_late_like_any_other() -> None:
    engine = _played([Join("r", T0 + i * 1_000, f"u{i}") for i in range(30)])
    engine.ingest([RoomEvent("r", T0 + 10_000, "ended")])
    assert engine.late == 1 and engine.rooms["r"].ended_at is None


def test_in_live_mode_rooms_holds_only_while_its_input_waits() -> None:
    """The driver names a source lagging while it has unprocessed input; a caught-up
    rooms source is not named however old its clock (Worker.lagging_sources)."""
    engines = [PartitionEngine(CONFIG), PartitionEngine(CONFIG)]
    joins: list[Event] = [Join("r", T0 + i * 1_000, f"u{i}") for i in range(1, 241)]
    batch: list[Event] = [Join("r", T0 + i * 1_000, f"b{i}") for i in range(241, 300)]
    batch.append(RoomEvent("r", T0 + 250_000, "ended"))  # fetched after the joins
    for engine, in_batch in zip(engines, ({"joins", "rooms"}, {"joins"}), strict=True):
        engine.ingest([RoomEvent("r", T0, "live")], lagging={"rooms", "joins"})
        engine.ingest(joins, lagging={"joins"})
        assert engine.watermark == T0 + 235_000  # rooms' clock is four minutes old
        # A batch bringing joins ahead of a room event: while rooms is named (its input
        # in the batch), the joins do not carry the watermark past the room event.
        engine.ingest(batch, lagging=in_batch)
        engine.settle({"joins"})
        assert engine.watermark == T0 + 299_000 - 5_000
    named, unnamed = engines
    assert named.late == 0 and named.rooms["r"].ended_at == T0 + 250_000
    assert unnamed.late == 1 and unnamed.rooms["r"].ended_at is None


def test_an_ended_room_makes_room_once_its_viewers_stop_leaving() -> None:
    """Counted online or not: an ended room goes under a full budget, but only once
    `ENDED_QUIET_S` passed without an event of it, so new ids never cut its tail."""
    engine = PartitionEngine(EngineConfig(max_clock_skew_ms=3_600_000, max_rooms=2))
    engine.ingest([Join("done", T0, "a"), RoomEvent("done", T0 + 1, "ended"), Join("x", T0, "b")])
    engine.advance_idle(10_000)
    assert engine.ingest([Join("new", T0 + 11_000, "c")]) == [(0, ROOM_BUDGET)]
    engine.advance_idle(ENDED_QUIET_S * 1000)
    assert engine.ingest([Join("new", T0 + 11_000 + ENDED_QUIET_S * 1000, "c")]) == []
    engine.advance_idle(10_000)
    assert sorted(engine.rooms) == ["new", "x"] and engine.evicted == 1
