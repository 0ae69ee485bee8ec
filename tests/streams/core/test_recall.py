"""Recall candidates through the engine: real detectors fire real latency and stall
alerts on a hand-made night, and viewers leave around them (detectors/recall.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from detectors.alerts import Transition
from detectors.config import DetectorSettings
from streams.core.config import EngineConfig
from streams.core.engine import PartitionEngine
from streams.core.events import Event, Join, Latency, Leave, RoomEvent, Stall
from tests.streams.scenarios import T0

CONFIG = EngineConfig(allowed_lateness_ms=1_000, max_clock_skew_ms=3_600_000)
NIGHT_S = 1_100
BAD = (60, 400)
"""Seconds of the night in which region `east` of room `lat` sees 1.5 s latency, and in
which room `st` stalls 20% of the time."""
VIEWERS = 40
S = 1_000


@dataclasses.dataclass
class Viewer:
    room: str
    user: str
    region: str | None = None
    joins: tuple[int, ...] = (0,)
    """ms offsets of joins; every session lasts until its leave or `last`."""
    leaves: tuple[int, ...] = ()
    last: int = NIGHT_S * S
    """No event of theirs from this ms offset on (their session times out)."""
    stalls: tuple[int, ...] = ()
    stalls_every: int | None = None
    """While BAD, a stall every this many ms (room `st`)."""


def present(viewer: Viewer, at: int) -> bool:
    """Is the viewer in a session at ms offset `at` (joined, not left, not gone quiet)?"""
    if at >= viewer.last:
        return False
    moves = sorted([(t, 1) for t in viewer.joins] + [(t, 0) for t in viewer.leaves])
    state = 0
    for t, kind in moves:
        if t > at:
            break
        state = kind
    return bool(state)


def events_of(viewer: Viewer) -> list[Event]:
    room, user = viewer.room, viewer.user
    out: list[Event] = [Join(room, T0 + t, user) for t in viewer.joins]
    out += [Leave(room, T0 + t, user) for t in viewer.leaves]
    for at in range(500, NIGHT_S * S, 2_000):  # a latency sample every 2 s while present
        if present(viewer, at):
            slow = (
                viewer.room == "lat" and viewer.region == "east" and BAD[0] * S <= at < BAD[1] * S
            )
            out.append(Latency(room, T0 + at, user, 1_500.0 if slow else 200.0,
                               region=viewer.region))  # fmt: skip
    if viewer.stalls_every:
        for at in range(BAD[0] * S + 300, BAD[1] * S, viewer.stalls_every):
            if present(viewer, at):
                out.append(Stall(room, T0 + at, user, 2_000.0))
    out += [Stall(room, T0 + t, user, 1_000.0) for t in viewer.stalls if present(viewer, t)]
    return out


def crowd(room: str, stalls_every: int | None = None) -> list[Viewer]:
    """A room's steady audience: half in `east`, half in `west`."""
    return [
        Viewer(room, f"{room}-{i}", "east" if i % 2 else "west", stalls_every=stalls_every)
        for i in range(VIEWERS)
    ]


def run(viewers: list[Viewer], extra: list[Event] | None = None, **recall: Any) -> PartitionEngine:
    config = CONFIG
    if recall:
        config = dataclasses.replace(
            CONFIG, detectors=DetectorSettings.from_table({"recall": recall})
        )
    engine = PartitionEngine(config)
    events = [e for v in viewers for e in events_of(v)] + (extra or [])
    events.sort(key=lambda e: e.ts)
    engine.ingest(events)
    engine.flush()
    return engine


def outcome(engine: PartitionEngine) -> tuple[list[Transition], list[dict[str, Any]]]:
    """The transitions and the recall actions the engine has to say (drained)."""
    transitions, actions = engine.watch.drain()
    return transitions, [a for a in actions if a["action"] == "recall"]


def recalls(engine: PartitionEngine) -> list[dict[str, Any]]:
    return outcome(engine)[1]


def span(transitions: list[Transition], alert: str) -> tuple[int, int, str]:
    """(firing ts, resolved ts, fingerprint) of the night's one alert of that type."""
    mine = [t for t in transitions if t.alert == alert]
    fired = min(t.ts for t in mine if t.state == "firing")
    resolved = [t.ts for t in mine if t.state == "resolved"]
    assert len(resolved) == 1, mine
    return fired, resolved[0], mine[0].fingerprint


@pytest.fixture(scope="module")
def quiet_night() -> tuple[int, int, str]:
    """When the latency alert of room `lat` fires and resolves with nobody leaving."""
    engine = run(crowd("lat"))
    transitions = engine.watch.drain()[0]
    assert {(t.alert, t.room_id, t.region) for t in transitions} == {("latency_slo", "lat", "east")}
    return span(transitions, "latency_slo")


def test_a_latency_incident_recalls_viewers_of_its_region_who_left_during_it(
    quiet_night: tuple[int, int, str],
) -> None:
    fired, resolved, fingerprint = quiet_night
    f, r = fired - T0, resolved - T0  # ms offsets
    viewers = crowd("lat")[4:]  # `lat-0` .. `lat-3` are replaced by the ones below
    viewers += [
        Viewer("lat", "east-during", "east", leaves=(f + 30_000,)),
        Viewer("lat", "west-during", "west", leaves=(f + 30_000,)),
        Viewer("lat", "east-before", "east", leaves=(f - 20_000,)),
        Viewer("lat", "east-after", "east", leaves=(r + 20_000,)),
        Viewer("lat", "east-twice", "east", joins=(0, f + 50_000), leaves=(f + 40_000, f + 60_000)),
        Viewer("lat", "east-timeout", "east", last=f + 21_000),  # last sample at f + ~20 s
        Viewer("lat", "no-region", None, leaves=(f + 30_000,)),
    ]
    transitions, got = outcome(run(viewers))
    assert span(transitions, "latency_slo") == quiet_night  # the leaves change no alert
    users = sorted(a["user_id"] for a in got)
    assert users == ["east-during", "east-timeout", "east-twice"]
    by_user = {a["user_id"]: a for a in got}
    assert by_user["east-during"] == {
        "action": "recall", "room_id": "lat", "user_id": "east-during",
        "ts": T0 + f + 30_000, "reason": "latency_incident", "fingerprint": fingerprint,
    }  # fmt: skip
    # A timed-out session ends at its last event, noticed five minutes later.
    timeout = by_user["east-timeout"]
    assert fired <= timeout["ts"] <= T0 + f + 21_000
    assert by_user["east-twice"]["ts"] == T0 + f + 40_000  # once per incident: the first end


def test_a_stall_incident_recalls_whoever_left_during_it_and_stalls_their_own() -> None:
    viewers = crowd("st", stalls_every=10_000)[2:]
    plain = run(viewers)
    fired, resolved, fingerprint = span(plain.watch.drain()[0], "stall_slo")
    f = fired - T0
    viewers += [
        Viewer("st", "calm-leaver", leaves=(f + 30_000,)),  # never stalled
        Viewer("st", "stalled-leaver", leaves=(f + 30_000,), stalls=(f + 5_000,)),
    ]
    transitions, found = outcome(run(viewers))
    fired, resolved, fingerprint = span(transitions, "stall_slo")  # two calm viewers more
    got = {(a["user_id"], a["reason"], a["fingerprint"]) for a in found}
    assert got == {
        ("calm-leaver", "stall_incident", fingerprint),
        ("stalled-leaver", "stall_incident", fingerprint),
        ("stalled-leaver", "stalled_then_left", None),
    }
    assert fired < T0 + f + 30_000 < resolved


def test_stalled_then_left_within_the_window_only() -> None:
    """No incident: a stall of one's own, then the session's end (leave or timeout)."""
    viewers = [
        Viewer("q", "left-50s-after", joins=(90_000,), leaves=(150_000,), stalls=(100_000,)),
        Viewer("q", "left-61s-after", joins=(90_000,), leaves=(161_000,), stalls=(100_000,)),
        Viewer("q", "left-60s-after", joins=(90_000,), leaves=(160_000,), stalls=(100_000,)),
        # Its stall is its last event: the timeout ends the session there.
        Viewer("q", "went-quiet", joins=(90_000,), last=100_001, stalls=(100_000,)),
        Viewer("q", "stalled-stayed", joins=(90_000,), stalls=(100_000,)),
    ]
    got = recalls(run(viewers))
    assert sorted((a["user_id"], a["ts"] - T0, a["reason"], a["fingerprint"]) for a in got) == [
        ("left-50s-after", 150_000, "stalled_then_left", None),
        ("left-60s-after", 160_000, "stalled_then_left", None),
        ("went-quiet", 100_000, "stalled_then_left", None),
    ]


def test_leaving_an_ended_stream_is_no_recall() -> None:
    viewers = [Viewer("e", "after-end", joins=(90_000,), leaves=(130_000,), stalls=(100_000,))]
    ended = RoomEvent("e", T0 + 110_000, "ended")
    assert recalls(run(viewers, [RoomEvent("e", T0, "live"), ended])) == []
    assert [a["user_id"] for a in recalls(run(viewers, [RoomEvent("e", T0, "live")]))] == [
        "after-end"
    ]


def test_caps_refuse_and_count(quiet_night: tuple[int, int, str]) -> None:
    fired = quiet_night[0] - T0
    leavers = [Viewer("lat", f"east-{i}", "east", leaves=(fired + 30_000 + i,)) for i in range(5)]
    engine = run(crowd("lat") + leavers, max_per_incident=2)
    assert [a["user_id"] for a in recalls(engine)] == ["east-0", "east-1"]
    assert engine.watch.recall.dropped == {"per_incident": 3}

    engine = run(crowd("lat") + leavers, max_incidents_per_room=0)
    assert recalls(engine) == [] and engine.watch.recall.dropped == {"incidents_per_room": 1}

    stallers = [
        Viewer("q", f"s{i}", joins=(90_000,), leaves=(150_000,), stalls=(100_000 + i,))
        for i in range(3)
    ]
    engine = run(stallers, max_stalls_per_room=1)
    assert [a["user_id"] for a in recalls(engine)] == ["s0"]
    assert engine.watch.recall.dropped == {"stalls_per_room": 2}


def test_a_room_without_incident_or_stall_has_no_recall_state() -> None:
    engine = PartitionEngine(CONFIG)
    engine.ingest([Join("r", T0 + i, f"u{i}") for i in range(20)])
    engine.ingest([Leave("r", T0 + 10_000 + i, f"u{i}") for i in range(10)])
    engine.ingest([Stall("r", T0 + 12_000, "u15", 500.0)])
    engine.flush()
    room = engine.rooms["r"]
    assert room.recall is not None and set(room.recall.stalls) == {"u15"}
    engine.ingest([Leave("r", T0 + 100_000, "u15")])  # 88 s after its stall: no recall
    engine.flush()
    assert room.recall is None and recalls(engine) == []
