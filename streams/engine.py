"""Per-partition event-time engine: the pure core both drivers feed.

Each event type comes from one source topic, and Kafka only orders events within
a topic-partition; the interleaving of topics depends on fetch sizes and timing.
So the watermark is the *slowest* active source's clock minus the allowed
lateness: an event is never overtaken by the watermark just because another
topic was fetched ahead of its own. Events wait for the watermark, are applied in
event-time order, and every closed second of event time is ticked in every room,
so results do not depend on batch boundaries, topic interleaving or replay speed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final

from detectors.config import DetectorSettings
from streams.events import EVENT_TYPES, Event, Latency
from streams.latency import LatencyStats
from streams.room import MetricsConfig, RoomState
from streams.watch import PartitionWatch

SOURCE_OF_TYPE: Final = {
    "join": "joins",
    "leave": "joins",
    "danmaku": "danmaku",
    "order": "orders",
    "stall": "stalls",
    "latency": "latency",
}
SOURCES: Final = ("joins", "danmaku", "orders", "stalls", "latency")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    allowed_lateness_ms: int = 5_000
    """Events up to this far behind their source's newest event are reordered."""
    max_clock_skew_ms: int = 86_400_000
    """Events further than this from the partition's event clock are rejected."""
    source_idle_ms: int = 60_000
    """Offline: a source this far behind the newest event no longer holds the watermark."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    detectors: DetectorSettings = field(default_factory=DetectorSettings)
    snapshot_every_s: int | None = None
    """Offline analysis: keep every room's metrics each this many seconds of event time."""


class PartitionEngine:
    """State of the rooms of one partition number (co-partitioned across topics)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.rooms: dict[str, RoomState] = {}
        self.event_clock: int | None = None
        """Highest event time accepted so far, in any source."""
        self.source_clocks: dict[str, int] = {}
        self.watermark: int | None = None
        """Every event at or before this time has been applied."""
        self.closed_second: int | None = None
        """Every room has been ticked up to this second."""
        self._pending: list[Event] = []
        self.late = 0
        self.latency = LatencyStats(self.config.metrics)
        self.watch = PartitionWatch(self.config.detectors, self.config.metrics.latency_slo_ms)
        self.snapshots: list[dict[str, Any]] = []
        """Outbox of metric snapshots (when `snapshot_every_s` is set), for the driver."""

    def ingest(
        self,
        events: list[Event],
        now_ms: int | None = None,
        lagging: Collection[str] | None = None,
    ) -> list[int]:
        """Take a batch in arrival order; return positions of events rejected as off the clock.

        `lagging` (live mode) names the sources with unconsumed input in this
        partition; the others are caught up and do not hold the watermark.
        Offline (None), a source holds it until it falls `source_idle_ms` behind.
        Each event is judged against the state as it stood when it arrived, so
        batch boundaries change nothing. An event more than `max_clock_skew_ms`
        behind the clock, or ahead of both the clock and `now_ms` (the wall clock,
        live mode), is rejected: one absurd timestamp must not drag the clock.
        """
        skew = self.config.max_clock_skew_ms
        lateness = self.config.allowed_lateness_ms
        out_of_bounds: list[int] = []
        clock = self.event_clock
        for position, event in enumerate(events):
            ts = event.ts
            if clock is not None and (clock - ts > skew or ts - max(clock, now_ms or clock) > skew):
                out_of_bounds.append(position)
                continue
            if clock is None or ts > clock:
                clock = self.event_clock = ts
            source = SOURCE_OF_TYPE[event_type(event)]
            source_clock = self.source_clocks.get(source)
            if (source_clock is not None and ts <= source_clock - lateness) or (
                self.watermark is not None and ts <= self.watermark
            ):
                # Late: counted and dropped. Judged against its own topic first,
                # whose order Kafka keeps, so the verdict does not depend on how
                # topics interleave.
                self.late += 1
                continue
            if source_clock is None or ts > source_clock:
                self.source_clocks[source] = ts
            self._pending.append(event)
            self._raise_watermark(lagging)
        self._release()
        return out_of_bounds

    def _raise_watermark(self, lagging: Collection[str] | None) -> None:
        clock = self.event_clock
        if clock is None:
            return
        if lagging is None:
            horizon = clock - self.config.source_idle_ms
            holding = [c for c in self.source_clocks.values() if c >= horizon]
        else:
            if any(s not in self.source_clocks for s in lagging):
                return  # a source with input we have not seen a single event of yet
            holding = [self.source_clocks[s] for s in lagging]
        self._raise_to(min(holding, default=clock) - self.config.allowed_lateness_ms)

    def _raise_to(self, candidate: int) -> None:
        """The watermark only moves forward."""
        if self.watermark is None or candidate > self.watermark:
            self.watermark = candidate

    def settle(self, lagging: Collection[str]) -> None:
        """Live mode, after a batch: let the watermark follow the sources still lagging."""
        self._raise_watermark(lagging)
        self._release()

    def advance_idle(self, idle_ms: int) -> None:
        """Live mode: event time passes while the partition receives nothing."""
        if self.event_clock is not None:
            self.event_clock += idle_ms
            self._raise_to(self.event_clock - self.config.allowed_lateness_ms)
            self._release()

    def flush(self) -> None:
        """Apply everything buffered: the input has ended."""
        if self._pending:
            self._raise_to(max(e.ts for e in self._pending))
        self._release()

    def _release(self) -> None:
        watermark = self.watermark
        if watermark is None:
            return
        pending = self._pending
        if pending and min(e.ts for e in pending) <= watermark:
            ready = sorted((e for e in pending if e.ts <= watermark), key=_application_order)
            self._pending = [e for e in pending if e.ts > watermark]
            for event in ready:
                self._tick_until(event.ts // 1000 - 1)
                self._apply(event)
        self._tick_until((watermark + 1) // 1000 - 1)

    def _tick_until(self, second: int) -> None:
        closed = self.closed_second
        if closed is None:
            self.closed_second = second
            return
        if second <= closed:
            return
        if not self.rooms:
            self._skip_to(second)
            return
        for tick in range(closed + 1, second + 1):
            self.latency.advance(tick)
            for room in self.rooms.values():
                room.tick(tick)
                self.watch.tick(tick, room)
            every = self.config.snapshot_every_s
            if every and (tick + 1) % every == 0:
                self.snapshots += [
                    snapshot(room, (tick + 1) * 1000) for room in self.rooms.values()
                ]
            gone = [room_id for room_id, room in self.rooms.items() if room.is_gone(tick)]
            for room_id in gone:
                del self.rooms[room_id]
                self.watch.room_gone(room_id, tick)
            self.closed_second = tick
            if not self.rooms:
                self._skip_to(second)
                return

    def _skip_to(self, second: int) -> None:
        # No room to tick, but region latency windows must still empty out.
        self.latency.advance(second)
        self.closed_second = second

    def _apply(self, event: Event) -> None:
        room = self.rooms.get(event.room_id)
        if room is None:
            room = self.rooms[event.room_id] = RoomState(
                event.room_id, event.ts // 1000, self.config.metrics
            )
        self.watch.observe(event, room)
        room.apply(event)
        if isinstance(event, Latency):
            self.latency.add(event)


def snapshot(room: RoomState, ts: int) -> dict[str, Any]:
    """A room's metrics at `ts`: `<name>_1m`, `<name>_5m` and since-live `<name>_live`."""
    metrics: dict[str, float | None] = {}
    for seconds, label in ((60, "1m"), (300, "5m")):
        metrics.update({f"{name}_{label}": v for name, v in room.metrics(seconds).items()})
    metrics.update({f"{name}_live": v for name, v in room.totals_metrics().items()})
    return {"room_id": room.room_id, "ts": ts, "metrics": metrics}


_TYPE_RANK: Final = {name: rank for rank, name in enumerate(EVENT_TYPES)}


def event_type(event: Event) -> str:
    return event.__struct_config__.tag  # type: ignore[return-value]


def _application_order(event: Event) -> tuple[int, int]:
    # Ties in event time are broken by type, not arrival: events of different
    # types come from different topics, whose interleaving Kafka does not fix.
    return event.ts, _TYPE_RANK[event_type(event)]
