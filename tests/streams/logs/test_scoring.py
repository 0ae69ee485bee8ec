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
