"""The post-promotion ebb, measured: decay half-life and floor after a peak.

After a promotion peak, online viewers fall off roughly exponentially towards a
floor: online(t) = floor + (peak - floor) * 2^(-t / half_life). The fit runs on
the room's online history since the peak: for each half-life on a log grid the
model is linear in (floor, amplitude), solved by least squares for all
half-lives at once; the best one wins. The floor is compared with the level
before the promotion (the median of the 30 minutes before the peak, so a room's
own start-up ramp does not pass for one), so operators see how bad the
fall-off is and whether it is settling.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors.config import EbbConfig

_HALF_LIVES = np.geomspace(30.0, 7200.0, 64)


@dataclass(frozen=True, slots=True)
class EbbEstimate:
    peak_second: int
    peak: float
    pre_level: float
    half_life_s: float
    floor: float
    current: float

    @property
    def floor_ratio(self) -> float:
        """Floor relative to the pre-promotion level (1: back to before)."""
        return self.floor / self.pre_level if self.pre_level > 0 else math.inf

    @property
    def progress(self) -> float:
        """Share of the peak-to-floor fall already behind (1: settled)."""
        span = self.peak - self.floor
        return min(1.0, max(0.0, (self.peak - self.current) / span)) if span > 0 else 1.0


@dataclass
class EbbTracker:
    config: EbbConfig = field(default_factory=EbbConfig)
    history: npt.NDArray[np.float64] = field(init=False)
    steps: int = 0
    last_second: int = 0
    estimate: EbbEstimate | None = None

    def __post_init__(self) -> None:
        self.history = np.zeros(self.config.history_s // self.config.step_s)

    def observe(self, second: int, online: float) -> None:
        """Mean online viewers of the step ending at `second`."""
        self.history[:-1] = self.history[1:]  # numpy copies overlapping slices safely
        self.history[-1] = online
        self.steps += 1
        self.last_second = second
        if second % self.config.estimate_every_s < self.config.step_s:
            self.estimate = self._fit()

    def _fit(self) -> EbbEstimate | None:
        c = self.config
        held = min(self.steps, len(self.history))
        y = self.history[len(self.history) - held :]
        if held < 3:
            return None
        peak_index = int(np.argmax(y))
        peak = float(y[peak_index])
        pre_steps = c.pre_window_s // c.step_s
        before = y[max(0, peak_index - pre_steps) : peak_index]
        after = y[peak_index:]
        if len(before) < 10 or (len(after) - 1) * c.step_s < c.min_elapsed_s:
            return None
        pre_level = float(np.median(before))
        current = float(after[-3:].mean())
        if peak < c.min_peak or peak < c.min_rise * max(pre_level, 1.0) or current > 0.9 * peak:
            return None
        fitted = fit_decay(after, c.step_s)
        if fitted is None:
            return None
        half_life, floor = fitted
        if half_life < c.min_half_life_s:
            return None
        peak_second = self.last_second - (len(after) - 1) * c.step_s
        return EbbEstimate(peak_second, peak, pre_level, half_life, floor, current)


def fit_decay(values: npt.NDArray[np.float64], step_s: float) -> tuple[float, float] | None:
    """(half-life s, floor) of floor + amplitude * 2^(-t/half-life) fitted to `values`."""
    t = np.arange(len(values)) * step_s
    basis = np.exp2(-t[None, :] / _HALF_LIVES[:, None])  # half-lives x samples
    n = len(values)
    sum_e = basis.sum(axis=1)
    sum_ee = (basis * basis).sum(axis=1)
    sum_y = values.sum()
    sum_ey = basis @ values
    det = n * sum_ee - sum_e * sum_e
    with np.errstate(divide="ignore", invalid="ignore"):
        amplitude = (n * sum_ey - sum_e * sum_y) / det
        floor = (sum_y - amplitude * sum_e) / n
        residual = values[None, :] - floor[:, None] - amplitude[:, None] * basis
        sse = (residual * residual).sum(axis=1)
    valid = (det > 1e-9) & (amplitude > 0) & (floor >= 0) & np.isfinite(sse)
    if not valid.any():
        return None
    best = int(np.argmin(np.where(valid, sse, np.inf)))
    return float(_HALF_LIVES[best]), float(floor[best])


def ebb_hint(ebb: EbbEstimate) -> str:
    """A cliff soon after a promotion peak: the ebb explains a slow fall, not this one."""
    stamp = time.strftime("%H:%M", time.gmtime(ebb.peak_second))
    return (
        f"a promotion peak of {ebb.peak:,.0f} viewers at {stamp} UTC is ebbing "
        f"(half-life {ebb.half_life_s / 60:.1f} min, {floor_words(ebb.floor, ebb.pre_level)}): "
        "an ebb explains a slow fall, not one this fast"
    )


def floor_words(floor: float, pre_level: float) -> str:
    """The ebb's floor against the level before the promotion, in words that stay
    true when the room had (next to) no audience before it: a ratio to nothing is
    no measure."""
    if pre_level < 1:
        return f"floor {floor:,.0f} viewers, where there was no audience before"
    return f"floor {floor / pre_level:.1f}x the level before it"
