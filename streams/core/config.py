"""The core's configuration types: what the engine and each room are told.

Plain values only, so that `streams.settings` can build them without loading
the engine (defaults and meanings: docs/metrics.md, docs/deploy.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.config import DetectorSettings


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    session_timeout_s: int = 300
    """A viewer with no event for this long has left (no `leave` arrived)."""
    bounce_s: int = 10
    """Sessions shorter than this are bounces."""
    latency_slo_ms: float = 600.0
    room_idle_s: int = 900
    """A room with nobody online and no event for this long is dropped."""
    ended_grace_s: int = 300
    """A room whose stream ended (a room event `ended`) is dropped this long after it."""
    expiry_scan_every_s: int = 5


@dataclass(frozen=True, slots=True)
class EngineConfig:
    allowed_lateness_ms: int = 5_000
    """Events up to this far behind their source's newest event are reordered."""
    max_clock_skew_ms: int = 86_400_000
    """Events further than this from the partition's event clock are rejected."""
    max_future_ms: int = 300_000
    """Live: events further than this ahead of the wall clock are rejected."""
    max_jump_ms: int = 300_000
    """An event this far ahead of its partition's clock waits without moving it until
    the next event leaps too: one absurd timestamp must not make the rest late."""
    max_rooms: int = 25_000
    """Rooms a partition holds state for (the default fits 100,000 rooms on a worker
    owning four partitions); beyond it the least recently active empty rooms are
    evicted, and a new room is refused while every room held is live."""
    source_idle_ms: int = 60_000
    """Offline: a source this far behind the newest event no longer holds the watermark."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    detectors: DetectorSettings = field(default_factory=DetectorSettings)
    snapshot_every_s: int | None = None
    """Offline analysis: keep every room's metrics each this many seconds of event time."""
