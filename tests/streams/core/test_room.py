"""Hand-computed golden scenarios for every room metric (docs/metrics.md)."""

from __future__ import annotations

import pytest

from streams.core.config import MetricsConfig
from streams.core.events import Danmaku, Event, Join, Latency, Leave, Order, Stall
from streams.core.room import RoomState

S0 = 1_764_000_000  # epoch seconds of the scenario's second 0


def at(second: float) -> int:
    return int((S0 + second) * 1000)


def play(room: RoomState, events: list[Event], until: int) -> None:
    """Drive a room as the engine does: events in time order, each second ticked."""
    ordered = sorted(events, key=lambda e: e.ts)
    second = room.closed + 1
    for event in ordered:
        while second < event.ts // 1000:
            room.tick(second)
            second += 1
        room.apply(event)
    while second <= S0 + until:
        room.tick(second)
        second += 1


NIGHT: list[Event] = [
    Join("r", at(0), "a", "feed"),
    Join("r", at(0.5), "b", "ad"),
    Join("r", at(2), "c", "feed"),
    Danmaku("r", at(2.2), "a", "1"),
    Leave("r", at(5), "c"),  # a 3 s session: a bounce
    Order("r", at(10), "a", "o1", 100.0),
    Order("r", at(10.5), "b", "o2", 50.0),
    Order("r", at(12), "b", "o2", 50.0, "refunded"),
    Stall("r", at(20), "a", 2000.0),
    Latency("r", at(20), "a", 300.0),
    Latency("r", at(20.1), "b", 700.0),
    Latency("r", at(20.2), "a", 500.0),
    Latency("r", at(20.3), "a", 100.0, kind="connect"),
    Danmaku("r", at(30), "b", "好看"),
]
LONG_SESSIONS = MetricsConfig(session_timeout_s=3600)


@pytest.fixture
def room() -> RoomState:
    return RoomState("r", S0, LONG_SESSIONS)


def test_one_minute_window_after_the_first_minute(room: RoomState) -> None:
    play(room, NIGHT, until=59)
    m = room.metrics(60)
    # Online per second: 2 (s0-1), 3 (s2-4), 2 (s5-59) -> 4 + 9 + 110 viewer-seconds.
    watch = 123.0
    assert m["watch_seconds"] == watch
    assert m["entries_per_minute"] == 3
    assert m["exits_per_minute"] == 1
    assert m["unique_viewers"] == 3
    assert m["average_stay_seconds"] == watch / 3
    assert m["bounce_rate"] == pytest.approx(1 / 3)  # c of the 3 sessions started by s49
    assert m["retention_1m"] is None  # nobody joined a full minute ago yet
    assert m["retention_5m"] is None
    assert m["danmaku_per_minute"] == 2
    assert m["unique_chatters"] == 2
    assert m["interaction_rate"] == pytest.approx(2 / 3)
    assert m["orders_per_minute"] == 2
    assert m["buyers"] == 2
    assert m["gmv"] == 100.0  # 100 + 50 - 50 refunded
    assert m["conversion_rate"] == pytest.approx(2 / 3)
    assert m["gpm"] == pytest.approx(100.0 * 1000 / 3)
    assert m["stall_ratio"] == pytest.approx(2.0 / watch)
    assert m["stalls_per_viewer_hour"] == pytest.approx(1 / (watch / 3600))
    assert m["stalled_viewer_share"] == pytest.approx(1 / 3)
    assert m["latency_within_slo_ratio"] == pytest.approx(2 / 3)  # connect samples excluded
    assert m["latency_p50_seconds"] == pytest.approx(0.5, rel=0.01)
    assert m["latency_p99_seconds"] == pytest.approx(0.7, rel=0.01)
    assert room.online == 2 and room.peak_online == 3
    assert room.entries_by_channel["feed"] == 2 and room.entries_by_channel["ad"] == 1


def test_windows_slide_on_without_events(room: RoomState) -> None:
    play(room, NIGHT, until=70)
    m = room.metrics(60)  # seconds 11..70
    assert m["entries_per_minute"] == 0
    assert m["unique_viewers"] == 2  # c left at s5, outside the window
    assert m["watch_seconds"] == 120
    assert m["retention_1m"] == pytest.approx(2 / 3)  # of joiners by s10, c left within 1 min
    assert m["gmv"] == -50.0  # only the refund at s12 is in the window
    assert m["buyers"] == 0
    assert m["danmaku_per_minute"] == 1
    five = room.metrics(300)
    assert five["entries_per_minute"] == pytest.approx(3 / 5)
    assert five["gmv"] == 100.0
    assert five["watch_seconds"] == 123 + 11 * 2


def test_totals_since_the_room_went_live(room: RoomState) -> None:
    play(room, NIGHT, until=99)
    t = room.totals_metrics()
    assert t["entries"] == 3 and t["exits"] == 1
    assert t["unique_viewers"] == 3
    assert t["watch_seconds"] == 13 + 95 * 2
    assert t["average_stay_seconds"] == pytest.approx((13 + 95 * 2) / 3)
    assert t["danmaku"] == 2 and t["unique_chatters"] == 2
    assert t["orders"] == 2 and t["buyers"] == 2 and t["gmv"] == 100.0
    assert t["stalls"] == 1 and t["stall_seconds"] == 2.0
    assert t["latency_samples"] == 3
    assert t["peak_online_viewers"] == 3


def test_sessions_without_a_leave_expire_when_last_seen_long_ago() -> None:
    room = RoomState("r", S0, MetricsConfig(session_timeout_s=30, expiry_scan_every_s=5))
    play(room, NIGHT, until=59)
    # a was last seen at s20, b at s30: at the s55 scan a (idle 35 s) has gone.
    assert set(room.viewers) == {"b"}
    play(room, [], until=65)
    assert room.online == 0
    assert room.metrics(60)["exits_per_minute"] == 2  # expiries at s55 and s65
    # Their sessions ended when last seen: 20 s and 29.5 s, so both left within a minute.
    assert room.metrics(300)["retention_1m"] == 0.0


def test_any_event_refreshes_presence_but_not_after_a_leave() -> None:
    room = RoomState("r", S0, MetricsConfig(session_timeout_s=30, expiry_scan_every_s=5))
    play(room, [Join("r", at(0), "a"), Latency("r", at(25), "a", 200.0)], until=40)
    assert room.online == 1  # the latency sample at s25 kept a present past s30
    # A viewer seen only through chat is present, without counting as an entry.
    play(room, [Danmaku("r", at(41), "z", "hi")], until=42)
    assert "z" in room.viewers and room.totals[0] == 1
    # A trailing sample in the same second as the leave does not resurrect the viewer.
    play(room, [Leave("r", at(43), "z"), Latency("r", at(43.5), "z", 1.0)], until=44)
    assert "z" not in room.viewers


def test_a_room_with_nobody_and_no_events_goes_away() -> None:
    room = RoomState("r", S0, MetricsConfig(room_idle_s=60))
    play(room, [Join("r", at(0), "a"), Leave("r", at(1), "a")], until=30)
    assert not room.is_gone(S0 + 30)
    assert room.is_gone(S0 + 61)
