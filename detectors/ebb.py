"""The post-promotion ebb, measured: decay half-life and floor after a peak.

After a promotion peak, online viewers fall off roughly exponentially towards a
floor: online(t) = floor + (peak - floor) * 2^(-t / half_life). The fit
(`detectors.decay.fit_decay`) runs on the room's online history since the peak.
The floor is compared with the level before the promotion (the median of the 30
minutes before the peak, so a room's own start-up ramp does not pass for one), so
operators see how bad the fall-off is and whether it is settling.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors.config import EbbConfig
from detectors.decay import fit_decay


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
