"""Per-partition event-time state: the pure core both drivers feed.

Events are buffered until the partition's watermark (highest event time seen
minus the allowed lateness) passes them, then applied in event-time order, so the
arrival order inside the lateness bound does not change any result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from streams.events import EVENT_TYPES, Event, Join, Leave


@dataclass(frozen=True, slots=True)
class EngineConfig:
    allowed_lateness_ms: int = 5_000
    """Events up to this far behind the partition's newest event are reordered."""
    max_clock_skew_ms: int = 86_400_000
    """Events further than this from the partition's event clock are rejected."""


@dataclass(slots=True)
class RoomState:
    online: dict[str, int] = field(default_factory=dict)
    """Viewers present now: user_id -> event time of their join."""
    peak_online: int = 0


class PartitionEngine:
    """State of the rooms of one partition (co-partitioned across all topics)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.rooms: dict[str, RoomState] = {}
        self.event_clock: int | None = None
        """Highest event time accepted so far."""
        self.watermark: int | None = None
        """Every event at or before this time has been applied."""
        self._pending: list[Event] = []
        self.late = 0

    def ingest(self, events: list[Event], now_ms: int | None = None) -> list[int]:
        """Take a batch in arrival order; return the positions of events rejected
        as far off the clock.

        Each event is judged against the clock as it stood when that event
        arrived, so splitting the input into batches of any size gives the same
        lateness verdicts and the same order of application. An event more than
        `max_clock_skew_ms` behind the clock, or ahead of both the clock and
        `now_ms` (the wall clock, live mode only), is rejected: one absurd
        timestamp must not drag the clock along.
        """
        skew = self.config.max_clock_skew_ms
        lateness = self.config.allowed_lateness_ms
        out_of_bounds: list[int] = []
        clock = self.event_clock
        for position, event in enumerate(events):
            ts = event.ts
            if clock is None or ts > clock:
                if clock is not None and ts - max(clock, now_ms or clock) > skew:
                    out_of_bounds.append(position)
                    continue
                clock = ts
            elif clock - ts > skew:
                out_of_bounds.append(position)
                continue
            elif ts <= clock - lateness:
                # Late: whatever was released before it arrived is applied first.
                self._release(clock - lateness)
                self.late += 1
                self._apply([event])
                continue
            self._pending.append(event)
        self.event_clock = clock
        if clock is not None:
            self._release(clock - lateness)
        return out_of_bounds

    def advance_idle(self, idle_ms: int) -> None:
        """Let event time pass while no events arrive (live mode only)."""
        if self.event_clock is not None:
            self.event_clock += idle_ms
            self._release(self.event_clock - self.config.allowed_lateness_ms)

    def flush(self) -> None:
        """Apply everything buffered: the input has ended."""
        if self._pending:
            self._release(max(e.ts for e in self._pending))

    def _release(self, watermark: int) -> None:
        if self.watermark is not None and watermark <= self.watermark:
            return
        self.watermark = watermark
        ready = [e for e in self._pending if e.ts <= watermark]
        if ready:
            self._pending = [e for e in self._pending if e.ts > watermark]
            ready.sort(key=_application_order)
            self._apply(ready)

    def _apply(self, events: list[Event]) -> None:
        rooms = self.rooms
        for event in events:
            if isinstance(event, Join):
                room = rooms.get(event.room_id)
                if room is None:
                    room = rooms[event.room_id] = RoomState()
                room.online.setdefault(event.user_id, event.ts)
                room.peak_online = max(room.peak_online, len(room.online))
            elif isinstance(event, Leave):
                room = rooms.get(event.room_id)
                if room is not None:
                    room.online.pop(event.user_id, None)


_TYPE_RANK: Final = {name: rank for rank, name in enumerate(EVENT_TYPES)}


def event_type(event: Event) -> str:
    return event.__struct_config__.tag  # type: ignore[return-value]


def _application_order(event: Event) -> tuple[int, int]:
    # Ties in event time are broken by type, not arrival: events of different
    # types come from different topics, whose interleaving Kafka does not fix.
    return event.ts, _TYPE_RANK[event_type(event)]
