"""Cliff detection on synthetic step series: ebbs and noise stay quiet, cliffs fire fast."""

from __future__ import annotations

import math

import numpy as np

from detectors.cliff import CliffDetector
from detectors.config import CliffConfig

STEP = CliffConfig().step_s


def run(
    online: list[float], entries_per_s: list[float], events_per_s: list[float], seed: int = 1
) -> list[tuple[int, str]]:
    """Feed per-step levels (Poisson counts for rates); return (second, severity) findings."""
    rng = np.random.default_rng(seed)
    detector = CliffDetector()
    found = []
    for step, (o, e, a) in enumerate(zip(online, entries_per_s, events_per_s, strict=True)):
        detector.observe(
            float(rng.poisson(o)) if o < 100 else o,
            float(rng.poisson(e * STEP)),
            float(rng.poisson(a * STEP)),
        )
        second = (step + 1) * STEP
        finding = detector.evaluate(second)
        if finding is not None:
            found.append((second, finding.severity))
    return found


def steps(minutes: float) -> int:
    return int(minutes * 60 / STEP)


def test_a_post_promotion_ebb_never_fires() -> None:
    """Peak 6000 online decaying (half-life 6 min) to a floor of 900; entries ebb likewise."""
    flat, decay = steps(15), steps(60)
    half_life_steps = 6 * 60 / STEP
    online = [6000.0] * flat + [
        900 + 5100 * math.exp(-math.log(2) * i / half_life_steps) for i in range(decay)
    ]
    entries = [40.0] * flat + [
        4 + 36 * math.exp(-math.log(2) * i / half_life_steps * 1.5) for i in range(decay)
    ]
    events = [3 * e + o / 20 for e, o in zip(entries, online, strict=True)]
    assert run(online, entries, events) == []


def test_small_room_noise_never_fires() -> None:
    n = steps(120)
    rng = np.random.default_rng(5)
    online = list(rng.integers(5, 40, n).astype(float))
    entries = list(rng.uniform(0, 0.4, n))
    events = [2 * e for e in entries]
    for seed in range(5):
        assert run(online, entries, events, seed=seed) == []


def test_an_outage_fires_critical_within_a_minute() -> None:
    before, after = steps(15), steps(5)
    online = [3000.0] * before + [max(150.0, 3000 * 0.5 ** (i + 1)) for i in range(after)]
    entries = [25.0] * before + [0.2] * after
    events = [120.0] * before + [1.0] * after
    found = run(online, entries, events)
    cliff_at = before * STEP
    assert found, "the outage was not detected"
    first_second = found[0][0]
    assert 0 < first_second - cliff_at <= 60
    assert "critical" in {s for _, s in found}


def test_a_feed_cut_fires_on_entries_while_online_only_drifts() -> None:
    before, after = steps(15), steps(5)
    online = [2000.0] * before + [2000 - 2 * i for i in range(after)]
    entries = [30.0] * before + [9.0] * after  # the feed brought 70% of entries
    events = [100.0] * (before + after)
    found = run(online, entries, events)
    assert found and found[0][0] - before * STEP <= 60


def test_a_room_that_goes_silent_fires_although_viewers_are_still_online() -> None:
    before, after = steps(15), steps(3)
    online = [800.0] * (before + after)  # sessions have not expired yet
    entries = [8.0] * before + [0.0] * after
    events = [40.0] * before + [0.0] * after
    detector = CliffDetector()
    findings = []
    for step, (o, e, a) in enumerate(zip(online, entries, events, strict=True)):
        detector.observe(o, e * STEP, a * STEP)
        finding = detector.evaluate((step + 1) * STEP)
        if finding is not None:
            findings.append(((step + 1) * STEP, finding))
    assert findings and findings[0][0] - before * STEP <= 60
    silent = [f for second, f in findings if f.details["silent"]]
    assert silent and silent[0].summary.startswith("room went silent")
    # Silent since the outage, seen through the 30 s window: how fast it fell.
    assert 30 <= silent[0].details["fell_within_s"] <= 65
    assert min(s for s, f in findings if f.details["silent"]) - before * STEP <= 60


def test_a_cliff_clears_when_traffic_recovers_and_not_before() -> None:
    before, down, back = steps(15), steps(3), steps(3)
    online = [3000.0] * before + [600.0] * down + [2900.0] * back
    entries = [20.0] * before + [2.0] * down + [20.0] * back
    events = [80.0] * before + [8.0] * down + [80.0] * back
    found = run(online, entries, events)
    seconds = [s for s, _ in found]
    recovered_at = (before + down) * STEP
    assert seconds and seconds[0] - before * STEP <= 60
    # Active without a gap while traffic is down, cleared once the short window recovers.
    assert seconds == list(range(seconds[0], seconds[-1] + STEP, STEP))
    assert recovered_at <= seconds[-1] < recovered_at + CliffConfig().short_s


def test_entries_easing_after_an_opening_rush_do_not_fire() -> None:
    """Entries per 30 s fall by half three minutes in, while online viewers hold."""
    rush, after = steps(3), steps(30)
    entries = [20.0] * rush + [20 * (0.5 + 0.5 * 0.5 ** (i / 6)) for i in range(after)]
    online = [min(1500.0, 200 + 60.0 * i) for i in range(rush + after)]
    events = [40.0 + o / 20 for o in online]
    for seed in range(5):
        assert run(online, entries, events, seed=seed) == []
    # A feed cut in the opening is a collapse: still a cliff.
    cut = [20.0] * rush + [1.0] * after
    assert run(online, cut, events)


def test_entries_falling_back_after_a_promotion_surge_do_not_fire_a_cut_below_usual_does() -> None:
    """Entries at 10/s, a flash sale pushing 40/s for 8 minutes that stops at once."""
    usual, surge, after = steps(25), steps(8), steps(15)
    entries = [10.0] * usual + [40.0] * surge + [10.0] * after
    online = [3000.0] * usual + [3000.0 + 60 * i for i in range(surge)]
    online += [online[-1]] * after
    events = [100.0] * (usual + surge + after)
    for seed in range(5):
        assert run(online, entries, events, seed=seed) == []
    # The feed cut as the sale ends: entries fall to a third of the usual level.
    cut = entries[: usual + surge] + [3.0] * after
    found = run(online, cut, events)
    assert found and found[0][0] - (usual + surge) * STEP <= 60


def run_channels(
    online: list[float], channel_rates: list[list[float]], seed: int = 1
) -> list[tuple[int, str]]:
    """As `run`, with entries given per traffic channel (rates per second, one list per
    step); events are three per entry plus a chat background."""
    rng = np.random.default_rng(seed)
    detector = CliffDetector()
    found = []
    for step, (o, rates) in enumerate(zip(online, channel_rates, strict=True)):
        channels = [float(rng.poisson(rate * STEP)) for rate in rates]
        entries = sum(channels)
        detector.observe(o, entries, 3 * entries + float(rng.poisson(5 * STEP)), channels)
        second = (step + 1) * STEP
        finding = detector.evaluate(second)
        if finding is not None:
            found.append((second, finding.severity))
    return found


def cuts_found_within_a_minute(
    online: list[float], rates: list[list[float]], cut_step: int, seeds: int
) -> int:
    """Of `seeds` runs of a channel cut at `cut_step`, those whose first finding came
    within a minute of it; none may come before it."""
    hits = 0
    for seed in range(seeds):
        found = run_channels(online, rates, seed=seed)
        assert all(second > cut_step * STEP for second, _ in found), "fired before the cut"
        hits += bool(found) and found[0][0] - cut_step * STEP <= 60
    return hits


def test_a_feed_cut_in_a_room_of_a_few_hundred_viewers_fires_on_the_channel_collapse() -> None:
    """About 30 entries per 30 s, 60% of them from the feed, which stops: the total falls
    about 60%, not significantly for 30 entries, while the feed channel went to nothing."""
    before, after = steps(25), steps(6)
    online = [450.0] * (before + after)
    usual = [0.6, 0.2, 0.1, 0.1]
    rates = [usual] * before + [[0.0, 0.2, 0.1, 0.1]] * after
    assert cuts_found_within_a_minute(online, rates, before, seeds=8) >= 7
    # Without the channels, the same fall was too small to be significant on its own.
    totals = [[sum(r)] for r in rates]
    assert sum(bool(run_channels(online, totals, seed=seed)) for seed in range(8)) <= 4


def test_channels_of_a_steady_room_never_fire() -> None:
    """Two hours of a room with 30 entries per 30 s spread over four channels, and a
    small channel (10%) that stops: noise and a minor source's end are no cliff."""
    n = steps(120)
    online = [450.0] * n
    rates = [[0.6, 0.2, 0.1, 0.1]] * (n // 2) + [[0.6, 0.2, 0.1, 0.0]] * (n - n // 2)
    for seed in range(5):
        assert run_channels(online, rates, seed=seed) == []


def test_a_channel_that_stops_in_the_opening_or_after_a_surge_does_not_fire() -> None:
    """The feed of a new stream stopping five minutes in (the opening's ebb is not
    judged on channels), and an ad campaign that brought a surge stopping at once
    (entries fall back to their usual level): no cliff."""
    opening, rest = steps(5), steps(10)
    online = [450.0] * (opening + rest)
    rates = [[0.6, 0.2, 0.1, 0.1]] * opening + [[0.0, 0.2, 0.1, 0.1]] * rest
    for seed in range(5):
        assert run_channels(online, rates, seed=seed) == []
    usual, surge, after = steps(25), steps(8), steps(15)
    online = [450.0] * (usual + surge + after)
    rates = [[0.6, 0.2, 0.1, 0.0]] * usual + [[0.6, 0.2, 0.1, 0.9]] * surge
    rates += [[0.6, 0.2, 0.1, 0.0]] * after
    for seed in range(5):
        assert run_channels(online, rates, seed=seed) == []


def test_a_feed_cut_in_a_room_of_a_few_dozen_entries_fires_on_the_channel_count() -> None:
    """About 12 entries per 30 s, 60% from the feed, which stops: its share alone is too
    little evidence within a minute (0 of 5 entries from a 60% channel is 1% likely),
    its count against its part of the trend (7 due in 30 s, 14 in a minute) is not."""
    before, after = steps(25), steps(4)
    online = [300.0] * (before + after)
    rates = [[0.24, 0.08, 0.04, 0.04]] * before + [[0.0, 0.08, 0.04, 0.04]] * after
    assert cuts_found_within_a_minute(online, rates, before, seeds=10) >= 7


def test_a_room_whose_channels_dip_together_does_not_fire() -> None:
    """The same room's entries falling to a third for two minutes, every channel alike
    (a lull), and back: counts fall, shares hold, no cliff."""
    usual, lull, after = steps(25), steps(2), steps(5)
    online = [300.0] * (usual + lull + after)
    rates = [[0.24, 0.08, 0.04, 0.04]] * usual + [[0.08, 0.027, 0.013, 0.013]] * lull
    rates += [[0.24, 0.08, 0.04, 0.04]] * after
    for seed in range(10):
        assert run_channels(online, rates, seed=seed) == []


def swinging(rate: float, steps_: int, seed: int, sigma: float) -> list[float]:
    """Entries per second around `rate` that swing from one 30 s bucket to the next (a
    log-normal level per bucket, half of it kept from the bucket before), as a show's
    traffic does with its hype and calls to action."""
    rng = np.random.default_rng(1000 + seed)
    per_bucket = CliffConfig().count_bucket_s // STEP
    out, level = [], 0.0
    for step in range(steps_):
        if step % per_bucket == 0:
            level = 0.5 * level + rng.normal(0.0, sigma)
        out.append(rate * math.exp(level - sigma * sigma / 2))
    return out


def test_entries_are_judged_against_how_much_the_room_s_entries_swing() -> None:
    """An hour of a room whose entries swing by about 40% from one 30 s to the next
    while its audience holds: no cliff (judged as Poisson counts, 19 of these 20 rooms
    fired). The same room with a steady rate: entries at a third for a minute fire."""
    n = steps(60)
    online, events = [800.0] * n, [20.0] * n
    for seed in range(20):
        assert run(online, swinging(3.0, n, seed, sigma=0.4), events, seed=seed) == []
    before, dip, after = steps(30), steps(1), steps(3)
    steady = [3.0] * before + [1.05] * dip + [3.0] * after
    for seed in range(5):
        assert run([800.0] * len(steady), steady, [20.0] * len(steady), seed=seed)
