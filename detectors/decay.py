"""An exponential decay towards a floor, fitted: the shape of a post-promotion ebb.

online(t) = floor + amplitude * 2^(-t / half_life). For each half-life on a log grid
the model is linear in (floor, amplitude), solved by least squares for all half-lives
at once; the best one wins. Shared by the live ebb estimate (`detectors.ebb`) and the
promotion review (`streams.core.review`); pure numpy, so it imports nothing of ours.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_HALF_LIVES = np.geomspace(30.0, 7200.0, 64)


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
