"""Recall candidates: viewers whose session ended during a quality incident of their room.

A recall campaign (coupons, a follow-up message) targets first the viewers a bad
picture drove away. A viewer's session ends (a leave, or the session timeout at
their last event) and livewatch asks, at that moment and in O(1) for the room:

- did it end between a `latency_slo` alert's firing and resolved transitions of the
  room, the viewer's latest latency sample (since the alert fired) reporting the
  alert's region? `latency_incident`, with the alert's fingerprint;
- between a `stall_slo` alert's firing and resolved transitions? `stall_incident`;
- within `stall_window_s` (60 s) after a stall of their own? `stalled_then_left`,
  no fingerprint.

Each is emitted once per room, incident and viewer (an incident is one firing ->
resolved span of one alert key; a `stalled_then_left` is one session). Everything
is judged on event time: an incident stays remembered after it resolved for as long
as a session timeout can still end a session inside it, so a replay at any speed
finds the same candidates. State is bounded: viewers per incident, incidents per
room and remembered stalls per room have caps, and what a cap refuses is counted
(`dropped`), never silently lost. User ids are untrusted text: they go into the
actions' JSON only, never into a metric label.

Pure: plain values in, action records out; the engine (streams.core) wires a room's
session ends, stalls and latency samples to `RoomRecall`, and the alert transitions
to `Recall.transition`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from detectors.config import RecallConfig

LATENCY_INCIDENT: Final = "latency_incident"
STALL_INCIDENT: Final = "stall_incident"
STALLED_THEN_LEFT: Final = "stalled_then_left"
REASONS: Final = (LATENCY_INCIDENT, STALL_INCIDENT, STALLED_THEN_LEFT)
REASON_OF_ALERT: Final = {"latency_slo": LATENCY_INCIDENT, "stall_slo": STALL_INCIDENT}
"""The alerts whose incidents make recall candidates."""
CAPS: Final = ("per_incident", "incidents_per_room", "stalls_per_room")
"""What the caps refuse, as `dropped` counts: a candidate over `max_per_incident`, an
incident over `max_incidents_per_room`, a stall over `max_stalls_per_room`."""
UNKNOWN_REGION: Final = "unknown"
"""The region of latency samples without one (as the latency alert's key names it)."""


class AlertChange(Protocol):
    """What a recall needs of an alert transition (detectors.alerts.Transition)."""

    @property
    def alert(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def ts(self) -> int: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def region(self) -> str | None: ...


class RegionSample(Protocol):
    """A latency sample: its viewer and the region it reports."""

    @property
    def user_id(self) -> str: ...
    @property
    def region(self) -> str | None: ...


@dataclass(slots=True)
class Incident:
    """One firing -> resolved span of a latency or stall alert of a room."""

    reason: str
    fingerprint: str
    region: str | None
    fired_at: int
    """ms of the firing transition."""
    resolved_at: int | None = None
    """ms of the resolved transition; None while it fires."""
    recalled: set[str] = field(default_factory=set)
    """Viewers already emitted for it (at most `max_per_incident`)."""


@dataclass
class Recall:
    """A partition's recall: settings, the candidates found since the last `take`, counts."""

    config: RecallConfig = field(default_factory=RecallConfig)
    linger_s: int = 310
    """How long after a session's last event its end can still be noticed (the session
    timeout and one expiry scan): an incident is remembered this long after it resolved."""
    found: list[dict[str, Any]] = field(default_factory=list)
    """Recall actions for `live.actions`, waiting for the driver."""
    candidates: Counter[str] = field(default_factory=Counter)
    """reason -> candidates emitted since the partition started (its checkpoint included)."""
    dropped: Counter[str] = field(default_factory=Counter)
    """cap (`CAPS`) -> what it refused."""

    def transition(self, room: RoomRecall | None, change: AlertChange) -> RoomRecall | None:
        """An alert transition of a room (whose recall state is `room`, None when it has
        none): a latency or stall alert firing opens an incident, resolving closes it.
        Returns the room's recall state afterwards."""
        reason = REASON_OF_ALERT.get(change.alert)
        if reason is None:
            return room
        if change.state == "firing":
            if room is None:
                room = RoomRecall(self)
            room.open(reason, change.fingerprint, change.region, change.ts)
        elif room is not None:
            room.close(change.fingerprint, change.ts)
        return room

    def emit(self, room_id: str, user: str, ts: int, reason: str, print_: str | None) -> None:
        self.found.append(
            {
                "action": "recall",
                "room_id": room_id,
                "user_id": user,
                "ts": ts,
                "reason": reason,
                "fingerprint": print_,
            }
        )
        self.candidates[reason] += 1

    def take(self) -> list[dict[str, Any]]:
        found, self.found = self.found, []
        return found


@dataclass
class RoomRecall:
    """A room's open and recently resolved incidents, its viewers' recent stalls, and
    (while a latency incident fires) the region of each viewer's latest sample."""

    partition: Recall
    incidents: list[Incident] = field(default_factory=list)
    stalls: dict[str, int] = field(default_factory=dict)
    """Online viewer -> ms of their latest stall, oldest first (an update moves it last)."""
    regions: dict[str, str] = field(default_factory=dict)
    """Viewer -> region of their latest latency sample since a latency incident fired."""
    sampling: bool = False
    """A latency incident fires: samples' regions are noted."""
    refused: set[str] = field(default_factory=set)
    """Fingerprints of firing incidents the per-room cap refused, until they resolve: a
    re-announcement is the same incident, not another one to count as dropped."""

    def open(self, reason: str, fingerprint: str, region: str | None, ts: int) -> None:
        for incident in self.incidents:
            if incident.fingerprint == fingerprint and incident.resolved_at is None:
                return  # a re-announcement (severity rose): the same incident
        if fingerprint in self.refused:
            return
        self._prune(ts // 1000)
        if len(self.incidents) >= self.partition.config.max_incidents_per_room:
            self.partition.dropped["incidents_per_room"] += 1
            self.refused.add(fingerprint)
            return
        self.incidents.append(Incident(reason, fingerprint, region, ts))
        self.sampling = self.sampling or reason == LATENCY_INCIDENT

    def close(self, fingerprint: str, ts: int) -> None:
        self.refused.discard(fingerprint)
        for incident in self.incidents:
            if incident.fingerprint == fingerprint and incident.resolved_at is None:
                incident.resolved_at = ts
        self.sampling = any(
            i.resolved_at is None and i.reason == LATENCY_INCIDENT for i in self.incidents
        )

    def sampled(self, samples: Iterable[RegionSample]) -> None:
        """Latency samples of the room (only while `sampling`: a latency incident fires)."""
        regions = self.regions
        for sample in samples:
            regions[sample.user_id] = sample.region or UNKNOWN_REGION

    def stalled(self, user: str, ts: int, second: int) -> None:
        """A stall of an online viewer."""
        stalls = self.stalls
        cap = self.partition.config.max_stalls_per_room
        if stalls.pop(user, None) is None and len(stalls) >= cap:
            # Forget stalls that can no longer precede a session end within the window:
            # the viewer's session either ended since (and was forgotten) or went on.
            stale = (second - self.partition.linger_s - self.partition.config.stall_window_s) * 1000
            while stalls and next(iter(stalls.values())) < stale:
                del stalls[next(iter(stalls))]
            if len(stalls) >= cap:
                self.partition.dropped["stalls_per_room"] += 1
                return
        stalls[user] = ts

    def session_ended(self, room_id: str, user: str, ended_ms: int, second: int) -> None:
        """`user`'s session in room `room_id` ended at `ended_ms` (a leave, or their last
        event when the timeout is noticed at `second`): is it a recall candidate?"""
        partition = self.partition
        stall = self.stalls.pop(user, None)
        if stall is not None and 0 <= ended_ms - stall <= partition.config.stall_window_s * 1000:
            partition.emit(room_id, user, ended_ms, STALLED_THEN_LEFT, None)
        region = self.regions.pop(user, None)
        if not self.incidents:
            return
        self._prune(second)
        cap = partition.config.max_per_incident
        for incident in self.incidents:
            if (
                ended_ms < incident.fired_at
                or (incident.resolved_at is not None and ended_ms > incident.resolved_at)
                or (incident.reason == LATENCY_INCIDENT and region != incident.region)
            ):
                continue
            recalled = incident.recalled
            if user in recalled:
                continue
            if len(recalled) >= cap:
                partition.dropped["per_incident"] += 1
                continue
            recalled.add(user)
            partition.emit(room_id, user, ended_ms, incident.reason, incident.fingerprint)

    def _prune(self, second: int) -> None:
        """Forget incidents resolved too long ago for a session end to fall in them."""
        oldest = (second - self.partition.linger_s) * 1000
        if any(i.resolved_at is not None and i.resolved_at < oldest for i in self.incidents):
            self.incidents = [
                i for i in self.incidents if i.resolved_at is None or i.resolved_at >= oldest
            ]
            if not self.sampling and not any(i.reason == LATENCY_INCIDENT for i in self.incidents):
                self.regions.clear()

    @property
    def idle(self) -> bool:
        """Nothing left to judge a session end by, nor refused incidents to remember."""
        return not (self.incidents or self.stalls or self.refused)
