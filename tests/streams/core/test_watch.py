"""Feeding detectors from a room: latency samples weigh by the viewer time they stand for."""

from __future__ import annotations

from streams.core.engine import PartitionEngine
from streams.core.events import Event, Join, Latency
from tests.streams.scenarios import CONFIG, T0


def latency_alerts(events: list[Event]) -> list[str]:
    engine = PartitionEngine(CONFIG)
    engine.ingest(sorted(events, key=lambda e: e.ts))
    engine.flush()
    transitions, _ = engine.watch.drain()
    return [t.severity for t in transitions if t.alert == "latency_slo" and t.state == "firing"]


def room(minutes: int, bad_viewers: int, chatty_bad: bool) -> list[Event]:
    """Twelve viewers in one region, each sending a sample every 20 s (a viewer with a
    bad connection every 2 s when `chatty_bad`): `bad_viewers` of them see 1.5 s."""
    events: list[Event] = []
    for viewer in range(12):
        user = f"u{viewer}"
        events.append(Join("r", T0 + viewer * 100, user))
        bad = viewer < bad_viewers
        every_ms = 2_000 if bad and chatty_bad else 20_000
        for ts in range(T0 + 1_000 + viewer * 100, T0 + minutes * 60_000, every_ms):
            events.append(Latency("r", ts, user, 1500.0 if bad else 200.0, region="east"))
    return events


def test_one_viewer_sending_many_bad_samples_is_one_viewer_of_twelve() -> None:
    """One of twelve viewers, on a bad connection, sends half of the region's samples:
    a twelfth of its viewer time is bad (8%, under the 5% budget's 6x burn), no alert."""
    assert latency_alerts(room(20, bad_viewers=1, chatty_bad=True)) == []


def test_half_of_the_viewers_over_the_objective_still_pages() -> None:
    assert "critical" in latency_alerts(room(6, bad_viewers=6, chatty_bad=False))
