"""The ebb fit recovers half-life and floor; no estimate without a real peak."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.decay import fit_decay
from detectors.ebb import EbbEstimate, EbbTracker, ebb_hint, floor_words


@pytest.mark.parametrize(("half_life", "floor"), [(240.0, 800.0), (900.0, 300.0), (60.0, 50.0)])
def test_fit_recovers_a_noisy_exponential_decay(half_life: float, floor: float) -> None:
    rng = np.random.default_rng(1)
    t = np.arange(0, 3600, 5.0)
    values = floor + 4000 * np.exp2(-t / half_life) + rng.normal(0, 20, len(t))
    fitted = fit_decay(values, 5.0)
    assert fitted is not None
    assert fitted[0] == pytest.approx(half_life, rel=0.1)
    assert fitted[1] == pytest.approx(floor, rel=0.1, abs=20)


def test_a_promotion_night_yields_the_ebb_and_its_floor_ratio() -> None:
    tracker = EbbTracker()
    pre, peak, floor, half_life = 1000.0, 6000.0, 1500.0, 300.0
    second = 0
    for _ in range(240):  # 20 minutes before the promotion
        second += 5
        tracker.observe(second, pre)
    for i in range(60):  # 5-minute ramp
        second += 5
        tracker.observe(second, pre + (peak - pre) * (i + 1) / 60)
    peak_second = second
    for i in range(1, 241):  # 20 minutes of ebb
        second += 5
        tracker.observe(second, floor + (peak - floor) * 2 ** (-(i * 5) / half_life))
    estimate = tracker.estimate
    assert estimate is not None
    assert estimate.peak_second == peak_second
    assert estimate.half_life_s == pytest.approx(half_life, rel=0.1)
    assert estimate.floor_ratio == pytest.approx(floor / pre, rel=0.1)
    assert estimate.progress > 0.9


def test_a_flat_room_has_no_ebb() -> None:
    tracker = EbbTracker()
    rng = np.random.default_rng(2)
    for step in range(1, 700):
        tracker.observe(step * 5, 1000 + float(rng.normal(0, 30)))
    assert tracker.estimate is None


def test_the_floor_is_told_as_a_ratio_only_when_there_was_a_level_before() -> None:
    assert floor_words(300.0, 200.0) == "floor 1.5x the level before it"
    assert floor_words(420.0, 0.0) == "floor 420 viewers, where there was no audience before"
    from_nothing = EbbEstimate(
        peak_second=1_764_000_000, peak=900.0, pre_level=0.0, half_life_s=600.0,
        floor=420.0, current=500.0,
    )  # fmt: skip
    hint = ebb_hint(from_nothing)
    assert "no audience before" in hint and "inf" not in hint and "0.0x" not in hint
