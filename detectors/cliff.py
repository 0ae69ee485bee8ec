"""Traffic cliffs: a sudden large fall of online viewers, entries or all activity.

Each signal's short-horizon level (the last `short_s`) is compared with what
its recent past predicts: a log-linear trend fitted over `baseline_s` ending
`gap_s` ago and extrapolated to now. The trend is clamped: it never predicts
growth, and never a decay faster than a `min_half_life_s` half-life. So the
normal post-promotion ebb (exponential, half-lives of many minutes) is
predicted and does not fire, while a fall much faster than any ebb does.
Small rooms are gated out (Conviva's alerts need 25 plays per interval), and
count signals must also fall significantly for a Poisson process (z >= 4).
Entries whose fall is not significant on its own still make a cliff mid-show
when one traffic channel that brought a good share of them collapsed to near
nothing (`_channel_collapse`): its share significantly under what it was, or its
count significantly under its part of the trend while its share fell too: a feed cut
in a room of a few hundred viewers.

While a cliff is active the prediction at its start is kept as the reference:
the alert clears when the level recovers to `recover_ratio` of it, or after
`settle_after_s` when the lower level has become the room's new normal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

from detectors.alerts import Finding
from detectors.config import CliffConfig, Severity

SIGNALS: Final = ("online", "entries", "activity")
CHANNEL_RECENT_S: Final = 15
"""A traffic channel's share of entries in the last seconds of a cliff..."""
CHANNEL_BEFORE_S: Final = 240
"""...against its share over the minutes before them (`channel_hints`)."""
_SQUARED_NORMAL_MEDIAN: Final = 0.455
"""The median of the square of a standard normal (chi-squared, one degree of freedom)."""
CHANNEL_SHARE_P: Final = 0.05
"""A channel's count far under its part of the trend makes a cut only when its share
fell too, this unlikely for entries keeping their shares (`_channel_collapse`): the
room's swings move every channel together and leave shares as they were."""


@dataclass(frozen=True, slots=True)
class CliffReading:
    signal: str
    observed: float
    expected: float

    @property
    def drop(self) -> float:
        return 1.0 - self.observed / self.expected if self.expected > 0 else 0.0


@dataclass
class CliffDetector:
    """One room's signal history at `step_s` resolution and its cliff state."""

    config: CliffConfig = field(default_factory=CliffConfig)
    steps: int = 0
    history: npt.NDArray[np.float64] = field(init=False)
    """Rows: online (mean over the step), entries, events; columns: steps, oldest first."""
    active_since: int | None = None
    reference: dict[str, float] = field(default_factory=dict)
    usual: npt.NDArray[np.float64] = field(init=False)
    """Entries per `count_bucket_s` over `usual_s`, a ring (complete buckets only)."""
    bucket_entries: float = 0.0
    """Entries of the bucket being filled."""
    channels: npt.NDArray[np.float64] | None = None
    """Entries per traffic channel (rows) per step (columns, oldest first), once given."""
    channel_usual: npt.NDArray[np.float64] | None = None
    """Entries per traffic channel (rows) per `count_bucket_s` over `usual_s`, a ring as
    `usual` (columns); the last column holds the bucket being filled."""

    def __post_init__(self) -> None:
        c = self.config
        self.span = (c.baseline_s + c.gap_s) // c.step_s
        self.history = np.zeros((len(SIGNALS), self.span))
        self.usual = np.zeros(c.usual_s // c.count_bucket_s)

    def observe(
        self, online: float, entries: float, events: float, channels: Sequence[float] = ()
    ) -> None:
        """One step's values: mean online viewers, entries and events in the step, and
        the entries by traffic channel when known."""
        c = self.config
        self.history[:, :-1] = self.history[:, 1:]  # numpy copies overlapping slices safely
        self.history[:, -1] = (online, entries, events)
        self.steps += 1
        bucket_steps = c.count_bucket_s // c.step_s
        if channels:
            if self.channels is None or len(self.channels) != len(channels):
                self.channels = np.zeros((len(channels), self.span))
                self.channel_usual = np.zeros((len(channels), len(self.usual) + 1))
            assert self.channel_usual is not None
            self.channels[:, :-1] = self.channels[:, 1:]
            self.channels[:, -1] = channels
            self.channel_usual[:, -1] += channels
            if self.steps % bucket_steps == 0:
                slot = (self.steps // bucket_steps) % len(self.usual)
                self.channel_usual[:, slot] = self.channel_usual[:, -1]
                self.channel_usual[:, -1] = 0.0
        self.bucket_entries += entries
        if self.steps % bucket_steps == 0:
            self.usual[(self.steps // bucket_steps) % len(self.usual)] = self.bucket_entries
            self.bucket_entries = 0.0

    def _usual_entries(self) -> float | None:
        """The room's usual entries per `short_s`: the median bucket over `usual_s`, once
        a third of it has been seen."""
        held = self._seen_buckets()
        if held is None:
            return None
        return float(np.median(held)) * self.config.short_s / self.config.count_bucket_s

    def _seen_buckets(self) -> npt.NDArray[np.float64] | None:
        """Complete entries buckets over `usual_s`, oldest first, once a third of it has
        been seen."""
        c = self.config
        completed = self.steps * c.step_s // c.count_bucket_s
        buckets = min(completed, len(self.usual))
        if buckets < len(self.usual) // 3:
            return None
        newest = completed % len(self.usual)
        return np.roll(self.usual, -newest - 1)[-buckets:]

    def _as_judged(self, reading: CliffReading) -> tuple[CliffReading, float]:
        """The reading as judged, and the drop that makes it a cliff.

        Entries ease after every opening rush and every promotion: that is the ebb,
        not a feed cut. So in the stream's opening entries must collapse, after a
        surge they are compared with the room's usual level rather than the surge's,
        and mid-show they must fall further (`entries_drop`) than the audience does
        to be a cliff on their own."""
        c = self.config
        if reading.signal == "activity":
            return reading, c.activity_drop
        if reading.signal != "entries":
            return reading, c.drop_warning
        if self.steps * c.step_s < c.opening_s:
            return reading, c.entries_collapse
        usual = self._usual_entries()
        if usual is not None and reading.expected >= c.surge_ratio * usual:
            return CliffReading(reading.signal, reading.observed, usual), c.entries_drop
        return reading, c.entries_drop

    def readings(self) -> list[CliffReading]:
        """Observed vs expected level of every signal the baseline supports."""
        c = self.config
        short = c.short_s // c.step_s
        gap = c.gap_s // c.step_s
        held = min(self.steps, self.span)
        if held - gap < (self.span - gap) // 2:  # not enough past yet
            return []
        base = self.history[:, self.span - held : self.span - gap]
        max_slope = math.log(2) / c.min_half_life_s * c.step_s
        # Steps from the baseline's last step to the middle of the short window.
        ahead = gap - (short - 1) / 2
        out = []
        for row, signal in enumerate(SIGNALS):
            # Counts are fitted on 30 s sums: logs of small counts are too noisy.
            bucket = 1 if signal == "online" else c.count_bucket_s // c.step_s
            expected = _predict(base[row], ahead, max_slope, bucket) * short
            out.append(CliffReading(signal, float(self.history[row, -short:].sum()), expected))
        return out

    def evaluate(self, second: int) -> Finding | None:
        c = self.config
        short = c.short_s // c.step_s
        readings = {r.signal: r for r in self.readings()}
        if not readings:
            return None
        if self.active_since is not None:
            for reading in readings.values():  # a signal that falls later joins in
                judged = self._judged_cliff(reading, short)
                if reading.signal not in self.reference and judged is not None:
                    self.reference[reading.signal] = judged.expected
            recovered = all(
                readings[s].observed >= c.recover_ratio * ref for s, ref in self.reference.items()
            )
            if recovered or second - self.active_since >= c.settle_after_s:
                self.active_since = None
                self.reference = {}
                return None
            falling = [
                CliffReading(s, readings[s].observed, ref) for s, ref in self.reference.items()
            ]
            return _finding(falling, c, short, self._fell_within_s(falling))
        falling = [
            judged
            for judged in (self._judged_cliff(r, short) for r in readings.values())
            if judged is not None
        ]
        if not falling:
            return None
        self.active_since = second
        self.reference = {r.signal: r.expected for r in falling}
        return _finding(falling, c, short, self._fell_within_s(falling))

    def _fell_within_s(self, falling: list[CliffReading]) -> int:
        """About how long ago the worst signal was last near (80% of) its expected level."""
        c = self.config
        short = c.short_s // c.step_s
        worst = max(falling, key=lambda r: r.drop)
        row = self.history[SIGNALS.index(worst.signal)]
        # Rolling sums over the short window, newest last.
        sums = np.convolve(row[-(self.span) :], np.ones(short), mode="valid")
        near = np.nonzero(sums >= 0.8 * worst.expected)[0]
        steps_ago = len(sums) - 1 - int(near[-1]) if len(near) else len(sums)
        return int(steps_ago * c.step_s + c.short_s)

    def _judged_cliff(self, reading: CliffReading, short: int) -> CliffReading | None:
        """The reading as judged (`_as_judged`) when it is a cliff, else None."""
        c = self.config
        entries = reading.signal == "entries"
        least = c.activity_drop if reading.signal == "activity" else c.drop_warning
        if reading.drop < (c.channel_share / 2 if entries else least):
            return None  # the common case, before any judging
        reading, threshold = self._as_judged(reading)
        if reading.signal == "online":
            large = reading.drop >= threshold
            return reading if large and reading.expected / short >= c.min_online else None
        expected = reading.expected
        spread = expected * (self._dispersion() if entries else 1.0)
        significant = expected - reading.observed >= c.z * math.sqrt(spread)
        if reading.drop >= threshold and expected >= c.min_short_count and significant:
            return reading
        if entries and self._channel_cut(reading, short):
            return reading
        return None

    def _dispersion(self) -> float:
        """How many times a Poisson count's variance the room's entries per bucket show
        over `usual_s`, at least 1: rooms whose entries swing with the show (hype, a
        host's call to action, promotions coming and going) need a larger fall to be
        significant. Estimated from the changes between consecutive 30 s buckets, by their
        median (a Poisson count of a slowly moving rate changes by a normal of variance
        twice its mean; the median of a squared normal is 0.455 of its variance), so the
        few steps of a promotion starting or ending do not count."""
        held = self._seen_buckets()
        if held is None:
            return 1.0
        mean = float(held.mean())
        if mean <= 0:
            return 1.0
        changes = np.diff(held)
        return max(1.0, float(np.median(changes * changes)) / (_SQUARED_NORMAL_MEDIAN * 2 * mean))

    def _channel_cut(self, reading: CliffReading, short: int) -> bool:
        """Entries fell because a traffic channel was cut (`_channel_collapse`): by at
        least half that channel's share below their trend (the other channels did not
        make up its loss), and under the room's usual level (a surge easing back, even
        one too small to be judged as a surge, does not; a promotion's raised level
        losing its feed falls under it, though not always `drop_warning` under it)."""
        collapsed = self._channel_collapse(reading.expected / short)
        if collapsed is None:
            return False
        _, share = collapsed
        usual = self._usual_entries()
        below_usual = usual is None or reading.observed <= usual
        return reading.drop >= share / 2 and below_usual

    def _channel_collapse(self, expected_per_step: float) -> tuple[int, float] | None:
        """The traffic channel whose share of entries collapsed, if one did: (row, its
        share over the baseline). `expected_per_step`: the entries the trend predicts
        per step.

        Mid-show (after `opening_s`), a channel that brought at least `channel_share`
        of the entries over the baseline, and less than `surge_ratio` times its share
        over `usual_s` (a channel that surged, as a promotion's campaign, may end at
        once: that is its ebb), and still half that share in the baseline's last
        `short_s` (there until `gap_s` ago), brought under (1 - `entries_collapse`)
        of that share over the last `short_s` to `gap_s`, and so few that entries
        keeping their shares give that few with probability under the `z` test's
        (3e-5 at z = 4; binomial, given the entries seen). A feed cut: the room's
        total falls only by that channel's share, too little to be significant in a
        room of a few hundred viewers, while the channel went to nothing. Shares are
        judged first: the swings every room's traffic has move all channels together
        and leave their shares as they were. But a cut also takes entries away, so the
        share test sees few of them: 0 of 7 entries from a channel that brought 60%
        is only 2e-3 likely, though 17 were due from it. So the channel's count is
        judged against its part of the trend as well (Poisson, at the same `z`) when
        its share fell too (`CHANNEL_SHARE_P`): a swing does not do both."""
        c = self.config
        if self.channels is None or self.steps * c.step_s < c.opening_s:
            return None
        short = c.short_s // c.step_s
        gap = c.gap_s // c.step_s
        held = min(self.steps, self.span)
        before = self.channels[:, self.span - held : self.span - gap].sum(axis=1)
        last = self.channels[:, self.span - gap - short : self.span - gap].sum(axis=1)
        if before.sum() <= 0 or last.sum() <= 0:
            return None
        shares = before / before.sum()
        last_shares = (last / last.sum()).tolist()
        assert self.channel_usual is not None
        usual = self.channel_usual[:, :-1].sum(axis=1)
        usual_shares = (usual / max(float(usual.sum()), 1.0)).tolist()
        for row, share in enumerate(shares.tolist()):
            if share < c.channel_share or share >= c.surge_ratio * usual_shares[row]:
                continue  # a minor channel, or one surging (a campaign ending is no cut)
            if last_shares[row] < share / 2:
                continue  # gone before the last `gap_s`: not a cut now
            if self._gone(row, share, expected_per_step):
                return row, share
        return None

    def _gone(self, row: int, share: float, expected_per_step: float) -> bool:
        """The channel of `row` went under (1 - `entries_collapse`) of its `share`
        lately, significantly (`_channel_collapse`). It may have been cut up to `gap_s`
        ago: the longer it has been gone, the more entries show it."""
        c, channels = self.config, self.channels
        assert channels is not None
        p_max = 0.5 * math.erfc(c.z / math.sqrt(2))
        for steps in range(c.short_s // c.step_s, c.gap_s // c.step_s + 1):
            recent = channels[:, -steps:].sum(axis=1)
            seen, observed = round(float(recent.sum())), float(recent[row])
            if observed > (1 - c.entries_collapse) * share * seen:
                return False  # the channel was still there
            by_share = _binomial_at_most(round(observed), seen, share)
            if by_share <= p_max:
                return True
            due = share * expected_per_step * steps
            if (
                by_share <= CHANNEL_SHARE_P
                and observed <= (1 - c.entries_collapse) * due
                and _poisson_at_most(round(observed), due) <= p_max
            ):
                return True
        return False


def _binomial_at_most(count: int, trials: int, p: float) -> float:
    """P(X <= count) for X ~ Binomial(trials, p)."""
    if p >= 1.0:
        return 1.0 if count >= trials else 0.0
    term = total = (1.0 - p) ** trials
    for k in range(count):
        term *= (trials - k) / (k + 1) * p / (1.0 - p)
        total += term
    return min(total, 1.0)


def _poisson_at_most(count: int, mean: float) -> float:
    """P(X <= count) for X ~ Poisson(mean)."""
    term = total = math.exp(-mean)
    for k in range(count):
        term *= mean / (k + 1)
        total += term
    return min(total, 1.0)


def _predict(values: npt.NDArray[np.float64], ahead: float, max_slope: float, bucket: int) -> float:
    """Per-step level the log-linear trend of `values` predicts `ahead` steps past their end."""
    usable = len(values) - len(values) % bucket
    if usable <= 0:
        return 0.0
    sums = values[len(values) - usable :].reshape(-1, bucket).sum(axis=1) / bucket
    y = np.log1p(sums)
    slope, x_mean = 0.0, 0.0
    if len(y) > 1:
        # Least squares in closed form (np.polyfit costs more than all the rest).
        centred, x_mean, spread = _design(len(y), bucket)
        slope = float(centred @ y) / spread
    slope = min(0.0, max(-max_slope, slope))
    intercept = float(y.mean()) - slope * x_mean
    return math.expm1(intercept + slope * ahead)


@lru_cache(maxsize=32)
def _design(points: int, bucket: int) -> tuple[npt.NDArray[np.float64], float, float]:
    """Centred x (steps from the end), its mean and its sum of squares."""
    x = (np.arange(points) - (points - 1)) * bucket - (bucket - 1) / 2
    centred = x - x.mean()
    return centred, float(x.mean()), float(centred @ centred)


def _finding(
    falling: list[CliffReading], config: CliffConfig, short: int, within_s: int
) -> Finding:
    worst = max(falling, key=lambda r: r.drop)
    severity: Severity = "critical" if worst.drop >= config.drop_critical else "warning"
    silent = any(r.signal == "activity" and r.observed == 0 for r in falling)
    parts = []
    details: dict[str, object] = {
        "signals": {},
        "window_s": config.short_s,
        "silent": silent,
        "fell_within_s": within_s,
    }
    for r in sorted(falling, key=lambda r: SIGNALS.index(r.signal)):
        if r.signal == "online":
            observed, expected = r.observed / short, r.expected / short
            parts.append(f"online viewers {observed:,.0f} vs {expected:,.0f} expected")
        else:
            observed, expected = r.observed, r.expected
            what = "entries" if r.signal == "entries" else "events"
            parts.append(f"{what} {observed:,.0f}/{config.short_s}s vs {expected:,.0f} expected")
        details["signals"][r.signal] = {  # type: ignore[index]
            "observed": round(observed, 2),
            "expected": round(expected, 2),
            "drop": round(r.drop, 3),
        }
    lead = (
        f"room went silent within {within_s}s"
        if silent
        else f"traffic fell {round(worst.drop, 3):.0%} within {within_s}s"  # as its details say
    )
    return Finding(severity, f"{lead}: " + "; ".join(parts), details, kind=_kind(falling, silent))


def _kind(falling: list[CliffReading], silent: bool) -> str:
    """'silent', 'fall' (the audience: online viewers or all events) or 'entries' (only
    entries: a feed cut, which may turn into an audience leaving, news to announce)."""
    if silent:
        return "silent"
    return "entries" if all(r.signal == "entries" for r in falling) else "fall"


def qoe_hint(latency_p95_s: float | None, stall_ratio: float | None) -> str:
    """A cliff while playback quality degrades: viewers may be leaving a bad stream."""
    return (
        f"QoE degrading too: latency p95 {latency_p95_s or 0:.2f} s, stall ratio "
        f"{stall_ratio or 0:.1%} over the last minute"
    )


def channel_hints(
    channels: Sequence[str], before: Sequence[float], recent: Sequence[float]
) -> list[str]:
    """Traffic channels whose share of entries collapsed: one channel cut off (a feed
    stopped sending viewers), not the whole room falling. `before` and `recent` are
    entries per channel over `CHANNEL_BEFORE_S` and the last `CHANNEL_RECENT_S`."""
    if not (sum(before) and sum(recent)):
        return []
    hints = []
    for channel, earlier, now in zip(channels, before, recent, strict=True):
        share_before, share_now = earlier / sum(before), now / sum(recent)
        if share_before >= 0.2 and share_now <= 0.4 * share_before:
            hints.append(
                f"traffic source '{channel}' collapsed: {share_before:.0%} of entries "
                f"before, {share_now:.0%} in the last {CHANNEL_RECENT_S}s"
            )
    return hints
