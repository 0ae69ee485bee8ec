"""The event-time engine: a partition's rooms on event time, and the pipeline over partitions.

`PartitionEngine` is the state of the rooms of one partition number. Each event
type comes from one source topic, and Kafka only orders events within a
topic-partition; the interleaving of topics depends on fetch sizes and timing.
So the watermark is the *slowest* active source's clock minus the allowed
lateness: an event is never overtaken by the watermark just because another
topic was fetched ahead of its own. Events wait for the watermark, are applied in
event-time order, and every closed second of event time is ticked in every room,
so results do not depend on batch boundaries, topic interleaving or replay speed.

A sparse source (`SPARSE_SOURCES`: room events, a few per stream) would stall that
rule: its clock stays hours behind. Offline its clock never counts; live, only
while the driver names it lagging (input of it waiting to be processed). Its events
are still applied at their event time, in order with the others, and judged late
like any other. A room whose stream `ended` is watched no more (its alerts resolve
with `stream_ended`) and goes `ended_grace_s` later; a `live` after that `ended`
starts the room afresh.

`Pipeline` is the one processing path both drivers use: decode -> the
partition's engine -> counters. The Faust worker and backtest hand it batches of
one partition's input (Kafka messages, or the lines of a log), tell it how time
passes, and take what it has to say with `drain()`; neither does any processing
of its own nor reaches into the engines.
"""

from __future__ import annotations

import heapq
import operator
from collections import Counter
from collections.abc import Collection, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from detectors.alerts import Transition
from streams.core.config import EngineConfig
from streams.core.decode import (
    ROOM_BUDGET,
    TS_OUT_OF_BOUNDS,
    Decoded,
    RawMessage,
    Rejected,
    decode_log_lines,
    decode_messages,
)
from streams.core.events import (
    EVENT_TYPES,
    SOURCE_OF_CLASS,
    SOURCES,
    SPARSE_SOURCES,
    TYPE_OF_CLASS,
    Event,
    Latency,
    RoomEvent,
    Stall,
    event_type,
)
from streams.core.latency import LatencySamples, LatencyStats
from streams.core.room import RoomState
from streams.core.watch import PartitionWatch


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
        self._pending: dict[int, list[Event]] = {}
        """Events other than latency samples waiting for the watermark, by second."""
        self._pending_min: int | None = None
        """No event in `_pending` is older than this."""
        self._pending_latency: dict[int, list[Latency]] = {}
        """Latency samples by second, most of the traffic: they wait for their
        second to close and are then applied per room, after its other events."""
        self._holding_low: int | None = None
        """Offline: the slowest source clock still holding the watermark, when known."""
        self._ticking: dict[str, RoomState] = {}
        """Rooms ticked every second: those whose detectors have started."""
        self._wake_at: dict[str, int] = {}
        """The quiet rooms (all others), each with the second it must next be ticked
        at (`RoomState.next_change`); they are caught up to it then, or at their next
        event. Their upkeep follows their activity, not the seconds that pass."""
        self._wakes: list[tuple[int, str]] = []
        """A heap of (second, room) wake-ups; an entry whose second is no longer the
        room's in `_wake_at` is stale."""
        self._admitted: set[str] = set()
        """Rooms with events waiting for the watermark and no state yet: they count
        against the room budget from their first event."""
        self.late = 0
        self.evicted = 0
        """Rooms dropped to make room for new ones (see `_make_room`)."""
        self._leaping = False
        """The latest event leapt more than `max_jump_ms` ahead of the clock: it waits
        without moving the clock, and only the next event, leaping too, confirms the
        leap (a log resuming after a pause). One absurd timestamp moves nothing."""
        self.unconfirmed: list[Event] = []
        """Leaps never confirmed, taken out at the end of input (`flush`)."""
        self._full_at: int | None = None
        """The closed second at which every room held was found live: rooms only empty
        as event time passes, so the budget is not searched again before it does."""
        self.latency = LatencyStats(self.config.metrics)
        metrics = self.config.metrics
        self.watch = PartitionWatch(
            self.config.detectors,
            metrics.latency_slo_ms,
            session_linger_s=metrics.session_timeout_s + metrics.expiry_scan_every_s,
        )
        self.snapshots: list[dict[str, Any]] = []
        """Outbox of metric snapshots (when `snapshot_every_s` is set), for the driver."""

    def ingest(
        self,
        events: list[Event],
        now_ms: int | None = None,
        lagging: Collection[str] | None = None,
    ) -> list[tuple[int, str]]:
        """Take a batch in arrival order; return the positions of the events it refused,
        each with its reason: off the clock, or a new room over the room budget.

        `lagging` (live mode) names the sources with unconsumed input in this
        partition; the others are caught up and do not hold the watermark.
        Offline (None), a source holds it until it falls `source_idle_ms` behind;
        a sparse source (`SPARSE_SOURCES`) never does.
        Each event is judged against the state as it stood when it arrived, so
        batch boundaries change nothing. An event more than `max_clock_skew_ms`
        behind its source's newest event (the dense sources', for a source's first) is
        rejected (`_too_old`), and so is one ahead of `now_ms` (the wall
        clock, live mode) by more than `max_future_ms`, or offline ahead of the
        clock by more than `max_clock_skew_ms`: one absurd timestamp must not drag
        the clock and make the rest of the partition late. Neither can an event more
        than `max_jump_ms` ahead of the clock, unless the next one confirms the leap
        (`_leaping`) or, live, it is that close to the wall clock. An event of a room the
        partition has no state for is refused when `max_rooms` rooms are held and
        none can be evicted (`_make_room`).
        """
        skew, jump = self.config.max_clock_skew_ms, self.config.max_jump_ms
        far: bool | None = self._leaping or None
        horizon = _NO_HORIZON if now_ms is None else now_ms + self.config.max_future_ms
        # Live, a leap to within `max_jump_ms` of the wall clock needs no confirmation:
        # it is traffic resuming after a pause (a replay's old events are not recent).
        recent = _NO_HORIZON if now_ms is None else now_ms - jump
        lateness = self.config.allowed_lateness_ms
        idle = self.config.source_idle_ms
        refused: list[tuple[int, str]] = []
        source_clocks = self.source_clocks
        rooms, admitted, budget = self.rooms, self._admitted, self.config.max_rooms
        pending, pending_latency = self._pending, self._pending_latency
        source_of, sparse = SOURCE_OF_CLASS, SPARSE_SOURCES
        # The hot loop of every driver: state in locals, written back at the end.
        clock = self.event_clock
        watermark = self.watermark
        pending_min = self._pending_min
        low = self._holding_low
        late = 0
        # Live mode: the watermark follows the slowest lagging source, so only a
        # lagging source's clock can move it (any source's, when none lags), and
        # only when that source was the slowest (`slowest`: its clock, once known).
        live = None if lagging is None else frozenset(lagging)
        held_by = live or _ALL_SOURCES
        slowest: int | None = None
        for position, event in enumerate(events):
            ts = event.ts
            if ts > horizon:
                refused.append((position, TS_OUT_OF_BOUNDS))
                continue
            leap = False
            source = source_of[type(event)]
            source_clock = source_clocks.get(source)
            if clock is None:
                clock = ts
            elif ts > clock:
                if now_ms is None and ts - clock > skew:
                    refused.append((position, TS_OUT_OF_BOUNDS))
                    continue
                if ts - clock > jump and far is None and ts < recent:
                    far = leap = True  # held: it waits, and moves no clock
                else:
                    clock, far = ts, None
            elif source_clock - ts > skew if source_clock is not None else self._too_old(ts):
                # Behind its own source's newest event: see `_too_old` for why not the clock.
                refused.append((position, TS_OUT_OF_BOUNDS))
                continue
            if not leap:
                far = None  # an event near the clock: an earlier leap stays unconfirmed
            if (source_clock is not None and ts <= source_clock - lateness) or (
                watermark is not None and ts <= watermark
            ):
                # Late: counted and dropped. Judged against its own topic first,
                # whose order Kafka keeps, so the verdict does not depend on how
                # topics interleave.
                late += 1
                continue
            room_id = event.room_id
            if room_id not in rooms and room_id not in admitted:
                if len(rooms) + len(admitted) >= budget and not self._make_room():
                    refused.append((position, ROOM_BUDGET))
                    continue
                admitted.add(room_id)
            if isinstance(event, Latency):
                samples = pending_latency.get(ts // 1000)
                if samples is None:
                    pending_latency[ts // 1000] = [event]
                else:
                    samples.append(event)
            else:
                waiting = pending.get(ts // 1000)
                if waiting is None:
                    pending[ts // 1000] = [event]
                else:
                    waiting.append(event)
                if pending_min is None or ts < pending_min:
                    pending_min = ts
            if leap or (source_clock is not None and ts <= source_clock):
                continue  # only a source clock that moved can move the watermark
            source_clocks[source] = ts
            if lagging is None:
                # The watermark follows the slowest source still holding: it can only
                # move when that source moved, or when the clock leaves a source idle.
                if not (low is None or source_clock is None or source_clock <= low
                        or clock - idle > low):  # fmt: skip
                    continue
                low = clock
                for held_source, held in source_clocks.items():
                    if clock - idle <= held < low and held_source not in sparse:
                        low = held
                candidate: int | None = low - lateness
            elif source in held_by and (
                not live or source_clock is None or slowest is None or source_clock <= slowest
            ):
                candidate = self._live_candidate(clock, live)  # type: ignore[arg-type]
                if live and candidate is not None:
                    slowest = candidate + lateness
            else:
                continue
            if candidate is not None and (watermark is None or candidate > watermark):
                watermark = candidate
        self.event_clock, self.watermark, self._pending_min = clock, watermark, pending_min
        self._leaping = bool(far)
        self._holding_low = low
        self.late += late
        self._release()
        return refused

    def _too_old(self, ts: int) -> bool:
        """A source's first event: more than `max_clock_skew_ms` behind the newest event of
        the dense sources (the others are judged against their own source's newest).

        Not the partition's clock: a backlog is read at different event-time paces from
        different topics, and the sparse rooms topic can bring days in one fetch, so the
        clock may run far ahead of topics that are in order in their own right (`make
        soak`'s 36-night burst had 408,488 such events rejected). With no dense source's
        event yet there is nothing to judge by, as for a partition's first event."""
        newest = self.dense_clock()
        return newest is not None and newest - ts > self.config.max_clock_skew_ms

    def dense_clock(self) -> int | None:
        """The newest event of the dense sources (None before their first)."""
        return max(
            (c for s, c in self.source_clocks.items() if s not in SPARSE_SOURCES), default=None
        )

    def held(self) -> int:
        """Events accepted and waiting for the watermark (or for their second to close).

        Counted when asked, not kept: the hot loop stays as it is. What a live driver
        bounds by pausing the sources that run ahead (streams.worker.app)."""
        return sum(map(len, self._pending.values())) + sum(map(len, self._pending_latency.values()))

    def _make_room(self) -> bool:
        """The room budget is full: evict the least recently active tenth of the rooms
        that nobody is in (if its detectors watch it, for `EMPTIED_QUIET_S`: an audience
        that just left all at once is a cliff being judged), or whose stream ended and
        whose viewers have stopped leaving it (`ENDED_QUIET_S` without an event), and no
        alert is open or pending on. False when there are none: every room held is
        live, and a new one must wait for one to empty."""
        if self._full_at is not None and self._full_at == self.closed_second:
            return False  # nothing has changed since the last look found every room live
        second = self.closed_second if self.closed_second is not None else 0
        busy = {key.room_id for key in self.watch.tracker.active}
        watched = self.watch.rooms
        idle = [
            r
            for r in self.rooms.values()
            if r.room_id not in busy
            and (
                (
                    not r.viewers
                    and (
                        r.room_id not in watched or second - r.last_event_second >= EMPTIED_QUIET_S
                    )
                )
                or (r.ended_at is not None and second - r.last_event_second >= ENDED_QUIET_S)
            )
        ]
        if not idle:
            self._full_at = self.closed_second
            return False
        idle.sort(key=_LAST_EVENT)
        evicted = idle[: max(1, len(self.rooms) // 10)]
        for room in evicted:
            self._forget(room.room_id, second)
        self.evicted += len(evicted)
        return True

    def _live_candidate(self, clock: int, lagging: AbstractSet[str]) -> int | None:
        if not lagging:
            return clock - self.config.allowed_lateness_ms
        clocks = self.source_clocks
        if not clocks.keys() >= lagging:
            return None  # a source with input we have not seen a single event of yet
        return min(map(clocks.__getitem__, lagging)) - self.config.allowed_lateness_ms

    def _raise_to(self, candidate: int) -> None:
        """The watermark only moves forward."""
        if self.watermark is None or candidate > self.watermark:
            self.watermark = candidate

    def settle(self, lagging: Collection[str]) -> None:
        """Live mode, after a batch: let the watermark follow the sources still lagging."""
        if self.event_clock is not None:
            candidate = self._live_candidate(self.event_clock, frozenset(lagging))
            if candidate is not None:
                self._raise_to(candidate)
        self._release()

    def advance_idle(self, idle_ms: int) -> None:
        """Live mode: event time passes while the partition receives nothing."""
        if self.event_clock is not None:
            self.event_clock += idle_ms
            self._raise_to(self.event_clock - self.config.allowed_lateness_ms)
            self._release()

    def flush(self) -> None:
        """Apply everything buffered: the input has ended. A leap nothing confirmed is
        taken out (`unconfirmed`), not applied: it would age every room."""
        if self.event_clock is not None:
            beyond = (self.event_clock + self.config.max_jump_ms) // 1000
            for waiting in (self._pending, self._pending_latency):
                for second in [s for s in waiting if s > beyond]:
                    self.unconfirmed += waiting.pop(second)
        for waiting in (self._pending, self._pending_latency):
            if waiting:
                self._raise_to(max(e.ts for e in waiting[max(waiting)]))
        self._release()
        # The newest second stays open: its samples count, it is not ticked.
        for second in sorted(self._pending_latency):
            self._apply_latency(second, self._pending_latency.pop(second))

    def _release(self) -> None:
        watermark = self.watermark
        if watermark is None:
            return
        if self._pending_min is not None and self._pending_min <= watermark:
            pending, last = self._pending, watermark // 1000
            ready = []
            for second in sorted(s for s in pending if s <= last):
                waiting = pending.pop(second)
                if second < last:
                    ready += waiting
                else:
                    ready += [e for e in waiting if e.ts <= watermark]
                    if kept := [e for e in waiting if e.ts > watermark]:
                        pending[second] = kept
            self._pending_min = min(pending) * 1000 if pending else None
            ready.sort(key=_application_order)
            self._apply_ordered(ready)
        self._tick_until((watermark + 1) // 1000 - 1)

    def _apply_ordered(self, events: list[Event]) -> None:
        """Apply events in event-time order, closing each second before the next opens."""
        second = -1
        for event in events:
            if event.ts // 1000 != second:
                second = event.ts // 1000
                self._tick_until(second - 1)
            if isinstance(event, RoomEvent):
                self._apply_phase(event, second)
                continue
            room = self._room_for(event.room_id, second)
            self.watch.observe(event, room)
            room.apply(event)
            if type(event) is Stall:
                self.watch.stalled(room, event)
            self._after_events(room)

    def _apply_phase(self, event: RoomEvent, second: int) -> None:
        """A room event. `ended`: the broadcast is over, its alerts resolve and nothing
        judges the room any more (it is ticked only when something changes, and goes
        `ended_grace_s` later). `live` after an `ended`: a new broadcast, whose room
        starts afresh (the old one's series go, the traffic baseline starts over)."""
        room_id = event.room_id
        room = self.rooms.get(room_id)
        if room is not None and room.ended_at is not None and event.phase == "live":
            self._forget(room_id, second - 1)
        room = self._room_for(room_id, second)
        if event.phase == "ended" and room.ended_at is None:
            self.watch.stream_ended(room, event.ts)
            self._ticking.pop(room_id, None)
        room.apply_phase(event)
        self._after_events(room)

    def _apply_latency(self, second: int, events: list[Latency]) -> None:
        """Apply the latency samples of a second per room, in application order, so
        results do not depend on batch boundaries."""
        events.sort(key=_TS)  # stable: arrival order (one topic) breaks ties
        by_room: dict[str, LatencySamples] = {}
        for event in events:
            batch = by_room.get(event.room_id)
            if batch is None:
                batch = by_room[event.room_id] = LatencySamples()
            batch.events.append(event)
        for room_id, batch in by_room.items():
            room = self._room_for(room_id, second)
            self.watch.observe_latency(room, batch)
            room.apply_latency(second, batch.events, batch.e2e())
            self._after_events(room)
        self.latency.add(second, by_room.values())

    # -- rooms: ticked every second while watched, caught up when needed while quiet --

    def _room_for(self, room_id: str, second: int) -> RoomState:
        """The room an event of `second` goes to, its earlier seconds all closed."""
        room = self.rooms.get(room_id)
        if room is None:
            self._admitted.discard(room_id)
            room = self.rooms[room_id] = RoomState(room_id, second, self.config.metrics)
        elif room_id not in self._ticking:
            room.catch_up(second - 1)
        return room

    def _after_events(self, room: RoomState) -> None:
        """A quiet room is ticked every second from when its detectors start (it has
        enough viewers, or chat); until then it only wakes when something changes."""
        room_id = room.room_id
        if room_id in self._ticking:
            return
        if room_id in self.watch.rooms or (
            room.ended_at is None and room.online >= self._watch_from(room_id)
        ):
            self._ticking[room_id] = room
            self._wake_at.pop(room_id, None)
        else:
            self._schedule(room)

    def _watch_from(self, room_id: str) -> int:
        return self.watch.settings.watch_from_online(room_id)

    def _schedule(self, room: RoomState) -> None:
        """Wake `room` by its next change. A wake already due sooner stays: waking early
        only catches the room up (with the result of ticking it), while a wake pushed
        for every event of a quiet room whose change moves on with it (its oldest
        session's expiry) left the heap a stale entry per event until then."""
        wake = room.next_change()
        scheduled = self._wake_at.get(room.room_id)
        if scheduled is None or wake < scheduled:
            self._wake_at[room.room_id] = wake
            heapq.heappush(self._wakes, (wake, room.room_id))

    def _wake_quiet(self, second: int) -> list[str]:
        """Tick the quiet rooms due at `second`; return those now gone."""
        wakes, wake_at, gone = self._wakes, self._wake_at, []
        while wakes and wakes[0][0] <= second:
            wake, room_id = heapq.heappop(wakes)
            if wake_at.get(room_id) != wake:
                continue  # rescheduled since
            del wake_at[room_id]
            room = self.rooms[room_id]
            room.catch_up(second)
            if room.is_gone(second):
                gone.append(room_id)
            else:
                self._schedule(room)
        return gone

    def catch_up(self) -> None:
        """Bring every quiet room up to the closed second, for a reader of room metrics
        (a scrape, a snapshot, the end of a backtest)."""
        if self.closed_second is None:
            return
        for room_id in self._wake_at:
            self.rooms[room_id].catch_up(self.closed_second)

    def _forget(self, room_id: str, second: int) -> None:
        del self.rooms[room_id]
        self._ticking.pop(room_id, None)
        self._wake_at.pop(room_id, None)
        self.watch.room_gone(room_id, second)

    def _tick_until(self, second: int) -> None:
        """Close every second up to `second`: its latency samples, then every room ticks."""
        closed = self.closed_second
        if closed is None:
            # Nothing applied yet: start at the oldest second with samples waiting.
            closed = min(min(self._pending_latency, default=second + 1), second + 1) - 1
        pending_latency = self._pending_latency
        tick = closed + 1
        while tick <= second:
            samples = pending_latency.pop(tick, None)
            if samples is not None:
                self._apply_latency(tick, samples)
            if not self.rooms:
                # Nobody to tick until the next second with samples waiting.
                tick = min((s for s in pending_latency if tick <= s <= second), default=second + 1)
                self._skip_to(tick - 1)
                continue
            self.latency.advance(tick)
            for room in self._ticking.values():
                room.tick(tick)
                self.watch.tick(tick, room)
            gone = self._wake_quiet(tick)
            self.closed_second = tick
            every = self.config.snapshot_every_s
            if every and (tick + 1) % every == 0:
                self.catch_up()
                self.snapshots += [
                    snapshot(room, (tick + 1) * 1000, self.watch.room_metrics(room.room_id))
                    for room in self.rooms.values()
                ]
            gone += [room_id for room_id, room in self._ticking.items() if room.is_gone(tick)]
            for room_id in gone:
                self._forget(room_id, tick)
            tick += 1
        if self.closed_second is None:
            self.closed_second = second

    def _skip_to(self, second: int) -> None:
        # No room to tick, but region latency windows must still empty out.
        self.latency.advance(second)
        self.closed_second = second


def snapshot(
    room: RoomState, ts: int, extra: dict[str, float | None] | None = None
) -> dict[str, Any]:
    """A room's metrics at `ts`: `<name>_1m`, `<name>_5m`, since-live `<name>_live`,
    its latest promotion's review (`promotion_*`, RoomState.promotion_metrics) and
    `extra` (the detectors' room metrics, see PartitionWatch.room_metrics)."""
    metrics: dict[str, float | None] = dict(extra or {})
    metrics.update(room.promotion_metrics())
    for seconds, label in ((60, "1m"), (300, "5m")):
        metrics.update({f"{name}_{label}": v for name, v in room.metrics(seconds).items()})
    metrics.update({f"{name}_live": v for name, v in room.totals_metrics().items()})
    return {"room_id": room.room_id, "ts": ts, "metrics": metrics}


ENDED_QUIET_S: Final = 60
"""An ended room's events go on a while (viewers leave, last samples arrive): it makes
room for a new one under a full budget only once they stop, so a flood of new ids does
not cut the tail of a real broadcast (tests/streams/logs/test_room_budget.py)."""
EMPTIED_QUIET_S: Final = 60
"""A watched room its audience left is kept this long after its last event before it
may make room for a new one: the cliff detector judges a fall over its last 30 s at
5 s steps, and a room evicted as its last viewers leave would never page (a flood of
junk ids during an outage did that; tests/streams/logs/test_room_budget.py)."""
_TS: Final = operator.attrgetter("ts")
_LAST_EVENT: Final = operator.attrgetter("last_event_second")
_ALL_SOURCES: Final = frozenset(SOURCES)
_NO_HORIZON: Final = 1 << 62
"""Offline there is no wall clock to be ahead of (event times are epoch ms < 2^62)."""
_TYPE_RANK: Final = {name: rank for rank, name in enumerate(EVENT_TYPES)}
_RANK_OF_CLASS: Final = {cls: _TYPE_RANK[tag] for cls, tag in TYPE_OF_CLASS.items()}


def _application_order(event: Event) -> int:
    # Ties in event time are broken by type, not arrival: events of different
    # types come from different topics, whose interleaving Kafka does not fix.
    return event.ts * 8 + _RANK_OF_CLASS[type(event)]


@dataclass
class Output:
    """What the detectors and the snapshots produced since the last drain."""

    transitions: list[Transition] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    """Moderation actions (mute suggestions), for the `live.actions` topic."""
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    """Room metrics every `snapshot_every_s` of event time (offline analysis)."""

    def extend(self, other: Output) -> None:
        self.transitions += other.transitions
        self.actions += other.actions
        self.snapshots += other.snapshots


class Pipeline:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.engines: dict[int, PartitionEngine] = {}
        """Read-only outside: the exporter and checkpoints look, drivers ask."""
        self.events_total: Counter[str] = Counter()
        """Valid events accepted, by type (duplicates included)."""
        self.invalid_total: Counter[str] = Counter()
        """Rejected inputs, by reason."""
        self.late_total = 0
        self.evicted_total = 0
        """Rooms evicted to keep partitions within `max_rooms`."""

    def engine(self, partition: int) -> PartitionEngine:
        engine = self.engines.get(partition)
        if engine is None:
            engine = self.engines[partition] = PartitionEngine(self.config)
        return engine

    def process(
        self,
        partition: int,
        messages: Iterable[RawMessage],
        *,
        now_ms: int | None = None,
        lagging: Collection[str] | None = None,
    ) -> list[Rejected]:
        """Process one partition's Kafka messages in arrival order; return the rejects.

        `now_ms` and `lagging` are the live driver's: see PartitionEngine.ingest.
        """
        decoded = decode_messages(messages, check_key=True)
        return self._ingest(partition, decoded, now_ms=now_ms, lagging=lagging)

    def process_lines(
        self, partition: int, lines: list[bytes], numbers: Iterable[int], log: str
    ) -> list[Rejected]:
        """Process one partition's lines of an event log (no keys to check), in file order."""
        return self._ingest(partition, decode_log_lines(lines, numbers, log))

    def reject(self, rejected: list[Rejected]) -> None:
        """Count inputs rejected before they could be routed to a partition."""
        self.invalid_total.update(r.reason for r in rejected)

    def _ingest(
        self,
        partition: int,
        decoded: Decoded,
        *,
        now_ms: int | None = None,
        lagging: Collection[str] | None = None,
    ) -> list[Rejected]:
        engine = self.engine(partition)
        rejected = decoded.rejected
        if decoded.events:
            late_before, evicted_before = engine.late, engine.evicted
            refused = engine.ingest(decoded.events, now_ms, lagging)
            self.late_total += engine.late - late_before
            self.evicted_total += engine.evicted - evicted_before
            for cls, count in Counter(map(type, decoded.events)).items():
                self.events_total[TYPE_OF_CLASS[cls]] += count
            rejected += [self._refuse(partition, decoded, p, r, now_ms) for p, r in refused]
        self.reject(rejected)
        return rejected

    def _refuse(
        self, partition: int, decoded: Decoded, position: int, reason: str, now_ms: int | None
    ) -> Rejected:
        event = decoded.events[position]
        self.events_total[event_type(event)] -= 1
        message, index = decoded.origin(position)
        config = self.config
        if reason == ROOM_BUDGET:
            detail = (
                f"partition {partition} holds {config.max_rooms} rooms (max_rooms), "
                "every one with viewers online or an alert open"
            )
        elif now_ms is not None and event.ts > now_ms + config.max_future_ms:
            detail = (
                f"ts {event.ts} is more than {config.max_future_ms} ms "
                f"ahead of the wall clock {now_ms}"
            )
        else:
            engine = self.engines[partition]
            newest = engine.source_clocks.get(SOURCE_OF_CLASS[type(event)])
            if newest is not None and event.ts < newest:
                reference = f"its topic's newest event {newest}"
            elif engine.event_clock is not None and event.ts < engine.event_clock:
                reference = f"the other topics' newest event {engine.dense_clock()}"
            else:
                reference = f"the event clock {engine.event_clock}"
            detail = (
                f"ts {event.ts} is more than {config.max_clock_skew_ms} ms from "
                f"{reference} in partition {partition}"
            )
        payload = msgspec.json.encode(event) if index is not None else None
        return Rejected(reason, detail, message, index, payload)

    def settle(self, partition: int, lagging: Collection[str]) -> None:
        """Live mode, after a batch or a wait: see PartitionEngine.settle."""
        self.engine(partition).settle(lagging)

    def advance_idle(self, partition: int, idle_ms: int) -> None:
        """Live mode: event time passes in a partition that receives nothing."""
        self.engine(partition).advance_idle(idle_ms)

    def advance_to(self, until_ms: int) -> None:
        """Offline: partitions whose clock is behind `until_ms` (nothing seen lately)
        move up to it, as a live worker's silent partitions follow the wall clock."""
        for engine in self.engines.values():
            clock = engine.event_clock
            if clock is not None and clock < until_ms:
                engine.advance_idle(until_ms - clock)

    def flush(self, partitions: Iterable[int] | None = None) -> None:
        """Apply everything buffered: the input has ended (of `partitions`, default all).

        The backtest flushes at the end of its log; the worker flushes a partition
        whose every source has been caught up and silent for `flush_idle_s`. After a
        flush the watermark stands at the newest event applied: input that resumes
        with events not newer than that is late."""
        numbers = self.engines.keys() if partitions is None else partitions
        for engine in [self.engines[n] for n in numbers if n in self.engines]:
            engine.flush()
            for event in engine.unconfirmed:
                self.events_total[event_type(event)] -= 1
                self.invalid_total[TS_OUT_OF_BOUNDS] += 1
            engine.unconfirmed = []

    def drain(self) -> Output:
        """Everything produced since the last drain, partition by partition."""
        out = Output()
        for engine in self.engines.values():
            transitions, actions = engine.watch.drain()
            out.transitions += transitions
            out.actions += actions
            out.snapshots += engine.snapshots
            engine.snapshots = []
        return out

    def held(self) -> dict[int, int]:
        """Partition -> events waiting for its watermark (PartitionEngine.held)."""
        return {p: e.held() for p, e in self.engines.items()}

    def watermarks(self) -> dict[int, int]:
        """Partition -> its watermark (epoch ms), for partitions that have one."""
        return {p: e.watermark for p, e in self.engines.items() if e.watermark is not None}

    def adopt(self, partition: int, engine: PartitionEngine) -> None:
        """Take over a partition's restored state."""
        self.engines[partition] = engine

    def revoke(self, partition: int) -> None:
        """Forget a partition another worker now owns."""
        self.engines.pop(partition, None)

    def merge(self, other: Pipeline) -> None:
        """Take over another pipeline's partitions and counts (backtest lanes)."""
        self.engines.update(other.engines)
        self.events_total.update(other.events_total)
        self.invalid_total.update(other.invalid_total)
        self.late_total += other.late_total
        self.evicted_total += other.evicted_total
