"""Burn-rate alerting: sustained breaches page within minutes, blips and thin traffic never."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.alerts import AlertKey, AlertTracker
from detectors.config import BurnWindow, DetectorConfig, LevelConfig, SloConfig, StallStepConfig
from detectors.slo import (
    BAD,
    COUNT,
    FOLD_AT,
    TOTAL,
    BurnRate,
    latency_finding,
    stall_finding,
    stall_step,
    sustained_level,
)


def first_alert(bad_share: dict[int, float], seconds: int, per_second: float = 20) -> int | None:
    """Second of the first finding, feeding `per_second` samples with the given bad share."""
    burn = BurnRate(SloConfig(), head=0)
    for second in range(1, seconds + 1):
        share = bad_share.get(second, 0.01)
        burn.add(second, per_second, per_second * share)
        if burn.evaluate(second) is not None:
            return second
    return None


def test_a_sustained_breach_pages_critical_within_three_minutes() -> None:
    start = 900
    bad = {s: 0.9 for s in range(start, 2000)}
    fired = first_alert(bad, 2000)
    assert fired is not None and fired - start <= 180
    burn = BurnRate(SloConfig(), head=0)
    for second in range(1, start + 200):
        burn.add(second, 20, 20 * bad.get(second, 0.01))
    finding = burn.evaluate(start + 199)
    assert finding is not None and finding.severity == "critical"
    assert finding.details["burn_rate_long"] >= 14.4


def test_a_moderate_breach_warns() -> None:
    start = 900
    burn = BurnRate(SloConfig(), head=0)
    finding = None
    for second in range(1, start + 900):
        burn.add(second, 20, 20 * (0.45 if second >= start else 0.01))
        finding = burn.evaluate(second) or finding
    assert finding is not None and finding.severity == "warning"


def test_a_twenty_second_blip_and_a_single_slow_sample_do_not_page() -> None:
    assert first_alert({s: 1.0 for s in range(600, 620)}, 1500) is None
    assert first_alert({700: 1 / 20}, 1500, per_second=1) is None


def test_thin_traffic_is_gated() -> None:
    # One sample every 10 s, all bad: under the volume gates of every window.
    burn = BurnRate(SloConfig(), head=0)
    for second in range(1, 2000, 10):
        burn.add(second, 1, 1)
        assert burn.evaluate(second) is None


def test_a_longer_window_needs_as_much_more_traffic() -> None:
    """Twelve minutes of a region of three viewers hold as many samples as two minutes
    of eighteen: the warning's gate scales with its window, so a small region's 35% of
    bad samples never warns, while a region of 20 viewers does."""
    for per_second, warns in ((0.3, False), (2.0, True)):
        rng = np.random.default_rng(3)
        burn, finding = BurnRate(SloConfig(), head=0), None
        for second in range(1, 1800):
            total = int(rng.poisson(per_second))
            burn.add(second, total, int(rng.binomial(total, 0.35)))
            finding = finding or burn.evaluate(second)
        assert (finding is not None) is warns, per_second
        assert finding is None or finding.severity == "warning"


def test_old_seconds_leave_the_window() -> None:
    burn = BurnRate(SloConfig(), head=0)
    burn.add(10, 5, 1)
    assert burn.window(10, 10) == (5, 1)
    burn.add(10 + 720, 3, 0)
    assert burn.window(730, 720) == (3, 0)
    burn.add(5, 100, 100)  # behind the window: ignored
    assert burn.window(730, 720) == (3, 0)


def test_a_clean_key_judged_for_hours_holds_no_more_than_its_window() -> None:
    """Nothing bad: judged without reading its windows, and its additions still fold."""
    burn = BurnRate(SloConfig(), head=0)
    hours = 4 * 3600
    for second in range(1, hours + 1):
        burn.add(second, 20, 0)
        assert burn.evaluate(second) is None
    assert len(burn.unfolded) < FOLD_AT
    assert burn.window(hours, 720) == (720 * 20, 0)


def test_a_key_holds_only_the_rows_it_uses() -> None:
    burn = BurnRate(SloConfig(), head=0)
    for second in range(1, 100):
        burn.add(second, 20, 0)
    burn.window(99, 60)
    assert burn.rows[TOTAL] is not None and burn.rows[BAD] is None and burn.rows[COUNT] is None
    burn.add(100, 20, 5)
    burn.window(100, 60)
    assert burn.rows[BAD] is not None
    burn.add(100 + 720, 20, 0)  # the bad second has left the longest window
    assert burn.sums(820, 720) == (20, 0, 20) and burn.rows[BAD] is None


adds = st.lists(
    st.tuples(
        st.integers(0, 40),
        st.integers(0, 6),
        st.integers(0, 6),
        st.one_of(st.none(), st.integers(0, 9)),
    ),
    max_size=150,
)


@given(adds)
@settings(max_examples=200, deadline=None)
def test_sums_are_those_of_every_second_added(
    steps: list[tuple[int, int, int, int | None]],
) -> None:
    """Whatever mix of seconds with and without a count, and reads between them."""
    config = SloConfig(windows=(BurnWindow(40, 4, 2.0, "critical"),))
    burn = BurnRate(config, head=0)
    kept: list[tuple[int, int, int, int]] = []
    second = 0
    for gap, total, bad, count in steps:
        second += gap // 8  # mostly the same second or the next
        burn.add(second, total, bad, count)
        kept.append((second, total, bad, total if count is None else count))
        if gap % 3 == 0:
            for seconds in (1, 7, 40):
                inside = [k for k in kept if second - seconds < k[0] <= second]
                expected = tuple(float(sum(k[i] for k in inside)) for i in (1, 2, 3))
                assert burn.sums(second, seconds) == expected


def test_silent_once_the_longest_window_holds_nothing() -> None:
    burn = BurnRate(SloConfig(), head=0)
    assert burn.is_silent(100)
    burn.add(100, 5, 1)
    burn.add(101, 0, 0)  # a second without samples does not count as activity
    for now in (100, 101, 819):
        assert not burn.is_silent(now)
        assert burn.window(now, 720)[0] > 0
    assert burn.is_silent(820) and burn.window(820, 720)[0] == 0


def first_level(bad_share: dict[int, float], seconds: int, per_second: float = 2) -> int | None:
    """Second of the first sustained-level finding, every 5 s as the engine evaluates;
    samples are spread evenly (`per_second` on average), bad ones at the given share."""
    rng = np.random.default_rng(7)
    burn, config = BurnRate(SloConfig(), head=0), LevelConfig()
    for second in range(1, seconds + 1):
        total = int(rng.poisson(per_second))
        burn.add(second, total, int(rng.binomial(total, bad_share.get(second, 0.02))))
        if second % 5 == 4 and sustained_level(burn, second, config) is not None:
            return second
    return None


def test_half_of_a_region_over_the_objective_for_minutes_pages_within_three() -> None:
    # Two samples a second (a region of ~20 viewers reporting every 10 s).
    for share in (0.5, 0.6, 0.9):
        fired = first_level({s: share for s in range(900, 1500)}, 1500)
        assert fired is not None and 900 + 90 <= fired <= 900 + 180, (share, fired)
    # The burn rates alone: 50% bad is a warning after 12 minutes, no page in three.
    assert first_alert({s: 0.5 for s in range(900, 1500)}, 1080, per_second=2) is None


def test_a_third_of_a_big_region_suddenly_over_the_objective_pages_within_three_minutes() -> None:
    # Thirty samples a second (~300 viewers reporting every 10 s): from 2% to 38% bad.
    fired = first_level({s: 0.38 for s in range(900, 1500)}, 1500, per_second=30)
    assert fired is not None and 900 + 145 <= fired <= 900 + 180, fired
    # The burn rates alone: a warning after 12 x 6 / 7.6 = 9.5 minutes, no page in three.
    assert first_alert({s: 0.38 for s in range(900, 1500)}, 1080, per_second=30) is None


def test_a_swell_of_two_minutes_or_a_drift_is_no_step() -> None:
    """A real network's level swells for a couple of minutes (40% bad for 2 minutes
    from 2%), or drifts up (25% bad for 15 minutes, then 36%): under about half, neither
    is a step held long enough from a healthy region. The burn rates judge them."""
    swell = {s: 0.40 for s in range(900, 1020)}
    assert first_level(swell, 1500, per_second=30) is None
    drift = {s: 0.25 if s < 900 else 0.36 for s in range(1, 1200)}
    assert first_level(drift, 1200, per_second=30) is None


def test_the_noise_of_a_handful_of_viewers_does_not_page() -> None:
    """Five viewers reporting every 12 s, a quarter of their samples over the objective
    all night (one viewer's poor connection): two minutes of them hold too few samples
    to be certain of a third, however high they swing."""
    assert first_level(dict.fromkeys(range(1, 7200), 0.25), 7200, per_second=0.4) is None


def test_one_minute_spikes_do_not_page_even_when_every_sample_is_bad() -> None:
    for length in (30, 60, 75):
        spikes = {s: 1.0 for start in range(600, 3000, 600) for s in range(start, start + length)}
        assert first_level(spikes, 3000, per_second=5) is None, length


def test_a_level_needs_samples_in_every_part_of_the_window() -> None:
    # A room of three viewers: a sample every 5 s, all bad, never enough to page on.
    assert first_level({s: 1.0 for s in range(100, 900)}, 900, per_second=0.2) is None


def test_a_level_finding_reads_as_the_share_viewers_see() -> None:
    finding = sustained_level(_steady_burn(bad=2), 199, LevelConfig())
    assert finding is not None and finding.severity == "critical" and finding.kind == "level"
    assert finding.details["bad_share"] == 0.5 and finding.details["bad_share_parts"] == [0.5] * 4
    alert = latency_finding(finding, "east", 600)
    assert alert.summary == (
        "50% of latency samples in east over 600 ms for 2 min (at least 50% in every 30 s)"
    )


def test_a_level_giving_way_to_its_burn_is_not_announced_again() -> None:
    """A long degradation pages on its level, and as it eases the burn it caused is
    still over its rate: one incident, one page."""
    level = sustained_level(_steady_burn(bad=3), 199, LevelConfig())
    burn = BurnRate(SloConfig(), head=0)
    for second in range(1, 200):
        burn.add(second, 20, 20 * (0.9 if second > 60 else 0.0))
    burning = burn.evaluate(199)
    assert level is not None and burning is not None
    tracker, key = AlertTracker(), AlertKey("latency_slo", "r", "east")
    first = tracker.update(200_000, {key: latency_finding(level, "east", 600)})
    then = tracker.update(205_000, {key: latency_finding(burning, "east", 600)})
    assert [t.state for t in first] == ["firing"] and then == []


def _steady_burn(bad: int) -> BurnRate:
    """Four samples a second, `bad` of them over the objective after the first minute."""
    burn = BurnRate(SloConfig(), head=0)
    for second in range(1, 200):
        burn.add(second, 4, bad if second > 60 else 0)
    return burn


def test_shares_weigh_the_amounts_while_volume_gates_count_samples() -> None:
    """Latency amounts are the viewer-seconds samples stand for: a second of 1 sample
    standing for 20 viewer-seconds and 4 bad ones standing for 1 s each is 17% bad, and
    the gates count 5 samples, not 24 viewer-seconds."""
    burn = BurnRate(SloConfig(), head=0)
    burn.add(10, 24.0, 4.0, 5)
    assert burn.sums(10, 10) == (24.0, 4.0, 5.0) and burn.window(10, 10) == (24.0, 4.0)
    for second in range(1, 121):  # 120 samples over 2 min, all bad, but standing for little
        burn.add(second, 1.0 + 19.0 * (second % 2), 1.0 * (1 - second % 2), 1)
    finding = burn.evaluate(120)
    assert finding is None  # 64 bad of 1,284 viewer-seconds: 5%, the budget itself
    # Gates read the count: 9 samples standing for 900 viewer-seconds are too few.
    thin = BurnRate(SloConfig(), head=0)
    for second in range(1, 121):
        if second % 13 == 0:
            thin.add(second, 100.0, 100.0, 1)
    assert thin.evaluate(120) is None and sustained_level(thin, 120, LevelConfig()) is None


def first_storm(
    stalled_share: dict[int, float], seconds: int, viewers: int = 100, stalled_viewers: int = 20
) -> tuple[int | None, int | None]:
    """Seconds of the first stall step and of the first stall burn alert, every 5 s as
    the engine evaluates: `viewers` watching, a share of their time stalled (0.05% when
    not given: ordinary stalls)."""
    config = DetectorConfig()
    burn = BurnRate(config.stall_slo, head=0)
    step = alert = None
    for second in range(1, seconds + 1):
        burn.add(second, viewers, viewers * stalled_share.get(second, 0.0005))
        if second % 5 == 4:
            if step is None and stall_step(burn, second, config.stall_step, stalled_viewers):
                step = second
            if alert is None and burn.evaluate(second) is not None:
                alert = second
    return step, alert


def _storm(start: int, stop: int, share: float, ramp_s: int = 40) -> dict[int, float]:
    """A stall storm ramping up over `ramp_s`, as viewers' players run dry one by one."""
    return {s: share * min(1.0, (s - start + 1) / ramp_s) for s in range(start, stop)}


def test_a_stall_storm_under_the_burn_rates_pages_on_its_step_within_three_minutes() -> None:
    """A third of a room's viewers stalling every 30 s for 3 s (3% of its watch time),
    and a regional storm diluted to 1.2% of the room's: the burn rates need 14.4% for 2
    minutes or 6% for 12, so they never page; the step does, from 0.05% before."""
    for share in (0.03, 0.012):
        step, alert = first_storm(_storm(900, 1380, share), 1500)
        assert step is not None and 900 + 120 <= step <= 900 + 180, (share, step)
        assert alert is None, share


def test_a_blip_one_viewer_or_poor_playback_all_along_is_no_stall_step() -> None:
    # Every viewer stalls through the same 15 s (a CDN hiccup): one part of four.
    assert first_storm({s: 1.0 for s in range(900, 915)}, 1500)[0] is None
    # One viewer on a bad connection, stalled through half their time in a room of 10.
    assert first_storm(_storm(900, 1380, 0.05), 1500, viewers=10, stalled_viewers=1)[0] is None
    # A room whose playback stalls 2% of the time all night: the burn rates' to judge.
    assert first_storm(dict.fromkeys(range(1, 1500), 0.02), 1500)[0] is None
    # A room of five viewers, however much they stall: under the volume gate.
    assert first_storm(_storm(900, 1380, 0.2), 1500, viewers=5)[0] is None
    # The budget is the floor: half of it, however steady, is no storm.
    assert first_storm(_storm(900, 1380, 0.005), 1500)[0] is None


def test_a_stall_step_reads_as_the_storm_viewers_sit_through() -> None:
    config, burn = DetectorConfig(), BurnRate(DetectorConfig().stall_slo, head=0)
    for second in range(1, 700):
        burn.add(second, 100, 4.0 if second >= 580 else 0.0)
    finding = stall_step(burn, 699, config.stall_step, 12)
    assert finding is not None and finding.severity == "warning"
    assert finding.details["bad_share_parts"] == [0.04] * 4
    assert stall_finding(finding).summary == (
        "stalls took 4.0% of watch time for 2 min (from 0.00% before; "
        "12 viewers stalled in the last minute)"
    )


def test_a_stall_step_without_volume_gates_judges_an_empty_room_without_failing() -> None:
    config = DetectorConfig(stall_step=StallStepConfig(min_watch_s=0, min_viewers=0))
    burn = BurnRate(config.stall_slo, head=0)
    burn.add(600, 0.0, 5.0)  # stall seconds reported where nobody was counted watching
    assert stall_step(burn, 699, config.stall_step, 0) is None


def test_a_stall_step_must_fit_in_the_stall_objectives_window() -> None:
    with pytest.raises(ValueError, match="stall_step"):
        DetectorConfig(stall_step=StallStepConfig(before_s=660))
    with pytest.raises(ValueError, match="stall_step"):
        DetectorConfig(stall_step=StallStepConfig(part_share=0))
