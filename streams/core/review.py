"""The review of one promotion, from its room events: what it did to the room. Pure.

A promotion's `promo_start` and `promo_end` (room events, docs/events.md) mark three
phases of the room: *before* (the `BEFORE_S` seconds before the start, or since the
room was first seen when that is later), *during* (start to end) and *after* (the
`AFTER_S` seconds from the end). For each phase the review keeps the viewer-seconds,
chat messages, paid orders and GMV, from the room's totals at the phase bounds, so
nothing is counted per event here; from them come the interaction rate (chat messages
per viewer-hour) and the conversion (paid orders per viewer-hour).

The rest is bookkeeping per span of closed seconds (`observe`: a tick, or a quiet
room's catch-up, during which the number online does not change): the peak online
while it ran, the online viewers summed per `STEP_S` step after the end (the ebb
curve; online viewers go on rising a while after the end, so the decay is fitted by
`detectors.decay.fit_decay` from the curve's highest step on, when read) and the
retention of a cohort: the viewers online at `promo_end`, a deterministic bottom-k
sample of them by CRC-32 of the user id (at most `COHORT_MAX`, all of them in smaller
rooms), whose share still online `RETENTION_AFTER_S` later is taken once per mark.
Definitions: docs/metrics.md.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from detectors.decay import fit_decay

BEFORE_S: Final = 300
"""The level and the rates before a promotion: its start's last five minutes (what the
room's rings hold)."""
AFTER_S: Final = 3600
"""The after phase, the ebb curve and the retention marks run this long from the end."""
STEP_S: Final = 30
"""Steps of the ebb curve (mean online viewers per step)."""
MIN_FIT_STEPS: Final = 4
"""The ebb is fitted once this many steps after the end are closed (two minutes)."""
RETENTION_AFTER_S: Final = (600, 1800, 3600)
RETENTION_LABELS: Final = ("10m", "30m", "60m")
COHORT_MAX: Final = 512
"""Viewers followed after a promotion's end, at most: a bottom-k sample by CRC-32 (the
share's standard error stays under 2.3 points)."""
PHASES: Final = ("before", "during", "after")
# Amounts of a phase, in this order.
WATCH, DANMAKU, ORDERS, GMV = range(4)


def cohort_sample(users: Iterable[str], size: int = COHORT_MAX) -> list[str]:
    """The `size` users of smallest CRC-32 (ties by id): the same sample in any worker
    and any order of arrival, unlike Python's salted `hash`."""
    return sorted(heapq.nsmallest(size, users, key=lambda user: (zlib.crc32(user.encode()), user)))


@dataclass(slots=True)
class PromotionReview:
    """What is measured of one promotion; `figures` says it."""

    start_second: int | None
    """The second of its `promo_start` (None: only the end was seen)."""
    online_at_start: int | None
    before_seconds: int = 0
    """Length of the before phase (0: the room was first seen at the start)."""
    before: list[float] | None = None
    at_start: list[float] | None = None
    """Room totals (WATCH, DANMAKU, ORDERS, GMV) as the start's second opened."""
    peak: int = 0
    end_second: int | None = None
    online_at_end: int | None = None
    at_end: list[float] | None = None
    after: list[float] | None = None
    """The after phase's amounts once it is over (read from the totals until then)."""
    curve: list[float] = field(default_factory=list)
    """Viewer-seconds per `STEP_S` step from the end."""
    cohort: list[str] = field(default_factory=list)
    cohort_size: int = 0
    retained: list[float | None] = field(default_factory=list)
    through: int = -1
    """The newest closed second observed."""
    fitted: tuple[int, float | None, float | None] = field(default=(0, None, None), compare=False)
    """(steps fitted, half-life s, floor viewers): the fit of the first steps, kept."""

    @classmethod
    def start(
        cls, second: int, online: int, before_seconds: int, before: list[float], at: list[float]
    ) -> PromotionReview:
        return cls(second, online, before_seconds, before, at, peak=online, through=second - 1)

    def end(self, second: int, online: int, at: list[float], users: Iterable[str]) -> None:
        """Its `promo_end` at `second` (its earlier seconds closed), `users` online."""
        self.end_second, self.online_at_end, self.at_end = second, online, at
        self.peak = max(self.peak, online)
        self.curve = [0.0] * (AFTER_S // STEP_S)
        self.cohort = cohort_sample(users)
        self.cohort_size = len(self.cohort)
        self.retained = [None] * len(RETENTION_AFTER_S)
        self.through = second - 1

    @property
    def running(self) -> bool:
        return self.end_second is None

    @property
    def done(self) -> bool:
        """Over: nothing more to observe (the after phase has passed)."""
        return self.end_second is not None and self.through >= self.end_second + AFTER_S - 1

    def observe(
        self, first: int, last: int, online: int, totals: Sequence[float], present: Container[str]
    ) -> None:
        """Seconds `first` to `last` closed with `online` viewers each (`present`: who);
        `totals`: the room's (WATCH, DANMAKU, ORDERS, GMV) totals as of `last`."""
        first = max(first, self.through + 1)
        if last < first:
            return
        self.through = last
        end = self.end_second
        if end is None:
            self.peak = max(self.peak, online)
            return
        over = end + AFTER_S - 1
        low, high = max(first, end), min(last, over)
        if low > high:
            return
        step = (low - end) // STEP_S
        while low <= high:
            step_last = min(end + (step + 1) * STEP_S - 1, high)
            self.curve[step] += online * (step_last - low + 1)
            low, step = step_last + 1, step + 1
        for index, after in enumerate(RETENTION_AFTER_S):
            mark = end + after - 1
            if first <= mark <= last and self.retained[index] is None and self.cohort_size:
                still = sum(1 for user in self.cohort if user in present)
                self.retained[index] = still / self.cohort_size
        if first <= over <= last:
            at_over = list(totals)
            at_over[WATCH] -= online * (last - over)  # viewer-seconds up to `over` only
            self.after = _minus(at_over, self.at_end or at_over)
            self.cohort = []  # followed no more: its memory goes

    def figures(self, totals: Sequence[float], closed: int) -> dict[str, float | None]:
        """The review as of closed second `closed`, the room's totals as they stand."""
        before = self.before if self.before_seconds else None
        pre_level = before[WATCH] / self.before_seconds if before is not None else None
        if self.at_start is None:
            during = None
        elif self.at_end is None:
            during = _minus(totals, self.at_start)
        else:
            during = _minus(self.at_end, self.at_start)
        after = self.after
        if after is None and self.at_end is not None:
            after = _minus(totals, self.at_end)
        half_life, floor = self._fit(closed)
        floor_ratio = None
        if floor is not None and pre_level is not None and pre_level >= 1:
            floor_ratio = floor / pre_level
        out: dict[str, float | None] = {
            "promotion_active": 1.0 if self.running else 0.0,
            "promotion_viewers_before": pre_level,
            "promotion_viewers_start": _number(self.online_at_start),
            "promotion_viewers_peak": self._peak(closed),
            "promotion_viewers_end": _number(self.online_at_end),
            "promotion_ebb_half_life_seconds": half_life,
            "promotion_floor_viewers": floor,
            "promotion_floor_ratio": floor_ratio,
        }
        for label, share in zip(RETENTION_LABELS, self.retained or [None] * 3, strict=True):
            out[f"promotion_retention_{label}"] = share
        for phase, amounts in zip(PHASES, (before, during, after), strict=True):
            out.update(_phase_figures(phase, amounts))
        return out

    def _fit(self, closed: int) -> tuple[float | None, float | None]:
        end = self.end_second
        if end is None:
            return None, None
        steps = min((min(closed, self.through) - end + 1) // STEP_S, len(self.curve))
        if steps < MIN_FIT_STEPS:
            return None, None
        if self.fitted[0] != steps:
            values = np.asarray(self.curve[:steps], dtype=np.float64) / STEP_S
            top = int(np.argmax(values))  # online keeps rising a while after the end
            fit = fit_decay(values[top:], STEP_S) if steps - top >= MIN_FIT_STEPS else None
            self.fitted = (steps, *(fit if fit is not None else (None, None)))
        return self.fitted[1], self.fitted[2]

    def _peak(self, closed: int) -> float | None:
        """The most online: any closed second while it ran, or a step's mean after it."""
        if self.start_second is None and self.end_second is None:
            return None
        peak = float(self.peak)
        if self.end_second is not None:
            steps = min(
                (min(closed, self.through) - self.end_second + 1) // STEP_S, len(self.curve)
            )
            if steps > 0:
                peak = max(peak, max(self.curve[:steps]) / STEP_S)
        return peak


def _phase_figures(phase: str, amounts: list[float] | None) -> dict[str, float | None]:
    if amounts is None:
        return dict.fromkeys(
            f"promotion_{name}_{phase}"
            for name in ("watch_seconds", "danmaku", "orders", "gmv", "interaction", "conversion")
        )
    hours = amounts[WATCH] / 3600
    return {
        f"promotion_watch_seconds_{phase}": amounts[WATCH],
        f"promotion_danmaku_{phase}": amounts[DANMAKU],
        f"promotion_orders_{phase}": amounts[ORDERS],
        f"promotion_gmv_{phase}": amounts[GMV],
        f"promotion_interaction_{phase}": amounts[DANMAKU] / hours if hours else None,
        f"promotion_conversion_{phase}": amounts[ORDERS] / hours if hours else None,
    }


def _minus(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def _number(value: int | None) -> float | None:
    return None if value is None else float(value)


REVIEW_METRICS: Final = (
    *PromotionReview(None, None).figures([0.0] * 4, 0),
    "promotion_start_ts",
    "promotion_end_ts",
)
"""Names of the review's snapshot metrics (`RoomState.promotion_metrics`)."""
