"""All detector settings in one typed, documented place (defaults: docs/detectors.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.alerts import LifecycleConfig
from detectors.cliff import CliffConfig
from detectors.ebb import EbbConfig
from detectors.slo import BurnWindow, SloConfig
from detectors.spam import SpamConfig


def _stall_slo() -> SloConfig:
    # Amounts are seconds: watch time, and stall time within it. 99% of watch time
    # unstalled; the volume gates are viewer-seconds (10 viewers for the short window).
    return SloConfig(
        objective=0.99,
        windows=(
            BurnWindow(120, 10, 14.4, "critical"),
            BurnWindow(720, 60, 6.0, "warning"),
        ),
        min_long_events=1200,
        min_short_events=100,
    )


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    cliff: CliffConfig = field(default_factory=CliffConfig)
    spam: SpamConfig = field(default_factory=SpamConfig)
    latency_slo: SloConfig = field(default_factory=SloConfig)
    """Share of e2e latency samples at or under the latency SLO (600 ms), per room and region."""
    stall_slo: SloConfig = field(default_factory=_stall_slo)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    ebb: EbbConfig = field(default_factory=EbbConfig)
    fresh_account_s: int = 30
    """A chatter first seen in the room this recently counts as a fresh account."""
    promotion_lookback_s: int = 1800
    """A peak this recent, well above the current level, is hinted as a promotion that ended."""
