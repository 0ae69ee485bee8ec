"""Burn-rate alerting: sustained breaches page within minutes, blips and thin traffic never."""

from __future__ import annotations

from detectors.config import SloConfig
from detectors.slo import BurnRate


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


def test_old_seconds_leave_the_window() -> None:
    burn = BurnRate(SloConfig(), head=0)
    burn.add(10, 5, 1)
    assert burn.window(10, 10) == (5, 1)
    burn.add(10 + 720, 3, 0)
    assert burn.window(730, 720) == (3, 0)
    burn.add(5, 100, 100)  # behind the window: ignored
    assert burn.window(730, 720) == (3, 0)


def test_silent_once_the_longest_window_holds_nothing() -> None:
    burn = BurnRate(SloConfig(), head=0)
    assert burn.is_silent(100)
    burn.add(100, 5, 1)
    burn.add(101, 0, 0)  # a second without samples does not count as activity
    for now in (100, 101, 819):
        assert not burn.is_silent(now)
        assert burn.window(now, 720)[0] > 0
    assert burn.is_silent(820) and burn.window(820, 720)[0] == 0
