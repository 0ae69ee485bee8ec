"""Recall's incident bookkeeping on its own (detectors/recall.py); through the engine,
with real alerts and sessions: tests/streams/core/test_recall.py."""

from __future__ import annotations

from dataclasses import dataclass

from detectors.config import RecallConfig
from detectors.recall import Recall, RoomRecall


@dataclass(frozen=True)
class Change:
    alert: str
    state: str
    ts: int
    fingerprint: str
    region: str | None = "east"


def test_an_incident_the_cap_refuses_is_counted_once_however_often_it_is_announced() -> None:
    recall = Recall(RecallConfig(max_incidents_per_room=1))
    room: RoomRecall | None = None
    for change in [
        Change("latency_slo", "firing", 1_000, "a"),  # kept: the room's one incident
        Change("latency_slo", "firing", 2_000, "b"),  # refused
        Change("latency_slo", "firing", 3_000, "b"),  # b announced again while it fires
        Change("latency_slo", "firing", 4_000, "b"),
    ]:
        room = recall.transition(room, change)
    assert recall.dropped == {"incidents_per_room": 1}
    assert room is not None and [i.fingerprint for i in room.incidents] == ["a"]

    room = recall.transition(room, Change("latency_slo", "resolved", 5_000, "b"))
    room = recall.transition(room, Change("latency_slo", "firing", 6_000, "b"))  # b again
    assert recall.dropped == {"incidents_per_room": 2}, "a new firing is another incident"


def test_a_re_announced_incident_stays_one_incident() -> None:
    recall = Recall(RecallConfig(max_incidents_per_room=4))
    room = recall.transition(None, Change("stall_slo", "firing", 1_000, "s", None))
    room = recall.transition(room, Change("stall_slo", "firing", 2_000, "s", None))
    assert room is not None and len(room.incidents) == 1 and not recall.dropped
