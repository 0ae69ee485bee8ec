from __future__ import annotations

from detectors.alerts import Transition
from streams.logs.scoring import score


def test_score_counts_misses_false_alerts_and_delays() -> None:
    def fired(alert: str, room: str, ts: int) -> Transition:
        return Transition(alert, "firing", room, ts, "warning", "", "f", {}, None, ts, "")

    incidents = [
        {"alert": "spam_flood", "room_id": "a", "start": 1_000, "end": 5_000},
        {"alert": "spam_flood", "room_id": "b", "start": 1_000, "end": 5_000},
    ]
    transitions = [
        fired("spam_flood", "a", 4_000),
        fired("spam_flood", "a", 6_000),  # the same incident again: not false
        fired("spam_flood", "c", 2_000),  # no incident there
        fired("traffic_cliff", "a", 2_000),
    ]
    scores = score(transitions, incidents, grace_ms=10_000)
    spam = scores["spam_flood"]
    assert (spam.incidents, spam.detected, spam.recall, spam.delays_s) == (2, 1, 0.5, [3.0])
    assert (spam.alerts, spam.false_alerts) == (3, 1)
    assert scores["traffic_cliff"].precision == 0.0 and scores["traffic_cliff"].recall is None


def _transition(state: str, room: str, ts: int, region: str | None = None) -> Transition:
    key = f"{room}/{region}"
    return Transition("latency_slo", state, room, ts, "critical", "", key, {}, region, ts, "")


def test_an_alert_already_firing_when_an_incident_starts_detects_it_with_no_delay() -> None:
    incident = {"alert": "latency_slo", "room_id": "a", "start": 10_000, "end": 20_000}
    early = [_transition("firing", "a", 5_000)]
    entry = score(early, [incident], grace_ms=0)["latency_slo"]
    assert (entry.detected, entry.delays_s, entry.false_alerts) == (1, [0.0], 0)
    # Resolved before the incident began: a false alert, and the incident missed.
    resolved = [*early, _transition("resolved", "a", 8_000)]
    entry = score(resolved, [incident], grace_ms=0)["latency_slo"]
    assert (entry.detected, entry.false_alerts) == (0, 1)


def test_onsets_regions_and_tolerated_spans() -> None:
    incidents = [
        {"alert": "latency_slo", "room_id": "a", "region": "east", "onset": 2_000,
         "start": 10_000, "end": 20_000},
        {"alert": "latency_slo", "room_id": "a", "region": "west", "start": 30_000,
         "end": 40_000, "required": False},
    ]  # fmt: skip
    transitions = [
        _transition("firing", "a", 4_000, "east"),  # in the onset: early, delay 0
        _transition("firing", "a", 12_000, "north"),  # another region: false
        _transition("firing", "a", 35_000, "west"),  # tolerated: neither hit nor false
    ]
    entry = score(transitions, incidents, grace_ms=0)["latency_slo"]
    assert (entry.incidents, entry.detected, entry.delays_s) == (1, 1, [0.0])
    assert (entry.alerts, entry.false_alerts) == (3, 1)
