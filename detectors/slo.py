"""Multi-window, multi-burn-rate SLO alerting (Google SRE Workbook, "Alerting on SLOs").

An objective says what share of events must be good (e.g. 95% of latency
samples at or under 600 ms). The error budget is the rest (5%); the burn rate
of a window is its bad share divided by the budget. An alert needs a long and a
short window (1/12 of it) both over the threshold: the long one proves the burn
is significant, the short one that it is still going on.

The Workbook's windows (1 h / 5 min at 14.4x, 6 h / 30 min at 6x) are sized for
a 30-day budget. A live room is judged over a day, not a month, so windows are
divided by 30: 2 min / 10 s at 14.4x still means "2% of the day's budget spent",
and a sustained breach pages within minutes instead of after one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import numpy as np

from detectors.alerts import Finding
from detectors.config import LevelConfig, SloConfig, StallStepConfig

FOLD_AT: Final = 64
"""A burn rate folds the seconds added to it once this many wait."""
TOTAL, BAD, COUNT = range(3)
"""The rows of `BurnRate.rows`."""


@dataclass
class BurnRate:
    """Per-second totals and bad amounts of one key over the longest window.

    Amounts may be durations (watch and stall seconds, or the viewer-seconds latency
    samples stand for) or counts. The volume gates read a count of their own (latency
    samples), which is the total amount unless given.

    Each of the three rows is made when it first holds a value: a key that is never
    bad, or never given a count, holds one row or two of the longest window (5.8 KB
    each over 12 minutes), not three (a room's stall and latency keys were 35 KB of
    the 81 KB a watched room held; 100,000 rooms on a worker, benchmarks.many_rooms).
    """

    config: SloConfig
    head: int
    """Newest second held."""
    rows: list[np.ndarray | None] = field(init=False)
    """Total, bad and count: a column per second of the longest window (a ring), None
    while the row holds nothing (the bad row again once its last value has left)."""
    unfolded: list[tuple[int, float, float, float | None]] = field(default_factory=list)
    """Seconds added since the last read, folded into `rows` in one go: at a read, or
    once `FOLD_AT` wait (a clean key is judged without reading, so it would keep them all)."""
    newest_active: int | None = None
    """The newest second with a positive total."""
    first_active: int | None = None
    """The first second with a positive total: a window pair is judged once half its
    long window has been seen (a room that starts on a bad second does not page on it)."""
    newest_bad: int | None = None
    """The newest second with a positive bad amount: a key with nothing bad in its longest
    window is judged without summing a window (most rooms, most of the time)."""

    def __post_init__(self) -> None:
        self.rows = [None, None, None]

    def add(self, second: int, total: float, bad: float, count: float | None = None) -> None:
        """Amounts of `second` and the count of events behind them (`total` when not
        given); seconds at or behind the window's start are ignored."""
        self.unfolded.append((second, total, bad, count))
        if len(self.unfolded) >= FOLD_AT:
            self._fold()
        if total > 0 and (self.newest_active is None or second > self.newest_active):
            self.newest_active = second
        if total > 0 and (self.first_active is None or second < self.first_active):
            self.first_active = second
        if bad > 0 and (self.newest_bad is None or second > self.newest_bad):
            self.newest_bad = second

    def is_clean(self, now: int) -> bool:
        """Nothing bad over the longest window ending with `now`: no window burns."""
        return self.newest_bad is None or self.newest_bad <= now - self.config.horizon_s

    def is_silent(self, now: int) -> bool:
        """Nothing over the longest window ending with `now`."""
        return self.newest_active is None or self.newest_active <= now - self.config.horizon_s

    def _fold(self) -> None:
        if not self.unfolded:
            return
        size = self.config.horizon_s
        newest = max(second for second, _, _, _ in self.unfolded)
        if newest > self.head:
            self._advance(newest)
        start = self.head - size
        for second, total, bad, count in self.unfolded:  # a few: cheaper than np.add.at
            if second > start:
                slot = second % size
                if count is not None or self.rows[COUNT] is not None:
                    # Before the total: a new count row copies the totals so far.
                    self._row(COUNT)[slot] += total if count is None else count
                if total:
                    self._row(TOTAL)[slot] += total
                if bad:
                    self._row(BAD)[slot] += bad
        self.unfolded = []

    def _row(self, row: int) -> np.ndarray:
        """The row, made when it has none; a count row starts as the totals' copy (the
        count of every second added without one)."""
        kept = self.rows[row]
        if kept is None:
            totals = self.rows[TOTAL]
            if row == COUNT and totals is not None:
                kept = totals.copy()
            else:
                kept = np.zeros(self.config.horizon_s)
            self.rows[row] = kept
        return kept

    def _advance(self, second: int) -> None:
        size = self.config.horizon_s
        for row in self.rows:
            if row is None:
                continue
            if second - self.head >= size:
                row[:] = 0
            else:
                for start, stop in _wrapped(self.head + 1, second + 1, size):
                    row[start:stop] = 0
        self.head = second
        if self.is_clean(second):
            self.rows[BAD] = None

    def window(self, now: int, seconds: int) -> tuple[float, float]:
        """(total, bad) over the `seconds` seconds ending with `now`."""
        total, bad, _ = self.sums(now, seconds)
        return total, bad

    def sums(self, now: int, seconds: int) -> tuple[float, float, float]:
        """(total, bad, count) over the `seconds` seconds ending with `now`."""
        self._fold()
        if now > self.head:
            self._advance(now)
        spans = _wrapped(now - seconds + 1, now + 1, self.config.horizon_s)
        total, bad, count = (_sum(self.rows[row], spans) for row in (TOTAL, BAD, COUNT))
        return total, bad, count if self.rows[COUNT] is not None else total

    def evaluate(self, now: int) -> Finding | None:
        """The most severe window pair burning at `now`, if any."""
        if self.is_clean(now):
            return None
        config = self.config
        for window in sorted(config.windows, key=lambda w: -w.burn_rate):
            if self.first_active is None or now - self.first_active < window.long_s // 2:
                continue
            long_total, long_bad, long_count = self.sums(now, window.long_s)
            if long_count < config.min_events(window) or long_total <= 0:
                continue
            long_burn = long_bad / long_total / config.budget
            if long_burn < window.burn_rate:
                continue  # the short window cannot change the verdict
            short_total, short_bad, short_count = self.sums(now, window.short_s)
            if short_count < config.min_short_events or short_total <= 0:
                continue
            short_burn = short_bad / short_total / config.budget
            if short_burn >= window.burn_rate:
                return Finding(
                    window.severity,
                    "",
                    {
                        "burn_rate_long": round(long_burn, 2),
                        "burn_rate_short": round(short_burn, 2),
                        "window_long_s": window.long_s,
                        "window_short_s": window.short_s,
                        "threshold": window.burn_rate,
                        "bad_share_long": round(long_bad / long_total, 4),
                        "objective": config.objective,
                    },
                )
        return None


def sustained_level(burn: BurnRate, now: int, config: LevelConfig) -> Finding | None:
    """A bad share held over a window ending at `now`, part by part, and certainly over
    `bad_share`: about half over `window_s`, or a step over `step_window_s`
    (`LevelConfig`).

    Shares are of the amounts (viewer-seconds for latency); how certain a share is, is
    judged on the count of samples behind it."""
    if burn.is_clean(now):
        return None  # every part's share would be 0, under `min_part_share`
    level = _half(burn, now, config) or _step(burn, now, config)
    if level is None:
        return None
    details = {
        "bad_share": round(level.share, 4),
        "bad_share_parts": [round(share, 3) for share in level.shares],
        "window_s": level.window_s,
        "samples": int(level.samples),
    }
    return Finding(config.severity, "", details, kind="level")


class Level(NamedTuple):
    """The bad share of a window and the count of samples behind it, and those of each
    of its parts (oldest first)."""

    share: float
    samples: float
    shares: list[float]
    part_samples: list[float]
    window_s: int


def _half(burn: BurnRate, now: int, config: LevelConfig) -> Level | None:
    """About half, in the window and every part of it, whatever came before."""
    level = _measure(burn, now, config.window_s, config)
    if level is None or level.share < _about_half(level.samples, config):
        return None
    parts = zip(level.shares, level.part_samples, strict=True)
    return level if all(share >= _about_half(n, config) for share, n in parts) else None


def _step(burn: BurnRate, now: int, config: LevelConfig) -> Level | None:
    """A lower share held evenly over `step_window_s`, from a region that was healthy
    (a region without samples before it is judged on `_half` alone)."""
    level = _measure(burn, now, config.step_window_s, config)
    if level is None or min(level.shares) < config.part_share * level.share:
        return None
    total, bad, count = burn.sums(now - config.step_window_s, config.before_s)
    if count < config.min_bucket_samples or total <= 0:
        return None
    return level if bad / total <= config.step_ratio * level.share else None


def _measure(burn: BurnRate, now: int, window_s: int, config: LevelConfig) -> Level | None:
    """The level of the `window_s` ending at `now` if its share is certainly over
    `bad_share`; None as soon as a part has too few samples or too little bad (newest
    first: a healthy region stops at the first)."""
    part_s = config.window_s // config.buckets
    parts = []
    for i in range(window_s // part_s):
        total, bad, count = burn.sums(now - i * part_s, part_s)
        if count < config.min_bucket_samples or total <= 0 or bad < config.min_part_share * total:
            return None
        parts.append((total, bad, count))
    total = sum(total for total, _, _ in parts)
    count = sum(count for _, _, count in parts)
    share = sum(bad for _, bad, _ in parts) / total
    if share < config.bad_share + config.z * _error(config.bad_share, count):
        return None
    parts.reverse()
    shares = [bad / total for total, bad, _ in parts]
    return Level(share, count, shares, [n for _, _, n in parts], part_s * len(parts))


def _about_half(samples: float, config: LevelConfig) -> float:
    """The lowest share of `samples` not significantly under `config.half_share`."""
    lowest = config.half_share - config.half_z * _error(config.half_share, samples)
    return max(config.min_part_share, lowest)


def _error(share: float, samples: float) -> float:
    """The standard error of a share of `samples` at `share`."""
    return math.sqrt(share * (1 - share) / samples)


def stall_step(
    burn: BurnRate, now: int, config: StallStepConfig, stalled_viewers: int
) -> Finding | None:
    """A stall storm (`StallStepConfig`): the stalled share of watch time over the window
    ending at `now` at the budget or more, held in every part, a step up from the span
    before, with `stalled_viewers` (distinct, in the last minute) enough to be a storm."""
    if stalled_viewers < config.min_viewers or burn.is_clean(now):
        return None
    part_s = config.window_s // config.buckets
    parts = [burn.window(now - i * part_s, part_s) for i in range(config.buckets)]
    total = sum(watch for watch, _ in parts)
    if total < config.min_watch_s or total <= 0:
        return None
    share = sum(stalled for _, stalled in parts) / total
    if share < config.min_share:
        return None
    shares = [stalled / watch if watch > 0 else 0.0 for watch, stalled in reversed(parts)]
    if min(shares) < config.part_share * share:
        return None
    before, stalled_before = burn.window(now - part_s * config.buckets, config.before_s)
    if before < config.min_watch_s or before <= 0:
        return None
    if stalled_before > config.step_ratio * share * before:
        return None
    details = {
        "bad_share": round(share, 4),
        "bad_share_parts": [round(part, 4) for part in shares],
        "bad_share_before": round(stalled_before / before, 4),
        "window_s": part_s * config.buckets,
        "stalled_viewers": stalled_viewers,
    }
    return Finding(config.severity, "", details, kind="step")


def latency_finding(found: Finding, region: str, slo_ms: float) -> Finding:
    """A latency burn or level (detectors.slo) in one region as an alert.

    Both are of one kind for the alert's lifecycle: a level giving way to the burn it
    caused, or the reverse, is the same incident, not news to announce again (every
    long degradation used to page a second time as it ended)."""
    details = found.details
    if found.kind == "level":
        parts = details["bad_share_parts"]
        summary = (
            f"{details['bad_share']:.0%} of latency samples in {region} over {slo_ms:.0f} ms "
            f"for {details['window_s'] // 60} min (at least {min(parts):.0%} in every "
            f"{details['window_s'] // len(parts)} s)"
        )
        return Finding(found.severity, summary, {**details, "region": region, "slo_ms": slo_ms})
    summary = (
        f"{details['bad_share_long']:.0%} of latency samples in {region} over "
        f"{slo_ms:.0f} ms (burn {details['burn_rate_long']}x "
        f"over {details['window_long_s'] // 60} min)"
    )
    return Finding(found.severity, summary, {**details, "region": region, "slo_ms": slo_ms})


def stall_finding(found: Finding) -> Finding:
    """A stall burn or step (detectors.slo) as an alert: one kind, as for latency (a
    step giving way to the burn it led to is the same storm)."""
    details = found.details
    if found.kind == "step":
        summary = (
            f"stalls took {details['bad_share']:.1%} of watch time for "
            f"{details['window_s'] // 60} min (from {details['bad_share_before']:.2%} before; "
            f"{details['stalled_viewers']} viewers stalled in the last minute)"
        )
        return Finding(found.severity, summary, details)
    summary = (
        f"stalls took {details['bad_share_long']:.1%} of watch time "
        f"(burn {details['burn_rate_long']}x over {details['window_long_s'] // 60} min)"
    )
    return Finding(found.severity, summary, details)


def _sum(row: np.ndarray | None, spans: list[tuple[int, int]]) -> float:
    """A row's sum over the slices `spans` (0 without a row)."""
    if row is None:
        return 0.0
    return sum(float(row[start:stop].sum()) for start, stop in spans)


def _wrapped(first: int, stop: int, size: int) -> list[tuple[int, int]]:
    """Slices of a ring of `size` slots that hold the seconds [first, stop)."""
    start, end = first % size, (first % size) + (stop - first)
    return [(start, end)] if end <= size else [(start, size), (0, end - size)]
