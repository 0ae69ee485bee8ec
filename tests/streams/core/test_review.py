"""The promotion review (streams/core/review.py) on hand-built nights, through the engine."""

from __future__ import annotations

import math
import random

import pytest

from streams.core.config import EngineConfig, MetricsConfig
from streams.core.engine import PartitionEngine
from streams.core.events import Danmaku, Event, Join, Latency, Leave, Order, RoomEvent
from streams.core.review import COHORT_MAX, cohort_sample

T0 = 1_764_000_000_000
CONFIG = EngineConfig(max_clock_skew_ms=86_400_000)
LONG = EngineConfig(max_clock_skew_ms=86_400_000, metrics=MetricsConfig(session_timeout_s=20_000))
"""Sessions that never time out here: viewers are online from their join to their leave."""


def ms(second: float) -> int:
    return T0 + int(second * 1000)


def run(events: list[Event], until_s: int, config: EngineConfig = LONG) -> PartitionEngine:
    """Apply `events`, then let event time pass to `until_s` (all seconds closed)."""
    engine = PartitionEngine(config)
    engine.ingest(sorted(events, key=lambda e: e.ts))
    engine.flush()
    engine.advance_idle(ms(until_s) - (engine.event_clock or T0) + config.allowed_lateness_ms)
    engine.catch_up()
    return engine


def night() -> list[Event]:
    """10 viewers from second 0; a promotion from 600 s to 900 s brings 40 more (joining
    at 600-639 s); just after 900 s 30 of the 50 leave at once, 10 more just after
    1,200 s. The first ten chat every 200 s from 100 s; orders at known times."""
    events: list[Event] = [RoomEvent("r", ms(0), "live")]
    events += [Join("r", ms(0.1 * i), f"base{i}") for i in range(10)]
    events += [Join("r", ms(600.5 + i), f"promo{i}") for i in range(40)]
    for second in range(100, 4_700, 200):
        events += [Danmaku("r", ms(second), f"base{i}", "hi") for i in range(10)]
    events += [
        Order("r", ms(400), "base0", "o1", 100.0),  # before
        Order("r", ms(700), "promo0", "o2", 50.0),  # during
        Order("r", ms(800), "promo1", "o3", 50.0),
        Order("r", ms(1_000), "base1", "o4", 30.0),  # after
        RoomEvent("r", ms(600), "promo_start", "sale"),
        RoomEvent("r", ms(900), "promo_end", "sale"),
    ]
    events += [Leave("r", ms(900.5), f"promo{i}") for i in range(30)]
    events += [Leave("r", ms(1_200.5), f"promo{i}") for i in range(30, 40)]
    return events


def test_phases_viewers_and_retention_of_a_promotion() -> None:
    engine = run(night(), 900 + 3_700)
    room = engine.rooms["r"]
    review = room.promotion_metrics()
    assert review["promotion_start_ts"] == ms(600) and review["promotion_end_ts"] == ms(900)
    assert review["promotion_active"] == 0.0
    assert review["promotion_viewers_before"] == pytest.approx(10.0)  # 5 min of 10 online
    assert review["promotion_viewers_start"] == 10  # the promotion's first joins come after
    assert review["promotion_viewers_end"] == 50
    assert review["promotion_viewers_peak"] == 50
    # Cohort: the 50 at the end; of them the first ten are online at 10, 30, 60 minutes.
    assert review["promotion_retention_10m"] == pytest.approx(10 / 50)
    assert review["promotion_retention_30m"] == pytest.approx(10 / 50)
    assert review["promotion_retention_60m"] == pytest.approx(10 / 50)
    # Phases: before 300 s x 10 viewers, during 300 s: 10 x 300 + sum over the 40 joins.
    assert review["promotion_watch_seconds_before"] == 3_000
    during_watch = 10 * 300 + sum(300 - i for i in range(40))
    assert review["promotion_watch_seconds_during"] == during_watch
    assert review["promotion_orders_before"] == 1 and review["promotion_gmv_before"] == 100.0
    assert review["promotion_orders_during"] == 2 and review["promotion_gmv_during"] == 100.0
    assert review["promotion_orders_after"] == 1 and review["promotion_gmv_after"] == 30.0
    assert review["promotion_conversion_before"] == pytest.approx(1 / (3_000 / 3_600))
    assert review["promotion_conversion_during"] == pytest.approx(2 / (during_watch / 3_600))
    # Chat before: 10 messages at 300 s and at 500 s; during: 10 at 700 s.
    assert review["promotion_interaction_before"] == pytest.approx(20 / (3_000 / 3_600))
    assert review["promotion_danmaku_during"] == 10
    # After: the hour from 900 s; 20 online to 1,200 s, then 10.
    assert review["promotion_watch_seconds_after"] == 20 * 300 + 10 * 3_300
    assert review["promotion_danmaku_after"] == 10 * 18  # 900 s to 4,300 s, every 200 s
    # No cohort is kept once the hour after the end is over: bounded memory.
    promotion = room.promotions[-1]
    assert promotion.review is not None and promotion.review.cohort == []
    assert room.reviewing == []


def test_the_running_promotion_is_active_and_its_figures_grow() -> None:
    kept = [e for e in night() if e.ts <= ms(750) and getattr(e, "phase", "") != "promo_end"]
    engine = run(kept, 800)
    review = engine.rooms["r"].promotion_metrics()
    assert review["promotion_active"] == 1.0
    assert review["promotion_viewers_end"] is None and review["promotion_retention_10m"] is None
    assert review["promotion_orders_during"] == 1  # the order at 700 s
    assert review["promotion_viewers_peak"] == 50
    assert review["promotion_watch_seconds_during"] == 10 * 200 + sum(200 - i for i in range(40))


def test_no_promotion_no_review() -> None:
    engine = run([Join("r", ms(i), f"u{i}") for i in range(5)], 100)
    review = engine.rooms["r"].promotion_metrics()
    assert review["promotion_active"] == 0.0
    assert review["promotion_viewers_start"] is None and review["promotion_floor_ratio"] is None


def ebb_night(half_life_s: float, floor: int, peak: int, pre: int) -> list[Event]:
    """`pre` viewers before, `peak` at the promotion's end, then leaves such that the
    online count falls as floor + (peak - floor) * 2^(-t / half_life_s)."""
    rng = random.Random(7)
    events: list[Event] = [Join("r", ms(0), f"u{i}") for i in range(pre)]
    events += [Join("r", ms(300 + i * 0.1), f"u{i}") for i in range(pre, peak)]
    events += [RoomEvent("r", ms(290), "promo_start", "p"), RoomEvent("r", ms(600), "promo_end")]
    leaving = list(range(peak))
    rng.shuffle(leaving)
    gone = 0
    for t in range(1, 3_600):
        target = peak - round(floor + (peak - floor) * 2 ** (-t / half_life_s))
        while gone < target:
            events.append(Leave("r", ms(600 + t + 0.5), f"u{leaving[gone]}"))
            gone += 1
    return events


@pytest.mark.parametrize(("half_life", "floor", "pre"), [(300, 200, 250), (900, 100, 0)])
def test_the_ebb_half_life_and_floor_are_measured_from_the_end(
    half_life: float, floor: int, pre: int
) -> None:
    peak = 1_000
    engine = run(ebb_night(half_life, floor, peak, pre), 600 + 3_700)
    review = engine.rooms["r"].promotion_metrics()
    assert review["promotion_ebb_half_life_seconds"] == pytest.approx(half_life, rel=0.15)
    assert review["promotion_floor_viewers"] == pytest.approx(floor, rel=0.1)
    if pre:
        assert review["promotion_floor_ratio"] == pytest.approx(floor / pre, rel=0.1)
    else:  # no level before it: the floor in viewers only, no ratio to nothing
        assert review["promotion_viewers_before"] is None  # the room began with it
        assert review["promotion_floor_ratio"] is None
    # Retention of the cohort (all 1,000 at the end: a sample of 512) at 10 minutes.
    expected = (floor + (peak - floor) * 2 ** (-600 / half_life)) / peak
    assert review["promotion_retention_10m"] == pytest.approx(expected, abs=0.07)


def test_a_quiet_room_caught_up_reviews_as_a_ticked_one() -> None:
    """Few viewers: the room is caught up in spans, never ticked second by second."""
    events: list[Event] = [Join("r", ms(i), f"u{i}") for i in range(4)]
    events += [
        RoomEvent("r", ms(100), "promo_start", "p"),
        RoomEvent("r", ms(200), "promo_end", "p"),
        Leave("r", ms(500), "u0"),
        Order("r", ms(150), "u1", "o", 9.0),
    ]
    events += [Latency("r", ms(s), f"u{i}", 90.0) for s in range(250, 4_000, 250) for i in (1, 2)]
    quiet = run(events, 200 + 3_700, CONFIG)
    assert "r" not in quiet._ticking
    review = quiet.rooms["r"].promotion_metrics()
    assert review["promotion_viewers_end"] == 4
    # u3 timed out (no event for 300 s), u0 left at 500 s: 2 of 4 at ten minutes.
    assert review["promotion_retention_10m"] == pytest.approx(2 / 4)
    assert review["promotion_orders_during"] == 1
    assert review["promotion_watch_seconds_during"] == 4 * 100
    # Ticked: the same figures with a per-second engine.
    loud = PartitionEngine(CONFIG)
    loud.ingest(sorted(events, key=lambda e: e.ts))
    loud.flush()
    room = loud.rooms["r"]
    loud._ticking["r"] = room
    loud._wake_at.pop("r", None)
    loud.advance_idle(ms(200 + 3_700) - (loud.event_clock or T0) + CONFIG.allowed_lateness_ms)
    assert room.promotion_metrics() == review


def test_the_cohort_is_a_bounded_deterministic_sample() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    sample = cohort_sample(users)
    assert len(sample) == COHORT_MAX
    shuffled = list(users)
    random.Random(3).shuffle(shuffled)
    assert cohort_sample(shuffled) == sample  # arrival order changes nothing
    assert cohort_sample(users[:100]) == sorted(users[:100])  # small rooms: everyone
    # Unbiased: a share of the sample estimates the share of the whole.
    share = sum(int(u.split("-")[1]) % 4 == 0 for u in sample) / len(sample)
    assert math.isclose(share, 0.25, abs_tol=0.06)


def test_an_end_without_a_start_reviews_what_follows() -> None:
    events: list[Event] = [Join("r", ms(i), f"u{i}") for i in range(20)]
    events += [RoomEvent("r", ms(100), "promo_end", "p")]
    review = run(events, 800, CONFIG).rooms["r"].promotion_metrics()
    assert review["promotion_start_ts"] is None and review["promotion_viewers_end"] == 20
    assert review["promotion_watch_seconds_during"] is None
    assert review["promotion_retention_10m"] == 0.0  # they all timed out by 400 s
